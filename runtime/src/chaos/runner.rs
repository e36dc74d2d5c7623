//! How an experiment runs: checks before start, phases, measurement,
//! findings, the journal, and cleanup on every way out.
//!
//! # Cleanup
//!
//! A [`Runner`] owns what a run installs: its claim on the blast radius,
//! its probe, and the [`Injection`] of the fault phase. Its `Drop` (and the
//! injection's) removes them, so they go whether the run finishes, aborts,
//! returns an error (a panicking user predicate is caught and becomes
//! one), or unwinds.
//!
//! # Journal
//!
//! Each run journals, as [`SignalKind::Chaos`] acts, its start, each phase
//! and its end, and each finding as a [`SignalKind::ChaosFinding`] anomaly
//! in the finding's category: investigations and learning measures count
//! them like any other signal.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Instant, SystemTime};

use super::error::ExperimentError;
use super::experiment::{Experiment, Span};
use super::hypothesis::{CellPhase, DeadLetterSeen, Observation, PhaseValue};
use super::injection::Injection;
use super::ramp::{RampReport, RampStep};
use super::registry::{FaultCount, InjectionRecord, Probe, Window};
use super::report::{DecayMove, ExperimentFinding, Outcome, PredicateReport, RecompositionStep, Report};
use super::spec::FaultSet;
use crate::failure::{payload_text, FailureCause};
use crate::observe::journal::{JournalQuery, SignalKind, SignalType};
use crate::observe::{BurnAlert, Category, Decay};
use crate::path::CellPath;
use crate::runtime::Runtime;
use crate::sync::Arc;

/// How much a decay component must move to be reported.
const DECAY_MOVE: f64 = 0.05;

/// How long `settle` waits for the count to stop moving, and at most how
/// many times.
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(2);
const SETTLE_ROUNDS: usize = 100;

/// The phase a predicate value belongs to.
#[derive(Clone, Copy)]
enum Stage {
    Control,
    Fault,
    Recovery,
}

/// One run in progress; see the module docs.
struct Runner<'a> {
    exp: &'a Experiment,
    runtime: &'a Runtime,
    load: Option<&'a mut dyn FnMut()>,
    probe: Arc<Probe>,
    claim: u64,
    injection: Option<Injection>,
    /// The log of the last fault phase.
    log: Vec<InjectionRecord>,
    /// Live cells a fault's target covers, at the start.
    targeted: BTreeSet<CellPath>,
    warnings: Vec<String>,
    signatures_before: BTreeSet<u64>,
    decay_before: HashMap<CellPath, Decay>,
    escalations_before: usize,
    /// The journal's last entry when the run began.
    journal_before: u64,
    reads_burn: bool,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        drop(self.injection.take());
        let chaos = self.runtime.shared().chaos();
        chaos.remove_probe(&self.probe);
        chaos.release(self.claim);
    }
}

impl<'a> Runner<'a> {
    /// Checks the faults against the blast radius and the running
    /// experiments, then claims the radius and starts measuring.
    fn start(
        exp: &'a Experiment,
        runtime: &'a Runtime,
        load: Option<&'a mut dyn FnMut()>,
    ) -> Result<Self, ExperimentError> {
        let shared = runtime.shared();
        if shared.is_shutting_down() {
            return Err(ExperimentError::ShutDown);
        }
        let live = shared.live_paths();
        let mut targeted = BTreeSet::new();
        let mut warnings = Vec::new();
        for fault in exp.faults.faults() {
            let covered: Vec<&CellPath> = live
                .iter()
                .filter(|(path, kind)| fault.target().covers_cell(path, kind))
                .map(|(p, _)| p)
                .collect();
            if covered.is_empty() {
                warnings.push(format!("the target of `{fault}` covers no live cell"));
            }
            if let Some(outside) =
                covered.iter().find(|path| !exp.radius.iter().any(|glob| glob.matches(path)))
            {
                return Err(ExperimentError::OutsideBlastRadius {
                    fault: fault.to_string(),
                    cell: (*outside).clone(),
                });
            }
            targeted.extend(covered.into_iter().cloned());
        }
        let within: Vec<CellPath> = live
            .iter()
            .map(|(path, _)| path)
            .filter(|path| exp.radius.iter().any(|g| g.matches(path)))
            .cloned()
            .collect();
        let claim = shared
            .chaos()
            .claim(&exp.name, &exp.radius, &within)
            .map_err(|(experiment, cell)| ExperimentError::Busy { experiment, cell })?;
        let probe = Probe::new(exp.observed.clone());
        shared.chaos().add_probe(probe.clone());
        let runner = Runner {
            exp,
            runtime,
            load,
            probe,
            claim,
            injection: None,
            log: Vec::new(),
            targeted,
            warnings,
            signatures_before: runtime.signatures().iter().map(|s| s.signature.fingerprint).collect(),
            decay_before: decay_of(runtime),
            escalations_before: runtime.escalations().len(),
            journal_before: runtime.shared().observer().journal().total(),
            reads_burn: exp.hypothesis.iter().any(|p| p.reads_burn()),
        };
        let radius: Vec<&str> = exp.radius.iter().map(|g| g.as_str()).collect();
        runner.journal(format!("started: faults {}; blast radius {}", exp.faults, radius.join(" ")));
        Ok(runner)
    }

