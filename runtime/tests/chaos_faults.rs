//! Each fault kind on a small topology, with its effect asserted.

#![cfg(feature = "chaos")]

mod common;

use std::time::Duration;

use cellrt::{
    CellConfig, ChildSpec, Delay, Effect, FailureCause, Fault, FaultCount, FaultKind, FaultSet, InjectError,
    ObservationConfig, Runtime, SupervisorSpec, Target,
};
use common::{eventually, Log, Rec, Recorder, PATIENCE};

fn runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .quiet_panics(true)
        .observation(ObservationConfig::default().sample_every(1))
        .build()
        .expect("runtime builds")
}

fn recorder(runtime: &Runtime, name: &str, log: &Log<u64>) -> cellrt::Addr<Rec> {
    runtime.spawn_with(CellConfig::named(name), Recorder::new(log)).expect("spawns")
}

/// Everything `addr` recorded, once the messages sent before are handled.
fn dump(addr: &cellrt::Addr<Rec>) -> Vec<u64> {
    addr.ask(Rec::Dump).expect("sent").wait(PATIENCE).expect("answered")
}

fn fault(spec: &str) -> FaultSet {
    FaultSet::parse(spec).expect("the spec parses")
}

#[test]
fn latency_is_seen_in_the_handlers_measured_time() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec kind(Put): latency(20ms) seed=1")).unwrap();
    for n in 0..5 {
        rec.send(Rec::Put(n)).unwrap();
    }
    assert_eq!(dump(&rec), vec![0, 1, 2, 3, 4]);
    // A turn adds its counts when it ends, which may come after the dump's
    // answer: wait for the six messages of that turn.
    let handled = || runtime.snapshot().cells[0].metrics.as_ref().map_or(0, |m| m.handled);
    assert!(eventually(|| handled() >= 6));
    let metrics = runtime.snapshot().cells[0].metrics.clone().unwrap();
    assert_eq!(metrics.handled, 6);
    assert!(metrics.handling.p90 >= Duration::from_millis(20), "{:?}", metrics.handling);
    let counts = injection.remove();
    let FaultCount { fault, seed, matched, injected, .. } = &counts[0];
    assert_eq!(
        (fault.as_str(), *seed, *matched, *injected),
        ("/rec kind(Put): latency(20ms) seed=1", 1, 5, 5)
    );
}

#[test]
fn injected_panics_are_restarted_by_the_supervisor_once_each() {
    let runtime = runtime();
    let log = Log::default();
    let make = {
        let log = log.clone();
        move || Recorder::new(&log)
    };
    let spec =
        SupervisorSpec::new("sup").intensity(10, Duration::from_secs(60)).child(ChildSpec::new("rec", make));
    let sup = runtime.start_supervisor(spec, PATIENCE).unwrap();
    let injection = runtime.inject(fault("/sup/rec kind(Put): panic limit=3 seed=5")).unwrap();
    let rec = sup.child::<Rec>("rec").unwrap();
    for n in 0..5 {
        rec.send(Rec::Put(n)).unwrap();
    }
    assert!(eventually(|| log.len() == 2), "the two messages past the limit are handled");
    assert_eq!(log.items(), vec![3, 4]);
    assert!(eventually(|| sup.which_children()[0].restarts == 3));
    let panics: Vec<_> = runtime.failures().into_iter().filter(|f| f.is_panic()).collect();
    assert_eq!(panics.len(), 3);
    let FailureCause::Panic { payload, .. } = &panics[0].cause else { unreachable!() };
    assert_eq!(payload, "injected panic (/sup/rec kind(Put): panic limit=3 seed=5)");
    assert_eq!(injection.log().iter().filter(|r| r.effect == Effect::Panic).count(), 3);
}

