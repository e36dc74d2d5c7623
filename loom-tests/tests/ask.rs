//! Model of the ask protocol (`Reply` and `Pending` in `runtime/src/ask.rs`,
//! created by the real `ask::channel`).
//!
//! Property: an ask resolves exactly once. An answer racing the wait is
//! returned; a reply dropped unanswered resolves the wait to
//! `AskError::Unanswered` (never a hang: a waiter parks with loom's
//! `thread::park`, and loom reports a park nobody unparks as a deadlock); an
//! answer racing the caller giving up (dropping the `Pending`, or a zero
//! wait that times out) is either kept and dropped with the ask or handed
//! back to the replier, never lost, dropped twice or leaked (a slot never
//! freed fails the model too, see below). A task polling
//! the `Pending` is woken by the answer or the dropped reply, also after it
//! left a second waker or went on to `wait`.
//!
//! The slot is one box that the second side to let go frees. Every model
//! checks, through `loom_api::reply_slots_live`, that each slot it made is
//! freed exactly once (never freed, or freed twice, fails the model), and
//! under loom the free counts as a write to the slot's answer and to a cell
//! that every access of either side reads, so a free not ordered after the
//! other side's last access to it (an atomic one included) is a race loom
//! reports. A freed slot's box is kept for the freeing thread's next ask:
//! asks in a row, by the caller and by the replier, check that a box is
//! reused only once both sides let go of it (keeping it when the first side
//! lets go fails `an_abandoned_slot_is_not_reused_while_its_reply_may_come`).
//! A leaked `Pending` keeps the slot alive after the reply let go. Under
//! loom a timed wait is a plain wait, so a non-zero `wait` returns only when
//! resolved; the spin before it is one look.
#![cfg(cellrt_loom)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use cellrt::loom_api::{reply_channel, reply_slots_live, reset_reply_slots};
use cellrt::{AskError, Pending, Reply};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// Long enough that no real deadline passes while loom explores a schedule.
const WAIT: Duration = Duration::from_secs(3600);

/// Runs an ask model (3 preemptions) and checks, at the end of every
/// schedule, that each reply slot the model made was freed exactly once.
fn check<F>(model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    cellrt_loom_tests::check(3, move || {
        reset_reply_slots();
        model();
        assert_eq!(reply_slots_live(), 0, "every reply slot is freed exactly once");
    });
}

/// A reply value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn answer_racing_wait_is_returned() {
    check(|| {
        let (reply, pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        assert_eq!(pending.wait(WAIT), Ok(7));
        assert_eq!(answer.join().unwrap(), Ok(()), "an answer to a waiting ask is accepted");
    });
}

#[test]
fn dropped_reply_racing_wait_resolves_to_unanswered() {
    check(|| {
        let (reply, pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        assert_eq!(pending.wait(WAIT), Err(AskError::Unanswered));
        cell.join().unwrap();
    });
}

#[test]
fn answer_racing_abandoned_ask_is_dropped_exactly_once() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (reply, pending) = reply_channel();
        let caller = thread::spawn(move || drop(pending));
        let answer = {
            let drops = drops.clone();
            thread::spawn(move || {
                if let Err(back) = reply.send(Counted(drops.clone())) {
                    assert_eq!(drops.load(SeqCst), 0, "a value handed back was already dropped");
                    drop(back);
                }
            })
        };
        caller.join().unwrap();
        answer.join().unwrap();
        // Either the ask took the value (dropped when the caller gave up) or
        // the replier got it back and dropped it: once either way.
        assert_eq!(drops.load(SeqCst), 1, "the answer is dropped exactly once");
    });
}

/// A waker that counts its wake-ups.
struct CountingWaker(Arc<AtomicUsize>);

impl Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, SeqCst);
    }
}

/// A waker and the count of its wake-ups.
fn counting_waker() -> (Arc<AtomicUsize>, Waker) {
    let wakes = Arc::new(AtomicUsize::new(0));
    let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
    (wakes, waker)
}

/// Checks an awaited ask once the other side is done: the polls before
/// gave `polled` (`None`: still pending), so it is `expected` at once, or
/// the parked task was woken exactly once and the next poll gives it.
fn settles_to(
    polled: Option<Result<u32, AskError>>,
    pending: &mut Pending<u32>,
    cx: &mut Context<'_>,
    wakes: &AtomicUsize,
    expected: Result<u32, AskError>,
) {
    match polled {
        Some(result) => assert_eq!(result, expected),
        None => {
            assert_eq!(wakes.load(SeqCst), 1, "a parked ask was not woken when it resolved");
            assert_eq!(Pin::new(pending).poll(cx), Poll::Ready(expected));
        }
    }
}

