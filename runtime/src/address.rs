//! Addresses: [`Addr<M>`], a handle to a *contract* (the message type `M`),
//! and the slot behind it that says which target currently serves it.
//!
//! An address does not point at a cell instance. It points at a slot, and the
//! slot points at a target: today one cell, later a router over several. The
//! runtime can swap the target ([`Runtime::replace`](crate::Runtime::replace))
//! while senders keep using the same address.
//!
//! # Replacing the target without losing or duplicating a message
//!
//! Senders hold the slot's read lock for one non-blocking push. A replace
//! takes the write lock, so no sender is mid-push; it then closes the old
//! target's gate, moves what was queued there into the new target's *moved*
//! lane (delivered before anything sent directly to the new target), and
//! publishes the new target. Every message is therefore in exactly one place:
//! handled by the old cell before the swap, moved, or queued at the new cell
//! after it. Per-sender order is kept. A sender blocked for room on the old
//! target is woken by the close and retries through the slot. The loom model
//! `loom-tests/tests/address_replace.rs` checks this.
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

use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use crate::ask::{self, Pending, Reply};
use crate::dispatch::worker::on_worker_thread;
use crate::mailbox::SendError;
use crate::path::CellPath;
use crate::runtime::CellControl;
use crate::sync::{Arc, Backoff, RwLock, Weak};

/// What can stand behind an address: something that takes messages of type `M`.
pub(crate) trait Deliver<M>: Send + Sync + 'static {
    /// Takes `msg` without blocking, or hands it back (`Full` or `Closed`).
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>>;
    /// Blocks until there may be room, the target closes, or `deadline`
    /// passes (then `false`).
    fn wait_for_space(&self, deadline: Instant) -> bool;
    /// Closes the target to new messages and takes what is queued.
    fn close_and_take(&self) -> Vec<M>;
    /// Takes messages moved from a replaced target, ahead of its own queue.
    fn accept_moved(&self, msgs: Vec<M>);
    /// Tells a replaced target to stop once it has no more work.
    fn retire(&self);
    /// Messages waiting.
    fn queued(&self) -> usize;
    /// Capacity of the queue.
    fn capacity(&self) -> usize;
    /// The lifecycle handle of the cell behind this target, if it is a cell.
    fn control(&self) -> Option<Arc<dyn CellControl>>;
}

/// The indirection behind an address.
pub(crate) struct Slot<M> {
    target: RwLock<Arc<dyn Deliver<M>>>,
    path: CellPath,
    send_timeout: Duration,
}

impl<M: Send + 'static> Slot<M> {
    pub(crate) fn new(target: Arc<dyn Deliver<M>>, path: CellPath, send_timeout: Duration) -> Self {
        Slot { target: RwLock::new(target), path, send_timeout }
    }

    #[inline]
    pub(crate) fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.target.read().try_deliver(msg)
    }

    /// Sends, blocking off worker threads until there is room or `deadline`.
    pub(crate) fn send_until(&self, mut msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        let backoff = Backoff::new();
        loop {
            let target = {
                let target = self.target.read();
                match target.try_deliver(msg) {
                    Err(SendError::Full(back)) => {
                        msg = back;
                        target.clone()
                    }
                    other => return other,
                }
            };
            if on_worker_thread() {
                return Err(SendError::Full(msg));
            }
            if !backoff.is_completed() {
                backoff.snooze();
                continue;
            }
            if !target.wait_for_space(deadline) {
                // One last attempt: room may have appeared at the deadline.
                return self.try_send(msg).map_err(|err| match err {
                    SendError::Full(m) => SendError::Timeout(m),
                    other => other,
                });
            }
        }
    }

    /// Swaps the target; see the module docs. Returns the number of queued
    /// messages moved to the new target.
    pub(crate) fn replace(&self, new: Arc<dyn Deliver<M>>) -> usize {
        let mut target = self.target.write();
        let queued = target.close_and_take();
        let moved = queued.len();
        if moved > 0 {
            new.accept_moved(queued);
        }
        let old = std::mem::replace(&mut *target, new);
        drop(target);
        old.retire();
        moved
    }

    pub(crate) fn current(&self) -> Arc<dyn Deliver<M>> {
        self.target.read().clone()
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
/// `Closed(m)`.
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
    /// blocks (see the module docs).
    ///
    /// # Errors
    ///
    /// As [`send`](Addr::send).
    pub fn send_timeout(&self, mut msg: M, timeout: Duration) -> Result<(), SendError<M>> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.slot.send_until(msg, deadline),
            // A timeout too far away to represent: wait in long slices.
            None => loop {
                let deadline = Instant::now() + Duration::from_secs(3600);
                match self.slot.send_until(msg, deadline) {
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
    pub fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> M) -> Result<Pending<T>, SendError<M>> {
        let (reply, pending) = ask::channel();
        self.send(make(reply))?;
        Ok(pending)
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
