//! The steady-state hypothesis of an experiment: [`Predicate`]s over an
//! [`Observation`], what the runner measured over one phase.
//!
//! # What is measured
//!
//! While an experiment runs, the handle seam times every message of the
//! cells it observes (those its predicates name, and those given to
//! [`ExperimentBuilder::observe`](crate::ExperimentBuilder::observe)):
//! handling time (an injected latency included), handled and failed
//! counts. Each phase starts from zero, so a value describes that phase
//! only. Dead letters are those whose failure happened during the phase.
//! Burn rates are the objectives' own (see [`Objective`](crate::Objective)),
//! read at the phase's end.

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use super::fault::DurationText;
use crate::failure::payload_text;
use crate::observe::LatencySummary;
use crate::path::CellPath;
use crate::sync::Arc;

/// What one observed cell did during a phase.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct CellPhase {
    /// Messages handled successfully.
    pub handled: u64,
    /// Messages whose handling failed.
    pub failed: u64,
    /// Handling times, of every message (not a sample).
    pub latency: LatencySummary,
    /// Messages handled or failed per second of the phase.
    pub throughput: f64,
}

impl CellPhase {
    /// The share of messages that failed, from 0 to 1; `None` without any.
    pub fn error_share(&self) -> Option<f64> {
        let total = self.handled + self.failed;
        (total > 0).then(|| self.failed as f64 / total as f64)
    }
}

/// A dead letter of the phase, as predicates see it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetterSeen {
    /// The cell.
    pub cell: CellPath,
    /// The message kind, when known.
    pub message_kind: Option<String>,
    /// Whether a chaos fault dropped it.
    pub injected: bool,
}

/// What the runner measured over one phase (or the part of the fault
/// phase run so far, for abort conditions).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Observation {
    /// How long the phase has run.
    pub elapsed: Duration,
    /// How many times the load function was called.
    pub loads: u64,
    /// Per observed cell.
    pub cells: HashMap<CellPath, CellPhase>,
    /// The phase's dead letters.
    pub dead_letters: Vec<DeadLetterSeen>,
    /// The observed cells whose objective has a paging alert firing.
    pub paging: Vec<CellPath>,
}

impl Observation {
    /// What `cell` did, if it handled anything.
    pub fn cell(&self, cell: &CellPath) -> Option<&CellPhase> {
        self.cells.get(cell)
    }

    /// Dead letters of the phase with this message kind.
    pub fn dead_letters_of(&self, kind: &str) -> usize {
        self.dead_letters.iter().filter(|letter| letter.message_kind.as_deref() == Some(kind)).count()
    }
}

/// One predicate's value in one phase, and whether it held.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct PhaseValue {
    /// The measured value, in the predicate's unit; `None` when there was
    /// nothing to measure (the cell handled no message).
    pub value: Option<f64>,
    /// Whether the predicate held. Nothing to measure does not hold: a
    /// steady state must be shown, not assumed.
    pub holds: bool,
}

/// A user predicate: true when the steady state holds.
pub(crate) type UserCheck = Arc<dyn Fn(&Observation) -> bool + Send + Sync>;

#[derive(Clone)]
enum Check {
    P99AtMost(CellPath, Duration),
    ErrorShareAtMost(CellPath, f64),
    NoDeadLetters(String),
    BurnBelowPage(CellPath),
    ThroughputAtLeast(CellPath, f64),
    Custom(String, UserCheck),
}

/// One part of a steady-state hypothesis: a condition on an
/// [`Observation`], with built-ins for the usual ones.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{CellPath, Predicate};
///
/// let checkout: CellPath = "/checkout".parse()?;
/// let fast = Predicate::p99_at_most(&checkout, Duration::from_millis(50));
/// let healthy = Predicate::error_share_at_most(&checkout, 0.01);
/// let custom = Predicate::custom("checkout handles something", move |obs| {
///     obs.cell(&checkout).is_some_and(|cell| cell.handled > 0)
/// });
/// assert_eq!(fast.to_string(), "p99 of /checkout <= 50ms");
/// # let _ = (healthy, custom);
/// # Ok::<(), cellrt::NameError>(())
/// ```
#[derive(Clone)]
pub struct Predicate {
    check: Check,
}

