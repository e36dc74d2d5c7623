//! Model of the ask protocol (`Reply` and `Pending` in `runtime/src/ask.rs`,
//! created by the real `ask::channel`).
//!
//! Property: an ask resolves exactly once. An answer racing the wait is
//! returned; a reply dropped unanswered resolves the wait to
//! `AskError::Unanswered` (never a hang: a waiter parks with loom's
//! `thread::park`, and loom reports a park nobody unparks as a deadlock); an
//! answer racing the caller giving up (dropping the `Pending`, or a zero
//! wait that times out) is either kept and dropped with the ask or handed
//! back to the replier, never lost, dropped twice or leaked (the slot is
//! loom's `Arc`, so a slot never freed fails the model too). A task polling
//! the `Pending` is woken by the answer or the dropped reply, also after it
//! left a second waker or went on to `wait`. Under loom a timed wait is a
//! plain wait, so a non-zero `wait` returns only when resolved; the spin
//! before it is one look.
#![cfg(cellrt_loom)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use cellrt::loom_api::reply_channel;
use cellrt::AskError;
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// Long enough that no real deadline passes while loom explores a schedule.
const WAIT: Duration = Duration::from_secs(3600);

/// A reply value that counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn answer_racing_wait_is_returned() {
    cellrt_loom_tests::check(3, || {
        let (reply, pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        assert_eq!(pending.wait(WAIT), Ok(7));
        assert_eq!(answer.join().unwrap(), Ok(()), "an answer to a waiting ask is accepted");
    });
}

#[test]
fn dropped_reply_racing_wait_resolves_to_unanswered() {
    cellrt_loom_tests::check(3, || {
        let (reply, pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        assert_eq!(pending.wait(WAIT), Err(AskError::Unanswered));
        cell.join().unwrap();
    });
}

#[test]
fn answer_racing_abandoned_ask_is_dropped_exactly_once() {
    cellrt_loom_tests::check(3, || {
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

#[test]
fn awaited_ask_is_woken_by_the_answer() {
    cellrt_loom_tests::check(3, || {
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        let first = Pin::new(&mut pending).poll(&mut cx);
        answer.join().unwrap().unwrap();
        match first {
            Poll::Ready(result) => assert_eq!(result, Ok(7)),
            Poll::Pending => {
                // The task parked: the answer must have woken it.
                assert_eq!(wakes.load(SeqCst), 1, "a parked ask was not woken by its answer");
                assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Ok(7)));
            }
        }
    });
}

#[test]
fn awaited_ask_is_woken_when_the_reply_is_dropped() {
    cellrt_loom_tests::check(3, || {
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel::<u32>();
        let cell = thread::spawn(move || drop(reply));
        let first = Pin::new(&mut pending).poll(&mut cx);
        cell.join().unwrap();
        match first {
            Poll::Ready(result) => assert_eq!(result, Err(AskError::Unanswered)),
            Poll::Pending => {
                assert_eq!(wakes.load(SeqCst), 1, "a parked ask was not woken by the dropped reply");
                assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Err(AskError::Unanswered)));
            }
        }
    });
}

#[test]
fn answer_racing_a_zero_wait_is_taken_or_handed_back() {
    cellrt_loom_tests::check(3, || {
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
    cellrt_loom_tests::check(3, || {
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
    cellrt_loom_tests::check(3, || {
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
        let mut cx = Context::from_waker(&waker);
        let (reply, mut pending) = reply_channel();
        let answer = thread::spawn(move || reply.send(7));
        let mut result = None;
        // Two polls (the second leaves its waker again), then the answer
        // must either be there or have woken the task.
        for _ in 0..2 {
            if let Poll::Ready(ready) = Pin::new(&mut pending).poll(&mut cx) {
                result = Some(ready);
                break;
            }
        }
        answer.join().unwrap().unwrap();
        match result {
            Some(ready) => assert_eq!(ready, Ok(7)),
            None => {
                assert_eq!(wakes.load(SeqCst), 1, "a parked ask was not woken by its answer");
                assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Ok(7)));
            }
        }
    });
}

#[test]
fn a_polled_ask_then_waited_for_gets_the_answer() {
    cellrt_loom_tests::check(3, || {
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
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
    cellrt_loom_tests::check(3, || {
        let drops = Arc::new(AtomicUsize::new(0));
        let wakes = Arc::new(AtomicUsize::new(0));
        let waker = Waker::from(std::sync::Arc::new(CountingWaker(wakes.clone())));
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
