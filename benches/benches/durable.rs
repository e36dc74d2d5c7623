//! Durable cells: messages per second for a durable cell on a real on-disk
//! data directory, per [`Durability`] mode and state size.
//!
//! A plain thread (not a cell) sends N messages with the blocking
//! [`Addr::send`] to one durable cell (mailbox capacity 32, throughput 32,
//! 2 workers, the engine's own background flush off), then asks for the
//! count and waits for the answer. Each message changes the state; after
//! each one the runtime encodes the state and writes it to the cell's tree.
//! Under `PerMessage` and `PerTurn` the answer is held until the flush that
//! covers it, so the iteration ends once every message is durable; under
//! `Periodic(100 ms)` the answer is sent at once and the runtime's timer
//! flushes every 100 ms meanwhile.
//!
//! Two states: a `u64` counter (a few bytes once encoded) and a 1 KiB
//! state (the counter and a `Vec<u8>` of 1,024 bytes, one byte changed per
//! message; about 1,036 bytes once encoded).
//!
//! Baseline, same run: one thread on a sled database of its own in a
//! directory of the same file system, opened with the runtime's settings
//! (64 MiB cache). For each message it changes the same state, encodes it
//! in the same envelope as the runtime (same bytes) and inserts it under
//! one key, then flushes: after every insert (the `PerMessage`
//! comparison), after every 32 inserts and at the end (`PerTurn`), or
//! never, sled's own background flusher flushing every 100 ms instead
//! (`Periodic`). The cell also saves its state after the final ask (one
//! write more per iteration than the baseline).
//!
//! Diagnostic rows (`Periodic` only): the same cell with mailboxes of
//! 1,024 messages, so that the sender sleeps on a full mailbox, and must be
//! woken, less often.
//!
//! The data directories are created under Cargo's scratch directory for
//! benches (`CARGO_TARGET_TMPDIR`), on the target directory's file system.
//! No target is set for this story.

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use cellrt::{
    Addr, Cell, CellConfig, CellError, Context, Durability, Durable, Reply, Runtime, StorageConfig,
};
use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

use common::WAIT;

/// The mailbox capacity and the dispatcher's throughput (both the defaults).
const BATCH: u64 = 32;

/// The mailbox capacity of the diagnostic `Periodic` row.
const DIAGNOSTIC_CAPACITY: usize = 1024;

/// The interval of `Durability::Periodic` and of the baseline's background flush.
const PERIOD: Duration = Duration::from_millis(100);

/// The size of the large state's byte vector.
const BLOB_BYTES: usize = 1024;

/// The modes measured, with the messages of one iteration under `cargo
/// bench`: few where every message waits for an fsync. Under `cargo test
/// --benches` each iteration sends [`SMOKE_MESSAGES`] instead.
const MODES: [(Mode, u64); 3] = [(Mode::PerMessage, 500), (Mode::PerTurn, 8_000), (Mode::Periodic, 50_000)];

/// Messages of one iteration in the smoke run of `cargo test --benches`.
const SMOKE_MESSAGES: u64 = 2 * BATCH;

#[derive(Clone, Copy, Debug)]
enum Mode {
    PerMessage,
    PerTurn,
    Periodic,
}

impl Mode {
    fn durability(self) -> Durability {
        match self {
            Mode::PerMessage => Durability::PerMessage,
            Mode::PerTurn => Durability::PerTurn,
            Mode::Periodic => Durability::Periodic(PERIOD),
        }
    }

    fn group(self) -> &'static str {
        match self {
            Mode::PerMessage => "durable_per_message",
            Mode::PerTurn => "durable_per_turn",
            Mode::Periodic => "durable_periodic_100ms",
        }
    }
}

/// A durable cell's state: changed by every message, counted.
trait State: Serialize + DeserializeOwned + Send + 'static {
    const LABEL: &'static str;
    fn new() -> Self;
    fn apply(&mut self, n: u64);
    fn count(&self) -> u64;
}

/// The small state: a counter.
#[derive(Serialize, Deserialize)]
struct Counter(u64);

impl State for Counter {
    const LABEL: &'static str = "u64";

    fn new() -> Self {
        Counter(0)
    }

    fn apply(&mut self, _n: u64) {
        self.0 += 1;
    }

    fn count(&self) -> u64 {
        self.0
    }
}

/// The 1 KiB state: a counter and 1,024 bytes, one of which each message changes.
#[derive(Serialize, Deserialize)]
struct Blob {
    count: u64,
    bytes: Vec<u8>,
}

impl State for Blob {
    const LABEL: &'static str = "1KiB";

    fn new() -> Self {
        Blob { count: 0, bytes: vec![0; BLOB_BYTES] }
    }

    fn apply(&mut self, n: u64) {
        let at = (self.count % BLOB_BYTES as u64) as usize;
        self.bytes[at] = n as u8;
        self.count += 1;
    }

    fn count(&self) -> u64 {
        self.count
    }
}

/// Messages of [`Saving`].
#[derive(Debug)]
enum Msg {
    /// Change the state.
    Apply(u64),
    /// Answer with the number of changes so far.
    Count(Reply<u64>),
}

/// The durable cell: its state is all it has.
struct Saving<S>(S);

