//! Addresses: sending, backpressure, stopped targets, replacing the cell
//! behind an address.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellrt::{Cell, CellConfig, CellError, Context, SendError, StopReason};
use common::{eventually, gate, open, runtime, Gated, Log, Rec, Recorder, PATIENCE};

#[test]
fn full_mailbox_hands_message_back() {
    let rt = runtime(1);
    let gate = gate();
    let log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::new().capacity(2), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    addr.try_send(1).unwrap();
    // The worker takes 1 and blocks in the handler; then two fit, the fourth does not.
    assert!(eventually(|| addr.queued() == 0));
    addr.try_send(2).unwrap();
    addr.try_send(3).unwrap();
    assert_eq!(addr.try_send(4), Err(SendError::Full(4)));
    open(&gate);
    assert!(eventually(|| log.len() == 3));
    assert_eq!(log.items(), vec![1, 2, 3]);
    rt.shutdown(PATIENCE);
}

#[test]
fn send_waits_for_room_off_the_workers() {
    let rt = runtime(1);
    let gate = gate();
    let log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::new().capacity(1), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0));
    addr.send(2).unwrap();
    let opener = {
        let gate = gate.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            open(&gate);
        })
    };
    // Blocks until the handler frees a slot, then succeeds.
    addr.send_timeout(3, PATIENCE).unwrap();
    opener.join().unwrap();
    assert!(eventually(|| log.len() == 3));
    assert_eq!(log.items(), vec![1, 2, 3]);
    rt.shutdown(PATIENCE);
}

#[test]
fn send_times_out_and_hands_message_back() {
    let rt = runtime(1);
    let gate = gate();
    let addr = rt
        .spawn_with(CellConfig::new().capacity(1), Gated { gate: gate.clone(), log: Log::default() })
        .unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0));
    addr.send(2).unwrap();
    let started = Instant::now();
    assert_eq!(addr.send_timeout(3, Duration::from_millis(30)), Err(SendError::Timeout(3)));
    assert!(started.elapsed() >= Duration::from_millis(30));
    open(&gate);
    rt.shutdown(PATIENCE);
}

/// A cell that floods a full mailbox with `send` from inside its handler.
struct Flooder<M: Send + 'static> {
    target: cellrt::Addr<M>,
    make: fn(u64) -> M,
    results: Log<Result<(), &'static str>>,
}

impl<M: Send + 'static> Cell for Flooder<M> {
    type Message = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, count: u64) -> Result<(), CellError> {
        for n in 0..count {
            let outcome = match self.target.send((self.make)(n)) {
                Ok(()) => Ok(()),
                Err(SendError::Full(_)) => Err("full"),
                Err(SendError::Closed(_)) => Err("closed"),
                Err(_) => Err("other"),
            };
            self.results.push(outcome);
        }
        Ok(())
    }
}

#[test]
fn send_inside_a_cell_never_blocks_the_pool() {
    // One worker: if `send` blocked inside the flooder, the target could
    // never run and the runtime would deadlock.
    let rt = runtime(1);
    let log = Log::default();
    let target = rt.spawn_with(CellConfig::new().capacity(4), Recorder::new(&log)).unwrap();
    let results = Log::default();
    let flooder =
        rt.spawn(Flooder { target: target.clone(), make: Rec::Put, results: results.clone() }).unwrap();
    let started = Instant::now();
    flooder.send(10).unwrap();
    assert!(eventually(|| results.len() == 10));
    let outcomes = results.items();
    assert_eq!(outcomes.iter().filter(|r| r.is_ok()).count(), 4);
    assert_eq!(outcomes[4..], vec![Err("full"); 6][..]);
    assert!(started.elapsed() < rt_send_timeout(), "send inside a cell must not wait");
    assert!(eventually(|| log.len() == 4));
    assert_eq!(log.items(), vec![0, 1, 2, 3]);
    rt.shutdown(PATIENCE);
}

fn rt_send_timeout() -> Duration {
    Duration::from_secs(5)
}

