//! Model of the idle → scheduled → running protocol of one cell
//! (`runtime/src/dispatch/state.rs`, driven through `Mailbox::push`,
//! `Mailbox::push_system` and `Mailbox::end_turn` in
//! `runtime/src/mailbox/mod.rs`).
//!
//! Property: no lost wake-up, and never two workers in one cell. Senders push
//! while workers run turns; whoever takes the run token hands it to a model
//! run queue, workers take tokens, run a turn and end it. In every schedule
//! each message is handled exactly once, the cell ends idle with nothing
//! queued and no token left over (a message left in the queue of an idle cell
//! would be stranded forever), and no two workers are ever inside the cell's
//! turn at once. The same holds for a mailbox with priority lanes, whose
//! idle re-check must look at every lane.
//!
//! A sender reads the state word after its push instead of writing it, so
//! the argument rests on two `SeqCst` fences (after the sender's push, after
//! the worker's idle transition). Planted bugs these models catch: either
//! fence left out (every model here then strands a message or runs the
//! cell twice).
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelMailbox;
use cellrt_loom_tests::RunTokens;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// A cell under test: its mailbox and a flag set while a worker is inside a turn.
struct Cell {
    mailbox: ModelMailbox<u32>,
    inside: AtomicBool,
}

impl Cell {
    fn new(capacity: usize) -> Self {
        Cell { mailbox: ModelMailbox::new(capacity), inside: AtomicBool::new(false) }
    }

    /// One turn, as `CellInstance::run_turn` does it: system messages first,
    /// then up to `budget` user messages. Returns whether the worker kept the
    /// run token (`Yield`).
    fn run_turn(&self, budget: usize, handled: &mut Vec<u32>, system: &mut usize) -> bool {
        self.mailbox.start_turn();
        assert!(!self.inside.swap(true, SeqCst), "two workers are inside one cell");
        assert!(self.mailbox.snapshot().is_running(), "a turn runs without the RUNNING state");
        while self.mailbox.pop_system() {
            *system += 1;
        }
        for _ in 0..budget {
            match self.mailbox.pop_user() {
                Some(msg) => handled.push(msg),
                None => break,
            }
        }
        self.inside.store(false, SeqCst);
        self.mailbox.end_turn()
    }
}

/// A worker: takes tokens until none can come any more. A turn that kept the
/// token sends the cell to the back of the run queue, where any worker may
/// pick it up. Returns the user messages and control messages it handled.
fn worker(cell: &Cell, tokens: &RunTokens, budget: usize) -> (Vec<u32>, usize) {
    let mut handled = Vec::new();
    let mut system = 0;
    while tokens.take() {
        if cell.run_turn(budget, &mut handled, &mut system) {
            tokens.enqueue();
        }
    }
    (handled, system)
}

fn spawn_sender(cell: &Arc<Cell>, tokens: &Arc<RunTokens>, msg: u32) -> thread::JoinHandle<()> {
    let (cell, tokens) = (cell.clone(), tokens.clone());
    thread::spawn(move || {
        let took = cell.mailbox.push(msg).expect("the mailbox has room and is open");
        tokens.producer_done(took);
    })
}

fn spawn_worker(
    cell: &Arc<Cell>,
    tokens: &Arc<RunTokens>,
    budget: usize,
) -> thread::JoinHandle<(Vec<u32>, usize)> {
    let (cell, tokens) = (cell.clone(), tokens.clone());
    thread::spawn(move || worker(&cell, &tokens, budget))
}

/// Nothing stranded: the cell is idle, holds no message and no token waits.
fn assert_quiescent(cell: &Cell, tokens: &RunTokens) {
    let snapshot = cell.mailbox.snapshot();
    assert!(snapshot.is_idle(), "the cell kept its run token with no worker: {snapshot:?}");
    assert_eq!(cell.mailbox.len(), 0, "a message was left in an idle cell: lost wake-up");
    assert!(!cell.mailbox.has_work());
    assert_eq!(tokens.queued(), 0);
}

#[test]
fn two_senders_never_strand_a_message() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell::new(2));
        let tokens = Arc::new(RunTokens::new(2));
        let senders = [spawn_sender(&cell, &tokens, 1), spawn_sender(&cell, &tokens, 2)];
        let (mut handled, system) = worker(&cell, &tokens, 2);
        for sender in senders {
            sender.join().unwrap();
        }
        handled.sort_unstable();
        assert_eq!(handled, [1, 2], "each message is handled exactly once");
        assert_eq!(system, 0);
        assert_quiescent(&cell, &tokens);
    });
}

#[test]
fn a_message_in_a_higher_lane_racing_the_idle_transition_is_not_stranded() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell { mailbox: ModelMailbox::with_lanes(1, 2), inside: AtomicBool::new(false) });
        let tokens = Arc::new(RunTokens::new(2));
        let senders = [1, 0].map(|lane| {
            let (cell, tokens) = (cell.clone(), tokens.clone());
            thread::spawn(move || {
                let took = cell.mailbox.push_to(lane, 10 + lane as u32).expect("the lane has room");
                tokens.producer_done(took);
            })
        });
        let (mut handled, system) = worker(&cell, &tokens, 2);
        for sender in senders {
            sender.join().unwrap();
        }
        handled.sort_unstable();
        assert_eq!(handled, [10, 11], "each message is handled exactly once");
        assert_eq!(system, 0);
        assert_quiescent(&cell, &tokens);
    });
}

#[test]
fn two_workers_never_run_the_cell_at_once() {
    cellrt_loom_tests::check(2, || {
        let cell = Arc::new(Cell::new(2));
        let tokens = Arc::new(RunTokens::new(2));
        // Budget 1: a turn with a message left yields and re-enqueues the
        // cell, so the token also passes between workers.
        let other_worker = spawn_worker(&cell, &tokens, 1);
        let senders = [spawn_sender(&cell, &tokens, 1), spawn_sender(&cell, &tokens, 2)];
        let (mut handled, system) = worker(&cell, &tokens, 1);
        for sender in senders {
            sender.join().unwrap();
        }
        let (other_handled, other_system) = other_worker.join().unwrap();
        assert_eq!(system + other_system, 0);
        handled.extend(other_handled);
        handled.sort_unstable();
        assert_eq!(handled, [1, 2], "each message is handled exactly once");
        assert_quiescent(&cell, &tokens);
    });
}

#[test]
fn control_message_racing_the_idle_transition_is_not_lost() {
    cellrt_loom_tests::check(3, || {
        let cell = Arc::new(Cell::new(1));
        let tokens = Arc::new(RunTokens::new(2));
        let sender = spawn_sender(&cell, &tokens, 7);
        let supervisor = {
            let (cell, tokens) = (cell.clone(), tokens.clone());
            thread::spawn(move || {
                let took = cell.mailbox.push_system_stop();
                tokens.producer_done(took);
            })
        };
        let (handled, system) = worker(&cell, &tokens, 1);
        sender.join().unwrap();
        supervisor.join().unwrap();
        assert_eq!(handled, [7], "the user message is handled exactly once");
        assert_eq!(system, 1, "the control message is handled exactly once");
        assert_quiescent(&cell, &tokens);
    });
}
