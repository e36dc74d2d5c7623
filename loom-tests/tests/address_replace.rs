//! Model of replacing the target behind an address while senders send and
//! the old cell's worker runs (`Slot::replace`, `Slot::try_send` and
//! `Handover` in `runtime/src/address.rs`, over the real mailboxes of
//! `runtime/src/mailbox/mod.rs`).
//!
//! Properties: each message is handled exactly once; each sender's messages
//! are handled in the order sent, across the swap; never by the old and the
//! new cell at the same time; a send racing a replace is never refused; once
//! everything ran, the old target is closed and empty and the new one idle,
//! empty and released.
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelSlot, ModelTarget};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// What the cells handled, in order, and a flag proving no two handle at once.
#[derive(Default)]
struct Handled {
    order: Mutex<Vec<u32>>,
    busy: AtomicBool,
}

impl Handled {
    fn handle(&self, msg: u32) {
        assert!(!self.busy.swap(true, SeqCst), "two cells handled messages of one address at once");
        self.order.lock().unwrap().push(msg);
        self.busy.store(false, SeqCst);
    }

    fn order(&self) -> Vec<u32> {
        self.order.lock().unwrap().clone()
    }
}

/// Runs turns of `target` while its consumer holds a run token, as a worker
/// does. A stop request (the replace asking for the handover) ends the cell as
/// `CellInstance::terminate` does; returns `true` then.
fn consume(target: &ModelTarget<u32>, handled: &Handled) -> bool {
    let mailbox = target.mailbox();
    while target.take_token() {
        loop {
            mailbox.start_turn();
            if mailbox.pop_system() {
                assert_eq!(target.stop(), [], "a replaced cell's leftovers all go to its successor");
                return true;
            }
            if let Some(msg) = mailbox.pop_user() {
                handled.handle(msg);
            }
            if !mailbox.end_turn() {
                break;
            }
        }
    }
    false
}

/// The old cell's worker: runs it whenever it is scheduled, until it stops.
fn run_until_stopped(target: &ModelTarget<u32>, handled: &Handled) {
    while !consume(target, handled) {
        thread::yield_now();
    }
}

fn assert_replaced(old: &ModelTarget<u32>, new: &ModelTarget<u32>) {
    assert_eq!(old.replaced(), 1);
    assert!(old.mailbox().snapshot().is_closed());
    assert!(old.mailbox().is_empty(), "a message stayed behind in the replaced cell");
    assert!(old.mailbox().push(99).unwrap_err().is_closed());
    assert!(!new.is_held(), "the successor was released");
    assert!(new.mailbox().is_empty());
    assert!(new.mailbox().snapshot().is_idle());
}

#[test]
fn send_racing_replace_is_handled_once_in_order_by_one_cell_at_a_time() {
    // Bound 3: the reordering a missing hold allows needs three preemptions.
    cellrt_loom_tests::check(3, || {
        let old = ModelTarget::new(2);
        let new = ModelTarget::new_held(2);
        let slot = Arc::new(ModelSlot::new(&old));
        let handled = Arc::new(Handled::default());

        let sender = {
            let slot = slot.clone();
            thread::spawn(move || {
                for msg in [1, 2] {
                    slot.try_send(msg).expect("a send racing a replace is accepted");
                }
            })
        };
        let replacer = {
            let (slot, new) = (slot.clone(), new.clone());
            thread::spawn(move || assert!(slot.replace(&new), "nothing was held"))
        };
        // One pass of each cell's worker, concurrent with everything else.
        let old_worker = {
            let (old, handled) = (old.clone(), handled.clone());
            thread::spawn(move || consume(&old, &handled))
        };
        consume(&new, &handled);
        sender.join().unwrap();
        replacer.join().unwrap();
        let old_stopped = old_worker.join().unwrap();
        // Whatever is still scheduled runs now: the old cell's stop (and
        // handover) first, then the new cell.
        assert!(old_stopped || consume(&old, &handled), "the replaced cell stops");
        consume(&new, &handled);
        assert_eq!(handled.order(), [1, 2], "one sender's messages, once each, in the order sent");
        assert_replaced(&old, &new);
    });
}

#[test]
fn two_senders_keep_their_order_across_replace() {
    cellrt_loom_tests::check(2, || {
        let old = ModelTarget::new(4);
        let new = ModelTarget::new_held(4);
        let slot = Arc::new(ModelSlot::new(&old));
        let handled = Arc::new(Handled::default());

        let senders = [[10, 11], [20, 21]].map(|msgs| {
            let slot = slot.clone();
            thread::spawn(move || {
                for msg in msgs {
                    slot.try_send(msg).expect("a send racing a replace is accepted");
                }
            })
        });
        let old_worker = {
            let (old, handled) = (old.clone(), handled.clone());
            thread::spawn(move || run_until_stopped(&old, &handled))
        };
        assert!(slot.replace(&new));
        for sender in senders {
            sender.join().unwrap();
        }
        old_worker.join().unwrap();
        consume(&new, &handled);
        let order = handled.order();
        assert_eq!(order.len(), 4, "every message handled once: {order:?}");
        for sender in [[10, 11], [20, 21]] {
            let seen: Vec<u32> = order.iter().copied().filter(|m| sender.contains(m)).collect();
            assert_eq!(seen, sender, "each sender's messages in order: {order:?}");
        }
        assert_replaced(&old, &new);
    });
}

#[test]
fn replace_racing_a_handover_is_refused_or_chains_without_loss() {
    cellrt_loom_tests::check(2, || {
        let old = ModelTarget::new(2);
        let second = ModelTarget::new_held(2);
        let third = ModelTarget::new_held(2);
        let slot = Arc::new(ModelSlot::new(&old));
        let handled = Arc::new(Handled::default());

        slot.try_send(1).unwrap();
        assert!(slot.replace(&second));
        let old_worker = {
            let (old, handled) = (old.clone(), handled.clone());
            thread::spawn(move || run_until_stopped(&old, &handled))
        };
        let replacer = {
            let (slot, third) = (slot.clone(), third.clone());
            thread::spawn(move || slot.replace(&third))
        };
        slot.try_send(2).expect("a send racing a replace is accepted");
        old_worker.join().unwrap();
        let chained = replacer.join().unwrap();
        if chained {
            // The second cell was released before the third replace: it hands
            // over to the third when it stops.
            run_until_stopped(&second, &handled);
            consume(&third, &handled);
            assert_replaced(&second, &third);
        } else {
            assert!(third.mailbox().is_empty(), "a refused successor receives nothing");
            consume(&second, &handled);
            assert!(!second.is_held());
        }
        assert_eq!(handled.order(), [1, 2]);
    });
}