/// The result of one poll, `None` while pending.
fn poll_once(pending: &mut Pending<u32>, cx: &mut Context<'_>) -> Option<Result<u32, AskError>> {
    match Pin::new(pending).poll(cx) {
        Poll::Ready(result) => Some(result),
        Poll::Pending => None,
    }
}

#[test]
fn awaited_ask_is_woken_by_the_answer() {
    check(|| {
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        let first = poll_once(&mut pending, &mut cx);
        answer.join().unwrap().unwrap();
        settles_to(first, &mut pending, &mut cx, &wakes, Ok(7));
    });
}

#[test]
fn awaited_ask_is_woken_when_the_reply_is_dropped() {
    check(|| {
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        let first = poll_once(&mut pending, &mut cx);
        cell.join().unwrap();
        settles_to(first, &mut pending, &mut cx, &wakes, Err(AskError::Unanswered));
    });
}

#[test]
fn answer_racing_a_zero_wait_is_taken_or_handed_back() {
    check(|| {
        let (reply, pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        let taken = pending.wait(Duration::ZERO);
        let sent = answer.join().unwrap();
        match taken {
            Ok(value) => {
                assert_eq!(value, 7);
                assert_eq!(sent, Ok(()), "an answer the caller took was accepted");
            }
            Err(err) => {
                assert_eq!(err, AskError::Timeout, "one look before the answer is a timeout");
                assert_eq!(sent, Err(7), "the answer to a caller that gave up comes back");
            }
        }
    });
}

#[test]
fn dropped_reply_racing_a_zero_wait_is_unanswered_or_a_timeout() {
    check(|| {
        let (reply, pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        let taken = pending.wait(Duration::ZERO);
        cell.join().unwrap();
        assert!(
            taken == Err(AskError::Unanswered) || taken == Err(AskError::Timeout),
            "a dropped reply never yields an answer: {taken:?}"
        );
    });
}

#[test]
fn answer_racing_a_second_poll_wakes_the_task() {
    check(|| {
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        // Two polls (the second leaves its waker again), then the answer
        // must either be there or have woken the task.
        let polled = poll_once(&mut pending, &mut cx).or_else(|| poll_once(&mut pending, &mut cx));
        answer.join().unwrap().unwrap();
        settles_to(polled, &mut pending, &mut cx, &wakes, Ok(7));
    });
}

#[test]
fn a_polled_ask_then_waited_for_gets_the_answer() {
    check(|| {
        let (_, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        match Pin::new(&mut pending).poll(&mut cx) {
            Poll::Ready(result) => assert_eq!(result, Ok(7)),
            // The task's waker is in the slot; the thread that now waits
            // must replace it, or the answer wakes the task and the thread
            // sleeps for ever.
            Poll::Pending => assert_eq!(pending.wait(WAIT), Ok(7)),
        }
        answer.join().unwrap().unwrap();
    });
}

#[test]
fn answer_racing_an_abandoned_polled_ask_is_dropped_exactly_once() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (_, waker) = counting_waker();
        let (reply, mut pending) = reply_channel();
        let answer = {
            let drops = drops.clone();
            thread::spawn(move || {
                if let Err(back) = reply.send(Counted(drops.clone())) {
                    drop(back);
                }
            })
        };
        let mut cx = Context::from_waker(&waker);
        match Pin::new(&mut pending).poll(&mut cx) {
            Poll::Ready(Ok(answer)) => drop(answer),
            Poll::Ready(Err(err)) => panic!("the only outcome is the answer, not {err:?}"),
            // The task gives up with its waker left in the slot.
            Poll::Pending => drop(pending),
        }
        answer.join().unwrap();
        assert_eq!(drops.load(SeqCst), 1, "the answer is dropped exactly once");
    });
}

#[test]
fn answer_racing_a_sleeping_wait_is_taken_and_dropped_once() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (reply, pending) = reply_channel();
        let answer = {
            let drops = drops.clone();
            thread::spawn(move || reply.send(Counted(drops)).is_ok())
        };
        let taken = pending.wait(WAIT).expect("the answer comes");
        assert!(answer.join().unwrap(), "an answer to a waiting ask is accepted");
        assert_eq!(drops.load(SeqCst), 0);
        drop(taken);
        assert_eq!(drops.load(SeqCst), 1);
    });
}

