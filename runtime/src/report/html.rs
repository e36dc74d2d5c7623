//! The page: one self-contained HTML document. Tables and lists are
//! written here, every text through [`escape`]; charts are SVG drawn by
//! `page.js` from the JSON embedded in the page's `report-data` script
//! element (with `<`, `>` and `&` escaped, so no text can end it).

use std::fmt::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::model;
use crate::observe::journal::{LearningMeasures, RollUp, Signal, SignalKind};
use crate::observe::snapshot::Snapshot;

/// The journal entries listed at the end of the page, at most (the
/// latest).
pub(super) const JOURNAL_ROWS_MAX: usize = 2000;

/// Anomalies listed per triage column, at most (the latest).
pub(super) const TRIAGE_ROWS_MAX: usize = 50;

const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// What the page is made of.
pub(super) struct Input<'a> {
    pub(super) title: &'a str,
    pub(super) signals: &'a [Signal],
    pub(super) rollups: &'a [RollUp],
    pub(super) measures: Option<&'a LearningMeasures>,
    pub(super) snapshots: &'a [Snapshot],
}

/// `text` with `&`, `<`, `>`, `"` and `'` replaced by character references:
/// safe in element content and in quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text safe inside a `<script>` element: `<`, `>` and `&` as
/// `\u` escapes (the same string to a JSON parser).
fn script_json(value: &impl Serialize) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    text.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026")
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// `t` in UTC, `YYYY-MM-DD HH:MM:SS.mmm`.
pub(super) fn utc(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// `t` as seconds after `t0`, `+12.345 s`.
pub(super) fn offset(t: SystemTime, t0: SystemTime) -> String {
    match t.duration_since(t0) {
        Ok(d) => format!("+{:.3} s", d.as_secs_f64()),
        Err(e) => format!("-{:.3} s", e.duration().as_secs_f64()),
    }
}

fn duration(d: Option<Duration>) -> String {
    d.map_or_else(|| "—".to_owned(), |d| format!("{:.3} s", d.as_secs_f64()))
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{:.0} %", r * 100.0))
}

fn rate(r: Option<f64>) -> String {
    r.map_or_else(|| "—".to_owned(), |r| format!("{r:.1}/s"))
}

/// The data the script draws charts from.
#[derive(Serialize)]
struct ChartData {
    /// The report's start, in Unix milliseconds; times below are
    /// milliseconds after it.
    t0: f64,
    t1: f64,
    phases: Vec<(String, f64)>,
    recompositions: Vec<(String, f64)>,
    decay: Vec<DecayChart>,
    signatures: Vec<SignatureChart>,
    flow: Vec<FlowChart>,
}

#[derive(Serialize)]
struct DecayChart {
    id: String,
    cell: String,
    /// Time, fragility, cost, drag, score.
    points: Vec<[f64; 5]>,
    crossings: Vec<(f64, bool)>,
    /// Time, cost per message measured since the previous snapshot (µs,
    /// -1 when none), the cost baseline's mean and deviation (µs).
    cost: Vec<[f64; 4]>,
}

#[derive(Serialize)]
struct SignatureChart {
    id: String,
    points: Vec<(f64, u64)>,
}

#[derive(Serialize)]
struct FlowChart {
    id: String,
    /// From, to, rate before, rate after (-1 when the edge did not exist).
    edges: Vec<(String, String, f64, f64)>,
}

/// The page.
pub(super) fn render(input: &Input<'_>) -> String {
    let span = model::span(input.signals, input.snapshots);
    let t0 = span.map_or(UNIX_EPOCH, |s| s.0);
    let phases = model::phases(input.signals);
    let tree = model::tree(input.signals, input.snapshots);
    let plans = model::plans(input.signals);
    let board = model::triage(input.signals, input.rollups);
    let signatures = model::signatures(input.signals, input.snapshots);
    let (decay, decay_left_out) = model::decay(input.signals, input.snapshots);
    let flow = model::flow_changes(input.signals, input.snapshots);
    let ms = |t: SystemTime| unix_ms(t) - unix_ms(t0);

    let data = ChartData {
        t0: unix_ms(t0),
        t1: span.map_or(0.0, |s| ms(s.1)),
        phases: phases.iter().map(|p| (p.name.clone(), ms(p.start))).collect(),
        recompositions: flow.iter().map(|c| (format!("plan {} {}", c.plan, c.step), ms(c.at))).collect(),
        decay: decay
            .iter()
            .enumerate()
            .map(|(i, series)| DecayChart {
                id: format!("decay-{i}"),
                cell: series.cell.as_str().to_owned(),
                points: series.points.iter().map(|p| [ms(p.0), p.1, p.2, p.3, p.4]).collect(),
                crossings: series.crossings.iter().map(|c| (ms(c.0), c.1)).collect(),
                cost: series
                    .cost
                    .iter()
                    .map(|c| [ms(c.0), c.1.map_or(-1.0, |x| x * 1e6), c.2 * 1e6, c.3 * 1e6])
                    .collect(),
            })
            .collect(),
        signatures: signatures
            .iter()
            .enumerate()
            .map(|(i, track)| SignatureChart {
                id: format!("sig-{i}"),
                points: track.points.iter().map(|p| (ms(p.0), p.1)).collect(),
            })
            .collect(),
        flow: flow
            .iter()
            .enumerate()
            .map(|(i, change)| FlowChart {
                id: format!("flow-{i}"),
                edges: change
                    .edges
                    .iter()
                    .map(|e| {
                        (
                            e.from.as_str().to_owned(),
                            e.to.as_str().to_owned(),
                            e.before.unwrap_or(-1.0),
                            e.after.unwrap_or(-1.0),
                        )
                    })
                    .collect(),
            })
            .collect(),
    };

    let mut out = String::with_capacity(64 * 1024);
    let title = escape(input.title);
    // The error hook comes first, so that an error anywhere after it is
    // recorded on the page.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<script>\n\
         window.onerror = function (message) {{\n  \
         document.documentElement.setAttribute('data-script-error', String(message));\n}};\n\
         </script>\n<style>\n{CSS}</style>\n</head>\n<body>\n<header>\n<h1>{title}</h1>\n"
    );
    match span {
        Some((first, last)) => {
            let _ = writeln!(
                out,
                "<p class=\"span\">From <time>{}</time> to <time>{}</time> UTC ({}): {} journal entries, {} snapshots.</p>",
                utc(first),
                utc(last),
                offset(last, first),
                input.signals.len(),
                input.snapshots.len()
            );
        }
        None => out.push_str("<p class=\"span\">The journal is empty and no snapshot was recorded.</p>\n"),
    }
    out.push_str("<p id=\"charts-status\">Charts need the page's script.</p>\n</header>\n<main>\n");

    section_measures(&mut out, input.measures);
    section_phases(&mut out, &phases, t0);
    section_tree(&mut out, &tree);
    section_flow(&mut out, &flow, input.snapshots, t0);
    section_decay(&mut out, &decay, decay_left_out, input.snapshots.is_empty());
    section_signatures(&mut out, &signatures, t0);
    section_triage(&mut out, &board, t0);
    section_plans(&mut out, &plans, t0);
    section_journal(&mut out, input.signals, t0);

    let _ = write!(
        out,
        "</main>\n<script id=\"report-data\" type=\"application/json\">{}</script>\n<script>\n{JS}</script>\n</body>\n</html>\n",
        script_json(&data)
    );
    out
}

