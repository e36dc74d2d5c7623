//! Request and reply: [`Reply`], the handle a cell answers through, and
//! [`Pending`], the caller's side.
//!
//! A reply is answered at most once. If the `Reply` is dropped unanswered
//! (the cell stopped, panicked, or forgot), the `Pending` resolves to
//! [`AskError::Unanswered`] at once: an ask never hangs on a dead cell. If the
//! caller gives up first (timeout, or dropping the `Pending`), a late
//! [`Reply::send`] hands the value back and nothing is kept.
//!
//! `Pending` works without any async runtime: `wait(timeout)` blocks the
//! calling thread; awaiting it (it implements `Future`) parks the task and is
//! woken by the reply.
//!
//! This module owns the reply slot both handles share: one allocation
//! holding a state word, the answer, and the waiter to wake. The state word
//! is a small lock-free state machine: waiting, then answered, unanswered
//! (the `Reply` was dropped) or closed (the caller gave up), each reached
//! from waiting by one compare-exchange, and closed again once the caller
//! took the answer; plus a flag saying that a waiter (a sleeping thread or
//! a task's waker) sits in the slot's lock.
//! The reply side writes the answer before its Release publishes it; a
//! waiter that did not see the answer within its spin leaves its
//! `Thread` or `Waker` behind the lock and raises the flag, and only then
//! does the reply side take that lock, to wake it. An ask answered while
//! the caller spins takes no lock at all. The loom model
//! `loom-tests/tests/ask.rs` checks that an ask resolves exactly once and
//! that no sleeping waiter is missed.

use std::fmt;
use std::future::Future;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use crate::dispatch::worker;
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::cell::UnsafeCell;
use crate::sync::{thread, CountedArc as Arc, Mutex};

/// How long [`Pending::wait`] keeps the thread awake for an answer before it
/// sleeps.
const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// The phase of a reply slot, in the low bits of its state word. Only the
/// reply side leaves `WAITING` for `READY` or `UNANSWERED`; only the caller's
/// side leaves it for `CLOSED`, and moves `READY` on to `CLOSED` when it
/// takes the answer.
const PHASE: usize = 0b11;
/// No answer yet.
const WAITING: usize = 0;
/// The answer is in the slot, not yet taken.
const READY: usize = 1;
/// The reply handle was dropped without an answer.
const UNANSWERED: usize = 2;
/// The caller took the result or gave up.
const CLOSED: usize = 3;
/// Set by the caller's side once its waiter (a thread or a waker) is behind
/// `Shared::waiter`: whoever resolves the slot then wakes it.
const WAITER: usize = 0b100;

/// What sleeps on an answer.
enum Waiter {
    /// A thread in `Pending::wait`, parked.
    Thread(thread::Thread),
    /// A task awaiting the `Pending`.
    Task(Waker),
}

impl Waiter {
    fn wake(self) {
        match self {
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::Task(waker) => waker.wake(),
        }
    }
}

struct Shared<T> {
    /// Phase and `WAITER` flag.
    state: AtomicUsize,
    /// The answer: written by the reply side while the phase is `WAITING`,
    /// published by its move to `READY`, read by the caller's side once.
    value: UnsafeCell<MaybeUninit<T>>,
    /// The waiter to wake, once the caller's side has raised `WAITER`.
    /// Locked only by a caller that sleeps or polls, and by a reply that
    /// finds the flag raised.
    waiter: Mutex<Option<Waiter>>,
}

