//! Recomposition: the engine isolates, splits, merges, replaces and
//! reverts managed cells under traffic, and journals every step.

#![cfg(feature = "observe")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{
    Action, Cell, CellConfig, CellError, Context, Expected, JournalQuery, Metric, Mode, ObservationConfig,
    PlanStatus, Policy, Proposal, Recomposable, RecomposeConfig, RecomposeError, Recomposer, Runtime,
    SignalKind, SplitBy,
};
use common::fraud::{wait_for_kinds, Fraud, Tally, Txn};
use common::wait_for;

const WINDOW: Duration = Duration::from_millis(100);

/// The tests that measure latency under load run one at a time.
static UNDER_LOAD: Mutex<()> = Mutex::new(());

/// Scheduling noise a latency comparison allows on a busy two-core machine.
const NOISE: Duration = Duration::from_millis(5);

fn observed_runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .dispatcher("legacy", 1)
        .quiet_panics(true)
        .default_capacity(4096)
        .observation(ObservationConfig::default().window(WINDOW).sample_every(1))
        .build()
        .expect("runtime builds")
}

/// A rules engine that checks `Legacy` transactions without the legacy
/// path's cost (`legacy_cost` puts a cost back, for a variant that is worse).
struct Rules {
    tally: Arc<Tally>,
    legacy_cost: Duration,
}

impl Cell for Rules {
    type Message = Txn;

    fn handle(&mut self, _: &mut Context<Self>, txn: Txn) -> Result<(), CellError> {
        match txn {
            Txn::Card(_) => self.tally.card.fetch_add(1, SeqCst),
            Txn::Legacy => {
                thread::sleep(self.legacy_cost);
                self.tally.legacy.fetch_add(1, SeqCst)
            }
        };
        self.tally.rules.fetch_add(1, SeqCst);
        Ok(())
    }
}

