//! cellrt, called as its own benches (`benches/benches/*.rs`) call it:
//! `Runtime::builder().worker_threads(2).default_capacity(1024)`, blocking
//! `Addr::send` from plain producer threads, `Addr::ask(..).wait(..)`,
//! `try_send` between cells inside handlers, a one-for-one
//! `SupervisorSpec` for the restart.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{
    Addr, Cell, CellConfig, CellError, ChildSpec, Context, Reply, RestartBackoff, Runtime, Strategy,
    SupervisorSpec,
};

use crate::workload::{
    failed, millions_per_sec, nanos_each, repeat, repeat_restarts, thousands_per_sec, timed, wait_until,
    Mailbox, Outcome, Plan, Restarts, Side, Skip, CAPACITY, PRODUCERS, RING, WAIT, WORKERS,
};

/// cellrt's column.
pub const SIDE: Side = Side { name: "cellrt", counting, fan_in, ping_pong, ring, spawn, memory, restart };

fn runtime(workers: usize) -> Result<Runtime, Skip> {
    Runtime::builder()
        .worker_threads(workers)
        .default_capacity(CAPACITY)
        .quiet_panics(true)
        .build()
        .map_err(|e| failed("runtime")(&e))
}

/// Messages of [`Counter`].
enum CountMsg {
    Add(u64),
    Take(Reply<(u64, u64)>),
}

/// Counts and sums what it is sent; answers and resets on `Take`.
#[derive(Default)]
struct Counter {
    count: u64,
    sum: u64,
}

impl Cell for Counter {
    type Message = CountMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: CountMsg) -> Result<(), CellError> {
        match msg {
            CountMsg::Add(n) => {
                self.count += 1;
                self.sum = self.sum.wrapping_add(n);
            }
            CountMsg::Take(reply) => {
                let _ = reply.send((self.count, self.sum));
                *self = Counter::default();
            }
        }
        Ok(())
    }
}

fn take(addr: &Addr<CountMsg>, expected: u64) -> Result<(), Skip> {
    let pending = addr.ask(CountMsg::Take).map_err(|_| "ask: counter closed")?;
    let (count, sum) = pending.wait(WAIT).map_err(|e| failed("answer")(&e))?;
    if (count, sum) != (expected, Plan::sum_below(expected)) {
        return Err(format!("counted {count} (sum {sum}), expected {expected}").into());
    }
    Ok(())
}

