//! One cell decays, and what the runtime makes of it.
//!
//! ```text
//! shop             one_for_one, up to 10,000 restarts a second
//! ├── catalog      looks a product up: 10 µs of work, never fails
//! ├── inventory    checks the stock: 50 µs of work, until it decays
//! └── gateway      forwards every request to catalog and inventory
//! ```
//!
//! The main thread sends the gateway one request every 2 ms: for a second
//! all is well, and the runtime learns each cell's baselines (failures per
//! message, work per message, time in queue, mailbox fill). Then inventory
//! decays: its work per request grows tenfold, to 500 µs, and one request in
//! five fails with `sku <id> out of stock`, which restarts it. A second
//! later the run stops and reports what the runtime observed:
//!
//! 1. one failure signature: the messages differ only in the SKU, so their
//!    normalized text is the same;
//! 2. each cell's decay against its own baselines: inventory decays on
//!    fragility and cost, catalog and the gateway do not;
//! 3. the signal journal, every entry with its triage category: the new
//!    signature and its recurrences (New Behavior Pattern), the restarts
//!    (Process Breakdown), inventory crossing the decay threshold and its
//!    objective's burn-rate alerts (Architectural Debt Indicator);
//! 4. the burn rates of inventory's objective, 99 % of requests handled
//!    without failure: one in five failing burns its 1 % error budget 20
//!    times too fast, above the factor of every alert;
//! 5. the learning measures, once an investigation and an approved change
//!    are recorded;
//! 6. inventory's decay and burn rates as Prometheus samples, and the
//!    topology as a Graphviz file: `cellrt-decay.dot` in the working
//!    directory, or the path given as the first argument.
//!
//! Observation runs at demo speed: 50 ms analysis windows, every message
//! timed, burn-rate windows of hundreds of milliseconds rather than hours,
//! triage windows to match. The decay's noise floors are raised so that a
//! busy machine, which deschedules workers for milliseconds, does not pass
//! for decay: only inventory decays, run after run.
//!
//! Run: `cargo run -p cellrt-examples --example decay [out.dot]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use cellrt::{
    Addr, BurnAlert, BurnWindows, Cell, CellError, CellPath, CellSnapshot, ChildSpec, Context, DecayConfig,
    JournalQuery, NoiseFloor, Objective, ObservationConfig, Runtime, SendError, Signal, SignalKind,
    SignalType, SupervisorSpec, TriageConfig,
};

const TIMEOUT: Duration = Duration::from_secs(5);
/// The pace of requests.
const EVERY: Duration = Duration::from_millis(2);
/// Requests per phase: a second each.
const PHASE: u64 = 500;
/// Work per request. The catalog's is short: the machine rarely deschedules
/// a worker in the middle of it.
const CATALOG_WORK_US: u64 = 10;
const INVENTORY_WORK_US: u64 = 50;
const DECAYED_WORK_US: u64 = 500;
/// Once decayed, inventory fails one request in this many.
const DECAYED_FAIL_EVERY: u64 = 5;

/// A shopper's request, numbered.
#[derive(Clone, Copy, Debug)]
struct Request {
    id: u64,
}

/// Burns `micros` of CPU: work, unlike a sleep, that a slower cell pays for.
fn work(micros: u64) {
    let until = Instant::now() + Duration::from_micros(micros);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Looks products up; always succeeds.
struct Catalog;

impl Cell for Catalog {
    type Message = Request;

    fn handle(&mut self, _: &mut Context<Self>, _: Request) -> Result<(), CellError> {
        work(CATALOG_WORK_US);
        Ok(())
    }

    fn message_kind(_: &Request) -> &'static str {
        "Request"
    }
}

/// How inventory behaves: set by the main thread, read by every incarnation.
#[derive(Debug)]
struct Condition {
    work_us: AtomicU64,
    /// Fails requests whose id is a multiple of this; 0 for none.
    fail_every: AtomicU64,
}

