//! Restart kinds, significant children, shutdown timeouts, backoff,
//! deadlines, child management and spec validation.

mod common;

use std::time::Duration;

use cellrt::{
    AutoShutdown, Cell, CellError, ChildError, ChildSpec, ChildState, Context, FailureCause, Restart,
    RestartBackoff, SendError, Shutdown, SpecError, StartError, StopReason, Strategy, SupervisionEventKind,
    Supervisor, SupervisorSpec,
};
use common::probe::{Gate, ProbeCfg, P};
use common::{eventually, runtime, Log, PATIENCE};

fn lenient(name: &str) -> SupervisorSpec {
    SupervisorSpec::new(name).intensity(10, Duration::from_secs(60))
}

fn state_of(sup: &Supervisor, id: &str) -> Option<(ChildState, u32)> {
    sup.which_children().into_iter().find(|c| c.id == id).map(|c| (c.state, c.restarts))
}

/// What became of child `w` after it exited: `restarted`, `stopped` (spec
/// kept) or `forgotten`.
fn fate(sup: &Supervisor) -> &'static str {
    assert!(eventually(|| !matches!(state_of(sup, "w"), Some((ChildState::Running, 0)))));
    // Give a wrong restart the time to show.
    std::thread::sleep(Duration::from_millis(20));
    match state_of(sup, "w") {
        Some((ChildState::Running, 1)) => "restarted",
        Some((ChildState::Stopped, 0)) => "stopped",
        None => "forgotten",
        other => panic!("unexpected {other:?}"),
    }
}

fn worker_exit(restart: Restart, exit: P) -> &'static str {
    let rt = runtime(2);
    let log = Log::default();
    let sup =
        rt.start_supervisor(lenient("sup").child(ProbeCfg::new("w", &log).spec().restart(restart)), PATIENCE);
    let sup = sup.unwrap();
    sup.child::<P>("w").unwrap().send(exit).unwrap();
    fate(&sup)
}

/// A nested supervisor `w` that exits with a shutdown-class reason: it
/// auto-shuts down (`Shutdown`) or gives up (`Escalated`).
fn supervisor_exit(restart: Restart, escalate: bool) -> &'static str {
    let rt = runtime(2);
    let log = Log::default();
    let inner = if escalate {
        SupervisorSpec::new("w").intensity(0, Duration::from_secs(1)).child(ProbeCfg::new("x", &log).spec())
    } else {
        SupervisorSpec::new("w")
            .auto_shutdown(AutoShutdown::AnySignificant)
            .child(ProbeCfg::new("x", &log).spec().restart(Restart::Transient).significant(true))
    };
    let spec = lenient("sup").child(ChildSpec::supervisor("w", inner).restart(restart));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let x = sup.supervisor("w").unwrap().child::<P>("x").unwrap();
    x.send(if escalate { P::Panic } else { P::Stop }).unwrap();
    fate(&sup)
}

#[test]
fn permanent_children_are_restarted_after_any_exit() {
    assert_eq!(worker_exit(Restart::Permanent, P::Stop), "restarted");
    assert_eq!(worker_exit(Restart::Permanent, P::Panic), "restarted");
    assert_eq!(supervisor_exit(Restart::Permanent, false), "restarted");
    assert_eq!(supervisor_exit(Restart::Permanent, true), "restarted");
}

#[test]
fn transient_children_are_restarted_only_after_an_abnormal_exit() {
    assert_eq!(worker_exit(Restart::Transient, P::Stop), "stopped");
    assert_eq!(worker_exit(Restart::Transient, P::Fail), "restarted");
    assert_eq!(supervisor_exit(Restart::Transient, false), "stopped", "shutdown is normal");
    assert_eq!(
        supervisor_exit(Restart::Transient, true),
        "stopped",
        "escalation is shutdown-class, as in OTP"
    );
}

