//! [`RecomposeError`]: why the engine refused a call or could not apply a
//! plan; [`RecomposeConfigError`] and [`RecomposableError`]: which setting
//! of the engine or of a registration was out of range.

use std::fmt;

use crate::path::CellPath;
use crate::runtime::SpawnError;

/// Why a recomposition call or action was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecomposeError {
    /// The runtime does not observe its cells
    /// ([`ObservationConfig::disabled`](crate::ObservationConfig::disabled)):
    /// the engine has nothing to analyse or evaluate with.
    ObservationDisabled,
    /// The runtime is shutting down.
    ShutDown,
    /// No managed cell has this path.
    UnknownCell {
        /// The path given.
        cell: CellPath,
    },
    /// The cell is managed already.
    AlreadyManaged {
        /// Its path.
        cell: CellPath,
    },
    /// The cell is supervised, and its supervisor cannot take the change:
    /// it is stopping or has stopped, or it is a pool (whose children come
    /// from its template).
    Supervised {
        /// Its path.
        cell: CellPath,
        /// Why, in words.
        reason: String,
    },
    /// The address is not served by one cell (it is a router, or closed).
    NotACell {
        /// Its path.
        cell: CellPath,
    },
    /// The cell has not handled (and its type does not name) this message kind.
    UnknownKind {
        /// The cell.
        cell: CellPath,
        /// The kind given.
        kind: String,
    },
    /// No variant of this name was registered for the cell.
    UnknownVariant {
        /// The cell.
        cell: CellPath,
        /// The name given.
        variant: String,
    },
    /// No plan has this id.
    UnknownPlan {
        /// The id given.
        plan: u64,
    },
    /// The plan is not waiting for approval (approved, rejected or over).
    NotPending {
        /// The plan.
        plan: u64,
    },
    /// The plan was made against a topology that has changed since: it is
    /// refused (and recorded as rejected).
    Stale {
        /// The plan.
        plan: u64,
        /// The cell's version when the plan was made.
        planned: u64,
        /// Its version now.
        current: u64,
    },
    /// Another plan for this cell is pending or being evaluated.
    PlanInFlight {
        /// The cell.
        cell: CellPath,
        /// The plan in flight.
        plan: u64,
    },
    /// The action does not fit the cell's layout now (a merge of a cell
    /// that is not a pool, a split of one that already is, a kind
    /// isolated twice, …).
    Layout {
        /// The cell.
        cell: CellPath,
        /// What does not fit, in words.
        reason: String,
    },
    /// A [`RecomposeConfig`](crate::RecomposeConfig) setting was out of
    /// range ([`Recomposer::new`](crate::Recomposer::new)).
    Config(RecomposeConfigError),
    /// A [`Recomposable`](crate::Recomposable) registration was refused
    /// ([`Recomposer::manage`](crate::Recomposer::manage)).
    Registration(RecomposableError),
    /// An argument is out of range (a pool of fewer than 2, a watermark
    /// outside (0, 1], a plan with no action, …).
    Invalid {
        /// What, in words.
        reason: String,
    },
    /// A cell the action needed could not be started.
    Spawn {
        /// The cell that was to be started.
        cell: CellPath,
        /// Why.
        error: SpawnError,
    },
    /// The cell's factory (or a variant's) panicked.
    FactoryPanicked {
        /// The cell that was to be started.
        cell: CellPath,
        /// The panic's message.
        message: String,
    },
    /// An earlier change to the cell is still being carried out: an
    /// isolated kind's cell still waits for the messages of its kind queued
    /// at the managed cell, which hands them over after the message it is
    /// handling. Nothing changed; retry shortly.
    InProgress {
        /// The cell.
        cell: CellPath,
    },
    /// The managed cell (alone behind its address, not a pool) has stopped
    /// for good: only a `Replace` (or a canary's `Promote`) can put a cell
    /// behind its address again.
    Stopped {
        /// The cell.
        cell: CellPath,
    },
    /// Only a plan that is applied and not yet evaluated can be reverted.
    NotApplied {
        /// The plan.
        plan: u64,
    },
    /// A cell's storage tree, which the action moves state in or out of,
    /// cannot be used: the runtime has no storage
    /// ([`StoreError::Disabled`](crate::StoreError::Disabled)), or opening
    /// it failed.
    #[cfg(feature = "storage")]
    Storage {
        /// The cell whose tree it is.
        cell: CellPath,
        /// Why.
        error: crate::store::StoreError,
    },
}

