//! Every configuration option, driven with arbitrary values (zero, the
//! largest, overflow-prone combinations, names that break every rule): the
//! result is a working runtime and cell, or a typed error, never a panic,
//! an abort or a hang.
//!
//! The first property drives the runtime, cell, supervision and breaker
//! options end to end, each case on its own thread under a watchdog. The
//! others take one configuration type each (observation, chaos,
//! recomposition, flow control and bulkheads) and state its validity rule,
//! the table of `docs/semantics.md`: exactly the values inside it are
//! accepted, and each value outside it is refused with the error that names
//! its field.

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

// ---------------------------------------------------------------------------
// Each configuration type on its own: arbitrary values, NaN, infinities,
// zero, the largest, out-of-order pairs. Each property states the exact
// validity rule of `docs/semantics.md` ("Valid range of every option") and
// checks that the type accepts every value inside it and refuses every
// value outside it with the typed error that names the field. A panic in a
// construction fails the case.
// ---------------------------------------------------------------------------

/// Shared strategies: values on and around every boundary, and arbitrary ones.
mod values {
    use std::time::Duration;

    use proptest::prelude::*;

    /// A float anywhere: boundaries of the usual ranges, NaN, infinities,
    /// the extremes and arbitrary bit patterns.
    pub(crate) fn real() -> BoxedStrategy<f64> {
        prop_oneof![
            4 => prop_oneof![
                Just(0.0),
                Just(-0.0),
                Just(f64::MIN_POSITIVE),
                Just(1e-9),
                Just(0.1),
                Just(0.5),
                Just(0.8),
                Just(1.0 - f64::EPSILON),
                Just(1.0),
                Just(1.0 + f64::EPSILON),
                Just(2.0),
                Just(6.0),
                Just(100.0),
                Just(100.000_001),
                Just(1_000.0),
                Just(1_000.1),
            ],
            2 => -2.0..3.0_f64,
            1 => prop_oneof![
                Just(f64::NAN),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(-1.0),
                Just(f64::MAX),
                Just(f64::MIN),
                Just(-f64::MIN_POSITIVE),
            ],
            1 => any::<f64>(),
        ]
        .boxed()
    }

    /// Mostly `valid`, sometimes anything: so that later fields of a
    /// config are reached past the earlier ones.
    pub(crate) fn mostly(valid: impl Strategy<Value = f64> + 'static) -> BoxedStrategy<f64> {
        prop_oneof![5 => valid, 1 => real()].boxed()
    }

    /// A duration anywhere: zero, a nanosecond, around a millisecond and a
    /// minute, the largest, arbitrary ones.
    pub(crate) fn duration() -> BoxedStrategy<Duration> {
        prop_oneof![
            3 => prop_oneof![
                Just(Duration::ZERO),
                Just(Duration::from_nanos(1)),
                Just(Duration::from_nanos(999_999)),
                Just(Duration::from_millis(1)),
                Just(Duration::from_nanos(1_000_001)),
                Just(Duration::from_secs(1)),
                Just(Duration::from_secs(60)),
                Just(Duration::from_nanos(60_000_000_001)),
                Just(Duration::from_secs(3_600)),
                Just(Duration::from_secs(u64::MAX)),
                Just(Duration::MAX),
            ],
            2 => any::<u64>().prop_map(Duration::from_nanos),
            1 => (any::<u64>(), 0..1_000_000_000_u32).prop_map(|(secs, nanos)| Duration::new(secs, nanos)),
        ]
        .boxed()
    }

    pub(crate) fn count_u32() -> impl Strategy<Value = u32> {
        prop_oneof![Just(0_u32), Just(1), Just(2), Just(u32::MAX), any::<u32>()]
    }

    pub(crate) fn count_u64() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0_u64), Just(1), Just(2), Just(u64::MAX), any::<u64>()]
    }

    pub(crate) fn count_usize() -> impl Strategy<Value = usize> {
        prop_oneof![Just(0_usize), Just(1), Just(2), Just(usize::MAX), any::<usize>()]
    }

    /// Text anywhere: names that pass every rule, empty, blank, padded,
    /// reserved, exactly and one past 255 bytes, multi-byte, arbitrary
    /// printable and arbitrary (control characters included) strings.
    pub(crate) fn text() -> BoxedStrategy<String> {
        prop_oneof![
            3 => prop_oneof![Just("io"), Just("ünïcödé"), Just("a-b_c.d"), Just("ordres-élevés#1")]
                .prop_map(str::to_owned),
            2 => prop_oneof![
                Just(String::new()),
                Just(" ".to_owned()),
                Just("\t".to_owned()),
                Just(" padded ".to_owned()),
                Just("with space".to_owned()),
                Just("a/b".to_owned()),
                Just("#1".to_owned()),
                Just("x\n".to_owned()),
                Just("base".to_owned()),
                Just("default".to_owned()),
                Just("n".repeat(255)),
                Just("n".repeat(256)),
                Just("é".repeat(128)),
                Just("é".repeat(127) + "nn"),
            ],
            2 => "\\PC{0,12}",
            1 => any::<String>(),
        ]
        .boxed()
    }

    /// Whether `name` passes the name rule of `docs/semantics.md`, and if
    /// not, which rule it breaks.
    pub(crate) fn name_rule(name: &str) -> Result<(), cellrt::NameError> {
        use cellrt::NameError;
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.starts_with('#') {
            return Err(NameError::Reserved);
        }
        if name.len() > cellrt::MAX_NAME_LEN {
            return Err(NameError::TooLong { len: name.len() });
        }
        match name.char_indices().find(|(_, c)| *c == '/' || c.is_whitespace() || c.is_control()) {
            Some((position, found)) => Err(NameError::InvalidChar { found, position }),
            None => Ok(()),
        }
    }

    /// Errors compared through `Debug`, so that a refused NaN equals
    /// itself.
    pub(crate) fn same<A: std::fmt::Debug, B: std::fmt::Debug>(got: &A, want: &B) -> bool {
        format!("{got:?}") == format!("{want:?}")
    }

    /// `(0, 1]`.
    pub(crate) fn share(value: f64) -> bool {
        value > 0.0 && value <= 1.0
    }
}

/// `ObservationConfig` and its parts: decay, burn-rate windows, objectives,
/// journal, triage.
mod observation {
    use std::time::Duration;

    use cellrt::{
        BuildError, BurnAlert, BurnWindows, DecayConfig, DecayConfigError, JournalConfig, JournalConfigError,
        NoiseFloor, Objective, ObjectiveError, ObservationConfig, ObservationConfigError, Runtime,
        TriageConfig, TriageConfigError, MAX_SHORT_WINDOWS, MIN_ANALYSIS_WINDOW,
    };
    use proptest::prelude::*;

    use super::values::{count_u32, count_u64, count_usize, duration, mostly, real, same, share};

    #[derive(Clone, Debug)]
    struct Decay {
        warmup: u32,
        short_windows: u32,
        baseline_alpha: f64,
        z_low: f64,
        z_high: f64,
        drift_windows: u32,
        threshold: f64,
        clear: Option<f64>,
        floors: [NoiseFloor; 6],
    }

    const FLOORS: [&str; 6] = [
        "fragility_floor",
        "cost_floor",
        "queue_delay_floor",
        "saturation_floor",
        "rejection_floor",
        "rate_floor",
    ];

    fn floor() -> impl Strategy<Value = NoiseFloor> {
        (mostly(0.0..10.0_f64), mostly(1e-9..10.0_f64))
            .prop_map(|(relative, absolute)| NoiseFloor { relative, absolute })
    }

    fn windows_u32() -> impl Strategy<Value = u32> {
        prop_oneof![6 => 1..20_u32, 1 => prop_oneof![Just(MAX_SHORT_WINDOWS), Just(MAX_SHORT_WINDOWS + 1)], 1 => count_u32()]
    }

