//! cellrt runs applications as a topology of **cells**: autonomous units that
//! each own their state and handle one message type, scheduled on worker
//! pools over bounded, lock-free mailboxes.
//!
//! ```
//! use std::time::Duration;
//! use cellrt::{Cell, CellError, Context, Reply, Runtime};
//!
//! struct Counter(u64);
//!
//! enum Msg {
//!     Add(u64),
//!     Get(Reply<u64>),
//! }
//!
//! impl Cell for Counter {
//!     type Message = Msg;
//!
//!     fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
//!         match msg {
//!             Msg::Add(n) => self.0 += n,
//!             Msg::Get(reply) => drop(reply.send(self.0)),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! let runtime = Runtime::builder().build()?;
//! let counter = runtime.spawn(Counter(0))?;
//! counter.send(Msg::Add(40))?;
//! counter.send(Msg::Add(2))?;
//! assert_eq!(counter.ask(Msg::Get)?.wait(Duration::from_secs(5))?, 42);
//! runtime.shutdown(Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Cells
//!
//! A [`Cell`] handles messages of one type, one at a time, on a worker of its
//! dispatcher. Its hooks ([`started`](Cell::started), [`handle`](Cell::handle),
//! [`stopped`](Cell::stopped)) never run concurrently. A [`Context`] gives the
//! cell its address and path, lets it spawn children, stop itself, and
//! schedule messages to itself. An error or a panic in a hook is caught and
//! becomes a typed [`Failure`]; it never takes a worker thread down.
//!
//! # Supervision
//!
//! A [`Supervisor`] starts cells from [`ChildSpec`]s and restarts them by a
//! [`Strategy`] when they fail, as Erlang/OTP's supervisor does: restart
//! kinds, restart intensity over a sliding window, escalation to its parent
//! and up to the runtime root, backoff, ordered start and stop, significant
//! children. A restarted cell keeps its address and its mailbox; the message
//! whose handling failed goes to the dead-letter store
//! ([`Runtime::dead_letters`]) or is re-delivered ([`RetryPolicy`]).
//! [`Runtime::watch`] tells when a cell stops for good. `docs/supervision.md`
//! in the repository states the rules.
//!
//! # Addresses
//!
//! An [`Addr<M>`] is a handle to a contract, the message type `M`, not to one
//! cell instance: the runtime can [`replace`](Runtime::replace) the cell
//! behind it while senders keep sending, and no message is lost or handled
//! twice. Every rejected send hands the message back inside a [`SendError`].
//! [`ask`](Addr::ask) sends a request carrying a [`Reply`] and returns a
//! [`Pending`] answer, which can be waited for or awaited; a reply dropped
//! unanswered resolves it to an error at once.
//!
//! # Mailboxes and backpressure
//!
//! Each cell's user mailbox is bounded: its capacity is an admission count,
//! and the queue behind it (crossbeam-queue's `SegQueue`) allocates as it
//! fills, so a large capacity costs nothing until messages queue. A full mailbox
//! pushes back: `try_send` returns `Full`, `send` waits up to a timeout on
//! threads that are not workers, and never blocks inside a cell (see
//! [`Addr`]). Control messages travel in a separate system queue, so a full
//! mailbox never delays a stop.
//!
//! # Dispatchers
//!
//! Cells run on dispatchers: named pools of worker threads. The default one
//! has a worker per core; a runtime can run on a single thread. A cell put on
//! its own dispatcher cannot take threads from the others (a bulkhead). Idle
//! workers block, and the runtime's background jobs (the analysis window,
//! the deadline watchdog) sleep while there is nothing for them to do: an
//! idle runtime uses no CPU and wakes only for a due timer.
//!
//! # Observation
//!
//! Every cell keeps metrics on its message path (no lock per message); the
//! runtime folds failures into [`FailureSignature`]s, measures each cell's
//! [`Decay`] against baselines it learns, tracks [`Objective`]s' burn rates,
//! maps the message flow between cells, and records every anomaly in a
//! triaged signal journal ([`Runtime::journal`]). [`Runtime::snapshot`]
//! returns all of it; it exports as JSON, Prometheus text and Graphviz DOT,
//! and with the `http` feature [`Runtime::serve_http`] serves it live.
//! `docs/observation.md` in the repository states the formulas and rules.
//!
//! # Flow control
//!
//! When a cell cannot keep up, flow control decides what gives, and every
//! message that is not handled comes back in a typed error or lands in the
//! dead letters. A [`Router`] spreads one address over several cells
//! ([`Runtime::router`]); a [`Shedding`] policy on an address refuses the
//! lowest priority classes first as a mailbox fills ([`SendError::Shed`]);
//! [`Addr::ask_within`] gives a request a deadline that travels with it, and
//! a request still queued past it is not handled; a [`CircuitBreaker`] stops
//! calls to a failing or slow dependency and journals its transitions
//! ([`Runtime::breaker`]); [`Retry`] spaces retries with an
//! [`ExponentialBackoff`] within a shared [`RetryBudget`]; dispatchers and
//! groups with a concurrency limit ([`Builder::group`]) are bulkheads.
//! `docs/flow.md` in the repository states the rules.
//!
//! # Recomposition
//!
//! A [`Recomposer`] watches the cells put under it ([`Recomposer::manage`],
//! with what the application offers in a [`Recomposable`]: the cell's
//! factory, its variants, whether it is stateless) and, after each analysis
//! window, turns sustained findings into [`Plan`]s: isolate a message kind
//! that dominates a strained cell, split a saturated stateless cell into a
//! pool and merge it back, try a variant as a canary and promote it, shed a
//! kind. Plans are applied under traffic behind the same address (none lost,
//! none handled twice), in [`Mode::Auto`] or once approved in
//! [`Mode::Propose`]; each is evaluated against the windows before it and
//! reverted when it made its metric worse. Every step is journaled.
//! `docs/recomposition.md` in the repository states the rules.
//!
//! # Chaos
//!
//! With the `chaos` feature, the runtime injects faults at its own seams, so
//! cells need no change: latency before a handler, a handler error or panic
//! (supervision reacts as to a real one), a dropped message (dead-lettered
//! with [`FailureCause::Injected`]), a duplicated message, a mailbox
//! reported full, a delayed delivery, a stalled worker, a failing or slow
//! storage write or flush, a skewed timer. A [`Fault`] has a [`Target`] (cell glob or
//! flow-map edge, cell type, message kind), a probability, a limit and a
//! seed; a [`FaultSet`] reads from and prints as a spec string.
//! [`Runtime::inject`] installs faults until the [`Injection`] is dropped.
//! An [`Experiment`] tests a steady-state hypothesis ([`Predicate`]s) in a
//! control phase, under faults confined to a blast radius, and in recovery,
//! aborts when told, removes every fault on every way out, and returns a
//! [`Report`] whose findings are triaged and journaled;
//! [`Experiment::ramp`] finds the intensity at which the hypothesis breaks.
//!
//! ```
//! # #[cfg(feature = "chaos")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use cellrt::{Cell, CellConfig, CellError, Context, FailureCause, FaultSet, Runtime};
//!
//! struct Sink;
//! impl Cell for Sink {
//!     type Message = u32;
//!     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
//!         Ok(())
//!     }
//! }
//!
//! let runtime = Runtime::builder().build()?;
//! let sink = runtime.spawn_with(CellConfig::named("sink"), Sink)?;
//! let injection = runtime.inject(FaultSet::parse("/sink: drop limit=1 seed=7")?)?;
//! sink.send(1)?;
//! sink.send(2)?;
//! # let deadline = std::time::Instant::now() + Duration::from_secs(5);
//! # while runtime.dead_letter_count() == 0 && std::time::Instant::now() < deadline {
//! #     std::thread::sleep(Duration::from_millis(1));
//! # }
//! let letter = &runtime.dead_letters()[0];
//! assert!(matches!(letter.failure().cause, FailureCause::Injected { .. }));
//! assert_eq!(injection.remove()[0].injected, 1);
//! # runtime.shutdown(Duration::from_secs(1));
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "chaos"))]
//! # fn main() {}
//! ```
//!
//! `docs/chaos.md` in the repository gives the fault catalog, the spec
//! grammar and the guarantees.
//!
//! # Shutdown
//!
//! [`Runtime::shutdown`] drains cells in reverse spawn order and returns a
//! [`ShutdownReport`] counting cells stopped, killed and abandoned, and
//! messages left undelivered.
//!
//! # For cell authors and for embedders
//!
//! Cell authors implement [`Cell`] and talk to other cells through [`Addr`].
//! Embedders build the [`Runtime`], choose dispatchers and capacities, and
//! read failures and shutdown reports. `docs/semantics.md` in the repository
//! states the guarantees: ordering, priorities, stop versus kill, panics.
//!
//! # Features
//!
//! - `parking_lot` (default): locks from parking_lot instead of std.
//! - `storage` (default): per-cell storage on sled ([`Store`],
//!   [`StorageConfig`]); the signal journal is persisted there.
//! - `serde` (implied by `storage`): observation data ([`Snapshot`],
//!   [`Signal`], …) and chaos reports implement serde's traits.
//! - `observe` (default): observation and what acts on it: failure
//!   signatures, decay, objectives, the signal journal and triage
//!   ([`Runtime::snapshot`], [`Runtime::journal`], [`Runtime::breaker`]),
//!   and recomposition ([`Recomposer`]). Without it, cells keep no metrics,
//!   the runtime runs no analysis window, and failures are still recorded
//!   ([`Runtime::failures`]), supervised and dead-lettered.
//! - `report` (implies `observe` and `storage`): [`report`], the
//!   self-contained HTML report of a run, and the reading of a stopped
//!   application's data directory ([`report::DataDir`]).
//! - `chaos` (default, implies `observe`): fault injection and experiments
//!   ([`Runtime::inject`], [`Experiment`]). Without it, the send and handle
//!   paths compile as if it did not exist.
//! - `tokio`: async sends and asks from tokio tasks
//!   ([`Addr::send_async`], [`Addr::ask_async`]).
//! - `http` (implies `tokio`, `observe` and `serde`): the live export
//!   ([`Runtime::serve_http`]): `/metrics` in Prometheus text,
//!   `/snapshot.json`, `/journal` as JSON lines, `/healthz` and `/readyz`,
//!   on localhost by default.
//!
//! With `--no-default-features` the crate depends only on crossbeam,
//! fastrand (retry jitter) and tracing.
//!
//! # Minimum supported Rust version
//!
//! 1.80.
//!

