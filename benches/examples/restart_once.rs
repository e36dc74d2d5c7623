//! Restarts after a panic, for instruction counts and latencies: a one-for-one
//! supervisor (no backoff, unlimited intensity) with one child that panics on
//! `Fail`; a plain thread sends `Fail`, then asks, and waits for the answer of
//! the restarted incarnation (it must answer 1) — the restart workload of
//! `benches/peers`, called the same way. Meant to run under
//! `valgrind --tool=callgrind` to see where a restart's instructions go, and
//! natively for its percentiles (see `docs/benchmarks.md`).
//!
//! ```text
//! cargo build -p cellrt-benches --release --example restart_once
//! target/release/examples/restart_once defaults 20000
//! valgrind --tool=callgrind target/release/examples/restart_once defaults 2000
//! ```
//!
//! Settings (first argument): `defaults`, `observation-off`, `unwind-floor`
//! (no runtime: a panicking closure under `std::panic::catch_unwind` with a
//! silent panic hook, the part of a restart no runtime can save). Second argument:
//! how many restarts (10,000 by default). Two worker threads, capacity 1024,
//! `quiet_panics(true)`, as in `benches/peers`.

use std::process::exit;
use std::time::{Duration, Instant};

use cellrt::{ObservationConfig, Runtime};
use hdrhistogram::Histogram;

#[path = "../benches/common/fragile.rs"]
mod fragile;

use fragile::{supervised_cell, Msg};

/// How long any one step may take before the run is abandoned.
const WAIT: Duration = Duration::from_secs(10);

fn main() {
    let mut args = std::env::args().skip(1);
    let setting = args.next().unwrap_or_else(|| "defaults".to_owned());
    if setting == "unwind-floor" {
        unwind_floor(restart_count(args.next()));
        return;
    }
    let observation = match setting.as_str() {
        "defaults" => ObservationConfig::default(),
        "observation-off" => ObservationConfig::disabled(),
        other => {
            eprintln!("unknown setting {other:?}; settings: defaults, observation-off, unwind-floor");
            exit(2);
        }
    };
    let restarts = restart_count(args.next());
    let rt = Runtime::builder()
        .worker_threads(2)
        .default_capacity(1024)
        .quiet_panics(true)
        .observation(observation)
        .build()
        .expect("runtime");
    let (sup, addr) = supervised_cell(&rt, WAIT);
    let mut latencies = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..restarts {
        let start = Instant::now();
        addr.send(Msg::Fail).expect("send");
        let handled = addr.ask(Msg::Get).expect("ask").wait(WAIT).expect("answer");
        let elapsed = start.elapsed();
        assert_eq!(handled, 1, "answered by an incarnation that was not restarted");
        latencies.record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)).expect("record");
    }
    drop(sup);
    let report = rt.shutdown(WAIT);
    // Every restart records its panic, so the report is never "clean": what
    // matters is one failure per restart and a shutdown that drained.
    let drained = !report.timed_out && report.cells_killed == 0 && report.cells_abandoned.is_empty();
    println!(
        "{setting}: {restarts} restarts, p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.1} µs, \
         {} failures recorded, drained at shutdown {drained}",
        latencies.value_at_quantile(0.5) as f64 / 1e3,
        latencies.value_at_quantile(0.9) as f64 / 1e3,
        latencies.value_at_quantile(0.99) as f64 / 1e3,
        latencies.max() as f64 / 1e3,
        report.failures,
    );
}

fn restart_count(arg: Option<String>) -> u64 {
    match arg.map(|n| n.parse()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("the count of restarts must be a positive integer");
            exit(2);
        }
    }
}

/// A panic caught by `catch_unwind` right around it, `count` times.
fn unwind_floor(count: u64) {
    std::panic::set_hook(Box::new(|_| {}));
    let mut latencies = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..count {
        let start = Instant::now();
        let caught = std::panic::catch_unwind(|| panic!("fail requested"));
        let elapsed = start.elapsed();
        assert!(caught.is_err(), "the closure panics");
        latencies.record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)).expect("record");
    }
    println!(
        "unwind-floor: {count} panics, p50 {:.2} µs, p90 {:.2} µs, p99 {:.2} µs, max {:.1} µs",
        latencies.value_at_quantile(0.5) as f64 / 1e3,
        latencies.value_at_quantile(0.9) as f64 / 1e3,
        latencies.value_at_quantile(0.99) as f64 / 1e3,
        latencies.max() as f64 / 1e3,
    );
}