    fn decay() -> BoxedStrategy<Decay> {
        (
            (windows_u32(), windows_u32(), mostly(prop_oneof![Just(1.0), 1e-9..1.0_f64]), windows_u32()),
            (mostly(0.0..5.0_f64), mostly(0.0..12.0_f64)),
            (mostly(prop_oneof![Just(1.0), 1e-9..1.0_f64]), proptest::option::of(mostly(0.0..1.0_f64))),
            [floor(), floor(), floor(), floor(), floor(), floor()],
        )
            .prop_map(
                |(
                    (warmup, short_windows, baseline_alpha, drift_windows),
                    (z_low, z_high),
                    (threshold, clear),
                    floors,
                )| {
                    Decay {
                        warmup,
                        short_windows,
                        baseline_alpha,
                        z_low,
                        z_high,
                        drift_windows,
                        threshold,
                        clear,
                        floors,
                    }
                },
            )
            .boxed()
    }

    fn decay_config(d: &Decay) -> DecayConfig {
        let [fragility, cost, queue_delay, saturation, rejection, rate] = d.floors;
        let config = DecayConfig::default()
            .warmup(d.warmup)
            .short_windows(d.short_windows)
            .baseline_alpha(d.baseline_alpha)
            .z_low(d.z_low)
            .z_high(d.z_high)
            .drift_windows(d.drift_windows)
            .threshold(d.threshold)
            .fragility_floor(fragility)
            .cost_floor(cost)
            .queue_delay_floor(queue_delay)
            .saturation_floor(saturation)
            .rejection_floor(rejection)
            .rate_floor(rate);
        match d.clear {
            Some(clear) => config.clear(clear),
            None => config,
        }
    }

    /// The table's rule, setting by setting in the order they are checked.
    fn decay_rule(d: &Decay) -> Result<(), DecayConfigError> {
        if d.warmup == 0 {
            return Err(DecayConfigError::Warmup { value: 0 });
        }
        if !(1..=MAX_SHORT_WINDOWS).contains(&d.short_windows) {
            return Err(DecayConfigError::ShortWindows { value: d.short_windows });
        }
        if !share(d.baseline_alpha) {
            return Err(DecayConfigError::BaselineAlpha { value: d.baseline_alpha });
        }
        if !(d.z_low.is_finite() && d.z_low >= 0.0) {
            return Err(DecayConfigError::ZLow { value: d.z_low });
        }
        if !(d.z_high.is_finite() && d.z_high > d.z_low) {
            return Err(DecayConfigError::ZHigh { value: d.z_high, z_low: d.z_low });
        }
        if d.drift_windows == 0 {
            return Err(DecayConfigError::DriftWindows { value: 0 });
        }
        if !share(d.threshold) {
            return Err(DecayConfigError::Threshold { value: d.threshold });
        }
        let clear = d.clear.unwrap_or(0.8 * d.threshold);
        if !(clear > 0.0 && clear < d.threshold) {
            return Err(DecayConfigError::Clear { value: clear, threshold: d.threshold });
        }
        for (field, floor) in FLOORS.into_iter().zip(d.floors) {
            let valid = floor.relative.is_finite()
                && floor.relative >= 0.0
                && floor.absolute.is_finite()
                && floor.absolute > 0.0;
            if !valid {
                return Err(DecayConfigError::NoiseFloor { field, floor });
            }
        }
        Ok(())
    }

    type Alert = (Duration, Duration, f64);

    fn alert() -> BoxedStrategy<Alert> {
        let window = prop_oneof![
            4 => prop_oneof![
                Just(Duration::from_secs(60)),
                Just(Duration::from_secs(300)),
                Just(Duration::from_secs(3_600)),
                Just(Duration::from_secs(6 * 3_600)),
                Just(Duration::from_secs(72 * 3_600)),
            ],
            1 => duration(),
        ];
        (window.clone(), window, mostly(0.5..20.0_f64)).boxed()
    }

    fn burn_windows(alerts: &[Alert; 3]) -> BurnWindows {
        let mut windows = BurnWindows::new();
        for (alert, (long, short, factor)) in
            [BurnAlert::Fast, BurnAlert::Slow, BurnAlert::Ticket].into_iter().zip(*alerts)
        {
            windows = windows.window(alert, long, short).factor(alert, factor);
        }
        windows
    }

    /// Each alert's windows above zero, its short window shorter than its
    /// long one, its factor finite and above zero (fastest alert first);
    /// then the long windows growing from fast to slow to ticket.
    fn burn_rule(alerts: &[Alert; 3]) -> Result<(), ObjectiveError> {
        let names = [BurnAlert::Fast, BurnAlert::Slow, BurnAlert::Ticket];
        for (alert, (long, short, factor)) in names.into_iter().zip(*alerts) {
            if long.is_zero() || short.is_zero() {
                return Err(ObjectiveError::ZeroWindow { alert, long, short });
            }
            if short >= long {
                return Err(ObjectiveError::ShortNotShorter { alert, long, short });
            }
            if !(factor.is_finite() && factor > 0.0) {
                return Err(ObjectiveError::Factor { alert, value: factor });
            }
        }
        for i in 1..3 {
            let (long, faster_long) = (alerts[i].0, alerts[i - 1].0);
            if long <= faster_long {
                return Err(ObjectiveError::OutOfOrder {
                    alert: names[i],
                    long,
                    faster: names[i - 1],
                    faster_long,
                });
            }
        }
        Ok(())
    }

    fn triage() -> BoxedStrategy<TriageConfig> {
        let window = || prop_oneof![6 => Just(Duration::from_secs(10)), 1 => duration()];
        (
            window(),
            window(),
            prop_oneof![4 => Just(10_u32), 1 => count_u32()],
            window(),
            window(),
            count_u64(),
            count_u32(),
        )
            .prop_map(|(dependency, change, storm_restarts, storm, debt_age, recurrences, rising)| {
                TriageConfig::default()
                    .dependency_window(dependency)
                    .change_window(change)
                    .storm_restarts(storm_restarts)
                    .storm_window(storm)
                    .debt_age(debt_age)
                    .debt_recurrences(recurrences)
                    .debt_rising_windows(rising)
            })
            .boxed()
    }

    /// Every window above zero, a storm of at least 2 restarts, every
    /// count above zero, in the order of the fields.
    fn triage_rule(t: &TriageConfig) -> Result<(), TriageConfigError> {
        let zero = |setting| Err(TriageConfigError::Zero { setting });
        if t.dependency_window.is_zero() {
            return zero("dependency_window");
        }
        if t.change_window.is_zero() {
            return zero("change_window");
        }
        if t.storm_restarts < 2 {
            return Err(TriageConfigError::StormTooSmall { restarts: t.storm_restarts });
        }
        if t.storm_window.is_zero() {
            return zero("storm_window");
        }
        if t.debt_age.is_zero() {
            return zero("debt_age");
        }
        if t.debt_recurrences == 0 {
            return zero("debt_recurrences");
        }
        if t.debt_rising_windows == 0 {
            return zero("debt_rising_windows");
        }
        Ok(())
    }

