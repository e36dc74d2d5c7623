//! Supervision strategies: who is stopped and restarted, in which order.

mod common;

use std::time::Duration;

use cellrt::{ChildState, Restart, Runtime, Strategy, SupervisorSpec};
use common::probe::{ProbeCfg, P};
use common::{eventually, runtime, Log, PATIENCE};

fn lenient(name: &str, strategy: Strategy) -> SupervisorSpec {
    SupervisorSpec::new(name).strategy(strategy).intensity(10, Duration::from_secs(60))
}

/// Waits until `log` holds `n` entries, then returns them.
fn entries(log: &Log<String>, n: usize) -> Vec<String> {
    assert!(eventually(|| log.len() >= n), "expected {n} entries, got {:?}", log.items());
    log.items()
}

fn get(runtime_child: &cellrt::Addr<P>) -> Vec<u64> {
    runtime_child.ask(P::Get).unwrap().wait(PATIENCE).unwrap()
}

fn start3(rt: &Runtime, strategy: Strategy, log: &Log<String>) -> cellrt::Supervisor {
    let spec = lenient("sup", strategy)
        .child(ProbeCfg::new("a", log).spec())
        .child(ProbeCfg::new("b", log).spec())
        .child(ProbeCfg::new("c", log).spec());
    rt.start_supervisor(spec, PATIENCE).unwrap()
}

#[test]
fn static_children_start_in_spec_order_before_start_supervisor_returns() {
    let rt = runtime(2);
    let log = Log::default();
    let _sup = start3(&rt, Strategy::OneForOne, &log);
    assert_eq!(log.items(), ["start a", "start b", "start c"]);
}

#[test]
fn one_for_one_restarts_only_the_failed_child() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = start3(&rt, Strategy::OneForOne, &log);
    let b = sup.child::<P>("b").unwrap();
    b.send(P::Panic).unwrap();
    assert_eq!(get(&b), Vec::<u64>::new(), "the new incarnation starts empty");
    assert_eq!(entries(&log, 5)[3..], ["stop b failed", "start b"]);
    let restarts: Vec<(String, u32)> = sup.which_children().into_iter().map(|c| (c.id, c.restarts)).collect();
    assert_eq!(restarts, [("a".into(), 0), ("b".into(), 1), ("c".into(), 0)]);
}

#[test]
fn one_for_all_stops_the_others_in_reverse_order_then_starts_all_in_order() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = start3(&rt, Strategy::OneForAll, &log);
    sup.child::<P>("b").unwrap().send(P::Panic).unwrap();
    let log = entries(&log, 9);
    assert_eq!(
        log[3..],
        ["stop b failed", "stop c restart", "stop a restart", "start a", "start b", "start c"]
    );
    let restarts: Vec<u32> = sup.which_children().into_iter().map(|c| c.restarts).collect();
    assert_eq!(restarts, [1, 1, 1], "every member was restarted once");
    let restarting = sup
        .history()
        .iter()
        .filter(|e| matches!(e.kind, cellrt::SupervisionEventKind::Restarting { .. }))
        .count();
    assert_eq!(restarting, 1, "a group restart is one restart against the intensity");
}

#[test]
fn rest_for_one_restarts_the_failed_child_and_those_started_after_it() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = start3(&rt, Strategy::RestForOne, &log);
    sup.child::<P>("b").unwrap().send(P::Panic).unwrap();
    let entries = entries(&log, 7);
    assert_eq!(entries[3..], ["stop b failed", "stop c restart", "start b", "start c"]);
    let restarts: Vec<u32> = sup.which_children().into_iter().map(|c| c.restarts).collect();
    assert_eq!(restarts, [0, 1, 1]);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(log.len(), 7, "a was not touched: {:?}", log.items());
}

#[test]
fn rest_for_one_on_the_last_child_restarts_it_alone() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = start3(&rt, Strategy::RestForOne, &log);
    let c = sup.child::<P>("c").unwrap();
    c.send(P::Fail).unwrap();
    assert_eq!(get(&c), Vec::<u64>::new());
    assert_eq!(log.items()[3..], ["stop c failed", "start c"]);
}

