//! Per-cell metrics, kept on the message path without a lock per message.
//!
//! # What a send costs
//!
//! A send to an observed cell counts down a thread-local counter; one send
//! in `sample_every` (per sending thread) carries a [`Stamp`]: the time it
//! was sent and the sending cell. A cell with a latency objective has every
//! message stamped. A send from inside a cell's turn also adds one to a
//! thread-local tally of that turn's edges (receiver → count); a send to
//! the receiver of the edge the sending cell's turns added last, which its
//! metrics already list, only adds one to a thread-local counter, which the
//! turn's end adds to an atomic beside the detail (see "The last edge"). A
//! send rejected as full bumps the receiver's `rejected` counter. What senders
//! read of the receiver's metrics comes first in the cell's metrics; the
//! counters its worker writes follow it unpadded: the worker writes them
//! once per turn, not per message, so a sender misses that cache line at
//! most once a turn, and an idle cell does not pay 128 bytes of padding.
//!
//! # What an idle cell costs
//!
//! A cell's [`CellMetrics`] block is allocated by its first use: the first
//! send to it (a stamp or an edge may be taken), a refused send, a failure,
//! a restart, or a turn that handled a message or sent one (see
//! [`TurnMeter::begin_lazy`]). Until then the cell holds a null pointer and
//! reads as a block that has counted nothing ([`Metrics::unused`]); the
//! counters are the same either way, since a block starts at zero.
//!
//! # What a turn costs
//!
//! The worker counts handled and failed messages in locals and reads the
//! clock only for stamped messages: when it takes one (time in queue; the
//! mailbox length is read then too, for the high-water mark) and when its
//! handler returns (handling time); the stamped messages' samples, and the
//! kinds of failed messages, wait in a thread-local list that keeps its
//! allocation from turn to turn. When the turn ends it adds its locals
//! to the cell's atomics, one `fetch_add` each, and, only if the turn had
//! stamped messages, failures of a kept kind or sends on an edge other than
//! the last one, takes the cell's detail lock once to fold in its samples
//! and edges. A turn that sent only on the last edge adds its count with
//! one `fetch_add` and no lock.
//!
//! So the message counters are exact; handling time (and busy time, which
//! is the mean handling time of the stamped messages times the messages),
//! time in queue, and per-edge latency come from the stamped sample. The
//! mailbox high-water mark is read as stamped messages are taken, and is
//! the capacity once a send was rejected as full.
//!
//! # The last edge
//!
//! A cell's sends on its last edge (`CellMetrics::last_edge`, the receiver
//! of the edge its turns added last) are counted in `last_edge_sends`, not
//! in the edge's entry in the detail's `outbound`; the edge's count is the
//! sum of the two. The worker holding the cell's run token is the only
//! writer of both fields:
//!
//! - it adds a turn's sends on the last edge to `last_edge_sends` with a
//!   `fetch_add`, without the detail lock;
//! - it changes the last edge only under the detail lock, and in the same
//!   critical section first moves `last_edge_sends` (swapped to 0) into the
//!   entry of the edge it leaves.
//!
//! A reader ([`CellMetrics::outbound`]) takes the detail lock and adds
//! `last_edge_sends` to the entry of `last_edge`. The lock orders it with
//! every change of the last edge, so the pending count it reads belongs to
//! the edge it reads (counts added after the change are the new edge's and
//! are added after the reader released the lock), and no count is ever in
//! both places or in neither. All accesses are `Relaxed`: the lock gives
//! the only order the sum needs, and the count a reader reads is one the
//! worker reached, from a turn that ended or is ending. Modelled in
//! `loom-tests/tests/observe_metrics.rs`.

use std::cell::{Cell as StdCell, RefCell};
use std::time::{Duration, Instant};

use super::histogram::{Histogram, LatencySummary};
use crate::path::CellPath;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::Mutex;

/// When and by whom a sampled message was sent, and by when it must be
/// handled if its sender gave it a deadline.
///
/// A message with a deadline always carries a stamp (the deadline travels
/// in it, so mailbox slots do not grow); it then also counts as a sample.
#[derive(Debug)]
pub(crate) struct Stamp {
    sent: Instant,
    /// The sending cell's instance id; 0 outside any cell.
    from: u64,
    /// Handle before this, or not at all (see `flow` and `Addr::ask_within`).
    deadline: Option<Instant>,
}

impl Stamp {
    /// The stamp of a message that must be handled before `deadline`, sent
    /// now from this thread.
    pub(crate) fn with_deadline(deadline: Instant) -> Box<Stamp> {
        let from = SENDER.with(|sender| sender.cell.get());
        Box::new(Stamp { sent: Instant::now(), from, deadline: Some(deadline) })
    }

    /// The deadline the sender gave the message, if any.
    #[inline]
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
}