#[test]
fn a_transient_worker_that_shuts_itself_down_is_not_restarted_and_one_that_fails_is() {
    assert_eq!(worker_exit(Restart::Transient, P::Shutdown), "stopped", "shutdown is normal");
    assert_eq!(worker_exit(Restart::Transient, P::Panic), "restarted", "a panic is abnormal");
    assert_eq!(worker_exit(Restart::Permanent, P::Shutdown), "restarted");
    assert_eq!(worker_exit(Restart::Temporary, P::Shutdown), "forgotten");
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(
        lenient("sup").child(ProbeCfg::new("w", &log).spec().restart(Restart::Transient)),
        PATIENCE,
    );
    let sup = sup.unwrap();
    let w = sup.child::<P>("w").unwrap();
    let watch = rt.watch(&w);
    w.send(P::Shutdown).unwrap();
    assert_eq!(watch.wait(PATIENCE).unwrap().reason, StopReason::Shutdown);
    assert_eq!(log.items(), ["start w", "stop w shutdown"]);
    // The supervisor hears of the exit after the watchers were told.
    assert!(eventually(|| !sup.history().is_empty()));
    let exits: Vec<SupervisionEventKind> = sup.history().into_iter().map(|e| e.kind).collect();
    assert_eq!(exits, [SupervisionEventKind::Exited(StopReason::Shutdown)], "no restart decided");
}

#[test]
fn temporary_children_are_never_restarted_and_their_spec_is_forgotten() {
    assert_eq!(worker_exit(Restart::Temporary, P::Stop), "forgotten");
    assert_eq!(worker_exit(Restart::Temporary, P::Panic), "forgotten");
    assert_eq!(supervisor_exit(Restart::Temporary, false), "forgotten");
    assert_eq!(supervisor_exit(Restart::Temporary, true), "forgotten");
}

#[test]
fn any_significant_shuts_the_supervisor_down_when_one_significant_child_exits() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("s", &log).spec().restart(Restart::Transient).significant(true))
        .child(ProbeCfg::new("t", &log).spec().restart(Restart::Transient).significant(true));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let watch = sup.watch();
    sup.child::<P>("s").unwrap().send(P::Stop).unwrap();
    assert_eq!(watch.wait(PATIENCE).unwrap().reason, StopReason::Shutdown);
    assert_eq!(log.items()[3..], ["stop s requested", "stop t parent", "stop a parent"]);
}

#[test]
fn all_significant_waits_for_the_last_significant_child() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .auto_shutdown(AutoShutdown::AllSignificant)
        .child(ProbeCfg::new("s", &log).spec().restart(Restart::Transient).significant(true))
        .child(ProbeCfg::new("t", &log).spec().restart(Restart::Temporary).significant(true));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.child::<P>("s").unwrap().send(P::Stop).unwrap();
    assert!(eventually(|| state_of(&sup, "s") == Some((ChildState::Stopped, 0))));
    assert!(!sup.is_stopped(), "t is still running");
    // A significant transient child that fails is restarted, not counted as gone.
    sup.child::<P>("t").unwrap().send(P::Stop).unwrap();
    assert_eq!(sup.watch().wait(PATIENCE).unwrap().reason, StopReason::Shutdown);
}

#[test]
fn a_significant_child_that_fails_is_restarted_without_shutting_down() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(ProbeCfg::new("s", &log).spec().restart(Restart::Transient).significant(true));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.child::<P>("s").unwrap().send(P::Panic).unwrap();
    assert!(eventually(|| state_of(&sup, "s") == Some((ChildState::Running, 1))));
    assert!(!sup.is_stopped());
}

#[test]
fn terminating_a_significant_child_does_not_shut_the_supervisor_down() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .auto_shutdown(AutoShutdown::AnySignificant)
        .child(ProbeCfg::new("s", &log).spec().restart(Restart::Transient).significant(true));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.terminate_child("s", PATIENCE).unwrap();
    assert_eq!(state_of(&sup, "s"), Some((ChildState::Stopped, 0)));
    std::thread::sleep(Duration::from_millis(20));
    assert!(!sup.is_stopped());
}

#[test]
fn a_handler_that_never_returns_is_abandoned_after_its_shutdown_timeout() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("w", &log).spec().shutdown(Shutdown::Timeout(Duration::from_millis(50))));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    let gate = Gate::default();
    w.send(P::Block(gate.clone())).unwrap();
    w.send(P::Put(1)).unwrap();
    assert!(eventually(|| w.queued() == 1), "the handler is blocked with one message queued");
    sup.terminate_child("w", PATIENCE).expect("the supervisor does not wait for the stuck handler");
    assert_eq!(state_of(&sup, "w"), Some((ChildState::Stopped, 0)));
    assert!(matches!(sup.history().last().unwrap().kind, SupervisionEventKind::Abandoned));
    assert!(matches!(w.try_send(P::Put(2)), Err(SendError::Closed(P::Put(2)))), "its mailbox is closed");
    assert_eq!(w.queued(), 0, "what was queued is discarded");
    assert_eq!(state_of(&sup, "a"), Some((ChildState::Running, 0)), "the supervisor went on");
    gate.open();
    assert!(eventually(|| w.is_closed()), "the kill takes effect once the handler returns");
    assert!(
        !log.items().contains(&"stop w shutdown".to_owned()),
        "a killed cell's stopped hook does not run"
    );
}

