//! One lane of a user mailbox: a bounded first-in, first-out queue whose
//! memory follows what it holds, not its bound, and whose admission counts
//! are the lane's gate.
//!
//! # Memory
//!
//! Nothing is allocated before the first push: an idle lane is a capacity
//! and a null pointer, so a capacity of `1 << 30` or `usize::MAX` costs
//! what 32 does. The first push allocates the lane's body: the items, in an
//! unbounded segment queue (crossbeam-queue's `SegQueue`: 31 slots a
//! segment, allocated as it fills, freed as it drains), and two counters,
//! each on a cache line of its own.
//!
//! # Admission
//!
//! The bound is kept by two monotonic counters, one written by senders,
//! one by the receiver, so a message costs each side no write to the
//! other's cache line:
//!
//! - `reserved`, the reservations ever made, with `CLOSED` in its top bit;
//!   senders only. Beside it, on the same line, `limit`: `released +
//!   capacity` as a sender last computed it.
//! - `released`, the slots ever given back; the receiver only (the holder
//!   of the cell's run token, or the closer).
//!
//! A sender **reserves** a slot before it pushes: it reads `reserved` and,
//! when the lane is open and `reserved` is below `limit`, moves it one up
//! with a compare-exchange (closed, the push fails with the item back as
//! `Closed`). At `limit`, it reads `released` afresh and raises `limit`;
//! still there, the lane is full (the item back as `Full`). `limit` only
//! grows and is always a bound some sender saw, so reading it stale only
//! sends a sender to `released` early. Only then does it push the item.
//! The receiver **releases** the slot after it has popped an item: the item
//! is out of the queue before the count lets another sender in. While the
//! lane has room, senders read `released` once per `limit` they use up,
//! not once per message.
//!
//! So the queue never holds more than `capacity` items; `reserved −
//! released` (taken slots: items queued plus pushes in flight) is 0 when
//! it is empty and no push is in flight. The count can run ahead of the
//! items (a sender between its reservation and its push), never behind
//! them: [`len`](BoundedQueue::len) counts taken slots, while
//! [`is_empty`](BoundedQueue::is_empty) looks at the items, which is what
//! the worker's idle re-check needs (a reserved slot whose item is not
//! pushed yet is followed by that sender's check of the cell's state, which
//! schedules the cell if it went idle; see `dispatch/state.rs`).
//!
//! A compare-exchange rather than an unconditional add keeps the count exact:
//! an add-then-undo would let a sender that overshot make another see the
//! lane full while it has room. Any `capacity` up to `usize::MAX` is valid:
//! `limit` saturates below the `CLOSED` bit (a lane admits at most 2^63 − 1
//! messages over its life: centuries at a billion a second).
//!
//! # Closing
//!
//! [`close`](BoundedQueue::close) seals an unused lane (its body is never
//! allocated: nothing was admitted, nothing will be), or sets `CLOSED` in
//! `reserved` and waits out the pushes in flight: until the items queued
//! are as many as the slots taken. A reservation and the close are changes
//! of one word, so each sender is either refused or counted, and a counted
//! one is waited for: once `close` returns, nothing more enters the queue,
//! and every item admitted is in it (or popped).
//!
//! The wait reads `released`, then `reserved`, then the queue's length: if
//! the length is at least `reserved − released`, every push counted has
//! landed. A push or pop between the reads only makes that harder to meet
//! (a release read early leaves the difference larger; a pop lowers the
//! length; a push was counted already), so it can wait a little longer
//! than needed, never less.
//!
//! Waking is not this module's business: the cell's scheduling state word
//! does it (`dispatch/state.rs`). The loom models
//! `loom-tests/tests/mailbox_bounded.rs` and `mailbox_close.rs` check the
//! protocol.

use crossbeam_utils::CachePadded;

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{spin_loop, OnceBox, SegQueue};

/// In `reserved`: the lane admits nothing new. Never cleared.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// In `reserved`: the reservations ever made.
const COUNT: usize = !CLOSED;

/// Why [`BoundedQueue::try_push`] handed its item back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused<T> {
    /// Every slot is taken.
    Full(T),
    /// The lane was closed.
    Closed(T),
}

/// A bounded queue of `T`, allocated as it fills. See the module docs.
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    capacity: usize,
    /// Allocated by the first push; sealed by a close that came first.
    body: OnceBox<Body<T>>,
}

/// What a lane allocates with its first push. See the module docs.
#[derive(Debug)]
struct Body<T> {
    senders: CachePadded<SenderSide>,
    /// Slots ever released; written by the receiver only.
    released: CachePadded<AtomicUsize>,
    items: SegQueue<T>,
}

/// The counters senders write, on one cache line.
#[derive(Debug)]
struct SenderSide {
    /// Reservations ever made, and `CLOSED`.
    reserved: AtomicUsize,
    /// `released + capacity` as a sender last read it: below it, a
    /// reservation needs no look at `released`. Only grows.
    limit: AtomicUsize,
}

