//! The periodic analysis: once per window, the metrics of the cells that
//! did something become a [`WindowSample`] each; decay, objectives' burn
//! rates, backpressure episodes, load shifts, new message kinds and the flow
//! map's rates are updated from it, and what changed becomes signals for the
//! journal.
//!
//! # What a window costs
//!
//! A window reads the cells that reported activity since the previous one
//! (a cell reports itself once per window, at its first turn or refused send
//! after the window cleared its mark; see `dispatch/state.rs`), the cells it
//! still *watches*, and those whose objective changed: its cost follows what
//! ran, not how many cells exist. Every other live cell is idle, and its
//! idle windows are applied when it is next read, in O(1), with exactly the
//! figures that reading it at every window would give:
//!
//! - A cell is watched from its first window with activity until an idle
//!   window finds it *at rest*: idle and nothing queued when its mark was
//!   cleared, no objective, no backpressure episode, its edges' rates 0 and
//!   its decay tracker at rest (see `decay.rs`). Further idle windows then
//!   change only its window counts and the lengths in its short window;
//!   [`DecayTracker::skip_idle`] applies them when the cell is next active
//!   or read.
//! - A cell whose first window finds it untouched since its spawn (counters
//!   at 0, no edge, no message kind, nothing queued, no objective) is
//!   *fresh*: all that is kept of it is the window count before its first
//!   window. Every fresh cell's tracker goes through the same idle windows,
//!   so they are computed once, up to rest ([`FreshTrackers`]), and a fresh
//!   cell's state after any number of windows is a copy of one of them.
//! - A cell with an objective stays watched while it has one: its burn
//!   windows slide with time, so its idle windows can raise or clear alerts.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::decay::{
    Baselines, Crossing, Decay, DecayConfig, DecayConfigError, DecayTracker, Rest, WindowSample,
};
use super::journal::SignalKind;
use super::metrics::{CellMetrics, Counters};
use super::objective::{BurnStatus, BurnTracker, BurnWindows, Indicator, Objective};
use crate::path::CellPath;

/// Saturation under which a backpressure episode ends (with no rejection in
/// the window).
const EPISODE_END_SATURATION: f64 = 0.5;

/// The most idle windows a fresh tracker may take to come to rest; one that
/// takes more (no configuration does) leaves fresh cells read at every
/// window instead.
const FRESH_WINDOWS_LIMIT: usize = 4096;

/// The length the idle windows of [`FreshTrackers`] are computed with; the
/// lengths of the windows in a short window are set when a tracker is used.
const STAND_IN_LENGTH: Duration = Duration::from_secs(1);

/// What the analysis reads of one live cell.
pub(crate) struct CellView<'a> {
    pub(crate) id: u64,
    pub(crate) path: &'a CellPath,
    pub(crate) kind: &'static str,
    pub(crate) metrics: &'a CellMetrics,
    pub(crate) queued: usize,
    pub(crate) capacity: usize,
    /// Whether the cell was neither scheduled nor running when its activity
    /// mark was cleared, just before its metrics were read.
    pub(crate) idle: bool,
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
    edges: Vec<EdgeRate>,
    /// At rest since the window with this count, with what further idle
    /// windows teach the tracker; not yet applied.
    rest: Option<(Rest, u64)>,
}

/// The idle windows every fresh cell's tracker goes through, from a new
/// tracker up to rest: `states[k]` after `k` of them, the last one at rest.
struct FreshTrackers {
    states: Vec<DecayTracker>,
    rest: Rest,
}

/// The analysis state of a runtime.
pub(crate) struct Analysis {
    /// A new cell's decay tracker, cloned.
    decay: DecayTracker,
    /// `None` when a fresh tracker does not come to rest within
    /// [`FRESH_WINDOWS_LIMIT`] windows.
    fresh_trackers: Option<FreshTrackers>,
    burn: BurnWindows,
    /// The cells read at least once with something to keep.
    cells: HashMap<u64, CellAnalysis>,
    /// Fresh cells: the window count before their first window.
    fresh: HashMap<u64, u64>,
    /// Cells read at every window, at rest or not: the ones not at rest.
    watched: HashSet<u64>,
    /// Windows analysed so far (the zero-length first one excluded).
    windows: u64,
    /// The latest windows' lengths, oldest first, as many as a short window.
    lengths: VecDeque<Duration>,
    short_windows: usize,
    /// Which cells each cell sends to, by path, kept as edges appear, with
    /// the instance they were read from.
    dependencies: HashMap<CellPath, (u64, Vec<CellPath>)>,
    dependencies_changed: bool,
    last_tick: Option<Instant>,
}

