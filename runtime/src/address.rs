//! Addresses: [`Addr<M>`], a handle to a *contract* (the message type `M`),
//! and the slot behind it that says which target currently serves it.
//!
//! An address does not point at a cell instance. It points at a slot, and the
//! slot points at a target: today one cell, later a router over several. The
//! runtime can swap the target ([`Runtime::replace`](crate::Runtime::replace))
//! while senders keep using the same address.
//!
//! # Replacing the target without losing, duplicating or reordering
//!
//! Senders hold the slot's read lock for one non-blocking push. A replace
//! takes the write lock, so no sender is mid-push, publishes the successor
//! and closes the old target's gate. The successor starts *held*: it queues
//! what senders now send it but handles none of it yet. The old target keeps
//! handling the message it may be in the middle of; when it stops (at its
//! next system check, or at once if idle), it takes what is left in its
//! queues and [`Handover::retire`]s into the successor, which puts those
//! messages ahead of its own queue and starts handling. So every message is
//! handled exactly once, each sender's messages in the order sent, and never
//! by two cells at the same time. A sender blocked for room on the old target
//! is woken by the close and retries through the slot.
//!
//! A replace while the current target is still held (its own predecessor has
//! not handed over) is refused: the caller retries later. The loom model
//! `loom-tests/tests/address_replace.rs` checks the protocol.
//!
//! # Sending from inside a cell
//!
//! [`Addr::send`] and [`Addr::send_timeout`] block only on threads that are
//! not workers. Called from a cell's hook (on a worker thread) they never
//! block: a full mailbox is reported at once as [`SendError::Full`], exactly
//! like [`Addr::try_send`]. Blocking a worker on another cell's mailbox could
//! deadlock the pool (two cells on one worker filling each other's
//! mailboxes); a full mailbox is backpressure the cell must handle (retry
//! later with `send_after`, shed, or report).
//!
//! # Rejections are counted once per send
//!
//! A send that finds the mailbox full counts one rejection in the cell's
//! metrics (`rejected_full`), whatever happens next: a blocking or async
//! send that then waits offers the message again, and those offers are not
//! counted (the offer runs inside [`offer_again`], which the target reads).

use std::fmt;
use std::hash::{Hash, Hasher};
#[cfg(any(feature = "tokio", cellrt_loom))]
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::ask::{self, Pending, Reply};
use crate::dispatch::worker::on_worker_thread;
use crate::flow::{Shedding, SheddingStats};
#[cfg(any(feature = "tokio", cellrt_loom))]
use crate::mailbox::SpaceWaiter;
use crate::mailbox::{Envelope, Mailbox, Regroup, SendError};
use crate::path::CellPath;
use crate::runtime::CellControl;
use crate::supervise::Watchers;
use crate::sync::{Arc, Backoff, Mutex, RwLock, Weak};

