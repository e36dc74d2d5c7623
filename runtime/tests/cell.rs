//! Cells: lifecycle hooks, failures as values, children, spawn options.

mod common;

use std::time::Duration;

use cellrt::{
    Cell, CellConfig, CellError, CellPath, Context, FailureCause, Hook, NameError, SpawnError, StopReason,
};
use common::{eventually, runtime, Log, Rec, Recorder, PATIENCE};

/// Logs its lifecycle as text.
struct Lifecycle {
    log: Log<String>,
    fail_start: bool,
}

impl Cell for Lifecycle {
    type Message = &'static str;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.log.push(format!("started {}", ctx.path()));
        if self.fail_start {
            return Err(CellError::msg("no config"));
        }
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: &'static str) -> Result<(), CellError> {
        self.log.push(format!("handle {msg}"));
        if msg == "stop" {
            ctx.stop();
        }
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, reason: &StopReason) {
        let reason = match reason {
            StopReason::Requested => "requested".to_owned(),
            StopReason::Shutdown => "shutdown".to_owned(),
            StopReason::Failed(f) => format!("failed in {:?}", f.hook),
            other => format!("{other:?}"),
        };
        self.log.push(format!("stopped {reason}"));
    }
}

#[test]
fn hooks_run_in_order_started_handle_stopped() {
    let rt = runtime(2);
    let log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::named("life"), Lifecycle { log: log.clone(), fail_start: false }).unwrap();
    addr.send("a").unwrap();
    addr.send("b").unwrap();
    addr.send("stop").unwrap();
    assert!(eventually(|| addr.is_closed()));
    assert_eq!(log.items(), ["started /life", "handle a", "handle b", "handle stop", "stopped requested"]);
    rt.shutdown(PATIENCE);
}

#[test]
fn failure_in_started_stops_the_cell_before_any_message() {
    let rt = runtime(1);
    let log = Log::default();
    let addr =
        rt.spawn_with(CellConfig::named("cfg"), Lifecycle { log: log.clone(), fail_start: true }).unwrap();
    let _ = addr.send("never");
    assert!(eventually(|| addr.is_closed()));
    assert_eq!(log.items(), ["started /cfg", "stopped failed in Started"]);
    let failures = rt.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].hook, Hook::Started);
    assert_eq!(failures[0].message_kind, None);
    assert_eq!(failures[0].cause, FailureCause::Error { text: "no config".into(), type_name: None });
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 0);
}

#[test]
fn panic_in_handle_becomes_a_failure_with_kind_payload_and_location() {
    let rt = runtime(1);
    let addr = rt.spawn_with(CellConfig::named("rec"), Recorder::new(&Log::default())).unwrap();
    addr.send(Rec::Panic("bad input 42")).unwrap();
    assert!(eventually(|| addr.is_closed()));
    let failures = rt.failures();
    assert_eq!(failures.len(), 1);
    let failure = &failures[0];
    assert_eq!(failure.path.as_str(), "/rec");
    assert_eq!(failure.cell_kind, "cell::common::Recorder");
    assert_eq!(failure.hook, Hook::Handle);
    assert_eq!(failure.message_kind, Some("Panic"));
    match &failure.cause {
        FailureCause::Panic { payload, location: Some(location) } => {
            assert_eq!(payload, "bad input 42");
            assert!(location.file.ends_with("common/mod.rs"), "{}", location.file);
        }
        other => panic!("expected a panic with a location, got {other:?}"),
    }
    rt.shutdown(PATIENCE);
}

/// Panics with a payload that is not a string.
struct OddPanic;

impl Cell for OddPanic {
    type Message = u32;

    fn handle(&mut self, _ctx: &mut Context<Self>, code: u32) -> Result<(), CellError> {
        std::panic::panic_any(code)
    }
}

#[test]
fn panic_with_a_non_string_payload_is_recorded_and_the_worker_survives() {
    let rt = runtime(1);
    let odd = rt.spawn(OddPanic).unwrap();
    odd.send(7).unwrap();
    assert!(eventually(|| odd.is_closed()));
    match &rt.failures()[0].cause {
        FailureCause::Panic { payload, .. } => assert_eq!(payload, "non-string panic payload"),
        other => panic!("expected a panic, got {other:?}"),
    }
    // The only worker thread still runs cells.
    let log = Log::default();
    let rec = rt.spawn(Recorder::new(&log)).unwrap();
    rec.send(Rec::Put(1)).unwrap();
    assert_eq!(rec.ask(Rec::Dump).unwrap().wait(PATIENCE), Ok(vec![1]));
    rt.shutdown(PATIENCE);
}

