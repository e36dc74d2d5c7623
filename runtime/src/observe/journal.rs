//! The signal journal: every anomaly the runtime notices and every
//! deliberate act taken about the system, as numbered, categorized
//! [`Signal`]s.
//!
//! This module owns the journal's data types ([`Signal`], [`SignalKind`],
//! [`SignalType`], [`TopologyChange`], [`RollUp`]), how it is queried
//! ([`JournalQuery`]), how much of it is kept ([`JournalConfig`]), the
//! learning measures computed from it ([`LearningMeasures`]), and the
//! crate-internal `Journal` that records, keeps, persists and emits the
//! entries.
//!
//! # Entries
//!
//! Anomalies (new failure signatures, recurrences, decay crossing its
//! threshold, burn-rate alerts, backpressure, load shifts, new message
//! kinds, restarts, escalations, circuit breaker transitions) carry the [`Category`] triage gave them.
//! Records of deliberate acts (topology and configuration changes,
//! investigations, approved changes, recomposition plans, chaos, the
//! application's phases) carry none. Entries are numbered 1, 2,
//! 3… in the order they are recorded; a persisted journal continues the
//! numbering of earlier runs.
//!
//! Every entry is also emitted as a `tracing` event with target
//! `cellrt::journal`: at level `WARN` for anomalies, `INFO` for acts, with
//! the fields `seq`, `cell` (empty when none), `category` (the seed's
//! phrase, empty for acts), `kind` ([`SignalType::as_str`]) and the
//! variant's own fields.
//!
//! # Retention
//!
//! A journal keeps [`JournalConfig::capacity`] entries in memory. Beyond
//! that the oldest are not dropped: an in-memory journal *rolls them up*
//! into one [`RollUp`] per (cell, type, category), counting them and
//! widening the roll-up's `[from, to]` span. A persisted journal keeps
//! [`JournalConfig::persisted_capacity`] entries in its store (the memory
//! holds the latest of them) and rolls up what leaves the store; an entry
//! the store refused is rolled up when it leaves the memory.
//!
//! # Storage
//!
//! A persisted journal lives in the runtime's `sys/journal` tree:
//!
//! | key | value |
//! |---|---|
//! | `e` + seq (8 bytes, big-endian, so keys sort by seq) | a [`Signal`] |
//! | `r` + type name + `0x00` + category phrase + `0x00` + cell path (empty parts for none) | a [`RollUp`] |
//! | `m` | the running counts behind [`LearningMeasures`] |
//!
//! An entry, the counts, and the roll-ups of the entries it pushes out of
//! the store are written in one transaction. A write that fails leaves the
//! entry in memory, counted by `persist_errors()` and logged. Stored data
//! that does not decode is skipped (and an unreadable entry pushed out of
//! the store is removed), counted by `read_errors()` and logged.
//!
//! # Learning measures
//!
//! Seed 004 ("Measuring Success: Metrics for Transformation") defines the
//! two measures [`LearningMeasures`] reports: the *Failure
//! Signal-to-Insight Ratio* ("of the failure signals investigated, what
//! percentage yielded a novel insight") and *Learning Velocity* ("the time
//! from the onset of a failure to the formal approval of a change designed
//! to prevent that class of problem"). Operators record investigations
//! (`Investigated`); the recomposition engine records approved changes
//! (`Change`). Both must point at anomalies the journal holds.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use super::objective::BurnAlert;
use super::triage::Category;
use crate::flow::BreakerState;
use crate::path::CellPath;
#[cfg(feature = "storage")]
use crate::store::{Store, StoreError};
use crate::sync::Mutex;

/// One journal entry.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Signal {
    /// The entry's number: 1, 2, 3… in record order, continuing across
    /// process runs when the journal is persisted.
    pub seq: u64,
    /// When it happened.
    pub at: SystemTime,
    /// The cell it is about, if any.
    pub cell: Option<CellPath>,
    /// The cell's Rust type name, if known.
    pub cell_kind: Option<String>,
    /// What happened.
    pub kind: SignalKind,
    /// Its triage category: set for every anomaly, `None` for records of
    /// deliberate acts (topology, configuration, investigations, changes).
    pub category: Option<Category>,
}

/// What a journal entry records.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum SignalKind {
    /// A failure signature seen for the first time.
    NewSignature {
        /// The signature's id: 16 hex digits.
        signature: String,
        /// The signature as its `Display` gives it.
        summary: String,
    },
    /// A known failure signature seen again.
    Recurrence {
        /// The signature's id: 16 hex digits.
        signature: String,
        /// Failures with this signature so far.
        count: u64,
        /// When the signature was first seen.
        first_seen: SystemTime,
    },
    /// A cell's decay score crossed its threshold.
    DecayCrossed {
        /// Upwards (`true`) or back down.
        rising: bool,
        /// The decay score.
        score: f64,
        /// Its fragility component.
        fragility: f64,
        /// Its cost component.
        cost: f64,
        /// Its drag component.
        drag: f64,
        /// For how many consecutive windows the score has been rising.
        rising_for: u32,
    },
    /// A burn-rate alert of an objective was raised or cleared.
    BurnRate {
        /// The objective's name.
        objective: String,
        /// Which alert.
        alert: BurnAlert,
        /// Raised (`true`) or cleared.
        raised: bool,
        /// The burn rate over the alert's long window.
        long_rate: f64,
        /// The burn rate over the alert's short window.
        short_rate: f64,
    },
    /// A cell's mailbox began or ended pushing back.
    Backpressure {
        /// Began (`true`) or ended.
        begun: bool,
        /// Sends rejected so far in the episode.
        rejected: u64,
        /// How full the mailbox is, 0 to 1.
        saturation: f64,
    },
    /// A cell's message rate moved away from its baseline.
    LoadShift {
        /// The current rate, in messages per second.
        rate: f64,
        /// The baseline rate, in messages per second.
        baseline: f64,
    },
    /// A cell handled a message kind it had not handled before.
    NewMessageKind {
        /// The message kind.
        message_kind: String,
    },
    /// A cell was restarted by its supervisor.
    Restart {
        /// Why.
        reason: String,
    },
    /// A supervisor gave up and escalated to its parent.
    Escalation {
        /// Why.
        reason: String,
    },
    /// The topology changed: a cell was spawned, replaced or stopped.
    Topology {
        /// What changed.
        change: TopologyChange,
    },
    /// The runtime's or a cell's configuration changed.
    Configuration {
        /// What changed, in words.
        what: String,
    },
    /// An operator (or, later, the recomposition engine) looked at a
    /// signal.
    Investigated {
        /// The `seq` of the signal investigated.
        signal: u64,
        /// The novel insight it yielded, if any.
        insight: Option<String>,
    },
    /// A change was approved to prevent the class of problem behind some
    /// signals.
    Change {
        /// The `seq`s of those signals, ascending.
        signals: Vec<u64>,
        /// The change.
        description: String,
    },
    /// A circuit breaker made by [`Runtime::breaker`](crate::Runtime::breaker)
    /// changed state. Its entry's cell is `/#breaker/<name>`.
    BreakerTransition {
        /// The breaker's name.
        breaker: String,
        /// The state left.
        from: BreakerState,
        /// The state entered.
        to: BreakerState,
        /// The failure rate, in percent, of the calls that decided the
        /// transition (see [`BreakerTransition`](crate::BreakerTransition)).
        failure_rate: Option<f64>,
        /// The slow-call rate, in percent, of the same calls.
        slow_call_rate: Option<f64>,
    },
    /// Chaos: faults were installed or removed, or an experiment started,
    /// entered a phase or ended. A record of a deliberate act, which, unlike
    /// a configuration change, does not make the failures that follow
    /// count as a process breakdown: they are what the act is to reveal.
    Chaos {
        /// The experiment's name; empty for faults installed directly.
        experiment: String,
        /// What happened, in words.
        what: String,
    },
    /// Chaos: one finding of an experiment, in the triage category its
    /// report gave it.
    ChaosFinding {
        /// The experiment's name.
        experiment: String,
        /// The finding, in one line.
        verdict: String,
        /// Its category.
        category: Category,
    },
    /// The recomposition engine found that a cell's topology should change
    /// (see `docs/recomposition.md`). An anomaly: triage gives it a category.
    Finding {
        /// The finding's number, as the engine gives it.
        finding: u64,
        /// The rule that found it: `isolate`, `split`, `merge`, `shed`,
        /// `replace`, or a user policy's name.
        rule: String,
        /// What was found, in words.
        summary: String,
        /// The journal entries that support it, ascending.
        evidence: Vec<u64>,
    },
    /// A recomposition plan took a step: proposed, approved, rejected,
    /// applied, failed, kept or reverted.
    Plan {
        /// The plan's number, as the engine gives it.
        plan: u64,
        /// The step taken.
        step: PlanStep,
        /// The plan's actions, in words.
        description: String,
        /// The journal entries of the findings it answers, ascending.
        evidence: Vec<u64>,
        /// When the earliest signal behind it was recorded.
        onset: Option<SystemTime>,
    },
    /// The application entered a phase of its own (a load test's
    /// `baseline`, `chaos`, `recovery`…), recorded by
    /// [`Runtime::mark_phase`](crate::Runtime::mark_phase). A record of a
    /// deliberate act; the phase lasts until the next one begins. Reports
    /// mark phase boundaries on their charts.
    Phase {
        /// The phase's name.
        name: String,
    },
}

/// The entry in one line: what happened, with its figures (`restart:
/// panicked`, `plan 3 kept: …`, `phase chaos began`).
impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalKind::NewSignature { signature, summary } => {
                write!(f, "new signature {signature}: {summary}")
            }
            SignalKind::Recurrence { signature, count, .. } => {
                write!(f, "signature {signature} seen again ({count})")
            }
            SignalKind::DecayCrossed { rising, score, .. } => {
                write!(
                    f,
                    "decay {} threshold, score {score:.2}",
                    if *rising { "crossed" } else { "back under" }
                )
            }
            SignalKind::BurnRate { objective, alert, raised, long_rate, .. } => write!(
                f,
                "burn rate {alert:?} {} for {objective} ({long_rate:.1}×)",
                if *raised { "raised" } else { "cleared" }
            ),
            SignalKind::Backpressure { begun, rejected, saturation } => write!(
                f,
                "backpressure {} ({rejected} rejected, {:.0} % full)",
                if *begun { "began" } else { "ended" },
                saturation * 100.0
            ),
            SignalKind::LoadShift { rate, baseline } => write!(f, "load {rate:.1}/s against {baseline:.1}/s"),
            SignalKind::NewMessageKind { message_kind } => write!(f, "new message kind {message_kind}"),
            SignalKind::Restart { reason } => write!(f, "restart: {reason}"),
            SignalKind::Escalation { reason } => write!(f, "escalation: {reason}"),
            SignalKind::Topology { change } => write!(f, "topology: {change}"),
            SignalKind::Configuration { what } => write!(f, "configuration: {what}"),
            SignalKind::Investigated { signal, insight } => match insight {
                Some(insight) => write!(f, "investigated #{signal}: {insight}"),
                None => write!(f, "investigated #{signal}"),
            },
            SignalKind::Change { signals, description } => write!(f, "change for {signals:?}: {description}"),
            SignalKind::BreakerTransition { breaker, from, to, .. } => {
                write!(f, "breaker {breaker}: {from} → {to}")
            }
            SignalKind::Finding { finding, rule, summary, .. } => {
                write!(f, "finding {finding} ({rule}): {summary}")
            }
            SignalKind::Plan { plan, step, description, .. } => {
                write!(f, "plan {plan} {step}: {description}")
            }
            SignalKind::Chaos { experiment, what } if experiment.is_empty() => write!(f, "chaos: {what}"),
            SignalKind::Chaos { experiment, what } => write!(f, "chaos {experiment}: {what}"),
            SignalKind::ChaosFinding { experiment, verdict, .. } => {
                write!(f, "chaos {experiment} finding: {verdict}")
            }
            SignalKind::Phase { name } => write!(f, "phase {name} began"),
        }
    }
}

