//! Where a fault applies: [`Target`], a conjunction of a path glob, a cell
//! type and a message kind.
//!
//! # Path globs
//!
//! A glob is a cell path (`/payments/fraud`) in which `*` stands for any run
//! of characters within one segment (no `/`), and `**` for any run of
//! characters across segments. `/payments/fraud*` matches `/payments/fraud`
//! and `/payments/fraud-eu`, not `/payments/fraud/scorer`; `/payments/**`
//! matches everything under `/payments`; `/**` matches every cell.
//!
//! # Edges
//!
//! An edge target (`/gateway -> /payments/fraud*`) covers the messages a
//! cell matching the first glob sends to a cell matching the second. The
//! sender is known where a message is sent, not where it is handled, so a
//! fault on an edge acts at the send seam (see `chaos::fault`).
//!
//! So that a glob reads back from a spec string, it may not contain
//! whitespace, control characters, `:`, `;`, `(`, `)` or `>`: a cell whose
//! name holds one of them can be targeted through a wildcard only.

use std::fmt;

use super::error::TargetError;
use crate::path::CellPath;

/// The characters a glob may not contain, besides whitespace and control
/// characters: the spec grammar's delimiters.
const RESERVED: &[char] = &[':', ';', '(', ')', '>'];

/// A pattern over cell paths; see the module docs of `chaos::target`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Glob(String);

impl Glob {
    /// Checks and keeps `pattern`.
    pub(crate) fn new(pattern: &str) -> Result<Glob, TargetError> {
        if !pattern.starts_with('/') {
            return Err(TargetError::NotAPath { pattern: pattern.to_owned() });
        }
        if let Some(found) =
            pattern.chars().find(|c| c.is_whitespace() || c.is_control() || RESERVED.contains(c))
        {
            return Err(TargetError::InvalidChar { pattern: pattern.to_owned(), found });
        }
        if pattern.len() > 1 && pattern.ends_with('/') || pattern.contains("//") {
            return Err(TargetError::EmptySegment { pattern: pattern.to_owned() });
        }
        Ok(Glob(pattern.to_owned()))
    }

    /// The glob matching every cell.
    pub(crate) fn every() -> Glob {
        Glob("/**".to_owned())
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `path` matches.
    pub(crate) fn matches(&self, path: &CellPath) -> bool {
        glob_match(self.0.as_bytes(), path.as_str().as_bytes())
    }
}

/// Whether `pattern` matches all of `text`: `**` matches any bytes, `/`
/// included; `*` any bytes but `/`; any other byte itself. A `**` is read
/// before a `*` (`***` is `**` then `*`).
///
/// Decided in one pass over the pattern, keeping the set of text prefixes
/// the pattern read so far can match: `O(pattern × text)` time, whatever
/// the stars. (Trying each way to split the text among the stars, as a
/// backtracking matcher does, takes exponential time on a pattern of many
/// stars that does not match, and a fault's glob is matched on every send.)
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // `reach[t]`: the pattern read so far matches `text[..t]`.
    let mut reach = vec![false; text.len() + 1];
    reach[0] = true;
    let mut rest = pattern;
    while !rest.is_empty() {
        match rest {
            [b'*', b'*', tail @ ..] => {
                // Any number of any bytes: every prefix after a reached one.
                let mut reached = false;
                for r in &mut reach {
                    reached |= *r;
                    *r = reached;
                }
                rest = tail;
            }
            [b'*', tail @ ..] => {
                // Any number of bytes other than `/`, from a reached prefix.
                let mut reached = false;
                for (t, r) in reach.iter_mut().enumerate() {
                    reached |= *r;
                    *r = reached;
                    if text.get(t) == Some(&b'/') {
                        reached = false;
                    }
                }
                rest = tail;
            }
            [byte, tail @ ..] => {
                for t in (0..reach.len()).rev() {
                    reach[t] = t > 0 && reach[t - 1] && text[t - 1] == *byte;
                }
                rest = tail;
            }
            [] => {}
        }
    }
    reach[text.len()]
}

/// Checks a cell type or message kind name as a target may hold it.
fn check_name(name: &str) -> Result<(), TargetError> {
    if name.is_empty() || name.trim() != name {
        return Err(TargetError::BadName { name: name.to_owned() });
    }
    if let Some(found) = name.chars().find(|c| c.is_control() || matches!(c, '(' | ')' | ';')) {
        return Err(TargetError::InvalidChar { pattern: name.to_owned(), found });
    }
    Ok(())
}

