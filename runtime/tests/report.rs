//! The report of a run: a real run's data directory read back after the
//! runtime stopped, rendered, and opened in a headless browser.

#![cfg(feature = "report")]

mod common;

use std::path::Path;
use std::time::Duration;

use cellrt::report::{DataDir, DataDirError, Report, ReportError};
use cellrt::{
    Action, CellConfig, ChildSpec, Expected, JournalQuery, Metric, Mode, Recomposable, RecomposeConfig,
    Recomposer, Signal, SignalKind, SplitBy, SupervisorSpec,
};
use common::gateway::{self, Gateway, Worker};
use common::wait_for;

/// The gateway's name: a report must escape it.
const GATEWAY: &str = "gate<way>";

/// What the run recorded, read before its runtime stopped.
struct Run {
    journal: Vec<Signal>,
    snapshots: usize,
}

/// Runs a gateway and a worker on a data directory in `dir` through two
/// marked phases, a baseline and a split of the worker into a pool
/// (proposed by hand and approved), recording snapshots as it goes.
fn run(dir: &Path) -> Run {
    let runtime = gateway::runtime(dir);
    let app = SupervisorSpec::new("app")
        .intensity(1000, Duration::from_secs(60))
        .child(ChildSpec::new("worker", || Worker));
    let app = runtime.start_supervisor(app, Duration::from_secs(10)).unwrap();
    let worker = app.child::<u32>("worker").unwrap();
    let gateway = runtime.spawn_with(CellConfig::named(GATEWAY), Gateway(worker.clone())).unwrap();
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Propose)).unwrap();
    engine.manage(&worker, Recomposable::new(|| Worker).stateless()).unwrap();
    let mut snapshots = 0;
    let mut phase = |name: &str, from: u32| {
        runtime.mark_phase(name).unwrap();
        for round in 0..6 {
            for n in 0..20 {
                gateway.send(from + round * 20 + n).unwrap();
            }
            std::thread::sleep(Duration::from_millis(60));
            runtime.record_snapshot().unwrap();
            snapshots += 1;
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
        worked.filter_map(|c| c.metrics.as_ref()).map(|m| m.handled + m.failed).sum::<u64>() == 240
    });
    let journal = runtime.journal(&JournalQuery::new());
    let locked = DataDir::open(dir).unwrap_err();
    assert_eq!(locked, DataDirError::Locked { path: dir.to_owned() });
    assert!(locked.to_string().contains("is in use by a running application"), "{locked}");
    runtime.shutdown(Duration::from_secs(10));
    Run { journal, snapshots }
}

#[test]
fn a_stopped_runs_data_directory_gives_its_whole_journal_snapshots_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path());
    let data = DataDir::open(dir.path()).unwrap();
    let journal = data.journal().unwrap();
    // The journal read back begins with every entry the run saw (the
    // shutdown added its own after).
    assert!(journal.signals.len() >= run.journal.len());
    assert_eq!(&journal.signals[..run.journal.len()], &run.journal[..]);
    assert_eq!(journal.unreadable, 0);
    assert_eq!(
        journal.signals.iter().map(|s| s.seq).collect::<Vec<_>>(),
        (1..=journal.total).collect::<Vec<_>>()
    );
    let (snapshots, unreadable) = data.snapshots().unwrap();
    assert_eq!((snapshots.len(), unreadable), (run.snapshots, 0));
    assert!(snapshots.windows(2).all(|w| w[0].taken_at <= w[1].taken_at));
    assert!(snapshots.iter().all(|s| s.journal.is_empty()));

    let html = data.report().unwrap().render();
    assert!(html.contains("<li data-phase=\"baseline\">"));
    assert!(html.contains("<li data-phase=\"split\">"));
    assert!(html.contains("<tr data-cell=\"/gate&lt;way&gt;\" class=\"live\">"));
    assert!(!html.contains(GATEWAY));
    assert!(html.contains("<tr data-cell=\"/app/worker\""));
    // The split's plan, with its steps, and the flow map around it.
    assert!(
        html.contains("<article class=\"plan applied\" data-plan=\"1\" data-outcome=\"applied\">")
            || html.contains("data-plan=\"1\" data-outcome=\"kept\">")
            || html.contains("data-plan=\"1\" data-outcome=\"reverted\">")
    );
    assert!(html.contains("<div class=\"flow\" data-plan=\"1\"><h3>Plan 1 applied at"));
    assert!(html.contains("<tr data-edge=\"/gate&lt;way&gt;→/app/worker\">"));
    // The worker's failures: one signature, listed with the count the
    // journal gives it.
    let signature = journal
        .signals
        .iter()
        .find_map(|s| match &s.kind {
            SignalKind::NewSignature { signature, .. } => Some(signature.clone()),
            _ => None,
        })
        .expect("the worker's failures have a signature");
    assert!(html.contains(&format!("<tr data-signature=\"{signature}\">")));
    assert!(html.contains("declined by &lt;issuer&gt;"));
    assert!(html.matches("data-chart=\"decay\"").count() >= 1);
    drop(data);

    // The same renderer on the directory's path.
    let again = Report::from_data_dir(dir.path()).unwrap();
    assert_eq!(again.signals(), &journal.signals[..]);
    assert_eq!(again.snapshot_count(), run.snapshots);
    let path = dir.path().join("report.html");
    again.write_to(&path).unwrap();
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("<!DOCTYPE html>"));

    let verification = DataDir::open(dir.path()).unwrap().verify().unwrap();
    assert!(verification.is_clean(), "{verification:?}");
    let names: Vec<&str> = verification.trees.iter().map(|t| t.name.as_str()).collect();
    for tree in ["sys/journal", "sys/snapshots", "sys/recompose"] {
        assert!(names.contains(&tree), "{names:?}");
    }
}

