//! Model of cell groups (`Membership::run_turn`, `enter` and `leave` in
//! `runtime/src/dispatch/group.rs`), with the real mailbox state word and the
//! real run queue of the members' dispatcher.
//!
//! Properties, for a group of limit 1 whose members share two workers:
//!
//! - never two turns of the group at once;
//! - no cell runs two turns at once (a parked cell keeps its run token, so a
//!   send to it does not schedule it a second time);
//! - no lost wake-up: once the workers are done, every message sent has been
//!   handled, no cell is left parked and no permit is left taken.
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelGroup, ModelGroupCell};
use loom::thread;

/// A worker of the members' dispatcher: runs turns until the queue is empty.
fn worker(group: &ModelGroup) {
    while group.run_one() {}
}

/// What every model checks once its threads are joined: the main thread
/// runs what is left, as a worker would, then everything must be settled.
fn settle(group: &ModelGroup, cells: &[ModelGroupCell], sent: &[usize]) {
    worker(group);
    assert_eq!(group.overlaps(), 0, "two turns of the group ran at once");
    for (cell, &sent) in cells.iter().zip(sent) {
        assert_eq!(cell.double_runs(), 0, "a cell ran two turns at once");
        assert_eq!(cell.handled(), sent, "a message was lost");
        assert!(cell.snapshot().is_idle(), "a cell kept its run token");
    }
    assert_eq!(group.running_and_parked(), (0, 0), "a permit or a parked cell was left behind");
    assert!(group.queue_is_empty());
}

/// Runs `n` workers on the group's dispatcher until none has work left.
fn run_workers(group: &ModelGroup, n: usize) {
    let workers: Vec<_> = (0..n)
        .map(|_| {
            let group = group.clone();
            thread::spawn(move || worker(&group))
        })
        .collect();
    for handle in workers {
        handle.join().unwrap();
    }
}

#[test]
fn two_cells_of_a_group_of_one_on_two_workers() {
    cellrt_loom_tests::check(3, || {
        let group = ModelGroup::new(1, 2);
        let cells = [group.cell(4), group.cell(4)];
        for cell in &cells {
            assert!(cell.send(1));
        }
        run_workers(&group, 2);
        settle(&group, &cells, &[1, 1]);
        // One turn per message: a parked cell is admitted once, by a permit.
        let (turns, parks) = group.turns_and_parks();
        assert_eq!(turns, 2);
        assert!(parks <= 1);
    });
}

#[test]
fn a_send_to_a_parked_cell_does_not_schedule_it_twice() {
    cellrt_loom_tests::check(3, || {
        let group = ModelGroup::new(1, 2);
        let cells = [group.cell(4), group.cell(4)];
        for cell in &cells {
            assert!(cell.send(1));
        }
        let sender = {
            let (group, cell) = (group.clone(), cells[1].clone());
            thread::spawn(move || {
                assert!(cell.send(2));
                worker(&group);
            })
        };
        let other = {
            let group = group.clone();
            thread::spawn(move || worker(&group))
        };
        sender.join().unwrap();
        other.join().unwrap();
        settle(&group, &cells, &[1, 2]);
    });
}

#[test]
fn three_cells_of_a_group_of_one_on_two_workers() {
    cellrt_loom_tests::check(3, || {
        let group = ModelGroup::new(1, 2);
        let cells = [group.cell(4), group.cell(4), group.cell(4)];
        for cell in &cells {
            assert!(cell.send(1));
        }
        run_workers(&group, 2);
        settle(&group, &cells, &[1, 1, 1]);
        assert_eq!(group.turns_and_parks().0, 3);
    });
}
