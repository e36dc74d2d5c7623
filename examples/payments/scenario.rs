//! The payments topology of seed 004 and the run that drives it, shared by
//! the example (`payments.rs`: a progress bar, then the summary) and its
//! test (`tests/payments.rs`: the run checked).
//!
//! ```text
//! load ──► gateway ──► fraud ─────────────────► ledger ──breaker──► notify
//!                       │ kinds: card, legacy     (sled: one        (flaky; its low
//!                       │                          entry a payment)   class may be shed)
//!                       └─► fraud/legacy  (once the runtime isolates the legacy kind)
//!                            └─► the rules engine (canary, then promoted)
//! ```
//!
//! Every cell is a child of the supervisor `/payments`. The recomposition
//! engine manages `fraud` (variant `rules`, isolated kinds on the `legacy`
//! dispatcher) and `notify` (kind `low` sheddable) in automatic mode, and
//! two chaos experiments test hypotheses about the topology:
//!
//! 1. **legacy slows**: the legacy check takes `legacy_slow` more; the
//!    hypothesis that card checks stay fast fails until the engine isolates
//!    the legacy kind;
//! 2. **legacy slower, notify failing**: the legacy check takes
//!    `legacy_slower` more, and notify fails 30 % of its notices and slows;
//!    the hypothesis is that the ledger records every payment that reaches
//!    it and card checks stay fast. Notify's objective burns, so the engine
//!    sheds its low class; the isolated legacy cell decays, so the engine
//!    tries the rules engine on a share of its traffic and promotes it.
//!
//! Then the faults are gone and the load goes on: recovery.

use std::error::Error;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{
    Addr, BreakerConfig, BreakerState, BurnAlert, BurnWindows, CallOutcome, Cell, CellConfig, CellError,
    CellPath, ChildSpec, CircuitBreaker, Context, Delay, Experiment, Fault, FaultKind, FaultSet,
    JournalQuery, Layout, LearningMeasures, Metric, Mode, Objective, ObservationConfig, Permit, Plan,
    PlanStatus, PlanStep, Predicate, Recomposable, RecomposeConfig, Recomposer, Report, Runtime, SignalKind,
    SlidingWindow, Span, StorageConfig, SupervisorSpec, Target,
};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- config

/// The shape of one run.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// How long the load runs, all phases together.
    pub(crate) duration: Duration,
    /// Payments a second; one in five is a card payment, the others legacy.
    pub(crate) rate: u32,
    /// The runtime's analysis window.
    pub(crate) window: Duration,
    /// What the legacy check costs in the baseline.
    pub(crate) legacy_cost: Duration,
    /// The latency the first experiment adds to each legacy check.
    pub(crate) legacy_slow: Duration,
    /// The latency the second experiment adds to each legacy check.
    pub(crate) legacy_slower: Duration,
    /// How long a payment may take before it is no longer worth checking:
    /// one still queued then is dead-lettered as expired.
    pub(crate) deadline: Duration,
    /// Where the data lives (sled); a fresh temporary directory if `None`.
    pub(crate) data_dir: Option<PathBuf>,
    /// Where the HTML report of the run is written; none if `None`.
    pub(crate) report: Option<PathBuf>,
}

impl Config {
    /// The default run: `duration` of load (24 s unless told).
    pub(crate) fn standard(duration: Duration) -> Config {
        Config {
            duration,
            rate: 150,
            window: Duration::from_millis(100),
            legacy_cost: Duration::from_micros(300),
            legacy_slow: Duration::from_millis(6),
            legacy_slower: Duration::from_millis(20),
            deadline: Duration::from_secs(2),
            data_dir: None,
            report: None,
        }
    }

    /// A short run for CI: every phase, about 10 s of load.
    pub(crate) fn quick() -> Config {
        Config::standard(Duration::from_secs(10))
    }

    /// How long each phase lasts: baseline, legacy slows, legacy slower and
    /// notify failing, recovery (which ends the run: what the second
    /// experiment's recovery measurement leaves of it).
    fn phase_lengths(&self) -> [Duration; 4] {
        // Below this, the rules have not enough windows to act in.
        let least = [15, 20, 24, 15].map(|windows| self.window * windows);
        let share = [0.2, 0.25, 0.3, 0.25];
        let mut lengths = [Duration::ZERO; 4];
        for i in 0..4 {
            lengths[i] = self.duration.mul_f64(share[i]).max(least[i]);
        }
        lengths
    }
}

/// The phases, in order.
pub(crate) const PHASES: [&str; 4] = ["baseline", "chaos: legacy slows", "chaos: notify fails", "recovery"];

// ---------------------------------------------------------------- messages

/// What a payment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Kind {
    /// A card payment: checked by the current rules, fast.
    Card,
    /// A legacy transaction type: checked by the legacy code path.
    Legacy,
}

/// One payment, from the load generator to the ledger.
#[derive(Debug)]
pub(crate) struct Payment {
    id: u64,
    kind: Kind,
    cents: u64,
    sent: Instant,
    /// Which check passed it: `"fraud"` or `"rules"` (empty until checked).
    checked_by: &'static str,
}

fn payment_kind(payment: &Payment) -> &'static str {
    match payment.kind {
        Kind::Card => "card",
        Kind::Legacy => "legacy",
    }
}

