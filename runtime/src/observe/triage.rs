//! Triage: the [`Category`] of each signal the journal records.
//!
//! This module owns the categories, their rules, the [`TriageConfig`] that
//! tunes the rules, and the bounded memory of recent signals the rules look
//! back on.
//!
//! Seed 004 ("The Data Overload Trap") asks for a *Signal Triage board*
//! that sorts signals "not by severity, but by transformative potential",
//! into Architectural Debt Indicator, New User Behavior Pattern, Hidden
//! Dependency Exposed and Process Breakdown. Every anomaly the journal
//! records gets exactly one of these categories; records of deliberate acts
//! (topology and configuration changes, investigations, approved changes)
//! get none.
//!
//! # Rules
//!
//! Evaluated in this order for every anomaly; the first that matches wins.
//! "Within `w` before `t`" means at a time in `[t - w, t]`.
//!
//! | # | category | the signal is | and |
//! |---|---|---|---|
//! | 1 | Process Breakdown | a failure onset: `NewSignature`, `Restart`, `Escalation`, `DecayCrossed` rising, `BurnRate` raised | a topology or configuration change was recorded (on any cell) within `change_window` before it, or the runtime is in a restart storm: at least `storm_restarts` `Restart` signals within `storm_window` before it, this one included |
//! | 2 | Hidden Dependency Exposed | a failure or decay on a cell A: `NewSignature`, `Recurrence`, `Restart`, `Escalation`, `DecayCrossed` rising, `BurnRate` raised, `Backpressure` begun | an anomaly was recorded within `dependency_window` before it on a cell B that A sends messages to (`depends_on(A)`), B ≠ A |
//! | 3 | Architectural Debt Indicator | a `Recurrence` | its signature was first seen more than `debt_age` before it, and it has recurred at least `debt_recurrences` times |
//! | 3 | Architectural Debt Indicator | a `DecayCrossed` rising | it has been rising for at least `debt_rising_windows` windows |
//! | 4 | Hidden Dependency Exposed | a `BreakerTransition`, whatever its states | — |
//! | 4 | New Behavior Pattern | a `NewSignature`, `NewMessageKind`, `LoadShift` or `Backpressure` begun | — |
//! | 5 | the category of its signature's `NewSignature` (New Behavior Pattern when unknown) | a `Recurrence` no rule above took | — |
//! | 5 | Architectural Debt Indicator | a `DecayCrossed` rising or `BurnRate` raised no rule above took | — |
//! | 5 | Process Breakdown | a `Restart` or `Escalation` no rule above took | — |
//! | 5 | the category of the episode it closes | a closing signal: `DecayCrossed` falling, `BurnRate` cleared, `Backpressure` ended | when no episode is known: Architectural Debt Indicator for decay and burn rates, New Behavior Pattern for backpressure |
//!
//! Why decay and burn rates default to Architectural Debt: the seed treats
//! decay (rising fragility, cost and drag against a cell's own baseline)
//! and a burning error budget as the slow erosion a design accumulates, the
//! evidence a "decay layer" exists to surface; when nothing sudden explains
//! them (no change, no storm, no failing dependency), the design is what is
//! left to blame. A closing signal ends an episode rather than starting
//! one, so it takes the category the episode was given: an episode is
//! keyed by cell and signal type (and, for burn rates, objective and
//! alert).
//!
//! Why every breaker transition is Hidden Dependency Exposed: a circuit
//! breaker stands in front of a dependency, and it opens only when that
//! dependency fails or answers slowly often enough: the opening is the
//! dependency exposed, named by the breaker. Its other moves belong to the
//! same story: half-open and closed tell how the dependency recovers,
//! forced-open and disabled are an operator's reaction to it. Breaker
//! transitions are neither failure onsets nor failures of a cell (they are
//! journaled at `/#breaker/<name>`, which no cell sends to), so rules 1 and
//! 2 never take them.
//!
//! # Memory
//!
//! [`Triage`] remembers only what the rules look back on, bounded:
//!
//! - the latest anomaly time per cell, swept once per `dependency_window`
//!   of those older than the window;
//! - the latest topology or configuration change time (one value);
//! - the latest `storm_restarts` restart times;
//! - the category of the 1,024 most recently seen signatures (a
//!   `Recurrence` of a forgotten one defaults to New Behavior Pattern);
//! - the 1,024 most recently opened episodes that have not closed yet (a
//!   closing signal of a forgotten one takes its type's default).
//!
//! Signals are expected in time order. A signal timed before a remembered
//! one is judged against what is remembered: an anomaly or change recorded
//! "after" it in time does not count for it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use super::journal::{SignalKind, SignalType};
use crate::path::CellPath;

/// How many signatures' categories are remembered.
const SIGNATURES_KEPT: usize = 1024;
/// How many open episodes are remembered.
const EPISODES_KEPT: usize = 1024;

/// Where a signal stands on the Signal Triage board of seed 004: what it
/// can teach, not how loud it is.
///
/// # Examples
///
/// ```
/// use cellrt::Category;
///
/// assert_eq!(Category::HiddenDependency.to_string(), "Hidden Dependency Exposed");
/// assert_eq!(Category::NewBehavior.to_string(), "New Behavior Pattern");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Category {
    /// "Architectural Debt Indicator": a defect that keeps coming back long
    /// after it first appeared, or a cell decaying window after window.
    ArchitecturalDebt,
    /// "Hidden Dependency Exposed": a cell fails or decays right after a
    /// cell it sends messages to did.
    HiddenDependency,
    /// "New Behavior Pattern" (the seed's "New User Behavior Pattern"):
    /// something the runtime has not seen before — a new failure, message
    /// kind or load level.
    NewBehavior,
    /// "Process Breakdown": failures that follow a deliberate change, a
    /// restart storm, or supervision giving up.
    ProcessBreakdown,
}

