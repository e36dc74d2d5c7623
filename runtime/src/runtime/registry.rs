//! The registry of live cells: spawn order, paths, and termination counts.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::failure::Failure;
use crate::mailbox::SystemMsg;
use crate::path::CellPath;
use crate::supervise::{Node, SupervisedCell};
use crate::sync::Arc;

/// The runtime's type-erased handle on one cell's lifecycle.
pub(crate) trait CellControl: Send + Sync + 'static {
    /// The instance id, unique in the runtime.
    fn id(&self) -> u64;
    /// The cell's path.
    fn path(&self) -> &CellPath;
    /// The Rust type of the cell.
    fn cell_kind(&self) -> &'static str;
    /// The cell's metrics, when the runtime observes its cells.
    /// The cell's metrics block, if it has one: an observed cell's is
    /// allocated by its first message (or failure, restart, refused send).
    fn metrics(&self) -> Option<&crate::observe::metrics::CellMetrics>;
    /// The metrics block of a cell of an observing runtime, allocated now
    /// if it has none yet.
    #[cfg(feature = "observe")]
    fn metrics_or_init(&self) -> &crate::observe::metrics::CellMetrics;
    /// Whether the runtime observes the cell: then a cell without a
    /// metrics block has counted nothing yet.
    #[cfg(feature = "observe")]
    fn is_observed(&self) -> bool;
    /// Messages waiting in the mailbox, and its capacity.
    fn mailbox_len(&self) -> (usize, usize);
    /// For the analysis window, before it reads the metrics: clears the
    /// cell's activity mark, so its next turn reports it again, and returns
    /// whether the cell was idle then (see `dispatch/state.rs`).
    fn take_active(&self) -> bool;
    /// Schedules the first turn, which starts the cell.
    fn begin(&self);
    /// Queues a control message and schedules the cell.
    fn send_system(&self, msg: SystemMsg);
    /// Whether the cell has terminated.
    fn is_terminated(&self) -> bool;
    /// Terminates the cell on the calling thread, without hooks, if no
    /// worker holds it. `false` when a worker holds it or it is done.
    fn try_kill_idle(&self) -> bool;
    /// Closes the mailbox, and those of the children the cell keeps
    /// suspended: sends are refused from now on; what is queued stays
    /// until the cell ends.
    fn refuse_sends(&self);
    /// Closes the mailbox and drops what is queued; returns how many.
    fn discard_queued(&self) -> usize;
    /// Gives up on a cell whose handler does not return: kills it (effective
    /// when the handler returns), closes its mailbox and drops what is
    /// queued; returns how many.
    fn abandon(&self) -> usize;
    /// The same cell, as supervision commands it.
    fn as_supervised(self: Arc<Self>) -> Arc<dyn SupervisedCell>;
    /// The restart intensity of the children it supervises, if it is a
    /// declared supervisor.
    fn restart_intensity(&self) -> Option<crate::supervise::RestartIntensity>;
    /// The node that restarts this cell (its supervisor's, or the parent
    /// cell's for a spawned child), while it lives; `None` for a top-level
    /// cell.
    fn supervisor(&self) -> Option<Arc<Node>>;
    /// For the deadline watchdog, read under the lock the handler's record
    /// is set under: whether a handler with a deadline runs, and the
    /// failure of one running past its deadline at `now` (once per call).
    fn report_overrun(&self, now: Instant) -> (bool, Option<Box<Failure>>);
}

/// The capacity of the live cells' table, in cells, above which it may
/// shrink (see [`Registry::remove_cell`]).
const SHRINK_ABOVE: usize = 4096;

/// Gives back the room of a table that fell below a quarter of it.
fn shrink_after_removal<V>(table: &mut IdMap<V>) {
    let (len, capacity) = (table.len(), table.capacity());
    if capacity > SHRINK_ABOVE && len < capacity / 4 {
        table.shrink_to(2 * len);
    }
}

