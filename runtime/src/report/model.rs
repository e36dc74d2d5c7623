//! What a report shows, derived from a journal and a series of snapshots:
//! phases, the supervision tree, plans with their evidence and outcome,
//! the triage board, failure signatures over time, decay over time, and
//! the flow map's rates around each recomposition. Pure functions of their
//! input, so that a known journal gives known views.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use crate::observe::journal::{PlanStep, RollUp, Signal, SignalKind, SignalType};
use crate::observe::snapshot::{CellSnapshot, Snapshot};
use crate::observe::{Baselines, Category};
use crate::path::CellPath;

/// The seed's triage categories, in the board's column order.
pub(super) const CATEGORIES: [Category; 4] = [
    Category::NewBehavior,
    Category::HiddenDependency,
    Category::ArchitecturalDebt,
    Category::ProcessBreakdown,
];

/// Cells with a decay chart, at most: the ones whose score rose highest.
pub(super) const DECAY_CHARTS_MAX: usize = 24;

/// An application phase: from its `Phase` entry to the next one.
#[derive(Debug, PartialEq)]
pub(super) struct PhaseSpan {
    pub(super) name: String,
    pub(super) start: SystemTime,
    /// The next phase's start; `None` for the last phase.
    pub(super) end: Option<SystemTime>,
}

/// The phases in the journal, in order.
pub(super) fn phases(signals: &[Signal]) -> Vec<PhaseSpan> {
    let starts: Vec<(String, SystemTime)> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Phase { name } => Some((name.clone(), s.at)),
            _ => None,
        })
        .collect();
    let mut spans: Vec<PhaseSpan> = starts
        .iter()
        .map(|(name, start)| PhaseSpan { name: name.clone(), start: *start, end: None })
        .collect();
    for i in 1..spans.len() {
        spans[i - 1].end = Some(spans[i].start);
    }
    spans
}

/// One node of the supervision tree.
#[derive(Debug, PartialEq)]
pub(super) struct TreeNode {
    pub(super) path: CellPath,
    /// Its Rust type, when a snapshot or an entry gave it.
    pub(super) kind: Option<String>,
    /// Whether it is in the latest snapshot.
    pub(super) live: bool,
    /// Restarts by its metrics in the latest snapshot that has it.
    pub(super) restarts: u64,
    /// `Restart` entries about it in the journal.
    pub(super) journaled_restarts: u64,
    /// Restarts in its intensity window and restarts allowed, for a
    /// supervisor.
    pub(super) intensity: Option<(u32, u32)>,
    /// Its latest decay score.
    pub(super) decay: Option<f64>,
    /// Its mailbox: queued and capacity, in the latest snapshot that has it.
    pub(super) mailbox: Option<(usize, usize)>,
}

/// Whether `path` is one of the runtime's pseudo-paths (`/#breaker/…`)
/// rather than a cell.
fn is_pseudo(path: &CellPath) -> bool {
    path.as_str().starts_with("/#breaker")
}

