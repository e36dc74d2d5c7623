//! Timers: messages a cell schedules to itself, after a delay or every period.
//!
//! One timer thread per runtime, started on first use, sleeps until the
//! earliest deadline. A runtime that schedules no timer starts no thread. A
//! thread-less runtime has none: the application's `Runtime::run_once`
//! fires the timers that are due ([`TimerService::fire_due`]) and
//! `Runtime::next_deadline` says when the next one is.
//! Timers hold a [`WeakAddr`], so a pending timer never keeps a cell
//! reachable; a cell's timers are cancelled when it stops.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use crate::address::WeakAddr;
use crate::mailbox::SendError;
use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::{thread, Arc, Condvar, Mutex};

/// Retry interval for a one-shot message that found the mailbox full.
const FULL_RETRY: Duration = Duration::from_millis(1);
/// The shortest period of an interval timer.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// A scheduled timer. Cancel it with [`TimerHandle::cancel`]; dropping the
/// handle does not cancel it.
#[derive(Clone)]
pub struct TimerHandle {
    flags: Arc<TimerFlags>,
}

#[derive(Default)]
struct TimerFlags {
    cancelled: AtomicBool,
    finished: AtomicBool,
}

impl TimerHandle {
    /// Cancels the timer: nothing more is delivered. A message already in
    /// the mailbox stays there.
    pub fn cancel(&self) {
        self.flags.cancelled.store(true, Release);
    }

    /// Whether the timer was cancelled, or has delivered its last message.
    pub fn is_finished(&self) -> bool {
        self.flags.cancelled.load(Acquire) || self.flags.finished.load(Acquire)
    }
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle").field("finished", &self.is_finished()).finish()
    }
}

/// What a timer does when it fires; returns its next deadline, if any.
trait Job: Send {
    fn fire(&mut self, now: Instant) -> Option<Instant>;
}

struct Once<M> {
    target: WeakAddr<M>,
    msg: Option<M>,
}

impl<M: Send + 'static> Job for Once<M> {
    fn fire(&mut self, now: Instant) -> Option<Instant> {
        let msg = self.msg.take()?;
        let addr = self.target.upgrade()?;
        match addr.try_send(msg) {
            Err(SendError::Full(msg)) => {
                self.msg = Some(msg);
                Some(now + FULL_RETRY)
            }
            _ => None,
        }
    }
}

struct Interval<M, F> {
    target: WeakAddr<M>,
    make: F,
    period: Duration,
    next: Instant,
}

impl<M: Send + 'static, F: FnMut() -> M + Send> Job for Interval<M, F> {
    fn fire(&mut self, now: Instant) -> Option<Instant> {
        let addr = self.target.upgrade()?;
        // A full mailbox skips this tick; a closed one ends the timer.
        if let Err(SendError::Closed(_)) = addr.try_send((self.make)()) {
            return None;
        }
        self.next += self.period;
        if self.next <= now {
            // Missed ticks are not made up.
            self.next = now + self.period;
        }
        Some(self.next)
    }
}

/// A runtime-internal action: runs once, or again after the delay it returns.
struct Action<F>(F);

impl<F: FnMut() -> Option<Duration> + Send> Job for Action<F> {
    fn fire(&mut self, now: Instant) -> Option<Instant> {
        (self.0)().map(|delay| now.checked_add(delay).unwrap_or_else(far_future))
    }
}

struct Entry {
    at: Instant,
    seq: u64,
    flags: Arc<TimerFlags>,
    job: Box<dyn Job>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// Reversed, so the max-heap yields the earliest deadline.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

#[derive(Default)]
struct Queue {
    heap: BinaryHeap<Entry>,
    seq: u64,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

/// The timer thread of one runtime.
#[derive(Default)]
pub(crate) struct TimerService {
    shared: Arc<Shared>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
    /// Set for a thread-less runtime: no thread, `fire_due` instead.
    driven: bool,
}

impl fmt::Debug for TimerService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerService").field("pending", &self.shared.queue.lock().heap.len()).finish()
    }
}

impl TimerService {
    /// Timers fired by the application's calls to `fire_due`, no thread.
    pub(crate) fn driven() -> Self {
        TimerService { driven: true, ..TimerService::default() }
    }

