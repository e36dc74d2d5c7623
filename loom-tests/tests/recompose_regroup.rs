//! Model of an isolate's hand-over of queued messages
//! (`runtime/src/mailbox/regroup.rs`, `Managed::isolate` in
//! `runtime/src/recompose/apply.rs`): the engine swaps a by-kind route in
//! for the cell, then asks the cell, through a system check, to move its
//! queued messages of the isolated kind to the kind's new cell, which
//! starts held and is released by that move. The route, the swap, the
//! pending regroup, the partition by kind and the release are the real code;
//! the cells' workers are the model's threads, running turns as a worker
//! does (system messages first, then user messages) with the run tokens the
//! real pushes and notifications hand out.
//!
//! Properties:
//! - every message is handled exactly once, by the old cell or by the
//!   isolated one; no send racing the isolate is refused;
//! - each kind is handled in the order it was sent, across both cells: a
//!   message of the isolated kind queued at the old cell before the isolate
//!   is handled before one sent to the isolated cell after it;
//! - the kinds left behind are all handled by the old cell, in order, even
//!   when senders queue more while the move takes the queue;
//! - a move racing the old cell's end either runs (at the system check or as
//!   the cell terminates) or is refused and run on nothing: the isolated cell
//!   is released either way, never held for good.
//!
//! Planted bugs this model catches (each checked, then reverted):
//! - `PendingRegroup::run` putting the kept messages back with `push` at
//!   the tail of the queue instead of `release` ahead of it: a message of a
//!   kind left behind sent during the move overtakes older ones
//!   (`moving_a_kind_keeps_each_kind_in_the_order_sent`);
//! - an isolate that offers the move before swapping the route in (the two
//!   steps of `Managed::isolate` the other way round): a message of the
//!   isolated kind reaching the old cell between them stays there and is
//!   handled before the older ones moved
//!   (`moving_a_kind_keeps_each_kind_in_the_order_sent`);
//! - `PendingRegroup::run` with `close` dropping the pending step instead of
//!   running it: the isolated cell stays held and never handles what it was
//!   sent (`a_move_racing_the_cells_end_always_releases_the_isolated_cell`).
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelSlot, ModelSystemMsg, ModelTarget};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// The kind isolated in these models.
const LEGACY: &str = "legacy";

/// Messages from 100 up are of the kind isolated, the others are card
/// payments, which stay with the old cell.
fn kind_of(msg: &u32) -> &'static str {
    if *msg >= 100 {
        LEGACY
    } else {
        "card"
    }
}

fn is_legacy(msg: &u32) -> bool {
    kind_of(msg) == LEGACY
}

/// Which cell handled a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cell {
    Old,
    Isolated,
}

/// The messages handled, in the order they were handled, across both cells.
type Log = Arc<Mutex<Vec<(Cell, u32)>>>;

/// Runs `target`'s turns for as long as its run token is here: each turn
/// takes the system messages first (running a regroup at its check, as
/// `CellInstance` does), then every user message handed out, logged as
/// handled by `cell`.
fn run_turns(target: &ModelTarget<u32>, cell: Cell, log: &Log) {
    let mailbox = target.mailbox();
    loop {
        mailbox.start_turn();
        while let Some(msg) = mailbox.pop_system_msg() {
            assert_eq!(msg, ModelSystemMsg::Regroup, "only a regroup is asked of the cells here");
            target.run_regroup();
        }
        while let Some(msg) = mailbox.pop_user() {
            log.lock().unwrap().push((cell, msg));
        }
        if !mailbox.end_turn() {
            return;
        }
    }
}

/// A worker: runs `target` once per run token it finds.
fn work(target: &ModelTarget<u32>, cell: Cell, log: &Log) {
    while target.take_token() {
        run_turns(target, cell, log);
    }
}

/// The messages of the log that `keep` selects, in the order handled.
fn handled(log: &[(Cell, u32)], keep: impl Fn(&(Cell, u32)) -> bool) -> Vec<u32> {
    log.iter().filter(|entry| keep(entry)).map(|&(_, msg)| msg).collect()
}

