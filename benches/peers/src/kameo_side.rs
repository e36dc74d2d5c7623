//! kameo on a tokio multi-thread runtime with 2 worker threads (1 for the
//! 1-worker ring), every actor spawned with `spawn_with_mailbox(..,
//! mailbox::bounded(1024))` (kameo's own default is bounded(64)). Plain
//! producer threads `tell(..).blocking_send()` (waits while the mailbox is
//! full); this thread asks with `ask(..).await` inside `Runtime::block_on`.
//! Restart: kameo's supervision (`Actor::supervise(..)`, permanent restart
//! policy, unlimited restarts): a restarted child keeps its `ActorRef` and
//! its mailbox, as in cellrt.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Sender};
use kameo::actor::{Actor, ActorRef, Spawn};
use kameo::error::Infallible;
use kameo::mailbox;
use kameo::message::{Context, Message};
use kameo::supervision::RestartPolicy;
use tokio::runtime::Runtime;

use crate::workload::{
    failed, millions_per_sec, nanos_each, repeat, repeat_restarts, thousands_per_sec, timed, wait_until,
    Mailbox, Outcome, Plan, Restarts, Side, Skip, CAPACITY, PRODUCERS, RING, WAIT, WORKERS,
};

/// kameo's column.
pub const SIDE: Side = Side { name: "kameo 0.22", counting, fan_in, ping_pong, ring, spawn, memory, restart };

fn runtime(workers: usize) -> Result<Runtime, Skip> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| Skip::Failed(format!("tokio runtime: {e}")))
}

/// Spawns `actor` on `rt` with a bounded(1024) mailbox.
fn spawn_bounded<A: Actor<Args = A>>(rt: &Runtime, actor: A) -> ActorRef<A> {
    let _in_runtime = rt.enter();
    A::spawn_with_mailbox(actor, mailbox::bounded(CAPACITY))
}

/// Counts and sums what it is sent; answers and resets on `Take`.
#[derive(Default)]
struct Counter {
    count: u64,
    sum: u64,
}

impl Actor for Counter {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Add(u64);

impl Message<Add> for Counter {
    type Reply = ();

    async fn handle(&mut self, Add(n): Add, _ctx: &mut Context<Self, ()>) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(n);
    }
}

struct Take;

impl Message<Take> for Counter {
    type Reply = (u64, u64);

    async fn handle(&mut self, _msg: Take, _ctx: &mut Context<Self, (u64, u64)>) -> (u64, u64) {
        let answer = (self.count, self.sum);
        *self = Counter::default();
        answer
    }
}

fn take(rt: &Runtime, counter: &ActorRef<Counter>, expected: u64) -> Result<(), Skip> {
    let got = rt.block_on(async { counter.ask(Take).await }).map_err(|e| failed("ask")(&e))?;
    if got != (expected, Plan::sum_below(expected)) {
        return Err(format!("counted {got:?}, expected {expected}").into());
    }
    Ok(())
}

fn tell_all(counter: &ActorRef<Counter>, range: std::ops::Range<u64>) -> Result<(), Skip> {
    range.into_iter().try_for_each(|n| counter.tell(Add(n)).blocking_send().map_err(|e| failed("tell")(&e)))
}

