//! [`CellError`], what a hook returns when it fails, and [`SpawnError`],
//! why a cell could not be spawned.

use std::error::Error;
use std::fmt;

use crate::path::{CellPath, NameError};

/// The error a cell's hook returns to report a failure.
///
/// Build one from any error type with `?` or [`From`], or from text with
/// [`CellError::msg`]. The runtime records the text and, for typed errors,
/// the error's type name (failure signatures group by it).
///
/// Like `anyhow::Error`, `CellError` does not itself implement
/// [`std::error::Error`], which is what lets every error type convert into it;
/// [`CellError::source_error`] gives the wrapped error.
///
/// # Examples
///
/// ```
/// use cellrt::CellError;
///
/// fn parse(text: &str) -> Result<u32, CellError> {
///     Ok(text.parse::<u32>()?)
/// }
///
/// let err = parse("x").unwrap_err();
/// assert_eq!(err.to_string(), "invalid digit found in string");
/// assert_eq!(err.type_name(), Some("core::num::error::ParseIntError"));
/// assert_eq!(CellError::msg("out of stock").to_string(), "out of stock");
/// ```
pub struct CellError {
    text: String,
    type_name: Option<&'static str>,
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl CellError {
    /// An error made of text alone.
    pub fn msg(text: impl Into<String>) -> Self {
        CellError { text: text.into(), type_name: None, source: None }
    }

    /// The Rust type of the wrapped error, `None` for [`CellError::msg`].
    pub fn type_name(&self) -> Option<&'static str> {
        self.type_name
    }

    /// The wrapped error, if this was built from one.
    pub fn source_error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// The text with the chain of sources, joined by `: `.
    pub(crate) fn full_text(&self) -> String {
        let mut text = self.text.clone();
        let mut next = self.source.as_deref().and_then(|e| e.source());
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        text
    }
}

impl<E: Error + Send + Sync + 'static> From<E> for CellError {
    fn from(err: E) -> Self {
        CellError {
            text: err.to_string(),
            type_name: Some(std::any::type_name::<E>()),
            source: Some(Box::new(err)),
        }
    }
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            f.write_str(&self.full_text())
        } else {
            f.write_str(&self.text)
        }
    }
}

impl fmt::Debug for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CellError").field("text", &self.text).field("type_name", &self.type_name).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);

    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("ledger write failed")
        }
    }

    impl Error for Outer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn alternate_display_follows_the_source_chain() {
        let err = CellError::from(Outer(std::io::Error::other("disk full")));
        assert_eq!(err.to_string(), "ledger write failed");
        assert_eq!(format!("{err:#}"), "ledger write failed: disk full");
        assert!(err.type_name().unwrap().ends_with("Outer"));
        assert!(err.source_error().is_some());
    }

    #[test]
    fn text_errors_have_no_type_or_source() {
        let err = CellError::msg("nope");
        assert_eq!(err.type_name(), None);
        assert!(err.source_error().is_none());
    }
}

/// Why a cell could not be spawned.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnError {
    /// The runtime is shutting down or has shut down.
    ShutDown,
    /// A mailbox capacity of zero was requested.
    ZeroCapacity,
    /// No dispatcher has this name.
    UnknownDispatcher {
        /// The requested name.
        name: String,
    },
    /// No group has this name.
    UnknownGroup {
        /// The requested name.
        name: String,
    },
    /// The name is not a valid cell name.
    InvalidName(NameError),
    /// A live cell already has this path.
    NameTaken {
        /// The path in use.
        path: CellPath,
    },
    /// The cell behind the address is a replacement still waiting for its
    /// predecessor's messages; replace it once that handover is done.
    ReplaceInProgress {
        /// The address's path.
        path: CellPath,
    },
    /// The cell is restarted by a supervisor from its child spec; it cannot
    /// be replaced behind its address.
    Supervised {
        /// The address's path.
        path: CellPath,
    },
    /// The child was spawned from a value, not a factory: it cannot be
    /// started again.
    NotRestartable {
        /// The supervisor's path.
        path: CellPath,
    },
    /// A durable cell needs a name: an unnamed cell's path, which names its
    /// stored state, changes between runs.
    Unnamed,
    /// The cell needs storage the runtime cannot give it.
    #[cfg(feature = "storage")]
    Storage(crate::store::StoreError),
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::ShutDown => f.write_str("runtime is shut down"),
            SpawnError::ZeroCapacity => f.write_str("mailbox capacity must be at least 1"),
            SpawnError::UnknownDispatcher { name } => write!(f, "no dispatcher named {name:?}"),
            SpawnError::UnknownGroup { name } => write!(f, "no group named {name:?}"),
            SpawnError::InvalidName(err) => write!(f, "invalid cell name: {err}"),
            SpawnError::NameTaken { path } => write!(f, "a cell at {path} is already running"),
            SpawnError::ReplaceInProgress { path } => {
                write!(f, "the cell at {path} is still taking over from the cell it replaced")
            }
            SpawnError::Supervised { path } => {
                write!(f, "the cell at {path} is supervised from a child spec and cannot be replaced")
            }
            SpawnError::NotRestartable { path } => {
                write!(f, "a child of {path} spawned from a value cannot be started again")
            }
            SpawnError::Unnamed => f.write_str("a durable cell needs a name"),
            #[cfg(feature = "storage")]
            SpawnError::Storage(err) => write!(f, "storage: {err}"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // The name's error is in the text already.
            #[cfg(feature = "storage")]
            SpawnError::Storage(err) => Some(err),
            _ => None,
        }
    }
}

impl From<NameError> for SpawnError {
    fn from(err: NameError) -> Self {
        SpawnError::InvalidName(err)
    }
}
