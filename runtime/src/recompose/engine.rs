//! The engine: [`Recomposer`], which runs after every analysis window, turns
//! what the rules find into plans, applies them (at once, or when
//! approved), evaluates them and reverts the ones that made things worse,
//! journaling every step.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Instant, SystemTime};

use super::analyze::{CellWindow, Finding, Readings, ServingCell};
use super::apply::{Managed, ManagedCell, Recomposable};
use super::error::RecomposeError;
use super::evaluate::{judge, show, Verdict};
#[cfg(feature = "storage")]
use super::persist;
use super::persist::Restored;
#[cfg(feature = "storage")]
use super::persist::{RestoreError, RestoreWarning};
use super::plan::{Action, Expected, Layout, Metric, Plan, PlanStatus};
use super::policy::{built_in, inverse, CellFacts, Mode, Policy, Proposal, RecomposeConfig};
use crate::address::Addr;
use crate::failure::payload_text;
use crate::observe::journal::{JournalQuery, PlanStep, SignalKind, SignalType};
use crate::observe::BurnAlert;
use crate::path::CellPath;
use crate::runtime::{AnalysisHook, Runtime, RuntimeShared};
use crate::sync::{Arc, Mutex, Weak};

/// Windows kept per managed cell.
const HISTORY: usize = 64;
/// Findings kept in memory (the journal keeps them all).
const FINDINGS_KEPT: usize = 1024;
/// Journal entries one finding cites at most (the latest).
const EVIDENCE_MAX: usize = 32;
/// How many times its evaluation windows a canary's plan waits, at most,
/// for the canary and the cell beside it both to have taken messages.
const CANARY_PATIENCE: u32 = 4;

/// The recomposition engine of one runtime: see `docs/recomposition.md`.
///
/// Made with [`Recomposer::new`]; cells are put under it with
/// [`manage`](Recomposer::manage). After every analysis window
/// ([`ObservationConfig::window`](crate::ObservationConfig::window)) it reads
/// each managed cell, runs the built-in rules and the user
/// [`Policy`], and turns sustained findings into [`Plan`]s: applied at once
/// in [`Mode::Auto`], waiting for [`approve`](Recomposer::approve) in
/// [`Mode::Propose`]. An applied plan is evaluated after
/// [`evaluation_windows`](RecomposeConfig::evaluation_windows) windows and
/// kept, or reverted when it made its metric worse. A canary is compared
/// with the cell beside it once both have taken messages (up to four times
/// the evaluation windows; then it is ended) over the whole time it ran.
///
/// Dropping every `Recomposer` handle stops the engine; what it applied
/// stays applied.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Action, Cell, CellConfig, CellError, Context, Expected, Metric, Mode, Recomposable,
///              RecomposeConfig, Recomposer, Runtime};
///
/// struct Echo;
/// impl Cell for Echo {
///     type Message = u32;
///     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let echo = runtime.spawn_with(CellConfig::named("echo"), Echo)?;
/// let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Propose))?;
/// engine.manage(&echo, Recomposable::new(|| Echo).stateless())?;
///
/// // A plan made by hand waits for approval, like the engine's own.
/// let split = Action::Split { cell: echo.path().clone(), into: 2, by: cellrt::SplitBy::Stateless };
/// let plan = engine.propose(vec![split], Expected::Hold { metric: Metric::QueueDelay })?;
/// assert_eq!(engine.pending_plans().len(), 1);
/// engine.approve(plan)?;
/// assert_eq!(engine.layout(echo.path()).unwrap().pool, 2);
/// echo.send(7)?; // the same address, now a pool
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Recomposer {
    engine: Arc<Engine>,
}

struct Engine {
    shared: Arc<RuntimeShared>,
    config: RecomposeConfig,
    state: Mutex<State>,
    /// The user policy; `None` when none was set or it was disabled.
    policy: Mutex<Option<Box<dyn Policy>>>,
}

/// One managed cell and what the engine remembers of it.
struct Entry {
    cell: Arc<dyn ManagedCell>,
    /// Its windows, by window number, oldest first.
    history: VecDeque<(u64, CellWindow)>,
    /// For each built-in rule holding now, how many windows in a row it
    /// has held.
    streaks: Vec<(&'static str, u32)>,
    /// What the cell's registration allows; it does not change.
    facts: CellFacts,
    /// Windows left before the cell may get another plan.
    cooldown: u32,
    /// The plan pending or being evaluated for it.
    in_flight: Option<u64>,
}

/// Whether a serving cell is missing from a window or has stopped.
fn missing_or_stopped(cell: Option<&ServingCell>) -> bool {
    cell.is_none_or(|c| c.stopped)
}

impl Entry {
    /// The mean of `value` over the last `n` windows up to window `upto`,
    /// skipping the windows it has no value for.
    fn mean_of(&self, upto: u64, n: u32, value: impl Fn(&CellWindow) -> Option<f64>) -> Option<f64> {
        let values: Vec<f64> = self
            .history
            .iter()
            .rev()
            .filter(|(no, _)| *no <= upto)
            .take(n as usize)
            .filter_map(|(_, w)| value(w))
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    }

