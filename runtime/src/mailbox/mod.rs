//! A cell's inbox: a bounded user queue behind admission counters, a lane for
//! messages handed over by a replaced target, and a lane of control requests.
//!
//! - `bounded.rs`: one lane's queue, bounded by admission counters (the
//!   senders' with a closed bit, the receiver's) and allocated as it fills.
//! - `error.rs`: [`SendError`], the rejected message handed back.
//! - `system.rs`: the control requests (stop, drain, kill), as pending flags.
//! - `space.rs`: how blocking senders and async senders wait for room.
//! - `regroup.rs`: work recomposition asks of a cell on its queued messages.
//!
//! # Memory
//!
//! A mailbox costs memory in proportion to what it holds, not to its
//! capacity. Each lane is a [`BoundedQueue`]: admission counters enforce
//! the capacity, and the messages live in a segment queue (31 messages a
//! segment); both are allocated by the first push, and the queue grows as
//! the lane fills and frees segments as it drains. An idle cell of
//! capacity 32 and one of capacity `1 << 30` cost the same; a lane that has
//! held messages keeps its body (the queue's head and tail and the senders'
//! and the receiver's counters, each on a cache line of its own: 512 bytes
//! on x86-64) and one segment until it has passed 31 more. The lanes above
//! 0 cost a few words each until their first push. The moved lane is a `VecDeque`, allocated by the first
//! hand-over (a replace or a restart that re-delivers a message). What
//! senders that wait for room sleep on is allocated by the first of them
//! (see `space.rs`).
//!
//! # Order of delivery
//!
//! A worker takes system messages first, then moved messages, then the user
//! queue. Moved messages were queued at a replaced target before anything that
//! reached this mailbox directly after the swap, so taking them first keeps
//! each sender's messages in the order it sent them.
//!
//! # Priority lanes
//!
//! A cell type with [`Cell::LANES`](crate::Cell::LANES) above 1 gets that
//! many user queues, each of the mailbox's capacity: lane 0 is the user
//! queue above, the others are kept apart, and [`Cell::lane`](crate::Cell::lane)
//! picks a message's lane. The worker takes from the highest non-empty lane
//! first (after system and moved messages), so an urgent message overtakes
//! the ordinary ones queued before it; within a lane, first in, first out.
//! Priority is strict: while a higher lane has messages, lower ones wait. A
//! lane is full on its own; the mailbox's length and capacity are the sums.
//!
//! # Held mailboxes
//!
//! The successor of a replaced cell starts *held*: it admits and queues user
//! messages but hands none to its worker until [`Mailbox::release`] brings
//! the predecessor's leftovers. Until then the queues look empty to the
//! worker, so a held cell goes idle instead of spinning.
//!
//! # Suspended mailboxes
//!
//! Between two incarnations of a supervised cell (it failed, and its
//! supervisor has not restarted it yet) the mailbox is *suspended*: senders
//! still queue, the worker is handed nothing. Only the holder of the run
//! token suspends and resumes, so the flag needs no ordering of its own: the
//! worker that resumes re-checks the queues before its turn ends.
//!
//! # Closing
//!
//! [`Mailbox::close`] closes every lane and waits out the
//! pushes admitted before (see `bounded.rs`); from then on a push hands its
//! message back as `Closed`, and every message that did get in is in the
//! queues for the worker or [`Mailbox::take_user`]. No message is both
//! rejected and queued, and none is neither: the loom model
//! `loom-tests/tests/mailbox_close.rs` checks this.
//!
//! # What a send writes
//!
//! A push writes the lane's senders' counter and the queue; the cell's
//! state word it only reads, after a fence, and writes only when the cell
//! was idle (see `dispatch/state.rs`); the receiver's counter it reads only
//! when the room it last saw is used up (see `bounded.rs`). So while a cell
//! runs, its senders and its worker share the queue's slots, not a counter
//! or the state word the worker reads and writes at every turn.

mod bounded;
mod error;
mod regroup;
mod space;
mod system;

use std::collections::VecDeque;
use std::time::Instant;

pub use self::error::SendError;
pub(crate) use self::regroup::{PendingRegroup, Regroup};
pub(crate) use self::system::{StopCause, SystemMsg};

pub(crate) use self::bounded::{BoundedQueue, Refused};
use self::space::SpaceSignal;
#[cfg(any(feature = "tokio", cellrt_loom))]
pub(crate) use self::space::SpaceWaiter;
use self::system::SystemQueue;
use crate::dispatch::state::{CellState, Schedule, Snapshot};
use crate::dispatch::TurnEnd;
use crate::observe::metrics::Stamp;
use crate::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use crate::sync::{Mutex, OnceBox};

