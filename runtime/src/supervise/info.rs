//! What a supervisor reports about itself: its children, its counts, its
//! history, and the escalation it sends up when it gives up.

use std::time::{Duration, SystemTime};

use crate::cell::StopReason;
use crate::path::CellPath;

use super::spec::Restart;

/// A child as [`Supervisor::which_children`](crate::Supervisor::which_children)
/// reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildInfo {
    /// The child's id.
    pub id: String,
    /// The child's path.
    pub path: CellPath,
    /// Whether it runs, waits for a restart, or is stopped.
    pub state: ChildState,
    /// How many times its supervisor restarted it.
    pub restarts: u32,
    /// Its restart kind.
    pub restart: Restart,
    /// Whether it is itself a supervisor.
    pub supervisor: bool,
}

/// Where a child is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildState {
    /// Starting, running, or being stopped.
    Running,
    /// Exited; its restart is pending (a backoff delay, or a group restart).
    /// Its mailbox is kept: messages sent now are handled after the restart.
    Restarting,
    /// Not running and not to be restarted unless asked (`restart_child`).
    Stopped,
}

/// Child counts, as OTP's `count_children` gives them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildCounts {
    /// Child specs held.
    pub specs: usize,
    /// Children running (starting, running or stopping).
    pub active: usize,
    /// Children that are supervisors.
    pub supervisors: usize,
    /// Children that are workers.
    pub workers: usize,
}

/// Why a supervisor gave up: the restart that exceeded its intensity.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Escalation {
    /// The supervisor that gave up.
    pub supervisor: CellPath,
    /// The child whose exit exceeded the intensity.
    pub child: CellPath,
    /// How that child exited.
    pub reason: StopReason,
    /// The supervisor's intensity: restarts allowed…
    pub max_restarts: u32,
    /// …within this period.
    pub period: Duration,
    /// The restarts counted in the window when it gave up, oldest first:
    /// the `max_restarts` that the exit of `child` would have exceeded.
    pub restarts: Vec<CountedRestart>,
}

/// `supervisor /app gave up: child /app/db exceeded 3 restarts in 5s`.
impl std::fmt::Display for Escalation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "supervisor {} gave up: child {} exceeded {} restarts in {:?}",
            self.supervisor, self.child, self.max_restarts, self.period
        )
    }
}

/// One restart counted in a supervisor's intensity window.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CountedRestart {
    /// The id of the child whose exit was restarted (for a group restart,
    /// the child that triggered it).
    pub child: String,
    /// When the restart was decided.
    pub at: SystemTime,
}

/// A supervisor's restart intensity as of now: the restarts its sliding
/// window counts, and how many more it allows before it gives up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RestartIntensity {
    /// Restarts within the last `period`.
    pub restarts: u32,
    /// Restarts allowed within `period`; one more makes it give up.
    pub max_restarts: u32,
    /// The window's length.
    pub period: Duration,
    /// Restarts it still allows now: `max_restarts - restarts`, at least 0.
    pub remaining: u32,
}

/// One entry of a supervisor's history.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SupervisionEvent {
    /// When it happened.
    pub at: SystemTime,
    /// The child's id (the supervisor's own path for `AutoShutdown`).
    pub child: String,
    /// What happened.
    pub kind: SupervisionEventKind,
}

/// What happened to a child.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SupervisionEventKind {
    /// The child exited on its own.
    Exited(StopReason),
    /// The supervisor decided to restart it (`restarts` so far, counting
    /// this one), after `delay`.
    Restarting {
        /// Restarts of this child, counting this one.
        restarts: u32,
        /// The backoff delay before it.
        delay: Duration,
    },
    /// A group restart (one-for-all, rest-for-one) triggered by this child
    /// completed.
    GroupRestarted,
    /// The child failed to start.
    StartFailed(StopReason),
    /// The child's start said there was nothing to run
    /// ([`Context::ignore`](crate::Context::ignore)): it is kept, stopped.
    Ignored,
    /// The child did not stop within its shutdown timeout: its mailbox was
    /// closed, its handler left to return on its own.
    Abandoned,
    /// The child did not stop within its shutdown timeout during a group
    /// restart; it is restarted once it does.
    Overdue,
    /// The restart intensity was exceeded by this child's exit: the
    /// supervisor terminated and escalated.
    GaveUp,
    /// Significant children exited: the supervisor shut down.
    AutoShutdown,
}
