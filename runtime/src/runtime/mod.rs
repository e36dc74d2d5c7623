//! The [`Runtime`]: dispatchers, the registry of live cells, spawning,
//! replacing, failures and shutdown.
//!
//! - `builder.rs`: [`Builder`], the settings.
//! - `registry.rs`: live cells in spawn order, and the handle the runtime
//!   holds on each.
//! - `services.rs`: what the runtime provides to supervision, through the
//!   interfaces `supervise/child.rs` defines.
//! - `shutdown.rs`: graceful shutdown and its [`ShutdownReport`].
//! - `error.rs`: [`BuildError`] and [`RunError`].

mod builder;
mod error;
mod registry;
mod services;
mod shutdown;

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;
#[cfg(feature = "observe")]
use std::time::SystemTime;

use self::builder::EscalationHook;
pub use self::builder::{Builder, DEFAULT_DISPATCHER, MAX_WORKER_THREADS};
pub use self::error::{BuildError, RunError};
pub(crate) use self::registry::CellControl;
pub use self::shutdown::ShutdownReport;
pub(crate) use crate::cell::SpawnError;

use self::registry::{IdMap, Registry};
use crate::address::{Addr, Slot};
use crate::ask::{self, AskError, Pending, Reply};
use crate::cell::instance::CellInstance;
use crate::cell::{Cell, CellConfig, StopReason};
use crate::dead_letter::{DeadLetter, DeadLetters};
use crate::dispatch::group::{Group, GroupStats};
use crate::dispatch::Dispatcher;
use crate::dormancy::{ActivityGate, Dormancy};
use crate::failure::Failure;
#[cfg(feature = "observe")]
use crate::flow::{BreakerConfig, BreakerConfigError, CircuitBreaker};
use crate::flow::{Router, RouterError, Routing};
use crate::mailbox::{StopCause, SystemMsg};
#[cfg(feature = "observe")]
use crate::observe::analysis::CellView;
#[cfg(feature = "observe")]
use crate::observe::journal::{JournalError, JournalQuery, Signal, SignalKind, TopologyChange};
#[cfg(feature = "observe")]
use crate::observe::metrics::Metrics;
#[cfg(feature = "observe")]
use crate::observe::observer::Observer;
#[cfg(feature = "observe")]
use crate::observe::snapshot::{CellSnapshot, FlowEdge, ObjectiveSnapshot, SignatureSummary, Snapshot};
#[cfg(feature = "observe")]
use crate::observe::{Objective, SignatureStats};
use crate::path::CellPath;
use crate::supervise::{
    ChildExit, ChildName, Escalation, Factory, NodeLink, NodeSeed, Origin, StartError, Supervised,
    Supervisor, SupervisorCell, SupervisorSpec, Terminated,
};
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use crate::sync::{Arc, Condvar, Mutex, Weak};
use crate::timer::TimerService;

/// The `cell_kind` of a breaker's journal entries.
#[cfg(feature = "observe")]
const BREAKER_KIND: &str = "cellrt::CircuitBreaker";

/// How many escalations [`Runtime::escalations`] keeps.
const ESCALATIONS_KEPT: usize = 1024;

/// How many journal entries a snapshot shows (the latest).
#[cfg(feature = "observe")]
const SNAPSHOT_JOURNAL: usize = 256;

/// How many recent failures [`Runtime::failures`] keeps.
const FAILURES_KEPT: usize = 1024;

/// How a new cell claims its path in the registry.
#[derive(Clone, Copy)]
enum PathClaim {
    /// A chosen name: refused if a live cell has the path.
    Unique,
    /// An automatic `#<id>` name: unique by construction, not indexed.
    Numbered,
    /// A replacement: takes the path over from the cell it replaces.
    TakeOver,
}

pub(crate) struct Settings {
    pub(crate) default_capacity: usize,
    pub(crate) send_timeout: Duration,
    pub(crate) quiet_panics: bool,
    pub(crate) dead_letter_capacity: usize,
    /// Driven by the application (`Runtime::run_once`), no thread.
    pub(crate) threadless: bool,
    pub(crate) on_escalation: Option<EscalationHook>,
    #[cfg(feature = "observe")]
    pub(crate) observation: crate::observe::ObservationConfig,
    #[cfg(feature = "storage")]
    pub(crate) storage: Option<crate::store::Storage>,
}

/// A spawned cell's address and instance, not yet begun.
pub(crate) type Spawned<C> = (Addr<<C as Cell>::Message>, Arc<CellInstance<C>>);

/// What a spawn asks for; see [`RuntimeShared::spawn_instance`].
pub(crate) struct SpawnRequest<'a, C: Cell> {
    /// The supervisor node the cell reports to; `None` for a top-level cell.
    pub(crate) parent: Option<&'a Arc<dyn NodeLink>>,
    pub(crate) name: ChildName,
    pub(crate) config: CellConfig,
    pub(crate) origin: Origin<C>,
    pub(crate) supervised: Option<Supervised>,
    /// An address whose terminated target the new instance replaces.
    pub(crate) existing: Option<Addr<C::Message>>,
}

/// The runtime root: who waits for top-level supervisors to start, and the
/// escalations that reached it.
#[derive(Default)]
struct Root {
    waiters: IdMap<Reply<Result<(), StopReason>>>,
    escalations: VecDeque<Escalation>,
}

/// Cells with a handler deadline, for the watchdog.
#[derive(Default)]
struct Deadlines {
    cells: Vec<Weak<dyn CellControl>>,
    /// How often the watchdog looks while a handler runs: a quarter of the
    /// shortest deadline, within 1–100 ms.
    period: Option<Duration>,
}

#[cfg(feature = "observe")]
/// Something that acts on each analysis window, after the observer has
/// folded it in: the recomposition engine. The runtime holds it weakly, so
/// dropping the engine's handle unhooks it.
pub(crate) trait AnalysisHook: Send + Sync + 'static {
    /// The window that ended at `now` has been analysed.
    fn after_window(&self, runtime: &Arc<RuntimeShared>, now: std::time::Instant);
}

/// Something that must end with the runtime: the live export's server.
/// The runtime holds it weakly and calls it once, when shutdown has drained
/// the cells and before it closes the storage.
#[cfg(feature = "http")]
pub(crate) trait ShutdownHook: Send + Sync + 'static {
    /// The runtime is shutting down: stop, and return once stopped.
    fn runtime_stopping(&self);
}

/// State shared by the runtime handle, every cell and every context.
pub(crate) struct RuntimeShared {
    /// Called once at shutdown; see [`ShutdownHook`].
    #[cfg(feature = "http")]
    shutdown_hooks: Mutex<Vec<Weak<dyn ShutdownHook>>>,
    /// Called after each analysis window; see [`AnalysisHook`].
    #[cfg(feature = "observe")]
    analysis_hooks: Mutex<Vec<Weak<dyn AnalysisHook>>>,
    settings: Settings,
    dispatchers: HashMap<Arc<str>, Arc<Dispatcher>>,
    /// In start order, the default one first.
    dispatcher_order: Vec<Arc<Dispatcher>>,
    groups: HashMap<Arc<str>, Arc<Group>>,
    registry: Mutex<Registry>,
    /// Signalled, under the registry lock, whenever a cell terminates.
    terminated: Condvar,
    next_id: AtomicU64,
    failures: Mutex<VecDeque<Failure>>,
    pub(super) failures_total: AtomicU64,
    #[cfg(feature = "observe")]
    observer: Observer,
    timers: TimerService,
    shutting_down: AtomicBool,
    dead_letters: DeadLetters,
    root: Mutex<Root>,
    deadlines: Mutex<Deadlines>,
    /// The watchdog's job: scheduled while a handler with a deadline runs,
    /// dormant otherwise; marked by each such handler as it begins.
    watchdog: Dormancy,
    /// The analysis window's job: scheduled while cells run, dormant once a
    /// window passed with every worker asleep; marked by waking workers.
    activity: Arc<ActivityGate>,
    /// Installed faults and experiment probes.
    #[cfg(feature = "chaos")]
    chaos: crate::chaos::registry::Registry,
}

