//! Ring: 1,000 cells in a ring pass one token 200,000 hops; the figure of
//! interest is nanoseconds per hop (iteration time / 200,000). Project
//! target: at most 60 ns per hop.
//!
//! Each cell forwards the token to the next one with `try_send` from inside
//! its handler (never full: one token is in flight). The cell that receives
//! the token with no hops left answers the ask that started it. The 1,000
//! cells are spawned once, outside the timed part, with mailboxes of
//! capacity 32 and, in a second ring, 1024 (issue 15: within 10 % of each
//! other).
//!
//! Baselines, same run (1,000 threads on 2 cores would measure the OS
//! scheduler, not the queues):
//!
//! - `crossbeam/1 thread`: a ring of 1,000 `bounded(32)` channels; one thread
//!   makes each hop by sending the token into the next channel and receiving
//!   it from there. This is the queue work of a hop with no hand-off
//!   between threads, the same shape as cellrt's locality path (a cell woken
//!   by a handler runs next on the same worker).
//! - `crossbeam/2 threads`: the same ring, even channels serviced by one
//!   thread and odd channels by another, so every hop crosses threads with a
//!   blocking `recv` on the channel the token is known to arrive on.

mod common;
#[path = "common/ring_member.rs"]
mod ring_member;

use std::thread;

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Receiver, Sender};

use common::{runtime, WAIT};
use ring_member::{pass_token, spawn_ring};

const CELLS: usize = 1_000;
const HOPS: u64 = 200_000;

/// A ring of channels: hop `i` goes into channel `i % CELLS`.
fn channel_ring() -> Vec<(Sender<u64>, Receiver<u64>)> {
    (0..CELLS).map(|_| bounded(32)).collect()
}

fn one_thread(ring: &[(Sender<u64>, Receiver<u64>)]) -> u64 {
    let mut token = 0_u64;
    for hop in 0..HOPS as usize {
        let (tx, rx) = &ring[hop % CELLS];
        tx.send(token + 1).expect("send");
        token = rx.recv().expect("recv");
    }
    token
}

/// Runs the half of the ring whose channels have index parity `parity`: the
/// token arrives on channel `i` (hop `i` of the ring), and this side passes it
/// on into channel `i + 1`, which the other side owns.
fn two_threads_side(ring: &[(Sender<u64>, Receiver<u64>)], parity: usize) {
    let start = parity;
    for hop in (start..HOPS as usize).step_by(2) {
        let token = ring[hop % CELLS].1.recv().expect("recv");
        ring[(hop + 1) % CELLS].0.send(token + 1).expect("send");
    }
}

fn ring(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring");
    group.throughput(Throughput::Elements(HOPS));
    group.sampling_mode(SamplingMode::Flat);
    for (capacity, workers) in [(32, 1), (32, 2), (1024, 1), (1024, 2)] {
        let rt = runtime(workers, capacity);
        let members = spawn_ring(&rt, CELLS);
        group.bench_function(BenchmarkId::new(format!("cellrt/cap{capacity}"), format!("w{workers}")), |b| {
            b.iter(|| pass_token(&members[0], HOPS, WAIT));
        });
        drop(members);
        rt.shutdown(WAIT);
    }

    let ring = channel_ring();
    group.bench_function(BenchmarkId::new("crossbeam", "1 thread"), |b| {
        b.iter(|| assert_eq!(one_thread(&ring), HOPS));
    });
    group.bench_function(BenchmarkId::new("crossbeam", "2 threads"), |b| {
        b.iter(|| {
            thread::scope(|scope| {
                scope.spawn(|| two_threads_side(&ring, 1));
                // Hop 0 enters channel 0, owned by the even side (this thread).
                ring[0].0.send(0).expect("send");
                two_threads_side(&ring, 0);
            });
            // The last hop left the token in channel HOPS % CELLS.
            assert_eq!(ring[HOPS as usize % CELLS].1.recv().expect("recv"), HOPS);
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = ring
}

fn main() {
    common::run(benches);
}