impl Category {
    /// The seed's phrase for the category.
    pub(crate) fn phrase(self) -> &'static str {
        match self {
            Category::ArchitecturalDebt => "Architectural Debt Indicator",
            Category::HiddenDependency => "Hidden Dependency Exposed",
            Category::NewBehavior => "New Behavior Pattern",
            Category::ProcessBreakdown => "Process Breakdown",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.phrase())
    }
}

/// The windows and thresholds of the triage rules (see the table in the
/// module docs of `observe::triage`). Build from [`Default`] and the
/// setters; [`validate`](TriageConfig::validate) says whether it is usable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct TriageConfig {
    /// How far back an anomaly on a dependency exposes it (rule 2).
    /// Default 60 s.
    pub dependency_window: Duration,
    /// How far back a topology or configuration change is blamed for a
    /// failure onset (rule 1). Default 60 s.
    pub change_window: Duration,
    /// Restarts within [`storm_window`](TriageConfig::storm_window) that
    /// make a restart storm (rule 1). Default 10; at least 2.
    pub storm_restarts: u32,
    /// The window of a restart storm. Default 10 s.
    pub storm_window: Duration,
    /// How old a signature must be (strictly) for its recurrences to be
    /// debt (rule 3). Default 1 h.
    pub debt_age: Duration,
    /// How many times such a signature must have recurred (rule 3).
    /// Default 10.
    pub debt_recurrences: u64,
    /// For how many windows a rising decay must have been rising to be
    /// debt (rule 3). Default 5.
    pub debt_rising_windows: u32,
}

impl Default for TriageConfig {
    fn default() -> Self {
        TriageConfig {
            dependency_window: Duration::from_secs(60),
            change_window: Duration::from_secs(60),
            storm_restarts: 10,
            storm_window: Duration::from_secs(10),
            debt_age: Duration::from_secs(3600),
            debt_recurrences: 10,
            debt_rising_windows: 5,
        }
    }
}

impl TriageConfig {
    /// Sets [`dependency_window`](TriageConfig::dependency_window).
    pub fn dependency_window(mut self, window: Duration) -> Self {
        self.dependency_window = window;
        self
    }

    /// Sets [`change_window`](TriageConfig::change_window).
    pub fn change_window(mut self, window: Duration) -> Self {
        self.change_window = window;
        self
    }

    /// Sets [`storm_restarts`](TriageConfig::storm_restarts).
    pub fn storm_restarts(mut self, restarts: u32) -> Self {
        self.storm_restarts = restarts;
        self
    }

    /// Sets [`storm_window`](TriageConfig::storm_window).
    pub fn storm_window(mut self, window: Duration) -> Self {
        self.storm_window = window;
        self
    }

    /// Sets [`debt_age`](TriageConfig::debt_age).
    pub fn debt_age(mut self, age: Duration) -> Self {
        self.debt_age = age;
        self
    }

    /// Sets [`debt_recurrences`](TriageConfig::debt_recurrences).
    pub fn debt_recurrences(mut self, recurrences: u64) -> Self {
        self.debt_recurrences = recurrences;
        self
    }

    /// Sets [`debt_rising_windows`](TriageConfig::debt_rising_windows).
    pub fn debt_rising_windows(mut self, windows: u32) -> Self {
        self.debt_rising_windows = windows;
        self
    }

    /// Checks the settings: no window, age or threshold is zero, and a
    /// storm takes at least two restarts.
    ///
    /// # Errors
    ///
    /// The first setting that is not usable, in field order.
    pub fn validate(&self) -> Result<(), TriageConfigError> {
        let zero = |setting: &'static str| Err(TriageConfigError::Zero { setting });
        if self.dependency_window.is_zero() {
            return zero("dependency_window");
        }
        if self.change_window.is_zero() {
            return zero("change_window");
        }
        if self.storm_restarts < 2 {
            return Err(TriageConfigError::StormTooSmall { restarts: self.storm_restarts });
        }
        if self.storm_window.is_zero() {
            return zero("storm_window");
        }
        if self.debt_age.is_zero() {
            return zero("debt_age");
        }
        if self.debt_recurrences == 0 {
            return zero("debt_recurrences");
        }
        if self.debt_rising_windows == 0 {
            return zero("debt_rising_windows");
        }
        Ok(())
    }
}

/// Why a [`TriageConfig`] is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TriageConfigError {
    /// A window, age or threshold is zero, which would make its rule
    /// meaningless.
    Zero {
        /// The setting's name, as the field of [`TriageConfig`].
        setting: &'static str,
    },
    /// `storm_restarts` is below 2: one restart is not a storm.
    StormTooSmall {
        /// The value given.
        restarts: u32,
    },
}

impl fmt::Display for TriageConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TriageConfigError::Zero { setting } => write!(f, "triage setting {setting} must not be zero"),
            TriageConfigError::StormTooSmall { restarts } => {
                write!(f, "a restart storm takes at least 2 restarts, {restarts} was given")
            }
        }
    }
}

