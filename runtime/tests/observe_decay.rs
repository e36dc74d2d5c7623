//! Observation under synthetic load: decay crossings, burn-rate alerts and
//! triage categories in the journal, as the runtime records them.

#![cfg(feature = "observe")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellrt::{
    Addr, BurnAlert, BurnWindows, Category, Cell, CellConfig, CellError, ChildSpec, Context, DecayConfig,
    JournalQuery, NoiseFloor, Objective, ObservationConfig, Runtime, Signal, SignalKind, SignalType,
    SupervisorSpec, TriageConfig,
};
use common::{eventually, PATIENCE};

/// Spins for `work` microseconds per message; fails every `fail_every`-th
/// message (0: never), with a text that differs only in the number.
struct Spinner {
    work: Arc<AtomicU64>,
    fail_every: Arc<AtomicU64>,
    seen: u64,
    next: Option<Addr<u64>>,
}

impl Spinner {
    fn new(work: &Arc<AtomicU64>, fail_every: &Arc<AtomicU64>) -> Self {
        Spinner { work: work.clone(), fail_every: fail_every.clone(), seen: 0, next: None }
    }
}

impl Cell for Spinner {
    type Message = u64;

    fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<(), CellError> {
        self.seen += 1;
        let until = Instant::now() + Duration::from_micros(self.work.load(Relaxed));
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        if let Some(next) = &self.next {
            let _ = next.try_send(n);
        }
        let every = self.fail_every.load(Relaxed);
        if every > 0 && self.seen % every == 0 {
            return Err(CellError::msg(format!("item {n} rejected")));
        }
        Ok(())
    }
}

/// Windows of 40 ms; 5 windows of warmup; a short change window so that
/// failures long after the spawns are not taken for a bad deploy.
fn observation() -> ObservationConfig {
    ObservationConfig::default()
        .window(Duration::from_millis(40))
        .sample_every(1)
        .decay(
            DecayConfig::default()
                .warmup(5)
                // Handling time varies by up to a millisecond on a loaded
                // machine (preemption while spinning); queueing by more.
                .cost_floor(NoiseFloor { relative: 1.0, absolute: 1e-3 })
                .queue_delay_floor(NoiseFloor { relative: 1.0, absolute: 0.05 }),
        )
        .triage(TriageConfig::default().change_window(Duration::from_millis(100)))
}

fn runtime_with(config: ObservationConfig) -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .dispatcher("slow", 1)
        .quiet_panics(true)
        .observation(config)
        .build()
        .expect("runtime builds")
}

/// Sends one message to each of `to` every 4 ms until `done` holds or
/// `limit` passes; returns whether `done` held.
fn drive(to: &[&Addr<u64>], limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    let mut n = 0;
    while Instant::now() < end {
        for addr in to {
            let _ = addr.try_send(n);
        }
        n += 1;
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(4));
    }
    done()
}

fn entries(rt: &Runtime, path: &str, kind: SignalType) -> Vec<Signal> {
    rt.journal(&JournalQuery::new().cell(path.parse().unwrap()).kind(kind))
}