#[test]
fn send_to_a_stopped_cell_is_closed() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    addr.send(Rec::Stop).unwrap();
    assert!(eventually(|| addr.is_closed()));
    match addr.try_send(Rec::Put(1)) {
        Err(SendError::Closed(Rec::Put(1))) => {}
        other => panic!("expected Closed(Put(1)), got {other:?}"),
    }
    assert!(matches!(addr.send(Rec::Put(2)), Err(SendError::Closed(Rec::Put(2)))));
    assert!(matches!(addr.ask(Rec::Dump), Err(SendError::Closed(Rec::Dump(_)))));
    rt.shutdown(PATIENCE);
}

#[test]
fn stop_through_the_runtime_leaves_queued_messages_undelivered() {
    let rt = runtime(1);
    let gate = gate();
    let log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::new().capacity(8), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0));
    for n in 2..=4 {
        addr.send(n).unwrap();
    }
    rt.stop(&addr);
    open(&gate);
    assert!(eventually(|| addr.is_closed()));
    assert_eq!(log.items(), vec![1], "only the message being handled completes");
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 0, "the cell had stopped before shutdown");
}

#[test]
fn weak_address_upgrades_only_while_the_address_exists() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    let weak = addr.downgrade();
    assert_eq!(weak.upgrade(), Some(addr.clone()));
    addr.send(Rec::Stop).unwrap();
    assert!(eventually(|| addr.is_closed()));
    drop(addr);
    assert!(weak.upgrade().is_none(), "a stopped cell's context no longer holds the address");
    rt.shutdown(PATIENCE);
}

#[test]
fn addresses_compare_by_identity() {
    let rt = runtime(1);
    let log = Log::default();
    let a = rt.spawn(Recorder::new(&log)).unwrap();
    let b = rt.spawn(Recorder::new(&log)).unwrap();
    assert_eq!(a, a.clone());
    assert_ne!(a, b);
    assert_eq!(format!("{a:?}"), format!("Addr({:?})", a.path().as_str()));
    rt.shutdown(PATIENCE);
}

#[test]
fn replace_moves_queued_messages_to_the_new_cell() {
    let rt = runtime(1);
    let gate = gate();
    let old_log = Log::default();
    let addr = rt
        .spawn_with(
            CellConfig::named("stage").capacity(16),
            Gated { gate: gate.clone(), log: old_log.clone() },
        )
        .unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0));
    for n in 2..=5 {
        addr.send(n).unwrap();
    }
    let new_log = Log::default();
    let open_gate = gate_opened();
    rt.replace(&addr, Gated { gate: open_gate, log: new_log.clone() }).unwrap();
    addr.send(6).unwrap();
    // The new cell waits while the old one is still inside message 1.
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(new_log.items(), Vec::<u64>::new(), "nothing is handled by two cells at once");
    open(&gate);
    assert!(eventually(|| new_log.len() == 5));
    assert_eq!(old_log.items(), vec![1]);
    assert_eq!(new_log.items(), vec![2, 3, 4, 5, 6], "handed-over messages first, in order");
    assert_eq!(addr.path().as_str(), "/stage");
    assert!(eventually(|| rt.cell_count() == 1), "the old cell stopped");
    rt.shutdown(PATIENCE);
}

fn gate_opened() -> Arc<(std::sync::Mutex<bool>, std::sync::Condvar)> {
    let g = gate();
    open(&g);
    g
}

/// Counts messages and remembers each sender's last sequence number.
struct Tally {
    handled: Arc<AtomicU64>,
    last: Vec<Option<u64>>,
    out_of_order: Arc<AtomicU64>,
}

impl Cell for Tally {
    type Message = (usize, u64);

    fn handle(&mut self, _ctx: &mut Context<Self>, (sender, seq): (usize, u64)) -> Result<(), CellError> {
        if let Some(last) = self.last[sender] {
            if seq <= last {
                self.out_of_order.fetch_add(1, Ordering::SeqCst);
            }
        }
        self.last[sender] = Some(seq);
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, reason: &StopReason) {
        if !matches!(reason, StopReason::Replaced | StopReason::Shutdown) {
            self.out_of_order.fetch_add(1_000_000, Ordering::SeqCst);
        }
    }
}

