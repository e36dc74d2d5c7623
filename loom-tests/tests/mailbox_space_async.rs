//! Model of an async sender waiting for room (`Slot::poll_send` in
//! `runtime/src/address.rs`, `Mailbox::register_for_space` and
//! `Mailbox::end_turn`, the wakers of `runtime/src/mailbox/space.rs` and
//! `SPACE_WAITERS` in `runtime/src/dispatch/state.rs`).
//!
//! Property: a task that found the mailbox full and returned `Pending` is
//! woken once the worker's turn freed a slot, or the mailbox closed; no
//! wake-up is lost. The task runs under `loom::future::block_on`, which
//! parks its thread until the waker is called, so a lost wake-up is reported
//! as a deadlock.
//!
//! A turn wakes only as many waiting tasks as there is room, longest
//! waiting first; the models with two waiting tasks poll them by hand with
//! wakers that count their wake-ups, so they check how many were woken, not
//! only that no one sleeps for good.
//!
//! Planted bugs these models catch (each checked, then reverted):
//!
//! - in `Mailbox::register_for_space`, setting `SPACE_WAITERS` and looking
//!   at the queue before putting the waker in the list: a worker whose turn
//!   ends between the two sees the flag, finds the list empty, and the task
//!   sleeps on a mailbox with room (loom reports a deadlock);
//! - in `SpaceWakers::wake_for_room`, waking one task fewer than the room
//!   (`two_waiting_tasks_and_one_freed_slot_wake_exactly_the_first`: the
//!   first task is never woken);
//! - in `SpaceWaiter::cancel`, not handing a wake on
//!   (`a_woken_task_dropped_hands_its_wake_to_the_next`: the second task is
//!   never woken);
//! - in `Mailbox::close`, waking by room instead of everyone
//!   (`close_wakes_every_waiting_task`, and the model of one task woken by
//!   close);
//! - in `Slot::poll_send`, not marking a woken task as offering before it
//!   sends: the turn that takes its message can end before the task has
//!   left the list, still counts its wake as granted, and wakes no one
//!   (`two_waiting_tasks_and_one_freed_slot_wake_exactly_the_first`).
#![cfg(cellrt_loom)]

use std::future::Future;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Wake, Waker};

use cellrt::loom_api::{ModelSlot, ModelTarget};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A waker that counts its wake-ups.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A waker and what it counts.
fn counting() -> (std::sync::Arc<Count>, Waker) {
    let count = std::sync::Arc::new(Count::default());
    (count.clone(), Waker::from(count))
}

fn woken(count: &Count) -> usize {
    count.0.load(SeqCst)
}

/// A capacity-1 target holding message 1 (whose push took the run token),
/// and a slot over it.
fn full_target() -> (ModelTarget<u32>, ModelSlot<u32>) {
    let target = ModelTarget::new(1);
    let slot = ModelSlot::new(&target);
    slot.try_send(1).unwrap();
    (target, slot)
}

/// Polls `future` once with `waker`.
fn poll_with<F: Future>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// The worker holding the run token: turns until it gives the token up,
/// handling one message a turn. Returns the messages handled.
fn work(target: &ModelTarget<u32>) -> Vec<u32> {
    let mailbox = target.mailbox();
    let mut handled = Vec::new();
    loop {
        mailbox.start_turn();
        if let Some(msg) = mailbox.pop_user() {
            handled.push(msg);
        }
        if !mailbox.end_turn() {
            return handled;
        }
    }
}

#[test]
fn task_waiting_on_a_full_mailbox_is_woken_by_the_turn_that_frees_room() {
    cellrt_loom_tests::check(3, || {
        let target = ModelTarget::new(1);
        let slot = Arc::new(ModelSlot::new(&target));
        slot.try_send(1).unwrap();
        assert!(target.take_token(), "the first message takes the run token");
        let sender = {
            let slot = slot.clone();
            thread::spawn(move || loom::future::block_on(slot.send_async(2)))
        };
        let mut handled = work(&target);
        sender.join().unwrap().expect("the waiting send got through");
        // A send that took the run token (the worker had gone idle) must
        // get its turn run.
        if target.take_token() {
            handled.extend(work(&target));
        }
        assert_eq!(handled, [1, 2]);
        assert_eq!(target.tokens(), 0);
        assert!(target.mailbox().snapshot().is_idle());
    });
}

