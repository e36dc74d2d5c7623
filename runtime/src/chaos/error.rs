//! The errors of the chaos module: a bad target, a bad fault, a bad spec
//! string, a refused experiment; and the error a handler "returns" when an
//! error is injected.

use std::error::Error;
use std::fmt;
use std::time::Duration;

/// A [`Target`](crate::Target) could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetError {
    /// A path glob that does not start with `/`.
    NotAPath {
        /// The glob.
        pattern: String,
    },
    /// A path glob with an empty segment (`//`, or a trailing `/`).
    EmptySegment {
        /// The glob.
        pattern: String,
    },
    /// A glob or name holding a character the spec grammar reserves.
    InvalidChar {
        /// The glob or name.
        pattern: String,
        /// The first offending character.
        found: char,
    },
    /// An empty cell type or message kind, or one with surrounding spaces.
    BadName {
        /// The name.
        name: String,
    },
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::NotAPath { pattern } => write!(f, "cell glob {pattern:?} does not start with '/'"),
            TargetError::EmptySegment { pattern } => write!(f, "cell glob {pattern:?} has an empty segment"),
            TargetError::InvalidChar { pattern, found } => {
                write!(f, "{pattern:?} holds the reserved character {found:?}")
            }
            TargetError::BadName { name } => write!(f, "{name:?} is not a usable type or message kind name"),
        }
    }
}

impl Error for TargetError {}

/// A [`Fault`](crate::Fault) could not be built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum FaultError {
    /// A probability outside `0..=1`, or NaN.
    Probability {
        /// The value given.
        value: f64,
    },
    /// A limit of 0: the fault would never act.
    ZeroLimit,
    /// A delay (fixed, either end of a uniform range, or an exponential
    /// mean) of 2^64 nanoseconds (about 584 years) or more: the spec
    /// grammar could not write it, so the fault would not read back from
    /// its own text.
    DelayTooLong {
        /// The refused duration.
        delay: Duration,
    },
    /// A uniform delay whose low end is above its high end.
    EmptyRange {
        /// The low end.
        low: Duration,
        /// The high end.
        high: Duration,
    },
    /// An edge target on a fault that does not act where messages are
    /// sent: the sender is known only there.
    EdgeOutsideSend {
        /// The fault's kind.
        kind: &'static str,
    },
    /// A stall whose target names a message kind: a stall acts on a turn.
    StallOfMessageKind,
    /// A storage fault whose target names a cell type or a message kind: a
    /// storage tree is known by its cell's path only.
    StorageByPathOnly {
        /// The fault's kind.
        kind: &'static str,
    },
}

impl Eq for FaultError {}

impl fmt::Display for FaultError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultError::Probability { value } => write!(f, "probability {value} is outside 0..=1"),
            FaultError::ZeroLimit => f.write_str("a limit of 0 would never inject"),
            FaultError::DelayTooLong { delay } => {
                write!(f, "delay {delay:?} is not below 2^64 nanoseconds (about 584 years)")
            }
            FaultError::EmptyRange { low, high } => {
                write!(f, "uniform delay from {low:?} to {high:?} is empty")
            }
            FaultError::EdgeOutsideSend { kind } => {
                write!(f, "an edge target takes drop, full or delay, not {kind}")
            }
            FaultError::StallOfMessageKind => {
                f.write_str("a stall acts on a turn and cannot target a message kind")
            }
            FaultError::StorageByPathOnly { kind } => write!(f, "{kind} targets cells by path only"),
        }
    }
}

impl Error for FaultError {}

/// A spec string could not be read: where, what was expected, what was found.
///
/// `position` counts bytes from the start of the spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultSpecError {
    /// Byte offset of the problem in the spec.
    pub position: usize,
    /// What the grammar expected there.
    pub expected: &'static str,
    /// What was there instead (up to 16 characters), empty at the end.
    pub found: String,
    /// The target or fault refused the value, when the text was well formed
    /// but its value was not.
    pub cause: Option<SpecCause>,
}

/// Why a well-formed part of a spec was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecCause {
    /// The target was refused.
    Target(TargetError),
    /// The fault was refused.
    Fault(FaultError),
}

impl fmt::Display for FaultSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.found.is_empty() {
            write!(f, "chaos spec, byte {}: expected {}, found the end", self.position, self.expected)
        } else {
            write!(
                f,
                "chaos spec, byte {}: expected {}, found {:?}",
                self.position, self.expected, self.found
            )
        }
    }
}

impl Error for FaultSpecError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            Some(SpecCause::Target(err)) => Some(err),
            Some(SpecCause::Fault(err)) => Some(err),
            None => None,
        }
    }
}

