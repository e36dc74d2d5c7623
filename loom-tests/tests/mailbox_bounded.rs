//! Model of a mailbox lane's admission counters (`BoundedQueue::try_push`,
//! `BoundedQueue::pop`, `BoundedQueue::len` and `BoundedQueue::close` in
//! `runtime/src/mailbox/bounded.rs`): the senders' reservations with their
//! cached limit, the receiver's releases, against racing senders, the
//! receiver, a reader and a closer.
//!
//! Properties:
//!
//! - the queue never holds more items than its capacity (the loom stand-in
//!   of the segment queue records the most it ever held);
//! - no item is lost or doubled: each is popped, left in the queue, or
//!   handed back to its sender, exactly once; one sender's items come out in
//!   the order it pushed them;
//! - once the queue is empty and no push is in flight, the count is back at
//!   0 (so the lane has its whole capacity again);
//! - a reader of the count racing a push and a pop sees a number between 0
//!   and the capacity (the two counters are read in the order that keeps
//!   their difference from going below 0);
//! - closing the mailbox racing senders leaves the count at 0 after
//!   `take_user`, and a push after `close` takes no slot.
//!
//! Planted bugs this model catches (each made a test fail, then was removed):
//!
//! - releasing the slot before popping the item (`fetch_sub` ahead of
//!   `pop`): a sender admitted in between makes the queue hold two items at
//!   capacity 1 (`a_slot_is_released_only_after_its_item_left`);
//! - a non-atomic check-then-add (load the count, compare with the
//!   capacity, then `fetch_add`): two senders both see room and both get in
//!   at capacity 1 (`two_senders_for_one_free_slot_admit_exactly_one`);
//! - releasing a slot on a pop that found nothing: the count wraps below 0
//!   and every later push is refused (every test of this file);
//! - reading `reserved` before `released` for the count: a push and a pop
//!   between the two reads make it wrap below 0
//!   (`the_count_read_during_a_push_and_a_pop_stays_within_the_capacity`);
//! - a close that does not wait out the pushes admitted before it, or waits
//!   for one too few (`close_racing_senders_leaves_the_count_at_zero`).
//!
//! The orderings of the cached limit (Acquire/Release) are not what keeps
//! the bound: the queue's push and pop are linearizable, and a sender only
//! uses a release after the pop before it completed, so no model here
//! fails with them relaxed; they make that order a happens-before as well.
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelBoundedQueue, ModelMailbox};
use cellrt::SendError;
use loom::sync::Arc;
use loom::thread;

/// Pushes `item` from a new thread; the thread returns it if it came back.
fn sender(queue: &Arc<ModelBoundedQueue<u32>>, item: u32) -> thread::JoinHandle<Option<u32>> {
    let queue = queue.clone();
    thread::spawn(move || queue.try_push(item).err())
}

/// Pops until the queue is empty.
fn drain(queue: &ModelBoundedQueue<u32>) -> Vec<u32> {
    std::iter::from_fn(|| queue.pop()).collect()
}

#[test]
fn two_senders_for_one_free_slot_admit_exactly_one() {
    cellrt_loom_tests::check(3, || {
        let queue = Arc::new(ModelBoundedQueue::new(1));
        let senders = [1, 2].map(|item| sender(&queue, item));
        let returned: Vec<u32> = senders.into_iter().filter_map(|s| s.join().unwrap()).collect();
        assert_eq!(returned.len(), 1, "exactly one of two senders gets the one slot");
        assert_eq!((queue.len(), queue.peak()), (1, 1));
        let queued = drain(&queue);
        assert_eq!(queued.len(), 1);
        assert_ne!(queued, returned);
        assert_eq!(queue.len(), 0);
    });
}

