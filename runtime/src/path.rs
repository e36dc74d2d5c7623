//! Cell paths: where a cell stands in the supervision tree.

use std::fmt;
use std::sync::Arc;

/// The top-level segment, after `#`, under which breakers are journaled.
const BREAKERS: &str = "breaker";

/// The longest cell name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The path of a cell in the tree, such as `/orders/parser`.
///
/// Top-level cells are children of the root `/`; a child's path is its
/// parent's path plus `/name`. Paths are unique among live cells, cheap to
/// clone, and stable across restarts: storage, failure signatures and the
/// journal all key on them.
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
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CellPath(Arc<str>);

/// Why a cell name was refused.
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
    /// The name contains `/` or a control character.
    InvalidChar {
        /// The first offending character.
        found: char,
    },
    /// The name starts with `#`, which is kept for unnamed cells (`#<id>`).
    Reserved,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("cell name is empty"),
            NameError::TooLong { len } => {
                write!(f, "cell name is {len} bytes long, the limit is {MAX_NAME_LEN}")
            }
            NameError::InvalidChar { found } => {
                write!(f, "cell name contains {found:?}, which is not allowed")
            }
            NameError::Reserved => f.write_str("cell names starting with '#' are kept for unnamed cells"),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks a cell name: 1 to 255 bytes, no `/`, no control characters, not
/// starting with `#`.
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
    if let Some(found) = name.chars().find(|c| *c == '/' || c.is_control()) {
        return Err(NameError::InvalidChar { found });
    }
    Ok(())
}

impl CellPath {
    /// The root of the tree, `/`. No cell has this path.
    pub fn root() -> Self {
        CellPath(Arc::from("/"))
    }

    /// The path of a child called `name`.
    pub fn child(&self, name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        Ok(self.joined(format_args!("{name}")))
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
        Ok(CellPath::root().joined(format_args!("#{BREAKERS}")).joined(format_args!("{name}")))
    }

    /// The path of an unnamed child: `#<id>`.
    pub(crate) fn numbered_child(&self, id: u64) -> Self {
        self.joined(format_args!("#{id}"))
    }

    fn joined(&self, segment: std::fmt::Arguments<'_>) -> Self {
        use std::fmt::Write;
        let mut path = String::with_capacity(self.0.len() + 24);
        path.push_str(&self.0);
        if !path.ends_with('/') {
            path.push('/');
        }
        let _ = path.write_fmt(segment);
        CellPath(path.into())
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the cell's own name (empty for the root).
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The parent's path; `None` for the root.
    pub fn parent(&self) -> Option<CellPath> {
        if self.is_root() {
            return None;
        }
        match self.0.rfind('/') {
            Some(0) => Some(CellPath::root()),
            Some(i) => Some(CellPath(self.0[..i].into())),
            None => None,
        }
    }

    /// Whether this is the root `/`.
    pub fn is_root(&self) -> bool {
        &*self.0 == "/"
    }

    /// Number of segments: 0 for the root, 1 for a top-level cell.
    pub fn depth(&self) -> usize {
        if self.is_root() {
            0
        } else {
            self.0.matches('/').count()
        }
    }
}

impl std::str::FromStr for CellPath {
    type Err = NameError;

    /// Parses `/a/b` (each name validated as [`CellPath::child`] does); `/`
    /// is the root. Also parses the paths of unnamed cells (`/#3`) and of
    /// breakers ([`CellPath::breaker`]).
    fn from_str(s: &str) -> Result<Self, NameError> {
        let mut path = CellPath::root();
        let Some(rest) = s.strip_prefix('/') else {
            return Err(NameError::InvalidChar { found: s.chars().next().unwrap_or('/') });
        };
        if rest.is_empty() {
            return Ok(path);
        }
        for name in rest.split('/') {
            let reserved = name.strip_prefix('#');
            path = if let Some(id) = reserved.and_then(|id| id.parse::<u64>().ok()) {
                path.numbered_child(id)
            } else if path.is_root() && reserved == Some(BREAKERS) {
                // `/#breaker/<name>`, see `CellPath::breaker`.
                path.joined(format_args!("{name}"))
            } else {
                path.child(name)?
            };
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

impl fmt::Display for CellPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CellPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
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
    fn names_with_slash_control_or_nothing_are_refused() {
        let root = CellPath::root();
        assert_eq!(root.child(""), Err(NameError::Empty));
        assert_eq!(root.child("a/b"), Err(NameError::InvalidChar { found: '/' }));
        assert_eq!(root.child("a\nb"), Err(NameError::InvalidChar { found: '\n' }));
        assert_eq!(root.child("#7"), Err(NameError::Reserved));
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert_eq!(root.child(&long), Err(NameError::TooLong { len: 256 }));
    }

    #[test]
    fn awkward_but_printable_names_are_kept_verbatim() {
        let path = CellPath::root().child("ordres élevés #1 (v2)").unwrap();
        assert_eq!(path.name(), "ordres élevés #1 (v2)");
    }

    #[test]
    fn a_path_parses_back_from_its_text() {
        let path = CellPath::root().child("a").unwrap().numbered_child(7).child("b c").unwrap();
        assert_eq!(path.as_str().parse::<CellPath>(), Ok(path));
        assert_eq!("/".parse::<CellPath>(), Ok(CellPath::root()));
        assert_eq!("a/b".parse::<CellPath>(), Err(NameError::InvalidChar { found: 'a' }));
        assert_eq!("/a//b".parse::<CellPath>(), Err(NameError::Empty));
        assert_eq!("/#x".parse::<CellPath>(), Err(NameError::Reserved));
    }
}
