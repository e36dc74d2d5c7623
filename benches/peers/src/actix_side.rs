//! actix: a `System` on its own thread with one `Arbiter` per worker (an
//! arbiter is one thread running its actors; actix takes no thread count).
//! Actors are started with `start_in_arbiter` and
//! `ctx.set_mailbox_capacity(1024)` (the default is 16). Plain producer
//! threads send with `Addr::try_send`, yielding while the mailbox is full
//! (`do_send` would ignore the capacity); a thread asks by blocking on the
//! `Addr::send` future. A panic in an actix handler ends that actor's task
//! for good (tokio catches it, the arbiter lives on, the mailbox closes),
//! and an actix `Supervisor` does not restart it: no restart after a panic.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{mpsc, Arc};
use std::thread;

use actix::prelude::*;
use crossbeam_channel::{bounded, Sender};
use futures_executor::block_on;

use crate::workload::{
    failed, millions_per_sec, nanos_each, repeat, thousands_per_sec, timed, wait_until, Mailbox, Outcome,
    Plan, Side, Skip, CAPACITY, PRODUCERS, RING, WAIT, WORKERS,
};

/// actix's column.
pub const SIDE: Side = Side {
    name: "actix 0.13",
    counting,
    fan_in,
    ping_pong,
    ring,
    spawn,
    memory,
    restart: |_| Err(Skip::Cannot("no panic restart")),
};

/// A running actix `System` with `workers` arbiters, stopped on drop.
struct Sys {
    system: System,
    arbiters: Vec<ArbiterHandle>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sys {
    fn start(workers: usize) -> Result<Sys, Skip> {
        let (tx, rx) = mpsc::channel();
        let thread = thread::spawn(move || {
            let sys = System::new();
            let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
            let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
            if tx.send((System::current(), handles)).is_ok() {
                let _ = sys.run();
            }
            for arbiter in arbiters {
                arbiter.stop();
                let _ = arbiter.join();
            }
        });
        let (system, arbiters) = rx.recv_timeout(WAIT).map_err(|_| "actix system did not start")?;
        Ok(Sys { system, arbiters, thread: Some(thread) })
    }

    fn arbiter(&self, i: usize) -> &ArbiterHandle {
        &self.arbiters[i % self.arbiters.len()]
    }
}

impl Drop for Sys {
    fn drop(&mut self) {
        self.system.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Add(u64);

impl Message for Add {
    type Result = ();
}

struct Take;

impl Message for Take {
    type Result = (u64, u64);
}

/// Counts and sums what it is sent; answers and resets on `Take`.
#[derive(Default)]
struct Counter {
    count: u64,
    sum: u64,
}

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<Add> for Counter {
    type Result = ();

    fn handle(&mut self, Add(n): Add, _ctx: &mut Context<Self>) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(n);
    }
}

impl Handler<Take> for Counter {
    type Result = MessageResult<Take>;