// In a build without a feature, the links to its items point to the list of
// features instead (these reference definitions end the crate docs).
#![cfg_attr(
    not(feature = "chaos"),
    doc = "[`FailureCause::Injected`]: #features\n\
           [`Fault`]: #features\n\
           [`Target`]: #features\n\
           [`FaultSet`]: #features\n\
           [`Runtime::inject`]: #features\n\
           [`Injection`]: #features\n\
           [`Experiment`]: #features\n\
           [`Predicate`]: #features\n\
           [`Report`]: #features\n\
           [`Experiment::ramp`]: #features"
)]
#![cfg_attr(
    not(feature = "observe"),
    doc = "[`FailureSignature`]: #features\n\
           [`Decay`]: #features\n\
           [`Objective`]: #features\n\
           [`Runtime::journal`]: #features\n\
           [`Runtime::snapshot`]: #features\n\
           [`Runtime::breaker`]: #features\n\
           [`Recomposer`]: #features\n\
           [`Recomposer::manage`]: #features\n\
           [`Recomposable`]: #features\n\
           [`Plan`]: #features\n\
           [`Mode::Auto`]: #features\n\
           [`Mode::Propose`]: #features\n\
           [`Snapshot`]: #features\n\
           [`Signal`]: #features"
)]
#![cfg_attr(
    not(feature = "report"),
    doc = "[`report`]: #features\n\
           [`report::DataDir`]: #features"
)]
#![cfg_attr(
    not(feature = "tokio"),
    doc = "[`Addr::send_async`]: #features\n\
           [`Addr::ask_async`]: #features"
)]
#![cfg_attr(not(feature = "http"), doc = "[`Runtime::serve_http`]: #features")]
#![cfg_attr(
    not(feature = "storage"),
    doc = "[`Store`]: #features\n\
           [`StorageConfig`]: #features"
)]
// Without observation there is no recomposition, and the seams it uses in
// the core (swapping a slot's target, regrouping a message kind, handing a
// child from one supervisor to another, the analysis window's gate) have no
// caller, nor the public metrics types that only a snapshot returns.
// Anything dead in every build is still reported by the default one.
#![cfg_attr(not(feature = "observe"), allow(dead_code, unreachable_pub))]