/// Which messages a fault applies to: those handled by (or sent to) a cell
/// whose path matches a glob, and, when given, whose Rust type and the
/// message's kind ([`Cell::message_kind`](crate::Cell::message_kind)) are
/// the ones named. Every part must match.
///
/// # Examples
///
/// ```
/// use cellrt::Target;
///
/// let fraud = Target::cells("/payments/fraud*")?;
/// let reserve = Target::cells("/inventory")?.message_kind("Reserve")?;
/// let scorers = Target::cell_type("app::Scorer")?;
/// assert_eq!(reserve.to_string(), "/inventory kind(Reserve)");
/// assert_eq!(scorers.to_string(), "type(app::Scorer)");
/// # let _ = fraud;
/// # Ok::<(), cellrt::TargetError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    from: Option<Glob>,
    cells: Glob,
    cell_type: Option<String>,
    message_kind: Option<String>,
}

impl Target {
    /// The cells whose path matches `glob` (see the module docs of
    /// `chaos::target` for the syntax).
    ///
    /// # Errors
    ///
    /// [`TargetError`] when `glob` does not start with `/`, has an empty
    /// segment, or holds a reserved character.
    pub fn cells(glob: &str) -> Result<Target, TargetError> {
        Ok(Target { from: None, cells: Glob::new(glob)?, cell_type: None, message_kind: None })
    }

    /// The messages that cells matching `from` send to cells matching `to`
    /// (both path globs): an edge of the flow map.
    ///
    /// # Errors
    ///
    /// As [`cells`](Target::cells), for either glob.
    pub fn edge(from: &str, to: &str) -> Result<Target, TargetError> {
        Ok(Target { from: Some(Glob::new(from)?), ..Target::cells(to)? })
    }

    /// Every cell whose Rust type is `name`, as `std::any::type_name` gives it.
    ///
    /// # Errors
    ///
    /// [`TargetError::BadName`] for an empty name or one with surrounding
    /// whitespace; `InvalidChar` for `(`, `)`, `;` or a control character.
    pub fn cell_type(name: &str) -> Result<Target, TargetError> {
        Target::every().and_cell_type(name)
    }

    /// Every message whose kind is `name`, in any cell.
    ///
    /// # Errors
    ///
    /// As [`cell_type`](Target::cell_type).
    pub fn message_kind_everywhere(name: &str) -> Result<Target, TargetError> {
        Target::every().message_kind(name)
    }

    /// Every message of every cell.
    pub fn every() -> Target {
        Target { from: None, cells: Glob::every(), cell_type: None, message_kind: None }
    }

    /// This target, narrowed to cells of the Rust type `name`.
    ///
    /// # Errors
    ///
    /// As [`cell_type`](Target::cell_type).
    pub fn and_cell_type(mut self, name: &str) -> Result<Target, TargetError> {
        check_name(name)?;
        self.cell_type = Some(name.to_owned());
        Ok(self)
    }

    /// This target, narrowed to messages of kind `name`.
    ///
    /// # Errors
    ///
    /// As [`cell_type`](Target::cell_type).
    pub fn message_kind(mut self, name: &str) -> Result<Target, TargetError> {
        check_name(name)?;
        self.message_kind = Some(name.to_owned());
        Ok(self)
    }

    /// The path glob.
    pub fn glob(&self) -> &str {
        self.cells.as_str()
    }

    /// The sender glob of an edge target.
    pub fn sender_glob(&self) -> Option<&str> {
        self.from.as_ref().map(Glob::as_str)
    }

    /// Whether it is an edge target.
    pub(crate) fn is_edge(&self) -> bool {
        self.from.is_some()
    }

    /// The cell type named, if any.
    pub fn cell_type_name(&self) -> Option<&str> {
        self.cell_type.as_deref()
    }

    /// The message kind named, if any.
    pub fn message_kind_name(&self) -> Option<&str> {
        self.message_kind.as_deref()
    }

    /// Whether the target covers the cell at `path` of type `cell_type`,
    /// whatever the message.
    pub(crate) fn covers_cell(&self, path: &CellPath, cell_type: &str) -> bool {
        self.cells.matches(path) && self.cell_type.as_deref().is_none_or(|t| t == cell_type)
    }

    /// Whether the target covers a message of `kind` at that cell, sent by
    /// the cell at `sender` (`None` outside any cell).
    pub(crate) fn matches(
        &self,
        path: &CellPath,
        cell_type: &str,
        kind: &str,
        sender: Option<&CellPath>,
    ) -> bool {
        self.covers_cell(path, cell_type)
            && self.message_kind.as_deref().is_none_or(|k| k == kind)
            && self.from.as_ref().is_none_or(|from| sender.is_some_and(|s| from.matches(s)))
    }
}

