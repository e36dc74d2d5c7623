//! Model of a cell's edge counts (`CellMetrics::outbound` in
//! `runtime/src/observe/metrics.rs`, "The last edge" in its module docs):
//! the worker holding the cell's run token ends its turns with the real
//! `TurnMeter`, adding the sends on the cell's last edge to an atomic
//! without the detail lock and moving them into the edge's entry, under
//! the lock, when the last edge changes; the analysis window reads the
//! counts under the lock meanwhile.
//!
//! Property: whatever a reader reads is the counts of every send of some
//! number of whole turns, never fewer than a read before it, and after
//! the last turn each edge counts exactly the messages sent on it. No send
//! is missed or counted twice while it moves from the pending count to its
//! edge's entry.
//!
//! Planted bugs this model catches (each made the test fail, then was
//! removed):
//!
//! - the turn's end swapping the pending count out before it takes the
//!   detail lock: a reader in between finds the edge left behind short of
//!   the sends it just read on it;
//! - a reader loading the pending count before it takes the lock: it adds
//!   the sends pending on the edge left behind to the new last edge, a
//!   count no turn reached.
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelCellMetrics;
use loom::sync::Arc;
use loom::thread;

/// Each turn's sends, by receiver: the first two on one edge (the second
/// counted on the pending count), then a change of edge with two sends
/// pending on the edge left behind, then one on the new last edge.
const TURNS: [&[u64]; 4] = [&[8], &[8, 8], &[9], &[9]];

/// The counts after each whole number of turns of [`TURNS`].
const AFTER: [&[(u64, u64)]; 5] = [&[], &[(8, 1)], &[(8, 3)], &[(8, 3), (9, 1)], &[(8, 3), (9, 2)]];

/// How many whole turns `counts` is the counts of, if any.
fn turns_seen(counts: &[(u64, u64)]) -> usize {
    AFTER
        .iter()
        .position(|after| *after == counts)
        .unwrap_or_else(|| panic!("counts no whole number of turns reached: {counts:?}"))
}

#[test]
fn a_reader_sees_the_counts_of_whole_turns_while_the_last_edge_changes() {
    cellrt_loom_tests::check(2, || {
        let metrics = Arc::new(ModelCellMetrics::new());
        // The first turn, before the reader: the edge to 8 is listed.
        metrics.turn(TURNS[0]);
        let worker = {
            let metrics = metrics.clone();
            thread::spawn(move || {
                for sends in &TURNS[1..] {
                    metrics.turn(sends);
                }
            })
        };
        // The analysis window, twice.
        let first = turns_seen(&metrics.outbound());
        let second = turns_seen(&metrics.outbound());
        assert!(first >= 1, "the first turn's send is missing");
        assert!(second >= first, "a later read lost sends: {first} whole turns, then {second}");
        worker.join().unwrap();
        assert_eq!(metrics.outbound(), AFTER[TURNS.len()], "every send counted once, on its edge");
    });
}