impl FreshTrackers {
    /// Observes idle windows from `new` until it is at rest.
    fn new(new: &DecayTracker) -> Option<Self> {
        let mut tracker = new.clone();
        let mut states = vec![tracker.clone()];
        while states.len() <= FRESH_WINDOWS_LIMIT {
            let before = tracker.shape();
            let step = tracker.observe(&WindowSample::idle(STAND_IN_LENGTH));
            debug_assert_eq!(step.crossed, None, "an idle cell crossed the decay threshold");
            debug_assert_eq!(tracker.load_shift(), None, "an idle cell shifted its rate");
            states.push(tracker.clone());
            if let Some(rest) = tracker.rest_since(&before) {
                return Some(FreshTrackers { states, rest });
            }
        }
        None
    }

    /// The tracker after `windows` idle windows, the latest of which had
    /// `lengths` (oldest first).
    fn tracker(&self, windows: u64, lengths: &VecDeque<Duration>) -> DecayTracker {
        let at_rest = self.states.len() - 1;
        let (index, skipped) = match usize::try_from(windows) {
            Ok(k) if k < at_rest => (k, 0),
            _ => (at_rest, windows - at_rest as u64),
        };
        let mut tracker = self.states[index].clone();
        tracker.relength(lengths);
        tracker.skip_idle(self.rest, skipped, lengths);
        tracker
    }

    /// The decay and baselines after `windows` idle windows.
    fn decay(&self, windows: u64) -> (Decay, Baselines) {
        let at_rest = self.states.len() - 1;
        match usize::try_from(windows) {
            Ok(k) if k < at_rest => (self.states[k].decay(), self.states[k].baselines()),
            _ => {
                let tracker = &self.states[at_rest];
                (tracker.decay(), tracker.baselines_skipping(self.rest, windows - at_rest as u64))
            }
        }
    }
}

impl Analysis {
    pub(crate) fn new(decay: DecayConfig, burn: BurnWindows) -> Result<Self, DecayConfigError> {
        let short_windows = decay.short_windows as usize;
        let decay = DecayTracker::new(decay)?;
        Ok(Analysis {
            fresh_trackers: FreshTrackers::new(&decay),
            decay,
            burn,
            cells: HashMap::new(),
            fresh: HashMap::new(),
            watched: HashSet::new(),
            windows: 0,
            lengths: VecDeque::with_capacity(short_windows),
            short_windows,
            dependencies: HashMap::new(),
            dependencies_changed: false,
            last_tick: None,
        })
    }

