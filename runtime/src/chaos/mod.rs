//! Chaos: faults the runtime injects at its own seams, so that application
//! code needs no change, and experiments that test a hypothesis under them.
//!
//! - `target.rs`: [`Target`], which messages a fault applies to (cell path
//!   glob or flow-map edge, cell type, message kind).
//! - `sender.rs`: which cell is sending, for edge targets.
//! - `fault.rs`: [`Fault`] and its [`FaultBuilder`], [`FaultKind`],
//!   [`Delay`].
//! - `spec.rs`: [`FaultSet`], faults as a spec string and back.
//! - `registry.rs`: the installed faults, the decisions at the seams, the
//!   injection log, the probes experiments measure with.
//! - `injection.rs`: [`Injection`], the handle that removes installed
//!   faults.
//! - `hypothesis.rs`: [`Predicate`]s over an [`Observation`].
//! - `experiment.rs`: [`Experiment`] and its [`ExperimentBuilder`], [`Span`].
//! - `runner.rs`: how a run goes, measures, reports, journals and cleans up.
//! - `report.rs`: [`Report`]; `ramp.rs`: [`RampReport`].
//! - `error.rs`: [`TargetError`], [`FaultError`], [`FaultSpecError`],
//!   [`InjectError`], [`InjectedError`], [`ExperimentBuildError`],
//!   [`ExperimentError`].
//!
//! Chaos sits beside the message path as a service it calls: it reads
//! observation (metrics, signatures, the journal) and never names
//! supervision or recomposition.
//!
//! # Seams
//!
//! Five places consult the registry, each with one
//! relaxed atomic load when nothing is installed:
//!
//! - the *send seam*, where a sender offers a message to a cell's mailbox:
//!   full, delay, and drop on an edge target;
//! - the *turn seam*, where a worker begins a turn of a cell: stall (and,
//!   while faults are installed, marking the cell as the sender);
//! - the *handle seam*, where a worker has taken a message and is about to
//!   run the cell's handler: latency, error, panic, drop, duplicate;
//! - the *storage seam* (feature `storage`, in `store::chaos`), where a
//!   cell's storage tree is written or flushed: write and flush errors,
//!   slow flushes (one relaxed load per write or flush of a cell's tree);
//! - the *timer seam*, where a cell sets a timer from its context: timer
//!   skew.
//!
//! With the `chaos` feature off, neither seam exists in the compiled code.
//!
//! # What is never injected
//!
//! System messages (stop, restart, kill, drain, supervision) travel in
//! their own queue and never reach a seam. The `started` and `stopped`
//! hooks are never replaced by an injected error or panic; timers the
//! runtime sets for itself, a router's choice of member and the runtime's
//! own storage trees are never injected. A dropped
//! message is never lost silently: it reaches the dead letters with the
//! cause [`FailureCause::Injected`](crate::FailureCause::Injected).

mod error;
mod experiment;
mod fault;
mod hypothesis;
mod injection;
mod ramp;
pub(crate) mod registry;
mod report;
mod runner;
mod sender;
mod spec;
pub(crate) mod target;

pub use self::error::{
    ExperimentBuildError, ExperimentError, FaultError, FaultSpecError, InjectError, InjectedError, SpecCause,
    TargetError,
};
pub use self::experiment::{Experiment, ExperimentBuilder, Span};
pub use self::fault::{Delay, Fault, FaultBuilder, FaultKind};
pub use self::hypothesis::{CellPhase, DeadLetterSeen, Observation, PhaseValue, Predicate};
pub use self::injection::Injection;
pub use self::ramp::{RampReport, RampStep};
pub use self::registry::{Effect, FaultCount, InjectionRecord};
pub use self::report::{DecayMove, ExperimentFinding, Outcome, PredicateReport, RecompositionStep, Report};
pub(crate) use self::sender::SenderGuard;
pub use self::spec::{FaultSet, CHAOS_ENV};
pub use self::target::Target;
