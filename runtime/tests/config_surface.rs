//! Every configuration option, driven with arbitrary values (zero, the
//! largest, overflow-prone combinations, names that break every rule): the
//! result is a working runtime and cell, or a typed error, never a panic,
//! an abort or a hang. Each case runs on its own thread under a watchdog.

#![cfg(all(feature = "observe", feature = "storage"))]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use cellrt::{
    BreakerConfig, BuildError, Cell, CellConfig, CellError, ChildSpec, Context, ObservationConfig, Reply,
    Restart, RestartBackoff, RetryPolicy, Runtime, SendError, Shutdown, SlidingWindow, SpawnError,
    StorageConfig, SupervisorSpec, MAX_WORKER_THREADS,
};
use proptest::prelude::*;

/// How long one case may take before the watchdog calls it a hang.
const WATCHDOG: Duration = Duration::from_secs(30);

/// Answers, or fails when told to (so that restarts, intensity and backoff
/// run with the generated settings).
#[derive(Clone)]
struct Worker;

enum Job {
    Echo(u32, Reply<u32>),
    Fail,
}

impl Cell for Worker {
    type Message = Job;

    fn handle(&mut self, _: &mut Context<Self>, job: Job) -> Result<(), CellError> {
        match job {
            Job::Echo(n, reply) => {
                let _ = reply.send(n);
                Ok(())
            }
            Job::Fail => Err(CellError::msg("told to fail")),
        }
    }
}

// Each strategy gives a valid value most of the time, so that most cases
// get past `build` and run cells with the other values.

fn count() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 1..4_usize,
        1 => Just(0),
        1 => prop_oneof![Just(MAX_WORKER_THREADS + 1), Just(usize::MAX)],
    ]
}

fn capacity() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => prop_oneof![Just(1), Just(31), Just(1 << 30), Just(usize::MAX), Just(usize::MAX / 16 + 1)],
        1 => Just(0),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::from_nanos(1)),
        Just(Duration::from_millis(1)),
        Just(Duration::from_millis(50)),
        Just(Duration::from_secs(u64::MAX)),
        Just(Duration::MAX),
    ]
}

fn fraction() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(0.0),
        Just(0.5),
        Just(1.0),
        Just(-1.0),
        Just(2.0),
        Just(100.0),
        Just(f64::NAN),
        Just(f64::INFINITY),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop_oneof![Just("io".to_owned()), Just("ünïcödé".to_owned()), Just("n".repeat(255))],
        1 => prop_oneof![
            Just(String::new()),
            Just("default".to_owned()),
            Just("with space".to_owned()),
            Just("a/b".to_owned()),
            Just("#1".to_owned()),
            Just("x\n".to_owned()),
            Just("n".repeat(300)),
        ],
    ]
}

/// A duration that is valid where zero is not.
fn positive() -> impl Strategy<Value = Duration> {
    prop_oneof![8 => duration().prop_filter("not zero", |d| !d.is_zero()), 1 => Just(Duration::ZERO)]
}

#[derive(Debug, Clone)]
enum Storage {
    None,
    InMemory,
    Missing { create: bool, flush: Option<Duration>, cache: u64 },
    AFile,
}

fn storage() -> impl Strategy<Value = Storage> {
    prop_oneof![
        6 => Just(Storage::None),
        3 => Just(Storage::InMemory),
        2 => (any::<bool>(), proptest::option::of(duration()), prop_oneof![Just(0_u64), Just(1 << 20), Just(u64::MAX)])
            .prop_map(|(create, flush, cache)| Storage::Missing { create, flush, cache }),
        1 => Just(Storage::AFile),
    ]
}

#[derive(Debug, Clone)]
struct Settings {
    worker_threads: usize,
    threadless: bool,
    dispatcher: Option<(String, usize)>,
    group: Option<(String, usize)>,
    throughput: usize,
    default_capacity: usize,
    send_timeout: Duration,
    dead_letter_capacity: usize,
    window: Duration,
    sample_every: u32,
    storage: Storage,
    cell_name: Option<String>,
    cell_capacity: Option<usize>,
    cell_dispatcher: Option<String>,
    cell_group: Option<String>,
    max_restarts: u32,
    period: Duration,
    backoff: (Duration, Duration, f64),
    child_shutdown: Shutdown,
    retry: u32,
    deadline: Option<Duration>,
    breaker: (f64, f64, u32, u32, Duration, Duration),
    shutdown: Duration,
}

