//! The valid extremes of the observation and recomposition settings, run:
//! windows of a nanosecond and of `Duration::MAX`, counts of 1 and of
//! `u32::MAX`, the smallest and largest floats each range admits. A runtime
//! built with them analyses its cells, raises burn alerts, triages and
//! recomposes without a panic on any thread, its own included.
//!
//! A panic on the runtime's own threads (the timer, the analysis window)
//! reaches no caller; a panic hook counts them. The hook is process-wide,
//! so this test has its own file, and installs it before any runtime does.

#![cfg(all(feature = "observe", feature = "storage"))]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cellrt::{
    BurnAlert, BurnWindows, Cell, CellConfig, CellError, Context, DecayConfig, JournalConfig, Mode,
    NoiseFloor, Objective, ObservationConfig, Recomposable, RecomposeConfig, Recomposer, Reply, Runtime,
    StorageConfig, TriageConfig, MAX_POOL, MAX_SHORT_WINDOWS,
};
use common::{eventually, PATIENCE};

/// Answers, or takes a note; never fails (an unsupervised cell that fails
/// stays stopped).
struct Worker;

enum Job {
    Echo(u32, Reply<u32>),
    Note,
}

impl Cell for Worker {
    type Message = Job;

    fn message_kind(job: &Job) -> &'static str {
        match job {
            Job::Echo(..) => "echo",
            Job::Note => "note",
        }
    }

    fn handle(&mut self, _: &mut Context<Self>, job: Job) -> Result<(), CellError> {
        match job {
            Job::Echo(n, reply) => {
                let _ = reply.send(n);
                Ok(())
            }
            Job::Note => Ok(()),
        }
    }
}

#[test]
fn the_valid_extremes_of_observation_and_recomposition_run_without_a_panic() {
    let panics = Arc::new(AtomicUsize::new(0));
    let counted = panics.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        counted.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));

    let (ns, max) = (Duration::from_nanos, Duration::MAX);
    let burns = [
        BurnWindows::new()
            .window(BurnAlert::Fast, ns(2), ns(1))
            .window(BurnAlert::Slow, ns(3), ns(1))
            .window(BurnAlert::Ticket, ns(4), ns(1)),
        BurnWindows::new()
            .window(BurnAlert::Fast, Duration::from_secs(u64::MAX / 4), ns(1))
            .window(BurnAlert::Slow, Duration::from_secs(u64::MAX / 2), ns(1))
            .window(BurnAlert::Ticket, max, max - ns(1))
            .factor(BurnAlert::Fast, f64::MIN_POSITIVE)
            .factor(BurnAlert::Ticket, f64::MAX),
    ];
    let triages = [
        TriageConfig::default()
            .dependency_window(max)
            .change_window(max)
            .storm_window(max)
            .debt_age(max)
            .storm_restarts(2)
            .debt_recurrences(1)
            .debt_rising_windows(1),
        TriageConfig::default()
            .dependency_window(ns(1))
            .change_window(ns(1))
            .storm_window(ns(1))
            .debt_age(ns(1))
            .storm_restarts(u32::MAX)
            .debt_recurrences(u64::MAX)
            .debt_rising_windows(u32::MAX),
    ];
    let decays = [
        DecayConfig::default()
            .warmup(1)
            .short_windows(1)
            .baseline_alpha(1.0)
            .z_low(0.0)
            .z_high(f64::MIN_POSITIVE)
            .drift_windows(1)
            .threshold(f64::MIN_POSITIVE),
        DecayConfig::default()
            .warmup(u32::MAX)
            .short_windows(MAX_SHORT_WINDOWS)
            .baseline_alpha(f64::MIN_POSITIVE)
            .z_low(f64::MAX / 2.0)
            .z_high(f64::MAX)
            .drift_windows(u32::MAX)
            .threshold(1.0)
            .clear(f64::MIN_POSITIVE)
            .cost_floor(NoiseFloor { relative: f64::MAX, absolute: f64::MAX })
            .rate_floor(NoiseFloor { relative: 0.0, absolute: f64::MIN_POSITIVE }),
    ];
    let journals = [
        JournalConfig::default().capacity(1).persisted_capacity(1),
        JournalConfig::default().capacity(usize::MAX).persisted_capacity(usize::MAX),
    ];
    // Thresholds as low as they go, guards as long as they go: every rule
    // holds at the first window with traffic.
    let recompose = RecomposeConfig::default()
        .mode(Mode::Auto)
        .sustain(1)
        .baseline_windows(u32::MAX)
        .evaluation_windows(u32::MAX)
        .cooldown_windows(u32::MAX)
        .evidence_lookback(max)
        .strain_queue_delay(Duration::ZERO)
        .strain_saturation(f64::MIN_POSITIVE)
        .split_saturation(f64::MIN_POSITIVE)
        .merge_saturation(0.0)
        .split_into(usize::MAX)
        .isolate_share(f64::MIN_POSITIVE)
        .max_changes_share(1.0)
        .tolerance(f64::MAX)
        .canary_share(f64::MIN_POSITIVE)
        .shed_watermark(f64::MIN_POSITIVE);

    for (case, ((burn, triage), decay)) in
        burns.iter().flat_map(|b| triages.iter().map(move |t| (b, t))).zip(decays.iter().cycle()).enumerate()
    {
        let observation = ObservationConfig::default()
            .window(Duration::from_millis(1))
            .sample_every(1)
            .burn_windows(burn.clone())
            .triage(triage.clone())
            .decay(decay.clone())
            .journal(journals[case % 2].clone());
        let runtime = Runtime::builder()
            .worker_threads(1)
            .quiet_panics(true)
            .observation(observation)
            .storage(StorageConfig::in_memory())
            .build()
            .unwrap();
        let engine = Recomposer::new(&runtime, recompose.clone()).unwrap();
        let cell = runtime.spawn_with(CellConfig::named("cell").capacity(2), Worker).unwrap();
        let spec = Recomposable::new(|| Worker)
            .variant("v2", || Worker)
            .stateless()
            .max_pool(MAX_POOL)
            .sheddable("note");
        engine.manage(&cell, spec).unwrap();
        runtime.set_objective(cell.path(), Some(Objective::latency(ns(1), 0.999_999).unwrap()));
        let mut n = 0;
        assert!(
            eventually(|| {
                n += 1;
                let _ = cell.try_send(Job::Note);
                if let Ok(pending) = cell.ask(|reply| Job::Echo(n, reply)) {
                    let _ = pending.wait(Duration::from_millis(50));
                }
                !engine.findings().is_empty()
            }),
            "case {case}: the engine found nothing"
        );
        // Recomposition may have moved the cell (a pool, an isolated kind):
        // the snapshot shows what serves now.
        assert!(!runtime.snapshot().cells.is_empty(), "case {case}");
        runtime.shutdown(PATIENCE);
    }
    assert_eq!(panics.load(Ordering::SeqCst), 0, "a thread panicked");
}
