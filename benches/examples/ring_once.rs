//! One round of the ring story, once, for instruction counts: 1,000 cells
//! in a ring, one worker, mailboxes of capacity 1024 and the runtime's
//! other defaults; one token makes N hops (default 200,000), each cell
//! forwarding it to the next with `try_send` from its handler, then the
//! runtime shuts down. Meant to run under `valgrind --tool=callgrind`, whose
//! counts (unlike times) repeat from run to run, to see where a hop's
//! instructions go (see `docs/benchmarks.md`, "Ring").
//!
//! ```text
//! cargo build -p cellrt-benches --release --example ring_once
//! valgrind --tool=callgrind target/release/examples/ring_once 200000
//! callgrind_annotate --inclusive=yes callgrind.out.<pid>
//! ```
//!
//! The hops are counted from the difference between two runs with
//! different N (`ring_once 0` runs the same start and shutdown with no
//! token), so that spawning the ring and shutting down drop out.
//!
//! Argument: the number of hops (a non-negative integer).

use std::process::exit;
use std::time::{Duration, Instant};

use cellrt::Runtime;

#[path = "../benches/common/ring_member.rs"]
mod ring_member;

use ring_member::{pass_token, spawn_ring};

const CELLS: usize = 1_000;

fn main() {
    let hops = match std::env::args().nth(1).as_deref().map(str::parse::<u64>) {
        None => 200_000,
        Some(Ok(hops)) => hops,
        Some(Err(_)) => {
            eprintln!("usage: ring_once [HOPS]  (a non-negative integer, default 200000)");
            exit(2);
        }
    };
    let rt = Runtime::builder().worker_threads(1).default_capacity(1024).build().expect("runtime builds");
    let members = spawn_ring(&rt, CELLS);
    let start = Instant::now();
    if hops > 0 {
        pass_token(&members[0], hops, Duration::from_secs(600));
    }
    let took = start.elapsed();
    let per_hop = if hops > 0 { took.as_nanos() as f64 / hops as f64 } else { 0.0 };
    println!("{hops} hops in {took:?}, {per_hop:.1} ns/hop");
    drop(members);
    rt.shutdown(Duration::from_secs(60));
}