/// Every cell the snapshots or the journal name, in path order (so a
/// parent comes before its children), with what is known of it.
pub(super) fn tree(signals: &[Signal], snapshots: &[Snapshot]) -> Vec<TreeNode> {
    let mut nodes: BTreeMap<String, TreeNode> = BTreeMap::new();
    let blank = |path: &CellPath| TreeNode {
        path: path.clone(),
        kind: None,
        live: false,
        restarts: 0,
        journaled_restarts: 0,
        intensity: None,
        decay: None,
        mailbox: None,
    };
    for snapshot in snapshots {
        for cell in &snapshot.cells {
            let node = nodes.entry(cell.path.as_str().to_owned()).or_insert_with(|| blank(&cell.path));
            fill(node, cell);
        }
    }
    if let Some(latest) = snapshots.last() {
        for cell in &latest.cells {
            if let Some(node) = nodes.get_mut(cell.path.as_str()) {
                node.live = true;
            }
        }
    }
    for signal in signals {
        let Some(path) = signal.cell.as_ref().filter(|p| !is_pseudo(p) && !p.is_root()) else { continue };
        let node = nodes.entry(path.as_str().to_owned()).or_insert_with(|| blank(path));
        if node.kind.is_none() {
            node.kind = signal.cell_kind.clone();
        }
        if signal.kind.signal_type() == SignalType::Restart {
            node.journaled_restarts += 1;
        }
    }
    // Parents named by no snapshot or entry (supervisors seen only through
    // their children) still get a node, so that the tree has no hole.
    let paths: Vec<CellPath> = nodes.values().map(|n| n.path.clone()).collect();
    for path in paths {
        let mut parent = path.parent();
        while let Some(p) = parent.filter(|p| !p.is_root()) {
            nodes.entry(p.as_str().to_owned()).or_insert_with(|| blank(&p));
            parent = p.parent();
        }
    }
    let mut nodes: Vec<TreeNode> = nodes.into_values().collect();
    nodes.sort_by(|a, b| a.path.cmp(&b.path));
    nodes
}

fn fill(node: &mut TreeNode, cell: &CellSnapshot) {
    node.kind = Some(cell.kind.clone());
    if let Some(metrics) = &cell.metrics {
        node.restarts = metrics.restarts;
        node.mailbox = Some((metrics.mailbox_len, metrics.mailbox_capacity));
    }
    node.intensity = cell.intensity.map(|i| (i.restarts, i.max_restarts));
    node.decay = cell.decay.map(|d| d.score);
}

/// How a plan ended, or where it stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    Proposed,
    Approved,
    Applied,
    Kept,
    Reverted,
    Failed,
    Rejected,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Proposed => "proposed",
            Outcome::Approved => "approved",
            Outcome::Applied => "applied",
            Outcome::Kept => "kept",
            Outcome::Reverted => "reverted",
            Outcome::Failed => "failed",
            Outcome::Rejected => "rejected",
        }
    }
}

/// A recomposition plan, from its journal entries.
#[derive(Debug, PartialEq)]
pub(super) struct PlanView<'a> {
    pub(super) id: u64,
    pub(super) cell: Option<CellPath>,
    pub(super) description: String,
    /// The findings it answers (their entries), in seq order.
    pub(super) findings: Vec<&'a Signal>,
    /// Evidence seqs no longer in the journal (rolled up or unreadable).
    pub(super) missing_evidence: Vec<u64>,
    /// Its steps: when, and the step.
    pub(super) steps: Vec<(SystemTime, &'a PlanStep)>,
    pub(super) outcome: Outcome,
    /// What was expected, as the evaluation states it.
    pub(super) expected: Option<String>,
    /// What was measured, or why it was rejected, failed or reverted.
    pub(super) measured: Option<String>,
    /// When it was applied.
    pub(super) applied: Option<SystemTime>,
}

/// Splits an evaluation's text, `"<measured>; expected <expected>"`, into
/// its two parts.
fn split_measured(text: &str) -> (Option<String>, Option<String>) {
    match text.split_once("; expected ") {
        Some((measured, expected)) => (Some(expected.to_owned()), Some(measured.to_owned())),
        None => (None, Some(text.to_owned())),
    }
}

