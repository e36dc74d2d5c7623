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
//! This library only holds [`check`], the model runner the tests share.

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
