//! The supervision state of one cell: its children, how they are started,
//! stopped and restarted, and the restart intensity.
//!
//! # Who runs it
//!
//! A node belongs to one cell instance, its *owner*. Children report to it
//! from any thread ([`NodeLink::child_started`], [`NodeLink::child_exited`]),
//! as do timers and requests from [`Supervisor`](crate::Supervisor) handles:
//! each pushes an event and schedules the owner
//! ([`SupervisedCell::supervise`](super::child::SupervisedCell::supervise)).
//! The events are processed in the owner's turn ([`NodeLink::process`]), one
//! at a time, so the supervisor logic never runs concurrently with itself or
//! with the owner's hooks, and never blocks a worker: stopping children one
//! by one is a sequence of events (each child's exit, or its timeout), not
//! a wait.
//!
//! # Operations
//!
//! At most one sequenced operation runs at a time: starting children in
//! order, or stopping them in reverse order, optionally then a backoff
//! delay, then starting them again (a group restart). Exits and requests
//! that arrive meanwhile are deferred until it completes, as an OTP
//! supervisor's mailbox would hold them.

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use crate::ask::Reply;
use crate::cell::SpawnError;
use crate::cell::{Cell, CellConfig, StopReason};
use crate::failure::{Failure, FailureCause, Hook};
use crate::path::CellPath;

use crate::sync::{Arc, Mutex, Weak};
use crate::timer::TimerHandle;

use super::child::{
    ChildRequest, ChildStop, NodeLink, Origin, Services, SpawnChild, Supervised, SupervisedCell,
};
use super::error::{ChildError, StartError};
use super::info::{
    ChildCounts, ChildInfo, ChildState, CountedRestart, Escalation, RestartIntensity, SupervisionEvent,
    SupervisionEventKind,
};
use super::spec::{validate_child, AutoShutdown, ChildSpec, Flags, Restart, Shutdown, SpecError, Strategy};
use super::start::{ChildName, ChildPlacement, StartChild, StartedChild};
use super::window::RestartWindow;

/// How long a killed child's handler may take to return before the child
/// is abandoned.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How many supervision events a node keeps.
const HISTORY_KEPT: usize = 256;

/// What a child tells its supervisor when an incarnation ends.
#[derive(Clone, Debug)]
pub(crate) struct ChildExit {
    pub(crate) reason: StopReason,
    /// Whether the incarnation had reported that it started.
    pub(crate) started: bool,
    /// Whether the instance is suspended and can be restarted in place
    /// (else it terminated for good).
    pub(crate) kept: bool,
}

/// What the owner must do after its node processed events.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Every static child started: a supervisor reports that it started.
    StartedAll,
    /// A static child failed to start; the ones before it were stopped.
    StartFailed(Box<Failure>),
    /// Restart intensity exceeded: the owner ends, and escalates.
    Escalate(Box<Escalation>),
    /// Significant children exited: the owner shuts down.
    AutoShutdown,
}

/// A request from a [`Supervisor`](crate::Supervisor) handle.
#[allow(clippy::enum_variant_names)]
pub(crate) enum Command {
    StartChild {
        spec: ChildSpec,
        reply: Reply<Result<Arc<dyn Any + Send + Sync>, StartError>>,
    },
    StartPoolChild {
        /// The message type the caller expects the template to handle.
        message: (TypeId, &'static str),
        reply: Reply<Result<Arc<dyn Any + Send + Sync>, StartError>>,
    },
    TerminateChild {
        id: String,
        reply: Reply<Result<(), ChildError>>,
    },
    RestartChild {
        id: String,
        reply: Reply<Result<(), ChildError>>,
    },
    DeleteChild {
        id: String,
        reply: Reply<Result<(), ChildError>>,
    },
}

enum Event {
    Started(u64),
    Exited(u64, ChildExit),
    Tick(u64),
    Command(Command),
}

/// Where a child is in its life, as the supervisor tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// Spawned or restarted; `started` has not reported yet.
    Starting,
    Running,
    /// Told to stop; its exit has not arrived.
    Stopping,
    /// Exited; kept (suspended) or waiting for a restart.
    Waiting,
    /// Not running, not to be restarted until asked.
    Stopped,
}

impl Status {
    fn is_alive(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Stopping)
    }
}

struct Child {
    /// The current instance's id; events are keyed by it.
    key: u64,
    id: String,
    path: CellPath,
    spec: ChildSpec,
    handle: Option<Arc<dyn SupervisedCell>>,
    addr: Arc<dyn Any + Send + Sync>,
    status: Status,
    restarts: u32,
    /// Restarts in a row, for the backoff.
    consecutive: u32,
    running_since: Option<Instant>,
    /// How long its last incarnation ran, for the backoff's reset.
    last_run: Duration,
    /// The timer of a pending (backed-off) restart.
    pending_tick: Option<u64>,
    /// From the supervisor spec (restarted with the supervisor) rather than
    /// added at run time (lost when the supervisor's incarnation ends).
    is_static: bool,
    /// Placed by recomposition beside a child ([`Node::adopt`]): restarted
    /// with the supervisor like a static child, forgotten like a run-time
    /// one once it stops for good.
    placed: bool,
    /// Did not stop within its timeout during a group restart; restarted
    /// when its exit arrives.
    overdue: bool,
}

enum StartPurpose {
    /// The owner's incarnation starts its static children.
    Init,
    /// A group restart.
    Group { trigger: String },
}

enum StopPurpose {
    /// A group restart: then start `ids` (start order) after `delay`.
    Group { ids: Vec<String>, delay: Duration, trigger: String },
    /// A group restart failed to start a child: stop what started, count a
    /// restart, then try the group again.
    GroupRetry { ids: Vec<String>, trigger: String, reason: StopReason },
    /// The owner's start failed at a child: stop what started, then fail.
    StartAborted(Box<Failure>),
    /// The owner's incarnation ends.
    OwnerEnding,
    /// `terminate_child` (and `delete_child` after it when `delete`).
    Terminate { id: String, reply: Option<Reply<Result<(), ChildError>>> },
}

enum Op {
    Start {
        queue: VecDeque<String>,
        /// The static specs of queued children that have no record yet
        /// (spawned afresh when their turn comes), by id.
        fresh: HashMap<String, ChildSpec>,
        waiting: Option<u64>,
        started: Vec<String>,
        purpose: StartPurpose,
    },
    Stop {
        queue: VecDeque<u64>,
        /// Children told to stop whose exit has not arrived (by key), with
        /// the tick of their shutdown timeout: at most one unless
        /// `parallel`.
        waiting: HashMap<u64, Option<u64>>,
        /// The shutdown timeouts of `waiting`, by tick.
        timeouts: HashMap<u64, u64>,
        /// Every child is told at once (a pool's end, as OTP stops a
        /// `simple_one_for_one` supervisor's children); else one at a
        /// time, each after the previous one's exit.
        parallel: bool,
        cause: ChildStop,
        purpose: StopPurpose,
    },
    Backoff {
        tick: u64,
        ids: Vec<String>,
        trigger: String,
    },
}

impl Op {
    fn stop(queue: VecDeque<u64>, cause: ChildStop, purpose: StopPurpose, parallel: bool) -> Op {
        Op::Stop { queue, waiting: HashMap::new(), timeouts: HashMap::new(), parallel, cause, purpose }
    }
}

/// Who waits for a child's start.
enum StartWaiter {
    /// `Context::start_child`: nobody waits; a failed start removes it.
    Nobody,
    /// `start_child`, `start_pool_child`: a failed start removes it.
    Reply(Reply<Result<Arc<dyn Any + Send + Sync>, StartError>>),
    /// `restart_child`: a failed start leaves it stopped.
    Restart(Reply<Result<(), ChildError>>),
}

