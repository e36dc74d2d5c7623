//! Nothing lost: kept mailboxes, re-delivery, poison messages, dead
//! letters, unanswered asks, and watches.

mod common;

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use cellrt::{
    AskError, Cell, CellError, ChildSpec, ChildState, Context, Restart, RetryPolicy, StopReason,
    SupervisorSpec, Terminated,
};
use common::probe::{reason_name, Gate, ProbeCfg, P};
use common::{eventually, runtime, Log, PATIENCE};

fn lenient(name: &str) -> SupervisorSpec {
    SupervisorSpec::new(name).intensity(100, Duration::from_secs(60))
}

#[test]
fn a_restarted_cell_keeps_its_mailbox_and_handles_every_queued_message_once() {
    let rt = runtime(2);
    let log = Log::default();
    let sup =
        rt.start_supervisor(lenient("sup").child(ProbeCfg::new("w", &log).spec().capacity(64)), PATIENCE);
    let w = sup.unwrap().child::<P>("w").unwrap();
    let gate = Gate::default();
    w.send(P::Block(gate.clone())).unwrap();
    for n in 1..=5 {
        w.send(P::Put(n)).unwrap();
    }
    w.send(P::Panic).unwrap();
    for n in 6..=10 {
        w.send(P::Put(n)).unwrap();
    }
    assert!(eventually(|| w.queued() == 11), "blocked in the first message, eleven queued");
    gate.open();
    assert_eq!(
        w.ask(P::Get).unwrap().wait(PATIENCE).unwrap(),
        [6, 7, 8, 9, 10],
        "the new incarnation's share"
    );
    let expected: Vec<String> = ["start w"]
        .into_iter()
        .map(String::from)
        .chain((1..=5).map(|n| format!("w {n}")))
        .chain(["stop w failed".to_owned(), "start w".to_owned()])
        .chain((6..=10).map(|n| format!("w {n}")))
        .collect();
    assert_eq!(log.items(), expected);
    assert_eq!(rt.dead_letter_count(), 1, "only the failed message is dead");
    let letter = &rt.dead_letters()[0];
    assert_eq!(letter.failure().message_kind, Some("Panic"));
    assert!(letter.take_message::<P>().is_some_and(|m| matches!(m, P::Panic)));
}