impl RuntimeShared {
    fn new(
        settings: Settings,
        dispatchers: Vec<Arc<Dispatcher>>,
        groups: Vec<Arc<Group>>,
        #[cfg(feature = "observe")] observer: Observer,
        activity: Arc<ActivityGate>,
    ) -> Arc<Self> {
        let dead_letters = DeadLetters::new(settings.dead_letter_capacity);
        let timers = if settings.threadless { TimerService::driven() } else { TimerService::default() };
        #[cfg(all(feature = "chaos", feature = "storage"))]
        let storage_seam = settings.storage.as_ref().map(crate::store::Storage::chaos_seam);
        #[cfg(all(feature = "chaos", not(feature = "storage")))]
        let storage_seam = None;
        Arc::new(RuntimeShared {
            #[cfg(feature = "http")]
            shutdown_hooks: Mutex::new(Vec::new()),
            #[cfg(feature = "observe")]
            analysis_hooks: Mutex::new(Vec::new()),
            shutting_down: AtomicBool::new(false),
            dead_letters,
            root: Mutex::new(Root::default()),
            deadlines: Mutex::new(Deadlines::default()),
            watchdog: Dormancy::new(),
            activity,
            settings,
            dispatchers: dispatchers.iter().map(|d| (d.name.clone(), d.clone())).collect(),
            dispatcher_order: dispatchers,
            groups: groups.into_iter().map(|g| (g.name().clone(), g)).collect(),
            registry: Mutex::new(Registry::new()),
            terminated: Condvar::new(),
            next_id: AtomicU64::new(1),
            failures: Mutex::new(VecDeque::new()),
            failures_total: AtomicU64::new(0),
            #[cfg(feature = "observe")]
            observer,
            timers,
            #[cfg(feature = "chaos")]
            chaos: crate::chaos::registry::Registry::new(storage_seam),
        })
    }

    /// The installed faults and probes.
    #[cfg(feature = "chaos")]
    #[inline]
    pub(crate) fn chaos(&self) -> &crate::chaos::registry::Registry {
        &self.chaos
    }

    /// Journals a chaos act (faults installed or removed, an experiment's
    /// phase) as a configuration change.
    #[cfg(feature = "chaos")]
    pub(crate) fn journal_chaos(&self, kind: SignalKind) -> Option<Signal> {
        self.observer.signal(SystemTime::now(), None, None, kind)
    }

    /// The live cells' paths and Rust types, in path order.
    #[cfg(feature = "chaos")]
    pub(crate) fn live_paths(&self) -> Vec<(CellPath, &'static str)> {
        let mut cells: Vec<_> =
            self.live_cells().iter().map(|(_, c)| (c.path().clone(), c.cell_kind())).collect();
        cells.sort();
        cells
    }

    pub(crate) fn quiet_panics(&self) -> bool {
        self.settings.quiet_panics
    }

    /// Whether the runtime observes its cells: each keeps a metrics block,
    /// allocated by its first use (see `CellInstance::metrics`).
    #[cfg(feature = "observe")]
    #[inline]
    pub(crate) fn observes_cells(&self) -> bool {
        self.settings.observation.enabled
    }

    /// Whether the runtime observes its cells: never, without the `observe`
    /// feature.
    #[cfg(not(feature = "observe"))]
    #[inline]
    pub(crate) fn observes_cells(&self) -> bool {
        false
    }

    /// A metrics block for a cell of a runtime that observes its cells.
    #[cfg(feature = "observe")]
    pub(crate) fn new_cell_metrics(&self) -> Box<crate::observe::metrics::CellMetrics> {
        let observation = &self.settings.observation;
        Box::new(crate::observe::metrics::CellMetrics::new(
            observation.sample_every,
            observation.kind_evidence,
        ))
    }

    /// A metrics block: without the `observe` feature no cell asks for one
    /// (`observes_cells` is `false`); this is the block of the defaults.
    #[cfg(not(feature = "observe"))]
    pub(crate) fn new_cell_metrics(&self) -> Box<crate::observe::metrics::CellMetrics> {
        Box::new(crate::observe::metrics::CellMetrics::new(1, false))
    }

    /// A supervised cell is about to begin a new incarnation after one that
    /// ended with `reason`.
    #[cfg_attr(not(feature = "observe"), allow(unused_variables))]
    pub(crate) fn cell_restarting(&self, path: &CellPath, kind: &'static str, reason: &StopReason) {
        tracing::debug!(cell = %path, kind, %reason, "restarting");
        #[cfg(feature = "observe")]
        {
            let reason = reason.to_string();
            self.observer.signal(SystemTime::now(), Some(path), Some(kind), SignalKind::Restart { reason });
        }
    }

    /// A supervisor gave up: its restart intensity was exceeded.
    #[cfg_attr(not(feature = "observe"), allow(unused_variables))]
    pub(crate) fn supervisor_escalating(&self, kind: &'static str, escalation: &Escalation) {
        #[cfg(feature = "observe")]
        {
            let counted: Vec<&str> = escalation.restarts.iter().map(|r| r.child.as_str()).collect();
            let reason = format!(
                "child {} exceeded {} restarts in {:?}: {}",
                escalation.child,
                escalation.max_restarts,
                escalation.period,
                counted.join(", ")
            );
            let kind_of = SignalKind::Escalation { reason };
            self.observer.signal(SystemTime::now(), Some(&escalation.supervisor), Some(kind), kind_of);
        }
    }

    /// Starts the periodic analysis, when cells are observed. It sleeps
    /// once every worker does (only a worker that leaves the sleepers' list
    /// arms it again, and a worker that never slept may be running), so it
    /// begins armed.
    #[cfg(feature = "observe")]
    fn start_analysis(self: &Arc<Self>) {
        if !self.observer.config().is_enabled() {
            return;
        }
        let runtime = Arc::downgrade(self);
        self.activity.set_arm(move || {
            if let Some(runtime) = runtime.upgrade() {
                runtime.arm_analysis();
            }
        });
        self.activity.mark();
    }

    /// Schedules the analysis window after it was dormant. The time it
    /// slept is no window: nothing ran in it.
    #[cfg(feature = "observe")]
    fn arm_analysis(self: &Arc<Self>) {
        let window = self.observer.config().window;
        self.observer.resume(std::time::Instant::now());
        let runtime = Arc::downgrade(self);
        self.timers.call_after(window, move || runtime.upgrade()?.analysis_window(window));
    }

    /// One analysis window; the next one's delay, or `None` when this one
    /// found every worker asleep after a window without wake-ups: the
    /// analysis then sleeps until a worker wakes (see `dormancy.rs`). Never
    /// while a hook (a recomposition engine) is attached: its rules count
    /// windows, quiet ones included.
    #[cfg(feature = "observe")]
    fn analysis_window(self: &Arc<Self>, window: Duration) -> Option<Duration> {
        if self.is_shutting_down() {
            return None;
        }
        let woken = self.activity.dormancy().begin_tick();
        // Before the analysis reads the metrics: what ran before a worker
        // went to sleep is in this window.
        let asleep = self.dispatcher_order.iter().all(|d| d.queue.is_asleep());
        self.analyse();
        let hooked = self.run_analysis_hooks();
        if !woken && asleep && !hooked && self.activity.dormancy().try_sleep() {
            tracing::trace!("analysis dormant: every worker is asleep");
            return None;
        }
        Some(window)
    }

    /// Hooks `hook` to every analysis window from now on.
    #[cfg(feature = "observe")]
    pub(crate) fn add_analysis_hook(&self, hook: Weak<dyn AnalysisHook>) {
        let mut hooks = self.analysis_hooks.lock();
        hooks.retain(|h| h.strong_count() > 0);
        hooks.push(hook);
    }

    /// Runs the hooks still alive, outside the hooks' lock; `true` if
    /// there was one.
    #[cfg(feature = "observe")]
    fn run_analysis_hooks(self: &Arc<Self>) -> bool {
        let hooks: Vec<Arc<dyn AnalysisHook>> =
            self.analysis_hooks.lock().iter().filter_map(Weak::upgrade).collect();
        let now = std::time::Instant::now();
        for hook in &hooks {
            hook.after_window(self, now);
        }
        !hooks.is_empty()
    }

    /// Hooks `hook` to the shutdown.
    #[cfg(feature = "http")]
    pub(crate) fn add_shutdown_hook(&self, hook: Weak<dyn ShutdownHook>) {
        let mut hooks = self.shutdown_hooks.lock();
        hooks.retain(|h| h.strong_count() > 0);
        hooks.push(hook);
    }

    /// Runs, once, the shutdown hooks still alive, outside the hooks' lock.
    #[cfg(feature = "http")]
    pub(super) fn run_shutdown_hooks(&self) {
        let hooks: Vec<Arc<dyn ShutdownHook>> =
            std::mem::take(&mut *self.shutdown_hooks.lock()).iter().filter_map(Weak::upgrade).collect();
        for hook in &hooks {
            hook.runtime_stopping();
        }
    }

    /// The escalations that reached the runtime root, oldest first.
    pub(crate) fn escalations(&self) -> Vec<Escalation> {
        self.root.lock().escalations.iter().cloned().collect()
    }

    /// The observer: metrics analysis, signatures and the journal.
    #[cfg(feature = "observe")]
    pub(crate) fn observer(&self) -> &Observer {
        &self.observer
    }

    /// How long a blocking send waits for room by default.
    pub(crate) fn send_timeout(&self) -> Duration {
        self.settings.send_timeout
    }

    /// The live cells, with their ids, taken out of the registry lock.
    fn live_cells(&self) -> Vec<(u64, Arc<dyn CellControl>)> {
        self.registry.lock().spawn_order()
    }

