//! Model of a supervisor told of several child exits at once: the event
//! queue and `Supervise` request of `Node::child_exited` and `Node::process`
//! (`runtime/src/supervise/node.rs`), the system lane and state word they
//! go through (`runtime/src/mailbox/`, `runtime/src/dispatch/state.rs`), and
//! the restart intensity of `RestartWindow::admit`
//! (`runtime/src/supervise/window.rs`).
//!
//! N children exit concurrently. Each does what `Node::child_exited` does:
//! pushes its exit under the node's lock, then sends `Supervise` to the
//! supervisor (a control request plus a notification of its state word) and
//! enqueues the supervisor if that took its run token. A worker runs the
//! supervisor's turns; for each `Supervise` taken, the turn processes every
//! pending event under the lock, as `Node::process` does, asking the real
//! `RestartWindow` to admit one restart per exit, at a clock that advances
//! 100 ms per event (all within the 5 s period).
//!
//! Property: whatever the interleaving, exactly N exits are processed (none
//! lost though `Supervise` requests coalesce into one pending flag, none
//! twice), and with an intensity of N - 1 restarts exactly one restart is
//! refused: the N-th processed. The supervisor ends idle with no event and
//! no request pending.
//!
//! Planted bugs this model catches (each checked, then reverted): a child
//! that pushes its exit without sending `Supervise`; one that sends
//! `Supervise` before pushing its exit; a turn that processes one event per
//! `Supervise` (requests coalesce, so an exit is stranded); `push_system`
//! not notifying the state word; `end_turn` without its re-check after going
//! idle; `has_work` blind to the system lane; a `CellState::notify` that
//! does not write when it takes no token; and a `RestartWindow::admit` that
//! admits `max + 1` restarts.
#![cfg(cellrt_loom)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use cellrt::loom_api::{ModelMailbox, ModelSystemMsg, ModelWindow};
use cellrt_loom_tests::RunTokens;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

const PERIOD: Duration = Duration::from_secs(5);
/// How far the supervisor's clock advances per event processed.
const TICK: Duration = Duration::from_millis(100);

/// What the node's lock guards (`NodeState` in `supervise/node.rs`).
struct NodeState {
    /// Exits reported and not processed yet: the child's number.
    events: VecDeque<usize>,
    window: ModelWindow,
    /// Events processed so far.
    ticks: u32,
    /// Exits processed, in order, with whether a restart was admitted.
    processed: Vec<(usize, bool)>,
}

/// A supervisor cell: its mailbox (control requests only) and its node.
struct Supervisor {
    mailbox: ModelMailbox<()>,
    node: Mutex<NodeState>,
    /// Set while a worker is inside a turn.
    inside: AtomicBool,
    /// The fixed time the clock starts from.
    base: Instant,
    max_restarts: u32,
}

impl Supervisor {
    fn new(base: Instant, max_restarts: u32) -> Self {
        Supervisor {
            mailbox: ModelMailbox::new(1),
            node: Mutex::new(NodeState {
                events: VecDeque::new(),
                window: ModelWindow::new(),
                ticks: 0,
                processed: Vec::new(),
            }),
            inside: AtomicBool::new(false),
            base,
            max_restarts,
        }
    }

    /// `Node::child_exited`: the exit is pushed under the lock, the lock is
    /// released, then the owner is sent `Supervise` (`send_system`). Returns
    /// whether the child took the supervisor's run token.
    fn child_exited(&self, child: usize) -> bool {
        self.node.lock().unwrap().events.push_back(child);
        self.mailbox.push_system_supervise()
    }

    /// `Node::process`: every pending event, under the lock.
    fn process(&self) {
        let mut node = self.node.lock().unwrap();
        while let Some(child) = node.events.pop_front() {
            node.ticks += 1;
            let now = self.base + TICK * node.ticks;
            let admitted = node.window.admit(now, self.max_restarts, PERIOD);
            node.processed.push((child, admitted));
        }
    }

    /// One turn: the control requests, as `CellInstance::run_system` takes
    /// them. Returns whether the worker kept the run token (`Yield`).
    fn run_turn(&self) -> bool {
        self.mailbox.start_turn();
        assert!(!self.inside.swap(true, SeqCst), "two workers are inside one cell");
        while let Some(msg) = self.mailbox.pop_system_msg() {
            assert_eq!(msg, ModelSystemMsg::Supervise);
            self.process();
        }
        self.inside.store(false, SeqCst);
        self.mailbox.end_turn()
    }
}

/// `children` children exit at once into a supervisor allowing
/// `children - 1` restarts; a worker runs the supervisor's turns. Checks the
/// property once every thread is done.
fn run(base: Instant, children: usize) {
    let max_restarts = u32::try_from(children - 1).unwrap();
    let supervisor = Arc::new(Supervisor::new(base, max_restarts));
    let tokens = Arc::new(RunTokens::new(children));
    let handles: Vec<_> = (0..children)
        .map(|child| {
            let (supervisor, tokens) = (supervisor.clone(), tokens.clone());
            thread::spawn(move || {
                let took = supervisor.child_exited(child);
                tokens.producer_done(took);
            })
        })
        .collect();
    while tokens.take() {
        if supervisor.run_turn() {
            tokens.enqueue();
        }
    }
    for handle in handles {
        handle.join().unwrap();
    }

    let snapshot = supervisor.mailbox.snapshot();
    assert!(snapshot.is_idle(), "the supervisor kept its run token with no worker: {snapshot:?}");
    assert!(!supervisor.mailbox.has_work(), "a Supervise request was left pending");
    assert_eq!(tokens.queued(), 0);
    let node = supervisor.node.lock().unwrap();
    assert!(node.events.is_empty(), "an exit was left unprocessed: lost wake-up");
    let mut exits: Vec<usize> = node.processed.iter().map(|&(child, _)| child).collect();
    exits.sort_unstable();
    assert_eq!(exits, (0..children).collect::<Vec<_>>(), "each exit is processed exactly once");
    let admitted: Vec<bool> = node.processed.iter().map(|&(_, admitted)| admitted).collect();
    let mut expected = vec![true; children - 1];
    expected.push(false);
    assert_eq!(admitted, expected, "only the restart beyond the intensity is refused");
}

#[test]
fn two_concurrent_exits_are_each_counted_once_against_the_intensity() {
    let base = Instant::now();
    cellrt_loom_tests::check(2, move || run(base, 2));
}

#[test]
fn three_concurrent_exits_are_each_counted_once_against_the_intensity() {
    let base = Instant::now();
    cellrt_loom_tests::check(2, move || run(base, 3));
}