thread_local! {
    /// Set while this thread offers a message again after a full mailbox
    /// refused it, for the target not to count that refusal twice.
    static OFFERING_AGAIN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the send running on this thread offers its message again (see
/// the module docs): a refusal as full is then not counted.
#[inline]
pub(crate) fn offering_again() -> bool {
    OFFERING_AGAIN.with(std::cell::Cell::get)
}

/// Runs `offer` as a repeated offer of a message already refused as full.
fn offer_again<R>(offer: impl FnOnce() -> R) -> R {
    /// Clears the flag on every way out, a panic included.
    struct Again;
    impl Drop for Again {
        fn drop(&mut self) {
            OFFERING_AGAIN.with(|again| again.set(false));
        }
    }
    OFFERING_AGAIN.with(|again| again.set(true));
    let _again = Again;
    offer()
}

/// What can stand behind an address: something that takes messages of type `M`.
pub(crate) trait Deliver<M>: Send + Sync + 'static {
    /// Takes `msg` without blocking, or hands it back (`Full` or `Closed`).
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>>;
    /// [`try_deliver`](Deliver::try_deliver) for a message that is not to
    /// be handled after `deadline`. Targets that cannot carry a deadline
    /// deliver it as a plain message.
    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        let _ = deadline;
        self.try_deliver(msg)
    }
    /// Whether an offer of `msg` may succeed now, or would fail otherwise
    /// than by a full queue (the target closed): a look that writes
    /// nothing. A sender waiting for room spins on it rather than on
    /// offers, each of which would write to what the target's worker
    /// touches. Targets without a cheap answer say `true`.
    fn may_take(&self, msg: &M) -> bool {
        let _ = msg;
        true
    }
    /// Blocks until there may be room for `msg`, the target closes, or
    /// `deadline` passes (then `false`).
    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool;
    /// The async counterpart of [`wait_for_space`](Deliver::wait_for_space):
    /// leaves `waker` with `waiter`, to be woken when there may be room for
    /// `msg` or the target closes. Returns `true` when that is so already
    /// (the caller offers the message again at once).
    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool;
    /// Replaced by `successor`: closes to new messages, finishes the message
    /// in hand, then hands what is queued to `successor` and stops.
    fn hand_over(&self, successor: Arc<dyn Deliver<M>>);
    /// Takes a predecessor's leftovers ahead of its own queue and starts
    /// handling (lifts the hold).
    fn release(&self, moved: Vec<Envelope<M>>);
    /// Whether the target still waits for its predecessor's leftovers.
    fn is_held(&self) -> bool;
    /// Messages waiting.
    fn queued(&self) -> usize;
    /// Capacity of the queue.
    fn capacity(&self) -> usize;
    /// The lifecycle handle of the cell behind this target, if it is a cell.
    fn control(&self) -> Option<Arc<dyn CellControl>>;
    /// Whether a supervisor restarts the cell behind this target.
    fn is_supervised(&self) -> bool;
    /// The address's shedding policy refused a message meant for this
    /// target: counted in the cell's metrics, if it keeps any.
    fn note_shed(&self) {}
    /// The member addresses, when this target is a router.
    fn members(&self) -> Option<Vec<Addr<M>>> {
        None
    }
    /// Runs `regroup` on the cell's queued user messages at its next system
    /// check (between two messages, on its worker: no message is taken
    /// meanwhile) and puts back what it returns, ahead of what was queued
    /// since; or, if the cell terminates first, as it terminates. Hands
    /// `regroup` back when the target is not a cell or has terminated.
    fn regroup(&self, regroup: Regroup<M>) -> Result<(), Regroup<M>> {
        Err(regroup)
    }
}

/// What an address routes to: the target, and the admission policy applied
/// before it.
struct Route<M> {
    target: Arc<dyn Deliver<M>>,
    shedding: Option<Arc<Shedding<M>>>,
}

impl<M: Send + 'static> Route<M> {
    /// Applies the shedding policy, then offers `msg` to the target.
    #[inline]
    fn deliver(&self, msg: M, expires: Option<Instant>) -> Result<(), SendError<M>> {
        let msg = match &self.shedding {
            None => msg,
            Some(policy) => match policy.admit(msg, self.target.queued(), self.target.capacity()) {
                Ok(msg) => msg,
                Err(shed) => {
                    self.target.note_shed();
                    return Err(shed);
                }
            },
        };
        match expires {
            None => self.target.try_deliver(msg),
            Some(deadline) => self.target.try_deliver_until(msg, deadline),
        }
    }
}

/// The indirection behind an address.
pub(crate) struct Slot<M> {
    route: RwLock<Route<M>>,
    path: CellPath,
    send_timeout: Duration,
    watchers: Watchers,
}