    /// One analysis window over the cells that did something since the
    /// last one, those still settling, and those whose objective changed;
    /// the other live cells are idle and cost it nothing (see
    /// `observe/analysis.rs`).
    #[cfg(feature = "observe")]
    fn analyse(&self) {
        let touched = self.observer.touched();
        let (mut cells, departed) = {
            let mut registry = self.registry.lock();
            let departed = std::mem::take(&mut registry.departed);
            let mut cells: Vec<Arc<dyn CellControl>> =
                touched.ids.iter().filter_map(|id| registry.cells.get(id).cloned()).collect();
            for path in &touched.paths {
                match registry.paths.get(path) {
                    Some(id) => cells.extend(registry.cells.get(id).cloned()),
                    // `#<id>` paths are not indexed: rare enough to look for.
                    None => cells.extend(registry.cells.values().filter(|c| c.path() == path).cloned()),
                }
            }
            (cells, departed)
        };
        cells.sort_unstable_by_key(|cell| cell.id());
        cells.dedup_by_key(|cell| cell.id());
        // What a cell whose metrics block is not allocated yet reads as: it
        // has counted nothing. Such a cell is read from this block only
        // while the window would write nothing to it (see below).
        let unused = crate::observe::metrics::CellMetrics::new(1, false);
        // One reading of the objectives for the whole window: a cell read
        // from `unused` has none in it, so the window sets no threshold there.
        let objectives = self.observer.objectives();
        let observed = self.observes_cells();
        let views: Vec<CellView<'_>> = cells
            .iter()
            .filter(|_| observed)
            .map(|cell| {
                // Before the metrics are read: a turn from now on reports
                // the cell again.
                let idle = cell.take_active();
                let (queued, capacity) = cell.mailbox_len();
                // The window writes the mailbox length to the block (its
                // high-water mark) and an objective's latency threshold:
                // a cell with messages waiting or an objective gets its own.
                let metrics = match cell.metrics() {
                    Some(metrics) => metrics,
                    None if queued > 0 || objectives.contains_key(cell.path()) => cell.metrics_or_init(),
                    None => &unused,
                };
                CellView {
                    id: cell.id(),
                    path: cell.path(),
                    kind: cell.cell_kind(),
                    metrics,
                    queued,
                    capacity,
                    idle,
                }
            })
            .collect();
        self.observer.analyse(std::time::Instant::now(), &views, &departed, &objectives);
    }

    /// Everything observed, now.
    #[cfg(feature = "observe")]
    pub(crate) fn snapshot(&self) -> Snapshot {
        let now = SystemTime::now();
        let mut cells = self.live_cells();
        cells.sort_by(|a, b| a.1.path().cmp(b.1.path()));
        let by_id: HashMap<u64, &Arc<dyn CellControl>> = cells.iter().map(|(id, c)| (*id, c)).collect();
        let mut cell_snapshots = Vec::with_capacity(cells.len());
        let mut edges = Vec::new();
        {
            let analysis = self.observer.analysis.lock();
            let instant = std::time::Instant::now();
            for (id, cell) in &cells {
                let (queued, capacity) = cell.mailbox_len();
                let (decay, baselines) = match analysis.decay(*id) {
                    Some((decay, baselines)) => (Some(decay), Some(baselines)),
                    None => (None, None),
                };
                cell_snapshots.push(CellSnapshot {
                    path: cell.path().clone(),
                    kind: cell.cell_kind().to_owned(),
                    metrics: self.observes_cells().then(|| match cell.metrics() {
                        Some(metrics) => metrics.snapshot(queued, capacity),
                        None => Metrics::unused(queued, capacity),
                    }),
                    decay,
                    baselines,
                    objective: analysis.objective(*id, instant).map(|(objective, status)| {
                        ObjectiveSnapshot { objective: objective.to_string(), status }
                    }),
                    intensity: cell.restart_intensity(),
                });
                for edge in analysis.edges(*id) {
                    let latency = by_id.get(&edge.to_id).and_then(|to| to.metrics()?.inbound(*id));
                    edges.push(FlowEdge {
                        from: cell.path().clone(),
                        to: edge.to.clone(),
                        messages: edge.messages,
                        rate: edge.rate,
                        latency_mean: latency
                            .filter(|l| l.samples > 0)
                            .map(|l| l.total / u32::try_from(l.samples).unwrap_or(u32::MAX)),
                        latency_max: latency.map(|l| l.max),
                    });
                }
            }
        }
        edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        let journal = self.observer.journal();
        Snapshot {
            taken_at: now,
            cells: cell_snapshots,
            edges,
            signatures: self.observer.signatures(now).iter().map(SignatureSummary::from).collect(),
            journal: journal.query(&JournalQuery::new().limit(SNAPSHOT_JOURNAL)),
            journal_total: journal.total(),
            journal_errors: journal.persist_errors() + journal.read_errors(),
            rollups: journal.rollups(),
            measures: journal.measures(),
        }
    }

    pub(crate) fn timers(&self) -> &TimerService {
        &self.timers
    }

    fn dispatcher(&self, name: &str) -> Result<&Arc<Dispatcher>, SpawnError> {
        self.dispatchers.get(name).ok_or_else(|| SpawnError::UnknownDispatcher { name: name.to_owned() })
    }

    /// The group `config` names, if any. Never inherited.
    fn group(&self, config: &CellConfig) -> Result<Option<Arc<Group>>, SpawnError> {
        match config.group.as_deref() {
            None => Ok(None),
            Some(name) => match self.groups.get(name) {
                Some(group) => Ok(Some(group.clone())),
                None => Err(SpawnError::UnknownGroup { name: name.to_owned() }),
            },
        }
    }

    /// Every group, for shutdown.
    pub(crate) fn groups(&self) -> impl Iterator<Item = &Arc<Group>> {
        self.groups.values()
    }

    /// The mailbox capacity and dispatcher `config` asks for: `capacity` and
    /// the `inherited` dispatcher (else the default one) where it is silent.
    fn placement(
        &self,
        config: &CellConfig,
        capacity: usize,
        inherited: Option<&str>,
    ) -> Result<(usize, Arc<Dispatcher>), SpawnError> {
        let capacity = config.capacity.unwrap_or(capacity);
        if capacity == 0 {
            return Err(SpawnError::ZeroCapacity);
        }
        let dispatcher = match config.dispatcher.as_deref().or(inherited) {
            Some(name) => self.dispatcher(name)?,
            None => &self.dispatcher_order[0],
        };
        Ok((capacity, dispatcher.clone()))
    }

    /// Spawns a top-level cell from a value and starts it.
    pub(crate) fn spawn_cell<C: Cell>(
        self: &Arc<Self>,
        config: CellConfig,
        cell: C,
    ) -> Result<Addr<C::Message>, SpawnError> {
        let name = config.name.clone().map_or(ChildName::Numbered, ChildName::Named);
        self.spawn_top_level(name, config, Origin::Value(cell))
    }

    /// Spawns and starts a top-level cell, unsupervised.
    pub(crate) fn spawn_top_level<C: Cell>(
        self: &Arc<Self>,
        name: ChildName,
        config: CellConfig,
        origin: Origin<C>,
    ) -> Result<Addr<C::Message>, SpawnError> {
        let (addr, instance) = self.spawn_instance(SpawnRequest {
            parent: None,
            name,
            config,
            origin,
            supervised: None,
            existing: None,
        })?;
        instance.begin();
        Ok(addr)
    }

    /// Spawns and starts a top-level cell at `path`, *held*: its `started`
    /// runs at once, but it handles no message until its target is
    /// released (`Deliver::release`) with a predecessor's leftovers. For
    /// the members of a keyed pool, which wait for the state and the
    /// messages of the cell they take over from, and an isolated kind's
    /// cell, which waits for that kind's messages queued before it.
    pub(crate) fn spawn_held_at<C: Cell>(
        self: &Arc<Self>,
        path: CellPath,
        config: CellConfig,
        origin: Origin<C>,
    ) -> Result<Addr<C::Message>, SpawnError> {
        let req = SpawnRequest {
            parent: None,
            name: ChildName::At(path),
            config,
            origin,
            supervised: None,
            existing: None,
        };
        let (addr, instance) = self.spawn_new(req, true)?;
        instance.begin();
        Ok(addr)
    }

    /// Creates and registers an instance; the caller records it where it
    /// must (a supervisor's children) and then calls `begin`.
    pub(crate) fn spawn_instance<C: Cell>(
        self: &Arc<Self>,
        req: SpawnRequest<'_, C>,
    ) -> Result<Spawned<C>, SpawnError> {
        self.spawn_new(req, false)
    }