#[test]
fn brutal_kill_skips_the_stopped_hook() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup").child(ProbeCfg::new("w", &log).spec().shutdown(Shutdown::Kill));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.terminate_child("w", PATIENCE).unwrap();
    assert_eq!(log.items(), ["start w"]);
}

#[test]
fn terminate_restart_and_delete_child_manage_a_child_behind_the_same_address() {
    let rt = runtime(2);
    let log = Log::default();
    let cfg = ProbeCfg::new("w", &log);
    let sup = rt.start_supervisor(lenient("sup").child(cfg.spec()), PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    assert_eq!(sup.restart_child("w", PATIENCE), Err(ChildError::Running { id: "w".into() }));
    assert_eq!(sup.delete_child("w", PATIENCE), Err(ChildError::Running { id: "w".into() }));
    sup.terminate_child("w", PATIENCE).unwrap();
    assert!(matches!(w.try_send(P::Put(0)), Err(SendError::Closed(_))));
    sup.restart_child("w", PATIENCE).unwrap();
    w.send(P::Put(7)).unwrap();
    assert_eq!(
        w.ask(P::Get).unwrap().wait(PATIENCE).unwrap(),
        [7],
        "the old address reaches the new instance"
    );
    sup.terminate_child("w", PATIENCE).unwrap();
    cfg.fail_starts.store(1, std::sync::atomic::Ordering::SeqCst);
    let failed = sup.restart_child("w", PATIENCE).unwrap_err();
    assert!(matches!(&failed, ChildError::StartFailed { id, reason: StopReason::Failed(_) } if id == "w"));
    assert_eq!(state_of(&sup, "w"), Some((ChildState::Stopped, 0)), "a failed restart leaves it stopped");
    sup.delete_child("w", PATIENCE).unwrap();
    assert!(sup.which_children().is_empty());
    assert_eq!(sup.terminate_child("w", PATIENCE), Err(ChildError::NotFound { id: "w".into() }));
    assert_eq!(
        log.items(),
        [
            "start w",
            "stop w shutdown",
            "start w",
            "w 7",
            "stop w shutdown",
            "start w failed",
            "stop w failed"
        ]
    );
}

#[test]
fn a_terminated_run_time_child_keeps_its_spec_and_restarts_without_a_spurious_exit() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(lenient("sup"), PATIENCE).unwrap();
    sup.start_child(ProbeCfg::new("dyn", &log).spec(), PATIENCE).unwrap();
    sup.terminate_child("dyn", PATIENCE).unwrap();
    assert_eq!(state_of(&sup, "dyn"), Some((ChildState::Stopped, 0)));
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(state_of(&sup, "dyn"), Some((ChildState::Stopped, 0)), "not restarted, not forgotten");
    sup.restart_child("dyn", PATIENCE).unwrap();
    assert!(sup.history().is_empty(), "a requested stop is not an exit: {:?}", sup.history());
    assert_eq!(log.items(), ["start dyn", "stop dyn shutdown", "start dyn"]);
}

#[test]
fn start_child_adds_a_child_or_reports_why_not() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(lenient("sup").child(ProbeCfg::new("a", &log).spec()), PATIENCE).unwrap();
    sup.start_child(ProbeCfg::new("b", &log).spec(), PATIENCE).unwrap();
    let dup = sup.start_child(ProbeCfg::new("b", &log).spec(), PATIENCE).unwrap_err();
    assert_eq!(dup, StartError::Spec(SpecError::DuplicateId { id: "b".into() }));
    let failed = sup.start_child(ProbeCfg::new("c", &log).failing_starts(1).spec(), PATIENCE).unwrap_err();
    assert!(matches!(
        &failed,
        StartError::ChildFailed { id, path, reason: StopReason::Failed(_) } if id == "c" && path.as_str() == "/sup/c"
    ));
    let ids: Vec<String> = sup.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["a", "b"], "a child that failed to start is not added");
    let counts = sup.count_children();
    assert_eq!((counts.specs, counts.active, counts.workers, counts.supervisors), (2, 2, 2, 0));
}