// SAFETY: the slot moves a `T` from one thread to another, so `T: Send` is
// required and enough: the value is only ever accessed by one side at a
// time (the reply side before it publishes `READY`, the caller's side
// after it sees `READY` with Acquire), never shared by reference. Every
// other field is `Send + Sync` itself.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as for `Send`: through `&Shared` a thread can only reach the
// value when the state word gives it the value alone.
unsafe impl<T: Send> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// Moves the phase from `WAITING` to `to`, keeping the `WAITER` flag;
    /// wakes the waiter if the flag was raised. Returns the phase found
    /// instead when the slot had already left `WAITING`. Called by the
    /// reply side only.
    fn resolve(&self, to: usize) -> Result<(), usize> {
        let mut current = WAITING;
        loop {
            // AcqRel: Release publishes the answer written before; Acquire
            // pairs with the caller's Release when it raised `WAITER`, so
            // the waiter it left behind the lock is there to take.
            match self.state.compare_exchange_weak(current, to | (current & WAITER), AcqRel, Acquire) {
                Ok(_) => break,
                Err(found) if found & PHASE == WAITING => current = found,
                Err(found) => return Err(found & PHASE),
            }
        }
        if current & WAITER != 0 {
            let waiter = self.waiter.lock().take();
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
        Ok(())
    }

    /// Gives up on the answer: moves the phase from `WAITING` to `CLOSED`.
    /// Returns the phase found instead when the reply side resolved the
    /// slot first. Called by the caller's side only.
    fn close(&self) -> Result<(), usize> {
        let mut current = self.state.load(Acquire);
        loop {
            if current & PHASE != WAITING {
                return Err(current & PHASE);
            }
            // Acquire on failure: a `READY` found here is then taken.
            match self.state.compare_exchange_weak(current, CLOSED | (current & WAITER), Acquire, Acquire) {
                Ok(_) => return Ok(()),
                Err(found) => current = found,
            }
        }
    }

    /// The result of a resolved slot, whose phase (read with Acquire) is
    /// `phase`; the answer is taken out and the slot closed. `None` while
    /// the phase is still `WAITING`. Called by the caller's side only.
    fn take(&self, phase: usize) -> Option<Result<T, AskError>> {
        match phase {
            READY => {
                // The answer is moved out: mark the slot closed first, so
                // that neither a second take nor the slot's drop reads it
                // again. Relaxed: the reply side has left the slot for good.
                self.state.store(CLOSED, Relaxed);
                // SAFETY: the phase was `READY`, read with Acquire, so the
                // reply side wrote the value before its Release and never
                // touches it again; only the caller's side (this thread,
                // through `&mut Pending` or `Pending` by value) reads it,
                // once, since the phase is now `CLOSED`.
                Some(Ok(self.value.with_mut(|value| unsafe { (*value).assume_init_read() })))
            }
            UNANSWERED | CLOSED => Some(Err(AskError::Unanswered)),
            _ => None,
        }
    }

    /// The phase now, with Acquire: a `READY` seen here may be taken.
    #[inline]
    fn phase(&self) -> usize {
        self.state.load(Acquire) & PHASE
    }

    /// Puts `waiter` behind the lock and raises `WAITER`. Returns the phase
    /// the slot had then: while it is `WAITING`, whoever resolves the slot
    /// wakes the waiter.
    fn register(&self, waiter: Waiter) -> usize {
        *self.waiter.lock() = Some(waiter);
        // Release: the reply side that sees the flag (with Acquire) finds
        // the waiter; Acquire: a `READY` found here may be taken.
        self.state.fetch_or(WAITER, AcqRel) & PHASE
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Acquire: the last owner may not be the thread that wrote the
        // answer.
        if self.state.load(Acquire) & PHASE == READY {
            // SAFETY: `READY` means the value was written and not taken
            // (taking it moves the phase to `CLOSED`); this is the slot's
            // last owner, so no one else can read it.
            self.value.with_mut(|value| unsafe { (*value).assume_init_drop() });
        }
    }
}

/// Creates a connected reply handle and pending result.
pub(crate) fn channel<T>() -> (Reply<T>, Pending<T>) {
    channel_until(None)
}

/// [`channel`] for an ask that must be answered before `deadline`: the
/// handler reads it with [`Reply::deadline`].
pub(crate) fn channel_until<T>(deadline: Option<Instant>) -> (Reply<T>, Pending<T>) {
    let shared = Arc::new(Shared {
        state: AtomicUsize::new(WAITING),
        value: UnsafeCell::new(MaybeUninit::uninit()),
        waiter: Mutex::new(None),
    });
    (Reply { shared: Some(shared.clone()), deadline }, Pending { shared })
}

