//! Recomposition across process restarts: kept plans are stored and applied
//! again when a runtime on the same data directory manages the cell.
#![cfg(all(feature = "storage", feature = "observe"))]

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use cellrt::{
    Action, Cell, CellConfig, CellError, Context, Expected, JournalQuery, Metric, ObservationConfig,
    PlanStatus, Recomposable, RecomposeConfig, RecomposeError, Recomposer, Runtime, SignalKind,
};
use common::fraud::{wait_for_kinds, Fraud, Tally, Txn};
use common::wait_for;

const WINDOW: Duration = Duration::from_millis(100);

fn stored_runtime(dir: &std::path::Path) -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .quiet_panics(true)
        .storage(cellrt::StorageConfig::dir(dir))
        .observation(ObservationConfig::default().window(WINDOW).sample_every(1))
        .build()
        .unwrap()
}

fn fraud_spec(tally: &Arc<Tally>) -> Recomposable<Txn> {
    let made = tally.clone();
    let strict = tally.clone();
    Recomposable::new(move || Fraud(made.clone())).variant("strict", move || Fraud(strict.clone()))
}

#[test]
fn kept_plans_are_applied_again_when_a_runtime_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    {
        let runtime = stored_runtime(dir.path());
        let tally = Arc::new(Tally::default());
        let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
        let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
        assert_eq!(engine.manage(&fraud, fraud_spec(&tally)).unwrap(), cellrt::Restored::default());
        fraud.send(Txn::Legacy).unwrap();
        wait_for_kinds(&runtime, "/fraud", &["legacy"]);
        let plan = engine
            .propose(vec![Action::Isolate { cell: fraud.path().clone(), kind: "legacy".into() }], hold)
            .unwrap();
        engine.approve(plan).unwrap();
        wait_for("the plan kept", || matches!(engine.plan(plan).unwrap().status, PlanStatus::Kept { .. }));
        runtime.shutdown(Duration::from_secs(5));
    }
    let runtime = stored_runtime(dir.path());
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let restored = engine.manage(&fraud, fraud_spec(&tally)).unwrap();
    assert_eq!((restored.plans, restored.warning), (vec![1], None));
    let layout = engine.layout(fraud.path()).unwrap();
    let isolated: Vec<(String, String, String)> =
        layout.isolated.iter().map(|i| (i.kind.clone(), i.cell.to_string(), i.variant.clone())).collect();
    assert_eq!(isolated, [("legacy".to_owned(), "/fraud/legacy".to_owned(), "base".to_owned())]);
    assert_eq!(runtime.cell_count(), 2);
    fraud.send(Txn::Legacy).unwrap();
    fraud.send(Txn::Card(std::time::Instant::now())).unwrap();
    wait_for("both handled", || tally.legacy.load(SeqCst) == 1 && tally.card.load(SeqCst) == 1);
    // The handler ran; its turn adds its count when it ends.
    let legacy_handled = || {
        let legacy = runtime.snapshot().cells.into_iter().find(|c| c.path.as_str() == "/fraud/legacy");
        legacy.and_then(|c| c.metrics).map_or(0, |m| m.handled)
    };
    wait_for("the legacy cell's turn counted", || legacy_handled() >= 1);
    let legacy = runtime.snapshot().cells.into_iter().find(|c| c.path.as_str() == "/fraud/legacy").unwrap();
    assert_eq!(legacy.metrics.unwrap().handled, 1, "the legacy transaction went to the isolated cell");
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_kept_plan_that_cannot_be_applied_again_is_reported_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let hold = Expected::Hold { metric: Metric::FailureRatio };
    {
        let runtime = stored_runtime(dir.path());
        let tally = Arc::new(Tally::default());
        let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
        let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
        engine.manage(&fraud, fraud_spec(&tally)).unwrap();
        let plan = engine
            .propose(vec![Action::Replace { cell: fraud.path().clone(), variant: "strict".into() }], hold)
            .unwrap();
        engine.approve(plan).unwrap();
        wait_for("the plan kept", || matches!(engine.plan(plan).unwrap().status, PlanStatus::Kept { .. }));
        runtime.shutdown(Duration::from_secs(5));
    }
    // The next run no longer registers the variant.
    let runtime = stored_runtime(dir.path());
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let made = tally.clone();
    let restored = engine.manage(&fraud, Recomposable::new(move || Fraud(made.clone()))).unwrap();
    let replace = Action::Replace { cell: fraud.path().clone(), variant: "strict".into() };
    assert_eq!(restored.plans, Vec::<u64>::new());
    let warning = restored.warning.unwrap();
    assert_eq!((warning.plan, warning.action), (1, Some(replace)));
    assert_eq!(
        warning.error,
        cellrt::RestoreError::Apply(RecomposeError::UnknownVariant {
            cell: fraud.path().clone(),
            variant: "strict".into()
        })
    );
    assert_eq!(engine.layout(fraud.path()).unwrap().variant, "base");
    let journaled = runtime.journal(&JournalQuery::new().cell(fraud.path().clone())).into_iter().any(|s| {
        matches!(&s.kind, SignalKind::Configuration { what } if what.contains("kept plan 1 not applied again"))
    });
    assert!(journaled);
    runtime.shutdown(Duration::from_secs(5));
}

// ------------------------------------------------------ retire a cell ----