impl<M: Send + 'static> Slot<M> {
    pub(crate) fn new(target: Arc<dyn Deliver<M>>, path: CellPath, send_timeout: Duration) -> Self {
        Slot {
            route: RwLock::new(Route { target, shedding: None }),
            path,
            send_timeout,
            watchers: Watchers::default(),
        }
    }

    pub(crate) fn watchers(&self) -> &Watchers {
        &self.watchers
    }

    #[inline]
    pub(crate) fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.try_send_until(msg, None)
    }

    /// Sends without blocking a message that is not to be handled after
    /// `expires`, if given.
    #[inline]
    pub(crate) fn try_send_until(&self, msg: M, expires: Option<Instant>) -> Result<(), SendError<M>> {
        self.route.read().deliver(msg, expires)
    }

    /// Sets or clears the address's shedding policy.
    pub(crate) fn set_shedding(&self, policy: Option<Arc<Shedding<M>>>) {
        self.route.write().shedding = policy;
    }

    pub(crate) fn shedding(&self) -> Option<Arc<Shedding<M>>> {
        self.route.read().shedding.clone()
    }

    /// Sends, blocking off worker threads until there is room or `deadline`;
    /// the message is not to be handled after `expires`, if given. `offered`:
    /// the caller already offered it once and found the mailbox full (that
    /// rejection is counted; the offers made here are not).
    pub(crate) fn send_until(
        &self,
        mut msg: M,
        deadline: Instant,
        expires: Option<Instant>,
        offered: bool,
    ) -> Result<(), SendError<M>> {
        let backoff = Backoff::new();
        let mut again = offered;
        loop {
            let target = {
                let route = self.route.read();
                let offer = |msg| route.deliver(msg, expires);
                let offered = if again { offer_again(|| offer(msg)) } else { offer(msg) };
                again = true;
                match offered {
                    Err(SendError::Full(back)) => {
                        msg = back;
                        route.target.clone()
                    }
                    other => return other,
                }
            };
            if on_worker_thread() {
                return Err(SendError::Full(msg));
            }
            if !backoff.is_completed() {
                // Spins until the target may take the message, looking
                // without writing: a refused offer writes the cell's state
                // word twice.
                loop {
                    backoff.snooze();
                    if backoff.is_completed() || target.may_take(&msg) {
                        break;
                    }
                }
                continue;
            }
            if !target.wait_for_space(&msg, deadline) {
                // One last attempt: room may have appeared at the deadline.
                return offer_again(|| self.try_send_until(msg, expires)).map_err(|err| match err {
                    SendError::Full(m) => SendError::Timeout(m),
                    other => other,
                });
            }
        }
    }

    /// One step of an async send: offers the message in `msg` and, while the
    /// target is full, leaves the task's waker with `waiter` on the target
    /// that refused it (see `mailbox/space.rs`). Ready with the outcome, the
    /// message taken out of `msg`; pending with the message put back and the
    /// waker registered. With `give_up` (the caller's deadline passed), a
    /// full target is the end: `Timeout` with the message.
    ///
    /// A target that closes wakes its waiters; the next step offers through
    /// the slot again, so a sender waiting on a replaced cell moves to its
    /// successor. `msg` must hold the message: an empty one is a step polled
    /// after its future completed.
    #[cfg(any(feature = "tokio", cellrt_loom))]
    pub(crate) fn poll_send(
        &self,
        msg: &mut Option<M>,
        expires: Option<Instant>,
        waiter: &mut SpaceWaiter,
        waker: &Waker,
        give_up: bool,
    ) -> std::task::Poll<Result<(), SendError<M>>> {
        use std::task::Poll;
        let Some(mut pending) = msg.take() else {
            panic!("an async send was polled after it completed");
        };
        // A waiter still registered has offered before and was refused.
        let mut again = waiter.is_in_list();
        waiter.offering();
        loop {
            let target = {
                let route = self.route.read();
                let offer = |msg| route.deliver(msg, expires);
                let offered = if again { offer_again(|| offer(pending)) } else { offer(pending) };
                again = true;
                match offered {
                    Err(SendError::Full(back)) => {
                        pending = back;
                        route.target.clone()
                    }
                    Ok(()) => {
                        waiter.delivered();
                        return Poll::Ready(Ok(()));
                    }
                    refused => {
                        waiter.cancel();
                        return Poll::Ready(refused);
                    }
                }
            };
            if give_up {
                waiter.cancel();
                return Poll::Ready(Err(SendError::Timeout(pending)));
            }
            // `true`: room appeared or the target closed since the offer.
            if !target.register_for_space(&pending, waiter, waker) {
                *msg = Some(pending);
                return Poll::Pending;
            }
        }
    }

    /// Swaps the target for `new`, which must be held; see the module docs.
    /// Hands `new` back when the current target is itself still held.
    pub(crate) fn replace(&self, new: Arc<dyn Deliver<M>>) -> Result<(), Arc<dyn Deliver<M>>> {
        let mut route = self.route.write();
        let target = &mut route.target;
        if target.is_held() {
            return Err(new);
        }
        let old = std::mem::replace(target, new.clone());
        // Still under the write lock: no sender reaches `old` through the
        // slot any more, and its gate closes before anyone can look again.
        old.hand_over(new);
        Ok(())
    }

    /// Puts `new` behind the address in place of a target that terminated
    /// for good (a supervisor starting a child afresh). Hands `new` back if
    /// the current target still runs.
    pub(crate) fn reinstall(&self, new: Arc<dyn Deliver<M>>) -> Result<(), Arc<dyn Deliver<M>>> {
        let mut route = self.route.write();
        if !route.target.control().is_some_and(|c| c.is_terminated()) {
            return Err(new);
        }
        route.target = new;
        self.watchers.revive();
        Ok(())
    }

    pub(crate) fn current(&self) -> Arc<dyn Deliver<M>> {
        self.route.read().target.clone()
    }

    /// Points the address at `new` in place of `expected`, with no hand-over:
    /// for targets that keep `expected` running inside them (recomposition
    /// wraps a cell in a router or a by-kind route, and unwraps it again).
    /// Senders hold the read lock for one push, so every send after the
    /// swap reaches `new`, and every one before it reached `expected`.
    /// Hands `new` back when the current target is no longer `expected`.
    /// The loom model `loom-tests/tests/recompose_apply.rs` checks it
    /// against racing senders and a racing replace.
    pub(crate) fn swap(
        &self,
        expected: &Arc<dyn Deliver<M>>,
        new: Arc<dyn Deliver<M>>,
    ) -> Result<(), Arc<dyn Deliver<M>>> {
        let mut route = self.route.write();
        if !Arc::ptr_eq(&route.target, expected) {
            return Err(new);
        }
        route.target = new;
        Ok(())
    }
}

