//! Recomposing a supervised cell: the cells an action adds are children of
//! the cell's supervisor, restarted after a failure and stopped with it; a
//! replace moves the supervisor's entry to the variant; changes that would
//! leave the entry without its cell are refused.

#![cfg(feature = "observe")]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{
    Action, Addr, Cell, CellConfig, CellError, ChildInfo, ChildSpec, ChildState, Context, Expected, Metric,
    Mode, ObservationConfig, Recomposable, RecomposeConfig, RecomposeError, Recomposer, Restart, Runtime,
    SplitBy, SupervisionEventKind, Supervisor, SupervisorSpec,
};
use common::{eventually, wait_for, PATIENCE};

/// A job of one kind; `fail` makes its handler panic.
struct Job {
    kind: &'static str,
    n: u64,
    fail: bool,
}

fn job(kind: &'static str, n: u64) -> Job {
    Job { kind, n, fail: false }
}

fn failing(kind: &'static str) -> Job {
    Job { kind, n: u64::MAX, fail: true }
}

/// What handled a job: the cell's path, its variant, and the job's number.
type Log = Arc<Mutex<Vec<(String, &'static str, u64)>>>;

/// Logs every job it handles under `variant`; panics on a failing one.
struct Worker {
    variant: &'static str,
    log: Log,
}

impl Cell for Worker {
    type Message = Job;

    fn message_kind(job: &Job) -> &'static str {
        job.kind
    }

    fn handle(&mut self, ctx: &mut Context<Self>, job: Job) -> Result<(), CellError> {
        assert!(!job.fail, "job of kind {} failed", job.kind);
        self.log.lock().unwrap().push((ctx.path().to_string(), self.variant, job.n));
        Ok(())
    }
}

fn worker(variant: &'static str, log: &Log) -> impl Fn() -> Worker + Send + Sync + 'static {
    let log = log.clone();
    move || Worker { variant, log: log.clone() }
}

fn runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .observation(ObservationConfig::default().sample_every(1))
        .build()
        .unwrap()
}

/// Under a supervisor `root`, a supervisor `app` with one permanent child
/// `work` (`/root/app/work`), managed by an engine that changes nothing by
/// itself.
struct Supervised {
    root: Supervisor,
    app: Supervisor,
    work: Addr<Job>,
    engine: Recomposer,
}

fn supervised_work(runtime: &Runtime, log: &Log) -> Supervised {
    supervised_work_restarting(runtime, log, 3)
}

/// As [`supervised_work`], `app` allowing `max_restarts` a minute.
fn supervised_work_restarting(runtime: &Runtime, log: &Log, max_restarts: u32) -> Supervised {
    let app = SupervisorSpec::new("app")
        .intensity(max_restarts, Duration::from_secs(60))
        .child(ChildSpec::new("work", worker("base", log)));
    let spec = SupervisorSpec::new("root").child(ChildSpec::supervisor("app", app));
    let root = runtime.start_supervisor(spec, PATIENCE).unwrap();
    let app = root.supervisor("app").unwrap();
    let work = app.child::<Job>("work").unwrap();
    let engine = Recomposer::new(runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    let spec = Recomposable::new(worker("base", log)).variant("v2", worker("v2", log)).stateless();
    engine.manage(&work, spec).unwrap();
    Supervised { root, app, work, engine }
}

fn apply(engine: &Recomposer, action: Action) -> u64 {
    let plan = engine.propose(vec![action], Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    engine.approve(plan).unwrap();
    plan
}

/// The numbers handled at `path`, in order.
fn handled_at(log: &Log, path: &str) -> Vec<u64> {
    log.lock().unwrap().iter().filter(|(p, _, _)| p == path).map(|(_, _, n)| *n).collect()
}

fn child<'a>(children: &'a [ChildInfo], id: &str) -> Option<&'a ChildInfo> {
    children.iter().find(|c| c.id == id)
}

fn restarts_of(app: &Supervisor, id: &str) -> usize {
    app.history()
        .iter()
        .filter(|e| e.child == id && matches!(e.kind, SupervisionEventKind::Restarting { .. }))
        .count()
}