#[test]
fn injected_errors_fail_the_cell_with_the_injected_error_type() {
    let runtime = runtime();
    let log = Log::default();
    let make = {
        let log = log.clone();
        move || Recorder::new(&log)
    };
    let spec = SupervisorSpec::new("sup").child(ChildSpec::new("rec", make));
    let sup = runtime.start_supervisor(spec, PATIENCE).unwrap();
    let _injection = runtime.inject(fault("/sup/rec: error limit=1")).unwrap();
    sup.child::<Rec>("rec").unwrap().send(Rec::Put(1)).unwrap();
    assert!(eventually(|| runtime.failure_count() == 1));
    let failure = &runtime.failures()[0];
    let FailureCause::Error { type_name, text } = &failure.cause else { panic!("{failure:?}") };
    assert_eq!(*type_name, Some("cellrt::chaos::error::InjectedError"));
    assert_eq!(text, "injected error (/sup/rec: error limit=1)");
    assert_eq!(failure.message_kind, Some("Put"));
    assert!(eventually(|| sup.which_children()[0].restarts == 1));
}

#[test]
fn dropped_messages_reach_the_dead_letters_with_cause_injected() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec kind(Put): drop limit=2 seed=3")).unwrap();
    for n in 0..4 {
        rec.send(Rec::Put(n)).unwrap();
    }
    assert_eq!(dump(&rec), vec![2, 3]);
    let letters = runtime.dead_letters();
    assert_eq!(letters.len(), 2);
    for (letter, n) in letters.iter().zip([0, 1]) {
        assert_eq!(
            letter.failure().cause,
            FailureCause::Injected { fault: "/rec kind(Put): drop limit=2 seed=3".into() }
        );
        assert_eq!(letter.failure().message_kind, Some("Put"));
        assert!(!letter.has_message(), "a recorder retains no copy of message {n}");
    }
    assert_eq!(runtime.failure_count(), 0, "a drop is not a failure of the cell");
    assert_eq!(injection.counts()[0].injected, 2);
}

#[test]
fn a_mailbox_reported_full_hands_the_message_back_and_counts_the_rejection() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec: full limit=2 seed=1")).unwrap();
    let refused = rec.try_send(Rec::Put(1)).unwrap_err();
    assert!(refused.is_full());
    assert!(matches!(refused.into_inner(), Rec::Put(1)));
    assert!(rec.try_send(Rec::Put(2)).unwrap_err().is_full());
    rec.try_send(Rec::Put(3)).unwrap();
    assert_eq!(dump(&rec), vec![3]);
    assert_eq!(runtime.snapshot().cells[0].metrics.clone().unwrap().rejected_full, 2);
    assert_eq!(
        injection.log().iter().map(|r| r.effect).collect::<Vec<_>>(),
        vec![Effect::Full, Effect::Full]
    );
}

#[test]
fn a_cell_type_target_hits_only_cells_of_that_type() {
    struct Other;
    impl cellrt::Cell for Other {
        type Message = u64;
        fn handle(&mut self, _: &mut cellrt::Context<Self>, _: u64) -> Result<(), cellrt::CellError> {
            Ok(())
        }
    }
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let other = runtime.spawn_with(CellConfig::named("other"), Other).unwrap();
    let target = Target::cell_type(std::any::type_name::<Recorder>()).unwrap();
    let injection = runtime.inject(Fault::builder(target, FaultKind::Full).seed(1).build().unwrap()).unwrap();
    other.try_send(7).unwrap();
    assert!(rec.try_send(Rec::Put(1)).unwrap_err().is_full());
    let cells: Vec<String> = injection.log().iter().map(|r| r.cell.to_string()).collect();
    assert_eq!(cells, vec!["/rec"]);
}

#[test]
fn the_same_seed_and_order_give_identical_injection_logs() {
    let run = || {
        let runtime = runtime();
        let log = Log::default();
        let rec = recorder(&runtime, "rec", &log);
        let spec = "/rec: 40% drop seed=11; /rec: 30% latency(uniform 1us..50us) seed=12";
        let injection = runtime.inject(fault(spec)).unwrap();
        for n in 0..200 {
            rec.send(Rec::Put(n)).unwrap();
        }
        let handled = dump(&rec);
        let log = injection.log();
        drop(injection);
        runtime.shutdown(PATIENCE);
        (handled, log)
    };
    let (handled, log) = run();
    assert_eq!(run(), (handled.clone(), log.clone()));
    let drops = log.iter().filter(|r| r.effect == Effect::Drop).count();
    assert_eq!(handled.len() + drops, 200);
    assert!(drops > 0 && log.iter().any(|r| matches!(r.effect, Effect::Latency(_))));
}