    /// [`spawn_instance`](RuntimeShared::spawn_instance), held (see
    /// `CellInstance::new`) if `held`.
    pub(crate) fn spawn_new<C: Cell>(
        self: &Arc<Self>,
        req: SpawnRequest<'_, C>,
        held: bool,
    ) -> Result<Spawned<C>, SpawnError> {
        let default_capacity = req.existing.as_ref().map_or(self.settings.default_capacity, |a| a.capacity());
        let (capacity, dispatcher) =
            self.placement(&req.config, default_capacity, req.parent.map(|p| p.dispatcher()))?;
        let group = self.group(&req.config)?;
        let id = self.next_id.fetch_add(1, Relaxed);
        let parent_path = req.parent.map(|p| p.path());
        let (path, claim) = match (&req.existing, &req.name) {
            (Some(addr), _) => (addr.path().clone(), PathClaim::TakeOver),
            (None, ChildName::Named(name)) => (CellPath::child_of(parent_path, name)?, PathClaim::Unique),
            (None, ChildName::Numbered) => {
                (CellPath::numbered_child_of(parent_path, id), PathClaim::Numbered)
            }
            (None, ChildName::At(path)) => (path.clone(), PathClaim::Unique),
        };
        let instance = CellInstance::<C>::new(
            id,
            path.clone(),
            capacity,
            held,
            dispatcher.clone(),
            self.clone(),
            req.parent.map(Arc::downgrade),
            req.supervised,
            group,
        );
        let previous_owner = self.register(id, &path, instance.clone(), claim)?;
        let slot = match req.existing {
            Some(addr) => {
                if addr.slot().reinstall(instance.clone()).is_err() {
                    self.unregister(id, &path, previous_owner);
                    return Err(SpawnError::NameTaken { path });
                }
                addr.slot().clone()
            }
            None => Arc::new(Slot::new(instance.clone(), path.clone(), self.settings.send_timeout)),
        };
        instance.install(&slot, req.origin);
        if let Some(deadline) = req.supervised.and_then(|s| s.deadline) {
            self.watch_deadline(Arc::downgrade(&instance) as Weak<dyn CellControl>, deadline);
        }
        tracing::debug!(cell = %path, kind = std::any::type_name::<C>(), dispatcher = %dispatcher.name, capacity, "spawned");
        #[cfg(feature = "observe")]
        self.observer.spawned(&path, std::any::type_name::<C>());
        Ok((Addr::from_slot(slot), instance))
    }

    /// Puts a new cell behind `addr`; see [`Runtime::replace_with`].
    pub(crate) fn replace_cell<C: Cell>(
        self: &Arc<Self>,
        addr: &Addr<C::Message>,
        config: CellConfig,
        cell: C,
    ) -> Result<(), SpawnError> {
        if addr.slot().current().is_supervised() {
            return Err(SpawnError::Supervised { path: addr.path().clone() });
        }
        let instance = self.replace_instance(addr, config, Origin::Value(cell), None, None)?;
        // `started` runs now; messages wait for the predecessor's leftovers.
        instance.begin();
        Ok(())
    }

    /// The replace protocol behind [`replace_cell`](RuntimeShared::replace_cell),
    /// for any cell: the new instance (reporting to `parent` as `supervised`
    /// says) takes `addr` over, and is returned not begun, so that a
    /// supervisor can record it first.
    pub(crate) fn replace_instance<C: Cell>(
        self: &Arc<Self>,
        addr: &Addr<C::Message>,
        config: CellConfig,
        origin: Origin<C>,
        parent: Option<&Arc<dyn NodeLink>>,
        supervised: Option<Supervised>,
    ) -> Result<Arc<CellInstance<C>>, SpawnError> {
        let (capacity, dispatcher) = self.placement(&config, addr.capacity(), None)?;
        let group = self.group(&config)?;
        let id = self.next_id.fetch_add(1, Relaxed);
        let path = addr.path().clone();
        let instance = CellInstance::<C>::new(
            id,
            path.clone(),
            capacity,
            true,
            dispatcher.clone(),
            self.clone(),
            parent.map(Arc::downgrade),
            supervised,
            group,
        );
        instance.install(addr.slot(), origin);
        let previous_owner = self.register(id, &path, instance.clone(), PathClaim::TakeOver)?;
        if addr.slot().replace(instance.clone()).is_err() {
            self.unregister(id, &path, previous_owner);
            return Err(SpawnError::ReplaceInProgress { path });
        }
        tracing::debug!(cell = %path, kind = std::any::type_name::<C>(), "replaced");
        #[cfg(feature = "observe")]
        self.observer.topology(&path, std::any::type_name::<C>(), TopologyChange::Replaced);
        Ok(instance)
    }

    /// Whether the application drives the runtime (no threads).
    pub(crate) fn is_threadless(&self) -> bool {
        self.settings.threadless
    }

    /// One step of a thread-less runtime: fires the timers due now, then
    /// runs one turn of each cell that was ready, dispatchers in start
    /// order; cells made ready meanwhile wait for the next step.
    pub(crate) fn run_once(&self) -> RunReport {
        self.run_once_until(std::time::Instant::now())
    }

    /// [`run_once`](Self::run_once), firing only the timers due by `until`.
    fn run_once_until(&self, until: std::time::Instant) -> RunReport {
        let timers = self.timers.fire_due(until.min(std::time::Instant::now()));
        let ready: Vec<usize> = self.dispatcher_order.iter().map(|d| d.queue.len()).collect();
        let mut report = RunReport { turns: 0, timers };
        if timers == 0 && ready.iter().all(|&n| n == 0) {
            return report;
        }
        // Before the turns, as a waking worker does (see `dormancy.rs`).
        self.activity.mark();
        for (dispatcher, ready) in self.dispatcher_order.iter().zip(ready) {
            for _ in 0..ready {
                let Some(task) = dispatcher.queue.pop() else { break };
                report.turns += 1;
                if task.run_turn(dispatcher.throughput) == crate::dispatch::TurnEnd::Yield {
                    dispatcher.queue.push(task);
                }
            }
        }
        report
    }

    /// Runs steps until one does nothing. Timers that come due after the
    /// call began wait for the next call, so a timer shorter than a step
    /// (an analysis window, a cell's interval) cannot keep it going.
    pub(crate) fn run_until_idle(&self) -> RunReport {
        let began = std::time::Instant::now();
        let mut total = RunReport::default();
        loop {
            let step = self.run_once_until(began);
            if step.is_idle() {
                return total;
            }
            total.turns += step.turns;
            total.timers += step.timers;
        }
    }

    /// Waits for `pending` up to `timeout`, driving a thread-less runtime
    /// meanwhile (sleeping until its next timer when nothing is ready).
    pub(crate) fn wait_driven<T>(&self, mut pending: Pending<T>, timeout: Duration) -> Result<T, AskError> {
        if !self.is_threadless() {
            return pending.wait(timeout);
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let step = self.run_until_idle();
            if let Some(value) = pending.try_take()? {
                return Ok(value);
            }
            let now = std::time::Instant::now();
            if now >= deadline {
                return Err(AskError::Timeout);
            }
            if step.is_idle() {
                let until = self.timers.next_deadline().map_or(deadline, |next| next.min(deadline));
                crate::sync::thread::sleep(until.saturating_duration_since(now));
            }
        }
    }

    /// Starts a top-level supervisor and waits for its children to start.
    fn start_supervisor(
        self: &Arc<Self>,
        spec: SupervisorSpec,
        timeout: Duration,
    ) -> Result<Supervisor, StartError> {
        spec.validate()?;
        let name = spec.name.clone();
        let factory: Factory<SupervisorCell> = Arc::new(Mutex::new(Box::new(|_: &_| SupervisorCell)));
        let seed = NodeSeed { flags: spec.flags, statics: spec.children, template: spec.template };
        let (reply, pending) = ask::channel();
        let (addr, instance) = self.spawn_instance(SpawnRequest {
            parent: None,
            name: ChildName::Named(name.clone()),
            config: CellConfig::new(),
            origin: Origin::Factory(factory),
            supervised: None,
            existing: None,
        })?;
        let node = instance.seed_node(seed);
        self.root.lock().waiters.insert(CellControl::id(&*instance), reply);
        CellControl::begin(&*instance);
        match self.wait_driven(pending, timeout) {
            Ok(Ok(())) => Ok(Supervisor::new(addr, node)),
            Ok(Err(reason)) => Err(StartError::of_supervisor(name, addr.path().clone(), reason)),
            Err(AskError::Timeout) => Err(StartError::Timeout),
            Err(_) => Err(StartError::SupervisorStopping),
        }
    }

