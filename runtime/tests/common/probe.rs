//! A supervised test cell that logs its lifecycle: `start a`, `a 1`,
//! `stop a failed`, so tests can assert exact orders.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use cellrt::{Cell, CellError, ChildSpec, Context, Reply, StopReason};

use super::Log;

/// Messages of [`Probe`].
pub enum P {
    /// Log `<name> <n>`.
    Put(u64),
    /// Panic with "boom".
    Panic,
    /// Return an error "bad".
    Fail,
    /// Stop normally (`ctx.stop()`).
    Stop,
    /// Stop normally with `Shutdown` (`ctx.shutdown()`).
    Shutdown,
    /// Answer with the values put into this incarnation.
    Get(Reply<Vec<u64>>),
    /// Block until the gate opens.
    Block(Gate),
    /// Sleep, then log `<name> slept`.
    Sleep(Duration),
    /// Fail while the counter is above zero (decrementing it), then log
    /// like `Put`.
    Flaky(u64, Arc<AtomicU32>),
}

impl Clone for P {
    fn clone(&self) -> Self {
        match self {
            P::Put(n) => P::Put(*n),
            P::Panic => P::Panic,
            P::Fail => P::Fail,
            P::Stop => P::Stop,
            P::Shutdown => P::Shutdown,
            P::Block(gate) => P::Block(gate.clone()),
            P::Sleep(d) => P::Sleep(*d),
            P::Flaky(n, left) => P::Flaky(*n, left.clone()),
            P::Get(_) => unreachable!("never retained"),
        }
    }
}

/// A gate a handler waits on.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }

    pub fn wait_open(&self) {
        self.wait();
    }

    fn wait(&self) {
        let mut open = self.0 .0.lock().unwrap();
        while !*open {
            open = self.0 .1.wait(open).unwrap();
        }
    }
}

/// How a probe behaves; shared by all its incarnations.
#[derive(Clone)]
pub struct ProbeCfg {
    pub name: &'static str,
    pub log: Log<String>,
    /// Starts left to fail (in `started`).
    pub fail_starts: Arc<AtomicU32>,
    /// Starts left to ignore (`ctx.ignore()` in `started`).
    pub ignore_starts: Arc<AtomicU32>,
}

impl ProbeCfg {
    pub fn new(name: &'static str, log: &Log<String>) -> Self {
        ProbeCfg {
            name,
            log: log.clone(),
            fail_starts: Arc::new(AtomicU32::new(0)),
            ignore_starts: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The next `n` starts fail.
    pub fn failing_starts(self, n: u32) -> Self {
        self.fail_starts.store(n, SeqCst);
        self
    }

    /// The next `n` starts say there is nothing to run (`ctx.ignore()`).
    pub fn ignoring_starts(self, n: u32) -> Self {
        self.ignore_starts.store(n, SeqCst);
        self
    }

    /// A child spec with this probe's name as id.
    pub fn spec(&self) -> ChildSpec {
        let cfg = self.clone();
        ChildSpec::new(self.name, move || Probe { cfg: cfg.clone(), seen: Vec::new() })
    }

    pub fn cell(&self) -> Probe {
        Probe { cfg: self.clone(), seen: Vec::new() }
    }
}

pub struct Probe {
    cfg: ProbeCfg,
    seen: Vec<u64>,
}

/// A short name for a stop reason.
pub fn reason_name(reason: &StopReason) -> &'static str {
    match reason {
        StopReason::Requested => "requested",
        StopReason::Shutdown => "shutdown",
        StopReason::Replaced => "replaced",
        StopReason::ParentStopped => "parent",
        StopReason::Restart => "restart",
        StopReason::Escalated(_) => "escalated",
        StopReason::Killed => "killed",
        StopReason::Failed(_) => "failed",
        _ => "other",
    }
}

impl Cell for Probe {
    type Message = P;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        let ignore = self.cfg.ignore_starts.load(SeqCst);
        if ignore > 0 {
            self.cfg.ignore_starts.store(ignore - 1, SeqCst);
            self.cfg.log.push(format!("start {} ignored", self.cfg.name));
            ctx.ignore();
            return Ok(());
        }
        let left = self.cfg.fail_starts.load(SeqCst);
        if left > 0 {
            self.cfg.fail_starts.store(left - 1, SeqCst);
            self.cfg.log.push(format!("start {} failed", self.cfg.name));
            return Err(CellError::msg("cannot start"));
        }
        self.cfg.log.push(format!("start {}", self.cfg.name));
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, msg: P) -> Result<(), CellError> {
        match msg {
            P::Put(n) => {
                self.seen.push(n);
                self.cfg.log.push(format!("{} {n}", self.cfg.name));
            }
            P::Panic => panic!("boom"),
            P::Fail => return Err(CellError::msg("bad")),
            P::Stop => ctx.stop(),
            P::Shutdown => ctx.shutdown(),
            P::Get(reply) => drop(reply.send(self.seen.clone())),
            P::Block(gate) => gate.wait(),
            P::Sleep(d) => {
                std::thread::sleep(d);
                self.cfg.log.push(format!("{} slept", self.cfg.name));
            }
            P::Flaky(n, left) => {
                if left.load(SeqCst) > 0 {
                    left.fetch_sub(1, SeqCst);
                    return Err(CellError::msg("flaky"));
                }
                self.seen.push(n);
                self.cfg.log.push(format!("{} {n}", self.cfg.name));
            }
        }
        Ok(())
    }

    fn stopped(&mut self, _: &mut Context<Self>, reason: &StopReason) {
        self.cfg.log.push(format!("stop {} {}", self.cfg.name, reason_name(reason)));
    }

    fn message_kind(msg: &P) -> &'static str {
        match msg {
            P::Put(_) => "Put",
            P::Panic => "Panic",
            P::Fail => "Fail",
            P::Stop => "Stop",
            P::Shutdown => "Shutdown",
            P::Get(_) => "Get",
            P::Block(_) => "Block",
            P::Sleep(_) => "Sleep",
            P::Flaky(..) => "Flaky",
        }
    }

    fn retain(msg: &P) -> Option<P> {
        // Probes retain everything but asks; the spec decides on retries.
        match msg {
            P::Get(_) => None,
            other => Some(other.clone()),
        }
    }
}