/// A step in a recomposition plan's life, as [`SignalKind::Plan`] records it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PlanStep {
    /// Made from findings; waits for approval (or is applied at once in
    /// automatic mode, which records `Approved` next).
    Proposed,
    /// Approved, by an operator or by the automatic mode.
    Approved,
    /// Rejected by an operator, or refused because the topology moved on.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Applied: the topology changed.
    Applied,
    /// Applying failed; the topology is as it was.
    Failed {
        /// Why.
        reason: String,
    },
    /// Evaluated and kept.
    Kept {
        /// What was measured against what was expected, in words.
        measured: String,
    },
    /// Evaluated as worse than before and reverted (or reverted by hand).
    Reverted {
        /// What was measured against what was expected, in words.
        measured: String,
    },
}

impl fmt::Display for PlanStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanStep::Proposed => f.write_str("proposed"),
            PlanStep::Approved => f.write_str("approved"),
            PlanStep::Rejected { reason } => write!(f, "rejected: {reason}"),
            PlanStep::Applied => f.write_str("applied"),
            PlanStep::Failed { reason } => write!(f, "failed: {reason}"),
            PlanStep::Kept { measured } => write!(f, "kept: {measured}"),
            PlanStep::Reverted { measured } => write!(f, "reverted: {measured}"),
        }
    }
}

/// A change to the topology of cells.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum TopologyChange {
    /// A cell was spawned.
    Spawned,
    /// `count` cells of one kind were spawned, one after another with no
    /// other entry in between (the entry's time is the first spawn's); see
    /// `Observer::spawned`.
    SpawnedCells {
        /// How many.
        count: u64,
    },
    /// The cell behind an address was replaced.
    Replaced,
    /// A cell stopped for good.
    Stopped {
        /// Why.
        reason: String,
    },
}

impl fmt::Display for TopologyChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopologyChange::Spawned => f.write_str("spawned"),
            TopologyChange::SpawnedCells { count } => write!(f, "{count} cells spawned"),
            TopologyChange::Replaced => f.write_str("replaced"),
            TopologyChange::Stopped { reason } => write!(f, "stopped: {reason}"),
        }
    }
}

/// The variants of [`SignalKind`] without their data: for queries and
/// roll-ups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum SignalType {
    /// [`SignalKind::NewSignature`].
    NewSignature,
    /// [`SignalKind::Recurrence`].
    Recurrence,
    /// [`SignalKind::DecayCrossed`].
    DecayCrossed,
    /// [`SignalKind::BurnRate`].
    BurnRate,
    /// [`SignalKind::Backpressure`].
    Backpressure,
    /// [`SignalKind::LoadShift`].
    LoadShift,
    /// [`SignalKind::NewMessageKind`].
    NewMessageKind,
    /// [`SignalKind::Restart`].
    Restart,
    /// [`SignalKind::Escalation`].
    Escalation,
    /// [`SignalKind::Topology`].
    Topology,
    /// [`SignalKind::Configuration`].
    Configuration,
    /// [`SignalKind::Investigated`].
    Investigated,
    /// [`SignalKind::Change`].
    Change,
    /// [`SignalKind::BreakerTransition`].
    BreakerTransition,
    /// [`SignalKind::Finding`].
    Finding,
    /// [`SignalKind::Plan`].
    Plan,
    /// [`SignalKind::Chaos`].
    Chaos,
    /// [`SignalKind::ChaosFinding`].
    ChaosFinding,
    /// [`SignalKind::Phase`].
    Phase,
}

impl SignalType {
    /// Whether signals of this type are records of deliberate acts
    /// (topology, configuration, investigations, changes) rather than
    /// anomalies.
    pub fn is_act(self) -> bool {
        matches!(
            self,
            SignalType::Topology
                | SignalType::Configuration
                | SignalType::Investigated
                | SignalType::Change
                | SignalType::Plan
                | SignalType::Chaos
                | SignalType::Phase
        )
    }

    /// The type's name in snake case (`new_signature`, `burn_rate`…), as
    /// the `kind` field of the journal's tracing events gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            SignalType::NewSignature => "new_signature",
            SignalType::Recurrence => "recurrence",
            SignalType::DecayCrossed => "decay_crossed",
            SignalType::BurnRate => "burn_rate",
            SignalType::Backpressure => "backpressure",
            SignalType::LoadShift => "load_shift",
            SignalType::NewMessageKind => "new_message_kind",
            SignalType::Restart => "restart",
            SignalType::Escalation => "escalation",
            SignalType::Topology => "topology",
            SignalType::Configuration => "configuration",
            SignalType::Investigated => "investigated",
            SignalType::Change => "change",
            SignalType::BreakerTransition => "breaker_transition",
            SignalType::Finding => "finding",
            SignalType::Plan => "plan",
            SignalType::Chaos => "chaos",
            SignalType::ChaosFinding => "chaos_finding",
            SignalType::Phase => "phase",
        }
    }
}

impl fmt::Display for SignalType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl SignalKind {
    /// The variant, without its data.
    pub fn signal_type(&self) -> SignalType {
        match self {
            SignalKind::NewSignature { .. } => SignalType::NewSignature,
            SignalKind::Recurrence { .. } => SignalType::Recurrence,
            SignalKind::DecayCrossed { .. } => SignalType::DecayCrossed,
            SignalKind::BurnRate { .. } => SignalType::BurnRate,
            SignalKind::Backpressure { .. } => SignalType::Backpressure,
            SignalKind::LoadShift { .. } => SignalType::LoadShift,
            SignalKind::NewMessageKind { .. } => SignalType::NewMessageKind,
            SignalKind::Restart { .. } => SignalType::Restart,
            SignalKind::Escalation { .. } => SignalType::Escalation,
            SignalKind::Topology { .. } => SignalType::Topology,
            SignalKind::Configuration { .. } => SignalType::Configuration,
            SignalKind::Investigated { .. } => SignalType::Investigated,
            SignalKind::Change { .. } => SignalType::Change,
            SignalKind::BreakerTransition { .. } => SignalType::BreakerTransition,
            SignalKind::Finding { .. } => SignalType::Finding,
            SignalKind::Plan { .. } => SignalType::Plan,
            SignalKind::Chaos { .. } => SignalType::Chaos,
            SignalKind::ChaosFinding { .. } => SignalType::ChaosFinding,
            SignalKind::Phase { .. } => SignalType::Phase,
        }
    }

    /// The failure signature's id, for `NewSignature` and `Recurrence`.
    pub fn signature(&self) -> Option<&str> {
        match self {
            SignalKind::NewSignature { signature, .. } | SignalKind::Recurrence { signature, .. } => {
                Some(signature)
            }
            _ => None,
        }
    }
}

/// Which journal entries to return. Every filter set must hold (AND); a
/// filter set twice keeps the last value.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use cellrt::{Category, CellPath, JournalQuery, SignalType};
///
/// let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
/// // The 20 latest restarts of /orders triaged as hidden dependencies,
/// // in the hour from `since`, oldest first.
/// let query = JournalQuery::new()
///     .cell(CellPath::root().child("orders")?)
///     .kind(SignalType::Restart)
///     .category(Category::HiddenDependency)
///     .since(since)
///     .until(since + Duration::from_secs(3600))
///     .limit(20);
/// assert_ne!(query, JournalQuery::default());
/// # Ok::<(), cellrt::NameError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct JournalQuery {
    cell: Option<CellPath>,
    cell_kind: Option<String>,
    signature: Option<String>,
    category: Option<Category>,
    kind: Option<SignalType>,
    since: Option<SystemTime>,
    until: Option<SystemTime>,
    limit: Option<usize>,
}

impl JournalQuery {
    /// A query for every entry.
    pub fn new() -> Self {
        JournalQuery::default()
    }

    /// Only entries about `cell`.
    pub fn cell(mut self, cell: CellPath) -> Self {
        self.cell = Some(cell);
        self
    }

    /// Only entries about cells of the Rust type `cell_kind`.
    pub fn cell_kind(mut self, cell_kind: &str) -> Self {
        self.cell_kind = Some(cell_kind.to_owned());
        self
    }

    /// Only `NewSignature` and `Recurrence` entries of the signature with
    /// id `signature`.
    pub fn signature(mut self, signature: &str) -> Self {
        self.signature = Some(signature.to_owned());
        self
    }

    /// Only entries triaged as `category`.
    pub fn category(mut self, category: Category) -> Self {
        self.category = Some(category);
        self
    }

    /// Only entries of type `kind`.
    pub fn kind(mut self, kind: SignalType) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only entries at `since` or later.
    pub fn since(mut self, since: SystemTime) -> Self {
        self.since = Some(since);
        self
    }

    /// Only entries before `until` (so `since`..`until` is half-open; when
    /// `until` is not after `since`, nothing matches).
    pub fn until(mut self, until: SystemTime) -> Self {
        self.until = Some(until);
        self
    }

    /// Only the latest `n` entries that match, still returned oldest first.
    /// `limit(0)` returns nothing.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `signal` passes every filter (the limit aside).
    pub fn matches(&self, signal: &Signal) -> bool {
        // `map_or(true, …)`: `Option::is_none_or` is newer than the MSRV.
        self.cell.as_ref().is_none_or(|cell| signal.cell.as_ref() == Some(cell))
            && self.cell_kind.as_deref().is_none_or(|kind| signal.cell_kind.as_deref() == Some(kind))
            && self.signature.as_deref().is_none_or(|id| signal.kind.signature() == Some(id))
            && self.category.is_none_or(|category| signal.category == Some(category))
            && self.kind.is_none_or(|kind| signal.kind.signal_type() == kind)
            && self.since.is_none_or(|since| signal.at >= since)
            && self.until.is_none_or(|until| signal.at < until)
    }
}

/// How much of the journal is kept. Build from [`Default`] and the
/// setters; [`validate`](JournalConfig::validate) says whether it is
/// usable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct JournalConfig {
    /// Entries kept in memory. Default 10,000.
    pub capacity: usize,
    /// Entries kept in the store, for a persisted journal. Default
    /// 100,000; at least `capacity`.
    pub persisted_capacity: usize,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig { capacity: 10_000, persisted_capacity: 100_000 }
    }
}

impl JournalConfig {
    /// Sets [`capacity`](JournalConfig::capacity).
    pub fn capacity(mut self, entries: usize) -> Self {
        self.capacity = entries;
        self
    }

    /// Sets [`persisted_capacity`](JournalConfig::persisted_capacity).
    pub fn persisted_capacity(mut self, entries: usize) -> Self {
        self.persisted_capacity = entries;
        self
    }

    /// Checks the capacities: neither is zero, and the store keeps at
    /// least as many entries as the memory (the memory holds the latest of
    /// the stored entries).
    ///
    /// # Errors
    ///
    /// The first capacity that is not usable.
    pub fn validate(&self) -> Result<(), JournalConfigError> {
        if self.capacity == 0 {
            return Err(JournalConfigError::ZeroCapacity);
        }
        if self.persisted_capacity == 0 {
            return Err(JournalConfigError::ZeroPersistedCapacity);
        }
        if self.persisted_capacity < self.capacity {
            return Err(JournalConfigError::PersistedBelowMemory {
                capacity: self.capacity,
                persisted_capacity: self.persisted_capacity,
            });
        }
        Ok(())
    }
}

