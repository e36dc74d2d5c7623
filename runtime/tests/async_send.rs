//! Sending and asking from tokio tasks (feature `tokio`): waiting for room
//! without blocking, cancellation, timeouts, stopped cells and a runtime
//! shut down under waiting tasks. Every wait that could hang runs under a
//! `tokio::time::timeout` guard.
#![cfg(feature = "tokio")]

mod common;

use std::future::Future;
use std::time::Duration;

use cellrt::{
    Addr, AskAsyncError, Cell, CellConfig, CellError, Context, Reply, Runtime, SendAsync, SendError,
};
use common::{eventually, gate, open, runtime, Gate, Gated, Log, PATIENCE};

/// Fails the test instead of hanging when `future` does not complete.
async fn guarded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future).await.expect("the future completed within the guard")
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap()
}

/// Answers `(n, reply)` with `n * 2`, or drops the reply for 0.
struct Doubler;

impl Cell for Doubler {
    type Message = (u64, Reply<u64>);

    fn handle(&mut self, _ctx: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
        if n != 0 {
            let _ = reply.send(n * 2);
        }
        Ok(())
    }
}

/// A capacity-1 cell held full: its handler holds 1 until `gate` opens and
/// 2 waits in its mailbox. It logs what it handled to `log`.
fn full_mailbox(rt: &Runtime, gate: &Gate, log: &Log<u64>) -> Addr<u64> {
    let addr =
        rt.spawn_with(CellConfig::new().capacity(1), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    addr.try_send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0), "the worker holds 1 in its handler");
    addr.try_send(2).unwrap();
    addr
}

/// Holds every request until its gate opens.
struct GatedDoubler(Gate);

impl Cell for GatedDoubler {
    type Message = (u64, Reply<u64>);

    fn handle(&mut self, _ctx: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
        common::wait_open(&self.0);
        let _ = reply.send(n * 2);
        Ok(())
    }
}

#[test]
fn send_async_waits_for_room_on_a_current_thread_runtime_and_keeps_the_order() {
    let rt = runtime(1);
    let log = Log::default();
    let gate = gate();
    let addr =
        rt.spawn_with(CellConfig::new().capacity(2), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            open(&gate);
        })
    };
    current_thread().block_on(guarded(async {
        for n in 0..200 {
            addr.send_async(n).await.unwrap();
        }
    }));
    opener.join().unwrap();
    assert!(eventually(|| log.len() == 200));
    assert_eq!(log.items(), (0..200).collect::<Vec<u64>>());
    rt.shutdown(PATIENCE);
}