#[test]
fn an_isolated_kind_of_a_supervised_cell_is_a_child_of_its_supervisor_restarted_after_a_panic() {
    let runtime = runtime();
    let log = Log::default();
    let Supervised { app, work, engine, .. } = supervised_work(&runtime, &log);
    work.send(job("slow", 0)).unwrap();
    work.send(job("fast", 1)).unwrap();
    common::fraud::wait_for_kinds(&runtime, "/root/app/work", &["slow", "fast"]);

    let isolate = apply(&engine, Action::Isolate { cell: work.path().clone(), kind: "slow".into() });
    let children = app.which_children();
    let isolated = child(&children, "work:slow").expect("the kind's cell is a child of `app`");
    assert_eq!(isolated.path.as_str(), "/root/app/work/slow");
    assert_eq!(isolated.restart, Restart::Transient);
    assert_eq!(child(&children, "work").unwrap().state, ChildState::Running);

    for n in 2..12 {
        work.send(job(if n % 2 == 0 { "slow" } else { "fast" }, n)).unwrap();
    }
    wait_for("10 more handled", || log.lock().unwrap().len() == 12);
    // A panic in the kind's cell: its supervisor restarts it in place, and
    // the kind's messages sent since are handled by the new incarnation.
    work.send(failing("slow")).unwrap();
    wait_for("the kind's cell restarted", || restarts_of(&app, "work:slow") == 1);
    for n in 12..16 {
        work.send(job("slow", n)).unwrap();
    }
    wait_for("4 more handled", || log.lock().unwrap().len() == 16);
    assert_eq!(handled_at(&log, "/root/app/work/slow"), vec![2, 4, 6, 8, 10, 12, 13, 14, 15]);
    assert_eq!(handled_at(&log, "/root/app/work"), vec![0, 1, 3, 5, 7, 9, 11]);
    assert_eq!(restarts_of(&app, "work"), 0);

    // Retired: the kind's cell drains and its supervisor forgets it.
    revert(&engine, isolate);
    wait_for("the kind's cell left `app`", || child(&app.which_children(), "work:slow").is_none());
    work.send(job("slow", 16)).unwrap();
    wait_for("the kind back at the cell", || handled_at(&log, "/root/app/work").last() == Some(&16));
    runtime.shutdown(PATIENCE);
}

/// Reverts `plan`, retrying while the change it undoes is still being
/// carried out (an isolation's hand-over of queued messages).
fn revert(engine: &Recomposer, plan: u64) {
    assert!(
        eventually(|| match engine.revert(plan) {
            Ok(()) => true,
            Err(RecomposeError::InProgress { .. }) => false,
            Err(err) => panic!("{err}"),
        }),
        "the revert stayed in progress"
    );
}

#[test]
fn a_restart_of_the_supervisor_keeps_the_recomposed_layout() {
    let runtime = runtime();
    let log = Log::default();
    // `app` gives up at the first failure of `work`; `root` restarts it.
    let Supervised { root, app, work, engine } = supervised_work_restarting(&runtime, &log, 0);
    work.send(job("slow", 0)).unwrap();
    work.send(job("fast", 1)).unwrap();
    common::fraud::wait_for_kinds(&runtime, "/root/app/work", &["slow", "fast"]);
    apply(&engine, Action::Isolate { cell: work.path().clone(), kind: "slow".into() });
    work.send(job("slow", 2)).unwrap();
    wait_for("3 handled", || log.lock().unwrap().len() == 3);
    // `work` fails: `app` gives up, and `root` restarts it, which restarts
    // both of its children in place, the kind's cell too.
    work.send(failing("fast")).unwrap();
    wait_for("app restarted", || restarts_of(&root, "app") == 1);
    wait_for("both children running again", || {
        let children = app.which_children();
        children.len() == 2 && children.iter().all(|c| c.state == ChildState::Running)
    });
    let ids: Vec<String> = app.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["work", "work:slow"]);
    for n in 3..9 {
        work.send(job(if n % 2 == 0 { "slow" } else { "fast" }, n)).unwrap();
    }
    wait_for("9 handled", || log.lock().unwrap().len() == 9);
    assert_eq!(handled_at(&log, "/root/app/work/slow"), vec![2, 4, 6, 8]);
    assert_eq!(handled_at(&log, "/root/app/work"), vec![0, 1, 3, 5, 7]);
    assert_eq!(engine.layout(work.path()).unwrap().isolated.len(), 1);
    runtime.shutdown(PATIENCE);
}