/// A queued user message and, if it was sampled or has a deadline, its
/// stamp. Moved messages keep theirs, so a deadline survives a replace.
#[derive(Debug)]
pub(crate) struct Envelope<M> {
    pub(crate) msg: M,
    pub(crate) stamp: Option<Box<Stamp>>,
}

impl<M> Envelope<M> {
    /// A message without a stamp.
    pub(crate) fn plain(msg: M) -> Self {
        Envelope { msg, stamp: None }
    }
}

/// The moved lane: messages handed over by a replaced predecessor or put
/// back for re-delivery, and their count, which the worker reads without
/// the lock.
#[derive(Debug)]
struct MovedLane<M> {
    queue: Mutex<VecDeque<Envelope<M>>>,
    /// `queue`'s length, stored (Release) under its lock after each change.
    len: AtomicUsize,
}

impl<M> Default for MovedLane<M> {
    fn default() -> Self {
        MovedLane { queue: Mutex::new(VecDeque::new()), len: AtomicUsize::new(0) }
    }
}

/// Priority lanes 1 and up.
type UpperLanes<M> = Box<[BoundedQueue<Envelope<M>>]>;

/// The inbox of one cell, with the cell's scheduling state word.
#[derive(Debug)]
pub(crate) struct Mailbox<M> {
    state: CellState,
    queue: BoundedQueue<Envelope<M>>,
    /// Lanes 1 and up, for cell types with priority lanes; see the module docs.
    /// (Boxed twice: a cell type without lanes pays one pointer, not a
    /// slice's two words.)
    #[allow(clippy::redundant_allocation, reason = "a thin pointer to the rarely used lanes")]
    lanes: Option<Box<UpperLanes<M>>>,
    /// The moved lane; allocated by the first hand-over, see the module docs.
    moved: OnceBox<MovedLane<M>>,
    /// Set until the predecessor's messages arrive; see the module docs.
    held: AtomicBool,
    /// Set between two incarnations; see the module docs.
    suspended: AtomicBool,
    system: SystemQueue,
    space: SpaceSignal,
}

impl<M> Mailbox<M> {
    /// A mailbox whose user queue holds `capacity` messages (at least 1).
    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn new(capacity: usize) -> Self {
        Mailbox::with_lanes(capacity, 1, false)
    }

    /// A mailbox that hands no user message to its worker until released.
    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn new_held(capacity: usize) -> Self {
        Mailbox::with_lanes(capacity, 1, true)
    }

    /// A mailbox of `lanes` priority lanes (at least 1) of `capacity`
    /// messages each, held until released if `held`.
    pub(crate) fn with_lanes(capacity: usize, lanes: usize, held: bool) -> Self {
        Mailbox {
            state: CellState::new(),
            queue: BoundedQueue::new(capacity),
            lanes: (lanes > 1).then(|| Box::new((1..lanes).map(|_| BoundedQueue::new(capacity)).collect())),
            moved: OnceBox::new(),
            held: AtomicBool::new(held),
            suspended: AtomicBool::new(false),
            system: SystemQueue::default(),
            space: SpaceSignal::default(),
        }
    }

    pub(crate) fn state(&self) -> &CellState {
        &self.state
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        self.state.snapshot()
    }

    /// Adds a user message without blocking. On success, says whether the
    /// caller took the run token and must enqueue the cell.
    #[cfg(any(test, cellrt_loom))]
    #[inline]
    pub(crate) fn push(&self, msg: M) -> Result<Schedule, SendError<M>> {
        self.push_stamped(msg, None)
    }

    /// [`push`](Mailbox::push) for a message that may carry a stamp.
    #[cfg(any(test, cellrt_loom))]
    #[inline]
    pub(crate) fn push_stamped(&self, msg: M, stamp: Option<Box<Stamp>>) -> Result<Schedule, SendError<M>> {
        self.push_to(0, msg, stamp)
    }

    /// The number of priority lanes (1 without lanes).
    #[inline]
    pub(crate) fn lanes(&self) -> usize {
        self.lanes.as_ref().map_or(1, |lanes| lanes.len() + 1)
    }

