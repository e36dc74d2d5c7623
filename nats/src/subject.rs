//! Subject names: `cellrt.<app>.<path>`, with the path's `/` mapped to `.`,
//! every token checked against what NATS allows in a subject.

use std::fmt;

/// The first token of every subject the bridge uses for messages.
const PREFIX: &str = "cellrt";

/// The first tokens of the subjects exporters answer presence on.
const MEMBERS_PREFIX: &str = "_CELLRT.members";

/// The subject a cell at `path` of application `app` is bridged under:
/// `cellrt.<app>.<path>`, each `/`-separated part of the path a token
/// (a leading `/` is ignored).
///
/// # Errors
///
/// [`SubjectError`] when `app` or a part of `path` is empty or holds a
/// character NATS gives a meaning to in subjects: whitespace, `.`, `*`, `>`.
///
/// # Examples
///
/// ```
/// assert_eq!(cellrt_nats::subject("shop", "/payments/fraud")?, "cellrt.shop.payments.fraud");
/// assert!(cellrt_nats::subject("shop", "fraud.v2").is_err());
/// # Ok::<(), cellrt_nats::SubjectError>(())
/// ```
pub fn subject(app: &str, path: &str) -> Result<String, SubjectError> {
    check_token(app, Part::App)?;
    let path = path.strip_prefix('/').unwrap_or(path);
    let mut subject = format!("{PREFIX}.{app}");
    for token in path.split('/') {
        check_token(token, Part::Path)?;
        subject.push('.');
        subject.push_str(token);
    }
    Ok(subject)
}

/// The subject every exporter of `subject` answers presence requests on.
pub(crate) fn members_subject(subject: &str) -> String {
    format!("{MEMBERS_PREFIX}.{subject}")
}

/// The JetStream stream that holds a durable edge's messages: the subject
/// with `.` mapped to `_` (stream names cannot hold `.`).
pub(crate) fn stream_name(subject: &str) -> String {
    subject.replace('.', "_").to_uppercase()
}

fn check_token(token: &str, part: Part) -> Result<(), SubjectError> {
    if token.is_empty() {
        return Err(SubjectError::Empty { part });
    }
    match token.chars().find(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>')) {
        Some(character) => Err(SubjectError::Reserved { part, token: token.to_owned(), character }),
        None => Ok(()),
    }
}

/// Which part of a subject a [`SubjectError`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The application name.
    App,
    /// A part of the cell's path.
    Path,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::App => "application name",
            Part::Path => "path part",
        })
    }
}

/// Why an application name or a path cannot be a NATS subject.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectError {
    /// The application name, the path or a part of it between two `/` is empty.
    Empty {
        /// Which one.
        part: Part,
    },
    /// A token holds a character NATS reserves: whitespace, a control
    /// character, `.`, `*` or `>`.
    Reserved {
        /// Which part of the subject.
        part: Part,
        /// The token.
        token: String,
        /// The first reserved character in it.
        character: char,
    },
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectError::Empty { part } => write!(f, "empty {part} in a subject"),
            SubjectError::Reserved { part, token, character } => {
                write!(f, "{part} {token:?} holds {character:?}, which NATS reserves in subjects")
            }
        }
    }
}

impl std::error::Error for SubjectError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_becomes_dot_separated_tokens_after_the_app() {
        assert_eq!(subject("shop", "/payments/fraud").unwrap(), "cellrt.shop.payments.fraud");
        assert_eq!(subject("shop", "ledger").unwrap(), "cellrt.shop.ledger");
    }

    #[test]
    fn reserved_characters_and_empty_parts_are_refused_with_their_place() {
        assert_eq!(subject("", "a"), Err(SubjectError::Empty { part: Part::App }));
        assert_eq!(subject("shop", "a//b"), Err(SubjectError::Empty { part: Part::Path }));
        assert_eq!(subject("shop", "/"), Err(SubjectError::Empty { part: Part::Path }));
        for (path, character) in [("a.b", '.'), ("a*", '*'), ("x/>", '>'), ("a b", ' ')] {
            assert!(
                matches!(subject("shop", path), Err(SubjectError::Reserved { part: Part::Path, character: c, .. }) if c == character),
                "{path}"
            );
        }
        assert!(matches!(subject("my app", "a"), Err(SubjectError::Reserved { part: Part::App, .. })));
    }

    #[test]
    fn stream_names_hold_no_dots() {
        assert_eq!(stream_name("cellrt.shop.ledger"), "CELLRT_SHOP_LEDGER");
    }
}