/// The sending side of this thread: sends since the last stamp, the
/// observed cell whose turn runs here (0 for none), and what that turn
/// sent.
struct Sender {
    sends: StdCell<u32>,
    cell: StdCell<u64>,
    /// The receiver of the edge the running cell's turns added last (its
    /// `CellMetrics::last_edge`), 0 for none: that edge is listed in the
    /// cell's detail already, so sends to it are only counted, in
    /// `known_sends`, with no entry in the tally.
    known_to: StdCell<u64>,
    known_sends: StdCell<u64>,
    /// Whether the running turn added to the tally (`EDGES`).
    tallied: StdCell<bool>,
}

/// What the running turn sent, by receiver.
#[derive(Default)]
struct TurnEdges {
    edges: Vec<OutEdge>,
}

struct OutEdge {
    to: u64,
    path: CellPath,
    messages: u64,
}

thread_local! {
    static SENDER: Sender = const {
        Sender {
            sends: StdCell::new(0),
            cell: StdCell::new(0),
            known_to: StdCell::new(0),
            known_sends: StdCell::new(0),
            tallied: StdCell::new(false),
        }
    };
    static EDGES: RefCell<TurnEdges> = const { RefCell::new(TurnEdges { edges: Vec::new() }) };
    static RECORD: RefCell<TurnRecord> =
        const { RefCell::new(TurnRecord { samples: Vec::new(), failed_kinds: Vec::new() }) };
}

/// Counters of one cell since it was spawned (across its restarts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) handled: u64,
    pub(crate) failed: u64,
    pub(crate) panics: u64,
    pub(crate) restarts: u64,
    pub(crate) rejected: u64,
    /// Sends the address's shedding policy refused while this cell served it.
    pub(crate) shed: u64,
    pub(crate) slow: u64,
    /// Handling time of the stamped messages.
    pub(crate) busy: Duration,
    pub(crate) queue_delay: Duration,
    /// Stamped messages: those `busy` and `queue_delay` cover.
    pub(crate) queue_samples: u64,
}

/// A message edge out of one cell, as kept by the sender.
#[derive(Clone, Debug)]
pub(crate) struct EdgeCount {
    pub(crate) to: u64,
    pub(crate) path: CellPath,
    pub(crate) messages: u64,
}

/// Time in queue of the stamped messages one sender sent to this cell.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct InboundLatency {
    pub(crate) samples: u64,
    pub(crate) total: Duration,
    pub(crate) max: Duration,
}

/// What is kept of one message kind ([`Cell::message_kind`](crate::Cell::message_kind)).
struct KindDetail {
    kind: &'static str,
    /// Stamped messages of this kind.
    sampled: u64,
    /// Messages of this kind whose handling failed: every one, not a sample.
    failed: u64,
    /// Handling time of the stamped messages of this kind.
    busy: Duration,
    /// Time in queue plus handling time of the stamped messages of this kind.
    latency: Histogram,
}

impl KindDetail {
    fn new(kind: &'static str) -> Self {
        KindDetail { kind, sampled: 0, failed: 0, busy: Duration::ZERO, latency: Histogram::default() }
    }
}

/// One message kind's evidence so far (since the cell was spawned).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KindTotals {
    pub(crate) kind: &'static str,
    pub(crate) sampled: u64,
    pub(crate) failed: u64,
    pub(crate) busy: Duration,
}

/// What is kept behind the detail lock, allocated on first use.
#[derive(Default)]
struct Detail {
    handling: Histogram,
    queue: Histogram,
    /// Message kinds seen among the stamped messages (and failures), in
    /// order of appearance.
    kinds: Vec<KindDetail>,
    outbound: Vec<EdgeCount>,
    /// By sender instance id.
    inbound: Vec<(u64, InboundLatency)>,
}

/// What senders read and write of a cell's metrics.
struct SendSide {
    sample_every: u32,
    /// Whether the worker keeps evidence per message kind.
    kind_evidence: bool,
    /// A latency objective's threshold in nanoseconds; 0 for none. While set,
    /// every message is stamped and timed.
    latency_threshold: AtomicU64,
    rejected: AtomicU64,
    shed: AtomicU64,
}

/// The metrics of one cell instance.
pub(crate) struct CellMetrics {
    send: SendSide,
    handled: AtomicU64,
    failed: AtomicU64,
    panics: AtomicU64,
    restarts: AtomicU64,
    slow: AtomicU64,
    expired: AtomicU64,
    busy_ns: AtomicU64,
    queue_ns: AtomicU64,
    queue_samples: AtomicU64,
    high_water: AtomicUsize,
    window_high: AtomicUsize,
    /// The receiver of the last edge a turn of this cell added to its
    /// detail's `outbound` (0 for none), which lists it from then on.
    /// Written only by the worker holding the cell's run token (whose
    /// hand-over orders one turn after the other), under the detail lock;
    /// read by that worker without it, by others under it.
    last_edge: AtomicU64,
    /// Sends on `last_edge` not yet in its entry in the detail's
    /// `outbound`: added to by the worker holding the run token without
    /// the lock, moved into the entry under the lock when the last edge
    /// changes (see "The last edge" in the module docs).
    last_edge_sends: AtomicU64,
    detail: Mutex<Option<Box<Detail>>>,
}

