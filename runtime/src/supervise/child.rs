//! The interface between supervision and the cells it supervises, defined on
//! supervision's side.
//!
//! Supervision owns the tree and its decisions; the runtime owns running
//! cells. They meet here:
//!
//! - *Commands out*: [`SupervisedCell`] is what a [`Node`] may ask of a cell,
//!   its owner or one of its children: begin, stop, kill, restart, retire,
//!   refuse sends, abandon, and process the node's events in its turn.
//! - *Events in*: the runtime reports a child's start and exit, and drives
//!   its owner's part, through [`Node`]'s entry points (`child_started`,
//!   `child_exited`, `begin_owner_start`, `begin_owner_end`, `process`, …).
//!
//! `cell/instance.rs` implements [`SupervisedCell`]; nothing in `supervise/`
//! names the instance, its mailbox or its control messages.

use crate::path::CellPath;
use crate::sync::Arc;

use super::node::Node;

/// Why a supervisor stops a cell, as the cell's incarnation will report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChildStop {
    /// A [`Supervisor::stop`](crate::Supervisor::stop) with
    /// [`StopReason::Requested`](crate::StopReason::Requested) of a top-level
    /// supervisor.
    Requested,
    /// Its parent is stopping (or aborts a start).
    ParentStopped,
    /// Stopped on request (`terminate_child`, a shutdown stop of a top-level
    /// supervisor).
    Supervisor,
    /// Stopped to be restarted with its group.
    GroupRestart,
    /// Killed (`Shutdown::Kill`): the incarnation ends at its next system
    /// check without hooks; the instance is kept.
    Kill,
}

/// The commands a supervisor issues to a cell: its owner, or a child.
///
/// Each command is queued as a control request for the cell, ahead of its
/// user messages, and takes effect in the cell's own turn; none blocks.
pub(crate) trait SupervisedCell: Send + Sync + 'static {
    /// The instance id, unique in the runtime: a child's key in its node.
    fn id(&self) -> u64;
    /// The cell's path.
    fn path(&self) -> &CellPath;
    /// The Rust type of the cell.
    fn cell_kind(&self) -> &'static str;
    /// Schedules the first turn of a spawned (or replacing) instance, which
    /// starts it.
    fn begin(&self);
    /// Stops the incarnation after its current message, for `cause`.
    fn stop(&self, cause: ChildStop);
    /// Terminates the incarnation now, without hooks.
    fn kill(&self);
    /// Begins a new incarnation of a suspended (kept) cell.
    fn restart(&self);
    /// Terminates a suspended cell for good, in its own turn, dropping what
    /// is queued. Supervision closes its mailbox first (`refuse_sends`), so
    /// that nobody who learns of its end can still send to it.
    fn retire(&self);
    /// Closes the mailbox, and those of the children the cell keeps
    /// suspended: sends are refused from now on; what is queued stays until
    /// the cell ends.
    fn refuse_sends(&self);
    /// Gives up on a cell whose handler does not return: kills it (effective
    /// when the handler returns), closes its mailbox and drops what is
    /// queued; returns how many messages were dropped.
    fn abandon(&self) -> usize;
    /// Schedules the cell to process its node's pending events in its turn.
    fn supervise(&self);
    /// The cell's own supervision node, created on first use.
    fn node(&self) -> Arc<Node>;
    /// The node that restarts this cell while it lives; `None` for a
    /// top-level cell.
    fn supervisor(&self) -> Option<Arc<Node>>;
}