#[test]
fn a_missing_path_a_file_and_a_foreign_directory_are_refused_and_left_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing");
    assert_eq!(DataDir::open(&missing).unwrap_err(), DataDirError::Missing { path: missing.clone() });
    assert!(!missing.exists());

    let file = dir.path().join("file");
    std::fs::write(&file, "text").unwrap();
    assert_eq!(DataDir::open(&file).unwrap_err(), DataDirError::NotADirectory { path: file.clone() });

    let foreign = dir.path().join("photos");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("cat.jpg"), "jpeg").unwrap();
    let err = DataDir::open(&foreign).unwrap_err();
    assert_eq!(err, DataDirError::NotADataDir { path: foreign.clone(), missing: "conf".into() });
    assert!(err.to_string().ends_with("is not a cellrt data directory (it has no database: no `conf` file)"));
    assert_eq!(std::fs::read_dir(&foreign).unwrap().count(), 1, "nothing was written");

    let report = Report::from_data_dir(&foreign).unwrap_err();
    assert_eq!(report, ReportError::DataDir(err));
    let unwritable = Report::new("x").write_to(missing.join("report.html")).unwrap_err();
    assert!(matches!(unwritable, ReportError::Write { .. }), "{unwritable}");
}

#[test]
fn the_report_opens_in_a_headless_browser_without_script_errors_and_draws_its_charts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    run(&data);
    let html = Report::from_data_dir(&data).unwrap().render();
    let charts = html.matches("data-chart=\"").count();
    let decay_charts = html.matches("data-chart=\"decay\"").count();
    assert!(charts >= 3, "a decay chart, the signature timeline and a flow map at least");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap();

    let Some(dom) = common::browser::dump_dom(&page) else { return };
    assert!(!dom.contains("data-script-error="), "the page's script failed: {dom:.2000}");
    assert!(dom.contains(&format!("data-charts-drawn=\"{charts}\"")), "not every chart was drawn");
    assert!(dom.contains(&format!("{charts} charts drawn.")));
    assert_eq!(dom.matches("class=\"series series-score\"").count(), decay_charts);
    // Each charted cell has baselines: its cost is drawn against them.
    assert_eq!(dom.matches("class=\"baseline-band\"").count(), decay_charts);
    assert!(dom.matches("class=\"series series-cost-measured\"").count() >= 1);
    assert!(dom.matches("class=\"sighting\"").count() >= 1);
    assert!(dom.matches("class=\"edge edge-after\"").count() >= 1);
    assert!(dom.matches("class=\"phase-boundary\"").count() >= 2 * (decay_charts + 1));
}
