//! Deadlines: an ask's timeout travels with the message; a message whose
//! deadline passed before its turn is dead-lettered as expired, not handled.

mod common;

use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Addr, Cell, CellConfig, CellError, Context, FailureCause, Reply, Routing, Runtime, SendError};
use common::{eventually, held_runtime, hold, PATIENCE};

enum Msg {
    /// Answers with the deadline the handler sees.
    Deadline(Reply<(Option<Instant>, Option<Instant>)>),
    /// Records its number and the deadline the handler sees.
    Note(u32),
    /// Passes its number on to `next` with the deadline it came with.
    Forward(u32),
}

type Notes = Arc<Mutex<Vec<(u32, Option<Instant>)>>>;

struct Worker {
    notes: Notes,
    next: Option<Addr<Msg>>,
}

impl Cell for Worker {
    type Message = Msg;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Deadline(reply) => {
                let seen = (ctx.deadline(), reply.deadline());
                let _ = reply.send(seen);
            }
            Msg::Note(n) => self.notes.lock().unwrap().push((n, ctx.deadline())),
            Msg::Forward(n) => {
                let next = self.next.as_ref().expect("a forwarder has a next cell");
                match ctx.deadline() {
                    Some(deadline) => next.try_send_by(Msg::Note(n), deadline),
                    None => next.try_send(Msg::Note(n)),
                }
                .map_err(|_| CellError::msg("next refused"))?;
            }
        }
        Ok(())
    }

    fn message_kind(msg: &Msg) -> &'static str {
        match msg {
            Msg::Deadline(_) => "Deadline",
            Msg::Note(_) => "Note",
            Msg::Forward(_) => "Forward",
        }
    }
}

fn worker(
    runtime: &Runtime,
    name: &str,
    dispatcher: &str,
    notes: &Notes,
    next: Option<Addr<Msg>>,
) -> Addr<Msg> {
    let config = CellConfig::named(name).dispatcher(dispatcher);
    runtime.spawn_with(config, Worker { notes: notes.clone(), next }).unwrap()
}

#[test]
fn the_handler_reads_the_ask_deadline_from_its_context_and_its_reply() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let cell = worker(&runtime, "w", "default", &notes, None);
    let before = Instant::now();
    let pending = cell.ask_within(Duration::from_secs(20), Msg::Deadline).unwrap();
    let (from_ctx, from_reply) = pending.wait(PATIENCE).unwrap();
    let deadline = from_ctx.expect("an ask_within carries a deadline");
    assert_eq!(from_reply, Some(deadline), "context and reply agree");
    assert!(
        deadline >= before + Duration::from_secs(20) && deadline <= Instant::now() + Duration::from_secs(20)
    );
    // A plain ask carries none.
    assert_eq!(cell.ask(Msg::Deadline).unwrap().wait(PATIENCE).unwrap(), (None, None));
    runtime.shutdown(PATIENCE);
}

#[cfg(feature = "observe")]
#[test]
fn a_message_whose_deadline_passed_in_the_queue_is_dead_lettered_as_expired_not_handled() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let release = hold(&runtime, "blocker", "held");
    let cell = worker(&runtime, "w", "held", &notes, None);
    cell.try_send(Msg::Note(1)).unwrap();
    let soon = Instant::now() + Duration::from_millis(20);
    cell.try_send_by(Msg::Note(2), soon).unwrap();
    let expiring = cell.ask_within(Duration::from_millis(20), Msg::Deadline).unwrap();
    let later = Instant::now() + PATIENCE;
    cell.try_send_by(Msg::Note(3), later).unwrap();
    // Both short deadlines pass while the cell waits behind the blocker.
    thread::sleep(Duration::from_millis(40));
    drop(release);
    assert!(eventually(|| notes.lock().unwrap().len() == 2));
    assert_eq!(
        *notes.lock().unwrap(),
        [(1, None), (3, Some(later))],
        "the expired ones were skipped, in order"
    );
    assert_eq!(expiring.wait(Duration::from_millis(1)), Err(cellrt::AskError::Timeout));

    assert!(eventually(|| runtime.dead_letter_count() == 2));
    let letters = runtime.dead_letters();
    let kinds: Vec<_> = letters.iter().map(|l| l.failure().message_kind).collect();
    assert_eq!(kinds, [Some("Note"), Some("Deadline")]);
    for letter in &letters {
        assert!(matches!(letter.failure().cause, FailureCause::Expired { .. }), "{:?}", letter.failure());
        assert_eq!((letter.redeliveries(), letter.is_poison()), (0, false));
    }
    assert!(matches!(letters[0].take_message::<Msg>(), Some(Msg::Note(2))), "the message is kept");
    assert!(runtime.failures().is_empty(), "an expired message is not a failure of the cell");
    assert!(runtime.signatures().is_empty());
    let expired = runtime.snapshot().cells.iter().find(|c| c.path.as_str() == "/w").unwrap().metrics.clone();
    assert_eq!(expired.map(|m| (m.expired, m.handled)), Some((2, 2)));
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_forwarding_cell_passes_its_deadline_on() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let last = worker(&runtime, "last", "default", &notes, None);
    let first = worker(&runtime, "first", "default", &notes, Some(last));
    let deadline = Instant::now() + PATIENCE;
    first.try_send_by(Msg::Forward(5), deadline).unwrap();
    first.try_send(Msg::Forward(6)).unwrap();
    assert!(eventually(|| notes.lock().unwrap().len() == 2));
    assert_eq!(*notes.lock().unwrap(), [(5, Some(deadline)), (6, None)]);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_deadline_travels_through_a_router_to_the_member() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let members = vec![
        worker(&runtime, "m0", "default", &notes, None),
        worker(&runtime, "m1", "default", &notes, None),
    ];
    let router = runtime.router("front", Routing::round_robin(), members).unwrap();
    let deadline = Instant::now() + PATIENCE;
    router.addr().try_send_by(Msg::Note(1), deadline).unwrap();
    router.addr().try_send_by(Msg::Note(2), deadline).unwrap();
    assert!(eventually(|| notes.lock().unwrap().len() == 2));
    let mut seen = notes.lock().unwrap().clone();
    seen.sort_by_key(|(n, _)| *n);
    assert_eq!(seen, [(1, Some(deadline)), (2, Some(deadline))]);
    runtime.shutdown(PATIENCE);
}

