//! ractor on a tokio multi-thread runtime with 2 worker threads (1 for the
//! 1-worker ring). ractor's mailboxes are unbounded (there is no bounded
//! mailbox to choose), so producers never wait. Plain producer threads
//! `cast`; this thread asks with `call` inside `Runtime::block_on`.
//! Restart: a supervisor actor links its child with `spawn_linked` and
//! spawns a new one on `SupervisionEvent::ActorFailed`; the asker gets the
//! new child's `ActorRef` from the supervisor (a ractor restart gives a new
//! actor with a new address).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use crossbeam_channel::{bounded, Sender};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::runtime::Runtime;

use crate::workload::{
    millions_per_sec, nanos_each, repeat, repeat_restarts, thousands_per_sec, timed, wait_until, Mailbox,
    Outcome, Plan, Restarts, Side, Skip, PRODUCERS, RING, WAIT, WORKERS,
};

/// ractor's column.
pub const SIDE: Side =
    Side { name: "ractor 0.16 (unbounded)", counting, fan_in, ping_pong, ring, spawn, memory, restart };

fn runtime(workers: usize) -> Result<Runtime, Skip> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| Skip::Failed(format!("tokio runtime: {e}")))
}

/// `Ok(value)` of a successful call, an error otherwise.
fn answer<T, M>(result: Result<CallResult<T>, ractor::MessagingErr<M>>) -> Result<T, Skip> {
    match result {
        Ok(CallResult::Success(value)) => Ok(value),
        Ok(CallResult::Timeout) => Err("call timed out".into()),
        Ok(CallResult::SenderError) => Err("reply dropped".into()),
        Err(_) => Err("actor gone".into()),
    }
}

fn spawn_actor<A: Actor>(rt: &Runtime, actor: A, args: A::Arguments) -> Result<ActorRef<A::Msg>, Skip> {
    let (actor_ref, _handle) =
        rt.block_on(Actor::spawn(None, actor, args)).map_err(|e| Skip::Failed(format!("spawn: {e}")))?;
    Ok(actor_ref)
}

enum CountMsg {
    Add(u64),
    Take(RpcReplyPort<(u64, u64)>),
}

/// Counts and sums what it is sent; answers and resets on `Take`.
struct Counter;

impl Actor for Counter {
    type Msg = CountMsg;
    type State = (u64, u64);
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<CountMsg>,
        _args: (),
    ) -> Result<(u64, u64), ActorProcessingErr> {
        Ok((0, 0))
    }

    async fn handle(
        &self,
        _myself: ActorRef<CountMsg>,
        msg: CountMsg,
        state: &mut (u64, u64),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CountMsg::Add(n) => {
                state.0 += 1;
                state.1 = state.1.wrapping_add(n);
            }
            CountMsg::Take(reply) => {
                let _ = reply.send(std::mem::take(state));
            }
        }
        Ok(())
    }
}

fn take(rt: &Runtime, counter: &ActorRef<CountMsg>, expected: u64) -> Result<(), Skip> {
    let got = answer(rt.block_on(counter.call(CountMsg::Take, Some(WAIT))))?;
    if got != (expected, Plan::sum_below(expected)) {
        return Err(format!("counted {got:?}, expected {expected}").into());
    }
    Ok(())
}

fn cast_all(counter: &ActorRef<CountMsg>, range: std::ops::Range<u64>) -> Result<(), Skip> {
    range.into_iter().try_for_each(|n| counter.cast(CountMsg::Add(n)).map_err(|_| Skip::from("counter gone")))
}

/// 1. Counting 1→1: this thread `cast`s, then asks for the count.
fn counting(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let counter = spawn_actor(&rt, Counter, ())?;
    repeat(
        plan,
        || {
            timed(|| {
                cast_all(&counter, 0..plan.messages)?;
                take(&rt, &counter, plan.messages)
            })
            .map(|(d, ())| d)
        },
        millions_per_sec(plan.messages),
    )
}