/// Checks the stock. Its condition decides how slow it is and how often it
/// finds a product out of stock.
struct Inventory {
    condition: Arc<Condition>,
}

impl Cell for Inventory {
    type Message = Request;

    fn handle(&mut self, _: &mut Context<Self>, request: Request) -> Result<(), CellError> {
        work(self.condition.work_us.load(Ordering::Relaxed));
        let fail_every = self.condition.fail_every.load(Ordering::Relaxed);
        if fail_every != 0 && request.id.is_multiple_of(fail_every) {
            let sku = 10_000 + request.id * 7_919 % 90_000;
            return Err(CellError::msg(format!("sku {sku} out of stock")));
        }
        Ok(())
    }

    fn message_kind(_: &Request) -> &'static str {
        "Request"
    }
}

/// Forwards every request to both services.
struct Gateway {
    catalog: Addr<Request>,
    inventory: Addr<Request>,
}

fn unreachable(err: SendError<Request>) -> CellError {
    CellError::msg(format!("service unreachable: {err}"))
}

impl Cell for Gateway {
    type Message = Request;

    fn handle(&mut self, _: &mut Context<Self>, request: Request) -> Result<(), CellError> {
        self.catalog.try_send(request).map_err(unreachable)?;
        self.inventory.try_send(request).map_err(unreachable)
    }

    fn message_kind(_: &Request) -> &'static str {
        "Request"
    }
}

/// Sends requests `ids` to `gateway`, one every `EVERY`. Running late by
/// more than that restarts the schedule: no burst to catch up.
fn drive(gateway: &Addr<Request>, ids: std::ops::Range<u64>) -> Result<(), SendError<Request>> {
    let mut due = Instant::now();
    for id in ids {
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        gateway.send(Request { id })?;
        due = due.max(Instant::now() - EVERY) + EVERY;
    }
    Ok(())
}

/// Milliseconds from `t0` to `at`.
fn millis_since(t0: SystemTime, at: SystemTime) -> f64 {
    at.duration_since(t0).unwrap_or_default().as_secs_f64() * 1e3
}