fn shutdown_kind() -> impl Strategy<Value = Shutdown> {
    prop_oneof![Just(Shutdown::Kill), Just(Shutdown::Infinity), duration().prop_map(Shutdown::Timeout)]
}

fn settings() -> impl Strategy<Value = Settings> {
    let runtime = (
        count(),
        any::<bool>(),
        proptest::option::of((name(), count())),
        proptest::option::of((name(), count())),
        count(),
        capacity(),
        duration(),
        count(),
        positive(),
        prop_oneof![4 => Just(1_u32), 4 => Just(u32::MAX), 1 => Just(0)],
        storage(),
    );
    let cell = (
        proptest::option::of(name()),
        proptest::option::of(capacity()),
        proptest::option::of(name()),
        proptest::option::of(name()),
    );
    let supervision = (
        prop_oneof![Just(0_u32), Just(1), Just(u32::MAX)],
        positive(),
        (duration(), duration(), prop_oneof![4 => Just(0.0), 4 => Just(1.0), 1 => fraction()]),
        shutdown_kind(),
        prop_oneof![Just(0_u32), Just(1), Just(u32::MAX)],
        proptest::option::of(duration()),
    );
    let breaker = (
        fraction().prop_map(|f| f * 100.0),
        fraction().prop_map(|f| f * 100.0),
        prop_oneof![Just(0_u32), Just(1), Just(u32::MAX)],
        prop_oneof![Just(0_u32), Just(1), Just(u32::MAX)],
        duration(),
        duration(),
    );
    (runtime, cell, supervision, breaker, duration()).prop_map(|(r, c, s, b, shutdown)| Settings {
        worker_threads: r.0,
        threadless: r.1,
        dispatcher: r.2,
        group: r.3,
        throughput: r.4,
        default_capacity: r.5,
        send_timeout: r.6,
        dead_letter_capacity: r.7,
        window: r.8,
        sample_every: r.9,
        storage: r.10,
        cell_name: c.0,
        cell_capacity: c.1,
        cell_dispatcher: c.2,
        cell_group: c.3,
        max_restarts: s.0,
        period: s.1,
        backoff: s.2,
        child_shutdown: s.3,
        retry: s.4,
        deadline: s.5,
        breaker: b,
        shutdown,
    })
}

/// What a case came to, for the property to check.
#[derive(Debug)]
enum Outcome {
    Refused,
    Ran,
}