#[test]
fn task_waiting_on_a_full_mailbox_is_woken_by_close() {
    cellrt_loom_tests::check(3, || {
        let target = ModelTarget::new(1);
        let slot = Arc::new(ModelSlot::new(&target));
        slot.try_send(1).unwrap();
        let sender = {
            let slot = slot.clone();
            thread::spawn(move || loom::future::block_on(slot.send_async(2)))
        };
        assert_eq!(target.stop(), [1]);
        let refused = sender.join().unwrap().expect_err("the mailbox closed");
        assert!(refused.is_closed());
        assert_eq!(refused.into_inner(), 2, "the message comes back");
    });
}

#[test]
fn two_waiting_tasks_and_one_freed_slot_wake_exactly_the_first() {
    cellrt_loom_tests::check(3, || {
        let (target, slot) = full_target();
        assert!(target.take_token());
        let [(first, first_waker), (second, second_waker)] = [counting(), counting()];
        let mut send_2 = pin!(slot.send_async(2));
        let mut send_3 = pin!(slot.send_async(3));
        assert!(poll_with(send_2.as_mut(), &first_waker).is_pending());
        assert!(poll_with(send_3.as_mut(), &second_waker).is_pending());
        // The worker's turn frees the one slot.
        let worker = {
            let target = target.clone();
            thread::spawn(move || work(&target))
        };
        let mut handled = worker.join().unwrap();
        assert_eq!(handled, [1]);
        assert_eq!((woken(&first), woken(&second)), (1, 0), "one slot, one wake-up, first come first");
        // The first task sends, and the turn that takes its message may end
        // before the task has left the list: that turn still wakes the
        // second task.
        let worker = {
            let target = target.clone();
            thread::spawn(move || {
                while !target.take_token() {
                    thread::yield_now();
                }
                work(&target)
            })
        };
        assert_eq!(poll_with(send_2.as_mut(), &first_waker), Poll::Ready(Ok(())));
        handled.extend(worker.join().unwrap());
        assert_eq!(woken(&second), 1, "the next freed slot wakes the second task");
        assert_eq!(poll_with(send_3.as_mut(), &second_waker), Poll::Ready(Ok(())));
        // The send of 3 took the run token when the cell had gone idle.
        if target.take_token() {
            handled.extend(work(&target));
        }
        assert_eq!(handled, [1, 2, 3]);
        assert_eq!(target.tokens(), 0);
    });
}

#[test]
fn a_woken_task_dropped_hands_its_wake_to_the_next() {
    cellrt_loom_tests::check(3, || {
        let (target, slot) = full_target();
        assert!(target.take_token());
        let [(first, first_waker), (second, second_waker)] = [counting(), counting()];
        let mut send_2 = Box::pin(slot.send_async(2));
        let mut send_3 = pin!(slot.send_async(3));
        assert!(poll_with(send_2.as_mut(), &first_waker).is_pending());
        assert!(poll_with(send_3.as_mut(), &second_waker).is_pending());
        // The first task is cancelled while the turn frees the slot: before
        // or after it is woken.
        let worker = {
            let target = target.clone();
            thread::spawn(move || work(&target))
        };
        drop(send_2);
        assert_eq!(worker.join().unwrap(), [1]);
        assert!(woken(&first) <= 1);
        assert_eq!(woken(&second), 1, "the slot's wake-up reaches the second task");
        assert_eq!(poll_with(send_3.as_mut(), &second_waker), Poll::Ready(Ok(())));
        assert!(target.take_token());
        assert_eq!(work(&target), [3]);
    });
}

#[test]
fn close_wakes_every_waiting_task() {
    cellrt_loom_tests::check(3, || {
        let (target, slot) = full_target();
        let [(first, first_waker), (second, second_waker)] = [counting(), counting()];
        let mut send_2 = pin!(slot.send_async(2));
        let mut send_3 = pin!(slot.send_async(3));
        assert!(poll_with(send_2.as_mut(), &first_waker).is_pending());
        let closer = {
            let target = target.clone();
            thread::spawn(move || target.stop())
        };
        // The second task registers while the mailbox closes.
        let second_first = poll_with(send_3.as_mut(), &second_waker);
        assert_eq!(closer.join().unwrap(), [1]);
        assert_eq!(woken(&first), 1);
        match second_first {
            Poll::Pending => assert_eq!(woken(&second), 1),
            Poll::Ready(refused) => assert!(refused.unwrap_err().is_closed()),
        }
        match poll_with(send_2.as_mut(), &first_waker) {
            Poll::Ready(Err(refused)) => assert_eq!(refused.into_inner(), 2, "the message comes back"),
            other => panic!("the closed mailbox refuses: {other:?}"),
        }
    });
}
