//! The flash sale, as a topology and a load driver, shared by the example
//! (`main.rs`, which prints the story) and its test
//! (`tests/flash_sale.rs`, which checks it with exact counts).
//!
//! ```text
//! driver ──ask_within──► gateway ──► browse ──► cache ──breaker──► inventory
//!          (shedding:                  │                           ▲  (lanes and shedding:
//!           browse first;              └──► checkout pool ─reserve─┘   reservations before
//!           lanes: checkout first)                                      stock reads)
//!                                            │
//!                                            └──pay, retries within a budget──► payment
//! ```
//!
//! Dispatchers are the bulkheads: the gateway, the checkout pool and
//! inventory each run on their own workers, so a slow inventory cannot take
//! the threads that serve checkout.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use cellrt::{
    Addr, BreakerConfig, BreakerState, Cell, CellConfig, CellError, Context, ExponentialBackoff, Jitter,
    JournalQuery, Pending, Reply, Retry, RetryBudget, RetryBudgetStats, Routing, Runtime, SendError,
    Shedding, SignalKind, SlidingWindow,
};
use cellrt_cells::{CacheError, CacheMsg, CacheStats, Cached, SwrCache};

/// The shape of one run.
#[derive(Clone, Debug)]
pub(crate) struct SaleConfig {
    /// Length of each phase: before, spike, recovery, after.
    pub(crate) phases: [Duration; 4],
    /// Browse requests a second before and after the spike.
    pub(crate) browse_rate: u32,
    /// How many times that the spike brings.
    pub(crate) spike_factor: u32,
    /// Checkout requests a second, throughout.
    pub(crate) checkout_rate: u32,
    /// How long a shopper waits for a browse answer.
    pub(crate) browse_deadline: Duration,
    /// How long a shopper waits for a checkout.
    pub(crate) checkout_deadline: Duration,
    /// The gateway's work per request (a sleep: parsing, authentication).
    pub(crate) gateway_work: Duration,
    /// A stock read while inventory is slow (it is 0 otherwise).
    pub(crate) slow_stock_read: Duration,
    /// Payment declines one charge in this many (a transient error: a retry
    /// may pass).
    pub(crate) decline_every: u64,
}

impl Default for SaleConfig {
    fn default() -> Self {
        SaleConfig {
            phases: [
                Duration::from_millis(500),
                Duration::from_millis(2000),
                Duration::from_millis(1000),
                Duration::from_millis(1000),
            ],
            browse_rate: 200,
            spike_factor: 20,
            checkout_rate: 40,
            browse_deadline: Duration::from_millis(250),
            checkout_deadline: Duration::from_millis(500),
            gateway_work: Duration::from_micros(300),
            slow_stock_read: Duration::from_millis(25),
            decline_every: 8,
        }
    }
}

/// The phases of a run.
pub(crate) const PHASES: [&str; 4] = ["before", "spike", "recovery", "after"];

/// Items for sale: the keys of the stock cache.
const ITEMS: u32 = 16;

// ---------------------------------------------------------------- messages

/// What a shopper asks the gateway.
pub(crate) enum Request {
    /// How many of `item` are left.
    Browse { item: u32, reply: Reply<Result<Cached<u32>, CacheError>> },
    /// Buy one of `item`.
    Checkout { order: u64, item: u32, reply: Reply<Result<Receipt, CheckoutError>> },
}

/// A completed checkout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Receipt {
    /// The order.
    pub(crate) order: u64,
    /// Charges tried (1 without a retry).
    pub(crate) charges: u32,
}

/// Why a checkout did not complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CheckoutError {
    /// Inventory did not reserve the item in time.
    Reservation(String),
    /// Payment declined, and no retry was left (attempts or budget).
    Payment { charges: u32 },
    /// The shopper's deadline passed between two charges.
    Expired,
}

