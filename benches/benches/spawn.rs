//! Spawning: how fast cells are created, and what an idle cell costs in
//! memory.
//!
//! Timed (criterion), 50,000 idle cells of mailbox capacity 16 per
//! iteration on a fresh 2-worker runtime built outside the timed part:
//!
//! - `spawn/cellrt/returned`: until the 50,000th `spawn_with` returned.
//! - `spawn/cellrt/started`: until all 50,000 `started` hooks ran.
//! - `spawn/crossbeam/bounded(16)`: the baseline, creating 50,000
//!   `bounded::<u64>(16)` channels (only the mailbox allocation a cell
//!   needs, none of the rest).
//! - `shutdown/cellrt/graceful` and `shutdown/cellrt/drop`: tearing down a
//!   runtime holding 50,000 idle cells, with `shutdown(60 s)` (each cell
//!   drained in reverse spawn order) and by dropping it (idle cells killed).
//!
//! Throughput is counted in cells: criterion's elements/s is spawns/s.
//! Project target: at least 1,000,000 spawns/s.
//!
//! Memory (printed to stdout before the timed benches, criterion cannot
//! measure bytes): a counting global allocator wraps the system allocator
//! and keeps the number of bytes currently allocated. Bytes per idle cell =
//! (allocated after spawning 50,000 idle cells and letting them start −
//! allocated before) / 50,000, with the vector holding their addresses
//! allocated beforehand. The same is measured for 50,000 crossbeam
//! `bounded::<u64>(16)` channels, so the bytes beyond the mailbox can be
//! stated. Project target: at most 512 B per idle cell beyond the mailbox
//! slots at capacity 16.
//!
//! The allocator counts every allocation of the process (one relaxed atomic
//! add each), the timed benches included.

mod common;

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Addr, Cell, CellConfig, CellError, Context, Runtime};
use cellrt_benches::{allocated, live_by_size};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Receiver, Sender};

use common::{quiet_tracing, WAIT};

const CELLS: usize = 50_000;
const CAPACITY: usize = 16;
const WORKERS: usize = 2;

#[global_allocator]
static GLOBAL: cellrt_benches::CountingAlloc = cellrt_benches::CountingAlloc;

/// A cell that does nothing but note that it started.
struct Idle {
    started: Arc<AtomicUsize>,
}

impl Cell for Idle {
    type Message = u64;

    fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.started.fetch_add(1, Relaxed);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: u64) -> Result<(), CellError> {
        black_box(msg);
        Ok(())
    }
}

fn build_runtime() -> Runtime {
    Runtime::builder().worker_threads(WORKERS).build().expect("runtime builds")
}

fn config() -> CellConfig {
    CellConfig::new().capacity(CAPACITY)
}

fn spawn_all(rt: &Runtime, started: &Arc<AtomicUsize>, addrs: &mut Vec<Addr<u64>>) {
    for _ in 0..CELLS {
        addrs.push(rt.spawn_with(config(), Idle { started: started.clone() }).expect("spawn"));
    }
}

fn wait_started(started: &AtomicUsize, count: usize) {
    let deadline = Instant::now() + WAIT;
    while started.load(Relaxed) < count {
        assert!(Instant::now() < deadline, "cells did not start in time");
        thread::yield_now();
    }
}

/// Lets the workers finish what they were doing and park.
fn settle() {
    thread::sleep(Duration::from_millis(100));
}

