//! An idle runtime parks: once its cells have settled, none of its threads
//! wakes up, and the process uses (almost) no CPU, though everything that
//! used to tick in the background was in use: the analysis window, the
//! deadline watchdog, timers and, with storage, periodic flushes.
//!
//! Linux only: the figures come from `/proc/self/task/*` (`schedstat` for
//! CPU time in nanoseconds, `status` for context switches). One test in this
//! file, so that no other test's threads run in the measured interval.
#![cfg(all(target_os = "linux", feature = "observe"))]

use std::fs;
use std::time::Duration;

use cellrt::{Cell, CellError, ChildSpec, Context, ObservationConfig, Reply, Runtime, SupervisorSpec};

const PATIENCE: Duration = Duration::from_secs(10);
/// The analysis window of the runtime under test: short, so it settles fast.
const WINDOW: Duration = Duration::from_millis(100);
/// How long the runtime is watched once settled.
const IDLE: Duration = Duration::from_millis(1500);
/// Most CPU time the whole process may use in `IDLE` (the test's own reads
/// of `/proc` included).
const IDLE_CPU_MAX: Duration = Duration::from_millis(5);

struct Echo;

impl Cell for Echo {
    type Message = Reply<u32>;
    fn handle(&mut self, _: &mut Context<Self>, reply: Reply<u32>) -> Result<(), CellError> {
        let _ = reply.send(7);
        Ok(())
    }
}

/// A cell that schedules itself a timer and an interval, then cancels the
/// interval after three ticks.
struct Ticker {
    ticks: u32,
    interval: Option<cellrt::TimerHandle>,
}

enum Timing {
    Start(Reply<()>),
    Every,
    Once,
}

impl Cell for Ticker {
    type Message = Timing;
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Timing) -> Result<(), CellError> {
        match msg {
            Timing::Start(reply) => {
                self.interval = Some(ctx.send_interval(Duration::from_millis(5), || Timing::Every));
                ctx.send_after(Duration::from_millis(20), Timing::Once);
                let _ = reply.send(());
            }
            Timing::Every => {
                self.ticks += 1;
                if self.ticks == 3 {
                    if let Some(interval) = self.interval.take() {
                        interval.cancel();
                    }
                }
            }
            Timing::Once => {}
        }
        Ok(())
    }
}

/// Per thread of this process: (name, nanoseconds on CPU, voluntary context
/// switches).
fn threads() -> Vec<(String, u64, u64)> {
    let mut threads = Vec::new();
    for task in fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let dir = task.expect("a task").path();
        let (Ok(comm), Ok(schedstat), Ok(status)) = (
            fs::read_to_string(dir.join("comm")),
            fs::read_to_string(dir.join("schedstat")),
            fs::read_to_string(dir.join("status")),
        ) else {
            continue; // the thread ended meanwhile
        };
        let cpu = schedstat.split_whitespace().next().and_then(|ns| ns.parse().ok()).unwrap_or(0);
        let switches = status
            .lines()
            .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        threads.push((comm.trim().to_owned(), cpu, switches));
    }
    threads
}

/// The runtime's threads' voluntary context switches, summed: each time
/// one of them went to sleep.
fn runtime_sleeps(threads: &[(String, u64, u64)]) -> u64 {
    threads.iter().filter(|(name, _, _)| name.starts_with("cellrt-")).map(|t| t.2).sum()
}

fn process_cpu(threads: &[(String, u64, u64)]) -> Duration {
    Duration::from_nanos(threads.iter().map(|t| t.1).sum())
}

#[cfg(feature = "observe")]
#[test]
fn a_settled_runtime_wakes_no_thread_and_uses_no_cpu() {
    let mut builder = Runtime::builder();
    builder.worker_threads(2).observation(ObservationConfig::default().window(WINDOW));
    #[cfg(feature = "storage")]
    builder.storage(cellrt::StorageConfig::in_memory());
    let runtime = builder.build().unwrap();

    // Everything that used to wake periodically, used once.
    let echo = runtime.spawn(Echo).unwrap();
    assert_eq!(echo.ask(|r| r).unwrap().wait(PATIENCE), Ok(7));
    let supervisor = runtime
        .start_supervisor(
            SupervisorSpec::new("sup")
                .child(ChildSpec::new("watched", || Echo).deadline(Duration::from_secs(1))),
            PATIENCE,
        )
        .unwrap();
    let watched = supervisor.child::<Reply<u32>>("watched").unwrap();
    assert_eq!(watched.ask(|r| r).unwrap().wait(PATIENCE), Ok(7));
    let ticker = runtime.spawn(Ticker { ticks: 0, interval: None }).unwrap();
    ticker.ask(Timing::Start).unwrap().wait(PATIENCE).unwrap();
    #[cfg(feature = "storage")]
    {
        let counter = runtime
            .spawn_durable(
                cellrt::CellConfig::named("counter"),
                cellrt::Durability::Periodic(Duration::from_millis(20)),
                || Counter(0),
            )
            .unwrap();
        assert_eq!(counter.ask(|r| r).unwrap().wait(PATIENCE), Ok(1));
    }

    // Settle: the ticker's timers end, the last window with activity and
    // the quiet one after it pass, the watchdog and the flush have run out.
    std::thread::sleep(WINDOW * 5);
    let before = threads();
    std::thread::sleep(IDLE);
    let after = threads();

    let sleeps = runtime_sleeps(&after) - runtime_sleeps(&before);
    let cpu = process_cpu(&after).saturating_sub(process_cpu(&before));
    assert_eq!(sleeps, 0, "runtime threads woke up while idle: {before:?} → {after:?}");
    assert!(cpu < IDLE_CPU_MAX, "{cpu:?} of CPU in {IDLE:?} of idleness");

    // And it still works: activity wakes it.
    assert_eq!(echo.ask(|r| r).unwrap().wait(PATIENCE), Ok(7));
    let report = runtime.shutdown(PATIENCE);
    assert!(report.is_clean(), "{report:?}");
}

#[cfg(feature = "storage")]
struct Counter(u64);

#[cfg(feature = "storage")]
impl Cell for Counter {
    type Message = Reply<u64>;
    fn handle(&mut self, _: &mut Context<Self>, reply: Reply<u64>) -> Result<(), CellError> {
        self.0 += 1;
        let _ = reply.send(self.0);
        Ok(())
    }
}

#[cfg(feature = "storage")]
impl cellrt::Durable for Counter {
    type State = u64;
    fn state(&self) -> &u64 {
        &self.0
    }
    fn restore(n: u64) -> Self {
        Counter(n)
    }
}