/// What inventory serves.
pub(crate) enum Stock {
    /// Count left of an item (slow while inventory is slow).
    Read { item: u32, reply: Reply<Result<u32, String>> },
    /// Reserve one of an item (fast).
    Reserve { item: u32, reply: Reply<Result<(), String>> },
}

/// A charge.
pub(crate) struct Charge {
    order: u64,
    reply: Reply<Result<(), String>>,
}

/// What a checkout cell handles: a new order, or a later charge attempt.
pub(crate) enum Order {
    /// A new order from the gateway.
    Start { order: u64, item: u32, reply: Reply<Result<Receipt, CheckoutError>> },
    /// The `attempt`th charge (from 2), after a backoff.
    Charge {
        order: u64,
        attempt: u32,
        deadline: Option<Instant>,
        reply: Reply<Result<Receipt, CheckoutError>>,
    },
}

// ---------------------------------------------------------------- cells

/// The front door: a little work per request, then on to browse or checkout
/// with the shopper's deadline.
struct Gateway {
    work: Duration,
    browse: Addr<CacheMsg<u32, u32>>,
    checkout: Addr<Order>,
    /// Requests a stage behind refused (their shopper gets `Unanswered`).
    refused: Arc<AtomicU64>,
}

impl Cell for Gateway {
    type Message = Request;
    // Checkout has its own lane: it overtakes the browse requests queued
    // before it.
    const LANES: usize = 2;

    fn lane(request: &Request) -> usize {
        match request {
            Request::Browse { .. } => 0,
            Request::Checkout { .. } => 1,
        }
    }

    fn handle(&mut self, ctx: &mut Context<Self>, request: Request) -> Result<(), CellError> {
        thread::sleep(self.work);
        let deadline = ctx.deadline().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
        let refused = match request {
            Request::Browse { item, reply } => {
                self.browse.try_send_by(CacheMsg::Get { key: item, reply }, deadline).is_err()
            }
            Request::Checkout { order, item, reply } => {
                self.checkout.try_send_by(Order::Start { order, item, reply }, deadline).is_err()
            }
        };
        if refused {
            self.refused.fetch_add(1, Relaxed);
        }
        Ok(())
    }

    fn message_kind(request: &Request) -> &'static str {
        match request {
            Request::Browse { .. } => "Browse",
            Request::Checkout { .. } => "Checkout",
        }
    }
}

/// Reserves, then charges, retrying a declined charge after a backoff while
/// the retry budget allows.
struct Checkout {
    inventory: Addr<Stock>,
    payment: Addr<Charge>,
    retry: Arc<Retry>,
    retries: Arc<AtomicU64>,
}

impl Checkout {
    fn left(deadline: Option<Instant>) -> Duration {
        deadline.map_or(Duration::from_secs(1), |d| d.saturating_duration_since(Instant::now()))
    }

    fn charge(
        &mut self,
        ctx: &mut Context<Self>,
        order: u64,
        attempt: u32,
        deadline: Option<Instant>,
        reply: Reply<Result<Receipt, CheckoutError>>,
    ) {
        let left = Self::left(deadline);
        if left.is_zero() {
            let _ = reply.send(Err(CheckoutError::Expired));
            return;
        }
        let charged =
            self.payment.ask_within(left, |reply| Charge { order, reply }).map_err(|e| e.to_string());
        let charged =
            charged.and_then(|pending| pending.wait(left).map_err(|e| e.to_string())).and_then(|r| r);
        if charged.is_ok() {
            let _ = reply.send(Ok(Receipt { order, charges: attempt }));
            return;
        }
        match self.retry.next_delay(attempt) {
            Some(delay) => {
                self.retries.fetch_add(1, Relaxed);
                ctx.send_after(delay, Order::Charge { order, attempt: attempt + 1, deadline, reply });
            }
            None => drop(reply.send(Err(CheckoutError::Payment { charges: attempt }))),
        }
    }
}

impl Cell for Checkout {
    type Message = Order;

