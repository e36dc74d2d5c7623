//! Model of the activity mark of one cell (`ACTIVE` in
//! `runtime/src/dispatch/state.rs`), as `CellInstance::run_own_turn` sets it
//! and the analysis window (`RuntimeShared::analyse`) clears it before it
//! reads the cell's metrics.
//!
//! Property: no turn goes unread. A window that finds the cell idle when it
//! clears the mark, and so may stop reading it, either sees every turn's
//! counts or the cell reports itself again after the window took the
//! reports; and a turn reports the cell at most once per window.
//!
//! Planted bugs this model catches (each checked, then reverted): a
//! `take_active` with `Relaxed` ordering (the window finds the cell idle but
//! misses the count of the turn that ended before it); a `take_active` that
//! clears the mark with a load and a store instead of one read-modify-write
//! (a turn starting in between sees the old mark and reports nothing).
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelMailbox;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A cell with its handled-messages counter (written `Relaxed`, as the
/// metrics are) and the reports it made to the analysis window.
struct Cell {
    mailbox: ModelMailbox<u32>,
    handled: AtomicUsize,
    reports: Mutex<usize>,
}

impl Cell {
    /// Turns until the worker gives the run token up, as `run_own_turn`
    /// does them: report on the first turn since the window, then handle.
    fn run(&self) {
        loop {
            if self.mailbox.start_turn() && self.mailbox.mark_active() {
                *self.reports.lock().unwrap() += 1;
            }
            while self.mailbox.pop_user().is_some() {
                self.handled.fetch_add(1, Relaxed);
            }
            if !self.mailbox.end_turn() {
                return;
            }
        }
    }
}

#[test]
fn a_window_that_finds_the_cell_idle_misses_no_turn() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell {
            mailbox: ModelMailbox::new(2),
            handled: AtomicUsize::new(0),
            reports: Mutex::new(0),
        });
        // The cell ran in an earlier window and is marked.
        assert!(cell.mailbox.push(0).unwrap());
        cell.run();
        assert_eq!(*cell.reports.lock().unwrap(), 1);
        let sender = {
            let cell = cell.clone();
            thread::spawn(move || {
                if cell.mailbox.push(1).unwrap() {
                    cell.run();
                }
            })
        };
        // The window: takes the reports, clears the mark, reads the counts.
        let reported_before = std::mem::take(&mut *cell.reports.lock().unwrap());
        let idle = cell.mailbox.take_active();
        let read = cell.handled.load(Relaxed);
        sender.join().unwrap();
        let reported_after = *cell.reports.lock().unwrap();
        assert!(reported_before <= 1 && reported_after <= 1, "reported twice in one window");
        if idle {
            assert!(
                read == 2 || reported_after == 1,
                "the window stopped reading a cell whose turn it missed (read {read}, reported {reported_after})"
            );
        }
        assert_eq!(cell.handled.load(SeqCst), 2);
    });
}

#[test]
fn a_refused_send_reports_a_cell_the_window_stopped_reading() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell {
            mailbox: ModelMailbox::new(1),
            handled: AtomicUsize::new(0),
            reports: Mutex::new(0),
        });
        // The cell was marked in an earlier window.
        assert!(cell.mailbox.mark_active());
        let refused = Arc::new(AtomicUsize::new(0));
        let sender = {
            let (cell, refused) = (cell.clone(), refused.clone());
            thread::spawn(move || {
                // `CellInstance::note_shed`: the counter, then the mark.
                refused.fetch_add(1, Relaxed);
                if cell.mailbox.mark_active() {
                    *cell.reports.lock().unwrap() += 1;
                }
            })
        };
        let idle = cell.mailbox.take_active();
        let read = refused.load(Relaxed);
        sender.join().unwrap();
        let reported = *cell.reports.lock().unwrap();
        assert!(idle, "nothing schedules the cell");
        assert!(read == 1 || reported == 1, "a refused send went unread");
    });
}
