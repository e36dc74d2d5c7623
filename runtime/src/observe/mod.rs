//! Observation: what the runtime learns from how cells fail and behave, as
//! typed data.
//!
//! - `signature.rs`: [`FailureSignature`], the fingerprint of a class of
//!   failures, and the per-signature statistics the runtime keeps.
//! - `decay.rs`: baselines learned per cell and the decay components
//!   measured against them.
//! - `objective.rs`: per-cell objectives and their error-budget burn rates.
//! - `journal.rs`: the signal journal.
//! - `triage.rs`: the category of each signal.

pub(crate) mod decay;
pub(crate) mod journal;
pub(crate) mod objective;
pub(crate) mod signature;
pub(crate) mod triage;

pub use self::decay::{
    Baseline, Baselines, Crossing, Decay, DecayConfig, DecayConfigError, LoadShift, NoiseFloor,
};
pub use self::objective::{
    AlertBurn, BurnAlert, BurnStatus, BurnTransition, BurnWindows, Indicator, Objective, ObjectiveError,
};
pub use self::signature::{FailureKind, FailureSignature, SignatureStats};