/// Why a [`JournalConfig`] is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalConfigError {
    /// `capacity` is zero.
    ZeroCapacity,
    /// `persisted_capacity` is zero.
    ZeroPersistedCapacity,
    /// `persisted_capacity` is below `capacity`.
    PersistedBelowMemory {
        /// The memory's capacity.
        capacity: usize,
        /// The store's capacity.
        persisted_capacity: usize,
    },
}

impl fmt::Display for JournalConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalConfigError::ZeroCapacity => f.write_str("the journal's capacity must not be zero"),
            JournalConfigError::ZeroPersistedCapacity => {
                f.write_str("the journal's persisted capacity must not be zero")
            }
            JournalConfigError::PersistedBelowMemory { capacity, persisted_capacity } => write!(
                f,
                "the journal's persisted capacity ({persisted_capacity}) is below its capacity in memory ({capacity})"
            ),
        }
    }
}

impl std::error::Error for JournalConfigError {}

/// Entries no longer kept one by one, counted per (cell, type, category).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RollUp {
    /// The earliest `at` among them.
    pub from: SystemTime,
    /// The latest `at` among them.
    pub to: SystemTime,
    /// Their cell.
    pub cell: Option<CellPath>,
    /// Their type.
    pub kind: SignalType,
    /// Their category.
    pub category: Option<Category>,
    /// How many.
    pub count: u64,
}

/// What the journal says about how fast the system learns from its
/// failures: seed 004's Failure Signal-to-Insight Ratio and Learning
/// Velocity (see the module docs of `observe::journal`). Counts cover every
/// entry ever recorded, rolled-up ones and earlier runs of a persisted
/// journal included.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LearningMeasures {
    /// Anomalies recorded (entries with a category).
    pub signals: u64,
    /// Investigations recorded (a signal investigated twice counts twice).
    pub investigated: u64,
    /// Investigations that yielded a novel insight.
    pub insights: u64,
    /// `insights / investigated`; `None` when nothing was investigated.
    pub signal_to_insight: Option<f64>,
    /// Changes approved.
    pub changes: u64,
    /// The mean, over approved changes, of the time from the onset of the
    /// failure behind them to their approval; `None` without changes. A
    /// change's onset is the earliest `at` among the signals it references;
    /// for a `Recurrence`, the earliest of its own `at`, its `first_seen`,
    /// and the `at` of its signature's `NewSignature` when the journal
    /// still holds it.
    pub learning_velocity: Option<Duration>,
    /// Recomposition plans applied.
    pub plans_applied: u64,
    /// Recomposition plans evaluated and kept: seed 004's *Architectural
    /// Improvement* count.
    pub plans_kept: u64,
    /// Recomposition plans reverted.
    pub plans_reverted: u64,
    /// The mean time from the onset of the earliest signal behind a plan to
    /// its application; `None` before the first.
    pub velocity_to_applied: Option<Duration>,
    /// The mean time from the onset of the earliest signal behind a plan to
    /// its being kept after evaluation; `None` before the first.
    pub velocity_to_kept: Option<Duration>,
    /// *Mean Time Between Transformations*: the mean time between
    /// consecutive kept plans; `None` before the second.
    pub time_between_transformations: Option<Duration>,
    /// Signals the recomposition engine cited as evidence in its findings.
    pub signals_examined: u64,
    /// Of the signals cited by findings, the share cited by plans that
    /// were kept; `None` before the first finding.
    pub signal_to_kept_plan: Option<f64>,
}

/// Why the journal refused an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalError {
    /// No signal with this `seq` was ever recorded.
    UnknownSignal {
        /// The `seq` given.
        seq: u64,
    },
    /// The signal was recorded but is no longer kept one by one: it was
    /// rolled up (or its write to the store failed in an earlier run).
    RolledUp {
        /// The `seq` given.
        seq: u64,
    },
    /// The signal is stored but could not be read back.
    Unreadable {
        /// The `seq` given.
        seq: u64,
        /// The storage error, as text.
        reason: String,
    },
    /// A change must reference at least one signal.
    NoSignals,
    /// The signal is a record of a deliberate act, not an anomaly.
    NotAnAnomaly {
        /// The `seq` given.
        seq: u64,
        /// The act's type.
        kind: SignalType,
    },
    /// The investigation or change is timed before the signal it is about.
    PrecedesSignal {
        /// The `seq` of the signal.
        seq: u64,
    },
    /// A text that must say something is empty or blank.
    EmptyText {
        /// Which: `insight` or `description`.
        field: &'static str,
    },
    /// An anomaly was given no category.
    Uncategorized {
        /// Its type.
        kind: SignalType,
    },
    /// A record of a deliberate act was given a category.
    CategorizedAct {
        /// Its type.
        kind: SignalType,
        /// The category given.
        category: Category,
    },
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::UnknownSignal { seq } => write!(f, "no signal {seq} was ever recorded"),
            JournalError::RolledUp { seq } => {
                write!(f, "signal {seq} is no longer kept one by one: it was rolled up")
            }
            JournalError::Unreadable { seq, reason } => write!(f, "signal {seq} cannot be read: {reason}"),
            JournalError::NoSignals => f.write_str("a change must reference at least one signal"),
            JournalError::NotAnAnomaly { seq, kind } => {
                write!(f, "signal {seq} is a record of an act ({kind}), not an anomaly")
            }
            JournalError::PrecedesSignal { seq } => write!(f, "timed before signal {seq}, which it is about"),
            JournalError::EmptyText { field } => write!(f, "the {field} is empty"),
            JournalError::Uncategorized { kind } => write!(f, "an anomaly ({kind}) needs a category"),
            JournalError::CategorizedAct { kind, category } => {
                write!(f, "a record of an act ({kind}) takes no category, {category} was given")
            }
        }
    }
}

impl std::error::Error for JournalError {}

/// Why a persisted journal could not be opened.
#[cfg(feature = "storage")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum JournalOpenError {
    /// The configuration is not usable.
    Config(JournalConfigError),
    /// The store failed.
    Store(StoreError),
}

#[cfg(feature = "storage")]
impl fmt::Display for JournalOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalOpenError::Config(err) => write!(f, "cannot open the journal: {err}"),
            JournalOpenError::Store(err) => write!(f, "cannot open the journal: {err}"),
        }
    }
}

#[cfg(feature = "storage")]
impl std::error::Error for JournalOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JournalOpenError::Config(err) => Some(err),
            JournalOpenError::Store(err) => Some(err),
        }
    }
}

/// Prefix of entry keys in the store.
#[cfg(feature = "storage")]
const ENTRY_PREFIX: [u8; 1] = [b'e'];
/// Prefix of roll-up keys in the store.
#[cfg(feature = "storage")]
const ROLLUP_PREFIX: [u8; 1] = [b'r'];
/// Key of the measures' running counts in the store.
#[cfg(feature = "storage")]
const TALLY_KEY: [u8; 1] = [b'm'];

/// What identifies a roll-up; its order is the order of `rollups()`.
type RollUpKey = (SignalType, Option<Category>, Option<CellPath>);

fn rollup_key(signal: &Signal) -> RollUpKey {
    (signal.kind.signal_type(), signal.category, signal.cell.clone())
}

/// `base` with `signal` counted in, or a roll-up of `signal` alone.
fn rolled_up(base: Option<RollUp>, signal: &Signal) -> RollUp {
    match base {
        Some(mut rollup) => {
            rollup.from = rollup.from.min(signal.at);
            rollup.to = rollup.to.max(signal.at);
            rollup.count += 1;
            rollup
        }
        None => RollUp {
            from: signal.at,
            to: signal.at,
            cell: signal.cell.clone(),
            kind: signal.kind.signal_type(),
            category: signal.category,
            count: 1,
        },
    }
}

