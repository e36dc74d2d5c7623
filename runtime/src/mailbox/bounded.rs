//! One lane of a user mailbox: a bounded first-in, first-out queue whose
//! memory follows what it holds, not its bound, and whose admission word
//! is the lane's gate.
//!
//! The items live in an unbounded segment queue (crossbeam-queue's
//! `SegQueue`: 31 slots a segment, allocated as it fills, freed as it
//! drains), itself allocated on the first push, so an idle lane costs the
//! few words of this struct and a capacity of `1 << 30` or `usize::MAX`
//! allocates nothing up front. The bound is an *admission word* beside it:
//! a count of slots taken and, in its top bit, `CLOSED`.
//!
//! - a sender **reserves** a slot before it pushes: it reads the word and,
//!   when it is open and the count is below `capacity`, moves the count one
//!   up with a compare-exchange (closed, the push fails with the item back
//!   as `Closed`; full, as `Full`); only then does it push the item;
//! - the receiver **releases** the slot after it has popped an item: the item
//!   is out of the queue before the count lets another sender in;
//! - the closer sets `CLOSED` (no reservation succeeds afterwards) and then
//!   waits out the pushes in flight: until the items queued are as many as
//!   the slots taken. A reservation and the close are changes of one word,
//!   so each sender is either refused or counted, and a counted one is
//!   waited for: once [`close`](BoundedQueue::close) returns, nothing more
//!   enters the queue, and every item admitted is in it (or popped).
//!
//! So the queue never holds more than `capacity` items, and the count
//! returns to 0 when it is empty and no push is in flight. The count can run
//! ahead of the items (a sender between its reservation and its push), never
//! behind them: [`len`](BoundedQueue::len) counts reserved slots, while
//! [`is_empty`](BoundedQueue::is_empty) looks at the items, which is what the
//! worker's idle re-check needs (a reserved slot whose item is not pushed yet
//! is followed by that sender's check of the cell's state, which schedules
//! the cell if it went idle; see `dispatch/state.rs`).
//!
//! The close's wait reads the word, then the queue's length: if the length
//! read is at least the count read, every push counted has landed. A push
//! or pop between the two reads only makes the condition harder to meet
//! (a pop lowers the length; a push was counted already), so it can wait a
//! little longer than needed, never less.
//!
//! A compare-exchange rather than an unconditional add keeps the count exact:
//! an add-then-undo would let a sender that overshot make another see the
//! lane full while it has room. The count never exceeds `capacity`, so any
//! `capacity` up to `usize::MAX` is valid (the count stops below the
//! `CLOSED` bit: 2^63 items could not be held in memory anyway).
//!
//! Only the holder of the cell's run token (or the closer, after the close)
//! pops. Waking is not this module's business: the cell's scheduling state
//! word does it (`dispatch/state.rs`). The loom models
//! `loom-tests/tests/mailbox_bounded.rs` and `mailbox_close.rs` check the
//! protocol.

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{spin_loop, OnceBox, SegQueue};

/// In the admission word: the lane admits nothing new. Never cleared.
const CLOSED: usize = 1 << (usize::BITS - 1);
/// In the admission word: the slots taken.
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
    /// Slots reserved by senders and not yet released by the receiver
    /// (items queued plus pushes in flight; never above `capacity`), and
    /// the `CLOSED` bit.
    admitted: AtomicUsize,
    capacity: usize,
    /// The items; allocated by the first push.
    items: OnceBox<SegQueue<T>>,
}

impl<T> BoundedQueue<T> {
    /// An empty queue admitting at most `capacity` items (at least 1, at
    /// most `usize::MAX`). Allocates nothing.
    pub(crate) fn new(capacity: usize) -> Self {
        debug_assert!(capacity > 0, "a mailbox lane needs room for one item");
        BoundedQueue { admitted: AtomicUsize::new(0), capacity, items: OnceBox::new() }
    }

    /// Appends `item`, or hands it back when the lane is closed or
    /// `capacity` slots are taken.
    #[inline]
    pub(crate) fn try_push(&self, item: T) -> Result<(), Refused<T>> {
        let mut admitted = self.admitted.load(Relaxed);
        loop {
            if admitted & CLOSED != 0 {
                return Err(Refused::Closed(item));
            }
            if admitted >= self.capacity.min(COUNT) {
                return Err(Refused::Full(item));
            }
            // Acquire pairs with the Release of `pop`: the pop that freed
            // this slot happens before the push that takes it, so the queue
            // never holds more than `capacity` items.
            match self.admitted.compare_exchange_weak(admitted, admitted + 1, Acquire, Relaxed) {
                Ok(_) => break,
                Err(actual) => admitted = actual,
            }
        }
        self.items.get_or_init(|| Box::new(SegQueue::new())).push(item);
        Ok(())
    }

    /// Takes the oldest item and releases its slot.
    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        let item = self.items.get()?.pop()?;
        // Release pairs with the Acquire of `try_push`'s reservation.
        self.admitted.fetch_sub(1, Release);
        Some(item)
    }

    /// Slots taken: items queued plus pushes in flight.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        // Acquire pairs with the Release of `pop`.
        self.admitted.load(Acquire) & COUNT
    }

    /// Closes the lane: no reservation succeeds afterwards. Returns once
    /// every push admitted before has landed in the queue (see the module
    /// docs), so what [`pop`](BoundedQueue::pop) finds then is all there
    /// will be. Closing twice is harmless.
    pub(crate) fn close(&self) {
        // AcqRel: one read-modify-write in the word's order, so a sender's
        // reservation is either before it (counted, waited for below) or
        // after it (sees `CLOSED`).
        self.admitted.fetch_or(CLOSED, AcqRel);
        while self.push_in_flight() {
            spin_loop();
        }
    }

    /// Whether a sender has reserved a slot and not pushed its item yet
    /// (or a pop has taken its item and not released the slot yet).
    fn push_in_flight(&self) -> bool {
        // Acquire pairs with the reservation's compare-exchange, which the
        // queue's push follows: the count first, then the items.
        let reserved = self.admitted.load(Acquire) & COUNT;
        let queued = self.items.get().map_or(0, |items| items.len());
        reserved > queued
    }

    /// Whether the lane was closed.
    #[cfg(test)]
    fn is_closed(&self) -> bool {
        self.admitted.load(Acquire) & CLOSED != 0
    }

    /// Whether no item is queued (a push in flight is not counted).
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.items.get().is_none_or(|items| items.is_empty())
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
        self.items.get().map_or(0, |items| items.peak())
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
        assert!(queue.items.get().is_none());
        assert!(queue.is_empty());
        assert_eq!(queue.pop(), None);
        assert_eq!(queue.len(), 0, "a pop from an empty queue releases nothing");
        assert_eq!(queue.try_push(7), Ok(()));
        assert!(queue.items.get().is_some());
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
        assert!(queue.is_closed());
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
        assert!(queue.items.get().is_none());
        assert_eq!(queue.try_push(1), Err(Refused::Closed(1)));
        assert!(queue.items.get().is_none());
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
        queue.admitted.fetch_add(1, Relaxed);
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
        queue.items.get_or_init(|| Box::new(SegQueue::new())).push(7);
        closer.join().unwrap();
        assert_eq!((queue.pop(), queue.len()), (Some(7), 0));
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
