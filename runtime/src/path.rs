//! Cell paths: where a cell stands in the supervision tree.

use std::fmt;
use std::sync::Arc;

/// The top-level segment, after `#`, under which breakers are journaled.
const BREAKERS: &str = "breaker";

/// The root's path.
const ROOT: &str = "/";

/// `n` in decimal ASCII digits, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// How many decimal digits `n` has (1 for 0).
fn decimal_len(n: u64) -> usize {
    n.checked_ilog10().map_or(1, |log| log as usize + 1)
}

/// The longest cell name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The path of a cell in the tree, such as `/orders/parser`.
///
/// Top-level cells are children of the root `/`; a child's path is its
/// parent's path plus `/name`. Paths are unique among live cells, cheap to
/// clone, and stable across restarts: storage, failure signatures and the
/// journal all key on them.
///
/// A path of up to 22 bytes (any top-level unnamed cell, `/#<id>`, and short
/// names such as `/orders`) is held in the value itself: making or cloning
/// it allocates nothing. A longer one is shared behind a reference count.
///
/// # Examples
///
/// ```
/// use cellrt::CellPath;
///
/// let parser = CellPath::root().child("orders")?.child("parser")?;
/// assert_eq!(parser.as_str(), "/orders/parser");
/// assert_eq!(parser.name(), "parser");
/// assert_eq!(parser.parent().unwrap().as_str(), "/orders");
/// # Ok::<(), cellrt::NameError>(())
/// ```
#[derive(Clone)]
pub struct CellPath(Repr);

/// The longest path held inline, in bytes: what fits beside a length and
/// the variant's tag in the 24 bytes a shared path takes anyway. `/#` and
/// the 20 digits of `u64::MAX` fit.
const INLINE_LEN: usize = 22;

/// How a path's text is held.
#[derive(Clone)]
enum Repr {
    /// At most [`INLINE_LEN`] bytes of UTF-8, the first `len` of `bytes`.
    Inline { len: u8, bytes: [u8; INLINE_LEN] },
    /// A longer path, shared by its clones.
    Shared(Arc<str>),
}

/// Why a name was refused.
///
/// One grammar holds for every name the runtime takes: cell names, and
/// the names of dispatchers, groups and circuit breakers. A name is 1 to
/// [`MAX_NAME_LEN`] bytes of UTF-8 without `/` (it separates path
/// segments), whitespace or control characters, and does not start with
/// `#` (kept for unnamed cells, `#<id>`). Letters of any script, digits and
/// punctuation are fine: `parser`, `ordres-élevés`, `io.v2`, `shard_7`.
/// Whitespace is refused because a name is a path segment, and paths are
/// written in chaos target patterns, journal queries and log lines, where
/// whitespace separates words.
///
/// `Display` names the rule that was broken and, for a refused character,
/// the character and its byte offset in the name.
///
/// # Examples
///
/// ```
/// use cellrt::{CellPath, NameError};
///
/// let err = CellPath::root().child("with space").unwrap_err();
/// assert_eq!(err, NameError::InvalidChar { found: ' ', position: 4 });
/// assert_eq!(
///     err.to_string(),
///     "name has ' ' at byte 4: a name has no '/', whitespace or control characters"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The name contains `/`, whitespace or a control character.
    InvalidChar {
        /// The first offending character.
        found: char,
        /// Its byte offset in the name; in the text, when a path was
        /// parsed (`"/a/b c".parse::<CellPath>()` puts the space at byte 4).
        position: usize,
    },
    /// The name starts with `#`, which is kept for unnamed cells (`#<id>`).
    Reserved,
    /// A path was parsed that does not start with `/`.
    NotAbsolute,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("name is empty: a name has 1 to 255 bytes"),
            NameError::TooLong { len } => {
                write!(f, "name is {len} bytes long: a name has at most {MAX_NAME_LEN} bytes")
            }
            NameError::InvalidChar { found, position } => {
                write!(
                    f,
                    "name has {found:?} at byte {position}: a name has no '/', whitespace or control characters"
                )
            }
            NameError::Reserved => {
                f.write_str("name starts with '#': names starting with '#' are kept for unnamed cells")
            }
            NameError::NotAbsolute => f.write_str("path does not start with '/'"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a name against the grammar of [`NameError`].
pub(crate) fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.starts_with('#') {
        return Err(NameError::Reserved);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong { len: name.len() });
    }
    if let Some((position, found)) =
        name.char_indices().find(|(_, c)| *c == '/' || c.is_whitespace() || c.is_control())
    {
        return Err(NameError::InvalidChar { found, position });
    }
    Ok(())
}

