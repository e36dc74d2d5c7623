//! Recomposition: the runtime changes its own topology from what it
//! observes — isolates a message kind, splits a saturated cell into a pool
//! (round-robin, or by key with each key's stored state), merges it back,
//! replaces a decaying cell with a registered variant, sheds a kind — and
//! keeps each change only if it helped.
//!
//! - `analyze.rs`: what the engine reads of a managed cell per window
//!   ([`CellWindow`]) and what it concludes ([`Finding`]).
//! - `plan.rs`: plans as data ([`Plan`], [`Action`], [`Expected`],
//!   [`Layout`]).
//! - `policy.rs`: who decides ([`Mode`], [`RecomposeConfig`], [`Policy`])
//!   and the built-in rules.
//! - `apply.rs`: what the application offers ([`Recomposable`]) and how
//!   actions change what an address points at.
//! - `partition.rs` (feature `storage`): keyed pools, and how a split by
//!   key and its merge hand each key's stored state and queued messages to
//!   its new owner.
//! - `evaluate.rs`: judging an applied plan against its expected effect.
//! - `persist.rs`: kept plans across process restarts ([`Restored`]).
//! - `engine.rs`: [`Recomposer`], which ties them together once per
//!   analysis window and journals every step.
//! - `error.rs`: [`RecomposeError`], [`RecomposeConfigError`],
//!   [`RecomposableError`].
//!
//! This module sits above `observe`, `flow`, `address` and `runtime`: it
//! reads the first and drives the others. None of them names it; the
//! runtime calls it back through `AnalysisHook`.
//!
//! `docs/recomposition.md` in the repository states the rules, their
//! thresholds and the guarantees.

mod analyze;
pub(crate) mod apply;
mod engine;
mod error;
mod evaluate;
#[cfg(feature = "storage")]
mod partition;
pub(crate) mod persist;
mod plan;
mod policy;

pub use self::analyze::{CellWindow, Finding, KindShare, ServingCell};
pub use self::apply::{Recomposable, MAX_POOL};
pub use self::engine::Recomposer;
pub use self::error::{RecomposableError, RecomposeConfigError, RecomposeError};
pub use self::persist::{RestoreError, RestoreWarning, Restored};
pub use self::plan::{Action, Expected, IsolatedKind, Layout, Metric, Plan, PlanStatus, SplitBy};
pub use self::policy::{Mode, Policy, Proposal, RecomposeConfig};