fn section_measures(out: &mut String, measures: Option<&LearningMeasures>) {
    out.push_str("<section id=\"measures\">\n<h2>Learning measures</h2>\n");
    let Some(m) = measures else {
        out.push_str("<p class=\"none\">No measures: the journal was not read.</p>\n</section>\n");
        return;
    };
    let rows: [(&str, &str, String); 14] = [
        ("signals", "Anomalies recorded", m.signals.to_string()),
        ("investigated", "Investigations", m.investigated.to_string()),
        ("insights", "Investigations with a novel insight", m.insights.to_string()),
        ("signal-to-insight", "Failure signal-to-insight ratio", ratio(m.signal_to_insight)),
        ("changes", "Changes approved", m.changes.to_string()),
        ("learning-velocity", "Learning velocity (onset to approved change)", duration(m.learning_velocity)),
        ("plans-applied", "Plans applied", m.plans_applied.to_string()),
        ("plans-kept", "Plans kept (architectural improvements)", m.plans_kept.to_string()),
        ("plans-reverted", "Plans reverted", m.plans_reverted.to_string()),
        ("velocity-to-applied", "Onset to plan applied", duration(m.velocity_to_applied)),
        ("velocity-to-kept", "Onset to plan kept", duration(m.velocity_to_kept)),
        ("time-between", "Mean time between transformations", duration(m.time_between_transformations)),
        ("signals-examined", "Signals cited by findings", m.signals_examined.to_string()),
        ("signal-to-kept-plan", "Cited signals behind kept plans", ratio(m.signal_to_kept_plan)),
    ];
    out.push_str("<table class=\"measures\">\n");
    for (id, label, value) in rows {
        let _ = writeln!(out, "<tr data-measure=\"{id}\"><th>{label}</th><td>{}</td></tr>", escape(&value));
    }
    out.push_str("</table>\n</section>\n");
}