impl CellPath {
    /// The root of the tree, `/`. No cell has this path.
    pub fn root() -> Self {
        CellPath::from_text(ROOT)
    }

    /// The path of a child called `name`.
    pub fn child(&self, name: &str) -> Result<Self, NameError> {
        CellPath::child_of(Some(self), name)
    }

    /// The path of a child called `name` of the cell at `parent`, or of a
    /// top-level cell (`None`), without building the root's path.
    pub(crate) fn child_of(parent: Option<&CellPath>, name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        Ok(CellPath::joined(parent.map_or(ROOT, CellPath::as_str), "", name.as_bytes()))
    }

    /// The journal path of the circuit breaker called `name`, made by
    /// [`Runtime::breaker`]: `/#breaker/<name>`.
    /// No cell can take it: cell names starting with `#` are refused, and
    /// unnamed cells are `#` followed by digits.
    ///
    #[cfg_attr(feature = "observe", doc = "[`Runtime::breaker`]: crate::Runtime::breaker")]
    #[cfg_attr(not(feature = "observe"), doc = "[`Runtime::breaker`]: crate#features")]
    ///
    /// ```
    /// use cellrt::CellPath;
    ///
    /// let path = CellPath::breaker("inventory")?;
    /// assert_eq!(path.as_str(), "/#breaker/inventory");
    /// assert_eq!(path, "/#breaker/inventory".parse()?);
    /// # Ok::<(), cellrt::NameError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`child`](CellPath::child) when `name` is not a valid cell name.
    pub fn breaker(name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        let breakers = CellPath::joined(ROOT, "#", BREAKERS.as_bytes());
        Ok(CellPath::joined(breakers.as_str(), "", name.as_bytes()))
    }

    /// The path of an unnamed child, `#<id>`, of the cell at `parent`, or
    /// of a top-level cell (`None`).
    pub(crate) fn numbered_child_of(parent: Option<&CellPath>, id: u64) -> Self {
        match parent {
            // `/#` and at most 20 digits: always inline.
            None => {
                let mut bytes = [0u8; INLINE_LEN];
                bytes[..2].copy_from_slice(b"/#");
                let len = 2 + decimal_len(id);
                let mut n = id;
                for digit in bytes[2..len].iter_mut().rev() {
                    *digit = b'0' + (n % 10) as u8;
                    n /= 10;
                }
                CellPath(Repr::Inline { len: len as u8, bytes })
            }
            Some(parent) => {
                let mut digits = [0u8; 20];
                CellPath::joined(parent.as_str(), "#", decimal(id, &mut digits))
            }
        }
    }

    /// A path whose text is `text`, taken as it is.
    fn from_text(text: &str) -> Self {
        if text.len() <= INLINE_LEN {
            let mut bytes = [0u8; INLINE_LEN];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            CellPath(Repr::Inline { len: text.len() as u8, bytes })
        } else {
            CellPath(Repr::Shared(Arc::from(text)))
        }
    }

    /// `parent`, a `/` unless it ends with one, then `prefix` and `name`
    /// (the bytes of a `str`, or ASCII digits): no allocation for a path
    /// held inline, one (the path's own) for a longer one up to 64 bytes.
    fn joined(parent: &str, prefix: &str, name: &[u8]) -> Self {
        const INLINE: usize = 64;
        let separator = if parent.ends_with('/') { "" } else { "/" };
        let parts = [parent.as_bytes(), separator.as_bytes(), prefix.as_bytes(), name];
        let len: usize = parts.iter().map(|part| part.len()).sum();
        if len <= INLINE {
            let mut buf = [0u8; INLINE];
            let mut at = 0;
            for part in parts {
                buf[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            // Whole `str`s and ASCII put end to end are valid UTF-8.
            if let Ok(path) = std::str::from_utf8(&buf[..len]) {
                return CellPath::from_text(path);
            }
        }
        CellPath::from_text(&String::from_utf8_lossy(&parts.concat()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => match std::str::from_utf8(&bytes[..usize::from(*len)]) {
                Ok(text) => text,
                // Inline bytes are only ever copied from a `str` or written
                // as `/#` and ASCII digits, whole.
                Err(_) => unreachable!("an inline path holds UTF-8"),
            },
            Repr::Shared(text) => text,
        }
    }

    /// The path's text as bytes, read without checking them again: what
    /// comparing and hashing need.
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Shared(text) => text.as_bytes(),
        }
    }

    /// The last segment: the cell's own name (empty for the root).
    pub fn name(&self) -> &str {
        self.as_str().rsplit('/').next().unwrap_or("")
    }

    /// The parent's path; `None` for the root.
    pub fn parent(&self) -> Option<CellPath> {
        if self.is_root() {
            return None;
        }
        let text = self.as_str();
        match text.rfind('/') {
            Some(0) => Some(CellPath::root()),
            Some(i) => Some(CellPath::from_text(&text[..i])),
            None => None,
        }
    }

    /// Whether this is the root `/`.
    pub fn is_root(&self) -> bool {
        self.as_bytes() == ROOT.as_bytes()
    }

    /// Number of segments: 0 for the root, 1 for a top-level cell.
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.as_bytes().iter().filter(|&&byte| byte == b'/').count()
        }
    }
}

