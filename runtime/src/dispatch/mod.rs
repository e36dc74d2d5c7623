//! Dispatchers: named pools of worker threads that run cells.
//!
//! - `state.rs`: the per-cell state word (idle → scheduled → running, the
//!   admission gate, closed and done flags).
//! - `run_queue.rs`: a dispatcher's shared queue of runnable cells and how its
//!   idle workers sleep.
//! - `worker.rs`: the worker loop and its `next` slot for locality.
//! - `group.rs`: cell groups, a concurrency limit across dispatchers, and
//!   how a member over the limit waits without holding a worker.
//!
//! A dispatcher is also a bulkhead: cells assigned to it run only on its
//! workers, so a group of cells that blocks or spins cannot take threads from
//! cells on another dispatcher.
//!
//! # Groups
//!
//! A *group* ([`Builder::group`](crate::Builder::group),
//! [`CellConfig::group`](crate::CellConfig::group)) is a finer bulkhead: at
//! most `max_concurrent` of its cells run a turn at the same time, whatever
//! dispatcher each runs on. A member the group cannot admit does not wait on
//! a worker: it is parked in the group and the worker moves on to other
//! cells. When a member's turn ends, the oldest parked member gets its
//! permit and goes back on its own dispatcher's run queue. So a slow group
//! shares its dispatcher without taking more than `max_concurrent` workers
//! from it, and no message is lost or handled twice on the way.
//! [`Runtime::group_stats`](crate::Runtime::group_stats) shows what a group
//! does. Cells outside any group pay one branch per turn.
//!
//! # Turns
//!
//! A worker runs one cell at a time for one *turn*: up to `throughput` user
//! messages, system messages first. A cell with work left after its turn goes
//! to the back of the queue when other cells wait, or runs again at once when
//! none does. Idle workers spin briefly, then block: an idle runtime uses no CPU.

pub(crate) mod group;
pub(crate) mod run_queue;
pub(crate) mod state;
pub(crate) mod worker;

use std::fmt;

use crate::dormancy::ActivityGate;
use crate::sync::atomic::AtomicBool;
use crate::sync::{thread, Arc, Mutex};

use self::run_queue::RunQueue;

/// How a turn ended, as reported by the cell to its worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TurnEnd {
    /// The cell went idle: a later message will schedule it again.
    Idle,
    /// The cell still holds its run token and has work: enqueue it again.
    Yield,
    /// The cell terminated.
    Done,
    /// The cell's group was full: the cell is parked there, holding its run
    /// token, and the group reschedules it (see `group.rs`).
    Parked,
}

/// Something a worker can run: a cell, behind its type.
pub(crate) trait Runnable: Send + Sync + 'static {
    /// Runs one turn of at most `budget` user messages. The caller holds the
    /// run token (the state is `SCHEDULED`).
    fn run_turn(&self, budget: usize) -> TurnEnd;
}

/// A runnable cell as the run queues hold it.
pub(crate) type Task = Arc<dyn Runnable>;

/// A named pool of worker threads and its run queue.
pub(crate) struct Dispatcher {
    pub(crate) name: Arc<str>,
    pub(crate) throughput: usize,
    pub(crate) queue: RunQueue,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
    workers: usize,
    /// Marked by each worker that wakes up: the runtime's analysis window
    /// sleeps while every worker does (see `dormancy.rs`).
    pub(crate) activity: Arc<ActivityGate>,
    /// Set (never cleared) by the first blocking wait on one of its
    /// workers, which is warned about once (`worker::before_blocking_wait`).
    pub(crate) warned_blocking: AtomicBool,
}

impl fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("name", &self.name)
            .field("workers", &self.workers)
            .field("throughput", &self.throughput)
            .finish()
    }
}

impl Dispatcher {
    /// Starts `workers` threads named `cellrt-{name}-{index}`; none for a
    /// dispatcher the application drives (`Runtime::run_once`).
    pub(crate) fn start(
        name: &str,
        workers: usize,
        throughput: usize,
        activity: Arc<ActivityGate>,
    ) -> std::io::Result<Arc<Self>> {
        let dispatcher = Arc::new(Dispatcher {
            name: name.into(),
            throughput,
            queue: RunQueue::new(workers),
            threads: Mutex::new(Vec::with_capacity(workers)),
            workers,
            activity,
            warned_blocking: AtomicBool::new(false),
        });
        for index in 0..workers {
            let worker = dispatcher.clone();
            let spawned = thread::Builder::new()
                .name(format!("cellrt-{name}-{index}"))
                .spawn(move || worker::run(worker, index));
            match spawned {
                Ok(handle) => dispatcher.threads.lock().push(handle),
                Err(err) => {
                    dispatcher.stop_workers();
                    return Err(err);
                }
            }
        }
        Ok(dispatcher)
    }

    /// Number of worker threads.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Makes a runnable cell run. From one of this dispatcher's workers it
    /// goes to that worker's `next` slot; otherwise to the shared queue.
    #[inline]
    pub(crate) fn schedule(&self, task: Task) {
        if let Some(task) = worker::try_schedule_local(self, task) {
            self.queue.push(task);
        }
    }

    /// Tells every worker to leave its loop after its current turn.
    pub(crate) fn stop_workers(&self) {
        self.queue.shut_down();
    }

    /// Takes the join handles of the workers, for the runtime to join.
    pub(crate) fn take_threads(&self) -> Vec<thread::JoinHandle<()>> {
        std::mem::take(&mut *self.threads.lock())
    }
}
