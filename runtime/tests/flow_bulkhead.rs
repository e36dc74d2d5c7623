//! Bulkheads: groups limit how many of their cells run at once, and a
//! blocked group does not take workers from cells outside it.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use cellrt::{BuildError, Cell, CellConfig, CellError, Context, GroupStats, NameError, Runtime, SpawnError};
use common::{eventually, PATIENCE};

/// What the cells report to the test, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    /// A blocking cell entered its handler.
    Entered(usize),
    /// A blocking cell left its handler.
    Left(usize),
    /// A free cell handled a message.
    Handled(usize),
}

/// The release valve of blocking cells: each token lets one handler return.
#[derive(Clone)]
struct Valve(Arc<Mutex<Receiver<()>>>);

/// Blocks in every handler until the test sends a token through its valve;
/// counts how many such cells are inside a handler at once.
struct Blocking {
    id: usize,
    valve: Valve,
    events: Sender<Event>,
    inside: Arc<AtomicUsize>,
    most_inside: Arc<AtomicUsize>,
}

impl Cell for Blocking {
    type Message = ();

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> Result<(), CellError> {
        let now = self.inside.fetch_add(1, SeqCst) + 1;
        self.most_inside.fetch_max(now, SeqCst);
        let _ = self.events.send(Event::Entered(self.id));
        // The timeout only guards against a hung test.
        let released = self.valve.0.lock().map(|rx| rx.recv_timeout(PATIENCE).is_ok()).unwrap_or(false);
        self.inside.fetch_sub(1, SeqCst);
        let _ = self.events.send(Event::Left(self.id));
        if released {
            Ok(())
        } else {
            Err(CellError::msg("never released"))
        }
    }
}

/// Reports every message it handles.
struct Free {
    id: usize,
    events: Sender<Event>,
}

impl Cell for Free {
    type Message = ();

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: ()) -> Result<(), CellError> {
        let _ = self.events.send(Event::Handled(self.id));
        Ok(())
    }
}

struct Fixture {
    valve_tx: Sender<()>,
    valve: Valve,
    events_tx: Sender<Event>,
    events: Receiver<Event>,
    inside: Arc<AtomicUsize>,
    most_inside: Arc<AtomicUsize>,
}

impl Fixture {
    fn new() -> Self {
        let (valve_tx, valve_rx) = channel();
        let (events_tx, events) = channel();
        Fixture {
            valve_tx,
            valve: Valve(Arc::new(Mutex::new(valve_rx))),
            events_tx,
            events,
            inside: Arc::default(),
            most_inside: Arc::default(),
        }
    }

    fn blocking(&self, id: usize) -> Blocking {
        Blocking {
            id,
            valve: self.valve.clone(),
            events: self.events_tx.clone(),
            inside: self.inside.clone(),
            most_inside: self.most_inside.clone(),
        }
    }

    fn free(&self, id: usize) -> Free {
        Free { id, events: self.events_tx.clone() }
    }

    fn next_event(&self) -> Event {
        self.events.recv_timeout(PATIENCE).expect("an event before the deadlock guard")
    }

    /// The next `n` events, in order.
    fn events(&self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next_event()).collect()
    }

    fn release(&self, handlers: usize) {
        for _ in 0..handlers {
            self.valve_tx.send(()).expect("the valve is open");
        }
    }
}

fn stats(rt: &Runtime, group: &str) -> GroupStats {
    rt.group_stats(group).expect("the group exists")
}