    fn journal_rule(capacity: usize, persisted: usize) -> Result<(), JournalConfigError> {
        if capacity == 0 {
            return Err(JournalConfigError::ZeroCapacity);
        }
        if persisted == 0 {
            return Err(JournalConfigError::ZeroPersistedCapacity);
        }
        if persisted < capacity {
            return Err(JournalConfigError::PersistedBelowMemory { capacity, persisted_capacity: persisted });
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decay_configs_are_accepted_exactly_when_every_setting_is_in_range(d in decay()) {
            let got = decay_config(&d).validate();
            let want = decay_rule(&d);
            prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", d, got, want);
        }

        #[test]
        fn burn_windows_are_accepted_exactly_when_short_is_shorter_than_long_and_fast_is_shorter_than_slow_than_ticket(
            alerts in [alert(), alert(), alert()],
        ) {
            let got = burn_windows(&alerts).validate();
            let want = burn_rule(&alerts);
            prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", alerts, got, want);
            if let Err(err) = got {
                prop_assert!(!err.to_string().is_empty());
            }
        }

        #[test]
        fn objectives_are_made_exactly_when_the_target_leaves_a_budget_and_a_latency_is_above_zero(
            target in real(),
            threshold in duration(),
        ) {
            let target_ok = target > 0.0 && target < 1.0;
            let success = Objective::success_ratio(target);
            let latency = Objective::latency(threshold, target);
            if target_ok {
                prop_assert_eq!(success.map(|o| o.target()), Ok(target));
                if threshold.is_zero() {
                    prop_assert_eq!(latency, Err(ObjectiveError::ZeroLatencyThreshold));
                } else {
                    prop_assert_eq!(latency.map(|o| o.target()), Ok(target));
                }
            } else {
                let want: Result<Objective, _> = Err(ObjectiveError::Target { value: target });
                prop_assert!(same(&success, &want), "{:?}", success);
                prop_assert!(same(&latency, &want), "{:?}", latency);
            }
        }

        #[test]
        fn journal_configs_are_accepted_exactly_when_both_capacities_are_positive_and_the_store_keeps_at_least_memory(
            capacity in count_usize(),
            persisted in count_usize(),
        ) {
            let config = JournalConfig::default().capacity(capacity).persisted_capacity(persisted);
            prop_assert_eq!(config.validate(), journal_rule(capacity, persisted));
        }

        #[test]
        fn triage_configs_are_accepted_exactly_when_windows_and_counts_are_above_zero_and_a_storm_takes_two_restarts(
            config in triage(),
        ) {
            prop_assert_eq!(config.validate(), triage_rule(&config));
        }
    }

    #[derive(Clone, Debug)]
    struct Observation {
        window: Duration,
        sample_every: u32,
        decay: Decay,
        burn: [Alert; 3],
        journal: (usize, usize),
        triage: TriageConfig,
    }

    fn observation() -> impl Strategy<Value = Observation> {
        (
            prop_oneof![4 => Just(Duration::from_millis(250)), 1 => duration()],
            prop_oneof![4 => Just(32_u32), 1 => count_u32()],
            prop_oneof![4 => Just(None), 1 => decay().prop_map(Some)],
            prop_oneof![4 => Just(None), 1 => [alert(), alert(), alert()].prop_map(Some)],
            prop_oneof![4 => Just((10_000, 100_000)), 1 => (count_usize(), count_usize())],
            prop_oneof![4 => Just(TriageConfig::default()), 1 => triage()],
        )
            .prop_map(|(window, sample_every, decay, burn, journal, triage)| Observation {
                window,
                sample_every,
                decay: decay.unwrap_or(Decay {
                    warmup: 5,
                    short_windows: 3,
                    baseline_alpha: 0.1,
                    z_low: 2.0,
                    z_high: 6.0,
                    drift_windows: 8,
                    threshold: 0.5,
                    clear: None,
                    floors: [NoiseFloor { relative: 0.0, absolute: 0.01 }; 6],
                }),
                burn: burn.unwrap_or([
                    (Duration::from_secs(3_600), Duration::from_secs(300), 14.4),
                    (Duration::from_secs(6 * 3_600), Duration::from_secs(1_800), 6.0),
                    (Duration::from_secs(72 * 3_600), Duration::from_secs(6 * 3_600), 1.0),
                ]),
                journal,
                triage,
            })
    }

    /// Sampling, then the window, then each part in turn: the first part
    /// refused is the error, wrapped in the variant naming the part.
    fn observation_rule(o: &Observation) -> Result<(), ObservationConfigError> {
        if o.sample_every == 0 {
            return Err(ObservationConfigError::ZeroSampling);
        }
        if o.window.is_zero() {
            return Err(ObservationConfigError::ZeroWindow);
        }
        if o.window < MIN_ANALYSIS_WINDOW {
            return Err(ObservationConfigError::WindowTooShort { window: o.window });
        }
        decay_rule(&o.decay).map_err(ObservationConfigError::Decay)?;
        burn_rule(&o.burn).map_err(ObservationConfigError::BurnWindows)?;
        journal_rule(o.journal.0, o.journal.1).map_err(ObservationConfigError::Journal)?;
        triage_rule(&o.triage).map_err(ObservationConfigError::Triage)?;
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_runtime_builds_exactly_when_its_observation_config_is_valid_and_names_the_first_part_refused(
            o in observation(),
        ) {
            let config = ObservationConfig::default()
                .window(o.window)
                .sample_every(o.sample_every)
                .decay(decay_config(&o.decay))
                .burn_windows(burn_windows(&o.burn))
                .journal(JournalConfig::default().capacity(o.journal.0).persisted_capacity(o.journal.1))
                .triage(o.triage.clone());
            let built = Runtime::builder().threadless(true).observation(config).build();
            match (built, observation_rule(&o)) {
                (Ok(runtime), Ok(())) => {
                    let report = runtime.shutdown(Duration::ZERO);
                    prop_assert!(report.is_clean(), "{:?}", report);
                }
                (Err(BuildError::Observation(got)), Err(want)) => {
                    prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", o, got, want);
                }
                (got, want) => {
                    prop_assert!(false, "{:?}: got {:?}, want {:?}", o, got.map(|_| ()), want);
                }
            }
        }
    }
}

/// Faults, their targets and their text grammar, experiments and ramps.
#[cfg(feature = "chaos")]
mod chaos {
    use std::sync::OnceLock;
    use std::time::Duration;

    use cellrt::{
        CellPath, Delay, Experiment, ExperimentBuildError, ExperimentError, Fault, FaultError, FaultKind,
        FaultSet, InjectError, Predicate, Runtime, Span, Target, TargetError,
    };
    use proptest::prelude::*;

    use super::values::{count_u32, count_u64, duration, real, same, text};

    /// The characters a glob or a bare name may not hold: the spec
    /// grammar's delimiters.
    const RESERVED: [char; 5] = [':', ';', '(', ')', '>'];

    /// A glob starts with `/`, holds no whitespace, control character or
    /// reserved character, and has no empty segment (`//`, or a trailing
    /// `/` after the root).
    fn glob_rule(glob: &str) -> Result<(), TargetError> {
        let pattern = glob.to_owned();
        if !glob.starts_with('/') {
            return Err(TargetError::NotAPath { pattern });
        }
        if let Some(found) =
            glob.chars().find(|c| c.is_whitespace() || c.is_control() || RESERVED.contains(c))
        {
            return Err(TargetError::InvalidChar { pattern, found });
        }
        if glob.len() > 1 && glob.ends_with('/') || glob.contains("//") {
            return Err(TargetError::EmptySegment { pattern });
        }
        Ok(())
    }

    /// A cell type or message kind is not empty, has no surrounding
    /// whitespace, and holds no `(`, `)`, `;` or control character.
    fn type_name_rule(name: &str) -> Result<(), TargetError> {
        if name.is_empty() || name.trim() != name {
            return Err(TargetError::BadName { name: name.to_owned() });
        }
        match name.chars().find(|c| c.is_control() || matches!(c, '(' | ')' | ';')) {
            Some(found) => Err(TargetError::InvalidChar { pattern: name.to_owned(), found }),
            None => Ok(()),
        }
    }

