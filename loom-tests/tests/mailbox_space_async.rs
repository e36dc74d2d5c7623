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
//! Planted bug this model catches (checked, then reverted): in
//! `Mailbox::register_for_space`, setting `SPACE_WAITERS` and looking at the
//! queue before putting the waker in the list: a worker whose turn ends
//! between the two sees the flag, finds the list empty, and the task sleeps
//! on a mailbox with room (loom reports a deadlock).
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelSlot, ModelTarget};
use loom::sync::Arc;
use loom::thread;

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