#[test]
fn backoff_delays_restarts_and_the_mailbox_waits_meanwhile() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .backoff(RestartBackoff::exponential(Duration::from_millis(100), Duration::from_millis(150)))
        .child(ProbeCfg::new("w", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    w.send(P::Panic).unwrap();
    assert!(eventually(|| state_of(&sup, "w") == Some((ChildState::Restarting, 1))));
    w.send(P::Put(1)).unwrap();
    assert_eq!(w.ask(P::Get).unwrap().wait(PATIENCE).unwrap(), [1], "sent during the backoff, handled after");
    w.send(P::Panic).unwrap();
    assert!(eventually(|| state_of(&sup, "w") == Some((ChildState::Running, 2))));
    let delays: Vec<Duration> = sup
        .history()
        .into_iter()
        .filter_map(|e| match e.kind {
            SupervisionEventKind::Restarting { delay, .. } => Some(delay),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [Duration::from_millis(100), Duration::from_millis(150)]);
}

#[test]
fn a_handler_past_its_deadline_is_reported_while_it_runs_and_restarted_when_it_returns() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup").child(ProbeCfg::new("w", &log).spec().deadline(Duration::from_millis(10)));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    let gate = Gate::default();
    w.send(P::Block(gate.clone())).unwrap();
    assert!(
        eventually(|| rt.failures().iter().any(|f| matches!(f.cause, FailureCause::DeadlineExceeded { .. }))),
        "the watchdog reports the overrun while the handler is stuck"
    );
    assert_eq!(state_of(&sup, "w"), Some((ChildState::Running, 0)), "a thread cannot be preempted");
    gate.open();
    assert!(eventually(|| state_of(&sup, "w") == Some((ChildState::Running, 1))));
    assert_eq!(rt.failure_count(), 1, "one overrun, one failure");
    let failure = &rt.failures()[0];
    assert_eq!((failure.path.as_str(), failure.message_kind), ("/sup/w", Some("Block")));
}

#[test]
fn invalid_specs_are_refused_with_typed_errors() {
    let log = Log::default();
    let w = || ProbeCfg::new("w", &log).spec();
    let cases: Vec<(SupervisorSpec, SpecError)> = vec![
        (SupervisorSpec::new("s").child(w()).child(w()), SpecError::DuplicateId { id: "w".into() }),
        (SupervisorSpec::new("s").intensity(1, Duration::ZERO), SpecError::ZeroPeriod),
        (
            SupervisorSpec::new("s").auto_shutdown(AutoShutdown::AnySignificant).child(w().significant(true)),
            SpecError::SignificantPermanent { id: "w".into() },
        ),
        (
            SupervisorSpec::new("s").child(w().restart(Restart::Transient).significant(true)),
            SpecError::SignificantWithoutAutoShutdown { id: "w".into() },
        ),
        (
            SupervisorSpec::pool("s", w()).auto_shutdown(AutoShutdown::AllSignificant),
            SpecError::AutoShutdownInPool,
        ),
        (SupervisorSpec::new("s").strategy(Strategy::Pool), SpecError::PoolWithoutTemplate),
        (SupervisorSpec::pool("s", w()).child(w()), SpecError::PoolWithStaticChildren),
        (
            SupervisorSpec::new("s")
                .backoff(RestartBackoff::exponential(Duration::from_secs(2), Duration::from_secs(1))),
            SpecError::BackoffRange { min: Duration::from_secs(2), max: Duration::from_secs(1) },
        ),
        (
            SupervisorSpec::new("s").backoff(RestartBackoff::none().jitter(1.5)),
            SpecError::Jitter { jitter: 1.5 },
        ),
        (SupervisorSpec::new("s").child(w().capacity(0)), SpecError::ZeroCapacity { id: "w".into() }),
        (
            SupervisorSpec::new("s").child(w().deadline(Duration::ZERO)),
            SpecError::ZeroDeadline { id: "w".into() },
        ),
        (
            SupervisorSpec::new("s").child(w().retry(cellrt::RetryPolicy::attempts(0))),
            SpecError::ZeroRetries { id: "w".into() },
        ),
        (
            SupervisorSpec::new("s")
                .child(ChildSpec::supervisor("n", SupervisorSpec::new("n").child(w()).child(w()))),
            SpecError::DuplicateId { id: "w".into() },
        ),
    ];
    let rt = runtime(1);
    for (spec, expected) in cases {
        assert_eq!(spec.validate(), Err(expected.clone()));
        assert_eq!(rt.start_supervisor(spec, PATIENCE).unwrap_err(), StartError::Spec(expected));
    }
    assert!(matches!(SupervisorSpec::new("a/b").validate(), Err(SpecError::InvalidName { .. })));
    assert!(matches!(
        SupervisorSpec::new("s").child(ProbeCfg::new("", &log).spec()).validate(),
        Err(SpecError::InvalidId { .. })
    ));
    assert_eq!(rt.cell_count(), 0, "nothing started from an invalid spec");
}

/// A cell that supervises its own children.
struct Boss {
    log: Log<String>,
}

impl Cell for Boss {
    type Message = ();

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        let spec = SupervisorSpec::new("ignored")
            .strategy(Strategy::OneForAll)
            .intensity(5, Duration::from_secs(60))
            .child(ProbeCfg::new("a", &self.log).spec())
            .child(ProbeCfg::new("b", &self.log).spec());
        Ok(ctx.supervise(spec)?)
    }

    fn handle(&mut self, ctx: &mut Context<Self>, _: ()) -> Result<(), CellError> {
        ctx.child::<P>("b").expect("b").send(P::Panic).map_err(|_| CellError::msg("send"))
    }

    fn stopped(&mut self, ctx: &mut Context<Self>, _: &StopReason) {
        self.log.push(format!("stop boss with {} children", ctx.which_children().len()));
    }
}

