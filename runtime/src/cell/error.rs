//! [`CellError`], what a hook returns when it fails.

use std::error::Error;
use std::fmt;

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