    /// The mean of `metric` for the serving cell at `path` over the last `n`
    /// windows up to window `upto` in which it took messages.
    fn cell_mean(&self, path: &CellPath, metric: Metric, upto: u64, n: u32) -> Option<f64> {
        self.mean_of(upto, n, |w| w.cell(path).filter(|c| c.messages > 0).map(|c| c.value(metric)))
    }

    /// The mean of `metric` over the last `n` windows up to window `upto`.
    fn mean(&self, expected: Expected, upto: u64, n: u32) -> Option<f64> {
        self.mean_of(upto, n, |w| Some(w.value(expected.metric())))
    }
}

/// A plan and what the engine needs to evaluate or revert it.
struct Record {
    plan: Plan,
    /// The cell's layout version the plan was made at, then applied at.
    version: u64,
    /// The metric's mean before the plan was applied.
    before: f64,
    /// The window it was applied in.
    applied_window: u64,
}

struct State {
    mode: Mode,
    /// Managed cells, in the order they were managed (never removed).
    entries: Vec<Entry>,
    /// Each managed cell's index in `entries`.
    by_path: HashMap<CellPath, usize>,
    plans: Vec<Record>,
    findings: VecDeque<Finding>,
    next_plan: u64,
    next_finding: u64,
    readings: Readings,
    window: u64,
}

impl Recomposer {
    /// An engine for `runtime`, hooked to its analysis windows.
    ///
    /// # Errors
    ///
    /// `ObservationDisabled` when the runtime does not observe its cells,
    /// `Config` when a setting is out of its documented range
    /// ([`RecomposeConfig::validate`]), `ShutDown`.
    pub fn new(runtime: &Runtime, config: RecomposeConfig) -> Result<Recomposer, RecomposeError> {
        config.validate().map_err(RecomposeError::Config)?;
        let shared = runtime.shared().clone();
        if !shared.observer().config().is_enabled() {
            return Err(RecomposeError::ObservationDisabled);
        }
        if shared.is_shutting_down() {
            return Err(RecomposeError::ShutDown);
        }
        let engine = Arc::new(Engine {
            shared,
            state: Mutex::new(State {
                mode: config.mode,
                entries: Vec::new(),
                by_path: HashMap::new(),
                plans: Vec::new(),
                findings: VecDeque::new(),
                next_plan: 1,
                next_finding: 1,
                readings: Readings::default(),
                window: 0,
            }),
            config,
            policy: Mutex::new(None),
        });
        let hook: Weak<dyn AnalysisHook> = Arc::downgrade(&engine) as Weak<dyn AnalysisHook>;
        engine.shared.add_analysis_hook(hook);
        Ok(Recomposer { engine })
    }

    /// Puts the cell behind `addr` under the engine, with what `spec`
    /// offers. The cell must be alone behind its address; a supervised
    /// cell keeps its supervisor, which takes the cells a change adds
    /// beside it (see `docs/recomposition.md`).
    ///
    /// With storage, the plans kept for this cell by an earlier run on the
    /// same data directory are applied again, in the order they were kept:
    /// the cell comes back in its recomposed topology. A plan that cannot
    /// be applied again (a variant no longer registered, a kind the cell has
    /// not handled yet in this run) stops the restore there; the returned
    /// [`Restored`] says which plan and why, and the journal records it.
    ///
    /// # Errors
    ///
    /// `AlreadyManaged`, `NotACell` (a router, or a stopped cell),
    /// `Supervised` (its supervisor has stopped), `Registration` (a variant
    /// named `""` or `"base"` or registered twice, a stateless or keyed
    /// cell's `max_pool` below 2: [`Recomposable::validate`]).
    pub fn manage<M: Send + 'static>(
        &self,
        addr: &Addr<M>,
        spec: Recomposable<M>,
    ) -> Result<Restored, RecomposeError> {
        let engine = &self.engine;
        let managed: Arc<dyn ManagedCell> = Arc::new(Managed::new(addr, spec, engine.shared.send_timeout())?);
        let mut state = engine.state.lock();
        if state.by_path.contains_key(addr.path()) {
            return Err(RecomposeError::AlreadyManaged { cell: addr.path().clone() });
        }
        engine.shared.observer().signal(
            SystemTime::now(),
            Some(addr.path()),
            None,
            SignalKind::Configuration { what: "managed by the recomposition engine".to_owned() },
        );
        let restored = engine.restore(&state, &managed);
        let facts = CellFacts {
            stateless: managed.stateless(),
            keyed: managed.keyed(),
            max_pool: managed.max_pool(),
            variants: managed.variants(),
            sheddable: managed.sheddable(),
        };
        let index = state.entries.len();
        state.by_path.insert(addr.path().clone(), index);
        state.entries.push(Entry {
            cell: managed,
            facts,
            history: VecDeque::new(),
            streaks: Vec::new(),
            cooldown: 0,
            in_flight: None,
        });
        Ok(restored)
    }