/// The ledger's entry for a payment, as stored.
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    kind: Kind,
    cents: u64,
    /// Which check passed it: `"fraud"` or `"rules"`.
    checked_by: String,
}

/// A notice to the payer: `High` for large payments (a receipt), `Low` for
/// the others (a summary mail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    High,
    Low,
}

/// A notice, carrying the breaker's permit for the call it is.
struct Notice {
    class: Class,
    attempt: Attempt,
}

/// A call through the notify breaker: recorded as a success when notify
/// handled the notice, as a failure when the notice is dropped unhandled
/// (notify failed on it, or could not take it), and not at all when it is
/// released (shed: notify did not fail, it was protected).
struct Attempt {
    permit: Option<Permit>,
    sent: Instant,
}

impl Attempt {
    fn succeed(mut self) {
        if let Some(permit) = self.permit.take() {
            permit.record(CallOutcome::Success, self.sent.elapsed());
        }
    }

    fn release(mut self) {
        self.permit.take();
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            permit.record(CallOutcome::Failure, self.sent.elapsed());
        }
    }
}

// ---------------------------------------------------------------- counts

/// What became of the payments and notices, counted where it happens.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    /// Refused on the way (a full or closed mailbox): handed back, counted.
    refused: AtomicU64,
    recorded: AtomicU64,
    recorded_card: AtomicU64,
    recorded_legacy: AtomicU64,
    checked_by_rules: AtomicU64,
    notices_delivered: AtomicU64,
    notices_shed: AtomicU64,
    notices_full: AtomicU64,
    notices_breaker_open: AtomicU64,
    /// The phase the run is in (an index into `PHASES`).
    phase: AtomicUsize,
    /// Payments recorded: when, how long since sent, which kind, which phase.
    latencies: Mutex<Vec<Recorded>>,
}

#[derive(Clone, Copy)]
struct Recorded {
    at: Instant,
    latency: Duration,
    kind: Kind,
    phase: usize,
}

impl Tally {
    fn latencies(&self) -> std::sync::MutexGuard<'_, Vec<Recorded>> {
        self.latencies.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The 99th percentile latency of `kind` over the records `keep` selects.
    fn p99(&self, kind: Kind, keep: impl Fn(&Recorded) -> bool) -> Option<Duration> {
        let mut window: Vec<Duration> =
            self.latencies().iter().filter(|r| r.kind == kind && keep(r)).map(|r| r.latency).collect();
        percentile(&mut window, 0.99)
    }
}

fn percentile(values: &mut [Duration], q: f64) -> Option<Duration> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((values.len() as f64) * q).ceil() as usize;
    Some(values[rank.clamp(1, values.len()) - 1])
}

// ---------------------------------------------------------------- cells

/// The front door: validates a payment and passes it on with its deadline.
struct Gateway {
    fraud: Addr<Payment>,
    tally: Arc<Tally>,
}

impl Cell for Gateway {
    type Message = Payment;

    fn handle(&mut self, ctx: &mut Context<Self>, payment: Payment) -> Result<(), CellError> {
        if payment.cents == 0 {
            return Err(CellError::msg(format!("payment {} has no amount", payment.id)));
        }
        forward(&self.fraud, ctx.deadline(), payment, &self.tally);
        Ok(())
    }

    fn message_kind(payment: &Payment) -> &'static str {
        payment_kind(payment)
    }
}

/// Passes a payment on with its deadline; a refusal is counted.
fn forward(to: &Addr<Payment>, deadline: Option<Instant>, payment: Payment, tally: &Tally) {
    let sent = match deadline {
        Some(deadline) => to.try_send_by(payment, deadline),
        None => to.try_send(payment),
    };
    if sent.is_err() {
        tally.refused.fetch_add(1, Relaxed);
    }
}

/// The fraud check of seed 004: card payments by the current rules, legacy
/// transactions by the legacy code path, which costs `legacy_cost` each.
pub(crate) struct Fraud {
    ledger: Addr<Payment>,
    legacy_cost: Duration,
    tally: Arc<Tally>,
}

impl Cell for Fraud {
    type Message = Payment;

    fn handle(&mut self, ctx: &mut Context<Self>, payment: Payment) -> Result<(), CellError> {
        if payment.kind == Kind::Legacy {
            // The legacy path calls out to an old scoring service.
            thread::sleep(self.legacy_cost);
        }
        let payment = Payment { checked_by: "fraud", ..payment };
        forward(&self.ledger, ctx.deadline(), payment, &self.tally);
        Ok(())
    }

    fn message_kind(payment: &Payment) -> &'static str {
        payment_kind(payment)
    }
}

/// The new rules engine, registered as a variant of the fraud cell: checks
/// both kinds without the legacy path.
struct RulesEngine {
    ledger: Addr<Payment>,
    tally: Arc<Tally>,
}

impl Cell for RulesEngine {
    type Message = Payment;

    fn handle(&mut self, ctx: &mut Context<Self>, payment: Payment) -> Result<(), CellError> {
        self.tally.checked_by_rules.fetch_add(1, Relaxed);
        let payment = Payment { checked_by: "rules", ..payment };
        forward(&self.ledger, ctx.deadline(), payment, &self.tally);
        Ok(())
    }