impl std::error::Error for TriageConfigError {}

/// An episode: a rising decay, a raised burn alert, a backpressure spell,
/// keyed by cell, type and (for burn rates) objective and alert.
type EpisodeKey = (Option<CellPath>, SignalType, String);

/// Classifies signals by the rules of the module docs, remembering what the
/// rules look back on.
#[derive(Debug)]
pub(crate) struct Triage {
    config: TriageConfig,
    /// The latest anomaly per cell.
    last_anomaly: HashMap<CellPath, SystemTime>,
    /// When `last_anomaly` is next swept of what the window left behind.
    next_sweep: Option<SystemTime>,
    /// The latest topology or configuration change.
    last_change: Option<SystemTime>,
    /// The latest `storm_restarts` restarts, oldest first.
    restarts: VecDeque<SystemTime>,
    /// Per signature id: the category its `NewSignature` got, and when the
    /// signature was last seen.
    signatures: HashMap<String, (Category, SystemTime)>,
    /// Open episodes: their category and when they opened.
    episodes: HashMap<EpisodeKey, (Category, SystemTime)>,
}

impl Triage {
    /// A triage with nothing remembered.
    pub(crate) fn new(config: TriageConfig) -> Result<Triage, TriageConfigError> {
        config.validate()?;
        Ok(Triage {
            config,
            last_anomaly: HashMap::new(),
            next_sweep: None,
            last_change: None,
            restarts: VecDeque::new(),
            signatures: HashMap::new(),
            episodes: HashMap::new(),
        })
    }

    /// The category of the signal `kind` on `cell` at `at`, by the rules of
    /// the module docs; `None` for records of deliberate acts. The signal
    /// is remembered for the signals after it. `depends_on(cell)` gives the
    /// cells `cell` sends messages to; it is only called for failure and
    /// decay signals on a cell.
    pub(crate) fn classify(
        &mut self,
        at: SystemTime,
        cell: Option<&CellPath>,
        kind: &SignalKind,
        depends_on: &dyn Fn(&CellPath) -> Vec<CellPath>,
    ) -> Option<Category> {
        match kind.signal_type() {
            SignalType::Topology | SignalType::Configuration | SignalType::Plan => {
                self.last_change = Some(self.last_change.map_or(at, |last| last.max(at)));
                return None;
            }
            SignalType::Investigated | SignalType::Change | SignalType::Chaos | SignalType::Phase => {
                return None
            }
            SignalType::ChaosFinding => {
                if let SignalKind::ChaosFinding { category, .. } = kind {
                    return Some(*category);
                }
            }
            _ => {}
        }
        if matches!(kind, SignalKind::Restart { .. }) {
            self.restarts.push_back(at);
            while self.restarts.len() > self.config.storm_restarts as usize {
                self.restarts.pop_front();
            }
        }
        let category = self.rules(at, cell, kind, depends_on);
        self.remember(at, cell, kind, category);
        Some(category)
    }

    #[cfg(test)]
    /// How many things are remembered: cells with a recent anomaly, the
    /// latest change, restart times, signatures and open episodes.
    pub(crate) fn remembered(&self) -> usize {
        self.last_anomaly.len()
            + usize::from(self.last_change.is_some())
            + self.restarts.len()
            + self.signatures.len()
            + self.episodes.len()
    }

    fn rules(
        &self,
        at: SystemTime,
        cell: Option<&CellPath>,
        kind: &SignalKind,
        depends_on: &dyn Fn(&CellPath) -> Vec<CellPath>,
    ) -> Category {
        let config = &self.config;
        // 1. Process Breakdown.
        if is_onset(kind) {
            let changed = self.last_change.is_some_and(|change| within(change, at, config.change_window));
            if changed || self.in_storm(at) {
                return Category::ProcessBreakdown;
            }
        }
        // 2. Hidden Dependency Exposed.
        if let Some(cell) = cell.filter(|_| is_failure(kind)) {
            let exposed = depends_on(cell).iter().any(|dependency| {
                dependency != cell
                    && self
                        .last_anomaly
                        .get(dependency)
                        .is_some_and(|&seen| within(seen, at, config.dependency_window))
            });
            if exposed {
                return Category::HiddenDependency;
            }
        }
        match kind {
            // 3. Architectural Debt Indicator.
            SignalKind::Recurrence { count, first_seen, .. }
                if *count >= config.debt_recurrences
                    && at.duration_since(*first_seen).is_ok_and(|age| age > config.debt_age) =>
            {
                Category::ArchitecturalDebt
            }
            SignalKind::DecayCrossed { rising: true, rising_for, .. }
                if *rising_for >= config.debt_rising_windows =>
            {
                Category::ArchitecturalDebt
            }
            // 4. Hidden Dependency Exposed, by a breaker.
            SignalKind::BreakerTransition { .. } => Category::HiddenDependency,
            // 3. Recomposition findings: load that outgrew or left a cell is
            // a new pattern; a kind or a path dragging a cell is debt.
            SignalKind::Finding { rule, .. } if rule == "split" || rule == "merge" => Category::NewBehavior,
            SignalKind::Finding { .. } => Category::ArchitecturalDebt,
            // 4. New Behavior Pattern.
            SignalKind::NewSignature { .. }
            | SignalKind::NewMessageKind { .. }
            | SignalKind::LoadShift { .. }
            | SignalKind::Backpressure { begun: true, .. } => Category::NewBehavior,
            // 5. Defaults.
            SignalKind::Recurrence { signature, .. } => {
                self.signatures.get(signature).map_or(Category::NewBehavior, |(category, _)| *category)
            }
            SignalKind::Restart { .. } | SignalKind::Escalation { .. } => Category::ProcessBreakdown,
            _ => match episode(cell, kind) {
                Some((key, false)) => {
                    self.episodes.get(&key).map_or_else(|| default_of(kind), |(category, _)| *category)
                }
                _ => default_of(kind),
            },
        }
    }

