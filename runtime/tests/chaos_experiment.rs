//! Experiments: hypothesis, phases, blast radius, abort, cleanup on every
//! way out, the report, the journal, ramps.

#![cfg(feature = "chaos")]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use cellrt::{
    Addr, Category, Cell, CellError, CellPath, ChildSpec, Context, Experiment, ExperimentBuildError,
    ExperimentError, FaultSet, JournalQuery, Outcome, Predicate, Reply, Runtime, SignalKind, SignalType,
    Span, Supervisor, SupervisorSpec,
};
use common::PATIENCE;

/// Stock: answers every reservation.
struct Stock;

impl Cell for Stock {
    type Message = Reply<bool>;
    fn handle(&mut self, _: &mut Context<Self>, reply: Reply<bool>) -> Result<(), CellError> {
        let _ = reply.send(true);
        Ok(())
    }
    fn message_kind(_: &Reply<bool>) -> &'static str {
        "Reserve"
    }
}

/// Checkout: reserves stock for each order, and fails the order when the
/// reservation does not come back.
struct Checkout(Addr<Reply<bool>>);

impl Cell for Checkout {
    type Message = Reply<bool>;
    fn handle(&mut self, _: &mut Context<Self>, order: Reply<bool>) -> Result<(), CellError> {
        let reserved = self.0.ask(|reply| reply).map_err(|_| CellError::msg("stock unreachable"))?;
        match reserved.wait(PATIENCE) {
            Ok(ok) => {
                let _ = order.send(ok);
                Ok(())
            }
            Err(err) => Err(CellError::msg(format!("no reservation: {err}"))),
        }
    }
    fn message_kind(_: &Reply<bool>) -> &'static str {
        "Order"
    }
}

/// A shop: `/shop/inventory` and `/shop/checkout` each on its own
/// one-worker dispatcher (checkout blocks its worker while it waits for
/// stock, which must not stop the supervisor from restarting inventory),
/// both restarted on failure.
struct Shop {
    runtime: Runtime,
    sup: Supervisor,
}

impl Shop {
    fn new() -> Shop {
        let runtime = Runtime::builder()
            .worker_threads(1)
            .dispatcher("inventory", 1)
            .dispatcher("checkout", 1)
            .quiet_panics(true)
            .build()
            .expect("runtime builds");
        let spec = SupervisorSpec::new("shop")
            .intensity(10_000, Duration::from_secs(60))
            .child(ChildSpec::new("inventory", || Stock).dispatcher("inventory"));
        let sup = runtime.start_supervisor(spec, PATIENCE).expect("the shop starts");
        let stock = sup.child::<Reply<bool>>("inventory").unwrap();
        sup.start_child(
            ChildSpec::new("checkout", move || Checkout(stock.clone())).dispatcher("checkout"),
            PATIENCE,
        )
        .expect("checkout starts");
        Shop { runtime, sup }
    }

    fn checkout(&self) -> Addr<Reply<bool>> {
        self.sup.child("checkout").unwrap()
    }

    fn inventory(&self) -> Addr<Reply<bool>> {
        self.sup.child("inventory").unwrap()
    }

    /// One order, waited for; whether it went through.
    fn load(&self) -> impl FnMut() {
        let checkout = self.checkout();
        move || {
            let _ = checkout.ask(|reply| reply).map(|pending| pending.wait(PATIENCE));
        }
    }
}

fn path(s: &str) -> CellPath {
    s.parse().unwrap()
}

fn faults(spec: &str) -> FaultSet {
    FaultSet::parse(spec).unwrap()
}