    fn message_kind(payment: &Payment) -> &'static str {
        payment_kind(payment)
    }
}

/// Records each payment in its sled tree (one entry per payment), then
/// notifies the payer through the notify breaker.
struct Ledger {
    notify: Addr<Notice>,
    breaker: CircuitBreaker,
    tally: Arc<Tally>,
}

impl Cell for Ledger {
    type Message = Payment;

    fn handle(&mut self, ctx: &mut Context<Self>, payment: Payment) -> Result<(), CellError> {
        let store = ctx.store().map_err(|err| CellError::msg(format!("the ledger's tree: {err}")))?;
        let entry =
            Entry { kind: payment.kind, cents: payment.cents, checked_by: payment.checked_by.to_owned() };
        store
            .put(payment.id, &entry)
            .map_err(|err| CellError::msg(format!("recording {}: {err}", payment.id)))?;
        let tally = &self.tally;
        tally.latencies().push(Recorded {
            at: Instant::now(),
            latency: payment.sent.elapsed(),
            kind: payment.kind,
            phase: tally.phase.load(Relaxed),
        });
        match payment.kind {
            Kind::Card => tally.recorded_card.fetch_add(1, Relaxed),
            Kind::Legacy => tally.recorded_legacy.fetch_add(1, Relaxed),
        };
        let class = if payment.cents >= 10_000 { Class::High } else { Class::Low };
        match self.breaker.try_acquire() {
            Err(_) => {
                tally.notices_breaker_open.fetch_add(1, Relaxed);
            }
            Ok(permit) => {
                let notice =
                    Notice { class, attempt: Attempt { permit: Some(permit), sent: Instant::now() } };
                match self.notify.try_send(notice) {
                    Ok(()) => {}
                    Err(cellrt::SendError::Shed(notice)) => {
                        notice.attempt.release();
                        tally.notices_shed.fetch_add(1, Relaxed);
                    }
                    // Full or closed: the attempt, dropped, counts as a failed call.
                    Err(_) => {
                        tally.notices_full.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        // Counted last: a payment recorded has its notice accounted for.
        tally.recorded.fetch_add(1, Relaxed);
        Ok(())
    }

    fn message_kind(payment: &Payment) -> &'static str {
        payment_kind(payment)
    }
}

/// Sends the payer a notice (a call to a mail service that takes
/// `NOTIFY_COST`).
struct Notify {
    tally: Arc<Tally>,
}

const NOTIFY_COST: Duration = Duration::from_micros(200);

/// The latency the second experiment adds to every notice.
const NOTIFY_SLOW: Duration = Duration::from_millis(6);

impl Cell for Notify {
    type Message = Notice;

    fn handle(&mut self, _: &mut Context<Self>, notice: Notice) -> Result<(), CellError> {
        thread::sleep(NOTIFY_COST);
        notice.attempt.succeed();
        self.tally.notices_delivered.fetch_add(1, Relaxed);
        Ok(())
    }

    fn message_kind(notice: &Notice) -> &'static str {
        match notice.class {
            Class::High => "high",
            Class::Low => "low",
        }
    }
}

// ---------------------------------------------------------------- progress

/// What the run shows while it runs, about four times a second.
#[derive(Clone, Debug)]
pub(crate) struct Progress {
    /// Since the load began.
    pub(crate) elapsed: Duration,
    /// The load's planned length.
    pub(crate) total: Duration,
    /// The current phase.
    pub(crate) phase: &'static str,
    /// Payments sent so far.
    pub(crate) sent: u64,
    /// Payments recorded over the last second.
    pub(crate) per_second: f64,
    /// p99 latency (sent to recorded) over the last two seconds, by kind.
    pub(crate) card_p99: Option<Duration>,
    /// See `card_p99`.
    pub(crate) legacy_p99: Option<Duration>,
    /// The latest recomposition step: plan, rule, status.
    pub(crate) last_plan: Option<String>,
}

/// Receives the progress of a run.
pub(crate) type OnProgress = Box<dyn Fn(&Progress) + Send>;

// ---------------------------------------------------------------- the run

/// The payments topology, running.
struct Topology {
    runtime: Runtime,
    engine: Recomposer,
    gateway: Addr<Payment>,
    fraud: Addr<Payment>,
    notify: Addr<Notice>,
    breaker: CircuitBreaker,
    tally: Arc<Tally>,
}

const PATIENCE: Duration = Duration::from_secs(10);

fn start(config: &Config, dir: &std::path::Path) -> Result<Topology, Box<dyn Error>> {
    let window = config.window;
    // Burn-rate windows scaled to the run: a paging (fast) alert over 10
    // analysis windows, cleared within 2.
    let burn = BurnWindows::new()
        .window(BurnAlert::Fast, window * 10, window * 2)
        .window(BurnAlert::Slow, window * 120, window * 10)
        .window(BurnAlert::Ticket, window * 600, window * 60);
    let runtime = Runtime::builder()
        .worker_threads(2)
        .dispatcher("fraud", 1)
        .dispatcher("legacy", 1)
        .dispatcher("notify", 1)
        .default_capacity(100_000)
        .dead_letter_capacity(1 << 20)
        .observation(ObservationConfig::default().window(window).sample_every(1).burn_windows(burn))
        .storage(StorageConfig::dir(dir).create_missing(true))
        .build()?;
    let tally = Arc::new(Tally::default());
    let breaker = runtime.breaker(
        "notify",
        BreakerConfig::default()
            .failure_rate_threshold(50.0)
            .sliding_window(SlidingWindow::Count(40))
            .minimum_calls(20)
            .wait_in_open(window * 3)
            .permitted_in_half_open(4)
            .slow_call_duration(Duration::from_secs(1)),
    )?;

    // Notify fails under chaos: its restarts must not exhaust the
    // supervisor, which restarts it in place each time.
    let spec = SupervisorSpec::new("payments").intensity(1_000_000, Duration::from_secs(1)).child({
        let tally = tally.clone();
        ChildSpec::new("notify", move || Notify { tally: tally.clone() }).dispatcher("notify").capacity(64)
    });
    let supervisor = runtime.start_supervisor(spec, PATIENCE)?;
    let notify = supervisor.child::<Notice>("notify").ok_or("no notify")?;

    let (n, b, t) = (notify.clone(), breaker.clone(), tally.clone());
    let ledger = move || Ledger { notify: n.clone(), breaker: b.clone(), tally: t.clone() };
    supervisor.start_child(ChildSpec::new("ledger", ledger), PATIENCE)?;
    let ledger = supervisor.child::<Payment>("ledger").ok_or("no ledger")?;

    let (l, t, cost) = (ledger.clone(), tally.clone(), config.legacy_cost);
    let fraud = move || Fraud { ledger: l.clone(), legacy_cost: cost, tally: t.clone() };
    supervisor.start_child(ChildSpec::new("fraud", fraud.clone()).dispatcher("fraud"), PATIENCE)?;
    let fraud_addr = supervisor.child::<Payment>("fraud").ok_or("no fraud")?;

    let (f, t) = (fraud_addr.clone(), tally.clone());
    supervisor.start_child(
        ChildSpec::new("gateway", move || Gateway { fraud: f.clone(), tally: t.clone() }),
        PATIENCE,
    )?;
    let gateway = supervisor.child::<Payment>("gateway").ok_or("no gateway")?;

    // Notify's objective: 99 % of notices delivered. Its paging alert is
    // what lets the engine shed the low class.
    runtime.set_objective(notify.path(), Some(Objective::success_ratio(0.99)?));

    // A kind is isolated when it takes three quarters of a strained cell's
    // handling time (0.6 by default): notify's two classes, each about half
    // of its work, stay together, and its overload is shed instead.
    let engine = Recomposer::new(&runtime, RecomposeConfig::default().mode(Mode::Auto).isolate_share(0.75))?;
    let (l, t) = (ledger.clone(), tally.clone());
    let rules = move || RulesEngine { ledger: l.clone(), tally: t.clone() };
    engine.manage(
        &fraud_addr,
        Recomposable::new(fraud).variant("rules", rules).isolate_with(CellConfig::new().dispatcher("legacy")),
    )?;
    let t = tally.clone();
    engine.manage(&notify, Recomposable::new(move || Notify { tally: t.clone() }).sheddable("low"))?;
    Ok(Topology { runtime, engine, gateway, fraud: fraud_addr, notify, breaker, tally })
}

/// Sends `rate` payments a second until `stop`, one in five a card
/// payment; amounts from 1 to 200 dollars, every other one at least 100.
fn load(gateway: Addr<Payment>, tally: Arc<Tally>, rate: u32, deadline: Duration, stop: Arc<AtomicBool>) {
    let start = Instant::now();
    let mut id: u64 = 0;
    while !stop.load(Relaxed) {
        let kind = if id.is_multiple_of(5) { Kind::Card } else { Kind::Legacy };
        // A fixed scramble of the id: the same amounts every run; every
        // other payment is a large one (100 dollars or more).
        let cents = 100 + (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 9_900 + (id % 2) * 10_000;
        let payment = Payment { id, kind, cents, sent: Instant::now(), checked_by: "" };
        tally.sent.fetch_add(1, Relaxed);
        if gateway.try_send_by(payment, Instant::now() + deadline).is_err() {
            tally.refused.fetch_add(1, Relaxed);
        }
        id += 1;
        let due = start + Duration::from_nanos(id * 1_000_000_000 / u64::from(rate.max(1)));
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            thread::sleep(wait);
        }
    }
}

/// A latency fault on the legacy checks of the fraud cell type, wherever
/// the fraud cell type runs them (the managed cell, or the cell the legacy
/// kind is isolated into), never on the rules engine.
fn legacy_latency(latency: Duration, seed: u64) -> Result<Fault, Box<dyn Error>> {
    let target = Target::cells("/payments/fraud**")?
        .and_cell_type(std::any::type_name::<Fraud>())?
        .message_kind("legacy")?;
    Ok(Fault::builder(target, FaultKind::Latency(Delay::Fixed(latency))).seed(seed).build()?)
}

/// "Card checks stay fast while legacy is slow."
fn card_checks_fast() -> Result<Predicate, Box<dyn Error>> {
    Ok(Predicate::p99_at_most(&"/payments/fraud".parse()?, CARD_CHECK))
}

/// The handling time the card check must stay within.
pub(crate) const CARD_CHECK: Duration = Duration::from_millis(4);

fn experiments(config: &Config, lengths: &[Duration; 4]) -> Result<[Experiment; 2], Box<dyn Error>> {
    let slows = Experiment::builder("legacy slows")
        .hypothesis(card_checks_fast()?)
        .hypothesis(Predicate::no_dead_letters("card"))
        .faults(FaultSet::from(legacy_latency(config.legacy_slow, 1)?))
        .blast_radius("/payments/fraud**")
        .control(Span::For(lengths[0]))
        .fault_phase(Span::For(lengths[1]))
        .build()?;
    let notify: CellPath = "/payments/notify".parse()?;
    let failing = Fault::builder(Target::cells("/payments/notify")?, FaultKind::Error)
        .probability(0.3)
        .seed(2)
        .build()?;
    let slow =
        Fault::builder(Target::cells("/payments/notify")?, FaultKind::Latency(Delay::Fixed(NOTIFY_SLOW)))
            .seed(3)
            .build()?;
    let slower = Experiment::builder("legacy slower, notify failing")
        .hypothesis(card_checks_fast()?)
        .hypothesis(Predicate::error_share_at_most(&"/payments/ledger".parse()?, 0.0))
        .observe(&notify)
        .faults([legacy_latency(config.legacy_slower, 4)?, failing, slow].into_iter().collect::<FaultSet>())
        .blast_radius("/payments/fraud**")
        .blast_radius("/payments/notify")
        .control(Span::For(config.window * 3))
        .fault_phase(Span::For(lengths[2].saturating_sub(config.window * 3)))
        .recovery(Span::For(config.window * 5), 3)
        .build()?;
    Ok([slows, slower])
}

/// Runs the scenario: starts the topology, loads it through the four
/// phases and the two experiments, waits until every payment and notice
/// is accounted for, and stops the runtime. `on_progress` is called about
/// four times a second from a thread of its own.
pub(crate) fn run(config: Config, on_progress: Option<OnProgress>) -> Result<RunReport, Box<dyn Error>> {
    let (_temp, dir) = match &config.data_dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let temp = tempfile::Builder::new().prefix("cellrt-payments-").tempdir()?;
            let dir = temp.path().to_owned();
            (Some(temp), dir)
        }
    };
    let lengths = config.phase_lengths();
    let topology = start(&config, &dir)?;
    let tally = topology.tally.clone();
    let [slows, slower] = experiments(&config, &lengths)?;

