//! The faults installed in one runtime, the decisions taken at its seams,
//! the injection log, and the probes experiments read.
//!
//! # Who touches what
//!
//! - `active`: the number of installed fault sets and probes. Written under
//!   the `sets` or `probes` write lock (so it never disagrees with them for
//!   long), read with one relaxed load per message by the seams: zero means
//!   "nothing to do", and nothing else is read. A message sent after
//!   [`Runtime::inject`](crate::Runtime::inject) returned is seen with the
//!   fault in place: the mailbox's push and pop order the install before
//!   the worker's load.
//! - `sets`: read by every seam decision while `active` is not zero,
//!   written to install and remove. Each set keeps its own log and, per
//!   fault, a generator and counters behind a mutex: the draws of one fault
//!   are made one at a time, in the order its matching messages arrive.
//! - `probes`: the cells an experiment measures; read at the handle seam,
//!   written when an experiment starts and ends.
//! - `claims`: the blast radii of running experiments.

use std::collections::HashMap;
use std::time::Duration;

use super::error::InjectedError;
use super::fault::{Fault, FaultKind, Seam, MILLION};
use super::target::Glob;
use crossbeam_utils::CachePadded;

use crate::cell::CellError;
use crate::observe::histogram::{Histogram, LatencySummary};
use crate::path::CellPath;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::{Arc, Mutex, RwLock};

/// How many records an injection log keeps; later injections are counted
/// but not logged.
pub(crate) const LOG_KEPT: usize = 65_536;

/// What an injection did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Effect {
    /// The handler was delayed this long.
    Latency(Duration),
    /// The handler was replaced by an error.
    Error,
    /// The handler was replaced by a panic.
    Panic,
    /// The message was dead-lettered unhandled.
    Drop,
    /// A copy of the message was handled after it.
    Duplicate,
    /// The send was refused as full.
    Full,
    /// The message entered the mailbox this much later.
    Delay(Duration),
    /// The worker stopped this long before the turn.
    Stall(Duration),
    /// A storage write failed.
    WriteError,
    /// A storage flush failed.
    FlushError,
    /// A storage flush took this much longer.
    SlowFlush(Duration),
    /// A timer fired this much later.
    TimerSkew(Duration),
}

/// One injection, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct InjectionRecord {
    /// Its number in the log: 0, 1, 2…
    pub seq: u64,
    /// The index of the fault in its set.
    pub fault: usize,
    /// The cell hit.
    pub cell: CellPath,
    /// The kind of the message hit; `None` for a stalled turn.
    pub message_kind: Option<String>,
    /// What was done.
    pub effect: Effect,
}

/// What one fault of a set has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct FaultCount {
    /// The fault, as the spec grammar writes it.
    pub fault: String,
    /// The seed its draws came from (given, or drawn at installation).
    pub seed: u64,
    /// Messages its target matched.
    pub matched: u64,
    /// Messages it hit.
    pub injected: u64,
}

/// A fault's draws and counters.
struct Draws {
    rng: fastrand::Rng,
    matched: u64,
    injected: u64,
}

struct ArmedFault {
    fault: Fault,
    seam: Seam,
    seed: u64,
    draws: Mutex<Draws>,
}

impl ArmedFault {
    /// Counts a matching message and draws whether it is hit; `Some` with
    /// the effect if it is.
    fn draw(&self) -> Option<Effect> {
        let mut draws = self.draws.lock();
        draws.matched += 1;
        if self.fault.limit.is_some_and(|limit| draws.injected >= limit) {
            return None;
        }
        // Always one draw per match, so a probability change (a ramp) does
        // not shift the sequence.
        if draws.rng.u32(0..MILLION) >= self.fault.ppm {
            return None;
        }
        draws.injected += 1;
        Some(match self.fault.kind {
            FaultKind::Latency(delay) => Effect::Latency(delay.sample(&mut draws.rng)),
            FaultKind::Error => Effect::Error,
            FaultKind::Panic => Effect::Panic,
            FaultKind::Drop => Effect::Drop,
            FaultKind::Duplicate => Effect::Duplicate,
            FaultKind::Full => Effect::Full,
            FaultKind::Delay(delay) => Effect::Delay(delay.sample(&mut draws.rng)),
            FaultKind::Stall(delay) => Effect::Stall(delay.sample(&mut draws.rng)),
            FaultKind::WriteError => Effect::WriteError,
            FaultKind::FlushError => Effect::FlushError,
            FaultKind::SlowFlush(delay) => Effect::SlowFlush(delay.sample(&mut draws.rng)),
            FaultKind::TimerSkew(delay) => Effect::TimerSkew(delay.sample(&mut draws.rng)),
        })
    }
}

