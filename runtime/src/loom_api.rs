//! Hooks for the loom models in `loom-tests/`. Not part of cellrt's API.
//!
//! This module exists only under `RUSTFLAGS="--cfg cellrt_loom"` and is
//! `#[doc(hidden)]`: it is a test harness hook with no stability promise of
//! any kind, and may change or vanish in any release.
//!
//! The protocols the models check (the cell state word, the mailbox, the slot
//! swap, asks, the run queue, a restart in place, the restart intensity, the
//! recomposition swaps) are crate-internal, so this module gives them
//! small `pub` wrappers. Every wrapper calls the real code and never
//! re-implements a protocol step: a model that drives a wrapper drives the
//! very atomics, locks and re-checks that normal builds run, on loom's
//! primitives (see `sync/loom.rs`). Where the real code hands a result to the
//! rest of the runtime (a `Schedule`, a `TurnEnd`, a task to run), the
//! wrapper reports it to the model instead, as a plain `bool` or count. The
//! only synchronization added here is [`ModelTarget`]'s token count, which
//! stands in for a dispatcher's run queue and, like it, hands the run token
//! over with Release/Acquire.
//!
//! | wrapper | real code |
//! |---|---|
//! | [`ModelBoundedQueue`] | `mailbox::BoundedQueue`, one lane's admission counters over the stand-in queue of `sync/loom.rs` |
//! | [`ModelMailbox`], [`ModelSystemMsg`] | `mailbox::Mailbox` and its `dispatch::state::CellState`, `mailbox::SystemMsg` |
//! | [`ModelTarget`], [`ModelSlot`] | `address::Deliver` over a `Mailbox` and an `address::Handover`, `address::Slot` |
//! | [`ModelSlot::isolate`], [`ModelSlot::split`], [`ModelSlot::unwrap`], [`ModelWrapper`] | `recompose::apply::KindRoute`, `flow::Router` (round-robin) and `address::Slot::swap`, put together as `Managed::{isolate, retire, split, merge}` do |
//! | [`ModelSlot::move_kind`], [`ModelTarget::run_regroup`] | `recompose::apply::{kind_regroup, offer_kind_move}` and `mailbox::PendingRegroup`, as `Managed::isolate` and `CellInstance` use them |
//! | [`reply_channel`], [`reply_slots_live`] | `ask::channel`, and the count of reply slots not yet freed |
//! | [`ModelRunQueue`], [`ModelTask`] | `dispatch::run_queue::RunQueue`, `dispatch::Runnable` |
//! | [`ModelDormancy`] | `dormancy::Dormancy` |
//! | [`ModelCellMetrics`] | `observe::metrics::{CellMetrics, TurnMeter}`: a cell's edge counts, kept by its turns and read by the analysis window |
//! | [`ModelWindow`] | `supervise::window::RestartWindow` |
//! | [`ModelWatchers`] | `supervise::watch::Watchers` |
//! | [`ModelBreaker`] | `flow::breaker::CircuitBreaker` at injected instants |
//! | [`ModelGroup`], [`ModelGroupCell`] | `dispatch::group::{Group, Membership}` over a `RunQueue` and a `Mailbox` |
//! | [`ModelOnceBox`] | `sync::OnceBox`, publishing a value written through a loom `UnsafeCell` |

use std::fmt;
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::address::{Addr, Deliver, Handover, Slot};
use crate::ask::{self, Pending, Reply};
use crate::dispatch::group::{Group, Membership, Reschedule};
use crate::dispatch::run_queue::RunQueue;
use crate::dispatch::state::{Schedule, Snapshot};
use crate::dispatch::{Runnable, Task, TurnEnd};
use crate::dormancy::Dormancy;
use crate::flow::{
    BreakerConfig, BreakerConfigError, BreakerOpen, BreakerState, CallOutcome, CircuitBreaker, Permit,
    Router, Routing,
};
use crate::mailbox::{
    BoundedQueue, Envelope, Mailbox, PendingRegroup, Refused, Regroup, SendError, SpaceWaiter, StopCause,
    SystemMsg,
};
use crate::observe::metrics::{CellMetrics, TurnMeter};
use crate::path::CellPath;
use crate::recompose::apply::{kind_regroup, offer_kind_move, KindRoute};
use crate::runtime::CellControl;
use crate::supervise::{RestartWindow, Terminated, Watchers};
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use crate::sync::{Arc, OnceBox, Weak};

/// `sync::OnceBox` over a value the model can check for data races: a
/// loom `UnsafeCell` that the initializer writes after building it, so a
/// reader that is handed the box without synchronizing with that write is
/// reported by loom.
pub struct ModelOnceBox {
    inner: OnceBox<loom::cell::UnsafeCell<u32>>,
    /// Initializers run, published or not.
    built: AtomicUsize,
}

impl ModelOnceBox {
    /// Nothing published.
    pub fn new() -> Self {
        ModelOnceBox { inner: OnceBox::new(), built: AtomicUsize::new(0) }
    }

    /// `OnceBox::get_or_init` with an initializer that writes `value`
    /// into the new box; returns the value read from the published box and
    /// its address (the same for every caller when the protocol holds).
    pub fn get_or_init(&self, value: u32) -> (u32, usize) {
        Self::read(self.inner.get_or_init(|| self.build(value)))
    }

    /// `OnceBox::try_get_or_init`: as [`get_or_init`](Self::get_or_init),
    /// or `None` when the box was sealed first.
    pub fn try_get_or_init(&self, value: u32) -> Option<(u32, usize)> {
        self.inner.try_get_or_init(|| self.build(value)).map(Self::read)
    }

    /// `OnceBox::seal`: the value published before, if any; nothing is
    /// published afterwards.
    pub fn seal(&self) -> Option<(u32, usize)> {
        self.inner.seal().map(Self::read)
    }

