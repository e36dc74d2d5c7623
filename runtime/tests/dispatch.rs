//! Dispatchers: turns and fairness, bulkheads, single-threaded runtimes, idle
//! workers, builder validation.

mod common;

use std::time::Duration;

use cellrt::{BuildError, Cell, CellConfig, CellError, Context, NameError, Runtime};
use common::{eventually, gate, open, runtime, Gated, Log, Rec, Recorder, PATIENCE};

/// Logs `(name, n)` for each message.
struct Named {
    name: char,
    log: Log<char>,
}

impl Cell for Named {
    type Message = u32;

    fn handle(&mut self, _ctx: &mut Context<Self>, _n: u32) -> Result<(), CellError> {
        self.log.push(self.name);
        Ok(())
    }
}

#[test]
fn a_turn_handles_at_most_throughput_messages_then_yields() {
    let rt = Runtime::builder().worker_threads(1).throughput(2).build().unwrap();
    let gate = gate();
    let blocker = rt.spawn(Gated { gate: gate.clone(), log: Log::default() }).unwrap();
    blocker.send(0).unwrap();
    assert!(eventually(|| blocker.queued() == 0), "the only worker is now busy");
    let log = Log::default();
    let a = rt.spawn(Named { name: 'a', log: log.clone() }).unwrap();
    let b = rt.spawn(Named { name: 'b', log: log.clone() }).unwrap();
    for n in 0..6 {
        a.send(n).unwrap();
        b.send(n).unwrap();
    }
    open(&gate);
    assert!(eventually(|| log.len() == 12));
    assert_eq!(log.items().into_iter().collect::<String>(), "aabbaabbaabb");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_blocked_dispatcher_does_not_delay_cells_on_another() {
    let rt = Runtime::builder().worker_threads(1).dispatcher("slow", 1).quiet_panics(true).build().unwrap();
    let gate = gate();
    let slow = rt
        .spawn_with(CellConfig::new().dispatcher("slow"), Gated { gate: gate.clone(), log: Log::default() })
        .unwrap();
    for n in 0..4 {
        slow.send(n).unwrap();
    }
    assert!(eventually(|| slow.queued() == 3), "the slow worker is blocked in the first message");
    let log = Log::default();
    let fast = rt.spawn(Recorder::new(&log)).unwrap();
    for n in 0..100 {
        fast.send(Rec::Put(n)).unwrap();
    }
    // Answered while every "slow" worker is still blocked.
    let seen = fast.ask(Rec::Dump).unwrap().wait(PATIENCE).unwrap();
    assert_eq!(seen, (0..100).collect::<Vec<_>>());
    assert_eq!(slow.queued(), 3, "the slow cell is still stuck on its first message");
    open(&gate);
    rt.shutdown(PATIENCE);
}

#[test]
fn children_inherit_their_parents_dispatcher_unless_told_otherwise() {
    struct Spawner;
    impl Cell for Spawner {
        type Message = cellrt::Reply<Vec<String>>;
        fn handle(&mut self, ctx: &mut Context<Self>, reply: Self::Message) -> Result<(), CellError> {
            let inherited = ctx.spawn(Probe).map_err(CellError::from)?;
            let moved =
                ctx.spawn_with(CellConfig::new().dispatcher("default"), Probe).map_err(CellError::from)?;
            let a = inherited.ask(|r| r).map_err(|_| CellError::msg("send"))?;
            let b = moved.ask(|r| r).map_err(|_| CellError::msg("send"))?;
            let names = [a, b].into_iter().map(|p| p.wait(PATIENCE).unwrap_or_default()).collect();
            let _ = reply.send(names);
            Ok(())
        }
    }
    struct Probe;
    impl Cell for Probe {
        type Message = cellrt::Reply<String>;
        fn handle(&mut self, _ctx: &mut Context<Self>, reply: Self::Message) -> Result<(), CellError> {
            let _ = reply.send(std::thread::current().name().unwrap_or("").to_owned());
            Ok(())
        }
    }
    let rt = Runtime::builder().worker_threads(1).dispatcher("io", 2).build().unwrap();
    let spawner = rt.spawn_with(CellConfig::new().dispatcher("io"), Spawner).unwrap();
    let names = spawner.ask(|r| r).unwrap().wait(PATIENCE).unwrap();
    assert!(names[0].starts_with("cellrt-io-"), "{names:?}");
    assert_eq!(names[1], "cellrt-default-0");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_single_threaded_runtime_runs_a_pipeline() {
    struct Stage {
        next: Option<cellrt::Addr<Rec>>,
        log: Log<u64>,
    }
    impl Cell for Stage {
        type Message = u64;
        fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) -> Result<(), CellError> {
            self.log.push(n);
            if let Some(next) = &self.next {
                next.try_send(Rec::Put(n * 10)).map_err(|e| CellError::msg(e.to_string()))?;
            }
            Ok(())
        }
    }
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    assert_eq!(rt.dispatcher_threads("default"), Some(1));
    let sink_log = Log::default();
    let sink = rt.spawn_with(CellConfig::new().capacity(64), Recorder::new(&sink_log)).unwrap();
    let stage_log = Log::default();
    let stage = rt.spawn(Stage { next: Some(sink.clone()), log: stage_log.clone() }).unwrap();
    for n in 1..=20 {
        stage.send(n).unwrap();
    }
    assert!(eventually(|| sink_log.len() == 20));
    assert_eq!(
        sink.ask(Rec::Dump).unwrap().wait(PATIENCE).unwrap(),
        (1..=20).map(|n| n * 10).collect::<Vec<_>>()
    );
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 2);
    assert!(report.is_clean());
}

