//! Supervision at scale: what starting and restarting a wide supervisor
//! costs as the number of its children grows.
//!
//! - `supervise_start/cellrt/<n>`: `Runtime::start_supervisor` of a
//!   one-for-one supervisor with `n` static children (idle cells, mailbox
//!   capacity 16), until it returns, that is until every child's `started`
//!   hook ran, one after the other in spec order. The spec is built and the
//!   runtime started outside the timed part; the runtime is dropped outside
//!   it too.
//! - `supervise_restart_all/cellrt/<n>`: a one-for-all supervisor with `n`
//!   children, started once; one iteration sends a failing message to the
//!   first child and lasts until all `n` children ran `started` again: the
//!   `n` others stopped in reverse order, one at a time, then all `n`
//!   started in order.
//!
//! Sizes 1,000, 10,000 and 100,000: the time per child must not grow with
//! the number of children (OTP starts children in linear time; so must
//! cellrt). Throughput is counted in children.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Cell, CellError, ChildSpec, Context, Runtime, Strategy, SupervisorSpec};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

use common::WAIT;

const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const CAPACITY: usize = 16;
const WORKERS: usize = 2;

/// Messages of [`Idle`].
enum Msg {
    /// The handler panics.
    Fail,
}

/// A cell that counts its starts and panics when asked to.
struct Idle {
    starts: Arc<AtomicUsize>,
}

impl Cell for Idle {
    type Message = Msg;

    fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.starts.fetch_add(1, Relaxed);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Fail => panic!("injected failure"),
        }
    }
}

fn runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(WORKERS)
        .default_capacity(CAPACITY)
        .quiet_panics(true)
        .build()
        .expect("runtime builds")
}

/// A supervisor spec with `n` [`Idle`] children `c0`…, counting their
/// starts in `starts`.
fn wide(strategy: Strategy, n: usize, starts: &Arc<AtomicUsize>) -> SupervisorSpec {
    let mut spec = SupervisorSpec::new("wide").strategy(strategy).intensity(u32::MAX, Duration::from_secs(1));
    for i in 0..n {
        let starts = starts.clone();
        spec = spec.child(ChildSpec::new(format!("c{i}"), move || Idle { starts: starts.clone() }));
    }
    spec
}

fn start(c: &mut Criterion) {
    let mut group = c.benchmark_group("supervise_start");
    group.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("cellrt", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let rt = runtime();
                    let starts = Arc::new(AtomicUsize::new(0));
                    let spec = wide(Strategy::OneForOne, n, &starts);
                    let began = Instant::now();
                    let sup = rt.start_supervisor(spec, WAIT).expect("supervisor starts");
                    total += began.elapsed();
                    assert_eq!(starts.load(Relaxed), n);
                    drop(sup);
                    drop(rt);
                }
                total
            });
        });
    }
    group.finish();
}

fn restart_all(c: &mut Criterion) {
    let mut group = c.benchmark_group("supervise_restart_all");
    group.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        group.throughput(Throughput::Elements(n as u64));
        // Started on first use, so that a filtered-out size starts nothing.
        let mut fixture = None;
        group.bench_with_input(BenchmarkId::new("cellrt", n), &n, |b, &n| {
            let (_rt, _sup, first, starts) = fixture.get_or_insert_with(|| {
                let rt = runtime();
                let starts = Arc::new(AtomicUsize::new(0));
                let spec = wide(Strategy::OneForAll, n, &starts);
                let sup = rt.start_supervisor(spec, WAIT).expect("supervisor starts");
                let first = sup.child::<Msg>("c0").expect("first child");
                (rt, sup, first, starts)
            });
            b.iter_custom(|iters| {
                let began = Instant::now();
                for _ in 0..iters {
                    let target = starts.load(Relaxed) + n;
                    first.send(Msg::Fail).expect("child accepts");
                    let deadline = Instant::now() + WAIT;
                    while starts.load(Relaxed) < target {
                        assert!(Instant::now() < deadline, "group restart of {n} did not complete");
                        thread::sleep(Duration::from_micros(100));
                    }
                }
                began.elapsed()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = start, restart_all
}

fn main() {
    common::run(benches);
}