    fn glob() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop_oneof![Just("/"), Just("/a"), Just("/**"), Just("/a/*/b"), Just("/pay*/fraud")].prop_map(str::to_owned),
            2 => prop_oneof![
                Just("a".to_owned()),
                Just("/a/".to_owned()),
                Just("/a//b".to_owned()),
                Just("/a b".to_owned()),
                Just("/a:b".to_owned()),
                Just("/a->b".to_owned()),
                Just("/é".repeat(200)),
            ],
            1 => text(),
            1 => text().prop_map(|t| format!("/{t}")),
        ]
    }

    #[derive(Clone, Debug)]
    enum TargetInput {
        Every,
        Cells(String),
        Edge(String, String),
        CellType(String),
        Kind(String, String),
    }

    fn target_input() -> impl Strategy<Value = TargetInput> {
        prop_oneof![
            Just(TargetInput::Every),
            glob().prop_map(TargetInput::Cells),
            (glob(), glob()).prop_map(|(from, to)| TargetInput::Edge(from, to)),
            text().prop_map(TargetInput::CellType),
            (glob(), text()).prop_map(|(glob, kind)| TargetInput::Kind(glob, kind)),
        ]
    }

    fn make_target(input: &TargetInput) -> Result<Target, TargetError> {
        match input {
            TargetInput::Every => Ok(Target::every()),
            TargetInput::Cells(glob) => Target::cells(glob),
            TargetInput::Edge(from, to) => Target::edge(from, to),
            TargetInput::CellType(name) => Target::cell_type(name),
            TargetInput::Kind(glob, kind) => Target::cells(glob).and_then(|target| target.message_kind(kind)),
        }
    }

    fn target_rule(input: &TargetInput) -> Result<(), TargetError> {
        match input {
            TargetInput::Every => Ok(()),
            TargetInput::Cells(glob) => glob_rule(glob),
            TargetInput::Edge(from, to) => glob_rule(from).and_then(|()| glob_rule(to)),
            TargetInput::CellType(name) => type_name_rule(name),
            TargetInput::Kind(glob, kind) => glob_rule(glob).and_then(|()| type_name_rule(kind)),
        }
    }

    fn delay() -> impl Strategy<Value = Delay> {
        prop_oneof![
            duration().prop_map(Delay::Fixed),
            (duration(), duration()).prop_map(|(low, high)| Delay::Uniform { low, high }),
            duration().prop_map(|mean| Delay::Exponential { mean }),
        ]
    }

    fn kind() -> impl Strategy<Value = FaultKind> {
        prop_oneof![
            delay().prop_map(FaultKind::Latency),
            Just(FaultKind::Error),
            Just(FaultKind::Panic),
            Just(FaultKind::Drop),
            Just(FaultKind::Duplicate),
            Just(FaultKind::Full),
            delay().prop_map(FaultKind::Delay),
            delay().prop_map(FaultKind::Stall),
            Just(FaultKind::WriteError),
            Just(FaultKind::FlushError),
            delay().prop_map(FaultKind::SlowFlush),
            delay().prop_map(FaultKind::TimerSkew),
        ]
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            Just(Target::every()),
            Just(Target::cells("/a/*").unwrap()),
            Just(Target::edge("/gateway", "/a").unwrap()),
            Just(Target::cell_type("app::Worker").unwrap()),
            Just(Target::message_kind_everywhere("Reserve").unwrap()),
            Just(Target::cells("/a").unwrap().message_kind("Reserve").unwrap()),
        ]
    }

    fn delay_of(kind: FaultKind) -> Option<Delay> {
        match kind {
            FaultKind::Latency(delay)
            | FaultKind::Delay(delay)
            | FaultKind::Stall(delay)
            | FaultKind::SlowFlush(delay)
            | FaultKind::TimerSkew(delay) => Some(delay),
            _ => None,
        }
    }

    /// The probability in `0..=1` (not NaN), no limit of 0, every delay
    /// below 2^64 ns (what the grammar writes), a uniform delay's low end at
    /// most its high end; an edge target only on the
    /// faults that act where messages are sent (`drop`, `full`, `delay`), a
    /// stall on no message kind, a storage fault on cell paths only.
    fn fault_rule(
        target: &Target,
        kind: FaultKind,
        probability: f64,
        limit: Option<u64>,
    ) -> Result<(), FaultError> {
        if !(0.0..=1.0).contains(&probability) {
            return Err(FaultError::Probability { value: probability });
        }
        if limit == Some(0) {
            return Err(FaultError::ZeroLimit);
        }
        let longest = Duration::from_nanos(u64::MAX);
        let too_long = match delay_of(kind) {
            Some(Delay::Fixed(delay) | Delay::Exponential { mean: delay }) => {
                [delay].into_iter().find(|d| *d > longest)
            }
            Some(Delay::Uniform { low, high }) => [low, high].into_iter().find(|d| *d > longest),
            None => None,
        };
        if let Some(delay) = too_long {
            return Err(FaultError::DelayTooLong { delay });
        }
        if let Some(Delay::Uniform { low, high }) = delay_of(kind) {
            if low > high {
                return Err(FaultError::EmptyRange { low, high });
            }
        }
        let at_send = matches!(kind, FaultKind::Drop | FaultKind::Full | FaultKind::Delay(_));
        if target.sender_glob().is_some() && !at_send {
            return Err(FaultError::EdgeOutsideSend { kind: kind.name() });
        }
        if matches!(kind, FaultKind::Stall(_)) && target.message_kind_name().is_some() {
            return Err(FaultError::StallOfMessageKind);
        }
        let storage = matches!(kind, FaultKind::WriteError | FaultKind::FlushError | FaultKind::SlowFlush(_));
        if storage && (target.cell_type_name().is_some() || target.message_kind_name().is_some()) {
            return Err(FaultError::StorageByPathOnly { kind: kind.name() });
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn targets_are_made_exactly_from_well_formed_globs_and_names(input in target_input()) {
            let got = make_target(&input);
            match (&got, target_rule(&input)) {
                (Ok(_), Ok(())) => {}
                (Err(got), Err(want)) => prop_assert_eq!(got, &want),
                (got, want) => prop_assert!(false, "{:?}: got {:?}, want {:?}", input, got, want),
            }
        }

        #[test]
        fn faults_are_built_exactly_when_probability_limit_delay_and_target_fit_the_kind(
            target in target(),
            kind in kind(),
            probability in prop_oneof![2 => 0.0..=1.0_f64, 1 => real()],
            limit in proptest::option::of(count_u64()),
            seed in proptest::option::of(any::<u64>()),
        ) {
            let mut builder = Fault::builder(target.clone(), kind);
            builder.probability(probability);
            if let Some(limit) = limit {
                builder.limit(limit);
            }
            if let Some(seed) = seed {
                builder.seed(seed);
            }
            let got = builder.build();
            match (got, fault_rule(&target, kind, probability, limit)) {
                (Ok(fault), Ok(())) => {
                    // Rounded to the nearest part per million.
                    prop_assert_eq!(fault.probability(), (probability * 1e6).round() / 1e6);
                    prop_assert_eq!((fault.limit(), fault.seed(), fault.kind()), (limit, seed, kind));
                    // And written as the grammar reads it back.
                    let set = FaultSet::from(fault);
                    prop_assert_eq!(FaultSet::parse(&set.to_string()), Ok(set.clone()), "{}", set);
                }
                (Err(got), Err(want)) => prop_assert!(same(&got, &want), "got {:?}, want {:?}", got, want),
                (got, want) => prop_assert!(false, "got {:?}, want {:?}", got, want),
            }
        }

        #[test]
        fn any_text_reads_as_faults_or_as_an_error_at_a_char_boundary_showing_what_was_found(spec in spec_text()) {
            match FaultSet::parse(&spec) {
                Ok(set) => {
                    let printed = set.to_string();
                    prop_assert_eq!(FaultSet::parse(&printed), Ok(set.clone()), "{:?} printed as {:?}", spec, printed);
                    // What reads is installed, but an empty set.
                    match runtime().inject(set.clone()) {
                        Ok(injection) => {
                            prop_assert!(!set.is_empty());
                            prop_assert_eq!(injection.remove().len(), set.len());
                        }
                        Err(err) => prop_assert!(set.is_empty() && err == InjectError::Empty, "{}", err),
                    }
                }
                Err(err) => {
                    prop_assert!(err.position <= spec.len(), "{:?}: {:?}", spec, err);
                    prop_assert!(spec.is_char_boundary(err.position), "{:?}: {:?}", spec, err);
                    let found: String = spec[err.position..].chars().take(16).collect();
                    prop_assert_eq!(&err.found, &found, "{:?}", spec);
                    prop_assert!(!err.expected.is_empty());
                    let opening = format!("chaos spec, byte {}: expected ", err.position);
                    prop_assert!(err.to_string().starts_with(&opening), "{}", err);
                }
            }
        }
    }

    /// Arbitrary text, and text made of the grammar's own tokens (which
    /// reaches past the first token).
    fn spec_text() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("/a"),
            Just("/**"),
            Just("gateway"),
            Just(" -> "),
            Just(":"),
            Just(";"),
            Just(" "),
            Just("30"),
            Just("30.5"),
            Just("100.00001"),
            Just("%"),
            Just("latency("),
            Just("delay("),
            Just("stall("),
            Just("slow_flush("),
            Just("timer_skew("),
            Just(")"),
            Just("uniform "),
            Just(".."),
            Just("exp "),
            Just("fixed "),
            Just("5"),
            Just("ms"),
            Just("ns"),
            Just("s"),
            Just("us"),
            Just("error"),
            Just("panic"),
            Just("drop"),
            Just("full"),
            Just("duplicate"),
            Just("write_error"),
            Just("flush_error"),
            Just("type(app::Worker)"),
            Just("kind(Reserve)"),
            Just("type("),
            Just("kind("),
            Just("limit="),
            Just("seed="),
            Just("0"),
            Just("18446744073709551616"),
            Just("18446744073709551615s"),
            Just("é"),
            Just("\u{1F600}"),
            Just("\t"),
            Just("\n"),
        ];
        prop_oneof![
            1 => any::<String>(),
            1 => "\\PC{0,48}",
            3 => proptest::collection::vec(token, 0..20).prop_map(|tokens| tokens.concat()),
        ]
    }

    #[test]
    fn a_spec_error_names_its_byte_and_what_it_found() {
        let err = FaultSet::parse("/a: 30% latency(5 weeks)").unwrap_err();
        assert_eq!(
            (err.position, err.expected, err.found.as_str()),
            (17, "a unit: ns, us, ms or s", " weeks)")
        );
        let err = FaultSet::parse("/é: 101% drop").unwrap_err();
        assert_eq!((err.position, err.found.as_str()), (5, "101% drop"));
        assert_eq!(err.cause, Some(cellrt::SpecCause::Fault(FaultError::Probability { value: 1.01 })));
    }

    #[derive(Clone, Debug)]
    enum Check {
        P99(Duration),
        ErrorShare(f64),
        Throughput(f64),
        Custom,
    }

    #[derive(Clone, Debug)]
    struct ExperimentInput {
        name: String,
        faults: bool,
        hypothesis: Vec<Check>,
        radius: Vec<String>,
        control: Span,
        fault_phase: Span,
        recovery: Option<(Span, u32)>,
        tick: Duration,
    }

    fn span() -> impl Strategy<Value = Span> {
        prop_oneof![
            3 => prop_oneof![Just(Span::Messages(20)), Just(Span::For(Duration::from_millis(50)))],
            1 => prop_oneof![
                Just(Span::Messages(0)),
                Just(Span::For(Duration::ZERO)),
                Just(Span::Messages(u64::MAX)),
                Just(Span::For(Duration::MAX)),
            ],
            1 => duration().prop_map(Span::For),
        ]
    }

    fn check() -> impl Strategy<Value = Check> {
        prop_oneof![
            duration().prop_map(Check::P99),
            prop_oneof![2 => 0.0..=1.0_f64, 1 => real()].prop_map(Check::ErrorShare),
            prop_oneof![2 => 0.0..1e6_f64, 1 => real()].prop_map(Check::Throughput),
            Just(Check::Custom),
        ]
    }

    fn experiment_input() -> impl Strategy<Value = ExperimentInput> {
        (
            prop_oneof![4 => Just("inventory tolerates latency".to_owned()), 1 => text()],
            prop_oneof![5 => Just(true), 1 => Just(false)],
            proptest::collection::vec(check(), 0..3),
            prop_oneof![4 => Just(vec!["/echo".to_owned()]), 1 => proptest::collection::vec(glob(), 0..3)],
            (span(), span()),
            proptest::option::of((span(), prop_oneof![3 => Just(3_u32), 1 => count_u32()])),
            duration(),
        )
            .prop_map(
                |(name, faults, hypothesis, radius, (control, fault_phase), recovery, tick)| {
                    ExperimentInput { name, faults, hypothesis, radius, control, fault_phase, recovery, tick }
                },
            )
    }

    fn predicate(check: &Check) -> Predicate {
        let echo: CellPath = "/echo".parse().unwrap();
        match *check {
            Check::P99(limit) => Predicate::p99_at_most(&echo, limit),
            Check::ErrorShare(share) => Predicate::error_share_at_most(&echo, share),
            Check::Throughput(per_second) => Predicate::throughput_at_least(&echo, per_second),
            Check::Custom => Predicate::custom("always", |_| true),
        }
    }

    fn is_empty(span: Span) -> bool {
        matches!(span, Span::Messages(0)) || span == Span::For(Duration::ZERO)
    }

    /// In order: a name that is not blank, a fault, a predicate, every
    /// built-in predicate's bound in range (a share in `0..=1`, a throughput
    /// finite and at least 0), a blast radius, every radius glob well
    /// formed, a control and a fault phase that are not empty, a recovery
    /// (when set) of a phase that is not empty and at least one window.
    fn experiment_rule(e: &ExperimentInput) -> Result<(), ExperimentBuildError> {
        if e.name.trim().is_empty() {
            return Err(ExperimentBuildError::BlankName);
        }
        if !e.faults {
            return Err(ExperimentBuildError::NoFault);
        }
        if e.hypothesis.is_empty() {
            return Err(ExperimentBuildError::NoHypothesis);
        }
        for check in &e.hypothesis {
            let refused = match *check {
                Check::ErrorShare(share) if !(0.0..=1.0).contains(&share) => Some(("share", share)),
                Check::Throughput(rate) if !(rate.is_finite() && rate >= 0.0) => Some(("per_second", rate)),
                _ => None,
            };
            if let Some((bound, value)) = refused {
                return Err(ExperimentBuildError::PredicateBound {
                    predicate: predicate(check).to_string(),
                    bound,
                    value,
                });
            }
        }
        if e.radius.is_empty() {
            return Err(ExperimentBuildError::NoBlastRadius);
        }
        for glob in &e.radius {
            glob_rule(glob).map_err(ExperimentBuildError::Radius)?;
        }
        if is_empty(e.control) {
            return Err(ExperimentBuildError::EmptyPhase { phase: "control" });
        }
        if is_empty(e.fault_phase) {
            return Err(ExperimentBuildError::EmptyPhase { phase: "fault" });
        }
        if let Some((window, windows)) = e.recovery {
            if is_empty(window) || windows == 0 {
                return Err(ExperimentBuildError::EmptyPhase { phase: "recovery" });
            }
        }
        Ok(())
    }

    /// A threadless runtime shared by the cases that need one: refusals
    /// happen before anything runs on it.
    fn runtime() -> &'static Runtime {
        static RUNTIME: OnceLock<Runtime> = OnceLock::new();
        RUNTIME.get_or_init(|| Runtime::builder().threadless(true).build().unwrap())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn experiments_are_built_exactly_when_named_with_faults_a_bounded_hypothesis_a_radius_and_phases_that_are_not_empty(
            e in experiment_input(),
        ) {
            let mut builder = Experiment::builder(&e.name);
            if e.faults {
                builder.faults(FaultSet::parse("/echo: latency(1ms)").unwrap());
            }
            for check in &e.hypothesis {
                builder.hypothesis(predicate(check));
            }
            for glob in &e.radius {
                builder.blast_radius(glob);
            }
            builder.control(e.control).fault_phase(e.fault_phase).tick(e.tick);
            if let Some((window, windows)) = e.recovery {
                builder.recovery(window, windows);
            }
            match (builder.build(), experiment_rule(&e)) {
                (Ok(experiment), Ok(())) => {
                    prop_assert_eq!(experiment.name(), e.name.as_str());
                    // Valid by construction: a tick under 1 ms is taken as 1 ms.
                    prop_assert_eq!(experiment.tick(), e.tick.max(Duration::from_millis(1)));
                }
                (Err(got), Err(want)) => prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", e, got, want),
                (got, want) => prop_assert!(false, "{:?}: got {:?}, want {:?}", e, got.map(|_| ()), want),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_ramp_refuses_its_first_intensity_outside_zero_to_one_before_any_phase_runs(
            valid in proptest::collection::vec(0.0..=1.0_f64, 0..3),
            bad in real().prop_filter("outside 0..=1", |i| !(0.0..=1.0).contains(i)),
            after in proptest::collection::vec(real(), 0..3),
        ) {
            let experiment = Experiment::builder("ramp")
                .faults(FaultSet::parse("/echo: error").unwrap())
                .hypothesis(Predicate::custom("always", |_| true))
                .blast_radius("/echo")
                .build()
                .unwrap();
            let intensities: Vec<f64> = valid.iter().copied().chain([bad]).chain(after).collect();
            let mut loads = 0;
            let got = experiment.ramp(runtime(), &intensities, || loads += 1);
            let want: Result<(), _> = Err(ExperimentError::Intensity { value: bad.to_string() });
            let got = got.map(|_| ());
            prop_assert!(same(&got, &want), "{:?}: got {:?}", intensities, got);
            prop_assert_eq!(loads, 0);
        }
    }
}

