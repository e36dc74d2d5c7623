//! What each command reads from the data directory and prints: as text
//! for a person, or as JSON (`--json`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use cellrt::report::DataDir;
use cellrt::{PlanStep, Signal, SignalKind, SignalType, Snapshot};
use serde::Serialize;

use crate::Failure;

/// How answers are printed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Out {
    pub(crate) json: bool,
}

impl Out {
    /// Prints `value` as JSON, or `text()` as it is.
    fn print<T: Serialize>(self, value: &T, text: impl FnOnce() -> String) -> Result<(), Failure> {
        let mut stdout = std::io::stdout().lock();
        let written = if self.json {
            serde_json::to_writer_pretty(&mut stdout, value)
                .map_err(|err| err.to_string())
                .and_then(|()| writeln!(stdout).map_err(|err| err.to_string()))
        } else {
            stdout.write_all(text().as_bytes()).map_err(|err| err.to_string())
        };
        written.map_err(Failure::Output)
    }
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// One cell, as `cells` and `tree` show it.
#[derive(Debug, Serialize)]
struct CellRow {
    path: String,
    kind: Option<String>,
    /// Messages queued when the snapshot was taken.
    mailbox_len: Option<usize>,
    mailbox_capacity: Option<usize>,
    /// The decay score.
    decay: Option<f64>,
    /// New incarnations, by the cell's metrics.
    restarts: Option<u64>,
    /// `restart` entries about it in the journal.
    restart_entries: u64,
}

/// What the cells are known from.
#[derive(Debug, Serialize)]
struct Cells {
    /// When the snapshot the rows come from was taken; `None` when none
    /// was recorded and the rows come from the journal alone.
    snapshot_at: Option<String>,
    cells: Vec<CellRow>,
}

fn read_cells(dir: &DataDir) -> Result<Cells, Failure> {
    let journal = dir.journal().map_err(Failure::DataDir)?;
    let (snapshots, _) = dir.snapshots().map_err(Failure::DataDir)?;
    let mut restarts: BTreeMap<String, u64> = BTreeMap::new();
    let mut kinds: BTreeMap<String, Option<String>> = BTreeMap::new();
    for signal in &journal.signals {
        let Some(cell) = signal.cell.as_ref().filter(|c| !c.as_str().starts_with("/#")) else { continue };
        let kind = kinds.entry(cell.as_str().to_owned()).or_default();
        if kind.is_none() {
            kind.clone_from(&signal.cell_kind);
        }
        if signal.kind.signal_type() == SignalType::Restart {
            *restarts.entry(cell.as_str().to_owned()).or_default() += 1;
        }
    }
    let entries = |path: &str| restarts.get(path).copied().unwrap_or(0);
    let latest: Option<&Snapshot> = snapshots.last();
    let cells = match latest {
        Some(snapshot) => snapshot
            .cells
            .iter()
            .map(|cell| CellRow {
                path: cell.path.as_str().to_owned(),
                kind: Some(cell.kind.clone()),
                mailbox_len: cell.metrics.as_ref().map(|m| m.mailbox_len),
                mailbox_capacity: cell.metrics.as_ref().map(|m| m.mailbox_capacity),
                decay: cell.decay.map(|d| d.score),
                restarts: cell.metrics.as_ref().map(|m| m.restarts),
                restart_entries: entries(cell.path.as_str()),
            })
            .collect(),
        None => kinds
            .iter()
            .map(|(path, kind)| CellRow {
                path: path.clone(),
                kind: kind.clone(),
                mailbox_len: None,
                mailbox_capacity: None,
                decay: None,
                restarts: None,
                restart_entries: entries(path),
            })
            .collect(),
    };
    Ok(Cells { snapshot_at: latest.map(|s| time(s.taken_at)), cells })
}

fn source(cells: &Cells) -> String {
    match &cells.snapshot_at {
        Some(at) => format!("From the snapshot of {at}.\n"),
        None => "No snapshot was recorded: cells as the journal names them.\n".to_owned(),
    }
}

fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `cells`: a table of every cell.
pub(crate) fn cells(dir: &DataDir, out: Out) -> Result<(), Failure> {
    let cells = read_cells(dir)?;
    out.print(&cells, || {
        let rows: Vec<[String; 5]> = cells
            .cells
            .iter()
            .map(|c| {
                let mailbox = match (c.mailbox_len, c.mailbox_capacity) {
                    (Some(len), Some(cap)) => format!("{len}/{cap}"),
                    _ => "-".to_owned(),
                };
                let restarts = format!("{} ({} journaled)", or_dash(c.restarts), c.restart_entries);
                [
                    c.path.clone(),
                    c.kind.clone().unwrap_or_default(),
                    mailbox,
                    or_dash(c.decay.map(|d| format!("{d:.2}"))),
                    restarts,
                ]
            })
            .collect();
        let mut text = source(&cells);
        text.push_str(&table(["PATH", "KIND", "MAILBOX", "DECAY", "RESTARTS"], &rows));
        text
    })
}

/// `tree`: the cells as a tree of paths.
pub(crate) fn tree(dir: &DataDir, out: Out) -> Result<(), Failure> {
    let mut cells = read_cells(dir)?;
    cells.cells.sort_by(|a, b| a.path.cmp(&b.path));
    out.print(&cells, || {
        let mut text = source(&cells);
        for cell in &cells.cells {
            let depth = cell.path.matches('/').count().saturating_sub(1);
            let name = cell.path.rsplit('/').next().unwrap_or("");
            let restarts = cell.restarts.unwrap_or(0).max(cell.restart_entries);
            text.push_str(&format!(
                "{}{name}  {}{}\n",
                "  ".repeat(depth),
                cell.kind.as_deref().unwrap_or("?"),
                if restarts > 0 { format!("  restarts {restarts}") } else { String::new() }
            ));
        }
        text
    })
}

/// One failure signature.
#[derive(Debug, Serialize)]
struct SignatureRow {
    id: String,
    summary: String,
    count: u64,
    first_seen: Option<String>,
    last_seen: Option<String>,
    cells: Vec<String>,
}

/// `signatures`: every failure signature, the most frequent first.
pub(crate) fn signatures(dir: &DataDir, out: Out) -> Result<(), Failure> {
    let journal = dir.journal().map_err(Failure::DataDir)?;
    let (snapshots, _) = dir.snapshots().map_err(Failure::DataDir)?;
    let mut rows: Vec<SignatureRow> = Vec::new();
    fn row<'a>(rows: &'a mut Vec<SignatureRow>, id: &str) -> &'a mut SignatureRow {
        let at = rows.iter().position(|r| r.id == id).unwrap_or_else(|| {
            rows.push(SignatureRow {
                id: id.to_owned(),
                summary: String::new(),
                count: 0,
                first_seen: None,
                last_seen: None,
                cells: Vec::new(),
            });
            rows.len() - 1
        });
        &mut rows[at]
    }
    for signal in &journal.signals {
        let (id, count, summary) = match &signal.kind {
            SignalKind::NewSignature { signature, summary } => (signature, 1, Some(summary)),
            SignalKind::Recurrence { signature, count, .. } => (signature, *count, None),
            _ => continue,
        };
        let row = row(&mut rows, id);
        if let Some(summary) = summary {
            row.summary.clone_from(summary);
        }
        row.count = row.count.max(count);
        row.first_seen.get_or_insert_with(|| time(signal.at));
        row.last_seen = Some(time(signal.at));
        if let Some(cell) = &signal.cell {
            if !row.cells.iter().any(|c| c == cell.as_str()) {
                row.cells.push(cell.as_str().to_owned());
            }
        }
    }
    if let Some(latest) = snapshots.last() {
        for summary in &latest.signatures {
            let row = row(&mut rows, &summary.id);
            if row.summary.is_empty() {
                row.summary.clone_from(&summary.summary);
            }
            row.count = row.count.max(summary.count);
            row.first_seen.get_or_insert_with(|| time(summary.first_seen));
            row.last_seen = Some(time(summary.last_seen));
            for cell in &summary.cells {
                if !row.cells.iter().any(|c| c == cell.as_str()) {
                    row.cells.push(cell.as_str().to_owned());
                }
            }
        }
    }
    rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.id.cmp(&b.id)));
    out.print(&rows, || {
        let table_rows: Vec<[String; 5]> = rows
            .iter()
            .map(|r| {
                [
                    r.id.clone(),
                    r.count.to_string(),
                    or_dash(r.last_seen.clone()),
                    r.cells.join(","),
                    r.summary.clone(),
                ]
            })
            .collect();
        table(["SIGNATURE", "COUNT", "LAST SEEN", "CELLS", "SUMMARY"], &table_rows)
    })
}