    /// [`push`](Mailbox::push) of a message that may carry a stamp, into
    /// priority lane `lane` (the highest lane for a number above it).
    #[inline]
    pub(crate) fn push_to(
        &self,
        lane: usize,
        msg: M,
        stamp: Option<Box<Stamp>>,
    ) -> Result<Schedule, SendError<M>> {
        match self.lane(lane).try_push(Envelope { msg, stamp }) {
            Ok(()) => Ok(self.state.schedule_after_push()),
            Err(Refused::Full(envelope)) => Err(SendError::Full(envelope.msg)),
            Err(Refused::Closed(envelope)) => Err(SendError::Closed(envelope.msg)),
        }
    }

    /// Adds a control request. Never blocks, never fails; a request already
    /// pending is not doubled.
    pub(crate) fn push_system(&self, msg: SystemMsg) -> Schedule {
        self.system.push(msg);
        self.state.notify()
    }

    /// Puts `msgs` at the front of the moved lane: messages to hand out
    /// before anything else (a failed message re-delivered after a restart).
    /// Called by the run-token holder only.
    pub(crate) fn push_front(&self, msgs: impl DoubleEndedIterator<Item = M>) {
        let lane = self.moved_lane();
        let mut moved = lane.queue.lock();
        for msg in msgs.rev() {
            moved.push_front(Envelope::plain(msg));
        }
        lane.len.store(moved.len(), Release);
    }

    /// The moved lane, allocated on first use.
    fn moved_lane(&self) -> &MovedLane<M> {
        self.moved.get_or_init(Box::default)
    }

    /// Messages in the moved lane.
    #[inline]
    fn moved_len(&self) -> usize {
        self.moved.get().map_or(0, |lane| lane.len.load(Acquire))
    }

    /// Takes the messages a replaced predecessor left, ahead of the user
    /// queue, and lifts the hold. Bypasses the gate and the capacity: the
    /// moved lane only ever holds what one replaced queue held.
    pub(crate) fn release(&self, msgs: impl IntoIterator<Item = Envelope<M>>) -> Schedule {
        let lane = self.moved_lane();
        let mut moved = lane.queue.lock();
        moved.extend(msgs);
        lane.len.store(moved.len(), Release);
        drop(moved);
        // Release pairs with the Acquire in `pop_user`/`has_user_work`: a
        // worker that sees the hold lifted sees the moved messages. The
        // `notify` RMW after it orders it against an idle transition.
        self.held.store(false, Release);
        self.state.notify()
    }

    /// Whether the mailbox waits for a predecessor's messages.
    pub(crate) fn is_held(&self) -> bool {
        self.held.load(Acquire)
    }

    /// Hands no user message to the worker until [`resume`]. Called by the
    /// run-token holder only.
    ///
    /// [`resume`]: Mailbox::resume
    pub(crate) fn suspend(&self) {
        self.suspended.store(true, Relaxed);
    }

    /// Ends a suspension. Called by the run-token holder only, which
    /// re-checks the queues before its turn ends.
    pub(crate) fn resume(&self) {
        self.suspended.store(false, Relaxed);
    }

    /// Whether user messages are withheld from the worker.
    #[inline]
    fn withheld(&self) -> bool {
        self.held.load(Acquire) || self.suspended.load(Relaxed)
    }

    /// The next control message, if any.
    pub(crate) fn pop_system(&self) -> Option<SystemMsg> {
        self.system.pop()
    }

    /// The next user message: moved messages first, then the queue. Nothing
    /// while held.
    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn pop_user(&self) -> Option<M> {
        self.pop_stamped().map(|(msg, _)| msg)
    }

    /// [`pop_user`](Mailbox::pop_user) with the message's stamp, if it has
    /// one (a message re-delivered after a restart has none).
    #[inline]
    pub(crate) fn pop_stamped(&self) -> Option<(M, Option<Box<Stamp>>)> {
        if self.withheld() {
            return None;
        }
        if let Some(lane) = self.moved.get() {
            if lane.len.load(Acquire) > 0 {
                let mut moved = lane.queue.lock();
                if let Some(envelope) = moved.pop_front() {
                    lane.len.store(moved.len(), Release);
                    return Some((envelope.msg, envelope.stamp));
                }
            }
        }
        if let Some(lanes) = &self.lanes {
            if let Some(envelope) = lanes.iter().rev().find_map(BoundedQueue::pop) {
                return Some((envelope.msg, envelope.stamp));
            }
        }
        self.queue.pop().map(|envelope| (envelope.msg, envelope.stamp))
    }