#[test]
fn an_absorbed_fault_leaves_the_hypothesis_held() {
    let shop = Shop::new();
    let experiment = Experiment::builder("slow stock is fine")
        .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 0.0))
        .hypothesis(Predicate::p99_at_most(&path("/shop/checkout"), PATIENCE))
        .faults(faults("/shop/inventory: latency(1ms) seed=1"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(20))
        .fault_phase(Span::Messages(30))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(report.outcome, Outcome::Held);
    assert_eq!((report.injections[0].matched, report.injections[0].injected), (30, 30));
    let fault = report.predicates[1].fault.unwrap();
    assert!(fault.holds && fault.value.unwrap() >= 1.0, "{report}");
    assert!(report.findings.is_empty(), "{report}");
    assert_eq!(shop.runtime.active_fault_sets(), 0);
}

#[test]
fn a_failure_downstream_of_the_fault_is_a_hidden_dependency() {
    let shop = Shop::new();
    let experiment = Experiment::builder("stock errors")
        .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 0.0))
        .faults(faults("/shop/inventory: error limit=5 seed=2"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(10))
        .fault_phase(Span::Messages(20))
        .recovery(Span::Messages(10), 3)
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(report.outcome, Outcome::Violated);
    let during = report.predicates[0].fault.unwrap();
    assert_eq!(during.value, Some(5.0 / 20.0), "{report}");
    assert_eq!(report.predicates[0].control.unwrap().value, Some(0.0));
    assert_eq!(report.predicates[0].recovery.unwrap().value, Some(0.0));
    assert_eq!(report.recovery_windows, 1);
    assert!(report.time_to_recovery.is_some());
    assert_eq!(report.findings.len(), 2, "{report}");
    assert_eq!(report.findings[0].category, Category::HiddenDependency);
    assert!(report.findings[0].verdict.contains("/shop/checkout"), "{}", report.findings[0].verdict);
    // Checkout's own failure ("no reservation") is new; the injected one is not a finding.
    assert_eq!(report.findings[1].category, Category::NewBehavior);
    assert!(report.findings[1].verdict.contains("no reservation"), "{}", report.findings[1].verdict);
    assert_eq!(report.new_signatures.len(), 2);
}

#[test]
fn a_hypothesis_that_fails_before_any_fault_aborts_without_injecting() {
    let shop = Shop::new();
    let experiment = Experiment::builder("impossible")
        .hypothesis(Predicate::p99_at_most(&path("/shop/checkout"), Duration::ZERO))
        .faults(faults("/shop/inventory: drop"))
        .blast_radius("/shop/**")
        .control(Span::Messages(5))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Aborted {
            reason: "the hypothesis did not hold in the control phase: p99 of /shop/checkout <= 0ns".into()
        }
    );
    assert!(report.injections.is_empty());
    assert!(report.predicates[0].fault.is_none());
    assert!(shop.runtime.dead_letters().is_empty());
}

