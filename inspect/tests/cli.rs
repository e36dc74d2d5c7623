//! `cellrt-inspect` run against data directories made here: a stopped
//! run's, a running application's, a foreign one, a missing one.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cellrt::{
    Action, Cell, CellConfig, CellError, ChildSpec, Context, Durability, Durable, Expected, JournalQuery,
    Metric, Mode, Recomposable, RecomposeConfig, Recomposer, SplitBy, SupervisorSpec,
};
use serde_json::Value;

#[allow(dead_code, unreachable_pub)]
#[path = "../../runtime/tests/common/gateway.rs"]
mod gateway;

use gateway::{runtime, Gateway, Worker};

/// A durable sum.
struct Ledger(u64);

impl Cell for Ledger {
    type Message = u64;
    fn handle(&mut self, _: &mut Context<Self>, n: u64) -> Result<(), CellError> {
        self.0 += n;
        Ok(())
    }
}

impl Durable for Ledger {
    type State = u64;
    fn state(&self) -> &u64 {
        &self.0
    }
    fn restore(sum: u64) -> Self {
        Ledger(sum)
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A supervised worker behind a gateway, a durable ledger, two phases, a
/// split of the worker approved by hand, snapshots recorded: then stopped.
/// Returns the number of journal entries the run saw.
fn stopped_run(dir: &Path) -> usize {
    let runtime = runtime(dir);
    let app = SupervisorSpec::new("app")
        .intensity(1000, Duration::from_secs(60))
        .child(ChildSpec::new("worker", || Worker))
        .child(ChildSpec::durable("ledger", Durability::PerMessage, || Ledger(0)));
    let app = runtime.start_supervisor(app, Duration::from_secs(10)).unwrap();
    let worker = app.child::<u32>("worker").unwrap();
    let ledger = app.child::<u64>("ledger").unwrap();
    let gateway = runtime.spawn_with(CellConfig::named("gateway"), Gateway(worker.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Propose)).unwrap();
    engine.manage(&worker, Recomposable::new(|| Worker).stateless()).unwrap();
    let phase = |name: &str, from: u32| {
        runtime.mark_phase(name).unwrap();
        for round in 0..3 {
            for n in 0..20 {
                gateway.send(from + round * 20 + n).unwrap();
            }
            ledger.send(1).unwrap();
            std::thread::sleep(Duration::from_millis(60));
            runtime.record_snapshot().unwrap();
        }
    };
    phase("baseline", 0);
    let split = Action::Split { cell: worker.path().clone(), into: 2, by: SplitBy::Stateless };
    let plan = engine.propose(vec![split], Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    engine.approve(plan).unwrap();
    phase("split", 1000);
    wait_for("every message handled", || {
        let snapshot = runtime.snapshot();
        let worked = snapshot.cells.iter().filter(|c| c.path.as_str().starts_with("/app/worker"));
        worked.filter_map(|c| c.metrics.as_ref()).map(|m| m.handled + m.failed).sum::<u64>() == 120
    });
    runtime.record_snapshot().unwrap();
    let seen = runtime.journal(&JournalQuery::new()).len();
    runtime.shutdown(Duration::from_secs(10));
    seen
}

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cellrt-inspect")).args(args).output().expect("cellrt-inspect runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs a command that must succeed and returns what it printed.
fn ok(args: &[&str]) -> String {
    let output = inspect(args);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
    stdout(&output)
}

fn json(args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    serde_json::from_str(&ok(&args)).expect("the answer is JSON")
}

#[test]
fn every_command_reads_a_stopped_runs_directory_as_text_and_as_json() {
    let data = tempfile::tempdir().unwrap();
    let seen = stopped_run(data.path());
    let dir = data.path().to_str().unwrap();

    let tree = ok(&[dir, "tree"]);
    assert!(tree.starts_with("From the snapshot of "), "{tree}");
    assert!(tree.contains("\napp  "), "{tree}");
    assert!(tree.contains("\n  ledger  "), "{tree}");
    assert!(tree.contains("\ngateway  "), "{tree}");
    let worker_line = tree.lines().find(|l| l.starts_with("  worker  ")).expect("the worker in the tree");
    assert!(worker_line.contains("restarts "), "the worker failed and was restarted: {worker_line}");

    let cells = ok(&[dir, "cells"]);
    let header = cells.lines().nth(1).unwrap();
    assert!(header.starts_with("PATH") && header.ends_with("RESTARTS"), "{header}");
    assert!(cells.lines().any(|l| l.starts_with("/app/ledger ")), "{cells}");
    let rows = json(&[dir, "cells"]);
    let cells = rows["cells"].as_array().unwrap();
    let ledger = cells.iter().find(|c| c["path"] == "/app/ledger").unwrap();
    assert_eq!(ledger["mailbox_len"], 0);
    assert_eq!(ledger["restarts"], 0);
    let worker = cells.iter().find(|c| c["path"] == "/app/worker").unwrap();
    assert!(worker["restart_entries"].as_u64().unwrap() >= 1, "{worker}");

    let signatures = json(&[dir, "signatures"]);
    let declined = &signatures.as_array().unwrap()[0];
    assert!(declined["summary"].as_str().unwrap().contains("card"), "{declined}");
    assert_eq!(declined["cells"][0], "/app/worker");
    assert!(ok(&[dir, "signatures"]).starts_with("SIGNATURE"));

    let journal = json(&[dir, "journal"]);
    let entries = journal.as_array().unwrap();
    assert!(entries.len() >= seen, "every entry the run saw");
    let seqs: Vec<u64> = entries.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=entries.len() as u64).collect::<Vec<_>>());
    let text = ok(&[dir, "journal"]);
    assert_eq!(text.lines().count(), entries.len());
    assert!(text.contains("[act] phase baseline began\n"), "{text}");
    let tail = json(&[dir, "journal", "--after-seq", "3", "--limit", "2"]);
    let last = entries.len() as u64;
    assert_eq!(
        tail.as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>(),
        [last - 1, last]
    );
    assert_eq!(json(&[dir, "journal", "--since", "1h"]).as_array().unwrap().len(), entries.len());
    assert_eq!(
        json(&[dir, "journal", "--since", "2000-01-01T00:00:00Z"]).as_array().unwrap().len(),
        entries.len()
    );
    assert_eq!(json(&[dir, "journal", "--since", "2999-01-01T00:00:00Z"]).as_array().unwrap().len(), 0);
    let third = entries[2]["at"].clone();
    let third: std::time::SystemTime = serde_json::from_value(third).unwrap();
    let since = humantime::format_rfc3339_nanos(third).to_string();
    let from_third = json(&[dir, "journal", "--since", &since]);
    assert_eq!(from_third[0]["seq"], entries.iter().find(|e| e["at"] == entries[2]["at"]).unwrap()["seq"]);
    assert_eq!(json(&[dir, "journal", "--after-seq", &last.to_string()]).as_array().unwrap().len(), 0);

    let plans = json(&[dir, "plans"]);
    let plan = &plans["plans"][0];
    assert_eq!(plan["plan"], 1);
    assert_eq!(plan["cell"], "/app/worker");
    let steps: Vec<&str> = plan["steps"].as_array().unwrap().iter().map(|s| s[1].as_str().unwrap()).collect();
    assert_eq!(&steps[..3], ["proposed", "approved", "applied"]);
    assert!(ok(&[dir, "plans"]).starts_with("plan 1 ["));

    let verify = json(&[dir, "verify"]);
    assert_eq!(verify["clean"], true);
    let trees: Vec<&str> =
        verify["trees"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for tree in ["cell/app/ledger", "sys/journal", "sys/snapshots"] {
        assert!(trees.contains(&tree), "{trees:?}");
    }
    assert!(ok(&[dir, "verify"]).contains("ok      cell/app/ledger (1 entries)\n"));

    let page = data.path().join("run.html");
    let written = json(&[dir, "report", "-o", page.to_str().unwrap()]);
    assert_eq!(written["journal_entries"].as_u64(), Some(entries.len() as u64));
    assert_eq!(written["snapshots"], 7);
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<li data-phase=\"split\">"));
}

