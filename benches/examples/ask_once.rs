//! Asks from a plain thread, for instruction counts: the thread asks one cell
//! (`Addr::ask`, then `Pending::wait`) N times, the `ask_wait` round trip of
//! `benches/ping_pong.rs`. Meant to run under `valgrind --tool=callgrind`,
//! whose counts (unlike times) repeat from run to run, to compare two builds
//! by the instructions an ask costs (see `docs/benchmarks.md`).
//!
//! ```text
//! cargo build -p cellrt-benches --release --example ask_once
//! valgrind --tool=callgrind --toggle-collect='*ask_once*round_trip*' \
//!     target/release/examples/ask_once defaults 100000
//! valgrind --tool=callgrind --toggle-collect='*ask_once*slot_round*' \
//!     target/release/examples/ask_once slot 100000
//! ```
//!
//! Settings (first argument):
//!
//! - `defaults`: two worker threads, capacity 32, as `ask_wait` (w2). The
//!   asking thread's count includes its spins while the answer is on its way
//!   (under callgrind one thread runs at a time), so it varies a little
//!   from run to run; the worker's side is in the whole-run count.
//! - `slot`: the reply slot alone, on one thread: `Reply::pair`, `send`,
//!   `wait`, the part of an ask that `ask.rs` owns, with no waiting at all.
//!
//! Second argument: how many asks (100,000 by default).

use std::hint::black_box;
use std::process::exit;
use std::time::{Duration, Instant};

use cellrt::{Addr, Reply, Runtime};

#[path = "../benches/common/echo.rs"]
mod echo;
use echo::Echo;

/// How long any one answer may take before the run is abandoned.
const WAIT: Duration = Duration::from_secs(60);

/// One ask and its answer, not inlined so that callgrind can count it alone.
#[inline(never)]
fn round_trip(echo: &Addr<(u64, Reply<u64>)>, n: u64) -> u64 {
    echo.ask(|reply| (n, reply)).expect("ask").wait(WAIT).expect("answer")
}

/// One reply slot, answered and taken on this thread.
#[inline(never)]
fn slot_round(n: u64) -> u64 {
    let (reply, pending) = Reply::pair(None);
    reply.send(n + 1).expect("send");
    pending.wait(WAIT).expect("answer")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let setting = args.next().unwrap_or_else(|| "defaults".to_owned());
    let asks: u64 = match args.next().map(|arg| arg.parse()) {
        None => 100_000,
        Some(Ok(asks)) => asks,
        Some(Err(err)) => {
            eprintln!("the count of asks must be a whole number: {err}");
            exit(2);
        }
    };
    let mut n = 0_u64;
    let started = Instant::now();
    match setting.as_str() {
        "defaults" => {
            let rt =
                Runtime::builder().worker_threads(2).default_capacity(32).build().expect("runtime builds");
            let echo = rt.spawn(Echo).expect("spawn");
            for _ in 0..asks {
                n = round_trip(&echo, black_box(n));
            }
            rt.shutdown(WAIT);
        }
        "slot" => {
            for _ in 0..asks {
                n = slot_round(black_box(n));
            }
        }
        other => {
            eprintln!("unknown setting {other:?}; settings: defaults, slot");
            exit(2);
        }
    }
    assert_eq!(n, asks, "every ask was answered with its number plus one");
    let elapsed = started.elapsed();
    println!("{setting}: {asks} asks, {:.0} ns each", elapsed.as_nanos() as f64 / asks as f64);
}
