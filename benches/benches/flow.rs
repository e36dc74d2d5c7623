//! Flow control on the send path: what a router, a shedding policy and a
//! circuit breaker cost a sender.
//!
//! `flow_send`: one producer thread sends 1,000,000 `u64` messages with the
//! blocking `send` to
//!
//! - `direct`: one counter cell's address (the `counting` story);
//! - `shedding`: the same, with a shedding policy on the address that admits
//!   everything (the classifier runs and the depth is read on every send);
//! - `round_robin` and `consistent_hash`: a router over two counter cells.
//!
//! then asks each counter for its count. Mailboxes of 1024, 2 workers.
//!
//! `flow_breaker`: one thread takes a permit from a closed breaker and
//! records a success, 1,000,000 times (count window of 100): the cost a
//! caller pays per call through a breaker.

mod common;

use std::hint::black_box;
use std::time::Duration;

use cellrt::{Addr, BreakerConfig, CircuitBreaker, Routing, Shedding, SlidingWindow};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};

use common::{runtime, Counter, Msg, WAIT};

const MESSAGES: u64 = 1_000_000;

fn send_all(to: &Addr<Msg>, counters: &[Addr<Msg>]) {
    for n in 0..MESSAGES {
        to.send(Msg::Add(n)).expect("send");
    }
    let total: u64 =
        counters.iter().map(|c| c.ask(Msg::Take).expect("ask").wait(WAIT).expect("answer").0).sum();
    assert_eq!(total, MESSAGES);
    black_box(total);
}

fn flow_send(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_send");
    group.throughput(Throughput::Elements(MESSAGES));
    group.sampling_mode(SamplingMode::Flat);
    let rt = runtime(2, 1024);

    let direct = rt.spawn(Counter::default()).expect("spawn");
    group.bench_function(BenchmarkId::new("direct", 1024), |b| {
        b.iter(|| send_all(&direct, std::slice::from_ref(&direct)))
    });

    let shed = rt.spawn(Counter::default()).expect("spawn");
    shed.set_shedding(Some(
        Shedding::new(|msg: &Msg| match msg {
            Msg::Add(_) => 0,
            Msg::Take(_) => 1,
        })
        .watermark(0, 1.0)
        .expect("watermark"),
    ));
    group.bench_function(BenchmarkId::new("shedding", 1024), |b| {
        b.iter(|| send_all(&shed, std::slice::from_ref(&shed)))
    });

    for (name, routing) in [
        ("round_robin", Routing::round_robin()),
        (
            "consistent_hash",
            Routing::consistent_hash(|msg: &Msg| match msg {
                Msg::Add(n) => *n,
                Msg::Take(_) => 0,
            }),
        ),
    ] {
        let members =
            vec![rt.spawn(Counter::default()).expect("spawn"), rt.spawn(Counter::default()).expect("spawn")];
        let router = rt.router(name, routing, members.clone()).expect("router");
        group.bench_function(BenchmarkId::new(name, 1024), |b| b.iter(|| send_all(router.addr(), &members)));
    }
    group.finish();
    rt.shutdown(WAIT);
}

fn flow_breaker(c: &mut Criterion) {
    let mut group = c.benchmark_group("flow_breaker");
    group.throughput(Throughput::Elements(MESSAGES));
    let breaker = CircuitBreaker::new(
        "bench",
        BreakerConfig::default()
            .sliding_window(SlidingWindow::Count(100))
            .slow_call_duration(Duration::from_secs(1)),
    )
    .expect("config");
    group.bench_function("acquire_record_success", |b| {
        b.iter(|| {
            for _ in 0..MESSAGES {
                breaker.try_acquire().expect("closed").record(cellrt::CallOutcome::Success, Duration::ZERO);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = flow_send, flow_breaker
}

fn main() {
    common::run(benches);
}