impl<T> Body<T> {
    fn new(capacity: usize) -> Self {
        Body {
            senders: CachePadded::new(SenderSide {
                reserved: AtomicUsize::new(0),
                limit: AtomicUsize::new(capacity.min(COUNT)),
            }),
            released: CachePadded::new(AtomicUsize::new(0)),
            items: SegQueue::new(),
        }
    }

    /// Taken slots: `reserved − released`, read in that order's reverse so
    /// the difference is never negative (a release follows its
    /// reservation).
    fn taken(&self) -> usize {
        // Acquire pairs with the Release of `pop`'s release.
        let released = self.released.load(Acquire);
        let reserved = self.senders.reserved.load(Acquire) & COUNT;
        reserved.wrapping_sub(released)
    }

    /// Reads `released` afresh and raises `limit` (last seen as `seen`) to
    /// what it allows, writing only when that is higher. Returns the limit.
    #[cold]
    fn refresh_limit(&self, capacity: usize, seen: usize) -> usize {
        // Acquire pairs with the Release of `pop`'s release: the pops that
        // freed these slots happen before the pushes that take them.
        let limit = self.released.load(Acquire).saturating_add(capacity).min(COUNT);
        if limit <= seen {
            // Still full: a sender retrying writes nothing.
            return seen;
        }
        // AcqRel: a sender that uses this limit without reading `released`
        // itself (Acquire in `try_push`) inherits the order above.
        self.senders.limit.fetch_max(limit, AcqRel).max(limit)
    }
}