#[test]
fn a_cell_supervises_its_own_children_and_stops_them_before_itself() {
    let rt = runtime(2);
    let log = Log::default();
    let boss = rt.spawn(Boss { log: log.clone() }).unwrap();
    assert!(eventually(|| log.len() == 2));
    boss.send(()).unwrap();
    assert!(eventually(|| log.len() == 6), "{:?}", log.items());
    rt.stop(&boss);
    assert!(eventually(|| boss.is_closed()));
    let mut items = log.items();
    // `supervise` starts the children without waiting: in either order.
    items[..2].sort();
    assert_eq!(
        items,
        [
            "start a",
            "start b",
            "stop b failed",
            "stop a restart",
            "start a",
            "start b",
            "stop b parent",
            "stop a parent",
            "stop boss with 0 children"
        ]
    );
}

/// A cell supervising two children, that can be kept busy.
struct BusyBoss {
    log: Log<String>,
}

enum BossMsg {
    Children(cellrt::Reply<(cellrt::Addr<P>, cellrt::Addr<P>)>),
    Block(Gate),
}

impl Cell for BusyBoss {
    type Message = BossMsg;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        let spec = SupervisorSpec::new("boss")
            .intensity(1, Duration::from_secs(60))
            .child(ProbeCfg::new("a", &self.log).spec())
            .child(ProbeCfg::new("b", &self.log).spec());
        Ok(ctx.supervise(spec)?)
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: BossMsg) -> Result<(), CellError> {
        match msg {
            BossMsg::Children(reply) => {
                let _ = reply.send((ctx.child("a").unwrap(), ctx.child("b").unwrap()));
            }
            BossMsg::Block(gate) => gate.wait_open(),
        }
        Ok(())
    }
}

#[test]
fn a_supervisor_giving_up_while_a_restart_is_pending_stops_that_child_instead() {
    let rt = runtime(2);
    let log = Log::default();
    let boss = rt.spawn(BusyBoss { log: log.clone() }).unwrap();
    let (a, b) = boss.ask(BossMsg::Children).unwrap().wait(PATIENCE).unwrap();
    let gate = Gate::default();
    boss.send(BossMsg::Block(gate.clone())).unwrap();
    assert!(eventually(|| boss.queued() == 0), "the boss is busy");
    a.send(P::Panic).unwrap();
    b.send(P::Panic).unwrap();
    assert!(eventually(|| log.len() == 4), "both failed while their supervisor was busy");
    let watch = rt.watch(&boss);
    // One turn sees both exits: `a` is restarted, then `b` exceeds the
    // intensity and the boss stops `a` before it ran again.
    gate.open();
    let terminated = watch.wait(PATIENCE).unwrap();
    assert!(matches!(terminated.reason, StopReason::Escalated(_)), "{terminated:?}");
    assert!(eventually(|| a.is_closed() && b.is_closed()));
    let mut items = log.items();
    items.sort();
    assert_eq!(items, ["start a", "start b", "stop a failed", "stop b failed"], "`a` never started again");
}