#[cfg(target_os = "linux")]
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[cfg(target_os = "linux")]
#[test]
fn an_idle_runtime_uses_no_cpu() {
    let rt = Runtime::builder().worker_threads(2).dispatcher("extra", 2).build().unwrap();
    let log = Log::default();
    let cells: Vec<_> = (0..100).map(|_| rt.spawn(Recorder::new(&log)).unwrap()).collect();
    for cell in &cells {
        cell.send(Rec::Put(1)).unwrap();
    }
    assert!(eventually(|| log.len() == 100));
    std::thread::sleep(Duration::from_millis(50));
    let before = cpu_ticks();
    std::thread::sleep(Duration::from_millis(500));
    let used = cpu_ticks() - before;
    // Other tests of this binary may run meanwhile; four spinning workers
    // would use about 200 ticks (at 100 Hz) in 500 ms.
    assert!(used < 40, "idle runtime used {used} ticks in 500 ms");
    rt.shutdown(PATIENCE);
}

#[test]
fn builder_refuses_zero_and_duplicate_settings() {
    assert_eq!(
        Runtime::builder().worker_threads(0).build().unwrap_err(),
        BuildError::ZeroWorkers { dispatcher: "default".into() }
    );
    assert_eq!(
        Runtime::builder().dispatcher("io", 0).build().unwrap_err(),
        BuildError::ZeroWorkers { dispatcher: "io".into() }
    );
    assert_eq!(Runtime::builder().throughput(0).build().unwrap_err(), BuildError::ZeroThroughput);
    assert_eq!(Runtime::builder().default_capacity(0).build().unwrap_err(), BuildError::ZeroCapacity);
    assert_eq!(
        Runtime::builder().dispatcher("io", 1).dispatcher("io", 2).build().unwrap_err(),
        BuildError::DuplicateDispatcher { name: "io".into() }
    );
    assert_eq!(
        Runtime::builder().dispatcher("default", 1).build().unwrap_err(),
        BuildError::ReservedDispatcherName { name: "default".into() }
    );
    assert_eq!(
        BuildError::ReservedDispatcherName { name: "default".into() }.to_string(),
        "dispatcher name \"default\" is reserved for the default dispatcher (size it with worker_threads)"
    );
    assert_eq!(
        Runtime::builder().dispatcher("my pool", 1).build().unwrap_err(),
        BuildError::InvalidDispatcherName {
            name: "my pool".into(),
            reason: NameError::InvalidChar { found: ' ', position: 2 }
        }
    );
    assert_eq!(
        Runtime::builder().dispatcher("io", cellrt::MAX_WORKER_THREADS + 1).build().unwrap_err(),
        BuildError::TooManyWorkers { dispatcher: "io".into(), threads: 1025 }
    );
    assert_eq!(
        Runtime::builder().worker_threads(usize::MAX).build().unwrap_err().to_string(),
        format!("dispatcher \"default\" asks for {} worker threads, the limit is 1024", usize::MAX)
    );
    assert_eq!(
        BuildError::ZeroWorkers { dispatcher: "io".into() }.to_string(),
        "dispatcher \"io\" needs at least one worker thread"
    );
}

#[test]
fn default_dispatcher_has_a_worker_per_core() {
    let rt = Runtime::builder().build().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(rt.dispatcher_threads("default"), Some(cores));
    assert_eq!(rt.dispatcher_threads("missing"), None);
    rt.shutdown(PATIENCE);
}

#[test]
fn unused_helper_runtime_builds() {
    let rt = runtime(1);
    assert_eq!(rt.cell_count(), 0);
    rt.shutdown(PATIENCE);
}