#[test]
fn a_slot_is_released_only_after_its_item_left() {
    cellrt_loom_tests::check(3, || {
        let queue = Arc::new(ModelBoundedQueue::new(1));
        assert_eq!(queue.try_push(1), Ok(()));
        let receiver = {
            let queue = queue.clone();
            thread::spawn(move || queue.pop())
        };
        let back = sender(&queue, 2).join().unwrap();
        let popped = receiver.join().unwrap();
        assert_eq!(popped, Some(1), "the only item queued when the receiver started");
        assert!(queue.peak() <= 1, "the queue held {} items at capacity 1", queue.peak());
        let left = drain(&queue);
        match back {
            None => assert_eq!(left, [2]),
            Some(back) => assert_eq!((back, left), (2, vec![])),
        }
        assert_eq!(queue.len(), 0);
        assert_eq!(queue.try_push(3), Ok(()), "the lane has its slot again");
    });
}

#[test]
fn racing_pushes_and_pops_account_for_every_item() {
    cellrt_loom_tests::check(2, || {
        let queue = Arc::new(ModelBoundedQueue::new(2));
        let ordered = {
            let queue = queue.clone();
            thread::spawn(move || [1, 2].into_iter().filter_map(|item| queue.try_push(item).err()).collect())
        };
        let other = sender(&queue, 3);
        // The receiver: two pops, each of which may find nothing yet.
        let mut popped: Vec<u32> = [queue.pop(), queue.pop()].into_iter().flatten().collect();
        let mut returned: Vec<u32> = ordered.join().unwrap();
        returned.extend(other.join().unwrap());
        assert!(queue.peak() <= 2, "the queue held {} items at capacity 2", queue.peak());
        popped.extend(drain(&queue));
        let firsts: Vec<u32> = popped.iter().copied().filter(|&item| item != 3).collect();
        assert!(firsts.windows(2).all(|w| w[0] < w[1]), "one sender's items out of order: {popped:?}");
        let mut all = [popped, returned].concat();
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3], "each item popped or handed back, exactly once");
        assert_eq!(queue.len(), 0, "the count is back at 0 once the queue is empty");
        assert!(queue.is_empty());
    });
}

#[test]
fn the_count_read_during_a_push_and_a_pop_stays_within_the_capacity() {
    cellrt_loom_tests::check(3, || {
        let queue = Arc::new(ModelBoundedQueue::new(1));
        let reader = {
            let queue = queue.clone();
            thread::spawn(move || queue.len())
        };
        let pushed = sender(&queue, 1);
        let popped = loop {
            if let Some(item) = queue.pop() {
                break item;
            }
            thread::yield_now();
        };
        assert_eq!((popped, pushed.join().unwrap()), (1, None));
        let seen = reader.join().unwrap();
        assert!(seen <= 1, "the count read {seen} at capacity 1");
        assert_eq!(queue.len(), 0);
    });
}

#[test]
fn close_racing_senders_leaves_the_count_at_zero() {
    cellrt_loom_tests::check(3, || {
        let mailbox = Arc::new(ModelMailbox::new(1));
        let senders = [1, 2].map(|msg| {
            let mailbox = mailbox.clone();
            thread::spawn(move || match mailbox.push(msg) {
                Ok(_) => None,
                Err(SendError::Full(back) | SendError::Closed(back)) => Some(back),
                Err(err) => panic!("unexpected {err:?}"),
            })
        });
        assert!(mailbox.close());
        let taken = mailbox.take_user();
        let returned: Vec<u32> = senders.into_iter().filter_map(|s| s.join().unwrap()).collect();
        assert!(taken.len() <= 1 && mailbox.peak() <= 1, "capacity 1 held {}", mailbox.peak());
        let mut all = [taken, returned].concat();
        all.sort_unstable();
        assert_eq!(all, [1, 2], "each message taken by the closer or handed back, exactly once");
        assert_eq!(mailbox.len(), 0, "the count is back at 0 after take_user");
        assert_eq!(mailbox.push(3), Err(SendError::Closed(3)));
        assert_eq!(mailbox.len(), 0, "a push after close takes no slot");
    });
}
