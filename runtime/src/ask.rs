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
//! woken by the reply. The protocol is a small state machine behind one lock;
//! the loom model `loom-tests/tests/ask.rs` checks that it resolves exactly once.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use crate::dispatch::worker;
use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::{Arc, Condvar, Mutex};

/// How long [`Pending::wait`] keeps the thread awake for an answer before it
/// sleeps.
const SPIN_BUDGET: Duration = Duration::from_micros(50);

enum State<T> {
    /// No answer yet; the waker of an awaiting task, if any.
    Waiting(Option<Waker>),
    /// The answer, not yet taken.
    Ready(T),
    /// The reply handle was dropped without an answer.
    Unanswered,
    /// The caller took the result or gave up.
    Closed,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Set (Release, under the lock) once the state left `Waiting` on the
    /// reply side; lets `wait` spin briefly without taking the lock.
    resolved: AtomicBool,
}

/// Creates a connected reply handle and pending result.
pub(crate) fn channel<T>() -> (Reply<T>, Pending<T>) {
    channel_until(None)
}

/// [`channel`] for an ask that must be answered before `deadline`: the
/// handler reads it with [`Reply::deadline`].
pub(crate) fn channel_until<T>(deadline: Option<Instant>) -> (Reply<T>, Pending<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State::Waiting(None)),
        ready: Condvar::new(),
        resolved: AtomicBool::new(false),
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
        #[cfg(feature = "storage")]
        let (me, value) = match held::hold(self, value) {
            Ok(()) => return Ok(()),
            Err(back) => back,
        };
        #[cfg(not(feature = "storage"))]
        let me = self;
        me.deliver(value)
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
        let mut state = shared.state.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Waiting(waker) => {
                *state = State::Ready(value);
                shared.resolved.store(true, Release);
                drop(state);
                shared.ready.notify_all();
                if let Some(waker) = waker {
                    waker.wake();
                }
                Ok(())
            }
            // The caller gave up; `Closed` stays.
            _ => Err(value),
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
            Some(shared) => matches!(*shared.state.lock(), State::Closed),
            None => true,
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        let Some(shared) = self.shared.take() else { return };
        let mut state = shared.state.lock();
        if let State::Waiting(waker) = std::mem::replace(&mut *state, State::Unanswered) {
            shared.resolved.store(true, Release);
            drop(state);
            shared.ready.notify_all();
            if let Some(waker) = waker {
                waker.wake();
            }
        } else {
            // Already closed by the caller: keep it closed.
            *state = State::Closed;
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
        let deadline = Instant::now().checked_add(timeout);
        // A reply usually comes within microseconds: spin a little before
        // sleeping on the condition variable, looking after every hint so
        // that the answer is seen as it lands. Acquire pairs with the
        // Release on the reply side.
        let resolved = || self.shared.resolved.load(Acquire);
        if !crate::sync::spin_until(resolved) {
            // Then keep yielding for a while: a thread that sleeps here is
            // woken tens of microseconds after the answer on a busy or
            // virtual machine, longer than most answers take (a restart and
            // the ask behind it take a few microseconds).
            crate::sync::yield_until(SPIN_BUDGET.min(timeout), resolved);
        }
        let mut state = self.shared.state.lock();
        loop {
            match std::mem::replace(&mut *state, State::Closed) {
                State::Ready(value) => return Ok(value),
                State::Unanswered => return Err(AskError::Unanswered),
                State::Closed => return Err(AskError::Unanswered),
                waiting @ State::Waiting(_) => {
                    *state = waiting;
                    let left = match deadline {
                        Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                            Some(left) if !left.is_zero() => left,
                            _ => return Err(AskError::Timeout),
                        },
                        None => Duration::from_secs(3600),
                    };
                    state = self.shared.ready.wait_timeout(state, left).0;
                }
            }
        }
    }

    /// `wait(Duration::ZERO)`: one look at the state.
    fn take_now(self) -> Result<T, AskError> {
        let mut state = self.shared.state.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Ready(value) => Ok(value),
            State::Unanswered | State::Closed => Err(AskError::Unanswered),
            State::Waiting(_) => Err(AskError::Timeout),
        }
    }

    /// The answer if it has arrived, without blocking. `Ok(None)` while it
    /// is still to come.
    pub fn try_take(&mut self) -> Result<Option<T>, AskError> {
        let mut state = self.shared.state.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Ready(value) => Ok(Some(value)),
            State::Unanswered | State::Closed => Err(AskError::Unanswered),
            waiting @ State::Waiting(_) => {
                *state = waiting;
                Ok(None)
            }
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        // Resolved: the reply side has left the state for good (it sets the
        // flag, under the lock, as its last change), so there is no one to
        // tell. Acquire pairs with that Release. This is the end of every
        // ask that was waited for: no second lock.
        if self.shared.resolved.load(Acquire) {
            return;
        }
        // Give up: a reply still to come finds `Closed` and is handed back.
        *self.shared.state.lock() = State::Closed;
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, AskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut state = self.shared.state.lock();
        match std::mem::replace(&mut *state, State::Closed) {
            State::Ready(value) => Poll::Ready(Ok(value)),
            State::Unanswered | State::Closed => Poll::Ready(Err(AskError::Unanswered)),
            State::Waiting(_) => {
                *state = State::Waiting(Some(cx.waker().clone()));
                Poll::Pending
            }
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
    use std::cell::RefCell;

    use super::Reply;

    type Held = Box<dyn FnOnce() + Send>;

    thread_local! {
        /// Set while a durable cell's handler runs with acknowledgements held.
        static HELD: RefCell<Option<Vec<Held>>> = const { RefCell::new(None) };
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
    }

    /// Stops holding; returns what was held.
    pub(crate) fn end() -> HeldReplies {
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