#[test]
fn replacing_a_supervised_cell_moves_its_supervisor_entry_to_the_variant() {
    let runtime = runtime();
    let log = Log::default();
    let Supervised { app, work, engine, .. } = supervised_work(&runtime, &log);
    for n in 0..5 {
        work.send(job("any", n)).unwrap();
    }
    apply(&engine, Action::Replace { cell: work.path().clone(), variant: "v2".into() });
    for n in 5..10 {
        work.send(job("any", n)).unwrap();
    }
    wait_for("10 handled", || log.lock().unwrap().len() == 10);
    // The variant fails; the supervisor restarts the child as the variant,
    // behind the same address, with what was queued kept.
    work.send(failing("any")).unwrap();
    wait_for("the child restarted", || restarts_of(&app, "work") == 1);
    for n in 10..13 {
        work.send(job("any", n)).unwrap();
    }
    wait_for("13 handled", || log.lock().unwrap().len() == 13);
    let log = log.lock().unwrap().clone();
    let numbers: Vec<u64> = log.iter().map(|(_, _, n)| *n).collect();
    assert_eq!(numbers, (0..13).collect::<Vec<u64>>());
    let variants: Vec<&str> = log.iter().skip(5).map(|(_, v, _)| *v).collect();
    assert_eq!(variants, vec!["v2"; 8]);
    let children = app.which_children();
    assert_eq!(children.len(), 1);
    assert_eq!((children[0].id.as_str(), children[0].state), ("work", ChildState::Running));
    assert_eq!(children[0].restarts, 1);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_split_of_a_supervised_cell_stops_with_its_supervisor() {
    let runtime = runtime();
    let log = Log::default();
    let Supervised { root, app, work, engine } = supervised_work(&runtime, &log);
    apply(&engine, Action::Split { cell: work.path().clone(), into: 3, by: SplitBy::Stateless });
    let ids: Vec<String> = app.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["work", "work:1", "work:2"]);
    for n in 0..30 {
        work.send(job("any", n)).unwrap();
    }
    wait_for("30 handled", || log.lock().unwrap().len() == 30);
    for path in ["/root/app/work", "/root/app/work/1", "/root/app/work/2"] {
        assert_eq!(handled_at(&log, path).len(), 10, "{path}");
    }
    assert_eq!(runtime.cell_count(), 5);
    root.terminate_child("app", PATIENCE).unwrap();
    assert!(eventually(|| runtime.cell_count() == 1), "{} cells left", runtime.cell_count());
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_supervised_cell_retired_into_another_leaves_its_supervisor_until_it_is_revived() {
    let runtime = runtime();
    let log = Log::default();
    let Supervised { app, work, engine, .. } = supervised_work(&runtime, &log);
    let other = runtime
        .spawn_with(CellConfig::named("other"), Worker { variant: "other", log: log.clone() })
        .unwrap();
    engine.manage(&other, Recomposable::new(worker("other", &log))).unwrap();
    work.send(job("any", 0)).unwrap();
    wait_for("handled", || handled_at(&log, "/root/app/work") == vec![0]);
    let retire = apply(
        &engine,
        Action::RetireInto { cell: work.path().clone(), successor: other.path().clone(), state: false },
    );
    // The supervisor lets the entry go: the cell's exit is not a failure
    // to restart, and the address forwards to `other`.
    assert!(app.which_children().is_empty());
    for n in 1..4 {
        work.send(job("any", n)).unwrap();
    }
    wait_for("3 forwarded", || handled_at(&log, "/other") == vec![1, 2, 3]);
    assert_eq!(restarts_of(&app, "work"), 0);
    // Reverted (a replace with the cell's own variant): the entry is back,
    // with a new cell that its supervisor restarts.
    engine.revert(retire).unwrap();
    let children = app.which_children();
    assert_eq!(children.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), vec!["work"]);
    work.send(job("any", 4)).unwrap();
    work.send(failing("any")).unwrap();
    wait_for("the revived cell restarted", || restarts_of(&app, "work") == 1);
    work.send(job("any", 5)).unwrap();
    wait_for("handled again", || handled_at(&log, "/root/app/work") == vec![0, 4, 5]);
    runtime.shutdown(PATIENCE);
}