/// `journal`: entries, oldest first, filtered.
pub(crate) fn journal(
    dir: &DataDir,
    out: Out,
    from: Option<SystemTime>,
    after_seq: Option<u64>,
    limit: Option<usize>,
) -> Result<(), Failure> {
    let journal = dir.journal().map_err(Failure::DataDir)?;
    let mut signals: Vec<Signal> = journal
        .signals
        .into_iter()
        .filter(|s| from.is_none_or(|from| s.at >= from) && after_seq.is_none_or(|seq| s.seq > seq))
        .collect();
    if let Some(limit) = limit {
        signals.drain(..signals.len().saturating_sub(limit));
    }
    out.print(&signals, || {
        signals
            .iter()
            .map(|s| {
                format!(
                    "#{} {} {} [{}] {}\n",
                    s.seq,
                    time(s.at),
                    s.cell.as_ref().map_or("-", |c| c.as_str()),
                    s.category.map_or_else(|| "act".to_owned(), |c| c.to_string()),
                    s.kind
                )
            })
            .collect()
    })
}

/// One plan, from its journal entries.
#[derive(Debug, Serialize)]
struct PlanRow {
    plan: u64,
    cell: Option<String>,
    description: String,
    /// Its latest step: proposed, approved, applied, kept, reverted,
    /// failed or rejected.
    outcome: String,
    /// Each step: when, and what.
    steps: Vec<(String, String)>,
}

