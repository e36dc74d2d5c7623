//! A pipeline of cells with an ask at the end.
//!
//! Access-log lines flow from the main thread into a `Parser` cell, which turns
//! them into requests for an `Aggregator` cell. At the end, a `Flush` ask
//! travels down the same path, behind every line, so the summary it brings
//! back covers all of them.
//!
//! Backpressure: the main thread's `send` waits when the parser is full; the
//! parser, which must never block a worker, keeps what the aggregator cannot
//! take yet in a backlog and retries a millisecond later.
//!
//! Run: `cargo run --release --example pipeline`

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use cellrt::{Addr, Cell, CellConfig, CellError, Context, Reply, Runtime, SendError};

/// One parsed access-log line.
struct Request {
    service: String,
    status: u16,
    latency_ms: u32,
}

/// Per-service figures.
#[derive(Clone, Debug, Default)]
struct ServiceStats {
    requests: u64,
    errors: u64,
    latency_total_ms: u64,
    latency_max_ms: u32,
}

/// What the pipeline reports when flushed.
struct Summary {
    parsed: u64,
    rejected: u64,
    retries: u64,
    services: BTreeMap<String, ServiceStats>,
}

enum AggregatorMsg {
    Record(Request),
    Summarize { parsed: u64, rejected: u64, retries: u64, reply: Reply<Summary> },
}

#[derive(Default)]
struct Aggregator {
    services: BTreeMap<String, ServiceStats>,
}

impl Cell for Aggregator {
    type Message = AggregatorMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: AggregatorMsg) -> Result<(), CellError> {
        match msg {
            AggregatorMsg::Record(request) => {
                let stats = self.services.entry(request.service).or_default();
                stats.requests += 1;
                stats.errors += u64::from(request.status >= 500);
                stats.latency_total_ms += u64::from(request.latency_ms);
                stats.latency_max_ms = stats.latency_max_ms.max(request.latency_ms);
            }
            AggregatorMsg::Summarize { parsed, rejected, retries, reply } => {
                let summary = Summary { parsed, rejected, retries, services: self.services.clone() };
                // The caller may have given up; nothing else to do then.
                let _ = reply.send(summary);
            }
        }
        Ok(())
    }
}

enum ParserMsg {
    Line(String),
    Flush(Reply<Summary>),
    /// Try the backlog again.
    Retry,
}

struct Parser {
    next: Addr<AggregatorMsg>,
    backlog: VecDeque<AggregatorMsg>,
    retry_scheduled: bool,
    parsed: u64,
    rejected: u64,
    retries: u64,
}

impl Parser {
    fn new(next: Addr<AggregatorMsg>) -> Self {
        Parser { next, backlog: VecDeque::new(), retry_scheduled: false, parsed: 0, rejected: 0, retries: 0 }
    }

    /// Parses `service status latency_ms`.
    fn parse(line: &str) -> Option<Request> {
        let mut fields = line.split_whitespace();
        let service = fields.next()?.to_owned();
        let status = fields.next()?.parse().ok()?;
        let latency_ms = fields.next()?.parse().ok()?;
        fields.next().is_none().then_some(Request { service, status, latency_ms })
    }

    /// Forwards in order: the backlog first, then `msg`. What does not fit
    /// waits in the backlog, and a retry is scheduled.
    fn forward(&mut self, ctx: &mut Context<Self>, msg: Option<AggregatorMsg>) -> Result<(), CellError> {
        self.backlog.extend(msg);
        while let Some(msg) = self.backlog.pop_front() {
            match self.next.try_send(msg) {
                Ok(()) => {}
                Err(SendError::Full(msg)) => {
                    self.backlog.push_front(msg);
                    if !self.retry_scheduled {
                        self.retry_scheduled = true;
                        self.retries += 1;
                        ctx.send_after(Duration::from_millis(1), ParserMsg::Retry);
                    }
                    return Ok(());
                }
                Err(err) => return Err(CellError::msg(format!("aggregator unreachable: {err}"))),
            }
        }
        Ok(())
    }
}