/// Prints bytes per idle cell and per bare crossbeam channel.
fn report_memory() {
    // cellrt: a runtime with one cell already running, so lazily created
    // runtime state is in the "before" figure.
    let rt = build_runtime();
    let started = Arc::new(AtomicUsize::new(0));
    let first = rt.spawn_with(config(), Idle { started: started.clone() }).expect("spawn");
    wait_started(&started, 1);
    let mut addrs: Vec<Addr<u64>> = Vec::with_capacity(CELLS);
    settle();
    let (before, sizes_before) = (allocated(), live_by_size());
    spawn_all(&rt, &started, &mut addrs);
    wait_started(&started, CELLS + 1);
    settle();
    let (after, sizes_after) = (allocated(), live_by_size());
    let per_cell = (after - before) as f64 / CELLS as f64;
    // Allocation sizes that grew by at least one live block per 10 cells.
    let composition: Vec<String> = sizes_before
        .iter()
        .zip(&sizes_after)
        .enumerate()
        .filter(|(_, (b, a))| (*a - *b) * 10 >= CELLS as isize)
        .map(|(size, (b, a))| format!("{:.2} x {size} B", (a - b) as f64 / CELLS as f64))
        .collect();
    drop((first, addrs));
    let report = rt.shutdown(WAIT);
    assert_eq!(report.cells_stopped, CELLS + 1);

    // Baseline: bare channels of the same capacity and message type.
    let mut channels: Vec<(Sender<u64>, Receiver<u64>)> = Vec::with_capacity(CELLS);
    let before = allocated();
    channels.extend((0..CELLS).map(|_| bounded(CAPACITY)));
    let after = allocated();
    let per_channel = (after - before) as f64 / CELLS as f64;
    drop(channels);

    // A slot of crossbeam's array flavour: a stamp (usize) and the message.
    let slot_bytes = (CAPACITY * (std::mem::size_of::<usize>() + std::mem::size_of::<u64>())) as f64;
    println!("memory/idle cell, capacity {CAPACITY}, u64 messages, {CELLS} cells:");
    println!("  cellrt idle cell                 {per_cell:8.1} B");
    println!("  crossbeam bounded({CAPACITY}) channel   {per_channel:8.1} B");
    println!("  of which mailbox slots           {slot_bytes:8.1} B");
    println!("  cell beyond the whole channel    {:8.1} B", per_cell - per_channel);
    println!("  cell beyond the mailbox slots    {:8.1} B (target <= 512 B)", per_cell - slot_bytes);
    println!("  live blocks per cell, by size:   {}", composition.join(", "));
}

/// Times `iters` rounds of spawning 50,000 cells on a fresh runtime; `until_started`
/// extends each round until every `started` hook ran.
fn time_spawns(iters: u64, until_started: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let rt = build_runtime();
        let started = Arc::new(AtomicUsize::new(0));
        let mut addrs = Vec::with_capacity(CELLS);
        let t0 = Instant::now();
        spawn_all(&rt, &started, &mut addrs);
        if until_started {
            wait_started(&started, CELLS);
        }
        total += t0.elapsed();
        wait_started(&started, CELLS);
        drop(addrs);
        drop(rt);
    }
    total
}

/// Times `iters` teardowns of a runtime holding 50,000 started idle cells.
fn time_teardowns(iters: u64, graceful: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let rt = build_runtime();
        let started = Arc::new(AtomicUsize::new(0));
        let mut addrs = Vec::with_capacity(CELLS);
        spawn_all(&rt, &started, &mut addrs);
        wait_started(&started, CELLS);
        let t0 = Instant::now();
        if graceful {
            let report = rt.shutdown(WAIT);
            assert_eq!(report.cells_stopped, CELLS);
        } else {
            drop(rt);
        }
        total += t0.elapsed();
        drop(addrs);
    }
    total
}

fn spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn");
    group.throughput(Throughput::Elements(CELLS as u64));
    group.sampling_mode(SamplingMode::Flat);
    group
        .bench_function(BenchmarkId::new("cellrt", "returned"), |b| b.iter_custom(|n| time_spawns(n, false)));
    group.bench_function(BenchmarkId::new("cellrt", "started"), |b| b.iter_custom(|n| time_spawns(n, true)));
    group.bench_function(BenchmarkId::new("crossbeam", format!("bounded({CAPACITY})")), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut channels: Vec<(Sender<u64>, Receiver<u64>)> = Vec::with_capacity(CELLS);
                let t0 = Instant::now();
                channels.extend((0..CELLS).map(|_| bounded(CAPACITY)));
                total += t0.elapsed();
                drop(black_box(channels));
            }
            total
        });
    });
    group.finish();

    let mut group = c.benchmark_group("shutdown");
    group.throughput(Throughput::Elements(CELLS as u64));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new("cellrt", "graceful"), |b| {
        b.iter_custom(|n| time_teardowns(n, true))
    });
    group.bench_function(BenchmarkId::new("cellrt", "drop"), |b| b.iter_custom(|n| time_teardowns(n, false)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = spawn
}

fn main() {
    quiet_tracing();
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