    /// Watches `cell`'s handlers against `deadline`. The watchdog runs
    /// only while a handler with a deadline does (see
    /// [`handler_began`](RuntimeShared::handler_began)).
    fn watch_deadline(&self, cell: Weak<dyn CellControl>, deadline: Duration) {
        let period = (deadline / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
        let mut deadlines = self.deadlines.lock();
        deadlines.cells.retain(|c| c.upgrade().is_some_and(|c| !c.is_terminated()));
        deadlines.cells.push(cell);
        if deadlines.period.is_none_or(|p| period < p) {
            // A scheduled watchdog takes the shorter period at its next look.
            deadlines.period = Some(period);
        }
    }

    /// A handler with a deadline has begun; its record is set, under the
    /// cell's lock that the watchdog takes to read it. Arms the watchdog if
    /// it was dormant.
    pub(crate) fn handler_began(self: &Arc<Self>) {
        // Thread-less, the handler runs on the thread that would look.
        if !self.settings.threadless && self.watchdog.mark() {
            let period = self.deadlines.lock().period.unwrap_or(Duration::from_millis(100));
            let runtime = Arc::downgrade(self);
            self.timers.call_after(period, move || runtime.upgrade()?.scan_deadlines());
        }
    }

    /// One look of the watchdog: reports handlers past their deadline.
    /// Returns the delay of the next look, or `None` when no handler with a
    /// deadline runs: the watchdog sleeps until one begins.
    fn scan_deadlines(&self) -> Option<Duration> {
        self.watchdog.begin_tick();
        let now = std::time::Instant::now();
        let (cells, period) = {
            let deadlines = self.deadlines.lock();
            let cells: Vec<Arc<dyn CellControl>> = deadlines.cells.iter().filter_map(Weak::upgrade).collect();
            (cells, deadlines.period.unwrap_or(Duration::from_millis(100)))
        };
        let mut running = false;
        for cell in cells {
            let (handling, overrun) = cell.report_overrun(now);
            running |= handling;
            if let Some(failure) = overrun {
                tracing::warn!(cell = %failure.path, message = failure.message_kind, "handler overran its deadline");
                self.record_failure(&failure);
            }
        }
        if self.is_shutting_down() || (!running && self.watchdog.try_sleep()) {
            return None;
        }
        Some(period)
    }

    /// The tree of the cell at `path`.
    #[cfg(feature = "storage")]
    pub(crate) fn store(&self, path: &CellPath) -> Result<crate::store::Store, crate::store::StoreError> {
        self.storage()?.cell_tree(path)
    }

    /// The tree of the recomposition engine's kept plans.
    #[cfg(feature = "storage")]
    pub(crate) fn recompositions(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        self.storage()?.recompositions()
    }

    /// The runtime's database, if it has one.
    #[cfg(feature = "storage")]
    fn storage(&self) -> Result<&crate::store::Storage, crate::store::StoreError> {
        self.settings.storage.as_ref().ok_or(crate::store::StoreError::Disabled)
    }

    /// Flushes the storage `every` from now, for a durable cell whose
    /// state waits for it (`Durability::Periodic`); `covered` runs first
    /// and marks what this flush covers. One flush per period with saves
    /// in it, none while nothing is saved.
    #[cfg(feature = "storage")]
    pub(crate) fn flush_after(
        self: &Arc<Self>,
        every: Duration,
        cell: &CellPath,
        covered: impl Fn() + Send + 'static,
    ) {
        let runtime = Arc::downgrade(self);
        let cell = cell.clone();
        self.timers.call_after(every, move || {
            let runtime = runtime.upgrade()?;
            covered();
            if let Some(storage) = &runtime.settings.storage {
                if let Err(err) = storage.flush() {
                    tracing::error!(cell = %cell, %err, "periodic flush failed");
                }
            }
            None
        });
    }

    /// The tree where unreadable saved states are kept.
    #[cfg(feature = "storage")]
    pub(crate) fn quarantine(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        Ok(self.storage()?.quarantine().clone())
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Acquire)
    }

    pub(crate) fn dead_letter(&self, letter: DeadLetter) {
        // Expired messages stay in memory only: an overloaded cell would
        // otherwise write a record for every message it could not reach in
        // time, when writing is the last thing it can afford.
        #[cfg(feature = "storage")]
        let expired = matches!(letter.failure().cause, crate::failure::FailureCause::Expired { .. });
        #[cfg(feature = "storage")]
        if let Some(storage) = self.settings.storage.as_ref().filter(|_| !expired) {
            if let Err(err) = storage.keep_dead_letter(&letter) {
                tracing::error!(%err, cell = %letter.failure().path, "could not store a dead letter");
            }
        }
        self.dead_letters.push(letter);
    }

    /// The live cell with this id.
    pub(crate) fn control_of(&self, id: u64) -> Option<Arc<dyn CellControl>> {
        self.registry.lock().cells.get(&id).cloned()
    }

    /// A top-level cell's incarnation started.
    pub(crate) fn root_child_started(&self, id: u64) {
        let waiter = self.root.lock().waiters.remove(&id);
        if let Some(reply) = waiter {
            let _ = reply.send(Ok(()));
        }
    }

    /// A top-level cell stopped (top-level cells are never restarted).
    pub(crate) fn root_child_exited(&self, id: u64, path: &CellPath, exit: ChildExit) {
        let waiter = self.root.lock().waiters.remove(&id);
        if let Some(reply) = waiter {
            let _ = reply.send(Err(exit.reason.clone()));
        }
        if let StopReason::Escalated(escalation) = exit.reason {
            tracing::error!(supervisor = %path, child = %escalation.child, "escalation reached the runtime root");
            {
                let mut root = self.root.lock();
                if root.escalations.len() == ESCALATIONS_KEPT {
                    root.escalations.pop_front();
                }
                root.escalations.push_back((*escalation).clone());
            }
            if let Some(hook) = &self.settings.on_escalation {
                (hook.0)(&escalation);
            }
        }
    }

    /// Adds a live cell under `path`, as `claim` says; returns the path's
    /// previous owner when taking it over.
    fn register(
        &self,
        id: u64,
        path: &CellPath,
        control: Arc<dyn CellControl>,
        claim: PathClaim,
    ) -> Result<Option<u64>, SpawnError> {
        let mut registry = self.registry.lock();
        if !registry.accepting {
            return Err(SpawnError::ShutDown);
        }
        let previous = match claim {
            // `#<id>` paths are unique by construction: named cells cannot
            // start with `#`, and ids are never reused.
            PathClaim::Numbered => None,
            PathClaim::Unique => match registry.paths.entry(path.clone()) {
                Entry::Occupied(_) => return Err(SpawnError::NameTaken { path: path.clone() }),
                Entry::Vacant(vacant) => {
                    vacant.insert(id);
                    None
                }
            },
            PathClaim::TakeOver => registry.paths.insert(path.clone(), id),
        };
        registry.cells.insert(id, control);
        Ok(previous)
    }

    /// Undoes `register` for a cell that never ran.
    fn unregister(&self, id: u64, path: &CellPath, previous_owner: Option<u64>) {
        let mut registry = self.registry.lock();
        registry.remove_cell(id);
        #[cfg(feature = "observe")]
        if self.settings.observation.enabled {
            registry.departed.push(id);
        }
        if registry.paths.get(path) == Some(&id) {
            match previous_owner {
                Some(owner) => registry.paths.insert(path.clone(), owner),
                None => registry.paths.remove(path),
            };
        }
    }

    /// Counts messages dropped outside a cell's own termination (leftovers
    /// handed to a successor that had already stopped).
    pub(crate) fn count_undelivered(&self, path: &CellPath, messages: usize) {
        if messages > 0 {
            self.registry.lock().undelivered += messages as u64;
            tracing::debug!(cell = %path, messages, "handed-over messages left undelivered");
        }
    }

    /// Called once by each cell as its last act.
    #[cfg_attr(not(feature = "observe"), allow(unused_variables))]
    pub(crate) fn cell_terminated(
        &self,
        id: u64,
        path: &CellPath,
        kind: &'static str,
        undelivered: usize,
        reason: &StopReason,
    ) {
        {
            let mut registry = self.registry.lock();
            registry.remove_cell(id);
            if registry.paths.get(path) == Some(&id) {
                registry.paths.remove(path);
            }
            #[cfg(feature = "observe")]
            if self.settings.observation.enabled {
                registry.departed.push(id);
            }
            if matches!(reason, StopReason::Killed) {
                registry.killed += 1;
            } else {
                registry.stopped += 1;
            }
            registry.undelivered += undelivered as u64;
            self.terminated.notify_all();
        }
        if undelivered > 0 {
            tracing::debug!(cell = %path, ?reason, undelivered, "stopped with messages left undelivered");
        } else {
            tracing::debug!(cell = %path, ?reason, "stopped");
        }
        // A replaced cell's successor was journaled as the change; a
        // shutdown stops everything and is not a change of the topology.
        #[cfg(feature = "observe")]
        if !matches!(reason, StopReason::Replaced) && !self.is_shutting_down() {
            let change = TopologyChange::Stopped { reason: format!("{reason:?}") };
            self.observer.topology(path, kind, change);
        }
    }

    pub(crate) fn record_failure(&self, failure: &Failure) {
        tracing::error!(
            cell = %failure.path,
            kind = failure.cell_kind,
            hook = ?failure.hook,
            message = failure.message_kind,
            cause = ?failure.cause,
            "cell failed"
        );
        #[cfg(feature = "observe")]
        self.observer.failure(failure);
        {
            let mut failures = self.failures.lock();
            if failures.len() == FAILURES_KEPT {
                failures.pop_front();
            }
            failures.push_back(failure.clone());
        }
        // Last: whoever sees the count sees the failure and its signature.
        self.failures_total.fetch_add(1, Release);
    }
}