    /// `OnceBox::get`: the published value and its address, if any.
    pub fn get(&self) -> Option<(u32, usize)> {
        self.inner.get().map(Self::read)
    }

    /// An initializer: a new box holding `value`, counted.
    fn build(&self, value: u32) -> Box<loom::cell::UnsafeCell<u32>> {
        self.built.fetch_add(1, Relaxed);
        let cell = loom::cell::UnsafeCell::new(0);
        // SAFETY: the box is not published yet: this thread is its only user.
        cell.with_mut(|p| unsafe { *p = value });
        Box::new(cell)
    }

    /// The value in a published box, and the box's address.
    fn read(cell: &loom::cell::UnsafeCell<u32>) -> (u32, usize) {
        // SAFETY: published boxes are only read; loom reports this read if
        // it is not ordered after the initializer's write.
        (cell.with(|p| unsafe { *p }), cell as *const _ as usize)
    }

    /// Initializers run so far.
    pub fn built(&self) -> usize {
        self.built.load(Relaxed)
    }
}

impl Default for ModelOnceBox {
    fn default() -> Self {
        ModelOnceBox::new()
    }
}

impl fmt::Debug for ModelOnceBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelOnceBox").field("published", &self.get().is_some()).finish()
    }
}

/// A connected [`Reply`] and [`Pending`], from the real `ask::channel`.
pub fn reply_channel<T>() -> (Reply<T>, Pending<T>) {
    ask::channel()
}

/// Reply slots made by [`reply_channel`] (or any ask) on the model's thread
/// and not yet freed; a slot freed twice panics. Loom runs all of a model's
/// threads on one, so this counts the model's slots.
pub fn reply_slots_live() -> isize {
    ask::model::live()
}

/// Starts [`reply_slots_live`] again from zero, at the start of a model's
/// run (a run that failed may have left slots behind).
pub fn reset_reply_slots() {
    ask::model::reset()
}

/// A copy of a cell's state word at one instant (`dispatch::state::Snapshot`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelSnapshot(Snapshot);

impl ModelSnapshot {
    /// No one holds the run token.
    pub fn is_idle(self) -> bool {
        self.0.is_idle()
    }

    /// The token holder is inside a turn (`RUNNING`).
    pub fn is_running(self) -> bool {
        self.0.is_running()
    }

    /// The mailbox is closed.
    pub fn is_closed(self) -> bool {
        self.0.is_closed()
    }

    /// The cell is done and never scheduled again.
    pub fn is_done(self) -> bool {
        self.0.is_done()
    }
}

/// A control request, as [`ModelMailbox::pop_system_msg`] hands it out
/// (`mailbox::SystemMsg`, with the stop causes folded into `Stop`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelSystemMsg {
    /// `SystemMsg::Stop`, whatever its cause.
    Stop,
    /// `SystemMsg::Drain`.
    Drain,
    /// `SystemMsg::Kill`.
    Kill,
    /// `SystemMsg::Restart`: begin a new incarnation.
    Restart,
    /// `SystemMsg::Retire`.
    Retire,
    /// `SystemMsg::Supervise`: the cell's supervision has events to process.
    Supervise,
    /// `SystemMsg::Regroup`: recomposition regroups the queued messages.
    Regroup,
}

impl From<SystemMsg> for ModelSystemMsg {
    fn from(msg: SystemMsg) -> Self {
        match msg {
            SystemMsg::Stop(_) => ModelSystemMsg::Stop,
            SystemMsg::Drain => ModelSystemMsg::Drain,
            SystemMsg::Kill => ModelSystemMsg::Kill,
            SystemMsg::Restart => ModelSystemMsg::Restart,
            SystemMsg::Retire => ModelSystemMsg::Retire,
            SystemMsg::Supervise => ModelSystemMsg::Supervise,
            SystemMsg::Regroup => ModelSystemMsg::Regroup,
        }
    }
}

/// One lane of a user mailbox: the real `mailbox::BoundedQueue`, its
/// admission count over loom's stand-in for the segment queue.
pub struct ModelBoundedQueue<T> {
    inner: BoundedQueue<T>,
}

impl<T> ModelBoundedQueue<T> {
    /// An empty lane admitting `capacity` items (at least 1).
    pub fn new(capacity: usize) -> Self {
        ModelBoundedQueue { inner: BoundedQueue::new(capacity) }
    }

    /// `BoundedQueue::try_push`: reserve a slot, then push.
    ///
    /// # Errors
    ///
    /// The item, handed back, when every slot is taken or the lane is
    /// closed.
    pub fn try_push(&self, item: T) -> Result<(), T> {
        self.inner.try_push(item).map_err(|(Refused::Full(item) | Refused::Closed(item))| item)
    }

    /// `BoundedQueue::close`: refuse every later push, and return once the
    /// pushes admitted before have landed.
    pub fn close(&self) {
        self.inner.close();
    }

    /// `BoundedQueue::pop`: pop, then release the slot.
    pub fn pop(&self) -> Option<T> {
        self.inner.pop()
    }

    /// `BoundedQueue::len`: the admission count (queued plus in flight).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// `BoundedQueue::is_empty`: no item queued.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// The most items the queue ever held at once.
    pub fn peak(&self) -> usize {
        self.inner.peak()
    }
}

impl<T> fmt::Debug for ModelBoundedQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelBoundedQueue").field("len", &self.inner.len()).finish()
    }
}

/// A cell's inbox: the real `Mailbox`, with its state word.
///
/// Methods returning `bool` for a scheduling decision return `true` exactly
/// when the real code returned `Schedule::Enqueue` / `TurnEnd::Yield`, that
/// is when the caller now holds (or kept) the cell's run token.
pub struct ModelMailbox<M> {
    inner: Mailbox<M>,
}