    fn journal(&self, what: String) {
        let kind = SignalKind::Chaos { experiment: self.exp.name.clone(), what };
        self.runtime.shared().journal_chaos(kind);
    }

    /// Installs `faults` within the blast radius.
    fn inject(&mut self, faults: FaultSet) -> Result<(), ExperimentError> {
        let injection = self
            .runtime
            .inject_within(faults, Some(self.exp.radius.clone()))
            .map_err(|_| ExperimentError::ShutDown)?;
        self.injection = Some(injection);
        Ok(())
    }

    /// Removes the faults now; their final counts.
    fn remove_faults(&mut self) -> Vec<FaultCount> {
        let Some(injection) = self.injection.take() else { return Vec::new() };
        self.log = injection.log();
        injection.remove()
    }

    /// Runs one phase; with `aborts`, checks the abort conditions as it
    /// goes and stops at the first that holds (its reason comes back).
    fn phase(&mut self, span: Span, aborts: bool) -> Result<(Observation, Option<String>), ExperimentError> {
        let _ = self.probe.take();
        let since = SystemTime::now();
        let start = Instant::now();
        let mut loads = 0_u64;
        let check_aborts = aborts && !self.exp.aborts.is_empty();
        loop {
            if self.runtime.shared().is_shutting_down() {
                return Err(ExperimentError::ShutDown);
            }
            let done = match span {
                Span::Messages(n) if self.load.is_some() => loads >= n,
                Span::Messages(n) => self.probe.count() >= n,
                Span::For(duration) => start.elapsed() >= duration,
            };
            if done {
                break;
            }
            match self.load.as_mut() {
                Some(load) => {
                    load();
                    loads += 1;
                }
                None => crate::sync::thread::sleep(self.exp.tick),
            }
            if check_aborts {
                let obs = self.observation(self.probe.peek(), start, loads, since);
                for abort in &self.exp.aborts {
                    let held = catch_unwind(AssertUnwindSafe(|| (abort.check)(&obs))).map_err(|payload| {
                        ExperimentError::PredicatePanicked {
                            predicate: abort.name.clone(),
                            payload: payload_text(&*payload),
                        }
                    })?;
                    if held {
                        return Ok((obs, Some(format!("abort condition {:?} held", abort.name))));
                    }
                }
            }
        }
        if self.load.is_some() {
            self.settle();
        }
        Ok((self.observation(self.probe.take(), start, loads, since), None))
    }