    /// The engine's mode.
    pub fn mode(&self) -> Mode {
        self.engine.state.lock().mode
    }

    /// Changes the engine's mode. Plans already pending stay pending.
    pub fn set_mode(&self, mode: Mode) {
        self.engine.state.lock().mode = mode;
    }

    /// Sets the user policy, tried after the built-in rules (replacing any
    /// earlier one). A policy must not call this `Recomposer`.
    pub fn set_policy(&self, policy: impl Policy) {
        *self.engine.policy.lock() = Some(Box::new(policy));
    }

    /// Proposes a plan by hand: it waits for approval whatever the mode.
    /// Every action must name the same managed cell and fit its layout now.
    ///
    /// # Errors
    ///
    /// `Invalid` (no action, or actions on different cells),
    /// `UnknownCell`, `UnknownKind`, `UnknownVariant`, `Layout`,
    /// `PlanInFlight`.
    pub fn propose(&self, actions: Vec<Action>, expected: Expected) -> Result<u64, RecomposeError> {
        let Some(first) = actions.first() else {
            return Err(RecomposeError::Invalid { reason: "a plan needs at least one action".into() });
        };
        let cell = first.cell().clone();
        if actions.iter().any(|a| *a.cell() != cell) {
            return Err(RecomposeError::Invalid {
                reason: "every action of a plan must name the same cell".into(),
            });
        }
        if let Expected::Fall { by, .. } = expected {
            if !(by > 0.0 && by <= 1.0) {
                return Err(RecomposeError::Invalid {
                    reason: format!("an expected fall of {by} is outside (0, 1]"),
                });
            }
        }
        let engine = &self.engine;
        let mut state = engine.state.lock();
        let index = state.index(&cell)?;
        let entry = &state.entries[index];
        if let Some(plan) = entry.in_flight {
            return Err(RecomposeError::PlanInFlight { cell, plan });
        }
        for action in &actions {
            entry.cell.check(action)?;
            if let Action::RetireInto { successor, .. } = action {
                state.index(successor)?;
            }
        }
        let proposal = Proposal::new("proposed by hand", actions, expected);
        Ok(engine.make_plan(&mut state, index, "manual", proposal, Vec::new(), Vec::new(), None))
    }

    /// Plans waiting for approval, oldest first.
    pub fn pending_plans(&self) -> Vec<Plan> {
        let state = self.engine.state.lock();
        state.plans.iter().filter(|r| r.plan.status == PlanStatus::Pending).map(|r| r.plan.clone()).collect()
    }

    /// Every plan made so far, oldest first.
    pub fn plans(&self) -> Vec<Plan> {
        self.engine.state.lock().plans.iter().map(|r| r.plan.clone()).collect()
    }

    /// The plan with id `plan`.
    pub fn plan(&self, plan: u64) -> Option<Plan> {
        self.engine.state.lock().plans.iter().find(|r| r.plan.id == plan).map(|r| r.plan.clone())
    }

    /// The latest findings (up to 1,024), oldest first.
    pub fn findings(&self) -> Vec<Finding> {
        self.engine.state.lock().findings.iter().cloned().collect()
    }

    /// The layout of the managed cell at `cell`.
    pub fn layout(&self, cell: &CellPath) -> Option<Layout> {
        let state = self.engine.state.lock();
        state.index(cell).ok().map(|i| state.entries[i].cell.layout())
    }

    /// The last windows the engine read of the managed cell at `cell`
    /// (up to 64), oldest first.
    pub fn windows(&self, cell: &CellPath) -> Vec<CellWindow> {
        let state = self.engine.state.lock();
        state.index(cell).map_or_else(
            |_| Vec::new(),
            |i| state.entries[i].history.iter().map(|(_, w)| w.clone()).collect(),
        )
    }

    /// Approves and applies a pending plan.
    ///
    /// # Errors
    ///
    /// `UnknownPlan`; `NotPending` (approved, rejected or over already);
    /// `Stale` when its cell changed since it was made (the plan is then
    /// rejected); the action's own error when applying fails (the plan is
    /// then failed, and the actions applied before the failing one undone).
    pub fn approve(&self, plan: u64) -> Result<(), RecomposeError> {
        let engine = &self.engine;
        let mut state = engine.state.lock();
        engine.approve(&mut state, plan)
    }

    /// Rejects a pending plan.
    ///
    /// # Errors
    ///
    /// `UnknownPlan`, `NotPending`.
    pub fn reject(&self, plan: u64) -> Result<(), RecomposeError> {
        let engine = &self.engine;
        let mut state = engine.state.lock();
        let index = state.record(plan)?;
        if state.plans[index].plan.status != PlanStatus::Pending {
            return Err(RecomposeError::NotPending { plan });
        }
        engine.conclude(&mut state, index, PlanStatus::Rejected { reason: "rejected by an operator".into() });
        Ok(())
    }

