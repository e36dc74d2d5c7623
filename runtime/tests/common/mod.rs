//! Shared helpers for the integration tests.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cellrt::{Cell, CellError, Context, Reply, Runtime};

/// Generous bound for waits that should finish in microseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Polls `done` until it holds or `PATIENCE` passes; returns whether it held.
pub fn eventually(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    done()
}

/// Polls `done` like [`eventually`], and fails the test naming `what` if
/// it never holds.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    assert!(eventually(done), "timed out waiting for {what}");
}

/// A runtime with `threads` workers whose cell panics are not printed.
pub fn runtime(threads: usize) -> Runtime {
    Runtime::builder().worker_threads(threads).quiet_panics(true).build().expect("runtime builds")
}

/// A shared, ordered log the tests read after the fact.
pub struct Log<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Log<T> {
    fn default() -> Self {
        Log(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T> Clone for Log<T> {
    fn clone(&self) -> Self {
        Log(self.0.clone())
    }
}

impl<T: Clone> Log<T> {
    pub fn push(&self, item: T) {
        self.0.lock().unwrap().push(item);
    }

    pub fn items(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// Messages of [`Recorder`].
pub enum Rec {
    /// Record the value.
    Put(u64),
    /// Answer with everything recorded so far.
    Dump(Reply<Vec<u64>>),
    /// Panic with this text.
    Panic(&'static str),
    /// Fail with this text.
    Fail(&'static str),
    /// Stop the cell.
    Stop,
}

/// Records `Put` values in order, in its own state and in a shared log.
pub struct Recorder {
    pub seen: Vec<u64>,
    pub log: Log<u64>,
}

impl Recorder {
    pub fn new(log: &Log<u64>) -> Self {
        Recorder { seen: Vec::new(), log: log.clone() }
    }
}

impl Cell for Recorder {
    type Message = Rec;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Rec) -> Result<(), CellError> {
        match msg {
            Rec::Put(n) => {
                self.seen.push(n);
                self.log.push(n);
            }
            Rec::Dump(reply) => {
                let _ = reply.send(self.seen.clone());
            }
            Rec::Panic(text) => panic!("{text}"),
            Rec::Fail(text) => return Err(CellError::msg(text)),
            Rec::Stop => ctx.stop(),
        }
        Ok(())
    }

    fn message_kind(msg: &Rec) -> &'static str {
        match msg {
            Rec::Put(_) => "Put",
            Rec::Dump(_) => "Dump",
            Rec::Panic(_) => "Panic",
            Rec::Fail(_) => "Fail",
            Rec::Stop => "Stop",
        }
    }
}

/// A gate cells wait at: closed until [`open`]ed, then open for good.
pub type Gate = Arc<(Mutex<bool>, std::sync::Condvar)>;

/// A cell that blocks in `handle` until the gate opens, then records.
pub struct Gated {
    pub gate: Gate,
    pub log: Log<u64>,
}

pub fn gate() -> Gate {
    Arc::new((Mutex::new(false), std::sync::Condvar::new()))
}

pub fn open(gate: &Gate) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}

/// Blocks the calling thread until `gate` is opened.
pub fn wait_open(gate: &Gate) {
    let (lock, cond) = &**gate;
    let mut open = lock.lock().unwrap();
    while !*open {
        open = cond.wait(open).unwrap();
    }
}

impl Cell for Gated {
    type Message = u64;

    fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) -> Result<(), CellError> {
        wait_open(&self.gate);
        self.log.push(n);
        Ok(())
    }
}

pub mod browser;
pub mod fraud;
#[cfg(feature = "report")]
pub mod gateway;
pub mod probe;

/// Occupies its dispatcher's worker until its gate opens (or its sender is
/// dropped), so that the other cells there only queue.
pub struct Blocker(pub std::sync::mpsc::Receiver<()>);

impl Cell for Blocker {
    type Message = ();

    fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), CellError> {
        let _ = self.0.recv_timeout(PATIENCE);
        Ok(())
    }
}

/// Blocks the one worker of `dispatcher` with a [`Blocker`] named `name`,
/// once it has taken its message; dropping the sender releases it.
pub fn hold(runtime: &Runtime, name: &str, dispatcher: &str) -> std::sync::mpsc::Sender<()> {
    let (release, gate) = std::sync::mpsc::channel();
    let config = cellrt::CellConfig::named(name).dispatcher(dispatcher);
    let blocker = runtime.spawn_with(config, Blocker(gate)).expect("the blocker spawns");
    blocker.try_send(()).expect("the blocker takes its message");
    assert!(eventually(|| blocker.queued() == 0), "the blocker took its message");
    release
}

/// A runtime with one default worker, a one-worker dispatcher `held` for
/// cells to queue on behind a [`hold`], and a 30 s send timeout (a send that
/// waits shows as `Timeout` long after any test's own wait).
pub fn held_runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .dispatcher("held", 1)
        .send_timeout(Duration::from_secs(30))
        .quiet_panics(true)
        .build()
        .expect("runtime builds")
}
