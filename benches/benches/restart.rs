//! Restart: what a supervised cell's failure costs until it answers again.
//!
//! - `restart/latency`: a plain thread sends a message whose handler panics
//!   to a supervised cell (one-for-one, no backoff, quiet panics, an
//!   intensity the supervisor never exceeds), then asks the same address;
//!   one iteration lasts until the answer arrives. The answer comes from
//!   the restarted incarnation (asserted: it has handled one request), so
//!   the time covers the panic being caught, the exit reaching the
//!   supervisor, the restart in place and the queued ask being handled.
//!   Baseline: a plain thread receiving from a crossbeam channel and
//!   running the same handler under `std::panic::catch_unwind`, replacing
//!   its state after a panic; the request is answered over a second
//!   channel. Same quiet panic hook, same two messages per iteration.
//! - `restart/storm`: 1,000 children of a pool supervisor each get a
//!   panicking message, then an ask; one iteration lasts until all 1,000
//!   asks are answered by restarted incarnations.
//!
//! Criterion reports means. Percentiles (criterion cannot give them) come
//! from a second pass printed to stdout after the criterion groups:
//! 10,000 timed iterations after 1,000 of warm-up for each latency case,
//! recorded in an HDR histogram, and 30 storms after 3 of warm-up. Under
//! `cargo test --benches` that pass runs a handful of iterations only, and
//! under `--profile-time` not at all. Its diagnostic rows time the same
//! restart with an asker that polls (`Pending::try_take`, `try_recv`)
//! instead of sleeping until the answer, so the asker's wake-up can be told
//! apart from the restart itself; the ask of a cell that does not fail;
//! and, for the storm, 1,000 panics caught on one thread with nothing else
//! (the unwinding alone).
//!
//! Project target: restart latency p99 at most 10 µs on 2 cores.

mod common;
#[path = "common/fragile.rs"]
mod fragile;

use std::cell::Cell as StdCell;
use std::hint::black_box;
use std::panic::{self, catch_unwind, AssertUnwindSafe};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Addr, ChildSpec, Runtime, Supervisor, SupervisorSpec};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Receiver, Sender};
use hdrhistogram::Histogram;

use common::WAIT;
use fragile::{flags, supervised_cell, Fragile, Msg};

/// Children failing together in one storm.
const STORM_CHILDREN: usize = 1_000;
/// Mailbox capacity of every cell (each holds at most two messages here).
const CAPACITY: usize = 32;
/// Timed and warm-up iterations per latency case in the percentile pass.
const LATENCY_ITERATIONS: usize = 10_000;
const LATENCY_WARM_UP: usize = 1_000;
/// Timed and warm-up storms per case in the percentile pass.
const STORMS: usize = 30;
const STORM_WARM_UP: usize = 3;

thread_local! {
    /// Set on the baseline's server thread: its panics are not printed.
    static QUIET_THREAD: StdCell<bool> = const { StdCell::new(false) };
}

/// Chains a panic hook that stays silent on the baseline's server thread,
/// as cellrt's `quiet_panics(true)` does for cell code. Installed before
/// the first runtime is built, so cellrt's own hook chains onto it.
fn quiet_baseline_panics() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !QUIET_THREAD.with(StdCell::get) {
            previous(info);
        }
    }));
}

/// A runtime with `workers` threads whose cell panics are not printed.
fn quiet_runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(workers)
        .default_capacity(CAPACITY)
        .quiet_panics(true)
        .build()
        .expect("runtime builds")
}

/// One restart: fail, then ask; returns once the restarted cell answered.
fn fail_then_ask(addr: &Addr<Msg>) {
    addr.send(Msg::Fail).map_err(|_| "send").expect("send");
    let handled = addr.ask(Msg::Get).map_err(|_| "ask").expect("ask").wait(WAIT).expect("answer");
    assert_eq!(handled, 1, "answered by a restarted incarnation");
}

/// [`fail_then_ask`], but the asking thread polls `Pending::try_take`
/// instead of waiting: it never sleeps, so the time is the runtime's path
/// alone, without the asker's wake-up (a diagnostic).
fn fail_then_poll(addr: &Addr<Msg>) {
    addr.send(Msg::Fail).map_err(|_| "send").expect("send");
    let mut pending = addr.ask(Msg::Get).map_err(|_| "ask").expect("ask");
    let handled = loop {
        match pending.try_take().expect("answer") {
            Some(handled) => break handled,
            None => std::hint::spin_loop(),
        }
    };
    assert_eq!(handled, 1, "answered by a restarted incarnation");
}

/// One ask on a cell that does not fail (the reference round trip).
fn ask_only(addr: &Addr<Msg>) {
    let handled = addr.ask(Msg::Get).map_err(|_| "ask").expect("ask").wait(WAIT).expect("answer");
    black_box(handled);
}

