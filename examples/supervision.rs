//! A supervision tree that survives crashes, and what it remembers of them.
//!
//! ```text
//! app            one_for_one, at most 3 restarts in 10 s
//! ├── store      one_for_all
//! │   ├── index  rows by key; panics on an empty value (a bug)
//! │   └── cache  the key written last
//! └── ingest     parses `key=value` lines for both; fails on a malformed one
//! ```
//!
//! Lines go to `ingest`; a `Flush` ask follows them down to `index` and
//! brings back its row count. The run shows that:
//!
//! - a restart keeps the address and the mailbox: lines sent while a cell
//!   restarts are handled by its next incarnation, in order. Only the cell's
//!   own state starts afresh;
//! - with `one_for_all`, `index` failing restarts `cache` with it;
//! - with a retry policy and `Cell::retain`, the malformed line is delivered
//!   again, fails again with the same cause, and reaches the dead-letter
//!   store as a poison message, body included;
//! - a watch on `ingest` waits through its restarts and resolves at shutdown.
//!
//! Run: `cargo run -p cellrt-examples --example supervision`

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use cellrt::{
    Addr, Cell, CellError, ChildSpec, Context, Failure, FailureCause, Reply, RetryPolicy, Runtime, SendError,
    StopReason, Strategy, SupervisionEventKind, Supervisor, SupervisorSpec,
};

const TIMEOUT: Duration = Duration::from_secs(5);

enum IndexMsg {
    Put { key: String, value: String },
    Len(Reply<usize>),
}

#[derive(Default)]
struct Index {
    rows: BTreeMap<String, String>,
}

impl Cell for Index {
    type Message = IndexMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: IndexMsg) -> Result<(), CellError> {
        match msg {
            IndexMsg::Put { key, value } => {
                assert!(!value.is_empty(), "empty value for {key:?}");
                self.rows.insert(key, value);
            }
            IndexMsg::Len(reply) => drop(reply.send(self.rows.len())),
        }
        Ok(())
    }

    fn message_kind(msg: &IndexMsg) -> &'static str {
        match msg {
            IndexMsg::Put { .. } => "Put",
            IndexMsg::Len(_) => "Len",
        }
    }
}

/// The key written last.
#[derive(Default)]
struct Cache(Option<String>);

impl Cell for Cache {
    type Message = String;

    fn handle(&mut self, _: &mut Context<Self>, key: String) -> Result<(), CellError> {
        self.0 = Some(key);
        Ok(())
    }
}

enum IngestMsg {
    Line(String),
    Flush(Reply<usize>),
}

fn unreachable<M>(err: SendError<M>) -> CellError {
    CellError::msg(format!("store unreachable: {err}"))
}

struct Ingest {
    index: Addr<IndexMsg>,
    cache: Addr<String>,
}

impl Cell for Ingest {
    type Message = IngestMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: IngestMsg) -> Result<(), CellError> {
        match msg {
            IngestMsg::Line(line) => {
                let (key, value) =
                    line.split_once('=').ok_or_else(|| CellError::msg(format!("malformed line {line:?}")))?;
                let put = IndexMsg::Put { key: key.to_owned(), value: value.to_owned() };
                self.index.try_send(put).map_err(unreachable)?;
                self.cache.try_send(key.to_owned()).map_err(unreachable)
            }
            IngestMsg::Flush(reply) => self.index.try_send(IndexMsg::Len(reply)).map_err(unreachable),
        }
    }

    fn message_kind(msg: &IngestMsg) -> &'static str {
        match msg {
            IngestMsg::Line(_) => "Line",
            IngestMsg::Flush(_) => "Flush",
        }
    }

    /// Lines are cheap to copy: a failed one can be delivered again.
    fn retain(msg: &IngestMsg) -> Option<IngestMsg> {
        match msg {
            IngestMsg::Line(line) => Some(IngestMsg::Line(line.clone())),
            IngestMsg::Flush(_) => None,
        }
    }
}

/// Sends `lines`, then asks `index`, behind them, how many rows it holds.
fn feed(ingest: &Addr<IngestMsg>, lines: &[&str]) -> Result<usize, Box<dyn std::error::Error>> {
    for line in lines {
        ingest.send(IngestMsg::Line(line.to_string()))?;
    }
    Ok(ingest.ask(IngestMsg::Flush)?.wait(TIMEOUT)?)
}

fn print_children(sup: &Supervisor, depth: usize) {
    for child in sup.which_children() {
        let indent = 2 * depth + 2;
        let (state, kind, restarts) = (child.state, child.restart, child.restarts);
        println!("{:indent$}{:<7} {state:?}, {kind:?}, restarts: {restarts}", "", child.id);
        if let Some(sub) = sup.supervisor(&child.id).filter(|_| child.supervisor) {
            print_children(&sub, depth + 1);
        }
    }
}