/// What one or more [`Runtime::run_once`] calls did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunReport {
    /// Cell turns run (each up to `throughput` messages).
    pub turns: usize,
    /// Timers fired: cells' timers and the runtime's own (analysis window,
    /// periodic flush).
    pub timers: usize,
}

impl RunReport {
    /// Whether nothing was done: no cell was ready, no timer was due.
    pub fn is_idle(&self) -> bool {
        self.turns == 0 && self.timers == 0
    }
}

/// A running cellrt runtime: worker pools and the cells on them.
///
/// Build one with [`Runtime::builder`], spawn cells on it, and end it with
/// [`shutdown`](Runtime::shutdown). Dropping a runtime without `shutdown`
/// kills its cells (their `stopped` hooks do not run) and stops its threads.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, Context, Reply, Runtime};
///
/// struct Counter(u64);
///
/// enum Msg {
///     Add(u64),
///     Get(Reply<u64>),
/// }
///
/// impl Cell for Counter {
///     type Message = Msg;
///     fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Get(reply) => drop(reply.send(self.0)),
///         }
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let counter = runtime.spawn(Counter(0))?;
/// for n in 1..=10 {
///     counter.send(Msg::Add(n))?;
/// }
/// assert_eq!(counter.ask(Msg::Get)?.wait(Duration::from_secs(5))?, 55);
/// let report = runtime.shutdown(Duration::from_secs(5));
/// assert_eq!(report.cells_stopped, 1);
/// assert_eq!(report.messages_undelivered, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Runtime {
    shared: Arc<RuntimeShared>,
    shut_down: bool,
}

impl Runtime {
    /// The state shared with cells, for the modules above the runtime
    /// (recomposition, chaos experiments).
    pub(crate) fn shared(&self) -> &Arc<RuntimeShared> {
        &self.shared
    }