#[test]
fn a_running_applications_directory_is_refused_with_exit_code_4() {
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime(data.path());
    let output = inspect(&[data.path().to_str().unwrap(), "cells"]);
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("is in use by a running application"), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    // A copy of it is read while it runs.
    runtime.mark_phase("live").unwrap();
    runtime.record_snapshot().unwrap();
    let journal = json(&[data.path().to_str().unwrap(), "journal", "--copy"]);
    assert_eq!(journal.as_array().unwrap().len(), 1);
    assert_eq!(journal[0]["kind"]["Phase"]["name"], "live");
    let cells = ok(&[data.path().to_str().unwrap(), "cells", "--copy"]);
    assert!(cells.starts_with("From the snapshot of "), "{cells}");
    runtime.shutdown(Duration::from_secs(10));
    // Once stopped, it is read: no cell.
    let cells = ok(&[data.path().to_str().unwrap(), "cells"]);
    assert_eq!(cells.lines().skip(1).collect::<Vec<_>>(), ["PATH  KIND  MAILBOX  DECAY  RESTARTS"]);
}

#[test]
fn a_missing_path_a_file_and_a_foreign_directory_exit_with_code_3_and_say_why() {
    let data = tempfile::tempdir().unwrap();
    let missing = data.path().join("missing");
    let output = inspect(&[missing.to_str().unwrap(), "tree"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(stderr(&output), format!("cellrt-inspect: {} does not exist\n", missing.display()));

    let file = data.path().join("notes.txt");
    std::fs::write(&file, "notes").unwrap();
    let output = inspect(&[file.to_str().unwrap(), "journal"]);
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(stderr(&output), format!("cellrt-inspect: {} is not a directory\n", file.display()));

    let output = inspect(&[data.path().to_str().unwrap(), "verify", "--json"]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).ends_with("is not a cellrt data directory (it has no database: no `conf` file)\n")
    );
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 1, "nothing written into it");
}

