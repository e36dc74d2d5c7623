//! Recomposition: what changing a cell's topology under traffic costs.
//!
//! - `recompose_apply`: the time to apply a split (a pool of 2) and its
//!   merge, and an isolation and its retirement, to a counter cell that a
//!   producer thread keeps sending to (`try_send`, spinning when full).
//!   One iteration is one apply plus its inverse, by hand (`propose`,
//!   `approve`, `revert`); the revert of an isolation waits (yielding) for
//!   the cell to hand the kind's queued messages over.
//! - `recompose_stream`: the producer's throughput over 200,000 messages
//!   with no change (`steady`), and with a split and a merge applied every
//!   millisecond meanwhile (`changing`): the dip around the applies.
//! - `counting_kind_evidence`: the counting story's `send` round (1,000,000
//!   messages, capacity 32) with per-kind evidence on (the default) and off
//!   (`ObservationConfig::kind_evidence(false)`), in the same run. Target:
//!   on costs at most 5 %.
//! - `recompose_window`: the engine's part of one analysis window with
//!   10,000 managed cells (`Recomposer::analyse_window_now`, a hidden hook).

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{
    Action, Addr, Cell, CellConfig, CellError, Context, Expected, Metric, Mode, ObservationConfig,
    Recomposable, RecomposeConfig, RecomposeError, Recomposer, Runtime, SendError, SplitBy,
};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

use common::{Counter, Msg, WAIT};

/// A message of two kinds, for isolation.
enum Two {
    Even(u64),
    Odd(u64),
}

#[derive(Default)]
struct Sorter(u64);

impl Cell for Sorter {
    type Message = Two;

    fn message_kind(msg: &Two) -> &'static str {
        match msg {
            Two::Even(_) => "even",
            Two::Odd(_) => "odd",
        }
    }

    fn handle(&mut self, _: &mut Context<Self>, msg: Two) -> Result<(), CellError> {
        match msg {
            Two::Even(n) | Two::Odd(n) => self.0 = self.0.wrapping_add(n),
        }
        Ok(())
    }
}

fn observed(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .default_capacity(1024)
        .observation(ObservationConfig::default().window(Duration::from_secs(3600)).sample_every(1))
        .build()
        .expect("runtime builds")
}

/// Keeps sending to `addr` until `stop`; counts what was accepted.
fn stream<M: Send + 'static>(
    addr: Addr<M>,
    make: fn(u64) -> M,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut n = 0_u64;
        while !stop.load(Relaxed) {
            let mut msg = make(n);
            loop {
                match addr.try_send(msg) {
                    Ok(()) => break,
                    Err(SendError::Full(back)) => {
                        if stop.load(Relaxed) {
                            return;
                        }
                        msg = back;
                        std::hint::spin_loop();
                    }
                    Err(err) => panic!("the stream was refused: {err}"),
                }
            }
            n += 1;
            sent.fetch_add(1, Relaxed);
        }
    })
}

/// One plan of `actions`, approved, then reverted: the time of each.
fn apply_and_revert(engine: &Recomposer, actions: Vec<Action>) -> (Duration, Duration) {
    let plan = engine.propose(actions, Expected::Hold { metric: Metric::QueueDelay }).expect("propose");
    let start = Instant::now();
    engine.approve(plan).expect("approve");
    let applied = start.elapsed();
    // An isolation is complete once the cell has handed the kind's queued
    // messages over; until then its revert is refused as in progress.
    let start = Instant::now();
    loop {
        match engine.revert(plan) {
            Ok(()) => break,
            Err(RecomposeError::InProgress { .. }) => thread::yield_now(),
            Err(err) => panic!("revert: {err}"),
        }
    }
    (applied, start.elapsed())
}

fn recompose_apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompose_apply");
    group.sampling_mode(SamplingMode::Flat);
    let rt = observed(2);
    let engine = Recomposer::new(&rt, RecomposeConfig::default().mode(Mode::Off)).expect("engine");

    let counter = rt.spawn_with(CellConfig::named("counter"), Counter::default()).expect("spawn");
    engine.manage(&counter, Recomposable::new(Counter::default).stateless()).expect("manage");
    let split = vec![Action::Split { cell: counter.path().clone(), into: 2, by: SplitBy::Stateless }];
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let producer = stream(counter.clone(), Msg::Add, stop.clone(), sent.clone());
    group.bench_function("split_then_merge", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (apply, revert) = apply_and_revert(&engine, split.clone());
                total += apply + revert;
            }
            total
        });
    });
    stop.store(true, Relaxed);
    producer.join().expect("producer");

    let sorter = rt.spawn_with(CellConfig::named("sorter"), Sorter::default()).expect("spawn");
    engine.manage(&sorter, Recomposable::new(Sorter::default)).expect("manage");
    sorter.send(Two::Even(0)).expect("send");
    sorter.send(Two::Odd(1)).expect("send");
    while rt.snapshot().cells.iter().all(|c| c.metrics.as_ref().map_or(0, |m| m.handled) < 2) {
        thread::yield_now();
    }
    let isolate = vec![Action::Isolate { cell: sorter.path().clone(), kind: "odd".into() }];
    let (stop, sent) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
    let make = |n: u64| if n & 1 == 0 { Two::Even(n) } else { Two::Odd(n) };
    let producer = stream(sorter.clone(), make, stop.clone(), sent.clone());
    group.bench_function("isolate_then_retire", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let (apply, revert) = apply_and_revert(&engine, isolate.clone());
                total += apply + revert;
            }
            total
        });
    });
    stop.store(true, Relaxed);
    producer.join().expect("producer");
    group.finish();
    rt.shutdown(WAIT);
}