    // The journal marks each phase as it begins and the storage keeps a
    // snapshot every half second: what the HTML report is drawn from.
    let recording = AtomicBool::new(true);
    let report = thread::scope(|scope| {
        let recorder = scope.spawn(|| record(&topology.runtime, &tally, &recording));
        let ended = Recording(&recording);
        let report = drive(&config, &topology, &lengths, [slows, slower], on_progress);
        drop(ended);
        let recorded = recorder.join().map_err(|_| "the recorder panicked")?;
        let mut report = report?;
        recorded?;
        if let Some(page) = &config.report {
            cellrt::report::Report::from_runtime(&topology.runtime).title("payments").write_to(page)?;
            report.page = Some(page.clone());
        }
        Ok(report)
    });
    topology.runtime.shutdown(PATIENCE);
    report
}

/// Stops the recorder when dropped, on every way out of the run.
struct Recording<'a>(&'a AtomicBool);

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// How often the recorder keeps a snapshot of the runtime.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(500);

/// Marks each phase in the journal as the load enters it and records a
/// snapshot of the runtime every [`SNAPSHOT_EVERY`], until `recording`
/// turns false; then records a last one.
fn record(runtime: &Runtime, tally: &Tally, recording: &AtomicBool) -> Result<(), String> {
    let mut marked = None;
    let mut next = Instant::now();
    while recording.load(Relaxed) {
        let phase = tally.phase.load(Relaxed).min(3);
        if marked != Some(phase) {
            let name = PHASES[phase];
            runtime.mark_phase(name).map_err(|err| format!("marking the phase {name}: {err}"))?;
            marked = Some(phase);
        }
        if Instant::now() >= next {
            runtime.record_snapshot().map_err(|err| format!("recording a snapshot: {err}"))?;
            next += SNAPSHOT_EVERY;
        }
        thread::sleep(Duration::from_millis(20));
    }
    runtime.record_snapshot().map_err(|err| format!("recording the last snapshot: {err}"))?;
    Ok(())
}