impl<M> ModelMailbox<M> {
    /// A mailbox whose user queue holds `capacity` messages (at least 1).
    pub fn new(capacity: usize) -> Self {
        ModelMailbox { inner: Mailbox::new(capacity) }
    }

    /// A mailbox of `lanes` priority lanes of `capacity` messages each
    /// (`Mailbox::with_lanes`).
    pub fn with_lanes(capacity: usize, lanes: usize) -> Self {
        ModelMailbox { inner: Mailbox::with_lanes(capacity, lanes, false) }
    }

    /// `Mailbox::push_to`: pushes into priority lane `lane`; `Ok(true)`
    /// when the sender took the run token.
    ///
    /// # Errors
    ///
    /// `Full(msg)` or `Closed(msg)`, the message handed back.
    pub fn push_to(&self, lane: usize, msg: M) -> Result<bool, SendError<M>> {
        self.inner.push_to(lane, msg, None).map(|schedule| schedule == Schedule::Enqueue)
    }

    /// `Mailbox::push`: `Ok(true)` when the sender took the run token.
    ///
    /// # Errors
    ///
    /// `Full(msg)` or `Closed(msg)`, the message handed back.
    pub fn push(&self, msg: M) -> Result<bool, SendError<M>> {
        self.inner.push(msg).map(|schedule| schedule == Schedule::Enqueue)
    }

    /// `Mailbox::push_system` with a stop request: `true` when the caller
    /// took the run token.
    pub fn push_system_stop(&self) -> bool {
        self.inner.push_system(SystemMsg::Stop(StopCause::Requested)) == Schedule::Enqueue
    }

    /// `Mailbox::push_system` with a restart request, as a supervisor
    /// restarts a suspended cell: `true` when the caller took the run token.
    pub fn push_system_restart(&self) -> bool {
        self.inner.push_system(SystemMsg::Restart) == Schedule::Enqueue
    }

    /// `Mailbox::push_system` with a supervise request, as a child reporting
    /// to its supervisor's node schedules the supervisor: `true` when the
    /// caller took the run token.
    pub fn push_system_supervise(&self) -> bool {
        self.inner.push_system(SystemMsg::Supervise) == Schedule::Enqueue
    }

    /// `Mailbox::pop_system`: whether a control message was taken.
    pub fn pop_system(&self) -> bool {
        self.inner.pop_system().is_some()
    }

    /// `Mailbox::pop_system`: the control message taken, if any.
    pub fn pop_system_msg(&self) -> Option<ModelSystemMsg> {
        self.inner.pop_system().map(ModelSystemMsg::from)
    }

    /// `Mailbox::suspend`: the token holder ends an incarnation; user
    /// messages are withheld until [`resume`](ModelMailbox::resume).
    pub fn suspend(&self) {
        self.inner.suspend();
    }

    /// `Mailbox::resume`: the token holder begins a new incarnation.
    pub fn resume(&self) {
        self.inner.resume();
    }

    /// `Mailbox::push_front`: the token holder puts `msgs` (in order) ahead
    /// of every queued message, as a failed message re-delivered.
    pub fn push_front(&self, msgs: Vec<M>) {
        self.inner.push_front(msgs.into_iter());
    }

    /// `Mailbox::release`: takes handed-over messages and lifts the hold;
    /// `true` when the caller took the run token.
    pub fn release(&self, msgs: Vec<M>) -> bool {
        self.inner.release(msgs.into_iter().map(Envelope::plain)) == Schedule::Enqueue
    }

    /// `CellState::start_turn`: the token holder begins a turn; `true` when
    /// it is the first since the analysis window cleared the cell's `ACTIVE`
    /// mark.
    pub fn start_turn(&self) -> bool {
        self.inner.state().start_turn()
    }

    /// `CellState::mark_active`: `true` when the caller set the mark and
    /// reports the cell to the analysis window.
    pub fn mark_active(&self) -> bool {
        self.inner.state().mark_active()
    }

    /// `CellState::take_active`, by the analysis window: clears the mark;
    /// `true` when the cell was idle.
    pub fn take_active(&self) -> bool {
        self.inner.state().take_active()
    }

    /// `Mailbox::pop_user`: moved messages first, then the queue.
    pub fn pop_user(&self) -> Option<M> {
        self.inner.pop_user()
    }

    /// `Mailbox::wake_senders_mid_turn`: the worker, half-way through a
    /// turn, wakes the senders sleeping for room.
    pub fn wake_senders_mid_turn(&self) {
        self.inner.wake_senders_mid_turn();
    }

    /// `Mailbox::has_work`.
    pub fn has_work(&self) -> bool {
        self.inner.has_work()
    }

    /// `Mailbox::has_user_work`: a user message waits and is not withheld.
    pub fn has_user_work(&self) -> bool {
        self.inner.has_user_work()
    }

    /// `Mailbox::end_turn`: `true` (`Yield`) when the worker kept the run
    /// token, `false` (`Idle`) when it gave it up.
    pub fn end_turn(&self) -> bool {
        match self.inner.end_turn() {
            TurnEnd::Yield => true,
            TurnEnd::Idle => false,
            TurnEnd::Done | TurnEnd::Parked => unreachable!("end_turn never reports Done or Parked"),
        }
    }

    /// `Mailbox::wait_for_space`: a blocked sender sleeps until the queue may
    /// have room or the mailbox closes (loom does not model time, so this is
    /// an untimed sleep: a lost wake-up is a deadlock the model reports).
    pub fn wait_for_space(&self) {
        self.inner.wait_for_space(0, Instant::now() + Duration::from_secs(3600));
    }

