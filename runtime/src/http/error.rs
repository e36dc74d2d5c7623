//! [`ServeError`]: why the live export did not start.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why [`Runtime::serve_http`](crate::Runtime::serve_http) started no server.
///
/// # Examples
///
/// ```
/// use std::io::ErrorKind;
/// use cellrt::ServeError;
///
/// let err = ServeError::Bind {
///     addr: "127.0.0.1:9464".parse()?,
///     kind: ErrorKind::AddrInUse,
///     reason: "Address already in use (os error 98)".into(),
/// };
/// assert_eq!(
///     err.to_string(),
///     "cannot listen on 127.0.0.1:9464: Address already in use (os error 98)"
/// );
/// assert!(err.is_addr_in_use());
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServeError {
    /// The address could not be bound: taken by another socket, not an
    /// address of this machine, a privileged port.
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The system's error kind ([`io::ErrorKind::AddrInUse`], …).
        kind: io::ErrorKind,
        /// The system's error text.
        reason: String,
    },
    /// The server's thread, or the tokio runtime on it, could not start.
    Start {
        /// The system's error text.
        reason: String,
    },
}

impl ServeError {
    /// The address is taken by another socket.
    pub fn is_addr_in_use(&self) -> bool {
        matches!(self, ServeError::Bind { kind: io::ErrorKind::AddrInUse, .. })
    }

    pub(super) fn bind(addr: SocketAddr, err: &io::Error) -> Self {
        ServeError::Bind { addr, kind: err.kind(), reason: err.to_string() }
    }

    pub(super) fn start(err: &io::Error) -> Self {
        ServeError::Start { reason: err.to_string() }
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Bind { addr, reason, .. } => write!(f, "cannot listen on {addr}: {reason}"),
            ServeError::Start { reason } => write!(f, "cannot start the HTTP server: {reason}"),
        }
    }
}

impl std::error::Error for ServeError {}
