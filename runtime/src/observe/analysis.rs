//! The periodic analysis: once per window, every live cell's metrics become
//! a [`WindowSample`]; decay, objectives' burn rates, backpressure
//! episodes, load shifts, new message kinds and the flow map's rates are
//! updated from it, and what changed becomes signals for the journal.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::decay::{Crossing, Decay, DecayConfig, DecayConfigError, DecayTracker, WindowSample};
use super::journal::SignalKind;
use super::metrics::{CellMetrics, Counters};
use super::objective::{BurnStatus, BurnTracker, BurnWindows, Indicator, Objective};
use crate::path::CellPath;

/// Saturation under which a backpressure episode ends (with no rejection in
/// the window).
const EPISODE_END_SATURATION: f64 = 0.5;

/// What the analysis reads of one live cell.
pub(crate) struct CellView<'a> {
    pub(crate) id: u64,
    pub(crate) path: &'a CellPath,
    pub(crate) kind: &'static str,
    pub(crate) metrics: &'a CellMetrics,
    pub(crate) queued: usize,
    pub(crate) capacity: usize,
}

/// A signal the analysis found, for the journal.
pub(crate) struct Finding {
    pub(crate) cell: CellPath,
    pub(crate) cell_kind: &'static str,
    pub(crate) kind: SignalKind,
}

/// A message edge with its rate over the last window.
#[derive(Clone, Debug)]
pub(crate) struct EdgeRate {
    pub(crate) to_id: u64,
    pub(crate) to: CellPath,
    pub(crate) messages: u64,
    /// Messages per second over the last window.
    pub(crate) rate: f64,
}

struct ObjectiveState {
    objective: Objective,
    burn: BurnTracker,
}

/// What the analysis keeps of one cell instance.
struct CellAnalysis {
    path: CellPath,
    kind: &'static str,
    last: Counters,
    decay: DecayTracker,
    objective: Option<ObjectiveState>,
    in_episode: bool,
    load_shifted: bool,
    /// Message kinds already known (learned during warmup or journaled).
    kinds_known: usize,
    windows: u64,
    edges: Vec<EdgeRate>,
}

/// The analysis state of a runtime.
pub(crate) struct Analysis {
    /// A new cell's decay tracker, cloned.
    decay: DecayTracker,
    burn: BurnWindows,
    cells: HashMap<u64, CellAnalysis>,
    last_tick: Option<Instant>,
}

impl Analysis {
    pub(crate) fn new(decay: DecayConfig, burn: BurnWindows) -> Result<Self, DecayConfigError> {
        Ok(Analysis { decay: DecayTracker::new(decay)?, burn, cells: HashMap::new(), last_tick: None })
    }

    /// One window: reads `cells` (the live ones), forgets cells no longer
    /// live, and returns what is worth a journal entry. `objective_of` gives
    /// the objective set for a path, if any.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        cells: &[CellView<'_>],
        objective_of: &dyn Fn(&CellPath) -> Option<Objective>,
    ) -> Vec<Finding> {
        let length = self.last_tick.map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last_tick = Some(now);
        let live: std::collections::HashSet<u64> = cells.iter().map(|c| c.id).collect();
        self.cells.retain(|id, _| live.contains(id));
        let mut findings = Vec::new();
        for view in cells {
            let state = self.cells.entry(view.id).or_insert_with(|| CellAnalysis {
                path: view.path.clone(),
                kind: view.kind,
                last: view.metrics.counters(),
                decay: self.decay.clone(),
                objective: None,
                in_episode: false,
                load_shifted: false,
                kinds_known: 0,
                windows: 0,
                edges: Vec::new(),
            });
            let wanted = objective_of(view.path);
            if state.objective.as_ref().map(|o| &o.objective) != wanted.as_ref() {
                view.metrics.set_latency_threshold(wanted.as_ref().and_then(latency_threshold));
                state.objective =
                    wanted.and_then(|objective| match BurnTracker::new(objective, &self.burn) {
                        Ok(burn) => Some(ObjectiveState { objective, burn }),
                        Err(err) => {
                            tracing::error!(cell = %view.path, %err, "objective not applied");
                            None
                        }
                    });
            }
            if length.is_zero() {
                // The first tick only sets the starting point.
                state.last = view.metrics.counters();
                view.metrics.take_window_high(view.queued);
                continue;
            }
            state.analyse(now, length, view, &mut findings);
        }
        findings
    }

    /// The window after a dormant stretch begins at `now` (see
    /// [`Observer::resume`](super::observer::Observer::resume)); before the
    /// first window, the first tick still only sets the starting point.
    pub(crate) fn resume(&mut self, now: Instant) {
        if let Some(last) = &mut self.last_tick {
            *last = now;
        }
    }

    /// The current decay of cell instance `id`.
    pub(crate) fn decay(&self, id: u64) -> Option<(Decay, super::decay::Baselines)> {
        self.cells.get(&id).map(|cell| (cell.decay.decay(), cell.decay.baselines()))
    }

    /// The objective and its burn status of cell instance `id`.
    pub(crate) fn objective(&self, id: u64, now: Instant) -> Option<(Objective, BurnStatus)> {
        let state = self.cells.get(&id)?.objective.as_ref()?;
        Some((state.objective, state.burn.status(now)))
    }

    /// The edges out of cell instance `id`, with their rates.
    pub(crate) fn edges(&self, id: u64) -> &[EdgeRate] {
        self.cells.get(&id).map_or(&[], |cell| &cell.edges)
    }

    /// Which cells each cell sends to, by path: what triage reads as
    /// dependencies.
    pub(crate) fn dependencies(&self) -> HashMap<CellPath, Vec<CellPath>> {
        self.cells
            .values()
            .filter(|cell| !cell.edges.is_empty())
            .map(|cell| (cell.path.clone(), cell.edges.iter().map(|e| e.to.clone()).collect()))
            .collect()
    }
}