#[test]
fn moving_a_kind_keeps_each_kind_in_the_order_sent() {
    cellrt_loom_tests::check(2, || {
        let old = ModelTarget::new(8);
        let isolated = ModelTarget::new_held(8);
        let slot = Arc::new(ModelSlot::new(&old));
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        let swapped = Arc::new(AtomicBool::new(false));
        // Queued before the isolate: one of each kind.
        slot.try_send(1).unwrap();
        slot.try_send(100).unwrap();

        let sender = {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || {
                let mut after = Vec::new();
                for msg in [101, 2] {
                    let seen = swapped.load(SeqCst);
                    slot.try_send(msg).expect("a send racing an isolate is never refused");
                    if seen {
                        after.push(msg);
                    }
                }
                after
            })
        };
        let worker = {
            let (old, log) = (old.clone(), log.clone());
            thread::spawn(move || work(&old, Cell::Old, &log))
        };
        let wrapper = slot.isolate(&old, kind_of, LEGACY, &isolated).expect("an isolate racing a sender");
        swapped.store(true, SeqCst);
        slot.move_kind(&wrapper, kind_of, LEGACY);
        let after = sender.join().unwrap();
        worker.join().unwrap();
        // The workers that would run next: the old cell's (the move may
        // still be pending there), then the isolated cell's.
        work(&old, Cell::Old, &log);
        assert!(!isolated.is_held(), "the move released the isolated cell");
        work(&isolated, Cell::Isolated, &log);

        let log = log.lock().unwrap().clone();
        let mut all = handled(&log, |_| true);
        all.sort_unstable();
        assert_eq!(all, [1, 2, 100, 101], "each message handled exactly once: {log:?}");
        assert_eq!(handled(&log, |(_, m)| !is_legacy(m)), [1, 2], "cards in the order sent: {log:?}");
        assert_eq!(handled(&log, |(_, m)| is_legacy(m)), [100, 101], "legacy in the order sent: {log:?}");
        assert!(
            handled(&log, |(cell, _)| *cell == Cell::Isolated).iter().all(is_legacy),
            "only the isolated kind reaches the isolated cell: {log:?}"
        );
        for msg in after.iter().filter(|m| is_legacy(m)) {
            assert!(log.contains(&(Cell::Isolated, *msg)), "{msg}, sent after the isolate, went to its cell");
        }
    });
}

#[test]
fn a_move_racing_the_cells_end_always_releases_the_isolated_cell() {
    cellrt_loom_tests::check(3, || {
        let old = ModelTarget::new(4);
        let isolated = ModelTarget::new_held(4);
        let slot = Arc::new(ModelSlot::new(&old));
        slot.try_send(100).unwrap();
        slot.try_send(1).unwrap();
        let wrapper = slot.isolate(&old, kind_of, LEGACY, &isolated).expect("nothing races this isolate");

        // The old cell terminates (stopped with no message in hand) while
        // the engine asks for the move.
        let stopper = {
            let old = old.clone();
            thread::spawn(move || old.stop())
        };
        slot.move_kind(&wrapper, kind_of, LEGACY);
        let undelivered = stopper.join().unwrap();

        assert!(!isolated.is_held(), "the isolated cell is released whichever came first");
        let log: Log = Arc::new(Mutex::new(Vec::new()));
        work(&isolated, Cell::Isolated, &log);
        let moved = handled(&log.lock().unwrap(), |_| true);
        // Ran before the end (or as it ended): the legacy message moved and
        // the card was left to the ending cell; refused: both were left.
        match moved.as_slice() {
            [100] => assert_eq!(undelivered, [1], "the card stays with the ending cell"),
            [] => assert_eq!(undelivered, [100, 1], "a refused move leaves the queue as it was"),
            other => panic!("the isolated cell handled {other:?}"),
        }
    });
}
