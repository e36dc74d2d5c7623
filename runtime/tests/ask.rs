//! Asks: answered, unanswered, timed out, awaited.

mod common;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::Duration;

use cellrt::{AskError, Cell, CellError, Context, Reply};
use common::{eventually, runtime, Log, Rec, Recorder, PATIENCE};

#[test]
fn ask_is_answered_after_earlier_messages() {
    let rt = runtime(2);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    for n in 1..=3 {
        addr.send(Rec::Put(n)).unwrap();
    }
    assert_eq!(addr.ask(Rec::Dump).unwrap().wait(PATIENCE), Ok(vec![1, 2, 3]));
    rt.shutdown(PATIENCE);
}

#[test]
fn ask_to_a_cell_that_panics_resolves_unanswered_at_once() {
    let rt = runtime(1);
    let addr = rt.spawn(Recorder::new(&Log::default())).unwrap();
    addr.send(Rec::Panic("boom")).unwrap();
    // The Dump queued behind the panic is dropped with the stopped cell.
    let pending = addr.ask(Rec::Dump).unwrap();
    assert_eq!(pending.wait(Duration::from_secs(60)), Err(AskError::Unanswered));
    rt.shutdown(PATIENCE);
}

/// Answers asks late: after the asker has given up.
struct Sleepy;

impl Cell for Sleepy {
    type Message = (Duration, Reply<&'static str>);

    fn handle(&mut self, _ctx: &mut Context<Self>, (delay, reply): Self::Message) -> Result<(), CellError> {
        std::thread::sleep(delay);
        if let Err(value) = reply.send("late") {
            assert_eq!(value, "late", "the late answer comes back to the cell");
        }
        Ok(())
    }
}

#[test]
fn ask_timeout_then_late_reply_is_discarded() {
    let rt = runtime(1);
    let addr = rt.spawn(Sleepy).unwrap();
    let pending = addr.ask(|reply| (Duration::from_millis(50), reply)).unwrap();
    assert_eq!(pending.wait(Duration::from_millis(1)), Err(AskError::Timeout));
    // The cell answers after the timeout without failing, and keeps working.
    let answer = addr.ask(|reply| (Duration::ZERO, reply)).unwrap().wait(PATIENCE);
    assert_eq!(answer, Ok("late"));
    assert_eq!(rt.failure_count(), 0);
    rt.shutdown(PATIENCE);
}

/// Forgets to answer.
struct Forgetful;

impl Cell for Forgetful {
    type Message = Reply<u8>;

    fn handle(&mut self, _ctx: &mut Context<Self>, _reply: Reply<u8>) -> Result<(), CellError> {
        Ok(())
    }
}

#[test]
fn reply_dropped_unanswered_resolves_the_ask() {
    let rt = runtime(1);
    let addr = rt.spawn(Forgetful).unwrap();
    assert_eq!(addr.ask(|r| r).unwrap().wait(Duration::from_secs(60)), Err(AskError::Unanswered));
    rt.shutdown(PATIENCE);
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// A minimal executor: polls one future on this thread, parking between polls.
fn block_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[test]
fn pending_can_be_awaited_without_an_async_runtime() {
    let rt = runtime(1);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    addr.send(Rec::Put(9)).unwrap();
    let answer = block_on(async { addr.ask(Rec::Dump).unwrap().await });
    assert_eq!(answer, Ok(vec![9]));
    rt.shutdown(PATIENCE);
}

#[test]
fn awaited_ask_sees_an_unanswered_reply() {
    let rt = runtime(1);
    let addr = rt.spawn(Forgetful).unwrap();
    assert_eq!(block_on(addr.ask(|r| r).unwrap()), Err(AskError::Unanswered));
    rt.shutdown(PATIENCE);
}

#[test]
fn many_concurrent_asks_each_get_their_own_answer() {
    let rt = runtime(2);
    let log = Log::default();
    let addr = rt.spawn(Recorder::new(&log)).unwrap();
    let askers: Vec<_> = (0..4_u64)
        .map(|t| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in 0..250 {
                    addr.send(Rec::Put(t * 1000 + i)).unwrap();
                    let seen = addr.ask(Rec::Dump).unwrap().wait(PATIENCE).unwrap();
                    assert!(seen.contains(&(t * 1000 + i)), "an answer reflects the asker's earlier send");
                }
            })
        })
        .collect();
    for asker in askers {
        asker.join().unwrap();
    }
    assert!(eventually(|| log.len() == 1000));
    rt.shutdown(PATIENCE);
}