struct NodeState {
    flags: Flags,
    statics: Vec<ChildSpec>,
    template: Option<ChildSpec>,
    children: Vec<Child>,
    /// Where each child is in `children`, by key: exits and starts of a
    /// large pool are found without a scan.
    keys: HashMap<u64, usize>,
    /// Where each child is in `children`, by id: starting, restarting and
    /// managing children take constant time per child, whatever their
    /// number.
    ids: HashMap<String, usize>,
    events: VecDeque<Event>,
    deferred: VecDeque<Event>,
    op: Option<Op>,
    window: RestartWindow,
    history: VecDeque<SupervisionEvent>,
    ticks: u64,
    /// Timers set and not yet fired, by tick: a stop's timeout is
    /// cancelled when the child's exit comes first, so that a wide
    /// supervisor's stops do not leave one late tick per child.
    armed: HashMap<u64, TimerHandle>,
    /// The child (by key) each backoff tick restarts.
    backoff_ticks: HashMap<u64, u64>,
    waiters: Vec<(u64, StartWaiter)>,
    owner_ending: bool,
    /// The owner terminated: children that exit retire themselves.
    retired: bool,
    outcomes: Vec<Outcome>,
    rng: u64,
}

/// The supervision state of one cell. See the module docs.
pub(crate) struct Node {
    owner: Weak<dyn SupervisedCell>,
    path: CellPath,
    dispatcher: Arc<str>,
    services: Arc<dyn Services>,
    me: Weak<Node>,
    /// A declared supervisor: starts its static children with each incarnation.
    supervisor: bool,
    state: Mutex<NodeState>,
}

/// What a declared supervisor starts with.
#[derive(Clone)]
pub(crate) struct NodeSeed {
    pub(crate) flags: Flags,
    pub(crate) statics: Vec<ChildSpec>,
    pub(crate) template: Option<ChildSpec>,
}

