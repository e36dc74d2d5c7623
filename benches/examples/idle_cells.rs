//! What an idle cell costs: spawns many idle cells of one mailbox capacity
//! in a fresh process and prints the bytes each one holds, counted two ways,
//! and how fast they were spawned.
//!
//! ```text
//! cargo run -p cellrt-benches --release --example idle_cells -- 32
//! cargo run -p cellrt-benches --release --example idle_cells -- 1024 100000 --touched
//! ```
//!
//! Arguments: the mailbox capacity, the number of cells (default 100,000),
//! and `--touched` to send each cell one message (handled before measuring),
//! so that what a mailbox keeps after its first message is counted too.
//!
//! - **allocated bytes per cell**: a global allocator wrapping `System`
//!   keeps the bytes currently allocated and the live blocks by size;
//!   (allocated after the cells started and the workers settled −
//!   allocated before) / cells. The runtime already runs one cell before,
//!   and the vector of addresses is allocated beforehand, so neither counts.
//! - **RSS per cell**: the growth of `VmRSS` (`/proc/self/status`) over the
//!   same span, divided the same way. It includes the allocator's own
//!   overhead and the pages it keeps; a fresh process per capacity keeps
//!   one run's pages out of the next.
//! - **spawn rate**: cells per second until the last `spawn_with` returned
//!   (with the counting allocator installed, which adds two relaxed atomic
//!   adds to every allocation).
//! - **analysis window**: the time one analysis window takes with the cells
//!   idle (`Runtime::analyse_window_now`, a hidden hook): the fastest and the
//!   slowest of 20 windows run back to back once the cells have settled.
//!
//! Cells handle `u64` messages and have no state beyond a shared counter
//! (an `Arc`, 8 bytes), so what is printed is what the runtime costs.

use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Addr, Cell, CellConfig, CellError, Context, Runtime};
use cellrt_benches::{allocated, live_by_size};

#[global_allocator]
static GLOBAL: cellrt_benches::CountingAlloc = cellrt_benches::CountingAlloc;

/// A cell that notes that it started and counts what it handles.
struct Idle {
    seen: Arc<AtomicUsize>,
}

impl Cell for Idle {
    type Message = u64;

    fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.seen.fetch_add(1, Relaxed);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u64) -> Result<(), CellError> {
        self.seen.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// Resident set size of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

fn wait_for(seen: &AtomicUsize, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.load(Relaxed) < count {
        assert!(Instant::now() < deadline, "cells did not start or handle in time");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Lets the workers finish what they were doing and park.
fn settle() {
    thread::sleep(Duration::from_millis(200));
}

fn usage() -> ! {
    eprintln!("usage: idle_cells <capacity> [cells] [--touched]");
    exit(2);
}

fn main() {
    let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::default());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let touched = args.iter().any(|a| a == "--touched");
    let mut numbers = args.iter().filter(|a| *a != "--touched").map(|a| a.parse::<usize>());
    let capacity = match numbers.next() {
        Some(Ok(capacity)) => capacity,
        _ => usage(),
    };
    let cells = match numbers.next() {
        None => 100_000,
        Some(Ok(cells)) => cells,
        Some(Err(_)) => usage(),
    };

    let rt = Runtime::builder().worker_threads(2).build().expect("runtime builds");
    let config = CellConfig::new().capacity(capacity);
    let seen = Arc::new(AtomicUsize::new(0));
    let first = rt.spawn_with(config.clone(), Idle { seen: seen.clone() }).expect("spawn");
    if touched {
        first.try_send(0).expect("room for one message");
        wait_for(&seen, 2);
    } else {
        wait_for(&seen, 1);
    }
    let mut addrs: Vec<Addr<u64>> = Vec::with_capacity(cells);
    settle();
    let sizes_before: Vec<isize> = live_by_size();
    let (allocated_before, rss_before) = (allocated(), rss());

    let t0 = Instant::now();
    for _ in 0..cells {
        addrs.push(rt.spawn_with(config.clone(), Idle { seen: seen.clone() }).expect("spawn"));
    }
    let spawn_time = t0.elapsed();
    wait_for(&seen, cells + if touched { 2 } else { 1 });
    if touched {
        for addr in &addrs {
            addr.try_send(1).expect("room for one message");
        }
        wait_for(&seen, 2 * cells + 2);
    }
    settle();
    let (allocated_after, rss_after) = (allocated(), rss());
    let sizes_after: Vec<isize> = live_by_size();

    let per_cell = (allocated_after - allocated_before) as f64 / cells as f64;
    let rss_per_cell = (rss_after as f64 - rss_before as f64) / cells as f64;
    // Allocation sizes that grew by at least one live block per 10 cells.
    let composition: Vec<String> = sizes_before
        .iter()
        .zip(&sizes_after)
        .enumerate()
        .filter(|(_, (b, a))| (*a - *b) * 10 >= cells as isize)
        .map(|(size, (b, a))| format!("{:.2} x {size} B", (a - b) as f64 / cells as f64))
        .collect();
    println!(
        "capacity {capacity}, {cells} cells{}: allocated {per_cell:.1} B/cell, RSS {rss_per_cell:.1} B/cell, \
         spawn {:.0} k cells/s\n  live blocks per cell, by size: {}",
        if touched { ", one message handled each" } else { ", idle" },
        cells as f64 / spawn_time.as_secs_f64() / 1e3,
        composition.join(", "),
    );
    let windows: Vec<Duration> = (0..20)
        .map(|_| {
            let t = Instant::now();
            rt.analyse_window_now();
            t.elapsed()
        })
        .collect();
    let (fastest, slowest) =
        (windows.iter().min().expect("20 windows"), windows.iter().max().expect("20 windows"));
    println!("  analysis window with {cells} idle cells: {fastest:?} (slowest of 20: {slowest:?})");
    drop((first, addrs));
    rt.shutdown(Duration::from_secs(120));
}