#[test]
fn nothing_is_injected_once_the_injection_is_dropped() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec: drop")).unwrap();
    assert_eq!(runtime.active_fault_sets(), 1);
    drop(injection);
    assert_eq!(runtime.active_fault_sets(), 0);
    rec.send(Rec::Put(1)).unwrap();
    assert_eq!(dump(&rec), vec![1]);
    assert!(runtime.dead_letters().is_empty());
}

#[test]
fn shutdown_removes_every_fault() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec kind(Put): drop")).unwrap();
    rec.send(Rec::Put(1)).unwrap();
    let _ = dump(&rec);
    assert!(injection.is_active());
    let report = runtime.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 1);
    assert!(!injection.is_active());
    assert_eq!(injection.counts()[0].injected, 1);
}

#[test]
fn an_empty_fault_set_is_refused() {
    let runtime = runtime();
    assert_eq!(runtime.inject(FaultSet::new()).unwrap_err(), InjectError::Empty);
}

#[test]
fn a_fixed_latency_fault_built_in_code_prints_as_its_spec() {
    let fault = Fault::builder(
        Target::cells("/a").unwrap(),
        FaultKind::Latency(Delay::Fixed(Duration::from_millis(5))),
    )
    .probability(0.25)
    .limit(4)
    .build()
    .unwrap();
    assert_eq!(fault.to_string(), "/a: 25% latency(5ms) limit=4");
    assert_eq!(FaultSet::parse(&fault.to_string()).unwrap().faults(), &[fault]);
}

/// Forwards each number to a recorder as a `Put`.
struct Forward(cellrt::Addr<Rec>);

impl cellrt::Cell for Forward {
    type Message = u64;
    fn handle(&mut self, _: &mut cellrt::Context<Self>, n: u64) -> Result<(), cellrt::CellError> {
        self.0.try_send(Rec::Put(n)).map_err(|_| cellrt::CellError::msg("refused"))
    }
}

#[test]
fn an_edge_target_hits_only_what_its_sender_sends() {
    let runtime = runtime();
    let log = Log::default();
    let fraud = recorder(&runtime, "fraud", &log);
    let gateway = runtime.spawn_with(CellConfig::named("gateway"), Forward(fraud.clone())).unwrap();
    let other = runtime.spawn_with(CellConfig::named("other"), Forward(fraud.clone())).unwrap();
    let injection = runtime.inject(fault("gateway->fraud: drop seed=1")).unwrap();
    for n in [1, 3] {
        gateway.send(n).unwrap();
    }
    for n in [2, 4] {
        other.send(n).unwrap();
    }
    fraud.send(Rec::Put(5)).unwrap();
    assert!(eventually(|| log.len() == 3 && runtime.dead_letter_count() == 2));
    let mut seen = log.items();
    seen.sort_unstable();
    assert_eq!(seen, vec![2, 4, 5]);
    for letter in runtime.dead_letters() {
        assert_eq!(
            letter.failure().cause,
            FailureCause::Injected { fault: "/gateway -> /fraud: drop seed=1".into() }
        );
    }
    assert_eq!(injection.counts()[0].matched, 2, "only the gateway's sends match");
    assert_eq!(runtime.failure_count(), 0);
}

#[test]
fn a_delayed_delivery_arrives_behind_what_was_sent_after_it() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec kind(Put): delay(1s) limit=1 seed=1")).unwrap();
    rec.send(Rec::Put(1)).unwrap();
    rec.send(Rec::Put(2)).unwrap();
    assert_eq!(dump(&rec), vec![2], "the first put is still on its way");
    assert!(eventually(|| log.len() == 2));
    assert_eq!(log.items(), vec![2, 1]);
    assert_eq!(injection.log()[0].effect, Effect::Delay(Duration::from_secs(1)));
}