/// Keeps each number it is sent under that number in its tree; waits on a
/// gate first when sent one.
enum Keep {
    Gate(std::sync::mpsc::Receiver<()>),
    Number(u64),
}

struct Keeper(Arc<std::sync::Mutex<Vec<(String, u64)>>>);

impl Cell for Keeper {
    type Message = Keep;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Keep) -> Result<(), CellError> {
        match msg {
            Keep::Gate(gate) => {
                let _ = gate.recv();
            }
            Keep::Number(n) => {
                ctx.store()?.put(n, &n)?;
                self.0.lock().unwrap().push((ctx.path().to_string(), n));
            }
        }
        Ok(())
    }
}

fn keys(runtime: &Runtime, path: &str) -> Vec<u64> {
    let tree = runtime.store(&path.parse().unwrap()).unwrap();
    tree.scan_prefix::<u64>([]).map(|entry| entry.unwrap().1).collect()
}

#[test]
fn a_cell_retired_into_another_hands_over_its_queue_its_state_and_its_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = stored_runtime(dir.path());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let mut addrs = Vec::new();
    for name in ["old", "new"] {
        let addr = runtime.spawn_with(CellConfig::named(name), Keeper(log.clone())).unwrap();
        let made = log.clone();
        engine.manage(&addr, Recomposable::new(move || Keeper(made.clone()))).unwrap();
        addrs.push(addr);
    }
    let (old, new) = (&addrs[0], &addrs[1]);
    (0..3).for_each(|n| old.send(Keep::Number(n)).unwrap());
    wait_for("three kept", || log.lock().unwrap().len() == 3);
    // Held on a gate while 3..8 queue.
    let (open, gate) = std::sync::mpsc::channel();
    old.send(Keep::Gate(gate)).unwrap();
    (3..8).for_each(|n| old.send(Keep::Number(n)).unwrap());
    let retire = Action::RetireInto { cell: old.path().clone(), successor: new.path().clone(), state: true };
    let plan = engine.propose(vec![retire], Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    engine.approve(plan).unwrap();
    assert_eq!(engine.layout(old.path()).unwrap().retired_into, Some(new.path().clone()));
    // Sent to the old address after the retire: forwarded to the successor.
    (8..12).for_each(|n| old.send(Keep::Number(n)).unwrap());
    drop(open);
    wait_for("all twelve kept", || log.lock().unwrap().len() == 12);
    let by = |path: &str| -> Vec<u64> {
        let mut ns: Vec<u64> =
            log.lock().unwrap().iter().filter(|(p, _)| p == path).map(|(_, n)| *n).collect();
        ns.sort_unstable();
        ns
    };
    assert_eq!(by("/old"), [0, 1, 2]);
    assert_eq!(by("/new"), (3..12).collect::<Vec<u64>>());
    wait_for("the old cell stopped", || runtime.cell_count() == 1);
    assert_eq!(keys(&runtime, "/old"), Vec::<u64>::new());
    assert_eq!(keys(&runtime, "/new"), (0..12).collect::<Vec<u64>>());
    // Kept (the old address's windows hold nothing); a retired cell then
    // takes no action but a revive.
    wait_for("the plan kept", || matches!(engine.plan(plan).unwrap().status, PlanStatus::Kept { .. }));
    let isolate = Action::Isolate { cell: old.path().clone(), kind: "x".into() };
    let refused = engine.propose(vec![isolate], Expected::Hold { metric: Metric::QueueDelay });
    assert!(
        matches!(&refused, Err(RecomposeError::Layout { reason, .. }) if reason.contains("retired into /new")),
        "{refused:?}"
    );
    // Reverting revives a fresh cell at the old path; the state stays moved.
    engine.revert(plan).unwrap();
    assert_eq!(engine.layout(old.path()).unwrap().retired_into, None);
    old.send(Keep::Number(100)).unwrap();
    wait_for("the revived cell keeps it", || by("/old").contains(&100));
    assert_eq!(keys(&runtime, "/old"), [100]);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn retiring_into_itself_an_unknown_cell_or_another_message_type_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = stored_runtime(dir.path());
    let log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let engine = Recomposer::new(&runtime, RecomposeConfig::default()).unwrap();
    let keeper = runtime.spawn_with(CellConfig::named("keeper"), Keeper(log.clone())).unwrap();
    let made = log.clone();
    engine.manage(&keeper, Recomposable::new(move || Keeper(made.clone()))).unwrap();
    let tally = Arc::new(Tally::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(tally.clone())).unwrap();
    engine.manage(&fraud, fraud_spec(&tally)).unwrap();
    let hold = Expected::Hold { metric: Metric::QueueDelay };
    let into = |successor: &str| {
        vec![Action::RetireInto {
            cell: keeper.path().clone(),
            successor: successor.parse().unwrap(),
            state: false,
        }]
    };
    assert!(matches!(engine.propose(into("/keeper"), hold), Err(RecomposeError::Invalid { .. })));
    assert_eq!(
        engine.propose(into("/nowhere"), hold),
        Err(RecomposeError::UnknownCell { cell: "/nowhere".parse().unwrap() })
    );
    let plan = engine.propose(into("/fraud"), hold).unwrap();
    assert!(matches!(engine.approve(plan), Err(RecomposeError::Invalid { .. })));
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Failed { .. }));
    assert_eq!(engine.layout(keeper.path()).unwrap().retired_into, None);
    runtime.shutdown(Duration::from_secs(5));
}