impl fmt::Display for RecomposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecomposeError::ObservationDisabled => {
                f.write_str("recomposition needs observation, which is disabled in this runtime")
            }
            RecomposeError::ShutDown => f.write_str("the runtime is shutting down"),
            RecomposeError::UnknownCell { cell } => write!(f, "no managed cell at {cell}"),
            RecomposeError::AlreadyManaged { cell } => write!(f, "the cell at {cell} is managed already"),
            RecomposeError::Supervised { cell, reason } => {
                write!(f, "the cell at {cell} is supervised, and cannot be changed so: {reason}")
            }
            RecomposeError::NotACell { cell } => write!(f, "the address {cell} is not served by one cell"),
            RecomposeError::UnknownKind { cell, kind } => {
                write!(f, "the cell at {cell} has no message kind {kind:?}")
            }
            RecomposeError::UnknownVariant { cell, variant } => {
                write!(f, "no variant {variant:?} is registered for {cell}")
            }
            RecomposeError::UnknownPlan { plan } => write!(f, "no plan {plan}"),
            RecomposeError::NotPending { plan } => write!(f, "plan {plan} is not waiting for approval"),
            RecomposeError::Stale { plan, planned, current } => write!(
                f,
                "plan {plan} is stale: made at version {planned} of its cell, which is at version {current}"
            ),
            RecomposeError::PlanInFlight { cell, plan } => {
                write!(f, "plan {plan} for {cell} is still in flight")
            }
            RecomposeError::Layout { cell, reason } => write!(f, "cannot change {cell}: {reason}"),
            RecomposeError::Config(err) => write!(f, "recomposition setting: {err}"),
            RecomposeError::Registration(err) => write!(f, "recomposable registration: {err}"),
            RecomposeError::Invalid { reason } => write!(f, "invalid plan: {reason}"),
            RecomposeError::Spawn { cell, .. } => write!(f, "could not start the cell at {cell}"),
            RecomposeError::FactoryPanicked { cell, message } => {
                write!(f, "the factory of the cell at {cell} panicked: {message}")
            }
            RecomposeError::NotApplied { plan } => write!(f, "plan {plan} is not applied"),
            RecomposeError::Stopped { cell } => write!(f, "the cell at {cell} has stopped"),
            RecomposeError::InProgress { cell } => {
                write!(f, "an earlier change to {cell} is still being carried out; retry")
            }
            #[cfg(feature = "storage")]
            RecomposeError::Storage { cell, .. } => write!(f, "the storage tree of {cell} cannot be used"),
        }
    }
}

impl std::error::Error for RecomposeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecomposeError::Spawn { error, .. } => Some(error),
            RecomposeError::Config(error) => Some(error),
            RecomposeError::Registration(error) => Some(error),
            #[cfg(feature = "storage")]
            RecomposeError::Storage { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// A [`RecomposeConfig`](crate::RecomposeConfig) setting out of range, with
/// the refused value. [`field`](RecomposeConfigError::field) names the
/// setting.
///
/// ```
/// use cellrt::{RecomposeConfig, RecomposeConfigError};
///
/// let err = RecomposeConfig::default().canary_share(1.0).validate().unwrap_err();
/// assert_eq!(err, RecomposeConfigError::Fraction { field: "canary_share", value: 1.0 });
/// assert_eq!(err.to_string(), "canary_share must be in (0, 1), got 1");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RecomposeConfigError {
    /// A count of windows was 0: `sustain`, `baseline_windows`,
    /// `evaluation_windows` or `merge_windows`.
    ZeroWindows {
        /// The setting.
        field: &'static str,
    },
    /// A share, saturation or watermark outside its range (or NaN):
    /// `max_changes_share`, `isolate_share`, `strain_saturation`,
    /// `split_saturation` and `shed_watermark` in `(0, 1]`,
    /// `merge_saturation` in `[0, 1)`, `canary_share` in `(0, 1)`.
    Fraction {
        /// The setting.
        field: &'static str,
        /// The refused value.
        value: f64,
    },
    /// `tolerance` was negative, NaN or infinite.
    Tolerance {
        /// The refused value.
        value: f64,
    },
    /// `split_into` was below 2: a pool of one is no split.
    SplitInto {
        /// The refused value.
        value: usize,
    },
    /// `merge_saturation` was not below `split_saturation`: a pool could be
    /// merged at a fill that splits it again, by turns.
    MergeNotBelowSplit {
        /// The refused `merge_saturation`.
        merge_saturation: f64,
        /// The `split_saturation` it must stay below.
        split_saturation: f64,
    },
}

