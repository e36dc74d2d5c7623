//! The interface between supervision and the cells it supervises, defined on
//! supervision's side.
//!
//! Supervision owns the tree and its decisions; the runtime owns running
//! cells. They meet here:
//!
//! - *Commands out*: [`SupervisedCell`] is what a [`Node`] may ask of a cell,
//!   its owner or one of its children: begin, stop, kill, restart, retire,
//!   refuse sends, abandon, and process the node's events in its turn.
//! - *Services*: [`Services`] is what a node needs of the runtime: the cell
//!   behind an id, whether the runtime is shutting down, timers, the
//!   undelivered-message count; [`SpawnChild`] spawns a child instance from
//!   a [`ChildRequest`] (a trait of the cell type, since the spawn is
//!   generic over it).
//! - *Events in*: the runtime reports a child's start and exit, and drives
//!   its owner's part, through [`NodeLink`], the node as instances hold it
//!   (`child_started`, `child_exited`, `begin_owner_start`, `begin_owner_end`,
//!   `process`, …).
//!
//! `cell/instance.rs` implements [`SupervisedCell`] and `runtime/services.rs`
//! implements [`Services`] and [`SpawnChild`]; nothing in `supervise/` names
//! the runtime, the instance, its mailbox or its control messages. What a
//! child is made from ([`Origin`]) and what it knows of its spec
//! ([`Supervised`]) are supervision's words, which the instance keeps.

use std::any::Any;
use std::time::Duration;

use crate::address::Addr;
use crate::cell::{Cell, CellConfig, SpawnError};
use crate::path::CellPath;
use crate::sync::Arc;
use crate::timer::TimerHandle;

use super::info::RestartIntensity;
use super::node::{ChildExit, Node, NodeSeed, Outcome};
use super::spec::{Factory, Restart, RetryPolicy};
use super::start::ChildName;

/// How an instance is given its cell value.
pub(crate) enum Origin<C> {
    /// One value: the cell cannot be restarted in place.
    Value(C),
    /// A factory from a child spec, called at each start.
    Factory(Factory<C>),
    /// A first value, then the factory at each restart: a child that
    /// recomposition starts under a supervisor, whose factory it has called
    /// once already to see that it makes a cell.
    Seeded(C, Factory<C>),
    /// A durable cell: restored from its saved state at each start, from
    /// the factory when nothing was saved.
    #[cfg(feature = "storage")]
    Durable(Factory<C>, Arc<dyn crate::store::durable::Persist<C>>),
}

/// What a supervised instance knows of its spec.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Supervised {
    pub(crate) restart: Restart,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) deadline: Option<Duration>,
}

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
    /// The cell's own supervision node, if it has one (a declared
    /// supervisor has one from its spawn on; another cell makes its node by
    /// spawning its first child).
    fn node(&self) -> Option<Arc<Node>>;
    /// The node that restarts this cell while it lives; `None` for a
    /// top-level cell.
    fn supervisor(&self) -> Option<Arc<Node>>;
}

/// A supervision node as the cell instances around it reach it: its owner
/// drives its part (start, end, the events processed in its turn), its
/// children report their starts and exits. [`Node`] is the one
/// implementation.
///
/// Instances hold their own node and their supervisor's as `dyn NodeLink`,
/// never as `Node`, although every cell's turn can reach a node: the
/// coercion from `Node` happens only where a node is made (a cell spawning
/// its first child, a supervisor starting) or a child is spawned, so a
/// program that never supervises links none of supervision's logic.
pub(crate) trait NodeLink: Send + Sync + 'static {
    /// The node itself, for the supervising code that works on it.
    fn node(self: Arc<Self>) -> Arc<Node>;
    /// The owner's path: its children's paths are below it.
    fn path(&self) -> &CellPath;
    /// The owner's dispatcher: its children run there unless their config
    /// says otherwise.
    fn dispatcher(&self) -> &str;
    /// Whether the node is a declared supervisor (it starts static children
    /// with each incarnation of its owner).
    fn is_supervisor(&self) -> bool;
    /// A child's incarnation started.
    fn child_started(&self, key: u64);
    /// A child's incarnation ended. A child kept for a restart by a node
    /// whose owner is gone retires itself.
    fn child_exited(&self, key: u64, exit: ChildExit);
    /// Processes every pending event; returns what the owner must do.
    /// Called by the owner's turn only.
    fn process(&self) -> Vec<Outcome>;
    /// The owner's new incarnation starts: static children start in order.
    fn begin_owner_start(&self);
    /// The owner's incarnation ends: its children stop in reverse order.
    fn begin_owner_end(&self);
    /// Whether the owner's ending may go on (no operation pending).
    fn children_stopped(&self) -> bool;
    /// The owner terminated for good: every child goes with it.
    fn retire_all(&self);
    /// The owner was killed: so are its children.
    fn kill_all(&self);
    /// The owner is retired for good: the children it keeps suspended
    /// refuse sends from now on.
    fn refuse_kept_sends(&self);
    /// The restart intensity as of now.
    fn intensity(&self) -> RestartIntensity;
}

/// What supervision needs of the runtime, besides spawning ([`SpawnChild`]).
pub(crate) trait Services: Send + Sync + 'static {
    /// The live cell with instance id `id`, if any.
    fn cell(&self, id: u64) -> Option<Arc<dyn SupervisedCell>>;
    /// Whether the runtime is shutting down: nothing is restarted then.
    fn is_shutting_down(&self) -> bool;
    /// Runs `action` once on the timer thread after `delay`. It must not
    /// block.
    fn call_after(&self, delay: Duration, action: Box<dyn FnOnce() + Send>) -> TimerHandle;
    /// Counts `messages` user messages of the cell at `path` as undelivered
    /// (an abandoned child's).
    fn count_undelivered(&self, path: &CellPath, messages: usize);
    /// The runtime itself, for its own [`SpawnChild`] implementation to
    /// find it behind a node.
    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync>;
}

/// A child instance to spawn under `parent`'s node; see [`SpawnChild`].
pub(crate) struct ChildRequest<'a, C: Cell> {
    pub(crate) parent: &'a Arc<Node>,
    pub(crate) name: ChildName,
    pub(crate) config: CellConfig,
    pub(crate) origin: Origin<C>,
    pub(crate) supervised: Supervised,
    /// Set for a declared supervisor.
    pub(crate) seed: Option<NodeSeed>,
    /// An address whose terminated target the new instance replaces.
    pub(crate) existing: Option<Addr<C::Message>>,
}

/// A spawned child, not yet begun: its address and the cell to command.
pub(crate) type SpawnedChild<C> = (Addr<<C as Cell>::Message>, Arc<dyn SupervisedCell>);

/// Spawns child instances of a cell type. The runtime implements it for
/// every [`Cell`], so supervision can spawn any cell without naming the
/// runtime: the spawn is generic over the cell, which a method of the
/// object-safe [`Services`] cannot be.
pub(crate) trait SpawnChild: Cell {
    /// Creates and registers an instance under the parent's node (not
    /// begun: the caller records it, then calls [`SupervisedCell::begin`]).
    fn spawn_child(request: ChildRequest<'_, Self>) -> Result<SpawnedChild<Self>, SpawnError>;
}