/// The handle a cell answers an ask through. Put it in the message.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, Context, Reply, Runtime};
///
/// enum Msg {
///     Add(u64),
///     Total(Reply<u64>),
/// }
///
/// #[derive(Default)]
/// struct Sum(u64);
///
/// impl Cell for Sum {
///     type Message = Msg;
///
///     fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Total(reply) => {
///                 // A caller that gave up gets nothing; the value comes back.
///                 let _ = reply.send(self.0);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let sum = runtime.spawn(Sum::default())?;
/// sum.try_send(Msg::Add(2)).unwrap();
/// sum.try_send(Msg::Add(3)).unwrap();
/// let total = sum.ask(Msg::Total).unwrap().wait(Duration::from_secs(5))?;
/// assert_eq!(total, 5);
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reply<T> {
    shared: Option<Arc<Shared<T>>>,
    deadline: Option<Instant>,
}

impl<T: Send + 'static> Reply<T> {
    /// Answers the ask. Hands `value` back when the caller already gave up.
    ///
    /// Inside a durable cell whose durability holds acknowledgements
    /// (`Durability::PerMessage`, `PerTurn`), the answer is held until the
    /// cell's state is flushed, and dropped (the ask resolves to
    /// [`AskError::Unanswered`]) if that fails; `send` then returns `Ok`.
    pub fn send(self, value: T) -> Result<(), T> {
        // Most answers are sent outside any durable cell: one flag says so.
        #[cfg(feature = "storage")]
        if held::is_holding() {
            return match held::hold(self, value) {
                Ok(()) => Ok(()),
                Err((me, value)) => me.deliver(value),
            };
        }
        self.deliver(value)
    }
}

impl<T> Reply<T> {
    /// A connected reply and answer, outside any ask: code that carries a
    /// request across a boundary the runtime does not see (a bridge to
    /// another process, say) builds the request around the `Reply` and
    /// waits for, or awaits, the [`Pending`] itself. `deadline` is what
    /// [`deadline`](Reply::deadline) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::Reply;
    ///
    /// let (reply, pending) = Reply::pair(None);
    /// reply.send(7).unwrap();
    /// assert_eq!(pending.wait(Duration::from_secs(1)), Ok(7));
    /// ```
    pub fn pair(deadline: Option<Instant>) -> (Reply<T>, Pending<T>) {
        channel_until(deadline)
    }

    fn deliver(mut self, value: T) -> Result<(), T> {
        let shared = self.shared.take().expect("a reply is answered at most once");
        // SAFETY: the phase is not `READY` (only this handle sets it, and
        // only here, once), so the caller's side never reads the value now;
        // this handle is the only writer. If the slot turns out closed, the
        // value is read back below before anyone else could look.
        shared.value.with_mut(|slot| unsafe { (*slot).write(value) });
        match shared.resolve(READY) {
            Ok(()) => Ok(()),
            // The caller gave up; `CLOSED` stays.
            // SAFETY: written just above, and the phase never became
            // `READY`, so the caller's side did not and will not take it.
            Err(_) => Err(shared.value.with_mut(|slot| unsafe { (*slot).assume_init_read() })),
        }
    }

    /// When the caller stops waiting, for an ask sent with
    /// [`Addr::ask_within`](crate::Addr::ask_within); `None` otherwise. Work
    /// that cannot finish before it is wasted: the answer would come back.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the caller has given up (timed out or dropped its `Pending`).
    pub fn is_abandoned(&self) -> bool {
        match &self.shared {
            Some(shared) => shared.phase() == CLOSED,
            None => true,
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            // Unanswered, unless the caller already gave up: then `CLOSED`
            // stays.
            let _ = shared.resolve(UNANSWERED);
        }
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").field("abandoned", &self.is_abandoned()).finish()
    }
}

/// The result of an ask, still to come.
///
/// Wait for it with [`wait`](Pending::wait), or `.await` it. Dropping it
/// abandons the ask: a late reply is handed back to the replying cell.
#[must_use = "an ask's result is lost unless it is waited for or awaited"]
pub struct Pending<T> {
    shared: Arc<Shared<T>>,
}