/// The plans in the journal, by id.
pub(super) fn plans(signals: &[Signal]) -> Vec<PlanView<'_>> {
    let by_seq: BTreeMap<u64, &Signal> = signals.iter().map(|s| (s.seq, s)).collect();
    let mut plans: BTreeMap<u64, PlanView<'_>> = BTreeMap::new();
    for signal in signals {
        let SignalKind::Plan { plan, step, description, evidence, .. } = &signal.kind else { continue };
        let view = plans.entry(*plan).or_insert_with(|| {
            let mut findings = Vec::new();
            let mut missing_evidence = Vec::new();
            for seq in evidence {
                match by_seq.get(seq) {
                    Some(found) => findings.push(*found),
                    None => missing_evidence.push(*seq),
                }
            }
            PlanView {
                id: *plan,
                cell: signal.cell.clone(),
                description: description.clone(),
                findings,
                missing_evidence,
                steps: Vec::new(),
                outcome: Outcome::Proposed,
                expected: None,
                measured: None,
                applied: None,
            }
        });
        view.steps.push((signal.at, step));
        view.outcome = match step {
            PlanStep::Proposed => Outcome::Proposed,
            PlanStep::Approved => Outcome::Approved,
            PlanStep::Applied => {
                view.applied = Some(signal.at);
                Outcome::Applied
            }
            PlanStep::Kept { measured } => {
                (view.expected, view.measured) = split_measured(measured);
                Outcome::Kept
            }
            PlanStep::Reverted { measured } => {
                (view.expected, view.measured) = split_measured(measured);
                Outcome::Reverted
            }
            PlanStep::Failed { reason } => {
                view.measured = Some(reason.clone());
                Outcome::Failed
            }
            PlanStep::Rejected { reason } => {
                view.measured = Some(reason.clone());
                Outcome::Rejected
            }
        };
    }
    plans.into_values().collect()
}

/// One column of the triage board.
#[derive(Debug, PartialEq)]
pub(super) struct TriageColumn<'a> {
    pub(super) category: Category,
    /// Its anomalies still in the journal, oldest first.
    pub(super) signals: Vec<&'a Signal>,
    /// Its anomalies rolled up past the journal's retention.
    pub(super) rolled_up: u64,
}

/// The triage board: the journal's anomalies by category.
pub(super) fn triage<'a>(signals: &'a [Signal], rollups: &[RollUp]) -> Vec<TriageColumn<'a>> {
    CATEGORIES
        .iter()
        .map(|&category| TriageColumn {
            category,
            signals: signals.iter().filter(|s| s.category == Some(category)).collect(),
            rolled_up: rollups.iter().filter(|r| r.category == Some(category)).map(|r| r.count).sum(),
        })
        .collect()
}

/// A failure signature over time.
#[derive(Debug, PartialEq)]
pub(super) struct SignatureTrack {
    pub(super) id: String,
    pub(super) summary: String,
    /// The count it reached, from the journal or the latest snapshot.
    pub(super) count: u64,
    pub(super) cells: BTreeSet<String>,
    /// When it was seen (journal entries): time and count so far.
    pub(super) points: Vec<(SystemTime, u64)>,
}

/// Failure signatures, in the order they first appeared.
pub(super) fn signatures(signals: &[Signal], snapshots: &[Snapshot]) -> Vec<SignatureTrack> {
    let mut tracks: Vec<SignatureTrack> = Vec::new();
    let index_of = |tracks: &mut Vec<SignatureTrack>, id: &str| {
        if let Some(i) = tracks.iter().position(|t| t.id == id) {
            return i;
        }
        tracks.push(SignatureTrack {
            id: id.to_owned(),
            summary: String::new(),
            count: 0,
            cells: BTreeSet::new(),
            points: Vec::new(),
        });
        tracks.len() - 1
    };
    for signal in signals {
        let (id, count) = match &signal.kind {
            SignalKind::NewSignature { signature, summary } => {
                let i = index_of(&mut tracks, signature);
                tracks[i].summary = summary.clone();
                (i, 1)
            }
            SignalKind::Recurrence { signature, count, .. } => (index_of(&mut tracks, signature), *count),
            _ => continue,
        };
        let track = &mut tracks[id];
        track.count = track.count.max(count);
        track.points.push((signal.at, count));
        if let Some(cell) = &signal.cell {
            track.cells.insert(cell.as_str().to_owned());
        }
    }
    if let Some(latest) = snapshots.last() {
        for summary in &latest.signatures {
            let i = index_of(&mut tracks, &summary.id);
            let track = &mut tracks[i];
            if track.summary.is_empty() {
                track.summary = summary.summary.clone();
            }
            track.count = track.count.max(summary.count);
            track.cells.extend(summary.cells.iter().map(|c| c.as_str().to_owned()));
        }
    }
    tracks
}