#[test]
fn a_brutally_killed_group_member_keeps_its_mailbox_and_is_not_reported_terminated() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup", Strategy::OneForAll)
        .child(ProbeCfg::new("x", &log).spec())
        .child(ProbeCfg::new("k", &log).spec().shutdown(cellrt::Shutdown::Kill));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let k = sup.child::<P>("k").unwrap();
    let mut watch = rt.watch(&k);
    k.send(P::Sleep(Duration::from_millis(50))).unwrap();
    k.send(P::Put(1)).unwrap();
    sup.child::<P>("x").unwrap().send(P::Panic).unwrap();
    assert_eq!(get(&k), [1], "the message queued behind the kill reached the next incarnation");
    assert_eq!(watch.try_take(), Ok(None), "a restart is not a termination");
    assert!(!log.items().contains(&"stop k killed".to_owned()), "a kill runs no hook: {:?}", log.items());
    assert_eq!(sup.which_children()[1].restarts, 1);
}

#[test]
fn one_for_all_drops_temporary_bystanders_and_forgets_their_specs() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup", Strategy::OneForAll)
        .child(ProbeCfg::new("a", &log).spec())
        .child(ProbeCfg::new("t", &log).spec().restart(Restart::Temporary))
        .child(ProbeCfg::new("c", &log).spec());
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let t = sup.child::<P>("t").unwrap();
    sup.child::<P>("a").unwrap().send(P::Panic).unwrap();
    let log = entries(&log, 8);
    assert_eq!(log[3..], ["stop a failed", "stop c restart", "stop t restart", "start a", "start c"]);
    let ids: Vec<String> = sup.which_children().into_iter().map(|c| c.id).collect();
    assert_eq!(ids, ["a", "c"], "the temporary bystander's spec is forgotten");
    assert!(eventually(|| t.is_closed()), "the temporary bystander stopped for good");
    assert!(sup.child::<P>("t").is_none());
}

#[test]
fn a_supervisor_stops_its_children_in_reverse_start_order() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = start3(&rt, Strategy::OneForOne, &log);
    let watch = sup.watch();
    let report = rt.shutdown(PATIENCE);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(log.items()[3..], ["stop c shutdown", "stop b shutdown", "stop a shutdown"]);
    assert_eq!(watch.wait(PATIENCE).unwrap().path.as_str(), "/sup");
}

#[test]
fn pool_starts_children_on_demand_and_restarts_only_the_crashed_instance() {
    let rt = runtime(2);
    let log = Log::default();
    let spec =
        SupervisorSpec::pool("pool", ProbeCfg::new("w", &log).spec()).intensity(10, Duration::from_secs(60));
    let pool = rt.start_supervisor(spec, PATIENCE).unwrap();
    assert!(pool.which_children().is_empty(), "a pool starts no child with itself");
    let workers: Vec<cellrt::Addr<P>> =
        (0..3).map(|_| pool.start_pool_child::<P>(PATIENCE).unwrap()).collect();
    for (n, worker) in workers.iter().enumerate() {
        worker.send(P::Put(n as u64)).unwrap();
    }
    workers[1].send(P::Panic).unwrap();
    assert_eq!(get(&workers[1]), Vec::<u64>::new(), "the crashed instance restarted empty");
    assert_eq!(get(&workers[0]), [0], "the others kept their state");
    assert_eq!(get(&workers[2]), [2]);
    let restarts: Vec<u32> = pool.which_children().into_iter().map(|c| c.restarts).collect();
    assert_eq!(restarts, [0, 1, 0]);
    assert!(pool.which_children().iter().all(|c| c.id.starts_with('#') && c.state == ChildState::Running));
}

#[test]
fn pool_refuses_start_child_and_other_supervisors_refuse_start_pool_child() {
    let rt = runtime(1);
    let log = Log::default();
    let pool =
        rt.start_supervisor(SupervisorSpec::pool("pool", ProbeCfg::new("w", &log).spec()), PATIENCE).unwrap();
    let err = pool.start_child(ProbeCfg::new("x", &log).spec(), PATIENCE).unwrap_err();
    assert_eq!(err, cellrt::StartError::Spec(cellrt::SpecError::WrongStrategy { strategy: Strategy::Pool }));
    let plain = rt.start_supervisor(SupervisorSpec::new("plain"), PATIENCE).unwrap();
    let wrong = pool.start_pool_child::<String>(PATIENCE).unwrap_err();
    assert!(
        matches!(wrong, cellrt::StartError::MessageType { expected: "alloc::string::String", .. }),
        "{wrong:?}"
    );
    assert!(pool.which_children().is_empty(), "no child started for the wrong type");
    let err = plain.start_pool_child::<P>(PATIENCE).unwrap_err();
    assert_eq!(
        err,
        cellrt::StartError::Spec(cellrt::SpecError::WrongStrategy { strategy: Strategy::OneForOne })
    );
}