#[test]
fn a_cell_made_ten_times_slower_crosses_the_decay_threshold_and_a_healthy_one_does_not() {
    let rt = runtime_with(observation());
    let (fast, slow_work, never) =
        (Arc::new(AtomicU64::new(100)), Arc::new(AtomicU64::new(100)), Arc::new(AtomicU64::new(0)));
    let steady = rt.spawn_with(CellConfig::new().name("steady"), Spinner::new(&fast, &never)).unwrap();
    let slowing = rt
        .spawn_with(CellConfig::new().name("slowing").dispatcher("slow"), Spinner::new(&slow_work, &never))
        .unwrap();
    // Healthy long enough to learn a baseline (5 windows) and more.
    drive(&[&steady, &slowing], Duration::from_millis(500), || false);
    let learned = rt.snapshot();
    for cell in &learned.cells {
        let decay = cell.decay.as_ref().expect("analysed");
        assert!(!decay.learning && decay.score == 0.0, "{}: {decay:?}", cell.path);
    }
    slow_work.store(10_000, Relaxed);
    let crossed = drive(&[&steady, &slowing], Duration::from_secs(5), || {
        !entries(&rt, "/slowing", SignalType::DecayCrossed).is_empty()
    });
    assert!(crossed, "the slowed cell never crossed: {:?}", rt.snapshot().cells);
    let crossing = &entries(&rt, "/slowing", SignalType::DecayCrossed)[0];
    let SignalKind::DecayCrossed { rising, score, cost, drag, .. } = crossing.kind else { unreachable!() };
    // Slower handling shows first as drag (its queue fills, senders are
    // refused), then as cost once its long turns end and are counted.
    assert!(rising && score >= 0.5 && (cost >= 0.5 || drag >= 0.5), "{crossing:?}");
    assert_eq!(crossing.category, Some(Category::ArchitecturalDebt), "decay with no other cause");
    let costly = drive(&[&steady, &slowing], Duration::from_secs(5), || {
        let snapshot = rt.snapshot();
        let decay = snapshot.cells.iter().find(|c| c.path == *slowing.path()).and_then(|c| c.decay);
        decay.is_some_and(|d| d.cost >= 0.5)
    });
    assert!(costly, "{:?}", rt.snapshot().cells);
    assert!(entries(&rt, "/steady", SignalType::DecayCrossed).is_empty());
    let snapshot = rt.snapshot();
    let steady_decay = snapshot.cells.iter().find(|c| c.path == *steady.path()).unwrap().decay.unwrap();
    assert!(steady_decay.score < 0.5 && !steady_decay.decaying, "{steady_decay:?}");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_cell_that_starts_failing_decays_by_fragility_and_burns_its_error_budget() {
    let windows = BurnWindows::new()
        .window(BurnAlert::Fast, Duration::from_millis(400), Duration::from_millis(80))
        .window(BurnAlert::Slow, Duration::from_millis(800), Duration::from_millis(160))
        .window(BurnAlert::Ticket, Duration::from_millis(1600), Duration::from_millis(320));
    let rt = runtime_with(observation().burn_windows(windows));
    let (work, fail_every) = (Arc::new(AtomicU64::new(50)), Arc::new(AtomicU64::new(0)));
    let spec = SupervisorSpec::new("shop").intensity(10_000, Duration::from_secs(1)).child({
        let (work, fail_every) = (work.clone(), fail_every.clone());
        ChildSpec::new("orders", move || Spinner::new(&work, &fail_every))
    });
    let shop = rt.start_supervisor(spec, PATIENCE).unwrap();
    let orders = shop.child::<u64>("orders").unwrap();
    rt.set_objective(orders.path(), Some(Objective::success_ratio(0.99).unwrap()));
    drive(&[&orders], Duration::from_millis(500), || false);
    assert_eq!(rt.failure_count(), 0);
    fail_every.store(3, Relaxed);
    let alerted = drive(&[&orders], Duration::from_secs(5), || {
        !entries(&rt, "/shop/orders", SignalType::DecayCrossed).is_empty()
            && entries(&rt, "/shop/orders", SignalType::BurnRate)
                .iter()
                .any(|s| matches!(s.kind, SignalKind::BurnRate { alert: BurnAlert::Fast, raised: true, .. }))
    });
    assert!(alerted, "{:#?}", rt.journal(&JournalQuery::new().cell(orders.path().clone())));
    let crossing = &entries(&rt, "/shop/orders", SignalType::DecayCrossed)[0];
    let SignalKind::DecayCrossed { rising, fragility, .. } = crossing.kind else { unreachable!() };
    assert!(rising && fragility >= 0.5, "{crossing:?}");
    let burn = entries(&rt, "/shop/orders", SignalType::BurnRate);
    let fast = burn
        .iter()
        .find(|s| matches!(s.kind, SignalKind::BurnRate { alert: BurnAlert::Fast, raised: true, .. }))
        .unwrap();
    let SignalKind::BurnRate { ref objective, long_rate, short_rate, .. } = fast.kind else { unreachable!() };
    assert_eq!(objective, "success>=99%");
    // A third of the messages fail against a 1 % budget: up to 33x.
    assert!(long_rate >= 14.4 && short_rate >= 14.4, "{burn:?}");
    // One defect, one signature: the first failure is new, the rest recur.
    let new = entries(&rt, "/shop/orders", SignalType::NewSignature);
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0].category, Some(Category::NewBehavior));
    let SignalKind::NewSignature { ref summary, .. } = new[0].kind else { unreachable!() };
    assert!(summary.ends_with(": item <n> rejected"), "{summary}");
    let recurrences = entries(&rt, "/shop/orders", SignalType::Recurrence);
    assert!(recurrences.iter().all(|s| s.category == Some(Category::NewBehavior)));
    let restarts = entries(&rt, "/shop/orders", SignalType::Restart);
    assert_eq!(restarts.len() as u64, rt.failure_count(), "every failure restarted the cell");
    let SignalKind::Restart { ref reason } = restarts[0].kind else { unreachable!() };
    assert!(reason.starts_with("failed: cell /shop/orders failed in handle"), "{reason}");
    assert!(reason.contains(": error: item ") && reason.ends_with(" rejected"), "{reason}");
    let snapshot = rt.snapshot();
    let objective =
        snapshot.cells.iter().find(|c| c.path == *orders.path()).unwrap().objective.clone().unwrap();
    assert_eq!(objective.objective, "success ≥ 99%");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_failure_after_an_anomaly_in_a_cell_it_sends_to_is_a_hidden_dependency() {
    let rt = runtime_with(observation());
    let (work, upstream_fails, downstream_fails) =
        (Arc::new(AtomicU64::new(10)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let payments =
        rt.spawn_with(CellConfig::new().name("payments"), Spinner::new(&work, &downstream_fails)).unwrap();
    let mut checkout = Spinner::new(&work, &upstream_fails);
    checkout.next = Some(payments.clone());
    let checkout = rt.spawn_with(CellConfig::new().name("checkout"), checkout).unwrap();
    let bystander =
        rt.spawn_with(CellConfig::new().name("bystander"), Spinner::new(&work, &Arc::default())).unwrap();
    // The flow map learns checkout -> payments; the spawns leave the change window.
    assert!(drive(&[&checkout], PATIENCE, || rt.snapshot().edges.len() == 1));
    std::thread::sleep(Duration::from_millis(150));
    downstream_fails.store(1, Relaxed);
    checkout.send(1).unwrap();
    assert!(eventually(|| !entries(&rt, "/payments", SignalType::NewSignature).is_empty()));
    upstream_fails.store(1, Relaxed);
    checkout.send(2).unwrap();
    // Both cells are of one type failing the same way: one signature, which
    // recurs on checkout.
    assert!(eventually(|| !entries(&rt, "/checkout", SignalType::Recurrence).is_empty()));
    let downstream = &entries(&rt, "/payments", SignalType::NewSignature)[0];
    let upstream = &entries(&rt, "/checkout", SignalType::Recurrence)[0];
    assert_eq!(downstream.category, Some(Category::NewBehavior));
    assert_eq!(upstream.category, Some(Category::HiddenDependency));
    assert!(upstream.seq > downstream.seq);
    // The same failure on a cell that sends nothing to payments recurs with
    // its signature's category.
    rt.replace(&bystander, Spinner::new(&work, &upstream_fails)).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    bystander.send(3).unwrap();
    assert!(eventually(|| !entries(&rt, "/bystander", SignalType::Recurrence).is_empty()));
    assert_eq!(entries(&rt, "/bystander", SignalType::Recurrence)[0].category, Some(Category::NewBehavior));
    rt.shutdown(PATIENCE);
}

#[test]
fn a_failure_right_after_a_replacement_is_a_process_breakdown() {
    let rt =
        runtime_with(observation().triage(TriageConfig::default().change_window(Duration::from_secs(60))));
    let (work, never, fails) =
        (Arc::new(AtomicU64::new(10)), Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(1)));
    let cell = rt.spawn_with(CellConfig::new().name("pricing"), Spinner::new(&work, &never)).unwrap();
    rt.replace(&cell, Spinner::new(&work, &fails)).unwrap();
    cell.send(5).unwrap();
    assert!(eventually(|| !entries(&rt, "/pricing", SignalType::NewSignature).is_empty()));
    let topology: Vec<_> = entries(&rt, "/pricing", SignalType::Topology)
        .into_iter()
        .map(|s| match s.kind {
            SignalKind::Topology { change } => change.to_string(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(topology[..2], ["spawned".to_owned(), "replaced".to_owned()]);
    let failure = &entries(&rt, "/pricing", SignalType::NewSignature)[0];
    assert_eq!(failure.category, Some(Category::ProcessBreakdown));
    rt.shutdown(PATIENCE);
}

#[test]
fn investigations_and_changes_feed_the_learning_measures_and_bad_references_are_refused() {
    let rt = runtime_with(observation());
    let (work, fails) = (Arc::new(AtomicU64::new(10)), Arc::new(AtomicU64::new(1)));
    let cell = rt.spawn_with(CellConfig::new().name("ledger"), Spinner::new(&work, &fails)).unwrap();
    cell.send(1).unwrap();
    assert!(eventually(|| !entries(&rt, "/ledger", SignalType::NewSignature).is_empty()));
    let failure = entries(&rt, "/ledger", SignalType::NewSignature)[0].seq;
    let spawn = entries(&rt, "/ledger", SignalType::Topology)[0].seq;
    assert!(matches!(rt.investigate(9_999, None), Err(cellrt::JournalError::UnknownSignal { seq: 9_999 })));
    assert!(matches!(rt.investigate(spawn, None), Err(cellrt::JournalError::NotAnAnomaly { .. })));
    assert!(matches!(rt.record_change(&[], "nothing"), Err(cellrt::JournalError::NoSignals)));
    rt.investigate(failure, Some("the ledger rejects every entry".into())).unwrap();
    let change = rt.record_change(&[failure], "validate entries before the ledger").unwrap();
    assert_eq!(change.kind.signal_type(), SignalType::Change);
    let measures = rt.snapshot().measures;
    assert_eq!((measures.investigated, measures.insights, measures.changes), (1, 1, 1));
    assert_eq!(measures.signal_to_insight, Some(1.0));
    assert!(measures.learning_velocity.is_some_and(|v| v < PATIENCE));
    rt.shutdown(PATIENCE);
}

#[cfg(feature = "storage")]
#[test]
fn the_journal_is_kept_in_the_storage_and_numbered_on_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Runtime::builder()
            .worker_threads(1)
            .quiet_panics(true)
            .storage(cellrt::StorageConfig::dir(dir.path()))
            .build()
            .unwrap()
    };
    let (work, fails) = (Arc::new(AtomicU64::new(1)), Arc::new(AtomicU64::new(1)));
    let first_run_last = {
        let rt = open();
        let cell = rt.spawn_with(CellConfig::new().name("ledger"), Spinner::new(&work, &fails)).unwrap();
        cell.send(1).unwrap();
        assert!(eventually(|| !entries(&rt, "/ledger", SignalType::NewSignature).is_empty()));
        let all = rt.journal(&JournalQuery::new());
        rt.shutdown(PATIENCE);
        all.last().unwrap().seq
    };
    let rt = open();
    let cell = rt.spawn_with(CellConfig::new().name("ledger"), Spinner::new(&work, &fails)).unwrap();
    cell.send(2).unwrap();
    assert!(eventually(|| !entries(&rt, "/ledger", SignalType::Recurrence).is_empty()));
    let earlier = entries(&rt, "/ledger", SignalType::NewSignature);
    assert_eq!(earlier.len(), 1, "the first run's new signature is still there");
    assert!(earlier[0].seq <= first_run_last);
    let spawned_again = entries(&rt, "/ledger", SignalType::Topology);
    assert!(spawned_again.last().unwrap().seq > first_run_last, "numbering continues");
    rt.shutdown(PATIENCE);
}
