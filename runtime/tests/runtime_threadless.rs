//! Thread-less mode: the application drives the runtime with `run_once`
//! and `run_until_idle`; no thread is started, work per call is bounded,
//! timers fire when driven, supervision and shutdown work without threads.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{Cell, CellError, ChildSpec, Context, Reply, RunError, RunReport, Runtime, SupervisorSpec};

const PATIENCE: Duration = Duration::from_secs(10);

/// Records what it handles.
struct Recorder(Arc<Mutex<Vec<u32>>>);

impl Cell for Recorder {
    type Message = u32;
    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        self.0.lock().unwrap().push(n);
        Ok(())
    }
}

fn threadless(throughput: usize) -> Runtime {
    Runtime::builder().threadless(true).throughput(throughput).build().unwrap()
}

fn report(turns: usize, timers: usize) -> RunReport {
    let mut report = RunReport::default();
    report.turns = turns;
    report.timers = timers;
    report
}

#[test]
fn each_call_runs_one_turn_of_each_ready_cell_in_order() {
    let runtime = threadless(4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = runtime.spawn(Recorder(seen.clone())).unwrap();
    for n in 0..10 {
        recorder.try_send(n).unwrap();
    }
    // Nothing runs until the application says so.
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(runtime.run_once(), Ok(report(1, 0)));
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3]);
    assert_eq!(runtime.run_once(), Ok(report(1, 0)));
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(runtime.run_once(), Ok(report(1, 0)));
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert_eq!(runtime.run_once(), Ok(report(0, 0)));
    assert!(runtime.shutdown(PATIENCE).is_clean());
}

#[test]
fn run_until_idle_runs_every_ready_turn() {
    let runtime = threadless(4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let first = runtime.spawn(Recorder(seen.clone())).unwrap();
    let second = runtime.spawn(Recorder(seen.clone())).unwrap();
    for n in 0..6 {
        first.try_send(n).unwrap();
        second.try_send(100 + n).unwrap();
    }
    // first: 4 + 2, second: 4 + 2, one turn each per call.
    assert_eq!(runtime.run_until_idle(), Ok(report(4, 0)));
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 100, 101, 102, 103, 4, 5, 104, 105]);
    assert!(runtime.run_until_idle().unwrap().is_idle());
    runtime.shutdown(PATIENCE);
}

/// Sends itself a message after a delay when asked.
struct Alarm(Arc<Mutex<Vec<u32>>>);

enum AlarmMsg {
    Set(Duration),
    Ring,
}

impl Cell for Alarm {
    type Message = AlarmMsg;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: AlarmMsg) -> Result<(), CellError> {
        match msg {
            AlarmMsg::Set(after) => {
                ctx.send_after(after, AlarmMsg::Ring);
            }
            AlarmMsg::Ring => self.0.lock().unwrap().push(1),
        }
        Ok(())
    }
}

#[cfg(feature = "observe")]
#[test]
fn timers_fire_when_the_application_drives_the_runtime() {
    let runtime = Runtime::builder()
        .threadless(true)
        .observation(cellrt::ObservationConfig::disabled())
        .build()
        .unwrap();
    let rung = Arc::new(Mutex::new(Vec::new()));
    let alarm = runtime.spawn(Alarm(rung.clone())).unwrap();
    assert_eq!(runtime.next_deadline(), None);
    let set_at = std::time::Instant::now();
    alarm.try_send(AlarmMsg::Set(Duration::from_millis(30))).unwrap();
    assert_eq!(runtime.run_until_idle(), Ok(report(1, 0)));
    let due = runtime.next_deadline().expect("the alarm is pending");
    assert!(due >= set_at + Duration::from_millis(30));
    // Not due yet: nothing fires.
    assert!(runtime.run_once().unwrap().is_idle());
    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(runtime.run_once(), Ok(report(1, 1)));
    assert_eq!(*rung.lock().unwrap(), [1]);
    assert_eq!(runtime.next_deadline(), None);
    runtime.shutdown(PATIENCE);
}