#[test]
fn a_stalled_turn_shows_as_time_in_queue() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    assert_eq!(dump(&rec), Vec::<u64>::new(), "started, and idle");
    let injection = runtime.inject(fault("/rec: stall(30ms) limit=1 seed=1")).unwrap();
    rec.send(Rec::Put(1)).unwrap();
    assert_eq!(dump(&rec), vec![1]);
    // A turn's measurements land when it ends, after the dump was answered:
    // the stalled turn took the put and the second dump together.
    let metrics = || runtime.snapshot().cells[0].metrics.clone().unwrap();
    assert!(eventually(|| metrics().handled == 3), "{:?}", metrics());
    let metrics = metrics();
    assert_eq!(metrics.time_in_queue.count, 3);
    assert!(metrics.time_in_queue.max >= Duration::from_millis(30), "{:?}", metrics.time_in_queue);
    let records = injection.log();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].effect, records[0].message_kind.as_deref()),
        (Effect::Stall(Duration::from_millis(30)), None)
    );
}

/// Records numbers, and retains a copy of each while handling it.
struct Copyable(Log<u64>);

impl cellrt::Cell for Copyable {
    type Message = u64;
    fn handle(&mut self, _: &mut cellrt::Context<Self>, n: u64) -> Result<(), cellrt::CellError> {
        self.0.push(n);
        Ok(())
    }
    fn retain(n: &u64) -> Option<u64> {
        Some(*n)
    }
}

#[test]
fn a_duplicated_message_is_handled_twice_in_a_row() {
    let runtime = runtime();
    let log = Log::default();
    let copyable = runtime.spawn_with(CellConfig::named("copyable"), Copyable(log.clone())).unwrap();
    let injection = runtime.inject(fault("/copyable: duplicate limit=2 seed=1")).unwrap();
    for n in 1..=3 {
        copyable.send(n).unwrap();
    }
    assert!(eventually(|| log.len() == 5));
    assert_eq!(log.items(), vec![1, 1, 2, 2, 3]);
    assert_eq!(injection.log().iter().map(|r| r.effect).collect::<Vec<_>>(), vec![Effect::Duplicate; 2]);
}

#[test]
fn a_message_the_cell_does_not_retain_is_not_duplicated() {
    let runtime = runtime();
    let log = Log::default();
    let rec = recorder(&runtime, "rec", &log);
    let injection = runtime.inject(fault("/rec kind(Put): duplicate seed=1")).unwrap();
    rec.send(Rec::Put(1)).unwrap();
    assert_eq!(dump(&rec), vec![1]);
    let counts = injection.counts();
    assert_eq!((counts[0].matched, counts[0].injected), (0, 0));
}

/// Sets a 10 ms timer on `Arm`; logs when `Fire` arrives.
struct Alarm(Log<std::time::Instant>);

enum AlarmMsg {
    Arm,
    Fire,
}

impl cellrt::Cell for Alarm {
    type Message = AlarmMsg;
    fn handle(&mut self, ctx: &mut cellrt::Context<Self>, msg: AlarmMsg) -> Result<(), cellrt::CellError> {
        match msg {
            AlarmMsg::Arm => drop(ctx.send_after(Duration::from_millis(10), AlarmMsg::Fire)),
            AlarmMsg::Fire => self.0.push(std::time::Instant::now()),
        }
        Ok(())
    }
    fn message_kind(msg: &AlarmMsg) -> &'static str {
        match msg {
            AlarmMsg::Arm => "Arm",
            AlarmMsg::Fire => "Fire",
        }
    }
}

#[test]
fn a_skewed_timer_fires_late_by_the_skew() {
    let runtime = runtime();
    let fired = Log::default();
    let alarm = runtime.spawn_with(CellConfig::named("alarm"), Alarm(fired.clone())).unwrap();
    let injection = runtime.inject(fault("/alarm kind(Fire): timer_skew(150ms) limit=1 seed=1")).unwrap();
    let armed = std::time::Instant::now();
    alarm.send(AlarmMsg::Arm).unwrap();
    assert!(eventually(|| fired.len() == 1));
    assert!(fired.items()[0] - armed >= Duration::from_millis(160), "10 ms plus the 150 ms skew at least");
    let records = injection.log();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].effect, Effect::TimerSkew(Duration::from_millis(150)));
    assert_eq!(records[0].message_kind.as_deref(), Some("Fire"));
}