/// Requests of the baseline's server thread: the same shape as [`Msg`].
enum RawMsg {
    Fail,
    Get,
}

/// The baseline: a server thread running [`Fragile`]'s handler under
/// `catch_unwind`, starting from a fresh state after each panic.
struct RawServer {
    requests: Sender<RawMsg>,
    answers: Receiver<u64>,
    thread: thread::JoinHandle<()>,
}

impl RawServer {
    fn start() -> Self {
        let (requests, rx) = bounded::<RawMsg>(CAPACITY);
        let (tx, answers) = bounded::<u64>(CAPACITY);
        let thread = thread::spawn(move || {
            QUIET_THREAD.with(|q| q.set(true));
            let mut state = Fragile::default();
            for msg in rx {
                let handled = catch_unwind(AssertUnwindSafe(|| match msg {
                    RawMsg::Fail => panic!("injected failure"),
                    RawMsg::Get => tx.send(state.next()).is_ok(),
                }));
                match handled {
                    Ok(true) => {}
                    Ok(false) => break,
                    // The restart: a new state.
                    Err(_) => state = Fragile::default(),
                }
            }
        });
        RawServer { requests, answers, thread }
    }

    fn fail_then_ask(&self) {
        self.requests.send(RawMsg::Fail).expect("send");
        self.requests.send(RawMsg::Get).expect("send");
        let handled = self.answers.recv().expect("answer");
        assert_eq!(handled, 1, "answered by a fresh state");
    }

    /// [`fail_then_ask`](RawServer::fail_then_ask) with a polling
    /// receiver (`try_recv`), as [`fail_then_poll`].
    fn fail_then_poll(&self) {
        self.requests.send(RawMsg::Fail).expect("send");
        self.requests.send(RawMsg::Get).expect("send");
        let handled = loop {
            match self.answers.try_recv() {
                Ok(handled) => break handled,
                Err(_) => std::hint::spin_loop(),
            }
        };
        assert_eq!(handled, 1, "answered by a fresh state");
    }

    fn stop(self) {
        drop(self.requests);
        self.thread.join().expect("server thread");
    }
}

fn latency(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart/latency");
    group.throughput(Throughput::Elements(1));
    for workers in [1, 2] {
        let rt = quiet_runtime(workers);
        let (_sup, addr) = supervised_cell(&rt, WAIT);
        group.bench_function(BenchmarkId::new("cellrt", format!("w{workers}")), |b| {
            b.iter(|| fail_then_ask(&addr));
        });
        rt.shutdown(WAIT);
    }
    let server = RawServer::start();
    group.bench_function(BenchmarkId::new("catch_unwind", "thread"), |b| b.iter(|| server.fail_then_ask()));
    server.stop();
    group.finish();
}

/// A pool supervisor with [`STORM_CHILDREN`] [`Fragile`] children.
fn storm_pool(rt: &Runtime) -> (Supervisor, Vec<Addr<Msg>>) {
    let spec = flags(SupervisorSpec::pool("restart-storm", ChildSpec::new("fragile", Fragile::default)));
    let sup = rt.start_supervisor(spec, WAIT).expect("supervisor starts");
    let children =
        (0..STORM_CHILDREN).map(|_| sup.start_pool_child::<Msg>(WAIT).expect("pool child starts")).collect();
    (sup, children)
}

/// One storm: every child fails, then every child is asked; returns once
/// all answered.
fn storm(children: &[Addr<Msg>]) {
    for child in children {
        child.send(Msg::Fail).map_err(|_| "send").expect("send");
    }
    let pending: Vec<_> =
        children.iter().map(|child| child.ask(Msg::Get).map_err(|_| "ask").expect("ask")).collect();
    for answer in pending {
        assert_eq!(answer.wait(WAIT).expect("answer"), 1, "answered by a restarted incarnation");
    }
}

fn storms(c: &mut Criterion) {
    let mut group = c.benchmark_group("restart/storm");
    group.throughput(Throughput::Elements(STORM_CHILDREN as u64));
    group.sampling_mode(SamplingMode::Flat);
    for workers in [1, 2] {
        let rt = quiet_runtime(workers);
        let (_sup, children) = storm_pool(&rt);
        group.bench_function(BenchmarkId::new("cellrt", format!("w{workers}")), |b| {
            b.iter(|| storm(&children));
        });
        rt.shutdown(WAIT);
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = latency, storms
}

/// Iteration counts of the percentile pass: full under `cargo bench`, a
/// smoke run under `cargo test --benches`.
struct Pass {
    iterations: usize,
    warm_up: usize,
    storms: usize,
    storm_warm_up: usize,
}

impl Pass {
    fn from_args() -> Self {
        if std::env::args().any(|arg| arg == "--bench") {
            Pass {
                iterations: LATENCY_ITERATIONS,
                warm_up: LATENCY_WARM_UP,
                storms: STORMS,
                storm_warm_up: STORM_WARM_UP,
            }
        } else {
            Pass { iterations: 20, warm_up: 2, storms: 1, storm_warm_up: 0 }
        }
    }
}

/// Times `iterations` calls of `one` after `warm_up` untimed ones, in
/// nanoseconds.
fn record(pass: &Pass, mut one: impl FnMut()) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds");
    for _ in 0..pass.warm_up {
        one();
    }
    for _ in 0..pass.iterations {
        let start = Instant::now();
        one();
        histogram.saturating_record(start.elapsed().as_nanos() as u64);
    }
    histogram
}

