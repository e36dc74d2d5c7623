//! One burst of the spawn story, once, for instruction counts: spawns idle
//! cells of mailbox capacity 1024 (`u64` messages) on a 2-worker runtime
//! with its defaults, as `idle_cells` does, and waits until every `started`
//! hook ran. Meant to run under `valgrind --tool=callgrind`, whose counts
//! (unlike times) repeat from run to run, to compare the instructions one
//! `spawn_with` costs its caller (see `docs/benchmarks.md`).
//!
//! ```text
//! cargo build -p cellrt-benches --release --example spawn_once
//! valgrind --tool=callgrind --toggle-collect='spawn_once::spawn_all' \
//!     target/release/examples/spawn_once 10000
//! ```
//!
//! Arguments: the number of cells (default 10,000), and `--no-shutdown`
//! to end the process as soon as every cell started, without the
//! runtime's shutdown, so that `perf stat` or `strace -c` of the whole
//! process counts what the spawns and the first turns cost and nothing
//! of the teardown. The system allocator is used, so the counts include
//! what allocation costs.

use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Addr, Cell, CellConfig, CellError, Context, Runtime};

/// A cell that notes that it started.
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
        Ok(())
    }
}

/// The measured part: `cells` spawns, their addresses kept in `addrs`.
#[inline(never)]
fn spawn_all(
    rt: &Runtime,
    config: &CellConfig,
    seen: &Arc<AtomicUsize>,
    cells: usize,
    addrs: &mut Vec<Addr<u64>>,
) {
    for _ in 0..cells {
        addrs.push(rt.spawn_with(config.clone(), Idle { seen: seen.clone() }).expect("spawn"));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let no_shutdown = args.iter().any(|a| a == "--no-shutdown");
    let cells = match args.iter().find(|a| *a != "--no-shutdown").map(|a| a.parse::<usize>()) {
        None => 10_000,
        Some(Ok(cells)) => cells,
        Some(Err(_)) => {
            eprintln!("usage: spawn_once [cells] [--no-shutdown]");
            exit(2);
        }
    };
    let rt = Runtime::builder().worker_threads(2).build().expect("runtime builds");
    let config = CellConfig::new().capacity(1024);
    let seen = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::with_capacity(cells);
    let t0 = Instant::now();
    spawn_all(&rt, &config, &seen, cells, &mut addrs);
    let spawn_time = t0.elapsed();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.load(Relaxed) < cells {
        assert!(Instant::now() < deadline, "cells did not start in time");
        thread::sleep(Duration::from_millis(1));
    }
    println!(
        "{cells} cells spawned in {:.1} ms: {:.0} k cells/s",
        spawn_time.as_secs_f64() * 1e3,
        cells as f64 / spawn_time.as_secs_f64() / 1e3
    );
    if no_shutdown {
        exit(0);
    }
    drop(addrs);
    rt.shutdown(Duration::from_secs(10));
}
