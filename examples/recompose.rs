//! Seed 004's fraud cell, recomposed by the runtime.
//!
//! ```text
//! fraud            checks two kinds of transaction
//!   Card           fast: 20 % of the load
//!   Legacy         2 ms of work each: 80 % of the load
//! ```
//!
//! The main thread sends transactions at 100 a second for half a second
//! (the baseline), then at 600 a second. One worker cannot keep up:
//! `Legacy` takes nearly all of the fraud cell's handling time, and `Card`
//! transactions wait behind it. The recomposition engine, in automatic
//! mode, finds that one kind dominates a strained cell and isolates it: the
//! address the gateway holds now routes `Legacy` to a cell of its own, on a
//! dispatcher of its own, and `Card` latency falls back to its baseline.
//! The plan is evaluated and kept.
//!
//! Then a rules engine, registered as a variant, takes a canary share of
//! `Legacy`; it is no worse than the legacy path, so the legacy path is
//! retired into it. The run prints each step, the journal's chain and the
//! learning measures; every transaction is accounted for.
//!
//! Run: `cargo run -p cellrt-examples --example recompose`

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{
    Action, Addr, Cell, CellConfig, CellError, Context, Expected, JournalQuery, Metric, Mode,
    ObservationConfig, PlanStatus, Recomposable, RecomposeConfig, Recomposer, Runtime, SignalKind,
};

enum Txn {
    Card(Instant),
    Legacy,
}

/// What was handled, and how long each card transaction took, end to end.
#[derive(Default)]
struct Ledger {
    card: AtomicU64,
    legacy: AtomicU64,
    by_rules: AtomicU64,
    card_latency: Mutex<Vec<(Instant, Duration)>>,
}

impl Ledger {
    fn card(&self, sent: Instant) {
        self.card_latency.lock().unwrap_or_else(|e| e.into_inner()).push((Instant::now(), sent.elapsed()));
        self.card.fetch_add(1, SeqCst);
    }

    fn handled(&self) -> u64 {
        self.card.load(SeqCst) + self.legacy.load(SeqCst)
    }

    fn card_p99(&self, from: Instant, to: Instant) -> Option<Duration> {
        let latencies = self.card_latency.lock().unwrap_or_else(|e| e.into_inner());
        let mut window: Vec<Duration> =
            latencies.iter().filter(|(at, _)| *at >= from && *at < to).map(|(_, d)| *d).collect();
        window.sort();
        window.get((window.len() * 99 / 100).min(window.len().saturating_sub(1))).copied()
    }
}

/// The fraud cell: the legacy check costs 2 ms.
struct Fraud(Arc<Ledger>);

impl Cell for Fraud {
    type Message = Txn;

    fn message_kind(txn: &Txn) -> &'static str {
        match txn {
            Txn::Card(_) => "card",
            Txn::Legacy => "legacy",
        }
    }

    fn handle(&mut self, _: &mut Context<Self>, txn: Txn) -> Result<(), CellError> {
        match txn {
            Txn::Card(sent) => self.0.card(sent),
            Txn::Legacy => {
                thread::sleep(Duration::from_millis(2));
                self.0.legacy.fetch_add(1, SeqCst);
            }
        }
        Ok(())
    }
}

/// The rules engine: checks both kinds, legacy ones without the legacy cost.
struct RulesEngine(Arc<Ledger>);

impl Cell for RulesEngine {
    type Message = Txn;