impl CellMetrics {
    /// Metrics that stamp one send in `sample_every` (at least 1), and keep
    /// evidence per message kind if `kind_evidence`.
    pub(crate) fn new(sample_every: u32, kind_evidence: bool) -> Self {
        CellMetrics {
            send: SendSide {
                sample_every: sample_every.max(1),
                kind_evidence,
                latency_threshold: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                shed: AtomicU64::new(0),
            },
            handled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            expired: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            queue_ns: AtomicU64::new(0),
            queue_samples: AtomicU64::new(0),
            high_water: AtomicUsize::new(0),
            window_high: AtomicUsize::new(0),
            last_edge: AtomicU64::new(0),
            last_edge_sends: AtomicU64::new(0),
            detail: Mutex::new(None),
        }
    }

    /// The stamp for a message about to be sent to this cell, if it is one
    /// of the sampled ones.
    #[inline]
    pub(crate) fn stamp(&self) -> Option<Box<Stamp>> {
        let send = &self.send;
        let timed = send.latency_threshold.load(Relaxed) != 0;
        let from = SENDER.with(|sender| {
            let n = sender.sends.get() + 1;
            if n < send.sample_every && !timed {
                sender.sends.set(n);
                return None;
            }
            sender.sends.set(0);
            Some(sender.cell.get())
        })?;
        Some(Box::new(Stamp { sent: Instant::now(), from, deadline: None }))
    }

    /// A send to this cell (instance `id` at `path`) was accepted: counts
    /// the edge from the cell whose turn runs on this thread, if any.
    #[inline]
    pub(crate) fn accepted(id: u64, path: &CellPath) {
        let tally = SENDER.with(|sender| {
            if sender.cell.get() == 0 {
                return false;
            }
            if id == sender.known_to.get() {
                // Listed in the sending cell's detail already: counted,
                // with no path to keep.
                sender.known_sends.set(sender.known_sends.get() + 1);
                return false;
            }
            sender.tallied.set(true);
            true
        });
        if !tally {
            return;
        }
        EDGES.with(|edges| {
            let mut edges = edges.borrow_mut();
            match edges.edges.iter_mut().find(|edge| edge.to == id) {
                Some(edge) => edge.messages += 1,
                None => edges.edges.push(OutEdge { to: id, path: path.clone(), messages: 1 }),
            }
        });
    }

    /// A send to this cell's address was refused by its shedding policy.
    pub(crate) fn shed(&self) {
        self.send.shed.fetch_add(1, Relaxed);
    }

    /// A send to this cell was rejected because its mailbox was full.
    pub(crate) fn rejected(&self, capacity: usize) {
        self.send.rejected.fetch_add(1, Relaxed);
        self.high_water.fetch_max(capacity, Relaxed);
        self.window_high.fetch_max(capacity, Relaxed);
    }

    /// A hook panicked.
    pub(crate) fn panicked(&self) {
        self.panics.fetch_add(1, Relaxed);
    }

    /// A message's deadline passed before its turn: it was not handled.
    pub(crate) fn expired(&self) {
        self.expired.fetch_add(1, Relaxed);
    }

    /// A new incarnation began in place of a failed or stopped one.
    pub(crate) fn restarted(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }

