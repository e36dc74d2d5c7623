//! Errors of starting supervisors and of managing their children.

use std::fmt;

use crate::ask::AskError;
use crate::cell::{SpawnError, StopReason};
use crate::failure::FailureCause;
use crate::path::CellPath;

use super::spec::SpecError;

/// Why a supervisor or a child could not be started.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StartError {
    /// The spec was refused.
    Spec(SpecError),
    /// The runtime refused the spawn.
    Spawn(SpawnError),
    /// A child failed to start; the children started before it were
    /// stopped, in reverse order (OTP: `{shutdown, {failed_to_start_child,
    /// Id, Reason}}`).
    ///
    /// From [`Supervisor::start_child`](crate::Supervisor::start_child), the
    /// child added. From
    /// [`Runtime::start_supervisor`](crate::Runtime::start_supervisor), the
    /// supervisor's child that failed; when that child is a supervisor, its
    /// `reason` is `Failed` with a
    /// [`FailureCause::ChildStart`](crate::FailureCause::ChildStart) naming
    /// its own child that failed, and so on down:
    /// [`failed_child`](StartError::failed_child) gives the deepest.
    ChildFailed {
        /// The child's id.
        id: String,
        /// The child's path.
        path: CellPath,
        /// How its start ended: its own failure (the error its `started`
        /// returned, as a [`FailureCause::Error`](crate::FailureCause::Error)
        /// with its text and type, a panic…).
        reason: StopReason,
    },
    /// A pool child's start said there was nothing to run
    /// ([`Context::ignore`](crate::Context::ignore)): the pool dropped it.
    Ignored {
        /// The id it had (`#<n>`).
        id: String,
    },
    /// The start did not complete in time. It goes on; the supervisor may
    /// still come up.
    Timeout,
    /// The supervisor is stopping or has stopped.
    SupervisorStopping,
    /// The child handles another message type than the one asked for.
    MessageType {
        /// The message type asked for.
        expected: &'static str,
        /// The message type the child handles.
        found: &'static str,
    },
}

impl StartError {
    /// A top-level supervisor `name` at `path` did not start: `reason` is
    /// how it ended. A child's failed start becomes that child's
    /// `ChildFailed`; any other end names the supervisor itself.
    pub(crate) fn of_supervisor(name: String, path: CellPath, reason: StopReason) -> StartError {
        if let StopReason::Failed(failure) = &reason {
            if let FailureCause::ChildStart { id, path, reason } = &failure.cause {
                return StartError::ChildFailed {
                    id: id.clone(),
                    path: path.clone(),
                    reason: (**reason).clone(),
                };
            }
        }
        StartError::ChildFailed { id: name, path, reason }
    }

    /// For [`ChildFailed`](StartError::ChildFailed): the deepest child that
    /// failed to start, following child supervisors down, as its id, its
    /// path and how its own start ended. `None` for other errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, ChildSpec, Context, FailureCause, Runtime, StopReason, SupervisorSpec};
    ///
    /// struct Conn;
    /// impl Cell for Conn {
    ///     type Message = ();
    ///     fn started(&mut self, _: &mut Context<Self>) -> Result<(), CellError> {
    ///         Err(CellError::msg("connection refused"))
    ///     }
    ///     fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().quiet_panics(true).build()?;
    /// let db = SupervisorSpec::new("db").child(ChildSpec::new("conn", || Conn));
    /// let app = SupervisorSpec::new("app").child(ChildSpec::supervisor("db", db));
    /// let err = runtime.start_supervisor(app, Duration::from_secs(5)).unwrap_err();
    ///
    /// let (id, path, reason) = err.failed_child().unwrap();
    /// assert_eq!((id, path.as_str()), ("conn", "/app/db/conn"));
    /// let StopReason::Failed(failure) = reason else { unreachable!() };
    /// assert_eq!(failure.cause, FailureCause::Error { text: "connection refused".into(), type_name: None });
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn failed_child(&self) -> Option<(&str, &CellPath, &StopReason)> {
        let StartError::ChildFailed { id, path, reason } = self else { return None };
        let mut deepest = (id.as_str(), path, reason);
        while let StopReason::Failed(failure) = deepest.2 {
            let FailureCause::ChildStart { id, path, reason } = &failure.cause else { break };
            deepest = (id.as_str(), path, &**reason);
        }
        Some(deepest)
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spec(err) => write!(f, "invalid spec: {err}"),
            StartError::Spawn(err) => write!(f, "cannot spawn: {err}"),
            StartError::ChildFailed { id, reason: StopReason::Failed(failure), .. } => {
                write!(f, "child {id} failed to start: {failure}")
            }
            StartError::ChildFailed { id, reason, .. } => {
                write!(f, "child {id} stopped while starting: {reason:?}")
            }
            StartError::Ignored { id } => write!(f, "child {id} had nothing to run"),
            StartError::Timeout => f.write_str("the start did not complete in time"),
            StartError::SupervisorStopping => f.write_str("the supervisor is stopping"),
            StartError::MessageType { expected, found } => {
                write!(f, "the child handles {found}, not {expected}")
            }
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Spec(err) => Some(err),
            StartError::Spawn(err) => Some(err),
            _ => None,
        }
    }
}

impl From<SpecError> for StartError {
    fn from(err: SpecError) -> Self {
        StartError::Spec(err)
    }
}

impl From<SpawnError> for StartError {
    fn from(err: SpawnError) -> Self {
        StartError::Spawn(err)
    }
}

impl From<AskError> for StartError {
    fn from(err: AskError) -> Self {
        match err {
            AskError::Timeout => StartError::Timeout,
            _ => StartError::SupervisorStopping,
        }
    }
}

/// Why `terminate_child`, `restart_child` or `delete_child` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChildError {
    /// No child has this id.
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The child is running (or restarting): stop it first.
    Running {
        /// The child's id.
        id: String,
    },
    /// The supervisor is stopping or has stopped.
    SupervisorStopping,
    /// The supervisor did not answer in time.
    Timeout,
    /// `restart_child`: the child failed to start; it stays stopped.
    StartFailed {
        /// The child's id.
        id: String,
        /// How its start ended.
        reason: StopReason,
    },
}

impl fmt::Display for ChildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::NotFound { id } => write!(f, "no child {id:?}"),
            ChildError::Running { id } => write!(f, "child {id:?} is running"),
            ChildError::SupervisorStopping => f.write_str("the supervisor is stopping"),
            ChildError::Timeout => f.write_str("the supervisor did not answer in time"),
            ChildError::StartFailed { id, reason } => write!(f, "child {id:?} failed to start: {reason:?}"),
        }
    }
}

impl std::error::Error for ChildError {}

impl From<AskError> for ChildError {
    fn from(err: AskError) -> Self {
        match err {
            AskError::Timeout => ChildError::Timeout,
            _ => ChildError::SupervisorStopping,
        }
    }
}

/// Why [`Supervisor::stop`](crate::Supervisor::stop) did not report the
/// supervisor stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopError {
    /// A supervisor is stopped with [`StopReason::Requested`] (a normal
    /// stop) or [`StopReason::Shutdown`]; the other reasons are the
    /// runtime's to give. Nothing was stopped.
    InvalidReason {
        /// The reason given.
        reason: StopReason,
    },
    /// The supervisor did not stop within the timeout. It goes on stopping:
    /// its watch tells when it has.
    Timeout,
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopError::InvalidReason { reason } => {
                write!(f, "a supervisor cannot be stopped with {reason:?}")
            }
            StopError::Timeout => f.write_str("the supervisor did not stop in time"),
        }
    }
}

impl std::error::Error for StopError {}
