//! What every framework is asked to do, how a measurement is repeated, and
//! the table the results are printed in. Nothing framework-specific lives
//! here.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// How long any single wait (an ask, all actors started, ...) may take
/// before the run declares that framework's workload broken.
pub const WAIT: Duration = Duration::from_secs(30);

/// Mailbox capacity wherever a framework has bounded mailboxes.
pub const CAPACITY: usize = 1024;

/// Worker threads wherever a framework takes a thread count.
pub const WORKERS: usize = 2;

/// Producers of the fan-in workload.
pub const PRODUCERS: u64 = 4;

/// Actors in the ring.
pub const RING: usize = 1_000;

/// The sizes of one run: the full run or the `--quick` smoke run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Whether this is the `--quick` smoke run.
    pub quick: bool,
    /// Measured rounds per (workload, framework); the median is reported.
    pub rounds: usize,
    /// Messages of counting 1→1 and (in total) of fan-in 4→1.
    pub messages: u64,
    /// Round trips per ping-pong round.
    pub round_trips: u64,
    /// Hops of the token per ring round.
    pub hops: u64,
    /// Actors spawned per spawn round and per idle-memory child process.
    pub actors: usize,
    /// Restarts per restart round (each round gives a p50 and a p99).
    pub restarts: usize,
}

impl Plan {
    /// The full run (about 3–4 minutes on 2 cores).
    pub const FULL: Plan = Plan {
        quick: false,
        rounds: 5,
        messages: 1_000_000,
        round_trips: 100_000,
        hops: 200_000,
        actors: 100_000,
        restarts: 1_000,
    };

    /// The smoke run: every code path, tiny sizes.
    pub const QUICK: Plan = Plan {
        quick: true,
        rounds: 2,
        messages: 20_000,
        round_trips: 2_000,
        hops: 5_000,
        actors: 2_000,
        restarts: 50,
    };

    /// Messages per fan-in producer.
    pub fn per_producer(&self) -> u64 {
        self.messages / PRODUCERS
    }

    /// The sum of `0..n`, which every counter must report.
    pub fn sum_below(n: u64) -> u64 {
        (0..n).fold(0_u64, u64::wrapping_add)
    }
}

/// What a framework's implementation of a workload returns: one value per
/// measured round, or why there is no number.
pub type Outcome = Result<Vec<f64>, Skip>;

/// What a restart workload returns: the p50 and the p99 of each round, µs.
pub type Restarts = Result<(Vec<f64>, Vec<f64>), Skip>;

/// Why a table cell holds no number.
#[derive(Debug, Clone)]
pub enum Skip {
    /// The framework cannot do this (the text goes into the table).
    Cannot(&'static str),
    /// The workload does not apply (a dash in the table).
    NotApplicable,
    /// The workload failed at run time (the text goes into the table and
    /// the error under it).
    Failed(String),
}

impl From<String> for Skip {
    fn from(error: String) -> Self {
        Skip::Failed(error)
    }
}

impl From<&str> for Skip {
    fn from(error: &str) -> Self {
        Skip::Failed(error.to_owned())
    }
}

/// Turns any displayable error into a [`Skip::Failed`] (for `map_err`).
pub fn failed(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Skip {
    move |error| Skip::Failed(format!("{what}: {error}"))
}

/// Runs `round` once untimed (warm-up), then `plan.rounds` times; each call
/// returns the elapsed time of its timed part, converted by `per` into the
/// reported unit.
pub fn repeat(
    plan: &Plan,
    mut round: impl FnMut() -> Result<Duration, Skip>,
    per: impl Fn(Duration) -> f64,
) -> Outcome {
    round()?;
    (0..plan.rounds).map(|_| round().map(&per)).collect()
}

/// Converts a round of `n` items into millions of items per second.
pub fn millions_per_sec(n: u64) -> impl Fn(Duration) -> f64 {
    move |d| n as f64 / d.as_secs_f64() / 1e6
}

/// Converts a round of `n` items into thousands of items per second.
pub fn thousands_per_sec(n: u64) -> impl Fn(Duration) -> f64 {
    move |d| n as f64 / d.as_secs_f64() / 1e3
}

/// Converts a round of `n` items into nanoseconds per item.
pub fn nanos_each(n: u64) -> impl Fn(Duration) -> f64 {
    move |d| d.as_nanos() as f64 / n as f64
}

/// Times `f`.
pub fn timed<T>(f: impl FnOnce() -> Result<T, Skip>) -> Result<(Duration, T), Skip> {
    let start = Instant::now();
    let value = f()?;
    Ok((start.elapsed(), value))
}

/// Spins (yielding) until `done` holds or [`WAIT`] passes.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<(), Skip> {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            return Err(Skip::Failed(format!("{what}: timed out")));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// The restart workload's latencies of one round, in nanoseconds, as the
/// two reported quantiles.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    /// Median latency.
    pub p50: f64,
    /// 99th percentile latency.
    pub p99: f64,
}

impl Quantiles {
    /// The quantiles of `samples` (sorted in place). Nearest rank.
    pub fn of(samples: &mut [Duration]) -> Quantiles {
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
            samples.get(rank - 1).map_or(f64::NAN, |d| d.as_nanos() as f64)
        };
        Quantiles { p50: at(0.50), p99: at(0.99) }
    }
}

