//! Loom models of cellrt's concurrency protocols.
//!
//! The models are the integration tests in `tests/`, one file per protocol,
//! named after the runtime file it checks (`dispatch/state.rs` →
//! `tests/dispatch_state.rs`). Each drives the real protocol code through the
//! hidden `cellrt::loom_api` hook, which exists only when cellrt is built with
//! `--cfg cellrt_loom`; without it every model compiles to nothing. Run them
//! in release with a low preemption bound:
//!
//! ```text
//! RUSTFLAGS="--cfg cellrt_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p cellrt-loom-tests --release --target-dir target/loom
//! ```
//!
//! This library only holds what the tests share: [`check`], the model
//! runner, and [`RunTokens`], a dispatcher's run queue reduced to what a
//! model of one cell needs.

#[cfg(cellrt_loom)]
use loom::sync::{Condvar, Mutex};

/// Runs `model` under loom for every schedule within a preemption bound.
///
/// `preemptions` is the model's own bound: 2 for models whose state space
/// grows fast, 3 where that still takes about a second. `LOOM_MAX_PREEMPTIONS`
/// can raise it for a deeper run but never lowers it, so every model keeps
/// the depth it was checked at (some mutations of the protocols are only
/// found with 3 preemptions), and the models stay bounded when the variable
/// is missing.
#[cfg(cellrt_loom)]
pub fn check<F>(preemptions: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(builder.preemption_bound.map_or(preemptions, |env| env.max(preemptions)));
    builder.check(model);
}

/// A model's stand-in for a dispatcher's run queue, for one cell: run tokens
/// waiting for a worker, and how many producers (senders, supervisors) may
/// still hand one over.
///
/// Whoever takes a cell's run token (a push or a notification that returned
/// `Enqueue`, a turn that yielded) gives it here; workers [`take`] tokens
/// and run one turn per token. The lock hands the token over with the same
/// Release/Acquire a real run queue gives.
///
/// [`take`]: RunTokens::take
#[cfg(cellrt_loom)]
#[derive(Debug)]
pub struct RunTokens {
    state: Mutex<Tokens>,
    cond: Condvar,
}

#[cfg(cellrt_loom)]
#[derive(Debug)]
struct Tokens {
    queued: usize,
    producers_left: usize,
}

#[cfg(cellrt_loom)]
impl RunTokens {
    /// No token queued; `producers` producers will each call
    /// [`producer_done`](RunTokens::producer_done) once.
    pub fn new(producers: usize) -> Self {
        RunTokens { state: Mutex::new(Tokens { queued: 0, producers_left: producers }), cond: Condvar::new() }
    }

    /// Enqueues the cell: its run token goes to the workers.
    pub fn enqueue(&self) {
        self.state.lock().unwrap().queued += 1;
        self.cond.notify_all();
    }

    /// A producer is done; it enqueued the cell first when it took the token.
    pub fn producer_done(&self, took_token: bool) {
        let mut state = self.state.lock().unwrap();
        if took_token {
            state.queued += 1;
        }
        state.producers_left -= 1;
        drop(state);
        self.cond.notify_all();
    }

    /// Blocks for a token; `false` once no producer is left and no token waits.
    pub fn take(&self) -> bool {
        let mut state = self.state.lock().unwrap();
        while state.queued == 0 && state.producers_left > 0 {
            state = self.cond.wait(state).unwrap();
        }
        if state.queued == 0 {
            return false;
        }
        state.queued -= 1;
        true
    }

    /// Tokens enqueued and not taken.
    pub fn queued(&self) -> usize {
        self.state.lock().unwrap().queued
    }
}