#[test]
fn bad_arguments_exit_with_code_2() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    assert_eq!(inspect(&[dir, "journal", "--since", "yesterday-ish"]).status.code(), Some(2));
    assert_eq!(inspect(&[dir, "frobnicate"]).status.code(), Some(2));
    assert_eq!(inspect(&[]).status.code(), Some(2));
}

#[test]
fn verify_lists_a_quarantined_state_and_the_unreadable_tree_and_exits_with_code_1() {
    let data = tempfile::tempdir().unwrap();
    let runtime = runtime(data.path());
    let path = cellrt::CellPath::root().child("ledger").unwrap();
    runtime.store(&path).unwrap().put_bytes("state", vec![0xff, 0xff, 0xff]).unwrap();
    let spawned = runtime.spawn_durable(CellConfig::named("ledger"), Durability::PerMessage, || Ledger(0));
    if let Ok(ledger) = spawned {
        wait_for("the quarantine", || runtime.quarantine().unwrap().scan_prefix_bytes([]).count() == 1);
        drop(ledger);
    }
    runtime.shutdown(Duration::from_secs(10));

    let dir = data.path().to_str().unwrap();
    let output = inspect(&[dir, "verify"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(text.contains("PROBLEM cell/ledger (1 entries): saved state unreadable: "), "{text}");
    assert!(text.contains("QUARANTINED /ledger@"), "{text}");
    assert!(text.ends_with(" trees, 1 with problems, 1 quarantined states.\n"), "{text}");
    assert_eq!(stderr(&output), "cellrt-inspect: the data directory has problems (listed above)\n");
    let output = inspect(&[dir, "verify", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let verified: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(verified["clean"], false);
    assert_eq!(verified["quarantined"][0][1], 3);
}