/// Why an ask produced no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// No answer before the timeout. A late answer is discarded.
    Timeout,
    /// The reply handle was dropped unanswered: the cell stopped, failed
    /// while handling the request, or did not answer.
    Unanswered,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Timeout => "ask timed out",
            AskError::Unanswered => "ask dropped unanswered",
        })
    }
}

impl std::error::Error for AskError {}

impl<T> Pending<T> {
    /// Blocks until the answer arrives, the reply is dropped unanswered, or
    /// `timeout` passes.
    ///
    /// The thread spins, then yields, for up to 50 µs before it sleeps:
    /// an answer that comes within that time is seen at once instead of
    /// after a wake-up, at the price of that much CPU time for a slow answer.
    /// The timeout is counted from the end of the first spin (a few
    /// microseconds at most), so an answer that comes at once costs no look
    /// at the clock.
    ///
    /// A zero `timeout` does not wait at all: the answer if it is already
    /// there, `Unanswered` if the reply was already dropped, otherwise
    /// `Timeout`, decided by one look at the state (no spinning), as
    /// [`try_take`](Pending::try_take) does.
    ///
    /// # Blocking a worker
    ///
    /// Called on a worker thread this blocks that worker: the runtime warns
    /// once per dispatcher through `tracing` (level `WARN`). Inside a cell, prefer the message-back pattern: put
    /// the asking cell's own address (or a message built from the answer)
    /// into the request, and let the answer arrive as a message of its own,
    /// so the worker goes on serving other cells meanwhile. On a runtime
    /// with one worker, a handler that waits for another cell's answer waits
    /// for the whole timeout: no other worker can run that cell. Before it
    /// blocks, the worker hands the cell it was about to run next to its
    /// dispatcher's shared queue, so asking a cell this handler just woke
    /// cannot wait on itself. A cell asking its own address is refused at
    /// once by [`Addr::ask`](crate::Addr::ask) with
    /// [`SendError::SelfAsk`](crate::SendError::SelfAsk).
    pub fn wait(self, timeout: Duration) -> Result<T, AskError> {
        if timeout.is_zero() {
            return self.take_now();
        }
        worker::warn_blocking_wait();
        worker::offload_next();
        // A reply usually comes within microseconds: spin a little before
        // sleeping, looking after every hint so that the answer is seen as
        // it lands.
        let resolved = || self.shared.phase() != WAITING;
        if !crate::sync::spin_until(resolved) {
            let deadline = Instant::now().checked_add(timeout);
            // Then keep yielding for a while: a thread that sleeps here is
            // woken tens of microseconds after the answer on a busy or
            // virtual machine, longer than most answers take (a restart and
            // the ask behind it take a few microseconds).
            if !crate::sync::yield_until(SPIN_BUDGET.min(timeout), resolved) {
                self.sleep(deadline);
            }
        }
        self.take_now()
    }