    /// Reverts an applied (or kept) plan now, by applying its inverse.
    ///
    /// # Errors
    ///
    /// `UnknownPlan`; `NotApplied` (pending, rejected, failed or reverted);
    /// `Stale` when its cell changed since the plan was applied; the
    /// inverse action's own error (the cell is then as the failing action
    /// found it, and the plan stays as it was).
    pub fn revert(&self, plan: u64) -> Result<(), RecomposeError> {
        let engine = &self.engine;
        let mut state = engine.state.lock();
        let index = state.record(plan)?;
        let record = &state.plans[index];
        if !matches!(record.plan.status, PlanStatus::Applied { .. } | PlanStatus::Kept { .. }) {
            return Err(RecomposeError::NotApplied { plan });
        }
        let entry = state.index(&record.plan.cell)?;
        let current = state.entries[entry].cell.layout().version;
        if current != record.version {
            return Err(RecomposeError::Stale { plan, planned: record.version, current });
        }
        let inverse = record.plan.inverse.clone();
        let cell = state.entries[entry].cell.clone();
        for action in &inverse {
            engine.apply_to(&state, &cell, action, false)?;
        }
        engine.conclude(&mut state, index, PlanStatus::Reverted { reason: "reverted by an operator".into() });
        Ok(())
    }
}

impl Recomposer {
    /// Runs the engine's part of one analysis window now, on this thread.
    /// A hook for benchmarks (the per-window cost of the engine), hidden
    /// from the docs: no stability is promised.
    #[doc(hidden)]
    pub fn analyse_window_now(&self) {
        self.engine.after_window(&self.engine.shared, Instant::now());
    }
}

impl fmt::Debug for Recomposer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.engine.state.lock();
        f.debug_struct("Recomposer")
            .field("mode", &state.mode)
            .field("cells", &state.entries.len())
            .field("plans", &state.plans.len())
            .finish()
    }
}

impl State {
    fn index(&self, cell: &CellPath) -> Result<usize, RecomposeError> {
        self.by_path.get(cell).copied().ok_or_else(|| RecomposeError::UnknownCell { cell: cell.clone() })
    }

    fn record(&self, plan: u64) -> Result<usize, RecomposeError> {
        self.plans.iter().position(|r| r.plan.id == plan).ok_or(RecomposeError::UnknownPlan { plan })
    }
}

impl Engine {
    /// Applies `action` to `cell`; a retire into another cell is given
    /// that cell's handle. With `reapply`, as for a plan kept by an earlier
    /// run (see `ManagedCell::reapply`).
    fn apply_to(
        &self,
        state: &State,
        cell: &Arc<dyn ManagedCell>,
        action: &Action,
        reapply: bool,
    ) -> Result<(), RecomposeError> {
        match action {
            Action::RetireInto { successor, state: moves, .. } => {
                let other = state.entries[state.index(successor)?].cell.clone();
                cell.retire_into(&self.shared, &*other, *moves)
            }
            _ if reapply => cell.reapply(&self.shared, action),
            _ => cell.apply(&self.shared, action),
        }
    }