fn section_phases(out: &mut String, phases: &[model::PhaseSpan], t0: SystemTime) {
    out.push_str("<section id=\"phases\">\n<h2>Phases</h2>\n");
    if phases.is_empty() {
        out.push_str(
            "<p class=\"none\">No phase was marked (<code>Runtime::mark_phase</code>).</p>\n</section>\n",
        );
        return;
    }
    out.push_str("<ol class=\"phases\">\n");
    for phase in phases {
        let length = match phase.end {
            Some(end) => {
                format!(", {:.3} s", end.duration_since(phase.start).unwrap_or_default().as_secs_f64())
            }
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "<li data-phase=\"{name}\"><strong>{name}</strong> from {}{length}</li>",
            offset(phase.start, t0),
            name = escape(&phase.name)
        );
    }
    out.push_str("</ol>\n</section>\n");
}

fn section_tree(out: &mut String, tree: &[model::TreeNode]) {
    out.push_str("<section id=\"tree\">\n<h2>Supervision tree</h2>\n");
    if tree.is_empty() {
        out.push_str("<p class=\"none\">No cell is known.</p>\n</section>\n");
        return;
    }
    out.push_str("<table class=\"tree\">\n<thead><tr><th>cell</th><th>kind</th><th>restarts</th><th>restart entries</th><th>intensity</th><th>mailbox</th><th>decay</th></tr></thead>\n<tbody>\n");
    for node in tree {
        let depth = node.path.depth().saturating_sub(1);
        let intensity = node.intensity.map_or_else(String::new, |(r, max)| format!("{r}/{max}"));
        let mailbox = node.mailbox.map_or_else(String::new, |(len, cap)| format!("{len}/{cap}"));
        let decay = node.decay.map_or_else(String::new, |d| format!("{d:.2}"));
        let _ = writeln!(
            out,
            "<tr data-cell=\"{path}\" class=\"{class}\"><td style=\"padding-left:{pad}em\">{name}</td><td>{kind}</td>\
             <td data-restarts=\"{restarts}\">{restarts}</td><td>{journaled}</td><td>{intensity}</td><td>{mailbox}</td><td>{decay}</td></tr>",
            path = escape(node.path.as_str()),
            class = if node.live { "live" } else { "gone" },
            pad = depth as f64 * 1.2 + 0.3,
            name = escape(node.path.name()),
            kind = escape(node.kind.as_deref().unwrap_or("")),
            restarts = node.restarts,
            journaled = node.journaled_restarts,
        );
    }
    out.push_str("</tbody>\n</table>\n<p class=\"note\">Cells in grey are not in the latest snapshot.</p>\n</section>\n");
}

fn section_flow(out: &mut String, flow: &[model::FlowChange], snapshots: &[Snapshot], t0: SystemTime) {
    out.push_str("<section id=\"flow\">\n<h2>Flow map around each recomposition</h2>\n");
    if flow.is_empty() {
        let why = if snapshots.is_empty() {
            "No snapshot was recorded (<code>Runtime::record_snapshot</code>)."
        } else {
            "No recomposition has snapshots on both sides."
        };
        let _ = writeln!(out, "<p class=\"none\">{why}</p>");
    }
    for (i, change) in flow.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"flow\" data-plan=\"{}\"><h3>Plan {} {} at {}: {}</h3>\n<p class=\"note\">Snapshots at {} and {}.</p>\n\
             <div class=\"chart\" id=\"flow-{i}\" data-chart=\"flow\"></div>",
            change.plan,
            change.plan,
            change.step,
            offset(change.at, t0),
            escape(&change.description),
            offset(change.before_at, t0),
            offset(change.after_at, t0),
        );
        out.push_str("<table class=\"edges\">\n<thead><tr><th>from</th><th>to</th><th>before</th><th>after</th></tr></thead>\n<tbody>\n");
        for edge in &change.edges {
            let _ = writeln!(
                out,
                "<tr data-edge=\"{from}→{to}\"><td>{from}</td><td>{to}</td><td>{}</td><td>{}</td></tr>",
                rate(edge.before),
                rate(edge.after),
                from = escape(edge.from.as_str()),
                to = escape(edge.to.as_str()),
            );
        }
        out.push_str("</tbody>\n</table>\n</div>\n");
    }
    out.push_str("</section>\n");
}

