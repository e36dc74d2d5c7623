//! A million idle cells: spawn them, hold them, report what they cost.
//!
//! One process, one runtime (2 workers, other settings at their defaults):
//! spawns `--cells` idle cells (1,000,000 unless told) of mailbox capacity
//! `--capacity` (the runtime's default unless told), waits until every
//! `started` hook ran, lets the process settle, then prints the spawn rate,
//! the resident memory per cell (`VmRSS` from `/proc/self/status`, Linux
//! only, read before and after) and how long the runtime's shutdown took.
//!
//! ```text
//! cargo run -p cellrt-benches --release --example idle_million
//! cargo run -p cellrt-benches --release --example idle_million -- --cells 100000 --capacity 1024
//! ```
//!
//! Figures are in `docs/benchmarks.md` ("A million idle cells").

use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Cell, CellConfig, CellError, Context, Runtime};

/// A cell that does nothing but say it started.
struct Idle {
    started: Arc<AtomicUsize>,
}

impl Cell for Idle {
    type Message = u64;

    fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.started.fetch_add(1, Relaxed);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u64) -> Result<(), CellError> {
        Ok(())
    }
}

/// The process's resident set in bytes, where `/proc` has it.
fn rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

struct Args {
    cells: usize,
    capacity: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args { cells: 1_000_000, capacity: None };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number: usize = value.parse().map_err(|_| format!("{flag}: not a number: {value}"))?;
        match flag.as_str() {
            "--cells" => args.cells = number,
            "--capacity" => args.capacity = Some(number),
            _ => return Err(format!("unknown flag {flag} (known: --cells N, --capacity N)")),
        }
    }
    Ok(args)
}

fn main() {
    let args = parse_args().unwrap_or_else(|error| {
        eprintln!("idle_million: {error}");
        exit(2);
    });
    let runtime = Runtime::builder().worker_threads(2).build().unwrap_or_else(|error| {
        eprintln!("idle_million: cannot build the runtime: {error}");
        exit(1);
    });
    let started = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::with_capacity(args.cells);
    let config = args.capacity.map(|capacity| CellConfig::new().capacity(capacity));

    thread::sleep(Duration::from_millis(200));
    let before = rss();
    let spawning = Instant::now();
    for _ in 0..args.cells {
        let cell = Idle { started: Arc::clone(&started) };
        let spawned = match &config {
            Some(config) => runtime.spawn_with(config.clone(), cell),
            None => runtime.spawn(cell),
        };
        match spawned {
            Ok(addr) => addrs.push(addr),
            Err(error) => {
                eprintln!("idle_million: spawn {} failed: {error}", addrs.len());
                exit(1);
            }
        }
    }
    let returned = spawning.elapsed();
    while started.load(Relaxed) < args.cells {
        thread::sleep(Duration::from_millis(1));
    }
    let all_started = spawning.elapsed();
    thread::sleep(Duration::from_millis(200));
    let after = rss();

    let capacity = args.capacity.map_or_else(|| "default".to_owned(), |c| c.to_string());
    println!("cells: {} (capacity {capacity}), 2 workers", args.cells);
    let rate = |d: Duration| args.cells as f64 / d.as_secs_f64();
    println!(
        "spawn: {:.0} ms until the last spawn returned ({:.0} cells/s), {:.0} ms until every cell started ({:.0} cells/s)",
        returned.as_secs_f64() * 1e3,
        rate(returned),
        all_started.as_secs_f64() * 1e3,
        rate(all_started),
    );
    match (before, after) {
        (Some(before), Some(after)) => println!(
            "rss: {:.1} MiB before, {:.1} MiB holding the cells: {:.0} B per idle cell (the address vector included, 8 B each)",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            after.saturating_sub(before) as f64 / args.cells as f64,
        ),
        _ => println!("rss: not available on this system (/proc/self/status)"),
    }

    drop(addrs);
    let stopping = Instant::now();
    let report = runtime.shutdown(Duration::from_secs(600));
    println!("shutdown: {:.0} ms ({report:?})", stopping.elapsed().as_secs_f64() * 1e3);
}
