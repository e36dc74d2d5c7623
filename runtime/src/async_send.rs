//! Sending and asking from async tasks (feature `tokio`): [`SendAsync`], the
//! future of [`Addr::send_async`], the deadline and ask variants built on
//! it, and [`AskAsyncError`].
//!
//! A task that finds the mailbox full leaves its waker on that mailbox and
//! returns `Pending`; the worker whose turn frees room wakes as many waiting
//! tasks as there are free slots, longest waiting first (the same
//! turn-ending read-modify-write that wakes blocked threads, see
//! `mailbox/space.rs`). No thread blocks, nothing polls on a timer, and a
//! mailbox's list of wakers is allocated by its first async sender: a cell
//! no task ever waited on costs one pointer more.
//!
//! # Cancellation
//!
//! Dropping a [`SendAsync`] (a `select!` branch that lost, a task aborted, a
//! timeout) removes its waker and drops the message it still holds: the
//! message was either delivered before, or never reached the mailbox. Poll
//! it by `&mut` and take the message back with [`SendAsync::into_inner`] to
//! keep it. A task dropped after its wake-up, before it sent, hands the
//! wake-up on to the next waiting task, so it takes no other sender's turn.
//!
//! # Timers
//!
//! [`SendAsync`] needs no particular executor. The variants with a timeout
//! ([`Addr::send_async_timeout`], [`Addr::ask_async`]) use tokio's timer, so
//! they must be polled inside a tokio runtime with the time driver enabled.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use crate::address::{Addr, Slot};
use crate::ask::{self, AskError, Reply};
use crate::mailbox::{SendError, SpaceWaiter};
use crate::sync::Arc;

/// The future of [`Addr::send_async`]: resolves once the message is in the
/// mailbox, or with the reason it was refused (the message inside).
///
/// It waits while the mailbox is full and no longer than that: `Closed`,
/// `Shed` and every other refusal come back at once.
///
/// # Panics
///
/// Polling it again after it completed panics, as for most futures.
#[must_use = "a send does nothing unless the future is awaited or polled"]
pub struct SendAsync<M> {
    slot: Arc<Slot<M>>,
    msg: Option<M>,
    /// When the message is no longer to be handled, for asks with a timeout.
    expires: Option<Instant>,
    waiter: SpaceWaiter,
}

impl<M: Send + 'static> SendAsync<M> {
    fn new(slot: Arc<Slot<M>>, msg: M, expires: Option<Instant>) -> Self {
        SendAsync { slot, msg: Some(msg), expires, waiter: SpaceWaiter::default() }
    }

    /// The message, if it was not delivered (the future has not completed),
    /// for a caller that stops waiting and wants it back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use cellrt::{Cell, CellConfig, CellError, Context, Runtime};
    /// # // Busy until `release` is dropped: no timing decides the example.
    /// # struct Slow(std::sync::mpsc::Receiver<()>);
    /// # impl Cell for Slow {
    /// #     type Message = u32;
    /// #     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
    /// #         let _ = self.0.recv_timeout(Duration::from_secs(10));
    /// #         Ok(())
    /// #     }
    /// # }
    /// # let runtime = Runtime::builder().worker_threads(1).build()?;
    /// # let (release, busy) = std::sync::mpsc::channel();
    /// let slow = runtime.spawn_with(CellConfig::new().capacity(1), Slow(busy))?;
    /// // The cell takes this one and stays busy with it.
    /// slow.try_send(0)?;
    /// # while slow.queued() > 0 {
    /// #     std::thread::sleep(Duration::from_millis(1));
    /// # }
    /// # let tokio = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    /// tokio.block_on(async {
    ///     // Fill the mailbox.
    ///     while slow.try_send(1).is_ok() {}
    ///     let mut send = slow.send_async(7);
    ///     tokio::select! {
    ///         _ = &mut send => unreachable!("the cell is busy"),
    ///         _ = tokio::time::sleep(Duration::from_millis(10)) => {}
    ///     }
    ///     // The send stopped waiting: the message is still ours.
    ///     assert_eq!(send.into_inner(), Some(7));
    /// });
    /// # drop(release);
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn into_inner(mut self) -> Option<M> {
        self.waiter.cancel();
        self.msg.take()
    }

    /// One step; with `give_up`, a full mailbox ends the send with `Timeout`.
    fn poll_send(&mut self, cx: &mut TaskContext<'_>, give_up: bool) -> Poll<Result<(), SendError<M>>> {
        self.slot.poll_send(&mut self.msg, self.expires, &mut self.waiter, cx.waker(), give_up)
    }
}

