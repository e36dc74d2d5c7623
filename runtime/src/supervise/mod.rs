//! Supervision: supervisors restart, stop and escalate as Erlang/OTP's
//! supervisor does, and keep what they supervise from losing messages.
//!
//! - `spec.rs`: [`SupervisorSpec`], [`ChildSpec`] and their options, checked
//!   into [`SpecError`]s.
//! - `child.rs`: supervision's interface to the runtime, defined here and
//!   implemented there: the commands a node issues to a cell
//!   ([`SupervisedCell`]) and what it needs of the runtime ([`Services`],
//!   [`SpawnChild`]).
//! - `node.rs`: the supervision state of one cell, processed in its turn.
//! - `window.rs`: the restart-intensity sliding window.
//! - `start.rs`: how a spec spawns an instance; the supervisor cell.
//! - `handle.rs`: [`Supervisor`], the handle on a running supervisor.
//! - `info.rs`: what a supervisor reports: children, counts, history.
//! - `watch.rs`: [`Terminated`] notices for watchers.
//! - `error.rs`: [`StartError`], [`ChildError`] and [`StopError`].
//!
//! # Dependency direction
//!
//! Nothing here names the runtime, a cell instance or its mailbox. The
//! runtime reaches supervision only through the crate-internal list at the
//! end of this file: the `child.rs` interface it implements, and a node's
//! event entry points (`NodeLink`: `child_started`, `child_exited`,
//! `begin_owner_start`, `begin_owner_end`, `process`, …), which the
//! instance calls through `dyn`, so that a program that never supervises
//! links none of `node.rs`.
//!
//! `docs/supervision.md` states the semantics: strategies, restart kinds,
//! intensity, backoff, ordered start and stop, significant children,
//! escalation to the runtime root, kept mailboxes and dead letters.

mod child;
mod error;
mod handle;
mod info;
mod node;
mod spec;
mod start;
mod watch;
mod window;

pub use self::error::{ChildError, StartError, StopError};
pub use self::handle::Supervisor;
pub use self::info::{
    ChildCounts, ChildInfo, ChildState, CountedRestart, Escalation, RestartIntensity, SupervisionEvent,
    SupervisionEventKind,
};
pub use self::spec::{
    AutoShutdown, ChildSpec, Restart, RestartBackoff, RetryPolicy, Shutdown, SpecError, Strategy,
    SupervisorSpec,
};
pub use self::start::SupervisorMsg;
pub use self::watch::Terminated;

// What the rest of the crate uses of supervision, and nothing else: the
// interface the runtime implements (`child.rs`), a node and its event entry
// points, and what a spawn and an instance need of specs.
pub(crate) use self::child::{
    ChildRequest, ChildStop, NodeLink, Origin, Services, SpawnChild, SpawnedChild, Supervised, SupervisedCell,
};
pub(crate) use self::node::{ChildExit, Node, NodeSeed, Outcome};
pub(crate) use self::spec::Factory;
pub(crate) use self::start::{ChildName, SupervisorCell};
pub(crate) use self::watch::Watchers;
// Recomposition places cells under supervisors and hands children over.
#[cfg(cellrt_loom)]
pub(crate) use self::window::RestartWindow;
#[cfg(feature = "observe")]
pub(crate) use self::{
    node::{HandedOff, Refusal},
    spec::Make,
    start::{CellStarter, StartedChild},
};