/// One installed set of faults.
pub(crate) struct Armed {
    id: u64,
    faults: Vec<ArmedFault>,
    /// Cells outside every glob here are never hit (an experiment's blast
    /// radius); `None` for no limit.
    radius: Option<Vec<Glob>>,
    log: Mutex<Vec<InjectionRecord>>,
    logged: AtomicU64,
}

impl Armed {
    fn new(id: u64, faults: Vec<Fault>, radius: Option<Vec<Glob>>) -> Armed {
        let faults = faults
            .into_iter()
            .map(|fault| {
                let seed = fault.seed.unwrap_or_else(|| fastrand::u64(..));
                let draws =
                    Mutex::new(Draws { rng: fastrand::Rng::with_seed(seed), matched: 0, injected: 0 });
                ArmedFault { seam: fault.seam(), fault, seed, draws }
            })
            .collect();
        Armed { id, faults, radius, log: Mutex::new(Vec::new()), logged: AtomicU64::new(0) }
    }

    fn in_radius(&self, path: &CellPath) -> bool {
        self.radius.as_ref().is_none_or(|radius| radius.iter().any(|glob| glob.matches(path)))
    }

    fn record(&self, fault: usize, cell: &CellPath, message_kind: Option<&str>, effect: Effect) {
        let mut log = self.log.lock();
        let seq = self.logged.fetch_add(1, Relaxed);
        if log.len() < LOG_KEPT {
            log.push(InjectionRecord {
                seq,
                fault,
                cell: cell.clone(),
                message_kind: message_kind.map(str::to_owned),
                effect,
            });
        }
    }

    /// How many faults the set holds.
    pub(crate) fn len(&self) -> usize {
        self.faults.len()
    }

    pub(crate) fn log(&self) -> Vec<InjectionRecord> {
        self.log.lock().clone()
    }

    pub(crate) fn counts(&self) -> Vec<FaultCount> {
        self.faults
            .iter()
            .map(|armed| {
                let draws = armed.draws.lock();
                FaultCount {
                    fault: armed.fault.to_string(),
                    seed: armed.seed,
                    matched: draws.matched,
                    injected: draws.injected,
                }
            })
            .collect()
    }
}

/// What the handle seam is to do besides running the handler.
#[derive(Debug, Default)]
pub(crate) struct HandleFault {
    /// Wait this long first.
    pub(crate) delay: Duration,
    /// Replace the handler by this failure.
    pub(crate) replace: Option<Replace>,
    /// Measure the handler for a probe.
    pub(crate) observe: bool,
    /// Handle a copy of the message right after it.
    pub(crate) duplicate: bool,
}

impl HandleFault {
    /// Runs `handle` (the handler, caught) as the fault says: after the
    /// delay, or not at all, a failure standing in for it.
    pub(crate) fn run(
        &self,
        handle: impl FnOnce() -> std::thread::Result<Result<(), CellError>>,
    ) -> std::thread::Result<Result<(), CellError>> {
        if !self.delay.is_zero() {
            crate::sync::thread::sleep(self.delay);
        }
        match &self.replace {
            None => handle(),
            Some(Replace::Error(fault)) => Ok(Err(CellError::from(InjectedError { fault: fault.clone() }))),
            Some(Replace::Panic(fault)) => Err(Box::new(format!("injected panic ({fault})"))),
        }
    }
}

/// A failure that stands in for the handler.
#[derive(Debug)]
pub(crate) enum Replace {
    /// An error; the text names the fault.
    Error(String),
    /// A panic; the payload names the fault.
    Panic(String),
}

/// The send seam's decision for one message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SendVerdict {
    /// Push it as usual.
    Deliver,
    /// Refuse it as full.
    Full,
    /// Dead-letter it; the text names the fault.
    Drop(String),
    /// Push it after this delay; the text names the fault.
    Delay(Duration, String),
}

/// The handle seam's decision for one message.
pub(crate) enum HandleVerdict {
    /// Handle it, maybe with a fault around the handler.
    Handle(Option<Box<HandleFault>>),
    /// Dead-letter it unhandled; the text names the fault.
    Drop(String),
}

