//! Model of a dispatcher's run queue and its sleeping workers
//! (`RunQueue::push`, `pop`, `park` and `shut_down` in
//! `runtime/src/dispatch/run_queue.rs`).
//!
//! Property: no lost wake-up. A worker that finds the queue empty and parks
//! while a cell is pushed always wakes and runs it; a parked worker always
//! leaves on shutdown; a task pushed once runs exactly once. A worker parked
//! with nobody left to wake it shows up as a loom deadlock.
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelRunQueue, ModelTask};
use loom::sync::Arc;
use loom::thread;

/// The worker loop of `dispatch/worker.rs`, without the spinning: take a
/// task and run it, or park until woken, until shutdown.
fn worker(queue: &ModelRunQueue, index: usize) {
    while !queue.is_shutdown() {
        if !queue.pop_and_run() {
            queue.park(index);
        }
    }
}

#[test]
fn parked_worker_is_woken_by_a_push() {
    cellrt_loom_tests::check(3, || {
        let queue = Arc::new(ModelRunQueue::new(1));
        let task = ModelTask::new();
        let worker = {
            let queue = queue.clone();
            // Runs until it has run the task: only the push can wake it.
            thread::spawn(move || {
                while !queue.pop_and_run() {
                    queue.park(0);
                }
            })
        };
        queue.push(&task);
        worker.join().unwrap();
        assert_eq!(task.turns(), 1);
        assert!(queue.is_empty());
    });
}

#[test]
fn parked_worker_leaves_on_shutdown() {
    cellrt_loom_tests::check(3, || {
        let queue = Arc::new(ModelRunQueue::new(1));
        let worker = {
            let queue = queue.clone();
            thread::spawn(move || worker(&queue, 0))
        };
        queue.shut_down();
        worker.join().unwrap();
    });
}

#[test]
fn one_push_to_two_parking_workers_runs_the_task_once() {
    cellrt_loom_tests::check(2, || {
        let queue = Arc::new(ModelRunQueue::new(2));
        let task = ModelTask::new();
        let workers = [0, 1].map(|index| {
            let queue = queue.clone();
            thread::spawn(move || worker(&queue, index))
        });
        queue.push(&task);
        // Shutdown would also wake a worker that missed the push: wait for
        // the task to run first, so only the push can have woken its runner.
        while task.turns() == 0 {
            thread::yield_now();
        }
        queue.shut_down();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(task.turns(), 1);
        assert!(queue.is_empty());
    });
}