#[test]
fn an_abort_condition_removes_every_fault_at_once_and_says_why() {
    let shop = Shop::new();
    let checkout = path("/shop/checkout");
    let watched = checkout.clone();
    let experiment = Experiment::builder("stop early")
        .hypothesis(Predicate::error_share_at_most(&checkout, 1.0))
        .faults(faults("/shop/inventory kind(Reserve): error seed=3"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(5))
        .fault_phase(Span::Messages(1_000))
        .abort_when("three failed orders", move |obs| obs.cell(&watched).is_some_and(|c| c.failed >= 3))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(
        report.outcome,
        Outcome::Aborted { reason: "abort condition \"three failed orders\" held".into() }
    );
    // The check after the third order may not see its failure yet, the one
    // after the fourth always does.
    assert!((3..=4).contains(&report.injections[0].injected), "{report}");
    assert_eq!(shop.runtime.active_fault_sets(), 0);
    let answered = shop.inventory().ask(|reply| reply).unwrap().wait(PATIENCE);
    assert_eq!(answered, Ok(true), "the next message is not hit");
    assert!(report
        .findings
        .iter()
        .any(|f| f.category == Category::ProcessBreakdown && f.verdict.starts_with("aborted")));
}

#[test]
fn a_panicking_user_predicate_ends_the_run_with_every_fault_removed() {
    let shop = Shop::new();
    let evaluated = Arc::new(AtomicU64::new(0));
    let count = evaluated.clone();
    let experiment = Experiment::builder("bad predicate")
        .hypothesis(Predicate::custom("panics in the fault phase", move |_| {
            assert!(count.fetch_add(1, Ordering::SeqCst) == 0, "second evaluation");
            true
        }))
        .faults(faults("/shop/inventory: latency(1us)"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(2))
        .fault_phase(Span::Messages(2))
        .build()
        .unwrap();
    let err = experiment.run_with_load(&shop.runtime, shop.load()).unwrap_err();
    assert_eq!(
        err,
        ExperimentError::PredicatePanicked {
            predicate: "panics in the fault phase".into(),
            payload: "second evaluation".into()
        }
    );
    assert_eq!(shop.runtime.active_fault_sets(), 0);
    // The claim went with it: the same cells can be experimented on again.
    let again = Experiment::builder("again")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/inventory: latency(1us)"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(1))
        .fault_phase(Span::Messages(1))
        .build()
        .unwrap();
    assert_eq!(again.run_with_load(&shop.runtime, shop.load()).unwrap().outcome, Outcome::Held);
}

#[test]
fn a_panic_in_the_load_unwinds_with_every_fault_removed() {
    let shop = Shop::new();
    let experiment = Experiment::builder("panicking load")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/inventory: latency(1us)"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(1))
        .fault_phase(Span::Messages(5))
        .build()
        .unwrap();
    let mut calls = 0;
    let mut load = shop.load();
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        experiment.run_with_load(&shop.runtime, || {
            calls += 1;
            assert!(calls < 3, "load failed");
            load();
        })
    }));
    assert!(unwound.is_err());
    assert_eq!(shop.runtime.active_fault_sets(), 0);
}