    /// Settings for a new runtime.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn from_shared(shared: Arc<RuntimeShared>) -> Self {
        Runtime { shared, shut_down: false }
    }

    /// Spawns a top-level cell with default options.
    ///
    /// The cell's `started` hook runs on a worker; messages sent before it
    /// finishes wait in the mailbox.
    ///
    /// # Errors
    ///
    /// [`SpawnError::ShutDown`] once shutdown has begun.
    pub fn spawn<C: Cell>(&self, cell: C) -> Result<Addr<C::Message>, SpawnError> {
        self.spawn_with(CellConfig::new(), cell)
    }

    /// Spawns a top-level cell with the given options.
    ///
    /// # Errors
    ///
    /// A [`SpawnError`] naming the refused option, or `ShutDown`.
    pub fn spawn_with<C: Cell>(&self, config: CellConfig, cell: C) -> Result<Addr<C::Message>, SpawnError> {
        self.shared.spawn_cell(config, cell)
    }

    /// Spawns a top-level durable cell: rebuilt from its saved state if one
    /// was saved at its path (by an earlier run), else from `make`; its
    /// state is saved after each message as `durability` says. See
    /// [`Durable`](crate::Durable).
    ///
    /// # Errors
    ///
    /// [`SpawnError::Unnamed`] without a name in `config` (an unnamed
    /// cell's path changes between runs); [`SpawnError::Storage`] when the
    /// runtime has no storage; as [`spawn_with`](Runtime::spawn_with).
    #[cfg(feature = "storage")]
    pub fn spawn_durable<C: crate::store::Durable>(
        &self,
        config: CellConfig,
        durability: crate::store::Durability,
        make: impl FnMut() -> C + Send + 'static,
    ) -> Result<Addr<C::Message>, SpawnError> {
        let Some(name) = config.name.clone() else { return Err(SpawnError::Unnamed) };
        if let Err(err) = self.shared.quarantine() {
            return Err(SpawnError::Storage(err));
        }
        let mut make = make;
        let factory: Factory<C> = Arc::new(Mutex::new(Box::new(move |_: &_| make())));
        let persist = Arc::new(crate::store::durable::DurableState::<C>::new(durability));
        self.shared.spawn_top_level(ChildName::Named(name), config, Origin::Durable(factory, persist))
    }

    /// Starts a top-level supervisor: its children start in spec order, each
    /// after the previous one's `started` returned. Waits up to `timeout`.
    ///
    /// A top-level supervisor is not restarted: when it gives up (restart
    /// intensity exceeded) its subtree stops and the escalation reaches the
    /// runtime root ([`Builder::on_escalation`], [`Runtime::escalations`]).
    ///
    /// # Errors
    ///
    /// [`StartError::Spec`] for an invalid spec; `ChildFailed` when a child
    /// failed to start (the children before it were stopped, in reverse
    /// order, and the supervisor with them); `Spawn`; `Timeout`.
    pub fn start_supervisor(
        &self,
        spec: SupervisorSpec,
        timeout: Duration,
    ) -> Result<Supervisor, StartError> {
        self.shared.start_supervisor(spec, timeout)
    }

    /// Makes a [`Router`] named `name` over `members`: an address that
    /// spreads what is sent to it by `routing`. Its address's path is
    /// `/name`; it is not a cell (nothing to stop, watch or supervise), and
    /// [`replace`](Runtime::replace) can put a cell in its place.
    ///
    /// # Errors
    ///
    /// `EmptyPool`, `DuplicateMember`, `InvalidName`, or `ShutDown`.
    pub fn router<M: Send + 'static>(
        &self,
        name: &str,
        routing: Routing<M>,
        members: Vec<Addr<M>>,
    ) -> Result<Router<M>, RouterError> {
        if self.shared.is_shutting_down() {
            return Err(RouterError::ShutDown);
        }
        let path = CellPath::root().child(name).map_err(RouterError::InvalidName)?;
        let send_timeout = self.shared.settings.send_timeout;
        Router::new(routing, members, |target| {
            Addr::from_slot(Arc::new(Slot::new(target, path, send_timeout)))
        })
    }

    /// Resolves once the cell behind `addr` stops for good, with its path and
    /// reason: not when its supervisor restarts it, nor when it is replaced.
    /// Resolves at once if it has already stopped. From a cell, use
    /// [`Context::watch`](crate::Context::watch).
    pub fn watch<M: Send + 'static>(&self, addr: &Addr<M>) -> Pending<Terminated> {
        let (reply, pending) = ask::channel();
        addr.slot().watchers().add_reply(reply);
        pending
    }

    /// The latest dead letters (see [`Builder::dead_letter_capacity`]),
    /// oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.shared.dead_letters.snapshot()
    }

    /// Dead letters since the runtime started.
    pub fn dead_letter_count(&self) -> u64 {
        self.shared.dead_letters.total()
    }

    /// The storage tree of the cell at `path` (see [`Store`](crate::Store)),
    /// whether or not that cell is running: to inspect or seed its data.
    ///
    /// # Errors
    ///
    /// [`StoreError::Disabled`](crate::StoreError::Disabled) without
    /// storage; I/O and engine errors.
    #[cfg(feature = "storage")]
    pub fn store(&self, path: &CellPath) -> Result<crate::store::Store, crate::store::StoreError> {
        self.shared.store(path)
    }

    /// The quarantine tree: saved states a durable cell could not read, kept
    /// under `<path>@<time>`, never overwritten or deleted by the runtime.
    ///
    /// # Errors
    ///
    /// [`StoreError::Disabled`](crate::StoreError::Disabled) without storage.
    #[cfg(feature = "storage")]
    pub fn quarantine(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        self.shared.quarantine()
    }

    /// Every dead letter kept in the storage, this run's and earlier runs',
    /// oldest first. Messages dead-lettered because their deadline passed
    /// ([`FailureCause::Expired`](crate::FailureCause::Expired)) are not
    /// stored: they are in [`dead_letters`](Runtime::dead_letters) only.
    ///
    /// # Errors
    ///
    /// [`StoreError::Disabled`](crate::StoreError::Disabled) without
    /// storage; I/O, engine and decode errors.
    #[cfg(feature = "storage")]
    pub fn stored_dead_letters(
        &self,
    ) -> Result<Vec<crate::store::StoredDeadLetter>, crate::store::StoreError> {
        self.shared.storage()?.dead_letters()
    }

    /// Escalations that reached the runtime root (the latest 1,024), oldest first.
    pub fn escalations(&self) -> Vec<Escalation> {
        self.shared.escalations()
    }

    /// Puts `cell` behind `addr` in place of the cell serving it now; see
    /// [`replace_with`](Runtime::replace_with).
    ///
    /// # Errors
    ///
    /// As [`replace_with`](Runtime::replace_with).
    pub fn replace<C: Cell>(&self, addr: &Addr<C::Message>, cell: C) -> Result<(), SpawnError> {
        self.replace_with(addr, CellConfig::new(), cell)
    }

    /// Puts `cell` behind `addr` in place of the cell serving it now.
    ///
    /// The swap is atomic for senders: every message sent to `addr` is
    /// handled exactly once, by the old cell or the new one, never by both at
    /// the same time, and each sender's messages in the order sent. The old
    /// cell finishes the message it is handling, then stops with
    /// [`StopReason::Replaced`] and hands what was queued to the new cell,
    /// which handles it before anything sent after the swap. The new cell's
    /// `started` runs at once; its first message waits for that handover.
    ///
    /// The new cell takes the address's path. `config.name` is ignored; the
    /// capacity defaults to the current one and the dispatcher to the default.
    ///
    /// # Errors
    ///
    /// `ReplaceInProgress` when the cell behind `addr` is itself a
    /// replacement still waiting for its predecessor's messages (retry once
    /// that predecessor has finished its message); `ShutDown`,
    /// `ZeroCapacity` or `UnknownDispatcher`. The address is then unchanged
    /// and `cell` is dropped without running.
    pub fn replace_with<C: Cell>(
        &self,
        addr: &Addr<C::Message>,
        config: CellConfig,
        cell: C,
    ) -> Result<(), SpawnError> {
        self.shared.replace_cell(addr, config, cell)
    }

    /// Stops the cell behind `addr` for good, after its current message.
    ///
    /// When `stop` returns, the cell's admission is closed: every send to
    /// `addr` (`try_send`, `send`, `ask`) returns
    /// [`SendError::Closed`](crate::SendError::Closed) with the message
    /// handed back, and a sender blocked on a full mailbox is woken with the
    /// same error. Messages already queued are not handled: they are dropped
    /// and counted as undelivered (an ask among them resolves to
    /// [`AskError::Unanswered`](crate::AskError::Unanswered)). The cell runs
    /// its `stopped` hook once the message it is handling, if any, returns.
    ///
    /// A supervised cell stopped this way is not restarted, whatever its
    /// restart kind: its supervisor records the exit and keeps it stopped.
    /// Does nothing if the cell has already stopped, or if `addr` is served
    /// by a router (stop its members).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Runtime, SendError};
    ///
    /// struct Sink;
    /// impl Cell for Sink {
    ///     type Message = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let sink = runtime.spawn(Sink)?;
    /// runtime.stop(&sink);
    /// assert_eq!(sink.try_send(7), Err(SendError::Closed(7)));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop<M: Send + 'static>(&self, addr: &Addr<M>) {
        if let Some(control) = addr.slot().current().control() {
            // Admission closes before the request is queued: no send that
            // starts after `stop` returns gets in.
            control.refuse_sends();
            control.send_system(SystemMsg::Stop(StopCause::Requested));
        }
    }

    /// The most recent failures (up to 1,024), oldest first.
    pub fn failures(&self) -> Vec<Failure> {
        self.shared.failures.lock().iter().cloned().collect()
    }

    /// Every failure signature seen since the runtime started, the most
    /// frequent first: counts, first and last seen, the cells affected, a
    /// sample, recent rates. See [`FailureSignature`](crate::FailureSignature).
    #[cfg(feature = "observe")]
    pub fn signatures(&self) -> Vec<SignatureStats> {
        self.shared.observer.signatures(SystemTime::now())
    }

    /// Everything the runtime observes, now: the live cells with their
    /// metrics, decay and objectives; the flow map; failure signatures; the
    /// journal's latest entries, roll-ups and learning measures. Serializable
    /// with serde (feature `serde`); [`Snapshot::prometheus`] and
    /// [`Snapshot::to_dot`] export it. `docs/observation.md` in the
    /// repository explains every part.
    #[cfg(feature = "observe")]
    pub fn snapshot(&self) -> Snapshot {
        self.shared.snapshot()
    }

    /// Takes a [`snapshot`](Runtime::snapshot), keeps it in the storage
    /// (the `sys/snapshots` tree, the latest 4,096, without the journal
    /// entries, which the journal keeps) and returns it. Recorded now and
    /// then during a run (say every second), the snapshots let a report
    /// drawn from the data directory after the run
    /// (`report::Report::from_data_dir`, feature `report`) show decay and
    /// flow rates over time.
    ///
    /// # Errors
    ///
    /// [`StoreError::Disabled`](crate::StoreError::Disabled) without
    /// storage; I/O and engine errors.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Runtime, StorageConfig};
    ///
    /// let runtime = Runtime::builder().storage(StorageConfig::in_memory()).build()?;
    /// let snapshot = runtime.record_snapshot()?;
    /// assert!(snapshot.cells.is_empty());
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(all(feature = "observe", feature = "storage"))]
    pub fn record_snapshot(&self) -> Result<Snapshot, crate::store::StoreError> {
        let snapshot = self.shared.snapshot();
        let store = self.shared.storage()?.snapshots()?;
        crate::observe::history::keep(&store, &snapshot, crate::observe::history::CAPACITY)?;
        Ok(snapshot)
    }

    /// The snapshots kept in the storage by
    /// [`record_snapshot`](Runtime::record_snapshot), oldest first; none
    /// without storage or when they cannot be read (logged).
    #[cfg(feature = "report")]
    pub(crate) fn recorded_snapshots(&self) -> Vec<Snapshot> {
        let read =
            self.shared.storage().and_then(|s| s.snapshots()).and_then(|s| crate::observe::history::read(&s));
        match read {
            Ok((snapshots, _)) => snapshots,
            Err(crate::store::StoreError::Disabled) => Vec::new(),
            Err(err) => {
                tracing::error!(%err, "the recorded snapshots cannot be read");
                Vec::new()
            }
        }
    }

    /// Records in the journal that the application entered the phase
    /// `name` (a [`SignalKind::Phase`] act), which lasts until the next
    /// one: a load test's `baseline`, `chaos`, `recovery`. Reports mark
    /// phase boundaries on their charts.
    ///
    /// # Errors
    ///
    /// [`JournalError::EmptyText`] when `name` is blank.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Runtime, SignalKind};
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let entry = runtime.mark_phase("baseline")?;
    /// assert_eq!(entry.kind, SignalKind::Phase { name: "baseline".into() });
    /// assert!(runtime.mark_phase(" ").is_err());
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "observe")]
    pub fn mark_phase(&self, name: impl Into<String>) -> Result<Signal, JournalError> {
        let name = name.into();
        if name.trim().is_empty() {
            return Err(JournalError::EmptyText { field: "phase" });
        }
        self.shared.observer.mark(SystemTime::now(), SignalKind::Phase { name })
    }

    /// Runs one analysis window now, on this thread. A hook for benchmarks
    /// (the per-window cost of the analysis), hidden from the docs: no
    /// stability is promised.
    #[doc(hidden)]
    #[cfg(feature = "observe")]
    pub fn analyse_window_now(&self) {
        self.shared.analyse();
    }

    /// The journal entries that match `query`, oldest first (earlier runs'
    /// included when the runtime has storage).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, JournalQuery, Runtime, SignalType};
    ///
    /// struct Idle;
    /// impl Cell for Idle {
    ///     type Message = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let idle = runtime.spawn_with(cellrt::CellConfig::new().name("idle"), Idle)?;
    /// let spawned = runtime.journal(&JournalQuery::new().cell(idle.path().clone()).kind(SignalType::Topology));
    /// assert_eq!(spawned.len(), 1);
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "observe")]
    pub fn journal(&self, query: &JournalQuery) -> Vec<Signal> {
        self.shared.observer.journal().query(query)
    }

    /// A [`CircuitBreaker`] whose transitions are journaled: each one
    /// becomes a [`SignalKind::BreakerTransition`] entry at the path
    /// [`CellPath::breaker`]`(name)`, `/#breaker/<name>` (a prefix no cell
    /// can take), triaged as Hidden
    /// Dependency Exposed (see [`Category`](crate::Category)). Breakers made
    /// with the same name share that path.
    ///
    /// The breaker holds the runtime weakly: it keeps working after the
    /// runtime is gone, unjournaled.
    ///
    /// # Errors
    ///
    /// As [`CircuitBreaker::new`], and
    /// [`BreakerConfigError::InvalidName`] when `name` is not a valid cell
    /// name.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{BreakerConfig, BreakerState, CellPath, JournalQuery, Runtime, SignalKind};
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let breaker = runtime.breaker("inventory", BreakerConfig::default())?;
    /// breaker.force_open();
    /// let entries = runtime.journal(&JournalQuery::new().cell(CellPath::breaker("inventory")?));
    /// assert!(matches!(
    ///     entries[0].kind,
    ///     SignalKind::BreakerTransition { from: BreakerState::Closed, to: BreakerState::ForcedOpen, .. }
    /// ));
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "observe")]
    pub fn breaker(&self, name: &str, config: BreakerConfig) -> Result<CircuitBreaker, BreakerConfigError> {
        let breaker = CircuitBreaker::new(name, config)?;
        let path = CellPath::breaker(name).map_err(BreakerConfigError::InvalidName)?;
        let runtime = Arc::downgrade(&self.shared);
        breaker.on_transition(move |transition| {
            let Some(runtime) = runtime.upgrade() else { return };
            let kind = SignalKind::BreakerTransition {
                breaker: transition.breaker.to_string(),
                from: transition.from,
                to: transition.to,
                failure_rate: transition.failure_rate,
                slow_call_rate: transition.slow_call_rate,
            };
            runtime.observer.signal(transition.at, Some(&path), Some(BREAKER_KIND), kind);
        });
        Ok(breaker)
    }

    /// Sets (or, with `None`, clears) the objective of the cell at `path`,
    /// whether or not it runs now: it applies from the next analysis window
    /// to whichever cell has the path, across restarts and replacements.
    /// Journaled as a configuration change.
    #[cfg(feature = "observe")]
    pub fn set_objective(&self, path: &CellPath, objective: Option<Objective>) {
        self.shared.observer.set_objective(path, objective);
    }

    /// Records that journal entry `signal` was investigated, and whether it
    /// yielded a novel insight: what the failure signal-to-insight ratio
    /// counts (see [`LearningMeasures`](crate::LearningMeasures)).
    ///
    /// # Errors
    ///
    /// [`JournalError`] when `signal` does not exist or is not an anomaly.
    #[cfg(feature = "observe")]
    pub fn investigate(&self, signal: u64, insight: Option<String>) -> Result<Signal, JournalError> {
        self.shared.observer.journal().investigate(SystemTime::now(), signal, insight)
    }

    /// Records a change approved to prevent the class of problem behind
    /// `signals`: what learning velocity measures, from the onset of those
    /// signals to now.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when `signals` is empty, or one does not exist or is
    /// not an anomaly.
    #[cfg(feature = "observe")]
    pub fn record_change(
        &self,
        signals: &[u64],
        description: impl Into<String>,
    ) -> Result<Signal, JournalError> {
        self.shared.observer.journal().change(SystemTime::now(), signals, description.into())
    }

    /// Installs `faults` until the returned [`Injection`](crate::Injection)
    /// is dropped or [removed](crate::Injection::remove), or the runtime
    /// shuts down. Journaled, with the removal, as a [`SignalKind::Chaos`] act.
    /// `docs/chaos.md` in the repository lists the faults and what is never
    /// injected.
    ///
    /// # Errors
    ///
    /// [`InjectError::Empty`](crate::InjectError::Empty) for an empty set;
    /// `ShutDown` once shutdown has begun.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellConfig, CellError, Context, FaultSet, Runtime};
    ///
    /// struct Sink;
    /// impl Cell for Sink {
    ///     type Message = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let sink = runtime.spawn_with(CellConfig::new().name("sink"), Sink)?;
    /// let injection = runtime.inject(FaultSet::parse("/sink: full seed=1")?)?;
    /// assert!(sink.try_send(1).unwrap_err().is_full());
    /// assert_eq!(injection.remove()[0].injected, 1);
    /// sink.try_send(2)?;
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "chaos")]
    pub fn inject(&self, faults: impl Into<crate::FaultSet>) -> Result<crate::Injection, crate::InjectError> {
        self.inject_within(faults.into(), None)
    }

    /// [`inject`](Runtime::inject), acting only on cells within `radius`.
    #[cfg(feature = "chaos")]
    pub(crate) fn inject_within(
        &self,
        faults: crate::FaultSet,
        radius: Option<Vec<crate::chaos::target::Glob>>,
    ) -> Result<crate::Injection, crate::InjectError> {
        if faults.is_empty() {
            return Err(crate::InjectError::Empty);
        }
        if self.shared.is_shutting_down() {
            return Err(crate::InjectError::ShutDown);
        }
        let what = format!("chaos: injected {faults}");
        let armed = self.shared.chaos.install(faults.faults().to_vec(), radius);
        self.shared.journal_chaos(SignalKind::Chaos { experiment: String::new(), what });
        Ok(crate::Injection::new(Arc::downgrade(&self.shared), armed))
    }

    /// Fault sets installed now (by [`inject`](Runtime::inject) or a
    /// running experiment).
    #[cfg(feature = "chaos")]
    pub fn active_fault_sets(&self) -> usize {
        self.shared.chaos.installed()
    }

    /// Failures recorded since the runtime started.
    pub fn failure_count(&self) -> u64 {
        self.shared.failures_total.load(Acquire)
    }

    /// Number of live cells.
    pub fn cell_count(&self) -> usize {
        self.shared.registry.lock().cells.len()
    }

    /// Worker threads of the named dispatcher, `None` if there is none.
    pub fn dispatcher_threads(&self, name: &str) -> Option<usize> {
        self.shared.dispatchers.get(name).map(|d| d.workers())
    }

    /// What the named group is doing now, and its totals; `None` if no group
    /// has this name. See [`Builder::group`].
    pub fn group_stats(&self, name: &str) -> Option<GroupStats> {
        self.shared.groups.get(name).map(|group| group.stats())
    }

    /// Thread-less mode ([`Builder::threadless`]): fires the timers due
    /// now, then runs one turn (up to [`Builder::throughput`] messages,
    /// system messages first) of each cell that was ready when it was
    /// called, in the order they became ready. A cell that sends to
    /// another, or has messages left after its turn, is run by the next
    /// call: the work of one call is bounded. Never blocks, except on what
    /// a handler itself does.
    ///
    /// # Errors
    ///
    /// [`RunError::WorkerThreads`] when the runtime has worker threads
    /// (they run the cells).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use cellrt::{Cell, CellError, Context, Runtime};
    ///
    /// struct Led(bool);
    ///
    /// impl Cell for Led {
    ///     type Message = ();
    ///     fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
    ///         ctx.send_interval(Duration::from_millis(10), || ());
    ///         Ok(())
    ///     }
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), CellError> {
    ///         self.0 = !self.0;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().threadless(true).build()?;
    /// runtime.spawn(Led(false))?;
    /// let mut toggles = 0;
    /// while toggles < 3 {
    ///     // The board's main loop: run what is ready, sleep until the next timer.
    ///     let step = runtime.run_once()?;
    ///     toggles += step.timers;
    ///     if step.is_idle() {
    ///         let next = runtime.next_deadline().expect("the interval is pending");
    ///         std::thread::sleep(next.saturating_duration_since(Instant::now()));
    ///     }
    /// }
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn run_once(&self) -> Result<RunReport, RunError> {
        if !self.shared.is_threadless() {
            return Err(RunError::WorkerThreads);
        }
        Ok(self.shared.run_once())
    }

    /// Thread-less mode: [`run_once`](Runtime::run_once) until a call finds
    /// no cell ready and no timer due; returns the work of all the calls.
    /// Timers not yet due are not waited for, and a timer that comes due
    /// while it runs waits for the next call (so a short interval cannot
    /// keep it going). Cells that keep each other busy keep it running.
    ///
    /// # Errors
    ///
    /// [`RunError::WorkerThreads`] when the runtime has worker threads.
    pub fn run_until_idle(&self) -> Result<RunReport, RunError> {
        if !self.shared.is_threadless() {
            return Err(RunError::WorkerThreads);
        }
        Ok(self.shared.run_until_idle())
    }

    /// When the earliest pending timer (a cell's timer, the analysis
    /// window, a periodic flush) is due, if any: how long a thread-less
    /// application may sleep before its next [`run_once`](Runtime::run_once)
    /// when nothing is ready. `None` when no timer is pending: nothing will
    /// happen until the application sends a message.
    pub fn next_deadline(&self) -> Option<std::time::Instant> {
        self.shared.timers.next_deadline()
    }

    /// Stops every cell and every thread, and reports what happened.
    ///
    /// Cells are drained one at a time in reverse spawn order (children and
    /// later cells before the cells they may depend on): the mailbox is
    /// closed, what is queued is handled, `stopped` runs. When `timeout`
    /// passes, the cells left are killed: queued messages are dropped and
    /// counted, hooks do not run. A cell whose handler still does not return
    /// a second later is abandoned: reported, its mailbox discarded, its
    /// worker thread left to finish on its own.
    ///
    /// The storage, if any, is flushed and closed before this returns, even
    /// while addresses or `Store`s of the runtime are still held (those
    /// stores then fail with `StoreError::Closed`): another runtime can open
    /// the same data directory at once. (Dropping a runtime
    /// without `shutdown` does the same.)
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.shut_down = true;
        shutdown::run(&self.shared, timeout)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !self.shut_down {
            let report = shutdown::run(&self.shared, Duration::ZERO);
            tracing::debug!(?report, "runtime dropped without shutdown");
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("dispatchers", &self.shared.dispatcher_order)
            .field("cells", &self.cell_count())
            .finish()
    }
}