fn restart_delays(sup: &Supervisor) -> Vec<Duration> {
    sup.history()
        .into_iter()
        .filter_map(|e| match e.kind {
            SupervisionEventKind::Restarting { delay, .. } => Some(delay),
            _ => None,
        })
        .collect()
}

fn crash_and_wait_restarted(sup: &Supervisor, restarts: u32) {
    sup.child::<P>("w").unwrap().send(P::Panic).unwrap();
    assert!(eventually(|| state_of(sup, "w") == Some((ChildState::Running, restarts))));
}

#[test]
fn backoff_starts_again_from_its_minimum_after_a_quiet_period() {
    let rt = runtime(2);
    let log = Log::default();
    let backoff = RestartBackoff::exponential(Duration::from_millis(10), Duration::from_millis(80))
        .reset_after(Duration::from_millis(100));
    let sup =
        rt.start_supervisor(lenient("sup").backoff(backoff).child(ProbeCfg::new("w", &log).spec()), PATIENCE);
    let sup = sup.unwrap();
    crash_and_wait_restarted(&sup, 1);
    crash_and_wait_restarted(&sup, 2);
    std::thread::sleep(Duration::from_millis(150));
    crash_and_wait_restarted(&sup, 3);
    let ms: Vec<u128> = restart_delays(&sup).iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [10, 20, 10]);
}

#[test]
fn jitter_adds_at_most_its_fraction_of_the_delay() {
    let rt = runtime(2);
    let log = Log::default();
    let backoff =
        RestartBackoff::exponential(Duration::from_millis(10), Duration::from_millis(10)).jitter(0.5);
    let sup =
        rt.start_supervisor(lenient("sup").backoff(backoff).child(ProbeCfg::new("w", &log).spec()), PATIENCE);
    let sup = sup.unwrap();
    for n in 1..=5 {
        crash_and_wait_restarted(&sup, n);
    }
    let delays = restart_delays(&sup);
    assert_eq!(delays.len(), 5);
    assert!(
        delays.iter().all(|d| *d >= Duration::from_millis(10) && *d <= Duration::from_millis(15)),
        "{delays:?}"
    );
    assert!(delays.iter().any(|d| *d > Duration::from_millis(10)), "some jitter was added: {delays:?}");
}