    /// Parks the thread until the slot is resolved or `deadline` passes
    /// (`None`: a deadline too far away to represent, no deadline).
    fn sleep(&self, deadline: Option<Instant>) {
        if self.shared.register(Waiter::Thread(thread::current())) != WAITING {
            return;
        }
        // The reply side now unparks this thread when it resolves the slot;
        // a wake-up can also be spurious, or left over from an earlier
        // unpark, so the state is looked at after each.
        while self.shared.phase() == WAITING {
            match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => thread::park_timeout(left),
                    _ => return,
                },
                None => thread::park(),
            }
        }
    }

    /// One look at the state: the result if the slot is resolved;
    /// otherwise the caller gives up and gets `Timeout`, unless the answer
    /// lands just then.
    fn take_now(self) -> Result<T, AskError> {
        let phase = self.shared.phase();
        if let Some(result) = self.shared.take(phase) {
            return result;
        }
        match self.shared.close() {
            Ok(()) => Err(AskError::Timeout),
            Err(phase) => self.shared.take(phase).unwrap_or(Err(AskError::Unanswered)),
        }
    }

    /// The answer if it has arrived, without blocking. `Ok(None)` while it
    /// is still to come.
    pub fn try_take(&mut self) -> Result<Option<T>, AskError> {
        match self.shared.take(self.shared.phase()) {
            Some(result) => result.map(Some),
            None => Ok(None),
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        // Give up: a reply still to come finds `CLOSED` and is handed back.
        // A resolved slot (the end of every ask that was waited for) is
        // left as it is: an answer not taken is dropped with the slot.
        let _ = self.shared.close();
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, AskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let shared = &self.shared;
        if let Some(result) = shared.take(shared.phase()) {
            return Poll::Ready(result);
        }
        // Leave the waker (this poll's: the task may have moved), then look
        // again: an answer that landed before the flag was raised did not
        // wake it.
        let phase = shared.register(Waiter::Task(cx.waker().clone()));
        match shared.take(phase) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pending(..)")
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn answer_before_wait_is_returned() {
        let (reply, pending) = channel();
        reply.send(5).unwrap();
        assert_eq!(pending.wait(Duration::from_secs(1)), Ok(5));
    }

    #[test]
    fn dropped_reply_resolves_to_unanswered_at_once() {
        let (reply, pending) = channel::<u8>();
        drop(reply);
        let started = Instant::now();
        assert_eq!(pending.wait(Duration::from_secs(60)), Err(AskError::Unanswered));
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn timeout_then_late_reply_is_handed_back() {
        let (reply, pending) = channel();
        assert_eq!(pending.wait(Duration::from_millis(1)), Err(AskError::Timeout));
        assert!(reply.is_abandoned());
        assert_eq!(reply.send(9), Err(9));
    }

    #[test]
    fn late_reply_value_is_dropped_not_leaked() {
        struct Counted(std::sync::Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        drop(pending);
        let value = reply.send(Counted(drops.clone())).unwrap_err();
        drop(value);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_zero_wait_takes_an_answer_already_there() {
        for _ in 0..1_000 {
            let (reply, pending) = channel();
            reply.send(3).unwrap();
            assert_eq!(pending.wait(Duration::ZERO), Ok(3));
        }
    }

    #[test]
    fn a_zero_wait_times_out_at_once_while_the_answer_is_to_come() {
        for _ in 0..1_000 {
            let (reply, pending) = channel::<u8>();
            assert_eq!(pending.wait(Duration::ZERO), Err(AskError::Timeout));
            assert!(reply.is_abandoned(), "the caller gave up: a late answer comes back");
            assert_eq!(reply.send(4), Err(4));
        }
    }

    #[test]
    fn a_zero_wait_on_a_dropped_reply_is_unanswered() {
        let (reply, pending) = channel::<u8>();
        drop(reply);
        assert_eq!(pending.wait(Duration::ZERO), Err(AskError::Unanswered));
    }

    #[test]
    fn a_pair_made_outside_an_ask_carries_its_deadline_and_resolves_unanswered_on_drop() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let (reply, pending) = Reply::<u8>::pair(Some(deadline));
        assert_eq!(reply.deadline(), Some(deadline));
        drop(reply);
        assert_eq!(pending.wait(Duration::from_secs(1)), Err(AskError::Unanswered));
    }

    #[test]
    fn try_take_sees_nothing_then_the_answer() {
        let (reply, mut pending) = channel();
        assert_eq!(pending.try_take(), Ok(None));
        reply.send("hi").unwrap();
        assert_eq!(pending.try_take(), Ok(Some("hi")));
    }

    /// A reply value that counts its drops.
    struct Counted(std::sync::Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_leaked_pending_then_a_reply_is_accepted_and_the_answer_kept_until_the_slot_goes() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        let pending = std::mem::ManuallyDrop::new(pending);
        assert!(!reply.is_abandoned(), "a leaked caller never gave up");
        assert!(reply.send(Counted(drops.clone())).is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the answer waits for a caller that never comes");
        // Only now does the caller's side let go: the answer goes with it.
        drop(std::mem::ManuallyDrop::into_inner(pending));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_answer_never_taken_is_dropped_once_with_the_pending() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        assert!(reply.send(Counted(drops.clone())).is_ok());
        drop(pending);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_taken_answer_is_dropped_once_by_its_taker() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, mut pending) = channel();
        assert!(reply.send(Counted(drops.clone())).is_ok());
        let answer = pending.try_take().unwrap().expect("the answer is there");
        assert_eq!(pending.try_take().map(|a| a.is_some()), Err(AskError::Unanswered), "taken once");
        drop(pending);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(answer);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_reply_dropped_while_the_caller_sleeps_wakes_it_with_unanswered() {
        let (reply, pending) = channel::<u8>();
        let cell = std::thread::spawn(move || {
            // Well past the spin budget: the caller is asleep by now.
            std::thread::sleep(Duration::from_millis(20));
            drop(reply);
        });
        let started = Instant::now();
        assert_eq!(pending.wait(Duration::from_secs(60)), Err(AskError::Unanswered));
        assert!(started.elapsed() < Duration::from_secs(30), "woken by the drop, not the timeout");
        cell.join().unwrap();
    }

    #[test]
    fn a_sleeping_caller_that_times_out_hands_a_late_answer_back() {
        let (reply, pending) = channel();
        // Past the spin budget, so the caller parks and then gives up.
        assert_eq!(pending.wait(Duration::from_millis(5)), Err(AskError::Timeout));
        assert!(reply.is_abandoned());
        assert_eq!(reply.send(11), Err(11));
    }

    /// A waker that counts its wake-ups.
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_polled_pending_is_woken_once_by_the_answer_and_then_ready() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let (reply, mut pending) = channel();
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending, "polled again, still to come");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        reply.send(8).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Ok(8)));
    }

    #[test]
    fn a_polled_then_waited_pending_gets_the_answer() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let (reply, mut pending) = channel();
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        let answer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            reply.send(12).unwrap();
        });
        assert_eq!(pending.wait(Duration::from_secs(60)), Ok(12));
        answer.join().unwrap();
    }

    #[test]
    fn answer_from_another_thread_wakes_the_waiter() {
        let (reply, pending) = channel();
        let answer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            reply.send(42).unwrap();
        });
        assert_eq!(pending.wait(Duration::from_secs(10)), Ok(42));
        answer.join().unwrap();
    }
}