    /// Whether at least `storm_restarts` restarts lie within `storm_window`
    /// before `at`.
    fn in_storm(&self, at: SystemTime) -> bool {
        self.restarts.len() >= self.config.storm_restarts as usize
            && self.restarts.front().is_some_and(|&first| within(first, at, self.config.storm_window))
    }

    fn remember(&mut self, at: SystemTime, cell: Option<&CellPath>, kind: &SignalKind, category: Category) {
        if let Some(cell) = cell {
            let latest = self.last_anomaly.entry(cell.clone()).or_insert(at);
            *latest = (*latest).max(at);
        }
        self.sweep(at);
        match kind {
            SignalKind::NewSignature { signature, .. } => {
                self.signatures.insert(signature.clone(), (category, at));
                forget_oldest(&mut self.signatures, SIGNATURES_KEPT);
            }
            SignalKind::Recurrence { signature, .. } => {
                if let Some((_, seen)) = self.signatures.get_mut(signature) {
                    *seen = (*seen).max(at);
                }
            }
            _ => {}
        }
        match episode(cell, kind) {
            Some((key, true)) => {
                self.episodes.insert(key, (category, at));
                forget_oldest(&mut self.episodes, EPISODES_KEPT);
            }
            Some((key, false)) => {
                self.episodes.remove(&key);
            }
            None => {}
        }
    }

    /// Once per `dependency_window`, forgets the cells whose latest anomaly
    /// is older than the window.
    fn sweep(&mut self, at: SystemTime) {
        if self.next_sweep.is_some_and(|next| at < next) {
            return;
        }
        let window = self.config.dependency_window;
        self.last_anomaly.retain(|_, seen| *seen > at || within(*seen, at, window));
        self.next_sweep = at.checked_add(window);
    }
}

/// Whether `then` lies within `window` before `at`: in `[at - window, at]`.
fn within(then: SystemTime, at: SystemTime, window: Duration) -> bool {
    at.duration_since(then).is_ok_and(|ago| ago <= window)
}

/// A failure onset (rule 1).
fn is_onset(kind: &SignalKind) -> bool {
    matches!(
        kind,
        SignalKind::NewSignature { .. }
            | SignalKind::Restart { .. }
            | SignalKind::Escalation { .. }
            | SignalKind::DecayCrossed { rising: true, .. }
            | SignalKind::BurnRate { raised: true, .. }
    )
}

/// A failure or decay (rule 2).
fn is_failure(kind: &SignalKind) -> bool {
    is_onset(kind)
        || matches!(kind, SignalKind::Recurrence { .. } | SignalKind::Backpressure { begun: true, .. })
}

/// The episode a signal opens (`true`) or closes (`false`), if any.
fn episode(cell: Option<&CellPath>, kind: &SignalKind) -> Option<(EpisodeKey, bool)> {
    let cell = cell.cloned();
    match kind {
        SignalKind::DecayCrossed { rising, .. } => {
            Some(((cell, SignalType::DecayCrossed, String::new()), *rising))
        }
        SignalKind::BurnRate { objective, alert, raised, .. } => {
            Some(((cell, SignalType::BurnRate, format!("{objective}/{alert:?}")), *raised))
        }
        SignalKind::Backpressure { begun, .. } => {
            Some(((cell, SignalType::Backpressure, String::new()), *begun))
        }
        _ => None,
    }
}

/// The default category of a closing signal whose episode is unknown.
fn default_of(kind: &SignalKind) -> Category {
    match kind {
        SignalKind::Backpressure { .. } => Category::NewBehavior,
        _ => Category::ArchitecturalDebt,
    }
}

