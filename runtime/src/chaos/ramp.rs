//! [`RampReport`]: the fault phase repeated at rising intensity, and the
//! first step at which the hypothesis failed.

use std::fmt;

use super::hypothesis::PhaseValue;

/// One step of a ramp.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RampStep {
    /// The factor every fault's probability was multiplied by.
    pub intensity: f64,
    /// Each predicate (as it displays) and its value in this step.
    pub predicates: Vec<(String, PhaseValue)>,
    /// Whether the whole hypothesis held.
    pub held: bool,
    /// Injections made in this step, all faults together.
    pub injected: u64,
}

/// What [`Experiment::ramp`](crate::Experiment::ramp) found.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RampReport {
    /// The experiment's name.
    pub name: String,
    /// The steps run, in order; the last is the breaking point if there is one.
    pub steps: Vec<RampStep>,
    /// The index in `steps` of the first step at which the hypothesis
    /// failed; `None` if it held at every intensity.
    pub breaking_point: Option<usize>,
    /// Set when the ramp stopped before its steps: the hypothesis did not
    /// hold in the control phase, or an abort condition held.
    pub aborted: Option<String>,
}

impl RampReport {
    /// The intensity of the breaking point, if any.
    pub fn breaking_intensity(&self) -> Option<f64> {
        self.breaking_point.map(|index| self.steps[index].intensity)
    }
}

impl fmt::Display for RampReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ramp {:?}:", self.name)?;
        for step in &self.steps {
            let verdict = if step.held { "held" } else { "FAILED" };
            writeln!(f, "  intensity {}: {verdict} ({} injected)", step.intensity, step.injected)?;
        }
        match (&self.aborted, self.breaking_intensity()) {
            (Some(reason), _) => writeln!(f, "aborted: {reason}"),
            (None, Some(intensity)) => writeln!(f, "breaking point: intensity {intensity}"),
            (None, None) => writeln!(f, "no breaking point"),
        }
    }
}