fn section_decay(out: &mut String, decay: &[model::DecaySeries], left_out: usize, no_snapshots: bool) {
    out.push_str("<section id=\"decay\">\n<h2>Decay over time</h2>\n");
    if decay.is_empty() {
        let why = if no_snapshots {
            "No snapshot was recorded (<code>Runtime::record_snapshot</code>)."
        } else {
            "No cell's decay was measured yet."
        };
        let _ = writeln!(out, "<p class=\"none\">{why}</p>\n</section>");
        return;
    }
    out.push_str(
        "<p class=\"note\">Components and score from 0 to 1; dashed lines: phase boundaries; dotted: \
         recompositions; dots: threshold crossings. Below each: the handling time per message between \
         snapshots against the cost baseline (its mean, and a band of one deviation).</p>\n",
    );
    for (i, series) in decay.iter().enumerate() {
        let _ = writeln!(
            out,
            "<div class=\"decay\" data-cell=\"{path}\"><h3>{path}</h3>\n<div class=\"chart\" id=\"decay-{i}\" data-chart=\"decay\"></div>",
            path = escape(series.cell.as_str())
        );
        if let Some(b) = &series.baselines {
            let _ = writeln!(
                out,
                "<p class=\"baselines\">Baselines: fragility {:.4} ± {:.4} per message; cost {:.1} ± {:.1} µs; \
                 queue delay {:.1} ± {:.1} µs; saturation {:.2}; rejection {:.4}; rate {:.1} ± {:.1}/s ({} windows).</p>",
                b.fragility.mean,
                b.fragility.deviation,
                b.cost.mean * 1e6,
                b.cost.deviation * 1e6,
                b.queue_delay.mean * 1e6,
                b.queue_delay.deviation * 1e6,
                b.saturation.mean,
                b.rejection.mean,
                b.rate.mean,
                b.rate.deviation,
                b.rate.windows,
            );
        }
        out.push_str("</div>\n");
    }
    if left_out > 0 {
        let _ = writeln!(out, "<p class=\"note\">{left_out} cells with lower decay are not charted.</p>");
    }
    out.push_str("</section>\n");
}