/// The recomposition engine's settings and what an application registers.
mod recomposition {
    use std::time::Duration;

    use cellrt::{Mode, Recomposable, RecomposableError, RecomposeConfig, RecomposeConfigError, MAX_POOL};
    use proptest::prelude::*;

    use super::values::{count_u32, count_usize, duration, mostly, same, share, text};
    use super::{Job, Worker};

    #[derive(Clone, Debug)]
    struct Settings {
        mode: Mode,
        sustain: u32,
        baseline_windows: u32,
        evaluation_windows: u32,
        cooldown_windows: u32,
        max_changes_share: f64,
        tolerance: f64,
        evidence_lookback: Duration,
        isolate_share: f64,
        strain_queue_delay: Duration,
        strain_saturation: f64,
        split_saturation: f64,
        split_into: usize,
        merge_saturation: f64,
        merge_windows: u32,
        shed_watermark: f64,
        canary_share: f64,
    }

    fn settings() -> impl Strategy<Value = Settings> {
        let windows = || prop_oneof![6 => 1..10_u32, 1 => count_u32()];
        let fraction = || mostly(prop_oneof![Just(1.0), 0.01..1.0_f64]);
        (
            (
                prop_oneof![Just(Mode::Auto), Just(Mode::Propose), Just(Mode::Off)],
                windows(),
                windows(),
                windows(),
                count_u32(),
            ),
            (fraction(), mostly(0.0..2.0_f64), duration(), fraction(), duration(), fraction()),
            (fraction(), prop_oneof![6 => 2..8_usize, 1 => count_usize()], mostly(0.0..0.5_f64), windows()),
            (fraction(), mostly(0.01..0.99_f64)),
        )
            .prop_map(|(a, b, c, d)| Settings {
                mode: a.0,
                sustain: a.1,
                baseline_windows: a.2,
                evaluation_windows: a.3,
                cooldown_windows: a.4,
                max_changes_share: b.0,
                tolerance: b.1,
                evidence_lookback: b.2,
                isolate_share: b.3,
                strain_queue_delay: b.4,
                strain_saturation: b.5,
                split_saturation: c.0,
                split_into: c.1,
                merge_saturation: c.2,
                merge_windows: c.3,
                shed_watermark: d.0,
                canary_share: d.1,
            })
    }