impl Node {
    /// A node for `owner`: a declared supervisor's with its `seed`, else a
    /// cell's own children's, with default flags and no static children.
    pub(crate) fn with_seed(
        owner: Weak<dyn SupervisedCell>,
        path: CellPath,
        dispatcher: Arc<str>,
        services: Arc<dyn Services>,
        seed: Option<NodeSeed>,
    ) -> Arc<Node> {
        let supervisor = seed.is_some();
        let seed = seed.unwrap_or(NodeSeed { flags: Flags::default(), statics: Vec::new(), template: None });
        let rng = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write(path.as_str().as_bytes());
            h.finish() | 1
        };
        Arc::new_cyclic(|me| Node {
            owner,
            path,
            dispatcher,
            services,
            me: me.clone(),
            supervisor,
            state: Mutex::new(NodeState {
                flags: seed.flags,
                statics: seed.statics,
                template: seed.template,
                children: Vec::new(),
                keys: HashMap::new(),
                ids: HashMap::new(),
                events: VecDeque::new(),
                deferred: VecDeque::new(),
                op: None,
                window: RestartWindow::default(),
                history: VecDeque::new(),
                ticks: 0,
                armed: HashMap::new(),
                backoff_ticks: HashMap::new(),
                waiters: Vec::new(),
                owner_ending: false,
                retired: false,
                outcomes: Vec::new(),
                rng,
            }),
        })
    }

    pub(crate) fn path(&self) -> &CellPath {
        &self.path
    }

    /// What the node uses of the runtime.
    pub(crate) fn services(&self) -> &Arc<dyn Services> {
        &self.services
    }

    /// New flags for a cell supervising its own children.
    pub(crate) fn set_flags(&self, flags: Flags) {
        self.state.lock().flags = flags;
    }

    /// The node of the owner's own supervisor; `None` for a top-level owner.
    pub(crate) fn parent(&self) -> Option<Arc<Node>> {
        self.owner.upgrade()?.supervisor()
    }

    /// Asks the owner to stop (its children first, in its turn).
    pub(crate) fn stop_owner(&self, cause: ChildStop) {
        if let Some(owner) = self.owner.upgrade() {
            owner.stop(cause);
        }
    }

    fn push(&self, event: Event) {
        self.state.lock().events.push_back(event);
        if let Some(owner) = self.owner.upgrade() {
            owner.supervise();
        }
    }

    /// A request from a supervisor handle.
    pub(crate) fn command(&self, command: Command) {
        self.push(Event::Command(command));
    }

    /// The owner is gone: takes every child out, and sends the children
    /// that exit from now on to retire themselves.
    fn take_children(&self) -> Vec<Child> {
        let mut state = self.state.lock();
        state.retired = true;
        state.op = None;
        state.waiters.clear();
        state.keys.clear();
        state.ids.clear();
        std::mem::take(&mut state.children)
    }

    fn refuse(&self, event: Event) {
        if let Event::Command(command) = event {
            refuse_command(command, ChildError::SupervisorStopping);
        }
    }

    fn on_event(&self, state: &mut NodeState, event: Event) {
        match event {
            Event::Started(key) => self.on_started(state, key),
            Event::Exited(key, exit) => self.on_exited(state, key, exit),
            Event::Tick(tick) => self.on_tick(state, tick),
            Event::Command(command) => {
                if state.op.is_some() {
                    state.deferred.push_back(Event::Command(command));
                } else if state.owner_ending || state.retired {
                    refuse_command(command, ChildError::SupervisorStopping);
                } else {
                    self.on_command(state, command);
                }
            }
        }
    }

    fn on_started(&self, state: &mut NodeState, key: u64) {
        let Some(index) = state.index_of_key(key) else { return };
        let child = &mut state.children[index];
        if child.status == Status::Starting {
            child.status = Status::Running;
            child.running_since = Some(Instant::now());
        }
        let addr = child.addr.clone();
        if let Some(position) = state.waiters.iter().position(|(k, _)| *k == key) {
            match state.waiters.swap_remove(position) {
                (_, StartWaiter::Reply(reply)) => drop(reply.send(Ok(addr))),
                (_, StartWaiter::Restart(reply)) => drop(reply.send(Ok(()))),
                (_, StartWaiter::Nobody) => {}
            }
        }
        if let Some(Op::Start { waiting, .. }) = &mut state.op {
            if *waiting == Some(key) {
                *waiting = None;
                if let Some(Op::Start { started, .. }) = &mut state.op {
                    started.push(state.children[index].id.clone());
                }
                self.advance_start(state);
            }
        }
    }

    fn on_exited(&self, state: &mut NodeState, key: u64, exit: ChildExit) {
        let Some(index) = state.index_of_key(key) else {
            // Not (or no longer) ours: nobody will restart it.
            if exit.kept {
                if let Some(child) = self.services.cell(key) {
                    retire(&*child);
                }
            }
            return;
        };
        {
            let child = &mut state.children[index];
            child.status = if exit.kept { Status::Waiting } else { Status::Stopped };
            child.last_run = child.running_since.take().map_or(Duration::ZERO, |since| since.elapsed());
        }
        if exit.reason == StopReason::Ignored {
            self.on_ignored(state, index, key);
            return;
        }
        // A requested restart that failed: the child stays stopped.
        if let Some(position) =
            state.waiters.iter().position(|(k, w)| *k == key && matches!(w, StartWaiter::Restart(_)))
        {
            if let (_, StartWaiter::Restart(reply)) = state.waiters.swap_remove(position) {
                let child = &mut state.children[index];
                child.stop_for_good();
                let id = child.id.clone();
                self.record(state, &id, SupervisionEventKind::StartFailed(exit.reason.clone()));
                let _ = reply.send(Err(ChildError::StartFailed { id, reason: exit.reason }));
                return;
            }
        }
        // A first start that failed.
        if let Some(position) = state.waiters.iter().position(|(k, _)| *k == key) {
            if !exit.started {
                let (_, waiter) = state.waiters.swap_remove(position);
                let child = state.remove_child(index);
                if child.kept() {
                    if let Some(handle) = &child.handle {
                        retire(&**handle);
                    }
                }
                self.record(state, &child.id, SupervisionEventKind::StartFailed(exit.reason.clone()));
                if let StartWaiter::Reply(reply) = waiter {
                    let _ = reply.send(Err(StartError::ChildFailed {
                        id: child.id,
                        path: child.path,
                        reason: exit.reason,
                    }));
                }
                return;
            }
            state.waiters.swap_remove(position);
        }
        match &mut state.op {
            Some(Op::Stop { waiting, timeouts, .. }) if waiting.contains_key(&key) => {
                if let Some(Some(tick)) = waiting.remove(&key) {
                    timeouts.remove(&tick);
                    if let Some(timer) = state.armed.remove(&tick) {
                        timer.cancel();
                    }
                }
                self.advance_stop(state);
            }
            Some(Op::Start { waiting: Some(waited), .. }) if *waited == key => {
                self.start_failed_in_op(state, index, exit);
            }
            Some(_) => state.deferred.push_back(Event::Exited(key, exit)),
            None if state.owner_ending => {}
            None => self.handle_exit(state, index, exit),
        }
    }

    /// A child's start said there was nothing to run: it is kept, stopped,
    /// and its start counts as done. A pool drops it.
    fn on_ignored(&self, state: &mut NodeState, index: usize, key: u64) {
        let id = state.children[index].id.clone();
        state.children[index].status = Status::Stopped;
        self.record(state, &id, SupervisionEventKind::Ignored);
        let pool_child = !state.children[index].is_static && state.flags.strategy == Strategy::Pool;
        if pool_child {
            state.remove_child(index);
        }
        if let Some(position) = state.waiters.iter().position(|(k, _)| *k == key) {
            match state.waiters.swap_remove(position) {
                (_, StartWaiter::Reply(reply)) if pool_child => {
                    drop(reply.send(Err(StartError::Ignored { id })))
                }
                (_, StartWaiter::Reply(reply)) => {
                    let addr = state.children[index].addr.clone();
                    drop(reply.send(Ok(addr)));
                }
                (_, StartWaiter::Restart(reply)) => drop(reply.send(Ok(()))),
                (_, StartWaiter::Nobody) => {}
            }
        }
        match &mut state.op {
            Some(Op::Start { waiting, .. }) if *waiting == Some(key) => {
                *waiting = None;
                self.advance_start(state);
            }
            // Not an exit of a running child: nothing is restarted, and no
            // significant child ended.
            _ => {}
        }
    }

    fn on_tick(&self, state: &mut NodeState, tick: u64) {
        // A stop's timeout cancelled after it fired is in neither map.
        let armed = state.armed.remove(&tick).is_some();
        match &state.op {
            _ if !armed => {}
            Some(Op::Stop { timeouts, .. }) if timeouts.contains_key(&tick) => {
                let key = timeouts[&tick];
                self.stop_timed_out(state, key);
                return;
            }
            Some(Op::Backoff { tick: t, .. }) if *t == tick => {
                if let Some(Op::Backoff { ids, trigger, .. }) = state.op.take() {
                    state.op =
                        Some(state.start_op(ids.into_iter().collect(), StartPurpose::Group { trigger }));
                    self.advance_start(state);
                }
                return;
            }
            _ => {}
        }
        let Some(key) = state.backoff_ticks.remove(&tick) else { return };
        let Some(index) = state.index_of_key(key) else { return };
        if state.children[index].pending_tick != Some(tick) {
            return;
        }
        if state.op.is_some() {
            // Handled after the operation.
            state.backoff_ticks.insert(tick, key);
            state.deferred.push_back(Event::Tick(tick));
        } else {
            self.restart_now(state, index);
        }
    }

    /// A spontaneous exit, with no operation running: the restart decision.
    fn handle_exit(&self, state: &mut NodeState, index: usize, exit: ChildExit) {
        let child = &mut state.children[index];
        if child.overdue {
            // Stopped late during a group restart that has moved on.
            child.overdue = false;
            self.restart_now(state, index);
            return;
        }
        let restart = exit.kept
            && !self.services.is_shutting_down()
            && match child.spec.restart {
                Restart::Permanent => true,
                Restart::Transient => exit.reason.is_abnormal(),
                Restart::Temporary => false,
            };
        let id = child.id.clone();
        self.record(state, &id, SupervisionEventKind::Exited(exit.reason.clone()));
        if !restart {
            let child = &mut state.children[index];
            child.stop_for_good();
            let significant = child.spec.significant;
            if child.spec.restart == Restart::Temporary || !child.is_static {
                let child = state.remove_child(index);
                if child.spec.restart == Restart::Temporary {
                    state.statics.retain(|s| s.id != child.id);
                }
            }
            if significant {
                self.auto_shutdown(state);
            }
            return;
        }
        let (max, period) = (state.flags.max_restarts, state.flags.period);
        if !state.window.admit_child(Instant::now(), max, period, id.clone()) {
            self.give_up(state, &id, exit.reason);
            return;
        }
        let delay = self.backoff(state, index);
        let child = &mut state.children[index];
        child.restarts += 1;
        let restarts = child.restarts;
        self.record(state, &id, SupervisionEventKind::Restarting { restarts, delay });
        match state.flags.strategy {
            Strategy::OneForOne | Strategy::Pool => self.schedule_restart(state, index, delay),
            Strategy::OneForAll => {
                let members: Vec<usize> = (0..state.children.len()).collect();
                self.begin_group(state, &id, members, delay);
            }
            Strategy::RestForOne => {
                let members: Vec<usize> = (index..state.children.len()).collect();
                self.begin_group(state, &id, members, delay);
            }
        }
    }

    /// The restart intensity is exceeded: the owner ends and escalates.
    fn give_up(&self, state: &mut NodeState, id: &str, reason: StopReason) {
        let child_path = state.index_of_id(id).map(|i| state.children[i].path.clone());
        let escalation = Escalation {
            supervisor: self.path.clone(),
            child: child_path.unwrap_or_else(|| self.path.clone()),
            reason,
            max_restarts: state.flags.max_restarts,
            period: state.flags.period,
            // The refused restart is the last counted: `child`'s exit.
            restarts: {
                let counted: Vec<CountedRestart> = state.window.counted().cloned().collect();
                let kept = counted.len().saturating_sub(1);
                counted.into_iter().take(kept).collect()
            },
        };
        tracing::error!(
            supervisor = %self.path,
            child = id,
            max_restarts = escalation.max_restarts,
            period = ?escalation.period,
            "restart intensity exceeded; the supervisor gives up"
        );
        self.record(state, id, SupervisionEventKind::GaveUp);
        state.outcomes.push(Outcome::Escalate(Box::new(escalation)));
    }

    fn auto_shutdown(&self, state: &mut NodeState) {
        let shut = match state.flags.auto_shutdown {
            AutoShutdown::Never => false,
            AutoShutdown::AnySignificant => true,
            AutoShutdown::AllSignificant => {
                !state.children.iter().any(|c| c.spec.significant && c.status != Status::Stopped)
            }
        };
        if shut {
            tracing::info!(supervisor = %self.path, "significant children exited; shutting down");
            let path = self.path.as_str().to_owned();
            self.record(state, &path, SupervisionEventKind::AutoShutdown);
            state.outcomes.push(Outcome::AutoShutdown);
        }
    }

    /// The delay before a child's next restart; counts it as consecutive
    /// unless the child ran quietly for the reset period.
    fn backoff(&self, state: &mut NodeState, index: usize) -> Duration {
        let backoff = state.flags.backoff;
        let child = &mut state.children[index];
        if !backoff.reset_after.is_zero() && child.last_run >= backoff.reset_after {
            child.consecutive = 0;
        }
        child.consecutive = child.consecutive.saturating_add(1);
        let base = backoff.base_delay(child.consecutive);
        if base.is_zero() || backoff.jitter == 0.0 {
            return base;
        }
        // xorshift64*: enough to spread siblings apart, not for secrets.
        state.rng ^= state.rng << 13;
        state.rng ^= state.rng >> 7;
        state.rng ^= state.rng << 17;
        let unit = (state.rng >> 11) as f64 / (1_u64 << 53) as f64;
        // Saturating: a base near `Duration::MAX` plus its jitter waits
        // without a bound rather than overflowing.
        base.saturating_add(base.mul_f64(backoff.jitter * unit))
    }

    fn schedule_restart(&self, state: &mut NodeState, index: usize, delay: Duration) {
        state.children[index].status = Status::Waiting;
        if delay.is_zero() {
            self.restart_now(state, index);
            return;
        }
        let tick = self.timer(state, delay);
        state.children[index].pending_tick = Some(tick);
        state.backoff_ticks.insert(tick, state.children[index].key);
    }

    /// Schedules a `Tick` event after `delay`; returns its number.
    fn timer(&self, state: &mut NodeState, delay: Duration) -> u64 {
        state.ticks += 1;
        let tick = state.ticks;
        let node = self.me.clone();
        let timer = self.services.call_after(
            delay,
            Box::new(move || {
                if let Some(node) = node.upgrade() {
                    node.push(Event::Tick(tick));
                }
            }),
        );
        state.armed.insert(tick, timer);
        tick
    }

    /// Restarts one child now: in place if it is kept, else as a fresh
    /// instance behind the same address.
    fn restart_now(&self, state: &mut NodeState, index: usize) {
        let child = &mut state.children[index];
        child.pending_tick = None;
        if child.kept() {
            if let Some(handle) = &child.handle {
                child.status = Status::Starting;
                handle.restart();
                return;
            }
        }
        if child.status.is_alive() {
            return;
        }
        let spec = child.spec.clone();
        let addr = child.addr.clone();
        let name = if child.is_static || state.flags.strategy != Strategy::Pool {
            ChildName::Named(child.id.clone())
        } else {
            ChildName::Numbered
        };
        match self.spawn(&spec, name, Some(&addr)) {
            Ok(started) => {
                let child = &mut state.children[index];
                let old = std::mem::replace(&mut child.key, started.handle.id());
                state.keys.remove(&old);
                state.keys.insert(started.handle.id(), index);
                child.handle = Some(started.handle.clone());
                child.status = Status::Starting;
                started.handle.begin();
            }
            Err(err) => {
                tracing::warn!(supervisor = %self.path, child = %spec.id, %err, "cannot restart child");
                state.children[index].status = Status::Stopped;
            }
        }
    }

    fn spawn(
        &self,
        spec: &ChildSpec,
        name: ChildName,
        existing: Option<&Arc<dyn Any + Send + Sync>>,
    ) -> Result<StartedChild, SpawnError> {
        let me = self.me.upgrade().ok_or(SpawnError::ShutDown)?;
        spec.start.start(spec, ChildPlacement { parent: &me, name, existing })
    }

    /// Starts a group restart: stop the live members in reverse order, then
    /// start them all in order (temporary ones are not restarted).
    fn begin_group(&self, state: &mut NodeState, trigger: &str, members: Vec<usize>, delay: Duration) {
        let keys: HashSet<u64> = members.iter().map(|&i| state.children[i].key).collect();
        state.deferred.retain(|event| match event {
            Event::Exited(key, _) => !keys.contains(key),
            _ => true,
        });
        for &i in &members {
            state.children[i].pending_tick = None;
        }
        let queue: VecDeque<u64> = members
            .iter()
            .rev()
            .filter(|&&i| state.children[i].status.is_alive())
            .map(|&i| state.children[i].key)
            .collect();
        let ids = members.iter().map(|&i| state.children[i].id.clone()).collect();
        let purpose = StopPurpose::Group { ids, delay, trigger: trigger.to_owned() };
        state.op = Some(Op::stop(queue, ChildStop::GroupRestart, purpose, false));
        self.advance_stop(state);
    }

    /// Tells the next child of a stop operation to stop (every child, when
    /// it stops them in parallel), or completes it once none is left.
    fn advance_stop(&self, state: &mut NodeState) {
        loop {
            let Some(Op::Stop { queue, waiting, parallel, cause, .. }) = &mut state.op else { return };
            if !waiting.is_empty() && !*parallel {
                return;
            }
            let cause = *cause;
            let Some(key) = queue.pop_front() else {
                if waiting.is_empty() {
                    break;
                }
                return;
            };
            let Some(index) = state.index_of_key(key) else { continue };
            let child = &mut state.children[index];
            if !child.status.is_alive() {
                continue;
            }
            let Some(handle) = child.handle.clone() else { continue };
            child.status = Status::Stopping;
            let shutdown = child.spec.shutdown;
            let tick = match shutdown {
                Shutdown::Kill => {
                    // The kill takes effect at the child's next system
                    // check: a handler that does not return is abandoned.
                    handle.stop(ChildStop::Kill);
                    Some(self.timer(state, KILL_GRACE))
                }
                Shutdown::Timeout(timeout) => {
                    handle.stop(cause);
                    Some(self.timer(state, timeout))
                }
                Shutdown::Infinity => {
                    handle.stop(cause);
                    None
                }
            };
            if let Some(Op::Stop { waiting, timeouts, .. }) = &mut state.op {
                waiting.insert(key, tick);
                if let Some(tick) = tick {
                    timeouts.insert(tick, key);
                }
            }
        }
        let Some(Op::Stop { purpose, .. }) = state.op.take() else { return };
        self.finish_stop(state, purpose);
    }

    /// A child did not stop within its shutdown timeout.
    fn stop_timed_out(&self, state: &mut NodeState, key: u64) {
        let group = matches!(
            state.op,
            Some(Op::Stop { purpose: StopPurpose::Group { .. } | StopPurpose::GroupRetry { .. }, .. })
        );
        if let Some(index) = state.index_of_key(key) {
            let child = &mut state.children[index];
            let id = child.id.clone();
            if group {
                // It restarts once its handler returns and it exits.
                child.overdue = true;
                tracing::warn!(supervisor = %self.path, child = %id, "child overran its shutdown timeout during a group restart");
                self.record(state, &id, SupervisionEventKind::Overdue);
            } else if let Some(handle) = child.handle.clone() {
                child.status = Status::Stopped;
                let discarded = handle.abandon();
                self.services.count_undelivered(&child.path, discarded);
                tracing::warn!(
                    supervisor = %self.path,
                    child = %id,
                    discarded,
                    "child did not stop within its shutdown timeout; abandoned with its mailbox closed"
                );
                self.record(state, &id, SupervisionEventKind::Abandoned);
            }
        }
        if let Some(Op::Stop { waiting, timeouts, .. }) = &mut state.op {
            if let Some(Some(tick)) = waiting.remove(&key) {
                timeouts.remove(&tick);
            }
        }
        self.advance_stop(state);
    }

    fn finish_stop(&self, state: &mut NodeState, purpose: StopPurpose) {
        match purpose {
            StopPurpose::Group { ids, delay, trigger } => {
                // The trigger's restart was counted when it exited.
                self.count_group_restart(state, &ids, Some(&trigger));
                self.start_group(state, ids, delay, trigger)
            }
            StopPurpose::GroupRetry { ids, trigger, reason } => {
                let (max, period) = (state.flags.max_restarts, state.flags.period);
                if !state.window.admit_child(Instant::now(), max, period, trigger.clone()) {
                    self.give_up(state, &trigger, reason);
                    return;
                }
                self.count_group_restart(state, &ids, None);
                self.start_group(state, ids, Duration::ZERO, trigger);
            }
            StopPurpose::StartAborted(failure) => state.outcomes.push(Outcome::StartFailed(failure)),
            StopPurpose::OwnerEnding => {
                // Run-time children go with this incarnation; static ones
                // stay suspended for the next (or are retired with the owner).
                let mut kept = Vec::new();
                for child in std::mem::take(&mut state.children) {
                    if (child.is_static || child.placed) && child.spec.restart != Restart::Temporary {
                        kept.push(child);
                    } else if child.kept() {
                        if let Some(handle) = &child.handle {
                            retire(&**handle);
                        }
                    }
                }
                state.children = kept;
                state.reindex();
                // The owner's turn sees `children_stopped` and goes on ending.
                state.statics.retain(|s| s.restart != Restart::Temporary);
            }
            StopPurpose::Terminate { id, reply } => {
                if let Some(index) = state.index_of_id(&id) {
                    let child = &mut state.children[index];
                    child.stop_for_good();
                    if child.spec.restart == Restart::Temporary
                        || !child.is_static && state.flags.strategy == Strategy::Pool
                    {
                        state.remove_child(index);
                        state.statics.retain(|s| s.id != id);
                    }
                }
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
        }
    }

    /// Counts a restart for each member of a group restart but `counted`.
    fn count_group_restart(&self, state: &mut NodeState, ids: &[String], counted: Option<&String>) {
        let ids: HashSet<&String> = ids.iter().collect();
        for child in state.children.iter_mut() {
            if ids.contains(&child.id)
                && Some(&child.id) != counted
                && child.spec.restart != Restart::Temporary
            {
                child.restarts += 1;
            }
        }
    }

    /// After a group stop: waits out the backoff, then starts the members.
    fn start_group(&self, state: &mut NodeState, ids: Vec<String>, delay: Duration, trigger: String) {
        // Temporary members are not restarted: their specs are forgotten.
        let mut remaining = Vec::new();
        let mut forgotten = HashSet::new();
        for id in ids {
            let Some(index) = state.index_of_id(&id) else { continue };
            let child = &state.children[index];
            if child.spec.restart == Restart::Temporary {
                if child.kept() {
                    if let Some(handle) = &child.handle {
                        retire(&**handle);
                    }
                }
                forgotten.insert(id);
            } else {
                remaining.push(id);
            }
        }
        if !forgotten.is_empty() {
            state.children.retain(|c| !forgotten.contains(&c.id));
            state.statics.retain(|s| !forgotten.contains(&s.id));
            state.reindex();
        }
        if delay.is_zero() {
            state.op = Some(state.start_op(remaining.into_iter().collect(), StartPurpose::Group { trigger }));
            self.advance_start(state);
        } else {
            let tick = self.timer(state, delay);
            state.op = Some(Op::Backoff { tick, ids: remaining, trigger });
        }
    }

    /// Starts the next child of a start operation, or completes it.
    fn advance_start(&self, state: &mut NodeState) {
        if self.services.is_shutting_down() {
            // Nothing restarts once shutdown began.
            state.op = None;
            return;
        }
        loop {
            let Some(Op::Start { queue, fresh, waiting, .. }) = &mut state.op else { return };
            if waiting.is_some() {
                return;
            }
            let Some(id) = queue.pop_front() else { break };
            let spec = fresh.remove(&id);
            let index = match state.index_of_id(&id) {
                Some(index) => index,
                None => {
                    // A static child never started (or forgotten): spawn it.
                    let Some(spec) = spec else { continue };
                    match self.spawn(&spec, ChildName::Named(id.clone()), None) {
                        Ok(started) => {
                            state.add_child(Child::new(&spec, started.clone(), true));
                            if let Some(Op::Start { waiting, .. }) = &mut state.op {
                                *waiting = Some(started.handle.id());
                            }
                            started.handle.begin();
                            return;
                        }
                        Err(err) => {
                            let reason = StopReason::Failed(self.start_failure(&id, &err.to_string()));
                            self.abort_start(state, &id, reason);
                            return;
                        }
                    }
                }
            };
            if state.children[index].overdue {
                // Still stopping: restarted when its exit arrives.
                continue;
            }
            self.restart_now(state, index);
            let child = &state.children[index];
            if child.status == Status::Starting {
                let key = child.key;
                if let Some(Op::Start { waiting, .. }) = &mut state.op {
                    *waiting = Some(key);
                }
                return;
            }
            if child.status == Status::Stopped {
                let reason =
                    StopReason::Failed(self.start_failure(&id, "the child could not be spawned again"));
                self.abort_start(state, &id, reason);
                return;
            }
        }
        let Some(Op::Start { purpose, .. }) = state.op.take() else { return };
        match purpose {
            StartPurpose::Init => state.outcomes.push(Outcome::StartedAll),
            StartPurpose::Group { trigger } => {
                let trigger_id = trigger.clone();
                self.record(state, &trigger_id, SupervisionEventKind::GroupRestarted);
            }
        }
    }

    /// The child a start operation waited for exited before it started.
    fn start_failed_in_op(&self, state: &mut NodeState, index: usize, exit: ChildExit) {
        let id = state.children[index].id.clone();
        self.abort_start(state, &id, exit.reason);
    }

    /// A start operation failed at child `id`: stops the children it started
    /// (reverse order), then fails the owner (initial start) or retries the
    /// group (group restart).
    fn abort_start(&self, state: &mut NodeState, id: &str, reason: StopReason) {
        let Some(Op::Start { started, purpose, queue, .. }) = state.op.take() else { return };
        self.record(state, id, SupervisionEventKind::StartFailed(reason.clone()));
        let stop: VecDeque<u64> = started
            .iter()
            .rev()
            .filter_map(|s| state.index_of_id(s))
            .map(|i| state.children[i].key)
            .collect();
        let (cause, purpose) = match purpose {
            StartPurpose::Init => {
                // The failed child is not restarted: the owner's start fails.
                if let Some(index) = state.index_of_id(id) {
                    state.children[index].stop_for_good();
                }
                let path = match state.index_of_id(id) {
                    Some(index) => state.children[index].path.clone(),
                    None => self.path.child(id).unwrap_or_else(|_| self.path.clone()),
                };
                let cause = FailureCause::ChildStart { id: id.to_owned(), path, reason: Box::new(reason) };
                (ChildStop::ParentStopped, StopPurpose::StartAborted(self.start_failure_of(cause)))
            }
            StartPurpose::Group { .. } => {
                // The whole group is tried again, in start order: what
                // started, the child that failed, and what was not reached.
                let members: HashSet<&str> =
                    started.iter().chain(&queue).map(String::as_str).chain([id]).collect();
                let is_member = |c: &Child| members.contains(c.id.as_str());
                let ids: Vec<String> =
                    state.children.iter().filter(|c| is_member(c)).map(|c| c.id.clone()).collect();
                (ChildStop::GroupRestart, StopPurpose::GroupRetry { ids, trigger: id.to_owned(), reason })
            }
        };
        state.op = Some(Op::stop(stop, cause, purpose, false));
        self.advance_stop(state);
    }

    /// Why child `id` could not even be spawned: the child's own failure.
    fn start_failure(&self, id: &str, why: &str) -> Box<Failure> {
        let text = format!("child {id} failed to start: {why}");
        let mut failure =
            self.start_failure_of(FailureCause::Error { text, type_name: Some("cellrt::StartError") });
        failure.path = self.path.child(id).unwrap_or_else(|_| self.path.clone());
        failure
    }

    /// The owner's start failed with `cause`.
    fn start_failure_of(&self, cause: FailureCause) -> Box<Failure> {
        let cell_kind = self.owner.upgrade().map_or("cellrt::Supervisor", |o| o.cell_kind());
        Box::new(Failure {
            path: self.path.clone(),
            cell_kind,
            hook: Hook::Started,
            message_kind: None,
            cause,
            at: SystemTime::now(),
        })
    }

    fn record(&self, state: &mut NodeState, child: &str, kind: SupervisionEventKind) {
        if state.history.len() == HISTORY_KEPT {
            state.history.pop_front();
        }
        state.history.push_back(SupervisionEvent { at: SystemTime::now(), child: child.to_owned(), kind });
    }

    fn on_command(&self, state: &mut NodeState, command: Command) {
        match command {
            Command::StartChild { spec, reply } => {
                if state.flags.strategy == Strategy::Pool {
                    let _ = reply
                        .send(Err(StartError::Spec(SpecError::WrongStrategy { strategy: Strategy::Pool })));
                    return;
                }
                match self.add_child(state, spec) {
                    Ok((key, _)) => state.waiters.push((key, StartWaiter::Reply(reply))),
                    Err(err) => drop(reply.send(Err(err))),
                }
            }
            Command::StartPoolChild { message, reply } => {
                let Some(template) = state.template.clone() else {
                    let strategy = state.flags.strategy;
                    let _ = reply.send(Err(StartError::Spec(SpecError::WrongStrategy { strategy })));
                    return;
                };
                let handles = template.start.message_type();
                if handles.0 != message.0 {
                    let _ =
                        reply.send(Err(StartError::MessageType { expected: message.1, found: handles.1 }));
                    return;
                }
                match self.spawn(&template, ChildName::Numbered, None) {
                    Ok(started) => {
                        let mut child = Child::new(&template, started.clone(), false);
                        child.id = started.handle.path().name().to_owned();
                        child.path = started.handle.path().clone();
                        let key = started.handle.id();
                        state.add_child(child);
                        state.waiters.push((key, StartWaiter::Reply(reply)));
                        started.handle.begin();
                    }
                    Err(err) => drop(reply.send(Err(StartError::Spawn(err)))),
                }
            }
            Command::TerminateChild { id, reply } => self.terminate_child(state, &id, Some(reply)),
            Command::RestartChild { id, reply } => match state.index_of_id(&id) {
                None => drop(reply.send(Err(ChildError::NotFound { id }))),
                Some(index) if state.children[index].status != Status::Stopped => {
                    drop(reply.send(Err(ChildError::Running { id })))
                }
                Some(index) => {
                    self.restart_now(state, index);
                    let child = &state.children[index];
                    if child.status == Status::Starting {
                        // Answered once it started (or failed to).
                        state.waiters.push((child.key, StartWaiter::Restart(reply)));
                    } else {
                        let _ = reply.send(Err(ChildError::SupervisorStopping));
                    }
                }
            },
            Command::DeleteChild { id, reply } => {
                let result = match state.index_of_id(&id) {
                    None => Err(ChildError::NotFound { id }),
                    Some(index) if state.children[index].status != Status::Stopped => {
                        Err(ChildError::Running { id })
                    }
                    Some(index) => {
                        state.remove_child(index);
                        state.statics.retain(|s| s.id != id);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
        }
    }

    fn terminate_child(&self, state: &mut NodeState, id: &str, reply: Option<Reply<Result<(), ChildError>>>) {
        let Some(index) = state.index_of_id(id) else {
            if let Some(reply) = reply {
                let _ = reply.send(Err(ChildError::NotFound { id: id.to_owned() }));
            }
            return;
        };
        let child = &mut state.children[index];
        child.pending_tick = None;
        let queue: VecDeque<u64> = if child.status.is_alive() { [child.key].into() } else { VecDeque::new() };
        let purpose = StopPurpose::Terminate { id: id.to_owned(), reply };
        state.op = Some(Op::stop(queue, ChildStop::Supervisor, purpose, false));
        self.advance_stop(state);
    }

    /// Adds and spawns a run-time child; returns its key and address. The
    /// caller waits for its start.
    fn add_child(
        &self,
        state: &mut NodeState,
        spec: ChildSpec,
    ) -> Result<(u64, Arc<dyn Any + Send + Sync>), StartError> {
        validate_child(&spec, state.flags.auto_shutdown).map_err(StartError::Spec)?;
        if state.ids.contains_key(&spec.id) {
            return Err(StartError::Spec(SpecError::DuplicateId { id: spec.id }));
        }
        let started =
            self.spawn(&spec, ChildName::Named(spec.id.clone()), None).map_err(StartError::Spawn)?;
        let key = started.handle.id();
        let addr = started.addr.clone();
        state.add_child(Child::new(&spec, started.clone(), false));
        started.handle.begin();
        Ok((key, addr))
    }

    /// `Context::start_child`: adds a run-time child without waiting for it.
    pub(crate) fn start_child_now(&self, spec: ChildSpec) -> Result<Arc<dyn Any + Send + Sync>, StartError> {
        let mut state = self.state.lock();
        if state.owner_ending || state.retired {
            return Err(StartError::SupervisorStopping);
        }
        if state.flags.strategy == Strategy::Pool {
            return Err(StartError::Spec(SpecError::WrongStrategy { strategy: Strategy::Pool }));
        }
        let (key, addr) = self.add_child(&mut state, spec)?;
        state.waiters.push((key, StartWaiter::Nobody));
        Ok(addr)
    }

    /// Takes a child that recomposition places beside one of this node's
    /// children (an isolated kind's cell, a pool member, a canary): `spawn`
    /// makes its instance with this node as parent, not begun; it is
    /// recorded under `spec`, then begun. It stays through the owner's
    /// restarts, as the child it serves beside does, and is forgotten when
    /// it stops for good (drained, or not restarted).
    pub(crate) fn adopt(
        &self,
        spec: ChildSpec,
        spawn: impl FnOnce(&Arc<Node>, &ChildSpec) -> Result<StartedChild, SpawnError>,
    ) -> Result<Arc<dyn Any + Send + Sync>, Refusal> {
        let mut state = self.state.lock();
        if state.owner_ending || state.retired {
            return Err(Refusal::Stopping);
        }
        if state.flags.strategy == Strategy::Pool {
            return Err(Refusal::Pool);
        }
        if state.ids.contains_key(&spec.id) {
            return Err(Refusal::DuplicateId);
        }
        let me = self.me.upgrade().ok_or(Refusal::Stopping)?;
        let started = spawn(&me, &spec).map_err(Refusal::Spawn)?;
        let key = started.handle.id();
        let addr = started.addr.clone();
        let mut child = Child::new(&spec, started.clone(), false);
        child.placed = true;
        state.add_child(child);
        state.waiters.push((key, StartWaiter::Nobody));
        drop(state);
        started.handle.begin();
        Ok(addr)
    }

    /// Puts a new instance in place of the running child whose instance is
    /// `key`: `replace` makes it from the child's spec with `start` in
    /// place of its starter (same id and settings), by the replace protocol
    /// behind the child's address, not begun. The child's record follows
    /// the new instance, so its restarts make the new cell; the old
    /// instance's exit (`Replaced`) is no longer the child's.
    pub(crate) fn replace_child(
        &self,
        key: u64,
        start: Arc<dyn StartChild>,
        replace: impl FnOnce(&Arc<Node>, &ChildSpec) -> Result<StartedChild, SpawnError>,
    ) -> Result<(), Refusal> {
        let mut state = self.state.lock();
        if state.owner_ending || state.retired {
            return Err(Refusal::Stopping);
        }
        // A group restart in progress waits for this very instance.
        let Some(index) = state.index_of_key(key) else { return Err(Refusal::Busy) };
        if state.op.is_some() || state.children[index].status != Status::Running {
            return Err(Refusal::Busy);
        }
        let me = self.me.upgrade().ok_or(Refusal::Stopping)?;
        let mut spec = state.children[index].spec.clone();
        spec.start = start;
        let started = replace(&me, &spec).map_err(Refusal::Spawn)?;
        let new_key = started.handle.id();
        // A fresh start of the child (after its instance terminated, or
        // the supervisor's first start again) makes the new cell too.
        if let Some(stat) = state.statics.iter_mut().find(|s| s.id == spec.id) {
            *stat = spec.clone();
        }
        let child = &mut state.children[index];
        child.key = new_key;
        child.spec = spec;
        child.handle = Some(started.handle.clone());
        child.addr = started.addr;
        child.status = Status::Starting;
        child.running_since = None;
        state.keys.remove(&key);
        state.keys.insert(new_key, index);
        state.waiters.push((new_key, StartWaiter::Nobody));
        drop(state);
        started.handle.begin();
        Ok(())
    }

    /// Lets go of the running child whose instance is `key` while `retire`
    /// retires that instance into cells that are not one child (a keyed
    /// pool, or another cell its address forwards to): its record and its
    /// static spec leave this node, so that its `Replaced` exit is not the
    /// child's and a restart of this node does not start it again. Both
    /// stay as they were when `retire` fails. [`Node::take_back`] brings
    /// them back with a new instance.
    pub(crate) fn hand_off<E>(
        &self,
        key: u64,
        retire: impl FnOnce() -> Result<(), E>,
    ) -> Result<Result<HandedOff, E>, Refusal> {
        let mut state = self.state.lock();
        if state.owner_ending || state.retired {
            return Err(Refusal::Stopping);
        }
        let Some(index) = state.index_of_key(key) else { return Err(Refusal::Busy) };
        if state.op.is_some() || state.children[index].status != Status::Running {
            return Err(Refusal::Busy);
        }
        if let Err(err) = retire() {
            return Ok(Err(err));
        }
        let mut child = state.remove_child(index);
        child.handle = None;
        let spec =
            state.statics.iter().position(|s| s.id == child.id).map(|at| (at, state.statics.remove(at)));
        state.waiters.retain(|(k, _)| *k != key);
        Ok(Ok(HandedOff(Box::new(Parked { child, index, spec }))))
    }

    /// Gives back a child let go by [`Node::hand_off`]: `replace` makes its
    /// new instance from its spec with `start` in place of its starter, by
    /// the replace protocol behind its address, not begun; the child takes
    /// its place again (and its static spec, if it had one), then begins.
    /// On refusal the child is handed back, unchanged.
    pub(crate) fn take_back(
        &self,
        handed: HandedOff,
        start: Arc<dyn StartChild>,
        replace: impl FnOnce(&Arc<Node>, &ChildSpec) -> Result<StartedChild, SpawnError>,
    ) -> Result<(), (HandedOff, Refusal)> {
        let mut state = self.state.lock();
        if state.owner_ending || state.retired {
            return Err((handed, Refusal::Stopping));
        }
        if state.ids.contains_key(&handed.0.child.id) {
            return Err((handed, Refusal::DuplicateId));
        }
        let Some(me) = self.me.upgrade() else { return Err((handed, Refusal::Stopping)) };
        let Parked { mut child, index, spec: static_spec } = *handed.0;
        let mut spec = child.spec.clone();
        spec.start = start;
        let started = match replace(&me, &spec) {
            Ok(started) => started,
            Err(err) => {
                let handed = HandedOff(Box::new(Parked { child, index, spec: static_spec }));
                return Err((handed, Refusal::Spawn(err)));
            }
        };
        let key = started.handle.id();
        if let Some((at, _)) = static_spec {
            let at = at.min(state.statics.len());
            state.statics.insert(at, spec.clone());
        }
        child.key = key;
        child.spec = spec;
        child.handle = Some(started.handle.clone());
        child.addr = started.addr;
        child.status = Status::Starting;
        child.running_since = None;
        let index = index.min(state.children.len());
        state.children.insert(index, child);
        state.reindex();
        state.waiters.push((key, StartWaiter::Nobody));
        drop(state);
        started.handle.begin();
        Ok(())
    }

    /// `Context::spawn`: a temporary child from a value.
    pub(crate) fn spawn_value<C: Cell>(
        &self,
        config: CellConfig,
        cell: C,
    ) -> Result<crate::address::Addr<C::Message>, SpawnError> {
        let mut state = self.state.lock();
        if state.retired {
            return Err(SpawnError::ShutDown);
        }
        let me = self.me.upgrade().ok_or(SpawnError::ShutDown)?;
        let name = config.name.clone();
        let (addr, handle) = C::spawn_child(ChildRequest {
            parent: &me,
            name: name.map_or(ChildName::Numbered, ChildName::Named),
            config,
            origin: Origin::Value(cell),
            supervised: Supervised { restart: Restart::Temporary, retry: None, deadline: None },
            seed: None,
            existing: None,
        })?;
        let started = StartedChild { handle: handle.clone(), addr: Arc::new(addr.clone()) };
        let spec = ChildSpec::temporary_marker(handle.path().name(), std::any::type_name::<C>());
        state.add_child(Child::new(&spec, started, false));
        drop(state);
        handle.begin();
        Ok(addr)
    }

    /// The address of child `id`, if it has one of type `A`.
    pub(crate) fn child_addr(&self, id: &str) -> Option<Arc<dyn Any + Send + Sync>> {
        let state = self.state.lock();
        state.index_of_id(id).map(|i| state.children[i].addr.clone())
    }

    /// The node of child `id`, if it is a supervisor.
    pub(crate) fn child_handle(&self, id: &str) -> Option<Arc<dyn SupervisedCell>> {
        let state = self.state.lock();
        state.index_of_id(id).and_then(|i| state.children[i].handle.clone())
    }

    pub(crate) fn which_children(&self) -> Vec<ChildInfo> {
        let state = self.state.lock();
        state
            .children
            .iter()
            .map(|c| ChildInfo {
                id: c.id.clone(),
                path: c.path.clone(),
                state: match c.status {
                    Status::Starting | Status::Running | Status::Stopping => ChildState::Running,
                    Status::Waiting => ChildState::Restarting,
                    Status::Stopped => ChildState::Stopped,
                },
                restarts: c.restarts,
                restart: c.spec.restart,
                supervisor: c.spec.is_supervisor(),
            })
            .collect()
    }

    pub(crate) fn count_children(&self) -> ChildCounts {
        let state = self.state.lock();
        let mut counts = ChildCounts::default();
        for child in &state.children {
            counts.specs += 1;
            if child.status.is_alive() {
                counts.active += 1;
            }
            if child.spec.is_supervisor() {
                counts.supervisors += 1;
            } else {
                counts.workers += 1;
            }
        }
        counts
    }

    pub(crate) fn history(&self) -> Vec<SupervisionEvent> {
        self.state.lock().history.iter().cloned().collect()
    }
}

/// The entry points an instance reaches its node by; see [`NodeLink`].
impl NodeLink for Node {
    fn node(self: Arc<Self>) -> Arc<Node> {
        self
    }

    fn path(&self) -> &CellPath {
        &self.path
    }

    fn dispatcher(&self) -> &str {
        &self.dispatcher
    }

    fn is_supervisor(&self) -> bool {
        self.supervisor
    }

    fn child_started(&self, key: u64) {
        self.push(Event::Started(key));
    }

    fn child_exited(&self, key: u64, exit: ChildExit) {
        let mut state = self.state.lock();
        if state.retired {
            drop(state);
            if exit.kept {
                if let Some(child) = self.services.cell(key) {
                    retire(&*child);
                }
            }
            return;
        }
        state.events.push_back(Event::Exited(key, exit));
        drop(state);
        if let Some(owner) = self.owner.upgrade() {
            owner.supervise();
        }
    }

    fn process(&self) -> Vec<Outcome> {
        let mut state = self.state.lock();
        while let Some(event) = state.events.pop_front() {
            self.on_event(&mut state, event);
        }
        while state.op.is_none() {
            let Some(event) = state.deferred.pop_front() else { break };
            if state.owner_ending {
                self.refuse(event);
                continue;
            }
            self.on_event(&mut state, event);
        }
        std::mem::take(&mut state.outcomes)
    }

    fn begin_owner_start(&self) {
        let mut state = self.state.lock();
        state.owner_ending = false;
        state.window.clear();
        let placed = state.children.iter().filter(|c| c.placed).map(|c| c.id.clone());
        let queue: VecDeque<String> = state.statics.iter().map(|s| s.id.clone()).chain(placed).collect();
        state.op = Some(state.start_op(queue, StartPurpose::Init));
        self.advance_start(&mut state);
    }

    fn begin_owner_end(&self) {
        let mut state = self.state.lock();
        state.owner_ending = true;
        for child in &mut state.children {
            child.pending_tick = None;
        }
        for (_, waiter) in state.waiters.drain(..) {
            match waiter {
                StartWaiter::Reply(reply) => drop(reply.send(Err(StartError::SupervisorStopping))),
                StartWaiter::Restart(reply) => drop(reply.send(Err(ChildError::SupervisorStopping))),
                StartWaiter::Nobody => {}
            }
        }
        let queue: VecDeque<u64> =
            state.children.iter().rev().filter(|c| c.status.is_alive()).map(|c| c.key).collect();
        let parallel = state.flags.strategy == Strategy::Pool;
        state.op = Some(Op::stop(queue, ChildStop::ParentStopped, StopPurpose::OwnerEnding, parallel));
        self.advance_stop(&mut state);
    }

    fn children_stopped(&self) -> bool {
        let state = self.state.lock();
        !(state.owner_ending && state.op.is_some())
    }

    fn retire_all(&self) {
        for child in self.take_children() {
            if let Some(handle) = &child.handle {
                if child.kept() {
                    retire(&**handle);
                } else if child.status.is_alive() {
                    handle.stop(ChildStop::ParentStopped);
                }
            }
        }
    }

    fn kill_all(&self) {
        for child in self.take_children() {
            if let Some(handle) = child.handle {
                handle.kill();
            }
        }
    }

    fn refuse_kept_sends(&self) {
        let kept: Vec<Arc<dyn SupervisedCell>> = {
            let state = self.state.lock();
            state.children.iter().filter(|c| c.kept()).filter_map(|c| c.handle.clone()).collect()
        };
        for handle in kept {
            handle.refuse_sends();
        }
    }

    fn intensity(&self) -> RestartIntensity {
        let state = self.state.lock();
        let (max_restarts, period) = (state.flags.max_restarts, state.flags.period);
        let restarts = u32::try_from(state.window.in_window(Instant::now(), period)).unwrap_or(u32::MAX);
        RestartIntensity { restarts, max_restarts, period, remaining: max_restarts.saturating_sub(restarts) }
    }
}

impl NodeState {
    fn index_of_key(&self, key: u64) -> Option<usize> {
        self.keys.get(&key).copied()
    }

    fn index_of_id(&self, id: &str) -> Option<usize> {
        self.ids.get(id).copied()
    }

    /// An operation starting the children `queue` names, in that order;
    /// those without a record are spawned from their static spec.
    fn start_op(&self, queue: VecDeque<String>, purpose: StartPurpose) -> Op {
        let queued: HashSet<&str> = queue.iter().map(String::as_str).collect();
        let fresh = self
            .statics
            .iter()
            .filter(|s| queued.contains(s.id.as_str()) && !self.ids.contains_key(&s.id))
            .map(|s| (s.id.clone(), s.clone()))
            .collect();
        Op::Start { queue, fresh, waiting: None, started: Vec::new(), purpose }
    }

    fn add_child(&mut self, child: Child) {
        self.keys.insert(child.key, self.children.len());
        self.ids.insert(child.id.clone(), self.children.len());
        self.children.push(child);
    }

    fn remove_child(&mut self, index: usize) -> Child {
        let child = self.children.remove(index);
        self.reindex();
        child
    }

    /// Rebuilds the key index after children moved.
    fn reindex(&mut self) {
        self.keys.clear();
        self.ids.clear();
        for (index, child) in self.children.iter().enumerate() {
            self.keys.insert(child.key, index);
            self.ids.insert(child.id.clone(), index);
        }
    }
}

impl Child {
    /// Whether the instance is suspended, restartable in place: exactly
    /// the children waiting for a restart.
    fn kept(&self) -> bool {
        self.status == Status::Waiting
    }

    /// Not to be restarted: a kept (suspended) instance is retired.
    fn stop_for_good(&mut self) {
        if self.kept() {
            if let Some(handle) = &self.handle {
                retire(&**handle);
            }
        }
        self.status = Status::Stopped;
        // A restart waiting out its backoff is called off: its tick finds
        // no pending restart and does nothing.
        self.pending_tick = None;
    }

    fn new(spec: &ChildSpec, started: StartedChild, is_static: bool) -> Self {
        Child {
            key: started.handle.id(),
            id: spec.id.clone(),
            path: started.handle.path().clone(),
            spec: spec.clone(),
            handle: Some(started.handle),
            addr: started.addr,
            status: Status::Starting,
            restarts: 0,
            consecutive: 0,
            running_since: None,
            last_run: Duration::ZERO,
            pending_tick: None,
            is_static,
            placed: false,
            overdue: false,
        }
    }
}

/// A child a node let go of ([`Node::hand_off`]), until it takes it back.
pub(crate) struct HandedOff(Box<Parked>);

struct Parked {
    child: Child,
    /// Where it was among the children.
    index: usize,
    /// Its static spec, and where it was among them.
    spec: Option<(usize, ChildSpec)>,
}

/// Why a node would not take a child that recomposition started or
/// replaced.
#[derive(Debug)]
pub(crate) enum Refusal {
    /// The node's owner is stopping or gone.
    Stopping,
    /// A pool supervisor's children are made from its template only.
    Pool,
    /// A child has that id.
    DuplicateId,
    /// The child is not running (starting, restarting, stopped), or a group
    /// restart is in progress.
    Busy,
    /// The runtime refused the instance.
    Spawn(SpawnError),
}

/// Retires a kept (suspended) child for good. Its mailbox, and those of
/// the children it keeps suspended if it is a supervisor, refuse sends
/// (`Closed`) from this call on, so that whoever learns of its end, or of
/// its supervisor's, finds them closed; the child itself ends in its own
/// turn, dropping what is queued. Model: `loom-tests/tests/supervise_retire.rs`.
fn retire(handle: &dyn SupervisedCell) {
    handle.refuse_sends();
    handle.retire();
}

fn refuse_command(command: Command, err: ChildError) {
    match command {
        Command::StartChild { reply, .. } | Command::StartPoolChild { reply, .. } => {
            let _ = reply.send(Err(StartError::SupervisorStopping));
        }
        Command::TerminateChild { reply, .. }
        | Command::RestartChild { reply, .. }
        | Command::DeleteChild { reply, .. } => {
            let _ = reply.send(Err(err));
        }
    }
}