    /// Applies again the plans kept for `cell` by earlier runs.
    #[cfg(feature = "storage")]
    fn restore(&self, state: &State, cell: &Arc<dyn ManagedCell>) -> Restored {
        let mut restored = Restored::default();
        let kept = match persist::load(&self.shared, cell.path()) {
            Ok(kept) => kept,
            Err(err) => {
                restored.warning =
                    Some(RestoreWarning { plan: 0, action: None, error: RestoreError::Storage(err) });
                self.journal_restore(cell.path(), &restored);
                return restored;
            }
        };
        'plans: for plan in kept {
            for action in &plan.actions {
                if let Err(err) = self.apply_to(state, cell, action, true) {
                    let error = RestoreError::Apply(err);
                    restored.warning =
                        Some(RestoreWarning { plan: plan.plan, action: Some(action.clone()), error });
                    break 'plans;
                }
            }
            restored.plans.push(plan.plan);
        }
        self.journal_restore(cell.path(), &restored);
        restored
    }

    /// Without storage nothing was kept across runs.
    #[cfg(not(feature = "storage"))]
    fn restore(&self, _state: &State, _cell: &Arc<dyn ManagedCell>) -> Restored {
        Restored::default()
    }

    /// Journals what a restore did, when it did anything.
    #[cfg_attr(not(feature = "storage"), allow(dead_code))]
    fn journal_restore(&self, cell: &CellPath, restored: &Restored) {
        let mut what = Vec::new();
        if !restored.plans.is_empty() {
            what.push(format!("kept plans {:?} of an earlier run applied again", restored.plans));
        }
        if let Some(warning) = &restored.warning {
            tracing::warn!(cell = %cell, %warning, "recomposition not restored");
            what.push(warning.to_string());
        }
        if !what.is_empty() {
            let kind = SignalKind::Configuration { what: what.join("; ") };
            self.shared.observer().signal(SystemTime::now(), Some(cell), None, kind);
        }
    }

    /// Stores what a kept plan (or the revert of one) did to its cell.
    #[cfg_attr(not(feature = "storage"), allow(unused_variables))]
    fn persist(&self, cell: &CellPath, plan: u64, actions: &[Action]) {
        #[cfg(feature = "storage")]
        if let Err(err) =
            persist::append(&self.shared, cell, persist::KeptPlan { plan, actions: actions.to_vec() })
        {
            tracing::error!(cell = %cell, plan, %err, "a kept plan was not stored: a restart will not apply it again");
        }
    }

    /// Journals a plan's step.
    fn journal_step(&self, plan: &Plan, step: PlanStep) {
        let kind = SignalKind::Plan {
            plan: plan.id,
            step,
            description: plan.description(),
            evidence: plan.evidence.clone(),
            onset: plan.onset,
        };
        self.shared.observer().signal(SystemTime::now(), Some(&plan.cell), None, kind);
    }

    /// Records a finding about cell `index`, with its evidence, and
    /// journals it. Returns it.
    fn find(
        &self,
        state: &mut State,
        index: usize,
        rule: &str,
        summary: &str,
        window: &CellWindow,
    ) -> Finding {
        let entry = &state.entries[index];
        let path = entry.cell.path().clone();
        let observer = self.shared.observer();
        let now = SystemTime::now();
        let since = now.checked_sub(self.config.evidence_lookback).unwrap_or(SystemTime::UNIX_EPOCH);
        let anomalies: Vec<_> = observer
            .journal()
            .query(&JournalQuery::new().cell(path.clone()).since(since))
            .into_iter()
            .filter(|s| s.category.is_some() && s.kind.signal_type() != SignalType::Finding)
            .collect();
        let cited = &anomalies[anomalies.len().saturating_sub(EVIDENCE_MAX)..];
        let mut evidence: Vec<u64> = cited.iter().map(|s| s.seq).collect();
        let mut onset = cited.iter().map(|s| s.at).min();
        let base = entry.cell.sources().base;
        let (baselines, edges) = match &base {
            Some(base) => {
                let analysis = observer.analysis.lock();
                let baselines = analysis.decay(base.id()).map(|(_, b)| b);
                let edges = analysis.edges(base.id()).iter().map(|e| (e.to.clone(), e.rate)).collect();
                (baselines, edges)
            }
            None => (None, Vec::new()),
        };
        let signatures = observer
            .signatures(now)
            .into_iter()
            .filter(|s| s.cells.contains(&path))
            .map(|s| (s.signature.id(), s.count))
            .collect();
        let id = state.next_finding;
        state.next_finding += 1;
        let kind = SignalKind::Finding {
            finding: id,
            rule: rule.to_owned(),
            summary: summary.to_owned(),
            evidence: evidence.clone(),
        };
        let cell_kind = base.as_ref().map(|b| b.cell_kind());
        if let Some(signal) = observer.signal(now, Some(&path), cell_kind, kind) {
            evidence.push(signal.seq);
            onset = Some(onset.map_or(signal.at, |o| o.min(signal.at)));
        }
        let finding = Finding {
            id,
            cell: path,
            rule: rule.to_owned(),
            summary: summary.to_owned(),
            window: window.clone(),
            baselines,
            signatures,
            edges,
            evidence,
            onset,
        };
        if state.findings.len() == FINDINGS_KEPT {
            state.findings.pop_front();
        }
        state.findings.push_back(finding.clone());
        finding
    }

    /// Makes a plan for cell `index` and journals it as proposed; in
    /// automatic mode (for the engine's own plans) applies it.
    #[allow(clippy::too_many_arguments)]
    fn make_plan(
        &self,
        state: &mut State,
        index: usize,
        rule: &str,
        proposal: Proposal,
        findings: Vec<u64>,
        evidence: Vec<u64>,
        onset: Option<SystemTime>,
    ) -> u64 {
        let entry = &mut state.entries[index];
        let layout = entry.cell.layout();
        let id = state.next_plan;
        state.next_plan += 1;
        entry.in_flight = Some(id);
        let plan = Plan {
            id,
            cell: layout.cell.clone(),
            rule: rule.to_owned(),
            findings,
            evidence,
            onset,
            inverse: inverse(&proposal.actions, &layout, self.config.shed_watermark),
            actions: proposal.actions,
            expected: proposal.expected,
            status: PlanStatus::Pending,
            created: SystemTime::now(),
            // Saturating: a long analysis window times the windows counted
            // would overflow `Duration`.
            evaluation: self.shared.observer().config().window.saturating_mul(self.config.evaluation_windows),
        };
        self.journal_step(&plan, PlanStep::Proposed);
        state.plans.push(Record { plan, version: layout.version, before: 0.0, applied_window: 0 });
        id
    }

    fn approve(&self, state: &mut State, plan: u64) -> Result<(), RecomposeError> {
        let index = state.record(plan)?;
        if state.plans[index].plan.status != PlanStatus::Pending {
            return Err(RecomposeError::NotPending { plan });
        }
        let entry_index = state.index(&state.plans[index].plan.cell)?;
        let cell = state.entries[entry_index].cell.clone();
        let planned = state.plans[index].version;
        let current = cell.layout().version;
        if planned != current {
            let reason = format!("stale: made at version {planned}, the cell is at version {current}");
            self.conclude(state, index, PlanStatus::Rejected { reason });
            return Err(RecomposeError::Stale { plan, planned, current });
        }
        let record = &state.plans[index];
        self.journal_step(&record.plan, PlanStep::Approved);
        if !record.plan.evidence.is_empty() {
            let journal = self.shared.observer().journal();
            if let Err(err) =
                journal.change(SystemTime::now(), &record.plan.evidence, record.plan.description())
            {
                tracing::warn!(plan, %err, "the plan's change was not journaled");
            }
        }
        let before =
            state.entries[entry_index].mean(record.plan.expected, state.window, self.config.baseline_windows);
        let actions = record.plan.actions.clone();
        let before_layout = cell.layout();
        for (done, action) in actions.iter().enumerate() {
            if let Err(err) = self.apply_to(state, &cell, action, false) {
                // Undo what was applied, newest first.
                for undo in inverse(&actions[..done], &before_layout, self.config.shed_watermark) {
                    if let Err(undo_err) = self.apply_to(state, &cell, &undo, false) {
                        tracing::error!(plan, %undo_err, "could not undo an action of a failed plan");
                    }
                }
                self.conclude(state, index, PlanStatus::Failed { reason: err.to_string() });
                return Err(err);
            }
        }
        let window = state.window;
        let record = &mut state.plans[index];
        record.before = before.unwrap_or(0.0);
        record.applied_window = window;
        record.version = cell.layout().version;
        record.plan.status = PlanStatus::Applied { at: SystemTime::now() };
        self.journal_step(&record.plan, PlanStep::Applied);
        tracing::info!(plan, cell = %record.plan.cell, actions = %record.plan.description(), "recomposition applied");
        Ok(())
    }

    /// Ends plan `index` with `status`, journals it, and frees its cell.
    fn conclude(&self, state: &mut State, index: usize, status: PlanStatus) {
        let record = &mut state.plans[index];
        let was_kept = matches!(record.plan.status, PlanStatus::Kept { .. });
        record.plan.status = status.clone();
        if was_kept && matches!(status, PlanStatus::Reverted { .. }) {
            let (cell, id, inverse) = (record.plan.cell.clone(), record.plan.id, record.plan.inverse.clone());
            self.persist(&cell, id, &inverse);
        }
        let record = &state.plans[index];
        let step = match status.clone() {
            PlanStatus::Kept { before, after, met } => {
                let metric = record.plan.expected.metric();
                PlanStep::Kept {
                    measured: format!(
                        "{metric} {} before, {} after; expected {} ({})",
                        show(metric, before),
                        show(metric, after),
                        record.plan.expected,
                        if met { "met" } else { "not met, not worse" }
                    ),
                }
            }
            PlanStatus::Reverted { reason } => PlanStep::Reverted { measured: reason },
            PlanStatus::Rejected { reason } => PlanStep::Rejected { reason },
            PlanStatus::Failed { reason } => PlanStep::Failed { reason },
            PlanStatus::Pending | PlanStatus::Applied { .. } => return,
        };
        let plan = record.plan.clone();
        if matches!(status, PlanStatus::Kept { .. }) {
            self.persist(&plan.cell, plan.id, &plan.actions);
        }
        self.journal_step(&plan, step);
        if let Some(entry) = state.index(&plan.cell).ok().map(|i| &mut state.entries[i]) {
            if entry.in_flight == Some(plan.id) {
                entry.in_flight = None;
                entry.cooldown = self.config.cooldown_windows;
            }
        }
    }

    /// Evaluates the applied plans whose evaluation windows have passed.
    fn evaluate(&self, state: &mut State) {
        let due: Vec<usize> = state
            .plans
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                matches!(r.plan.status, PlanStatus::Applied { .. })
                    && state.window > r.applied_window + u64::from(self.config.evaluation_windows)
            })
            .map(|(i, _)| i)
            .collect();
        for index in due {
            let record = &state.plans[index];
            let Ok(entry_index) = state.index(&record.plan.cell) else { continue };
            let entry = &state.entries[entry_index];
            let expected = record.plan.expected;
            let metric = expected.metric();
            let windows = self.config.evaluation_windows;
            // Why a canary cannot be judged, if it cannot.
            let mut unjudged = None;
            let (before, after, stopped) = match (expected, record.plan.actions.first()) {
                (Expected::Canary { .. }, Some(Action::Canary { kind, .. })) => {
                    let target = match kind {
                        None => Some(record.plan.cell.clone()),
                        Some(kind) => {
                            entry.cell.layout().isolated.into_iter().find(|i| i.kind == *kind).map(|i| i.cell)
                        }
                    };
                    let canary = target.as_ref().and_then(|t| t.child("canary").ok());
                    // The two are compared over the canary's whole run: a
                    // cell whose messages are slow reports them when its
                    // turn ends, so a few windows may show it none.
                    let ran = u32::try_from(state.window - record.applied_window).unwrap_or(u32::MAX);
                    let (before, after, stopped) = match (&target, &canary) {
                        (Some(target), Some(canary)) => (
                            entry.cell_mean(target, metric, state.window, ran),
                            entry.cell_mean(canary, metric, state.window, ran),
                            missing_or_stopped(entry.history.back().and_then(|(_, w)| w.cell(canary))),
                        ),
                        _ => (None, None, true),
                    };
                    if !stopped
                        && (before.is_none() || after.is_none())
                        && ran <= windows.saturating_mul(CANARY_PATIENCE)
                    {
                        // Not both have taken messages yet: judge later.
                        continue;
                    }
                    unjudged = match (stopped, before, after) {
                        (true, ..) => Some("the canary stopped"),
                        (false, _, None) => Some("the canary took no messages"),
                        (false, None, Some(_)) => Some("the cell beside the canary took no messages"),
                        (false, Some(_), Some(_)) => None,
                    };
                    (before.unwrap_or(0.0), after.unwrap_or(0.0), unjudged.is_some())
                }
                _ => {
                    let after = entry.mean(expected, state.window, windows).unwrap_or(0.0);
                    let stopped = entry.history.back().is_some_and(|(_, w)| w.stopped);
                    (record.before, after, stopped)
                }
            };
            let verdict =
                if stopped { Verdict::Worse } else { judge(expected, before, after, self.config.tolerance) };
            if verdict != Verdict::Worse {
                if let (Expected::Canary { .. }, Some(Action::Canary { cell, kind, .. })) =
                    (expected, record.plan.actions.first())
                {
                    // The rest of the traffic follows the canary.
                    let promote = Action::Promote { cell: cell.clone(), kind: kind.clone() };
                    let managed = entry.cell.clone();
                    let layout = managed.layout();
                    match managed.apply(&self.shared, &promote) {
                        Ok(()) => {
                            let record = &mut state.plans[index];
                            record.plan.actions.push(promote.clone());
                            record.plan.inverse = inverse(&[promote], &layout, self.config.shed_watermark);
                            record.version = managed.layout().version;
                        }
                        Err(err) => {
                            let reason = format!("the canary was no worse, but promoting it failed: {err}");
                            self.conclude(state, index, PlanStatus::Failed { reason });
                            continue;
                        }
                    }
                }
            }
            let record = &state.plans[index];
            let Ok(entry_index) = state.index(&record.plan.cell) else { continue };
            let entry = &state.entries[entry_index];
            match verdict {
                Verdict::Met => self.conclude(state, index, PlanStatus::Kept { before, after, met: true }),
                Verdict::Short => self.conclude(state, index, PlanStatus::Kept { before, after, met: false }),
                Verdict::Worse => {
                    let measured = if let Some(unjudged) = unjudged {
                        unjudged.to_owned()
                    } else if stopped {
                        "the cell serving the address stopped".to_owned()
                    } else {
                        format!(
                            "{metric} {} before, {} after; expected {}: worse",
                            show(metric, before),
                            show(metric, after),
                            expected
                        )
                    };
                    let cell = entry.cell.clone();
                    let current = cell.layout().version;
                    let outcome = if current != record.version {
                        Err(format!(
                            "the cell changed since (version {current}, applied at {})",
                            record.version
                        ))
                    } else {
                        record
                            .plan
                            .inverse
                            .clone()
                            .iter()
                            .try_for_each(|action| self.apply_to(state, &cell, action, false))
                            .map_err(|err| err.to_string())
                    };
                    let status = match outcome {
                        Ok(()) => PlanStatus::Reverted { reason: measured },
                        Err(err) => {
                            PlanStatus::Failed { reason: format!("{measured}; the revert failed: {err}") }
                        }
                    };
                    self.conclude(state, index, status);
                }
            }
        }
    }

    /// Runs the built-in rules on every cell free for a plan; returns the
    /// cells they found nothing for.
    fn run_rules(&self, state: &mut State, budget: &mut usize) -> Vec<usize> {
        let mut quiet = Vec::new();
        for index in 0..state.entries.len() {
            let entry = &mut state.entries[index];
            // A rule's streak counts windows after the cell's last change.
            if entry.in_flight.is_some() || entry.cooldown > 0 {
                entry.streaks.clear();
                continue;
            }
            let Some((_, window)) = entry.history.back() else { continue };
            let layout = entry.cell.layout();
            let candidates = built_in(&self.config, window, &layout, &entry.facts);
            let streaks: Vec<(&'static str, u32)> = candidates
                .iter()
                .map(|c| {
                    let held = entry.streaks.iter().find(|(rule, _)| *rule == c.rule).map_or(0, |(_, n)| *n);
                    (c.rule, held + 1)
                })
                .collect();
            let ready = candidates.into_iter().zip(&streaks).find(|(c, (_, held))| *held >= c.sustain);
            match ready {
                Some((candidate, _)) if *budget > 0 => {
                    *budget -= 1;
                    let window = window.clone();
                    entry.streaks.clear();
                    self.plan_finding(state, index, candidate.rule, candidate.proposal, &window);
                }
                Some(_) => entry.streaks = streaks,
                None => {
                    entry.streaks = streaks;
                    quiet.push(index);
                }
            }
        }
        quiet
    }

    /// A finding, then its plan (applied at once in automatic mode).
    fn plan_finding(
        &self,
        state: &mut State,
        index: usize,
        rule: &str,
        proposal: Proposal,
        window: &CellWindow,
    ) {
        let finding = self.find(state, index, rule, &proposal.summary, window);
        let plan =
            self.make_plan(state, index, rule, proposal, vec![finding.id], finding.evidence, finding.onset);
        if state.mode == Mode::Auto {
            if let Err(err) = self.approve(state, plan) {
                tracing::warn!(plan, %err, "recomposition plan not applied");
            }
        }
    }

    /// Asks the user policy about `cells`; a panic disables it.
    fn run_policy(&self, cells: &[(usize, CellWindow, Layout)]) -> Vec<(usize, String, Proposal)> {
        let mut slot = self.policy.lock();
        let Some(policy) = slot.as_mut() else { return Vec::new() };
        let mut proposals = Vec::new();
        for (index, window, layout) in cells {
            match catch_unwind(AssertUnwindSafe(|| policy.propose(window, layout))) {
                Ok(Some(proposal)) => proposals.push((*index, policy.name().to_owned(), proposal)),
                Ok(None) => {}
                Err(payload) => {
                    let name =
                        catch_unwind(AssertUnwindSafe(|| policy.name().to_owned())).unwrap_or_default();
                    let what = format!(
                        "recomposition policy {name:?} disabled: it panicked: {}",
                        payload_text(&*payload)
                    );
                    tracing::error!("{what}");
                    *slot = None;
                    drop(slot);
                    self.shared.observer().signal(
                        SystemTime::now(),
                        None,
                        None,
                        SignalKind::Configuration { what },
                    );
                    return proposals;
                }
            }
        }
        proposals
    }
}

