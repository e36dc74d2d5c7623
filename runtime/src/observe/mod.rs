//! Observation: what the runtime learns from how cells fail and behave, as
//! typed data.
//!
//! - `signature.rs`: [`FailureSignature`], the fingerprint of a class of
//!   failures, and the per-signature statistics the runtime keeps.

pub(crate) mod signature;

pub use self::signature::{FailureKind, FailureSignature, SignatureStats};