    fn config(s: &Settings) -> RecomposeConfig {
        RecomposeConfig::default()
            .mode(s.mode)
            .sustain(s.sustain)
            .baseline_windows(s.baseline_windows)
            .evaluation_windows(s.evaluation_windows)
            .cooldown_windows(s.cooldown_windows)
            .max_changes_share(s.max_changes_share)
            .tolerance(s.tolerance)
            .evidence_lookback(s.evidence_lookback)
            .isolate_share(s.isolate_share)
            .strain_queue_delay(s.strain_queue_delay)
            .strain_saturation(s.strain_saturation)
            .split_saturation(s.split_saturation)
            .split_into(s.split_into)
            .merge_saturation(s.merge_saturation)
            .merge_windows(s.merge_windows)
            .shed_watermark(s.shed_watermark)
            .canary_share(s.canary_share)
    }

    /// In the order of the fields: window counts at least 1, shares and
    /// saturations in `(0, 1]`, a tolerance finite and at least 0, pools of
    /// at least 2, a merge saturation in `[0, 1)` and below the split
    /// saturation, a canary share in `(0, 1)`. The mode, the cooldown and
    /// the durations take any value.
    fn rule(s: &Settings) -> Result<(), RecomposeConfigError> {
        let windows = |field, value: u32| {
            if value == 0 {
                Err(RecomposeConfigError::ZeroWindows { field })
            } else {
                Ok(())
            }
        };
        let fraction = |field, value: f64, valid: bool| {
            if valid {
                Ok(())
            } else {
                Err(RecomposeConfigError::Fraction { field, value })
            }
        };
        windows("sustain", s.sustain)?;
        windows("baseline_windows", s.baseline_windows)?;
        windows("evaluation_windows", s.evaluation_windows)?;
        fraction("max_changes_share", s.max_changes_share, share(s.max_changes_share))?;
        if !(s.tolerance.is_finite() && s.tolerance >= 0.0) {
            return Err(RecomposeConfigError::Tolerance { value: s.tolerance });
        }
        fraction("isolate_share", s.isolate_share, share(s.isolate_share))?;
        fraction("strain_saturation", s.strain_saturation, share(s.strain_saturation))?;
        fraction("split_saturation", s.split_saturation, share(s.split_saturation))?;
        if s.split_into < 2 {
            return Err(RecomposeConfigError::SplitInto { value: s.split_into });
        }
        fraction("merge_saturation", s.merge_saturation, (0.0..1.0).contains(&s.merge_saturation))?;
        if s.merge_saturation >= s.split_saturation {
            return Err(RecomposeConfigError::MergeNotBelowSplit {
                merge_saturation: s.merge_saturation,
                split_saturation: s.split_saturation,
            });
        }
        windows("merge_windows", s.merge_windows)?;
        fraction("shed_watermark", s.shed_watermark, share(s.shed_watermark))?;
        fraction("canary_share", s.canary_share, s.canary_share > 0.0 && s.canary_share < 1.0)?;
        Ok(())
    }

    #[derive(Clone, Debug)]
    enum Splits {
        No,
        Stateless,
        Keyed,
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn recompose_configs_are_accepted_exactly_when_every_threshold_is_in_range_and_merge_is_below_split(
            s in settings(),
        ) {
            let got = config(&s).validate();
            let want = rule(&s);
            prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", s, got, want);
            if let Err(err) = got {
                // The error names the setting, in its text too.
                prop_assert!(err.to_string().starts_with(err.field()), "{}", err);
            }
        }

        #[test]
        fn registrations_are_accepted_exactly_when_variants_are_named_once_and_a_splittable_pool_can_split(
            variants in proptest::collection::vec(prop_oneof![3 => Just("rules".to_owned()), 3 => text()], 0..4),
            splits in prop_oneof![Just(Splits::No), Just(Splits::Stateless), Just(Splits::Keyed)],
            max_pool in prop_oneof![Just(0_usize), Just(1), Just(2), Just(4), Just(MAX_POOL), Just(MAX_POOL + 1), Just(usize::MAX)],
            sheddable in proptest::collection::vec(text(), 0..2),
        ) {
            let mut spec = Recomposable::new(|| Worker).max_pool(max_pool);
            for name in &variants {
                spec = spec.variant(name, || Worker);
            }
            for kind in &sheddable {
                spec = spec.sheddable(kind);
            }
            spec = match splits {
                Splits::No => spec,
                Splits::Stateless => spec.stateless(),
                Splits::Keyed => spec.keyed(|job: &Job| match job {
                    Job::Echo(n, _) => u64::from(*n),
                    Job::Fail => 0,
                }),
            };
            // A variant neither empty nor "base", each once; max_pool at
            // most MAX_POOL, and at least 2 for a stateless or keyed cell. Sheddable kinds are names of
            // message kinds: any text, matched as is.
            let mut want = Ok(());
            for (i, name) in variants.iter().enumerate() {
                if name.is_empty() || name == "base" {
                    want = Err(RecomposableError::VariantName { name: name.clone() });
                    break;
                }
                if variants[..i].contains(name) {
                    want = Err(RecomposableError::DuplicateVariant { name: name.clone() });
                    break;
                }
            }
            let least = if matches!(splits, Splits::No) { 0 } else { 2 };
            if want.is_ok() && !(least..=MAX_POOL).contains(&max_pool) {
                want = Err(RecomposableError::MaxPool { value: max_pool });
            }
            prop_assert_eq!(spec.validate(), want);
        }
    }

    #[test]
    fn a_tolerance_of_any_finite_non_negative_size_is_accepted() {
        for tolerance in [0.0, f64::MIN_POSITIVE, 1.0, 1e300] {
            assert_eq!(RecomposeConfig::default().tolerance(tolerance).validate(), Ok(()));
        }
        assert_eq!(
            RecomposeConfig::default().tolerance(-0.5).validate(),
            Err(RecomposeConfigError::Tolerance { value: -0.5 })
        );
    }
}

/// Flow control: shedding, breakers, retries and their budgets and
/// backoffs, routers; and the bulkheads (dispatchers, groups).
mod flow {
    use std::sync::OnceLock;
    use std::time::Duration;