    fn handle(&mut self, ctx: &mut Context<Self>, order: Order) -> Result<(), CellError> {
        match order {
            Order::Start { order, item, reply } => {
                self.retry.budget().deposit();
                let deadline = ctx.deadline();
                let left = Self::left(deadline);
                let reserved = self.inventory.ask_within(left, |reply| Stock::Reserve { item, reply });
                let reserved = match reserved {
                    Ok(pending) => pending.wait(left).map_err(|e| e.to_string()).and_then(|r| r),
                    Err(err) => Err(err.to_string()),
                };
                match reserved {
                    Ok(()) => self.charge(ctx, order, 1, deadline, reply),
                    Err(why) => drop(reply.send(Err(CheckoutError::Reservation(why)))),
                }
            }
            Order::Charge { order, attempt, deadline, reply } => {
                self.charge(ctx, order, attempt, deadline, reply)
            }
        }
        Ok(())
    }
}

/// Stock counts; reads turn slow while `slow` is set.
struct Inventory {
    slow: Arc<AtomicBool>,
    read_time: Duration,
    left: Vec<u32>,
}

impl Cell for Inventory {
    type Message = Stock;
    // Reservations overtake the (slow) stock reads queued before them.
    const LANES: usize = 2;

    fn lane(stock: &Stock) -> usize {
        match stock {
            Stock::Read { .. } => 0,
            Stock::Reserve { .. } => 1,
        }
    }

    fn handle(&mut self, _: &mut Context<Self>, msg: Stock) -> Result<(), CellError> {
        match msg {
            Stock::Read { item, reply } => {
                if self.slow.load(Relaxed) {
                    thread::sleep(self.read_time);
                }
                let _ = reply.send(Ok(self.left[item as usize]));
            }
            Stock::Reserve { item, reply } => {
                let left = &mut self.left[item as usize];
                *left = left.saturating_sub(1);
                let _ = reply.send(Ok(()));
            }
        }
        Ok(())
    }
}

/// Charges; declines one charge in `decline_every`.
struct Payment {
    decline_every: u64,
    charges: u64,
}

impl Cell for Payment {
    type Message = Charge;

    fn handle(&mut self, _: &mut Context<Self>, charge: Charge) -> Result<(), CellError> {
        self.charges += 1;
        let answer = if self.charges.is_multiple_of(self.decline_every) {
            Err(format!("order {}: card declined, try again", charge.order))
        } else {
            Ok(())
        };
        let _ = charge.reply.send(answer);
        Ok(())
    }
}

// ---------------------------------------------------------------- the report

/// What became of the requests of one kind in one phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outcomes {
    /// Requests sent.
    pub(crate) sent: u64,
    /// Answered with a result (for browse: fresh).
    pub(crate) ok: u64,
    /// Browse answered with a stale-marked count.
    pub(crate) stale: u64,
    /// Answered with an error (cache unavailable, checkout failed).
    pub(crate) refused: u64,
    /// Handed back at the gateway by its shedding policy.
    pub(crate) shed: u64,
    /// Handed back at the gateway as full.
    pub(crate) full: u64,
    /// No answer by the deadline.
    pub(crate) timed_out: u64,
    /// Dropped unanswered by a stage behind the gateway.
    pub(crate) unanswered: u64,
}

impl Outcomes {
    /// Every way a request can end, summed: equals `sent` when none is lost.
    pub(crate) fn accounted(&self) -> u64 {
        self.ok + self.stale + self.refused + self.shed + self.full + self.timed_out + self.unanswered
    }

    /// Answered with a result (fresh or stale) per request sent.
    pub(crate) fn success_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        (self.ok + self.stale) as f64 / self.sent as f64
    }
}

/// One breaker transition, with when it happened in the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transition {
    /// Time since the run began.
    pub(crate) at: Duration,
    /// The state left.
    pub(crate) from: BreakerState,
    /// The state entered.
    pub(crate) to: BreakerState,
}

