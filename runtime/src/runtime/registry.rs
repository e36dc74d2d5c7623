//! The registry of live cells: spawn order, paths, and termination counts.

use std::collections::{BTreeMap, HashMap};

use crate::mailbox::SystemMsg;
use crate::path::CellPath;
use crate::sync::Arc;

/// The runtime's type-erased handle on one cell's lifecycle.
pub(crate) trait CellControl: Send + Sync + 'static {
    /// The cell's path.
    fn path(&self) -> &CellPath;
    /// Queues a control message and schedules the cell.
    fn send_system(&self, msg: SystemMsg);
    /// Whether the cell has terminated.
    fn is_terminated(&self) -> bool;
    /// Terminates the cell on the calling thread, without hooks, if no
    /// worker holds it. `false` when a worker holds it or it is done.
    fn try_kill_idle(&self) -> bool;
    /// Closes the mailbox and drops what is queued; returns how many.
    fn discard_queued(&self) -> usize;
}

/// Live cells and counters, behind the runtime's registry lock.
#[derive(Default)]
pub(crate) struct Registry {
    /// `false` once shutdown began: spawns are refused.
    pub(crate) accepting: bool,
    /// Live cells by id; ids grow with spawn order.
    pub(crate) cells: BTreeMap<u64, Arc<dyn CellControl>>,
    /// Which live cell owns each named path (`#<id>` paths are not indexed).
    pub(crate) paths: HashMap<CellPath, u64>,
    /// Cells terminated with hooks run, since the runtime started.
    pub(crate) stopped: usize,
    /// Cells terminated without hooks, since the runtime started.
    pub(crate) killed: usize,
    /// User messages dropped at termination, since the runtime started.
    pub(crate) undelivered: u64,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry { accepting: true, ..Registry::default() }
    }

    /// Live cells, latest spawned first.
    pub(crate) fn reverse_spawn_order(&self) -> Vec<Arc<dyn CellControl>> {
        self.cells.values().rev().cloned().collect()
    }
}
