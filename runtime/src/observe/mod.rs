//! Observation: what the runtime learns from how cells fail and behave, as
//! typed data.
//!
//! - `signature.rs`: [`FailureSignature`], the fingerprint of a class of
//!   failures, and the per-signature statistics the runtime keeps.
//! - `config.rs`: [`ObservationConfig`].
//! - `metrics.rs`: per-cell counters and latency samples, kept on the
//!   message path; `histogram.rs`: the log-bucketed histograms they use.
//! - `decay.rs`: baselines learned per cell and the decay components
//!   measured against them.
//! - `objective.rs`: per-cell objectives and their error-budget burn rates.
//! - `journal.rs`: the signal journal.
//! - `triage.rs`: the category of each signal.
//! - `analysis.rs`: the periodic analysis that turns metrics into decay,
//!   burn rates, episodes and flow rates, and those into signals.
//! - `observer.rs`: what one runtime keeps of all this, and the one path by
//!   which an observation becomes a journal entry.
//! - `snapshot.rs`: [`Snapshot`], all of it as one serializable value;
//!   `export.rs`: its Prometheus and Graphviz forms; `history.rs`: the
//!   snapshots kept in the storage over a run.

#[cfg(feature = "observe")]
pub(crate) mod analysis;
#[cfg(feature = "observe")]
pub(crate) mod config;
#[cfg(feature = "observe")]
pub(crate) mod decay;
#[cfg(feature = "observe")]
mod export;
pub(crate) mod histogram;
#[cfg(all(feature = "observe", feature = "storage"))]
pub(crate) mod history;
#[cfg(feature = "observe")]
pub(crate) mod journal;
pub(crate) mod metrics;
#[cfg(feature = "observe")]
pub(crate) mod objective;
#[cfg(feature = "observe")]
pub(crate) mod observer;
#[cfg(feature = "observe")]
pub(crate) mod signature;
#[cfg(feature = "observe")]
pub(crate) mod snapshot;
#[cfg(feature = "observe")]
pub(crate) mod triage;

#[cfg(feature = "observe")]
pub use self::config::{ObservationConfig, ObservationConfigError, MIN_ANALYSIS_WINDOW};
#[cfg(feature = "observe")]
pub use self::decay::{
    Baseline, Baselines, Crossing, Decay, DecayConfig, DecayConfigError, LoadShift, NoiseFloor,
    MAX_SHORT_WINDOWS,
};
#[cfg(feature = "observe")]
pub use self::histogram::LatencySummary;
#[cfg(feature = "observe")]
pub use self::journal::{
    JournalConfig, JournalConfigError, JournalError, JournalQuery, LearningMeasures, PlanStep, RollUp,
    Signal, SignalKind, SignalType, TopologyChange,
};
#[cfg(feature = "observe")]
pub use self::metrics::{KindMetrics, Metrics};
#[cfg(feature = "observe")]
pub use self::objective::{
    AlertBurn, BurnAlert, BurnStatus, BurnTransition, BurnWindows, Indicator, Objective, ObjectiveError,
};
#[cfg(feature = "observe")]
pub use self::signature::{FailureKind, FailureSignature, SignatureStats};
#[cfg(feature = "observe")]
pub use self::snapshot::{CellSnapshot, FlowEdge, ObjectiveSnapshot, SignatureSummary, Snapshot};
#[cfg(feature = "observe")]
pub use self::triage::{Category, TriageConfig, TriageConfigError};

/// `value` encoded and decoded with serde (bincode: exact floats), for the
/// round-trip tests of observation data.
#[cfg(all(test, feature = "serde"))]
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).unwrap();
    bincode::serde::decode_from_slice(&bytes, config).unwrap().0
}