    use cellrt::{
        Addr, BackoffError, BreakerConfig, BreakerConfigError, BuildError, CellConfig, CircuitBreaker,
        ExponentialBackoff, Jitter, Retry, RetryBudget, RetryBudgetError, RetryConfigError, Router,
        RouterError, Routing, Runtime, Shedding, SheddingError, SlidingWindow, MAX_CLASS,
    };
    use proptest::prelude::*;

    use super::values::{count_u32, duration, mostly, name_rule, same, text};
    use super::{Job, Worker};

    /// Applies `watermarks` in turn, as the rule says: a class at most
    /// `MAX_CLASS`, a fraction in `(0, 1]`, and no lower class keeping a
    /// higher watermark than a higher class. The first refused call is the
    /// error.
    fn shedding_rule(watermarks: &[(u8, f64)]) -> Result<(), SheddingError> {
        let mut set: Vec<Option<f64>> = vec![None; usize::from(MAX_CLASS) + 1];
        for &(class, fraction) in watermarks {
            if class > MAX_CLASS {
                return Err(SheddingError::Class(class));
            }
            if !(fraction > 0.0 && fraction <= 1.0) {
                return Err(SheddingError::Watermark { class, fraction });
            }
            let at = usize::from(class);
            if let Some(lower) = (0..at).find(|&c| set[c].is_some_and(|w| w > fraction)) {
                return Err(SheddingError::Inverted { lower: lower as u8, higher: class });
            }
            if let Some(higher) = (at + 1..set.len()).find(|&c| set[c].is_some_and(|w| w < fraction)) {
                return Err(SheddingError::Inverted { lower: class, higher: higher as u8 });
            }
            set[at] = Some(fraction);
        }
        Ok(())
    }

    fn breaker_config() -> impl Strategy<Value = BreakerConfig> {
        let percent = || mostly(prop_oneof![Just(100.0), 0.01..100.0_f64]);
        let positive = || prop_oneof![4 => 1..100_u32, 1 => count_u32()];
        (
            percent(),
            percent(),
            duration(),
            prop_oneof![positive().prop_map(SlidingWindow::Count), duration().prop_map(SlidingWindow::Time)],
            positive(),
            duration(),
            positive(),
        )
            .prop_map(|(failure, slow, slow_call, window, minimum, wait, half_open)| {
                BreakerConfig::default()
                    .failure_rate_threshold(failure)
                    .slow_call_rate_threshold(slow)
                    .slow_call_duration(slow_call)
                    .sliding_window(window)
                    .minimum_calls(minimum)
                    .wait_in_open(wait)
                    .permitted_in_half_open(half_open)
            })
    }

    /// Rate thresholds in `(0, 100]` percent (not NaN), a window of at
    /// least 1 call or above zero time, at least 1 minimum call and 1 call
    /// in half-open; any durations.
    fn breaker_rule(c: &BreakerConfig) -> Result<(), BreakerConfigError> {
        let percent = |v: f64| v > 0.0 && v <= 100.0;
        if !percent(c.failure_rate_threshold) {
            return Err(BreakerConfigError::FailureRateThreshold(c.failure_rate_threshold));
        }
        if !percent(c.slow_call_rate_threshold) {
            return Err(BreakerConfigError::SlowCallRateThreshold(c.slow_call_rate_threshold));
        }
        match c.sliding_window {
            SlidingWindow::Count(0) => return Err(BreakerConfigError::ZeroWindow),
            SlidingWindow::Time(d) if d.is_zero() => return Err(BreakerConfigError::ZeroWindow),
            _ => {}
        }
        if c.minimum_calls == 0 {
            return Err(BreakerConfigError::ZeroMinimumCalls);
        }
        if c.permitted_in_half_open == 0 {
            return Err(BreakerConfigError::ZeroPermittedInHalfOpen);
        }
        Ok(())
    }