fn section_signatures(out: &mut String, signatures: &[model::SignatureTrack], t0: SystemTime) {
    out.push_str("<section id=\"signatures\">\n<h2>Failure signatures</h2>\n");
    if signatures.is_empty() {
        out.push_str("<p class=\"none\">No failure.</p>\n</section>\n");
        return;
    }
    out.push_str("<div class=\"chart\" id=\"signature-timeline\" data-chart=\"signatures\"></div>\n");
    out.push_str("<table class=\"signatures\">\n<thead><tr><th>#</th><th>signature</th><th>count</th><th>first</th><th>last</th><th>cells</th><th>summary</th></tr></thead>\n<tbody>\n");
    for (i, track) in signatures.iter().enumerate() {
        let first = track.points.first().map_or_else(String::new, |p| offset(p.0, t0));
        let last = track.points.last().map_or_else(String::new, |p| offset(p.0, t0));
        let cells: Vec<String> = track.cells.iter().map(|c| escape(c)).collect();
        let _ = writeln!(
            out,
            "<tr data-signature=\"{id}\"><td>{i}</td><td><code>{id}</code></td><td>{}</td><td>{first}</td><td>{last}</td><td>{}</td><td>{}</td></tr>",
            track.count,
            cells.join(", "),
            escape(&track.summary),
            id = escape(&track.id),
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

fn section_triage(out: &mut String, board: &[model::TriageColumn<'_>], t0: SystemTime) {
    out.push_str("<section id=\"triage\">\n<h2>Triage board</h2>\n<div class=\"board\">\n");
    for column in board {
        let count = column.signals.len() as u64 + column.rolled_up;
        let _ = writeln!(
            out,
            "<div class=\"column\" data-category=\"{name}\" data-count=\"{count}\"><h3>{name} <span class=\"count\">{count}</span></h3>",
            name = escape(&column.category.to_string()),
        );
        if column.rolled_up > 0 {
            let _ = writeln!(
                out,
                "<p class=\"note\">{} rolled up past the journal's retention.</p>",
                column.rolled_up
            );
        }
        out.push_str("<ul>\n");
        let skip = column.signals.len().saturating_sub(TRIAGE_ROWS_MAX);
        for signal in &column.signals[skip..] {
            let _ = writeln!(
                out,
                "<li data-seq=\"{}\"><span class=\"seq\">#{}</span> {} <span class=\"cell\">{}</span> {}</li>",
                signal.seq,
                signal.seq,
                offset(signal.at, t0),
                escape(signal.cell.as_ref().map_or("", |c| c.as_str())),
                escape(&signal.kind.to_string()),
            );
        }
        if skip > 0 {
            let _ = writeln!(out, "<li class=\"note\">and {skip} earlier</li>");
        }
        out.push_str("</ul>\n</div>\n");
    }
    out.push_str("</div>\n</section>\n");
}

fn section_plans(out: &mut String, plans: &[model::PlanView<'_>], t0: SystemTime) {
    out.push_str("<section id=\"plans\">\n<h2>Recomposition plans</h2>\n");
    if plans.is_empty() {
        out.push_str("<p class=\"none\">No plan was made.</p>\n</section>\n");
        return;
    }
    for plan in plans {
        let outcome = plan.outcome.as_str();
        let _ = writeln!(
            out,
            "<article class=\"plan {outcome}\" data-plan=\"{id}\" data-outcome=\"{outcome}\">\n\
             <h3>Plan {id} <span class=\"badge\">{outcome}</span> <span class=\"cell\">{cell}</span></h3>\n<p>{}</p>",
            escape(&plan.description),
            id = plan.id,
            cell = escape(plan.cell.as_ref().map_or("", |c| c.as_str())),
        );
        out.push_str("<dl>\n<dt>Evidence</dt><dd><ul>\n");
        for finding in &plan.findings {
            let _ = writeln!(
                out,
                "<li data-seq=\"{}\">#{} {}</li>",
                finding.seq,
                finding.seq,
                escape(&finding.kind.to_string())
            );
            if let SignalKind::Finding { evidence, .. } = &finding.kind {
                if !evidence.is_empty() {
                    let cited: Vec<String> = evidence.iter().map(|s| format!("#{s}")).collect();
                    let _ = writeln!(out, "<li class=\"cited\">citing {}</li>", cited.join(", "));
                }
            }
        }
        for seq in &plan.missing_evidence {
            let _ = writeln!(out, "<li data-seq=\"{seq}\">#{seq} (no longer in the journal)</li>");
        }
        out.push_str("</ul></dd>\n");
        let _ = writeln!(
            out,
            "<dt>Expected</dt><dd class=\"expected\">{}</dd>\n<dt>Measured</dt><dd class=\"measured\">{}</dd>",
            escape(plan.expected.as_deref().unwrap_or("—")),
            escape(plan.measured.as_deref().unwrap_or("—")),
        );
        out.push_str("<dt>Steps</dt><dd><ol class=\"steps\">\n");
        for (at, step) in &plan.steps {
            let _ = writeln!(out, "<li>{} {}</li>", offset(*at, t0), escape(&step.to_string()));
        }
        out.push_str("</ol></dd>\n</dl>\n</article>\n");
    }
    out.push_str("</section>\n");
}

fn section_journal(out: &mut String, signals: &[Signal], t0: SystemTime) {
    let skip = signals.len().saturating_sub(JOURNAL_ROWS_MAX);
    let _ = writeln!(
        out,
        "<section id=\"journal\">\n<h2>Journal</h2>\n<details>\n<summary>{} entries{}</summary>",
        signals.len(),
        if skip > 0 { format!(", the latest {JOURNAL_ROWS_MAX} listed") } else { String::new() }
    );
    out.push_str("<table class=\"journal\">\n<thead><tr><th>#</th><th>time</th><th>cell</th><th>category</th><th>entry</th></tr></thead>\n<tbody>\n");
    for signal in &signals[skip..] {
        let _ = writeln!(
            out,
            "<tr data-seq=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            signal.seq,
            signal.seq,
            offset(signal.at, t0),
            escape(signal.cell.as_ref().map_or("", |c| c.as_str())),
            escape(&signal.category.map_or_else(String::new, |c| c.to_string())),
            escape(&signal.kind.to_string()),
        );
    }
    out.push_str("</tbody>\n</table>\n</details>\n</section>\n");
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::observe::journal::{PlanStep, TopologyChange};
    use crate::observe::snapshot::{CellSnapshot, FlowEdge};
    use crate::observe::{Baselines, Category, Decay, Metrics};
    use crate::path::CellPath;
    use crate::report::Report;

    /// A cell name as hostile as a name may be.
    const HOSTILE: &str = "<script>alert('x')</script>&\"";

    fn t(ms: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_892_800) + Duration::from_millis(ms)
    }

    fn path(text: &str) -> CellPath {
        text.parse().unwrap()
    }

    fn signal(seq: u64, ms: u64, cell: Option<&str>, kind: SignalKind, category: Option<Category>) -> Signal {
        Signal { seq, at: t(ms), cell: cell.map(path), cell_kind: Some("app::Fraud".into()), kind, category }
    }

    fn plan(seq: u64, ms: u64, id: u64, step: PlanStep) -> Signal {
        let kind = SignalKind::Plan {
            plan: id,
            step,
            description: format!("isolate kind Legacy of /app/fraud ({id})"),
            evidence: vec![5],
            onset: Some(t(1000)),
        };
        signal(seq, ms, Some("/app/fraud"), kind, None)
    }

    fn journal() -> Vec<Signal> {
        let hostile = format!("/app/{HOSTILE}");
        vec![
            signal(1, 0, None, SignalKind::Phase { name: "baseline".into() }, None),
            signal(2, 10, Some("/app/fraud"), SignalKind::Topology { change: TopologyChange::Spawned }, None),
            signal(
                3,
                1000,
                Some("/app/fraud"),
                SignalKind::NewSignature {
                    signature: "00000000000000aa".into(),
                    summary: "error in Legacy".into(),
                },
                Some(Category::NewBehavior),
            ),
            signal(
                4,
                1500,
                Some(&hostile),
                SignalKind::Restart { reason: "panic".into() },
                Some(Category::ProcessBreakdown),
            ),
            signal(
                5,
                2000,
                Some("/app/fraud"),
                SignalKind::Finding {
                    finding: 1,
                    rule: "isolate".into(),
                    summary: "Legacy holds 80 %".into(),
                    evidence: vec![3],
                },
                Some(Category::HiddenDependency),
            ),
            signal(6, 2500, None, SignalKind::Phase { name: "chaos".into() }, None),
            plan(7, 3000, 1, PlanStep::Proposed),
            plan(8, 3000, 1, PlanStep::Approved),
            plan(9, 3000, 1, PlanStep::Applied),
            signal(
                10,
                3500,
                Some("/app/fraud"),
                SignalKind::Recurrence {
                    signature: "00000000000000aa".into(),
                    count: 7,
                    first_seen: t(1000),
                },
                Some(Category::NewBehavior),
            ),
            plan(
                11,
                6000,
                1,
                PlanStep::Kept {
                    measured: "p99 latency 40 ms before, 9 ms after; expected p99 latency falls by 30% (met)"
                        .into(),
                },
            ),
            plan(12, 7000, 2, PlanStep::Applied),
            plan(
                13,
                9000,
                2,
                PlanStep::Reverted {
                    measured: "queue delay 1 ms before, 5 ms after; expected queue delay holds: worse".into(),
                },
            ),
        ]
    }

    /// A cell whose messages took 20 µs each.
    fn cell(name: &str, restarts: u64, score: f64, handled: u64) -> CellSnapshot {
        let mut baselines = Baselines::default();
        baselines.cost.mean = 15e-6;
        baselines.cost.deviation = 2e-6;
        CellSnapshot {
            path: path(name),
            kind: "app::Fraud".into(),
            metrics: Some(Metrics {
                restarts,
                mailbox_len: 3,
                mailbox_capacity: 64,
                handled,
                busy: Duration::from_micros(20 * handled),
                ..Metrics::default()
            }),
            decay: Some(Decay {
                fragility: score / 2.0,
                cost: score,
                drag: 0.0,
                score,
                learning: false,
                decaying: false,
                rising_for: 0,
            }),
            baselines: Some(baselines),
            objective: None,
            intensity: None,
        }
    }

    fn edge(from: &str, to: &str, rate: f64) -> FlowEdge {
        FlowEdge { from: path(from), to: path(to), messages: 10, rate, latency_mean: None, latency_max: None }
    }

    fn snapshot(ms: u64, score: f64, edges: Vec<FlowEdge>) -> Snapshot {
        Snapshot {
            taken_at: t(ms),
            cells: vec![
                cell("/app", 0, 0.0, 0),
                cell("/app/fraud", 2, score, ms / 10),
                cell(&format!("/app/{HOSTILE}"), 1, 0.0, 0),
            ],
            edges,
            signatures: Vec::new(),
            journal: Vec::new(),
            journal_total: 13,
            journal_errors: 0,
            rollups: Vec::new(),
            measures: LearningMeasures {
                signals: 4,
                plans_applied: 2,
                plans_kept: 1,
                plans_reverted: 1,
                ..LearningMeasures::default()
            },
        }
    }

    fn report() -> Report {
        Report::new(format!("run of {HOSTILE}")).journal(journal()).snapshots(vec![
            snapshot(2900, 0.5, vec![edge("/app/gateway", "/app/fraud", 100.0)]),
            snapshot(
                5000,
                0.25,
                vec![
                    edge("/app/gateway", "/app/fraud", 100.0),
                    edge("/app/fraud", "/app/fraud/Legacy", 20.0),
                ],
            ),
            snapshot(6900, 0.25, vec![edge("/app/gateway", "/app/fraud", 100.0)]),
            snapshot(8000, 0.75, vec![edge("/app/gateway", "/app/fraud", 50.0)]),
        ])
    }

    #[test]
    fn every_text_is_escaped_so_a_cell_name_cannot_inject_markup() {
        let html = report().render();
        assert!(!html.contains("<script>alert"), "a raw name reached the page");
        assert!(
            html.contains("<title>run of &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;</title>")
        );
        assert!(
            html.contains("data-cell=\"/app/&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;\"")
        );
        // In the embedded JSON too: no `<` that could end the script element.
        let data = html.split("<script id=\"report-data\" type=\"application/json\">").nth(1).unwrap();
        let data = data.split("</script>").next().unwrap();
        assert!(!data.contains('<'));
        assert!(data.contains("\\u003cscript\\u003ealert('x')\\u003c/script\\u003e\\u0026\\\""));
        assert_eq!(html.matches("<script").count(), 3, "the error hook, the data and the page script");
    }

    #[test]
    fn the_page_is_one_self_contained_document() {
        let html = report().render();
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.ends_with("</html>\n"));
        for external in ["src=", "href=", "http://", "https://", "@import", "url("] {
            let found = html.replace("http://www.w3.org/2000/svg", "");
            assert!(!found.contains(external), "{external} in the page");
        }
        // The error hook is installed before anything else runs.
        let hook = html.find("window.onerror").unwrap();
        assert!(hook < html.find("<style>").unwrap());
    }

    #[test]
    fn phases_are_listed_with_their_start_and_length_and_marked_for_the_charts() {
        let html = report().render();
        assert!(html
            .contains("<li data-phase=\"baseline\"><strong>baseline</strong> from +0.000 s, 2.500 s</li>"));
        assert!(html.contains("<li data-phase=\"chaos\"><strong>chaos</strong> from +2.500 s</li>"));
        assert!(html.contains("\"phases\":[[\"baseline\",0.0],[\"chaos\",2500.0]]"));
    }

    #[test]
    fn the_tree_lists_every_cell_with_its_restarts_parents_first() {
        let html = report().render();
        let app = html.find("<tr data-cell=\"/app\"").unwrap();
        let fraud = html.find("<tr data-cell=\"/app/fraud\"").unwrap();
        assert!(app < fraud);
        assert!(html.contains("<tr data-cell=\"/app/fraud\" class=\"live\"><td style=\"padding-left:1.5em\">fraud</td><td>app::Fraud</td><td data-restarts=\"2\">2</td><td>0</td><td></td><td>3/64</td><td>0.75</td></tr>"));
        // The hostile cell: one restart by its metrics, one in the journal.
        assert!(html.contains("<td data-restarts=\"1\">1</td><td>1</td>"));
    }

    #[test]
    fn the_flow_map_shows_each_edge_before_and_after_each_recomposition() {
        let html = report().render();
        // Plan 1 applied at 3 s: the snapshot at 2.9 s against the latest
        // before the next recomposition (plan 2 at 7 s), at 6.9 s.
        let plan1 = html.split("<div class=\"flow\" data-plan=\"1\">").nth(1).unwrap();
        let plan1 = plan1.split("</div>\n</div>").next().unwrap();
        assert!(plan1.contains("Snapshots at +2.900 s and +6.900 s."), "{plan1}");
        assert!(plan1.contains("<td>/app/gateway</td><td>/app/fraud</td><td>100.0/s</td><td>100.0/s</td>"));
        // Plan 2 applied at 7 s, reverted at 9 s: no snapshot after the
        // revert, so that one is left out.
        assert!(html.contains("<div class=\"flow\" data-plan=\"2\"><h3>Plan 2 applied at +7.000 s"));
        assert_eq!(html.matches("<div class=\"flow\"").count(), 2);
        assert!(html.contains("<td>/app/gateway</td><td>/app/fraud</td><td>100.0/s</td><td>50.0/s</td>"));
        assert!(html.contains("\"edges\":[[\"/app/gateway\",\"/app/fraud\",100.0,50.0]]"));
    }

    #[test]
    fn the_flow_after_a_plan_is_the_first_snapshot_once_it_was_judged_not_an_idle_one_later() {
        // Plan 1 applied at 3 s, kept at 6 s; the load stops before the
        // snapshot at 20 s, which must not stand for the plan's effect.
        let signals = vec![
            plan(1, 3000, 1, PlanStep::Applied),
            plan(2, 6000, 1, PlanStep::Kept { measured: "met".into() }),
        ];
        let snapshots = vec![
            snapshot(2900, 0.5, vec![edge("/app/gateway", "/app/fraud", 100.0)]),
            snapshot(4000, 0.5, vec![edge("/app/gateway", "/app/fraud", 90.0)]),
            snapshot(6500, 0.25, vec![edge("/app/gateway", "/app/fraud", 80.0)]),
            snapshot(20_000, 0.0, vec![edge("/app/gateway", "/app/fraud", 0.0)]),
        ];
        let changes = model::flow_changes(&signals, &snapshots);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].before_at, changes[0].after_at), (t(2900), t(6500)));
        assert_eq!((changes[0].edges[0].before, changes[0].edges[0].after), (Some(100.0), Some(80.0)));
        // Not judged yet: the latest snapshot after it.
        let changes = model::flow_changes(&signals[..1], &snapshots);
        assert_eq!(changes[0].after_at, t(20_000));
    }

    #[test]
    fn decay_is_charted_per_cell_from_every_snapshot() {
        let html = report().render();
        assert_eq!(html.matches("data-chart=\"decay\"").count(), 3);
        assert!(html.contains(
            "\"cell\":\"/app/fraud\",\"points\":[[2900.0,0.25,0.5,0.0,0.5],[5000.0,0.125,0.25,0.0,0.25],[6900.0,0.125,0.25,0.0,0.25],[8000.0,0.375,0.75,0.0,0.75]]"
        ));
        assert!(html.contains(
            "<p class=\"baselines\">Baselines: fragility 0.0000 ± 0.0000 per message; cost 15.0 ± 2.0 µs;"
        ));
    }

    #[test]
    fn the_cost_between_snapshots_is_set_against_the_cost_baseline() {
        let report = report();
        let (series, left_out) = model::decay(&report.signals, &report.snapshots);
        assert_eq!(left_out, 0);
        let fraud = series.iter().find(|s| s.cell.as_str() == "/app/fraud").unwrap();
        assert_eq!(fraud.cost.len(), 4);
        assert_eq!(fraud.cost[0], (t(2900), None, 15e-6, 2e-6), "no snapshot before the first");
        for (at, measured, mean, deviation) in &fraud.cost[1..] {
            let measured = measured.unwrap_or_else(|| panic!("measured at {at:?}"));
            assert!((measured - 20e-6).abs() < 1e-12, "{measured}");
            assert_eq!((*mean, *deviation), (15e-6, 2e-6));
        }
        // Nothing handled between snapshots: nothing measured.
        let idle = series.iter().find(|s| s.cell.as_str() == "/app").unwrap();
        assert!(idle.cost.iter().all(|c| c.1.is_none()));
    }

    #[test]
    fn the_triage_board_has_the_seeds_four_categories_with_their_anomalies() {
        let html = report().render();
        for (category, count) in [
            ("New Behavior Pattern", 2),
            ("Hidden Dependency Exposed", 1),
            ("Architectural Debt Indicator", 0),
            ("Process Breakdown", 1),
        ] {
            assert!(
                html.contains(&format!("data-category=\"{category}\" data-count=\"{count}\"")),
                "{category}"
            );
        }
        assert!(html.contains("<li data-seq=\"10\"><span class=\"seq\">#10</span> +3.500 s <span class=\"cell\">/app/fraud</span> signature 00000000000000aa seen again (7)</li>"));
    }

    #[test]
    fn each_plan_shows_its_evidence_expected_and_measured_effect_and_outcome() {
        let html = report().render();
        let kept =
            html.split("<article class=\"plan kept\" data-plan=\"1\" data-outcome=\"kept\">").nth(1).unwrap();
        let kept = kept.split("</article>").next().unwrap();
        assert!(kept.contains("<li data-seq=\"5\">#5 finding 1 (isolate): Legacy holds 80 %</li>"));
        assert!(kept.contains("<li class=\"cited\">citing #3</li>"));
        assert!(kept.contains("<dd class=\"expected\">p99 latency falls by 30% (met)</dd>"));
        assert!(kept.contains("<dd class=\"measured\">p99 latency 40 ms before, 9 ms after</dd>"));
        assert_eq!(kept.matches("<li>+3.000 s").count(), 3);
        assert!(kept.contains("<li>+6.000 s kept: "));
        let reverted = html.split("data-plan=\"2\" data-outcome=\"reverted\">").nth(1).unwrap();
        assert!(reverted.contains("<dd class=\"expected\">queue delay holds: worse</dd>"));
    }

    #[test]
    fn signatures_are_charted_over_time_with_their_counts() {
        let html = report().render();
        assert!(html.contains("<tr data-signature=\"00000000000000aa\"><td>0</td><td><code>00000000000000aa</code></td><td>7</td><td>+1.000 s</td><td>+3.500 s</td><td>/app/fraud</td><td>error in Legacy</td></tr>"));
        assert!(html.contains("\"signatures\":[{\"id\":\"sig-0\",\"points\":[[1000.0,1],[3500.0,7]]}]"));
    }

    #[test]
    fn the_measures_are_the_latest_snapshots_unless_given() {
        let html = report().render();
        assert!(html.contains(
            "<tr data-measure=\"plans-kept\"><th>Plans kept (architectural improvements)</th><td>1</td></tr>"
        ));
        assert!(html.contains(
            "<tr data-measure=\"signal-to-insight\"><th>Failure signal-to-insight ratio</th><td>—</td></tr>"
        ));
        let given =
            report().measures(LearningMeasures { plans_kept: 5, ..LearningMeasures::default() }).render();
        assert!(given.contains("<th>Plans kept (architectural improvements)</th><td>5</td>"));
    }

    #[test]
    fn an_empty_report_says_what_is_missing() {
        let html = Report::new("empty").render();
        assert!(html.contains("The journal is empty and no snapshot was recorded."));
        assert!(html.contains("No phase was marked"));
        assert!(html.contains("No snapshot was recorded (<code>Runtime::record_snapshot</code>)."));
        assert!(html.contains("No plan was made."));
        assert!(html.contains("\"decay\":[],\"signatures\":[],\"flow\":[]"));
    }

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(t(1234)), "2025-12-05 00:00:01.234");
        assert_eq!(utc(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29 00:00:00.000");
        assert_eq!(offset(t(500), t(2000)), "-1.500 s");
    }
}