    /// Wakes the senders sleeping for room, if any, in the middle of a turn
    /// that has made room (the worker holding the run token calls it once
    /// a turn, half-way through its budget): they refill the queue while
    /// the worker goes on, instead of sleeping until the turn ends, by
    /// which time the worker may have emptied the queue and gone idle (see
    /// `space.rs`). One read-modify-write on the state word.
    pub(crate) fn wake_senders_mid_turn(&self) {
        if self.state.take_space_waiters() {
            self.wake_senders();
        }
    }

    /// The queue of priority lane `lane` (the highest for a number above it).
    #[inline]
    fn lane(&self, lane: usize) -> &BoundedQueue<Envelope<M>> {
        match (&self.lanes, lane) {
            (Some(lanes), 1..) => &lanes[(lane - 1).min(lanes.len() - 1)],
            _ => &self.queue,
        }
    }

    /// Whether any priority lane above 0 holds a message.
    #[inline]
    fn lanes_have_work(&self) -> bool {
        self.lanes.as_ref().is_some_and(|lanes| lanes.iter().any(|lane| !lane.is_empty()))
    }

    /// Withdraws a pending control request; returns whether it was pending.
    pub(crate) fn take_system(&self, msg: SystemMsg) -> bool {
        self.system.take(msg)
    }

    /// Whether any queue holds something. Used for the re-check after going idle.
    pub(crate) fn has_work(&self) -> bool {
        !self.system.is_empty() || self.has_user_work()
    }

    /// Whether a user message (moved or queued) is waiting for the worker;
    /// never while held.
    pub(crate) fn has_user_work(&self) -> bool {
        !self.withheld() && (self.moved_len() > 0 || !self.queue.is_empty() || self.lanes_have_work())
    }

    /// User messages waiting, moved ones included.
    pub(crate) fn len(&self) -> usize {
        let lanes = self.lanes.as_ref().map_or(0, |lanes| lanes.iter().map(BoundedQueue::len).sum());
        self.moved_len() + self.queue.len() + lanes
    }

    /// The most messages lane 0 ever held at once (the loom stand-in's
    /// record), for the models to compare with its capacity.
    #[cfg(cellrt_loom)]
    pub(crate) fn peak(&self) -> usize {
        self.queue.peak()
    }

    /// The capacity of the user queue (of all lanes together; `usize::MAX`
    /// when that sum does not fit).
    pub(crate) fn capacity(&self) -> usize {
        self.queue.capacity().saturating_mul(self.lanes())
    }

    /// Closes every lane and waits out the pushes in flight (see the module
    /// docs), then wakes blocked senders so they see `Closed`. Returns
    /// `false` when it was already closed.
    pub(crate) fn close(&self) -> bool {
        self.queue.close();
        if let Some(lanes) = &self.lanes {
            lanes.iter().for_each(BoundedQueue::close);
        }
        // The lanes first: a sender waiting for room that sees the state
        // closed then finds its lane closed too, instead of full.
        let first = self.state.close();
        self.space.wake_all();
        first
    }

    /// Takes every queued user message, moved ones first. After [`close`]
    /// this empties the mailbox for good.
    ///
    /// [`close`]: Mailbox::close
    pub(crate) fn take_user(&self) -> Vec<Envelope<M>> {
        let mut out: Vec<Envelope<M>> = match self.moved.get() {
            Some(lane) => {
                let mut moved = lane.queue.lock();
                lane.len.store(0, Release);
                moved.drain(..).collect()
            }
            None => Vec::new(),
        };
        // The order the worker would have taken them in: highest lane first.
        if let Some(lanes) = &self.lanes {
            for lane in lanes.iter().rev() {
                out.extend(std::iter::from_fn(|| lane.pop()));
            }
        }
        out.extend(std::iter::from_fn(|| self.queue.pop()));
        out
    }

    /// Ends a turn of the worker holding the run token: keeps the token when
    /// work is left (`Yield`), otherwise goes idle and re-checks the queues,
    /// taking the token back if a message slipped in (see `dispatch::state`).
    /// Wakes senders that wait for room, if the turn-ending RMW found any.
    pub(crate) fn end_turn(&self) -> TurnEnd {
        if self.has_work() {
            if self.state.yield_turn() {
                self.wake_senders();
            }
            return TurnEnd::Yield;
        }
        if self.state.finish_turn_idle() {
            self.wake_senders();
        }
        // A sender that saw RUNNING left its message for this re-check.
        if self.has_work() && self.state.notify() == Schedule::Enqueue {
            return TurnEnd::Yield;
        }
        TurnEnd::Idle
    }