impl Cell for Parser {
    type Message = ParserMsg;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: ParserMsg) -> Result<(), CellError> {
        match msg {
            ParserMsg::Line(line) => match Parser::parse(&line) {
                Some(request) => {
                    self.parsed += 1;
                    self.forward(ctx, Some(AggregatorMsg::Record(request)))
                }
                None => {
                    self.rejected += 1;
                    Ok(())
                }
            },
            ParserMsg::Flush(reply) => {
                let summarize = AggregatorMsg::Summarize {
                    parsed: self.parsed,
                    rejected: self.rejected,
                    retries: self.retries,
                    reply,
                };
                self.forward(ctx, Some(summarize))
            }
            ParserMsg::Retry => {
                self.retry_scheduled = false;
                self.forward(ctx, None)
            }
        }
    }

    fn message_kind(msg: &ParserMsg) -> &'static str {
        match msg {
            ParserMsg::Line(_) => "Line",
            ParserMsg::Flush(_) => "Flush",
            ParserMsg::Retry => "Retry",
        }
    }
}

/// A deterministic stream of log lines, one in 40 malformed.
fn log_lines(count: usize) -> impl Iterator<Item = String> {
    const SERVICES: [&str; 4] = ["auth", "cart", "catalog", "payment"];
    (0..count).map(|i| {
        if i % 40 == 39 {
            return format!("garbled line {i}");
        }
        let service = SERVICES[i % SERVICES.len()];
        let status = if i % 97 == 0 { 503 } else { 200 };
        let base_ms = [12, 30, 8, 95][i % SERVICES.len()];
        let latency_ms = base_ms + (i * 7919 % 50) as u32;
        format!("{service} {status} {latency_ms}")
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const LINES: usize = 100_000;
    // Failures and shutdown problems are logged at WARN and above.
    tracing_subscriber::fmt().with_max_level(tracing_subscriber::filter::LevelFilter::WARN).init();
    let runtime = Runtime::builder().build()?;
    let aggregator =
        runtime.spawn_with(CellConfig::named("aggregator").capacity(256), Aggregator::default())?;
    let parser = runtime.spawn_with(CellConfig::named("parser").capacity(256), Parser::new(aggregator))?;
    println!(
        "cellrt pipeline: main -> {} -> /aggregator on {} worker threads",
        parser.path(),
        runtime.dispatcher_threads(cellrt::DEFAULT_DISPATCHER).unwrap_or(0)
    );

    let started = Instant::now();
    for line in log_lines(LINES) {
        parser.send(ParserMsg::Line(line))?;
    }
    let summary = parser.ask(ParserMsg::Flush)?.wait(Duration::from_secs(30))?;
    let elapsed = started.elapsed();

    println!(
        "fed {LINES} lines in {:.1} ms ({:.2} M lines/s)",
        elapsed.as_secs_f64() * 1e3,
        LINES as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "parser: {} parsed, {} rejected as malformed, {} backpressure retries",
        summary.parsed, summary.rejected, summary.retries
    );
    println!("{:<10} {:>9} {:>7} {:>8} {:>7}", "service", "requests", "errors", "mean ms", "max ms");
    for (service, stats) in &summary.services {
        println!(
            "{:<10} {:>9} {:>7} {:>8.1} {:>7}",
            service,
            stats.requests,
            stats.errors,
            stats.latency_total_ms as f64 / stats.requests as f64,
            stats.latency_max_ms
        );
    }
    let recorded: u64 = summary.services.values().map(|s| s.requests).sum();
    assert_eq!(recorded, summary.parsed, "every parsed line reached the aggregator");
    assert_eq!(summary.parsed + summary.rejected, LINES as u64);

    let failures = runtime.failure_count();
    let report = runtime.shutdown(Duration::from_secs(5));
    println!(
        "shutdown: {} cells stopped, {} messages undelivered, {} failures, {}",
        report.cells_stopped,
        report.messages_undelivered,
        failures,
        if report.is_clean() { "clean" } else { "NOT clean" }
    );
    Ok(())
}
