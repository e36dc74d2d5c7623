//! Model of the ask protocol (`Reply` and `Pending` in `runtime/src/ask.rs`,
//! created by the real `ask::channel`).
//!
//! Property: an ask resolves exactly once. An answer racing the wait is
//! returned; a reply dropped unanswered resolves the wait to
//! `AskError::Unanswered` (never a hang: loom reports a wait nobody wakes as a
//! deadlock); an answer racing the caller giving up is either kept and dropped
//! with the ask or handed back to the replier, never lost twice or leaked.
//! Under loom a timed wait is a plain wait, so `wait` returns only when resolved.
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