/// A cell that logs its index when it starts and when it stops.
struct Numbered {
    index: usize,
    log: Log<(char, usize)>,
}

impl cellrt::Cell for Numbered {
    type Message = P;

    fn started(&mut self, _: &mut cellrt::Context<Self>) -> Result<(), cellrt::CellError> {
        self.log.push(('+', self.index));
        Ok(())
    }

    fn handle(&mut self, _: &mut cellrt::Context<Self>, msg: P) -> Result<(), cellrt::CellError> {
        match msg {
            P::Panic => panic!("boom"),
            _ => Ok(()),
        }
    }

    fn stopped(&mut self, _: &mut cellrt::Context<Self>, _: &cellrt::StopReason) {
        self.log.push(('-', self.index));
    }
}

#[test]
fn ten_thousand_children_start_in_spec_order_and_restart_together_in_order() {
    const N: usize = 10_000;
    let rt = runtime(2);
    let log = Log::default();
    let mut spec = lenient("wide", Strategy::OneForAll);
    for index in 0..N {
        let log = log.clone();
        spec = spec
            .child(cellrt::ChildSpec::new(format!("c{index}"), move || Numbered { index, log: log.clone() }));
    }
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let started: Vec<(char, usize)> = (0..N).map(|i| ('+', i)).collect();
    assert_eq!(log.items(), started, "every child started once, in spec order");
    let counts = sup.count_children();
    assert_eq!((counts.specs, counts.active, counts.workers), (N, N, N));

    sup.child::<P>("c0").unwrap().send(P::Panic).unwrap();
    assert!(eventually(|| log.len() == 3 * N), "{} entries", log.len());
    let stopped = [('-', 0)].into_iter().chain((1..N).rev().map(|i| ('-', i)));
    let expected: Vec<(char, usize)> =
        started.iter().copied().chain(stopped).chain(started.iter().copied()).collect();
    assert_eq!(
        log.items(),
        expected,
        "c0 failed, the others stopped in reverse order, then all started in order"
    );
    assert!(sup.which_children().iter().all(|c| c.restarts == 1 && c.state == ChildState::Running));
}

/// How many children are in their `stopped` hook at once: each waits there
/// (up to `wait`) until `expected` children entered it, then logs the most
/// that were in it together so far, and leaves.
#[derive(Clone)]
struct Stopping {
    inside: std::sync::Arc<(std::sync::Mutex<Counts>, std::sync::Condvar)>,
    expected: usize,
    wait: Duration,
}

/// Children inside `stopped` now, entered so far, most inside at once.
type Counts = (usize, usize, usize);

struct Lingering {
    name: String,
    stopping: Stopping,
    log: Log<String>,
}

impl cellrt::Cell for Lingering {
    type Message = P;

    fn handle(&mut self, _: &mut cellrt::Context<Self>, _: P) -> Result<(), cellrt::CellError> {
        Ok(())
    }

    fn stopped(&mut self, _: &mut cellrt::Context<Self>, _: &cellrt::StopReason) {
        let (counts, changed) = &*self.stopping.inside;
        let mut counts = counts.lock().unwrap();
        counts.0 += 1;
        counts.1 += 1;
        counts.2 = counts.2.max(counts.0);
        changed.notify_all();
        let (mut counts, _) = changed
            .wait_timeout_while(counts, self.stopping.wait, |counts| counts.1 < self.stopping.expected)
            .unwrap();
        self.log.push(format!("stop {} with {} stopping", self.name, counts.2));
        counts.0 -= 1;
    }
}

