//! Asking cells from tokio tasks: 10,000 tasks each ask a pool of cells,
//! beside the same asks from plain threads and beside a plain tokio
//! `mpsc` + task baseline, in one run.
//!
//! ```text
//! cargo run -p cellrt-benches --release --example tokio_ask
//! cargo run -p cellrt-benches --release --example tokio_ask -- 10000 10 4 32
//! ```
//!
//! Arguments: tasks (default 10,000), asks per task (10), cells in the pool
//! (4) and their mailbox capacity (32). Every workload makes the same number
//! of asks, each to pool member `(task + i) % cells`, and records each
//! ask's latency (from the call to the answer) in an HDR histogram; it
//! prints asks per second (all asks over the wall time from the first call
//! to the last answer) and the p50, p99 and maximum latency.
//!
//! - **cellrt, tokio tasks**: `Addr::ask_async` from 10,000 tasks on a
//!   2-worker multi-thread tokio runtime; the cells run on cellrt's own
//!   workers (one per core). With 10,000 tasks and 4 × 32 mailbox slots,
//!   most tasks wait for room, parked on the mailbox.
//! - **cellrt, threads**: the sync path, `Addr::ask` + `Pending::wait`,
//!   from 64 OS threads making the same number of asks in total (10,000
//!   threads are not a sync workload anyone runs).
//! - **tokio mpsc + task**: the baseline, no cellrt: each pool member is a
//!   tokio task reading a bounded `tokio::sync::mpsc` channel of the same
//!   capacity and answering over a `oneshot`; the askers are 10,000 tokio
//!   tasks on the same runtime shape.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellrt::{Addr, CellConfig, Reply, Runtime};
use hdrhistogram::Histogram;

#[path = "../benches/common/echo.rs"]
mod echo;
use echo::Echo;

/// How long an ask may take before the run is considered broken.
const PATIENCE: Duration = Duration::from_secs(60);

/// Asks made, the wall time they took, and their latencies.
type Outcome = (usize, Duration, Histogram<u64>);

struct Shape {
    tasks: usize,
    asks: usize,
    cells: usize,
    capacity: usize,
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("a number")).collect();
    let arg = |i: usize, default: usize| args.get(i).copied().unwrap_or(default);
    let shape = Shape { tasks: arg(0, 10_000), asks: arg(1, 10), cells: arg(2, 4), capacity: arg(3, 32) };
    println!(
        "{} askers x {} asks = {} asks to {} cells of capacity {}; {} cores",
        shape.tasks,
        shape.asks,
        shape.tasks * shape.asks,
        shape.cells,
        shape.capacity,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{:<28} {:>12} {:>10} {:>10} {:>10}", "workload", "asks/s", "p50 µs", "p99 µs", "max µs");
    report("cellrt, tokio tasks", cellrt_tasks(&shape));
    report("cellrt, 64 threads", cellrt_threads(&shape));
    report("tokio mpsc + task", tokio_baseline(&shape));
}

fn report(name: &str, (asks, elapsed, hist): Outcome) {
    println!(
        "{name:<28} {:>12.0} {:>10.1} {:>10.1} {:>10.1}",
        asks as f64 / elapsed.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.max() as f64 / 1000.0,
    );
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime")
}

/// The addresses of the pool's cells.
type Pool = Arc<Vec<Addr<(u64, Reply<u64>)>>>;

fn pool(runtime: &Runtime, shape: &Shape) -> Pool {
    let config = CellConfig::new().capacity(shape.capacity);
    Arc::new((0..shape.cells).map(|_| runtime.spawn_with(config.clone(), Echo).expect("spawn")).collect())
}

fn cellrt_tasks(shape: &Shape) -> Outcome {
    let runtime = Runtime::builder().build().expect("runtime");
    let cells = pool(&runtime, shape);
    let tokio = tokio_runtime();
    let started = Instant::now();
    let hist = tokio.block_on(ask_from_tasks(shape, move |to, n| {
        let answer = cells[to % cells.len()].ask_async(PATIENCE, move |reply| (n, reply));
        async move { answer.await.expect("answer") }
    }));
    let elapsed = started.elapsed();
    runtime.shutdown(PATIENCE);
    (shape.tasks * shape.asks, elapsed, hist)
}

/// Spawns `shape.tasks` tokio tasks, each making `shape.asks` asks in turn:
/// ask `i` of task `task` is `ask(task + i, i)`, whose answer must be
/// `i + 1`. Returns the latencies of all the asks.
async fn ask_from_tasks<A, F>(shape: &Shape, ask: A) -> Histogram<u64>
where
    A: Fn(usize, u64) -> F + Clone + Send + 'static,
    F: Future<Output = u64> + Send,
{
    let asks = shape.asks;
    let tasks: Vec<_> = (0..shape.tasks)
        .map(|task| {
            let ask = ask.clone();
            tokio::spawn(async move {
                let mut hist = histogram();
                for i in 0..asks {
                    let asked = Instant::now();
                    let answer = ask(task + i, i as u64).await;
                    hist.record(asked.elapsed().as_nanos() as u64).expect("in range");
                    assert_eq!(answer, i as u64 + 1);
                }
                hist
            })
        })
        .collect();
    let mut all = histogram();
    for task in tasks {
        all.add(task.await.expect("task")).expect("same bounds");
    }
    all
}

fn cellrt_threads(shape: &Shape) -> Outcome {
    const THREADS: usize = 64;
    let runtime = Runtime::builder().build().expect("runtime");
    let cells = pool(&runtime, shape);
    let per_thread = shape.tasks * shape.asks / THREADS;
    let started = Instant::now();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let cells = cells.clone();
            std::thread::spawn(move || {
                let mut hist = histogram();
                for i in 0..per_thread {
                    let cell = &cells[(t + i) % cells.len()];
                    let asked = Instant::now();
                    let pending = cell.ask(|reply| (i as u64, reply)).expect("sent");
                    let answer = pending.wait(PATIENCE).expect("answer");
                    hist.record(asked.elapsed().as_nanos() as u64).expect("in range");
                    assert_eq!(answer, i as u64 + 1);
                }
                hist
            })
        })
        .collect();
    let mut all = histogram();
    for thread in threads {
        all.add(thread.join().expect("thread")).expect("same bounds");
    }
    let elapsed = started.elapsed();
    runtime.shutdown(PATIENCE);
    (per_thread * THREADS, elapsed, all)
}

type Request = (u64, tokio::sync::oneshot::Sender<u64>);

fn tokio_baseline(shape: &Shape) -> Outcome {
    let tokio = tokio_runtime();
    let started = Instant::now();
    let hist = tokio.block_on(async {
        let servers: Vec<tokio::sync::mpsc::Sender<Request>> = (0..shape.cells)
            .map(|_| {
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Request>(shape.capacity);
                tokio::spawn(async move {
                    while let Some((n, reply)) = rx.recv().await {
                        let _ = reply.send(n + 1);
                    }
                });
                tx
            })
            .collect();
        let servers = Arc::new(servers);
        ask_from_tasks(shape, move |to, n| {
            let servers = servers.clone();
            async move {
                let (reply, answer) = tokio::sync::oneshot::channel();
                servers[to % servers.len()].send((n, reply)).await.expect("server runs");
                answer.await.expect("answer")
            }
        })
        .await
    });
    (shape.tasks * shape.asks, started.elapsed(), hist)
}