impl Predicate {
    /// The 99th percentile of `cell`'s handling time is at most `limit`.
    /// Value: the p99 in milliseconds.
    pub fn p99_at_most(cell: &CellPath, limit: Duration) -> Self {
        Predicate { check: Check::P99AtMost(cell.clone(), limit) }
    }

    /// At most `share` (0 to 1) of `cell`'s messages fail. Value: the share.
    pub fn error_share_at_most(cell: &CellPath, share: f64) -> Self {
        Predicate { check: Check::ErrorShareAtMost(cell.clone(), share) }
    }

    /// No message of `kind` reaches the dead letters. Value: how many did.
    pub fn no_dead_letters(kind: &str) -> Self {
        Predicate { check: Check::NoDeadLetters(kind.to_owned()) }
    }

    /// No paging burn-rate alert (fast or slow) of `cell`'s objective
    /// fires. Value: 1 when one fires, else 0. Without an objective it
    /// holds.
    pub fn burn_below_page(cell: &CellPath) -> Self {
        Predicate { check: Check::BurnBelowPage(cell.clone()) }
    }

    /// `cell` handles at least `per_second` (finite, 0 or more) messages per
    /// second. Value: its throughput.
    pub fn throughput_at_least(cell: &CellPath, per_second: f64) -> Self {
        Predicate { check: Check::ThroughputAtLeast(cell.clone(), per_second) }
    }

    /// A condition written in code, named `name` in the report. Value: 1
    /// when it holds, else 0. A panic in it ends the experiment with
    /// [`ExperimentError::PredicatePanicked`](crate::ExperimentError::PredicatePanicked),
    /// every fault removed.
    pub fn custom(name: &str, check: impl Fn(&Observation) -> bool + Send + Sync + 'static) -> Self {
        Predicate { check: Check::Custom(name.to_owned(), Arc::new(check)) }
    }

    /// The bound of a built-in predicate outside its range, with the
    /// bound's name: an error share outside `0..=1` (or NaN), a throughput
    /// negative, NaN or infinite. Such a predicate would never hold, or
    /// always would.
    pub(crate) fn out_of_range(&self) -> Option<(&'static str, f64)> {
        match self.check {
            Check::ErrorShareAtMost(_, share) if !(0.0..=1.0).contains(&share) => Some(("share", share)),
            Check::ThroughputAtLeast(_, per_second) if !(per_second.is_finite() && per_second >= 0.0) => {
                Some(("per_second", per_second))
            }
            _ => None,
        }
    }

    /// The cell the predicate is about, if any.
    pub fn cell(&self) -> Option<&CellPath> {
        match &self.check {
            Check::P99AtMost(cell, _)
            | Check::ErrorShareAtMost(cell, _)
            | Check::BurnBelowPage(cell)
            | Check::ThroughputAtLeast(cell, _) => Some(cell),
            Check::NoDeadLetters(_) | Check::Custom(..) => None,
        }
    }

    /// Whether it reads burn rates (which cost a snapshot to gather).
    pub(crate) fn reads_burn(&self) -> bool {
        matches!(self.check, Check::BurnBelowPage(_))
    }

