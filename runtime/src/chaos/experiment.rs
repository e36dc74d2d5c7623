//! [`Experiment`]: a hypothesis, faults, a blast radius, abort conditions
//! and phases; built by [`ExperimentBuilder`], run by `runner.rs`.

use std::fmt;
use std::time::Duration;

use super::error::{ExperimentBuildError, ExperimentError};
use super::hypothesis::{Observation, Predicate, UserCheck};
use super::ramp::RampReport;
use super::report::Report;
use super::runner;
use super::spec::FaultSet;
use super::target::Glob;
use crate::path::CellPath;
use crate::runtime::Runtime;
use crate::sync::Arc;

/// How long a phase lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Span {
    /// With a load function, this many calls of it (a load that waits for
    /// its answer makes the phase exact); without one, until the observed
    /// cells have handled (or failed) this many messages.
    Messages(u64),
    /// This long.
    For(Duration),
}

impl Span {
    fn is_empty(self) -> bool {
        matches!(self, Span::Messages(0)) || self == Span::For(Duration::ZERO)
    }
}

/// An abort condition: once it holds, every fault is removed at once and
/// the run ends as aborted.
#[derive(Clone)]
pub(crate) struct Abort {
    pub(crate) name: String,
    pub(crate) check: UserCheck,
}

/// A chaos experiment: a steady-state hypothesis checked in a control
/// phase without faults, then in a fault phase, then (optionally) in
/// recovery windows until it holds again; every fault confined to a blast
/// radius and removed on every way out.
///
/// `docs/chaos.md` in the repository walks through one.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellConfig, CellError, Context, Experiment, FaultSet, Outcome, Predicate, Reply, Runtime, Span};
///
/// struct Echo;
/// impl Cell for Echo {
///     type Message = Reply<()>;
///     fn handle(&mut self, _: &mut Context<Self>, reply: Reply<()>) -> Result<(), CellError> {
///         let _ = reply.send(());
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().quiet_panics(true).build()?;
/// let echo = runtime.spawn_with(CellConfig::named("echo"), Echo)?;
/// let experiment = Experiment::builder("echo tolerates 1 ms")
///     .hypothesis(Predicate::p99_at_most(echo.path(), Duration::from_secs(1)))
///     .faults(FaultSet::parse("/echo: latency(1ms) seed=1")?)
///     .blast_radius("/echo")
///     .control(Span::Messages(20))
///     .fault_phase(Span::Messages(20))
///     .build()?;
/// let report = experiment.run_with_load(&runtime, || {
///     let _ = echo.ask(|reply| reply).map(|pending| pending.wait(Duration::from_secs(5)));
/// })?;
/// assert_eq!(report.outcome, Outcome::Held);
/// assert_eq!(report.injections[0].injected, 20);
/// # runtime.shutdown(Duration::from_secs(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Experiment {
    pub(crate) name: String,
    pub(crate) hypothesis: Vec<Predicate>,
    pub(crate) faults: FaultSet,
    pub(crate) radius: Vec<Glob>,
    pub(crate) control: Span,
    pub(crate) fault_phase: Span,
    pub(crate) recovery: Option<(Span, u32)>,
    pub(crate) aborts: Vec<Abort>,
    pub(crate) observed: Vec<CellPath>,
    pub(crate) tick: Duration,
}