#[test]
fn a_blocked_group_on_its_own_dispatcher_does_not_delay_another_dispatchers_cells() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .dispatcher("slow", 2)
        .group("blocking", 1)
        .quiet_panics(true)
        .build()
        .unwrap();
    let fx = Fixture::new();
    let slow_config = || CellConfig::new().dispatcher("slow").group("blocking");
    let blocked: Vec<_> = (0..3).map(|id| rt.spawn_with(slow_config(), fx.blocking(id)).unwrap()).collect();
    assert!(eventually(|| stats(&rt, "blocking").turns == 3 && stats(&rt, "blocking").running == 0));
    // Two `started` turns may have waited for the third: count from here.
    let parked_at_start = stats(&rt, "blocking").times_parked;
    for cell in &blocked {
        cell.send(()).unwrap();
    }
    let Event::Entered(first) = fx.next_event() else { panic!("a blocking cell enters first") };
    // The second worker of "slow" parks the two others in the group.
    assert!(eventually(|| stats(&rt, "blocking").parked == 2));

    let free: Vec<_> = (0..3).map(|id| rt.spawn(fx.free(id)).unwrap()).collect();
    for _ in 0..50 {
        for cell in &free {
            cell.send(()).unwrap();
        }
    }
    // All 150 messages are handled while the group is still blocked: no
    // blocking cell leaves or enters in between.
    let handled = fx.events(150);
    assert!(handled.iter().all(|e| matches!(e, Event::Handled(_))), "{handled:?}");
    for id in 0..3 {
        assert_eq!(handled.iter().filter(|e| **e == Event::Handled(id)).count(), 50);
    }
    assert_eq!(
        rt.group_stats("blocking"),
        Some(GroupStats {
            running: 1,
            parked: 2,
            max_concurrent: 1,
            turns: 4,
            times_parked: parked_at_start + 2
        })
    );

    // One at a time, in the order they parked.
    fx.release(3);
    let rest = fx.events(5);
    assert_eq!(rest[0], Event::Left(first));
    assert!(matches!(rest[1], Event::Entered(id) if id != first));
    assert_eq!(rest.iter().filter(|e| matches!(e, Event::Entered(_))).count(), 2);
    assert_eq!(fx.most_inside.load(SeqCst), 1);
    // The last turn ends just after its handler reported leaving.
    assert!(eventually(|| stats(&rt, "blocking").running == 0));
    assert_eq!(
        rt.group_stats("blocking"),
        Some(GroupStats {
            running: 0,
            parked: 0,
            max_concurrent: 1,
            turns: 6,
            times_parked: parked_at_start + 2
        })
    );
    rt.shutdown(PATIENCE);
}

#[test]
fn a_group_limit_caps_its_running_cells_and_leaves_the_other_workers_to_other_cells() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .dispatcher("pool", 4)
        .group("database", 2)
        .quiet_panics(true)
        .build()
        .unwrap();
    let fx = Fixture::new();
    let in_group = || CellConfig::new().dispatcher("pool").group("database");
    let members: Vec<_> = (0..6).map(|id| rt.spawn_with(in_group(), fx.blocking(id)).unwrap()).collect();
    // The six `started` turns are done before any message is sent.
    assert!(eventually(|| stats(&rt, "database").turns == 6 && stats(&rt, "database").running == 0));
    let before = stats(&rt, "database");

    for member in &members {
        member.send(()).unwrap();
    }
    let entered = fx.events(2);
    assert!(entered.iter().all(|e| matches!(e, Event::Entered(_))), "{entered:?}");
    assert!(eventually(|| stats(&rt, "database").parked == 4));

    // Two workers are blocked in the group; the two others serve the rest.
    let free: Vec<_> =
        (0..3).map(|id| rt.spawn_with(CellConfig::new().dispatcher("pool"), fx.free(id)).unwrap()).collect();
    for _ in 0..50 {
        for cell in &free {
            cell.send(()).unwrap();
        }
    }
    let handled = fx.events(150);
    assert!(handled.iter().all(|e| matches!(e, Event::Handled(_))), "{handled:?}");
    assert_eq!(fx.inside.load(SeqCst), 2);

    fx.release(6);
    let rest = fx.events(10);
    assert_eq!(rest.iter().filter(|e| matches!(e, Event::Left(_))).count(), 6);
    assert_eq!(rest.iter().filter(|e| matches!(e, Event::Entered(_))).count(), 4);
    assert_eq!(fx.most_inside.load(SeqCst), 2);
    // The last turns end just after their handlers reported leaving.
    assert!(eventually(|| stats(&rt, "database").running == 0));
    let after = stats(&rt, "database");
    assert_eq!(after.turns - before.turns, 6);
    assert_eq!(after.times_parked - before.times_parked, 4);
    assert_eq!((after.running, after.parked, after.max_concurrent), (0, 0, 2));
    rt.shutdown(PATIENCE);
}

/// Spawns a child on another dispatcher at its first message and waits,
/// inside the handler, for the child to handle one message.
struct Parent {
    events: Sender<Event>,
}