/// One cell's decay over the snapshots.
#[derive(Debug, PartialEq)]
pub(super) struct DecaySeries {
    pub(super) cell: CellPath,
    /// Time, fragility, cost, drag, score.
    pub(super) points: Vec<(SystemTime, f64, f64, f64, f64)>,
    /// Its baselines in the latest snapshot that has them.
    pub(super) baselines: Option<Baselines>,
    /// Its threshold crossings in the journal: time, upwards.
    pub(super) crossings: Vec<(SystemTime, bool)>,
    /// Its cost against the cost baseline, per snapshot with a baseline:
    /// time, the handling time per message since the previous snapshot
    /// (seconds; `None` for the first, or when nothing was handled in
    /// between), the baseline's mean and deviation (seconds).
    pub(super) cost: Vec<(SystemTime, Option<f64>, f64, f64)>,
}

impl DecaySeries {
    fn peak(&self) -> f64 {
        self.points.iter().map(|p| p.4).fold(0.0, f64::max)
    }
}

/// The decay of the cells the snapshots measured, the [`DECAY_CHARTS_MAX`]
/// whose score peaked highest, in path order; and how many cells were
/// left out.
pub(super) fn decay(signals: &[Signal], snapshots: &[Snapshot]) -> (Vec<DecaySeries>, usize) {
    let mut series: BTreeMap<CellPath, DecaySeries> = BTreeMap::new();
    // Each cell's busy time and messages in the previous snapshot.
    let mut previous: BTreeMap<&CellPath, (f64, u64)> = BTreeMap::new();
    for snapshot in snapshots {
        for cell in &snapshot.cells {
            let work = cell.metrics.as_ref().map(|m| (m.busy.as_secs_f64(), m.handled + m.failed));
            let before = match work {
                Some(work) => previous.insert(&cell.path, work),
                None => previous.remove(&cell.path),
            };
            let Some(decay) = cell.decay else { continue };
            let entry = series.entry(cell.path.clone()).or_insert_with(|| DecaySeries {
                cell: cell.path.clone(),
                points: Vec::new(),
                baselines: None,
                crossings: Vec::new(),
                cost: Vec::new(),
            });
            entry.points.push((snapshot.taken_at, decay.fragility, decay.cost, decay.drag, decay.score));
            if let Some(baselines) = cell.baselines {
                entry.baselines = Some(baselines);
                let measured = match (before, work) {
                    (Some((busy0, n0)), Some((busy1, n1))) if n1 > n0 && busy1 >= busy0 => {
                        Some((busy1 - busy0) / (n1 - n0) as f64)
                    }
                    _ => None,
                };
                entry.cost.push((snapshot.taken_at, measured, baselines.cost.mean, baselines.cost.deviation));
            }
        }
    }
    for signal in signals {
        if let (SignalKind::DecayCrossed { rising, .. }, Some(cell)) = (&signal.kind, &signal.cell) {
            if let Some(entry) = series.get_mut(cell) {
                entry.crossings.push((signal.at, *rising));
            }
        }
    }
    let mut all: Vec<DecaySeries> = series.into_values().collect();
    let left_out = all.len().saturating_sub(DECAY_CHARTS_MAX);
    if left_out > 0 {
        all.sort_by(|a, b| b.peak().total_cmp(&a.peak()).then_with(|| a.cell.cmp(&b.cell)));
        all.truncate(DECAY_CHARTS_MAX);
        all.sort_by(|a, b| a.cell.cmp(&b.cell));
    }
    (all, left_out)
}

/// A flow-map edge's rate before and after a recomposition.
#[derive(Debug, PartialEq)]
pub(super) struct EdgeRates {
    pub(super) from: CellPath,
    pub(super) to: CellPath,
    /// Messages per second in the snapshot before; `None` when the edge
    /// did not exist.
    pub(super) before: Option<f64>,
    /// In the snapshot after.
    pub(super) after: Option<f64>,
}

