//! The flagship, checked: the payments scenario's core (no progress bar),
//! in its quick form. See `payments.rs` for the story.

// The progress fields the example shows are read here only in part.
#[allow(dead_code)]
#[path = "../payments/scenario.rs"]
mod scenario;

#[allow(unreachable_pub)]
#[path = "../../runtime/tests/common/browser.rs"]
mod browser;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{Outcome, PlanStatus};
use scenario::Config;

/// Card latency measured on a 2-core machine shared with other builds
/// moves by a few milliseconds between runs: "back at its baseline" allows
/// twice the baseline, and never less than this.
const LATENCY_FLOOR: Duration = Duration::from_millis(10);

#[test]
fn the_payments_run_isolates_legacy_keeps_a_plan_and_accounts_for_every_payment_and_notice() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let on_progress: scenario::OnProgress = Box::new(move |p: &scenario::Progress| {
        record.lock().unwrap().push((p.phase, p.sent));
    });
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let config = Config { report: Some(page.clone()), ..Config::quick() };
    let report = scenario::run(config, Some(on_progress)).expect("the scenario runs");
    println!("{report}");
    assert_eq!(report.page.as_deref(), Some(page.as_path()));

    // The progress went through the four phases in order, sending all along.
    let seen = seen.lock().unwrap();
    let mut phases: Vec<&str> = seen.iter().map(|(phase, _)| *phase).collect();
    phases.dedup();
    assert_eq!(phases, scenario::PHASES, "phases as the progress showed them");
    assert!(seen.windows(2).all(|w| w[0].1 <= w[1].1), "sent never goes back");

    // Every payment sent was recorded or dead-lettered; none was refused.
    let payments = report.payments;
    assert_eq!(payments.refused, 0, "{payments:?}");
    assert_eq!(payments.recorded + payments.dead_lettered, payments.sent, "{payments:?}");
    assert_eq!(payments.card + payments.legacy, payments.recorded, "{payments:?}");
    assert!(payments.sent >= 1_000, "ten seconds at 150 a second: {payments:?}");
    // One in five is a card payment; card payments are never dead-lettered.
    assert_eq!(payments.card, payments.sent.div_ceil(5), "{payments:?}");
    // Every notice made (one per payment recorded) ended in exactly one way.
    let notices = report.notices;
    assert_eq!(notices.made, payments.recorded);
    assert_eq!(
        notices.delivered + notices.failed + notices.shed + notices.full + notices.breaker_open,
        notices.made,
        "{notices:?}"
    );
    assert!(notices.failed > 0, "notify failed under the second experiment: {notices:?}");

    // The phases happened: the first hypothesis failed while legacy was
    // slow, the second held (the ledger never failed).
    assert_eq!(report.experiments.len(), 2);
    assert_eq!(report.experiments[0].outcome, Outcome::Violated, "{}", report.experiments[0]);
    assert!(!matches!(report.experiments[1].outcome, Outcome::Aborted { .. }), "{}", report.experiments[1]);
    let ledger = &report.experiments[1].predicates[1];
    assert!(
        ledger.fault.as_ref().is_some_and(|v| v.holds),
        "the ledger absorbed notify's failures: {ledger:?}"
    );
    assert!(report.phases.windows(2).all(|w| w[0] <= w[1]), "{:?}", report.phases);

    // The runtime's own analysis isolated the legacy kind, and kept it.
    let fraud = report.fraud.as_ref().expect("fraud is managed");
    assert_eq!(fraud.isolated.len(), 1, "{fraud:?}");
    assert_eq!(fraud.isolated[0].kind, "legacy");
    assert_eq!(fraud.isolated[0].cell.to_string(), "/payments/fraud/legacy");
    let isolate =
        report.plans.iter().find(|p| p.rule == "isolate" && matches!(p.status, PlanStatus::Kept { .. }));
    assert!(isolate.is_some(), "an isolation of legacy was kept: {:?}", report.plans);
    assert!(report.plans.iter().all(|p| p.rule != "manual"), "every plan is the engine's own");
    assert!(report.measures.plans_kept >= 1);
    assert_eq!(
        report.measures.plans_applied,
        report.plans.iter().filter(|p| p.status.is_final()).count() as u64
    );

    // The journal holds each plan's whole chain, in order.
    for plan in &report.plans {
        let chain = report.chains.iter().find(|(id, _)| *id == plan.id).map(|(_, steps)| steps.clone());
        let expected: Vec<&str> = match plan.status {
            PlanStatus::Kept { .. } => vec!["proposed", "approved", "applied", "kept"],
            PlanStatus::Reverted { .. } => vec!["proposed", "approved", "applied", "reverted"],
            _ => continue,
        };
        assert_eq!(chain, Some(expected.iter().map(|s| s.to_string()).collect()), "plan {}", plan.id);
    }

    // Card latency came back: at most twice its baseline (see LATENCY_FLOOR).
    let baseline = report.card_p99[0].expect("card payments in the baseline");
    let recovered = report.card_p99_recovered.expect("card payments after the recovery");
    assert!(
        recovered <= (baseline * 2).max(LATENCY_FLOOR),
        "card p99 {recovered:?} after, {baseline:?} in the baseline"
    );

    // The page shows the run: its phases in order, the kept isolation, the
    // decay charts; and it draws in a browser.
    let html = std::fs::read_to_string(&page).expect("the report was written");
    assert!(html.contains("<title>payments</title>"));
    let at =
        |phase: &str| html.find(&format!("<li data-phase=\"{phase}\">")).unwrap_or_else(|| panic!("{phase}"));
    let listed: Vec<usize> = scenario::PHASES.iter().map(|phase| at(phase)).collect();
    assert!(listed.windows(2).all(|w| w[0] < w[1]), "phases in order: {listed:?}");
    let kept = isolate.expect("checked above").id;
    assert!(
        html.contains(&format!("<article class=\"plan kept\" data-plan=\"{kept}\" data-outcome=\"kept\">"))
    );
    assert!(html.contains("data-chart=\"decay\""));
    let charts = html.matches("data-chart=\"").count();
    if let Some(dom) = browser::dump_dom(&page) {
        assert!(!dom.contains("data-script-error="), "the page's script failed: {dom:.2000}");
        assert!(dom.contains(&format!("data-charts-drawn=\"{charts}\"")), "not every chart was drawn");
    }
}