#[test]
fn replace_under_concurrent_senders_loses_and_duplicates_nothing() {
    const SENDERS: usize = 3;
    const PER_SENDER: u64 = 20_000;
    let rt = runtime(2);
    let handled = Arc::new(AtomicU64::new(0));
    let out_of_order = Arc::new(AtomicU64::new(0));
    let tally =
        || Tally { handled: handled.clone(), last: vec![None; SENDERS], out_of_order: out_of_order.clone() };
    let addr = rt.spawn_with(CellConfig::new().capacity(64), tally()).unwrap();
    let senders: Vec<_> = (0..SENDERS)
        .map(|sender| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for seq in 0..PER_SENDER {
                    addr.send_timeout((sender, seq), PATIENCE).unwrap();
                }
            })
        })
        .collect();
    let mut replaced = 0;
    while replaced < 20 {
        std::thread::sleep(Duration::from_millis(2));
        match rt.replace(&addr, tally()) {
            Ok(()) => replaced += 1,
            // The previous replacement is still taking over: try again.
            Err(cellrt::SpawnError::ReplaceInProgress { .. }) => {}
            Err(other) => panic!("replace failed: {other}"),
        }
    }
    for sender in senders {
        sender.join().unwrap();
    }
    let expected = SENDERS as u64 * PER_SENDER;
    assert!(
        eventually(|| handled.load(Ordering::SeqCst) == expected),
        "handled {}",
        handled.load(Ordering::SeqCst)
    );
    // Predecessors hand over before their `stopped` hook: let the last finish.
    assert!(eventually(|| rt.cell_count() == 1));
    let report = rt.shutdown(PATIENCE);
    assert_eq!(handled.load(Ordering::SeqCst), expected, "no message lost or handled twice");
    assert_eq!(out_of_order.load(Ordering::SeqCst), 0, "each sender's order is kept within a cell");
    assert_eq!(report.messages_undelivered, 0);
    assert_eq!(report.cells_stopped, 1, "only the last replacement was still running");
}

#[test]
fn replace_refuses_zero_capacity_and_leaves_the_address_alone() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    let err = rt.replace_with(&addr, CellConfig::new().capacity(0), Recorder::new(&log)).unwrap_err();
    assert_eq!(err, cellrt::SpawnError::ZeroCapacity);
    addr.send(Rec::Put(7)).unwrap();
    assert_eq!(addr.ask(Rec::Dump).unwrap().wait(PATIENCE).unwrap(), vec![7]);
    rt.shutdown(PATIENCE);
}

#[test]
fn replacing_a_cell_that_is_still_taking_over_is_refused() {
    let rt = runtime(2);
    let gate = gate();
    let old_log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::named("busy"), Gated { gate: gate.clone(), log: old_log.clone() }).unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0), "the old cell is inside message 1");
    let second_log = Log::default();
    rt.replace(&addr, Gated { gate: gate_opened(), log: second_log.clone() }).unwrap();
    let third_log = Log::default();
    let err = rt.replace(&addr, Gated { gate: gate_opened(), log: third_log.clone() }).unwrap_err();
    assert_eq!(err, cellrt::SpawnError::ReplaceInProgress { path: addr.path().clone() });
    addr.send(2).unwrap();
    open(&gate);
    assert!(eventually(|| second_log.len() == 1));
    assert_eq!(old_log.items(), vec![1]);
    assert_eq!(second_log.items(), vec![2]);
    // Once the handover is done, the address can be replaced again.
    assert!(eventually(|| rt.replace(&addr, Gated { gate: gate_opened(), log: third_log.clone() }).is_ok()));
    addr.send(3).unwrap();
    assert!(eventually(|| third_log.len() == 1));
    assert_eq!(third_log.items(), vec![3]);
    assert!(eventually(|| rt.cell_count() == 1));
    rt.shutdown(PATIENCE);
}