    /// Sets or clears (`None`) the latency a message may take (time in
    /// queue plus handling) before it counts as slow.
    pub(crate) fn set_latency_threshold(&self, threshold: Option<Duration>) {
        let ns = threshold.map_or(0, |t| u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1));
        self.send.latency_threshold.store(ns, Relaxed);
    }

    /// The cumulative counters.
    pub(crate) fn counters(&self) -> Counters {
        Counters {
            handled: self.handled.load(Relaxed),
            failed: self.failed.load(Relaxed),
            panics: self.panics.load(Relaxed),
            restarts: self.restarts.load(Relaxed),
            rejected: self.send.rejected.load(Relaxed),
            shed: self.send.shed.load(Relaxed),
            slow: self.slow.load(Relaxed),
            busy: Duration::from_nanos(self.busy_ns.load(Relaxed)),
            queue_delay: Duration::from_nanos(self.queue_ns.load(Relaxed)),
            queue_samples: self.queue_samples.load(Relaxed),
        }
    }

    /// The highest mailbox length seen since the last call, reset to the
    /// length now (`queued`).
    pub(crate) fn take_window_high(&self, queued: usize) -> usize {
        self.window_high.swap(queued, Relaxed).max(queued)
    }

    /// Message kinds seen so far, in order of appearance.
    pub(crate) fn kinds(&self) -> Vec<&'static str> {
        self.detail.lock().as_ref().map(|d| d.kinds.iter().map(|k| k.kind).collect()).unwrap_or_default()
    }

    /// Each message kind's evidence so far, in order of appearance.
    pub(crate) fn kind_totals(&self) -> Vec<KindTotals> {
        let detail = self.detail.lock();
        let Some(detail) = detail.as_ref() else { return Vec::new() };
        detail
            .kinds
            .iter()
            .map(|k| KindTotals { kind: k.kind, sampled: k.sampled, failed: k.failed, busy: k.busy })
            .collect()
    }

    /// The edges out of this cell, with their message counts.
    pub(crate) fn outbound(&self) -> Vec<EdgeCount> {
        let detail = self.detail.lock();
        let Some(detail) = detail.as_ref() else { return Vec::new() };
        let mut outbound = detail.outbound.clone();
        // Under the lock, which orders this with every change of the last
        // edge: the pending count is the listed last edge's.
        let last = self.last_edge.load(Relaxed);
        if let Some(edge) = outbound.iter_mut().find(|edge| edge.to == last) {
            edge.messages += self.last_edge_sends.load(Relaxed);
        }
        outbound
    }

    /// Time in queue of the stamped messages from sender instance `from`.
    pub(crate) fn inbound(&self, from: u64) -> Option<InboundLatency> {
        let detail = self.detail.lock();
        detail.as_ref()?.inbound.iter().find(|(id, _)| *id == from).map(|(_, latency)| *latency)
    }

    /// What the metrics say now; `queued` and `capacity` are the mailbox's.
    pub(crate) fn snapshot(&self, queued: usize, capacity: usize) -> Metrics {
        let counters = self.counters();
        let (handling, queue, kinds) = match self.detail.lock().as_ref() {
            Some(detail) => {
                (detail.handling.summary(), detail.queue.summary(), KindMetrics::of(&detail.kinds))
            }
            None => Default::default(),
        };
        let messages = counters.handled + counters.failed;
        Metrics {
            handled: counters.handled,
            failed: counters.failed,
            panics: counters.panics,
            restarts: counters.restarts,
            rejected_full: counters.rejected,
            shed: counters.shed,
            slow: counters.slow,
            expired: self.expired.load(Relaxed),
            mailbox_len: queued,
            mailbox_capacity: capacity,
            mailbox_high_water: self.high_water.load(Relaxed).max(queued),
            busy: if counters.queue_samples == 0 {
                Duration::ZERO
            } else {
                counters.busy.mul_f64(messages as f64 / counters.queue_samples as f64)
            },
            work_per_message: if counters.queue_samples == 0 {
                Duration::ZERO
            } else {
                counters.busy / u32::try_from(counters.queue_samples).unwrap_or(u32::MAX)
            },
            handling,
            time_in_queue: queue,
            message_kinds: kinds.iter().map(|k| k.kind.clone()).collect(),
            kinds: if self.send.kind_evidence { kinds } else { Vec::new() },
        }
    }
}

impl Metrics {
    /// What [`CellMetrics::snapshot`] reports of a block that has counted
    /// nothing: the snapshot of an observed cell whose block is not
    /// allocated yet (it has handled no message).
    pub(crate) fn unused(queued: usize, capacity: usize) -> Metrics {
        Metrics {
            mailbox_len: queued,
            mailbox_capacity: capacity,
            mailbox_high_water: queued,
            ..Metrics::default()
        }
    }
}

impl Detail {
    /// The evidence of message kind `kind`, added on first sight.
    fn kind(&mut self, kind: &'static str) -> &mut KindDetail {
        let index = match self.kinds.iter().position(|k| k.kind == kind) {
            Some(index) => index,
            None => {
                self.kinds.push(KindDetail::new(kind));
                self.kinds.len() - 1
            }
        };
        &mut self.kinds[index]
    }
}

impl std::fmt::Debug for CellMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellMetrics").field("counters", &self.counters()).finish()
    }
}

/// Where a turn's meter finds the cell's metrics block: at hand, or
/// allocated when the turn first has something to add (see
/// [`TurnMeter::begin_lazy`]).
#[derive(Clone, Copy)]
enum Block<'a> {
    Ready(&'a CellMetrics),
    Lazy(&'a dyn Fn() -> &'a CellMetrics),
}

/// A stamped message taken from the mailbox, timed while it is handled.
pub(crate) struct Timed {
    stamp: Box<Stamp>,
    taken: Instant,
}

/// What one turn of one cell measured, added to its metrics when the turn
/// ends (dropped).
///
/// What goes behind the detail lock (stamped messages' samples, failed
/// messages' kinds) waits in this thread's [`TurnRecord`]; the meter
/// counts the entries it pushed there, which are the last ones.
pub(crate) struct TurnMeter<'a> {
    metrics: Block<'a>,
    handled: u64,
    failed: u64,
    slow: u64,
    /// Samples this turn pushed onto the thread's record.
    samples: usize,
    /// Failed messages' kinds this turn pushed onto the thread's record.
    failed_kinds: usize,
}

/// What the turns running on this thread measured for the detail lock,
/// kept between turns: a turn that has stamped messages or failures
/// allocates nothing, and a turn that has neither carries no list to drop.
/// Each meter takes back only the entries it pushed, the last ones, so a
/// turn run inside another's handler leaves the outer turn's entries.
struct TurnRecord {
    samples: Vec<Sample>,
    /// The kinds of the messages that failed (kept with kind evidence).
    failed_kinds: Vec<&'static str>,
}

struct Sample {
    from: u64,
    kind: &'static str,
    queue: Duration,
    handling: Duration,
}