#[derive(Debug)]
struct Overdrawn {
    missing: u64,
}

impl std::fmt::Display for Overdrawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "overdrawn by {}", self.missing)
    }
}

impl std::error::Error for Overdrawn {}

struct Account(u64);

impl Cell for Account {
    type Message = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, amount: u64) -> Result<(), CellError> {
        self.0 = self.0.checked_sub(amount).ok_or_else(|| Overdrawn { missing: amount - self.0 })?;
        Ok(())
    }
}

#[test]
fn error_in_handle_records_text_and_error_type() {
    let rt = runtime(1);
    let addr = rt.spawn(Account(10)).unwrap();
    addr.send(4).unwrap();
    addr.send(9).unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.is_closed()));
    let failures = rt.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].message_kind, Some("u64"));
    assert_eq!(
        failures[0].cause,
        FailureCause::Error { text: "overdrawn by 3".into(), type_name: Some("cell::Overdrawn") }
    );
    // The message behind the failed one was not handled.
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 0);
    assert_eq!(rt_failure_text(&failures[0]), "cell /#1 failed in handle (u64): error: overdrawn by 3");
}

fn rt_failure_text(failure: &cellrt::Failure) -> String {
    failure.to_string()
}

/// Spawns `count` recorder children named c0, c1, … and logs its own stop.
struct Parent {
    count: usize,
    log: Log<String>,
    children: Vec<cellrt::Addr<()>>,
}

impl Cell for Parent {
    type Message = Rec;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        for i in 0..self.count {
            let child = ctx
                .spawn_with(CellConfig::named(format!("c{i}")), Child { name: i, log: self.log.clone() })
                .map_err(CellError::from)?;
            self.children.push(child);
        }
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Rec) -> Result<(), CellError> {
        if let Rec::Stop = msg {
            ctx.stop();
        }
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, _reason: &StopReason) {
        self.log.push("parent stopped".into());
    }
}

struct Child {
    name: usize,
    log: Log<String>,
}

impl Cell for Child {
    type Message = ();

    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) -> Result<(), CellError> {
        self.log.push(format!("{} alive", ctx.path()));
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, reason: &StopReason) {
        self.log.push(format!("c{} stopped {reason:?}", self.name));
    }
}

#[test]
fn children_live_under_their_parent_path_and_stop_with_it() {
    let rt = runtime(2);
    let log = Log::default();
    let parent = rt
        .spawn_with(CellConfig::named("parent"), Parent { count: 2, log: log.clone(), children: Vec::new() })
        .unwrap();
    assert!(eventually(|| rt.cell_count() == 3));
    parent.send(Rec::Stop).unwrap();
    assert!(eventually(|| rt.cell_count() == 0));
    let items = log.items();
    assert!(items.contains(&"c0 stopped ParentStopped".to_owned()));
    assert!(items.contains(&"c1 stopped ParentStopped".to_owned()));
    assert!(items.contains(&"parent stopped".to_owned()));
    rt.shutdown(PATIENCE);
}

#[test]
fn child_paths_nest_under_the_parent() {
    let path = CellPath::root().child("parent").unwrap().child("c0").unwrap();
    let rt = runtime(1);
    let log = Log::default();
    let _parent = rt
        .spawn_with(CellConfig::named("parent"), Parent { count: 1, log: log.clone(), children: Vec::new() })
        .unwrap();
    assert!(eventually(|| rt.cell_count() == 2));
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 2);
    assert_eq!(path.as_str(), "/parent/c0");
}

