//! Model of a blocked sender waiting for room (`Mailbox::wait_for_space`,
//! `Mailbox::end_turn` and `SPACE_WAITERS` in `runtime/src/dispatch/state.rs`,
//! `runtime/src/mailbox/space.rs`).
//!
//! Property: a sender that found the mailbox full and went to sleep is woken
//! once the worker's turn freed a slot (or the mailbox closed); no wake-up is
//! lost. Under loom a sleep has no timeout, so a lost wake-up is reported as a
//! deadlock.
//!
//! The sleepers' lock and condition variable are allocated by the first
//! sender that waits; a worker looks for them after its turn-ending RMW and
//! an Acquire fence. Planted bug this model catches: without the fence, a
//! worker that ends its turn with a yield (a Release RMW, work left) may
//! not see what the sleeping sender allocated and wakes no one
//! (`sender_sleeping_on_a_full_mailbox_is_woken_by_a_turn_that_yields`).
//!
//! A worker also wakes the sleepers in the middle of its turn, half-way
//! through its budget
//! (`sender_sleeping_on_a_full_mailbox_is_woken_in_the_middle_of_a_turn`,
//! whose worker does not end its turn until the sender got through). Planted
//! bugs this model catches: no wake in the middle of the turn; the flag
//! looked at with a load (no read-modify-write) before it is cleared, which
//! lets the worker miss a flag whose sender missed the pop.
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelMailbox;
use cellrt_loom_tests::RunTokens;
use loom::sync::Arc;
use loom::thread;

/// Sends `msg`, sleeping for room while the mailbox is full, as `Addr::send`
/// does off the workers. `None` when the mailbox closed; otherwise whether
/// the push took the run token (the caller must then run the cell).
fn send_blocking(mailbox: &ModelMailbox<u32>, mut msg: u32) -> Option<bool> {
    loop {
        match mailbox.push(msg) {
            Ok(took_token) => return Some(took_token),
            Err(err) if err.is_closed() => return None,
            Err(err) => {
                msg = err.into_inner();
                mailbox.wait_for_space();
            }
        }
    }
}

/// The worker holding the run token: turns until it gives the token up,
/// handling what it pops. Returns the messages handled.
fn work(mailbox: &ModelMailbox<u32>) -> Vec<u32> {
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
fn sender_sleeping_on_a_full_mailbox_is_woken_by_the_turn_that_frees_room() {
    cellrt_loom_tests::check(3, || {
        let mailbox = Arc::new(ModelMailbox::new(1));
        assert!(mailbox.push(1).unwrap(), "the first message takes the run token");
        let sender = {
            let mailbox = mailbox.clone();
            thread::spawn(move || send_blocking(&mailbox, 2))
        };
        let mut handled = work(&mailbox);
        let took_token = sender.join().unwrap().expect("the blocked send got through");
        // A sender that took the run token (the worker had gone idle, or had
        // already popped its message) must get its turn run.
        if took_token {
            handled.extend(work(&mailbox));
        }
        assert_eq!(handled, [1, 2]);
        assert!(mailbox.snapshot().is_idle());
    });
}

#[test]
fn sender_sleeping_on_a_full_mailbox_is_woken_by_close() {
    cellrt_loom_tests::check(3, || {
        let mailbox = Arc::new(ModelMailbox::new(1));
        mailbox.push(1).unwrap();
        let sender = {
            let mailbox = mailbox.clone();
            thread::spawn(move || send_blocking(&mailbox, 2))
        };
        mailbox.close();
        assert_eq!(sender.join().unwrap(), None, "the blocked send sees the mailbox closed");
        assert_eq!(mailbox.take_user(), [1]);
    });
}

#[test]
fn sender_sleeping_on_a_full_mailbox_is_woken_by_a_turn_that_yields() {
    cellrt_loom_tests::check(3, || {
        let mailbox = Arc::new(ModelMailbox::new(2));
        assert!(mailbox.push(1).unwrap(), "the first message takes the run token");
        assert!(!mailbox.push(2).unwrap());
        let sender = {
            let mailbox = mailbox.clone();
            thread::spawn(move || send_blocking(&mailbox, 3))
        };
        // The first turn pops one message and yields: one is left.
        let mut handled = work(&mailbox);
        let took_token = sender.join().unwrap().expect("the blocked send got through");
        if took_token {
            handled.extend(work(&mailbox));
        }
        assert_eq!(handled, [1, 2, 3]);
        assert!(mailbox.snapshot().is_idle());
    });
}

#[test]
fn sender_sleeping_on_a_full_mailbox_is_woken_in_the_middle_of_a_turn() {
    cellrt_loom_tests::check(3, || {
        let mailbox = Arc::new(ModelMailbox::new(2));
        assert!(mailbox.push(1).unwrap(), "the first message takes the run token");
        assert!(!mailbox.push(2).unwrap());
        let sender = {
            let mailbox = mailbox.clone();
            thread::spawn(move || send_blocking(&mailbox, 3))
        };
        mailbox.start_turn();
        let mut handled = vec![mailbox.pop_user().unwrap()];
        mailbox.wake_senders_mid_turn();
        // The turn goes on until the sender got through: only the wake in
        // the middle of the turn can let it.
        let took_token = sender.join().unwrap().expect("the mailbox stays open");
        assert!(!took_token, "the cell was running: the sender takes no run token");
        handled.extend(std::iter::from_fn(|| mailbox.pop_user()));
        assert!(!mailbox.end_turn(), "nothing is left: the worker goes idle");
        assert_eq!(handled, [1, 2, 3]);
        assert!(mailbox.snapshot().is_idle());
    });
}

#[test]
fn two_senders_sleeping_on_a_full_mailbox_get_through_one_freed_slot_at_a_time() {
    cellrt_loom_tests::check(2, || {
        let mailbox = Arc::new(ModelMailbox::new(1));
        assert!(mailbox.push(1).unwrap(), "the first message takes the run token");
        let tokens = Arc::new(RunTokens::new(2));
        tokens.enqueue();
        let senders: Vec<_> = [2, 3]
            .into_iter()
            .map(|msg| {
                let (mailbox, tokens) = (mailbox.clone(), tokens.clone());
                thread::spawn(move || {
                    let took_token = send_blocking(&mailbox, msg).expect("the mailbox stays open");
                    tokens.producer_done(took_token);
                })
            })
            .collect();
        let mut handled = Vec::new();
        while tokens.take() {
            handled.extend(work(&mailbox));
        }
        for sender in senders {
            sender.join().unwrap();
        }
        assert_eq!(handled[0], 1);
        handled.sort_unstable();
        assert_eq!(handled, [1, 2, 3], "each sleeper got a freed slot");
        assert!(mailbox.snapshot().is_idle());
    });
}