impl<'a> TurnMeter<'a> {
    /// Begins measuring a turn of cell `id`: sends from this thread count
    /// as edges out of it.
    #[cfg(test)]
    pub(crate) fn begin(metrics: &'a CellMetrics, id: u64) -> Self {
        TurnMeter::with_block(Block::Ready(metrics), id)
    }

    /// [`begin`](TurnMeter::begin) for a cell whose metrics block may not
    /// be allocated yet: `block` returns it, allocating it on first call,
    /// which the meter makes only when the turn has something to add (a
    /// message handled or failed, a stamped message, an edge). So a turn
    /// that only runs `started` leaves an idle cell without a block.
    /// `ready` is the block when it is allocated already.
    pub(crate) fn begin_lazy(
        block: &'a dyn Fn() -> &'a CellMetrics,
        ready: Option<&'a CellMetrics>,
        id: u64,
    ) -> Self {
        TurnMeter::with_block(ready.map_or(Block::Lazy(block), Block::Ready), id)
    }

    fn with_block(metrics: Block<'a>, id: u64) -> Self {
        let known_to = match metrics {
            Block::Ready(metrics) => metrics.last_edge.load(Relaxed),
            Block::Lazy(_) => 0,
        };
        SENDER.with(|sender| {
            sender.cell.set(id);
            sender.known_to.set(known_to);
        });
        TurnMeter { metrics, handled: 0, failed: 0, slow: 0, samples: 0, failed_kinds: 0 }
    }

    /// The cell's metrics block, allocated now if this is its first use.
    #[inline]
    fn metrics(&mut self) -> &'a CellMetrics {
        match self.metrics {
            Block::Ready(metrics) => metrics,
            Block::Lazy(block) => {
                let metrics = block();
                self.metrics = Block::Ready(metrics);
                metrics
            }
        }
    }

    /// A message was taken; `stamp` is its stamp, if it carries one.
    /// `queued` gives the mailbox's length, read for stamped messages.
    #[inline]
    pub(crate) fn taken(
        &mut self,
        stamp: Option<Box<Stamp>>,
        queued: impl FnOnce() -> usize,
    ) -> Option<Timed> {
        let stamp = stamp?;
        // Plus the one just taken.
        let queued = queued() + 1;
        let metrics = self.metrics();
        if queued > metrics.window_high.load(Relaxed) {
            metrics.window_high.fetch_max(queued, Relaxed);
            metrics.high_water.fetch_max(queued, Relaxed);
        }
        Some(Timed { stamp, taken: Instant::now() })
    }

    /// The message taken last was handled (`ok`) or failed.
    #[inline]
    pub(crate) fn done(&mut self, timed: Option<Timed>, kind: &'static str, ok: bool) {
        if ok {
            self.handled += 1;
        } else {
            self.failed += 1;
            if self.metrics().send.kind_evidence {
                RECORD.with(|record| record.borrow_mut().failed_kinds.push(kind));
                self.failed_kinds += 1;
            }
        }
        if let Some(Timed { stamp, taken }) = timed {
            let now = Instant::now();
            let queue = taken.saturating_duration_since(stamp.sent);
            let handling = now.saturating_duration_since(taken);
            let threshold = self.metrics().send.latency_threshold.load(Relaxed);
            if threshold != 0 && (queue + handling).as_nanos() > u128::from(threshold) {
                self.slow += 1;
            }
            let sample = Sample { from: stamp.from, kind, queue, handling };
            RECORD.with(|record| record.borrow_mut().samples.push(sample));
            self.samples += 1;
        }
    }
}

impl Drop for TurnMeter<'_> {
    fn drop(&mut self) {
        let (known_sends, tallied) = SENDER.with(|sender| {
            sender.cell.set(0);
            sender.known_to.set(0);
            (sender.known_sends.replace(0), sender.tallied.replace(false))
        });
        let detailed = self.samples > 0 || tallied || self.failed_kinds > 0;
        if !detailed && self.handled == 0 && self.failed == 0 && self.slow == 0 && known_sends == 0 {
            // Nothing to add: a cell without a block keeps none.
            return;
        }
        let metrics = self.metrics();
        let add = |counter: &AtomicU64, n: u64| {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        };
        add(&metrics.handled, self.handled);
        add(&metrics.failed, self.failed);
        add(&metrics.slow, self.slow);
        // Sends on the last edge: pending until the last edge changes, which
        // happens only under the detail lock (module docs, "The last edge").
        add(&metrics.last_edge_sends, known_sends);
        if detailed {
            RECORD.with(|record| self.fold(metrics, &mut record.borrow_mut(), tallied, known_sends));
        }
    }
}

