//! The bridge's errors: [`BridgeError`] for a message that crossed (or
//! tried to cross) the link, [`SetupError`] for connecting, exporting and
//! importing. Each [`BridgeError`] says which [`Side`] failed.

use std::fmt;
use std::time::Duration;

use crate::codec::CodecError;
use crate::subject::SubjectError;

/// Where a message across the bridge was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// This process: encoding, the import's breaker.
    Local,
    /// The connection to the NATS server, or the server.
    Link,
    /// The exporting process: its cell refused or failed the message.
    Remote,
}

/// Why a message sent or asked across the bridge was not delivered or not
/// answered.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BridgeError {
    /// The connection to the NATS server is down (the client reconnects on
    /// its own); nothing was published.
    ConnectionLost,
    /// No process exports the subject: the server answered that nobody
    /// listens.
    NoResponders {
        /// The subject.
        subject: String,
    },
    /// No answer within the timeout: the exporter, the server or the link
    /// is slow or gone. Whether the remote cell got the message is unknown.
    TimedOut {
        /// How long the bridge waited.
        after: Duration,
    },
    /// The import's breaker is open after failures of the link; nothing was
    /// published.
    BreakerOpen {
        /// The breaker's name.
        breaker: String,
    },
    /// An ask was given to a durable edge, which carries messages without
    /// replies; nothing was published.
    AskOnDurableEdge,
    /// The value could not be encoded; nothing was published.
    Encode(CodecError),
    /// The answer could not be decoded.
    Decode(CodecError),
    /// The remote cell's mailbox stayed full for the exporter's send
    /// timeout (or past the ask's deadline): the message was not delivered.
    RemoteFull,
    /// The remote cell has stopped.
    RemoteClosed,
    /// The exporter could not decode the message (another codec or another
    /// version of the message type); it is a dead letter there.
    RemoteDecode {
        /// The exporter's description of the failure.
        text: String,
    },
    /// The remote cell took the ask but dropped its reply unanswered, or did
    /// not answer before the ask's deadline.
    RemoteUnanswered,
    /// The link refused the message: a payload over the server's limit, a
    /// JetStream publish the server did not acknowledge, an unexpected
    /// answer.
    Link {
        /// The client's or the server's description.
        text: String,
    },
}

impl BridgeError {
    /// Which side failed.
    pub fn side(&self) -> Side {
        match self {
            BridgeError::BreakerOpen { .. }
            | BridgeError::AskOnDurableEdge
            | BridgeError::Encode(_)
            | BridgeError::Decode(_) => Side::Local,
            BridgeError::ConnectionLost
            | BridgeError::NoResponders { .. }
            | BridgeError::TimedOut { .. }
            | BridgeError::Link { .. } => Side::Link,
            BridgeError::RemoteFull
            | BridgeError::RemoteClosed
            | BridgeError::RemoteDecode { .. }
            | BridgeError::RemoteUnanswered => Side::Remote,
        }
    }

    /// Whether the error says the link, not the remote cell, failed: the
    /// failures that count against the import's breaker.
    pub fn is_link_failure(&self) -> bool {
        self.side() == Side::Link
    }
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::ConnectionLost => f.write_str("connection to the NATS server lost"),
            BridgeError::NoResponders { subject } => write!(f, "no process exports {subject}"),
            BridgeError::TimedOut { after } => write!(f, "no answer across the bridge within {after:?}"),
            BridgeError::BreakerOpen { breaker } => write!(f, "breaker {breaker} is open"),
            BridgeError::AskOnDurableEdge => f.write_str("asks do not cross a durable edge"),
            BridgeError::Encode(e) | BridgeError::Decode(e) => e.fmt(f),
            BridgeError::RemoteFull => f.write_str("remote mailbox full"),
            BridgeError::RemoteClosed => f.write_str("remote cell closed"),
            BridgeError::RemoteDecode { text } => {
                write!(f, "the exporter could not decode the message: {text}")
            }
            BridgeError::RemoteUnanswered => f.write_str("remote cell left the ask unanswered"),
            BridgeError::Link { text } => write!(f, "NATS refused the message: {text}"),
        }
    }
}

impl std::error::Error for BridgeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BridgeError::Encode(e) | BridgeError::Decode(e) => Some(e),
            _ => None,
        }
    }
}

/// A message [`Remote::send`](crate::Remote::send) did not deliver: the
/// [`BridgeError`], and the message itself when it was refused before it
/// left this process (the connection was down, the breaker open). Once
/// encoded and published, the message is gone from this process, and only
/// the error comes back.
pub struct RemoteSendError<M> {
    pub(crate) error: BridgeError,
    pub(crate) message: Option<M>,
}

impl<M> RemoteSendError<M> {
    /// Why the message was not delivered.
    pub fn error(&self) -> &BridgeError {
        &self.error
    }

    /// Which side failed.
    pub fn side(&self) -> Side {
        self.error.side()
    }

    /// The message, if it never left this process.
    pub fn into_message(self) -> Option<M> {
        self.message
    }

    /// The error, without the message.
    pub fn into_error(self) -> BridgeError {
        self.error
    }
}

impl<M> fmt::Debug for RemoteSendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSendError")
            .field("error", &self.error)
            .field("message", &self.message.as_ref().map(|_| ".."))
            .finish()
    }
}

impl<M> fmt::Display for RemoteSendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl<M> std::error::Error for RemoteSendError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Why a bridge could not connect, or an export or import could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum SetupError {
    /// The application name or the path is not a valid subject.
    Subject(SubjectError),
    /// The bridge's own tokio runtime could not be built.
    Runtime(std::io::Error),
    /// The NATS server could not be reached.
    Connect {
        /// The server's address.
        url: String,
        /// The client's description.
        text: String,
    },
    /// The subscription, the JetStream stream or its consumer could not be
    /// made.
    Subscribe {
        /// The subject.
        subject: String,
        /// The client's or the server's description.
        text: String,
    },
    /// The bridge's cell could not be spawned.
    Spawn(cellrt::SpawnError),
    /// The import's breaker configuration is invalid.
    Breaker(cellrt::BreakerConfigError),
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SetupError::Subject(_) => f.write_str("invalid subject"),
            SetupError::Runtime(_) => f.write_str("cannot build the bridge's tokio runtime"),
            SetupError::Connect { url, text } => write!(f, "cannot connect to NATS at {url}: {text}"),
            SetupError::Subscribe { subject, text } => write!(f, "cannot consume {subject}: {text}"),
            SetupError::Spawn(_) => f.write_str("cannot spawn the bridge's cell"),
            SetupError::Breaker(_) => f.write_str("invalid breaker configuration"),
        }
    }
}

impl std::error::Error for SetupError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SetupError::Subject(e) => Some(e),
            SetupError::Runtime(e) => Some(e),
            SetupError::Spawn(e) => Some(e),
            SetupError::Breaker(e) => Some(e),
            SetupError::Connect { .. } | SetupError::Subscribe { .. } => None,
        }
    }
}

impl From<SubjectError> for SetupError {
    fn from(e: SubjectError) -> Self {
        SetupError::Subject(e)
    }
}

impl From<cellrt::SpawnError> for SetupError {
    fn from(e: cellrt::SpawnError) -> Self {
        SetupError::Spawn(e)
    }
}

impl From<cellrt::BreakerConfigError> for SetupError {
    fn from(e: cellrt::BreakerConfigError) -> Self {
        SetupError::Breaker(e)
    }
}