/// What one run showed.
#[derive(Clone, Debug)]
pub(crate) struct SaleReport {
    /// The run's shape.
    pub(crate) config: SaleConfig,
    /// Browse outcomes by phase.
    pub(crate) browse: [Outcomes; 4],
    /// Checkout outcomes by phase.
    pub(crate) checkout: [Outcomes; 4],
    /// The inventory breaker's journaled transitions, in order.
    pub(crate) transitions: Vec<Transition>,
    /// Its state at the end.
    pub(crate) breaker_end: BreakerState,
    /// The cache's counters.
    pub(crate) cache: CacheStats,
    /// Payment retries the checkout cells scheduled.
    pub(crate) retries: u64,
    /// The retry budget's own count.
    pub(crate) budget: RetryBudgetStats,
    /// The most retries the budget could have allowed over the run.
    pub(crate) retry_bound: u64,
    /// Stock reads inventory's address shed.
    pub(crate) stock_reads_shed: u64,
    /// Requests a stage behind the gateway refused.
    pub(crate) refused_behind_gateway: u64,
}

// ---------------------------------------------------------------- the run

/// A request in flight, and how to read its answer.
enum InFlight {
    Browse(usize, Pending<Result<Cached<u32>, CacheError>>),
    Checkout(usize, Pending<Result<Receipt, CheckoutError>>),
}

/// The retry budget: 10 % of recent checkouts plus 2 a second, over 1 s.
const BUDGET_TTL: Duration = Duration::from_secs(1);
const BUDGET_PER_SEC: u32 = 2;
const BUDGET_RATIO: f64 = 0.1;