impl Cell for Parent {
    type Message = ();

    fn handle(&mut self, ctx: &mut Context<Self>, _msg: ()) -> Result<(), CellError> {
        let (tx, rx) = channel();
        let child = ctx.spawn_with(CellConfig::new().dispatcher("other"), Free { id: 7, events: tx })?;
        child.try_send(()).map_err(|_| CellError::msg("child refused"))?;
        let event = rx.recv_timeout(PATIENCE)?;
        let _ = self.events.send(event);
        Ok(())
    }
}

#[test]
fn children_do_not_inherit_their_parents_group() {
    // The parent holds the group's only permit while it waits for its child:
    // a child in the group would never run.
    let rt = Runtime::builder()
        .worker_threads(1)
        .dispatcher("other", 1)
        .group("solo", 1)
        .quiet_panics(true)
        .build()
        .unwrap();
    let (tx, rx) = channel();
    let parent = rt.spawn_with(CellConfig::new().group("solo"), Parent { events: tx }).unwrap();
    assert!(eventually(|| stats(&rt, "solo").turns == 1 && stats(&rt, "solo").running == 0));
    parent.send(()).unwrap();
    assert_eq!(rx.recv_timeout(PATIENCE), Ok(Event::Handled(7)));
    // The parent's `started` turn and its message's turn; none of the child.
    assert!(eventually(|| stats(&rt, "solo").running == 0));
    assert_eq!(stats(&rt, "solo").turns, 2);
    rt.shutdown(PATIENCE);
}

#[test]
fn a_group_limit_of_zero_is_refused() {
    let err = Runtime::builder().group("db", 0).build().unwrap_err();
    assert_eq!(err, BuildError::ZeroGroupLimit { group: "db".into() });
    assert_eq!(err.to_string(), "group \"db\" must let at least one cell run at a time");
}

#[test]
fn a_group_defined_twice_is_refused() {
    let err = Runtime::builder().group("db", 1).group("db", 2).build().unwrap_err();
    assert_eq!(err, BuildError::DuplicateGroup { name: "db".into() });
    assert_eq!(err.to_string(), "group \"db\" is defined twice");
}

#[test]
fn empty_or_blank_group_names_are_refused() {
    let refused = [
        ("", NameError::Empty),
        ("two words", NameError::InvalidChar { found: ' ', position: 3 }),
        ("tab\there", NameError::InvalidChar { found: '\t', position: 3 }),
        ("line\n", NameError::InvalidChar { found: '\n', position: 4 }),
    ];
    for (name, reason) in refused {
        let err = Runtime::builder().group(name, 1).build().unwrap_err();
        assert_eq!(err, BuildError::InvalidGroupName { name: name.into(), reason });
    }
    let err = Runtime::builder().group("", 1).build().unwrap_err();
    assert_eq!(err.to_string(), "invalid group name \"\": name is empty: a name has 1 to 255 bytes");
}

#[test]
fn a_group_may_share_a_name_with_a_dispatcher() {
    let rt = Runtime::builder().worker_threads(1).dispatcher("io", 1).group("io", 3).build().unwrap();
    assert_eq!(
        rt.group_stats("io"),
        Some(GroupStats { running: 0, parked: 0, max_concurrent: 3, turns: 0, times_parked: 0 })
    );
    rt.shutdown(PATIENCE);
}

#[test]
fn spawning_into_an_unknown_group_is_refused() {
    let rt = Runtime::builder().worker_threads(1).group("db", 1).build().unwrap();
    let fx = Fixture::new();
    let err = rt.spawn_with(CellConfig::new().group("dB"), fx.free(0)).unwrap_err();
    assert_eq!(err, SpawnError::UnknownGroup { name: "dB".into() });
    assert_eq!(err.to_string(), "no group named \"dB\"");
    assert_eq!(rt.cell_count(), 0);
    rt.shutdown(PATIENCE);
}

#[test]
fn stats_of_an_unknown_group_are_none() {
    let rt = Runtime::builder().worker_threads(1).group("db", 1).build().unwrap();
    assert_eq!(rt.group_stats("cache"), None);
    rt.shutdown(PATIENCE);
}