    /// The cells every window reads, whether they reported activity or not.
    pub(crate) fn watched(&self) -> impl Iterator<Item = u64> + '_ {
        self.watched.iter().copied()
    }

    /// One window: forgets the cells in `departed` (terminated), reads
    /// `cells` (the live ones that reported activity, are watched, or whose
    /// objective changed; any others are idle) and returns what is worth a
    /// journal entry. `objective_of` gives the objective set for a path, if
    /// any.
    pub(crate) fn tick(
        &mut self,
        now: Instant,
        cells: &[CellView<'_>],
        departed: &[u64],
        objective_of: &dyn Fn(&CellPath) -> Option<Objective>,
    ) -> Vec<Finding> {
        let length = self.last_tick.map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last_tick = Some(now);
        for id in departed {
            self.forget(*id);
        }
        // The first tick only sets the starting point, and so does a window
        // of no length.
        let counted = !length.is_zero();
        let before = self.windows;
        if counted {
            self.windows += 1;
        }
        let mut findings = Vec::new();
        for view in cells {
            let high = view.metrics.take_window_high(view.queued);
            let wanted = objective_of(view.path);
            let state = match self.cells.entry(view.id) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(vacant) => match (self.fresh.remove(&view.id), &self.fresh_trackers) {
                    (Some(first), Some(fresh)) => {
                        let decay = fresh.tracker(before - first, &self.lengths);
                        vacant.insert(CellAnalysis::new(view, Counters::default(), decay))
                    }
                    _ => {
                        if self.fresh_trackers.is_some() && wanted.is_none() && untouched(view, high) {
                            self.fresh.insert(view.id, before);
                            self.watched.remove(&view.id);
                            continue;
                        }
                        vacant.insert(CellAnalysis::new(view, view.metrics.counters(), self.decay.clone()))
                    }
                },
            };
            if let Some((rest, since)) = state.rest.take() {
                state.decay.skip_idle(rest, before - since, &self.lengths);
            }
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
            if !counted {
                state.last = view.metrics.counters();
                self.watched.insert(view.id);
                continue;
            }
            let shape = state.decay.shape();
            let (last, edges) = (state.last, state.edges.len());
            let edges_quiet = state.edges.iter().all(|e| e.rate == 0.0);
            state.analyse(now, length, view, high, &mut findings);
            if state.edges.len() != edges {
                let targets = state.edges.iter().map(|e| e.to.clone()).collect();
                self.dependencies.insert(state.path.clone(), (view.id, targets));
                self.dependencies_changed = true;
            }
            let quiet = view.idle
                && view.queued == 0
                && high == 0
                && state.last == last
                && state.objective.is_none()
                && !state.in_episode
                && edges_quiet
                && state.edges.iter().all(|e| e.rate == 0.0);
            match quiet.then(|| state.decay.rest_since(&shape)).flatten() {
                Some(rest) => {
                    state.rest = Some((rest, self.windows));
                    self.watched.remove(&view.id);
                }
                None => {
                    self.watched.insert(view.id);
                }
            }
        }
        if counted {
            if self.lengths.len() == self.short_windows {
                self.lengths.pop_front();
            }
            self.lengths.push_back(length);
        }
        findings
    }

    /// Drops what is kept of cell instance `id`, which terminated.
    fn forget(&mut self, id: u64) {
        self.fresh.remove(&id);
        self.watched.remove(&id);
        let Some(cell) = self.cells.remove(&id) else { return };
        // A newer instance at the same path keeps its own.
        if self.dependencies.get(&cell.path).is_some_and(|(owner, _)| *owner == id) {
            self.dependencies.remove(&cell.path);
            self.dependencies_changed = true;
        }
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
    pub(crate) fn decay(&self, id: u64) -> Option<(Decay, Baselines)> {
        if let Some(cell) = self.cells.get(&id) {
            let baselines = match cell.rest {
                Some((rest, since)) => cell.decay.baselines_skipping(rest, self.windows - since),
                None => cell.decay.baselines(),
            };
            return Some((cell.decay.decay(), baselines));
        }
        let first = self.fresh.get(&id)?;
        Some(self.fresh_trackers.as_ref()?.decay(self.windows - first))
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

    /// Which cells each cell sends to, by path (what triage reads as
    /// dependencies), if that changed since the last call.
    pub(crate) fn take_dependencies(&mut self) -> Option<HashMap<CellPath, Vec<CellPath>>> {
        if !self.dependencies_changed {
            return None;
        }
        self.dependencies_changed = false;
        Some(self.dependencies.iter().map(|(path, (_, targets))| (path.clone(), targets.clone())).collect())
    }
}

/// Whether nothing happened to the cell since its spawn, as its first
/// window reads it: `high` is its mailbox's highest fill in that window.
fn untouched(view: &CellView<'_>, high: usize) -> bool {
    view.idle
        && view.queued == 0
        && high == 0
        && view.metrics.counters() == Counters::default()
        && view.metrics.outbound().is_empty()
        && view.metrics.kinds().is_empty()
}

/// The latency a message may take under `objective`, if it is a latency one.
fn latency_threshold(objective: &Objective) -> Option<Duration> {
    match objective.indicator() {
        Indicator::Latency { threshold } => Some(threshold),
        _ => None,
    }
}

impl CellAnalysis {
    /// The state of a cell first read now, its counters at `last`.
    fn new(view: &CellView<'_>, last: Counters, decay: DecayTracker) -> Self {
        CellAnalysis {
            path: view.path.clone(),
            kind: view.kind,
            last,
            decay,
            objective: None,
            in_episode: false,
            load_shifted: false,
            kinds_known: 0,
            edges: Vec::new(),
            rest: None,
        }
    }

    /// One window of `length` ending at `now`, in which the mailbox's
    /// highest fill was `high`.
    fn analyse(
        &mut self,
        now: Instant,
        length: Duration,
        view: &CellView<'_>,
        high: usize,
        findings: &mut Vec<Finding>,
    ) {
        let counters = view.metrics.counters();
        let last = std::mem::replace(&mut self.last, counters);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::metrics::TurnMeter;

    /// What one cell does in window `w`: messages handled, messages failed.
    type Script = fn(u64) -> (u64, u64);

    /// Idle from its spawn to window 40, busy for 5 windows, idle again.
    fn late_starter(w: u64) -> (u64, u64) {
        if (40..45).contains(&w) {
            (10, 0)
        } else {
            (0, 0)
        }
    }

    /// Busy (with some failures) for 30 windows, idle until window
    /// `BURST`, busy for 3 windows, idle again.
    fn busy_then_idle(w: u64) -> (u64, u64) {
        match w {
            1..=30 => (50 + w % 7, if w % 5 == 0 { 3 } else { 0 }),
            BURST..=BURST_END => (40, 1),
            _ => (0, 0),
        }
    }

    /// Never sent anything.
    fn never(_: u64) -> (u64, u64) {
        (0, 0)
    }

    const BURST: u64 = 9_000;
    const BURST_END: u64 = BURST + 2;

    /// One turn handling `handled` messages and failing `failed`.
    fn turn(metrics: &CellMetrics, id: u64, (handled, failed): (u64, u64)) {
        if handled + failed == 0 {
            return;
        }
        let mut meter = TurnMeter::begin(metrics, id);
        for _ in 0..handled {
            meter.done(None, "work", true);
        }
        for _ in 0..failed {
            meter.done(None, "work", false);
        }
    }

    fn view<'a>(id: u64, path: &'a CellPath, metrics: &'a CellMetrics) -> CellView<'a> {
        CellView { id, path, kind: "Cell", metrics, queued: 0, capacity: 32, idle: true }
    }

    fn described(findings: &[Finding]) -> Vec<String> {
        findings.iter().map(|f| format!("{} {:?}", f.cell, f.kind)).collect()
    }

    /// Runs `scripts` for `windows` windows through two analyses: one that
    /// reads every cell at every window (what the analysis did before it
    /// learned to skip idle cells) and one that reads only the cells that
    /// had activity or that it watches, as the runtime does. Checks at every
    /// window that both report the same decay, baselines and findings, and
    /// that they match a tracker fed every window's sample directly.
    /// Returns how many cells the second analysis read in each window.
    fn compare(config: DecayConfig, scripts: &[Script], windows: u64) -> Vec<usize> {
        let paths: Vec<CellPath> =
            (0..scripts.len()).map(|i| CellPath::root().child(&format!("c{i}")).unwrap()).collect();
        let ids: Vec<u64> = (1..=scripts.len() as u64).collect();
        // Each analysis needs metrics of its own: reading takes the window's high-water mark.
        let every_metrics: Vec<CellMetrics> =
            scripts.iter().map(|_| CellMetrics::new(u32::MAX, true)).collect();
        let lazy_metrics: Vec<CellMetrics> =
            scripts.iter().map(|_| CellMetrics::new(u32::MAX, true)).collect();
        let mut every = Analysis::new(config.clone(), BurnWindows::default()).unwrap();
        let mut lazy = Analysis::new(config.clone(), BurnWindows::default()).unwrap();
        let mut reference: Vec<DecayTracker> =
            scripts.iter().map(|_| DecayTracker::new(config.clone()).unwrap()).collect();
        let no_objective = |_: &CellPath| None;
        let start = Instant::now();
        let mut now = start;
        let mut read = Vec::new();
        for w in 0..windows {
            let length = Duration::from_millis(1_000 + w % 13);
            if w > 0 {
                now += length;
            }
            let mut active = Vec::new();
            for (i, script) in scripts.iter().enumerate() {
                let work = script(w);
                turn(&every_metrics[i], ids[i], work);
                turn(&lazy_metrics[i], ids[i], work);
                // Every cell's first turn (`started`) reports it.
                if w == 0 || work != (0, 0) {
                    active.push(i);
                }
                if w > 0 {
                    let sample = WindowSample {
                        length,
                        handled: work.0,
                        failed: work.1,
                        ..WindowSample::idle(length)
                    };
                    reference[i].observe(&sample);
                }
            }
            let all: Vec<CellView<'_>> =
                (0..scripts.len()).map(|i| view(ids[i], &paths[i], &every_metrics[i])).collect();
            let found_every = every.tick(now, &all, &[], &no_objective);
            let watched: HashSet<u64> = lazy.watched().collect();
            let touched: Vec<CellView<'_>> = (0..scripts.len())
                .filter(|&i| active.contains(&i) || watched.contains(&ids[i]))
                .map(|i| view(ids[i], &paths[i], &lazy_metrics[i]))
                .collect();
            read.push(touched.len());
            let found_lazy = lazy.tick(now, &touched, &[], &no_objective);
            assert_eq!(described(&found_lazy), described(&found_every), "findings of window {w}");
            for (i, tracker) in reference.iter().enumerate() {
                let expected = Some((tracker.decay(), tracker.baselines()));
                assert_eq!(every.decay(ids[i]), expected, "cell {i} read at every window, window {w}");
                assert_eq!(lazy.decay(ids[i]), expected, "cell {i} read when active, window {w}");
            }
        }
        read
    }

    #[test]
    fn idle_cells_read_only_when_active_have_the_figures_of_cells_read_every_window() {
        let read = compare(DecayConfig::default(), &[late_starter, busy_then_idle, never], BURST + 1_000);
        // The first window reads every cell (each one's first turn), then
        // only the late starter's busy windows and the settling windows of
        // the busy cell.
        assert_eq!(read[0], 3);
        assert_eq!(read[1..40].iter().max(), Some(&1), "only the busy cell is read");
        assert_eq!(read[BURST as usize - 1], 0, "the busy cell came to rest before its burst");
        assert_eq!(read[BURST as usize], 1);
        assert_eq!(read.last(), Some(&0), "back at rest within 1,000 windows of the burst");
    }

    #[test]
    fn cells_at_rest_are_exact_with_a_quickly_settling_baseline() {
        let config = DecayConfig::default().baseline_alpha(0.5).warmup(3).short_windows(4);
        let read = compare(config, &[late_starter, busy_then_idle, never], BURST + 100);
        assert_eq!(read[BURST as usize - 1], 0);
        assert_eq!(read[BURST as usize + 99], 0, "back at rest 97 windows after the burst");
    }

    #[test]
    fn cells_untouched_since_their_spawn_keep_no_state_and_are_never_read() {
        let config = DecayConfig::default();
        let mut analysis = Analysis::new(config.clone(), BurnWindows::default()).unwrap();
        let paths: Vec<CellPath> =
            (0..1_000).map(|i| CellPath::root().child(&format!("idle{i}")).unwrap()).collect();
        let metrics: Vec<CellMetrics> = paths.iter().map(|_| CellMetrics::new(1, true)).collect();
        let views: Vec<CellView<'_>> =
            (0..1_000).map(|i| view(i as u64 + 1, &paths[i], &metrics[i])).collect();
        let start = Instant::now();
        analysis.tick(start, &views, &[], &|_| None);
        let mut reference = DecayTracker::new(config).unwrap();
        for w in 1..=20 {
            analysis.tick(start + Duration::from_secs(w), &[], &[], &|_| None);
            reference.observe(&WindowSample::idle(Duration::from_secs(1)));
        }
        assert_eq!(analysis.watched().count(), 0);
        assert_eq!(analysis.cells.len(), 0);
        assert_eq!(analysis.fresh.len(), 1_000);
        assert_eq!(analysis.decay(500), Some((reference.decay(), reference.baselines())));
        assert_eq!(reference.baselines().rate.windows, 20);
        analysis.tick(start + Duration::from_secs(21), &[], &[500], &|_| None);
        assert_eq!(analysis.decay(500), None, "a terminated cell is forgotten");
    }

    /// One turn of cell `from` that sends one message to cell `to` at `path`.
    fn send(metrics: &CellMetrics, from: u64, to: u64, path: &CellPath) {
        let meter = TurnMeter::begin(metrics, from);
        CellMetrics::accepted(to, path);
        drop(meter);
    }

    #[test]
    fn a_terminated_instance_leaves_the_dependencies_of_a_newer_one_at_its_path() {
        let mut analysis = Analysis::new(DecayConfig::default(), BurnWindows::default()).unwrap();
        let child = |name: &str| CellPath::root().child(name).unwrap();
        let (a, b, c) = (child("a"), child("b"), child("c"));
        let (old, new) = (CellMetrics::new(u32::MAX, true), CellMetrics::new(u32::MAX, true));
        send(&old, 1, 10, &b);
        send(&new, 2, 11, &c);
        let start = Instant::now();
        analysis.tick(start, &[], &[], &|_| None);
        analysis
            .tick(start + Duration::from_secs(1), &[view(1, &a, &old), view(2, &a, &new)], &[], &|_| None);
        let read = analysis.take_dependencies().expect("edges appeared");
        assert_eq!(read, HashMap::from([(a.clone(), vec![c.clone()])]), "the newer instance's, read last");
        analysis.tick(start + Duration::from_secs(2), &[], &[1], &|_| None);
        assert_eq!(analysis.take_dependencies(), None, "the older instance's end changes nothing");
        analysis.tick(start + Duration::from_secs(3), &[], &[2], &|_| None);
        assert_eq!(analysis.take_dependencies(), Some(HashMap::new()));
    }
}