    /// Wakes the senders waiting for room, after a turn-ending RMW that
    /// found `SPACE_WAITERS` (see `space.rs`): every blocking one, and as
    /// many async ones as the queue has free slots.
    fn wake_senders(&self) {
        let rearm = || {
            let _ = self.state.wait_for_space();
        };
        self.space.wake(|| self.room(), rearm);
    }

    /// The free slots the async waiters may be woken for: lane 0's, or
    /// without bound for a mailbox with priority lanes, whose waiters wait
    /// on different lanes (all of them are woken).
    fn room(&self) -> usize {
        match self.lanes {
            Some(_) => usize::MAX,
            None => self.queue.capacity().saturating_sub(self.queue.len()),
        }
    }

    /// Whether a push into priority lane `lane` may be taken now, or would
    /// be refused as closed: reads, never writes.
    #[inline]
    pub(crate) fn may_take(&self, lane: usize) -> bool {
        self.lane(lane).has_room() || self.state.snapshot().is_closed()
    }

    /// Blocks until priority lane `lane` may have room, the mailbox closes,
    /// or `deadline` passes. Returns `false` when the deadline passed. See
    /// `space.rs` for the protocol.
    pub(crate) fn wait_for_space(&self, lane: usize, deadline: Instant) -> bool {
        let guard = self.space.lock();
        let before = self.state.wait_for_space();
        if before.is_closed() || self.lane(lane).has_room() {
            return true;
        }
        self.space.sleep(guard, deadline)
    }