#[test]
fn an_ask_within_waits_for_room_only_until_its_deadline() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let release = hold(&runtime, "blocker", "held");
    let cell = runtime
        .spawn_with(
            CellConfig::named("tiny").capacity(1).dispatcher("held"),
            Worker { notes: notes.clone(), next: None },
        )
        .unwrap();
    cell.try_send(Msg::Note(1)).unwrap();
    // The runtime's send timeout is 30 s; the ask gives up after 50 ms.
    match cell.ask_within(Duration::from_millis(50), Msg::Deadline) {
        Err(SendError::Timeout(Msg::Deadline(reply))) => {
            assert!(reply.deadline().is_some(), "the request comes back whole")
        }
        Err(other) => panic!("expected a timeout, got {other:?}"),
        Ok(_) => panic!("the mailbox was full"),
    }
    drop(release);
    runtime.shutdown(PATIENCE);
}

#[cfg(feature = "storage")]
#[test]
fn an_expired_message_is_kept_in_memory_but_not_written_to_storage() {
    let runtime = Runtime::builder()
        .worker_threads(1)
        .dispatcher("held", 1)
        .storage(cellrt::StorageConfig::in_memory())
        .quiet_panics(true)
        .build()
        .unwrap();
    let notes = Notes::default();
    let release = hold(&runtime, "blocker", "held");
    let cell = worker(&runtime, "w", "held", &notes, None);
    cell.try_send_by(Msg::Note(1), Instant::now()).unwrap();
    drop(release);
    assert!(eventually(|| runtime.dead_letter_count() == 1));
    assert!(matches!(runtime.dead_letters()[0].failure().cause, FailureCause::Expired { .. }));
    assert_eq!(runtime.stored_dead_letters().unwrap().len(), 0);
    assert!(notes.lock().unwrap().is_empty());
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_deadline_survives_a_replace() {
    let runtime = held_runtime();
    let notes = Notes::default();
    let release = hold(&runtime, "blocker", "held");
    let cell = worker(&runtime, "w", "held", &notes, None);
    let later = Instant::now() + PATIENCE;
    cell.try_send_by(Msg::Note(1), later).unwrap();
    cell.try_send_by(Msg::Note(2), Instant::now() + Duration::from_millis(20)).unwrap();
    let successor = Worker { notes: notes.clone(), next: None };
    runtime.replace_with(&cell, CellConfig::new().dispatcher("held"), successor).unwrap();
    thread::sleep(Duration::from_millis(40));
    // The old cell hands its queue over when its worker is free again.
    drop(release);
    assert!(eventually(|| runtime.dead_letter_count() == 1));
    assert!(eventually(|| notes.lock().unwrap().len() == 1));
    assert_eq!(*notes.lock().unwrap(), [(1, Some(later))], "the moved message kept its deadline");
    assert!(matches!(runtime.dead_letters()[0].failure().cause, FailureCause::Expired { .. }));
    runtime.shutdown(PATIENCE);
}