/// The latency a message may take under `objective`, if it is a latency one.
fn latency_threshold(objective: &Objective) -> Option<Duration> {
    match objective.indicator() {
        Indicator::Latency { threshold } => Some(threshold),
        _ => None,
    }
}

impl CellAnalysis {
    fn analyse(&mut self, now: Instant, length: Duration, view: &CellView<'_>, findings: &mut Vec<Finding>) {
        let counters = view.metrics.counters();
        let last = std::mem::replace(&mut self.last, counters);
        let high = view.metrics.take_window_high(view.queued);
        let sample = WindowSample {
            length,
            handled: counters.handled - last.handled,
            failed: counters.failed - last.failed,
            restarts: counters.restarts - last.restarts,
            busy: counters.busy.saturating_sub(last.busy),
            timed: Some(counters.queue_samples - last.queue_samples),
            queue_delay: counters.queue_delay.saturating_sub(last.queue_delay),
            queue_samples: counters.queue_samples - last.queue_samples,
            saturation: if view.capacity == 0 { 0.0 } else { (high as f64 / view.capacity as f64).min(1.0) },
            // Refused as full or shed by policy: either way the cell did
            // not keep up with what it was sent.
            rejected: (counters.rejected + counters.shed) - (last.rejected + last.shed),
        };
        self.windows += 1;
        let mut found = |kind: SignalKind| {
            findings.push(Finding { cell: self.path.clone(), cell_kind: self.kind, kind });
        };
        let step = self.decay.observe(&sample);
        if let Some(crossing) = step.crossed {
            let decay = step.decay;
            found(SignalKind::DecayCrossed {
                rising: crossing == Crossing::Rose,
                score: decay.score,
                fragility: decay.fragility,
                cost: decay.cost,
                drag: decay.drag,
                rising_for: decay.rising_for,
            });
        }
        match (self.decay.load_shift(), self.load_shifted) {
            (Some(shift), false) => {
                self.load_shifted = true;
                found(SignalKind::LoadShift { rate: shift.rate, baseline: shift.baseline });
            }
            (None, true) => self.load_shifted = false,
            _ => {}
        }
        if let Some(state) = &mut self.objective {
            let bad = match latency_threshold(&state.objective) {
                Some(_) => counters.slow - last.slow,
                None => sample.failed,
            };
            let total = sample.handled + sample.failed;
            state.burn.record(now, total.saturating_sub(bad), bad);
            for transition in state.burn.evaluate(now) {
                found(SignalKind::BurnRate {
                    objective: state.objective.name(),
                    alert: transition.alert,
                    raised: transition.raised,
                    long_rate: transition.long_rate,
                    short_rate: transition.short_rate,
                });
            }
        }
        if sample.rejected > 0 && !self.in_episode {
            self.in_episode = true;
            found(SignalKind::Backpressure {
                begun: true,
                rejected: sample.rejected,
                saturation: sample.saturation,
            });
        } else if self.in_episode && sample.rejected == 0 && sample.saturation < EPISODE_END_SATURATION {
            self.in_episode = false;
            found(SignalKind::Backpressure { begun: false, rejected: 0, saturation: sample.saturation });
        }
        let kinds = view.metrics.kinds();
        if !step.decay.learning {
            for kind in &kinds[self.kinds_known.min(kinds.len())..] {
                found(SignalKind::NewMessageKind { message_kind: (*kind).to_owned() });
            }
        }
        self.kinds_known = kinds.len();
        let seconds = length.as_secs_f64();
        self.edges = view
            .metrics
            .outbound()
            .into_iter()
            .map(|edge| {
                let before = self.edges.iter().find(|e| e.to_id == edge.to).map_or(0, |e| e.messages);
                EdgeRate {
                    to_id: edge.to,
                    to: edge.path,
                    messages: edge.messages,
                    rate: (edge.messages - before) as f64 / seconds,
                }
            })
            .collect();
    }
}
