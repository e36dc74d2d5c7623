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
//!   `export.rs`: its Prometheus and Graphviz forms.

pub(crate) mod analysis;
pub(crate) mod config;
pub(crate) mod decay;
mod export;
pub(crate) mod histogram;
pub(crate) mod journal;
pub(crate) mod metrics;
pub(crate) mod objective;
pub(crate) mod observer;
pub(crate) mod signature;
pub(crate) mod snapshot;
pub(crate) mod triage;

pub use self::config::{ObservationConfig, ObservationConfigError};
pub use self::decay::{
    Baseline, Baselines, Crossing, Decay, DecayConfig, DecayConfigError, LoadShift, NoiseFloor,
};
pub use self::histogram::LatencySummary;
pub use self::journal::{
    JournalConfig, JournalConfigError, JournalError, JournalQuery, LearningMeasures, PlanStep, RollUp,
    Signal, SignalKind, SignalType, TopologyChange,
};
pub use self::metrics::{KindMetrics, Metrics};
pub use self::objective::{
    AlertBurn, BurnAlert, BurnStatus, BurnTransition, BurnWindows, Indicator, Objective, ObjectiveError,
};
pub use self::signature::{FailureKind, FailureSignature, SignatureStats};
pub use self::snapshot::{CellSnapshot, FlowEdge, ObjectiveSnapshot, SignatureSummary, Snapshot};
pub use self::triage::{Category, TriageConfig, TriageConfigError};

/// `value` encoded and decoded with serde (bincode: exact floats), for the
/// round-trip tests of observation data.
#[cfg(all(test, feature = "serde"))]
fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(value: &T) -> T {
    let config = bincode::config::standard();
    let bytes = bincode::serde::encode_to_vec(value, config).unwrap();
    bincode::serde::decode_from_slice(&bytes, config).unwrap().0
}