/// Both supervisors' histories as one timeline, in milliseconds from `t0`.
fn print_history(t0: SystemTime, supervisors: &[&Supervisor]) {
    let mut events: Vec<_> = supervisors
        .iter()
        .flat_map(|sup| {
            sup.history().into_iter().map(move |e| (e.at, format!("{}/{}", sup.path(), e.child), e.kind))
        })
        .collect();
    events.sort_by_key(|(at, ..)| *at);
    for (at, child, kind) in events {
        let at = at.duration_since(t0).unwrap_or_default().as_secs_f64() * 1e3;
        let what = match kind {
            SupervisionEventKind::Exited(StopReason::Failed(failure)) => describe(&failure),
            SupervisionEventKind::Restarting { restarts, delay } if delay.is_zero() => {
                format!("restarted at once (restart {restarts})")
            }
            SupervisionEventKind::GroupRestarted => "group restart complete".to_owned(),
            other => format!("{other:?}"),
        };
        println!("  {at:>6.2} ms  {child:<17} {what}");
    }
}

fn describe(failure: &Failure) -> String {
    let kind = failure.message_kind.unwrap_or("-");
    match &failure.cause {
        FailureCause::Error { text, .. } => format!("failed on {kind}: {text}"),
        FailureCause::Panic { payload, .. } => format!("panicked on {kind}: {payload}"),
        cause => format!("failed on {kind}: {cause:?}"),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let t0 = SystemTime::now();
    let runtime = Runtime::builder().quiet_panics(true).build()?;
    let store_spec = SupervisorSpec::new("store")
        .strategy(Strategy::OneForAll)
        .child(ChildSpec::new("index", Index::default))
        .child(ChildSpec::new("cache", Cache::default));
    let app = runtime.start_supervisor(
        SupervisorSpec::new("app")
            .intensity(3, Duration::from_secs(10))
            .child(ChildSpec::supervisor("store", store_spec)),
        TIMEOUT,
    )?;

    // Addresses outlive restarts, so the factory of `ingest` can keep them.
    let store = app.supervisor("store").expect("store is a supervisor");
    let index = store.child::<IndexMsg>("index").expect("index handles IndexMsg");
    let cache = store.child::<String>("cache").expect("cache handles String");
    let ingest_spec = ChildSpec::new("ingest", move || Ingest { index: index.clone(), cache: cache.clone() })
        .retry(RetryPolicy::attempts(2));
    app.start_child(ingest_spec, TIMEOUT)?;
    let ingest = app.child::<IngestMsg>("ingest").expect("ingest handles IngestMsg");
    let mut watch = runtime.watch(&ingest);

    let steps: [(&str, &[&str], &str); 3] = [
        ("three good lines", &["a=1", "b=2", "c=3"], ""),
        ("a malformed line, then d=4 and e=5", &["garbage", "d=4", "e=5"], ", after ingest restarted twice"),
        ("an empty value, then g=7", &["f=", "g=7"], ": index crashed and restarted empty"),
    ];
    for (what, lines, note) in steps {
        println!("{what:<34} -> index holds {} row(s){note}", feed(&ingest, lines)?);
    }
    // A supervisor handles requests after the restart it is busy with: any
    // answer, even "no such child", means the group restart is complete.
    let _ = store.delete_child("no-such-child", TIMEOUT);

    println!("\nchildren of {}:", app.path());
    print_children(&app, 0);
    println!("\nhistory:");
    print_history(t0, &[&app, &store]);

    println!("\ndead letters ({} in all):", runtime.dead_letter_count());
    for letter in runtime.dead_letters() {
        let body = match letter.take_message::<IngestMsg>() {
            Some(IngestMsg::Line(line)) => format!("message kept: {line:?}"),
            _ => "message not kept (the cell has no Cell::retain)".to_owned(),
        };
        let (path, redelivered, poison) = (&letter.failure().path, letter.redeliveries(), letter.is_poison());
        println!("  {:<17} {}", path.as_str(), describe(letter.failure()));
        println!("  {:<17} re-delivered {redelivered} time(s), poison: {poison}, {body}", "");
    }

    let pending = watch.try_take()?.is_none();
    println!(
        "\nwatch on {} after its restarts: {}",
        ingest.path(),
        if pending { "pending" } else { "resolved" }
    );
    let failures = runtime.failure_count();
    let report = runtime.shutdown(TIMEOUT);
    let terminated = watch.wait(TIMEOUT)?;
    println!("watch on {} after shutdown: terminated, {:?}", terminated.path, terminated.reason);
    println!(
        "shutdown: {} cells stopped, {} killed, {} messages undelivered, {failures} failures in all, {}",
        report.cells_stopped,
        report.cells_killed,
        report.messages_undelivered,
        if report.is_clean() { "clean" } else { "NOT clean" }
    );
    Ok(())
}