/// Drives one configuration end to end. Every `Err` on the way must be a
/// typed error; a panic fails the case through the thread's join.
fn drive(settings: Settings, scratch: &std::path::Path) -> Outcome {
    let mut builder = Runtime::builder();
    builder
        .worker_threads(settings.worker_threads)
        .threadless(settings.threadless)
        .throughput(settings.throughput)
        .default_capacity(settings.default_capacity)
        .send_timeout(settings.send_timeout)
        .dead_letter_capacity(settings.dead_letter_capacity)
        .quiet_panics(true)
        .observation(
            ObservationConfig::default().window(settings.window).sample_every(settings.sample_every),
        );
    if let Some((name, threads)) = &settings.dispatcher {
        builder.dispatcher(name.clone(), *threads);
    }
    if let Some((name, limit)) = &settings.group {
        builder.group(name.clone(), *limit);
    }
    match &settings.storage {
        Storage::None => {}
        Storage::InMemory => {
            builder.storage(StorageConfig::in_memory());
        }
        Storage::Missing { create, flush, cache } => {
            let config = StorageConfig::dir(scratch.join("missing"))
                .create_missing(*create)
                .background_flush(*flush)
                .cache_bytes(*cache);
            builder.storage(config);
        }
        Storage::AFile => {
            let file = scratch.join("a-file");
            std::fs::write(&file, b"not a database").unwrap();
            builder.storage(StorageConfig::dir(&file).create_missing(true));
        }
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(err) => {
            assert!(!err.to_string().is_empty());
            let _: BuildError = err;
            return Outcome::Refused;
        }
    };
    let threadless = settings.threadless;
    let answer = |runtime: &Runtime, pending: cellrt::Pending<u32>| {
        if threadless {
            runtime.run_until_idle().unwrap();
            let mut pending = pending;
            pending.try_take()
        } else {
            pending.wait(Duration::from_secs(10)).map(Some)
        }
    };

    let mut config = CellConfig::new();
    if let Some(name) = &settings.cell_name {
        config = config.name(name.clone());
    }
    if let Some(capacity) = settings.cell_capacity {
        config = config.capacity(capacity);
    }
    if let Some(dispatcher) = &settings.cell_dispatcher {
        config = config.dispatcher(dispatcher.clone());
    }
    if let Some(group) = &settings.cell_group {
        config = config.group(group.clone());
    }
    match runtime.spawn_with(config, Worker) {
        Ok(worker) => {
            let pending = worker.ask(|reply| Job::Echo(7, reply));
            match pending {
                Ok(pending) => assert_eq!(answer(&runtime, pending), Ok(Some(7))),
                Err(SendError::Timeout(_) | SendError::Full(_)) => {}
                Err(other) => panic!("a fresh cell refused an ask: {other}"),
            }
            // Zero timeouts have one meaning each, whatever the settings.
            assert!(matches!(
                worker.ask_within(Duration::ZERO, |reply| Job::Echo(1, reply)),
                Err(SendError::Timeout(_))
            ));
        }
        Err(err) => {
            assert!(!err.to_string().is_empty());
            assert!(!matches!(err, SpawnError::ShutDown), "a running runtime refused a spawn");
        }
    }

    let (min, max, jitter) = settings.backoff;
    let mut child = ChildSpec::new("worker", || Worker)
        .restart(Restart::Permanent)
        .shutdown(settings.child_shutdown)
        .retry(RetryPolicy::attempts(settings.retry));
    if let Some(capacity) = settings.cell_capacity {
        child = child.capacity(capacity);
    }
    if let Some(deadline) = settings.deadline {
        child = child.deadline(deadline);
    }
    let spec = SupervisorSpec::new("sup")
        .intensity(settings.max_restarts, settings.period)
        .backoff(RestartBackoff::exponential(min, max).jitter(jitter))
        .child(child);
    if !threadless {
        match runtime.start_supervisor(spec, Duration::from_secs(10)) {
            Ok(sup) => {
                if let Some(worker) = sup.child::<Job>("worker") {
                    let _ = worker.try_send(Job::Fail);
                    let _ = worker.try_send(Job::Fail);
                }
            }
            Err(err) => assert!(!err.to_string().is_empty()),
        }
    }

    let (failure, slow, minimum, half_open, slow_call, wait) = settings.breaker;
    let breaker = BreakerConfig::default()
        .failure_rate_threshold(failure)
        .slow_call_rate_threshold(slow)
        .sliding_window(if minimum % 2 == 0 {
            SlidingWindow::Count(minimum)
        } else {
            SlidingWindow::Time(wait)
        })
        .minimum_calls(minimum)
        .permitted_in_half_open(half_open)
        .slow_call_duration(slow_call)
        .wait_in_open(wait);
    match runtime.breaker("stock", breaker) {
        Ok(breaker) => {
            if let Ok(permit) = breaker.try_acquire() {
                permit.failure();
            }
            breaker.force_open();
            let _ = breaker.try_acquire();
        }
        Err(err) => assert!(!err.to_string().is_empty()),
    }
    // A zero timeout kills at once; the largest waits for the cells, which
    // all drain.
    let report = runtime.shutdown(settings.shutdown);
    assert!(report.cells_abandoned.is_empty(), "{report:?}");
    RAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if std::env::var_os("CONFIG_SURFACE_TRACE").is_some() {
        eprintln!("ran ({} so far)", RAN.load(std::sync::atomic::Ordering::Relaxed));
    }
    Outcome::Ran
}

/// Cases that got past `build` and ran cells.
static RAN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_configuration_runs_or_is_refused_with_a_typed_error(settings in settings()) {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().to_owned();
        let (done, outcome) = mpsc::channel();
        let case = settings.clone();
        let started = std::time::Instant::now();
        if std::env::var_os("CONFIG_SURFACE_TRACE").is_some() {
            eprintln!("case {settings:?}");
        }
        let driver = std::thread::spawn(move || {
            let outcome = drive(case, &path);
            let _ = done.send(());
            outcome
        });
        match outcome.recv_timeout(WATCHDOG) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung for {WATCHDOG:?}: {settings:?}"),
        }
        if std::env::var_os("CONFIG_SURFACE_TRACE").is_some() {
            eprintln!("took {:?}", started.elapsed());
        }
        match driver.join() {
            Ok(Outcome::Ran | Outcome::Refused) => {}
            Err(_) => panic!("panicked: {settings:?}"),
        }
    }
}
