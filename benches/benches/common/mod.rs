//! Helpers shared by every bench binary (included with `mod common;`).

// Each bench binary uses a subset of these helpers.
#![allow(dead_code)]

use std::time::Duration;

use std::thread;

use cellrt::{Cell, CellError, Context, Reply, Runtime};
use criterion::Criterion;
use crossbeam_channel::{bounded, Sender};

/// How long a bench waits for an answer before it declares the run broken.
pub(crate) const WAIT: Duration = Duration::from_secs(60);

/// Installs a global tracing default that records nothing, so the runtime's
/// `debug!`/`trace!` call sites stay disabled and print nothing. Idempotent.
pub(crate) fn quiet_tracing() {
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
}

/// The body of every bench binary's `main`: quiet tracing, run the groups,
/// print criterion's summary.
pub(crate) fn run(benches: fn()) {
    quiet_tracing();
    benches();
    Criterion::default().configure_from_args().final_summary();
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

/// Messages of [`Counter`].
#[derive(Debug)]
pub(crate) enum Msg {
    /// Count one message and add its value.
    Add(u64),
    /// Answer with (count, sum) and start over.
    Take(Reply<(u64, u64)>),
}

/// The cell the counting and fan-in stories send to.
#[derive(Default)]
pub(crate) struct Counter {
    count: u64,
    sum: u64,
}

impl Cell for Counter {
    type Message = Msg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Add(n) => {
                self.count += 1;
                self.sum = self.sum.wrapping_add(n);
            }
            Msg::Take(reply) => {
                let _ = reply.send((self.count, self.sum));
                *self = Counter::default();
            }
        }
        Ok(())
    }
}

/// Messages of the crossbeam baseline's consumer thread: the same shape as [`Msg`].
pub(crate) enum RawMsg {
    /// Count one message and add its value.
    Add(u64),
    /// Answer with (count, sum) and start over.
    Take(Sender<(u64, u64)>),
}

/// The crossbeam baseline of [`Counter`]: a consumer thread on a
/// `bounded(capacity)` channel. Drop the sender, then join the thread.
pub(crate) fn raw_counter(capacity: usize) -> (Sender<RawMsg>, thread::JoinHandle<()>) {
    let (tx, rx) = bounded::<RawMsg>(capacity);
    let consumer = thread::spawn(move || {
        let (mut count, mut sum) = (0_u64, 0_u64);
        for msg in rx {
            match msg {
                RawMsg::Add(n) => {
                    count += 1;
                    sum = sum.wrapping_add(n);
                }
                RawMsg::Take(reply) => {
                    let _ = reply.send((count, sum));
                    (count, sum) = (0, 0);
                }
            }
        }
    });
    (tx, consumer)
}