impl<T> BoundedQueue<T> {
    /// An empty queue admitting at most `capacity` items (at least 1, at
    /// most `usize::MAX`). Allocates nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity > 0, "a mailbox lane needs room for one item");
        BoundedQueue { capacity, body: OnceBox::new() }
    }

    /// Appends `item`, or hands it back when the lane is closed or
    /// `capacity` slots are taken.
    #[inline]
    pub(crate) fn try_push(&self, item: T) -> Result<(), Refused<T>> {
        let Some(body) = self.body.try_get_or_init(|| Box::new(Body::new(self.capacity))) else {
            return Err(Refused::Closed(item));
        };
        let senders = &body.senders;
        let mut reserved = senders.reserved.load(Relaxed);
        loop {
            if reserved & CLOSED != 0 {
                return Err(Refused::Closed(item));
            }
            // Acquire pairs with `refresh_limit`'s release of the limit.
            let limit = senders.limit.load(Acquire);
            if reserved >= limit && reserved >= body.refresh_limit(self.capacity, limit) {
                return Err(Refused::Full(item));
            }
            match senders.reserved.compare_exchange_weak(reserved, reserved + 1, Acquire, Relaxed) {
                Ok(_) => break,
                Err(actual) => reserved = actual,
            }
        }
        body.items.push(item);
        Ok(())
    }

    /// Takes the oldest item and releases its slot.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let body = self.body.get()?;
        let item = body.items.pop()?;
        // Release pairs with the Acquire of the senders' look at `released`.
        body.released.fetch_add(1, Release);
        Some(item)
    }

    /// Slots taken: items queued plus pushes in flight.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.body.get().map_or(0, Body::taken)
    }

    /// Closes the lane: no reservation succeeds afterwards. Returns once
    /// every push admitted before has landed in the queue (see the module
    /// docs), so what [`pop`](BoundedQueue::pop) finds then is all there
    /// will be. Closing twice is harmless.
    pub(crate) fn close(&self) {
        let Some(body) = self.body.seal() else {
            // Sealed unused: no sender ever reserved, none ever will.
            return;
        };
        // AcqRel: one read-modify-write in `reserved`'s order, so a
        // sender's reservation is either before it (counted, waited for
        // below) or after it (sees `CLOSED`).
        body.senders.reserved.fetch_or(CLOSED, AcqRel);
        while body.taken() > body.items.len() {
            // A push between its reservation and its landing (or a pop
            // between its take and its release).
            spin_loop();
        }
    }

    /// Whether no item is queued (a push in flight is not counted).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.body.get().is_none_or(|body| body.items.is_empty())
    }

    /// Whether a push would find a free slot now.
    #[inline]
    pub(crate) fn has_room(&self) -> bool {
        self.len() < self.capacity
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most items the queue ever held at once (the loom stand-in's
    /// record), for the models to compare with the capacity.
    #[cfg(cellrt_loom)]
    pub(crate) fn peak(&self) -> usize {
        self.body.get().map_or(0, |body| body.items.peak())
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_capacity_and_hands_the_rest_back() {
        let queue = BoundedQueue::new(2);
        assert_eq!(queue.try_push(1), Ok(()));
        assert_eq!(queue.try_push(2), Ok(()));
        assert_eq!(queue.try_push(3), Err(Refused::Full(3)));
        assert_eq!((queue.len(), queue.has_room()), (2, false));
        assert_eq!(queue.pop(), Some(1));
        assert_eq!((queue.len(), queue.has_room()), (1, true));
        assert_eq!(queue.try_push(4), Ok(()));
        assert_eq!([queue.pop(), queue.pop(), queue.pop()], [Some(2), Some(4), None]);
        assert_eq!(queue.len(), 0);
        assert!(queue.is_empty());
    }

    #[test]
    fn allocates_nothing_before_the_first_push() {
        let queue: BoundedQueue<u64> = BoundedQueue::new(usize::MAX);
        assert!(queue.body.get().is_none());
        assert!(queue.is_empty());
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.len(), 0, "a pop from an empty queue releases nothing");
        assert_eq!(queue.try_push(7), Ok(()));
        assert!(queue.body.get().is_some());
    }

    #[test]
    fn the_largest_capacity_admits_and_counts() {
        let queue = BoundedQueue::new(usize::MAX);
        for n in 0..100 {
            assert_eq!(queue.try_push(n), Ok(()));
        }
        assert_eq!((queue.len(), queue.capacity()), (100, usize::MAX));
        assert_eq!(std::iter::from_fn(|| queue.pop()).count(), 100);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn a_closed_lane_refuses_as_closed_even_when_full_and_keeps_what_it_admitted() {
        let queue = BoundedQueue::new(2);
        assert_eq!(queue.try_push(1), Ok(()));
        assert_eq!(queue.try_push(2), Ok(()));
        queue.close();
        assert_eq!(queue.try_push(3), Err(Refused::Closed(3)), "closed comes before full");
        assert_eq!(queue.len(), 2, "a refused push takes no slot");
        assert_eq!([queue.pop(), queue.pop(), queue.pop()], [Some(1), Some(2), None]);
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.try_push(4), Err(Refused::Closed(4)), "room does not reopen a closed lane");
        queue.close();
        assert_eq!(queue.len(), 0, "closing twice changes nothing");
    }

    #[test]
    fn closing_an_unused_lane_allocates_nothing() {
        let queue: BoundedQueue<u64> = BoundedQueue::new(32);
        queue.close();
        assert!(queue.body.get().is_none());
        assert_eq!(queue.try_push(1), Err(Refused::Closed(1)));
        assert!(queue.body.get().is_none());
    }

    #[test]
    fn the_largest_capacity_can_be_closed() {
        let queue = BoundedQueue::new(usize::MAX);
        assert_eq!(queue.try_push(1), Ok(()));
        queue.close();
        assert_eq!((queue.len(), queue.capacity()), (1, usize::MAX));
        assert_eq!(queue.try_push(2), Err(Refused::Closed(2)));
        assert_eq!(queue.pop(), Some(1));
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn close_waits_for_a_push_admitted_before_it() {
        use std::sync::atomic::AtomicBool;
        // A sender reserves, then stalls before its push; the close must
        // not return until the item is in the queue.
        let queue = std::sync::Arc::new(BoundedQueue::new(4));
        assert_eq!(queue.try_push(1), Ok(()));
        let body = queue.body.get().unwrap();
        body.senders.reserved.fetch_add(1, Relaxed);
        let closed = std::sync::Arc::new(AtomicBool::new(false));
        let closer = {
            let (queue, closed) = (queue.clone(), closed.clone());
            std::thread::spawn(move || {
                queue.close();
                closed.store(true, Release);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!closed.load(Acquire), "close returned with a push in flight");
        body.items.push(7);
        closer.join().unwrap();
        assert_eq!([queue.pop(), queue.pop(), queue.pop()], [Some(1), Some(7), None]);
        assert_eq!(queue.len(), 0);
    }

    #[test]
    fn senders_look_at_the_releases_only_when_their_limit_is_used_up() {
        let queue = BoundedQueue::new(4);
        for n in 0..4 {
            assert_eq!(queue.try_push(n), Ok(()));
        }
        let body = queue.body.get().unwrap();
        assert_eq!(body.senders.limit.load(Relaxed), 4, "below the first limit, no look");
        assert_eq!(queue.pop(), Some(0));
        assert_eq!(body.senders.limit.load(Relaxed), 4, "a release alone moves no limit");
        assert_eq!(queue.try_push(4), Ok(()), "the sender at its limit finds the freed slot");
        assert_eq!(body.senders.limit.load(Relaxed), 5);
        assert_eq!(queue.try_push(5), Err(Refused::Full(5)));
        assert_eq!(queue.len(), 4);
    }

    #[test]
    fn counts_stay_exact_over_many_laps_of_the_capacity() {
        let queue = BoundedQueue::new(3);
        let mut next = 0_u32;
        let mut popped = Vec::new();
        for _ in 0..100 {
            while queue.try_push(next).is_ok() {
                next += 1;
            }
            assert_eq!(queue.len(), 3, "full at exactly the capacity");
            popped.extend(queue.pop());
            popped.extend(queue.pop());
            assert_eq!(queue.len(), 1);
        }
        popped.extend(std::iter::from_fn(|| queue.pop()));
        assert_eq!(popped, (0..next).collect::<Vec<_>>(), "first in, first out, none lost");
        assert_eq!((queue.len(), next), (0, 201));
    }

    #[test]
    fn remaining_items_are_dropped_with_the_queue() {
        let item = std::sync::Arc::new(());
        let queue = BoundedQueue::new(4);
        queue.try_push(item.clone()).unwrap();
        queue.try_push(item.clone()).unwrap();
        drop(queue);
        assert_eq!(std::sync::Arc::strong_count(&item), 1);
    }
}
