//! [`RecomposeError`]: why the engine refused a call or could not apply a
//! plan.

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
            #[cfg(feature = "storage")]
            RecomposeError::Storage { error, .. } => Some(error),
            _ => None,
        }
    }
}