fn p99(mut samples: Vec<Duration>) -> Duration {
    assert!(!samples.is_empty(), "no samples");
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

/// Sends `per_second` transactions for `length`, four of five `Legacy`;
/// returns how many were accepted.
fn drive(fraud: &cellrt::Addr<Txn>, per_second: u64, length: Duration) -> u64 {
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < length {
        let txn = if sent % 5 == 0 { Txn::Card(Instant::now()) } else { Txn::Legacy };
        fraud.send(txn).expect("the fraud cell takes every transaction");
        sent += 1;
        let due = start + Duration::from_nanos(sent * 1_000_000_000 / per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    sent
}

#[test]
fn a_slow_legacy_kind_is_isolated_and_card_latency_recovers() {
    let _serial = UNDER_LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = observed_runtime(1);
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    // After its first plan the cell cools down for the rest of the test:
    // the canary below is proposed by hand.
    let config = RecomposeConfig::default().mode(Mode::Auto).cooldown_windows(1000);
    let engine = Recomposer::new(&runtime, config).unwrap();
    let (made, rules) = (tally.clone(), tally.clone());
    let spec = Recomposable::new(move || Fraud(made.clone()))
        .variant("rules", move || Rules { tally: rules.clone(), legacy_cost: Duration::ZERO })
        .isolate_with(CellConfig::new().dispatcher("legacy"));
    engine.manage(&fraud, spec).unwrap();

    // Baseline: light load, one worker keeps up.
    let mut sent = drive(&fraud, 100, Duration::from_millis(500));
    let baseline_end = Instant::now();
    assert!(engine.plans().is_empty(), "no plan under light load: {:?}", engine.plans());

    // Load: 600 transactions a second, 480 of them Legacy at 3 ms each: more than one worker can do.
    let load_start = Instant::now();
    let driver = {
        let fraud = fraud.clone();
        thread::spawn(move || drive(&fraud, 600, Duration::from_millis(2500)))
    };
    wait_for("Legacy isolated", || engine.layout(fraud.path()).unwrap().isolated.len() == 1);
    let isolated_after = load_start.elapsed();
    let isolated_at = Instant::now();
    sent += driver.join().unwrap();

    let layout = engine.layout(fraud.path()).unwrap();
    let isolated: Vec<(String, String, String)> =
        layout.isolated.iter().map(|i| (i.kind.clone(), i.cell.to_string(), i.variant.clone())).collect();
    assert_eq!(isolated, [("legacy".to_owned(), "/fraud/legacy".to_owned(), "base".to_owned())]);
    assert!(isolated_after < Duration::from_secs(1), "isolated {isolated_after:?} after the load began");

    // Every transaction ends exactly once: all handled (none failed).
    wait_for("every transaction handled", || tally.card.load(SeqCst) + tally.legacy.load(SeqCst) == sent);
    assert_eq!(runtime.dead_letter_count(), 0);

    // Card latency: degraded under the load, then, once the isolation has
    // drained what was queued before it, back within 2× the baseline.
    let latencies = tally.card_latency.lock().unwrap().clone();
    let between = |from: Instant, to: Instant| -> Vec<Duration> {
        latencies.iter().filter(|(at, _)| *at > from && *at < to).map(|(_, d)| *d).collect()
    };
    let baseline = p99(between(load_start - Duration::from_secs(5), baseline_end));
    let strained = p99(between(load_start, isolated_at));
    let settled = isolated_at + Duration::from_millis(300);
    let after = p99(between(settled, Instant::now()));
    assert!(
        after <= baseline * 2 + NOISE,
        "card p99 {after:?} after isolation, baseline {baseline:?}, under load {strained:?}"
    );

    // The plan: an isolate rule's, applied, then evaluated and kept.
    let plans = engine.plans();
    assert_eq!(plans.len(), 1, "{plans:?}");
    let plan = &plans[0];
    assert_eq!(plan.rule, "isolate");
    assert_eq!(plan.actions, vec![Action::Isolate { cell: fraud.path().clone(), kind: "legacy".into() }]);
    assert_eq!(
        plan.inverse,
        vec![Action::Retire { cell: fraud.path().clone(), kind: "legacy".into(), successor: None }]
    );
    wait_for("the plan evaluated", || engine.plan(plan.id).unwrap().status.is_final());
    assert!(
        matches!(engine.plan(plan.id).unwrap().status, PlanStatus::Kept { met: true, .. }),
        "{:?}",
        engine.plan(plan.id).unwrap().status
    );

    // The journal has the whole chain, in order.
    let finding = engine.findings().into_iter().next().unwrap();
    assert_eq!(finding.rule, "isolate");
    assert_eq!(finding.window.kinds[0].kind, "legacy");
    assert!(finding.window.kinds[0].busy_share >= 0.6);
    // Strained by the rule's measure: a long queue, or decay.
    let window = &finding.window;
    assert!(
        window.queue_delay >= Duration::from_millis(10) || window.decay.as_ref().is_some_and(|d| d.decaying),
        "{window:?}"
    );
    let steps: Vec<String> = runtime
        .journal(&JournalQuery::new().cell(fraud.path().clone()))
        .into_iter()
        .filter_map(|s| match s.kind {
            SignalKind::Finding { rule, .. } => Some(format!("finding {rule}")),
            SignalKind::Plan { step, .. } => Some(step.to_string().split(':').next().unwrap().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(steps, ["finding isolate", "proposed", "approved", "applied", "kept"]);
    let measures = runtime.snapshot().measures;
    assert_eq!((measures.plans_applied, measures.plans_kept, measures.plans_reverted), (1, 1, 0));
    assert!(measures.velocity_to_applied.is_some() && measures.velocity_to_kept.is_some());
    assert!(measures.learning_velocity.is_some());

    // The rules engine takes a canary share of Legacy, is no worse, and
    // the legacy path is retired into it.
    engine.set_mode(Mode::Propose);
    let canary = Action::Canary {
        cell: fraud.path().clone(),
        kind: Some("legacy".into()),
        variant: "rules".into(),
        share: 0.2,
    };
    let plan = engine.propose(vec![canary], Expected::Canary { metric: Metric::QueueDelay }).unwrap();
    engine.approve(plan).unwrap();
    assert_eq!(engine.layout(fraud.path()).unwrap().canary, Some((Some("legacy".into()), "rules".into())));
    let before = sent;
    let driver = {
        let fraud = fraud.clone();
        thread::spawn(move || drive(&fraud, 600, WINDOW * 8))
    };
    sent += driver.join().unwrap();
    wait_for("the canary evaluated", || engine.plan(plan).unwrap().status.is_final());
    let done = engine.plan(plan).unwrap();
    assert!(matches!(done.status, PlanStatus::Kept { met: true, .. }), "{:?}", done.status);
    assert_eq!(
        done.actions.last(),
        Some(&Action::Promote { cell: fraud.path().clone(), kind: Some("legacy".into()) })
    );
    let layout = engine.layout(fraud.path()).unwrap();
    assert_eq!((layout.canary, layout.isolated[0].variant.as_str()), (None, "rules"));
    assert!(tally.rules.load(SeqCst) > 0, "the canary took a share of the traffic");
    wait_for("every transaction handled", || tally.card.load(SeqCst) + tally.legacy.load(SeqCst) == sent);
    assert!(sent > before);
    assert_eq!(runtime.dead_letter_count(), 0);
    // Legacy goes to the rules engine now: the canary cell drained and
    // stopped, the old legacy cell was replaced.
    wait_for("the canary cell stopped", || runtime.cell_count() == 2);
    let rules_before = tally.rules.load(SeqCst);
    fraud.send(Txn::Legacy).unwrap();
    wait_for("legacy handled by the rules engine", || tally.rules.load(SeqCst) == rules_before + 1);
    runtime.shutdown(Duration::from_secs(5));
}

// ---------------------------------------------------------- split/merge ----

struct Slow(Arc<AtomicU64>);

impl Cell for Slow {
    type Message = u64;

    fn handle(&mut self, _: &mut Context<Self>, _: u64) -> Result<(), CellError> {
        thread::sleep(Duration::from_millis(1));
        self.0.fetch_add(1, SeqCst);
        Ok(())
    }
}

#[test]
fn a_saturated_stateless_cell_is_split_under_traffic_and_merged_when_load_falls() {
    let _serial = UNDER_LOAD.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::builder()
        .worker_threads(2)
        .default_capacity(64)
        .observation(ObservationConfig::default().window(WINDOW).sample_every(1))
        .build()
        .unwrap();
    let handled = Arc::new(AtomicU64::new(0));
    let pool = runtime.spawn_with(CellConfig::named("resize"), Slow(handled.clone())).unwrap();
    let config = RecomposeConfig::default().mode(Mode::Auto).merge_windows(3).cooldown_windows(1);
    let engine = Recomposer::new(&runtime, config).unwrap();
    let made = handled.clone();
    engine.manage(&pool, Recomposable::new(move || Slow(made.clone())).stateless()).unwrap();

    // 1,500 a second against one cell that handles at most 1,000.
    let mut sent = 0_u64;
    let start = Instant::now();
    while engine.layout(pool.path()).unwrap().pool == 1 {
        assert!(start.elapsed() < Duration::from_secs(10), "never split");
        pool.send(sent).unwrap();
        sent += 1;
        thread::sleep(Duration::from_micros(660));
    }
    let layout = engine.layout(pool.path()).unwrap();
    assert_eq!((layout.pool, layout.version), (2, 1));
    // Keep sending to the pool for a while, then stop: the load falls.
    for _ in 0..300 {
        pool.send(sent).unwrap();
        sent += 1;
        thread::sleep(Duration::from_micros(660));
    }
    wait_for("merged", || engine.layout(pool.path()).unwrap().pool == 1);
    wait_for("every message handled", || handled.load(SeqCst) == sent);
    let rules: Vec<String> = engine.plans().iter().map(|p| p.rule.clone()).collect();
    assert_eq!(rules, ["split", "merge"]);
    assert_eq!(runtime.dead_letter_count(), 0);
    // The member the split added drained and stopped.
    wait_for("the added member stopped", || runtime.cell_count() == 1);
    runtime.shutdown(Duration::from_secs(5));
}

// ---------------------------------------------------- worse is reverted ----

struct Checker {
    handled: Arc<AtomicU64>,
    /// Fails every `fail_every`-th message (0: never).
    fail_every: u64,
    seen: u64,
}

impl Cell for Checker {
    type Message = u64;

    fn handle(&mut self, _: &mut Context<Self>, _: u64) -> Result<(), CellError> {
        self.seen += 1;
        if self.fail_every != 0 && self.seen % self.fail_every == 0 {
            return Err(CellError::msg("rule engine rejected it"));
        }
        self.handled.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// A `Checker` at `/checks` under `engine`, with a variant `"strict"` that
/// fails every `strict_fails`-th message (0: never); and its count of
/// messages handled.
fn managed_checks(
    runtime: &Runtime,
    engine: &Recomposer,
    strict_fails: u64,
) -> (cellrt::Addr<u64>, Arc<AtomicU64>) {
    let handled = Arc::new(AtomicU64::new(0));
    let checks = runtime
        .spawn_with(CellConfig::named("checks"), Checker { handled: handled.clone(), fail_every: 0, seen: 0 })
        .unwrap();
    let (base, variant) = (handled.clone(), handled.clone());
    let spec = Recomposable::new(move || Checker { handled: base.clone(), fail_every: 0, seen: 0 })
        .variant("strict", move || Checker { handled: variant.clone(), fail_every: strict_fails, seen: 0 });
    engine.manage(&checks, spec).unwrap();
    (checks, handled)
}

fn checker_runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .quiet_panics(true)
        .observation(ObservationConfig::default().window(WINDOW).sample_every(1))
        .build()
        .unwrap()
}

#[test]
fn a_variant_with_a_higher_error_rate_is_reverted_within_one_evaluation() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let (checks, handled) = managed_checks(&runtime, &engine, 3);

    let plan = engine
        .propose(
            vec![Action::Replace { cell: checks.path().clone(), variant: "strict".into() }],
            Expected::Hold { metric: Metric::FailureRatio },
        )
        .unwrap();
    // One message at a time, each sent once the one before was handled or
    // dead-lettered, so none is ever queued when a cell stops.
    let mut sent = 0_u64;
    let refused = std::cell::Cell::new(0_u64);
    let send_one = |sent: &mut u64| {
        let accounted = handled.load(SeqCst) + runtime.dead_letter_count();
        match checks.try_send(*sent) {
            Ok(()) => {
                *sent += 1;
                wait_for("the message accounted for", || {
                    handled.load(SeqCst) + runtime.dead_letter_count() == accounted + 1
                });
            }
            Err(err) => {
                assert!(err.is_closed(), "{err:?}");
                refused.set(refused.get() + 1);
            }
        }
        thread::sleep(Duration::from_millis(1));
    };
    // A few clean windows before, so the plan has a "before".
    let until = Instant::now() + WINDOW * 4;
    while Instant::now() < until {
        send_one(&mut sent);
    }
    engine.approve(plan).unwrap();
    assert_eq!(engine.layout(checks.path()).unwrap().variant, "strict");
    // The variant fails every third message; an unsupervised cell stops at
    // its first failure, and the address refuses sends until the revert.
    let deadline = Instant::now() + common::PATIENCE;
    while !engine.plan(plan).unwrap().status.is_final() {
        assert!(Instant::now() < deadline, "the plan was never evaluated");
        send_one(&mut sent);
    }
    let status = engine.plan(plan).unwrap().status;
    assert_eq!(status, PlanStatus::Reverted { reason: "the cell serving the address stopped".into() });
    assert_eq!(engine.layout(checks.path()).unwrap().variant, "base");
    assert!(refused.get() > 0, "the stopped variant refused sends until the revert");
    // The base serves again; nothing accepted was lost: 1 failure.
    send_one(&mut sent);
    assert_eq!(runtime.dead_letter_count(), 1);
    assert_eq!(handled.load(SeqCst) + 1, sent);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_canary_that_fails_ends_and_the_traffic_stays_with_the_cell() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let (checks, handled) = managed_checks(&runtime, &engine, 3);
    let canary =
        Action::Canary { cell: checks.path().clone(), kind: None, variant: "strict".into(), share: 0.5 };
    let plan = engine.propose(vec![canary], Expected::Canary { metric: Metric::FailureRatio }).unwrap();
    engine.approve(plan).unwrap();
    assert_eq!(engine.layout(checks.path()).unwrap().canary, Some((None, "strict".into())));
    assert_eq!(runtime.cell_count(), 2);
    // One message at a time: none is queued when the canary stops.
    let mut sent = 0_u64;
    let deadline = Instant::now() + common::PATIENCE;
    while !engine.plan(plan).unwrap().status.is_final() {
        assert!(Instant::now() < deadline, "the canary was never evaluated");
        let accounted = handled.load(SeqCst) + runtime.dead_letter_count();
        checks.try_send(sent).expect("the cell takes what the stopped canary refuses");
        sent += 1;
        wait_for("the message accounted for", || {
            handled.load(SeqCst) + runtime.dead_letter_count() == accounted + 1
        });
        thread::sleep(Duration::from_millis(1));
    }
    let status = engine.plan(plan).unwrap().status;
    assert_eq!(status, PlanStatus::Reverted { reason: "the canary stopped".into() });
    let layout = engine.layout(checks.path()).unwrap();
    assert_eq!((layout.canary, layout.variant.as_str()), (None, "base"));
    // The canary failed its third message and stopped; everything else was
    // handled, by it or by the cell.
    assert_eq!(runtime.dead_letter_count(), 1);
    assert_eq!(handled.load(SeqCst) + 1, sent);
    wait_for("the canary cell gone", || runtime.cell_count() == 1);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_canary_is_judged_once_it_and_the_cell_beside_it_have_taken_messages() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let (checks, handled) = managed_checks(&runtime, &engine, 0);
    let canary =
        Action::Canary { cell: checks.path().clone(), kind: None, variant: "strict".into(), share: 0.5 };
    let plan = engine.propose(vec![canary], Expected::Canary { metric: Metric::FailureRatio }).unwrap();
    engine.approve(plan).unwrap();
    // Past its evaluation windows (3) without a message: no verdict yet.
    thread::sleep(WINDOW * 6);
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Applied { .. }));
    let mut sent = 0_u64;
    let deadline = Instant::now() + common::PATIENCE;
    while !engine.plan(plan).unwrap().status.is_final() {
        assert!(Instant::now() < deadline, "the canary was never evaluated");
        checks.try_send(sent).expect("the cell or its canary takes it");
        sent += 1;
        thread::sleep(Duration::from_millis(5));
    }
    let status = engine.plan(plan).unwrap().status;
    assert_eq!(status, PlanStatus::Kept { before: 0.0, after: 0.0, met: true });
    assert_eq!(engine.layout(checks.path()).unwrap().variant, "strict", "the canary was promoted");
    wait_for("every message handled", || handled.load(SeqCst) == sent);
    assert_eq!(runtime.dead_letter_count(), 0);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_canary_that_never_takes_a_message_ends_after_four_times_its_evaluation() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let (checks, _) = managed_checks(&runtime, &engine, 0);
    let canary =
        Action::Canary { cell: checks.path().clone(), kind: None, variant: "strict".into(), share: 0.5 };
    let plan = engine.propose(vec![canary], Expected::Canary { metric: Metric::FailureRatio }).unwrap();
    engine.approve(plan).unwrap();
    let applied = Instant::now();
    wait_for("the canary ended", || engine.plan(plan).unwrap().status.is_final());
    // 3 evaluation windows × 4, and the window it was applied in.
    assert!(applied.elapsed() >= WINDOW * 11, "ended after {:?}", applied.elapsed());
    let status = engine.plan(plan).unwrap().status;
    assert_eq!(status, PlanStatus::Reverted { reason: "the canary took no messages".into() });
    let layout = engine.layout(checks.path()).unwrap();
    assert_eq!((layout.canary, layout.variant.as_str()), (None, "base"));
    wait_for("the canary cell gone", || runtime.cell_count() == 1);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn canary_plans_that_do_not_fit_are_refused() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let (checks, _) = managed_checks(&runtime, &engine, 0);
    let cell = checks.path().clone();
    let canary = |kind: Option<&str>, variant: &str, share: f64| {
        vec![Action::Canary {
            cell: cell.clone(),
            kind: kind.map(Into::into),
            variant: variant.into(),
            share,
        }]
    };
    let expected = Expected::Canary { metric: Metric::FailureRatio };
    for share in [0.0, 1.0, -0.5, f64::NAN] {
        assert!(matches!(
            engine.propose(canary(None, "strict", share), expected),
            Err(RecomposeError::Invalid { .. })
        ));
    }
    assert_eq!(
        engine.propose(canary(None, "lenient", 0.1), expected),
        Err(RecomposeError::UnknownVariant { cell: cell.clone(), variant: "lenient".into() })
    );
    assert!(matches!(
        engine.propose(canary(None, "base", 0.1), expected),
        Err(RecomposeError::Layout { .. })
    ));
    assert!(matches!(
        engine.propose(canary(Some("card"), "strict", 0.1), expected),
        Err(RecomposeError::Layout { .. })
    ));
    let promote = vec![Action::Promote { cell: cell.clone(), kind: None }];
    assert!(matches!(engine.propose(promote, expected), Err(RecomposeError::Layout { .. })));
    // While a canary runs, nothing else changes the cell.
    let plan = engine.propose(canary(None, "strict", 0.1), expected).unwrap();
    engine.approve(plan).unwrap();
    engine.revert(plan).unwrap();
    assert_eq!(engine.layout(&cell).unwrap().canary, None);
    let plan = engine.propose(canary(None, "strict", 0.1), expected).unwrap();
    engine.approve(plan).unwrap();
    let hold = Expected::Hold { metric: Metric::FailureRatio };
    let replace = vec![Action::Replace { cell: cell.clone(), variant: "strict".into() }];
    assert!(matches!(engine.propose(replace, hold), Err(RecomposeError::PlanInFlight { .. })));
    assert!(engine.plans().iter().all(|p| p.actions.len() == 1));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn reverting_a_plan_whose_cell_has_stopped_is_refused() {
    let runtime = observed_runtime(2);
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let made = tally.clone();
    engine.manage(&fraud, Recomposable::new(move || Fraud(made.clone()))).unwrap();
    fraud.send(Txn::Legacy).unwrap();
    wait_for_kinds(&runtime, "/fraud", &["legacy"]);
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    let plan = engine
        .propose(vec![Action::Isolate { cell: fraud.path().clone(), kind: "legacy".into() }], hold)
        .unwrap();
    engine.approve(plan).unwrap();
    runtime.stop(&fraud);
    wait_for("the cell stopped", || fraud.is_closed());
    assert_eq!(engine.revert(plan), Err(RecomposeError::Stopped { cell: fraud.path().clone() }));
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Applied { .. }));
    // Its evaluation cannot revert it either: the plan fails, journaled.
    wait_for("the plan evaluated", || engine.plan(plan).unwrap().status.is_final());
    let status = engine.plan(plan).unwrap().status;
    assert_eq!(
        status,
        PlanStatus::Failed {
            reason: "the cell serving the address stopped; the revert failed: the cell at /fraud has stopped"
                .into()
        }
    );
    runtime.shutdown(Duration::from_secs(5));
}

// ------------------------------------------------------------- propose ----

fn stateless_echo(runtime: &Runtime, name: &str) -> (cellrt::Addr<u64>, Arc<AtomicU64>) {
    let handled = Arc::new(AtomicU64::new(0));
    let addr = runtime.spawn_with(CellConfig::named(name), Slow(handled.clone())).unwrap();
    (addr, handled)
}

fn split(addr: &cellrt::Addr<u64>) -> Vec<Action> {
    vec![Action::Split { cell: addr.path().clone(), into: 2, by: SplitBy::Stateless }]
}

fn managed(runtime: &Runtime, engine: &Recomposer, name: &str) -> cellrt::Addr<u64> {
    let (addr, handled) = stateless_echo(runtime, name);
    engine.manage(&addr, Recomposable::new(move || Slow(handled.clone())).stateless()).unwrap();
    addr
}

#[test]
fn in_propose_mode_nothing_changes_until_approval() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    assert_eq!(engine.mode(), Mode::Propose);
    let addr = managed(&runtime, &engine, "echo");
    let plan = engine.propose(split(&addr), Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    thread::sleep(WINDOW * 3);
    assert_eq!(engine.layout(addr.path()).unwrap().pool, 1);
    assert_eq!(engine.pending_plans().iter().map(|p| p.id).collect::<Vec<_>>(), [plan]);
    engine.approve(plan).unwrap();
    assert_eq!(engine.layout(addr.path()).unwrap().pool, 2);
    assert!(engine.pending_plans().is_empty());
    assert_eq!(engine.approve(plan), Err(RecomposeError::NotPending { plan }));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_rejected_plan_changes_nothing_and_frees_its_cell() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let addr = managed(&runtime, &engine, "echo");
    let plan = engine.propose(split(&addr), Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    assert_eq!(
        engine.propose(split(&addr), Expected::Hold { metric: Metric::QueueDelay }),
        Err(RecomposeError::PlanInFlight { cell: addr.path().clone(), plan })
    );
    engine.reject(plan).unwrap();
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Rejected { .. }));
    assert_eq!(engine.layout(addr.path()).unwrap().pool, 1);
    assert!(engine.propose(split(&addr), Expected::Hold { metric: Metric::QueueDelay }).is_ok());
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_plan_whose_cell_changed_since_it_was_made_is_refused_as_stale() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let addr = managed(&runtime, &engine, "echo");
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    // Plan A splits the cell and is kept after its evaluation.
    let a = engine.propose(split(&addr), hold).unwrap();
    engine.approve(a).unwrap();
    wait_for("plan A evaluated", || engine.plan(a).unwrap().status.is_final());
    assert!(matches!(engine.plan(a).unwrap().status, PlanStatus::Kept { .. }));
    // Plan B is made against the pool (version 1)…
    let b = engine.propose(vec![Action::Merge { cell: addr.path().clone() }], hold).unwrap();
    // …then A is reverted by hand: the cell is at version 2.
    engine.revert(a).unwrap();
    assert_eq!(engine.layout(addr.path()).unwrap().version, 2);
    assert_eq!(engine.approve(b), Err(RecomposeError::Stale { plan: b, planned: 1, current: 2 }));
    assert!(matches!(engine.plan(b).unwrap().status, PlanStatus::Rejected { .. }));
    assert_eq!(engine.revert(a), Err(RecomposeError::NotApplied { plan: a }));
    let steps: Vec<String> = runtime
        .journal(&JournalQuery::new().cell(addr.path().clone()))
        .into_iter()
        .filter_map(|s| match s.kind {
            SignalKind::Plan { plan, step, .. } => {
                Some(format!("{plan} {}", step.to_string().split(':').next().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        steps,
        ["1 proposed", "1 approved", "1 applied", "1 kept", "2 proposed", "1 reverted", "2 rejected"]
    );
    runtime.shutdown(Duration::from_secs(5));
}

// ------------------------------------------------------------ bad input ----

#[test]
fn plans_naming_unknown_cells_kinds_or_variants_are_refused() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let addr = managed(&runtime, &engine, "echo");
    let nowhere: cellrt::CellPath = "/nowhere".parse().unwrap();
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    assert_eq!(
        engine.propose(vec![Action::Merge { cell: nowhere.clone() }], hold),
        Err(RecomposeError::UnknownCell { cell: nowhere })
    );
    assert_eq!(
        engine.propose(vec![Action::Isolate { cell: addr.path().clone(), kind: "ghost".into() }], hold),
        Err(RecomposeError::UnknownKind { cell: addr.path().clone(), kind: "ghost".into() })
    );
    assert_eq!(
        engine.propose(vec![Action::Replace { cell: addr.path().clone(), variant: "v2".into() }], hold),
        Err(RecomposeError::UnknownVariant { cell: addr.path().clone(), variant: "v2".into() })
    );
    assert!(matches!(
        engine.propose(vec![Action::Merge { cell: addr.path().clone() }], hold),
        Err(RecomposeError::Layout { .. })
    ));
    assert!(matches!(
        engine.propose(
            vec![Action::Split { cell: addr.path().clone(), into: 9, by: SplitBy::Stateless }],
            hold
        ),
        Err(RecomposeError::Invalid { .. })
    ));
    assert!(matches!(engine.propose(Vec::new(), hold), Err(RecomposeError::Invalid { .. })));
    assert_eq!(engine.approve(99), Err(RecomposeError::UnknownPlan { plan: 99 }));
    assert_eq!(engine.reject(99), Err(RecomposeError::UnknownPlan { plan: 99 }));
    assert!(engine.plans().is_empty());
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_variant_whose_factory_panics_fails_the_plan_and_the_original_stays() {
    let runtime = checker_runtime();
    let handled = Arc::new(AtomicU64::new(0));
    let checks = runtime
        .spawn_with(CellConfig::named("checks"), Checker { handled: handled.clone(), fail_every: 0, seen: 0 })
        .unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let base = handled.clone();
    let spec = Recomposable::new(move || Checker { handled: base.clone(), fail_every: 0, seen: 0 })
        .variant("broken", || -> Checker { panic!("no rules loaded") });
    engine.manage(&checks, spec).unwrap();
    let plan = engine
        .propose(
            vec![Action::Replace { cell: checks.path().clone(), variant: "broken".into() }],
            Expected::Hold { metric: Metric::FailureRatio },
        )
        .unwrap();
    let err = engine.approve(plan).unwrap_err();
    assert_eq!(
        err,
        RecomposeError::FactoryPanicked { cell: checks.path().clone(), message: "no rules loaded".into() }
    );
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Failed { .. }));
    assert_eq!(engine.layout(checks.path()).unwrap().variant, "base");
    checks.send(1).unwrap();
    wait_for("the original handles", || handled.load(SeqCst) == 1);
    runtime.shutdown(Duration::from_secs(5));
}

struct Panicking;

impl Policy for Panicking {
    fn name(&self) -> &str {
        "panicking"
    }

    fn propose(&mut self, _: &cellrt::CellWindow, _: &cellrt::Layout) -> Option<Proposal> {
        panic!("policy bug")
    }
}

#[test]
fn a_policy_that_panics_is_disabled_and_journaled() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Auto)).unwrap();
    let addr = managed(&runtime, &engine, "echo");
    engine.set_policy(Panicking);
    let disabled = |runtime: &Runtime| {
        runtime.journal(&JournalQuery::new()).into_iter().filter(|s| {
            matches!(&s.kind, SignalKind::Configuration { what } if what.contains("\"panicking\" disabled: it panicked: policy bug"))
        }).count()
    };
    wait_for("the policy disabled", || disabled(&runtime) == 1);
    thread::sleep(WINDOW * 3);
    assert_eq!(disabled(&runtime), 1, "disabled once, then never asked again");
    addr.send(1).unwrap();
    assert!(engine.plans().is_empty());
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn routed_and_doubly_managed_cells_are_refused() {
    let runtime = checker_runtime();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let addr = managed(&runtime, &engine, "echo");
    let again = Arc::new(AtomicU64::new(0));
    assert_eq!(
        engine.manage(&addr, Recomposable::new(move || Slow(again.clone()))),
        Err(RecomposeError::AlreadyManaged { cell: addr.path().clone() })
    );
    let handled = Arc::new(AtomicU64::new(0));
    let router = runtime.router("pool", cellrt::Routing::round_robin(), vec![addr.clone()]).unwrap();
    let made = handled.clone();
    assert_eq!(
        engine.manage(router.addr(), Recomposable::new(move || Slow(made.clone()))),
        Err(RecomposeError::NotACell { cell: router.addr().path().clone() })
    );
    let made = handled.clone();
    let other = runtime.spawn_with(CellConfig::named("named"), Slow(handled.clone())).unwrap();
    assert!(matches!(
        engine.manage(
            &other,
            Recomposable::new(move || Slow(made.clone())).variant("base", || Slow(Arc::default()))
        ),
        Err(RecomposeError::Registration(cellrt::RecomposableError::VariantName { name })) if name == "base"
    ));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn an_engine_needs_observation_and_valid_settings() {
    let runtime =
        Runtime::builder().worker_threads(1).observation(ObservationConfig::disabled()).build().unwrap();
    assert_eq!(
        Recomposer::new(&runtime, RecomposeConfig::default()).unwrap_err(),
        RecomposeError::ObservationDisabled
    );
    runtime.shutdown(Duration::from_secs(5));
    let runtime = checker_runtime();
    for (config, field) in [
        (RecomposeConfig::default().sustain(0), "sustain"),
        (RecomposeConfig::default().isolate_share(1.5), "isolate_share"),
        (RecomposeConfig::default().split_into(1), "split_into"),
        (RecomposeConfig::default().tolerance(f64::NAN), "tolerance"),
        (RecomposeConfig::default().merge_saturation(1.0), "merge_saturation"),
        (RecomposeConfig::default().merge_saturation(0.8), "merge_saturation"),
    ] {
        match Recomposer::new(&runtime, config) {
            Err(RecomposeError::Config(err)) => assert_eq!(err.field(), field, "{err}"),
            other => panic!("{field}: {:?}", other.map(|_| ())),
        }
    }
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_kind_is_isolated_and_retired_by_hand_without_losing_a_message() {
    let runtime = observed_runtime(2);
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let made = tally.clone();
    engine.manage(&fraud, Recomposable::new(move || Fraud(made.clone()))).unwrap();
    // The kind must have been seen before it can be isolated.
    fraud.send(Txn::Legacy).unwrap();
    fraud.send(Txn::Card(Instant::now())).unwrap();
    wait_for_kinds(&runtime, "/fraud", &["legacy", "card"]);
    let sender = {
        let fraud = fraud.clone();
        thread::spawn(move || {
            for n in 0..2000_u64 {
                let txn = if n % 2 == 0 { Txn::Legacy } else { Txn::Card(Instant::now()) };
                fraud.send(txn).unwrap();
                if n % 100 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        })
    };
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    let isolate = engine
        .propose(vec![Action::Isolate { cell: fraud.path().clone(), kind: "legacy".into() }], hold)
        .unwrap();
    engine.approve(isolate).unwrap();
    assert_eq!(runtime.cell_count(), 2);
    // The retire waits until the cell has handed the kind's queued
    // messages over to the kind's cell.
    let mut retried = 0;
    loop {
        match engine.revert(isolate) {
            Ok(()) => break,
            Err(RecomposeError::InProgress { cell }) => {
                assert_eq!(&cell, fraud.path());
                retried += 1;
                assert!(retried < 10_000, "the hand-over never happened");
                thread::yield_now();
            }
            Err(err) => panic!("{err}"),
        }
    }
    sender.join().unwrap();
    wait_for("all 2,002 handled", || tally.legacy.load(SeqCst) + tally.card.load(SeqCst) == 2002);
    assert_eq!((tally.legacy.load(SeqCst), tally.card.load(SeqCst)), (1001, 1001));
    wait_for("the kind's cell stopped", || runtime.cell_count() == 1);
    assert!(engine.layout(fraud.path()).unwrap().isolated.is_empty());
    runtime.shutdown(Duration::from_secs(5));
}

// --------------------------------------------------------- queued moves ----

enum Parity {
    /// Holds the cell until the sender is dropped.
    Gate(std::sync::mpsc::Receiver<()>),
    Even(u64),
    Odd(u64),
}

/// Logs (its path, the number) of every message it handles.
struct Parities(Arc<Mutex<Vec<(String, u64)>>>);

impl Cell for Parities {
    type Message = Parity;

    fn message_kind(msg: &Parity) -> &'static str {
        match msg {
            Parity::Gate(_) => "gate",
            Parity::Even(_) => "even",
            Parity::Odd(_) => "odd",
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Parity) -> Result<(), CellError> {
        match msg {
            Parity::Gate(gate) => {
                let _ = gate.recv();
            }
            Parity::Even(n) | Parity::Odd(n) => self.0.lock().unwrap().push((ctx.path().to_string(), n)),
        }
        Ok(())
    }
}

#[test]
fn isolating_a_kind_moves_its_queued_messages_to_its_cell_ahead_of_newer_ones() {
    let runtime = checker_runtime();
    let log = Arc::new(Mutex::new(Vec::new()));
    let cell = runtime.spawn_with(CellConfig::named("parity"), Parities(log.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let made = log.clone();
    engine.manage(&cell, Recomposable::new(move || Parities(made.clone()))).unwrap();
    cell.send(Parity::Even(0)).unwrap();
    cell.send(Parity::Odd(1)).unwrap();
    wait_for_kinds(&runtime, "/parity", &["even", "odd"]);
    // The cell is held on a gate while 18 messages queue behind it (the
    // mailbox holds 32: the 10 even ones sent after the isolation fit too).
    let (open, gate) = std::sync::mpsc::channel();
    cell.send(Parity::Gate(gate)).unwrap();
    let send = |n: u64| cell.send(if n % 2 == 0 { Parity::Even(n) } else { Parity::Odd(n) }).unwrap();
    (2..20).for_each(send);
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    let plan = engine
        .propose(vec![Action::Isolate { cell: cell.path().clone(), kind: "odd".into() }], hold)
        .unwrap();
    engine.approve(plan).unwrap();
    (20..40).for_each(send);
    drop(open);
    wait_for("all 40 handled", || log.lock().unwrap().len() == 40);
    let log = log.lock().unwrap().clone();
    let by = |path: &str| -> Vec<u64> { log.iter().filter(|(p, _)| p == path).map(|(_, n)| *n).collect() };
    // Every odd number queued before the isolation moved to the kind's cell,
    // and is handled there before those sent after it.
    assert_eq!(by("/parity/odd"), (3..40).step_by(2).collect::<Vec<u64>>());
    let mut base: Vec<u64> = (0..40).step_by(2).collect();
    base.insert(1, 1);
    assert_eq!(by("/parity"), base);
    runtime.shutdown(Duration::from_secs(5));
}