enum HandoverState<M> {
    /// No replace asked for this target's messages.
    Serving,
    /// A replace is waiting for this target's leftovers.
    Pending(Arc<dyn Deliver<M>>),
    /// The target stopped; its leftovers went to the successor or were dropped.
    Retired,
}

/// How a replaced target gives what it still holds to its successor, exactly
/// once, whether the target stops before or after the replace asks.
pub(crate) struct Handover<M> {
    state: Mutex<HandoverState<M>>,
}

impl<M: Send + 'static> Handover<M> {
    pub(crate) fn new() -> Self {
        Handover { state: Mutex::new(HandoverState::Serving) }
    }

    /// The replacer's side: `successor` is to receive this target's leftovers
    /// when it stops. Hands `successor` back when the target already stopped
    /// (its leftovers were dropped then); the caller releases it empty.
    pub(crate) fn request(&self, successor: Arc<dyn Deliver<M>>) -> Result<(), Arc<dyn Deliver<M>>> {
        let mut state = self.state.lock();
        match *state {
            HandoverState::Serving => {
                *state = HandoverState::Pending(successor);
                Ok(())
            }
            HandoverState::Pending(_) | HandoverState::Retired => Err(successor),
        }
    }

    /// The target's side, as it stops for good with no message in hand:
    /// closes `mailbox`, takes what it holds, and gives it to the successor if
    /// a replace asked for it. Returns the messages no one will handle.
    pub(crate) fn retire(&self, mailbox: &Mailbox<M>) -> Vec<Envelope<M>> {
        let mut state = self.state.lock();
        mailbox.close();
        let leftovers = mailbox.take_user();
        match std::mem::replace(&mut *state, HandoverState::Retired) {
            HandoverState::Pending(successor) => {
                drop(state);
                successor.release(leftovers);
                Vec::new()
            }
            HandoverState::Serving | HandoverState::Retired => leftovers,
        }
    }

    /// The successor's side: runs `accept` on a predecessor's leftovers
    /// unless this target already stopped, in which case they come back.
    pub(crate) fn accept<R>(
        &self,
        msgs: Vec<Envelope<M>>,
        accept: impl FnOnce(Vec<Envelope<M>>) -> R,
    ) -> Result<R, Vec<Envelope<M>>> {
        let state = self.state.lock();
        match *state {
            HandoverState::Retired => Err(msgs),
            HandoverState::Serving | HandoverState::Pending(_) => Ok(accept(msgs)),
        }
    }
}