    /// `Mailbox::close`: `false` when it was already closed.
    pub fn close(&self) -> bool {
        self.inner.close()
    }

    /// `Mailbox::take_user`: every queued user message, moved ones first.
    pub fn take_user(&self) -> Vec<M> {
        self.inner.take_user().into_iter().map(|envelope| envelope.msg).collect()
    }

    /// `Mailbox::len`: user messages waiting, moved ones included.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether no user message is waiting.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// The most messages lane 0's queue ever held at once.
    pub fn peak(&self) -> usize {
        self.inner.peak()
    }

    /// The state word now.
    pub fn snapshot(&self) -> ModelSnapshot {
        ModelSnapshot(self.inner.snapshot())
    }
}

impl<M> fmt::Debug for ModelMailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelMailbox").field("state", &self.inner.snapshot()).finish()
    }
}

struct TargetInner<M> {
    mailbox: ModelMailbox<M>,
    handover: Handover<M>,
    /// Run tokens taken by pushes through `Deliver` that no consumer has
    /// claimed yet: where the real target would enqueue the cell.
    tokens: AtomicUsize,
    /// Times a replace asked this target to hand over.
    replaced: AtomicUsize,
    /// A regroup asked by an isolate, run by the token holder.
    regroup: PendingRegroup<M>,
}

/// A target for [`ModelSlot`]: the real `Deliver` calls over a [`ModelMailbox`].
///
/// Where the real cell would put itself on a run queue (a push or a move that
/// took the run token), this target counts a token instead; a model's
/// consumer claims it with [`take_token`](ModelTarget::take_token) and then
/// runs turns on [`mailbox`](ModelTarget::mailbox). Cloning gives another
/// handle to the same target.
pub struct ModelTarget<M> {
    inner: Arc<TargetInner<M>>,
}

impl<M: Send + 'static> ModelTarget<M> {
    /// A target whose user queue holds `capacity` messages.
    pub fn new(capacity: usize) -> Self {
        ModelTarget::with_mailbox(Mailbox::new(capacity))
    }

    /// A successor for a replace: holds what it receives until its
    /// predecessor hands over (`Mailbox::new_held`).
    pub fn new_held(capacity: usize) -> Self {
        ModelTarget::with_mailbox(Mailbox::new_held(capacity))
    }

    fn with_mailbox(mailbox: Mailbox<M>) -> Self {
        ModelTarget {
            inner: Arc::new(TargetInner {
                mailbox: ModelMailbox { inner: mailbox },
                handover: Handover::new(),
                tokens: AtomicUsize::new(0),
                replaced: AtomicUsize::new(0),
                regroup: PendingRegroup::new(),
            }),
        }
    }

    /// What `CellInstance::terminate` does with the mailbox when the cell
    /// stops with no message in hand: runs a pending regroup and accepts no
    /// more (`PendingRegroup::run` with `close`), then `Handover::retire`
    /// (close, take what is left, give it to a successor if a replace
    /// asked), then the state word is marked done. Returns the messages no
    /// one will handle.
    pub fn stop(&self) -> Vec<M> {
        self.inner.regroup.run(&self.inner.mailbox.inner, true);
        let leftovers = self.inner.handover.retire(&self.inner.mailbox.inner);
        self.inner.mailbox.inner.state().finish();
        leftovers.into_iter().map(|envelope| envelope.msg).collect()
    }

    /// What `CellInstance` does when its token holder takes
    /// `SystemMsg::Regroup` ([`ModelSystemMsg::Regroup`]): runs the pending
    /// regroup on the queued messages (`PendingRegroup::run`).
    pub fn run_regroup(&self) {
        self.inner.regroup.run(&self.inner.mailbox.inner, false);
    }

    /// Whether the target still waits for a predecessor (`Mailbox::is_held`).
    pub fn is_held(&self) -> bool {
        self.inner.mailbox.inner.is_held()
    }

    /// The target's mailbox, for the consumer that holds its run token.
    pub fn mailbox(&self) -> &ModelMailbox<M> {
        &self.inner.mailbox
    }

    /// Claims one run token recorded by a push or a move, if there is one.
    pub fn take_token(&self) -> bool {
        self.inner.tokens.fetch_update(AcqRel, Acquire, |n| n.checked_sub(1)).is_ok()
    }

    /// Run tokens recorded and not yet claimed.
    pub fn tokens(&self) -> usize {
        self.inner.tokens.load(Acquire)
    }

    /// How many times a replace asked this target to hand over.
    pub fn replaced(&self) -> usize {
        self.inner.replaced.load(Acquire)
    }
}

impl<M: Send + 'static> TargetInner<M> {
    fn record(&self, took_token: bool) {
        if took_token {
            self.tokens.fetch_add(1, AcqRel);
        }
    }
}