#[test]
fn many_tasks_on_a_multi_thread_runtime_deliver_every_message_through_a_small_mailbox() {
    let rt = runtime(1);
    let log = Log::default();
    let gate = gate();
    open(&gate);
    let addr = rt.spawn_with(CellConfig::new().capacity(4), Gated { gate, log: log.clone() }).unwrap();
    multi_thread().block_on(guarded(async {
        let tasks: Vec<_> = (0..100_u64)
            .map(|task| {
                let addr = addr.clone();
                tokio::spawn(async move {
                    for n in 0..100 {
                        addr.send_async(task * 1000 + n).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    }));
    assert!(eventually(|| log.len() == 10_000));
    let mut items = log.items();
    // Each task's messages arrive in the order it sent them.
    for task in 0..100_u64 {
        let mine: Vec<u64> = items.iter().copied().filter(|n| n / 1000 == task).collect();
        assert_eq!(mine, (0..100).map(|n| task * 1000 + n).collect::<Vec<u64>>());
    }
    items.sort_unstable();
    items.dedup();
    assert_eq!(items.len(), 10_000, "no message delivered twice");
    rt.shutdown(PATIENCE);
}

#[test]
fn tasks_waiting_on_a_full_capacity_one_mailbox_each_deliver_once_when_some_are_cancelled_while_waiting() {
    let rt = runtime(1);
    let log = Log::default();
    let gate = gate();
    let addr = full_mailbox(&rt, &gate, &log);
    let tokio = multi_thread();
    let (cancel, cancelled) = tokio::sync::watch::channel(false);
    // Tasks 100..400 wait for room; every third one gives up when told to,
    // whether it still waits, was just woken, or already delivered.
    let tasks: Vec<_> = (100..400_u64)
        .map(|n| {
            let addr = addr.clone();
            let mut cancelled = cancelled.clone();
            tokio.spawn(async move {
                let mut send = addr.send_async(n);
                if n % 3 != 0 {
                    send.await.unwrap();
                    return (n, true);
                }
                tokio::select! {
                    sent = &mut send => {
                        sent.unwrap();
                        (n, true)
                    }
                    _ = cancelled.wait_for(|cancel| *cancel) => match send.into_inner() {
                        Some(back) => {
                            assert_eq!(back, n, "a cancelled send hands its own message back");
                            (n, false)
                        }
                        None => (n, true),
                    },
                }
            })
        })
        .collect();
    tokio.block_on(async { tokio::time::sleep(Duration::from_millis(20)).await });
    open(&gate);
    cancel.send(true).unwrap();
    let outcomes: Vec<(u64, bool)> = tokio.block_on(guarded(async {
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.unwrap());
        }
        outcomes
    }));
    let delivered: Vec<u64> = outcomes.iter().filter(|(_, sent)| *sent).map(|(n, _)| *n).collect();
    assert!(
        outcomes.iter().all(|(n, sent)| *sent || n % 3 == 0),
        "only a cancelled send may end undelivered"
    );
    let expected = delivered.len() + 2;
    assert!(eventually(|| log.len() == expected));
    let mut items = log.items();
    assert_eq!(items[..2], [1, 2]);
    items.sort_unstable();
    let mut wanted: Vec<u64> = [1, 2].into_iter().chain(delivered).collect();
    wanted.sort_unstable();
    assert_eq!(items, wanted, "every delivered message handled exactly once, no other");
    rt.shutdown(PATIENCE);
}

#[test]
fn send_async_to_a_stopped_cell_hands_the_message_back_as_closed() {
    let rt = runtime(1);
    let gate = gate();
    open(&gate);
    let addr = rt.spawn(Gated { gate, log: Log::default() }).unwrap();
    rt.stop(&addr);
    assert!(eventually(|| addr.is_closed()));
    let result = current_thread().block_on(guarded(addr.send_async(3)));
    assert_eq!(result, Err(SendError::Closed(3)));
    rt.shutdown(PATIENCE);
}

#[test]
fn a_task_waiting_for_room_is_woken_by_the_stop_and_gets_its_message_back() {
    let rt = runtime(1);
    let gate = gate();
    let addr = full_mailbox(&rt, &gate, &Log::default());
    let tokio = multi_thread();
    let waiting = tokio.spawn({
        let addr = addr.clone();
        async move { addr.send_async(3).await }
    });
    std::thread::sleep(Duration::from_millis(20));
    assert!(!waiting.is_finished(), "the mailbox is full");
    rt.stop(&addr);
    open(&gate);
    let result = tokio.block_on(guarded(waiting)).unwrap();
    assert_eq!(result, Err(SendError::Closed(3)));
    rt.shutdown(PATIENCE);
}

#[test]
fn runtime_shut_down_under_waiting_tasks_ends_every_wait_with_a_typed_error() {
    let rt = runtime(1);
    let gate = gate();
    let addr = rt.spawn_with(CellConfig::new().capacity(1), GatedDoubler(gate.clone())).unwrap();
    let tokio = multi_thread();
    // Four asks: one in the handler, one queued, two waiting for room.
    let asks: Vec<_> = (1..=4_u64)
        .map(|n| {
            let ask = addr.ask_async(PATIENCE * 10, move |reply| (n, reply));
            let task = tokio.spawn(ask);
            std::thread::sleep(Duration::from_millis(10));
            task
        })
        .collect();
    assert!(asks.iter().all(|task| !task.is_finished()));
    let shutdown = std::thread::spawn(move || rt.shutdown(Duration::from_millis(200)));
    std::thread::sleep(Duration::from_millis(50));
    open(&gate);
    shutdown.join().unwrap();
    let results: Vec<_> = tokio.block_on(guarded(async {
        let mut results = Vec::new();
        for task in asks {
            results.push(task.await.unwrap());
        }
        results
    }));
    // The one in the handler may be answered; none waits on.
    for (n, result) in results.iter().enumerate().skip(1) {
        match result {
            Err(AskAsyncError::Unanswered) => {}
            Err(AskAsyncError::NotSent(SendError::Closed((m, _)))) => assert_eq!(*m, n as u64 + 1),
            Ok(answer) => assert_eq!(*answer, (n as u64 + 1) * 2),
            other => panic!("ask {} ended with {other:?}", n + 1),
        }
    }
    assert!(matches!(results[0], Ok(2) | Err(AskAsyncError::Unanswered)));
    let refused = results.iter().filter(|r| matches!(r, Err(AskAsyncError::NotSent(_)))).count();
    assert!(refused >= 1, "at least one ask was still waiting for room: {results:?}");
}

#[test]
fn a_dropped_send_leaves_no_waiter_and_delivers_nothing() {
    let rt = runtime(1);
    let log = Log::default();
    let gate = gate();
    let addr = full_mailbox(&rt, &gate, &log);
    let tokio = current_thread();
    let kept = tokio.block_on(async {
        let mut send: SendAsync<u64> = addr.send_async(3);
        tokio::select! {
            _ = &mut send => panic!("the mailbox is full"),
            _ = tokio::time::sleep(Duration::from_millis(10)) => {}
        }
        send.into_inner()
    });
    assert_eq!(kept, Some(3), "the message stays the caller's");
    // A second send is cancelled by dropping it outright.
    tokio.block_on(async {
        let _ = tokio::time::timeout(Duration::from_millis(10), addr.send_async(4)).await;
    });
    open(&gate);
    // A later send still gets through: the dropped waiters took nothing.
    tokio.block_on(guarded(addr.send_async(5))).unwrap();
    assert!(eventually(|| log.len() == 3));
    assert_eq!(log.items(), vec![1, 2, 5]);
    rt.shutdown(PATIENCE);
}

#[cfg(feature = "observe")]
#[test]
fn each_task_that_found_the_mailbox_full_counts_one_rejection() {
    let rt = runtime(2);
    let log = Log::default();
    let gate = gate();
    let addr = full_mailbox(&rt, &gate, &log);
    let tokio = multi_thread();
    let rejected = || {
        let snapshot = rt.snapshot();
        let cell =
            snapshot.cells.iter().find(|c| &c.path == addr.path()).expect("the cell is in the snapshot");
        cell.metrics.as_ref().map_or(0, |m| m.rejected_full)
    };
    let sends: Vec<_> = (10..18).map(|n| tokio.spawn(guarded(addr.send_async(n)))).collect();
    // Every task offered once and waits.
    assert!(eventually(|| rejected() == 8));
    open(&gate);
    for send in sends {
        assert_eq!(tokio.block_on(send).unwrap(), Ok(()));
    }
    assert!(eventually(|| log.items().len() == 10));
    assert_eq!(rejected(), 8, "one per task, none for the offers after a wake");
    rt.shutdown(PATIENCE);
}

#[test]
fn send_async_timeout_hands_the_message_back_when_the_mailbox_stays_full() {
    let rt = runtime(1);
    let gate = gate();
    let addr = full_mailbox(&rt, &gate, &Log::default());
    let tokio = current_thread();
    let late = tokio.block_on(guarded(addr.send_async_timeout(3, Duration::from_millis(20))));
    assert_eq!(late, Err(SendError::Timeout(3)));
    let zero = tokio.block_on(guarded(addr.send_async_timeout(4, Duration::ZERO)));
    assert_eq!(zero, Err(SendError::Timeout(4)), "a zero timeout is one try");
    open(&gate);
    let sent = tokio.block_on(guarded(addr.send_async_timeout(5, PATIENCE)));
    assert_eq!(sent, Ok(()));
    rt.shutdown(PATIENCE);
}

#[test]
fn ask_async_from_spawned_tasks_gets_every_answer() {
    let rt = runtime(2);
    let addr = rt.spawn(Doubler).unwrap();
    let answers = multi_thread().block_on(guarded(async {
        let tasks: Vec<_> =
            (1..=500_u64).map(|n| tokio::spawn(addr.ask_async(PATIENCE, move |reply| (n, reply)))).collect();
        let mut answers = Vec::new();
        for task in tasks {
            answers.push(task.await.unwrap().unwrap());
        }
        answers
    }));
    assert_eq!(answers, (1..=500).map(|n| n * 2).collect::<Vec<u64>>());
    rt.shutdown(PATIENCE);
}

#[test]
fn ask_async_reports_an_unanswered_request_and_a_stopped_cell() {
    let rt = runtime(1);
    let addr = rt.spawn(Doubler).unwrap();
    let tokio = current_thread();
    let dropped = tokio.block_on(guarded(addr.ask_async(PATIENCE, |reply| (0, reply))));
    assert!(matches!(dropped, Err(AskAsyncError::Unanswered)), "{dropped:?}");
    rt.stop(&addr);
    assert!(eventually(|| addr.is_closed()));
    let refused = tokio.block_on(guarded(addr.ask_async(PATIENCE, |reply| (7, reply)))).unwrap_err();
    assert!(refused.is_closed());
    assert_eq!(refused.into_request().map(|(n, _)| n), Some(7));
    rt.shutdown(PATIENCE);
}

#[test]
fn ask_async_times_out_when_the_answer_is_late() {
    let rt = runtime(1);
    let gate = gate();
    let addr = rt.spawn(GatedDoubler(gate.clone())).unwrap();
    let result =
        current_thread().block_on(guarded(addr.ask_async(Duration::from_millis(20), |reply| (1, reply))));
    assert!(matches!(result, Err(AskAsyncError::Timeout)), "{result:?}");
    assert!(AskAsyncError::<u8>::Timeout.is_timeout());
    open(&gate);
    rt.shutdown(PATIENCE);
}

#[test]
fn the_async_futures_are_send_and_static() {
    fn send_static<F: Future + Send + 'static>(_: &F) {}
    let rt = runtime(1);
    let sink = rt.spawn(Gated { gate: gate(), log: Log::default() }).unwrap();
    let doubler = rt.spawn(Doubler).unwrap();
    send_static(&sink.send_async(1));
    send_static(&sink.send_async_timeout(1, PATIENCE));
    send_static(&doubler.ask_async(PATIENCE, |reply| (1, reply)));
    rt.shutdown(Duration::from_millis(100));
}