/// A cloneable, thread-safe handle for sending `M` to whatever cell currently
/// serves this address.
///
/// Obtained from [`Runtime::spawn`](crate::Runtime::spawn) or
/// [`Context::spawn`](crate::Context::spawn). Two addresses are equal when
/// they are clones of the same address.
///
/// # Sending
///
/// | method | when the mailbox is full | from inside a cell |
/// |---|---|---|
/// | [`try_send`](Addr::try_send) | `Full(m)` at once | same |
/// | [`send`](Addr::send) | blocks up to the runtime's send timeout, then `Timeout(m)` | `Full(m)` at once |
/// | [`send_timeout`](Addr::send_timeout) | blocks up to the given timeout, then `Timeout(m)` | `Full(m)` at once |
///
/// Every error hands the message back. Once the cell stopped, sends return
/// `Closed(m)`. An address with a [`Shedding`] policy returns `Shed(m)` at
/// once, without waiting, for a message whose class is past its watermark.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, Context, Runtime, SendError};
///
/// struct Sink;
/// impl Cell for Sink {
///     type Message = u32;
///     fn handle(&mut self, ctx: &mut Context<Self>, n: u32) -> Result<(), CellError> {
///         if n == 0 {
///             ctx.stop();
///         }
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().worker_threads(1).build()?;
/// let sink = runtime.spawn(Sink)?;
/// sink.send(1)?;
/// sink.send(0)?;
/// # let deadline = std::time::Instant::now() + Duration::from_secs(5);
/// # while !sink.is_closed() && std::time::Instant::now() < deadline {
/// #     std::thread::sleep(Duration::from_millis(1));
/// # }
/// // The cell stopped itself: the message comes back.
/// assert_eq!(sink.try_send(7), Err(SendError::Closed(7)));
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Addr<M> {
    slot: Arc<Slot<M>>,
}