    /// Evaluates the predicate; a user predicate's panic comes back as its
    /// payload's text.
    pub(crate) fn evaluate(&self, obs: &Observation) -> Result<PhaseValue, String> {
        let value = match &self.check {
            Check::P99AtMost(cell, limit) => {
                let p99 = obs.cell(cell).map(|c| c.latency.p99);
                return Ok(PhaseValue {
                    value: p99.map(|p| p.as_secs_f64() * 1_000.0),
                    holds: p99.is_some_and(|p| p <= *limit),
                });
            }
            Check::ErrorShareAtMost(cell, share) => {
                let value = obs.cell(cell).and_then(CellPhase::error_share);
                return Ok(PhaseValue { value, holds: value.is_some_and(|v| v <= *share) });
            }
            Check::NoDeadLetters(kind) => {
                let count = obs.dead_letters_of(kind);
                return Ok(PhaseValue { value: Some(count as f64), holds: count == 0 });
            }
            Check::BurnBelowPage(cell) => !obs.paging.contains(cell),
            Check::ThroughputAtLeast(cell, rate) => {
                let value = obs.cell(cell).map(|c| c.throughput);
                return Ok(PhaseValue { value, holds: value.is_some_and(|v| v >= *rate) });
            }
            Check::Custom(_, check) => {
                catch_unwind(AssertUnwindSafe(|| check(obs))).map_err(|payload| payload_text(&*payload))?
            }
        };
        let flag = match &self.check {
            Check::BurnBelowPage(_) => !value,
            _ => value,
        };
        Ok(PhaseValue { value: Some(if flag { 1.0 } else { 0.0 }), holds: value })
    }
}

impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.check {
            Check::P99AtMost(cell, limit) => write!(f, "p99 of {cell} <= {}", DurationText(*limit)),
            Check::ErrorShareAtMost(cell, share) => write!(f, "error share of {cell} <= {share}"),
            Check::NoDeadLetters(kind) => write!(f, "no dead letters of {kind}"),
            Check::BurnBelowPage(cell) => write!(f, "burn rate of {cell} below paging"),
            Check::ThroughputAtLeast(cell, rate) => write!(f, "throughput of {cell} >= {rate}/s"),
            Check::Custom(name, _) => f.write_str(name),
        }
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Predicate({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(path: &str) -> CellPath {
        path.parse().unwrap()
    }

    fn window(handled: u64, failed: u64) -> CellPhase {
        CellPhase {
            handled,
            failed,
            latency: LatencySummary::default(),
            throughput: (handled + failed) as f64,
        }
    }

    #[test]
    fn error_share_is_measured_over_the_cells_messages() {
        let mut obs = Observation::default();
        obs.cells.insert(cell("/a"), window(90, 10));
        let ok = Predicate::error_share_at_most(&cell("/a"), 0.1).evaluate(&obs).unwrap();
        assert_eq!(ok, PhaseValue { value: Some(0.1), holds: true });
        let strict = Predicate::error_share_at_most(&cell("/a"), 0.05).evaluate(&obs).unwrap();
        assert!(!strict.holds);
    }

    #[test]
    fn nothing_measured_does_not_hold() {
        let obs = Observation::default();
        let p99 = Predicate::p99_at_most(&cell("/a"), Duration::from_secs(1)).evaluate(&obs).unwrap();
        assert_eq!(p99, PhaseValue { value: None, holds: false });
        let rate = Predicate::throughput_at_least(&cell("/a"), 1.0).evaluate(&obs).unwrap();
        assert_eq!(rate, PhaseValue { value: None, holds: false });
    }

    #[test]
    fn dead_letters_count_by_kind() {
        let mut obs = Observation::default();
        let letter =
            DeadLetterSeen { cell: cell("/a"), message_kind: Some("Reserve".into()), injected: true };
        obs.dead_letters = vec![letter.clone(), letter];
        let value = Predicate::no_dead_letters("Reserve").evaluate(&obs).unwrap();
        assert_eq!(value, PhaseValue { value: Some(2.0), holds: false });
        assert!(Predicate::no_dead_letters("Release").evaluate(&obs).unwrap().holds);
    }

    #[test]
    fn a_paging_objective_breaks_the_burn_predicate() {
        let mut obs = Observation::default();
        obs.paging.push(cell("/a"));
        let value = Predicate::burn_below_page(&cell("/a")).evaluate(&obs).unwrap();
        assert_eq!(value, PhaseValue { value: Some(1.0), holds: false });
        assert!(Predicate::burn_below_page(&cell("/b")).evaluate(&obs).unwrap().holds);
    }

    #[test]
    fn a_panicking_user_predicate_gives_its_payload() {
        let boom = Predicate::custom("boom", |_| panic!("no such cell"));
        assert_eq!(boom.evaluate(&Observation::default()), Err("no such cell".to_owned()));
    }
}