    /// A runtime with three cells to route to; refusals happen before the
    /// router exists.
    fn runtime() -> &'static (Runtime, [Addr<Job>; 3]) {
        static RUNTIME: OnceLock<(Runtime, [Addr<Job>; 3])> = OnceLock::new();
        RUNTIME.get_or_init(|| {
            let runtime = Runtime::builder().threadless(true).build().unwrap();
            let cells =
                ["m0", "m1", "m2"].map(|name| runtime.spawn_with(CellConfig::named(name), Worker).unwrap());
            (runtime, cells)
        })
    }

    fn routing(strategy: u8) -> Routing<Job> {
        match strategy {
            0 => Routing::round_robin(),
            1 => Routing::least_loaded(),
            _ => Routing::consistent_hash(|job: &Job| matches!(job, Job::Fail)),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn shedding_watermarks_are_set_exactly_when_the_class_exists_the_fraction_is_a_share_and_lower_classes_keep_less_room(
            watermarks in proptest::collection::vec(
                (prop_oneof![6 => 0..=MAX_CLASS, 1 => any::<u8>()], mostly(prop_oneof![Just(1.0), 0.01..1.0_f64])),
                0..5,
            ),
        ) {
            let mut policy = Ok(Shedding::new(|job: &Job| u8::from(matches!(job, Job::Fail))));
            for &(class, fraction) in &watermarks {
                policy = policy.and_then(|p| p.watermark(class, fraction));
            }
            let got = policy.map(|_| ());
            let want = shedding_rule(&watermarks);
            prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", watermarks, got, want);
        }

        #[test]
        fn breaker_configs_are_accepted_exactly_when_thresholds_are_percentages_and_every_count_is_positive(
            config in breaker_config(),
            name in text(),
        ) {
            let got = config.validate();
            let want = breaker_rule(&config);
            prop_assert!(same(&got, &want), "{:?}: got {:?}, want {:?}", config, got, want);
            // The config decides a breaker on its own; a runtime's breaker
            // is named too, by the name rule.
            let alone = CircuitBreaker::new(name.clone(), config.clone());
            prop_assert!(same(&alone.map(|_| ()), &want));
            let named = runtime().0.breaker(&name, config);
            let want = want.and_then(|()| name_rule(&name).map_err(BreakerConfigError::InvalidName));
            prop_assert!(same(&named.map(|_| ()), &want), "{:?}", name);
        }

        #[test]
        fn backoffs_are_built_exactly_when_the_initial_delay_is_positive_the_max_covers_it_and_the_multiplier_is_at_least_one(
            initial in duration(),
            max in duration(),
            multiplier in mostly(1.0..10.0_f64),
            attempt in any::<u32>(),
            seed in any::<u64>(),
        ) {
            let got = ExponentialBackoff::new(initial, max).and_then(|b| b.multiplier(multiplier));
            let want = if initial.is_zero() {
                Err(BackoffError::ZeroInitial)
            } else if max < initial {
                Err(BackoffError::MaxBelowInitial { initial, max })
            } else if !(multiplier.is_finite() && multiplier >= 1.0) {
                Err(BackoffError::InvalidMultiplier { multiplier })
            } else {
                Ok(())
            };
            match (got, want) {
                (Ok(backoff), Ok(())) => {
                    // Every delay of a valid backoff is computed without
                    // overflow and stays within its ceiling and the max.
                    let ceiling = backoff.ceiling(attempt);
                    prop_assert!(ceiling <= max);
                    prop_assert_eq!(backoff.ceiling(0), Duration::ZERO);
                    prop_assert_eq!(backoff.ceiling(1), initial);
                    for jitter in [Jitter::None, Jitter::Full, Jitter::Equal] {
                        let delay = backoff.clone().jitter(jitter).delay_with(attempt, &mut fastrand::Rng::with_seed(seed));
                        prop_assert!(delay <= ceiling, "{:?}: {:?} > {:?}", jitter, delay, ceiling);
                    }
                }
                (Err(got), Err(want)) => prop_assert!(same(&got, &want), "got {:?}, want {:?}", got, want),
                (got, want) => prop_assert!(false, "got {:?}, want {:?}", got, want),
            }
        }

        #[test]
        fn retry_budgets_are_made_exactly_when_the_window_is_1ms_to_60s_and_the_ratio_is_0_to_1000(
            ttl in prop_oneof![1 => duration(), 2 => (1_000_000..=60_000_000_000_u64).prop_map(Duration::from_nanos)],
            min_per_sec in count_u32(),
            ratio in mostly(0.0..=1000.0_f64),
            max_attempts in count_u32(),
        ) {
            let budget = RetryBudget::new(ttl, min_per_sec, ratio);
            let want = if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&ttl) {
                Err(RetryBudgetError::TtlOutOfRange { ttl })
            } else if !(ratio.is_finite() && (0.0..=1000.0).contains(&ratio)) {
                Err(RetryBudgetError::InvalidRetryRatio { ratio })
            } else {
                Ok(())
            };
            match (budget, want) {
                (Ok(budget), Ok(())) => {
                    prop_assert_eq!((budget.ttl(), budget.min_per_sec(), budget.retry_ratio()), (ttl, min_per_sec, ratio));
                    let backoff = ExponentialBackoff::new(Duration::from_millis(1), Duration::from_secs(1)).unwrap();
                    // At least one attempt: the first counts.
                    match Retry::new(backoff, budget, max_attempts) {
                        Ok(retry) => prop_assert!(max_attempts >= 1 && retry.max_attempts() == max_attempts),
                        Err(err) => prop_assert!(max_attempts == 0 && err == RetryConfigError::ZeroMaxAttempts),
                    }
                }
                (Err(got), Err(want)) => prop_assert!(same(&got, &want), "got {:?}, want {:?}", got, want),
                (got, want) => prop_assert!(false, "got {:?}, want {:?}", got.map(|_| ()), want),
            }
        }

        #[test]
        fn routers_are_made_exactly_with_a_valid_name_and_distinct_members(
            name in text(),
            members in proptest::collection::vec(0..3_usize, 0..5),
            strategy in 0..3_u8,
        ) {
            let (runtime, cells) = runtime();
            let addrs: Vec<Addr<Job>> = members.iter().map(|&i| cells[i].clone()).collect();
            let got: Result<Router<Job>, RouterError> = runtime.router(&name, routing(strategy), addrs);
            // The name first, then at least one member, each once.
            let duplicate = members.iter().enumerate().find(|(i, m)| members[..*i].contains(m)).map(|(_, &m)| m);
            let want = match (name_rule(&name), members.is_empty(), duplicate) {
                (Err(reason), _, _) => Err(RouterError::InvalidName(reason)),
                (Ok(()), true, _) => Err(RouterError::EmptyPool),
                (Ok(()), false, Some(m)) => Err(RouterError::DuplicateMember { path: cells[m].path().clone() }),
                (Ok(()), false, None) => Ok(()),
            };
            prop_assert_eq!(got.map(|router| router.members().len()), want.map(|()| members.len()));
        }
    }

    #[derive(Clone, Debug)]
    enum Bulkhead {
        Dispatcher(String, usize),
        Group(String, usize),
    }

    fn bulkhead() -> impl Strategy<Value = Bulkhead> {
        let threads = prop_oneof![4 => 1..3_usize, 1 => Just(0), 1 => Just(usize::MAX)];
        let name = prop_oneof![3 => prop_oneof![Just("io".to_owned()), Just("db".to_owned())], 1 => text()];
        prop_oneof![
            (name.clone(), threads.clone()).prop_map(|(name, n)| Bulkhead::Dispatcher(name, n)),
            (name, threads).prop_map(|(name, n)| Bulkhead::Group(name, n)),
        ]
    }

    /// Dispatchers first, in order: a valid name, not `"default"`, not
    /// defined before; on a threadless runtime their thread counts are
    /// ignored. Then groups, in order: a valid name, not defined before, a
    /// limit of at least 1.
    fn bulkhead_rule(bulkheads: &[Bulkhead]) -> Result<(), BuildError> {
        let mut dispatchers = vec!["default".to_owned()];
        for bulkhead in bulkheads {
            if let Bulkhead::Dispatcher(name, _) = bulkhead {
                if let Err(reason) = name_rule(name) {
                    return Err(BuildError::InvalidDispatcherName { name: name.clone(), reason });
                }
                if name == "default" {
                    return Err(BuildError::ReservedDispatcherName { name: name.clone() });
                }
                if dispatchers.contains(name) {
                    return Err(BuildError::DuplicateDispatcher { name: name.clone() });
                }
                dispatchers.push(name.clone());
            }
        }
        let mut groups = Vec::new();
        for bulkhead in bulkheads {
            if let Bulkhead::Group(name, limit) = bulkhead {
                if let Err(reason) = name_rule(name) {
                    return Err(BuildError::InvalidGroupName { name: name.clone(), reason });
                }
                if groups.contains(name) {
                    return Err(BuildError::DuplicateGroup { name: name.clone() });
                }
                if *limit == 0 {
                    return Err(BuildError::ZeroGroupLimit { group: name.clone() });
                }
                groups.push(name.clone());
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn bulkheads_are_accepted_exactly_with_valid_unique_names_and_a_group_limit_of_at_least_one(
            bulkheads in proptest::collection::vec(bulkhead(), 0..4),
        ) {
            let mut builder = Runtime::builder();
            builder.threadless(true);
            for bulkhead in &bulkheads {
                match bulkhead {
                    Bulkhead::Dispatcher(name, threads) => builder.dispatcher(name.clone(), *threads),
                    Bulkhead::Group(name, limit) => builder.group(name.clone(), *limit),
                };
            }
            match (builder.build(), bulkhead_rule(&bulkheads)) {
                (Ok(runtime), Ok(())) => {
                    for bulkhead in &bulkheads {
                        if let Bulkhead::Group(name, _) = bulkhead {
                            let cell = runtime.spawn_with(CellConfig::new().group(name.clone()), Worker);
                            prop_assert!(cell.is_ok(), "{:?}", name);
                        }
                    }
                    runtime.shutdown(Duration::ZERO);
                }
                (Err(got), Err(want)) => prop_assert_eq!(got, want),
                (got, want) => prop_assert!(false, "{:?}: got {:?}, want {:?}", bulkheads, got.map(|_| ()), want),
            }
        }
    }
}

/// Paths read from text (`CellPath`'s `FromStr`: journal queries,
/// predicates, stored data).
mod paths {
    use cellrt::{CellPath, NameError};
    use proptest::prelude::*;

    use super::values::{name_rule, text};

    /// `/`, then names separated by `/`, each by the name rule (a refused
    /// character's position counted from the start of the text), or an
    /// unnamed cell's `#<id>`, or first `#breaker`.
    fn path_rule(text: &str) -> Result<(), NameError> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(NameError::NotAbsolute);
        };
        if rest.is_empty() {
            return Ok(());
        }
        let mut start = 1;
        for (i, name) in rest.split('/').enumerate() {
            let reserved = name.strip_prefix('#');
            let unnamed = reserved.is_some_and(|id| id.parse::<u64>().is_ok());
            let breakers = i == 0 && reserved == Some("breaker");
            if !(unnamed || breakers) {
                name_rule(name).map_err(|err| match err {
                    NameError::InvalidChar { found, position } => {
                        NameError::InvalidChar { found, position: start + position }
                    }
                    other => other,
                })?;
            }
            start += name.len() + 1;
        }
        Ok(())
    }

    fn path_text() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            4 => prop_oneof![Just("orders"), Just("é"), Just("#3"), Just("#breaker"), Just("#x")].prop_map(str::to_owned),
            1 => text(),
        ];
        prop_oneof![
            1 => text(),
            3 => proptest::collection::vec(segment, 0..4).prop_map(|names| format!("/{}", names.join("/"))),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_text_parses_as_a_path_or_names_the_rule_and_the_byte_it_broke(text in path_text()) {
            let got = text.parse::<CellPath>();
            match (got, path_rule(&text)) {
                (Ok(path), Ok(())) => {
                    if !text.contains('#') {
                        prop_assert_eq!(path.as_str(), text.as_str());
                    }
                }
                (Err(got), Err(want)) => {
                    prop_assert_eq!(&got, &want, "{:?}", text);
                    if let NameError::InvalidChar { found, position } = got {
                        prop_assert!(text.is_char_boundary(position) && text[position..].starts_with(found));
                    }
                }
                (got, want) => prop_assert!(false, "{:?}: got {:?}, want {:?}", text, got, want),
            }
        }
    }
}