#[test]
fn stop_ends_a_top_level_supervisor_for_good_after_its_children_in_reverse_order() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("b", &log).spec())
        .child(ProbeCfg::new("c", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let a = sup.child::<P>("a").unwrap();
    let terminated = sup.stop(StopReason::Requested, PATIENCE).unwrap();
    assert_eq!((terminated.path.as_str(), terminated.reason), ("/sup", StopReason::Requested));
    assert_eq!(
        log.items(),
        ["start a", "start b", "start c", "stop c parent", "stop b parent", "stop a parent"]
    );
    assert!(sup.is_stopped());
    assert!(matches!(a.send(P::Put(1)), Err(SendError::Closed(_))));
    assert_eq!(
        sup.stop(StopReason::Shutdown, PATIENCE).unwrap().reason,
        StopReason::Requested,
        "stopped once"
    );
}

#[test]
fn stop_of_a_nested_supervisor_terminates_it_through_its_parent_and_keeps_its_spec() {
    let rt = runtime(2);
    let log = Log::default();
    let inner = SupervisorSpec::new("inner").child(ProbeCfg::new("x", &log).spec());
    let app = rt.start_supervisor(lenient("app").child(ChildSpec::supervisor("inner", inner)), PATIENCE);
    let app = app.unwrap();
    let inner = app.supervisor("inner").unwrap();
    assert_eq!(inner.path().as_str(), "/app/inner");
    let terminated = inner.stop(StopReason::Requested, PATIENCE).unwrap();
    assert_eq!((terminated.path.as_str(), terminated.reason), ("/app/inner", StopReason::Shutdown));
    assert_eq!(state_of(&app, "inner"), Some((ChildState::Stopped, 0)), "not restarted, spec kept");
    assert_eq!(log.items(), ["start x", "stop x parent"]);
    app.restart_child("inner", PATIENCE).unwrap();
    assert_eq!(log.items(), ["start x", "stop x parent", "start x"]);
    assert_eq!(state_of(&app, "inner"), Some((ChildState::Running, 0)));
}

#[test]
fn stop_refuses_a_reason_that_is_not_a_stop_and_stops_nothing() {
    let rt = runtime(1);
    let log = Log::default();
    let sup = rt.start_supervisor(lenient("sup").child(ProbeCfg::new("a", &log).spec()), PATIENCE).unwrap();
    assert_eq!(
        sup.stop(StopReason::Killed, PATIENCE),
        Err(cellrt::StopError::InvalidReason { reason: StopReason::Killed })
    );
    assert!(!sup.is_stopped());
    assert_eq!(sup.count_children().active, 1);
}

#[test]
fn a_child_that_ignores_its_start_is_kept_stopped_and_restart_child_tries_again() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup")
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("i", &log).ignoring_starts(2).spec())
        .child(ProbeCfg::new("b", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    assert_eq!(log.items(), ["start a", "start i ignored", "start b"], "no stop hook for an ignored start");
    assert_eq!(state_of(&sup, "i"), Some((ChildState::Stopped, 0)));
    let counts = sup.count_children();
    assert_eq!((counts.specs, counts.active, counts.workers), (3, 2, 3));
    let i = sup.child::<P>("i").unwrap();
    assert!(matches!(i.send(P::Put(1)), Err(SendError::Closed(_))), "nothing runs behind it");
    let ignored: Vec<String> = sup
        .history()
        .into_iter()
        .filter(|e| e.kind == SupervisionEventKind::Ignored)
        .map(|e| e.child)
        .collect();
    assert_eq!(ignored, ["i"]);

    sup.restart_child("i", PATIENCE).unwrap();
    assert_eq!(state_of(&sup, "i"), Some((ChildState::Stopped, 0)), "ignored again");
    sup.restart_child("i", PATIENCE).unwrap();
    assert_eq!(state_of(&sup, "i"), Some((ChildState::Running, 0)));
    i.send(P::Put(7)).unwrap();
    assert_eq!(i.ask(P::Get).unwrap().wait(PATIENCE).unwrap(), [7], "the same address serves the new start");
    assert_eq!(log.items()[3..], ["start i ignored", "start i", "i 7"]);
}

#[test]
fn start_child_of_a_child_that_ignores_its_start_keeps_its_spec_and_a_pool_drops_it() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(lenient("sup"), PATIENCE).unwrap();
    sup.start_child(ProbeCfg::new("i", &log).ignoring_starts(1).spec(), PATIENCE).unwrap();
    assert_eq!(state_of(&sup, "i"), Some((ChildState::Stopped, 0)));
    let pool = SupervisorSpec::pool("pool", ProbeCfg::new("w", &log).ignoring_starts(1).spec());
    let pool = rt.start_supervisor(pool, PATIENCE).unwrap();
    let err = pool.start_pool_child::<P>(PATIENCE).unwrap_err();
    assert!(matches!(&err, StartError::Ignored { id } if id.starts_with('#')), "{err:?}");
    assert!(pool.which_children().is_empty(), "a pool keeps no spec per child");
    pool.start_pool_child::<P>(PATIENCE).unwrap();
    assert_eq!(pool.count_children().active, 1);
}

#[test]
fn a_call_to_a_child_between_its_crash_and_its_restart_is_queued_and_answered_by_the_next_incarnation() {
    let rt = runtime(2);
    let log = Log::default();
    let backoff = RestartBackoff::exponential(Duration::from_millis(200), Duration::from_millis(200));
    let spec = lenient("sup").backoff(backoff).child(ProbeCfg::new("w", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    w.send(P::Put(1)).unwrap();
    w.send(P::Panic).unwrap();
    assert!(eventually(|| state_of(&sup, "w") == Some((ChildState::Restarting, 1))));
    // Neither refused nor failed: the kept mailbox queues the call.
    let mut call = w.ask(P::Get).unwrap();
    assert!(!w.is_closed());
    assert_eq!(call.try_take(), Ok(None), "no answer and no error while it restarts");
    assert_eq!(state_of(&sup, "w"), Some((ChildState::Restarting, 1)));
    assert_eq!(call.wait(PATIENCE).unwrap(), Vec::<u64>::new(), "answered by the next incarnation");
    assert_eq!(log.items(), ["start w", "w 1", "stop w failed", "start w"]);
}