impl AnalysisHook for Engine {
    fn after_window(&self, shared: &Arc<RuntimeShared>, now: Instant) {
        if shared.is_shutting_down() {
            return;
        }
        let mut state = self.state.lock();
        state.window += 1;
        let window_no = state.window;
        let mut live = HashSet::new();
        let State { entries, readings, .. } = &mut *state;
        for entry in entries.iter_mut() {
            let sources = entry.cell.sources();
            live.extend(sources.all().map(|c| c.id()));
            let burn_page = sources.base.as_ref().is_some_and(|base| {
                let analysis = shared.observer().analysis.lock();
                analysis.objective(base.id(), now).is_some_and(|(_, status)| {
                    status.alerts.iter().any(|a| a.alert == BurnAlert::Fast && a.firing)
                })
            });
            let decay_of = |id: u64| shared.observer().analysis.lock().decay(id).map(|(d, _)| d);
            let window = readings.window(entry.cell.path(), &sources, &decay_of, burn_page);
            if entry.history.len() == HISTORY {
                entry.history.pop_front();
            }
            entry.history.push_back((window_no, window));
        }
        readings.retain(&live);
        self.evaluate(&mut state);
        if state.mode != Mode::Off {
            let share = (state.entries.len() as f64 * self.config.max_changes_share).floor() as usize;
            let mut budget = share.max(1);
            let quiet = self.run_rules(&mut state, &mut budget);
            let asks: Vec<(usize, CellWindow, Layout)> = quiet
                .into_iter()
                .filter_map(|i| {
                    let entry = &state.entries[i];
                    let (_, window) = entry.history.back()?;
                    Some((i, window.clone(), entry.cell.layout()))
                })
                .collect();
            if !asks.is_empty() && budget > 0 {
                drop(state);
                let proposals = self.run_policy(&asks);
                state = self.state.lock();
                for (index, rule, proposal) in proposals {
                    if budget == 0 {
                        break;
                    }
                    let Some(entry) = state.entries.get(index) else { continue };
                    if entry.in_flight.is_some() || proposal.actions.is_empty() {
                        continue;
                    }
                    if let Some(err) = proposal.actions.iter().find_map(|a| entry.cell.check(a).err()) {
                        tracing::warn!(policy = %rule, %err, "a policy proposed a plan that does not fit");
                        continue;
                    }
                    let Some((_, window)) = entry.history.back().cloned() else { continue };
                    budget -= 1;
                    self.plan_finding(&mut state, index, &rule, proposal, &window);
                }
            }
        }
        for entry in &mut state.entries {
            entry.cooldown = entry.cooldown.saturating_sub(1);
        }
    }
}
