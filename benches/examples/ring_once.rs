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

use cellrt::{Addr, Cell, CellError, Context, Reply, Runtime};

const CELLS: usize = 1_000;

enum RingMsg {
    /// Tells a cell which cell follows it.
    Next(Addr<RingMsg>),
    /// The token: hops left, and where to report when none are.
    Token(u64, Reply<u64>),
}

#[derive(Default)]
struct Member {
    next: Option<Addr<RingMsg>>,
}

impl Cell for Member {
    type Message = RingMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: RingMsg) -> Result<(), CellError> {
        match msg {
            RingMsg::Next(addr) => self.next = Some(addr),
            RingMsg::Token(0, done) => {
                let _ = done.send(0);
            }
            RingMsg::Token(left, done) => {
                let next = self.next.as_ref().ok_or_else(|| CellError::msg("ring not closed"))?;
                next.try_send(RingMsg::Token(left - 1, done)).map_err(|_| CellError::msg("next full"))?;
            }
        }
        Ok(())
    }
}

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
    let members: Vec<Addr<RingMsg>> =
        (0..CELLS).map(|_| rt.spawn(Member::default()).expect("spawn")).collect();
    for (i, member) in members.iter().enumerate() {
        member.send(RingMsg::Next(members[(i + 1) % CELLS].clone())).expect("send");
    }
    let start = Instant::now();
    if hops > 0 {
        let left = members[0]
            .ask(|done| RingMsg::Token(hops, done))
            .expect("ask")
            .wait(Duration::from_secs(600))
            .expect("answer");
        assert_eq!(left, 0);
    }
    let took = start.elapsed();
    let per_hop = if hops > 0 { took.as_nanos() as f64 / hops as f64 } else { 0.0 };
    println!("{hops} hops in {took:?}, {per_hop:.1} ns/hop");
    drop(members);
    rt.shutdown(Duration::from_secs(60));
}
