//! Errors of building and running a runtime.

use std::fmt;

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
    /// A dispatcher name breaks the name grammar (see
    /// [`NameError`](crate::NameError)).
    InvalidDispatcherName {
        /// The refused name.
        name: String,
        /// The rule it breaks.
        reason: crate::NameError,
    },
    /// A dispatcher was given the name of the default one,
    /// [`DEFAULT_DISPATCHER`](crate::DEFAULT_DISPATCHER), which the runtime
    /// always defines; size it with
    /// [`worker_threads`](crate::Builder::worker_threads).
    ReservedDispatcherName {
        /// The refused name.
        name: String,
    },
    /// A dispatcher was configured with more worker threads than
    /// [`MAX_WORKER_THREADS`](crate::MAX_WORKER_THREADS).
    TooManyWorkers {
        /// The dispatcher's name.
        dispatcher: String,
        /// The requested number of threads.
        threads: usize,
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
    /// A group name breaks the name grammar (see
    /// [`NameError`](crate::NameError)).
    InvalidGroupName {
        /// The refused name.
        name: String,
        /// The rule it breaks.
        reason: crate::NameError,
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
            BuildError::InvalidDispatcherName { name, reason } => {
                write!(f, "invalid dispatcher name {name:?}: {reason}")
            }
            BuildError::ReservedDispatcherName { name } => write!(
                f,
                "dispatcher name {name:?} is reserved for the default dispatcher (size it with worker_threads)"
            ),
            BuildError::TooManyWorkers { dispatcher, threads } => write!(
                f,
                "dispatcher {dispatcher:?} asks for {threads} worker threads, the limit is {}",
                super::builder::MAX_WORKER_THREADS
            ),
            BuildError::ZeroGroupLimit { group } => {
                write!(f, "group {group:?} must let at least one cell run at a time")
            }
            BuildError::DuplicateGroup { name } => write!(f, "group {name:?} is defined twice"),
            BuildError::InvalidGroupName { name, reason } => write!(f, "invalid group name {name:?}: {reason}"),
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
