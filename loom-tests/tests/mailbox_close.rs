//! Model of closing a mailbox while senders push (`Mailbox::close`,
//! `Mailbox::take_user` and `Mailbox::push` in `runtime/src/mailbox/mod.rs`,
//! over the lanes' admission counters of `runtime/src/mailbox/bounded.rs`).
//!
//! Property: shutdown racing sends accounts for every message exactly once.
//! Each message is handled (popped by the cell's worker), reported
//! undelivered (taken by the closer's `take_user` after `close`), or handed
//! back to its sender as `Closed`; never two of these, never none. Once
//! `close` has returned nothing more can enter the user queue, so what the
//! closer took is final. Planted bugs these models catch (as does
//! `mailbox_bounded.rs`'s close model): a close that does not wait out the
//! pushes admitted before it, or that waits for one push too few.
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelMailbox;
use cellrt::SendError;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A cell: its mailbox and the run tokens its senders took and handed over.
struct Cell {
    mailbox: ModelMailbox<u32>,
    tokens: AtomicUsize,
}

impl Cell {
    fn new(capacity: usize) -> Self {
        Cell { mailbox: ModelMailbox::new(capacity), tokens: AtomicUsize::new(0) }
    }

    /// Pushes `msg`, enqueueing the cell when the push took the run token.
    /// Returns the message when it came back as `Closed`.
    fn send(&self, msg: u32) -> Option<u32> {
        match self.mailbox.push(msg) {
            Ok(took_token) => {
                if took_token {
                    self.tokens.fetch_add(1, SeqCst);
                }
                None
            }
            Err(SendError::Closed(back)) => Some(back),
            Err(err) => panic!("unexpected {err:?}: the mailbox has room for every message"),
        }
    }

    /// A worker: runs the cell's turns while a run token is waiting.
    fn work(&self) -> Vec<u32> {
        let mut handled = Vec::new();
        while self.tokens.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok() {
            loop {
                self.mailbox.start_turn();
                if let Some(msg) = self.mailbox.pop_user() {
                    handled.push(msg);
                }
                if !self.mailbox.end_turn() {
                    break;
                }
            }
        }
        handled
    }

    /// The closer: `close`, then take what is queued as undelivered.
    fn close(&self) -> Vec<u32> {
        assert!(self.mailbox.close(), "the mailbox is closed once");
        self.mailbox.take_user()
    }
}

/// Every message in exactly one of the three outcomes, and nothing left.
fn assert_accounted(cell: &Cell, sent: &[u32], outcomes: [&[u32]; 3]) {
    let mut all: Vec<u32> = outcomes.concat();
    all.sort_unstable();
    assert_eq!(
        all, sent,
        "handled {:?}, undelivered {:?}, returned {:?}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert_eq!(cell.mailbox.take_user(), [], "a message got in after close: neither handled nor reported");
    assert_eq!(cell.mailbox.push(99), Err(SendError::Closed(99)));
    let snapshot = cell.mailbox.snapshot();
    assert!(snapshot.is_closed());
    assert_eq!(cell.mailbox.len(), 0, "a slot is still taken after everything was accounted for");
}

#[test]
fn close_racing_two_senders_accounts_for_every_message() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell::new(2));
        let senders = [1, 2].map(|msg| {
            let cell = cell.clone();
            thread::spawn(move || cell.send(msg))
        });
        let undelivered = cell.close();
        let returned: Vec<u32> = senders.into_iter().filter_map(|s| s.join().unwrap()).collect();
        // No worker ran: whatever was accepted is what the closer took.
        assert_eq!(cell.work(), []);
        assert_accounted(&cell, &[1, 2], [&[], &undelivered, &returned]);
    });
}

#[test]
fn close_racing_sender_and_worker_accounts_for_every_message() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell::new(2));
        let sender = {
            let cell = cell.clone();
            thread::spawn(move || [1, 2].into_iter().filter_map(|msg| cell.send(msg)).collect::<Vec<u32>>())
        };
        let closer = {
            let cell = cell.clone();
            thread::spawn(move || cell.close())
        };
        let handled = cell.work();
        let returned = sender.join().unwrap();
        let undelivered = closer.join().unwrap();
        // A token taken late is served now. It must find nothing: the closer
        // took everything, and nothing can get in after `close` returned.
        assert_eq!(cell.work(), [], "a message got in after close");
        assert!(cell.mailbox.snapshot().is_idle());
        assert_accounted(&cell, &[1, 2], [&handled, &undelivered, &returned]);
        // One sender: what was returned is a suffix of what it sent.
        assert!(returned.is_empty() || returned == [2] || returned == [1, 2], "returned {returned:?}");
    });
}