impl TurnMeter<'_> {
    /// The end of a turn with something for the detail lock: its samples
    /// and failed kinds (the last entries of this thread's `record`), and
    /// the edges it tallied if it did (`tallied`), taken under the lock.
    /// `known_sends`: the turn's sends on the cell's last edge.
    fn fold(&self, metrics: &CellMetrics, record: &mut TurnRecord, tallied: bool, known_sends: u64) {
        let samples = record.samples.len() - self.samples;
        let failed_kinds = record.failed_kinds.len() - self.failed_kinds;
        if self.samples > 0 {
            let taken = &record.samples[samples..];
            let queue_ns: u64 = taken.iter().map(|s| s.queue.as_nanos() as u64).sum();
            let busy_ns: u64 = taken.iter().map(|s| s.handling.as_nanos() as u64).sum();
            metrics.queue_ns.fetch_add(queue_ns, Relaxed);
            metrics.busy_ns.fetch_add(busy_ns, Relaxed);
            metrics.queue_samples.fetch_add(self.samples as u64, Relaxed);
        }
        let kind_evidence = metrics.send.kind_evidence;
        let mut detail = metrics.detail.lock();
        let detail = detail.get_or_insert_with(Box::default);
        for sample in record.samples.drain(samples..) {
            detail.handling.record(sample.handling);
            detail.queue.record(sample.queue);
            if kind_evidence {
                let kind = detail.kind(sample.kind);
                kind.sampled += 1;
                kind.busy += sample.handling;
                kind.latency.record(sample.queue + sample.handling);
            } else if !detail.kinds.iter().any(|k| k.kind == sample.kind) {
                // The kinds seen are still listed (`Metrics::message_kinds`).
                detail.kinds.push(KindDetail::new(sample.kind));
            }
            if sample.from != 0 {
                let latency = match detail.inbound.iter_mut().find(|(id, _)| *id == sample.from) {
                    Some((_, latency)) => latency,
                    None => {
                        detail.inbound.push((sample.from, InboundLatency::default()));
                        &mut detail.inbound.last_mut().expect("just pushed").1
                    }
                };
                latency.samples += 1;
                latency.total += sample.queue;
                latency.max = latency.max.max(sample.queue);
            }
        }
        for kind in record.failed_kinds.drain(failed_kinds..) {
            detail.kind(kind).failed += 1;
        }
        if tallied {
            // Drained in place: the tally keeps its allocation for the next
            // turn on this thread, so a turn that sends allocates nothing.
            let first = EDGES.with(|edges| {
                let mut edges = edges.borrow_mut();
                let first = edges.edges.first().map(|edge| edge.to);
                for edge in edges.edges.drain(..) {
                    match detail.outbound.iter_mut().find(|e| e.to == edge.to) {
                        Some(known) => known.messages += edge.messages,
                        None => detail.outbound.push(EdgeCount {
                            to: edge.to,
                            path: edge.path,
                            messages: edge.messages,
                        }),
                    }
                }
                first
            });
            // The next turn counts sends to this receiver on their own,
            // unless the edge counted so this turn is still in use. The
            // edge left behind takes its pending sends first, in this
            // critical section, so a reader finds each send in one place.
            if let (Some(first), 0) = (first, known_sends) {
                let left = metrics.last_edge.load(Relaxed);
                let pending = metrics.last_edge_sends.swap(0, Relaxed);
                if let Some(edge) = detail.outbound.iter_mut().find(|e| e.to == left) {
                    edge.messages += pending;
                }
                metrics.last_edge.store(first, Relaxed);
            }
        }
    }
}

/// A cell's metrics, as [`Runtime::snapshot`](crate::Runtime::snapshot)
/// reports them. Counters run from the cell's spawn, across restarts.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Metrics {
    /// Messages handled successfully.
    pub handled: u64,
    /// Messages whose handling failed (error, panic, overrun deadline,
    /// storage failure).
    pub failed: u64,
    /// Panics in any hook.
    pub panics: u64,
    /// New incarnations in place of ended ones.
    pub restarts: u64,
    /// Sends that found the mailbox full: counted once per send, when it
    /// was first refused, whether it then gave up, waited and got in, or
    /// timed out.
    pub rejected_full: u64,
    /// Sends refused by the address's shedding policy
    /// ([`Shedding`](crate::Shedding)) while this cell served the address.
    pub shed: u64,
    /// Messages over the latency objective's threshold (with one set).
    pub slow: u64,
    /// Messages not handled because their deadline had passed when their
    /// turn came (dead-lettered as expired).
    pub expired: u64,
    /// Messages waiting now.
    pub mailbox_len: usize,
    /// The mailbox's capacity.
    pub mailbox_capacity: usize,
    /// The longest the mailbox has been (read at turn starts; the capacity
    /// once a send was rejected as full).
    pub mailbox_high_water: usize,
    /// Time spent handling messages: the stamped messages' mean handling
    /// time, times the messages handled or failed.
    pub busy: Duration,
    /// The stamped messages' mean handling time.
    pub work_per_message: Duration,
    /// Handling time of the stamped messages.
    pub handling: LatencySummary,
    /// Time in queue of the stamped messages.
    pub time_in_queue: LatencySummary,
    /// Message kinds seen among the stamped messages, in order of appearance.
    pub message_kinds: Vec<String>,
    /// Each message kind's evidence, in order of appearance: what kind of
    /// work the cell spends its time on, and which kind fails.
    pub kinds: Vec<KindMetrics>,
}