/// Loads the topology through the four phases and the two experiments and
/// waits until every payment and notice is accounted for and every plan
/// has its verdict.
fn drive(
    config: &Config,
    topology: &Topology,
    lengths: &[Duration; 4],
    [slows, slower]: [Experiment; 2],
    on_progress: Option<OnProgress>,
) -> Result<RunReport, Box<dyn Error>> {
    let total: Duration = lengths.iter().sum();
    let tally = &topology.tally;
    let stop = Arc::new(AtomicBool::new(false));
    let began = Instant::now();
    let generator = {
        let (gateway, tally, stop) = (topology.gateway.clone(), tally.clone(), stop.clone());
        let (rate, deadline) = (config.rate, config.deadline);
        thread::Builder::new()
            .name("load".into())
            .spawn(move || load(gateway, tally, rate, deadline, stop))?
    };
    let monitor_stop = Arc::new(AtomicBool::new(false));
    let monitor = on_progress.map(|show| {
        let (tally, stop, engine) = (tally.clone(), monitor_stop.clone(), topology.engine.clone());
        thread::spawn(move || monitor(&show, &tally, &engine, began, total, &stop))
    });

    // Baseline, then the first experiment's faults: its control phase is
    // the baseline.
    let phase_timer = {
        let (tally, stop, lengths) = (tally.clone(), monitor_stop.clone(), *lengths);
        thread::spawn(move || {
            let at = began + lengths[0];
            while Instant::now() < at && !stop.load(Relaxed) {
                thread::sleep(Duration::from_millis(5));
            }
            if tally.phase.load(Relaxed) == 0 {
                tally.phase.store(1, Relaxed);
            }
        })
    };
    let first = slows.run(&topology.runtime)?;
    let _ = phase_timer.join();
    tally.phase.store(2, Relaxed);
    let phase_2 = began.elapsed();
    let second = slower.run(&topology.runtime)?;
    tally.phase.store(3, Relaxed);
    let phase_3 = began.elapsed();
    while began.elapsed() < total.max(phase_3 + lengths[3]) {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Relaxed);
    generator.join().map_err(|_| "the load generator panicked")?;
    let ended = began.elapsed();

    // Everything sent ends somewhere: wait for the last of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counts = count(topology);
    while !(counts.0.settled() && counts.1.settled()) {
        if Instant::now() > deadline {
            return Err(format!("not everything was accounted for: {:?} {:?}", counts.0, counts.1).into());
        }
        thread::sleep(Duration::from_millis(10));
        counts = count(topology);
    }
    monitor_stop.store(true, Relaxed);
    if let Some(monitor) = monitor {
        let _ = monitor.join();
    }
    // Plans still being evaluated get their verdict before the summary.
    let deadline = Instant::now() + config.window * 20;
    while topology.engine.plans().iter().any(|p| !p.status.is_final()) && Instant::now() < deadline {
        thread::sleep(config.window);
    }

    let phases = [Duration::ZERO, lengths[0].min(phase_2), phase_2, phase_3];
    let card_p99 = [0, 1, 2, 3].map(|phase| tally.p99(Kind::Card, |r| r.phase == phase));
    // The recovered card latency: over the second half of the recovery.
    let settled = began + phase_3 + (ended.saturating_sub(phase_3)) / 2;
    let card_p99_recovered = tally.p99(Kind::Card, |r| r.at >= settled);
    Ok(RunReport {
        data_dir: config.data_dir.clone(),
        page: None,
        load: ended,
        phases,
        experiments: vec![first, second],
        plans: topology.engine.plans(),
        fraud: topology.engine.layout(topology.fraud.path()),
        notify: topology.engine.layout(topology.notify.path()),
        measures: topology.runtime.snapshot().measures,
        payments: counts.0,
        notices: counts.1,
        card_p99,
        card_p99_recovered,
        breaker_opened: breaker_opened(&topology.runtime),
        breaker_end: topology.breaker.state(),
        chains: chains(&topology.runtime),
    })
}

