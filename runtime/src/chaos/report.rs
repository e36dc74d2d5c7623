//! [`Report`]: what an experiment found, as data (serde, with the `serde`
//! feature) and as readable text (`Display`).
//!
//! The report is `#[non_exhaustive]`: a recomposition engine will add the
//! recompositions an experiment triggered beside the findings.

use std::fmt;
use std::time::Duration;

use super::hypothesis::PhaseValue;
use super::registry::{FaultCount, InjectionRecord};
use crate::observe::Category;
use crate::path::CellPath;

/// How an experiment ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Outcome {
    /// The hypothesis held through the fault phase.
    Held,
    /// At least one predicate failed in the fault phase.
    Violated,
    /// The run stopped early, every fault removed: an abort condition held,
    /// or the hypothesis did not hold in the control phase (no fault was
    /// then installed).
    Aborted {
        /// Why, in words.
        reason: String,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Held => f.write_str("held"),
            Outcome::Violated => f.write_str("violated"),
            Outcome::Aborted { reason } => write!(f, "aborted: {reason}"),
        }
    }
}

/// One predicate across the phases; `None` for a phase not reached.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PredicateReport {
    /// The predicate, as it displays.
    pub predicate: String,
    /// In the control phase (before).
    pub control: Option<PhaseValue>,
    /// In the fault phase (during).
    pub fault: Option<PhaseValue>,
    /// In the last recovery window measured (after).
    pub recovery: Option<PhaseValue>,
}

/// A decay component of a cell that moved between the experiment's start
/// and the end of its fault phase.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct DecayMove {
    /// The cell.
    pub cell: CellPath,
    /// `fragility`, `cost`, `drag` or `score`.
    pub component: String,
    /// Its value at the start.
    pub before: f64,
    /// Its value at the end of the fault phase.
    pub after: f64,
}

/// One finding, in the seed's triage categories.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ExperimentFinding {
    /// Its category.
    pub category: Category,
    /// The verdict, in one line.
    pub verdict: String,
}

/// What an experiment found. See `docs/chaos.md` in the repository for how
/// findings are categorized.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Report {
    /// The experiment's name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// Each predicate's value before, during and after.
    pub predicates: Vec<PredicateReport>,
    /// Per fault: its seed, the messages its target matched and those it hit.
    pub injections: Vec<FaultCount>,
    /// Every injection of the fault phase, in order (the first 65,536):
    /// the same seeds and the same order of messages give the same log.
    pub injection_log: Vec<InjectionRecord>,
    /// Failure signatures first seen during the run, as they display.
    pub new_signatures: Vec<String>,
    /// Decay components that moved by more than 0.05.
    pub decay_moved: Vec<DecayMove>,
    /// From the faults' removal until the hypothesis held again; `None`
    /// when it did not within the recovery phase, or there was none.
    pub time_to_recovery: Option<Duration>,
    /// Recovery windows measured.
    pub recovery_windows: u32,
    /// One verdict per finding.
    pub findings: Vec<ExperimentFinding>,
    /// What may make the run say less than it seems: a target that matched
    /// nothing, for one.
    pub warnings: Vec<String>,
    /// The recomposition steps journaled while the experiment ran (a
    /// [`Recomposer`](crate::Recomposer) reacting to the faults), in order.
    pub recompositions: Vec<RecompositionStep>,
}

/// One step of a recomposition plan journaled during an experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct RecompositionStep {
    /// The plan's number.
    pub plan: u64,
    /// The managed cell.
    pub cell: Option<CellPath>,
    /// The step: `proposed`, `applied`, `kept: …`, `reverted: …`…
    pub step: String,
    /// The plan's actions, in words.
    pub description: String,
}

impl fmt::Display for Report {
    /// The report as text, one line per fact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "experiment {:?}: {}", self.name, self.outcome)?;
        writeln!(f, "hypothesis (control | fault | recovery):")?;
        for predicate in &self.predicates {
            writeln!(
                f,
                "  {}: {} | {} | {}",
                predicate.predicate,
                ValueText(predicate.control),
                ValueText(predicate.fault),
                ValueText(predicate.recovery)
            )?;
        }
        writeln!(f, "faults:")?;
        for count in &self.injections {
            writeln!(
                f,
                "  {} (seed {}): matched {}, injected {}",
                count.fault, count.seed, count.matched, count.injected
            )?;
        }
        for signature in &self.new_signatures {
            writeln!(f, "new signature: {signature}")?;
        }
        for moved in &self.decay_moved {
            writeln!(
                f,
                "decay moved: {} {} {:.2} -> {:.2}",
                moved.cell, moved.component, moved.before, moved.after
            )?;
        }
        match self.time_to_recovery {
            Some(time) => writeln!(f, "recovered after {time:?} ({} window(s))", self.recovery_windows)?,
            None if self.recovery_windows > 0 => {
                writeln!(f, "not recovered after {} window(s)", self.recovery_windows)?;
            }
            None => {}
        }
        for finding in &self.findings {
            writeln!(f, "[{}] {}", finding.category, finding.verdict)?;
        }
        for step in &self.recompositions {
            let cell = step.cell.as_ref().map_or(String::new(), |c| format!(" at {c}"));
            writeln!(f, "recomposition: plan {}{cell}: {} ({})", step.plan, step.step, step.description)?;
        }
        for warning in &self.warnings {
            writeln!(f, "warning: {warning}")?;
        }
        Ok(())
    }
}

/// A phase value as text: `12.5 ok`, `0.3 FAILED`, `-`.
struct ValueText(Option<PhaseValue>);

impl fmt::Display for ValueText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("-"),
            Some(PhaseValue { value, holds }) => {
                match value {
                    Some(value) => write!(f, "{value:.3}")?,
                    None => f.write_str("no data")?,
                }
                f.write_str(if holds { " ok" } else { " FAILED" })
            }
        }
    }
}