impl std::str::FromStr for CellPath {
    type Err = NameError;

    /// Parses `/a/b` (each name validated as [`CellPath::child`] does, a
    /// refused character's position counted from the start of `s`); `/`
    /// is the root. Also parses the paths of unnamed cells (`/#3`) and of
    /// breakers ([`CellPath::breaker`]).
    fn from_str(s: &str) -> Result<Self, NameError> {
        let mut path = CellPath::root();
        let Some(rest) = s.strip_prefix('/') else {
            return Err(NameError::NotAbsolute);
        };
        if rest.is_empty() {
            return Ok(path);
        }
        // The byte of `s` where the current name starts.
        let mut start = 1;
        for name in rest.split('/') {
            let reserved = name.strip_prefix('#');
            path = if let Some(id) = reserved.and_then(|id| id.parse::<u64>().ok()) {
                CellPath::numbered_child_of(Some(&path), id)
            } else if path.is_root() && reserved == Some(BREAKERS) {
                // `/#breaker/<name>`, see `CellPath::breaker`.
                CellPath::joined(path.as_str(), "", name.as_bytes())
            } else {
                path.child(name).map_err(|err| match err {
                    // Where in the text, not in the name.
                    NameError::InvalidChar { found, position } => {
                        NameError::InvalidChar { found, position: start + position }
                    }
                    other => other,
                })?
            };
            start += name.len() + 1;
        }
        Ok(path)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CellPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for CellPath {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// Equality, order and hash are those of the text, however it is held.

impl PartialEq for CellPath {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for CellPath {}

impl PartialOrd for CellPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CellPath {
    /// The order of the texts (UTF-8 orders as its bytes do).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl std::hash::Hash for CellPath {
    /// Hashes as the path's `str` does.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Display for CellPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for CellPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_and_nested_paths() {
        let a = CellPath::root().child("a").unwrap();
        let b = a.child("b").unwrap();
        assert_eq!(a.as_str(), "/a");
        assert_eq!(b.as_str(), "/a/b");
        assert_eq!(b.depth(), 2);
        assert_eq!(b.parent(), Some(a.clone()));
        assert_eq!(a.parent(), Some(CellPath::root()));
        assert_eq!(CellPath::root().parent(), None);
        assert_eq!(CellPath::root().depth(), 0);
    }

    #[test]
    fn names_with_slash_whitespace_control_or_nothing_are_refused() {
        let root = CellPath::root();
        assert_eq!(root.child(""), Err(NameError::Empty));
        assert_eq!(root.child("a/b"), Err(NameError::InvalidChar { found: '/', position: 1 }));
        assert_eq!(root.child("x\n"), Err(NameError::InvalidChar { found: '\n', position: 1 }));
        assert_eq!(root.child("with space"), Err(NameError::InvalidChar { found: ' ', position: 4 }));
        assert_eq!(root.child("é\u{a0}"), Err(NameError::InvalidChar { found: '\u{a0}', position: 2 }));
        assert_eq!(
            "/orders/with space".parse::<CellPath>(),
            Err(NameError::InvalidChar { found: ' ', position: 12 })
        );
        assert_eq!("/é/x\ty".parse::<CellPath>(), Err(NameError::InvalidChar { found: '\t', position: 5 }));
        assert_eq!(root.child("#7"), Err(NameError::Reserved));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(root.child(&long), Err(NameError::TooLong { len: 256 }));
        assert!(root.child(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }

    #[test]
    fn each_refusal_says_its_rule_and_where() {
        let root = CellPath::root();
        let text = |name: &str| root.child(name).unwrap_err().to_string();
        assert_eq!(text(""), "name is empty: a name has 1 to 255 bytes");
        assert_eq!(
            text("a/b"),
            "name has '/' at byte 1: a name has no '/', whitespace or control characters"
        );
        assert_eq!(
            text("x\n"),
            "name has '\\n' at byte 1: a name has no '/', whitespace or control characters"
        );
        assert_eq!(text("#1"), "name starts with '#': names starting with '#' are kept for unnamed cells");
        assert_eq!(text(&"y".repeat(300)), "name is 300 bytes long: a name has at most 255 bytes");
    }

    #[test]
    fn unnamed_cells_are_numbered_in_decimal() {
        let a = CellPath::root().child("a").unwrap();
        assert_eq!(CellPath::numbered_child_of(None, 0).as_str(), "/#0");
        assert_eq!(CellPath::numbered_child_of(None, 9).as_str(), "/#9");
        assert_eq!(CellPath::numbered_child_of(None, 10).as_str(), "/#10");
        assert_eq!(CellPath::numbered_child_of(None, 999_999).as_str(), "/#999999");
        assert_eq!(CellPath::numbered_child_of(None, 1_234_567).as_str(), "/#1234567");
        assert_eq!(CellPath::numbered_child_of(Some(&a), u64::MAX).as_str(), "/a/#18446744073709551615");
        assert_eq!(CellPath::child_of(None, "b"), CellPath::root().child("b"));
    }

    #[test]
    fn paths_up_to_22_bytes_are_held_inline() {
        let inline = |path: &CellPath| matches!(path.0, Repr::Inline { .. });
        let widest = CellPath::numbered_child_of(None, u64::MAX);
        assert_eq!(widest.as_str(), "/#18446744073709551615");
        assert!(inline(&widest));
        assert!(inline(&CellPath::root()));
        let twenty_two = CellPath::root().child(&"n".repeat(21)).unwrap();
        assert!(inline(&twenty_two));
        let twenty_three = CellPath::root().child(&"n".repeat(22)).unwrap();
        assert_eq!(twenty_three.as_str().len(), 23);
        assert!(!inline(&twenty_three));
        assert_eq!(twenty_three.parent(), Some(CellPath::root()));
        assert_eq!(twenty_three.child("x").unwrap().parent(), Some(twenty_three));
        assert_eq!(std::mem::size_of::<CellPath>(), 24);
    }

    #[test]
    fn paths_compare_and_hash_as_their_text() {
        use std::hash::{BuildHasher, RandomState};
        let texts = ["/", "/#10", "/#9", "/a", "/a/b", &format!("/{}", "é".repeat(20)), "/b"];
        let paths: Vec<CellPath> = texts.iter().map(|t| t.parse().unwrap()).collect();
        let hasher = RandomState::new();
        for (a, path_a) in texts.iter().zip(&paths) {
            assert_eq!(hasher.hash_one(path_a), hasher.hash_one(*a));
            for (b, path_b) in texts.iter().zip(&paths) {
                assert_eq!(path_a.cmp(path_b), a.cmp(b), "{a} against {b}");
                assert_eq!(path_a == path_b, a == b);
            }
        }
    }

    #[test]
    fn long_paths_are_joined_whole() {
        let long = "n".repeat(MAX_NAME_LEN);
        let path = CellPath::root().child(&long).unwrap().child(&long).unwrap();
        assert_eq!(path.as_str(), format!("/{long}/{long}"));
        assert_eq!(CellPath::breaker(&long).unwrap().as_str(), format!("/#breaker/{long}"));
    }

    #[test]
    fn awkward_but_printable_names_are_kept_verbatim() {
        let path = CellPath::root().child("ordres-élevés#1(v2)").unwrap();
        assert_eq!(path.name(), "ordres-élevés#1(v2)");
    }

    #[test]
    fn a_path_parses_back_from_its_text() {
        let a = CellPath::root().child("a").unwrap();
        let path = CellPath::numbered_child_of(Some(&a), 7).child("b.c").unwrap();
        assert_eq!(path.as_str().parse::<CellPath>(), Ok(path));
        assert_eq!("/".parse::<CellPath>(), Ok(CellPath::root()));
        assert_eq!("a/b".parse::<CellPath>(), Err(NameError::NotAbsolute));
        assert_eq!("/a//b".parse::<CellPath>(), Err(NameError::Empty));
        assert_eq!("/#x".parse::<CellPath>(), Err(NameError::Reserved));
    }
}
