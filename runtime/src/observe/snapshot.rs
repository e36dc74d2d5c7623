//! [`Snapshot`]: everything the runtime observes, at one moment, as one
//! value: cells with their metrics, decay and objectives; the flow map;
//! failure signatures; the journal's latest entries, roll-ups and measures.
//! Serializable with serde (feature `serde`, on with `storage`), so
//! `serde_json::to_string(&runtime.snapshot())` is the JSON export.

use std::time::{Duration, SystemTime};

use super::decay::{Baselines, Decay};
use super::journal::{LearningMeasures, RollUp, Signal};
use super::objective::BurnStatus;
use super::{Metrics, SignatureStats};
use crate::path::CellPath;

/// Everything the runtime observes, at one moment. From
/// [`Runtime::snapshot`](crate::Runtime::snapshot).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: SystemTime,
    /// The live cells, by path.
    pub cells: Vec<CellSnapshot>,
    /// The flow map's message edges, by sender then receiver path.
    pub edges: Vec<FlowEdge>,
    /// Failure signatures, the most frequent first.
    pub signatures: Vec<SignatureSummary>,
    /// The journal's latest entries (up to 256), oldest first.
    pub journal: Vec<Signal>,
    /// Entries recorded in the journal since it began (earlier runs
    /// included, when it is persisted).
    pub journal_total: u64,
    /// Journal entries the storage refused (kept in memory) and stored
    /// entries it could not read back.
    pub journal_errors: u64,
    /// The journal's roll-ups of entries past its retention.
    pub rollups: Vec<RollUp>,
    /// Failure signal-to-insight ratio and learning velocity.
    pub measures: LearningMeasures,
}

/// One live cell, as a [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CellSnapshot {
    /// Its path; its parent in the supervision tree is the path's parent.
    pub path: CellPath,
    /// Its Rust type.
    pub kind: String,
    /// Its metrics (`None` when observation is off).
    pub metrics: Option<Metrics>,
    /// Its decay, once the analysis has seen it.
    pub decay: Option<Decay>,
    /// The baselines its decay is measured against.
    pub baselines: Option<Baselines>,
    /// Its objective and the objective's burn rates, if one is set.
    pub objective: Option<ObjectiveSnapshot>,
    /// For a supervisor, its restart intensity: restarts in its window and
    /// the restarts it still allows.
    pub intensity: Option<crate::supervise::RestartIntensity>,
}

/// A cell's objective and how fast it burns its error budget.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ObjectiveSnapshot {
    /// The objective, as text.
    pub objective: String,
    /// Burn rates per alert, budget left.
    pub status: BurnStatus,
}

/// A message edge of the flow map: one cell sends to another.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct FlowEdge {
    /// The sending cell (a sender depends on its receivers).
    pub from: CellPath,
    /// The receiving cell.
    pub to: CellPath,
    /// Messages sent along it since the sender was spawned.
    pub messages: u64,
    /// Messages per second over the last analysis window.
    pub rate: f64,
    /// Mean time in the receiver's queue of the stamped messages along it.
    pub latency_mean: Option<Duration>,
    /// Longest time in the receiver's queue among them.
    pub latency_max: Option<Duration>,
}

/// A failure signature, as a [`Snapshot`] shows it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct SignatureSummary {
    /// The fingerprint, 16 hex digits.
    pub id: String,
    /// The signature as text: kind, cell kind, hook, message kind, origin,
    /// normalized text.
    pub summary: String,
    /// Failures with this signature.
    pub count: u64,
    /// When it was first seen.
    pub first_seen: SystemTime,
    /// When it was last seen.
    pub last_seen: SystemTime,
    /// The cells it affected (the first 64).
    pub cells: Vec<CellPath>,
    /// Failures in the last minute.
    pub last_minute: u64,
    /// Failures in the last hour.
    pub last_hour: u64,
}

impl From<&SignatureStats> for SignatureSummary {
    fn from(stats: &SignatureStats) -> Self {
        SignatureSummary {
            id: stats.signature.id(),
            summary: stats.signature.to_string(),
            count: stats.count,
            first_seen: stats.first_seen,
            last_seen: stats.last_seen,
            cells: stats.cells.iter().cloned().collect(),
            last_minute: stats.last_minute,
            last_hour: stats.last_hour,
        }
    }
}
