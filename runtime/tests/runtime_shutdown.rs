//! Shutdown: order, draining, deadlines, refusing work afterwards, scale.

mod common;

use std::time::Duration;

use cellrt::{AskError, Cell, CellConfig, CellError, Context, SendError, SpawnError, StopReason};
use common::{eventually, gate, open, runtime, Gated, Log, Rec, Recorder, PATIENCE};

/// Logs its name when it stops; tries to spawn while stopping.
struct Named {
    log: Log<String>,
}

impl Cell for Named {
    type Message = ();

    fn handle(&mut self, _ctx: &mut Context<Self>, (): ()) -> Result<(), CellError> {
        Ok(())
    }

    fn stopped(&mut self, ctx: &mut Context<Self>, reason: &StopReason) {
        let spawn = match ctx.spawn(Named { log: self.log.clone() }) {
            Err(SpawnError::ShutDown) => "spawn refused",
            Err(_) => "spawn failed otherwise",
            Ok(_) => "spawn accepted",
        };
        self.log.push(format!("{} {reason:?} {spawn}", ctx.path().name()));
    }
}

#[test]
fn shutdown_stops_cells_in_reverse_spawn_order_and_refuses_spawns() {
    let rt = runtime(2);
    let log = Log::default();
    for name in ["a", "b", "c", "d"] {
        rt.spawn_with(CellConfig::named(name), Named { log: log.clone() }).unwrap();
    }
    let report = rt.shutdown(PATIENCE);
    assert_eq!(
        log.items(),
        [
            "d Shutdown spawn refused",
            "c Shutdown spawn refused",
            "b Shutdown spawn refused",
            "a Shutdown spawn refused"
        ]
    );
    assert_eq!(report.cells_stopped, 4);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn shutdown_drains_queued_messages_before_stopping() {
    let rt = runtime(1);
    let gate = gate();
    let log = Log::default();
    let addr = rt
        .spawn_with(CellConfig::new().capacity(16), Gated { gate: gate.clone(), log: log.clone() })
        .unwrap();
    for n in 0..10 {
        addr.send(n).unwrap();
    }
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        open(&gate);
    });
    let report = rt.shutdown(PATIENCE);
    opener.join().unwrap();
    assert_eq!(log.items(), (0..10).collect::<Vec<_>>());
    assert_eq!(report.cells_stopped, 1);
    assert_eq!(report.messages_undelivered, 0);
    assert!(report.is_clean());
}

#[test]
fn shutdown_timeout_kills_idle_cells_and_abandons_a_handler_that_never_returns() {
    let rt = runtime(2);
    let log = Log::default();
    let idle = rt.spawn_with(CellConfig::named("idle"), Recorder::new(&log)).unwrap();
    let gate = gate();
    let stuck = rt
        .spawn_with(CellConfig::named("stuck").capacity(8), Gated { gate: gate.clone(), log: Log::default() })
        .unwrap();
    stuck.send(0).unwrap();
    assert!(eventually(|| stuck.queued() == 0));
    for n in 1..=3 {
        stuck.send(n).unwrap();
    }
    let report = rt.shutdown(Duration::from_millis(100));
    assert!(report.timed_out);
    assert_eq!(report.cells_abandoned.iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["/stuck"]);
    assert_eq!(report.cells_killed, 1, "the idle cell was killed without hooks");
    assert_eq!(report.cells_stopped, 0);
    assert_eq!(report.messages_undelivered, 3);
    assert!(!report.is_clean());
    // Work after shutdown is refused with the message handed back.
    assert!(matches!(idle.try_send(Rec::Put(1)), Err(SendError::Closed(Rec::Put(1)))));
    assert_eq!(stuck.try_send(9), Err(SendError::Closed(9)));
    // Let the abandoned handler finish so its thread can exit.
    open(&gate);
}

#[test]
fn messages_killed_at_shutdown_resolve_their_asks() {
    let rt = runtime(1);
    let gate = gate();
    let blocker = rt.spawn(Gated { gate: gate.clone(), log: Log::default() }).unwrap();
    blocker.send(0).unwrap();
    assert!(eventually(|| blocker.queued() == 0));
    let log = Log::default();
    let rec = rt.spawn(Recorder::new(&log)).unwrap();
    let pending = rec.ask(Rec::Dump).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        open(&gate);
    });
    // The recorder (spawned last) is drained first but cannot run: the only
    // worker is blocked. At the deadline it is killed and its ask dropped.
    let report = rt.shutdown(Duration::from_millis(50));
    assert_eq!(pending.wait(PATIENCE), Err(AskError::Unanswered));
    assert!(report.messages_undelivered >= 1, "{report:?}");
    releaser.join().unwrap();
}

#[test]
fn hundred_thousand_cells_spawn_and_shut_down() {
    const CELLS: usize = 100_000;
    let rt = cellrt::Runtime::builder().worker_threads(2).default_capacity(4).build().unwrap();
    let log = Log::default();
    let addrs: Vec<_> = (0..CELLS).map(|_| rt.spawn(Recorder::new(&log)).unwrap()).collect();
    assert_eq!(rt.cell_count(), CELLS);
    addrs[0].send(Rec::Put(1)).unwrap();
    addrs[CELLS - 1].send(Rec::Put(2)).unwrap();
    let report = rt.shutdown(Duration::from_secs(120));
    assert_eq!(report.cells_stopped, CELLS);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(log.len(), 2);
    assert!(addrs[CELLS / 2].is_closed());
}