mod address;
mod ask;
#[cfg(feature = "tokio")]
mod async_send;
mod cell;
#[cfg(feature = "chaos")]
mod chaos;
mod dead_letter;
mod dispatch;
mod dormancy;
mod failure;
mod flow;
#[cfg(feature = "http")]
mod http;
mod mailbox;
mod observe;
mod path;
#[cfg(feature = "observe")]
mod recompose;
#[cfg(feature = "report")]
pub mod report;
mod runtime;
#[cfg(feature = "storage")]
mod store;
mod supervise;
mod sync;
mod timer;

#[cfg(cellrt_loom)]
#[doc(hidden)]
pub mod loom_api;

pub use crate::address::{Addr, WeakAddr};
pub use crate::ask::{AskError, Pending, Reply};
#[cfg(feature = "tokio")]
pub use crate::async_send::{AskAsyncError, SendAsync};
pub use crate::cell::{Cell, CellConfig, CellError, Context, SpawnError, StopReason, MAX_LANES};
#[cfg(feature = "chaos")]
pub use crate::chaos::{
    CellPhase, DeadLetterSeen, DecayMove, Delay, Effect, Experiment, ExperimentBuildError, ExperimentBuilder,
    ExperimentError, ExperimentFinding, Fault, FaultBuilder, FaultCount, FaultError, FaultKind, FaultSet,
    FaultSpecError, InjectError, InjectedError, Injection, InjectionRecord, Observation, Outcome, PhaseValue,
    Predicate, PredicateReport, RampReport, RampStep, RecompositionStep, Report, Span, SpecCause, Target,
    TargetError, CHAOS_ENV,
};
pub use crate::dead_letter::DeadLetter;
pub use crate::dispatch::group::GroupStats;
pub use crate::failure::{Failure, FailureCause, Hook, PanicLocation};
pub use crate::flow::{
    BackoffError, BreakerConfig, BreakerConfigError, BreakerMetrics, BreakerOpen, BreakerState,
    BreakerTransition, CallError, CallOutcome, CircuitBreaker, ExponentialBackoff, Jitter, Permit, Retry,
    RetryBudget, RetryBudgetError, RetryBudgetStats, RetryConfigError, RetryError, Router, RouterError,
    RouterStats, Routing, Shedding, SheddingError, SheddingStats, SlidingWindow, MAX_CLASS,
};
#[cfg(feature = "http")]
pub use crate::http::{HttpConfig, HttpServer, ServeError};
pub use crate::mailbox::SendError;
#[cfg(feature = "observe")]
pub use crate::observe::{
    AlertBurn, Baseline, Baselines, BurnAlert, BurnStatus, BurnTransition, BurnWindows, Category,
    CellSnapshot, Crossing, Decay, DecayConfig, DecayConfigError, FailureKind, FailureSignature, FlowEdge,
    Indicator, JournalConfig, JournalConfigError, JournalError, JournalQuery, KindMetrics, LatencySummary,
    LearningMeasures, LoadShift, Metrics, NoiseFloor, Objective, ObjectiveError, ObjectiveSnapshot,
    ObservationConfig, ObservationConfigError, PlanStep, RollUp, Signal, SignalKind, SignalType,
    SignatureStats, SignatureSummary, Snapshot, TopologyChange, TriageConfig, TriageConfigError,
    MAX_SHORT_WINDOWS, MIN_ANALYSIS_WINDOW,
};
pub use crate::path::{CellPath, NameError, MAX_NAME_LEN};
#[cfg(feature = "observe")]
pub use crate::recompose::{
    Action, CellWindow, Expected, Finding, IsolatedKind, KindShare, Layout, Metric, Mode, Plan, PlanStatus,
    Policy, Proposal, Recomposable, RecomposableError, RecomposeConfig, RecomposeConfigError, RecomposeError,
    Recomposer, RestoreError, RestoreWarning, Restored, ServingCell, SplitBy, MAX_POOL,
};
pub use crate::runtime::{
    BuildError, Builder, RunError, RunReport, Runtime, ShutdownReport, DEFAULT_DISPATCHER, MAX_WORKER_THREADS,
};
#[cfg(feature = "storage")]
pub use crate::store::{
    Durability, Durable, Scan, StorageConfig, Store, StoreError, StoreKey, StoredDeadLetter, Transaction,
    MIN_CACHE_BYTES,
};
pub use crate::supervise::{
    AutoShutdown, ChildCounts, ChildError, ChildInfo, ChildSpec, ChildState, CountedRestart, Escalation,
    Restart, RestartBackoff, RestartIntensity, RetryPolicy, Shutdown, SpecError, StartError, StopError,
    Strategy, SupervisionEvent, SupervisionEventKind, Supervisor, SupervisorMsg, SupervisorSpec, Terminated,
};
pub use crate::timer::TimerHandle;

/// The tutorial in `docs/guide.md`, whose code blocks run as doc tests
/// (`cargo test -p cellrt --doc Guide`), so that it cannot drift from the API.
#[cfg(all(doctest, feature = "storage", feature = "chaos"))]
#[doc = include_str!("../../docs/guide.md")]
pub struct Guide;
