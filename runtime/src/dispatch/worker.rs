//! The loop each worker thread runs, and the worker-local `next` slot.
//!
//! # Locality
//!
//! A cell scheduled by a handler running on a worker goes into that worker's
//! `next` slot instead of the shared queue: it runs right after the current
//! turn, on the same thread, with no cross-thread wake-up. This is what makes
//! a message to an idle cell cheap (a ring of cells passes its token without
//! leaving the core). Fairness limits:
//!
//! - a slot holds one cell; scheduling another pushes the older one out to
//!   the shared queue, where other workers can take it;
//! - before a turn handles its second and later messages, a filled slot is
//!   pushed out, so a long turn never holds another cell back;
//! - after `NEXT_STREAK_LIMIT` consecutive slot runs, the worker serves the
//!   shared queue first.

use std::cell::{Cell, RefCell};

use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{thread, Arc};

use super::{Dispatcher, Task, TurnEnd};

/// Consecutive `next`-slot runs before the shared queue gets a turn.
const NEXT_STREAK_LIMIT: u32 = 64;
/// Yields on an empty queue, after spinning, before parking.
const PARK_YIELDS: u32 = 4;

struct WorkerLocal {
    /// The dispatcher this thread works for.
    dispatcher: Arc<Dispatcher>,
}

thread_local! {
    static LOCAL: RefCell<Option<WorkerLocal>> = const { RefCell::new(None) };
    /// `LOCAL`'s dispatcher as a bare pointer (null off workers): what a
    /// handler's send compares its target's dispatcher with, at the cost
    /// of one load (no destructor to register, no borrow to check). Only
    /// compared, never dereferenced.
    static WORKER_OF: Cell<*const Dispatcher> = const { Cell::new(std::ptr::null()) };
    /// The `next` slot: a plain cell, taken and replaced whole, with no
    /// borrow flag.
    static NEXT: Cell<Option<Task>> = const { Cell::new(None) };
    /// Whether `NEXT` holds a cell: read before every message but a turn's
    /// first (see `offload_next`), so kept where reading it costs one load.
    static NEXT_FILLED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread is a worker of any dispatcher.
#[inline]
pub(crate) fn on_worker_thread() -> bool {
    !WORKER_OF.get().is_null()
}

/// Readies the calling thread to block waiting for an answer
/// (`Pending::wait`). On a worker: warns, once per dispatcher, that a
/// handler blocks the worker, and moves the `next` cell to the shared queue
/// (see [`offload_next`]), so the cell waited on can run elsewhere. Off
/// workers, where asks usually wait, it costs one thread-local load: a
/// thread that is no worker never fills a `next` slot.
#[inline]
pub(crate) fn before_blocking_wait() {
    if on_worker_thread() {
        worker_blocks();
    }
}

#[cold]
#[inline(never)]
fn worker_blocks() {
    warn_blocking_wait();
    offload_next();
}

/// Warns, once per dispatcher, that a call blocks one of its worker
/// threads (`Pending::wait` inside a handler).
fn warn_blocking_wait() {
    LOCAL.with(|local| {
        let local = local.borrow();
        let Some(worker) = local.as_ref() else { return };
        // Relaxed: a flag that only decides whether to log.
        if !worker.dispatcher.warned_blocking.swap(true, Relaxed) {
            tracing::warn!(
                dispatcher = %worker.dispatcher.name,
                "a handler blocks its worker thread waiting for an answer; send the answer back as a \
                 message instead (warned once per dispatcher)"
            );
        }
    });
}

/// Puts `task` in this thread's `next` slot when the thread is a worker of
/// `dispatcher`. Hands the task back otherwise; when the slot was full, hands
/// back its previous occupant instead, for the shared queue.
#[inline]
pub(crate) fn try_schedule_local(dispatcher: &Dispatcher, task: Task) -> Option<Task> {
    if !std::ptr::eq(WORKER_OF.get(), dispatcher) {
        return Some(task);
    }
    NEXT_FILLED.set(true);
    NEXT.replace(Some(task))
}

/// Moves this worker's `next` cell to the shared queue, so other workers can
/// run it while the current turn goes on.
#[inline]
pub(crate) fn offload_next() {
    if !NEXT_FILLED.replace(false) {
        return;
    }
    let Some(task) = NEXT.take() else { return };
    LOCAL.with(|local| match local.borrow().as_ref() {
        Some(worker) => worker.dispatcher.queue.push(task),
        None => drop(task),
    });
}

fn take_next() -> Option<Task> {
    if !NEXT_FILLED.replace(false) {
        return None;
    }
    NEXT.take()
}

/// Clears the thread-locals on every exit path, panics included.
struct LocalGuard;

impl Drop for LocalGuard {
    fn drop(&mut self) {
        // First: whatever dropping the leftovers runs sees no worker here.
        WORKER_OF.set(std::ptr::null());
        NEXT_FILLED.set(false);
        let next = NEXT.take();
        let leftover = LOCAL.with(|local| local.borrow_mut().take());
        drop(next);
        drop(leftover);
    }
}

/// The body of worker thread `index` of `dispatcher`.
pub(crate) fn run(dispatcher: Arc<Dispatcher>, index: usize) {
    LOCAL.with(|local| *local.borrow_mut() = Some(WorkerLocal { dispatcher: dispatcher.clone() }));
    WORKER_OF.set(Arc::as_ptr(&dispatcher));
    let _guard = LocalGuard;
    let queue = &dispatcher.queue;
    let mut streak = 0_u32;
    tracing::trace!(dispatcher = %dispatcher.name, index, "worker started");
    while !queue.is_shutdown() {
        let task = match take_next() {
            Some(task) if streak < NEXT_STREAK_LIMIT => {
                streak += 1;
                Some(task)
            }
            Some(task) => {
                streak = 0;
                Some(queue.rotate(task))
            }
            None => {
                streak = 0;
                queue.pop()
            }
        };
        match task {
            Some(task) => run_task(&dispatcher, task),
            None => {
                if !spin_for_work(&dispatcher) {
                    queue.park(index);
                    // After leaving the sleepers' list: see `dormancy.rs`.
                    dispatcher.activity.mark();
                }
            }
        }
    }
    // Tasks left in `next` at shutdown belong to cells being torn down.
    drop(take_next());
    tracing::trace!(dispatcher = %dispatcher.name, index, "worker stopped");
}

fn run_task(dispatcher: &Dispatcher, task: Task) {
    loop {
        match task.run_turn(dispatcher.throughput) {
            TurnEnd::Idle | TurnEnd::Done | TurnEnd::Parked => return,
            TurnEnd::Yield => {
                // The cell kept its run token: run it again when nothing else
                // waits, otherwise send it to the back of the queue.
                if dispatcher.queue.is_empty() && !has_next() {
                    continue;
                }
                dispatcher.queue.push(task);
                return;
            }
        }
    }
}

fn has_next() -> bool {
    NEXT_FILLED.get()
}

/// Spins briefly for new work before the worker parks; `true` when some
/// arrived or shutdown began.
fn spin_for_work(dispatcher: &Dispatcher) -> bool {
    let work = || !dispatcher.queue.is_empty() || dispatcher.queue.is_shutdown();
    // Look after every busy-wait hint, so that a push (an ask from a
    // thread, usually) is picked up as it lands; then yield a few times, as
    // a crossbeam `Backoff` ends its wait, before parking.
    if crate::sync::spin_until(work) {
        return true;
    }
    for _ in 0..PARK_YIELDS {
        thread::yield_now();
        if work() {
            return true;
        }
    }
    false
}