/// What an experiment measures of one cell over one window.
#[derive(Clone, Default)]
pub(crate) struct Window {
    pub(crate) handled: u64,
    pub(crate) failed: u64,
    handling: Histogram,
}

impl Window {
    pub(crate) fn latency(&self) -> LatencySummary {
        self.handling.summary()
    }
}

/// The cells one experiment measures, and what it measured since the last
/// [`take`](Probe::take).
pub(crate) struct Probe {
    cells: Vec<CellPath>,
    windows: Mutex<HashMap<CellPath, Window>>,
}

impl Probe {
    pub(crate) fn new(cells: Vec<CellPath>) -> Arc<Probe> {
        Arc::new(Probe { cells, windows: Mutex::new(HashMap::new()) })
    }

    /// What was measured since the last call, by cell.
    pub(crate) fn take(&self) -> HashMap<CellPath, Window> {
        std::mem::take(&mut *self.windows.lock())
    }

    /// What was measured since the last `take`, left in place.
    pub(crate) fn peek(&self) -> HashMap<CellPath, Window> {
        self.windows.lock().clone()
    }

    /// Messages measured since the last `take`.
    pub(crate) fn count(&self) -> u64 {
        self.windows.lock().values().map(|w| w.handled + w.failed).sum()
    }

    fn watches(&self, path: &CellPath) -> bool {
        self.cells.contains(path)
    }

    fn record(&self, path: &CellPath, elapsed: Duration, ok: bool) {
        let mut windows = self.windows.lock();
        let window = windows.entry(path.clone()).or_default();
        if ok {
            window.handled += 1;
        } else {
            window.failed += 1;
        }
        window.handling.record(elapsed);
    }
}

/// The storage faults installed, shared with the storage engine's wrapper
/// (`store::chaos`), which consults them on cells' writes and flushes.
#[derive(Default)]
pub(crate) struct StorageSeam {
    /// Installed sets holding a storage fault; written under `sets`.
    active: AtomicUsize,
    sets: RwLock<Vec<Arc<Armed>>>,
}

impl StorageSeam {
    /// Whether any storage fault is installed: the one load a write pays.
    #[cfg(feature = "storage")]
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Relaxed) != 0
    }

    /// A write to the tree of the cell at `path`: the fault that fails it,
    /// if one does.
    #[cfg(feature = "storage")]
    pub(crate) fn on_write(&self, path: &CellPath) -> Option<String> {
        self.first(path, |kind| kind == FaultKind::WriteError).map(|(fault, _)| fault)
    }

    /// A flush of the tree of the cell at `path`: how much longer it takes,
    /// and the fault that fails it, if any.
    #[cfg(feature = "storage")]
    pub(crate) fn on_flush(&self, path: &CellPath) -> (Option<Duration>, Option<String>) {
        let slow =
            self.first(path, |kind| matches!(kind, FaultKind::SlowFlush(_))).and_then(|(_, effect)| {
                match effect {
                    Effect::SlowFlush(delay) => Some(delay),
                    _ => None,
                }
            });
        let failed = self.first(path, |kind| kind == FaultKind::FlushError).map(|(fault, _)| fault);
        (slow, failed)
    }

    /// The first fault of `kind` on `path` that hits, with its effect.
    #[cfg(feature = "storage")]
    fn first(&self, path: &CellPath, kind: impl Fn(FaultKind) -> bool) -> Option<(String, Effect)> {
        for set in self.sets.read().iter().filter(|set| set.in_radius(path)) {
            for (index, armed) in set.faults.iter().enumerate() {
                if !kind(armed.fault.kind) || !armed.fault.target.covers_cell(path, "") {
                    continue;
                }
                if let Some(effect) = armed.draw() {
                    set.record(index, path, None, effect);
                    return Some((armed.fault.to_string(), effect));
                }
            }
        }
        None
    }

    fn add(&self, armed: &Arc<Armed>) {
        if armed.faults.iter().any(|f| f.seam == Seam::Storage) {
            let mut sets = self.sets.write();
            sets.push(armed.clone());
            self.active.store(sets.len(), Relaxed);
        }
    }

    fn remove(&self, id: Option<u64>) {
        let mut sets = self.sets.write();
        sets.retain(|set| id.is_some_and(|id| set.id != id));
        self.active.store(sets.len(), Relaxed);
    }
}