impl<S: State> Cell for Saving<S> {
    type Message = Msg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Apply(n) => self.0.apply(n),
            Msg::Count(reply) => {
                let _ = reply.send(self.0.count());
            }
        }
        Ok(())
    }
}

impl<S: State> Durable for Saving<S> {
    type State = S;

    fn state(&self) -> &S {
        &self.0
    }

    fn restore(state: S) -> Self {
        Saving(state)
    }
}

/// A fresh data directory on the target directory's file system.
fn data_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("durable-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("data directory")
}

/// A 2-worker runtime with mailboxes of `capacity` messages, storing in
/// `dir`, with the engine's background flush off.
fn durable_runtime(dir: &Path, capacity: usize) -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .default_capacity(capacity)
        .throughput(BATCH as usize)
        .storage(StorageConfig::dir(dir).create_missing(true).background_flush(None))
        .build()
        .expect("runtime builds")
}

/// One iteration against the cell: `messages` sends, then the ask. `sent`
/// counts every message sent so far.
fn cellrt_round(addr: &Addr<Msg>, messages: u64, sent: &mut u64) {
    for n in 0..messages {
        addr.send(Msg::Apply(n)).expect("send");
    }
    *sent += messages;
    let count = addr.ask(Msg::Count).expect("ask").wait(WAIT).expect("answer");
    assert_eq!(count, *sent);
    black_box(count);
}

/// The runtime's envelope of a saved state (`Durable::VERSION` and the
/// state's bytes): the baseline writes the same bytes.
#[derive(Serialize)]
struct Saved {
    version: u32,
    state: Vec<u8>,
}

fn encode<V: Serialize>(value: &V) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard()).expect("encode")
}

/// The raw sled baseline: a database of its own, one tree, one key.
struct Raw<S> {
    db: sled::Db,
    tree: sled::Tree,
    state: S,
    mode: Mode,
}

impl<S: State> Raw<S> {
    fn open(dir: &Path, mode: Mode) -> Self {
        let background = match mode {
            Mode::Periodic => Some(PERIOD.as_millis() as u64),
            Mode::PerMessage | Mode::PerTurn => None,
        };
        let db = sled::Config::new()
            .cache_capacity(64 << 20)
            .flush_every_ms(background)
            .path(dir)
            .open()
            .expect("sled opens");
        let tree = db.open_tree("bench").expect("tree");
        Raw { db, tree, state: S::new(), mode }
    }

    /// One iteration: `messages` changes, each encoded and inserted, with
    /// the mode's flushes.
    fn round(&mut self, messages: u64) {
        for n in 0..messages {
            self.state.apply(n);
            let saved = Saved { version: 1, state: encode(&self.state) };
            self.tree.insert("state", encode(&saved)).expect("insert");
            match self.mode {
                Mode::PerMessage => {
                    self.tree.flush().expect("flush");
                }
                Mode::PerTurn if (n + 1) % BATCH == 0 => {
                    self.tree.flush().expect("flush");
                }
                Mode::PerTurn | Mode::Periodic => {}
            }
        }
        if let Mode::PerTurn = self.mode {
            self.tree.flush().expect("flush");
        }
        black_box(self.state.count());
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

/// The cellrt row: a fresh data directory and runtime, one durable cell.
fn bench_cellrt<S: State>(group: &mut Group<'_>, id: &str, mode: Mode, capacity: usize, messages: u64) {
    let dir = data_dir();
    let rt = durable_runtime(dir.path(), capacity);
    let addr = rt
        .spawn_durable(CellConfig::named(S::LABEL), mode.durability(), || Saving(S::new()))
        .expect("spawn_durable");
    let mut sent = 0;
    group.bench_function(BenchmarkId::new(id, S::LABEL), |b| {
        b.iter(|| cellrt_round(&addr, messages, &mut sent));
    });
    rt.shutdown(WAIT);
}

/// The raw sled row.
fn bench_raw<S: State>(group: &mut Group<'_>, mode: Mode, messages: u64) {
    let dir = data_dir();
    let mut raw = Raw::<S>::open(dir.path(), mode);
    group.bench_function(BenchmarkId::new("sled", S::LABEL), |b| b.iter(|| raw.round(messages)));
    raw.db.flush().expect("flush");
    assert_eq!(raw.state.count() % messages, 0);
}

fn bench_state<S: State>(group: &mut Group<'_>, mode: Mode, messages: u64) {
    bench_cellrt::<S>(group, "cellrt", mode, BATCH as usize, messages);
    if let Mode::Periodic = mode {
        // Diagnostic: the sender sleeps on a full mailbox less often.
        bench_cellrt::<S>(group, "cellrt_capacity_1024", mode, DIAGNOSTIC_CAPACITY, messages);
    }
    bench_raw::<S>(group, mode, messages);
}

fn durable(c: &mut Criterion) {
    let full = std::env::args().any(|arg| arg == "--bench");
    for (mode, messages) in MODES {
        let messages = if full { messages } else { SMOKE_MESSAGES };
        let mut group = c.benchmark_group(mode.group());
        group.throughput(Throughput::Elements(messages));
        group.sampling_mode(SamplingMode::Flat);
        bench_state::<Counter>(&mut group, mode, messages);
        bench_state::<Blob>(&mut group, mode, messages);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = common::heavy();
    targets = durable
}

fn main() {
    common::run(benches);
}