/// Panics on 0, answers the number of messages it handled otherwise.
struct Fragile(u32);

impl Cell for Fragile {
    type Message = (u32, Reply<u32>);
    fn handle(&mut self, _: &mut Context<Self>, (n, reply): (u32, Reply<u32>)) -> Result<(), CellError> {
        assert_ne!(n, 0, "zero");
        self.0 += 1;
        let _ = reply.send(self.0);
        Ok(())
    }
}

#[test]
fn a_supervisor_restarts_a_failed_child_without_threads() {
    let runtime = Runtime::builder().threadless(true).quiet_panics(true).build().unwrap();
    let supervisor = runtime
        .start_supervisor(
            SupervisorSpec::new("sup").child(ChildSpec::new("fragile", || Fragile(0))),
            PATIENCE,
        )
        .unwrap();
    let child = supervisor.child::<(u32, Reply<u32>)>("fragile").unwrap();
    let mut first = child.ask(|r| (1, r)).unwrap();
    runtime.run_until_idle().unwrap();
    assert_eq!(first.try_take(), Ok(Some(1)));
    let mut failing = child.ask(|r| (0, r)).unwrap();
    runtime.run_until_idle().unwrap();
    assert_eq!(failing.try_take(), Err(cellrt::AskError::Unanswered));
    assert_eq!(runtime.failure_count(), 1);
    // The restarted child starts from a fresh state.
    let mut after = child.ask(|r| (2, r)).unwrap();
    runtime.run_until_idle().unwrap();
    assert_eq!(after.try_take(), Ok(Some(1)));
    let report = runtime.shutdown(PATIENCE);
    assert_eq!((report.cells_stopped, report.cells_killed, report.timed_out), (2, 0, false));
}

#[test]
fn shutdown_drains_queued_messages_without_threads() {
    let runtime = threadless(2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = runtime.spawn(Recorder(seen.clone())).unwrap();
    for n in 0..5 {
        recorder.try_send(n).unwrap();
    }
    let report = runtime.shutdown(PATIENCE);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.cells_stopped, 1);
    assert_eq!(*seen.lock().unwrap(), [0, 1, 2, 3, 4]);
}

#[test]
fn a_runtime_with_workers_is_not_driven_by_the_application() {
    // Without observation, so that it has no timer thread (see below).
    let mut builder = Runtime::builder();
    builder.worker_threads(1);
    #[cfg(feature = "observe")]
    builder.observation(cellrt::ObservationConfig::disabled());
    let runtime = builder.build().unwrap();
    assert_eq!(runtime.run_once(), Err(RunError::WorkerThreads));
    assert_eq!(runtime.run_until_idle(), Err(RunError::WorkerThreads));
    runtime.shutdown(PATIENCE);
}

/// The names of this process's threads.
#[cfg(target_os = "linux")]
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_threadless_runtime_starts_no_thread() {
    // Other tests of this file run beside this one, all thread-less but the
    // one above: look for threads of a thread-less runtime by name.
    let runtime = threadless(4);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorder = runtime.spawn(Recorder(seen.clone())).unwrap();
    recorder.try_send(1).unwrap();
    let alarm = runtime.spawn(Alarm(seen.clone())).unwrap();
    alarm.try_send(AlarmMsg::Set(Duration::from_millis(1))).unwrap();
    runtime.run_until_idle().unwrap();
    std::thread::sleep(Duration::from_millis(2));
    runtime.run_until_idle().unwrap();
    assert_eq!(*seen.lock().unwrap(), [1, 1]);
    let timer_or_workers: Vec<String> = thread_names()
        .into_iter()
        .filter(|name| name == "cellrt-timer" || name.starts_with("cellrt-default"))
        .collect();
    // The one runtime with threads in this file has one worker and no
    // timer thread; it may be running beside this test.
    assert!(timer_or_workers.iter().all(|name| name != "cellrt-timer"), "{timer_or_workers:?}");
    assert!(timer_or_workers.len() <= 1, "{timer_or_workers:?}");
    runtime.shutdown(PATIENCE);
}