/// 1. Counting 1→1: this thread `tell`s with `blocking_send`, then asks.
fn counting(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let counter = spawn_bounded(&rt, Counter::default());
    repeat(
        plan,
        || {
            timed(|| {
                tell_all(&counter, 0..plan.messages)?;
                take(&rt, &counter, plan.messages)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(plan.messages),
    )
}

/// 2. Fan-in 4→1: four producer threads `tell` with `blocking_send`, then
///    this thread asks.
fn fan_in(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let counter = spawn_bounded(&rt, Counter::default());
    let per = plan.per_producer();
    repeat(
        plan,
        || {
            timed(|| {
                thread::scope(|scope| {
                    let producers: Vec<_> = (0..PRODUCERS)
                        .map(|p| {
                            let counter = &counter;
                            scope.spawn(move || tell_all(counter, p * per..(p + 1) * per))
                        })
                        .collect();
                    producers
                        .into_iter()
                        .try_for_each(|p| p.join().unwrap_or(Err("producer panicked".into())))
                })?;
                take(&rt, &counter, per * PRODUCERS)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(per * PRODUCERS),
    )
}

/// Answers every number with the number plus one.
struct Echo;

impl Actor for Echo {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Ping(u64);

impl Message<Ping> for Echo {
    type Reply = u64;

    async fn handle(&mut self, Ping(n): Ping, _ctx: &mut Context<Self, u64>) -> u64 {
        n + 1
    }
}

/// 3. Ping-pong: this thread `ask`s the echo actor inside one `block_on`.
fn ping_pong(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let echo = spawn_bounded(&rt, Echo);
    repeat(
        plan,
        || {
            timed(|| {
                rt.block_on(async {
                    let mut n = 0;
                    for _ in 0..plan.round_trips {
                        n = echo.ask(Ping(n)).await.map_err(|e| failed("ask")(&e))?;
                    }
                    Ok(n)
                })
            })
            .map(|(d, _)| d)
        },
        nanos_each(plan.round_trips),
    )
}

#[derive(Default)]
struct Member {
    next: Option<ActorRef<Member>>,
}

impl Actor for Member {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Next(ActorRef<Member>);

impl Message<Next> for Member {
    type Reply = ();

    async fn handle(&mut self, Next(next): Next, _ctx: &mut Context<Self, ()>) {
        self.next = Some(next);
    }
}

/// The token: hops left, and where to report when none are.
struct Token(u64, Sender<u64>);

impl Message<Token> for Member {
    type Reply = ();

    async fn handle(&mut self, Token(left, done): Token, _ctx: &mut Context<Self, ()>) {
        match (&self.next, left) {
            (Some(next), 1..) => {
                // One token in flight: never full. A failed send loses
                // the token, which the harness reports as a timeout.
                let _ = next.tell(Token(left - 1, done)).send().await;
            }
            _ => drop(done.send(left)),
        }
    }
}

/// 4. Ring: 1,000 actors forward one token with `tell(..).send().await`.
fn ring(plan: &Plan, workers: usize) -> Outcome {
    let rt = runtime(workers)?;
    let members: Vec<ActorRef<Member>> = (0..RING).map(|_| spawn_bounded(&rt, Member::default())).collect();
    for (i, member) in members.iter().enumerate() {
        member.tell(Next(members[(i + 1) % RING].clone())).blocking_send().map_err(|e| failed("tell")(&e))?;
    }
    repeat(
        plan,
        || {
            let (done, finished) = bounded(1);
            timed(|| {
                members[0].tell(Token(plan.hops, done)).blocking_send().map_err(|e| failed("tell")(&e))?;
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
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        state.started.fetch_add(1, Relaxed);
        Ok(state)
    }
}

/// Spawns `n` idle actors from this thread and waits until all started.
fn spawn_idle(
    rt: &Runtime,
    n: usize,
    mailbox: Mailbox,
    started: &Arc<AtomicUsize>,
) -> Result<Vec<ActorRef<Idle>>, Skip> {
    let target = started.load(Relaxed) + n;
    let actors = (0..n)
        .map(|_| {
            let idle = Idle { started: started.clone() };
            match mailbox {
                Mailbox::Bounded => spawn_bounded(rt, idle),
                Mailbox::Default => {
                    let _in_runtime = rt.enter();
                    Idle::spawn(idle)
                }
            }
        })
        .collect();
    wait_until("all started", || started.load(Relaxed) >= target)?;
    Ok(actors)
}

/// 5. Spawn: `plan.actors` idle actors on a fresh runtime, until every
///    `on_start` ran.
fn spawn(plan: &Plan) -> Outcome {
    repeat(
        plan,
        || {
            let rt = runtime(WORKERS)?;
            let started = Arc::new(AtomicUsize::new(0));
            let (elapsed, actors) = timed(|| spawn_idle(&rt, plan.actors, Mailbox::Bounded, &started))?;
            drop(actors);
            drop(rt);
            Ok(elapsed)
        },
        thousands_per_sec(plan.actors as u64),
    )
}

/// 6. Idle memory (in the child process).
fn memory(plan: &Plan, mailbox: Mailbox) -> Result<f64, Skip> {
    let rt = runtime(WORKERS)?;
    let started = Arc::new(AtomicUsize::new(0));
    let first = spawn_idle(&rt, 1, mailbox, &started)?;
    let mut all = Vec::new();
    let bytes = crate::rss_per_actor(plan.actors, || {
        all = spawn_idle(&rt, plan.actors, mailbox, &started)?;
        Ok(())
    })?;
    drop((first, all));
    Ok(bytes)
}

/// Panics on `Fail`; answers how many `Get`s this incarnation handled.
#[derive(Clone, Default)]
struct Fragile {
    handled: u64,
}

impl Actor for Fragile {
    type Args = Self;
    type Error = Infallible;

    async fn on_start(state: Self, _actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        Ok(state)
    }
}

struct Fail;

impl Message<Fail> for Fragile {
    type Reply = ();

    async fn handle(&mut self, _msg: Fail, _ctx: &mut Context<Self, ()>) {
        panic!("injected failure");
    }
}

struct Get;

impl Message<Get> for Fragile {
    type Reply = u64;

    async fn handle(&mut self, _msg: Get, _ctx: &mut Context<Self, u64>) -> u64 {
        self.handled += 1;
        self.handled
    }
}

/// Supervises one `Fragile` child (one-for-one, kameo's default) and hands
/// its `ActorRef` out once, through its start argument.
struct Sup;

impl Actor for Sup {
    type Args = Sender<ActorRef<Fragile>>;
    type Error = Infallible;

    async fn on_start(child_out: Self::Args, actor_ref: ActorRef<Self>) -> Result<Self, Infallible> {
        let child = Fragile::supervise(&actor_ref, Fragile::default())
            .restart_policy(RestartPolicy::Permanent)
            .restart_limit(u32::MAX, Duration::from_secs(1))
            .spawn_with_mailbox(mailbox::bounded(CAPACITY))
            .await;
        let _ = child_out.send(child);
        Ok(Sup)
    }
}

/// 7. Restart: `tell(Fail)`, then `ask(Get)` on the same `ActorRef`; the
///    restarted incarnation must answer 1.
fn restart(plan: &Plan) -> Restarts {
    let rt = runtime(WORKERS)?;
    let (child_out, child_in) = bounded(1);
    let sup = {
        let _in_runtime = rt.enter();
        Sup::spawn_with_mailbox(child_out, mailbox::bounded(CAPACITY))
    };
    let child = child_in.recv_timeout(WAIT).map_err(|_| "supervisor did not start")?;
    let outcome = repeat_restarts(plan, || {
        rt.block_on(async {
            let start = Instant::now();
            child.tell(Fail).await.map_err(|e| failed("tell")(&e))?;
            let handled = child.ask(Get).await.map_err(|e| failed("ask")(&e))?;
            let elapsed = start.elapsed();
            if handled != 1 {
                return Err(format!("answered {handled}, not by a restarted incarnation").into());
            }
            Ok(elapsed)
        })
    });
    drop((child, sup));
    outcome
}