    /// Fires the timers due at `now` (those that come due while they fire
    /// wait for the next call); returns how many fired.
    pub(crate) fn fire_due(&self, now: Instant) -> usize {
        let mut fired = 0;
        let mut queue = self.shared.queue.lock();
        // Bounded by the entries pending now: one rescheduled while firing
        // (at `now` if its delay is zero) waits for the next call.
        let mut budget = queue.heap.len();
        while budget > 0 && !queue.shutdown && queue.heap.peek().is_some_and(|top| top.at <= now) {
            budget -= 1;
            let Some(entry) = queue.heap.pop() else { break };
            drop(queue);
            fired += usize::from(!entry.flags.cancelled.load(Acquire));
            queue = fire(&self.shared, entry, now);
        }
        fired
    }

    /// When the earliest pending timer is due.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.shared.queue.lock().heap.peek().map(|top| top.at)
    }

    pub(crate) fn send_after<M: Send + 'static>(
        &self,
        target: WeakAddr<M>,
        delay: Duration,
        msg: M,
    ) -> TimerHandle {
        let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        self.add(at, Box::new(Once { target, msg: Some(msg) }))
    }

    pub(crate) fn send_interval<M: Send + 'static>(
        &self,
        target: WeakAddr<M>,
        period: Duration,
        make: impl FnMut() -> M + Send + 'static,
    ) -> TimerHandle {
        let period = period.max(MIN_PERIOD);
        let at = Instant::now().checked_add(period).unwrap_or_else(far_future);
        self.add(at, Box::new(Interval { target, make, period, next: at }))
    }

    /// Runs `action` on the timer thread after `delay`, and again after each
    /// delay it returns. It must not block: it runs among every other timer.
    pub(crate) fn call_after(
        &self,
        delay: Duration,
        action: impl FnMut() -> Option<Duration> + Send + 'static,
    ) -> TimerHandle {
        let at = Instant::now().checked_add(delay).unwrap_or_else(far_future);
        self.add(at, Box::new(Action(action)))
    }

    fn add(&self, at: Instant, job: Box<dyn Job>) -> TimerHandle {
        let flags = Arc::new(TimerFlags::default());
        {
            let mut queue = self.shared.queue.lock();
            if queue.shutdown {
                flags.finished.store(true, Release);
                return TimerHandle { flags };
            }
            queue.seq += 1;
            let seq = queue.seq;
            queue.heap.push(Entry { at, seq, flags: flags.clone(), job });
        }
        self.shared.changed.notify_one();
        self.ensure_thread();
        TimerHandle { flags }
    }

    fn ensure_thread(&self) {
        if self.driven {
            return;
        }
        let mut thread = self.thread.lock();
        if thread.is_some() {
            return;
        }
        let shared = self.shared.clone();
        match thread::Builder::new().name("cellrt-timer".into()).spawn(move || run(&shared)) {
            Ok(handle) => *thread = Some(handle),
            Err(err) => tracing::error!(%err, "cannot start the timer thread; timers will not fire"),
        }
    }

    /// Stops the thread and drops every pending timer.
    pub(crate) fn shut_down(&self) {
        let pending = {
            let mut queue = self.shared.queue.lock();
            queue.shutdown = true;
            std::mem::take(&mut queue.heap)
        };
        for entry in pending.iter() {
            entry.flags.finished.store(true, Release);
        }
        drop(pending);
        self.shared.changed.notify_all();
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

fn run(shared: &Shared) {
    let mut queue = shared.queue.lock();
    while !queue.shutdown {
        let now = Instant::now();
        let Some(top) = queue.heap.peek() else {
            queue = shared.changed.wait(queue);
            continue;
        };
        if top.at > now {
            let wait = top.at - now;
            queue = shared.changed.wait_timeout(queue, wait).0;
            continue;
        }
        let Some(entry) = queue.heap.pop() else { continue };
        drop(queue);
        queue = fire(shared, entry, now);
    }
}

/// Fires `entry`, taken off the heap, and puts it back if it runs again;
/// returns the queue's lock.
fn fire(shared: &Shared, mut entry: Entry, now: Instant) -> crate::sync::MutexGuard<'_, Queue> {
    let next = if entry.flags.cancelled.load(Acquire) {
        None
    } else {
        // `make` of an interval is user code: a panic ends that timer only.
        catch_unwind(AssertUnwindSafe(|| entry.job.fire(now))).unwrap_or_else(|_| {
            tracing::error!("a timer's message factory panicked; the timer is cancelled");
            None
        })
    };
    let mut queue = shared.queue.lock();
    match next {
        Some(at) if !queue.shutdown => {
            entry.at = at;
            queue.seq += 1;
            entry.seq = queue.seq;
            queue.heap.push(entry);
        }
        _ => entry.flags.finished.store(true, Release),
    }
    queue
}
