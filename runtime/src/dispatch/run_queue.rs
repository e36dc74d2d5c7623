//! The shared run queue of one dispatcher and how its idle workers sleep.
//!
//! A dispatcher's workers take cells from one FIFO. Cells scheduled from
//! inside a worker usually skip it through the worker's `next` slot (see
//! `worker.rs`); the FIFO holds cells scheduled from outside, cells that used
//! their budget, and cells pushed out of a `next` slot.
//!
//! # Sleeping without losing a wake-up
//!
//! A worker that finds nothing registers itself in `sleepers`, issues a SeqCst
//! fence, looks at the queue once more, and only then parks. A pusher adds the
//! task, issues a SeqCst fence and wakes a registered sleeper. The fences order
//! "register, then look" against "push, then look for sleepers": one side
//! always sees the other. Each worker has its own parker, and an unpark that
//! arrives before the park makes the park return at once (a worker leaves the
//! sleepers' list whenever its park returns, so the list names exactly the
//! workers asleep, which [`RunQueue::is_asleep`] reports). The loom model
//! `loom-tests/tests/dispatch_run_queue.rs` checks this.

use std::collections::VecDeque;

use crate::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering::*};
use crate::sync::{Condvar, Mutex};

use super::Task;

/// The capacity above which an emptied FIFO gives its room back, in cells.
/// A FIFO grows to the largest burst it held (a million spawns leave room
/// for a million cells, 16 B each); once that burst has been taken, keeping
/// the room would cost every idle cell its share.
const SHRINK_ABOVE: usize = 4096;

/// The room an emptied FIFO keeps after a burst, in cells: enough that
/// ordinary traffic never grows it again, a quarter of [`SHRINK_ABOVE`] so
/// that a queue cycling just above it does not shrink and grow every time.
const KEPT_AFTER_BURST: usize = 1024;

/// One worker's sleep flag.
#[derive(Debug, Default)]
struct Parker {
    woken: Mutex<bool>,
    cond: Condvar,
}

impl Parker {
    fn park(&self) {
        let mut woken = self.woken.lock();
        while !*woken {
            woken = self.cond.wait(woken);
        }
        *woken = false;
    }

    fn unpark(&self) {
        *self.woken.lock() = true;
        self.cond.notify_one();
    }
}

/// The FIFO of runnable cells of one dispatcher, and its sleeping workers.
pub(crate) struct RunQueue {
    tasks: Mutex<VecDeque<Task>>,
    len: AtomicUsize,
    sleepers: Mutex<Vec<usize>>,
    sleeping: AtomicUsize,
    parkers: Box<[Parker]>,
    shutdown: AtomicBool,
}

impl std::fmt::Debug for RunQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunQueue")
            .field("len", &self.len.load(Relaxed))
            .field("sleeping", &self.sleeping.load(Relaxed))
            .field("shutdown", &self.shutdown.load(Relaxed))
            .finish()
    }
}