/// A running experiment's claim on cells.
struct Claim {
    id: u64,
    name: String,
    radius: Vec<Glob>,
}

/// Every fault and probe of one runtime; see the module docs.
#[derive(Default)]
pub(crate) struct Registry {
    /// The storage faults, for the storage engine (feature `storage`).
    storage: Arc<StorageSeam>,
    /// On its own cache line: read by every send and every handled
    /// message, it must not share a line with anything written.
    active: CachePadded<AtomicUsize>,
    sets: RwLock<Vec<Arc<Armed>>>,
    probes: RwLock<Vec<Arc<Probe>>>,
    claims: Mutex<Vec<Claim>>,
    next_id: AtomicU64,
}

impl Registry {
    /// A registry whose storage faults act through `storage`, the seam of
    /// the runtime's database, if it has one.
    pub(crate) fn new(storage: Option<Arc<StorageSeam>>) -> Registry {
        Registry { storage: storage.unwrap_or_default(), ..Registry::default() }
    }

    /// Whether any fault or probe is installed: the one load the seams pay.
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Relaxed) != 0
    }

    /// Installs `faults`, acting only within `radius` if given.
    pub(crate) fn install(&self, faults: Vec<Fault>, radius: Option<Vec<Glob>>) -> Arc<Armed> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let armed = Arc::new(Armed::new(id, faults, radius));
        let mut sets = self.sets.write();
        sets.push(armed.clone());
        self.active.store(sets.len() + self.probes.read().len(), Relaxed);
        self.storage.add(&armed);
        armed
    }

    /// Removes one set; returns whether it was still installed.
    pub(crate) fn remove(&self, armed: &Armed) -> bool {
        let mut sets = self.sets.write();
        let before = sets.len();
        sets.retain(|set| set.id != armed.id);
        self.active.store(sets.len() + self.probes.read().len(), Relaxed);
        self.storage.remove(Some(armed.id));
        sets.len() != before
    }

    /// Removes every fault set (at shutdown); probes stay.
    pub(crate) fn clear(&self) {
        let mut sets = self.sets.write();
        sets.clear();
        self.active.store(self.probes.read().len(), Relaxed);
        self.storage.remove(None);
    }

    /// Whether `armed` is installed.
    pub(crate) fn contains(&self, armed: &Armed) -> bool {
        self.sets.read().iter().any(|set| set.id == armed.id)
    }

    /// Fault sets installed now.
    pub(crate) fn installed(&self) -> usize {
        self.sets.read().len()
    }

    pub(crate) fn add_probe(&self, probe: Arc<Probe>) {
        let sets = self.sets.read();
        let mut probes = self.probes.write();
        probes.push(probe);
        self.active.store(sets.len() + probes.len(), Relaxed);
    }

    pub(crate) fn remove_probe(&self, probe: &Arc<Probe>) {
        let sets = self.sets.read();
        let mut probes = self.probes.write();
        probes.retain(|p| !Arc::ptr_eq(p, probe));
        self.active.store(sets.len() + probes.len(), Relaxed);
    }

    /// Claims `radius` for the experiment `name`, unless a running
    /// experiment's radius covers one of `cells` (the live cells within
    /// `radius`): then the other experiment's name and the cell.
    pub(crate) fn claim(
        &self,
        name: &str,
        radius: &[Glob],
        cells: &[CellPath],
    ) -> Result<u64, (String, CellPath)> {
        let mut claims = self.claims.lock();
        for claim in claims.iter() {
            if let Some(cell) = cells.iter().find(|cell| claim.radius.iter().any(|glob| glob.matches(cell))) {
                return Err((claim.name.clone(), cell.clone()));
            }
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        claims.push(Claim { id, name: name.to_owned(), radius: radius.to_vec() });
        Ok(id)
    }

    pub(crate) fn release(&self, claim: u64) {
        self.claims.lock().retain(|c| c.id != claim);
    }

    /// The handle seam: what to do with a message of `kind` about to be
    /// handled by the cell at `path` of type `cell_type`. `copy` makes a
    /// copy of the message, for a duplicate, and says whether it could.
    pub(crate) fn on_handle(
        &self,
        path: &CellPath,
        cell_type: &str,
        kind: &str,
        copy: &mut dyn FnMut() -> bool,
    ) -> HandleVerdict {
        let observe = self.probes.read().iter().any(|probe| probe.watches(path));
        let mut fault = HandleFault { observe, ..HandleFault::default() };
        for set in self.sets.read().iter().filter(|set| set.in_radius(path)) {
            for (index, armed) in set.faults.iter().enumerate() {
                if armed.seam != Seam::Handle || !armed.fault.target.matches(path, cell_type, kind, None) {
                    continue;
                }
                // Once the handler is replaced, later faults do not draw.
                if fault.replace.is_some() && !matches!(armed.fault.kind, FaultKind::Latency(_)) {
                    continue;
                }
                // A message that cannot be copied cannot be duplicated.
                if armed.fault.kind == FaultKind::Duplicate && (fault.duplicate || !copy()) {
                    continue;
                }
                let Some(effect) = armed.draw() else { continue };
                set.record(index, path, Some(kind), effect);
                let name = || armed.fault.to_string();
                match effect {
                    Effect::Latency(delay) => fault.delay = fault.delay.saturating_add(delay),
                    Effect::Error => fault.replace = Some(Replace::Error(name())),
                    Effect::Panic => fault.replace = Some(Replace::Panic(name())),
                    Effect::Drop => return HandleVerdict::Drop(name()),
                    Effect::Duplicate => fault.duplicate = true,
                    _ => {}
                }
            }
        }
        if fault.delay.is_zero() && fault.replace.is_none() && !fault.observe && !fault.duplicate {
            HandleVerdict::Handle(None)
        } else {
            HandleVerdict::Handle(Some(Box::new(fault)))
        }
    }

    /// The send seam: what becomes of a message of `kind` sent to the cell
    /// at `path` by the cell whose turn runs on this thread, if any. The
    /// first fault that hits decides.
    pub(crate) fn on_send(&self, path: &CellPath, cell_type: &str, kind: &str) -> SendVerdict {
        let sender = super::sender::current();
        for set in self.sets.read().iter().filter(|set| set.in_radius(path)) {
            for (index, armed) in set.faults.iter().enumerate() {
                if armed.seam != Seam::Send
                    || !armed.fault.target.matches(path, cell_type, kind, sender.as_ref())
                {
                    continue;
                }
                let Some(effect) = armed.draw() else { continue };
                set.record(index, path, Some(kind), effect);
                return match effect {
                    Effect::Delay(delay) => SendVerdict::Delay(delay, armed.fault.to_string()),
                    Effect::Drop => SendVerdict::Drop(armed.fault.to_string()),
                    _ => SendVerdict::Full,
                };
            }
        }
        SendVerdict::Deliver
    }

    /// The turn seam: how long the worker is to stall before a turn of the
    /// cell at `path`, if a fault says so.
    pub(crate) fn on_turn(&self, path: &CellPath, cell_type: &str) -> Option<Duration> {
        let mut stall = None;
        for set in self.sets.read().iter().filter(|set| set.in_radius(path)) {
            for (index, armed) in set.faults.iter().enumerate() {
                if armed.seam != Seam::Turn || !armed.fault.target.covers_cell(path, cell_type) {
                    continue;
                }
                if let Some(effect @ Effect::Stall(delay)) = armed.draw() {
                    set.record(index, path, None, effect);
                    stall = Some(stall.unwrap_or(Duration::ZERO).saturating_add(delay));
                }
            }
        }
        stall
    }

    /// The timer seam: how much later a timer the cell at `path` sets is
    /// to fire; `kind` is the timer's message kind when known (an
    /// interval's messages are made later).
    pub(crate) fn on_timer(&self, path: &CellPath, cell_type: &str, kind: Option<&str>) -> Duration {
        let mut skew = Duration::ZERO;
        for set in self.sets.read().iter().filter(|set| set.in_radius(path)) {
            for (index, armed) in set.faults.iter().enumerate() {
                let target = &armed.fault.target;
                let matches = match kind {
                    Some(kind) => target.matches(path, cell_type, kind, None),
                    None => target.covers_cell(path, cell_type) && target.message_kind_name().is_none(),
                };
                if armed.seam != Seam::Timer || !matches {
                    continue;
                }
                if let Some(effect @ Effect::TimerSkew(delay)) = armed.draw() {
                    set.record(index, path, kind, effect);
                    skew = skew.saturating_add(delay);
                }
            }
        }
        skew
    }

    /// A handler the seam measured for a probe returned.
    pub(crate) fn observed(&self, path: &CellPath, elapsed: Duration, ok: bool) {
        for probe in self.probes.read().iter().filter(|probe| probe.watches(path)) {
            probe.record(path, elapsed, ok);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::target::Target;

    fn path(s: &str) -> CellPath {
        s.parse().unwrap()
    }

    fn fault(target: &str, kind: FaultKind, probability: f64, seed: u64) -> Fault {
        Fault::builder(Target::cells(target).unwrap(), kind)
            .probability(probability)
            .seed(seed)
            .build()
            .unwrap()
    }

    fn hits(registry: &Registry, n: usize) -> Vec<bool> {
        (0..n)
            .map(|_| {
                matches!(registry.on_handle(&path("/a"), "T", "M", &mut || true), HandleVerdict::Drop(_))
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_hits() {
        let first = Registry::default();
        first.install(vec![fault("/a", FaultKind::Drop, 0.5, 9)], None);
        let second = Registry::default();
        second.install(vec![fault("/a", FaultKind::Drop, 0.5, 9)], None);
        let (a, b) = (hits(&first, 200), hits(&second, 200));
        assert_eq!(a, b);
        let count = a.iter().filter(|hit| **hit).count();
        assert!((50..150).contains(&count), "{count} hits of 200 at 50 %");
    }

    #[test]
    fn a_limit_caps_the_injections_but_not_the_matches() {
        let registry = Registry::default();
        let armed = registry.install(
            vec![Fault::builder(Target::cells("/a").unwrap(), FaultKind::Drop)
                .limit(3)
                .seed(1)
                .build()
                .unwrap()],
            None,
        );
        assert_eq!(hits(&registry, 10).iter().filter(|hit| **hit).count(), 3);
        let counts = armed.counts();
        assert_eq!((counts[0].matched, counts[0].injected), (10, 3));
        assert_eq!(armed.log().len(), 3);
    }

    #[test]
    fn removing_the_last_set_deactivates_the_seams() {
        let registry = Registry::default();
        assert!(!registry.is_active());
        let armed = registry.install(vec![fault("/a", FaultKind::Error, 1.0, 1)], None);
        assert!(registry.is_active());
        assert!(registry.remove(&armed));
        assert!(!registry.remove(&armed));
        assert!(!registry.is_active());
    }

    #[test]
    fn nothing_outside_the_radius_is_hit() {
        let registry = Registry::default();
        registry.install(vec![fault("/**", FaultKind::Drop, 1.0, 1)], Some(vec![Glob::new("/b").unwrap()]));
        assert!(matches!(
            registry.on_handle(&path("/a"), "T", "M", &mut || true),
            HandleVerdict::Handle(None)
        ));
        assert!(matches!(registry.on_handle(&path("/b"), "T", "M", &mut || true), HandleVerdict::Drop(_)));
    }

    #[test]
    fn latencies_add_up_and_the_first_replacement_wins() {
        let registry = Registry::default();
        let ms = Duration::from_millis;
        registry.install(
            vec![
                fault("/a", FaultKind::Latency(crate::chaos::Delay::Fixed(ms(2))), 1.0, 1),
                fault("/a", FaultKind::Panic, 1.0, 1),
                fault("/a", FaultKind::Error, 1.0, 1),
                fault("/a", FaultKind::Latency(crate::chaos::Delay::Fixed(ms(3))), 1.0, 1),
            ],
            None,
        );
        let HandleVerdict::Handle(Some(fault)) = registry.on_handle(&path("/a"), "T", "M", &mut || true)
        else {
            panic!("a fault is expected")
        };
        assert_eq!(fault.delay, ms(5));
        assert!(matches!(fault.replace, Some(Replace::Panic(_))));
    }

    #[test]
    fn a_claimed_cell_cannot_be_claimed_twice() {
        let registry = Registry::default();
        let radius = [Glob::new("/a*").unwrap()];
        let first = registry.claim("one", &radius, &[path("/ab")]).unwrap();
        assert_eq!(registry.claim("two", &radius, &[path("/ab")]), Err(("one".into(), path("/ab"))));
        registry.release(first);
        assert!(registry.claim("two", &radius, &[path("/ab")]).is_ok());
    }
}
