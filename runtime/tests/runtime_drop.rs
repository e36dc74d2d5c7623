//! Dropping a runtime without calling `shutdown`: no hang, no thread left.
//!
//! One test in its own binary, so the thread count sees no other runtime.

mod common;

use cellrt::{AskError, CellConfig, Runtime, SendError};
use common::{eventually, gate, open, Gated, Log, Rec, Recorder, PATIENCE};

#[cfg(target_os = "linux")]
fn cellrt_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("cellrt-"))
        .count()
}

#[test]
fn dropping_the_runtime_kills_cells_and_joins_threads() {
    let rt = Runtime::builder().worker_threads(2).dispatcher("io", 1).quiet_panics(true).build().unwrap();
    let gate = gate();
    let busy = rt
        .spawn_with(CellConfig::new().capacity(4), Gated { gate: gate.clone(), log: Log::default() })
        .unwrap();
    busy.send(0).unwrap();
    assert!(eventually(|| busy.queued() == 0));
    let log = Log::default();
    let idle: Vec<_> = (0..10).map(|_| rt.spawn(Recorder::new(&log)).unwrap()).collect();
    let pending = idle[0].ask(Rec::Dump).unwrap();
    // Two default workers, one "io" worker, and, with observation, the
    // timer thread, which runs its analysis window. Threads name themselves
    // as they start.
    #[cfg(target_os = "linux")]
    {
        let expected = if cfg!(feature = "observe") { 4 } else { 3 };
        assert!(eventually(|| cellrt_threads() == expected), "threads: {}", cellrt_threads());
    }
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(50));
        open(&gate);
    });
    drop(rt);
    releaser.join().unwrap();
    // Asks are answered or resolved, never left hanging.
    assert!(matches!(pending.wait(PATIENCE), Ok(_) | Err(AskError::Unanswered)));
    assert!(matches!(idle[3].try_send(Rec::Put(1)), Err(SendError::Closed(_))));
    #[cfg(target_os = "linux")]
    assert!(eventually(|| cellrt_threads() == 0), "threads left: {}", cellrt_threads());
}