fn micros(ns: f64) -> String {
    format!("{:.2} µs", ns / 1_000.0)
}

fn latency_row(case: &str, h: &Histogram<u64>) {
    let q = |quantile: f64| micros(h.value_at_quantile(quantile) as f64);
    println!(
        "{case:<44} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        q(0.5),
        q(0.9),
        q(0.99),
        q(0.999),
        micros(h.max() as f64),
        micros(h.mean()),
    );
}

fn workers_label(workers: usize) -> String {
    if workers == 1 {
        "1 worker".to_owned()
    } else {
        format!("{workers} workers")
    }
}

fn millis(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1_000.0)
}

fn storm_row(case: &str, mut times: Vec<Duration>) {
    times.sort();
    let median = times[times.len() / 2];
    println!(
        "{case:<44} {:>10} {:>10} {:>10} {:>14}",
        millis(median),
        millis(times[0]),
        millis(times[times.len() - 1]),
        micros(median.as_nanos() as f64 / STORM_CHILDREN as f64),
    );
}

/// The percentile pass (see the module docs), printed as two tables.
fn percentiles() {
    let pass = Pass::from_args();
    println!();
    println!(
        "restart latency: a panicking message, then an ask; until the answer ({} iterations after {} of warm-up)",
        pass.iterations, pass.warm_up
    );
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>11} {:>10}",
        "case", "p50", "p90", "p99", "p99.9", "max", "mean"
    );
    for workers in [1, 2] {
        let rt = quiet_runtime(workers);
        let (_sup, addr) = supervised_cell(&rt, WAIT);
        let restart = record(&pass, || fail_then_ask(&addr));
        let polled = record(&pass, || fail_then_poll(&addr));
        let ask = record(&pass, || ask_only(&addr));
        let label = workers_label(workers);
        latency_row(&format!("cellrt restart, {label}"), &restart);
        latency_row(&format!("  asker polls (diagnostic), {label}"), &polled);
        latency_row(&format!("  ask without failure, {label}"), &ask);
        rt.shutdown(WAIT);
    }
    let server = RawServer::start();
    latency_row("catch_unwind thread + crossbeam (baseline)", &record(&pass, || server.fail_then_ask()));
    latency_row("  asker polls (diagnostic)", &record(&pass, || server.fail_then_poll()));
    server.stop();

    println!();
    println!(
        "restart storm: 1,000 pool children fail at once; until all answer ({} storms after {} of warm-up)",
        pass.storms, pass.storm_warm_up
    );
    println!("{:<44} {:>10} {:>10} {:>10} {:>14}", "case", "median", "min", "max", "median/child");
    for workers in [1, 2] {
        let rt = quiet_runtime(workers);
        let (_sup, children) = storm_pool(&rt);
        for _ in 0..pass.storm_warm_up {
            storm(&children);
        }
        let times = (0..pass.storms)
            .map(|_| {
                let start = Instant::now();
                storm(&children);
                start.elapsed()
            })
            .collect();
        storm_row(&format!("cellrt pool storm, {}", workers_label(workers)), times);
        rt.shutdown(WAIT);
    }
    // The floor of a storm: the same 1,000 panics caught on one thread,
    // nothing else.
    let times = (0..pass.storms)
        .map(|_| {
            QUIET_THREAD.with(|q| q.set(true));
            let start = Instant::now();
            for _ in 0..STORM_CHILDREN {
                let caught = catch_unwind(|| -> u64 { panic!("injected failure") });
                black_box(caught.is_err());
            }
            let elapsed = start.elapsed();
            QUIET_THREAD.with(|q| q.set(false));
            elapsed
        })
        .collect();
    storm_row("1,000 bare catch_unwind panics, 1 thread", times);
}

fn main() {
    quiet_baseline_panics();
    common::run(benches);
    // `--profile-time` runs one bench function for a profiler: nothing else.
    if !std::env::args().any(|arg| arg == "--profile-time") {
        percentiles();
    }
}