/// 2. Fan-in 4→1: four producer threads `cast`, then this thread asks.
fn fan_in(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let counter = spawn_actor(&rt, Counter, ())?;
    let per = plan.per_producer();
    repeat(
        plan,
        || {
            timed(|| {
                thread::scope(|scope| {
                    let producers: Vec<_> = (0..PRODUCERS)
                        .map(|p| {
                            let counter = &counter;
                            scope.spawn(move || cast_all(counter, p * per..(p + 1) * per))
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
    type Msg = (u64, RpcReplyPort<u64>);
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<Self::Msg>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        (n, reply): Self::Msg,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}

/// 3. Ping-pong: this thread `call`s the echo actor (no timeout) inside
///    one `block_on`.
fn ping_pong(plan: &Plan) -> Outcome {
    let rt = runtime(WORKERS)?;
    let echo = spawn_actor(&rt, Echo, ())?;
    repeat(
        plan,
        || {
            timed(|| {
                rt.block_on(async {
                    let mut n = 0;
                    for _ in 0..plan.round_trips {
                        n = answer(echo.call(|reply| (n, reply), None).await)?;
                    }
                    Ok(n)
                })
            })
            .map(|(d, _)| d)
        },
        nanos_each(plan.round_trips),
    )
}

enum RingMsg {
    Next(ActorRef<RingMsg>),
    Token(u64, Sender<u64>),
}

struct Member;

impl Actor for Member {
    type Msg = RingMsg;
    type State = Option<ActorRef<RingMsg>>;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<RingMsg>,
        _args: (),
    ) -> Result<Option<ActorRef<RingMsg>>, ActorProcessingErr> {
        Ok(None)
    }

    async fn handle(
        &self,
        _myself: ActorRef<RingMsg>,
        msg: RingMsg,
        next: &mut Option<ActorRef<RingMsg>>,
    ) -> Result<(), ActorProcessingErr> {
        match (msg, next.as_ref()) {
            (RingMsg::Next(addr), _) => *next = Some(addr),
            (RingMsg::Token(left @ 1.., done), Some(next)) => {
                next.cast(RingMsg::Token(left - 1, done)).map_err(|_| "next gone")?;
            }
            (RingMsg::Token(left, done), _) => {
                let _ = done.send(left);
            }
        }
        Ok(())
    }
}

/// 4. Ring: 1,000 actors forward one token with `cast`.
fn ring(plan: &Plan, workers: usize) -> Outcome {
    let rt = runtime(workers)?;
    let members = (0..RING).map(|_| spawn_actor(&rt, Member, ())).collect::<Result<Vec<_>, _>>()?;
    for (i, member) in members.iter().enumerate() {
        member.cast(RingMsg::Next(members[(i + 1) % RING].clone())).map_err(|_| "member gone")?;
    }
    let outcome = repeat(
        plan,
        || {
            let (done, finished) = bounded(1);
            timed(|| {
                members[0].cast(RingMsg::Token(plan.hops, done)).map_err(|_| "member gone")?;
                match finished.recv_timeout(WAIT) {
                    Ok(0) => Ok(()),
                    _ => Err(Skip::from("token lost")),
                }
            })
            .map(|(d, ())| d)
        },
        nanos_each(plan.hops),
    );
    for member in &members {
        member.stop(None);
    }
    outcome
}

/// An idle actor that notes that it started.
struct Idle;

impl Actor for Idle {
    type Msg = u64;
    type State = ();
    type Arguments = Arc<AtomicUsize>;

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        started: Arc<AtomicUsize>,
    ) -> Result<(), ActorProcessingErr> {
        started.fetch_add(1, Relaxed);
        Ok(())
    }
}

/// Spawns `n` idle actors (each `spawn` awaited, inside one `block_on`)
/// and waits until all started.
fn spawn_idle(rt: &Runtime, n: usize, started: &Arc<AtomicUsize>) -> Result<Vec<ActorRef<u64>>, Skip> {
    let target = started.load(Relaxed) + n;
    let actors = rt.block_on(async {
        let mut actors = Vec::with_capacity(n);
        for _ in 0..n {
            let (actor, _handle) = Actor::spawn(None, Idle, started.clone())
                .await
                .map_err(|e| Skip::Failed(format!("spawn: {e}")))?;
            actors.push(actor);
        }
        Ok::<_, Skip>(actors)
    })?;
    wait_until("all started", || started.load(Relaxed) >= target)?;
    Ok(actors)
}

/// 5. Spawn: `plan.actors` idle actors on a fresh runtime, until every
///    `pre_start` ran.
fn spawn(plan: &Plan) -> Outcome {
    repeat(
        plan,
        || {
            let rt = runtime(WORKERS)?;
            let started = Arc::new(AtomicUsize::new(0));
            let (elapsed, actors) = timed(|| spawn_idle(&rt, plan.actors, &started))?;
            for actor in &actors {
                actor.stop(None);
            }
            drop(rt);
            Ok(elapsed)
        },
        thousands_per_sec(plan.actors as u64),
    )
}

/// 6. Idle memory (in the child process). Both rows are ractor's only,
///    unbounded, mailbox.
fn memory(plan: &Plan, _mailbox: Mailbox) -> Result<f64, Skip> {
    let rt = runtime(WORKERS)?;
    let started = Arc::new(AtomicUsize::new(0));
    let first = spawn_idle(&rt, 1, &started)?;
    let mut all = Vec::new();
    let bytes = crate::rss_per_actor(plan.actors, || {
        all = spawn_idle(&rt, plan.actors, &started)?;
        Ok(())
    })?;
    drop((first, all));
    Ok(bytes)
}

enum FragileMsg {
    Fail,
    Get(RpcReplyPort<u64>),
}

/// Panics on `Fail`; answers how many `Get`s this incarnation handled.
struct Fragile;

impl Actor for Fragile {
    type Msg = FragileMsg;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<FragileMsg>, _args: ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _myself: ActorRef<FragileMsg>,
        msg: FragileMsg,
        handled: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            FragileMsg::Fail => panic!("injected failure"),
            FragileMsg::Get(reply) => {
                *handled += 1;
                let _ = reply.send(*handled);
            }
        }
        Ok(())
    }
}

/// The supervisor's one request: "the child of a generation newer than
/// this one", answered once such a child runs.
struct ChildAfter(u64, RpcReplyPort<(u64, ActorRef<FragileMsg>)>);

struct SupState {
    child: ActorRef<FragileMsg>,
    generation: u64,
    waiting: Vec<ChildAfter>,
}

/// Restarts its linked `Fragile` child whenever it fails.
struct Sup;

impl Actor for Sup {
    type Msg = ChildAfter;
    type State = SupState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<ChildAfter>,
        _args: (),
    ) -> Result<SupState, ActorProcessingErr> {
        let (child, _) = Actor::spawn_linked(None, Fragile, (), myself.get_cell()).await?;
        Ok(SupState { child, generation: 1, waiting: Vec::new() })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ChildAfter>,
        request: ChildAfter,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        state.waiting.push(request);
        answer_waiting(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<ChildAfter>,
        event: SupervisionEvent,
        state: &mut SupState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(..) = event {
            let (child, _) = Actor::spawn_linked(None, Fragile, (), myself.get_cell()).await?;
            state.child = child;
            state.generation += 1;
            answer_waiting(state);
        }
        Ok(())
    }
}

fn answer_waiting(state: &mut SupState) {
    let generation = state.generation;
    let (ready, waiting) = std::mem::take(&mut state.waiting).into_iter().partition(|w| w.0 < generation);
    state.waiting = waiting;
    for ChildAfter(_, reply) in ready {
        let _ = reply.send((generation, state.child.clone()));
    }
}

/// 7. Restart: `cast(Fail)` to the child, ask the supervisor for the
///    restarted child, ask that child (it must answer 1).
fn restart(plan: &Plan) -> Restarts {
    let rt = runtime(WORKERS)?;
    let sup = spawn_actor(&rt, Sup, ())?;
    let mut current = answer(rt.block_on(sup.call(|reply| ChildAfter(0, reply), Some(WAIT))))?;
    let outcome = repeat_restarts(plan, || {
        rt.block_on(async {
            let start = Instant::now();
            current.1.cast(FragileMsg::Fail).map_err(|_| "child gone")?;
            current = answer(sup.call(|reply| ChildAfter(current.0, reply), Some(WAIT)).await)?;
            let handled = answer(current.1.call(FragileMsg::Get, Some(WAIT)).await)?;
            let elapsed = start.elapsed();
            if handled != 1 {
                return Err(format!("answered {handled}, not by a restarted actor").into());
            }
            Ok(elapsed)
        })
    });
    sup.stop(None);
    outcome
}