#[test]
fn spawn_refuses_bad_names_duplicates_zero_capacity_and_unknown_dispatchers() {
    let rt = runtime(1);
    let log = Log::default();
    rt.spawn_with(CellConfig::named("one"), Recorder::new(&log)).unwrap();
    assert_eq!(
        rt.spawn_with(CellConfig::named("one"), Recorder::new(&log)).unwrap_err(),
        SpawnError::NameTaken { path: CellPath::root().child("one").unwrap() }
    );
    assert_eq!(
        rt.spawn_with(CellConfig::named("a/b"), Recorder::new(&log)).unwrap_err(),
        SpawnError::InvalidName(NameError::InvalidChar { found: '/', position: 1 })
    );
    assert_eq!(
        rt.spawn_with(CellConfig::named(""), Recorder::new(&log)).unwrap_err(),
        SpawnError::InvalidName(NameError::Empty)
    );
    assert_eq!(
        rt.spawn_with(CellConfig::new().capacity(0), Recorder::new(&log)).unwrap_err(),
        SpawnError::ZeroCapacity
    );
    assert_eq!(
        rt.spawn_with(CellConfig::new().dispatcher("gpu"), Recorder::new(&log)).unwrap_err(),
        SpawnError::UnknownDispatcher { name: "gpu".into() }
    );
    assert_eq!(rt.cell_count(), 1, "refused spawns leave nothing behind");
    rt.shutdown(PATIENCE);
}

/// A huge capacity is a bound, not an allocation: spawning is immediate and
/// the cell works like any other (`capacity(1 << 30)` allocated all its
/// slots up front and aborted the process when the mailbox was an array).
#[test]
fn a_cell_of_capacity_one_billion_spawns_and_handles_messages() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn_with(CellConfig::named("huge").capacity(1 << 30), Recorder::new(&log)).unwrap();
    assert_eq!(addr.capacity(), 1 << 30);
    for n in 0..100 {
        assert!(addr.try_send(Rec::Put(n)).is_ok());
    }
    assert!(eventually(|| log.len() == 100));
    assert_eq!(log.items(), (0..100).collect::<Vec<_>>());
    assert_eq!(addr.queued(), 0);
    rt.shutdown(PATIENCE);
}

/// `usize::MAX` is the largest capacity, and a valid one.
#[test]
fn the_largest_capacity_is_accepted() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn_with(CellConfig::new().capacity(usize::MAX), Recorder::new(&log)).unwrap();
    assert_eq!(addr.capacity(), usize::MAX);
    assert!(addr.try_send(Rec::Put(7)).is_ok());
    assert!(eventually(|| log.items() == [7]));
    rt.shutdown(PATIENCE);
}

#[test]
fn a_stopped_cells_name_can_be_reused() {
    let rt = runtime(1);
    let log = Log::default();
    let first = rt.spawn_with(CellConfig::named("worker"), Recorder::new(&log)).unwrap();
    first.send(Rec::Stop).unwrap();
    assert!(eventually(|| first.is_closed()));
    let second = rt.spawn_with(CellConfig::named("worker"), Recorder::new(&log)).unwrap();
    assert_eq!(second.path().as_str(), "/worker");
    rt.shutdown(PATIENCE);
}

/// Panics in `stopped`.
struct BadStop;

impl Cell for BadStop {
    type Message = ();

    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) -> Result<(), CellError> {
        ctx.stop();
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, _reason: &StopReason) {
        panic!("cleanup failed");
    }
}

#[test]
fn panic_in_stopped_is_recorded_and_the_cell_still_stops() {
    let rt = runtime(1);
    let addr = rt.spawn(BadStop).unwrap();
    addr.send(()).unwrap();
    assert!(eventually(|| addr.is_closed()));
    let failures = rt.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].hook, Hook::Stopped);
    assert!(failures[0].is_panic());
    assert_eq!(rt.cell_count(), 0);
    rt.shutdown(Duration::from_secs(1));
}

/// Stops itself in `started`.
struct Quitter {
    log: Log<String>,
}

impl Cell for Quitter {
    type Message = u8;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        ctx.stop();
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, n: u8) -> Result<(), CellError> {
        self.log.push(format!("handled {n}"));
        Ok(())
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>, reason: &StopReason) {
        self.log.push(format!("stopped {reason:?}"));
    }
}

#[test]
fn stop_requested_in_started_stops_before_any_message() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn(Quitter { log: log.clone() }).unwrap();
    let _ = addr.send(1);
    assert!(eventually(|| addr.is_closed()));
    assert_eq!(log.items(), ["stopped Requested"]);
    rt.shutdown(PATIENCE);
}