fn micros(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// A journal entry's kind and data, in a few words.
fn describe(kind: &SignalKind) -> String {
    match kind {
        SignalKind::NewSignature { signature, .. } => format!("new failure signature {signature}"),
        SignalKind::Recurrence { signature, count, .. } => format!("{signature} seen again ({count} so far)"),
        SignalKind::DecayCrossed { rising, score, fragility, cost, drag, rising_for } => format!(
            "decay {} {score:.2} (fragility {fragility:.2}, cost {cost:.2}, drag {drag:.2}; rising for {rising_for})",
            if *rising { "rose to" } else { "fell to" },
        ),
        SignalKind::BurnRate { objective, alert, raised, long_rate, short_rate } => format!(
            "{alert:?} burn alert {} on {objective}: {long_rate:.1}x long, {short_rate:.1}x short",
            if *raised { "raised" } else { "cleared" },
        ),
        SignalKind::Restart { .. } => "restarted by its supervisor".to_owned(),
        SignalKind::Topology { change } => format!("topology: {change}"),
        SignalKind::Configuration { what } => format!("configuration: {what}"),
        SignalKind::LoadShift { rate, baseline } => {
            format!("load shift: {rate:.0} msg/s against a baseline of {baseline:.0}")
        }
        SignalKind::Investigated { signal, insight } => {
            format!("investigated #{signal}: {}", insight.as_deref().unwrap_or("no insight"))
        }
        SignalKind::Change { signals, description } => format!("change for {signals:?}: {description}"),
        other => format!("{other:?}"),
    }
}

/// One line of the journal: seq, time, cell, triage category (none for
/// records of deliberate acts), and `entry`.
fn print_entry(t0: SystemTime, signal: &Signal, entry: &str) {
    println!(
        "  {:>4} {:>6.1} ms  {:<16} {:<28}  {entry}",
        signal.seq,
        millis_since(t0, signal.at),
        signal.cell.as_ref().map_or("-", CellPath::as_str),
        signal.category.map_or_else(|| "-".to_owned(), |c| c.to_string()),
    );
}

/// The journal, oldest first. Recurrences and restarts come by the dozen:
/// each (type, cell, category) of them is one line, where its first entry is.
fn print_journal(t0: SystemTime, journal: &[Signal]) {
    let repeated = |s: &Signal| matches!(s.kind.signal_type(), SignalType::Recurrence | SignalType::Restart);
    let key = |s: &Signal| (s.kind.signal_type(), s.cell.clone(), s.category);
    println!("  {:>4} {:>9}  {:<16} {:<28}  entry", "seq", "at", "cell", "triage category");
    let mut grouped = Vec::new();
    for signal in journal {
        let entry = if !repeated(signal) {
            describe(&signal.kind)
        } else if grouped.contains(&key(signal)) {
            continue;
        } else {
            grouped.push(key(signal));
            let group: Vec<&Signal> = journal.iter().filter(|s| key(s) == key(signal)).collect();
            let last = group[group.len() - 1];
            let what = match signal.kind.signal_type() {
                SignalType::Recurrence => "recurrences of the signature",
                _ => "restarts by its supervisor",
            };
            let (first_at, last_at) = (millis_since(t0, signal.at), millis_since(t0, last.at));
            format!(
                "{} {what}, #{} to #{} ({first_at:.0} to {last_at:.0} ms)",
                group.len(),
                signal.seq,
                last.seq
            )
        };
        print_entry(t0, signal, &entry);
    }
}

fn print_cells(cells: &[CellSnapshot]) {
    println!(
        "  {:<16} {:>5} {:>9} {:>5} {:>5}  {:<8} {:>7} {:>6} {:>8}  {:>8} {:>9}  {:>8}",
        "cell",
        "score",
        "fragility",
        "cost",
        "drag",
        "decaying",
        "handled",
        "failed",
        "restarts",
        "work/msg",
        "baseline",
        "p99"
    );
    for cell in cells {
        let (Some(decay), Some(metrics)) = (&cell.decay, &cell.metrics) else {
            println!("  {:<16} not analysed yet", cell.path.as_str());
            continue;
        };
        let baseline = cell
            .baselines
            .map_or_else(|| "-".to_owned(), |b| micros(Duration::from_secs_f64(b.cost.mean.max(0.0))));
        println!(
            "  {:<16} {:>5.2} {:>9.2} {:>5.2} {:>5.2}  {:<8} {:>7} {:>6} {:>8}  {:>8} {:>9}  {:>8}",
            cell.path.as_str(),
            decay.score,
            decay.fragility,
            decay.cost,
            decay.drag,
            if decay.decaying { "yes" } else { "no" },
            metrics.handled,
            metrics.failed,
            metrics.restarts,
            micros(metrics.work_per_message),
            baseline,
            micros(metrics.handling.p99),
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = SystemTime::now();
    let ms = Duration::from_millis;
    let observation = ObservationConfig::default()
        .window(ms(50))
        .sample_every(1)
        .decay(
            // Sized for a busy machine, where a worker descheduled for
            // milliseconds adds them to the handler it was running and to
            // the waits of the messages behind it. Averaged over 5 windows
            // (250 ms), work per message counts once it doubles (and grows
            // by 50 µs), time in queue once it grows by 5 ms. Inventory's
            // tenfold work clears that by far, and its failures alone max
            // out fragility.
            DecayConfig::default()
                .warmup(5)
                .short_windows(5)
                .cost_floor(NoiseFloor { relative: 1.0, absolute: 50e-6 })
                .queue_delay_floor(NoiseFloor { relative: 0.25, absolute: 5e-3 }),
        )
        .burn_windows(
            BurnWindows::new()
                .window(BurnAlert::Fast, ms(400), ms(100))
                .window(BurnAlert::Slow, ms(800), ms(200))
                .window(BurnAlert::Ticket, ms(1600), ms(400)),
        )
        .triage(
            // A change (the spawns, the objective) explains failures for
            // 100 ms, not a minute: these ones come a second later. Every
            // failure here restarts inventory, ~100 a second; the default
            // storm rule (10 restarts in 10 s) would call that a restart
            // storm and blame every onset on it. The restarts are the
            // decay's echo, not its cause: count a storm from 1,000.
            TriageConfig::default().change_window(ms(100)).storm_restarts(1_000),
        );
    // Mailboxes hold 256, so that a worker descheduled for a while does not
    // show as a filling mailbox either.
    let runtime =
        Runtime::builder().quiet_panics(true).default_capacity(256).observation(observation).build()?;

    let condition =
        Arc::new(Condition { work_us: AtomicU64::new(INVENTORY_WORK_US), fail_every: AtomicU64::new(0) });
    let inventory_condition = condition.clone();
    let shop = runtime.start_supervisor(
        SupervisorSpec::new("shop")
            .intensity(10_000, Duration::from_secs(1))
            .child(ChildSpec::new("catalog", || Catalog))
            .child(ChildSpec::new("inventory", move || Inventory { condition: inventory_condition.clone() })),
        TIMEOUT,
    )?;
    // Addresses outlive restarts: the gateway keeps them.
    let catalog = shop.child::<Request>("catalog").ok_or("catalog handles Request")?;
    let inventory = shop.child::<Request>("inventory").ok_or("inventory handles Request")?;
    let (catalog_path, inventory_path) = (catalog.path().clone(), inventory.path().clone());
    shop.start_child(
        ChildSpec::new("gateway", move || Gateway { catalog: catalog.clone(), inventory: inventory.clone() }),
        TIMEOUT,
    )?;
    let gateway = shop.child::<Request>("gateway").ok_or("gateway handles Request")?;
    runtime.set_objective(&inventory_path, Some(Objective::success_ratio(0.99)?));

    println!(
        "healthy: {PHASE} requests, one every {EVERY:?}; inventory works {INVENTORY_WORK_US} µs a request"
    );
    drive(&gateway, 0..PHASE)?;
    condition.work_us.store(DECAYED_WORK_US, Ordering::Relaxed);
    condition.fail_every.store(DECAYED_FAIL_EVERY, Ordering::Relaxed);
    let decayed_at = millis_since(t0, SystemTime::now());
    println!(
        "decaying from {decayed_at:.0} ms: {PHASE} more; inventory works {DECAYED_WORK_US} µs and fails one in \
         {DECAYED_FAIL_EVERY}"
    );
    drive(&gateway, PHASE..2 * PHASE)?;
    // At once: a few windows without traffic and the decay would clear.
    let snapshot = runtime.snapshot();
    let journal = runtime.journal(&JournalQuery::new());
    let ended_at = millis_since(t0, snapshot.taken_at);

    println!("\n1. failure signatures");
    for stats in runtime.signatures() {
        let signature = &stats.signature;
        let cells: Vec<&str> = stats.cells.iter().map(CellPath::as_str).collect();
        println!("  {}  {} failures in {}", signature.id(), stats.count, cells.join(", "));
        println!("    normalized: {}", signature.text);
        println!(
            "    {:?} in {}, {:?} hook, message kind {}",
            signature.kind,
            signature.cell_kind,
            signature.hook,
            signature.message_kind.unwrap_or("-")
        );
        println!("    latest:     {}", stats.sample);
    }

    println!("\n2. decay at {ended_at:.0} ms, each cell against its own baselines");
    println!("  (baseline: the work per message learned while healthy; p99: of handling time)");
    print_cells(&snapshot.cells);

    println!("\n3. journal: {} entries", journal.len());
    print_journal(t0, &journal);

    println!("\n4. objective of {inventory_path}");
    let inventory_cell = snapshot.cells.iter().find(|c| c.path == inventory_path);
    if let Some(objective) = inventory_cell.and_then(|c| c.objective.as_ref()) {
        let status = &objective.status;
        println!("  {}: {} requests good, {} bad", objective.objective, status.good, status.bad);
        println!(
            "  error budget left over the longest window: {:.0} %{}",
            status.budget_remaining * 100.0,
            if status.budget_remaining < 0.0 { " (overspent)" } else { "" }
        );
        for alert in &status.alerts {
            println!(
                "  {:<7} burn {:>5.1}x long, {:>5.1}x short, factor {:>4.1}: {}",
                format!("{:?}", alert.alert),
                alert.long_rate,
                alert.short_rate,
                alert.factor,
                if alert.firing { "firing" } else { "quiet" }
            );
        }
    }

    // An operator looks into the decay and finds the cause; the restarts
    // teach nothing new. A change is approved against the failure class.
    let find = |kind: SignalType| {
        journal.iter().find(|s| s.kind.signal_type() == kind && s.cell.as_ref() == Some(&inventory_path))
    };
    let crossed = find(SignalType::DecayCrossed).ok_or("inventory's decay crossed its threshold")?;
    let new_signature = find(SignalType::NewSignature).ok_or("inventory's failures have a signature")?;
    let restart = find(SignalType::Restart).ok_or("inventory was restarted")?;
    let insight = "stock lookups scan the whole warehouse table since the last reindex";
    let acts = [
        runtime.investigate(crossed.seq, Some(insight.to_owned()))?,
        runtime.investigate(restart.seq, None)?,
        runtime
            .record_change(&[new_signature.seq, crossed.seq], "index stock by SKU, answer misses from it")?,
    ];
    let measures = runtime.snapshot().measures;
    println!("\n5. learning: three acts, journaled without a category");
    for act in &acts {
        print_entry(t0, act, &describe(&act.kind));
    }
    println!(
        "  {} anomalies; {} investigated, {} with an insight: signal-to-insight {}",
        measures.signals,
        measures.investigated,
        measures.insights,
        measures.signal_to_insight.map_or_else(|| "-".to_owned(), |r| format!("{:.0} %", r * 100.0))
    );
    println!(
        "  {} change(s) approved: learning velocity {} (from the first failure to the change)",
        measures.changes,
        measures
            .learning_velocity
            .map_or_else(|| "-".to_owned(), |v| format!("{:.0} ms", v.as_secs_f64() * 1e3))
    );

    println!("\n6. exports");
    let label = format!("cell=\"{inventory_path}\"");
    for line in snapshot.prometheus().lines() {
        if (line.starts_with("cellrt_decay{") || line.starts_with("cellrt_burn_rate{"))
            && line.contains(&label)
        {
            println!("  {line}");
        }
    }
    // Under the working directory, or where the first argument says.
    let dot =
        std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "cellrt-decay.dot".to_owned()));
    std::fs::write(&dot, snapshot.to_dot())?;
    println!("  topology with decay: {} (render with `dot -Tsvg`)", dot.display());

    let crossings = |path: &CellPath| {
        journal
            .iter()
            .filter(|s| s.cell.as_ref() == Some(path))
            .filter(|s| matches!(s.kind, SignalKind::DecayCrossed { rising: true, .. }))
            .count()
    };
    let score = |path: &CellPath| {
        snapshot.cells.iter().find(|c| &c.path == path).and_then(|c| c.decay).map_or(0.0, |d| d.score)
    };
    assert!(crossings(&inventory_path) >= 1 && score(&inventory_path) >= 0.5, "inventory decayed");
    assert!(crossings(&catalog_path) == 0 && score(&catalog_path) < 0.5, "catalog stayed healthy");

    let report = runtime.shutdown(TIMEOUT);
    println!(
        "\nshutdown: {} cells stopped, {} messages undelivered, {} failures (the decay), {}",
        report.cells_stopped,
        report.messages_undelivered,
        report.failures,
        if report.is_clean() { "clean" } else { "NOT clean" }
    );
    Ok(())
}