    fn handle(&mut self, _msg: Take, _ctx: &mut Context<Self>) -> MessageResult<Take> {
        let answer = (self.count, self.sum);
        *self = Counter::default();
        MessageResult(answer)
    }
}

fn start_counter(sys: &Sys) -> Addr<Counter> {
    Counter::start_in_arbiter(sys.arbiter(0), |ctx| {
        ctx.set_mailbox_capacity(CAPACITY);
        Counter::default()
    })
}

/// Sends `Add(n)` for each `n` of `range`, yielding while the mailbox is full.
fn send_all(addr: &Addr<Counter>, range: std::ops::Range<u64>) -> Result<(), Skip> {
    for n in range {
        let mut msg = Add(n);
        loop {
            match addr.try_send(msg) {
                Ok(()) => break,
                Err(SendError::Full(back)) => {
                    msg = back;
                    thread::yield_now();
                }
                Err(SendError::Closed(_)) => return Err("counter closed".into()),
            }
        }
    }
    Ok(())
}

fn take(addr: &Addr<Counter>, expected: u64) -> Result<(), Skip> {
    let got = block_on(addr.send(Take)).map_err(|e| failed("ask")(&e))?;
    if got != (expected, Plan::sum_below(expected)) {
        return Err(format!("counted {got:?}, expected {expected}").into());
    }
    Ok(())
}

/// 1. Counting 1→1: this thread `try_send`s, then asks for the count.
fn counting(plan: &Plan) -> Outcome {
    let sys = Sys::start(WORKERS)?;
    let addr = start_counter(&sys);
    repeat(
        plan,
        || {
            timed(|| {
                send_all(&addr, 0..plan.messages)?;
                take(&addr, plan.messages)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(plan.messages),
    )
}

/// 2. Fan-in 4→1: four producer threads `try_send`, then this thread asks.
fn fan_in(plan: &Plan) -> Outcome {
    let sys = Sys::start(WORKERS)?;
    let addr = start_counter(&sys);
    let per = plan.per_producer();
    repeat(
        plan,
        || {
            timed(|| {
                thread::scope(|scope| {
                    let producers: Vec<_> = (0..PRODUCERS)
                        .map(|p| {
                            let addr = &addr;
                            scope.spawn(move || send_all(addr, p * per..(p + 1) * per))
                        })
                        .collect();
                    producers
                        .into_iter()
                        .try_for_each(|p| p.join().unwrap_or(Err("producer panicked".into())))
                })?;
                take(&addr, per * PRODUCERS)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(per * PRODUCERS),
    )
}

struct Ping(u64);

impl Message for Ping {
    type Result = u64;
}

/// Answers every number with the number plus one.
struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Ping> for Echo {
    type Result = u64;

    fn handle(&mut self, Ping(n): Ping, _ctx: &mut Context<Self>) -> u64 {
        n + 1
    }
}

/// 3. Ping-pong: this thread blocks on `addr.send(Ping(n))` each round trip.
fn ping_pong(plan: &Plan) -> Outcome {
    let sys = Sys::start(WORKERS)?;
    let echo = Echo::start_in_arbiter(sys.arbiter(0), |ctx| {
        ctx.set_mailbox_capacity(CAPACITY);
        Echo
    });
    repeat(
        plan,
        || {
            timed(|| {
                let mut n = 0;
                for _ in 0..plan.round_trips {
                    n = block_on(echo.send(Ping(n))).map_err(|e| failed("ask")(&e))?;
                }
                Ok(n)
            })
            .map(|(d, _)| d)
        },
        nanos_each(plan.round_trips),
    )
}

struct Next(Addr<Member>);

impl Message for Next {
    type Result = ();
}

/// The token: hops left, and where to report when none are.
struct Token(u64, Sender<u64>);

impl Message for Token {
    type Result = ();
}

#[derive(Default)]
struct Member {
    next: Option<Addr<Member>>,
}

impl Actor for Member {
    type Context = Context<Self>;
}

impl Handler<Next> for Member {
    type Result = ();

    fn handle(&mut self, Next(addr): Next, _ctx: &mut Context<Self>) {
        self.next = Some(addr);
    }
}

impl Handler<Token> for Member {
    type Result = ();

    fn handle(&mut self, Token(left, done): Token, _ctx: &mut Context<Self>) {
        match (&self.next, left) {
            (Some(next), 1..) => next.do_send(Token(left - 1, done)),
            // The last hop (or a ring not closed: the harness times out).
            _ => drop(done.send(left)),
        }
    }
}

/// 4. Ring: 1,000 actors forward one token with `do_send`. With 2
///    workers, actors 0–499 run on one arbiter and 500–999 on the other
///    (two hops per lap cross threads).
fn ring(plan: &Plan, workers: usize) -> Outcome {
    let sys = Sys::start(workers)?;
    let members: Vec<Addr<Member>> = (0..RING)
        .map(|i| {
            Member::start_in_arbiter(sys.arbiter(i * workers / RING), |ctx| {
                ctx.set_mailbox_capacity(CAPACITY);
                Member::default()
            })
        })
        .collect();
    for (i, member) in members.iter().enumerate() {
        member.do_send(Next(members[(i + 1) % RING].clone()));
    }
    repeat(
        plan,
        || {
            let (done, finished) = bounded(1);
            timed(|| {
                members[0].do_send(Token(plan.hops, done));
                match finished.recv_timeout(WAIT) {
                    Ok(0) => Ok(()),
                    _ => Err(Skip::from("token lost")),
                }
            })
            .map(|(d, ())| d)
        },
        nanos_each(plan.hops),
    )
}

/// An idle actor that notes that it started.
struct Idle {
    started: Arc<AtomicUsize>,
}

impl Actor for Idle {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        self.started.fetch_add(1, Relaxed);
    }
}

impl Handler<Ping> for Idle {
    type Result = u64;

    fn handle(&mut self, Ping(n): Ping, _ctx: &mut Context<Self>) -> u64 {
        n
    }
}

/// Starts `n` idle actors from inside the first arbiter (as code running
/// in an actix system would) and waits until all started; returns their
/// addresses.
fn spawn_idle(
    sys: &Sys,
    n: usize,
    mailbox: Mailbox,
    started: &Arc<AtomicUsize>,
) -> Result<Vec<Addr<Idle>>, Skip> {
    let target = started.load(Relaxed) + n;
    let (tx, rx) = mpsc::channel();
    let counter = started.clone();
    let sent = sys.arbiter(0).spawn_fn(move || {
        let addrs: Vec<Addr<Idle>> = (0..n)
            .map(|_| {
                let idle = Idle { started: counter.clone() };
                match mailbox {
                    Mailbox::Bounded => Idle::create(|ctx| {
                        ctx.set_mailbox_capacity(CAPACITY);
                        idle
                    }),
                    Mailbox::Default => idle.start(),
                }
            })
            .collect();
        let _ = tx.send(addrs);
    });
    if !sent {
        return Err("arbiter gone".into());
    }
    let addrs = rx.recv_timeout(WAIT).map_err(|_| "spawning timed out")?;
    wait_until("all started", || started.load(Relaxed) >= target)?;
    Ok(addrs)
}

/// 5. Spawn: `plan.actors` idle actors on a fresh system, until every
///    `started` hook ran.
fn spawn(plan: &Plan) -> Outcome {
    repeat(
        plan,
        || {
            let sys = Sys::start(WORKERS)?;
            let started = Arc::new(AtomicUsize::new(0));
            let (elapsed, addrs) = timed(|| spawn_idle(&sys, plan.actors, Mailbox::Bounded, &started))?;
            drop(addrs);
            drop(sys);
            Ok(elapsed)
        },
        thousands_per_sec(plan.actors as u64),
    )
}

/// 6. Idle memory (in the child process).
fn memory(plan: &Plan, mailbox: Mailbox) -> Result<f64, Skip> {
    let sys = Sys::start(WORKERS)?;
    let started = Arc::new(AtomicUsize::new(0));
    let first = spawn_idle(&sys, 1, mailbox, &started)?;
    let mut all = Vec::new();
    let bytes = crate::rss_per_actor(plan.actors, || {
        all = spawn_idle(&sys, plan.actors, mailbox, &started)?;
        Ok(())
    })?;
    drop((first, all));
    Ok(bytes)
}