impl<M: Send + 'static> Deliver<M> for TargetInner<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        let took = self.mailbox.push(msg)?;
        self.record(took);
        Ok(())
    }

    fn wait_for_space(&self, _msg: &M, deadline: Instant) -> bool {
        self.mailbox.inner.wait_for_space(0, deadline)
    }

    fn register_for_space(&self, _msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.mailbox.inner.register_for_space(0, waiter, waker)
    }

    /// As `CellInstance::hand_over`.
    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        self.replaced.fetch_add(1, AcqRel);
        self.mailbox.close();
        match self.handover.request(successor) {
            Ok(()) => {
                let took =
                    self.mailbox.inner.push_system(SystemMsg::Stop(StopCause::Replaced)) == Schedule::Enqueue;
                self.record(took);
            }
            Err(successor) => successor.release(Vec::new()),
        }
    }

    /// As `CellInstance::release`; leftovers reaching a stopped target are
    /// dropped (the runtime counts them undelivered).
    fn release(&self, moved: Vec<Envelope<M>>) {
        if let Ok(took) =
            self.handover.accept(moved, |moved| self.mailbox.inner.release(moved) == Schedule::Enqueue)
        {
            self.record(took);
        }
    }

    fn is_held(&self) -> bool {
        self.mailbox.inner.is_held()
    }

    fn queued(&self) -> usize {
        self.mailbox.len()
    }

    fn capacity(&self) -> usize {
        self.mailbox.inner.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        None
    }

    fn is_supervised(&self) -> bool {
        false
    }

    /// As `CellInstance::regroup`: records the step, then asks for a system
    /// check.
    fn regroup(&self, regroup: Regroup<M>) -> Result<(), Regroup<M>> {
        self.regroup.offer(regroup)?;
        let took = self.mailbox.inner.push_system(SystemMsg::Regroup) == Schedule::Enqueue;
        self.record(took);
        Ok(())
    }
}

impl<M> Clone for ModelTarget<M> {
    fn clone(&self) -> Self {
        ModelTarget { inner: self.inner.clone() }
    }
}

impl<M> fmt::Debug for ModelTarget<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelTarget")
            .field("mailbox", &self.inner.mailbox)
            .field("tokens", &self.inner.tokens.load(Relaxed))
            .finish()
    }
}

/// The real `address::Slot`: what an address points at.
pub struct ModelSlot<M> {
    inner: Slot<M>,
}

/// The send timeout of every slot made here: loom does not model time.
const MODEL_SEND_TIMEOUT: Duration = Duration::from_secs(3600);

/// A fresh slot pointing at `target`, as a spawned cell's address has.
fn slot_over<M: Send + 'static>(target: Arc<dyn Deliver<M>>) -> Slot<M> {
    Slot::new(target, CellPath::root(), MODEL_SEND_TIMEOUT)
}

/// `target` as a `Deliver` trait object: the same allocation, so
/// `Arc::ptr_eq` (what `Slot::swap` compares by) finds it equal to the
/// target a slot was made with.
fn deliver_of<M: Send + 'static>(target: &ModelTarget<M>) -> Arc<dyn Deliver<M>> {
    target.inner.clone()
}

/// What a recomposition swap put behind a [`ModelSlot`]: the wrapper (a
/// by-kind route or a round-robin router), the target it wraps and the cell
/// it added, as the engine's `Shape` keeps them (`wrapper`, `base`, and
/// `isolated` or `members`) to unwrap it again.
pub struct ModelWrapper<M> {
    wrapper: Arc<dyn Deliver<M>>,
    base: Arc<dyn Deliver<M>>,
    added: ModelTarget<M>,
}

impl<M> fmt::Debug for ModelWrapper<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelWrapper(..)")
    }
}

impl<M: Send + 'static> ModelSlot<M> {
    /// A slot whose current target is `target`.
    pub fn new(target: &ModelTarget<M>) -> Self {
        ModelSlot { inner: slot_over(deliver_of(target)) }
    }

    /// `Slot::try_send`: delivers to the current target without blocking.
    ///
    /// # Errors
    ///
    /// `Full(msg)` or `Closed(msg)`, the message handed back.
    pub fn try_send(&self, msg: M) -> Result<(), SendError<M>> {
        self.inner.try_send(msg)
    }

    /// An async send through the slot, stepped by the real `Slot::poll_send`
    /// (what `Addr::send_async` polls): waits while the target is full, its
    /// waker left on the mailbox (`Mailbox::register_for_space`).
    ///
    /// # Errors
    ///
    /// `Closed(msg)` when the target closed.
    pub fn send_async(&self, msg: M) -> impl std::future::Future<Output = Result<(), SendError<M>>> + '_ {
        let mut msg = Some(msg);
        let mut waiter = SpaceWaiter::default();
        std::future::poll_fn(move |cx| self.inner.poll_send(&mut msg, None, &mut waiter, cx.waker(), false))
    }

    /// `Slot::replace`: swaps the target to `new` (which should be held),
    /// asking the old one to hand over. `false` when refused because the
    /// current target is itself still held.
    pub fn replace(&self, new: &ModelTarget<M>) -> bool {
        let new: Arc<dyn Deliver<M>> = new.inner.clone();
        self.inner.replace(new).is_ok()
    }

    /// What `Managed::isolate` does once the kind's cell runs: a real
    /// `KindRoute` sending messages whose `kind_of` is `kind` to an address
    /// over `to` (a fresh slot, as a spawned cell's address) and every other
    /// message to `base`, swapped in for `base` by the real `Slot::swap`.
    /// `None` when the swap was refused (the slot no longer points at
    /// `base`); `to` is drained then, as the engine drains the cell it
    /// started (see [`unwrap`](ModelSlot::unwrap)).
    pub fn isolate(
        &self,
        base: &ModelTarget<M>,
        kind_of: fn(&M) -> &'static str,
        kind: &str,
        to: &ModelTarget<M>,
    ) -> Option<ModelWrapper<M>> {
        let base = deliver_of(base);
        let cell = Addr::from_slot(Arc::new(slot_over(deliver_of(to))));
        let route: Arc<dyn Deliver<M>> =
            Arc::new(KindRoute::new(kind_of, vec![(kind.to_owned(), cell)], base.clone()));
        let wrapper = ModelWrapper { wrapper: route, base, added: to.clone() };
        self.swap_in(wrapper)
    }

    /// The step of `Managed::isolate` after its swap: asks the wrapped cell
    /// to move its queued messages of `kind` to the cell the isolate added
    /// (real `kind_regroup` and `offer_kind_move`). The added cell should
    /// have been made held ([`ModelTarget::new_held`]), as the engine
    /// spawns it: the move releases it.
    pub fn move_kind(&self, wrapper: &ModelWrapper<M>, kind_of: fn(&M) -> &'static str, kind: &str) {
        offer_kind_move(&wrapper.base, kind_regroup(kind_of, kind, deliver_of(&wrapper.added)));
    }

    /// What `Managed::split` into two does once the new cell runs: a real
    /// round-robin `Router` over an address to `base` (a fresh slot, as the
    /// engine makes for the managed cell) and one to `with`, its target
    /// (`Router::target`) swapped in for `base` by the real `Slot::swap`.
    /// `None` when the swap was refused (the slot no longer points at
    /// `base`); `with` is drained then, as the engine drains the cell it
    /// started.
    pub fn split(&self, base: &ModelTarget<M>, with: &ModelTarget<M>) -> Option<ModelWrapper<M>> {
        let base = deliver_of(base);
        let members = vec![
            Addr::from_slot(Arc::new(slot_over(base.clone()))),
            Addr::from_slot(Arc::new(slot_over(deliver_of(with)))),
        ];
        let router = Router::new(Routing::round_robin(), members, |target| {
            Addr::from_slot(Arc::new(slot_over(target)))
        })
        .expect("two distinct member addresses make a router");
        let wrapper = ModelWrapper { wrapper: router.target(), base, added: with.clone() };
        self.swap_in(wrapper)
    }

    /// `Slot::swap` from the wrapped target to the wrapper; on refusal the
    /// added cell is drained, as `Managed::{isolate, split}` do.
    fn swap_in(&self, wrapper: ModelWrapper<M>) -> Option<ModelWrapper<M>> {
        match self.inner.swap(&wrapper.base, wrapper.wrapper.clone()) {
            Ok(()) => Some(wrapper),
            Err(_) => {
                wrapper.added.inner.mailbox.close();
                None
            }
        }
    }

    /// What `Managed::retire` of the last isolated kind and `Managed::merge`
    /// do: the real `Slot::swap` back from `wrapper` to the target it wraps,
    /// then the cell the wrapper added is drained. A cell takes a drain
    /// request by closing its mailbox (`Mailbox::close`) and handling what it
    /// holds; here it closes as soon as the swap returned, the earliest a
    /// worker could take the request, and keeps what it holds for the model.
    /// `false` when refused (the slot no longer points at the wrapper; the
    /// cell is not drained then).
    pub fn unwrap(&self, wrapper: &ModelWrapper<M>) -> bool {
        if self.inner.swap(&wrapper.wrapper, wrapper.base.clone()).is_err() {
            return false;
        }
        wrapper.added.inner.mailbox.close();
        true
    }
}

