//! Errors of building a runtime and of spawning a cell.

use std::fmt;

use crate::path::{CellPath, NameError};

/// Why [`Builder::build`](crate::Builder::build) refused its settings.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BuildError {
    /// A dispatcher was configured with zero worker threads.
    ZeroWorkers {
        /// The dispatcher's name.
        dispatcher: String,
    },
    /// `throughput` was zero: a turn could never handle a message.
    ZeroThroughput,
    /// The default mailbox capacity was zero.
    ZeroCapacity,
    /// Two dispatchers share a name.
    DuplicateDispatcher {
        /// The repeated name.
        name: String,
    },
    /// A dispatcher name is empty or contains whitespace or control characters.
    InvalidDispatcherName {
        /// The refused name.
        name: String,
    },
    /// A group was configured with a limit of zero: no member could run.
    ZeroGroupLimit {
        /// The group's name.
        group: String,
    },
    /// Two groups share a name.
    DuplicateGroup {
        /// The repeated name.
        name: String,
    },
    /// A group name is empty or contains whitespace or control characters.
    InvalidGroupName {
        /// The refused name.
        name: String,
    },
    /// The operating system refused to start a thread.
    ThreadSpawn {
        /// The thread that could not start.
        thread: String,
        /// The system's error text.
        reason: String,
    },
    /// The observation settings were refused.
    #[cfg(feature = "observe")]
    Observation(crate::observe::ObservationConfigError),
    /// The storage could not be opened.
    #[cfg(feature = "storage")]
    Storage(crate::store::StoreError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroWorkers { dispatcher } => {
                write!(f, "dispatcher {dispatcher:?} needs at least one worker thread")
            }
            BuildError::ZeroThroughput => f.write_str("throughput must be at least 1 message per turn"),
            BuildError::ZeroCapacity => f.write_str("default mailbox capacity must be at least 1"),
            BuildError::DuplicateDispatcher { name } => write!(f, "dispatcher {name:?} is defined twice"),
            BuildError::InvalidDispatcherName { name } => write!(f, "invalid dispatcher name {name:?}"),
            BuildError::ZeroGroupLimit { group } => {
                write!(f, "group {group:?} must let at least one cell run at a time")
            }
            BuildError::DuplicateGroup { name } => write!(f, "group {name:?} is defined twice"),
            BuildError::InvalidGroupName { name } => write!(f, "invalid group name {name:?}"),
            BuildError::ThreadSpawn { thread, reason } => {
                write!(f, "cannot start thread {thread}: {reason}")
            }
            #[cfg(feature = "observe")]
            BuildError::Observation(err) => write!(f, "invalid observation settings: {err}"),
            #[cfg(feature = "storage")]
            BuildError::Storage(err) => write!(f, "cannot open the storage: {err}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            #[cfg(feature = "storage")]
            BuildError::Storage(err) => Some(err),
            #[cfg(feature = "observe")]
            BuildError::Observation(err) => Some(err),
            _ => None,
        }
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
            SpawnError::InvalidName(_) => f.write_str("invalid cell name"),
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
            SpawnError::InvalidName(err) => Some(err),
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

/// Why [`Runtime::run_once`](crate::Runtime::run_once) or
/// [`run_until_idle`](crate::Runtime::run_until_idle) did not run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The runtime has worker threads, which run its cells; only a
    /// thread-less runtime ([`Builder::threadless`](crate::Builder::threadless))
    /// is driven by the application.
    WorkerThreads,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::WorkerThreads => f.write_str("the runtime is run by its worker threads"),
        }
    }
}

impl std::error::Error for RunError {}