impl RunQueue {
    pub(crate) fn new(workers: usize) -> Self {
        RunQueue {
            tasks: Mutex::new(VecDeque::new()),
            len: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::with_capacity(workers)),
            sleeping: AtomicUsize::new(0),
            parkers: (0..workers).map(|_| Parker::default()).collect(),
            shutdown: AtomicBool::new(false),
        }
    }

    /// Appends a runnable cell and wakes a sleeping worker if there is one.
    pub(crate) fn push(&self, task: Task) {
        {
            let mut tasks = self.tasks.lock();
            tasks.push_back(task);
            self.len.store(tasks.len(), Release);
        }
        self.wake_one();
    }

    /// Takes the oldest runnable cell.
    pub(crate) fn pop(&self) -> Option<Task> {
        if self.len.load(Acquire) == 0 {
            return None;
        }
        let mut tasks = self.tasks.lock();
        let task = tasks.pop_front();
        if tasks.is_empty() && tasks.capacity() > SHRINK_ABOVE {
            // A burst (a mass spawn) is over: give its room back.
            tasks.shrink_to(KEPT_AFTER_BURST);
        }
        self.len.store(tasks.len(), Release);
        task
    }

    /// Puts `task` at the back and takes the front, in one lock: a worker
    /// rotating a cell that used its budget.
    pub(crate) fn rotate(&self, task: Task) -> Task {
        let mut tasks = self.tasks.lock();
        match tasks.pop_front() {
            Some(front) => {
                tasks.push_back(task);
                front
            }
            None => task,
        }
    }

    /// Cells waiting now.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Acquire)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Acquire) == 0
    }

    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Acquire)
    }

    /// Makes every worker leave its loop, sleeping ones included.
    pub(crate) fn shut_down(&self) {
        self.shutdown.store(true, Release);
        for parker in self.parkers.iter() {
            parker.unpark();
        }
    }

    /// Drops every queued task; after shutdown, when no worker runs them.
    pub(crate) fn clear(&self) -> Vec<Task> {
        let mut tasks = self.tasks.lock();
        self.len.store(0, Release);
        tasks.drain(..).collect()
    }

    fn wake_one(&self) {
        // Pairs with the fence in `park`: see the module docs.
        fence(SeqCst);
        if self.sleeping.load(Relaxed) == 0 {
            return;
        }
        let woken = {
            let mut sleepers = self.sleepers.lock();
            let woken = sleepers.pop();
            if woken.is_some() {
                self.sleeping.fetch_sub(1, Relaxed);
            }
            woken
        };
        if let Some(index) = woken {
            self.parkers[index].unpark();
        }
    }

    /// Puts worker `index` to sleep until a push or shutdown wakes it.
    /// Returns at once when work or shutdown is already visible.
    pub(crate) fn park(&self, index: usize) {
        {
            let mut sleepers = self.sleepers.lock();
            sleepers.push(index);
            self.sleeping.fetch_add(1, Relaxed);
        }
        // Pairs with the fence in `wake_one`: see the module docs.
        fence(SeqCst);
        if self.len.load(Relaxed) > 0 || self.shutdown.load(Relaxed) {
            let mut sleepers = self.sleepers.lock();
            if let Some(pos) = sleepers.iter().position(|&i| i == index) {
                sleepers.swap_remove(pos);
                self.sleeping.fetch_sub(1, Relaxed);
            }
            // Otherwise a pusher already took us off the list and unparked
            // us: the stale token only makes a later park return early.
            return;
        }
        self.parkers[index].park();
        // Woken by a pusher (which took us off the list) or by a stale
        // token (and then we are still listed): either way, leave the list,
        // so that it names exactly the workers asleep.
        let mut sleepers = self.sleepers.lock();
        if let Some(pos) = sleepers.iter().position(|&i| i == index) {
            sleepers.swap_remove(pos);
            self.sleeping.fetch_sub(1, Relaxed);
        }
    }

    /// Whether every worker is asleep (always, for a dispatcher without
    /// workers) and no cell waits in the queue. Read under the sleepers'
    /// lock, which a worker releases after it leaves the list and before it
    /// runs anything: what the analysis window relies on to go dormant (see
    /// `dormancy.rs`).
    pub(crate) fn is_asleep(&self) -> bool {
        let sleepers = self.sleepers.lock();
        sleepers.len() == self.parkers.len() && self.len.load(Acquire) == 0
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;
    use crate::dispatch::{Runnable, TurnEnd};
    use crate::sync::Arc;

    struct Nothing;

    impl Runnable for Nothing {
        fn run_turn(&self, _budget: usize) -> TurnEnd {
            TurnEnd::Idle
        }
    }

    fn capacity(queue: &RunQueue) -> usize {
        queue.tasks.lock().capacity()
    }

    #[test]
    fn an_emptied_queue_gives_back_the_room_of_a_burst() {
        let queue = RunQueue::new(1);
        for _ in 0..10_000 {
            queue.push(Arc::new(Nothing));
        }
        assert!(capacity(&queue) >= 10_000);
        for left in (0..10_000).rev() {
            assert!(queue.pop().is_some());
            assert_eq!(queue.len(), left);
        }
        assert!(queue.pop().is_none());
        let kept = capacity(&queue);
        assert!((KEPT_AFTER_BURST..=SHRINK_ABOVE).contains(&kept), "kept room for {kept} cells");
    }

    #[test]
    fn a_queue_within_its_kept_room_is_not_shrunk() {
        let queue = RunQueue::new(1);
        for _ in 0..3 {
            for _ in 0..SHRINK_ABOVE {
                queue.push(Arc::new(Nothing));
            }
            while queue.pop().is_some() {}
        }
        assert!(capacity(&queue) >= SHRINK_ABOVE);
    }
}