impl<M> fmt::Debug for ModelSlot<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ModelSlot(..)")
    }
}

/// A dummy cell for [`ModelRunQueue`]: a real `Runnable` that counts its turns.
#[derive(Debug, Default)]
pub struct ModelTask {
    turns: AtomicUsize,
}

impl ModelTask {
    /// A task that has run no turn. (`Arc` is std's, as in the loom shim.)
    pub fn new() -> Arc<Self> {
        Arc::new(ModelTask::default())
    }

    /// Turns run so far.
    pub fn turns(&self) -> usize {
        self.turns.load(Acquire)
    }
}

impl Runnable for ModelTask {
    fn run_turn(&self, _budget: usize) -> TurnEnd {
        self.turns.fetch_add(1, AcqRel);
        TurnEnd::Idle
    }
}

/// The real `dispatch::run_queue::RunQueue`, with its sleeping-worker protocol.
pub struct ModelRunQueue {
    inner: RunQueue,
}

impl ModelRunQueue {
    /// A run queue for `workers` workers, numbered from 0.
    pub fn new(workers: usize) -> Self {
        ModelRunQueue { inner: RunQueue::new(workers) }
    }

    /// `RunQueue::push`: appends `task` and wakes a sleeping worker.
    pub fn push(&self, task: &Arc<ModelTask>) {
        let task: Task = task.clone();
        self.inner.push(task);
    }

    /// `RunQueue::pop`, then runs one turn of the task taken, as a worker
    /// does. `false` when the queue was empty.
    pub fn pop_and_run(&self) -> bool {
        match self.inner.pop() {
            Some(task) => {
                let _ = task.run_turn(1);
                true
            }
            None => false,
        }
    }

    /// `RunQueue::park`: worker `index` sleeps until a push or shutdown.
    pub fn park(&self, index: usize) {
        self.inner.park(index);
    }

    /// `RunQueue::shut_down`: every worker leaves its loop.
    pub fn shut_down(&self) {
        self.inner.shut_down();
    }

    /// `RunQueue::is_shutdown`.
    pub fn is_shutdown(&self) -> bool {
        self.inner.is_shutdown()
    }

    /// `RunQueue::is_empty`.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }

    /// `RunQueue::is_asleep`: every worker parked and nothing queued.
    pub fn is_asleep(&self) -> bool {
        self.inner.is_asleep()
    }
}

/// The real `dormancy::Dormancy`: a background job's state word.
#[derive(Debug)]
pub struct ModelDormancy {
    inner: Dormancy,
}

impl ModelDormancy {
    /// A dormant job (`Dormancy::new`).
    pub fn new() -> Self {
        ModelDormancy { inner: Dormancy::new() }
    }

    /// `Dormancy::mark`: `true` when the caller must arm the job.
    pub fn mark(&self) -> bool {
        self.inner.mark()
    }

    /// `Dormancy::begin_tick`: `true` when marked since the last tick.
    pub fn begin_tick(&self) -> bool {
        self.inner.begin_tick()
    }