/// The flow map around one recomposition: a plan applied or reverted.
#[derive(Debug, PartialEq)]
pub(super) struct FlowChange {
    pub(super) plan: u64,
    /// `applied` or `reverted`.
    pub(super) step: &'static str,
    pub(super) at: SystemTime,
    pub(super) description: String,
    /// When the snapshots compared were taken.
    pub(super) before_at: SystemTime,
    pub(super) after_at: SystemTime,
    pub(super) edges: Vec<EdgeRates>,
}

/// When plan `plan`, applied at `applied`, was kept or reverted.
fn verdict(signals: &[Signal], plan: u64, applied: SystemTime) -> Option<SystemTime> {
    signals.iter().find_map(|s| match &s.kind {
        SignalKind::Plan { plan: id, step: PlanStep::Kept { .. } | PlanStep::Reverted { .. }, .. }
            if *id == plan && s.at >= applied =>
        {
            Some(s.at)
        }
        _ => None,
    })
}

/// For each plan applied or reverted, the flow map in the latest snapshot
/// before it against a snapshot after it and before the next recomposition:
/// the first one taken once the plan was judged (kept or reverted), else the
/// latest one. Recompositions without a snapshot on either side are left
/// out.
pub(super) fn flow_changes(signals: &[Signal], snapshots: &[Snapshot]) -> Vec<FlowChange> {
    let events: Vec<(u64, &'static str, SystemTime, &str)> = signals
        .iter()
        .filter_map(|s| match &s.kind {
            SignalKind::Plan { plan, step: PlanStep::Applied, description, .. } => {
                Some((*plan, "applied", s.at, description.as_str()))
            }
            SignalKind::Plan { plan, step: PlanStep::Reverted { .. }, description, .. } => {
                Some((*plan, "reverted", s.at, description.as_str()))
            }
            _ => None,
        })
        .collect();
    let mut changes = Vec::new();
    for (i, &(plan, step, at, description)) in events.iter().enumerate() {
        let until = events.get(i + 1).map(|e| e.2);
        let Some(before) = snapshots.iter().rev().find(|s| s.taken_at <= at) else { continue };
        let between = |s: &&Snapshot| s.taken_at > at && until.is_none_or(|u| s.taken_at <= u);
        // A run's last snapshots may come after its load: the flow right
        // after the verdict is the one the plan made.
        let judged = (step == "applied").then(|| verdict(signals, plan, at)).flatten();
        let first_after_verdict =
            judged.and_then(|v| snapshots.iter().filter(between).find(|s| s.taken_at >= v));
        let Some(after) = first_after_verdict.or_else(|| snapshots.iter().rev().find(between)) else {
            continue;
        };
        let mut edges: BTreeMap<(CellPath, CellPath), (Option<f64>, Option<f64>)> = BTreeMap::new();
        for edge in &before.edges {
            edges.entry((edge.from.clone(), edge.to.clone())).or_default().0 = Some(edge.rate);
        }
        for edge in &after.edges {
            edges.entry((edge.from.clone(), edge.to.clone())).or_default().1 = Some(edge.rate);
        }
        changes.push(FlowChange {
            plan,
            step,
            at,
            description: description.to_owned(),
            before_at: before.taken_at,
            after_at: after.taken_at,
            edges: edges
                .into_iter()
                .map(|((from, to), (before, after))| EdgeRates { from, to, before, after })
                .collect(),
        });
    }
    changes
}

/// The time span the report covers: the earliest and latest time among
/// the entries and snapshots.
pub(super) fn span(signals: &[Signal], snapshots: &[Snapshot]) -> Option<(SystemTime, SystemTime)> {
    let times = signals.iter().map(|s| s.at).chain(snapshots.iter().map(|s| s.taken_at));
    times.fold(None, |span, t| match span {
        None => Some((t, t)),
        Some((first, last)) => Some((first.min(t), last.max(t))),
    })
}
