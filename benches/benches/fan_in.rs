//! Fan-in: 4 producer threads (not cells) send 250,000 `u64` each to one
//! cell with the blocking [`Addr::send`], then the main thread asks for the
//! count (asserted to be 1,000,000).
//!
//! Baseline, same run: the same 4 producer threads send into one crossbeam
//! `bounded` channel of the same capacity, drained by one consumer thread
//! that counts and sums, then answers over a reply channel.
//!
//! Producer threads are started inside the timed part on both sides (a
//! `thread::scope` per iteration, about 0.1 ms of the 1,000,000 messages).
//! Capacities 32 (the runtime default) and 1024; 2 worker threads.

mod common;

use std::hint::black_box;
use std::thread;

use cellrt::Addr;
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Sender};

use common::{raw_counter, runtime, Counter, Msg, RawMsg, WAIT};

const PRODUCERS: u64 = 4;
const PER_PRODUCER: u64 = 250_000;
const MESSAGES: u64 = PRODUCERS * PER_PRODUCER;
const CAPACITIES: [usize; 2] = [32, 1024];
const WORKERS: usize = 2;

fn cellrt_round(addr: &Addr<Msg>) {
    thread::scope(|scope| {
        for p in 0..PRODUCERS {
            scope.spawn(move || {
                for n in 0..PER_PRODUCER {
                    addr.send(Msg::Add(p * PER_PRODUCER + n)).expect("send");
                }
            });
        }
    });
    let answer = addr.ask(Msg::Take).expect("ask").wait(WAIT).expect("answer");
    assert_eq!(answer, (MESSAGES, expected_sum()));
    black_box(answer);
}

fn expected_sum() -> u64 {
    (0..MESSAGES).fold(0_u64, u64::wrapping_add)
}

fn crossbeam_round(tx: &Sender<RawMsg>) {
    thread::scope(|scope| {
        for p in 0..PRODUCERS {
            scope.spawn(move || {
                for n in 0..PER_PRODUCER {
                    tx.send(RawMsg::Add(p * PER_PRODUCER + n)).expect("send");
                }
            });
        }
    });
    let (reply_tx, reply_rx) = bounded(1);
    tx.send(RawMsg::Take(reply_tx)).expect("send");
    let answer = reply_rx.recv_timeout(WAIT).expect("answer");
    assert_eq!(answer, (MESSAGES, expected_sum()));
    black_box(answer);
}

fn fan_in(c: &mut Criterion) {
    let mut group = c.benchmark_group("fan_in");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sampling_mode(SamplingMode::Flat);
    for capacity in CAPACITIES {
        let rt = runtime(WORKERS, capacity);
        let addr = rt.spawn(Counter::default()).expect("spawn");
        group.bench_function(BenchmarkId::new(format!("cellrt/w{WORKERS}"), capacity), |b| {
            b.iter(|| cellrt_round(&addr));
        });
        rt.shutdown(WAIT);

        let (tx, consumer) = raw_counter(capacity);
        group.bench_function(BenchmarkId::new("crossbeam", capacity), |b| b.iter(|| crossbeam_round(&tx)));
        drop(tx);
        consumer.join().expect("consumer thread");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = fan_in
}

fn main() {
    common::run(benches);
}