fn lingering(name: &str, stopping: &Stopping, log: &Log<String>) -> cellrt::ChildSpec {
    let (name, stopping, log) = (name.to_owned(), stopping.clone(), log.clone());
    cellrt::ChildSpec::new(name.clone(), move || Lingering {
        name: name.clone(),
        stopping: stopping.clone(),
        log: log.clone(),
    })
}

#[test]
fn a_stopping_pool_stops_its_children_in_parallel() {
    let rt = cellrt::Runtime::builder().worker_threads(4).build().unwrap();
    let log = Log::default();
    let stopping = Stopping { inside: Default::default(), expected: 4, wait: PATIENCE };
    let pool = SupervisorSpec::pool("pool", lingering("w", &stopping, &log));
    let app = rt.start_supervisor(
        SupervisorSpec::new("app").child(cellrt::ChildSpec::supervisor("pool", pool)),
        PATIENCE,
    );
    let app = app.unwrap();
    let pool = app.supervisor("pool").unwrap();
    for _ in 0..4 {
        pool.start_pool_child::<P>(PATIENCE).unwrap();
    }
    app.terminate_child("pool", PATIENCE).unwrap();
    assert_eq!(log.items(), ["stop w with 4 stopping"; 4], "all four were in `stopped` at once");
    assert!(pool.is_stopped());
}

#[test]
fn an_ordinary_supervisor_stops_its_children_one_at_a_time_in_reverse_start_order() {
    let rt = cellrt::Runtime::builder().worker_threads(4).build().unwrap();
    let log = Log::default();
    // Each waits (200 ms at most) for a second child in `stopped`: none comes.
    let stopping = Stopping { inside: Default::default(), expected: 2, wait: Duration::from_millis(200) };
    let inner = SupervisorSpec::new("inner")
        .child(lingering("a", &stopping, &log))
        .child(lingering("b", &stopping, &log))
        .child(lingering("c", &stopping, &log));
    let app = SupervisorSpec::new("app").child(cellrt::ChildSpec::supervisor("inner", inner));
    let app = rt.start_supervisor(app, PATIENCE).unwrap();
    app.terminate_child("inner", PATIENCE).unwrap();
    assert_eq!(log.items(), ["stop c with 1 stopping", "stop b with 1 stopping", "stop a with 1 stopping"]);
}

/// Messages of [`Named`].
enum Naming {
    /// Answer with the id the factory was given.
    Id(cellrt::Reply<String>),
    /// Panic.
    Crash,
}

/// A cell that knows the id its factory was given.
struct Named(String);

impl cellrt::Cell for Named {
    type Message = Naming;

    fn handle(&mut self, _: &mut cellrt::Context<Self>, msg: Naming) -> Result<(), cellrt::CellError> {
        match msg {
            Naming::Id(reply) => drop(reply.send(self.0.clone())),
            Naming::Crash => panic!("boom"),
        }
        Ok(())
    }
}

#[test]
fn a_pool_template_learns_the_id_of_each_child_it_makes_and_again_at_its_restart() {
    let rt = runtime(2);
    let made: Log<String> = Log::default();
    let log = made.clone();
    let template = cellrt::ChildSpec::new_at("w", move |path| {
        log.push(path.as_str().to_owned());
        Named(path.name().to_owned())
    });
    let pool = SupervisorSpec::pool("pool", template).intensity(10, Duration::from_secs(60));
    let pool = rt.start_supervisor(pool, PATIENCE).unwrap();
    let workers: Vec<cellrt::Addr<Naming>> =
        (0..3).map(|_| pool.start_pool_child(PATIENCE).unwrap()).collect();
    let ids: Vec<String> = pool.which_children().into_iter().map(|c| c.id).collect();
    let id_of = |w: &cellrt::Addr<Naming>| w.ask(Naming::Id).unwrap().wait(PATIENCE).unwrap();
    assert_eq!(workers.iter().map(id_of).collect::<Vec<_>>(), ids, "each child was made knowing its own id");
    let mut paths: Vec<String> = ids.iter().map(|id| format!("/pool/{id}")).collect();
    assert_eq!(made.items(), paths);

    workers[1].send(Naming::Crash).unwrap();
    assert_eq!(id_of(&workers[1]), ids[1], "the restarted incarnation was made for the same id");
    paths.push(paths[1].clone());
    assert_eq!(made.items(), paths);
}
