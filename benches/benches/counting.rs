//! Counting: one producer thread (not a cell) sends 1,000,000 `u64` messages
//! to one cell with the blocking [`Addr::send`], then asks for the count.
//!
//! Baseline, same run: a crossbeam `bounded` channel of the same capacity,
//! a consumer thread that counts and sums, the same 1,000,000 messages, then
//! a reply over a second channel. The message types of both sides have the
//! same shape (a `u64` or a reply handle, 16 bytes).
//!
//! Parameters: mailbox capacity 32 (the runtime default) and 1024; worker
//! threads 1 and 2 (the machine's cores). A further variant sends with
//! `try_send` in a spin loop instead of `send`, to isolate the cost of the
//! blocking send path when there is room.
//!
//! Project target: cellrt at least 50 % of the crossbeam baseline's msgs/s.
//!
//! `counting_observation` runs the `send` round with observation on (the
//! default: per-cell metrics, one send in 32 stamped) and off
//! (`ObservationConfig::disabled`), interleaved in the same run. Target: on
//! costs at most 10 %.

mod common;

use std::hint::black_box;

use cellrt::{Addr, ObservationConfig, Runtime, SendError};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_channel::{bounded, Sender};

use common::{raw_counter, runtime, Counter, Msg, RawMsg, WAIT};

const MESSAGES: u64 = 1_000_000;
const CAPACITIES: [usize; 2] = [32, 1024];

fn expected_sum() -> u64 {
    (0..MESSAGES).fold(0_u64, u64::wrapping_add)
}

fn cellrt_round(addr: &Addr<Msg>, spin: bool) {
    for n in 0..MESSAGES {
        if spin {
            let mut msg = Msg::Add(n);
            loop {
                match addr.try_send(msg) {
                    Ok(()) => break,
                    Err(SendError::Full(back)) => {
                        msg = back;
                        std::hint::spin_loop();
                    }
                    Err(_) => panic!("counter closed"),
                }
            }
        } else {
            addr.send(Msg::Add(n)).expect("send");
        }
    }
    let (count, sum) = addr.ask(Msg::Take).expect("ask").wait(WAIT).expect("answer");
    assert_eq!(count, MESSAGES);
    assert_eq!(sum, expected_sum());
    black_box(sum);
}

fn crossbeam_round(tx: &Sender<RawMsg>) {
    for n in 0..MESSAGES {
        tx.send(RawMsg::Add(n)).expect("send");
    }
    let (reply_tx, reply_rx) = bounded(1);
    tx.send(RawMsg::Take(reply_tx)).expect("send");
    let (count, sum) = reply_rx.recv_timeout(WAIT).expect("answer");
    assert_eq!(count, MESSAGES);
    assert_eq!(sum, expected_sum());
    black_box(sum);
}

fn counting(c: &mut Criterion) {
    let mut group = c.benchmark_group("counting");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sampling_mode(SamplingMode::Flat);
    for capacity in CAPACITIES {
        for workers in [1, 2] {
            let rt = runtime(workers, capacity);
            let addr = rt.spawn(Counter::default()).expect("spawn");
            group.bench_function(BenchmarkId::new(format!("cellrt_send/w{workers}"), capacity), |b| {
                b.iter(|| cellrt_round(&addr, false));
            });
            if workers == 2 {
                group.bench_function(
                    BenchmarkId::new(format!("cellrt_try_send_spin/w{workers}"), capacity),
                    |b| b.iter(|| cellrt_round(&addr, true)),
                );
            }
            rt.shutdown(WAIT);
        }

        let (tx, consumer) = raw_counter(capacity);
        group.bench_function(BenchmarkId::new("crossbeam", capacity), |b| b.iter(|| crossbeam_round(&tx)));
        drop(tx);
        consumer.join().expect("consumer thread");
    }
    group.finish();
}

fn counting_observation(c: &mut Criterion) {
    let mut group = c.benchmark_group("counting_observation");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sampling_mode(SamplingMode::Flat);
    for workers in [1, 2] {
        for (name, observation) in
            [("off", ObservationConfig::disabled()), ("on", ObservationConfig::default())]
        {
            let rt = Runtime::builder()
                .worker_threads(workers)
                .default_capacity(32)
                .observation(observation)
                .build()
                .expect("runtime builds");
            let addr = rt.spawn(Counter::default()).expect("spawn");
            group.bench_function(BenchmarkId::new(format!("{name}/w{workers}"), 32), |b| {
                b.iter(|| cellrt_round(&addr, false));
            });
            rt.shutdown(WAIT);
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = counting, counting_observation
}

fn main() {
    common::run(benches);
}