/// A plan stored for the next run.
#[derive(Debug, Serialize)]
struct KeptRow {
    cell: String,
    plan: u64,
    actions: Vec<String>,
}

#[derive(Debug, Serialize)]
struct Plans {
    plans: Vec<PlanRow>,
    kept_for_next_run: Vec<KeptRow>,
}

fn outcome(step: &PlanStep) -> &'static str {
    match step {
        PlanStep::Proposed => "proposed",
        PlanStep::Approved => "approved",
        PlanStep::Applied => "applied",
        PlanStep::Kept { .. } => "kept",
        PlanStep::Reverted { .. } => "reverted",
        PlanStep::Failed { .. } => "failed",
        PlanStep::Rejected { .. } => "rejected",
        _ => "other",
    }
}

/// `plans`: every plan the journal holds, and those kept for the next run.
pub(crate) fn plans(dir: &DataDir, out: Out) -> Result<(), Failure> {
    let journal = dir.journal().map_err(Failure::DataDir)?;
    let mut plans: BTreeMap<u64, PlanRow> = BTreeMap::new();
    for signal in &journal.signals {
        let SignalKind::Plan { plan, step, description, .. } = &signal.kind else { continue };
        let row = plans.entry(*plan).or_insert_with(|| PlanRow {
            plan: *plan,
            cell: signal.cell.as_ref().map(|c| c.as_str().to_owned()),
            description: description.clone(),
            outcome: String::new(),
            steps: Vec::new(),
        });
        row.outcome = outcome(step).to_owned();
        row.steps.push((time(signal.at), step.to_string()));
    }
    let kept = dir
        .kept_plans()
        .map_err(Failure::DataDir)?
        .into_iter()
        .map(|k| KeptRow {
            cell: k.cell.as_str().to_owned(),
            plan: k.plan,
            actions: k.actions.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let plans = Plans { plans: plans.into_values().collect(), kept_for_next_run: kept };
    out.print(&plans, || {
        let mut text = String::new();
        if plans.plans.is_empty() {
            text.push_str("No plan in the journal.\n");
        }
        for plan in &plans.plans {
            text.push_str(&format!(
                "plan {} [{}] {}: {}\n",
                plan.plan,
                plan.outcome,
                plan.cell.as_deref().unwrap_or("-"),
                plan.description
            ));
            for (at, step) in &plan.steps {
                text.push_str(&format!("  {at} {step}\n"));
            }
        }
        for kept in &plans.kept_for_next_run {
            text.push_str(&format!(
                "kept for the next run: {} plan {}: {}\n",
                kept.cell,
                kept.plan,
                kept.actions.join("; ")
            ));
        }
        text
    })
}

/// What `report` wrote.
#[derive(Debug, Serialize)]
struct Written {
    path: String,
    bytes: usize,
    journal_entries: usize,
    snapshots: usize,
}

/// `report`: writes the HTML report to `output`.
pub(crate) fn report(dir: &DataDir, out: Out, output: &Path) -> Result<(), Failure> {
    let report = dir.report().map_err(Failure::DataDir)?;
    let html = report.render();
    std::fs::write(output, &html).map_err(|err| {
        Failure::Report(cellrt::report::ReportError::Write {
            path: output.to_owned(),
            reason: err.to_string(),
        })
    })?;
    let written = Written {
        path: output.display().to_string(),
        bytes: html.len(),
        journal_entries: report.signals().len(),
        snapshots: report.snapshot_count(),
    };
    out.print(&written, || {
        format!(
            "Wrote {} ({} bytes: {} journal entries, {} snapshots).\n",
            written.path, written.bytes, written.journal_entries, written.snapshots
        )
    })
}

#[derive(Debug, Serialize)]
struct TreeRow {
    name: String,
    entries: u64,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct Verified {
    clean: bool,
    trees: Vec<TreeRow>,
    /// Quarantined states: key (`<path>@<time>`) and size in bytes.
    quarantined: Vec<(String, usize)>,
}

/// `verify`: every tree read through, quarantined states listed; fails
/// (exit code 1) when anything is wrong.
pub(crate) fn verify(dir: &DataDir, out: Out) -> Result<(), Failure> {
    let verification = dir.verify().map_err(Failure::DataDir)?;
    let verified = Verified {
        clean: verification.is_clean(),
        trees: verification
            .trees
            .iter()
            .map(|t| TreeRow { name: t.name.clone(), entries: t.entries, problem: t.problem.clone() })
            .collect(),
        quarantined: verification.quarantined.clone(),
    };
    out.print(&verified, || {
        let mut text = String::new();
        for tree in &verified.trees {
            match &tree.problem {
                None => text.push_str(&format!("ok      {} ({} entries)\n", tree.name, tree.entries)),
                Some(problem) => {
                    text.push_str(&format!("PROBLEM {} ({} entries): {problem}\n", tree.name, tree.entries))
                }
            }
        }
        for (key, bytes) in &verified.quarantined {
            text.push_str(&format!("QUARANTINED {key} ({bytes} bytes)\n"));
        }
        let problems = verified.trees.iter().filter(|t| t.problem.is_some()).count();
        text.push_str(&format!(
            "{} trees, {problems} with problems, {} quarantined states.\n",
            verified.trees.len(),
            verified.quarantined.len()
        ));
        text
    })?;
    if verified.clean {
        Ok(())
    } else {
        Err(Failure::Unsound)
    }
}

/// `rows` under `header`, columns padded to their widest cell but the last.
fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}