    /// Leaves `waker` with `waiter` to be woken when priority lane `lane`
    /// may have room or the mailbox closes. Returns `true` when that is so
    /// already: the caller then tries its push again instead of waiting.
    /// See `space.rs` for the protocol.
    #[cfg(any(feature = "tokio", cellrt_loom))]
    pub(crate) fn register_for_space(
        &self,
        lane: usize,
        waiter: &mut SpaceWaiter,
        waker: &std::task::Waker,
    ) -> bool {
        // The waker is in the list before the RMW that sets the flag: a
        // worker that sees the flag finds it there.
        waiter.register(&self.space, waker);
        let before = self.state.wait_for_space();
        before.is_closed() || self.lane(lane).has_room()
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;

    fn msgs<M>(envelopes: Vec<Envelope<M>>) -> Vec<M> {
        envelopes.into_iter().map(|envelope| envelope.msg).collect()
    }

    #[test]
    fn full_mailbox_hands_message_back() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.push(1).unwrap(), Schedule::Enqueue);
        assert_eq!(mailbox.push(2).unwrap(), Schedule::Nothing);
        let err = mailbox.push(3).unwrap_err();
        assert!(err.is_full());
        assert_eq!(err.into_inner(), 3);
        assert_eq!(mailbox.len(), 2);
    }

    #[test]
    fn a_full_lane_may_take_again_once_popped_or_closed() {
        let mailbox = Mailbox::new(2);
        assert!(mailbox.may_take(0));
        let _ = mailbox.push(1).unwrap();
        assert!(mailbox.may_take(0));
        let _ = mailbox.push(2).unwrap();
        assert!(!mailbox.may_take(0), "full");
        assert_eq!(mailbox.pop_user(), Some(1));
        assert!(mailbox.may_take(0), "a slot was freed");
        let _ = mailbox.push(3).unwrap();
        assert!(!mailbox.may_take(0), "full again");
        mailbox.close();
        assert!(mailbox.may_take(0), "closed: an offer is refused otherwise than as full");
        assert!(mailbox.push(4).unwrap_err().is_closed());
    }

    #[test]
    fn closed_mailbox_rejects_and_keeps_what_got_in() {
        let mailbox = Mailbox::new(4);
        let _ = mailbox.push(1).unwrap();
        assert!(mailbox.close());
        assert_eq!(mailbox.push(2).unwrap_err(), SendError::Closed(2));
        assert_eq!(msgs(mailbox.take_user()), vec![1]);
        assert!(!mailbox.has_user_work());
    }

    #[test]
    fn held_mailbox_queues_but_hands_out_nothing_until_released() {
        let mailbox = Mailbox::new_held(4);
        let _ = mailbox.push(10).unwrap();
        assert!(mailbox.is_held());
        assert_eq!(mailbox.pop_user(), None);
        assert!(!mailbox.has_work(), "a held cell must go idle, not spin");
        assert_eq!(mailbox.len(), 1);
        let _ = mailbox.release([1, 2].map(Envelope::plain));
        assert!(!mailbox.is_held());
        assert_eq!(mailbox.len(), 3);
        let order: Vec<i32> = std::iter::from_fn(|| mailbox.pop_user()).collect();
        assert_eq!(order, vec![1, 2, 10], "moved messages come before queued ones");
    }

    #[test]
    fn suspended_mailbox_queues_and_hands_out_after_resume() {
        let mailbox = Mailbox::new(4);
        mailbox.suspend();
        let _ = mailbox.push(1).unwrap();
        assert_eq!(mailbox.pop_user(), None);
        assert!(!mailbox.has_work(), "a suspended cell must go idle, not spin");
        mailbox.push_front([0].into_iter());
        mailbox.resume();
        let order: Vec<i32> = std::iter::from_fn(|| mailbox.pop_user()).collect();
        assert_eq!(order, vec![0, 1], "a re-delivered message comes first");
    }

    #[test]
    fn system_messages_are_separate_from_user_messages() {
        let mailbox: Mailbox<u8> = Mailbox::new(1);
        assert_eq!(mailbox.push_system(SystemMsg::Stop(StopCause::Requested)), Schedule::Enqueue);
        assert!(mailbox.has_work());
        assert!(!mailbox.has_user_work());
        assert_eq!(mailbox.pop_system(), Some(SystemMsg::Stop(StopCause::Requested)));
        assert_eq!(mailbox.pop_system(), None);
    }

    #[test]
    fn higher_lanes_are_taken_first_and_each_lane_is_first_in_first_out() {
        let mailbox = Mailbox::with_lanes(2, 3, false);
        assert_eq!((mailbox.lanes(), mailbox.capacity()), (3, 6));
        let _ = mailbox.push_to(0, 1, None).unwrap();
        let _ = mailbox.push_to(0, 2, None).unwrap();
        assert_eq!(mailbox.push_to(0, 3, None).unwrap_err(), SendError::Full(3), "lane 0 is full on its own");
        let _ = mailbox.push_to(1, 10, None).unwrap();
        let _ = mailbox.push_to(2, 20, None).unwrap();
        let _ = mailbox.push_to(7, 21, None).unwrap(); // above the highest lane: the highest
        assert_eq!(mailbox.push_to(2, 22, None).unwrap_err(), SendError::Full(22));
        assert_eq!(mailbox.len(), 5);
        let order: Vec<i32> = std::iter::from_fn(|| mailbox.pop_user()).collect();
        assert_eq!(order, vec![20, 21, 10, 1, 2]);
        assert!(!mailbox.has_user_work());
    }

    #[test]
    fn a_message_only_in_a_higher_lane_is_work_and_is_taken_over_on_close() {
        let mailbox = Mailbox::with_lanes(4, 2, false);
        let _ = mailbox.push_to(1, 10, None).unwrap();
        assert!(mailbox.has_work(), "the idle re-check must see the higher lane");
        let _ = mailbox.push_to(0, 1, None).unwrap();
        let _ = mailbox.push_to(1, 11, None).unwrap();
        assert!(mailbox.close());
        assert_eq!(msgs(mailbox.take_user()), vec![10, 11, 1], "in the order the worker would take them");
    }

    #[test]
    fn the_capacity_of_all_lanes_saturates_at_the_largest_usize() {
        let mailbox: Mailbox<u8> = Mailbox::with_lanes(usize::MAX, 3, false);
        assert_eq!(mailbox.capacity(), usize::MAX);
        let _ = mailbox.push_to(2, 1, None).unwrap();
        assert_eq!(mailbox.len(), 1);
    }

    #[test]
    fn a_sender_waits_for_room_in_its_own_lane() {
        let mailbox = Mailbox::with_lanes(1, 2, false);
        let _ = mailbox.push_to(0, 1, None).unwrap();
        let soon = Instant::now() + std::time::Duration::from_millis(5);
        assert!(!mailbox.wait_for_space(0, soon), "lane 0 is full");
        let later = Instant::now() + std::time::Duration::from_secs(60);
        assert!(mailbox.wait_for_space(1, later), "lane 1 has room");
    }

    #[test]
    fn wait_for_space_times_out_on_a_full_queue() {
        let mailbox = Mailbox::new(1);
        let _ = mailbox.push(1).unwrap();
        let deadline = Instant::now() + std::time::Duration::from_millis(5);
        assert!(!mailbox.wait_for_space(0, deadline));
    }

    #[test]
    fn wait_for_space_returns_at_once_when_room_exists() {
        let mailbox: Mailbox<u8> = Mailbox::new(1);
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        assert!(mailbox.wait_for_space(0, deadline));
    }
}