#[test]
fn senders_racing_restarts_lose_nothing_and_duplicate_nothing() {
    const SENDERS: u64 = 2;
    const EACH: u64 = 2_000;
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(
        lenient("sup").intensity(1_000, Duration::from_secs(60)).child(ProbeCfg::new("w", &log).spec()),
        PATIENCE,
    );
    let w = sup.unwrap().child::<P>("w").unwrap();
    let threads: Vec<_> = (0..SENDERS)
        .map(|s| {
            let w = w.clone();
            std::thread::spawn(move || {
                for n in 0..EACH {
                    w.send(P::Put(s * EACH + n)).unwrap();
                    if n % 200 == 0 {
                        w.send(P::Panic).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let _ = w.ask(P::Get).unwrap().wait(PATIENCE).unwrap();
    let mut seen: Vec<u64> = log.items().iter().filter_map(|e| e.strip_prefix("w ")?.parse().ok()).collect();
    assert_eq!(seen.len() as u64, SENDERS * EACH, "every message handled once");
    for s in 0..SENDERS {
        let mine: Vec<u64> = seen.iter().copied().filter(|n| n / EACH == s).collect();
        assert!(mine.windows(2).all(|p| p[0] < p[1]), "each sender's messages in the order sent");
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len() as u64, SENDERS * EACH);
    assert_eq!(rt.dead_letter_count(), SENDERS * (EACH / 200));
}

#[test]
fn a_retried_message_that_succeeds_is_handled_by_the_next_incarnation() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup").child(ProbeCfg::new("w", &log).spec().retry(RetryPolicy::attempts(1)));
    let w = rt.start_supervisor(spec, PATIENCE).unwrap().child::<P>("w").unwrap();
    w.send(P::Flaky(7, Arc::new(AtomicU32::new(1)))).unwrap();
    w.send(P::Put(8)).unwrap();
    assert_eq!(w.ask(P::Get).unwrap().wait(PATIENCE).unwrap(), [7, 8], "re-delivered first, then the queue");
    assert_eq!(rt.dead_letter_count(), 0);
    assert_eq!(log.items(), ["start w", "stop w failed", "start w", "w 7", "w 8"]);
}

#[test]
fn a_message_failing_again_with_the_same_cause_is_a_poison_message() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup").child(ProbeCfg::new("w", &log).spec().retry(RetryPolicy::attempts(3)));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    w.send(P::Panic).unwrap();
    w.send(P::Put(1)).unwrap();
    assert_eq!(w.ask(P::Get).unwrap().wait(PATIENCE).unwrap(), [1]);
    assert_eq!(
        log.items(),
        ["start w", "stop w failed", "start w", "stop w failed", "start w", "w 1"],
        "retried once, then given up: not retried forever"
    );
    let letters = rt.dead_letters();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].is_poison());
    assert_eq!(letters[0].redeliveries(), 1);
    assert_eq!(letters[0].failure().path.as_str(), "/sup/w");
    assert!(matches!(letters[0].take_message::<P>(), Some(P::Panic)));
    assert!(letters[0].take_message::<P>().is_none(), "handed out once");
    assert!(!letters[0].has_message());
    assert_eq!(sup.which_children()[0].restarts, 2);
}

#[test]
fn an_overrun_that_overruns_again_is_a_poison_message_however_long_it_ran() {
    let rt = runtime(2);
    let log = Log::default();
    let spec = lenient("sup").child(
        ProbeCfg::new("w", &log).spec().deadline(Duration::from_millis(5)).retry(RetryPolicy::attempts(3)),
    );
    let w = rt.start_supervisor(spec, PATIENCE).unwrap().child::<P>("w").unwrap();
    w.send(P::Sleep(Duration::from_millis(20))).unwrap();
    let _ = w.ask(P::Get).unwrap().wait(PATIENCE).unwrap();
    let letters = rt.dead_letters();
    assert_eq!(letters.len(), 1);
    assert!(letters[0].is_poison());
    assert_eq!(letters[0].redeliveries(), 1);
}

/// A cell that does not retain its messages.
struct Forgetful;

impl Cell for Forgetful {
    type Message = u32;
    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        if n == 0 {
            return Err(CellError::msg("zero"));
        }
        Ok(())
    }
}

#[test]
fn a_failed_message_of_a_cell_that_does_not_retain_is_dead_lettered_without_a_body() {
    let rt = runtime(1);
    let spec = lenient("sup").child(ChildSpec::new("f", || Forgetful).retry(RetryPolicy::attempts(1)));
    let f = rt.start_supervisor(spec, PATIENCE).unwrap().child::<u32>("f").unwrap();
    f.send(0).unwrap();
    assert!(eventually(|| rt.dead_letter_count() == 1));
    let letter = &rt.dead_letters()[0];
    assert!(!letter.has_message());
    assert_eq!(letter.take_message::<u32>(), None);
    assert_eq!(letter.failure().to_string(), "cell /sup/f failed in handle (u32): error: zero");
}

#[test]
fn an_ask_whose_handler_panics_resolves_unanswered() {
    let rt = runtime(1);
    struct Asker;
    impl Cell for Asker {
        type Message = cellrt::Reply<u8>;
        fn handle(&mut self, _: &mut Context<Self>, _: cellrt::Reply<u8>) -> Result<(), CellError> {
            panic!("no answer")
        }
    }
    let a = rt.start_supervisor(lenient("sup").child(ChildSpec::new("a", || Asker)), PATIENCE).unwrap();
    let a = a.child::<cellrt::Reply<u8>>("a").unwrap();
    assert_eq!(a.ask(|r| r).unwrap().wait(PATIENCE), Err(AskError::Unanswered));
    // The reply is dropped while the panic unwinds, before the failure is
    // recorded: the asker may hear first.
    assert!(eventually(|| rt.dead_letter_count() == 1));
}

#[test]
fn watch_fires_when_a_cell_stops_for_good_not_when_it_restarts() {
    let rt = runtime(2);
    let log = Log::default();
    let sup = rt.start_supervisor(lenient("sup").child(ProbeCfg::new("w", &log).spec()), PATIENCE).unwrap();
    let w = sup.child::<P>("w").unwrap();
    let mut watch = rt.watch(&w);
    w.send(P::Panic).unwrap();
    assert!(eventually(
        || sup.which_children()[0].restarts == 1 && sup.which_children()[0].state == ChildState::Running
    ));
    assert_eq!(watch.try_take(), Ok(None), "a restart is not a termination");
    sup.terminate_child("w", PATIENCE).unwrap();
    let terminated = watch.wait(PATIENCE).unwrap();
    assert_eq!(terminated.path.as_str(), "/sup/w");
    assert_eq!(terminated.reason, StopReason::Shutdown);
    let late = rt.watch(&w).wait(Duration::ZERO).expect("resolved at once for a stopped cell");
    assert_eq!(late, terminated);
}

/// Watches an address and logs the notice.
struct Watcher {
    target: cellrt::Addr<P>,
    log: Log<String>,
}

enum WatcherMsg {
    Down(Terminated),
}

impl Cell for Watcher {
    type Message = WatcherMsg;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        ctx.watch(&self.target.clone(), WatcherMsg::Down);
        Ok(())
    }

    fn handle(&mut self, _: &mut Context<Self>, msg: WatcherMsg) -> Result<(), CellError> {
        let WatcherMsg::Down(t) = msg;
        self.log.push(format!("down {} {}", t.path, reason_name(&t.reason)));
        Ok(())
    }
}