/// Answers held back until a durable cell's state is flushed.
#[cfg(feature = "storage")]
pub(crate) mod held {
    use std::cell::{Cell, RefCell};

    use super::Reply;

    type Held = Box<dyn FnOnce() + Send>;

    thread_local! {
        /// Set while a durable cell's handler runs with acknowledgements held.
        static HELD: RefCell<Option<Vec<Held>>> = const { RefCell::new(None) };
        /// Whether `HELD` is set: read on every answer, so kept where
        /// reading it costs one load (no destructor to register, no borrow
        /// to check).
        static HOLDING: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether answers sent on this thread are held now.
    #[inline]
    pub(super) fn is_holding() -> bool {
        HOLDING.get()
    }

    /// Answers sent while holding, to release after the flush (or drop).
    #[derive(Default)]
    pub(crate) struct HeldReplies(Vec<Held>);

    impl HeldReplies {
        /// Delivers every answer. Inlined down to an emptiness check: most
        /// handlers hold nothing, and this runs after every one of them.
        #[inline]
        pub(crate) fn release(self) {
            if !self.0.is_empty() {
                Self::deliver(self.0);
            }
        }

        #[inline(never)]
        fn deliver(held: Vec<Held>) {
            for deliver in held {
                deliver();
            }
        }

        pub(crate) fn append(&mut self, mut other: HeldReplies) {
            self.0.append(&mut other.0);
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// From now on, answers sent on this thread are held.
    pub(crate) fn begin() {
        HELD.with(|held| *held.borrow_mut() = Some(Vec::new()));
        HOLDING.set(true);
    }

    /// Stops holding; returns what was held.
    pub(crate) fn end() -> HeldReplies {
        HOLDING.set(false);
        HeldReplies(HELD.with(|held| held.borrow_mut().take()).unwrap_or_default())
    }

    /// Holds `value` for `reply` if holding is on; otherwise hands both back.
    pub(super) fn hold<T: Send + 'static>(reply: Reply<T>, value: T) -> Result<(), (Reply<T>, T)> {
        HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(list) => {
                list.push(Box::new(move || drop(reply.deliver(value))));
                Ok(())
            }
            None => Err((reply, value)),
        })
    }
}
