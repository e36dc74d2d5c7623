//! Ping-pong: round-trip latency.
//!
//! - `ask_wait`: a plain thread asks a cell (`Addr::ask`) and blocks on the
//!   answer (`Pending::wait`), one round trip per iteration. Baseline: a
//!   server thread answering over a second crossbeam channel (two `bounded`
//!   channels between two threads, the request carries no reply handle).
//! - `cell_to_cell`: two cells pass a counter back and forth with `try_send`
//!   from inside their handlers, 100,000 round trips (200,000 messages) per
//!   iteration. This is the locality path: a cell a handler makes runnable
//!   goes to the same worker's `next` slot. Baselines: the same 100,000
//!   round trips between two threads over two crossbeam channels (blocking
//!   `send`/`recv`), and on one thread (send then receive on each channel in
//!   turn: the queue operations alone, no cross-thread hand-off).
//!
//! Throughput is counted in round trips.

mod common;

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use cellrt::{Addr, Cell, CellError, Context, Reply};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Receiver, Sender};

use common::{runtime, WAIT};

#[path = "common/echo.rs"]
mod echo;
use echo::Echo;

/// Round trips per `cell_to_cell` iteration.
const ROUND_TRIPS: u64 = 100_000;

fn ask_wait(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong/ask_wait");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    for workers in [1, 2] {
        let rt = runtime(workers, 32);
        let echo = rt.spawn(Echo).expect("spawn");
        let mut n = 0_u64;
        group.bench_function(BenchmarkId::new("cellrt", format!("w{workers}")), |b| {
            b.iter(|| {
                n = echo.ask(|reply| (n, reply)).expect("ask").wait(WAIT).expect("answer");
            });
        });
        black_box(n);
        rt.shutdown(WAIT);
    }

    let (req_tx, req_rx) = bounded::<u64>(32);
    let (resp_tx, resp_rx) = bounded::<u64>(32);
    let server = thread::spawn(move || {
        for n in req_rx {
            if resp_tx.send(n + 1).is_err() {
                break;
            }
        }
    });
    let mut n = 0_u64;
    group.bench_function(BenchmarkId::new("crossbeam", "2 threads"), |b| {
        b.iter(|| {
            req_tx.send(n).expect("send");
            n = resp_rx.recv().expect("answer");
        });
    });
    black_box(n);
    drop(req_tx);
    server.join().expect("server thread");
    group.finish();
}

enum PingMsg {
    /// Tells a player who its partner is.
    Partner(Addr<PingMsg>),
    /// The ball: round trips left, and where to report when none are.
    Ball(u64, Reply<u64>),
}

#[derive(Default)]
struct Player {
    partner: Option<Addr<PingMsg>>,
    /// Counts its own hits, to check nothing was dropped.
    hits: u64,
}

impl Cell for Player {
    type Message = PingMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: PingMsg) -> Result<(), CellError> {
        match msg {
            PingMsg::Partner(addr) => self.partner = Some(addr),
            PingMsg::Ball(0, done) => {
                let _ = done.send(self.hits);
                self.hits = 0;
            }
            PingMsg::Ball(left, done) => {
                self.hits += 1;
                let partner = self.partner.as_ref().ok_or_else(|| CellError::msg("no partner"))?;
                partner
                    .try_send(PingMsg::Ball(left - 1, done))
                    .map_err(|_| CellError::msg("partner full"))?;
            }
        }
        Ok(())
    }
}

/// Two-thread baseline: this thread is one player, `echo` the other.
fn crossbeam_two_threads(to_peer: &Sender<u64>, from_peer: &Receiver<u64>) {
    let mut ball = 0;
    for _ in 0..ROUND_TRIPS {
        to_peer.send(ball).expect("send");
        ball = from_peer.recv().expect("recv");
    }
    assert_eq!(ball, ROUND_TRIPS);
}

/// One-thread baseline: both hops of a round trip through the two channels.
fn crossbeam_one_thread(a: &(Sender<u64>, Receiver<u64>), b: &(Sender<u64>, Receiver<u64>)) {
    let mut ball = 0;
    for _ in 0..ROUND_TRIPS {
        a.0.send(ball).expect("send");
        ball = a.1.recv().expect("recv") + 1;
        b.0.send(ball).expect("send");
        ball = b.1.recv().expect("recv");
    }
    assert_eq!(ball, ROUND_TRIPS);
}

fn cell_to_cell(c: &mut Criterion) {
    let mut group = c.benchmark_group("ping_pong/cell_to_cell");
    group.throughput(Throughput::Elements(ROUND_TRIPS));
    group.sampling_mode(SamplingMode::Flat);
    for workers in [1, 2] {
        let rt = runtime(workers, 32);
        let ping = rt.spawn(Player::default()).expect("spawn");
        let pong = rt.spawn(Player::default()).expect("spawn");
        ping.send(PingMsg::Partner(pong.clone())).expect("send");
        pong.send(PingMsg::Partner(ping.clone())).expect("send");
        group.bench_function(BenchmarkId::new("cellrt", format!("w{workers}")), |b| {
            b.iter(|| {
                // 2 * ROUND_TRIPS hops; the player that receives the ball at 0
                // (`pong`'s partner, `ping`) answers with its own hit count.
                let hits = ping
                    .ask(|done| PingMsg::Ball(2 * ROUND_TRIPS, done))
                    .expect("ask")
                    .wait(WAIT)
                    .expect("answer");
                assert_eq!(hits, ROUND_TRIPS);
            });
        });
        rt.shutdown(WAIT);
    }

    let (to_peer, peer_rx) = bounded::<u64>(32);
    let (peer_tx, from_peer) = bounded::<u64>(32);
    let peer = thread::spawn(move || {
        for ball in peer_rx {
            if peer_tx.send(ball + 1).is_err() {
                break;
            }
        }
    });
    group.bench_function(BenchmarkId::new("crossbeam", "2 threads"), |b| {
        b.iter(|| crossbeam_two_threads(&to_peer, &from_peer));
    });
    drop(to_peer);
    peer.join().expect("peer thread");

    let (a, b) = (bounded::<u64>(32), bounded::<u64>(32));
    group.bench_function(BenchmarkId::new("crossbeam", "1 thread"), |bench| {
        bench.iter(|| crossbeam_one_thread(&a, &b));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = ask_wait, cell_to_cell
}

fn main() {
    common::run(benches);
}