#[test]
fn a_fault_outside_the_blast_radius_is_refused_before_start() {
    let shop = Shop::new();
    let experiment = Experiment::builder("too wide")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/*: drop"))
        .blast_radius("/shop/inventory")
        .build()
        .unwrap();
    let err = experiment.run(&shop.runtime).unwrap_err();
    assert_eq!(
        err,
        ExperimentError::OutsideBlastRadius { fault: "/shop/*: drop".into(), cell: path("/shop/checkout") }
    );
    assert_eq!(shop.runtime.active_fault_sets(), 0);
}

#[test]
fn a_target_matching_nothing_is_a_warning_in_the_report() {
    let shop = Shop::new();
    let experiment = Experiment::builder("typo")
        .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 0.0))
        .faults(faults("/shop/inventroy: drop"))
        .blast_radius("/shop/**")
        .control(Span::Messages(3))
        .fault_phase(Span::Messages(3))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(report.outcome, Outcome::Held);
    assert_eq!(
        report.warnings,
        vec![
            "the target of `/shop/inventroy: drop` covers no live cell".to_owned(),
            "`/shop/inventroy: drop` matched no message".to_owned(),
        ]
    );
}

#[test]
fn two_experiments_on_the_same_cell_at_once_are_refused() {
    let shop = Shop::new();
    let (release, wait) = mpsc::channel::<()>();
    let (in_fault_phase, started) = mpsc::channel::<()>();
    let first = Experiment::builder("first")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/inventory: latency(1us)"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(1))
        .fault_phase(Span::Messages(1))
        .build()
        .unwrap();
    let second = Experiment::builder("second")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/inv*: drop"))
        .blast_radius("/shop/inv*")
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        let runtime = &shop.runtime;
        let running = scope.spawn(move || {
            let mut calls = 0;
            first.run_with_load(runtime, move || {
                calls += 1;
                if calls == 2 {
                    in_fault_phase.send(()).unwrap();
                    wait.recv_timeout(PATIENCE).unwrap();
                }
            })
        });
        started.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            second.run(runtime).unwrap_err(),
            ExperimentError::Busy { experiment: "first".into(), cell: path("/shop/inventory") }
        );
        release.send(()).unwrap();
        assert_eq!(running.join().unwrap().unwrap().outcome, Outcome::Held);
    });
}

#[test]
fn building_without_fault_hypothesis_or_radius_is_refused() {
    let always = || Predicate::custom("always", |_| true);
    assert_eq!(
        Experiment::builder("x").hypothesis(always()).blast_radius("/a").build().unwrap_err(),
        ExperimentBuildError::NoFault
    );
    assert_eq!(
        Experiment::builder("x").faults(faults("/a: drop")).blast_radius("/a").build().unwrap_err(),
        ExperimentBuildError::NoHypothesis
    );
    assert_eq!(
        Experiment::builder("x").faults(faults("/a: drop")).hypothesis(always()).build().unwrap_err(),
        ExperimentBuildError::NoBlastRadius
    );
    let empty = Experiment::builder("x")
        .faults(faults("/a: drop"))
        .hypothesis(always())
        .blast_radius("/a")
        .fault_phase(Span::Messages(0))
        .build();
    assert_eq!(empty.unwrap_err(), ExperimentBuildError::EmptyPhase { phase: "fault" });
    let bad =
        Experiment::builder("x").faults(faults("/a: drop")).hypothesis(always()).blast_radius("a").build();
    assert!(matches!(bad.unwrap_err(), ExperimentBuildError::Radius(_)));
}

#[test]
fn the_experiment_is_journaled_and_its_findings_can_be_investigated() {
    let shop = Shop::new();
    let experiment = Experiment::builder("journaled")
        .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 0.0))
        .faults(faults("/shop/inventory: error limit=1 seed=4"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(3))
        .fault_phase(Span::Messages(3))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(report.outcome, Outcome::Violated);
    let acts: Vec<String> = shop
        .runtime
        .journal(&JournalQuery::new().kind(SignalType::Chaos))
        .into_iter()
        .filter_map(|signal| match signal.kind {
            SignalKind::Chaos { experiment, what } if experiment == "journaled" => Some(what),
            _ => None,
        })
        .collect();
    assert_eq!(acts.len(), 4, "{acts:?}");
    assert!(acts[0].starts_with("started: faults /shop/inventory: error limit=1 seed=4"));
    assert_eq!(&acts[1..], ["control phase", "fault phase", "ended: violated"]);
    let findings = shop.runtime.journal(&JournalQuery::new().kind(SignalType::ChaosFinding));
    assert_eq!(findings.len(), report.findings.len());
    assert_eq!(findings[0].category, Some(Category::HiddenDependency));
    let investigated = shop.runtime.investigate(findings[0].seq, Some("checkout needs a fallback".into()));
    assert!(investigated.is_ok());
}

#[test]
fn a_ramp_finds_the_same_breaking_step_twice_on_the_same_seed() {
    let ramp = || {
        let shop = Shop::new();
        let experiment = Experiment::builder("how many errors")
            .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 0.2))
            .faults(faults("/shop/inventory: error seed=21"))
            .blast_radius("/shop/inventory")
            .control(Span::Messages(10))
            .fault_phase(Span::Messages(50))
            .build()
            .unwrap();
        experiment.ramp(&shop.runtime, &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 1.0], shop.load()).unwrap()
    };
    let first = ramp();
    let second = ramp();
    assert_eq!(first.breaking_point, second.breaking_point);
    assert_eq!(first.steps, second.steps);
    let breaking = first.breaking_point.expect("the hypothesis breaks before intensity 1");
    assert!(first.steps[..breaking].iter().all(|step| step.held));
    assert_eq!(first.steps[0].injected, 0);
    assert!(first.breaking_intensity().unwrap() >= 0.1, "{first}");
}

#[test]
fn a_ramp_refuses_an_intensity_outside_zero_to_one() {
    let shop = Shop::new();
    let experiment = Experiment::builder("bad ramp")
        .hypothesis(Predicate::custom("always", |_| true))
        .faults(faults("/shop/inventory: drop"))
        .blast_radius("/shop/inventory")
        .build()
        .unwrap();
    let err = experiment.ramp(&shop.runtime, &[0.5, 1.5], || {}).unwrap_err();
    assert_eq!(err, ExperimentError::Intensity { value: "1.5".into() });
}

#[test]
fn a_dropped_reservation_is_a_dead_letter_the_hypothesis_can_forbid() {
    let shop = Shop::new();
    let experiment = Experiment::builder("no lost reservations")
        .hypothesis(Predicate::no_dead_letters("Reserve"))
        .faults(faults("/shop/inventory: drop limit=2 seed=5"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(3))
        .fault_phase(Span::Messages(6))
        .build()
        .unwrap();
    let report = experiment.run_with_load(&shop.runtime, shop.load()).unwrap();
    assert_eq!(report.outcome, Outcome::Violated);
    assert_eq!(report.predicates[0].control.unwrap().value, Some(0.0));
    assert_eq!(report.predicates[0].fault.unwrap().value, Some(2.0));
    assert_eq!(report.findings[0].category, Category::NewBehavior);
}

#[test]
fn a_seeded_experiment_run_twice_gives_identical_injection_logs() {
    let run = || {
        let shop = Shop::new();
        let experiment = Experiment::builder("replayable")
            .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 1.0))
            .faults(faults(
                "/shop/inventory: 30% error seed=8; /shop/inventory: 50% latency(uniform 1us..90us) seed=9",
            ))
            .blast_radius("/shop/inventory")
            .control(Span::Messages(5))
            .fault_phase(Span::Messages(60))
            .build()
            .unwrap();
        experiment.run_with_load(&shop.runtime, shop.load()).unwrap()
    };
    let (first, second) = (run(), run());
    assert!(!first.injection_log.is_empty());
    assert_eq!(first.injection_log, second.injection_log);
    assert_eq!(first.injections, second.injections);
    assert_eq!(first.predicates[0].fault, second.predicates[0].fault);
}

#[test]
fn the_report_names_the_recompositions_made_during_the_experiment() {
    let shop = Shop::new();
    let stock = shop.runtime.spawn_with(cellrt::CellConfig::named("spare"), Stock).unwrap();
    let engine =
        cellrt::Recomposer::new(&shop.runtime, cellrt::RecomposeConfig::default().mode(cellrt::Mode::Off))
            .unwrap();
    engine.manage(&stock, cellrt::Recomposable::new(|| Stock).stateless()).unwrap();
    let split = cellrt::Action::Split { cell: path("/spare"), into: 2, by: cellrt::SplitBy::Stateless };
    let hold = cellrt::Expected::Hold { metric: cellrt::Metric::QueueDelay };
    let experiment = Experiment::builder("a change during the fault phase")
        .hypothesis(Predicate::error_share_at_most(&path("/shop/checkout"), 1.0))
        .faults(faults("/shop/inventory: latency(1ms) seed=1"))
        .blast_radius("/shop/inventory")
        .control(Span::Messages(5))
        .fault_phase(Span::Messages(5))
        .build()
        .unwrap();
    let mut orders = shop.load();
    let mut sent = 0;
    let report = experiment
        .run_with_load(&shop.runtime, || {
            orders();
            sent += 1;
            // The sixth order is the first of the fault phase.
            if sent == 6 {
                let plan = engine.propose(vec![split.clone()], hold).unwrap();
                engine.approve(plan).unwrap();
            }
        })
        .unwrap();
    let steps: Vec<(u64, String)> = report.recompositions.iter().map(|s| (s.plan, s.step.clone())).collect();
    assert_eq!(steps, [(1, "proposed".into()), (1, "approved".into()), (1, "applied".into())]);
    assert_eq!(report.recompositions[0].cell, Some(path("/spare")));
    assert!(report.to_string().contains("recomposition: plan 1 at /spare: applied"), "{report}");
}