impl<M: Send + 'static> Future for SendAsync<M> {
    type Output = Result<(), SendError<M>>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_send(cx, false)
    }
}

// Nothing in a `SendAsync` is pinned: the message is only ever moved out.
impl<M> Unpin for SendAsync<M> {}

impl<M> fmt::Debug for SendAsync<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendAsync").field("delivered", &self.msg.is_none()).finish_non_exhaustive()
    }
}

/// Why [`Addr::ask_async`] produced no answer.
///
/// `Debug` and `Display` never print the request, so `M` needs no `Debug`
/// bound.
///
/// # Examples
///
/// ```
/// use cellrt::{AskAsyncError, SendError};
///
/// let err = AskAsyncError::NotSent(SendError::Closed("request"));
/// assert_eq!(err.to_string(), "ask not sent");
/// assert!(err.is_closed());
/// assert_eq!(err.into_request(), Some("request"));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskAsyncError<M> {
    /// The request never reached the cell (stopped, shed, or the mailbox
    /// stayed full until the timeout): it comes back inside.
    NotSent(SendError<M>),
    /// The request was delivered and not answered before the timeout. It
    /// is not handled once its deadline has passed.
    Timeout,
    /// The request was delivered and its reply dropped unanswered: the cell
    /// stopped, failed while handling it, or the runtime shut down.
    Unanswered,
}

impl<M> AskAsyncError<M> {
    /// The request, when it was not sent.
    pub fn into_request(self) -> Option<M> {
        match self {
            AskAsyncError::NotSent(err) => Some(err.into_inner()),
            AskAsyncError::Timeout | AskAsyncError::Unanswered => None,
        }
    }

    /// The cell had stopped: the request was refused as `Closed`.
    pub fn is_closed(&self) -> bool {
        matches!(self, AskAsyncError::NotSent(SendError::Closed(_)))
    }

    /// The timeout passed, before the request got into the mailbox or
    /// before the answer came.
    pub fn is_timeout(&self) -> bool {
        matches!(self, AskAsyncError::Timeout | AskAsyncError::NotSent(SendError::Timeout(_)))
    }
}

impl<M> From<AskError> for AskAsyncError<M> {
    fn from(err: AskError) -> Self {
        match err {
            AskError::Timeout => AskAsyncError::Timeout,
            AskError::Unanswered => AskAsyncError::Unanswered,
        }
    }
}

impl<M> fmt::Debug for AskAsyncError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskAsyncError::NotSent(err) => f.debug_tuple("NotSent").field(err).finish(),
            AskAsyncError::Timeout => f.write_str("Timeout"),
            AskAsyncError::Unanswered => f.write_str("Unanswered"),
        }
    }
}

impl<M> fmt::Display for AskAsyncError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskAsyncError::NotSent(_) => f.write_str("ask not sent"),
            AskAsyncError::Timeout => f.write_str("ask timed out"),
            AskAsyncError::Unanswered => f.write_str("ask dropped unanswered"),
        }
    }
}

impl<M: 'static> std::error::Error for AskAsyncError<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AskAsyncError::NotSent(err) => Some(err),
            AskAsyncError::Timeout | AskAsyncError::Unanswered => None,
        }
    }
}