/// Runs the restart workload: one untimed round, then `plan.rounds` rounds
/// of `plan.restarts` calls of `restart` (each returning the latency of one
/// restart); the outcome is the p50 and the p99 of each round, in µs.
pub fn repeat_restarts(plan: &Plan, mut restart: impl FnMut() -> Result<Duration, Skip>) -> Restarts {
    let mut round = |n: usize| -> Result<Quantiles, Skip> {
        let mut samples = (0..n).map(|_| restart()).collect::<Result<Vec<_>, _>>()?;
        Ok(Quantiles::of(&mut samples))
    };
    round(plan.restarts / 10 + 1)?;
    let mut p50 = Vec::with_capacity(plan.rounds);
    let mut p99 = Vec::with_capacity(plan.rounds);
    for _ in 0..plan.rounds {
        let q = round(plan.restarts)?;
        p50.push(q.p50 / 1e3);
        p99.push(q.p99 / 1e3);
    }
    Ok((p50, p99))
}

/// Median, min and max of a workload's rounds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// The median round (the lower middle one for an even count).
    pub median: f64,
    /// The smallest round.
    pub min: f64,
    /// The largest round.
    pub max: f64,
}

impl Stats {
    /// The stats of `values`; `None` if there are none.
    pub fn of(values: &[f64]) -> Option<Stats> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let median = *sorted.get((sorted.len().checked_sub(1)?) / 2)?;
        Some(Stats { median, min: sorted[0], max: sorted[sorted.len() - 1] })
    }
}

/// Formats a figure with a precision that suits its size.
fn figure(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// One table cell.
fn cell(outcome: &Outcome) -> String {
    match outcome {
        Ok(values) => match Stats::of(values) {
            Some(s) if values.len() == 1 => figure(s.median),
            Some(s) => format!("**{}** ({}–{})", figure(s.median), figure(s.min), figure(s.max)),
            None => "—".to_owned(),
        },
        Err(Skip::Cannot(why)) => why.to_string(),
        Err(Skip::NotApplicable) => "—".to_owned(),
        Err(Skip::Failed(_)) => "failed (see below)".to_owned(),
    }
}

/// One row of the table: a workload with its unit and one outcome per
/// framework, in [`Table::columns`] order.
#[derive(Debug)]
pub struct Row {
    /// The workload, as printed.
    pub name: String,
    /// The unit, and whether more is better.
    pub unit: &'static str,
    /// One outcome per column.
    pub outcomes: Vec<Outcome>,
}

/// The results table.
#[derive(Debug)]
pub struct Table {
    /// Framework names, in column order.
    pub columns: Vec<&'static str>,
    /// The rows, in workload order.
    pub rows: Vec<Row>,
}

impl Table {
    /// The table as markdown, followed by the errors of failed cells.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = write!(out, "| workload | unit |");
        for column in &self.columns {
            let _ = write!(out, " {column} |");
        }
        out.push('\n');
        out.push_str("|---|---|");
        out.push_str(&"---:|".repeat(self.columns.len()));
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| {} | {} |", row.name, row.unit);
            for outcome in &row.outcomes {
                let _ = write!(out, " {} |", cell(outcome));
            }
            out.push('\n');
        }
        let failures: Vec<String> = self
            .rows
            .iter()
            .flat_map(|row| {
                row.outcomes.iter().zip(&self.columns).filter_map(move |(outcome, column)| match outcome {
                    Err(Skip::Failed(error)) => Some(format!("- {} / {column}: {error}", row.name)),
                    _ => None,
                })
            })
            .collect();
        if !failures.is_empty() {
            out.push_str("\nFailed cells:\n");
            out.push_str(&failures.join("\n"));
            out.push('\n');
        }
        out
    }
}

/// Which mailbox the idle-memory workload gives its actors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mailbox {
    /// Bounded to [`CAPACITY`] where the framework can bound it.
    Bounded,
    /// Whatever the framework's plain spawn gives.
    Default,
}

impl Mailbox {
    /// The command-line spelling (for the child process).
    pub fn arg(self) -> &'static str {
        match self {
            Mailbox::Bounded => "bounded",
            Mailbox::Default => "default",
        }
    }

    /// Parses [`Mailbox::arg`].
    pub fn parse(arg: &str) -> Option<Mailbox> {
        [Mailbox::Bounded, Mailbox::Default].into_iter().find(|m| m.arg() == arg)
    }
}

/// One framework's implementation of every workload (a column of the
/// table).
#[derive(Debug, Clone, Copy)]
pub struct Side {
    /// The column header.
    pub name: &'static str,
    /// 1. counting 1→1, M msgs/s.
    pub counting: fn(&Plan) -> Outcome,
    /// 2. fan-in 4→1, M msgs/s.
    pub fan_in: fn(&Plan) -> Outcome,
    /// 3. ping-pong, ns per round trip.
    pub ping_pong: fn(&Plan) -> Outcome,
    /// 4. ring with the given worker count, ns per hop.
    pub ring: fn(&Plan, usize) -> Outcome,
    /// 5. spawn, k actors/s.
    pub spawn: fn(&Plan) -> Outcome,
    /// 6. idle memory, bytes per actor (run in a child process).
    pub memory: fn(&Plan, Mailbox) -> Result<f64, Skip>,
    /// 7. restart after a panic: p50 and p99 per round, µs.
    pub restart: fn(&Plan) -> Restarts,
}