const STREAM: u64 = 200_000;

fn recompose_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompose_stream");
    group.throughput(Throughput::Elements(STREAM));
    group.sampling_mode(SamplingMode::Flat);
    let rt = observed(2);
    let engine = Arc::new(Recomposer::new(&rt, RecomposeConfig::default().mode(Mode::Off)).expect("engine"));
    let counter = rt.spawn_with(CellConfig::named("counter"), Counter::default()).expect("spawn");
    engine.manage(&counter, Recomposable::new(Counter::default).stateless()).expect("manage");
    let split = vec![Action::Split { cell: counter.path().clone(), into: 2, by: SplitBy::Stateless }];
    for changing in [false, true] {
        let name = if changing { "changing" } else { "steady" };
        group.bench_function(BenchmarkId::new(name, STREAM), |b| {
            b.iter(|| {
                let stop = Arc::new(AtomicBool::new(false));
                let changer = changing.then(|| {
                    let (engine, split, stop) = (engine.clone(), split.clone(), stop.clone());
                    thread::spawn(move || {
                        while !stop.load(Relaxed) {
                            let _ = apply_and_revert(&engine, split.clone());
                            thread::sleep(Duration::from_millis(1));
                        }
                    })
                });
                for n in 0..STREAM {
                    counter.send(Msg::Add(n)).expect("send");
                }
                stop.store(true, Relaxed);
                if let Some(changer) = changer {
                    changer.join().expect("changer");
                }
                black_box(&counter);
            });
        });
    }
    group.finish();
    rt.shutdown(WAIT);
}

const MESSAGES: u64 = 1_000_000;

fn counting_kind_evidence(c: &mut Criterion) {
    let mut group = c.benchmark_group("counting_kind_evidence");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sampling_mode(SamplingMode::Flat);
    for workers in [1, 2] {
        for (name, evidence) in [("off", false), ("on", true)] {
            let rt = Runtime::builder()
                .worker_threads(workers)
                .default_capacity(32)
                .observation(ObservationConfig::default().kind_evidence(evidence))
                .build()
                .expect("runtime builds");
            let addr = rt.spawn(Counter::default()).expect("spawn");
            group.bench_function(BenchmarkId::new(format!("{name}/w{workers}"), 32), |b| {
                b.iter(|| {
                    for n in 0..MESSAGES {
                        addr.send(Msg::Add(n)).expect("send");
                    }
                    let (count, _) = addr.ask(Msg::Take).expect("ask").wait(WAIT).expect("answer");
                    assert_eq!(count, MESSAGES);
                });
            });
            rt.shutdown(WAIT);
        }
    }
    group.finish();
}

const CELLS: usize = 10_000;

fn recompose_window(c: &mut Criterion) {
    let mut group = c.benchmark_group("recompose_window");
    group.sampling_mode(SamplingMode::Flat);
    let rt = Runtime::builder()
        .worker_threads(2)
        .observation(ObservationConfig::default().window(Duration::from_secs(3600)))
        .build()
        .expect("runtime builds");
    let engine = Recomposer::new(&rt, RecomposeConfig::default()).expect("engine");
    let mut cells = Vec::with_capacity(CELLS);
    for n in 0..CELLS {
        let addr = rt.spawn_with(CellConfig::named(format!("c{n}")), Counter::default()).expect("spawn");
        engine.manage(&addr, Recomposable::new(Counter::default)).expect("manage");
        addr.send(Msg::Add(1)).expect("send");
        cells.push(addr);
    }
    group.throughput(Throughput::Elements(CELLS as u64));
    group.bench_function(BenchmarkId::new("engine", CELLS), |b| b.iter(|| engine.analyse_window_now()));
    group.finish();
    drop(cells);
    rt.shutdown(WAIT);
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = recompose_apply, recompose_stream, counting_kind_evidence, recompose_window
}

fn main() {
    common::run(benches);
}
