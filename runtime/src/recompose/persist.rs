//! Kept plans across process restarts: each managed cell's kept plans, in
//! the order they were kept, in the storage's `sys/recompose` tree (key: the
//! cell's path; value: a list of [`KeptPlan`]s, bincode). When a runtime on
//! the same data directory manages the cell again, the engine applies them
//! again, in order ([`Restored`]).

use super::error::RecomposeError;
use super::plan::Action;
#[cfg(feature = "storage")]
use crate::path::CellPath;
#[cfg(feature = "storage")]
use crate::runtime::RuntimeShared;
#[cfg(feature = "storage")]
use crate::store::StoreError;

/// A plan kept (or a kept plan reverted by hand: its inverse), as stored.
#[cfg(feature = "storage")]
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct KeptPlan {
    /// The plan's id in the run that kept it.
    pub(crate) plan: u64,
    pub(crate) actions: Vec<Action>,
}

/// The kept plans of the cell at `cell`, oldest first; none when nothing was
/// kept or the runtime has no storage.
#[cfg(feature = "storage")]
pub(crate) fn load(shared: &RuntimeShared, cell: &CellPath) -> Result<Vec<KeptPlan>, StoreError> {
    match shared.recompositions() {
        Ok(tree) => Ok(tree.get::<Vec<KeptPlan>>(cell.as_str())?.unwrap_or_default()),
        Err(StoreError::Disabled) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Adds `kept` to the cell's kept plans and flushes.
#[cfg(feature = "storage")]
pub(crate) fn append(shared: &RuntimeShared, cell: &CellPath, kept: KeptPlan) -> Result<(), StoreError> {
    let tree = match shared.recompositions() {
        Ok(tree) => tree,
        Err(StoreError::Disabled) => return Ok(()),
        Err(err) => return Err(err),
    };
    let mut plans = tree.get::<Vec<KeptPlan>>(cell.as_str())?.unwrap_or_default();
    plans.push(kept);
    tree.put(cell.as_str(), &plans)?;
    tree.flush()
}

/// A kept plan of an earlier run that could not be applied again.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RestoreWarning {
    /// The plan's id in the run that kept it.
    pub plan: u64,
    /// The action that failed; it and the actions after it were not applied.
    pub action: Option<Action>,
    /// Why.
    pub error: RestoreError,
}

/// Why a kept plan could not be applied again.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RestoreError {
    /// The stored plans could not be read.
    #[cfg(feature = "storage")]
    Storage(crate::store::StoreError),
    /// Applying the action failed (an unknown variant, a kind not seen yet, …).
    Apply(RecomposeError),
}

impl std::fmt::Display for RestoreWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.action, &self.error) {
            (Some(action), RestoreError::Apply(err)) => {
                write!(f, "kept plan {} not applied again: {action}: {err}", self.plan)
            }
            #[cfg(feature = "storage")]
            (_, RestoreError::Storage(err)) => write!(f, "kept plans not read: {err}"),
            (None, RestoreError::Apply(err)) => write!(f, "kept plan {} not applied again: {err}", self.plan),
        }
    }
}

/// What [`Recomposer::manage`](crate::Recomposer::manage) restored of an
/// earlier run's kept plans (with storage; empty without).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Restored {
    /// The ids (in the run that kept them) of the plans applied again, in order.
    pub plans: Vec<u64>,
    /// The plan that could not be applied again, and why: it and the plans
    /// after it were not applied.
    pub warning: Option<RestoreWarning>,
}
