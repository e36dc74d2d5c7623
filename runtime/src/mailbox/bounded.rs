//! One lane of a user mailbox: a bounded first-in, first-out queue whose
//! memory follows what it holds, not its bound.
//!
//! The items live in an unbounded segment queue (crossbeam-queue's
//! `SegQueue`: 31 slots a segment, allocated as it fills, freed as it
//! drains), itself allocated on the first push, so an idle lane costs the
//! few words of this struct and a capacity of `1 << 30` or `usize::MAX`
//! allocates nothing up front. The bound is an *admission count* beside it:
//!
//! - a sender **reserves** a slot before it pushes: it reads the count and,
//!   below `capacity`, moves it one up with a compare-exchange (at or above,
//!   the push fails and the item goes back); only then does it push the item;
//! - the receiver **releases** the slot after it has popped an item: the item
//!   is out of the queue before the count lets another sender in.
//!
//! So the queue never holds more than `capacity` items, and the count
//! returns to 0 when it is empty and no push is in flight. The count can run
//! ahead of the items (a sender between its reservation and its push), never
//! behind them: [`len`](BoundedQueue::len) counts reserved slots, while
//! [`is_empty`](BoundedQueue::is_empty) looks at the items, which is what the
//! worker's idle re-check needs (a reserved slot whose item is not pushed yet
//! will be followed by that sender's gate exit, which schedules the cell).
//!
//! A compare-exchange rather than an unconditional add keeps the count exact:
//! an add-then-undo would let a sender that overshot make another see the
//! lane full while it has room. The count never exceeds `capacity`, so any
//! `capacity` up to `usize::MAX` is valid.
//!
//! Senders reach a lane through the mailbox's admission gate; only the
//! holder of the cell's run token (or the closer, after the gate is shut)
//! pops. Waking is not this module's business: the cell's scheduling state
//! word does it (`dispatch/state.rs`). The loom model
//! `loom-tests/tests/mailbox_bounded.rs` checks the protocol.

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{OnceBox, SegQueue};

/// A bounded queue of `T`, allocated as it fills. See the module docs.
#[derive(Debug)]
pub(crate) struct BoundedQueue<T> {
    /// Slots reserved by senders and not yet released by the receiver:
    /// items queued plus pushes in flight. Never above `capacity`.
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

    /// Appends `item`, or hands it back when `capacity` slots are taken.
    #[inline]
    pub(crate) fn try_push(&self, item: T) -> Result<(), T> {
        let mut admitted = self.admitted.load(Relaxed);
        loop {
            if admitted >= self.capacity {
                return Err(item);
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
        self.admitted.load(Acquire)
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
        assert_eq!(queue.try_push(3), Err(3));
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
    fn remaining_items_are_dropped_with_the_queue() {
        let item = std::sync::Arc::new(());
        let queue = BoundedQueue::new(4);
        queue.try_push(item.clone()).unwrap();
        queue.try_push(item.clone()).unwrap();
        drop(queue);
        assert_eq!(std::sync::Arc::strong_count(&item), 1);
    }
}