impl<M: Send + 'static> Addr<M> {
    pub(crate) fn from_slot(slot: Arc<Slot<M>>) -> Self {
        Addr { slot }
    }

    pub(crate) fn slot(&self) -> &Arc<Slot<M>> {
        &self.slot
    }

    /// Sends without blocking.
    ///
    /// # Errors
    ///
    /// `Full(msg)` when the mailbox is at capacity, `Closed(msg)` when the
    /// cell has stopped.
    #[inline]
    pub fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.slot.try_send(msg)
    }

    /// Sends, waiting for room up to the runtime's send timeout
    /// ([`Builder::send_timeout`](crate::Builder::send_timeout)). On a worker
    /// thread, never blocks (see the module docs).
    ///
    /// # Errors
    ///
    /// `Timeout(msg)` when no room appeared in time, `Full(msg)` on a worker
    /// thread, `Closed(msg)` when the cell has stopped.
    pub fn send(&self, msg: M) -> Result<(), SendError<M>> {
        self.send_timeout(msg, self.slot.send_timeout)
    }

    /// Sends, waiting for room at most `timeout`. On a worker thread, never
    /// blocks (see the module docs). A zero `timeout` does not wait: it
    /// sends as [`try_send`](Addr::try_send) does, `Full(msg)` included.
    ///
    /// # Errors
    ///
    /// As [`send`](Addr::send).
    pub fn send_timeout(&self, msg: M, timeout: Duration) -> Result<(), SendError<M>> {
        // The common case needs no clock: only a full mailbox starts the wait.
        let mut msg = match self.slot.try_send(msg) {
            Err(SendError::Full(msg)) if !timeout.is_zero() => msg,
            other => return other,
        };
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.slot.send_until(msg, deadline, None, true),
            // A timeout too far away to represent: wait in long slices.
            None => loop {
                let deadline = Instant::now() + Duration::from_secs(3600);
                match self.slot.send_until(msg, deadline, None, true) {
                    Err(SendError::Timeout(back)) => msg = back,
                    other => return other,
                }
            },
        }
    }

    /// Sends a request built around a fresh [`Reply`] and returns the
    /// [`Pending`] answer. Sends like [`send`](Addr::send).
    ///
    /// # Errors
    ///
    /// As [`send`](Addr::send); the rejected request comes back inside.
    /// `SelfAsk(request)` at once, with nothing sent, when called from a
    /// handler (or hook) of the very cell this address serves: that cell
    /// could only answer after the handler returns, so a wait for the
    /// answer would always last its whole timeout. Send the cell a message
    /// instead, or do the work in place.
    pub fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> M) -> Result<Pending<T>, SendError<M>> {
        let (reply, pending) = ask::channel();
        let request = make(reply);
        if self.is_own_address() {
            return Err(SendError::SelfAsk(request));
        }
        self.send(request)?;
        Ok(pending)
    }

    /// Whether the calling thread runs a turn of the cell this address
    /// serves (see `Addr::ask`).
    #[inline]
    fn is_own_address(&self) -> bool {
        crate::failure::running_slot() == Arc::as_ptr(&self.slot) as *const () as usize
    }

    /// Sends a request built around a fresh [`Reply`] that must be answered
    /// within `timeout`, and returns the [`Pending`] answer.
    ///
    /// The timeout travels with the message as a deadline: the handler reads
    /// it with [`Context::deadline`](crate::Context::deadline) or
    /// [`Reply::deadline`], and a request whose deadline has passed when its
    /// turn comes is not handled at all: it goes to the dead letters with
    /// [`FailureCause::Expired`](crate::FailureCause::Expired) (the caller,
    /// who stopped waiting, is not answered). A full mailbox is waited for
    /// as by [`send`](Addr::send), but not past the deadline.
    ///
    /// A zero `timeout` is a deadline that has passed before the request
    /// could be handled: nothing is sent, and the request comes back at once
    /// as `Timeout(request)`.
    ///
    /// # Errors
    ///
    /// As [`ask`](Addr::ask); `Timeout(request)` at once for a zero
    /// `timeout`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cellrt::{Cell, CellError, Context, Reply, Runtime};
    ///
    /// struct Clock;
    /// impl Cell for Clock {
    ///     type Message = Reply<Duration>;
    ///     fn handle(&mut self, ctx: &mut Context<Self>, reply: Reply<Duration>) -> Result<(), CellError> {
    ///         // Time left before the caller gives up.
    ///         let left = ctx.deadline().map_or(Duration::MAX, |d| d.saturating_duration_since(Instant::now()));
    ///         let _ = reply.send(left);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let clock = runtime.spawn(Clock)?;
    /// let left = clock.ask_within(Duration::from_secs(5), |reply| reply)?.wait(Duration::from_secs(5))?;
    /// assert!(left <= Duration::from_secs(5));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ask_within<T>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> M,
    ) -> Result<Pending<T>, SendError<M>> {
        let now = Instant::now();
        let expires = now.checked_add(timeout);
        let (reply, pending) = ask::channel_until(expires);
        let msg = make(reply);
        if self.is_own_address() {
            return Err(SendError::SelfAsk(msg));
        }
        if timeout.is_zero() {
            return Err(SendError::Timeout(msg));
        }
        let wait = now.checked_add(timeout.min(self.slot.send_timeout));
        match (expires, wait) {
            (Some(expires), Some(wait)) => self.slot.send_until(msg, wait, Some(expires), false)?,
            // A timeout too far away to represent is no deadline.
            _ => self.send(msg)?,
        }
        Ok(pending)
    }

    /// Sends without blocking a message that is not to be handled after
    /// `deadline`: if its turn comes later, it goes to the dead letters with
    /// [`FailureCause::Expired`](crate::FailureCause::Expired). A cell
    /// forwarding work passes its own [`Context::deadline`](crate::Context::deadline)
    /// on this way.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Addr::try_send).
    pub fn try_send_by(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.slot.try_send_until(msg, Some(deadline))
    }

    /// Sets (or, with `None`, clears) the load-shedding policy this address
    /// applies before a message reaches its target: see [`Shedding`]. The
    /// policy stays with the address when the cell behind it is replaced.
    pub fn set_shedding(&self, policy: Option<Shedding<M>>) {
        self.slot.set_shedding(policy.map(Arc::new));
    }

    /// What this address's shedding policy admitted and shed, if it has one.
    pub fn shedding_stats(&self) -> Option<SheddingStats> {
        self.slot.shedding().map(|policy| policy.stats())
    }

    /// The path of the cell this address was created for.
    pub fn path(&self) -> &CellPath {
        &self.slot.path
    }

    /// Messages waiting at the current target.
    pub fn queued(&self) -> usize {
        self.slot.current().queued()
    }

    /// Mailbox capacity of the current target.
    pub fn capacity(&self) -> usize {
        self.slot.current().capacity()
    }

    /// Whether the cell behind the address has stopped (sends would return
    /// `Closed`).
    pub fn is_closed(&self) -> bool {
        match self.slot.current().control() {
            Some(control) => control.is_terminated(),
            None => false,
        }
    }

    /// A handle that does not keep the address alive. See [`WeakAddr`].
    pub fn downgrade(&self) -> WeakAddr<M> {
        WeakAddr { slot: Arc::downgrade(&self.slot) }
    }
}

impl<M> Clone for Addr<M> {
    fn clone(&self) -> Self {
        Addr { slot: self.slot.clone() }
    }
}

impl<M> PartialEq for Addr<M> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.slot, &other.slot)
    }
}

impl<M> Eq for Addr<M> {}

impl<M> Hash for Addr<M> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.slot) as *const () as usize).hash(state);
    }
}

impl<M> fmt::Debug for Addr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Addr").field(&self.slot.path).finish()
    }
}

/// An address that does not keep the slot alive: for watchers, timers and
/// registries that must not extend a cell's reachability.
///
/// [`upgrade`](WeakAddr::upgrade) gives the [`Addr`] back while any strong
/// address (or the running cell itself) still exists.
pub struct WeakAddr<M> {
    slot: Weak<Slot<M>>,
}

impl<M: Send + 'static> WeakAddr<M> {
    /// The address, if it still exists.
    pub fn upgrade(&self) -> Option<Addr<M>> {
        self.slot.upgrade().map(|slot| Addr { slot })
    }
}

impl<M> Clone for WeakAddr<M> {
    fn clone(&self) -> Self {
        WeakAddr { slot: self.slot.clone() }
    }
}

impl<M> fmt::Debug for WeakAddr<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WeakAddr(..)")
    }
}