fn monitor(
    show: &OnProgress,
    tally: &Tally,
    engine: &Recomposer,
    began: Instant,
    total: Duration,
    stop: &AtomicBool,
) {
    let mut last = (Instant::now(), 0u64);
    let mut rate = 0.0;
    while !stop.load(Relaxed) {
        thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let recorded = tally.recorded.load(Relaxed);
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            rate = (recorded - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, recorded);
        }
        let recent = |r: &Recorded| now.duration_since(r.at) <= Duration::from_secs(2);
        let last_plan =
            engine.plans().last().map(|plan| format!("plan {} {} {}", plan.id, plan.rule, status(plan)));
        show(&Progress {
            elapsed: began.elapsed(),
            total,
            phase: PHASES[tally.phase.load(Relaxed).min(3)],
            sent: tally.sent.load(Relaxed),
            per_second: rate,
            card_p99: tally.p99(Kind::Card, recent),
            legacy_p99: tally.p99(Kind::Legacy, recent),
            last_plan,
        });
    }
}

fn status(plan: &Plan) -> &'static str {
    match plan.status {
        PlanStatus::Pending => "pending",
        PlanStatus::Applied { .. } => "applied",
        PlanStatus::Kept { .. } => "kept",
        PlanStatus::Reverted { .. } => "reverted",
        PlanStatus::Rejected { .. } => "rejected",
        PlanStatus::Failed { .. } => "failed",
        _ => "changed",
    }
}