/// Builds the topology, drives the four phases and reports.
///
/// # Errors
///
/// When the runtime or a cell cannot be built.
pub(crate) fn run(config: SaleConfig) -> Result<SaleReport, Box<dyn std::error::Error>> {
    let runtime = Runtime::builder()
        .worker_threads(2)
        .dispatcher("edge", 1)
        .dispatcher("checkout", 2)
        .dispatcher("inventory", 1)
        .quiet_panics(true)
        .build()?;
    let slow = Arc::new(AtomicBool::new(false));

    let inventory = runtime.spawn_with(
        CellConfig::named("inventory").dispatcher("inventory").capacity(64),
        Inventory {
            slow: slow.clone(),
            read_time: config.slow_stock_read,
            left: vec![1_000_000; ITEMS as usize],
        },
    )?;
    // Reads may hold only a few of its 2 × 64 places: slow reads nobody will
    // wait for are refused at once instead of queued.
    inventory.set_shedding(Some(
        Shedding::new(|stock: &Stock| match stock {
            Stock::Read { .. } => 0,
            Stock::Reserve { .. } => 1,
        })
        .watermark(0, 0.025)?,
    ));
    let payment = runtime.spawn_with(
        CellConfig::named("payment"),
        Payment { decline_every: config.decline_every, charges: 0 },
    )?;

    let breaker = runtime.breaker(
        "inventory",
        BreakerConfig::default()
            .sliding_window(SlidingWindow::Count(20))
            .minimum_calls(10)
            .failure_rate_threshold(50.0)
            .slow_call_rate_threshold(50.0)
            .slow_call_duration(Duration::from_millis(10))
            .wait_in_open(Duration::from_millis(200))
            .permitted_in_half_open(3),
    )?;
    let cache = runtime.spawn_with(
        CellConfig::named("cache"),
        SwrCache::new(inventory.clone(), breaker.clone(), |item, reply| Stock::Read { item, reply })
            .fresh_for(Duration::from_millis(500))
            .serve_stale_for(Duration::from_secs(60))
            .upstream_timeout(Duration::from_millis(100)),
    )?;

    let retry = Arc::new(Retry::new(
        ExponentialBackoff::new(Duration::from_millis(2), Duration::from_millis(20))?.jitter(Jitter::Full),
        RetryBudget::new(BUDGET_TTL, BUDGET_PER_SEC, BUDGET_RATIO)?,
        3,
    )?);
    let retries = Arc::new(AtomicU64::new(0));
    let pool: Vec<_> = (0..2)
        .map(|i| {
            runtime.spawn_with(
                CellConfig::named(format!("checkout-{i}")).dispatcher("checkout"),
                Checkout {
                    inventory: inventory.clone(),
                    payment: payment.clone(),
                    retry: retry.clone(),
                    retries: retries.clone(),
                },
            )
        })
        .collect::<Result<_, _>>()?;
    let checkout = runtime.router("checkout", Routing::round_robin(), pool)?;

    let refused = Arc::new(AtomicU64::new(0));
    let gateway = runtime.spawn_with(
        CellConfig::named("gateway").dispatcher("edge").capacity(512),
        Gateway {
            work: config.gateway_work,
            browse: cache.clone(),
            checkout: checkout.addr().clone(),
            refused: refused.clone(),
        },
    )?;
    // Browsing may fill an eighth of the gateway's 2 × 512 places (128
    // requests); checkout all of them.
    gateway.set_shedding(Some(
        Shedding::new(|request: &Request| match request {
            Request::Browse { .. } => 0,
            Request::Checkout { .. } => 1,
        })
        .watermark(0, 0.125)?,
    ));

    // Drive the phases: requests paced every millisecond, answers collected
    // at the end.
    let begin = Instant::now();
    let begin_wall = SystemTime::now();
    let mut browse = [Outcomes::default(); 4];
    let mut checkouts = [Outcomes::default(); 4];
    let mut in_flight = Vec::new();
    let mut order = 0_u64;
    for (phase, length) in config.phases.iter().enumerate() {
        let spike = phase == 1;
        slow.store(spike, Relaxed);
        let browse_rate = if spike { config.browse_rate * config.spike_factor } else { config.browse_rate };
        let start = Instant::now();
        let (mut browse_due, mut checkout_due) = (0_u64, 0_u64);
        while start.elapsed() < *length {
            let elapsed = start.elapsed().as_secs_f64();
            let browse_target = (elapsed * f64::from(browse_rate)) as u64;
            let checkout_target = (elapsed * f64::from(config.checkout_rate)) as u64;
            while browse_due < browse_target {
                browse_due += 1;
                browse[phase].sent += 1;
                let item = (browse_due % u64::from(ITEMS)) as u32;
                match gateway.ask_within(config.browse_deadline, |reply| Request::Browse { item, reply }) {
                    Ok(pending) => in_flight.push(InFlight::Browse(phase, pending)),
                    Err(err) => count_refusal(&mut browse[phase], &err),
                }
            }
            while checkout_due < checkout_target {
                checkout_due += 1;
                order += 1;
                checkouts[phase].sent += 1;
                let item = (order % u64::from(ITEMS)) as u32;
                match gateway.ask_within(config.checkout_deadline, |reply| Request::Checkout {
                    order,
                    item,
                    reply,
                }) {
                    Ok(pending) => in_flight.push(InFlight::Checkout(phase, pending)),
                    Err(err) => count_refusal(&mut checkouts[phase], &err),
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    // Every deadline has passed by then: what has no answer timed out.
    thread::sleep(config.checkout_deadline.max(config.browse_deadline) + Duration::from_millis(100));
    for flight in in_flight {
        match flight {
            InFlight::Browse(phase, mut pending) => {
                let outcome = &mut browse[phase];
                match pending.try_take() {
                    Ok(Some(Ok(cached))) if cached.stale => outcome.stale += 1,
                    Ok(Some(Ok(_))) => outcome.ok += 1,
                    Ok(Some(Err(_))) => outcome.refused += 1,
                    Ok(None) => outcome.timed_out += 1,
                    Err(_) => outcome.unanswered += 1,
                }
            }
            InFlight::Checkout(phase, mut pending) => {
                let outcome = &mut checkouts[phase];
                match pending.try_take() {
                    Ok(Some(Ok(_))) => outcome.ok += 1,
                    Ok(Some(Err(_))) => outcome.refused += 1,
                    Ok(None) => outcome.timed_out += 1,
                    Err(_) => outcome.unanswered += 1,
                }
            }
        }
    }
    let run_time = begin.elapsed();

    let transitions = runtime
        .journal(&JournalQuery::new())
        .into_iter()
        .filter_map(|signal| match signal.kind {
            SignalKind::BreakerTransition { from, to, .. } => {
                Some(Transition { at: signal.at.duration_since(begin_wall).unwrap_or_default(), from, to })
            }
            _ => None,
        })
        .collect();
    let cache_stats = cache.ask(CacheMsg::Stats)?.wait(Duration::from_secs(5))?;
    let budget = retry.budget().stats();
    // Each second of the run allows the floor; each checkout 10 % more.
    let seconds = run_time.as_secs_f64().ceil() as u64 + 1;
    let deposits = checkouts.iter().map(|o| o.sent).sum::<u64>();
    let retry_bound = u64::from(BUDGET_PER_SEC) * seconds + (BUDGET_RATIO * deposits as f64).ceil() as u64;
    let report = SaleReport {
        config,
        browse,
        checkout: checkouts,
        transitions,
        breaker_end: breaker.state(),
        cache: cache_stats,
        retries: retries.load(Relaxed),
        budget,
        retry_bound,
        stock_reads_shed: inventory.shedding_stats().map_or(0, |s| s.shed(0)),
        refused_behind_gateway: refused.load(Relaxed),
    };
    runtime.shutdown(Duration::from_secs(5));
    Ok(report)
}

fn count_refusal<M>(outcome: &mut Outcomes, err: &SendError<M>) {
    match err {
        SendError::Shed(_) => outcome.shed += 1,
        _ => outcome.full += 1,
    }
}

impl fmt::Display for SaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "flash sale: browse {}/s, spike x{}, checkout {}/s",
            self.config.browse_rate, self.config.spike_factor, self.config.checkout_rate
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<10} {:>28} {:>34}",
            "phase", "browse sent: fresh/stale/shed", "checkout sent: ok/failed/shed/late"
        )?;
        for (i, phase) in PHASES.iter().enumerate() {
            let (b, c) = (&self.browse[i], &self.checkout[i]);
            writeln!(
                f,
                "{:<10} {:>8}: {:>5}/{:>5}/{:>5}      {:>8}: {:>4}/{:>3}/{:>3}/{:>3}   ({:.1} % checkout success)",
                phase,
                b.sent,
                b.ok,
                b.stale,
                b.shed,
                c.sent,
                c.ok,
                c.refused,
                c.shed,
                c.timed_out + c.unanswered,
                100.0 * c.success_ratio()
            )?;
        }
        writeln!(f)?;
        writeln!(f, "inventory breaker:")?;
        for t in &self.transitions {
            writeln!(f, "  {:>6} ms  {} -> {}", t.at.as_millis(), t.from, t.to)?;
        }
        writeln!(f, "  now {}", self.breaker_end)?;
        writeln!(
            f,
            "cache: {} fresh, {} stale served, {} misses, {} upstream calls ({} failed), {} refused by the breaker",
            self.cache.fresh_hits,
            self.cache.stale_served,
            self.cache.misses,
            self.cache.upstream_calls,
            self.cache.upstream_failures,
            self.cache.refused_by_breaker
        )?;
        writeln!(f, "inventory shed {} stock reads to keep room for reservations", self.stock_reads_shed)?;
        let lost: u64 =
            self.browse.iter().chain(&self.checkout).map(|o| o.sent - o.accounted().min(o.sent)).sum();
        writeln!(
            f,
            "requests without an outcome: {lost}; refused behind the gateway: {}",
            self.refused_behind_gateway
        )?;
        writeln!(
            f,
            "payment retries: {} scheduled, {} refused by the budget (at most {} allowed)",
            self.retries, self.budget.refused, self.retry_bound
        )
    }
}
