//! Model of a supervised cell restarted in place while senders keep sending
//! (`Mailbox::suspend`, `Mailbox::resume`, `Mailbox::push_front` and the
//! `Restart` control request in `runtime/src/mailbox/`, with the state word
//! of `runtime/src/dispatch/state.rs`), its turns shaped as
//! `CellInstance::run_turn` in `runtime/src/cell/instance.rs` shapes them.
//!
//! A sender sends 1, 2, 3 and enqueues the cell whenever a push takes the run
//! token. A worker runs the cell's turns. Incarnation 1 fails on the first
//! message it is given: the turn suspends the mailbox and reports the exit;
//! a supervisor thread, told of the exit, sends `Restart` and enqueues the
//! cell if that took the token. The next turn begins incarnation 2 (putting
//! a message kept for re-delivery at the front, then resuming the mailbox)
//! and handles what is queued.
//!
//! Property: in every schedule each message is handled exactly once, by the
//! incarnation that was alive when the worker took it: incarnation 1 handles
//! message 1 and nothing after it failed, incarnation 2 everything else, in
//! the order sent. A message kept for re-delivery is handled once more, by
//! incarnation 2, before anything else. Nothing is
//! left queued and the cell ends idle: a `Restart` that arrives while the
//! failing turn still runs is seen by that turn's end, one that arrives
//! after it went idle takes the run token, so messages that waited out the
//! suspension are never stranded.
//!
//! Planted bugs this model catches (each checked, then reverted): a no-op
//! `Mailbox::resume` (messages stranded); a no-op `Mailbox::suspend` (the
//! suspended cell yields forever, which loom reports as a model exceeding
//! its branch bound); `push_system` not notifying the state word;
//! `end_turn` without its re-check after going idle; `has_work` blind to
//! the system lane; a `CellState::notify` that does not write when it takes
//! no token; `pop_user` taking the queue before the moved lane (the
//! re-delivered message comes last); and a supervisor that ignores the run
//! token its `Restart` push took.
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelMailbox, ModelSystemMsg};
use cellrt_loom_tests::RunTokens;
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Condvar, Mutex};
use loom::thread;

/// Where a cell's incarnation is, as `Phase` in `cell/instance.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The next turn begins an incarnation.
    Starting,
    Running,
    /// Between incarnations: waits for `Restart`.
    Suspended,
}

/// One call of the handler: which incarnation got which message, and
/// whether it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Handled {
    incarnation: u32,
    msg: u32,
    failed: bool,
}

fn ok(incarnation: u32, msg: u32) -> Handled {
    Handled { incarnation, msg, failed: false }
}

fn failed(incarnation: u32, msg: u32) -> Handled {
    Handled { incarnation, msg, failed: true }
}

/// What only the run-token holder touches (`Body` in `cell/instance.rs`).
struct Body {
    phase: Phase,
    incarnation: u32,
    /// A failed message kept for the next incarnation.
    retry: Option<u32>,
    handled: Vec<Handled>,
}

/// A supervised cell: its mailbox, its body, and how it reports an exit.
struct Cell {
    mailbox: ModelMailbox<u32>,
    body: Mutex<Body>,
    /// Set while a worker is inside a turn.
    inside: AtomicBool,
    /// Whether a failed message is kept for re-delivery (a retry policy).
    redeliver: bool,
    /// The exit report the supervisor waits for.
    exited: Mutex<bool>,
    exit_cond: Condvar,
}

impl Cell {
    /// A cell whose incarnation 1 runs; the mailbox holds 3 messages.
    fn new(redeliver: bool) -> Self {
        Cell {
            mailbox: ModelMailbox::new(3),
            body: Mutex::new(Body {
                phase: Phase::Running,
                incarnation: 1,
                retry: None,
                handled: Vec::new(),
            }),
            inside: AtomicBool::new(false),
            redeliver,
            exited: Mutex::new(false),
            exit_cond: Condvar::new(),
        }
    }

    /// One turn: control requests first, then up to `budget` user messages.
    /// Returns whether the worker kept the run token (`Yield`).
    fn run_turn(&self, budget: usize) -> bool {
        self.mailbox.start_turn();
        assert!(!self.inside.swap(true, SeqCst), "two workers are inside one cell");
        let mut body = self.body.lock().unwrap();
        let mut handled = 0;
        loop {
            while let Some(msg) = self.mailbox.pop_system_msg() {
                assert_eq!(msg, ModelSystemMsg::Restart);
                if body.phase == Phase::Suspended {
                    body.phase = Phase::Starting;
                }
            }
            match body.phase {
                Phase::Starting => {
                    self.begin_incarnation(&mut body);
                    continue;
                }
                Phase::Suspended => break,
                Phase::Running => {}
            }
            if handled == budget {
                break;
            }
            let Some(msg) = self.mailbox.pop_user() else { break };
            handled += 1;
            if !self.handle(&mut body, msg) {
                // As after `finish_end` suspended the cell: the turn ends.
                break;
            }
        }
        drop(body);
        self.inside.store(false, SeqCst);
        self.mailbox.end_turn()
    }