#[test]
fn dropped_reply_racing_a_dropped_pending_frees_the_slot_once() {
    check(|| {
        let (reply, pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        drop(pending);
        cell.join().unwrap();
    });
}

#[test]
fn answer_racing_a_leaked_pending_is_kept_until_the_pending_goes() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (reply, pending) = reply_channel();
        let pending = std::mem::ManuallyDrop::new(pending);
        let answer = {
            let drops = drops.clone();
            thread::spawn(move || reply.send(Counted(drops)).is_ok())
        };
        assert!(answer.join().unwrap(), "a leaked caller never gave up");
        assert_eq!(reply_slots_live(), 1, "the slot outlives the reply while the pending is leaked");
        assert_eq!(drops.load(SeqCst), 0, "the answer waits in the slot");
        drop(std::mem::ManuallyDrop::into_inner(pending));
        assert_eq!(drops.load(SeqCst), 1, "the answer goes with the slot");
    });
}

#[test]
fn a_pair_whose_reply_is_boxed_and_dropped_unrun_resolves_unanswered() {
    check(|| {
        // As a held answer: the reply moved into a boxed closure, which is
        // dropped unrun (the flush failed).
        let (reply, mut pending) = Reply::<u32>::pair(None);
        let held: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = reply.send(7);
        });
        let cell = thread::spawn(move || drop(held));
        let (wakes, waker) = counting_waker();
        let mut cx = Context::from_waker(&waker);
        let first = poll_once(&mut pending, &mut cx);
        cell.join().unwrap();
        settles_to(first, &mut pending, &mut cx, &wakes, Err(AskError::Unanswered));
    });
}

#[test]
fn a_pair_whose_held_reply_runs_racing_a_timeout_is_taken_or_handed_back() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (reply, pending) = Reply::pair(None);
        let held: Box<dyn FnOnce() -> bool + Send> = {
            let drops = drops.clone();
            Box::new(move || reply.send(Counted(drops)).is_ok())
        };
        let cell = thread::spawn(held);
        let taken = pending.wait(Duration::ZERO);
        let sent = cell.join().unwrap();
        assert_eq!(taken.is_ok(), sent, "taken if and only if accepted");
        drop(taken);
        assert_eq!(drops.load(SeqCst), 1, "the answer is dropped exactly once");
    });
}

#[test]
fn asks_in_a_row_reuse_a_slot_only_once_both_sides_let_go() {
    check(|| {
        // Whichever side lets go of the first slot second frees it and
        // keeps its box for that thread's next ask: here the caller's
        // second ask, unless the replier let go last.
        let (reply, pending) = reply_channel();
        let first = thread::spawn(move || reply.send(1));
        assert_eq!(pending.wait(WAIT), Ok(1));
        let (reply, pending) = reply_channel();
        let second = thread::spawn(move || reply.send(2));
        assert_eq!(pending.wait(WAIT), Ok(2));
        assert_eq!(first.join().unwrap(), Ok(()), "an answer to a waiting ask is accepted");
        assert_eq!(second.join().unwrap(), Ok(()));
    });
}

#[test]
fn an_abandoned_slot_is_not_reused_while_its_reply_may_come() {
    check(|| {
        let (reply, pending) = reply_channel();
        let late = thread::spawn(move || reply.send(1));
        // The caller gives up; the replier may still be on its way to the
        // slot, which the caller's next ask must not take before it let go.
        drop(pending);
        // The next ask, answered on this thread (no wake-up to race).
        let (reply, pending) = reply_channel();
        assert_eq!(reply.send(2), Ok(()));
        assert_eq!(pending.wait(WAIT), Ok(2));
        // Taken by the abandoned ask (and dropped with it), or handed back.
        assert!(matches!(late.join().unwrap(), Ok(()) | Err(1)));
    });
}

#[test]
fn a_slot_the_replier_frees_serves_its_own_next_ask() {
    check(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let (reply, pending) = reply_channel();
        let cell = {
            let drops = drops.clone();
            thread::spawn(move || {
                let sent = reply.send(Counted(drops.clone())).is_ok();
                // If the caller gave up first, this thread freed the slot
                // and its own ask takes the box.
                let (reply, pending) = reply_channel();
                assert!(reply.send(Counted(drops)).is_ok());
                drop(pending.wait(WAIT).expect("answered at once"));
                sent
            })
        };
        let taken = pending.wait(Duration::ZERO);
        let sent = cell.join().unwrap();
        assert_eq!(taken.is_ok(), sent, "taken if and only if accepted");
        drop(taken);
        assert_eq!(drops.load(SeqCst), 2, "each answer is dropped exactly once");
    });
}
