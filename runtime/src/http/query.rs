//! The query strings the endpoints take: `/journal`'s `since` and `limit`,
//! and nothing for the others. Values are decimal numbers, so nothing is
//! percent-decoded: a `%` makes a name unknown or a value malformed.

use std::fmt;

/// Entries `/journal` returns when no `limit` is given.
pub(super) const JOURNAL_DEFAULT_LIMIT: usize = 1_000;

/// The most entries one `/journal` response holds.
pub(super) const JOURNAL_MAX_LIMIT: usize = 10_000;

/// What `/journal` was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct JournalParams {
    /// Entries numbered after this one.
    pub(super) since: u64,
    /// At most this many.
    pub(super) limit: usize,
}

/// Why a query string was refused: the text of a 400 response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum QueryError {
    /// A parameter the endpoint does not take.
    Unknown { endpoint: &'static str, name: String, takes: &'static str },
    /// A value that is not a decimal number.
    NotANumber { name: &'static str, value: String },
    /// A parameter given twice.
    Repeated { name: &'static str },
    /// A limit above [`JOURNAL_MAX_LIMIT`].
    LimitTooLarge { limit: usize },
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Unknown { endpoint, name, takes } => {
                write!(f, "unknown query parameter {name:?}: {endpoint} takes {takes}")
            }
            QueryError::NotANumber { name, value } => {
                write!(f, "query parameter {name:?} must be a whole number, not {value:?}")
            }
            QueryError::Repeated { name } => write!(f, "query parameter {name:?} is given twice"),
            QueryError::LimitTooLarge { limit } => {
                write!(f, "query parameter \"limit\" must be at most {JOURNAL_MAX_LIMIT}, not {limit}")
            }
        }
    }
}

/// The `name=value` pairs of a query string; empty pieces (`a=1&&b=2`, a
/// trailing `&`) are skipped, and a piece without `=` has an empty value.
fn pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| piece.split_once('=').unwrap_or((piece, "")))
}

/// Refuses any parameter: for the endpoints that take none.
pub(super) fn none(endpoint: &'static str, query: Option<&str>) -> Result<(), QueryError> {
    match query.and_then(|query| pairs(query).next()) {
        Some((name, _)) => {
            Err(QueryError::Unknown { endpoint, name: name.to_owned(), takes: "no parameters" })
        }
        None => Ok(()),
    }
}

/// `/journal`'s parameters: `since` (default 0, every entry) and `limit`
/// (default [`JOURNAL_DEFAULT_LIMIT`], at most [`JOURNAL_MAX_LIMIT`]).
pub(super) fn journal(query: Option<&str>) -> Result<JournalParams, QueryError> {
    let mut since = None;
    let mut limit = None;
    for (name, value) in pairs(query.unwrap_or("")) {
        let (slot, name) = match name {
            "since" => (&mut since, "since"),
            "limit" => (&mut limit, "limit"),
            other => {
                return Err(QueryError::Unknown {
                    endpoint: "/journal",
                    name: other.to_owned(),
                    takes: "since and limit",
                })
            }
        };
        if slot.is_some() {
            return Err(QueryError::Repeated { name });
        }
        *slot = Some(number(name, value)?);
    }
    let limit = match limit {
        None => JOURNAL_DEFAULT_LIMIT,
        Some(limit) => match usize::try_from(limit) {
            Ok(limit) if limit <= JOURNAL_MAX_LIMIT => limit,
            _ => {
                return Err(QueryError::LimitTooLarge { limit: usize::try_from(limit).unwrap_or(usize::MAX) })
            }
        },
    };
    Ok(JournalParams { since: since.unwrap_or(0), limit })
}

/// A decimal number: digits only (no sign, no spaces), within `u64`.
fn number(name: &'static str, value: &str) -> Result<u64, QueryError> {
    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
    match value.parse::<u64>() {
        Ok(n) if digits => Ok(n),
        _ => Err(QueryError::NotANumber { name, value: value.to_owned() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(since: u64, limit: usize) -> Result<JournalParams, QueryError> {
        Ok(JournalParams { since, limit })
    }

    #[test]
    fn journal_parameters_default_to_every_entry_and_a_thousand_at_most() {
        assert_eq!(journal(None), params(0, 1_000));
        assert_eq!(journal(Some("")), params(0, 1_000));
        assert_eq!(journal(Some("since=42")), params(42, 1_000));
        assert_eq!(journal(Some("limit=5&since=7")), params(7, 5));
        assert_eq!(journal(Some("since=7&&limit=0&")), params(7, 0));
        assert_eq!(journal(Some("limit=10000")), params(0, 10_000));
    }

    #[test]
    fn journal_parameters_refuse_unknown_names_bad_numbers_repeats_and_large_limits() {
        let unknown = |name: &str| {
            Err(QueryError::Unknown { endpoint: "/journal", name: name.into(), takes: "since and limit" })
        };
        assert_eq!(journal(Some("sinse=4")), unknown("sinse"));
        assert_eq!(journal(Some("since=4&cell=/a")), unknown("cell"));
        assert_eq!(journal(Some("s%69nce=4")), unknown("s%69nce"));
        let not_a_number = |name, value: &str| Err(QueryError::NotANumber { name, value: value.into() });
        assert_eq!(journal(Some("since=abc")), not_a_number("since", "abc"));
        assert_eq!(journal(Some("since")), not_a_number("since", ""));
        assert_eq!(journal(Some("since=")), not_a_number("since", ""));
        assert_eq!(journal(Some("since=-1")), not_a_number("since", "-1"));
        assert_eq!(journal(Some("since=+1")), not_a_number("since", "+1"));
        assert_eq!(journal(Some("limit=%35")), not_a_number("limit", "%35"));
        assert_eq!(
            journal(Some("since=18446744073709551616")),
            not_a_number("since", "18446744073709551616")
        );
        assert_eq!(journal(Some("since=1&since=2")), Err(QueryError::Repeated { name: "since" }));
        assert_eq!(journal(Some("limit=10001")), Err(QueryError::LimitTooLarge { limit: 10_001 }));
    }

    #[test]
    fn endpoints_without_parameters_refuse_any() {
        assert_eq!(none("/metrics", None), Ok(()));
        assert_eq!(none("/metrics", Some("")), Ok(()));
        assert_eq!(
            none("/metrics", Some("x=1")),
            Err(QueryError::Unknown { endpoint: "/metrics", name: "x".into(), takes: "no parameters" })
        );
    }

    #[test]
    fn query_errors_read_as_sentences_naming_the_parameter() {
        let unknown =
            QueryError::Unknown { endpoint: "/journal", name: "sinse".into(), takes: "since and limit" };
        assert_eq!(unknown.to_string(), "unknown query parameter \"sinse\": /journal takes since and limit");
        let nan = QueryError::NotANumber { name: "since", value: "abc".into() };
        assert_eq!(nan.to_string(), "query parameter \"since\" must be a whole number, not \"abc\"");
        assert_eq!(
            QueryError::Repeated { name: "limit" }.to_string(),
            "query parameter \"limit\" is given twice"
        );
        assert_eq!(
            QueryError::LimitTooLarge { limit: 20_000 }.to_string(),
            "query parameter \"limit\" must be at most 10000, not 20000"
        );
    }
}
