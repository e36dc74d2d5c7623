//! Model of a background job that goes dormant when it finds nothing to do
//! and is armed again by the activity it watches (`Dormancy` in
//! `runtime/src/dormancy.rs`), as its two users drive it: the deadline
//! watchdog (`RuntimeShared::handler_began` and `scan_deadlines`, over a
//! cell's handler record) and the analysis window
//! (`RuntimeShared::analysis_window` over the real `RunQueue::is_asleep`,
//! and a worker's mark after `RunQueue::park`).
//!
//! Property: no activity is left unwatched. Either a tick of the job sees
//! it, or the job is still scheduled, or the activity's mark arms it again:
//! a handler that begins while the watchdog goes to sleep is watched, and a
//! task a worker runs after waking is in a window. A job is never armed
//! twice.
//!
//! Planted bugs this model catches (each checked, then reverted): a `mark`
//! that only swaps when it reads `DORMANT` (a marker that reads `QUIET`
//! skips the swap that would fail the job's `try_sleep`: both tests fail);
//! a `try_sleep` that stores `DORMANT` without comparing (the watchdog test
//! fails).
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelDormancy, ModelRunQueue, ModelTask};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Ticks a model job may take: enough for one wasted tick and one that sleeps.
const TICKS: usize = 2;

#[test]
fn a_handler_beginning_while_the_watchdog_sleeps_is_watched() {
    cellrt_loom_tests::check(3, || {
        let gate = Arc::new(ModelDormancy::new());
        // The watchdog is scheduled: an earlier handler armed it.
        assert!(gate.mark());
        let record = Arc::new(Mutex::new(false));
        let armed = Arc::new(AtomicUsize::new(0));
        let handler = {
            let (gate, record, armed) = (gate.clone(), record.clone(), armed.clone());
            thread::spawn(move || {
                // `call_handle`: the record set under its lock, then the mark.
                *record.lock().unwrap() = true;
                if gate.mark() {
                    armed.fetch_add(1, SeqCst);
                }
            })
        };
        // `scan_deadlines`, ticking until it sleeps or sees the handler.
        let mut seen = false;
        let mut slept = false;
        for _ in 0..TICKS {
            gate.begin_tick();
            if *record.lock().unwrap() {
                seen = true;
                break;
            }
            if gate.try_sleep() {
                slept = true;
                break;
            }
        }
        handler.join().unwrap();
        let armed = armed.load(SeqCst);
        assert!(armed <= 1, "armed twice");
        assert!(seen || !slept || armed == 1, "a running handler is unwatched");
        assert!(!(slept && seen), "slept after seeing a handler");
    });
}

#[test]
fn a_task_run_by_a_waking_worker_is_in_a_window() {
    cellrt_loom_tests::check(2, || {
        let queue = Arc::new(ModelRunQueue::new(1));
        let gate = Arc::new(ModelDormancy::new());
        // The window is scheduled: an earlier wake-up armed it.
        assert!(gate.mark());
        let task = ModelTask::new();
        let ran = Arc::new(AtomicBool::new(false));
        let armed = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (queue, gate, ran, armed) = (queue.clone(), gate.clone(), ran.clone(), armed.clone());
            thread::spawn(move || {
                // `worker::run`: park, mark on waking, then run.
                loop {
                    queue.park(0);
                    if gate.mark() {
                        armed.fetch_add(1, SeqCst);
                    }
                    if queue.pop_and_run() {
                        ran.store(true, SeqCst);
                        break;
                    }
                }
            })
        };
        let pusher = {
            let (queue, task) = (queue.clone(), task.clone());
            thread::spawn(move || queue.push(&task))
        };
        // `analysis_window`, ticking until it sleeps.
        let mut analysed_run = false;
        let mut slept = false;
        for _ in 0..TICKS {
            let woken = gate.begin_tick();
            let asleep = queue.is_asleep();
            analysed_run = ran.load(SeqCst);
            if !woken && asleep && gate.try_sleep() {
                slept = true;
                break;
            }
        }
        pusher.join().unwrap();
        worker.join().unwrap();
        let armed = armed.load(SeqCst);
        assert!(armed <= 1, "armed twice");
        assert!(analysed_run || !slept || armed == 1, "a task ran outside every window");
    });
}