/// One message kind's share of a cell's work, from the stamped messages
/// ([`Cell::message_kind`](crate::Cell::message_kind) names the kinds).
///
/// Counts and times come from the sample that observation stamps (one
/// message in `sample_every` per sending thread, every message for a cell
/// with an objective); failures are counted exactly.
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct KindMetrics {
    /// The message kind.
    pub kind: String,
    /// Stamped messages of this kind.
    pub sampled: u64,
    /// Messages of this kind whose handling failed (all of them).
    pub failed: u64,
    /// Handling time of the stamped messages of this kind.
    pub busy: Duration,
    /// This kind's share of the stamped messages, 0 to 1.
    pub load_share: f64,
    /// This kind's share of the stamped messages' handling time, 0 to 1.
    pub busy_share: f64,
    /// Time in queue plus handling time of the stamped messages of this kind.
    pub latency: LatencySummary,
}

impl KindMetrics {
    fn of(kinds: &[KindDetail]) -> Vec<KindMetrics> {
        let sampled: u64 = kinds.iter().map(|k| k.sampled).sum();
        let busy: Duration = kinds.iter().map(|k| k.busy).sum();
        kinds
            .iter()
            .map(|k| KindMetrics {
                kind: k.kind.to_owned(),
                sampled: k.sampled,
                failed: k.failed,
                busy: k.busy,
                load_share: share(k.sampled as f64, sampled as f64),
                busy_share: share(k.busy.as_secs_f64(), busy.as_secs_f64()),
                latency: k.latency.summary(),
            })
            .collect()
    }
}