impl RecomposeConfigError {
    /// The setting refused, as its setter is named.
    pub fn field(&self) -> &'static str {
        match self {
            RecomposeConfigError::ZeroWindows { field } | RecomposeConfigError::Fraction { field, .. } => {
                field
            }
            RecomposeConfigError::Tolerance { .. } => "tolerance",
            RecomposeConfigError::SplitInto { .. } => "split_into",
            RecomposeConfigError::MergeNotBelowSplit { .. } => "merge_saturation",
        }
    }
}

// Like `FaultError`: compared in tests as values; a NaN refused stays NaN.
impl Eq for RecomposeConfigError {}

impl fmt::Display for RecomposeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecomposeConfigError::ZeroWindows { field } => write!(f, "{field} must be at least 1 window"),
            RecomposeConfigError::Fraction { field, value } => {
                let range = match *field {
                    "merge_saturation" => "[0, 1)",
                    "canary_share" => "(0, 1)",
                    _ => "(0, 1]",
                };
                write!(f, "{field} must be in {range}, got {value}")
            }
            RecomposeConfigError::Tolerance { value } => {
                write!(f, "tolerance must be finite and at least 0, got {value}")
            }
            RecomposeConfigError::SplitInto { value } => {
                write!(f, "split_into must be at least 2, got {value}")
            }
            RecomposeConfigError::MergeNotBelowSplit { merge_saturation, split_saturation } => write!(
                f,
                "merge_saturation ({merge_saturation}) must be below split_saturation ({split_saturation})"
            ),
        }
    }
}

impl std::error::Error for RecomposeConfigError {}

/// A [`Recomposable`](crate::Recomposable) registration refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecomposableError {
    /// A variant named `""` or `"base"` (the name of the cell's own
    /// factory).
    VariantName {
        /// The refused name.
        name: String,
    },
    /// Two variants with one name.
    DuplicateVariant {
        /// The name registered twice.
        name: String,
    },
    /// `max_pool` above [`MAX_POOL`](crate::MAX_POOL) (a split spawns its
    /// members at once), or a stateless or keyed cell's below 2 (it could
    /// never be split).
    MaxPool {
        /// The refused value.
        value: usize,
    },
}

impl RecomposableError {
    /// The setting refused: `variant` or `max_pool`.
    pub fn field(&self) -> &'static str {
        match self {
            RecomposableError::VariantName { .. } | RecomposableError::DuplicateVariant { .. } => "variant",
            RecomposableError::MaxPool { .. } => "max_pool",
        }
    }
}

impl fmt::Display for RecomposableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecomposableError::VariantName { name } => {
                write!(f, "variant name {name:?} is reserved or empty")
            }
            RecomposableError::DuplicateVariant { name } => write!(f, "variant {name:?} is registered twice"),
            RecomposableError::MaxPool { value } => {
                write!(
                    f,
                    "max_pool must be at most {} (and at least 2 for a stateless or keyed cell), got {value}",
                    super::apply::MAX_POOL
                )
            }
        }
    }
}

impl std::error::Error for RecomposableError {}
