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
/// The bound is `LOOM_MAX_PREEMPTIONS` when set, `preemptions` otherwise, so a
/// model stays bounded (and fast) even when the variable is missing.
#[cfg(cellrt_loom)]
pub fn check<F>(preemptions: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemptions);
    }
    builder.check(model);
}