/// `part / whole`, 0 when the whole is 0.
pub(crate) fn share(part: f64, whole: f64) -> f64 {
    if whole > 0.0 {
        part / whole
    } else {
        0.0
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use std::cell::Cell as StdCell;

    use super::*;

    #[test]
    fn an_unused_block_reports_what_a_fresh_block_reports() {
        for kind_evidence in [false, true] {
            for (queued, capacity) in [(0, 32), (3, 1024)] {
                let fresh = CellMetrics::new(32, kind_evidence).snapshot(queued, capacity);
                assert_eq!(fresh, Metrics::unused(queued, capacity));
            }
        }
    }

    #[test]
    fn a_turn_with_nothing_to_add_asks_for_no_block() {
        let metrics = CellMetrics::new(1, true);
        let asked = StdCell::new(0);
        let block = || {
            asked.set(asked.get() + 1);
            &metrics
        };
        drop(TurnMeter::begin_lazy(&block, None, 7));
        assert_eq!(asked.get(), 0, "a turn that only ran a hook keeps an idle cell without a block");
        let mut meter = TurnMeter::begin_lazy(&block, None, 7);
        meter.done(None, "u64", true);
        meter.done(None, "u64", true);
        drop(meter);
        assert_eq!(asked.get(), 1, "the block is asked for once, when the turn ends");
        assert_eq!(metrics.counters().handled, 2);
    }

    #[test]
    fn every_send_of_every_turn_counts_on_its_edge() {
        let metrics = CellMetrics::new(u32::MAX, true);
        let (to_a, to_b) = (CellPath::root().child("a").unwrap(), CellPath::root().child("b").unwrap());
        let block = || &metrics;
        // Turns sending to one receiver, to two, then to the other alone.
        let turns: [&[u64]; 5] = [&[8, 8], &[8], &[8, 9, 8], &[9, 9], &[8]];
        for (turn, sends) in turns.iter().enumerate() {
            let ready = (turn > 0).then_some(&metrics);
            let meter = TurnMeter::begin_lazy(&block, ready, 7);
            for &to in *sends {
                CellMetrics::accepted(to, if to == 8 { &to_a } else { &to_b });
            }
            drop(meter);
        }
        let edges: Vec<(u64, CellPath, u64)> =
            metrics.outbound().into_iter().map(|e| (e.to, e.path, e.messages)).collect();
        assert_eq!(edges, [(8, to_a, 6), (9, to_b, 3)]);
    }

    /// Runs one turn of cell 7 that sends to each receiver of `sends`
    /// (8 at `/a`, anything else at `/b`).
    fn turn(metrics: &CellMetrics, sends: &[u64]) {
        let (to_a, to_b) = (CellPath::root().child("a").unwrap(), CellPath::root().child("b").unwrap());
        let meter = TurnMeter::begin(metrics, 7);
        for &to in sends {
            CellMetrics::accepted(to, if to == 8 { &to_a } else { &to_b });
        }
        drop(meter);
    }

    fn counts(metrics: &CellMetrics) -> Vec<(u64, u64)> {
        metrics.outbound().into_iter().map(|e| (e.to, e.messages)).collect()
    }

    /// What the detail lists of each edge, and the sends pending on the
    /// last edge.
    fn listed(metrics: &CellMetrics) -> (Vec<(u64, u64)>, u64, u64) {
        let detail = metrics.detail.lock();
        let listed = detail.as_ref().unwrap().outbound.iter().map(|e| (e.to, e.messages)).collect();
        (listed, metrics.last_edge.load(Relaxed), metrics.last_edge_sends.load(Relaxed))
    }

    #[test]
    fn sends_on_the_last_edge_are_counted_beside_the_detail() {
        let metrics = CellMetrics::new(u32::MAX, true);
        turn(&metrics, &[8, 8]);
        assert_eq!(listed(&metrics), (vec![(8, 2)], 8, 0));
        turn(&metrics, &[8]);
        turn(&metrics, &[8, 8, 8]);
        // The detail is as the first turn left it: the later turns only
        // added to the pending count.
        assert_eq!(listed(&metrics), (vec![(8, 2)], 8, 4));
        assert_eq!(counts(&metrics), [(8, 6)]);
    }

    #[test]
    fn a_change_of_edge_moves_the_pending_sends_into_the_edge_left() {
        let metrics = CellMetrics::new(u32::MAX, true);
        turn(&metrics, &[8]);
        turn(&metrics, &[8, 8]);
        assert_eq!(listed(&metrics), (vec![(8, 1)], 8, 2));
        turn(&metrics, &[9]);
        assert_eq!(listed(&metrics), (vec![(8, 3), (9, 1)], 9, 0));
        assert_eq!(counts(&metrics), [(8, 3), (9, 1)]);
        turn(&metrics, &[9, 9]);
        assert_eq!(counts(&metrics), [(8, 3), (9, 3)]);
        // Back to a receiver listed already: it becomes the last edge again.
        turn(&metrics, &[8]);
        assert_eq!(listed(&metrics), (vec![(8, 4), (9, 3)], 8, 0));
        turn(&metrics, &[8]);
        assert_eq!(counts(&metrics), [(8, 5), (9, 3)]);
    }

    #[test]
    fn a_turn_on_the_last_edge_and_another_keeps_the_last_edge() {
        let metrics = CellMetrics::new(u32::MAX, true);
        turn(&metrics, &[8]);
        turn(&metrics, &[9, 8, 9]);
        assert_eq!(listed(&metrics), (vec![(8, 1), (9, 2)], 8, 1));
        assert_eq!(counts(&metrics), [(8, 2), (9, 2)]);
        turn(&metrics, &[8]);
        assert_eq!(counts(&metrics), [(8, 3), (9, 2)]);
    }

    /// A stamped message from sender `from`, taken and handled (`ok`) or
    /// failed in the turn `meter` measures.
    fn stamped(meter: &mut TurnMeter<'_>, from: u64, kind: &'static str, ok: bool) {
        let stamp = Box::new(Stamp { sent: Instant::now(), from, deadline: None });
        let timed = meter.taken(Some(stamp), || 0);
        meter.done(timed, kind, ok);
    }

    fn kinds_of(metrics: &CellMetrics) -> Vec<(&'static str, u64, u64)> {
        metrics.kind_totals().into_iter().map(|k| (k.kind, k.sampled, k.failed)).collect()
    }

    #[test]
    fn a_turn_run_inside_another_keeps_its_samples_apart() {
        let (outer, inner) = (CellMetrics::new(1, true), CellMetrics::new(1, true));
        let mut outer_turn = TurnMeter::begin(&outer, 7);
        stamped(&mut outer_turn, 3, "Ping", true);
        let mut inner_turn = TurnMeter::begin(&inner, 8);
        stamped(&mut inner_turn, 4, "Pong", true);
        stamped(&mut inner_turn, 4, "Bad", false);
        drop(inner_turn);
        stamped(&mut outer_turn, 3, "Ping", false);
        drop(outer_turn);

        assert_eq!(kinds_of(&outer), [("Ping", 2, 1)]);
        assert_eq!(
            (outer.counters().handled, outer.counters().failed, outer.counters().queue_samples),
            (1, 1, 2)
        );
        assert_eq!(outer.inbound(3).map(|latency| latency.samples), Some(2));
        assert_eq!(outer.inbound(4).map(|latency| latency.samples), None);

        assert_eq!(kinds_of(&inner), [("Pong", 1, 0), ("Bad", 1, 1)]);
        assert_eq!(
            (inner.counters().handled, inner.counters().failed, inner.counters().queue_samples),
            (1, 1, 2)
        );
        assert_eq!(inner.inbound(4).map(|latency| latency.samples), Some(2));
        assert_eq!(inner.inbound(3).map(|latency| latency.samples), None);
        assert!(RECORD.with(|record| {
            let record = record.borrow();
            record.samples.is_empty() && record.failed_kinds.is_empty()
        }));
    }

    #[test]
    fn sends_outside_a_turn_count_on_no_edge() {
        let metrics = CellMetrics::new(u32::MAX, true);
        let to = CellPath::root().child("a").unwrap();
        drop(TurnMeter::begin(&metrics, 7));
        CellMetrics::accepted(8, &to);
        let meter = TurnMeter::begin(&metrics, 7);
        CellMetrics::accepted(8, &to);
        drop(meter);
        CellMetrics::accepted(8, &to);
        assert_eq!(metrics.outbound().iter().map(|e| (e.to, e.messages)).collect::<Vec<_>>(), [(8, 1)]);
    }
}