/// Live cells and counters, behind the runtime's registry lock.
#[derive(Default)]
pub(crate) struct Registry {
    /// `false` once shutdown began: spawns are refused.
    pub(crate) accepting: bool,
    /// Live cells by id, in no order; ids grow with spawn order.
    pub(crate) cells: IdMap<Arc<dyn CellControl>>,
    /// Which live cell owns each named path (`#<id>` paths are not indexed).
    pub(crate) paths: HashMap<CellPath, u64>,
    /// Cells terminated with hooks run, since the runtime started.
    pub(crate) stopped: usize,
    /// Cells terminated without hooks, since the runtime started.
    pub(crate) killed: usize,
    /// User messages dropped at termination, since the runtime started.
    pub(crate) undelivered: u64,
    /// Ids of the cells terminated since the analysis window last took
    /// them; kept only while the runtime observes its cells.
    pub(crate) departed: Vec<u64>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry { accepting: true, ..Registry::default() }
    }

    /// Takes a cell out of the live ones. The table gives back its room
    /// when it falls below a quarter of it (keeping twice what it holds,
    /// so that it shrinks again only after halving again): a burst of a
    /// million cells, once ended, does not keep a million cells' table.
    pub(crate) fn remove_cell(&mut self, id: u64) {
        self.cells.remove(&id);
        shrink_after_removal(&mut self.cells);
    }

    /// Live cells with their ids, in spawn order.
    pub(crate) fn spawn_order(&self) -> Vec<(u64, Arc<dyn CellControl>)> {
        let mut cells: Vec<_> = self.cells.iter().map(|(id, cell)| (*id, cell.clone())).collect();
        cells.sort_unstable_by_key(|(id, _)| *id);
        cells
    }

    /// Live cells, latest spawned first.
    pub(crate) fn reverse_spawn_order(&self) -> Vec<Arc<dyn CellControl>> {
        self.spawn_order().into_iter().rev().map(|(_, cell)| cell).collect()
    }
}

/// A table keyed by cell id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Hashes cell ids with one multiplication (Fibonacci hashing): ids are
/// distinct integers handed out in sequence by the runtime, never chosen
/// by a caller, so they need no keyed hash; the multiplier is odd, so
/// consecutive ids fall in distinct buckets, and it spreads them into the
/// high bits the table's tags are read from.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl IdHasher {
    /// 2^64 divided by the golden ratio, odd.
    const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(byte)).wrapping_mul(Self::MULTIPLIER);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = (self.0 ^ id).wrapping_mul(Self::MULTIPLIER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_that_fell_below_a_quarter_gives_back_its_room() {
        let mut table: IdMap<()> = (0..100_000).map(|id| (id, ())).collect();
        let full = table.capacity();
        let mut shrinks = 0;
        for id in 0..99_000 {
            let before = table.capacity();
            table.remove(&id);
            shrink_after_removal(&mut table);
            if table.capacity() < before {
                shrinks += 1;
                // Twice what it holds, give or take the table's rounding.
                assert!(table.capacity() <= 4 * table.len().max(SHRINK_ABOVE), "{}", table.capacity());
            }
        }
        assert_eq!(table.len(), 1_000);
        assert!((1..=6).contains(&shrinks), "{shrinks} shrinks");
        assert!(table.capacity() <= full / 16, "{} of {full}", table.capacity());
        assert!((99_000..100_000).all(|id| table.contains_key(&id)));
    }

    #[test]
    fn a_small_table_keeps_its_room() {
        let mut table: IdMap<()> = (0..SHRINK_ABOVE as u64 / 2).map(|id| (id, ())).collect();
        let room = table.capacity();
        for id in 0..SHRINK_ABOVE as u64 / 2 {
            table.remove(&id);
            shrink_after_removal(&mut table);
        }
        assert_eq!(table.capacity(), room);
    }

    #[test]
    fn ids_hash_apart() {
        let hash = |id: u64| {
            let mut hasher = IdHasher::default();
            hasher.write_u64(id);
            hasher.finish()
        };
        let tags: std::collections::HashSet<u64> = (0..128).map(|id| hash(id) >> 57).collect();
        assert!(tags.len() > 64, "{} distinct tags of 128", tags.len());
        let buckets: std::collections::HashSet<u64> = (0..1024).map(|id| hash(id) & 1023).collect();
        assert_eq!(buckets.len(), 1024);
    }
}