#[cfg(feature = "storage")]
#[test]
fn a_supervised_cell_split_by_key_hands_its_entry_to_the_pool_and_takes_it_back_at_the_merge() {
    let runtime = Runtime::builder()
        .worker_threads(2)
        .observation(ObservationConfig::default().sample_every(1))
        .storage(cellrt::StorageConfig::in_memory())
        .build()
        .unwrap();
    let log = Log::default();
    let app = SupervisorSpec::new("app").child(ChildSpec::new("work", worker("base", &log)));
    let root = runtime
        .start_supervisor(SupervisorSpec::new("root").child(ChildSpec::supervisor("app", app)), PATIENCE);
    let app = root.unwrap().supervisor("app").unwrap();
    let work = app.child::<Job>("work").unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Off)).unwrap();
    engine.manage(&work, Recomposable::new(worker("base", &log)).keyed(|job: &Job| job.n % 4)).unwrap();
    let split = apply(&engine, Action::Split { cell: work.path().clone(), into: 2, by: SplitBy::Key });
    wait_for("the pool released", || app.which_children().iter().all(|c| c.state == ChildState::Running));
    let ids: Vec<String> = app.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, vec!["work:0", "work:1"]);
    for n in 0..16 {
        work.send(job("any", n)).unwrap();
    }
    wait_for("16 handled", || log.lock().unwrap().len() == 16);
    // Each key is handled by one member, in the order sent.
    let owners: Vec<String> = (0..4)
        .map(|key| {
            let entries = log.lock().unwrap();
            let at: Vec<&(String, &str, u64)> = entries.iter().filter(|(_, _, n)| n % 4 == key).collect();
            assert_eq!(
                at.iter().map(|(_, _, n)| *n).collect::<Vec<u64>>(),
                vec![key, key + 4, key + 8, key + 12]
            );
            assert!(at.iter().all(|(path, _, _)| *path == at[0].0), "key {key} has one owner");
            at[0].0.clone()
        })
        .collect();
    assert!(owners.iter().all(|o| o == "/root/app/work/0" || o == "/root/app/work/1"), "{owners:?}");
    // A member that fails is restarted by the supervisor.
    work.send(Job { kind: "any", n: 3, fail: true }).unwrap();
    let member = format!("work:{}", &owners[3][owners[3].len() - 1..]);
    wait_for("the member restarted", || restarts_of(&app, &member) == 1);
    // The merge gives the entry back to the supervisor.
    assert!(eventually(|| engine.revert(split).is_ok()), "the merge stayed refused");
    wait_for("the pool left", || {
        let children = app.which_children();
        children.len() == 1 && children[0].id == "work" && children[0].state == ChildState::Running
    });
    work.send(job("any", 16)).unwrap();
    wait_for("handled by the cell", || handled_at(&log, "/root/app/work") == vec![16]);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_supervised_cell_whose_supervisor_stopped_cannot_be_changed() {
    let runtime = runtime();
    let log = Log::default();
    let Supervised { root, app, work, engine } = supervised_work(&runtime, &log);
    root.terminate_child("app", PATIENCE).unwrap();
    assert!(eventually(|| runtime.cell_count() == 1), "{} cells left", runtime.cell_count());
    let split = Action::Split { cell: work.path().clone(), into: 2, by: SplitBy::Stateless };
    let plan = engine.propose(vec![split], Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    assert_eq!(engine.approve(plan), Err(RecomposeError::Stopped { cell: work.path().clone() }));
    assert!(app.is_stopped());
    assert_eq!(runtime.cell_count(), 1);
    runtime.shutdown(PATIENCE);
}