    /// `Dormancy::try_sleep`: `true` when the job stops.
    pub fn try_sleep(&self) -> bool {
        self.inner.try_sleep()
    }
}

impl Default for ModelDormancy {
    fn default() -> Self {
        ModelDormancy::new()
    }
}

impl fmt::Debug for ModelRunQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// The real `observe::metrics::CellMetrics` of one observed cell
/// (instance 1), whose turns run the real `TurnMeter` and count each send
/// with the real `CellMetrics::accepted`, as `CellInstance::run_own_turn`
/// and a send from its handler do.
///
/// The meter keeps the running turn's sends in thread-locals, which loom
/// does not model (its threads share them): turns must run on one model
/// thread only.
pub struct ModelCellMetrics {
    inner: CellMetrics,
}

impl ModelCellMetrics {
    /// A fresh block that stamps no send (`CellMetrics::new`).
    pub fn new() -> Self {
        ModelCellMetrics { inner: CellMetrics::new(u32::MAX, false) }
    }

    /// One turn of the cell that sends once to each receiver in `sends`
    /// (instance ids, not 0), in order, and ends: `TurnMeter::begin_lazy`
    /// with the block at hand, `CellMetrics::accepted` per send, the meter
    /// dropped.
    pub fn turn(&self, sends: &[u64]) {
        let path = CellPath::root();
        let block = || &self.inner;
        let meter = TurnMeter::begin_lazy(&block, Some(&self.inner), 1);
        for &to in sends {
            CellMetrics::accepted(to, &path);
        }
        drop(meter);
    }

    /// `CellMetrics::outbound`: each edge's receiver and message count, in
    /// the order the edges were first used.
    pub fn outbound(&self) -> Vec<(u64, u64)> {
        self.inner.outbound().into_iter().map(|edge| (edge.to, edge.messages)).collect()
    }
}

impl Default for ModelCellMetrics {
    fn default() -> Self {
        ModelCellMetrics::new()
    }
}

impl fmt::Debug for ModelCellMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner, f)
    }
}

/// The real `supervise::window::RestartWindow`: a supervisor's restart
/// intensity. Not synchronized; a model keeps it where the real node does,
/// under the lock its events are pushed under.
#[derive(Debug, Default)]
pub struct ModelWindow {
    inner: RestartWindow,
}

impl ModelWindow {
    /// A window with no restart recorded.
    pub fn new() -> Self {
        ModelWindow::default()
    }

    /// `RestartWindow::admit`: records a restart at `now`; `false` when,
    /// counting it, more than `max` restarts happened within `period`.
    pub fn admit(&mut self, now: Instant, max: u32, period: Duration) -> bool {
        self.inner.admit(now, max, period)
    }

    /// `RestartWindow::clear`: forgets every restart.
    pub fn clear(&mut self) {
        self.inner.clear();
    }
}

/// The real `supervise::watch::Watchers` of one address: who is told, once,
/// that the cell behind it stopped for good.
#[derive(Default)]
pub struct ModelWatchers {
    inner: Watchers,
}

impl ModelWatchers {
    /// Watchers of a live cell.
    pub fn new() -> Self {
        ModelWatchers::default()
    }

    /// `Watchers::add`: `watcher` runs once the cell stopped for good, on
    /// the thread that ends it, or here at once if it already has.
    pub fn add(&self, watcher: impl FnOnce() + Send + 'static) {
        self.inner.add(Box::new(move |_: &Terminated| watcher()));
    }

    /// `Watchers::end`: the cell stopped for good; every watcher runs, once.
    pub fn end(&self) {
        self.inner.end(Terminated { path: CellPath::root(), reason: crate::cell::StopReason::Shutdown });
    }
}

impl fmt::Debug for ModelWatchers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelWatchers").finish_non_exhaustive()
    }
}

/// The real `flow::breaker::CircuitBreaker`, driven at instants the model
/// gives, so no clock is read on the paths loom explores.
#[derive(Clone, Debug)]
pub struct ModelBreaker {
    inner: CircuitBreaker,
}

impl ModelBreaker {
    /// `CircuitBreaker::new`.
    pub fn new(config: BreakerConfig) -> Result<Self, BreakerConfigError> {
        Ok(ModelBreaker { inner: CircuitBreaker::new("model", config)? })
    }

    /// `CircuitBreaker::try_acquire` at `now`.
    pub fn try_acquire_at(&self, now: Instant) -> Result<Permit, BreakerOpen> {
        self.inner.try_acquire_at(now)
    }

    /// `Permit::record` of a call that took `elapsed`, at `now`.
    pub fn record_at(&self, permit: Permit, outcome: CallOutcome, elapsed: Duration, now: Instant) {
        permit.record_at(outcome, elapsed, now);
    }

    /// `CircuitBreaker::state`.
    pub fn state(&self) -> BreakerState {
        self.inner.state()
    }

    /// Half-open trial slots taken in the current epoch (from the state
    /// word): permits in flight plus trial calls recorded.
    pub fn trial_slots(&self) -> u32 {
        self.inner.trial_slots()
    }

    /// Trial calls recorded in the current half-open epoch
    /// (`CircuitBreaker::metrics` while half-open).
    pub fn recorded_calls_at(&self, now: Instant) -> u32 {
        self.inner.metrics_at(now).calls
    }
}

/// What a [`ModelGroup`]'s members share: the real group, the real run
/// queue of their dispatcher, and the model's observations.
struct GroupModelShared {
    group: Arc<Group>,
    queue: RunQueue,
    /// Member turns in progress now (inside `Membership::run_turn`'s turn).
    inside: AtomicUsize,
    /// Turns that began while `max_concurrent` others were in progress.
    overlaps: AtomicUsize,
}