    /// `CellInstance::begin_incarnation`: a new value, the kept message at
    /// the front, then the mailbox resumed.
    fn begin_incarnation(&self, body: &mut Body) {
        body.incarnation += 1;
        body.phase = Phase::Running;
        if let Some(msg) = body.retry.take() {
            self.mailbox.push_front(vec![msg]);
        }
        self.mailbox.resume();
    }

    /// The handler: incarnation 1 fails on its first message. A failure
    /// ends the incarnation as `begin_end` and `finish_end` do: suspend the
    /// mailbox, then report the exit. Returns `false` on a failure.
    fn handle(&self, body: &mut Body, msg: u32) -> bool {
        assert_eq!(body.phase, Phase::Running, "a message reached a failed incarnation");
        let fails = body.incarnation == 1;
        body.handled.push(Handled { incarnation: body.incarnation, msg, failed: fails });
        if fails {
            if self.redeliver {
                body.retry = Some(msg);
            }
            self.mailbox.suspend();
            body.phase = Phase::Suspended;
            *self.exited.lock().unwrap() = true;
            self.exit_cond.notify_all();
        }
        !fails
    }

    /// The supervisor's side: waits for the exit report.
    fn wait_for_exit(&self) {
        let mut exited = self.exited.lock().unwrap();
        while !*exited {
            exited = self.exit_cond.wait(exited).unwrap();
        }
    }
}

/// Runs the cell's turns until no token can come any more. A turn that kept
/// the token sends the cell to the back of the run queue.
fn worker(cell: &Cell, tokens: &RunTokens, budget: usize) {
    while tokens.take() {
        if cell.run_turn(budget) {
            tokens.enqueue();
        }
    }
}

/// Sends 1, 2, 3 while the cell fails and restarts; waits out the restart
/// from a supervisor thread; runs the turns on this thread. Returns the
/// handler calls, in order.
fn run(redeliver: bool, budget: usize) -> Vec<Handled> {
    let cell = Arc::new(Cell::new(redeliver));
    let tokens = Arc::new(RunTokens::new(2));
    let sender = {
        let (cell, tokens) = (cell.clone(), tokens.clone());
        thread::spawn(move || {
            for msg in 1..=3 {
                if cell.mailbox.push(msg).expect("the mailbox has room and is open") {
                    tokens.enqueue();
                }
            }
            tokens.producer_done(false);
        })
    };
    let supervisor = {
        let (cell, tokens) = (cell.clone(), tokens.clone());
        thread::spawn(move || {
            cell.wait_for_exit();
            let took = cell.mailbox.push_system_restart();
            tokens.producer_done(took);
        })
    };
    worker(&cell, &tokens, budget);
    sender.join().unwrap();
    supervisor.join().unwrap();

    let snapshot = cell.mailbox.snapshot();
    assert!(snapshot.is_idle(), "the cell kept its run token with no worker: {snapshot:?}");
    assert_eq!(cell.mailbox.len(), 0, "a message was left queued: lost wake-up");
    assert!(!cell.mailbox.has_work(), "a control request was left pending");
    assert_eq!(tokens.queued(), 0);
    let body = cell.body.lock().unwrap();
    assert_eq!((body.phase, body.incarnation), (Phase::Running, 2), "the cell was restarted once");
    assert_eq!(body.retry, None);
    body.handled.clone()
}

#[test]
fn sends_racing_a_restart_reach_the_old_or_the_new_incarnation_once() {
    cellrt_loom_tests::check(2, || {
        let handled = run(false, 2);
        assert_eq!(handled, [failed(1, 1), ok(2, 2), ok(2, 3)]);
    });
}

#[test]
fn sends_racing_a_restart_with_one_message_per_turn_are_not_stranded() {
    cellrt_loom_tests::check(2, || {
        // Budget 1: turns yield with work left, so the token also passes
        // through the run queue between the restart and the queued messages.
        let handled = run(false, 1);
        assert_eq!(handled, [failed(1, 1), ok(2, 2), ok(2, 3)]);
    });
}

#[test]
fn failed_message_is_redelivered_first_to_the_next_incarnation() {
    cellrt_loom_tests::check(2, || {
        let handled = run(true, 2);
        assert_eq!(handled, [failed(1, 1), ok(2, 1), ok(2, 2), ok(2, 3)]);
    });
}