/// Async sends and asks: see the module docs of the crate's `Addr` section
/// and [`SendAsync`].
impl<M: Send + 'static> Addr<M> {
    /// Sends from an async task, waiting while the mailbox is full: the
    /// task is parked on the mailbox and woken by the turn that frees room.
    /// Never blocks the thread, needs no particular executor.
    ///
    /// Dropping the future before it completes leaves nothing behind and
    /// drops the message; see [`SendAsync::into_inner`] to keep it.
    ///
    /// # Errors
    ///
    /// `Closed(msg)` when the cell has stopped or stops while the task
    /// waits, `Shed(msg)` when the address's shedding policy refuses it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Runtime};
    ///
    /// struct Sink;
    /// impl Cell for Sink {
    ///     type Message = u32;
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, _n: u32) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let sink = runtime.spawn(Sink)?;
    /// let tokio = tokio::runtime::Builder::new_current_thread().build()?;
    /// tokio.block_on(async {
    ///     for n in 0..1_000 {
    ///         sink.send_async(n).await.expect("the sink runs");
    ///     }
    /// });
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_async(&self, msg: M) -> SendAsync<M> {
        SendAsync::new(self.slot().clone(), msg, None)
    }

    /// [`send_async`](Addr::send_async), waiting for room at most `timeout`.
    ///
    /// # Errors
    ///
    /// `Timeout(msg)` when the mailbox stayed full, otherwise as
    /// [`send_async`](Addr::send_async).
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime with the time driver enabled.
    pub fn send_async_timeout(
        &self,
        msg: M,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), SendError<M>>> + Send + 'static {
        let mut send = SendAsync::new(self.slot().clone(), msg, None);
        let deadline = tokio_deadline(timeout);
        async move {
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
            std::future::poll_fn(move |cx| match send.poll_send(cx, false) {
                Poll::Pending if sleep.as_mut().poll(cx).is_ready() => send.poll_send(cx, true),
                other => other,
            })
            .await
        }
    }

    /// Asks from an async task: sends a request built around a fresh
    /// [`Reply`], waiting while the mailbox is full, and resolves to the
    /// answer. `timeout` covers both: the wait for room and the wait for the
    /// answer. The future is `Send`, for `tokio::spawn`.
    ///
    /// As with [`ask_within`](Addr::ask_within), the timeout travels with the
    /// request as a deadline: the handler reads it with
    /// [`Context::deadline`](crate::Context::deadline), and a request whose
    /// deadline passed before its turn is not handled (it goes to the dead
    /// letters as expired).
    ///
    /// # Errors
    ///
    /// [`AskAsyncError::NotSent`] with the request when it was refused or the
    /// mailbox stayed full until the timeout, [`AskAsyncError::Timeout`]
    /// when no answer came in time, [`AskAsyncError::Unanswered`] when the
    /// reply was dropped (the cell stopped or failed, the runtime shut down).
    ///
    /// # Panics
    ///
    /// When polled outside a tokio runtime with the time driver enabled.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Reply, Runtime};
    ///
    /// struct Doubler;
    /// impl Cell for Doubler {
    ///     type Message = (u64, Reply<u64>);
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
    ///         let _ = reply.send(n * 2);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let doubler = runtime.spawn(Doubler)?;
    /// let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build()?;
    /// let answer = tokio.block_on(async move {
    ///     let task = tokio::spawn(async move { doubler.ask_async(Duration::from_secs(5), |reply| (21, reply)).await });
    ///     task.await.expect("the task ran")
    /// });
    /// assert_eq!(answer.ok(), Some(42));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ask_async<T: Send + 'static>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> M,
    ) -> impl Future<Output = Result<T, AskAsyncError<M>>> + Send + 'static {
        let expires = Instant::now().checked_add(timeout);
        let (reply, mut pending) = ask::channel_until(expires);
        let mut send = SendAsync::new(self.slot().clone(), make(reply), expires);
        let deadline = tokio_deadline(timeout);
        async move {
            let mut sleep = std::pin::pin!(tokio::time::sleep_until(deadline));
            let mut sent = false;
            std::future::poll_fn(move |cx| {
                let timed_out = sleep.as_mut().poll(cx).is_ready();
                if !sent {
                    match send.poll_send(cx, timed_out) {
                        Poll::Ready(Ok(())) => sent = true,
                        Poll::Ready(Err(err)) => return Poll::Ready(Err(AskAsyncError::NotSent(err))),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                match Pin::new(&mut pending).poll(cx) {
                    Poll::Ready(result) => Poll::Ready(result.map_err(AskAsyncError::from)),
                    Poll::Pending if timed_out => Poll::Ready(Err(AskAsyncError::Timeout)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await
        }
    }
}

/// The tokio instant `timeout` from now; a timeout too far away to
/// represent is about 30 years (tokio's own "far future").
fn tokio_deadline(timeout: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}