impl Experiment {
    /// A builder for an experiment named `name` (not blank: reports and the
    /// journal know it by its name).
    pub fn builder(name: &str) -> ExperimentBuilder {
        ExperimentBuilder {
            name: name.to_owned(),
            hypothesis: Vec::new(),
            faults: FaultSet::new(),
            radius: Vec::new(),
            control: Span::For(Duration::from_secs(1)),
            fault_phase: Span::For(Duration::from_secs(1)),
            recovery: None,
            aborts: Vec::new(),
            observed: Vec::new(),
            tick: Duration::from_millis(10),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often a run without a load function looks at its cells: the
    /// builder's [`tick`](ExperimentBuilder::tick), at least 1 ms.
    pub fn tick(&self) -> Duration {
        self.tick
    }

    /// Runs the experiment against the traffic the application sends on
    /// its own (a live application), on this thread; returns when it ends.
    ///
    /// # Errors
    ///
    /// [`ExperimentError`]: refused before start (a fault outside the blast
    /// radius, another experiment on the same cells), a panicking user
    /// predicate, or shutdown. Every fault installed is removed on every
    /// path, these included.
    pub fn run(&self, runtime: &Runtime) -> Result<Report, ExperimentError> {
        runner::run(self, runtime, None)
    }

    /// Runs the experiment, calling `load` to make traffic: once per
    /// message of a [`Span::Messages`] phase, repeatedly through a
    /// [`Span::For`] one. A load that sends one request and waits for its
    /// answer makes each phase exact and the run repeatable.
    ///
    /// # Errors
    ///
    /// As [`run`](Experiment::run).
    pub fn run_with_load(
        &self,
        runtime: &Runtime,
        mut load: impl FnMut(),
    ) -> Result<Report, ExperimentError> {
        runner::run(self, runtime, Some(&mut load))
    }

    /// Runs the control phase once, then the fault phase once per
    /// intensity, each time with every fault's probability multiplied by
    /// it (recovering between steps when a recovery phase is set), and
    /// stops at the first step where the hypothesis fails: the breaking
    /// point. The faults' seeds restart at each step.
    ///
    /// # Errors
    ///
    /// [`ExperimentError::Intensity`] for an intensity outside `0..=1`; as
    /// [`run`](Experiment::run).
    pub fn ramp(
        &self,
        runtime: &Runtime,
        intensities: &[f64],
        mut load: impl FnMut(),
    ) -> Result<RampReport, ExperimentError> {
        runner::ramp(self, runtime, intensities, &mut load)
    }
}

impl fmt::Debug for Experiment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Experiment")
            .field("name", &self.name)
            .field("hypothesis", &self.hypothesis)
            .field("faults", &self.faults.to_string())
            .field("radius", &self.radius.iter().map(Glob::as_str).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Experiment`]; see [`Experiment::builder`].
#[derive(Clone)]
pub struct ExperimentBuilder {
    name: String,
    hypothesis: Vec<Predicate>,
    faults: FaultSet,
    radius: Vec<String>,
    control: Span,
    fault_phase: Span,
    recovery: Option<(Span, u32)>,
    aborts: Vec<Abort>,
    observed: Vec<CellPath>,
    tick: Duration,
}

impl ExperimentBuilder {
    /// Adds a predicate to the steady-state hypothesis (all must hold).
    pub fn hypothesis(&mut self, predicate: Predicate) -> &mut Self {
        if let Some(cell) = predicate.cell() {
            self.observe(cell);
        }
        self.hypothesis.push(predicate);
        self
    }

    /// Adds faults to inject in the fault phase.
    pub fn faults(&mut self, faults: impl Into<FaultSet>) -> &mut Self {
        for fault in faults.into().faults() {
            self.faults.push(fault.clone());
        }
        self
    }

    /// Adds a glob of cells the experiment may touch (see `Target::cells`
    /// for the syntax). A fault whose target covers a live cell outside
    /// every glob is refused before start; cells spawned later outside it
    /// are never hit.
    pub fn blast_radius(&mut self, glob: &str) -> &mut Self {
        self.radius.push(glob.to_owned());
        self
    }

    /// Measures `cell` too, for user predicates and abort conditions
    /// (cells named by built-in predicates are measured already).
    pub fn observe(&mut self, cell: &CellPath) -> &mut Self {
        if !self.observed.contains(cell) {
            self.observed.push(cell.clone());
        }
        self
    }

    /// How long the control phase lasts.
    ///
    /// # Default
    ///
    /// One second.
    pub fn control(&mut self, span: Span) -> &mut Self {
        self.control = span;
        self
    }

    /// How long the fault phase lasts.
    ///
    /// # Default
    ///
    /// One second.
    pub fn fault_phase(&mut self, span: Span) -> &mut Self {
        self.fault_phase = span;
        self
    }

    /// After the fault phase, measure windows of `window` with the faults
    /// off, up to `max_windows`, until the hypothesis holds again.
    ///
    /// # Default
    ///
    /// No recovery phase.
    pub fn recovery(&mut self, window: Span, max_windows: u32) -> &mut Self {
        self.recovery = Some((window, max_windows));
        self
    }

    /// Adds an abort condition, checked through the fault phase (after
    /// every load call, or every tick without a load): once it holds,
    /// every fault is removed and the run ends as aborted.
    pub fn abort_when(
        &mut self,
        name: &str,
        condition: impl Fn(&Observation) -> bool + Send + Sync + 'static,
    ) -> &mut Self {
        self.aborts.push(Abort { name: name.to_owned(), check: Arc::new(condition) });
        self
    }

    /// How often a run without a load function looks at its cells. Valid
    /// by construction: a tick under 1 ms is taken as 1 ms.
    ///
    /// # Default
    ///
    /// 10 ms.
    pub fn tick(&mut self, tick: Duration) -> &mut Self {
        self.tick = tick.max(Duration::from_millis(1));
        self
    }

    /// The experiment.
    ///
    /// # Errors
    ///
    /// [`ExperimentBuildError`], the first of: a blank name, no fault, no
    /// predicate, a built-in predicate's bound out of range, no blast
    /// radius, an invalid radius glob, an empty phase (control, fault,
    /// recovery).
    pub fn build(&self) -> Result<Experiment, ExperimentBuildError> {
        if self.name.trim().is_empty() {
            return Err(ExperimentBuildError::BlankName);
        }
        if self.faults.is_empty() {
            return Err(ExperimentBuildError::NoFault);
        }
        if self.hypothesis.is_empty() {
            return Err(ExperimentBuildError::NoHypothesis);
        }
        if let Some((predicate, (bound, value))) =
            self.hypothesis.iter().find_map(|p| p.out_of_range().map(|refused| (p, refused)))
        {
            return Err(ExperimentBuildError::PredicateBound {
                predicate: predicate.to_string(),
                bound,
                value,
            });
        }
        if self.radius.is_empty() {
            return Err(ExperimentBuildError::NoBlastRadius);
        }
        let radius = self
            .radius
            .iter()
            .map(|glob| Glob::new(glob))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ExperimentBuildError::Radius)?;
        for (phase, span) in [("control", self.control), ("fault", self.fault_phase)] {
            if span.is_empty() {
                return Err(ExperimentBuildError::EmptyPhase { phase });
            }
        }
        if let Some((window, windows)) = self.recovery {
            if window.is_empty() || windows == 0 {
                return Err(ExperimentBuildError::EmptyPhase { phase: "recovery" });
            }
        }
        Ok(Experiment {
            name: self.name.clone(),
            hypothesis: self.hypothesis.clone(),
            faults: self.faults.clone(),
            radius,
            control: self.control,
            fault_phase: self.fault_phase,
            recovery: self.recovery,
            aborts: self.aborts.clone(),
            observed: self.observed.clone(),
            tick: self.tick,
        })
    }
}

impl fmt::Debug for ExperimentBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExperimentBuilder").field("name", &self.name).finish_non_exhaustive()
    }
}