/// Forgets the least recently seen quarter of `map` once it holds more than
/// `kept` entries.
fn forget_oldest<K: Clone + Eq + std::hash::Hash>(map: &mut HashMap<K, (Category, SystemTime)>, kept: usize) {
    if map.len() <= kept {
        return;
    }
    let mut by_age: Vec<(SystemTime, K)> = map.iter().map(|(key, (_, seen))| (*seen, key.clone())).collect();
    by_age.sort_by_key(|(seen, _)| *seen);
    let excess = map.len() - kept * 3 / 4;
    for (_, key) in by_age.into_iter().take(excess) {
        map.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::BurnAlert;

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn cell(name: &str) -> CellPath {
        CellPath::root().child(name).unwrap()
    }

    fn triage() -> Triage {
        Triage::new(TriageConfig::default()).unwrap()
    }

    fn no_dependencies(_: &CellPath) -> Vec<CellPath> {
        Vec::new()
    }

    /// `/a` sends to `/b`.
    fn a_sends_to_b(of: &CellPath) -> Vec<CellPath> {
        if of.as_str() == "/a" {
            vec![cell("b")]
        } else {
            Vec::new()
        }
    }

    fn new_signature(id: &str) -> SignalKind {
        SignalKind::NewSignature { signature: id.into(), summary: format!("{id} Error in app::A (Handle)") }
    }

    fn recurrence(id: &str, count: u64, first_seen: SystemTime) -> SignalKind {
        SignalKind::Recurrence { signature: id.into(), count, first_seen }
    }

    fn restart() -> SignalKind {
        SignalKind::Restart { reason: "handler failed".into() }
    }

    fn decay(rising: bool, rising_for: u32) -> SignalKind {
        SignalKind::DecayCrossed { rising, score: 0.8, fragility: 0.5, cost: 0.2, drag: 0.1, rising_for }
    }

    fn burn(raised: bool) -> SignalKind {
        SignalKind::BurnRate {
            objective: "latency".into(),
            alert: BurnAlert::Fast,
            raised,
            long_rate: 15.0,
            short_rate: 16.0,
        }
    }

    fn backpressure(begun: bool) -> SignalKind {
        SignalKind::Backpressure { begun, rejected: 3, saturation: 0.9 }
    }

    fn topology() -> SignalKind {
        SignalKind::Topology { change: crate::observe::journal::TopologyChange::Spawned }
    }

    fn classify(triage: &mut Triage, secs: u64, on: &str, kind: &SignalKind) -> Option<Category> {
        triage.classify(t(secs), Some(&cell(on)), kind, &a_sends_to_b)
    }

    #[test]
    fn categories_display_the_seed_phrases() {
        let phrases: Vec<String> = [
            Category::ArchitecturalDebt,
            Category::HiddenDependency,
            Category::NewBehavior,
            Category::ProcessBreakdown,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            phrases,
            [
                "Architectural Debt Indicator",
                "Hidden Dependency Exposed",
                "New Behavior Pattern",
                "Process Breakdown"
            ]
        );
    }

    #[test]
    fn the_default_config_has_the_documented_values_and_is_valid() {
        let config = TriageConfig::default();
        assert_eq!(config.dependency_window, Duration::from_secs(60));
        assert_eq!(config.change_window, Duration::from_secs(60));
        assert_eq!((config.storm_restarts, config.storm_window), (10, Duration::from_secs(10)));
        assert_eq!(config.debt_age, Duration::from_secs(3600));
        assert_eq!((config.debt_recurrences, config.debt_rising_windows), (10, 5));
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn zero_settings_and_a_one_restart_storm_are_refused() {
        let zero = |setting| Err(TriageConfigError::Zero { setting });
        let base = TriageConfig::default;
        assert_eq!(base().dependency_window(Duration::ZERO).validate(), zero("dependency_window"));
        assert_eq!(base().change_window(Duration::ZERO).validate(), zero("change_window"));
        assert_eq!(base().storm_window(Duration::ZERO).validate(), zero("storm_window"));
        assert_eq!(base().debt_age(Duration::ZERO).validate(), zero("debt_age"));
        assert_eq!(base().debt_recurrences(0).validate(), zero("debt_recurrences"));
        assert_eq!(base().debt_rising_windows(0).validate(), zero("debt_rising_windows"));
        assert_eq!(
            base().storm_restarts(1).validate(),
            Err(TriageConfigError::StormTooSmall { restarts: 1 })
        );
        assert_eq!(
            base().storm_restarts(0).validate(),
            Err(TriageConfigError::StormTooSmall { restarts: 0 })
        );
        assert_eq!(base().storm_restarts(2).validate(), Ok(()));
        assert_eq!(
            Triage::new(base().change_window(Duration::ZERO)).err(),
            Some(TriageConfigError::Zero { setting: "change_window" })
        );
        assert_eq!(
            TriageConfigError::Zero { setting: "debt_age" }.to_string(),
            "triage setting debt_age must not be zero"
        );
        assert_eq!(
            TriageConfigError::StormTooSmall { restarts: 1 }.to_string(),
            "a restart storm takes at least 2 restarts, 1 was given"
        );
    }

    #[test]
    fn records_of_acts_get_no_category() {
        let mut triage = triage();
        let acts = [
            topology(),
            SignalKind::Configuration { what: "mailbox capacity of /a to 64".into() },
            SignalKind::Investigated { signal: 1, insight: None },
            SignalKind::Change { signals: vec![1], description: "split /a".into() },
        ];
        for act in &acts {
            assert_eq!(classify(&mut triage, 0, "a", act), None, "{act:?}");
        }
    }

    #[test]
    fn rule_1_an_onset_within_the_change_window_after_a_change_is_a_process_breakdown() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 100, "z", &topology()), None);
        // Every onset kind, exactly 60 s after the change.
        for kind in [new_signature("s1"), restart(), SignalKind::Escalation { reason: "gave up".into() }] {
            assert_eq!(classify(&mut triage, 160, "a", &kind), Some(Category::ProcessBreakdown), "{kind:?}");
        }
        assert_eq!(classify(&mut triage, 160, "c", &decay(true, 1)), Some(Category::ProcessBreakdown));
        assert_eq!(classify(&mut triage, 160, "c", &burn(true)), Some(Category::ProcessBreakdown));
        // A recurrence or backpressure is no onset.
        assert_eq!(
            classify(&mut triage, 160, "d", &recurrence("s9", 2, t(150))),
            Some(Category::NewBehavior)
        );
        assert_eq!(classify(&mut triage, 160, "d", &backpressure(true)), Some(Category::NewBehavior));
        // 61 s after the change, it is not.
        assert_eq!(classify(&mut triage, 161, "e", &new_signature("s2")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_1_a_configuration_change_counts_as_a_change() {
        let mut triage = triage();
        let configuration = SignalKind::Configuration { what: "throughput 8".into() };
        assert_eq!(classify(&mut triage, 0, "z", &configuration), None);
        assert_eq!(classify(&mut triage, 30, "a", &new_signature("s1")), Some(Category::ProcessBreakdown));
    }

    #[test]
    fn rule_1_a_change_timed_after_the_signal_does_not_count() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 100, "z", &topology()), None);
        assert_eq!(classify(&mut triage, 99, "a", &new_signature("s1")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_1_the_tenth_restart_within_ten_seconds_and_later_ones_are_a_storm() {
        let mut triage = triage();
        // Fed by the anomaly on /b, restarts of /a are hidden-dependency
        // failures until the storm takes over.
        assert_eq!(classify(&mut triage, 0, "b", &backpressure(true)), Some(Category::NewBehavior));
        let got: Vec<Option<Category>> =
            (1..=12).map(|s| classify(&mut triage, s, "a", &restart())).collect();
        let mut expected = vec![Some(Category::HiddenDependency); 9];
        expected.extend([Some(Category::ProcessBreakdown); 3]);
        assert_eq!(got, expected);
    }

    #[test]
    fn rule_1_nine_restarts_are_no_storm_and_ten_make_other_onsets_a_breakdown() {
        let mut triage = triage();
        for s in 0..9 {
            assert_eq!(classify(&mut triage, s, "r", &restart()), Some(Category::ProcessBreakdown));
        }
        assert_eq!(classify(&mut triage, 9, "x", &new_signature("s1")), Some(Category::NewBehavior));
        assert_eq!(classify(&mut triage, 9, "r", &restart()), Some(Category::ProcessBreakdown));
        // Ten restarts in [0 s, 9 s]: onsets up to 10 s after the first are a breakdown.
        assert_eq!(classify(&mut triage, 10, "x", &new_signature("s2")), Some(Category::ProcessBreakdown));
        assert_eq!(classify(&mut triage, 11, "x", &new_signature("s3")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_1_ten_restarts_spread_over_more_than_the_window_are_no_storm() {
        let mut triage = triage();
        // One every 2 s: ten take 18 s.
        for i in 0..10 {
            classify(&mut triage, i * 2, "r", &restart());
        }
        assert_eq!(classify(&mut triage, 18, "x", &new_signature("s1")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_2_a_failure_after_an_anomaly_on_a_dependency_exposes_it() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 0, "b", &new_signature("sb")), Some(Category::NewBehavior));
        // Exactly 60 s later, every failure or decay kind on /a.
        let kinds = [
            new_signature("sa"),
            recurrence("sa", 2, t(60)),
            restart(),
            SignalKind::Escalation { reason: "intensity".into() },
            decay(true, 1),
            burn(true),
            backpressure(true),
        ];
        for kind in &kinds {
            assert_eq!(classify(&mut triage, 60, "a", kind), Some(Category::HiddenDependency), "{kind:?}");
        }
        // Not what is no failure.
        let load = SignalKind::LoadShift { rate: 900.0, baseline: 100.0 };
        assert_eq!(classify(&mut triage, 60, "a", &load), Some(Category::NewBehavior));
        let message = SignalKind::NewMessageKind { message_kind: "Refund".into() };
        assert_eq!(classify(&mut triage, 60, "a", &message), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_2_an_anomaly_61_s_before_with_a_60_s_window_does_not_count() {
        let mut triage = triage();
        classify(&mut triage, 0, "b", &new_signature("sb"));
        assert_eq!(classify(&mut triage, 61, "a", &new_signature("sa")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_2_an_anomaly_on_a_cell_that_is_not_a_dependency_does_not_count() {
        let mut triage = triage();
        // /a sends to /b, not /c; /b sends to nobody.
        classify(&mut triage, 0, "c", &new_signature("sc"));
        assert_eq!(classify(&mut triage, 1, "a", &new_signature("sa")), Some(Category::NewBehavior));
        assert_eq!(classify(&mut triage, 2, "b", &new_signature("sb")), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_2_a_cells_own_earlier_anomaly_does_not_expose_it() {
        let mut triage = triage();
        let to_itself = |of: &CellPath| vec![of.clone()];
        let a = cell("a");
        triage.classify(t(0), Some(&a), &new_signature("s1"), &to_itself);
        assert_eq!(
            triage.classify(t(1), Some(&a), &new_signature("s2"), &to_itself),
            Some(Category::NewBehavior)
        );
    }

    #[test]
    fn rule_2_needs_a_cell_and_asks_for_dependencies_only_for_failures() {
        let mut triage = triage();
        let asked = std::cell::Cell::new(0);
        let counting = |of: &CellPath| {
            asked.set(asked.get() + 1);
            a_sends_to_b(of)
        };
        classify(&mut triage, 0, "b", &new_signature("sb"));
        assert_eq!(triage.classify(t(1), None, &new_signature("s1"), &counting), Some(Category::NewBehavior));
        let load = SignalKind::LoadShift { rate: 9.0, baseline: 1.0 };
        assert_eq!(triage.classify(t(1), Some(&cell("a")), &load, &counting), Some(Category::NewBehavior));
        assert_eq!(asked.get(), 0);
        assert_eq!(
            triage.classify(t(1), Some(&cell("a")), &restart(), &counting),
            Some(Category::HiddenDependency)
        );
        assert_eq!(asked.get(), 1);
    }

    #[test]
    fn precedence_a_change_and_a_dependency_anomaly_make_a_process_breakdown() {
        let mut triage = triage();
        classify(&mut triage, 0, "b", &new_signature("sb"));
        classify(&mut triage, 1, "z", &topology());
        assert_eq!(classify(&mut triage, 2, "a", &new_signature("sa")), Some(Category::ProcessBreakdown));
        // A recurrence is no onset: the dependency wins.
        assert_eq!(
            classify(&mut triage, 3, "a", &recurrence("sa", 2, t(2))),
            Some(Category::HiddenDependency)
        );
    }

    #[test]
    fn precedence_a_dependency_anomaly_wins_over_debt() {
        let mut triage = triage();
        classify(&mut triage, 5000, "b", &new_signature("sb"));
        assert_eq!(
            classify(&mut triage, 5001, "a", &recurrence("sa", 50, t(0))),
            Some(Category::HiddenDependency)
        );
        assert_eq!(classify(&mut triage, 5002, "a", &decay(true, 9)), Some(Category::HiddenDependency));
    }

    #[test]
    fn rule_3_an_old_signature_that_keeps_recurring_is_debt() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 0, "a", &new_signature("s1")), Some(Category::NewBehavior));
        // 1 h + 1 s old, 10 recurrences.
        assert_eq!(
            classify(&mut triage, 3601, "a", &recurrence("s1", 10, t(0))),
            Some(Category::ArchitecturalDebt)
        );
        // Exactly 1 h old is not older than 1 h: the signature's category.
        assert_eq!(
            classify(&mut triage, 3600, "a", &recurrence("s1", 10, t(0))),
            Some(Category::NewBehavior)
        );
        // Old enough, 9 recurrences only.
        assert_eq!(classify(&mut triage, 3601, "a", &recurrence("s1", 9, t(0))), Some(Category::NewBehavior));
        // First seen in the future: not old.
        assert_eq!(
            classify(&mut triage, 3601, "a", &recurrence("s1", 99, t(4000))),
            Some(Category::NewBehavior)
        );
    }

    #[test]
    fn rule_3_a_decay_rising_for_five_windows_is_debt_as_any_rising_decay_is_by_default() {
        let mut triage = triage();
        // Rule 3 and the decay default (rule 5) agree: both are debt.
        assert_eq!(classify(&mut triage, 0, "a", &decay(true, 5)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 0, "c", &decay(true, 4)), Some(Category::ArchitecturalDebt));
        // A change before it makes a long-rising decay a breakdown (rule 1 first).
        classify(&mut triage, 1, "z", &topology());
        assert_eq!(classify(&mut triage, 2, "d", &decay(true, 50)), Some(Category::ProcessBreakdown));
    }

    #[test]
    fn rule_4_new_things_are_new_behavior() {
        let mut triage = triage();
        let kinds = [
            new_signature("s1"),
            SignalKind::NewMessageKind { message_kind: "Refund".into() },
            SignalKind::LoadShift { rate: 500.0, baseline: 50.0 },
            backpressure(true),
        ];
        for (i, kind) in kinds.iter().enumerate() {
            let on = format!("c{i}");
            assert_eq!(classify(&mut triage, 0, &on, kind), Some(Category::NewBehavior), "{kind:?}");
        }
    }

    #[test]
    fn rule_5_a_recurrence_takes_its_signatures_category() {
        let mut triage = triage();
        classify(&mut triage, 0, "z", &topology());
        assert_eq!(classify(&mut triage, 1, "a", &new_signature("s1")), Some(Category::ProcessBreakdown));
        assert_eq!(classify(&mut triage, 2, "a", &new_signature("s2")), Some(Category::ProcessBreakdown));
        assert_eq!(classify(&mut triage, 500, "a", &new_signature("s3")), Some(Category::NewBehavior));
        assert_eq!(
            classify(&mut triage, 600, "a", &recurrence("s1", 2, t(1))),
            Some(Category::ProcessBreakdown)
        );
        assert_eq!(
            classify(&mut triage, 600, "a", &recurrence("s3", 2, t(500))),
            Some(Category::NewBehavior)
        );
        // Unknown signature (from an earlier run, say).
        assert_eq!(classify(&mut triage, 600, "a", &recurrence("s0", 7, t(0))), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_5_decay_and_burn_rates_default_to_debt_and_restarts_to_breakdown() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 0, "a", &decay(true, 1)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 0, "c", &burn(true)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 0, "d", &restart()), Some(Category::ProcessBreakdown));
        let escalation = SignalKind::Escalation { reason: "intensity".into() };
        assert_eq!(classify(&mut triage, 0, "e", &escalation), Some(Category::ProcessBreakdown));
    }

    #[test]
    fn rule_5_a_closing_signal_takes_the_category_of_the_episode_it_closes() {
        let mut triage = triage();
        classify(&mut triage, 0, "b", &new_signature("sb"));
        // Opened as hidden-dependency episodes on /a.
        assert_eq!(classify(&mut triage, 1, "a", &decay(true, 1)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 1, "a", &burn(true)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 1, "a", &backpressure(true)), Some(Category::HiddenDependency));
        // Closed long after, with /b quiet: still the episode's category.
        assert_eq!(classify(&mut triage, 900, "a", &decay(false, 0)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 900, "a", &burn(false)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 900, "a", &backpressure(false)), Some(Category::HiddenDependency));
        // Closed once: a second close has no episode left.
        assert_eq!(classify(&mut triage, 901, "a", &decay(false, 0)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 901, "a", &backpressure(false)), Some(Category::NewBehavior));
    }

    #[test]
    fn rule_5_a_closing_signal_without_an_episode_takes_its_types_default() {
        let mut triage = triage();
        assert_eq!(classify(&mut triage, 0, "a", &decay(false, 0)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 0, "a", &burn(false)), Some(Category::ArchitecturalDebt));
        assert_eq!(classify(&mut triage, 0, "a", &backpressure(false)), Some(Category::NewBehavior));
        // An episode on another cell, or of another objective, is not this one.
        classify(&mut triage, 0, "b", &backpressure(true));
        assert_eq!(classify(&mut triage, 1, "a", &backpressure(true)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 1, "a", &burn(true)), Some(Category::HiddenDependency));
        assert_eq!(classify(&mut triage, 200, "c", &backpressure(false)), Some(Category::NewBehavior));
        let other_objective = SignalKind::BurnRate {
            objective: "errors".into(),
            alert: BurnAlert::Fast,
            raised: false,
            long_rate: 1.0,
            short_rate: 1.0,
        };
        assert_eq!(classify(&mut triage, 201, "a", &other_objective), Some(Category::ArchitecturalDebt));
        let slow = SignalKind::BurnRate {
            objective: "latency".into(),
            alert: BurnAlert::Slow,
            raised: false,
            long_rate: 1.0,
            short_rate: 1.0,
        };
        assert_eq!(classify(&mut triage, 201, "a", &slow), Some(Category::ArchitecturalDebt));
        assert_eq!(
            triage.classify(t(202), Some(&cell("a")), &burn(false), &no_dependencies),
            Some(Category::HiddenDependency)
        );
        assert_eq!(classify(&mut triage, 202, "a", &backpressure(false)), Some(Category::HiddenDependency));
    }

    #[test]
    fn closing_signals_are_not_onsets_nor_failures() {
        let mut triage = triage();
        classify(&mut triage, 0, "z", &topology());
        classify(&mut triage, 0, "b", &new_signature("sb"));
        assert_eq!(classify(&mut triage, 1, "a", &backpressure(false)), Some(Category::NewBehavior));
        assert_eq!(classify(&mut triage, 1, "a", &burn(false)), Some(Category::ArchitecturalDebt));
    }

    #[test]
    fn memory_stays_small_over_a_hundred_thousand_signals() {
        let mut triage = triage();
        for i in 0..100_000_u64 {
            let on = format!("c{i}");
            let kind = match i % 5 {
                0 => new_signature(&format!("{i:016x}")),
                1 => recurrence(&format!("{:016x}", i - 1), 2, t(i - 1)),
                2 => decay(true, 1),
                3 => restart(),
                _ => topology(),
            };
            classify(&mut triage, i, &on, &kind);
        }
        // Cells of two dependency windows (one signal a second), the latest
        // change, ten restarts, the signatures and episodes kept.
        let bound = 2 * 60 + 1 + 1 + 10 + SIGNATURES_KEPT + EPISODES_KEPT;
        assert!(triage.remembered() <= bound, "{} > {bound}", triage.remembered());
        assert!(triage.last_anomaly.len() <= 2 * 60 + 1, "{}", triage.last_anomaly.len());
        assert!(triage.signatures.len() <= SIGNATURES_KEPT);
        assert!(triage.episodes.len() <= EPISODES_KEPT);
        assert_eq!(triage.restarts.len(), 10);
        // The most recent signature is still known.
        let latest = format!("{:016x}", 99_995);
        assert_eq!(triage.signatures.get(&latest).map(|(c, _)| *c), Some(Category::ProcessBreakdown));
    }

    #[test]
    fn every_breaker_transition_is_a_hidden_dependency_even_after_a_change() {
        use crate::flow::BreakerState::{Closed, ForcedOpen, HalfOpen, Open};
        let mut triage = triage();
        let breaker = CellPath::breaker("inventory").unwrap();
        let configuration = SignalKind::Configuration { what: "throughput 8".into() };
        assert_eq!(triage.classify(t(0), Some(&cell("a")), &configuration, &no_dependencies), None);
        for (offset, (from, to)) in
            [(Closed, Open), (Open, HalfOpen), (HalfOpen, Closed), (Closed, ForcedOpen)]
                .into_iter()
                .enumerate()
        {
            let kind = SignalKind::BreakerTransition {
                breaker: "inventory".into(),
                from,
                to,
                failure_rate: Some(60.0),
                slow_call_rate: Some(0.0),
            };
            let at = t(1 + offset as u64);
            assert_eq!(
                triage.classify(at, Some(&breaker), &kind, &a_sends_to_b),
                Some(Category::HiddenDependency),
                "{from} -> {to}"
            );
        }
    }
}