/// A cell group: the real `dispatch::group::Group`, its members' turns
/// admitted by the real `Membership::run_turn`, on one dispatcher's real
/// `RunQueue`. Cloning gives another handle to the same group.
#[derive(Clone)]
pub struct ModelGroup {
    shared: Arc<GroupModelShared>,
}

impl ModelGroup {
    /// A group admitting `max_concurrent` (at least 1) turns at once, its
    /// members on a dispatcher of `workers` workers.
    pub fn new(max_concurrent: usize, workers: usize) -> Self {
        ModelGroup {
            shared: Arc::new(GroupModelShared {
                group: Group::new("model", max_concurrent),
                queue: RunQueue::new(workers),
                inside: AtomicUsize::new(0),
                overlaps: AtomicUsize::new(0),
            }),
        }
    }

    /// A new member cell, idle, with an empty mailbox of `capacity`.
    pub fn cell(&self, capacity: usize) -> ModelGroupCell {
        ModelGroupCell {
            inner: Arc::new_cyclic(|me| GroupCellInner {
                mailbox: Mailbox::new(capacity),
                membership: Membership::new(self.shared.group.clone()),
                shared: self.shared.clone(),
                me: me.clone(),
                handled: AtomicUsize::new(0),
                in_turn: AtomicBool::new(false),
                double_runs: AtomicUsize::new(0),
            }),
        }
    }

    /// What a worker does with the run queue: `RunQueue::pop`, then one turn
    /// of one message (`Runnable::run_turn`); a member that yields goes to
    /// the back of the queue. `false` when the queue was empty.
    pub fn run_one(&self) -> bool {
        let Some(task) = self.shared.queue.pop() else {
            return false;
        };
        if task.run_turn(1) == TurnEnd::Yield {
            self.shared.queue.push(task);
        }
        true
    }

    /// Turns that began while the group's limit was already reached.
    pub fn overlaps(&self) -> usize {
        self.shared.overlaps.load(Acquire)
    }

    /// `(running, parked)` from `Group::stats`.
    pub fn running_and_parked(&self) -> (usize, usize) {
        let stats = self.shared.group.stats();
        (stats.running, stats.parked)
    }

    /// `(turns, times_parked)` from `Group::stats`.
    pub fn turns_and_parks(&self) -> (u64, u64) {
        let stats = self.shared.group.stats();
        (stats.turns, stats.times_parked)
    }

    /// Whether the run queue is empty.
    pub fn queue_is_empty(&self) -> bool {
        self.shared.queue.is_empty()
    }
}

impl fmt::Debug for ModelGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.shared.group, f)
    }
}

struct GroupCellInner {
    mailbox: Mailbox<u32>,
    membership: Membership,
    shared: Arc<GroupModelShared>,
    me: Weak<GroupCellInner>,
    handled: AtomicUsize,
    in_turn: AtomicBool,
    double_runs: AtomicUsize,
}

/// A member of a [`ModelGroup`]: a real `Mailbox` and a real `Membership`,
/// whose turn is what `CellInstance::run_turn` does with them, handling a
/// message by counting it. Cloning gives another handle to the same cell.
#[derive(Clone)]
pub struct ModelGroupCell {
    inner: Arc<GroupCellInner>,
}

impl ModelGroupCell {
    /// `Mailbox::push`, and the cell on the run queue when the push took its
    /// run token (as `CellInstance::try_deliver`). `false` when refused.
    pub fn send(&self, msg: u32) -> bool {
        match self.inner.mailbox.push(msg) {
            Ok(Schedule::Enqueue) => {
                let task: Task = self.inner.clone();
                self.inner.shared.queue.push(task);
                true
            }
            Ok(Schedule::Nothing) => true,
            Err(_) => false,
        }
    }

    /// Messages handled so far.
    pub fn handled(&self) -> usize {
        self.inner.handled.load(Acquire)
    }

    /// Turns that began while another turn of this cell was in progress.
    pub fn double_runs(&self) -> usize {
        self.inner.double_runs.load(Acquire)
    }

    /// The mailbox's state word now.
    pub fn snapshot(&self) -> ModelSnapshot {
        ModelSnapshot(self.inner.mailbox.snapshot())
    }
}

impl fmt::Debug for ModelGroupCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelGroupCell").field("handled", &self.inner.handled.load(Relaxed)).finish()
    }
}

impl GroupCellInner {
    /// The turn `CellInstance::run_own_turn` runs, reduced to its mailbox
    /// steps, with the model's observations around it.
    fn own_turn(&self, budget: usize) -> TurnEnd {
        if self.in_turn.swap(true, AcqRel) {
            self.double_runs.fetch_add(1, AcqRel);
        }
        let limit = self.shared.group.stats().max_concurrent;
        if self.shared.inside.fetch_add(1, AcqRel) >= limit {
            self.shared.overlaps.fetch_add(1, AcqRel);
        }
        self.mailbox.state().start_turn();
        let mut handled = 0;
        while handled < budget {
            match self.mailbox.pop_user() {
                Some(_) => handled += 1,
                None => break,
            }
        }
        self.handled.fetch_add(handled, AcqRel);
        self.shared.inside.fetch_sub(1, AcqRel);
        self.in_turn.store(false, Release);
        self.mailbox.end_turn()
    }
}

impl Runnable for GroupCellInner {
    fn run_turn(&self, budget: usize) -> TurnEnd {
        self.membership
            .run_turn(|| self.me.upgrade().map(|me| me as Arc<dyn Reschedule>), || self.own_turn(budget))
    }
}

impl Reschedule for GroupCellInner {
    /// As `CellInstance::reschedule`: back on its dispatcher's run queue.
    fn reschedule(self: Arc<Self>) {
        let shared = self.shared.clone();
        shared.queue.push(self);
    }
}