    fn handle(&mut self, _: &mut Context<Self>, txn: Txn) -> Result<(), CellError> {
        match txn {
            Txn::Card(sent) => self.0.card(sent),
            Txn::Legacy => {
                self.0.legacy.fetch_add(1, SeqCst);
            }
        }
        self.0.by_rules.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// Sends `per_second` transactions for `length`, four in five `Legacy`.
fn drive(fraud: &Addr<Txn>, per_second: u64, length: Duration) -> Result<u64, Box<dyn Error>> {
    let start = Instant::now();
    let mut sent = 0;
    while start.elapsed() < length {
        let txn = if sent % 5 == 0 { Txn::Card(Instant::now()) } else { Txn::Legacy };
        fraud.send(txn).map_err(|err| format!("send refused: {err}"))?;
        sent += 1;
        let due = start + Duration::from_nanos(sent * 1_000_000_000 / per_second);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
    Ok(sent)
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Box<dyn Error>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        if Instant::now() > deadline {
            return Err(format!("gave up waiting for {what}").into());
        }
        thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let window = Duration::from_millis(100);
    let runtime = Runtime::builder()
        .worker_threads(1)
        .dispatcher("legacy", 1)
        .default_capacity(4096)
        .observation(ObservationConfig::default().window(window).sample_every(1))
        .build()?;
    let ledger = Arc::new(Ledger::default());
    let fraud = runtime.spawn_with(CellConfig::named("fraud"), Fraud(ledger.clone()))?;

    // One plan at a time: after the isolation, the cell cools down, and the
    // canary is proposed by hand.
    let config = RecomposeConfig::default().mode(Mode::Auto).cooldown_windows(1_000);
    let engine = Recomposer::new(&runtime, config)?;
    let (base, rules) = (ledger.clone(), ledger.clone());
    let spec = Recomposable::new(move || Fraud(base.clone()))
        .variant("rules", move || RulesEngine(rules.clone()))
        .isolate_with(CellConfig::new().dispatcher("legacy"));
    engine.manage(&fraud, spec)?;

    println!("baseline: 100 transactions a second");
    let start = Instant::now();
    let mut sent = drive(&fraud, 100, Duration::from_millis(500))?;
    let load = Instant::now();
    println!("load: 600 transactions a second, 480 of them Legacy at 2 ms each");
    let driver = {
        let fraud = fraud.clone();
        thread::spawn(move || drive(&fraud, 600, Duration::from_millis(2500)).map_err(|e| e.to_string()))
    };
    wait_until("the isolation", || engine.layout(fraud.path()).is_some_and(|l| !l.isolated.is_empty()))?;
    let isolated = Instant::now();
    println!("isolated {:?} after the load began", isolated - load);
    sent += driver.join().map_err(|_| "the driver panicked")??;
    let plan = engine.plans().first().map(|p| p.id).ok_or("no plan")?;
    wait_until("the evaluation", || engine.plan(plan).is_some_and(|p| p.status.is_final()))?;
    let show = |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{d:?}"));
    println!(
        "card p99: baseline {}, under load before the isolation {}, after {}",
        show(ledger.card_p99(start, load)),
        show(ledger.card_p99(load, isolated)),
        show(ledger.card_p99(isolated + Duration::from_millis(300), Instant::now())),
    );

    println!("canary: 20% of Legacy to the rules engine");
    let canary = Action::Canary {
        cell: fraud.path().clone(),
        kind: Some("legacy".into()),
        variant: "rules".into(),
        share: 0.2,
    };
    let canary = engine.propose(vec![canary], Expected::Canary { metric: Metric::QueueDelay })?;
    engine.approve(canary)?;
    sent += drive(&fraud, 600, window * 8)?;
    wait_until("the canary's evaluation", || engine.plan(canary).is_some_and(|p| p.status.is_final()))?;
    wait_until("every transaction", || ledger.handled() + runtime.dead_letter_count() == sent)?;

    println!("\nplans:");
    for plan in engine.plans() {
        let status = match &plan.status {
            PlanStatus::Kept { before, after, met } => format!("kept ({before:.4} → {after:.4}, met: {met})"),
            other => format!("{other:?}"),
        };
        println!("  {} [{}] {} — {}", plan.id, plan.rule, plan.description(), status);
    }
    let layout = engine.layout(fraud.path()).ok_or("not managed")?;
    for kind in &layout.isolated {
        println!("  kind {:?} now served by {} (variant {:?})", kind.kind, kind.cell, kind.variant);
    }
    println!("\njournal:");
    for signal in runtime.journal(&JournalQuery::new().cell(fraud.path().clone())) {
        match &signal.kind {
            SignalKind::Finding { rule, summary, .. } => {
                println!("  #{} finding [{rule}] {summary}", signal.seq)
            }
            SignalKind::Plan { plan, step, .. } => println!("  #{} plan {plan}: {step}", signal.seq),
            _ => {}
        }
    }
    let measures = runtime.snapshot().measures;
    println!(
        "\nlearning: {} plans applied, {} kept, {} reverted; onset → applied {}, onset → kept {}",
        measures.plans_applied,
        measures.plans_kept,
        measures.plans_reverted,
        show(measures.velocity_to_applied),
        show(measures.velocity_to_kept),
    );
    println!(
        "transactions: {sent} sent = {} card + {} legacy handled ({} by the rules engine) + {} dead letters",
        ledger.card.load(SeqCst),
        ledger.legacy.load(SeqCst),
        ledger.by_rules.load(SeqCst),
        runtime.dead_letter_count()
    );
    runtime.shutdown(Duration::from_secs(5));
    Ok(())
}