fn count(topology: &Topology) -> (PaymentCounts, NoticeCounts) {
    let tally = &topology.tally;
    let mut payments_dead = 0;
    let mut payments_expired = 0;
    let mut notices_failed = 0;
    for letter in topology.runtime.dead_letters() {
        let failure = letter.failure();
        let path = failure.path.to_string();
        if path.starts_with("/payments/notify") {
            notices_failed += 1;
        } else {
            payments_dead += 1;
            if matches!(failure.cause, cellrt::FailureCause::Expired { .. }) {
                payments_expired += 1;
            }
        }
    }
    let recorded = tally.recorded.load(Relaxed);
    let payments = PaymentCounts {
        sent: tally.sent.load(Relaxed),
        recorded,
        card: tally.recorded_card.load(Relaxed),
        legacy: tally.recorded_legacy.load(Relaxed),
        checked_by_rules: tally.checked_by_rules.load(Relaxed),
        dead_lettered: payments_dead,
        expired: payments_expired,
        refused: tally.refused.load(Relaxed),
    };
    let notices = NoticeCounts {
        made: recorded,
        delivered: tally.notices_delivered.load(Relaxed),
        failed: notices_failed,
        shed: tally.notices_shed.load(Relaxed),
        full: tally.notices_full.load(Relaxed),
        breaker_open: tally.notices_breaker_open.load(Relaxed),
    };
    (payments, notices)
}

fn breaker_opened(runtime: &Runtime) -> u64 {
    let query = JournalQuery::new().cell(CellPath::breaker("notify").expect("a valid breaker name"));
    runtime
        .journal(&query)
        .iter()
        .filter(|signal| matches!(&signal.kind, SignalKind::BreakerTransition { to, .. } if *to == BreakerState::Open))
        .count() as u64
}

/// Each plan's steps as the journal has them, in order.
fn chains(runtime: &Runtime) -> Vec<(u64, Vec<String>)> {
    let mut chains: Vec<(u64, Vec<String>)> = Vec::new();
    for signal in runtime.journal(&JournalQuery::new()) {
        if let SignalKind::Plan { plan, step, .. } = &signal.kind {
            let step = match step {
                PlanStep::Proposed => "proposed",
                PlanStep::Approved => "approved",
                PlanStep::Rejected { .. } => "rejected",
                PlanStep::Applied => "applied",
                PlanStep::Failed { .. } => "failed",
                PlanStep::Kept { .. } => "kept",
                PlanStep::Reverted { .. } => "reverted",
                _ => "other",
            };
            match chains.iter_mut().find(|(id, _)| id == plan) {
                Some((_, steps)) => steps.push(step.to_owned()),
                None => chains.push((*plan, vec![step.to_owned()])),
            }
        }
    }
    chains
}

// ---------------------------------------------------------------- the report

/// What became of the payments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PaymentCounts {
    /// Sent by the load generator.
    pub(crate) sent: u64,
    /// Recorded by the ledger (handled).
    pub(crate) recorded: u64,
    /// Of `recorded`, card payments.
    pub(crate) card: u64,
    /// Of `recorded`, legacy transactions.
    pub(crate) legacy: u64,
    /// Checked by the rules engine (canary and promoted).
    pub(crate) checked_by_rules: u64,
    /// In the dead letters (failed or expired on the way).
    pub(crate) dead_lettered: u64,
    /// Of `dead_lettered`, expired: still queued past their deadline.
    pub(crate) expired: u64,
    /// Refused by a full or closed mailbox on the way.
    pub(crate) refused: u64,
}

impl PaymentCounts {
    /// Every payment sent is recorded, dead-lettered or refused.
    pub(crate) fn settled(&self) -> bool {
        self.recorded + self.dead_lettered + self.refused == self.sent
    }
}

/// What became of the notices (one per recorded payment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct NoticeCounts {
    /// Made by the ledger.
    pub(crate) made: u64,
    /// Delivered by notify.
    pub(crate) delivered: u64,
    /// Failed at notify: in the dead letters.
    pub(crate) failed: u64,
    /// Shed by notify's address (the engine's shedding of the low class).
    pub(crate) shed: u64,
    /// Refused by a full notify mailbox.
    pub(crate) full: u64,
    /// Not sent: the breaker was open.
    pub(crate) breaker_open: u64,
}

impl NoticeCounts {
    /// Every notice made is delivered, failed, shed, refused or held back.
    pub(crate) fn settled(&self) -> bool {
        self.delivered + self.failed + self.shed + self.full + self.breaker_open == self.made
    }
}

