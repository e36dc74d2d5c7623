//! Helpers shared by every bench binary (included with `mod common;`).

// Each bench binary uses a subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use cellrt::Runtime;
use criterion::Criterion;

/// How long a bench waits for an answer before it declares the run broken.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Installs a global tracing default that records nothing, so the runtime's
/// `debug!`/`trace!` call sites stay disabled and print nothing. Idempotent.
pub(crate) fn quiet_tracing() {
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
}

/// A runtime with `workers` threads on its default dispatcher and mailboxes
/// of `capacity` messages (other settings at their defaults).
pub(crate) fn runtime(workers: usize, capacity: usize) -> Runtime {
    Runtime::builder().worker_threads(workers).default_capacity(capacity).build().expect("runtime builds")
}

/// Criterion settings for benches whose one iteration moves a large batch
/// (hundreds of milliseconds): few samples, flat sampling.
pub(crate) fn heavy() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args()
}