    /// Waits until the observed cells' last messages are counted: a load's
    /// answer can arrive just before its handler's time is recorded.
    fn settle(&self) {
        let mut seen = self.probe.count();
        for _ in 0..SETTLE_ROUNDS {
            crate::sync::thread::sleep(SETTLE_PAUSE);
            let now = self.probe.count();
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    fn observation(
        &self,
        windows: HashMap<CellPath, Window>,
        start: Instant,
        loads: u64,
        since: SystemTime,
    ) -> Observation {
        let elapsed = start.elapsed();
        let seconds = elapsed.as_secs_f64().max(1e-9);
        let cells = windows
            .into_iter()
            .map(|(path, window)| {
                let total = window.handled + window.failed;
                let cell = CellPhase {
                    handled: window.handled,
                    failed: window.failed,
                    latency: window.latency(),
                    throughput: total as f64 / seconds,
                };
                (path, cell)
            })
            .collect();
        let dead_letters = self
            .runtime
            .dead_letters()
            .iter()
            .filter(|letter| letter.failure().at >= since)
            .map(|letter| DeadLetterSeen {
                cell: letter.failure().path.clone(),
                message_kind: letter.failure().message_kind.map(str::to_owned),
                injected: matches!(letter.failure().cause, FailureCause::Injected { .. }),
            })
            .collect();
        let paging = if self.reads_burn { paging(self.runtime, &self.exp.observed) } else { Vec::new() };
        Observation { elapsed, loads, cells, dead_letters, paging }
    }

    /// Evaluates the hypothesis into `reports` at `stage`; whether it held.
    fn evaluate(
        &self,
        obs: &Observation,
        reports: &mut [PredicateReport],
        stage: Stage,
    ) -> Result<bool, ExperimentError> {
        let mut held = true;
        for (predicate, report) in self.exp.hypothesis.iter().zip(reports.iter_mut()) {
            let value = predicate.evaluate(obs).map_err(|payload| ExperimentError::PredicatePanicked {
                predicate: predicate.to_string(),
                payload,
            })?;
            held &= value.holds;
            let slot = match stage {
                Stage::Control => &mut report.control,
                Stage::Fault => &mut report.fault,
                Stage::Recovery => &mut report.recovery,
            };
            *slot = Some(value);
        }
        Ok(held)
    }

    /// Recovery windows until the hypothesis holds again: the time since
    /// `removed_at` when it did, and the windows measured.
    fn recover(
        &mut self,
        removed_at: Instant,
        reports: &mut [PredicateReport],
    ) -> Result<(Option<std::time::Duration>, u32), ExperimentError> {
        let Some((window, max_windows)) = self.exp.recovery else { return Ok((None, 0)) };
        for measured in 1..=max_windows {
            let (obs, _) = self.phase(window, false)?;
            if self.evaluate(&obs, reports, Stage::Recovery)? {
                return Ok((Some(removed_at.elapsed()), measured));
            }
        }
        Ok((None, max_windows))
    }

    fn blank_reports(&self) -> Vec<PredicateReport> {
        self.exp
            .hypothesis
            .iter()
            .map(|p| PredicateReport { predicate: p.to_string(), control: None, fault: None, recovery: None })
            .collect()
    }

    /// The whole run, once started.
    fn run(mut self) -> Result<Report, ExperimentError> {
        let mut reports = self.blank_reports();
        self.journal("control phase".to_owned());
        let (control, _) = self.phase(self.exp.control, false)?;
        if !self.evaluate(&control, &mut reports, Stage::Control)? {
            let reason = format!(
                "the hypothesis did not hold in the control phase: {}",
                failing(&reports, Stage::Control)
            );
            return Ok(self.finish(Outcome::Aborted { reason }, reports, Vec::new(), (None, 0)));
        }
        self.journal("fault phase".to_owned());
        self.inject(self.exp.faults.clone())?;
        let (during, aborted) = self.phase(self.exp.fault_phase, true)?;
        let removed_at = Instant::now();
        let counts = self.remove_faults();
        let held = self.evaluate(&during, &mut reports, Stage::Fault)?;
        if let Some(reason) = aborted {
            return Ok(self.finish(Outcome::Aborted { reason }, reports, counts, (None, 0)));
        }
        let outcome = if held { Outcome::Held } else { Outcome::Violated };
        let decay_after = decay_of(self.runtime);
        if self.exp.recovery.is_some() {
            self.journal("recovery phase".to_owned());
        }
        let recovery = self.recover(removed_at, &mut reports)?;
        let mut report = self.finish(outcome, reports, counts, recovery);
        report.decay_moved = decay_moves(&self.decay_before, &decay_after);
        Ok(report)
    }

    /// The report, its findings journaled.
    fn finish(
        &self,
        outcome: Outcome,
        predicates: Vec<PredicateReport>,
        injections: Vec<FaultCount>,
        (time_to_recovery, recovery_windows): (Option<std::time::Duration>, u32),
    ) -> Report {
        let mut warnings = self.warnings.clone();
        for count in injections.iter().filter(|count| count.matched == 0) {
            warnings.push(format!("`{}` matched no message", count.fault));
        }
        let new_signatures: Vec<_> = self
            .runtime
            .signatures()
            .into_iter()
            .filter(|stats| !self.signatures_before.contains(&stats.signature.fingerprint))
            .collect();
        let faults = self.exp.faults.to_string();
        let mut findings = Vec::new();
        for report in &predicates {
            let Some(PhaseValue { holds: false, .. }) = report.fault else { continue };
            let predicate = self.exp.hypothesis.iter().find(|p| p.to_string() == report.predicate);
            let finding = match predicate.and_then(|p| p.cell()) {
                Some(cell) if !self.targeted.contains(cell) => ExperimentFinding {
                    category: Category::HiddenDependency,
                    verdict: format!(
                        "{} failed at {cell}, which no fault targets: it depends on what `{faults}` hit",
                        report.predicate
                    ),
                },
                Some(cell) => ExperimentFinding {
                    category: Category::ArchitecturalDebt,
                    verdict: format!("{cell} does not absorb its own fault: {} failed", report.predicate),
                },
                None => ExperimentFinding {
                    category: Category::NewBehavior,
                    verdict: format!("{} failed under `{faults}`", report.predicate),
                },
            };
            findings.push(finding);
        }
        for stats in new_signatures.iter().filter(|stats| !is_injected(stats)) {
            findings.push(ExperimentFinding {
                category: Category::NewBehavior,
                verdict: format!("a new failure appeared under chaos: {}", stats.signature),
            });
        }
        if let Outcome::Aborted { reason } = &outcome {
            if !injections.is_empty() {
                findings.push(ExperimentFinding {
                    category: Category::ProcessBreakdown,
                    verdict: format!("aborted: {reason}"),
                });
            }
        }
        if time_to_recovery.is_none() && recovery_windows > 0 {
            findings.push(ExperimentFinding {
                category: Category::ProcessBreakdown,
                verdict: format!(
                    "the hypothesis did not hold again within {recovery_windows} recovery window(s)"
                ),
            });
        }
        let escalations = self.runtime.escalations().len().saturating_sub(self.escalations_before);
        if escalations > 0 {
            findings.push(ExperimentFinding {
                category: Category::ProcessBreakdown,
                verdict: format!("supervision gave up {escalations} time(s) during the experiment"),
            });
        }
        self.journal(format!("ended: {outcome}"));
        for finding in &findings {
            let kind = SignalKind::ChaosFinding {
                experiment: self.exp.name.clone(),
                verdict: finding.verdict.clone(),
                category: finding.category,
            };
            self.runtime.shared().journal_chaos(kind);
        }
        Report {
            name: self.exp.name.clone(),
            outcome,
            predicates,
            injections,
            injection_log: self.log.clone(),
            new_signatures: new_signatures.iter().map(|stats| stats.signature.to_string()).collect(),
            decay_moved: Vec::new(),
            time_to_recovery,
            recovery_windows,
            findings,
            warnings,
            recompositions: self.recompositions(),
        }
    }

    /// The recomposition steps journaled since the run began.
    fn recompositions(&self) -> Vec<RecompositionStep> {
        let journal = self.runtime.shared().observer().journal();
        journal
            .query(&JournalQuery::new().kind(SignalType::Plan))
            .into_iter()
            .filter(|signal| signal.seq > self.journal_before)
            .filter_map(|signal| match signal.kind {
                SignalKind::Plan { plan, step, description, .. } => {
                    Some(RecompositionStep { plan, cell: signal.cell, step: step.to_string(), description })
                }
                _ => None,
            })
            .collect()
    }
}

/// The predicates that failed at `stage`, joined.
fn failing(reports: &[PredicateReport], stage: Stage) -> String {
    reports
        .iter()
        .filter(|report| {
            let value = match stage {
                Stage::Control => report.control,
                Stage::Fault => report.fault,
                Stage::Recovery => report.recovery,
            };
            value.is_some_and(|v| !v.holds)
        })
        .map(|report| report.predicate.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a signature is that of an injected error or panic.
fn is_injected(stats: &crate::observe::SignatureStats) -> bool {
    match &stats.sample.cause {
        FailureCause::Error { type_name, .. } => {
            *type_name == Some(std::any::type_name::<super::InjectedError>())
        }
        FailureCause::Panic { payload, .. } => payload.starts_with("injected panic ("),
        _ => false,
    }
}

fn decay_of(runtime: &Runtime) -> HashMap<CellPath, Decay> {
    runtime.snapshot().cells.into_iter().filter_map(|cell| Some((cell.path, cell.decay?))).collect()
}

fn decay_moves(before: &HashMap<CellPath, Decay>, after: &HashMap<CellPath, Decay>) -> Vec<DecayMove> {
    let mut moves = Vec::new();
    let mut cells: Vec<&CellPath> = after.keys().collect();
    cells.sort();
    for cell in cells {
        let (Some(old), Some(new)) = (before.get(cell), after.get(cell)) else { continue };
        for (component, a, b) in [
            ("fragility", old.fragility, new.fragility),
            ("cost", old.cost, new.cost),
            ("drag", old.drag, new.drag),
            ("score", old.score, new.score),
        ] {
            if (b - a).abs() > DECAY_MOVE {
                moves.push(DecayMove {
                    cell: cell.clone(),
                    component: component.to_owned(),
                    before: a,
                    after: b,
                });
            }
        }
    }
    moves
}

/// The cells among `cells` whose objective has a paging alert firing.
fn paging(runtime: &Runtime, cells: &[CellPath]) -> Vec<CellPath> {
    runtime
        .snapshot()
        .cells
        .into_iter()
        .filter(|cell| cells.contains(&cell.path))
        .filter(|cell| {
            cell.objective.as_ref().map(|o| &o.status).is_some_and(|status| {
                status.alerts.iter().any(|a| a.firing && matches!(a.alert, BurnAlert::Fast | BurnAlert::Slow))
            })
        })
        .map(|cell| cell.path)
        .collect()
}

/// Runs `exp`; see [`Experiment::run`].
pub(crate) fn run<'a>(
    exp: &'a Experiment,
    runtime: &'a Runtime,
    load: Option<&'a mut dyn FnMut()>,
) -> Result<Report, ExperimentError> {
    Runner::start(exp, runtime, load)?.run()
}

/// Ramps `exp`; see [`Experiment::ramp`].
pub(crate) fn ramp<'a>(
    exp: &'a Experiment,
    runtime: &'a Runtime,
    intensities: &[f64],
    load: &'a mut dyn FnMut(),
) -> Result<RampReport, ExperimentError> {
    if let Some(bad) = intensities.iter().find(|i| !(0.0..=1.0).contains(*i)) {
        return Err(ExperimentError::Intensity { value: bad.to_string() });
    }
    let mut runner = Runner::start(exp, runtime, Some(load))?;
    let mut report =
        RampReport { name: exp.name.clone(), steps: Vec::new(), breaking_point: None, aborted: None };
    let mut reports = runner.blank_reports();
    runner.journal("ramp: control phase".to_owned());
    let (control, _) = runner.phase(exp.control, false)?;
    if !runner.evaluate(&control, &mut reports, Stage::Control)? {
        let reason = failing(&reports, Stage::Control);
        report.aborted = Some(format!("the hypothesis did not hold in the control phase: {reason}"));
        runner.journal("ramp ended: control phase failed".to_owned());
        return Ok(report);
    }
    for (index, &intensity) in intensities.iter().enumerate() {
        runner.journal(format!("ramp: fault phase at intensity {intensity}"));
        let scaled: FaultSet = exp
            .faults
            .faults()
            .iter()
            .map(|fault| fault.with_ppm((f64::from(fault.ppm) * intensity).round() as u32))
            .collect();
        runner.inject(scaled)?;
        let (during, aborted) = runner.phase(exp.fault_phase, true)?;
        let removed_at = Instant::now();
        let counts = runner.remove_faults();
        let held = runner.evaluate(&during, &mut reports, Stage::Fault)?;
        report.steps.push(RampStep {
            intensity,
            predicates: reports.iter().filter_map(|r| Some((r.predicate.clone(), r.fault?))).collect(),
            held,
            injected: counts.iter().map(|c| c.injected).sum(),
        });
        if let Some(reason) = aborted {
            report.aborted = Some(reason);
            break;
        }
        if !held {
            report.breaking_point = Some(index);
            break;
        }
        runner.recover(removed_at, &mut reports)?;
    }
    let end = match report.breaking_intensity() {
        Some(intensity) => format!("ramp ended: breaking point at intensity {intensity}"),
        None => "ramp ended: no breaking point".to_owned(),
    };
    runner.journal(end);
    Ok(report)
}