impl fmt::Display for Target {
    /// The target as the spec grammar writes it (see `docs/chaos.md`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::with_capacity(3);
        if let Some(from) = &self.from {
            parts.push(format!("{} -> {}", from.as_str(), self.cells.as_str()));
        } else if self.cells != Glob::every() || (self.cell_type.is_none() && self.message_kind.is_none()) {
            parts.push(self.cells.as_str().to_owned());
        }
        if let Some(name) = &self.cell_type {
            parts.push(format!("type({name})"));
        }
        if let Some(name) = &self.message_kind {
            parts.push(format!("kind({name})"));
        }
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> CellPath {
        s.parse().unwrap()
    }

    #[test]
    fn star_stays_within_a_segment() {
        let glob = Glob::new("/payments/fraud*").unwrap();
        assert!(glob.matches(&path("/payments/fraud")));
        assert!(glob.matches(&path("/payments/fraud-eu")));
        assert!(!glob.matches(&path("/payments/fraud/scorer")));
        assert!(!glob.matches(&path("/payments/fra")));
    }

    #[test]
    fn double_star_crosses_segments() {
        let glob = Glob::new("/payments/**").unwrap();
        assert!(glob.matches(&path("/payments/fraud/scorer")));
        assert!(!glob.matches(&path("/inventory")));
        assert!(Glob::every().matches(&path("/a/b/c")));
    }

    #[test]
    fn globs_refuse_what_a_spec_could_not_read_back() {
        assert_eq!(Glob::new("inventory"), Err(TargetError::NotAPath { pattern: "inventory".into() }));
        assert_eq!(Glob::new("/a;b"), Err(TargetError::InvalidChar { pattern: "/a;b".into(), found: ';' }));
        assert_eq!(Glob::new("/a//b"), Err(TargetError::EmptySegment { pattern: "/a//b".into() }));
        assert_eq!(Glob::new("/a/"), Err(TargetError::EmptySegment { pattern: "/a/".into() }));
    }

    #[test]
    fn every_part_of_a_target_must_match() {
        let target = Target::cells("/inventory").unwrap().and_cell_type("app::Stock").unwrap();
        let target = target.message_kind("Reserve").unwrap();
        assert!(target.matches(&path("/inventory"), "app::Stock", "Reserve", None));
        assert!(!target.matches(&path("/inventory"), "app::Stock", "Release", None));
        assert!(!target.matches(&path("/inventory"), "app::Other", "Reserve", None));
        assert!(!target.matches(&path("/checkout"), "app::Stock", "Reserve", None));
    }

    #[test]
    fn an_edge_matches_only_messages_from_its_senders() {
        let edge = Target::edge("/gateway", "/payments/fraud*").unwrap();
        let fraud = path("/payments/fraud");
        assert!(edge.matches(&fraud, "T", "M", Some(&path("/gateway"))));
        assert!(!edge.matches(&fraud, "T", "M", Some(&path("/other"))));
        assert!(!edge.matches(&fraud, "T", "M", None));
        assert_eq!(edge.to_string(), "/gateway -> /payments/fraud*");
    }

    /// The reading of a glob by its definition, trying every split: the
    /// reference the matcher is checked against, on short inputs.
    fn by_definition(pattern: &[u8], text: &[u8]) -> bool {
        match pattern {
            [] => text.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=text.len()).any(|skip| by_definition(rest, &text[skip..])),
            [b'*', rest @ ..] => {
                let segment = text.iter().position(|&b| b == b'/').unwrap_or(text.len());
                (0..=segment).any(|skip| by_definition(rest, &text[skip..]))
            }
            [first, rest @ ..] => text.first() == Some(first) && by_definition(rest, &text[1..]),
        }
    }

    proptest::proptest! {
        #[test]
        fn the_matcher_agrees_with_the_definition(pattern in "[ab/*]{0,10}", text in "[ab/]{0,10}") {
            proptest::prop_assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                by_definition(pattern.as_bytes(), text.as_bytes())
            );
        }
    }

    #[test]
    fn many_double_stars_against_a_long_path_that_does_not_match_are_decided() {
        // 24 `**` against a 200-byte path: trying every way to split the
        // path among them (about 10^29) never returned, on every send
        // while the fault was installed.
        let glob = Glob::new(&format!("/{}b", "**a".repeat(24))).unwrap();
        let long = path(&format!("/{}", "a".repeat(199)));
        assert!(!glob.matches(&long));
        assert!(glob.matches(&path(&format!("/{}b", "a".repeat(30)))));
        assert!(!Glob::new(&format!("/{}/x", "*a".repeat(40))).unwrap().matches(&long));
    }

    #[test]
    fn names_refuse_surrounding_space_and_parentheses() {
        assert_eq!(Target::cell_type(" a"), Err(TargetError::BadName { name: " a".into() }));
        assert_eq!(
            Target::message_kind_everywhere("(u8, u8)"),
            Err(TargetError::InvalidChar { pattern: "(u8, u8)".into(), found: '(' })
        );
    }
}