#[cfg(feature = "storage")]
fn entry_key(seq: u64) -> Vec<u8> {
    let mut key = ENTRY_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// The seq of an entry key, if it is one.
#[cfg(feature = "storage")]
fn seq_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.strip_prefix(&ENTRY_PREFIX)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(feature = "storage")]
fn rollup_store_key((kind, category, cell): &RollUpKey) -> Vec<u8> {
    let mut key = ROLLUP_PREFIX.to_vec();
    key.extend_from_slice(kind.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(category.map_or("", Category::phrase).as_bytes());
    key.push(0);
    key.extend_from_slice(cell.as_ref().map_or("", CellPath::as_str).as_bytes());
    key
}

/// The running counts behind [`LearningMeasures`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "storage", derive(serde::Serialize, serde::Deserialize))]
struct Tally {
    signals: u64,
    investigated: u64,
    insights: u64,
    changes: u64,
    /// The sum of the changes' learning times.
    velocity_total: Duration,
    /// Signals cited as evidence by recomposition findings.
    examined: u64,
    plans_applied: u64,
    plans_kept: u64,
    plans_reverted: u64,
    /// Sums of onset → applied and onset → kept over the plans with an onset.
    applied_total: Duration,
    applied_timed: u64,
    kept_total: Duration,
    kept_timed: u64,
    /// Signals cited as evidence by kept plans.
    kept_evidence: u64,
    first_kept: Option<SystemTime>,
    last_kept: Option<SystemTime>,
}

impl Tally {
    fn count(&mut self, signal: &Signal, velocity: Option<Duration>) {
        if signal.category.is_some() {
            self.signals += 1;
        }
        match &signal.kind {
            SignalKind::Investigated { insight, .. } => {
                self.investigated += 1;
                self.insights += u64::from(insight.is_some());
            }
            SignalKind::Change { .. } => {
                self.changes += 1;
                self.velocity_total = self.velocity_total.saturating_add(velocity.unwrap_or_default());
            }
            SignalKind::Finding { evidence, .. } => self.examined += evidence.len() as u64,
            SignalKind::Plan { step, onset, evidence, .. } => {
                let since_onset = onset.and_then(|onset| signal.at.duration_since(onset).ok());
                match step {
                    PlanStep::Applied => {
                        self.plans_applied += 1;
                        if let Some(time) = since_onset {
                            self.applied_total = self.applied_total.saturating_add(time);
                            self.applied_timed += 1;
                        }
                    }
                    PlanStep::Kept { .. } => {
                        self.plans_kept += 1;
                        self.kept_evidence += evidence.len() as u64;
                        if let Some(time) = since_onset {
                            self.kept_total = self.kept_total.saturating_add(time);
                            self.kept_timed += 1;
                        }
                        self.first_kept = Some(self.first_kept.map_or(signal.at, |t| t.min(signal.at)));
                        self.last_kept = Some(self.last_kept.map_or(signal.at, |t| t.max(signal.at)));
                    }
                    PlanStep::Reverted { .. } => self.plans_reverted += 1,
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn measures(&self) -> LearningMeasures {
        let signal_to_insight =
            (self.investigated > 0).then(|| self.insights as f64 / self.investigated as f64);
        let mean = |total: Duration, n: u64| {
            (n > 0).then(|| {
                let nanos = total.as_nanos() / u128::from(n);
                Duration::new((nanos / 1_000_000_000) as u64, (nanos % 1_000_000_000) as u32)
            })
        };
        let between = match (self.first_kept, self.last_kept) {
            (Some(first), Some(last)) if self.plans_kept > 1 => {
                mean(last.duration_since(first).unwrap_or_default(), self.plans_kept - 1)
            }
            _ => None,
        };
        LearningMeasures {
            signals: self.signals,
            investigated: self.investigated,
            insights: self.insights,
            signal_to_insight,
            changes: self.changes,
            learning_velocity: mean(self.velocity_total, self.changes),
            plans_applied: self.plans_applied,
            plans_kept: self.plans_kept,
            plans_reverted: self.plans_reverted,
            velocity_to_applied: mean(self.applied_total, self.applied_timed),
            velocity_to_kept: mean(self.kept_total, self.kept_timed),
            time_between_transformations: between,
            signals_examined: self.examined,
            signal_to_kept_plan: (self.examined > 0)
                .then(|| (self.kept_evidence as f64 / self.examined as f64).min(1.0)),
        }
    }
}

/// An entry in memory.
#[derive(Debug)]
struct Kept {
    signal: Signal,
    /// Whether it is in the store.
    stored: bool,
}

#[derive(Debug)]
struct State {
    /// The latest entries, by seq.
    entries: VecDeque<Kept>,
    next_seq: u64,
    rollups: BTreeMap<RollUpKey, RollUp>,
    tally: Tally,
    /// Entries in the store.
    #[cfg_attr(not(feature = "storage"), allow(dead_code))]
    stored: u64,
    persist_errors: u64,
    read_errors: u64,
}

impl State {
    fn empty() -> Self {
        State {
            entries: VecDeque::new(),
            next_seq: 1,
            rollups: BTreeMap::new(),
            tally: Tally::default(),
            stored: 0,
            persist_errors: 0,
            read_errors: 0,
        }
    }
}

/// The journal: records signals, numbers them, keeps and (when persisted)
/// stores them, rolls up what it cannot keep, and emits each as a tracing
/// event. Shared by threads.
#[derive(Debug)]
pub(crate) struct Journal {
    config: JournalConfig,
    #[cfg(feature = "storage")]
    store: Option<Store>,
    state: Mutex<State>,
}

impl Journal {
    /// An empty journal kept in memory only.
    pub(crate) fn new(config: JournalConfig) -> Result<Journal, JournalConfigError> {
        config.validate()?;
        Ok(Journal {
            config,
            #[cfg(feature = "storage")]
            store: None,
            state: Mutex::new(State::empty()),
        })
    }

    /// A journal kept in `store` (the `sys/journal` tree), with what
    /// earlier runs left there: numbering continues after the highest
    /// stored entry, the latest entries are loaded into memory, roll-ups
    /// and measures carry on. Stored entries beyond `persisted_capacity`
    /// (a smaller capacity than last time) are rolled up at once.
    #[cfg(feature = "storage")]
    pub(crate) fn persisted(config: JournalConfig, store: Store) -> Result<Journal, JournalOpenError> {
        config.validate().map_err(JournalOpenError::Config)?;
        let mut state = State::empty();
        let mut tail: VecDeque<Vec<u8>> = VecDeque::new();
        let mut highest = 0;
        for item in store.scan_prefix_bytes(ENTRY_PREFIX) {
            let (key, _) = item.map_err(JournalOpenError::Store)?;
            state.stored += 1;
            match seq_of(&key) {
                Some(seq) => highest = highest.max(seq),
                None => {
                    state.read_errors += 1;
                    tracing::warn!(target: "cellrt::journal", key = ?key, "journal entry key is not a seq; ignored");
                }
            }
            tail.push_back(key);
            if tail.len() > config.capacity {
                tail.pop_front();
            }
        }
        state.next_seq = highest + 1;
        for key in tail {
            match store.get::<Signal>(key.as_slice()) {
                Ok(Some(signal)) => state.entries.push_back(Kept { signal, stored: true }),
                Ok(None) => {}
                Err(err @ StoreError::Decode { .. }) => unreadable(&mut state, &err),
                Err(err) => return Err(JournalOpenError::Store(err)),
            }
        }
        for item in store.scan_prefix::<RollUp>(ROLLUP_PREFIX) {
            match item {
                Ok((_, rollup)) => {
                    state.rollups.insert((rollup.kind, rollup.category, rollup.cell.clone()), rollup);
                }
                Err(err @ StoreError::Decode { .. }) => unreadable(&mut state, &err),
                Err(err) => return Err(JournalOpenError::Store(err)),
            }
        }
        match store.get::<Tally>(TALLY_KEY) {
            Ok(tally) => state.tally = tally.unwrap_or_default(),
            Err(err @ StoreError::Decode { .. }) => unreadable(&mut state, &err),
            Err(err) => return Err(JournalOpenError::Store(err)),
        }
        let over = state.stored.saturating_sub(config.persisted_capacity as u64);
        if over > 0 {
            let (removed, merged) = trim_plan(&store, &mut state, over);
            store
                .transaction(|tx| {
                    for key in &removed {
                        tx.remove(key.as_slice())?;
                    }
                    for (key, rollup) in &merged {
                        tx.put(rollup_store_key(key), rollup)?;
                    }
                    Ok(())
                })
                .map_err(JournalOpenError::Store)?;
            state.stored -= removed.len() as u64;
            state.rollups.extend(merged);
        }
        Ok(Journal { config, store: Some(store), state: Mutex::new(state) })
    }

    /// Records a signal at `at` and returns it, numbered. Anomalies must
    /// carry their category, records of acts must not; an `Investigated`
    /// or `Change` is checked as [`investigate`](Journal::investigate) and
    /// [`change`](Journal::change) check it (a change's signal list is
    /// sorted and freed of repeats). A persisted journal writes the entry
    /// to its store; a write that fails is counted and logged, and the
    /// entry stays in memory.
    pub(crate) fn record(
        &self,
        at: SystemTime,
        cell: Option<CellPath>,
        cell_kind: Option<String>,
        kind: SignalKind,
        category: Option<Category>,
    ) -> Result<Signal, JournalError> {
        let signal_type = kind.signal_type();
        match (signal_type.is_act(), category) {
            (true, Some(category)) => {
                return Err(JournalError::CategorizedAct { kind: signal_type, category })
            }
            (false, None) => return Err(JournalError::Uncategorized { kind: signal_type }),
            _ => {}
        }
        let mut velocity = None;
        let kind = match kind {
            SignalKind::Investigated { signal, insight } => {
                if insight.as_deref().is_some_and(|text| text.trim().is_empty()) {
                    return Err(JournalError::EmptyText { field: "insight" });
                }
                self.referenced(signal, at)?;
                SignalKind::Investigated { signal, insight }
            }
            SignalKind::Change { mut signals, description } => {
                signals.sort_unstable();
                signals.dedup();
                velocity = Some(self.learning_time(at, &signals, &description)?);
                SignalKind::Change { signals, description }
            }
            other => other,
        };
        Ok(self.append(at, cell, cell_kind, kind, category, velocity))
    }

    /// Records that signal `signal` was investigated at `at`, with the
    /// novel insight it yielded if any. The entry is about the signal's
    /// cell.
    pub(crate) fn investigate(
        &self,
        at: SystemTime,
        signal: u64,
        insight: Option<String>,
    ) -> Result<Signal, JournalError> {
        if insight.as_deref().is_some_and(|text| text.trim().is_empty()) {
            return Err(JournalError::EmptyText { field: "insight" });
        }
        let target = self.referenced(signal, at)?;
        self.record(at, target.cell, target.cell_kind, SignalKind::Investigated { signal, insight }, None)
    }

    /// Records that a change was approved at `at` to prevent the class of
    /// problem behind `signals`. The entry is about their cell when they
    /// share one.
    pub(crate) fn change(
        &self,
        at: SystemTime,
        signals: &[u64],
        description: impl Into<String>,
    ) -> Result<Signal, JournalError> {
        let description = description.into();
        if signals.is_empty() {
            return Err(JournalError::NoSignals);
        }
        if description.trim().is_empty() {
            return Err(JournalError::EmptyText { field: "description" });
        }
        let mut cell = None;
        for (i, &seq) in signals.iter().enumerate() {
            let target = self.referenced(seq, at)?;
            if i == 0 {
                cell = Some((target.cell, target.cell_kind));
            } else if cell.as_ref().is_some_and(|(cell, _)| *cell != target.cell) {
                cell = Some((None, None));
            }
        }
        let (cell, cell_kind) = cell.unwrap_or((None, None));
        let kind = SignalKind::Change { signals: signals.to_vec(), description };
        self.record(at, cell, cell_kind, kind, None)
    }

    /// The entries `query` selects, oldest first. A persisted journal's
    /// query covers the entries of earlier runs it still stores.
    pub(crate) fn query(&self, query: &JournalQuery) -> Vec<Signal> {
        let limit = query.limit.unwrap_or(usize::MAX);
        self.scan(None, |signal| query.matches(signal), Page::last(limit))
    }

    /// The first `limit` entries numbered after `seq`, oldest first: a
    /// reader that last saw `seq` pages forward with it. A persisted
    /// journal's entries of earlier runs that it still stores come first.
    #[cfg(feature = "http")]
    pub(crate) fn after(&self, seq: u64, limit: usize) -> Vec<Signal> {
        self.scan(Some(seq), |_| true, Page::first(limit))
    }

    /// The entries numbered after `after` (all, for `None`) that `matches`
    /// selects, stored ones of earlier runs then those in memory, kept by
    /// `page`. The store is read only when it may hold such an entry: when
    /// `after` is not already the one before the first kept in memory.
    fn scan(&self, after: Option<u64>, matches: impl Fn(&Signal) -> bool, mut page: Page) -> Vec<Signal> {
        if page.limit == 0 {
            return Vec::new();
        }
        let selected = |signal: &Signal| after.is_none_or(|after| signal.seq > after) && matches(signal);
        let (recent, first_in_memory) = {
            let state = self.state.lock();
            let mut recent = page.empty();
            for kept in state.entries.iter().filter(|kept| selected(&kept.signal)) {
                if !recent.offer(kept.signal.clone()) {
                    break;
                }
            }
            (recent, state.entries.front().map(|kept| kept.signal.seq))
        };
        #[cfg(feature = "storage")]
        if let Some(store) = &self.store {
            let in_memory_only = after
                .is_some_and(|after| first_in_memory.is_some_and(|first| after.saturating_add(1) >= first));
            if !in_memory_only {
                for item in store.scan_prefix::<Signal>(ENTRY_PREFIX) {
                    match item {
                        Ok((_, signal)) => {
                            if first_in_memory.is_some_and(|first| signal.seq >= first) {
                                break;
                            }
                            if selected(&signal) && !page.offer(signal) {
                                break;
                            }
                        }
                        Err(err) => unreadable(&mut self.state.lock(), &err),
                    }
                }
            }
        }
        #[cfg(not(feature = "storage"))]
        let _ = first_in_memory;
        for signal in recent.entries {
            if !page.offer(signal) {
                break;
            }
        }
        page.entries.into()
    }

    #[cfg(test)]
    /// The entry numbered `seq`, if it is kept (in memory or, for a
    /// persisted journal, in the store).
    pub(crate) fn get(&self, seq: u64) -> Option<Signal> {
        match self.lookup(seq) {
            Ok(signal) => signal,
            Err(reason) => {
                let mut state = self.state.lock();
                state.read_errors += 1;
                tracing::warn!(target: "cellrt::journal", seq, %reason, "journal entry cannot be read");
                None
            }
        }
    }

    /// Every roll-up, ordered by type, category and cell.
    pub(crate) fn rollups(&self) -> Vec<RollUp> {
        self.state.lock().rollups.values().cloned().collect()
    }

    #[cfg(test)]
    /// Entries kept one by one: in memory, or for a persisted journal in
    /// the store (plus those the store refused that memory still holds).
    pub(crate) fn len(&self) -> usize {
        let state = self.state.lock();
        if self.is_persisted() {
            let unstored = state.entries.iter().filter(|kept| !kept.stored).count();
            state.stored as usize + unstored
        } else {
            state.entries.len()
        }
    }

    /// Entries ever recorded, rolled-up ones (and earlier runs of a
    /// persisted journal) included: the last seq handed out.
    pub(crate) fn total(&self) -> u64 {
        self.state.lock().next_seq - 1
    }

    /// The learning measures of seed 004.
    pub(crate) fn measures(&self) -> LearningMeasures {
        self.state.lock().tally.measures()
    }

    /// Writes to the store that failed (their entries stayed in memory).
    pub(crate) fn persist_errors(&self) -> u64 {
        self.state.lock().persist_errors
    }

    /// Stored data that could not be read back.
    pub(crate) fn read_errors(&self) -> u64 {
        self.state.lock().read_errors
    }

    /// Makes every entry stored so far durable.
    #[cfg(all(test, feature = "storage"))]
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        match &self.store {
            Some(store) => store.flush(),
            None => Ok(()),
        }
    }

    #[cfg(all(test, feature = "storage"))]
    fn is_persisted(&self) -> bool {
        self.store.is_some()
    }

    #[cfg(all(test, not(feature = "storage")))]
    fn is_persisted(&self) -> bool {
        false
    }

    /// The entry numbered `seq`: `Err` with the reason when the store
    /// cannot give it back.
    fn lookup(&self, seq: u64) -> Result<Option<Signal>, String> {
        {
            let state = self.state.lock();
            if let Ok(i) = state.entries.binary_search_by_key(&seq, |kept| kept.signal.seq) {
                return Ok(Some(state.entries[i].signal.clone()));
            }
        }
        #[cfg(feature = "storage")]
        if let Some(store) = &self.store {
            return store.get::<Signal>(entry_key(seq)).map_err(|err| err.to_string());
        }
        Ok(None)
    }

    /// The anomaly numbered `seq`, which an act at `at` is about.
    fn referenced(&self, seq: u64, at: SystemTime) -> Result<Signal, JournalError> {
        let signal = match self.lookup(seq) {
            Ok(Some(signal)) => signal,
            Ok(None) if seq == 0 || seq > self.total() => return Err(JournalError::UnknownSignal { seq }),
            Ok(None) => return Err(JournalError::RolledUp { seq }),
            Err(reason) => return Err(JournalError::Unreadable { seq, reason }),
        };
        let kind = signal.kind.signal_type();
        if kind.is_act() {
            return Err(JournalError::NotAnAnomaly { seq, kind });
        }
        if at < signal.at {
            return Err(JournalError::PrecedesSignal { seq });
        }
        Ok(signal)
    }

    /// The time from the onset of the failure behind `signals` to a change
    /// approved at `at`.
    fn learning_time(
        &self,
        at: SystemTime,
        signals: &[u64],
        description: &str,
    ) -> Result<Duration, JournalError> {
        if signals.is_empty() {
            return Err(JournalError::NoSignals);
        }
        if description.trim().is_empty() {
            return Err(JournalError::EmptyText { field: "description" });
        }
        let mut onset = at;
        for &seq in signals {
            let signal = self.referenced(seq, at)?;
            onset = onset.min(self.onset(&signal));
        }
        Ok(at.duration_since(onset).unwrap_or_default())
    }

    /// When the failure `signal` belongs to began.
    fn onset(&self, signal: &Signal) -> SystemTime {
        match &signal.kind {
            SignalKind::Recurrence { signature, first_seen, .. } => {
                let query = JournalQuery::new().kind(SignalType::NewSignature).signature(signature);
                let first = self.query(&query).iter().map(|new| new.at).min();
                first.map_or(signal.at, |first| first.min(signal.at)).min(*first_seen)
            }
            _ => signal.at,
        }
    }

    fn append(
        &self,
        at: SystemTime,
        cell: Option<CellPath>,
        cell_kind: Option<String>,
        kind: SignalKind,
        category: Option<Category>,
        velocity: Option<Duration>,
    ) -> Signal {
        let signal = {
            let mut state = self.state.lock();
            let seq = state.next_seq;
            state.next_seq += 1;
            let signal = Signal { seq, at, cell, cell_kind, kind, category };
            state.tally.count(&signal, velocity);
            let stored = self.persist(&mut state, &signal);
            state.entries.push_back(Kept { signal: signal.clone(), stored });
            while state.entries.len() > self.config.capacity {
                let Some(old) = state.entries.pop_front() else { break };
                // A stored entry leaves the memory, not the journal.
                if !old.stored {
                    self.roll_up(&mut state, &old.signal);
                }
            }
            signal
        };
        emit(&signal);
        signal
    }

    /// Counts `signal` into its roll-up, and stores the roll-up when the
    /// journal is persisted.
    fn roll_up(&self, state: &mut State, signal: &Signal) {
        let key = rollup_key(signal);
        let rollup = rolled_up(state.rollups.remove(&key), signal);
        #[cfg(feature = "storage")]
        if let Some(store) = &self.store {
            if let Err(err) = store.put(rollup_store_key(&key), &rollup) {
                state.persist_errors += 1;
                tracing::warn!(target: "cellrt::journal", error = %err, "journal roll-up not persisted; kept in memory");
            }
        }
        state.rollups.insert(key, rollup);
    }

    /// Writes `signal` and the counts to the store, rolling up the oldest
    /// stored entries beyond `persisted_capacity`, in one transaction;
    /// returns whether it was written. An in-memory journal writes nothing.
    fn persist(&self, state: &mut State, signal: &Signal) -> bool {
        #[cfg(feature = "storage")]
        if let Some(store) = &self.store {
            let over = (state.stored + 1).saturating_sub(self.config.persisted_capacity as u64);
            let (removed, merged) = trim_plan(store, state, over);
            let tally = state.tally;
            let written = store.transaction(|tx| {
                tx.put(entry_key(signal.seq), signal)?;
                tx.put(TALLY_KEY, &tally)?;
                for key in &removed {
                    tx.remove(key.as_slice())?;
                }
                for (key, rollup) in &merged {
                    tx.put(rollup_store_key(key), rollup)?;
                }
                Ok(())
            });
            return match written {
                Ok(()) => {
                    state.stored = state.stored + 1 - removed.len() as u64;
                    state.rollups.extend(merged);
                    true
                }
                Err(err) => {
                    state.persist_errors += 1;
                    tracing::warn!(
                        target: "cellrt::journal",
                        seq = signal.seq,
                        error = %err,
                        "journal entry not persisted; kept in memory"
                    );
                    false
                }
            };
        }
        let _ = (state, signal);
        false
    }
}

/// The keys of the `over` oldest stored entries, and the roll-ups with
/// them counted in (`state`'s roll-ups are not changed). An entry that does
/// not decode is removed without being counted, and reported.
#[cfg(feature = "storage")]
fn trim_plan(store: &Store, state: &mut State, over: u64) -> (Vec<Vec<u8>>, BTreeMap<RollUpKey, RollUp>) {
    let mut removed = Vec::new();
    let mut merged: BTreeMap<RollUpKey, RollUp> = BTreeMap::new();
    if over == 0 {
        return (removed, merged);
    }
    let limit = usize::try_from(over).unwrap_or(usize::MAX);
    for item in store.scan_prefix::<Signal>(ENTRY_PREFIX).take(limit) {
        match item {
            Ok((key, signal)) => {
                let rollup_key = rollup_key(&signal);
                let base = merged.remove(&rollup_key).or_else(|| state.rollups.get(&rollup_key).cloned());
                merged.insert(rollup_key, rolled_up(base, &signal));
                removed.push(key);
            }
            Err(StoreError::Decode { key, reason, .. }) => {
                state.read_errors += 1;
                tracing::warn!(target: "cellrt::journal", key = ?key, %reason, "unreadable journal entry removed");
                removed.push(key);
            }
            Err(err) => {
                unreadable(state, &err);
                break;
            }
        }
    }
    (removed, merged)
}

/// Which of the entries a scan is offered, in order, it keeps: the first
/// `limit` (a reader paging forward) or the last `limit` (a query).
#[derive(Debug)]
struct Page {
    entries: VecDeque<Signal>,
    limit: usize,
    /// Keeps the last `limit` entries rather than the first.
    last: bool,
}

impl Page {
    /// Paging forward is the live export's.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    fn first(limit: usize) -> Page {
        Page { entries: VecDeque::new(), limit, last: false }
    }

    fn last(limit: usize) -> Page {
        Page { entries: VecDeque::new(), limit, last: true }
    }

    /// An empty page that keeps the same entries as this one.
    fn empty(&self) -> Page {
        Page { entries: VecDeque::new(), limit: self.limit, last: self.last }
    }

    /// Offers the next entry; `false` when the page keeps the first
    /// entries and is full, so no later entry can enter.
    fn offer(&mut self, signal: Signal) -> bool {
        if self.entries.len() == self.limit {
            if !self.last {
                return false;
            }
            self.entries.pop_front();
        }
        self.entries.push_back(signal);
        self.last || self.entries.len() < self.limit
    }
}

/// Counts and logs stored data that could not be read.
#[cfg(feature = "storage")]
fn unreadable(state: &mut State, err: &StoreError) {
    state.read_errors += 1;
    tracing::warn!(target: "cellrt::journal", error = %err, "journal data cannot be read; skipped");
}

/// Emits `signal` as a tracing event (see the module docs).
fn emit(signal: &Signal) {
    let seq = signal.seq;
    let cell = signal.cell.as_ref().map_or("", CellPath::as_str);
    let category = signal.category.map_or("", Category::phrase);
    let kind = signal.kind.signal_type().as_str();
    match &signal.kind {
        SignalKind::NewSignature { signature, summary } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, signature = %signature, summary = %summary,
            "new failure signature"
        ),
        SignalKind::Recurrence { signature, count, first_seen } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, signature = %signature, count, first_seen = ?first_seen,
            "failure recurred"
        ),
        SignalKind::DecayCrossed { rising, score, fragility, cost, drag, rising_for } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, rising, score, fragility, cost, drag, rising_for,
            "decay crossed its threshold"
        ),
        SignalKind::BurnRate { objective, alert, raised, long_rate, short_rate } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, objective = %objective, alert = ?alert, raised, long_rate, short_rate,
            "burn-rate alert"
        ),
        SignalKind::Backpressure { begun, rejected, saturation } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, begun, rejected, saturation,
            "backpressure"
        ),
        SignalKind::LoadShift { rate, baseline } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, rate, baseline,
            "load shifted"
        ),
        SignalKind::NewMessageKind { message_kind } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, message_kind = %message_kind,
            "new message kind"
        ),
        SignalKind::Restart { reason } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, reason = %reason,
            "cell restarted"
        ),
        SignalKind::Escalation { reason } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, reason = %reason,
            "failure escalated"
        ),
        SignalKind::Topology { change } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, change = %change,
            "topology changed"
        ),
        SignalKind::Configuration { what } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, what = %what,
            "configuration changed"
        ),
        SignalKind::Investigated { signal, insight } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, signal, insight = insight.as_deref().unwrap_or(""),
            "signal investigated"
        ),
        SignalKind::Change { signals, description } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, signals = ?signals, description = %description,
            "change approved"
        ),
        SignalKind::BreakerTransition { breaker, from, to, failure_rate, slow_call_rate } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, breaker = %breaker, from = %from, to = %to,
            failure_rate = ?failure_rate, slow_call_rate = ?slow_call_rate,
            "circuit breaker changed state"
        ),
        SignalKind::Finding { finding, rule, summary, evidence } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, finding, rule = %rule, summary = %summary, evidence = ?evidence,
            "recomposition finding"
        ),
        SignalKind::Plan { plan, step, description, evidence, .. } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, plan, step = %step, description = %description, evidence = ?evidence,
            "recomposition plan"
        ),
        SignalKind::Chaos { experiment, what } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, experiment = %experiment, what = %what,
            "chaos"
        ),
        SignalKind::ChaosFinding { experiment, verdict, category: _ } => tracing::warn!(
            target: "cellrt::journal",
            seq, cell, category, kind, experiment = %experiment, verdict = %verdict,
            "chaos finding"
        ),
        SignalKind::Phase { name } => tracing::info!(
            target: "cellrt::journal",
            seq, cell, category, kind, name = %name,
            "phase"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::Arc;

    const ORDERS: &str = "app::Orders";

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn cell(name: &str) -> CellPath {
        CellPath::root().child(name).unwrap()
    }

    fn journal(capacity: usize) -> Journal {
        Journal::new(JournalConfig::default().capacity(capacity)).unwrap()
    }

    fn new_signature(id: &str) -> SignalKind {
        SignalKind::NewSignature { signature: id.into(), summary: format!("{id} Error in {ORDERS} (Handle)") }
    }

    fn restart() -> SignalKind {
        SignalKind::Restart { reason: "handler failed".into() }
    }

    fn topology() -> SignalKind {
        SignalKind::Topology { change: TopologyChange::Spawned }
    }

    /// Records an anomaly on the cell `on` (of kind `app::Orders`).
    fn record(journal: &Journal, secs: u64, on: &str, kind: SignalKind, category: Category) -> Signal {
        journal.record(t(secs), Some(cell(on)), Some(ORDERS.into()), kind, Some(category)).unwrap()
    }

    fn act(journal: &Journal, secs: u64, kind: SignalKind) -> Signal {
        journal.record(t(secs), None, None, kind, None).unwrap()
    }

    fn seqs(signals: &[Signal]) -> Vec<u64> {
        signals.iter().map(|signal| signal.seq).collect()
    }

    fn all(journal: &Journal) -> Vec<u64> {
        seqs(&journal.query(&JournalQuery::new()))
    }

    #[test]
    fn entries_are_numbered_from_one_in_record_order_and_kept_as_given() {
        let journal = journal(10);
        let first = record(&journal, 5, "a", new_signature("s1"), Category::NewBehavior);
        let second = act(&journal, 6, topology());
        let third = record(&journal, 7, "b", restart(), Category::ProcessBreakdown);
        assert_eq!((first.seq, second.seq, third.seq), (1, 2, 3));
        assert_eq!(
            first,
            Signal {
                seq: 1,
                at: t(5),
                cell: Some(cell("a")),
                cell_kind: Some(ORDERS.into()),
                kind: new_signature("s1"),
                category: Some(Category::NewBehavior),
            }
        );
        assert_eq!(journal.get(2), Some(second));
        assert_eq!(journal.get(3), Some(third));
        assert_eq!((journal.get(0), journal.get(4)), (None, None));
        assert_eq!(all(&journal), [1, 2, 3]);
        assert_eq!((journal.len(), journal.total()), (3, 3));
        assert_eq!((journal.persist_errors(), journal.read_errors()), (0, 0));
    }

    #[test]
    fn an_anomaly_needs_a_category_and_an_act_takes_none() {
        let journal = journal(10);
        assert_eq!(
            journal.record(t(0), Some(cell("a")), None, restart(), None),
            Err(JournalError::Uncategorized { kind: SignalType::Restart })
        );
        assert_eq!(
            journal.record(t(0), None, None, topology(), Some(Category::ProcessBreakdown)),
            Err(JournalError::CategorizedAct {
                kind: SignalType::Topology,
                category: Category::ProcessBreakdown
            })
        );
        assert_eq!((journal.total(), journal.len()), (0, 0), "nothing refused is recorded");
        assert_eq!(journal.query(&JournalQuery::new()), []);
    }

    #[test]
    fn signal_kinds_name_their_type_and_signature() {
        assert_eq!(new_signature("s1").signal_type(), SignalType::NewSignature);
        assert_eq!(new_signature("s1").signature(), Some("s1"));
        let recurrence = SignalKind::Recurrence { signature: "s2".into(), count: 3, first_seen: t(0) };
        assert_eq!((recurrence.signal_type(), recurrence.signature()), (SignalType::Recurrence, Some("s2")));
        assert_eq!((restart().signal_type(), restart().signature()), (SignalType::Restart, None));
        let acts: Vec<SignalType> = [
            SignalType::NewSignature,
            SignalType::Recurrence,
            SignalType::DecayCrossed,
            SignalType::BurnRate,
            SignalType::Backpressure,
            SignalType::LoadShift,
            SignalType::NewMessageKind,
            SignalType::Restart,
            SignalType::Escalation,
            SignalType::Topology,
            SignalType::Configuration,
            SignalType::Investigated,
            SignalType::Change,
        ]
        .into_iter()
        .filter(|kind| kind.is_act())
        .collect();
        assert_eq!(
            acts,
            [SignalType::Topology, SignalType::Configuration, SignalType::Investigated, SignalType::Change]
        );
        assert_eq!(SignalType::NewMessageKind.to_string(), "new_message_kind");
        assert_eq!(TopologyChange::Stopped { reason: "shutdown".into() }.to_string(), "stopped: shutdown");
    }

    /// 1 /a NewSignature s1, 2 /b Restart, 3 /a Recurrence s1, 4 /b
    /// NewSignature s2, 5 Topology, 6 /a Restart; ten seconds apart from 0.
    fn six_entries() -> Journal {
        let journal = journal(10);
        let billing = |secs, kind, category| {
            journal
                .record(t(secs), Some(cell("b")), Some("app::Billing".into()), kind, Some(category))
                .unwrap()
        };
        record(&journal, 0, "a", new_signature("s1"), Category::NewBehavior);
        billing(10, restart(), Category::ProcessBreakdown);
        let recurrence = SignalKind::Recurrence { signature: "s1".into(), count: 2, first_seen: t(0) };
        record(&journal, 20, "a", recurrence, Category::ArchitecturalDebt);
        billing(30, new_signature("s2"), Category::HiddenDependency);
        act(&journal, 40, topology());
        record(&journal, 50, "a", restart(), Category::ProcessBreakdown);
        journal
    }

    #[test]
    fn queries_filter_by_each_field() {
        let journal = six_entries();
        let query = |q: JournalQuery| seqs(&journal.query(&q));
        assert_eq!(query(JournalQuery::new().cell(cell("a"))), [1, 3, 6]);
        assert_eq!(query(JournalQuery::new().cell(cell("z"))), [0_u64; 0]);
        assert_eq!(query(JournalQuery::new().cell_kind("app::Billing")), [2, 4]);
        assert_eq!(query(JournalQuery::new().signature("s1")), [1, 3]);
        assert_eq!(query(JournalQuery::new().signature("s2")), [4]);
        assert_eq!(query(JournalQuery::new().category(Category::ProcessBreakdown)), [2, 6]);
        assert_eq!(query(JournalQuery::new().kind(SignalType::Restart)), [2, 6]);
        assert_eq!(query(JournalQuery::new().kind(SignalType::Topology)), [5]);
    }

    #[test]
    fn queries_take_a_half_open_time_range() {
        let journal = six_entries();
        let query = |q: JournalQuery| seqs(&journal.query(&q));
        assert_eq!(query(JournalQuery::new().since(t(20))), [3, 4, 5, 6]);
        assert_eq!(query(JournalQuery::new().until(t(20))), [1, 2]);
        assert_eq!(query(JournalQuery::new().since(t(10)).until(t(40))), [2, 3, 4]);
        assert_eq!(query(JournalQuery::new().since(t(40)).until(t(40))), [0_u64; 0]);
        assert_eq!(query(JournalQuery::new().since(t(50)).until(t(10))), [0_u64; 0]);
    }

    #[cfg(feature = "http")]
    #[test]
    fn entries_after_a_seq_come_oldest_first_up_to_the_limit() {
        let journal = six_entries();
        assert_eq!(seqs(&journal.after(0, 100)), [1, 2, 3, 4, 5, 6]);
        assert_eq!(seqs(&journal.after(2, 3)), [3, 4, 5]);
        assert_eq!(seqs(&journal.after(5, 3)), [6]);
        assert_eq!(seqs(&journal.after(6, 3)), [0_u64; 0]);
        assert_eq!(seqs(&journal.after(u64::MAX, 3)), [0_u64; 0]);
        assert_eq!(seqs(&journal.after(0, 0)), [0_u64; 0]);
    }

    #[test]
    fn query_filters_all_hold_and_the_limit_keeps_the_latest_matches_oldest_first() {
        let journal = six_entries();
        let query = |q: JournalQuery| seqs(&journal.query(&q));
        assert_eq!(query(JournalQuery::new().cell(cell("a")).kind(SignalType::Restart)), [6]);
        assert_eq!(
            query(JournalQuery::new().cell(cell("a")).category(Category::HiddenDependency)),
            [0_u64; 0]
        );
        assert_eq!(query(JournalQuery::new().signature("s1").since(t(10))), [3]);
        assert_eq!(query(JournalQuery::new().limit(2)), [5, 6]);
        assert_eq!(query(JournalQuery::new().cell(cell("a")).limit(2)), [3, 6]);
        assert_eq!(query(JournalQuery::new().limit(100)), [1, 2, 3, 4, 5, 6]);
        assert_eq!(query(JournalQuery::new().limit(0)), [0_u64; 0]);
        // The last value of a filter set twice holds.
        assert_eq!(query(JournalQuery::new().cell(cell("b")).cell(cell("a")).limit(9).limit(1)), [6]);
    }

    #[test]
    fn over_capacity_the_oldest_entries_are_rolled_up_per_cell_type_and_category() {
        let journal = journal(5);
        record(&journal, 1, "a", restart(), Category::ProcessBreakdown);
        record(&journal, 2, "b", restart(), Category::ProcessBreakdown);
        record(&journal, 3, "a", restart(), Category::ProcessBreakdown);
        record(&journal, 4, "a", new_signature("s1"), Category::NewBehavior);
        act(&journal, 5, topology());
        record(&journal, 6, "b", restart(), Category::ProcessBreakdown);
        record(&journal, 7, "a", restart(), Category::HiddenDependency);
        for secs in 8..=12 {
            record(&journal, secs, "c", new_signature(&format!("s{secs}")), Category::NewBehavior);
        }
        assert_eq!((journal.len(), journal.total()), (5, 12));
        assert_eq!(all(&journal), [8, 9, 10, 11, 12]);
        assert_eq!(journal.get(7), None);
        let rollup = |from, to, on: Option<&str>, kind, category, count| RollUp {
            from: t(from),
            to: t(to),
            cell: on.map(cell),
            kind,
            category,
            count,
        };
        let rollups = journal.rollups();
        assert_eq!(
            rollups,
            [
                rollup(4, 4, Some("a"), SignalType::NewSignature, Some(Category::NewBehavior), 1),
                rollup(7, 7, Some("a"), SignalType::Restart, Some(Category::HiddenDependency), 1),
                rollup(1, 3, Some("a"), SignalType::Restart, Some(Category::ProcessBreakdown), 2),
                rollup(2, 6, Some("b"), SignalType::Restart, Some(Category::ProcessBreakdown), 2),
                rollup(5, 5, None, SignalType::Topology, None, 1),
            ]
        );
        assert_eq!(rollups.iter().map(|rollup| rollup.count).sum::<u64>(), 7);
    }

    #[test]
    fn a_rollup_spans_from_the_earliest_to_the_latest_entry_even_out_of_order() {
        let journal = journal(1);
        for secs in [10, 5, 20, 30] {
            record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
        }
        let rollups = journal.rollups();
        assert_eq!(rollups.len(), 1);
        assert_eq!((rollups[0].from, rollups[0].to, rollups[0].count), (t(5), t(20), 3));
        assert_eq!(all(&journal), [4]);
    }

    #[test]
    fn journal_config_defaults_and_unusable_capacities() {
        let config = JournalConfig::default();
        assert_eq!((config.capacity, config.persisted_capacity), (10_000, 100_000));
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(JournalConfig::default().capacity(0).validate(), Err(JournalConfigError::ZeroCapacity));
        assert_eq!(
            JournalConfig::default().persisted_capacity(0).validate(),
            Err(JournalConfigError::ZeroPersistedCapacity)
        );
        assert_eq!(
            JournalConfig::default().capacity(10).persisted_capacity(5).validate(),
            Err(JournalConfigError::PersistedBelowMemory { capacity: 10, persisted_capacity: 5 })
        );
        assert_eq!(JournalConfig::default().capacity(5).persisted_capacity(5).validate(), Ok(()));
        assert_eq!(
            Journal::new(JournalConfig::default().capacity(0)).err(),
            Some(JournalConfigError::ZeroCapacity)
        );
        assert_eq!(
            JournalConfigError::PersistedBelowMemory { capacity: 10, persisted_capacity: 5 }.to_string(),
            "the journal's persisted capacity (5) is below its capacity in memory (10)"
        );
        assert_eq!(JournalConfigError::ZeroCapacity.to_string(), "the journal's capacity must not be zero");
    }

    #[test]
    fn investigations_and_changes_must_point_at_anomalies_the_journal_holds() {
        let journal = journal(3);
        record(&journal, 10, "a", new_signature("s1"), Category::NewBehavior);
        act(&journal, 11, topology());
        let now = t(20);
        assert_eq!(journal.investigate(now, 0, None), Err(JournalError::UnknownSignal { seq: 0 }));
        assert_eq!(journal.investigate(now, 9, None), Err(JournalError::UnknownSignal { seq: 9 }));
        assert_eq!(
            journal.investigate(now, 2, None),
            Err(JournalError::NotAnAnomaly { seq: 2, kind: SignalType::Topology })
        );
        assert_eq!(journal.investigate(t(5), 1, None), Err(JournalError::PrecedesSignal { seq: 1 }));
        assert_eq!(
            journal.investigate(now, 1, Some(" \n".into())),
            Err(JournalError::EmptyText { field: "insight" })
        );
        assert_eq!(journal.change(now, &[], "split /a"), Err(JournalError::NoSignals));
        assert_eq!(journal.change(now, &[1], "  "), Err(JournalError::EmptyText { field: "description" }));
        assert_eq!(
            journal.change(now, &[1, 2], "split /a"),
            Err(JournalError::NotAnAnomaly { seq: 2, kind: SignalType::Topology })
        );
        assert_eq!(journal.change(now, &[1, 7], "split /a"), Err(JournalError::UnknownSignal { seq: 7 }));
        assert_eq!(journal.change(t(9), &[1], "split /a"), Err(JournalError::PrecedesSignal { seq: 1 }));
        // Through `record`, the same checks hold.
        let investigated = SignalKind::Investigated { signal: 9, insight: None };
        assert_eq!(
            journal.record(now, None, None, investigated, None),
            Err(JournalError::UnknownSignal { seq: 9 })
        );
        let change = SignalKind::Change { signals: vec![], description: "x".into() };
        assert_eq!(journal.record(now, None, None, change, None), Err(JournalError::NoSignals));
        assert_eq!(journal.total(), 2, "nothing refused is recorded");
        assert_eq!(journal.measures(), LearningMeasures { signals: 1, ..LearningMeasures::default() });
        // Once rolled up, a signal can no longer be pointed at.
        for secs in 12..15 {
            record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
        }
        assert_eq!(journal.investigate(now, 1, None), Err(JournalError::RolledUp { seq: 1 }));
        assert_eq!(journal.change(now, &[5, 1], "split /a"), Err(JournalError::RolledUp { seq: 1 }));
        assert_eq!(
            JournalError::NotAnAnomaly { seq: 2, kind: SignalType::Topology }.to_string(),
            "signal 2 is a record of an act (topology), not an anomaly"
        );
    }

    #[test]
    fn an_investigation_is_about_its_signals_cell_and_a_change_about_their_common_cell() {
        let journal = journal(10);
        record(&journal, 0, "a", new_signature("s1"), Category::NewBehavior);
        record(&journal, 1, "b", restart(), Category::ProcessBreakdown);
        record(&journal, 2, "a", restart(), Category::ProcessBreakdown);
        let investigated = journal.investigate(t(5), 1, Some("retries hide a dependency".into())).unwrap();
        assert_eq!(
            investigated,
            Signal {
                seq: 4,
                at: t(5),
                cell: Some(cell("a")),
                cell_kind: Some(ORDERS.into()),
                kind: SignalKind::Investigated {
                    signal: 1,
                    insight: Some("retries hide a dependency".into())
                },
                category: None,
            }
        );
        let same_cell = journal.change(t(6), &[3, 1, 3], "give /a its own cache").unwrap();
        assert_eq!(same_cell.cell, Some(cell("a")));
        assert_eq!(
            same_cell.kind,
            SignalKind::Change { signals: vec![1, 3], description: "give /a its own cache".into() }
        );
        let both = journal.change(t(7), &[1, 2], "split the ledger").unwrap();
        assert_eq!((both.seq, both.cell, both.cell_kind), (6, None, None));
    }

    fn plan_step(at: u64, plan: u64, step: PlanStep, evidence: Vec<u64>, onset: u64) -> Signal {
        let kind =
            SignalKind::Plan { plan, step, description: "split /a".into(), evidence, onset: Some(t(onset)) };
        Signal { seq: 0, at: t(at), cell: None, cell_kind: None, kind, category: None }
    }

    #[test]
    fn plan_measures_count_applied_kept_and_reverted_plans_and_their_times() {
        let mut tally = Tally::default();
        let finding = SignalKind::Finding {
            finding: 1,
            rule: "split".into(),
            summary: "full".into(),
            evidence: vec![1, 2, 3, 4],
        };
        tally.count(
            &Signal {
                seq: 5,
                at: t(10),
                cell: None,
                cell_kind: None,
                kind: finding,
                category: Some(Category::NewBehavior),
            },
            None,
        );
        tally.count(&plan_step(20, 1, PlanStep::Applied, vec![1, 2], 10), None);
        tally.count(&plan_step(40, 1, PlanStep::Kept { measured: String::new() }, vec![1, 2], 10), None);
        tally.count(&plan_step(50, 2, PlanStep::Applied, vec![3], 30), None);
        tally.count(&plan_step(100, 2, PlanStep::Kept { measured: String::new() }, vec![3], 30), None);
        tally.count(&plan_step(110, 3, PlanStep::Applied, vec![4], 100), None);
        tally.count(&plan_step(120, 3, PlanStep::Reverted { measured: String::new() }, vec![4], 100), None);
        let measures = tally.measures();
        assert_eq!((measures.plans_applied, measures.plans_kept, measures.plans_reverted), (3, 2, 1));
        // Onset → applied: 10, 20 and 10 s; onset → kept: 30 and 70 s.
        assert_eq!(measures.velocity_to_applied, Some(Duration::from_nanos(13_333_333_333)));
        assert_eq!(measures.velocity_to_kept, Some(Duration::from_secs(50)));
        // Kept at 40 s and 100 s.
        assert_eq!(measures.time_between_transformations, Some(Duration::from_secs(60)));
        // 3 of the 4 signals the finding examined ended in kept plans.
        assert_eq!((measures.signals_examined, measures.signal_to_kept_plan), (4, Some(0.75)));
    }

    #[test]
    fn learning_measures_follow_the_seed_definitions() {
        let journal = journal(100);
        assert_eq!(
            journal.measures(),
            LearningMeasures {
                signals: 0,
                investigated: 0,
                insights: 0,
                signal_to_insight: None,
                changes: 0,
                learning_velocity: None,
                ..LearningMeasures::default()
            }
        );
        record(&journal, 0, "a", new_signature("s1"), Category::NewBehavior); // 1
        record(&journal, 100, "a", restart(), Category::ProcessBreakdown); // 2
                                                                           // The signature's first sighting in this run was later than the
                                                                           // journal's NewSignature (from an earlier run, say).
        let recurrence = SignalKind::Recurrence { signature: "s1".into(), count: 12, first_seen: t(30) };
        record(&journal, 3600, "a", recurrence, Category::ArchitecturalDebt); // 3
        act(&journal, 200, topology()); // 4
                                        // A recurrence whose NewSignature the journal never saw.
        let orphan = SignalKind::Recurrence { signature: "s9".into(), count: 2, first_seen: t(1000) };
        record(&journal, 2000, "b", orphan, Category::NewBehavior); // 5
        journal.investigate(t(4000), 1, Some("the cache hides a dependency on billing".into())).unwrap();
        journal.investigate(t(4000), 2, None).unwrap();
        journal.investigate(t(4000), 3, None).unwrap();
        journal.investigate(t(4000), 2, Some("restarts mask a leak".into())).unwrap();
        // Onsets: signature s1's NewSignature at 0 s; s9's first sighting at
        // 1000 s; the restart at 100 s.
        journal.change(t(7200), &[3], "split the ledger").unwrap();
        journal.change(t(5000), &[5], "validate refunds").unwrap();
        journal.change(t(3000), &[2], "bound the retry queue").unwrap();
        assert_eq!(
            journal.measures(),
            LearningMeasures {
                signals: 4,
                investigated: 4,
                insights: 2,
                signal_to_insight: Some(0.5),
                changes: 3,
                // (7200 + 4000 + 2900) / 3
                learning_velocity: Some(Duration::from_secs(4700)),
                ..LearningMeasures::default()
            }
        );
    }

    #[test]
    fn a_changes_onset_is_the_earliest_of_its_signals() {
        let journal = journal(100);
        record(&journal, 50, "a", restart(), Category::ProcessBreakdown);
        record(&journal, 10, "b", restart(), Category::ProcessBreakdown);
        journal.change(t(70), &[1, 2], "one supervisor for both").unwrap();
        let measures = journal.measures();
        assert_eq!(measures.learning_velocity, Some(Duration::from_secs(60)));
        assert_eq!((measures.signals, measures.changes, measures.signal_to_insight), (2, 1, None));
    }

    #[test]
    fn measures_count_what_was_rolled_up() {
        let journal = journal(2);
        for secs in 0..5 {
            record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
        }
        journal.investigate(t(10), 5, Some("a leak".into())).unwrap();
        journal.investigate(t(10), 5, None).unwrap();
        assert_eq!(journal.len(), 2);
        let measures = journal.measures();
        assert_eq!((measures.signals, measures.investigated, measures.insights), (5, 2, 1));
    }

    #[test]
    fn the_journal_is_shared_by_threads_without_losing_or_repeating_a_seq() {
        let journal = Arc::new(journal(10_000));
        let threads: Vec<_> = (0..4)
            .map(|n| {
                let journal = Arc::clone(&journal);
                std::thread::spawn(move || {
                    for i in 0..250 {
                        record(&journal, i, &format!("c{n}"), restart(), Category::ProcessBreakdown);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!((journal.total(), journal.len()), (1000, 1000));
        assert_eq!(all(&journal), (1..=1000).collect::<Vec<u64>>());
        for n in 0..4 {
            assert_eq!(journal.query(&JournalQuery::new().cell(cell(&format!("c{n}")))).len(), 250);
        }
    }

    #[test]
    fn an_entry_reads_as_one_line_with_its_figures() {
        let lines = [
            (SignalKind::Phase { name: "chaos".into() }, "phase chaos began"),
            (restart(), "restart: handler failed"),
            (
                SignalKind::Recurrence { signature: "s1".into(), count: 4, first_seen: t(1) },
                "signature s1 seen again (4)",
            ),
            (
                SignalKind::Backpressure { begun: true, rejected: 12, saturation: 1.0 },
                "backpressure began (12 rejected, 100 % full)",
            ),
            (
                SignalKind::Plan {
                    plan: 3,
                    step: PlanStep::Kept { measured: "p99 9 ms".into() },
                    description: "isolate Legacy".into(),
                    evidence: vec![1],
                    onset: None,
                },
                "plan 3 kept: p99 9 ms: isolate Legacy",
            ),
            (
                SignalKind::Chaos { experiment: String::new(), what: "faults installed".into() },
                "chaos: faults installed",
            ),
        ];
        for (kind, line) in lines {
            assert_eq!(kind.to_string(), line);
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn journal_data_round_trips_through_serde() {
        let kinds = vec![
            new_signature("s1"),
            SignalKind::Recurrence { signature: "s1".into(), count: 4, first_seen: t(1) },
            SignalKind::DecayCrossed {
                rising: true,
                score: 0.75,
                fragility: 0.5,
                cost: 0.25,
                drag: 0.125,
                rising_for: 3,
            },
            SignalKind::BurnRate {
                objective: "latency".into(),
                alert: BurnAlert::Slow,
                raised: true,
                long_rate: 6.5,
                short_rate: 7.0,
            },
            SignalKind::Backpressure { begun: true, rejected: 12, saturation: 1.0 },
            SignalKind::LoadShift { rate: 900.0, baseline: 100.0 },
            SignalKind::NewMessageKind { message_kind: "Refund".into() },
            restart(),
            SignalKind::Escalation { reason: "intensity".into() },
            SignalKind::Topology { change: TopologyChange::Replaced },
            SignalKind::Configuration { what: "throughput 8".into() },
            SignalKind::Investigated { signal: 1, insight: Some("x".into()) },
            SignalKind::Change { signals: vec![1, 2], description: "y".into() },
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let category = (!kind.signal_type().is_act()).then_some(Category::HiddenDependency);
            let signal = Signal {
                seq: i as u64 + 1,
                at: t(i as u64),
                cell: Some(cell("a")),
                cell_kind: None,
                kind,
                category,
            };
            let text = serde_json::to_string(&signal).unwrap();
            assert_eq!(serde_json::from_str::<Signal>(&text).unwrap(), signal, "{text}");
        }
        let query = JournalQuery::new().cell(cell("a")).kind(SignalType::Restart).since(t(0)).limit(3);
        assert_eq!(
            serde_json::from_str::<JournalQuery>(&serde_json::to_string(&query).unwrap()).unwrap(),
            query
        );
    }

    #[cfg(feature = "storage")]
    mod persisted {
        use std::path::Path;
        use std::time::Instant;

        use super::*;
        use crate::store::{Storage, StorageConfig};

        /// Opens the storage in `dir` and the journal in it, waiting for a
        /// previous run's handles to let go of the directory.
        fn open(dir: &Path, config: JournalConfig) -> (Storage, Journal) {
            let deadline = Instant::now() + Duration::from_secs(10);
            let storage = loop {
                match Storage::open(&StorageConfig::dir(dir)) {
                    Ok(storage) => break storage,
                    Err(StoreError::Locked { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(err) => panic!("{err}"),
                }
            };
            let journal = Journal::persisted(config, storage.journal().clone()).unwrap();
            (storage, journal)
        }

        fn close(storage: Storage, journal: Journal) {
            journal.flush().unwrap();
            storage.flush().unwrap();
            drop(journal);
            drop(storage);
        }

        #[test]
        fn a_persisted_journal_continues_its_numbering_and_answers_for_earlier_runs() {
            let dir = tempfile::tempdir().unwrap();
            let (storage, journal) = open(dir.path(), JournalConfig::default());
            record(&journal, 0, "a", new_signature("s1"), Category::NewBehavior);
            let restart_b = record(&journal, 1, "b", restart(), Category::ProcessBreakdown);
            let recurrence = SignalKind::Recurrence { signature: "s1".into(), count: 2, first_seen: t(0) };
            record(&journal, 2, "a", recurrence, Category::NewBehavior);
            journal.investigate(t(3), 1, Some("a shared cache".into())).unwrap();
            close(storage, journal);

            let (storage, journal) = open(dir.path(), JournalConfig::default().capacity(2));
            assert_eq!((journal.total(), journal.len()), (4, 4));
            assert_eq!(journal.get(2), Some(restart_b), "read back from the store");
            let next = record(&journal, 4, "a", restart(), Category::ProcessBreakdown);
            assert_eq!(next.seq, 5);
            assert_eq!(all(&journal), [1, 2, 3, 4, 5]);
            assert_eq!(seqs(&journal.query(&JournalQuery::new().cell(cell("a")))), [1, 3, 4, 5]);
            assert_eq!(seqs(&journal.query(&JournalQuery::new().signature("s1"))), [1, 3]);
            assert_eq!(seqs(&journal.query(&JournalQuery::new().limit(3))), [3, 4, 5]);
            #[cfg(feature = "http")]
            {
                // Entries 1 and 2 are in the store only, 3 to 5 in memory too.
                assert_eq!(seqs(&journal.after(0, 2)), [1, 2]);
                assert_eq!(seqs(&journal.after(1, 3)), [2, 3, 4]);
                assert_eq!(seqs(&journal.after(3, 9)), [4, 5]);
            }
            assert_eq!(journal.investigate(t(5), 2, None).map(|signal| signal.seq), Ok(6));
            let measures = journal.measures();
            assert_eq!((measures.signals, measures.investigated, measures.insights), (4, 2, 1));
            assert_eq!((journal.persist_errors(), journal.read_errors()), (0, 0));
            close(storage, journal);
        }

        #[test]
        fn a_persisted_journal_rolls_up_what_leaves_the_store_and_its_roll_ups_survive() {
            let dir = tempfile::tempdir().unwrap();
            let config = JournalConfig::default().capacity(2).persisted_capacity(4);
            let (storage, journal) = open(dir.path(), config.clone());
            for secs in 1..=10 {
                record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
            }
            let rollup = |to, count| RollUp {
                from: t(1),
                to: t(to),
                cell: Some(cell("a")),
                kind: SignalType::Restart,
                category: Some(Category::ProcessBreakdown),
                count,
            };
            assert_eq!((journal.len(), journal.total()), (4, 10));
            assert_eq!(all(&journal), [7, 8, 9, 10]);
            assert_eq!(journal.rollups(), [rollup(6, 6)]);
            assert_eq!((journal.get(6), journal.get(7).map(|s| s.seq)), (None, Some(7)));
            close(storage, journal);

            let (storage, journal) = open(dir.path(), config);
            assert_eq!((journal.len(), journal.total()), (4, 10));
            assert_eq!(all(&journal), [7, 8, 9, 10]);
            assert_eq!(journal.rollups(), [rollup(6, 6)]);
            record(&journal, 11, "a", restart(), Category::ProcessBreakdown);
            assert_eq!(all(&journal), [8, 9, 10, 11]);
            assert_eq!(journal.rollups(), [rollup(7, 7)]);
            assert_eq!(journal.measures().signals, 11);
            close(storage, journal);
        }

        #[test]
        fn reopening_with_a_smaller_store_rolls_up_the_excess_at_once() {
            let dir = tempfile::tempdir().unwrap();
            let (storage, journal) =
                open(dir.path(), JournalConfig::default().capacity(2).persisted_capacity(6));
            for secs in 1..=6 {
                record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
            }
            assert_eq!(journal.rollups(), []);
            close(storage, journal);

            let (storage, journal) =
                open(dir.path(), JournalConfig::default().capacity(2).persisted_capacity(3));
            assert_eq!((journal.len(), journal.total()), (3, 6));
            assert_eq!(all(&journal), [4, 5, 6]);
            let rollups = journal.rollups();
            assert_eq!(rollups.len(), 1);
            assert_eq!((rollups[0].from, rollups[0].to, rollups[0].count), (t(1), t(3), 3));
            close(storage, journal);
        }

        #[test]
        fn an_entry_the_store_refuses_stays_in_memory_is_counted_and_rolled_up_when_it_leaves() {
            let dir = tempfile::tempdir().unwrap();
            let (storage, journal) =
                open(dir.path(), JournalConfig::default().capacity(2).persisted_capacity(10));
            record(&journal, 1, "a", restart(), Category::ProcessBreakdown);
            // A time before the Unix epoch cannot be encoded.
            let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
            let refused = journal
                .record(before_epoch, Some(cell("b")), None, new_signature("s0"), Some(Category::NewBehavior))
                .unwrap();
            assert_eq!(refused.seq, 2);
            assert_eq!(journal.persist_errors(), 1);
            assert_eq!(journal.get(2), Some(refused.clone()));
            assert_eq!(all(&journal), [1, 2]);
            assert_eq!(journal.len(), 2);
            record(&journal, 3, "a", restart(), Category::ProcessBreakdown);
            assert_eq!(all(&journal), [1, 2, 3]);
            record(&journal, 4, "a", restart(), Category::ProcessBreakdown);
            // Entry 2 left the memory: it is rolled up, not lost (the
            // roll-up cannot be stored either: a second error).
            assert_eq!(all(&journal), [1, 3, 4]);
            assert_eq!(journal.len(), 3);
            assert_eq!(journal.persist_errors(), 2);
            assert_eq!(
                journal.rollups(),
                [RollUp {
                    from: before_epoch,
                    to: before_epoch,
                    cell: Some(cell("b")),
                    kind: SignalType::NewSignature,
                    category: Some(Category::NewBehavior),
                    count: 1,
                }]
            );
            assert_eq!(journal.total(), 4);
            close(storage, journal);

            let (storage, journal) =
                open(dir.path(), JournalConfig::default().capacity(2).persisted_capacity(10));
            assert_eq!(all(&journal), [1, 3, 4]);
            assert_eq!((journal.total(), journal.rollups()), (4, Vec::new()));
            assert_eq!(journal.investigate(t(9), 2, None), Err(JournalError::RolledUp { seq: 2 }));
            close(storage, journal);
        }

        #[test]
        fn unreadable_stored_entries_are_skipped_counted_and_do_not_stop_the_journal() {
            let dir = tempfile::tempdir().unwrap();
            let (storage, journal) = open(dir.path(), JournalConfig::default());
            for secs in 1..=3 {
                record(&journal, secs, "a", restart(), Category::ProcessBreakdown);
            }
            storage.journal().put_bytes(entry_key(2), vec![0xff, 0xff, 0xff]).unwrap();
            close(storage, journal);

            let (storage, journal) = open(dir.path(), JournalConfig::default());
            assert_eq!(journal.read_errors(), 1);
            assert_eq!(all(&journal), [1, 3]);
            assert_eq!(journal.get(2), None);
            assert_eq!(journal.read_errors(), 2);
            let Err(JournalError::Unreadable { seq: 2, reason }) = journal.investigate(t(9), 2, None) else {
                panic!("entry 2 is unreadable")
            };
            assert!(reason.starts_with("cannot decode the value at key"), "{reason}");
            assert_eq!(record(&journal, 4, "a", restart(), Category::ProcessBreakdown).seq, 4);
            close(storage, journal);

            // Pushed out of a smaller store, the unreadable entry is removed.
            let (storage, journal) =
                open(dir.path(), JournalConfig::default().capacity(1).persisted_capacity(2));
            assert_eq!(all(&journal), [3, 4]);
            let rollups = journal.rollups();
            assert_eq!((rollups.len(), rollups[0].count, rollups[0].to), (1, 1, t(1)));
            assert_eq!(journal.read_errors(), 1);
            assert_eq!(storage.journal().get_bytes(entry_key(2)).unwrap(), None);
            close(storage, journal);
        }
    }
}