/// 1. Counting 1→1: this thread sends `plan.messages` with the blocking
///    `send`, then asks for the count.
pub fn counting(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let addr = rt.spawn(Counter::default()).map_err(|e| failed("spawn")(&e))?;
    let outcome = repeat(
        plan,
        || {
            timed(|| {
                for n in 0..plan.messages {
                    addr.send(CountMsg::Add(n)).map_err(|_| "send: counter closed")?;
                }
                take(&addr, plan.messages)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(plan.messages),
    );
    rt.shutdown(WAIT);
    outcome
}

/// 2. Fan-in 4→1: four producer threads send `plan.messages / 4` each with
///    the blocking `send`; then this thread asks for the count.
pub fn fan_in(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let addr = rt.spawn(Counter::default()).map_err(|e| failed("spawn")(&e))?;
    let per = plan.per_producer();
    let outcome = repeat(
        plan,
        || {
            timed(|| {
                thread::scope(|scope| {
                    let producers: Vec<_> = (0..PRODUCERS)
                        .map(|p| {
                            let addr = &addr;
                            scope.spawn(move || {
                                (0..per).try_for_each(|n| addr.send(CountMsg::Add(p * per + n)).map(drop))
                            })
                        })
                        .collect();
                    producers.into_iter().try_for_each(|p| match p.join() {
                        Ok(Ok(())) => Ok(()),
                        _ => Err(Skip::from("producer failed")),
                    })
                })?;
                take(&addr, per * PRODUCERS)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(per * PRODUCERS),
    );
    rt.shutdown(WAIT);
    outcome
}

/// Answers every ask with the number it was given plus one.
struct Echo;

impl Cell for Echo {
    type Message = (u64, Reply<u64>);

    fn handle(&mut self, _ctx: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}

/// 3. Ping-pong: this thread asks an echo cell and waits for each answer.
pub fn ping_pong(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let echo = rt.spawn(Echo).map_err(|e| failed("spawn")(&e))?;
    let outcome = repeat(
        plan,
        || {
            timed(|| {
                let mut n = 0;
                for _ in 0..plan.round_trips {
                    let pending = echo.ask(|reply| (n, reply)).map_err(|_| "ask: echo closed")?;
                    n = pending.wait(WAIT).map_err(|e| failed("answer")(&e))?;
                }
                if n == plan.round_trips {
                    Ok(())
                } else {
                    Err(Skip::from("lost a ball"))
                }
            })
            .map(|(d, ())| d)
        },
        nanos_each(plan.round_trips),
    );
    rt.shutdown(WAIT);
    outcome
}

enum RingMsg {
    Next(Addr<RingMsg>),
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

/// 4. Ring: 1,000 cells forward one token with `try_send` from their
///    handlers; the last hop answers the ask that started it.
pub fn ring(plan: &Plan, workers: usize) -> Outcome {
    let rt = runtime(workers)?;
    let members = (0..RING)
        .map(|_| rt.spawn(Member::default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed("spawn")(&e))?;
    for (i, member) in members.iter().enumerate() {
        member.send(RingMsg::Next(members[(i + 1) % RING].clone())).map_err(|_| "send: closed")?;
    }
    let outcome = repeat(
        plan,
        || {
            timed(|| {
                let pending =
                    members[0].ask(|done| RingMsg::Token(plan.hops, done)).map_err(|_| "ask: closed")?;
                pending.wait(WAIT).map_err(|e| failed("token")(&e))
            })
            .map(|(d, _)| d)
        },
        nanos_each(plan.hops),
    );
    drop(members);
    rt.shutdown(WAIT);
    outcome
}

/// An idle cell that notes that it started.
struct Idle {
    started: Arc<AtomicUsize>,
}

impl Cell for Idle {
    type Message = u64;

    fn started(&mut self, _ctx: &mut Context<Self>) -> Result<(), CellError> {
        self.started.fetch_add(1, Relaxed);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: u64) -> Result<(), CellError> {
        Ok(())
    }
}

/// Spawns `n` idle cells (capacity `capacity`) and waits until all started.
fn spawn_idle(
    rt: &Runtime,
    n: usize,
    capacity: Option<usize>,
    started: &Arc<AtomicUsize>,
    into: &mut Vec<Addr<u64>>,
) -> Result<(), Skip> {
    let target = started.load(Relaxed) + n;
    for _ in 0..n {
        let idle = Idle { started: started.clone() };
        let addr = match capacity {
            Some(c) => rt.spawn_with(CellConfig::new().capacity(c), idle),
            None => rt.spawn(idle),
        };
        into.push(addr.map_err(|e| failed("spawn")(&e))?);
    }
    wait_until("all started", || started.load(Relaxed) >= target)
}

/// 5. Spawn: `plan.actors` idle cells on a fresh runtime, until every
///    `started` hook ran.
pub fn spawn(plan: &Plan) -> Outcome {
    repeat(
        plan,
        || {
            let rt = runtime(WORKERS)?;
            let started = Arc::new(AtomicUsize::new(0));
            let mut addrs = Vec::with_capacity(plan.actors);
            let (elapsed, ()) = timed(|| spawn_idle(&rt, plan.actors, Some(CAPACITY), &started, &mut addrs))?;
            drop(addrs);
            drop(rt);
            Ok(elapsed)
        },
        thousands_per_sec(plan.actors as u64),
    )
}

/// 6. Idle memory (in the child process): bytes of RSS per idle cell.
pub fn memory(plan: &Plan, mailbox: Mailbox) -> Result<f64, Skip> {
    let capacity = match mailbox {
        Mailbox::Bounded => Some(CAPACITY),
        // The builder's default capacity (32), not the runtime() one.
        Mailbox::Default => None,
    };
    let rt = Runtime::builder().worker_threads(WORKERS).build().map_err(|e| failed("runtime")(&e))?;
    let started = Arc::new(AtomicUsize::new(0));
    let mut addrs = Vec::with_capacity(plan.actors + 1);
    spawn_idle(&rt, 1, capacity, &started, &mut addrs)?;
    crate::rss_per_actor(plan.actors, || spawn_idle(&rt, plan.actors, capacity, &started, &mut addrs))
}

/// Messages of [`Fragile`].
enum FragileMsg {
    Fail,
    Get(Reply<u64>),
}

/// Panics on `Fail`; answers how many `Get`s this incarnation handled.
#[derive(Default)]
struct Fragile {
    handled: u64,
}

impl Cell for Fragile {
    type Message = FragileMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: FragileMsg) -> Result<(), CellError> {
        match msg {
            FragileMsg::Fail => panic!("injected failure"),
            FragileMsg::Get(reply) => {
                self.handled += 1;
                let _ = reply.send(self.handled);
            }
        }
        Ok(())
    }
}

/// 7. Restart: a one-for-one supervisor (no backoff, unlimited intensity)
///    with one `Fragile` child; send `Fail`, then ask; the latency is until
///    the restarted incarnation answers (it must answer 1).
pub fn restart(plan: &Plan) -> Restarts {
    let rt = runtime(WORKERS)?;
    let spec = SupervisorSpec::new("peers-restart")
        .strategy(Strategy::OneForOne)
        .intensity(u32::MAX, Duration::from_secs(1))
        .backoff(RestartBackoff::none())
        .child(ChildSpec::new("fragile", Fragile::default));
    let sup = rt.start_supervisor(spec, WAIT).map_err(|e| failed("supervisor")(&e))?;
    let addr = sup.child::<FragileMsg>("fragile").ok_or("no child address")?;
    let outcome = repeat_restarts(plan, || {
        let start = Instant::now();
        addr.send(FragileMsg::Fail).map_err(|_| "send: closed")?;
        let pending = addr.ask(FragileMsg::Get).map_err(|_| "ask: closed")?;
        let handled = pending.wait(WAIT).map_err(|e| failed("answer")(&e))?;
        let elapsed = start.elapsed();
        if handled != 1 {
            return Err(format!("answered {handled}, not by a restarted incarnation").into());
        }
        Ok(elapsed)
    });
    drop(sup);
    rt.shutdown(WAIT);
    outcome
}
