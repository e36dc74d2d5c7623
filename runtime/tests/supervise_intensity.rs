//! Restart intensity, escalation to the runtime root, and ordered start.

mod common;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{
    ChildSpec, ChildState, Escalation, FailureCause, Runtime, StartError, StopReason, Strategy,
    SupervisionEventKind, SupervisorSpec,
};
use common::probe::{reason_name, ProbeCfg, P};
use common::{eventually, Log, PATIENCE};

fn runtime_with_escalations() -> (Runtime, Arc<Mutex<Vec<Escalation>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let hook = seen.clone();
    let rt = Runtime::builder()
        .worker_threads(2)
        .quiet_panics(true)
        .on_escalation(move |e| hook.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    (rt, seen)
}

/// Sends a panic to `id` and waits until its supervisor restarted it.
fn crash_and_wait(sup: &cellrt::Supervisor, id: &str) {
    let before = sup.which_children().iter().find(|c| c.id == id).unwrap().restarts;
    sup.child::<P>(id).unwrap().send(P::Panic).unwrap();
    assert!(eventually(|| sup
        .which_children()
        .iter()
        .any(|c| c.id == id && c.restarts == before + 1 && c.state == ChildState::Running)));
}

#[test]
fn crashes_spaced_beyond_the_period_never_exhaust_intensity_one() {
    let (rt, escalations) = runtime_with_escalations();
    let log = Log::default();
    let spec = SupervisorSpec::new("sup")
        .intensity(1, Duration::from_millis(100))
        .child(ProbeCfg::new("a", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    for _ in 0..4 {
        crash_and_wait(&sup, "a");
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(!sup.is_stopped());
    assert_eq!(sup.which_children()[0].restarts, 4);
    assert!(escalations.lock().unwrap().is_empty());
}

#[test]
fn intensity_two_third_crash_in_the_period_terminates_the_supervisor() {
    let (rt, escalations) = runtime_with_escalations();
    let log = Log::default();
    let spec = SupervisorSpec::new("sup")
        .intensity(2, Duration::from_secs(60))
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("b", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let watch = sup.watch();
    crash_and_wait(&sup, "a");
    crash_and_wait(&sup, "a");
    let a = sup.child::<P>("a").unwrap();
    a.send(P::Panic).unwrap();
    let terminated = watch.wait(PATIENCE).unwrap();
    let StopReason::Escalated(escalation) = &terminated.reason else { panic!("{terminated:?}") };
    assert_eq!(escalation.supervisor.as_str(), "/sup");
    assert_eq!(escalation.child.as_str(), "/sup/a");
    assert_eq!(reason_name(&escalation.reason), "failed");
    assert_eq!((escalation.max_restarts, escalation.period), (2, Duration::from_secs(60)));
    assert_eq!(
        terminated.reason.to_string(),
        "escalated: supervisor /sup gave up: child /sup/a exceeded 2 restarts in 60s"
    );
    assert_eq!(
        log.items(),
        [
            "start a",
            "start b",
            "stop a failed",
            "start a",
            "stop a failed",
            "start a",
            "stop a failed",
            "stop b parent"
        ],
        "the third crash is not restarted; the others stop in reverse order"
    );
    assert_eq!(rt.escalations(), [(**escalation).clone()]);
    assert_eq!(*escalations.lock().unwrap(), [(**escalation).clone()], "the root policy hook ran once");
    assert!(eventually(|| a.is_closed()), "children stopped for good with their supervisor");
    assert!(matches!(sup.history().last().unwrap().kind, SupervisionEventKind::GaveUp));
}

#[test]
fn intensity_zero_gives_up_at_the_first_crash() {
    let (rt, _) = runtime_with_escalations();
    let log = Log::default();
    let spec = SupervisorSpec::new("sup")
        .intensity(0, Duration::from_secs(1))
        .child(ProbeCfg::new("a", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.child::<P>("a").unwrap().send(P::Fail).unwrap();
    assert!(matches!(sup.watch().wait(PATIENCE).unwrap().reason, StopReason::Escalated(_)));
    assert_eq!(log.items(), ["start a", "stop a failed"]);
}

#[test]
fn escalation_goes_through_two_levels_to_the_root() {
    let (rt, escalations) = runtime_with_escalations();
    let log = Log::default();
    let inner = SupervisorSpec::new("inner")
        .intensity(1, Duration::from_secs(60))
        .child(ProbeCfg::new("a", &log).spec());
    let outer = SupervisorSpec::new("outer")
        .intensity(1, Duration::from_secs(60))
        .child(ProbeCfg::new("b", &log).spec())
        .child(ChildSpec::supervisor("inner", inner));
    let outer = rt.start_supervisor(outer, PATIENCE).unwrap();
    let inner = outer.supervisor("inner").expect("a nested supervisor handle");
    assert_eq!(inner.path().as_str(), "/outer/inner");
    let a = inner.child::<P>("a").unwrap();
    // The inner supervisor absorbs one crash, gives up at the second; the
    // outer one restarts it once, and gives up when it gives up again.
    for _ in 0..4 {
        a.send(P::Panic).unwrap();
    }
    let terminated = outer.watch().wait(PATIENCE).unwrap();
    let StopReason::Escalated(top) = terminated.reason else { panic!("{terminated:?}") };
    assert_eq!((top.supervisor.as_str(), top.child.as_str()), ("/outer", "/outer/inner"));
    let StopReason::Escalated(below) = &top.reason else { panic!("{top:?}") };
    assert_eq!((below.supervisor.as_str(), below.child.as_str()), ("/outer/inner", "/outer/inner/a"));
    assert_eq!(escalations.lock().unwrap().len(), 1, "only the top-level escalation reaches the root");
    assert_eq!(
        log.items(),
        [
            "start b",
            "start a",
            "stop a failed",
            "start a",
            "stop a failed",
            "start a",
            "stop a failed",
            "start a",
            "stop a failed",
            "stop b parent"
        ]
    );
    assert!(eventually(|| a.is_closed()));
}

#[test]
fn a_failed_child_start_stops_the_children_before_it_in_reverse_and_fails_the_start() {
    let rt = common::runtime(2);
    let log = Log::default();
    let spec = SupervisorSpec::new("sup")
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("b", &log).spec())
        .child(ProbeCfg::new("c", &log).failing_starts(1).spec())
        .child(ProbeCfg::new("d", &log).spec());
    let err = rt.start_supervisor(spec, PATIENCE).unwrap_err();
    let StartError::ChildFailed { id, path, reason: StopReason::Failed(failure) } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((id.as_str(), path.as_str()), ("c", "/sup/c"), "the child that failed, not its supervisor");
    assert_eq!(failure.path.as_str(), "/sup/c");
    assert_eq!(failure.cause, FailureCause::Error { text: "cannot start".into(), type_name: None });
    assert_eq!(
        log.items(),
        ["start a", "start b", "start c failed", "stop c failed", "stop b parent", "stop a parent"],
        "d never starts"
    );
    assert!(eventually(|| rt.cell_count() == 0), "nothing is left running");
}

/// A one-for-all supervisor of `names`, with `max_restarts` in a minute; `a`
/// is crashed once `b`'s next start is set to fail.
fn crash_a_while_b_cannot_start(
    rt: &Runtime,
    log: &Log<String>,
    max_restarts: u32,
    names: &[&'static str],
) -> cellrt::Supervisor {
    let probes: Vec<ProbeCfg> = names.iter().map(|name| ProbeCfg::new(name, log)).collect();
    let spec = probes.iter().fold(
        SupervisorSpec::new("sup")
            .strategy(Strategy::OneForAll)
            .intensity(max_restarts, Duration::from_secs(60)),
        |spec, probe| spec.child(probe.spec()),
    );
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    probes[1].fail_starts.store(1, SeqCst);
    sup.child::<P>("a").unwrap().send(P::Panic).unwrap();
    sup
}

#[test]
fn a_child_failing_to_start_during_a_group_restart_restarts_the_group_again() {
    let rt = common::runtime(2);
    let log = Log::default();
    let sup = crash_a_while_b_cannot_start(&rt, &log, 5, &["a", "b", "c"]);
    assert!(eventually(|| log.len() >= 13), "{:?}", log.items());
    assert_eq!(
        log.items()[3..],
        [
            "stop a failed",
            "stop c restart",
            "stop b restart",
            "start a",
            "start b failed",
            "stop b failed",
            "stop a restart",
            "start a",
            "start b",
            "start c",
        ][..],
    );
    // The last start is logged by `c` before its supervisor hears of it.
    assert!(eventually(|| matches!(
        sup.history().last().unwrap().kind,
        SupervisionEventKind::GroupRestarted
    )));
    let kinds: Vec<String> = sup.history().iter().map(|e| format!("{} {:?}", e.child, e.kind)).collect();
    assert!(kinds.iter().any(|k| k.starts_with("b StartFailed")), "{kinds:?}");
    assert!(sup.which_children().iter().all(|c| c.state == ChildState::Running));
}

#[test]
fn a_failed_group_restart_attempt_counts_toward_the_intensity() {
    let rt = common::runtime(2);
    let log = Log::default();
    let sup = crash_a_while_b_cannot_start(&rt, &log, 1, &["a", "b"]);
    // Restart 1: the group; restart 2: the retry after b's failed start.
    let terminated = sup.watch().wait(PATIENCE).unwrap();
    assert!(matches!(terminated.reason, StopReason::Escalated(_)), "{terminated:?}");
}

#[test]
fn a_deep_start_failure_is_a_nested_typed_error_naming_each_child_its_path_and_its_own_error() {
    let rt = common::runtime(2);
    let log = Log::default();
    let db = SupervisorSpec::new("db")
        .child(ProbeCfg::new("pool", &log).spec())
        .child(ProbeCfg::new("conn", &log).failing_starts(1).spec());
    let spec = SupervisorSpec::new("app")
        .child(ProbeCfg::new("web", &log).spec())
        .child(cellrt::ChildSpec::supervisor("db", db));
    let err = rt.start_supervisor(spec, PATIENCE).unwrap_err();
    // OTP: {shutdown, {failed_to_start_child, db, {shutdown, {failed_to_start_child, conn, Reason}}}}
    let StartError::ChildFailed { id, path, reason: StopReason::Failed(db_failure) } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((id.as_str(), path.as_str()), ("db", "/app/db"));
    assert_eq!(db_failure.path.as_str(), "/app/db");
    let FailureCause::ChildStart { id, path, reason } = &db_failure.cause else { panic!("{db_failure:?}") };
    assert_eq!((id.as_str(), path.as_str()), ("conn", "/app/db/conn"));
    let StopReason::Failed(conn_failure) = &**reason else { panic!("{reason:?}") };
    assert_eq!(conn_failure.path.as_str(), "/app/db/conn");
    assert_eq!(conn_failure.cause, FailureCause::Error { text: "cannot start".into(), type_name: None });
    let (id, path, reason) = err.failed_child().unwrap();
    assert_eq!((id, path.as_str()), ("conn", "/app/db/conn"), "the deepest failed child");
    assert!(matches!(reason, StopReason::Failed(f) if f.cause == conn_failure.cause));
    assert_eq!(
        log.items(),
        [
            "start web",
            "start pool",
            "start conn failed",
            "stop conn failed",
            "stop pool parent",
            "stop web parent"
        ]
    );
}

#[test]
/// The snapshot, export and journal parts need the `observe` feature.
fn the_restart_window_shows_in_the_handle_the_snapshot_and_the_export_and_an_escalation_names_its_restarts() {
    let (rt, escalations) = runtime_with_escalations();
    let log = Log::default();
    let spec = SupervisorSpec::new("sup")
        .intensity(3, Duration::from_secs(60))
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("b", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let window = |sup: &cellrt::Supervisor| {
        let w = sup.intensity();
        (w.restarts, w.remaining, w.max_restarts, w.period)
    };
    assert_eq!(window(&sup), (0, 3, 3, Duration::from_secs(60)));
    crash_and_wait(&sup, "a");
    crash_and_wait(&sup, "b");
    assert_eq!(window(&sup), (2, 1, 3, Duration::from_secs(60)));

    #[cfg(feature = "observe")]
    {
        let snapshot = rt.snapshot();
        let cell = snapshot.cells.iter().find(|c| c.path.as_str() == "/sup").unwrap();
        assert_eq!(cell.intensity, Some(sup.intensity()));
        let leaf = snapshot.cells.iter().find(|c| c.path.as_str() == "/sup/a").unwrap();
        assert_eq!(leaf.intensity, None, "a worker supervises nothing");
        let text = snapshot.prometheus();
        let sample = |name: &str| {
            let prefix = format!("{name}{{cell=\"/sup\",");
            text.lines()
                .find(|l| l.starts_with(&prefix))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_owned)
        };
        assert_eq!(sample("cellrt_supervisor_restarts_in_window").as_deref(), Some("2"));
        assert_eq!(sample("cellrt_supervisor_restarts_remaining").as_deref(), Some("1"));
        assert_eq!(sample("cellrt_supervisor_max_restarts").as_deref(), Some("3"));
    }

    crash_and_wait(&sup, "a");
    assert_eq!(window(&sup), (3, 0, 3, Duration::from_secs(60)));
    sup.child::<P>("a").unwrap().send(P::Panic).unwrap();
    assert!(sup.watch().wait(PATIENCE).is_ok());
    let escalation = escalations.lock().unwrap()[0].clone();
    let counted: Vec<&str> = escalation.restarts.iter().map(|r| r.child.as_str()).collect();
    assert_eq!(counted, ["a", "b", "a"], "the restarts in the window when a's exit exceeded it");
    assert!(escalation.restarts.windows(2).all(|w| w[0].at <= w[1].at));
    #[cfg(feature = "observe")]
    {
        let journaled = rt.journal(&cellrt::JournalQuery::new().kind(cellrt::SignalType::Escalation));
        let cellrt::SignalKind::Escalation { reason } = &journaled[0].kind else { panic!("{journaled:?}") };
        assert!(reason.ends_with("3 restarts in 60s: a, b, a"), "{reason}");
    }
}