/// The outcome of a run.
#[derive(Debug)]
pub(crate) struct RunReport {
    /// The data directory, when it was given (a temporary one is removed).
    pub(crate) data_dir: Option<PathBuf>,
    /// The HTML report's file, when one was asked for.
    pub(crate) page: Option<PathBuf>,
    /// How long the load ran.
    pub(crate) load: Duration,
    /// When each phase began, from the start of the load.
    pub(crate) phases: [Duration; 4],
    /// The experiments' reports: legacy slows; legacy slower, notify failing.
    pub(crate) experiments: Vec<Report>,
    /// Every plan the engine made, in order.
    pub(crate) plans: Vec<Plan>,
    /// The fraud cell's layout at the end.
    pub(crate) fraud: Option<Layout>,
    /// Notify's layout at the end.
    pub(crate) notify: Option<Layout>,
    /// The learning measures at the end.
    pub(crate) measures: LearningMeasures,
    /// What became of the payments.
    pub(crate) payments: PaymentCounts,
    /// What became of the notices.
    pub(crate) notices: NoticeCounts,
    /// Card payments' p99 latency (sent to recorded) by phase.
    pub(crate) card_p99: [Option<Duration>; 4],
    /// Card payments' p99 latency over the second half of the recovery.
    pub(crate) card_p99_recovered: Option<Duration>,
    /// How many times the notify breaker opened.
    pub(crate) breaker_opened: u64,
    /// The notify breaker's state at the end.
    pub(crate) breaker_end: BreakerState,
    /// Each plan's steps in the journal.
    pub(crate) chains: Vec<(u64, Vec<String>)>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".to_owned(), |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "load: {:.1} s; phases began at {}", self.load.as_secs_f64(), {
            let at: Vec<String> = PHASES
                .iter()
                .zip(self.phases)
                .map(|(p, at)| format!("{p} {:.1} s", at.as_secs_f64()))
                .collect();
            at.join(", ")
        })?;
        writeln!(f, "\nhypotheses")?;
        for report in &self.experiments {
            writeln!(f, "  {}: {}", report.name, report.outcome)?;
            for predicate in &report.predicates {
                let value = |v: &Option<cellrt::PhaseValue>| match v {
                    Some(v) => format!(
                        "{}{}",
                        v.value.map_or("-".to_owned(), |x| format!("{x:.4}")),
                        if v.holds { " ✓" } else { " ✗" }
                    ),
                    None => "-".to_owned(),
                };
                writeln!(
                    f,
                    "    {}: control {}, fault {}, recovery {}",
                    predicate.predicate,
                    value(&predicate.control),
                    value(&predicate.fault),
                    value(&predicate.recovery)
                )?;
            }
            for finding in &report.findings {
                writeln!(f, "    finding [{}] {}", finding.category, finding.verdict)?;
            }
        }
        writeln!(f, "\nrecomposition (the engine's own plans)")?;
        for plan in &self.plans {
            let outcome = match &plan.status {
                PlanStatus::Kept { before, after, met } => {
                    let metric = plan.expected.metric();
                    let value = |v: f64| match metric {
                        Metric::QueueDelay => format!("{:.3} ms", v * 1e3),
                        _ => format!("{v:.3}"),
                    };
                    format!(
                        "kept ({metric} {} → {}; expected: {}, {})",
                        value(*before),
                        value(*after),
                        plan.expected,
                        if *met { "met" } else { "not met" }
                    )
                }
                PlanStatus::Reverted { reason } => format!("reverted ({reason})"),
                other => status_words(other),
            };
            writeln!(f, "  plan {} [{}] {}: {}", plan.id, plan.rule, plan.description(), outcome)?;
        }
        if let Some(layout) = &self.fraud {
            for kind in &layout.isolated {
                writeln!(
                    f,
                    "  fraud kind {} now runs in {} (variant {})",
                    kind.kind, kind.cell, kind.variant
                )?;
            }
        }
        if let Some(kind) = self.notify.as_ref().and_then(|l| l.shedding.as_ref()) {
            writeln!(f, "  notify sheds kind {kind} when its mailbox fills")?;
        }
        for (plan, steps) in &self.chains {
            writeln!(f, "  journal, plan {plan}: {}", steps.join(" → "))?;
        }
        let m = &self.measures;
        writeln!(
            f,
            "\nlearning: {} plans applied, {} kept, {} reverted; velocity onset → applied {}, onset → kept {}",
            m.plans_applied,
            m.plans_kept,
            m.plans_reverted,
            ms(m.velocity_to_applied),
            ms(m.velocity_to_kept)
        )?;
        writeln!(
            f,
            "card p99 (sent → recorded): baseline {}, legacy slows {}, notify fails {}, recovered {}",
            ms(self.card_p99[0]),
            ms(self.card_p99[1]),
            ms(self.card_p99[2]),
            ms(self.card_p99_recovered)
        )?;
        let p = &self.payments;
        writeln!(
            f,
            "payments: {} sent = {} recorded ({} card, {} legacy; {} checked by the rules engine) + {} dead-lettered ({} expired) + {} refused",
            p.sent, p.recorded, p.card, p.legacy, p.checked_by_rules, p.dead_lettered, p.expired, p.refused
        )?;
        let n = &self.notices;
        writeln!(
            f,
            "notices: {} made = {} delivered + {} dead-lettered + {} shed + {} refused (full) + {} held back (breaker open, opened {} times, now {})",
            n.made, n.delivered, n.failed, n.shed, n.full, n.breaker_open, self.breaker_opened, self.breaker_end.as_str()
        )?;
        if let Some(dir) = &self.data_dir {
            writeln!(f, "data: {}", dir.display())?;
        }
        if let Some(page) = &self.page {
            writeln!(f, "report: {}", page.display())?;
        }
        Ok(())
    }
}

fn status_words(status: &PlanStatus) -> String {
    match status {
        PlanStatus::Rejected { reason } => format!("rejected ({reason})"),
        PlanStatus::Failed { reason } => format!("failed ({reason})"),
        PlanStatus::Applied { .. } => "applied, not evaluated yet".to_owned(),
        PlanStatus::Pending => "pending".to_owned(),
        _ => "other".to_owned(),
    }
}