/// Faults could not be installed ([`Runtime::inject`](crate::Runtime::inject)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InjectError {
    /// The runtime is shutting down.
    ShutDown,
    /// The fault set is empty.
    Empty,
}

impl fmt::Display for InjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InjectError::ShutDown => f.write_str("the runtime is shutting down"),
            InjectError::Empty => f.write_str("no fault to inject"),
        }
    }
}

impl Error for InjectError {}

/// The error an injected [`FaultKind::Error`](crate::FaultKind::Error)
/// stands for: the handler was not run, and its cell fails with this error
/// as its cause (`FailureCause::Error`, whose type name is this type's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedError {
    /// The fault that injected it, as its spec writes it.
    pub fault: String,
}

impl fmt::Display for InjectedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "injected error ({})", self.fault)
    }
}

impl Error for InjectedError {}

/// An [`Experiment`](crate::Experiment) could not be built.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ExperimentBuildError {
    /// The experiment's name was empty or only whitespace: reports, the
    /// journal and [`ExperimentError::Busy`] know an experiment by it.
    BlankName,
    /// No fault to inject.
    NoFault,
    /// No predicate in the hypothesis.
    NoHypothesis,
    /// No blast radius: an experiment must say which cells it may touch.
    NoBlastRadius,
    /// A blast radius glob was refused.
    Radius(TargetError),
    /// A phase of zero messages or zero time, or a recovery of zero windows.
    EmptyPhase {
        /// Which phase.
        phase: &'static str,
    },
    /// A built-in predicate's bound was out of range: `share` of
    /// [`Predicate::error_share_at_most`](crate::Predicate::error_share_at_most)
    /// outside `0..=1` or NaN, `per_second` of
    /// [`Predicate::throughput_at_least`](crate::Predicate::throughput_at_least)
    /// negative, NaN or infinite.
    PredicateBound {
        /// The predicate, as the report writes it.
        predicate: String,
        /// The bound: `share` or `per_second`.
        bound: &'static str,
        /// The refused value.
        value: f64,
    },
}

// Like `FaultError`: compared in tests as values; a NaN refused stays NaN.
impl Eq for ExperimentBuildError {}

impl fmt::Display for ExperimentBuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentBuildError::BlankName => f.write_str("an experiment needs a name that is not blank"),
            ExperimentBuildError::NoFault => f.write_str("an experiment needs a fault"),
            ExperimentBuildError::NoHypothesis => f.write_str("an experiment needs a hypothesis"),
            ExperimentBuildError::NoBlastRadius => f.write_str("an experiment needs a blast radius"),
            ExperimentBuildError::Radius(_) => f.write_str("invalid blast radius"),
            ExperimentBuildError::EmptyPhase { phase } => write!(f, "the {phase} phase is empty"),
            ExperimentBuildError::PredicateBound { predicate, bound, value } => {
                write!(f, "predicate {predicate:?}: {bound} {value} is out of range")
            }
        }
    }
}

impl Error for ExperimentBuildError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ExperimentBuildError::Radius(err) => Some(err),
            _ => None,
        }
    }
}

/// An experiment was refused before it started, or could not finish. On
/// every one of these paths, every fault it installed has been removed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExperimentError {
    /// A fault's target covers a live cell outside the blast radius;
    /// refused before anything was installed.
    OutsideBlastRadius {
        /// The fault, as the spec grammar writes it.
        fault: String,
        /// The cell.
        cell: crate::path::CellPath,
    },
    /// Another experiment is running on a cell within this one's blast
    /// radius; refused before anything was installed.
    Busy {
        /// The other experiment.
        experiment: String,
        /// The cell both would touch.
        cell: crate::path::CellPath,
    },
    /// A user predicate or abort condition panicked.
    PredicatePanicked {
        /// The predicate's or condition's name.
        predicate: String,
        /// The panic's payload, as text.
        payload: String,
    },
    /// A ramp intensity outside `0..=1`.
    Intensity {
        /// The value given.
        value: String,
    },
    /// The runtime is shutting down.
    ShutDown,
}

impl fmt::Display for ExperimentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExperimentError::OutsideBlastRadius { fault, cell } => {
                write!(f, "fault {fault:?} would touch {cell}, outside the blast radius")
            }
            ExperimentError::Busy { experiment, cell } => {
                write!(f, "experiment {experiment:?} is already running on {cell}")
            }
            ExperimentError::PredicatePanicked { predicate, payload } => {
                write!(f, "predicate {predicate:?} panicked: {payload}")
            }
            ExperimentError::Intensity { value } => write!(f, "ramp intensity {value} is outside 0..=1"),
            ExperimentError::ShutDown => f.write_str("the runtime is shutting down"),
        }
    }
}

impl Error for ExperimentError {}