#[test]
fn a_cell_watching_an_address_gets_one_message_when_it_stops_for_good() {
    let rt = runtime(2);
    let log = Log::default();
    let target = rt.spawn_with(cellrt::CellConfig::named("target"), ProbeCfg::new("t", &log).cell()).unwrap();
    let notices = Log::default();
    rt.spawn(Watcher { target: target.clone(), log: notices.clone() }).unwrap();
    target.send(P::Fail).unwrap();
    assert!(eventually(|| notices.len() == 1));
    assert_eq!(notices.items(), ["down /target failed"]);
}

#[test]
fn a_restarted_supervisor_restarts_its_static_children_behind_the_same_addresses() {
    let rt = runtime(2);
    let log = Log::default();
    let inner = SupervisorSpec::new("inner")
        .intensity(0, Duration::from_secs(60))
        .child(ProbeCfg::new("a", &log).spec());
    let outer = rt
        .start_supervisor(
            lenient("outer").child(ChildSpec::supervisor("inner", inner).restart(Restart::Permanent)),
            PATIENCE,
        )
        .unwrap();
    let a = outer.supervisor("inner").unwrap().child::<P>("a").unwrap();
    let gate = Gate::default();
    a.send(P::Block(gate.clone())).unwrap();
    a.send(P::Panic).unwrap();
    a.send(P::Put(1)).unwrap();
    gate.open();
    // inner gives up at once; outer restarts it; it restarts `a`, which
    // handles what queued meanwhile.
    assert_eq!(a.ask(P::Get).unwrap().wait(PATIENCE).unwrap(), [1]);
    assert_eq!(outer.which_children()[0].restarts, 1);
    assert_eq!(log.items(), ["start a", "stop a failed", "start a", "a 1"]);
}

/// Makes `victim` fail under a supervisor of intensity 0, waits for the
/// supervisor's watch, then sends to every child at once: how many sends
/// were refused as `Closed`, out of how many.
fn sends_refused_after_the_watch(sup: &cellrt::Supervisor, children: &[cellrt::Addr<P>]) -> (usize, usize) {
    let watch = sup.watch();
    children[0].send(P::Panic).unwrap();
    let terminated = watch.wait(PATIENCE).unwrap();
    assert!(matches!(terminated.reason, StopReason::Escalated(_)), "{:?}", terminated.reason);
    let refused = children
        .iter()
        .filter(|c| matches!(c.try_send(P::Put(1)), Err(cellrt::SendError::Closed(_))))
        .count();
    (refused, children.len())
}

#[test]
fn a_pool_child_refuses_sends_once_the_pool_watch_reports_it_terminated() {
    for round in 0..500 {
        let rt = runtime(2);
        let log = Log::default();
        let spec = SupervisorSpec::pool("pool", ProbeCfg::new("w", &log).spec())
            .intensity(0, Duration::from_secs(1));
        let pool = rt.start_supervisor(spec, PATIENCE).unwrap();
        let children: Vec<_> = (0..4).map(|_| pool.start_pool_child::<P>(PATIENCE).unwrap()).collect();
        assert_eq!(sends_refused_after_the_watch(&pool, &children), (4, 4), "round {round}");
    }
}

#[test]
fn static_children_refuse_sends_once_their_supervisor_watch_reports_it_terminated() {
    for round in 0..500 {
        let rt = runtime(2);
        let log = Log::default();
        let inner = SupervisorSpec::new("inner").child(ProbeCfg::new("x", &log).spec());
        let spec = SupervisorSpec::new("sup")
            .intensity(0, Duration::from_secs(1))
            .child(ProbeCfg::new("a", &log).spec())
            .child(ProbeCfg::new("b", &log).spec())
            .child(ChildSpec::supervisor("inner", inner));
        let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
        let grandchild = sup.supervisor("inner").unwrap().child::<P>("x").unwrap();
        let children = [sup.child::<P>("a").unwrap(), sup.child::<P>("b").unwrap(), grandchild];
        assert_eq!(sends_refused_after_the_watch(&sup, &children), (3, 3), "round {round}");
    }
}
