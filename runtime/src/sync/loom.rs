//! loom's model-checked primitives, selected by `--cfg cellrt_loom`.
//!
//! Same names and signatures as `std.rs`. Locks unwrap loom's `LockResult`
//! here, once. Nondeterminism is fixed: a model sees two cores.

use std::collections::VecDeque;
use std::time::Duration;

// loom's `Arc` has no `Weak` and cannot coerce to `Arc<dyn Trait>`; reference
// counts are not part of any protocol the models check, so std's are used.
pub(crate) use std::sync::{Arc, Weak};

pub(crate) mod atomic {
    pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
}

pub(crate) mod thread {
    // Worker and timer threads are not part of any model (models drive the
    // protocols directly), so their spawning stays std's.
    pub(crate) use std::thread::{sleep, yield_now, Builder, JoinHandle};

    // Parking is part of protocols the models check (a thread waiting for
    // an answer), so it is loom's.
    pub(crate) use loom::thread::{current, park, Thread};

    /// loom does not model time: a timed park is a plain park, which is the
    /// stricter schedule (a timeout can only add wake-ups).
    pub(crate) fn park_timeout(_timeout: std::time::Duration) {
        loom::thread::park();
    }

    /// A model runs with a fixed core count so schedules are reproducible.
    pub(crate) fn available_parallelism() -> usize {
        2
    }
}

/// loom's per-thread locals (loom runs a model's threads on one OS thread,
/// where std's would be shared), declared as in `std.rs`; dropped when the
/// model's thread ends.
macro_rules! thread_local_const {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };)+) => {
        ::loom::thread_local! { $($(#[$attr])* $vis static $name: $t = $init;)+ }
    };
}
pub(crate) use thread_local_const as thread_local;

pub(crate) mod cell {
    pub(crate) use loom::cell::UnsafeCell;
}

/// Under loom a spin must yield, or the model never lets the other thread run.
#[inline]
pub(crate) fn spin_loop() {
    loom::thread::yield_now();
}

/// Under loom a spin yields to the model scheduler once, then looks.
pub(crate) fn spin_until(done: impl Fn() -> bool) -> bool {
    loom::thread::yield_now();
    done()
}

/// Under loom, time does not pass: one look, then the caller sleeps.
pub(crate) fn yield_until(_budget: std::time::Duration, done: impl Fn() -> bool) -> bool {
    done()
}

/// Backoff under loom: every step yields to the model scheduler.
#[derive(Debug, Default)]
pub(crate) struct Backoff(std::cell::Cell<u32>);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff::default()
    }

    pub(crate) fn snooze(&self) {
        self.0.set(self.0.get() + 1);
        loom::thread::yield_now();
    }

    pub(crate) fn is_completed(&self) -> bool {
        self.0.get() > 2
    }
}

/// A loom mutex whose `lock` never reports poisoning.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    pub(crate) fn new(value: T) -> Self {
        Mutex(loom::sync::Mutex::new(value))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap()
    }
}

/// A loom reader-writer lock whose guards never report poisoning.
#[derive(Debug, Default)]
pub(crate) struct RwLock<T>(loom::sync::RwLock<T>);

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        RwLock(loom::sync::RwLock::new(value))
    }

    pub(crate) fn read(&self) -> loom::sync::RwLockReadGuard<'_, T> {
        self.0.read().unwrap()
    }

    pub(crate) fn write(&self) -> loom::sync::RwLockWriteGuard<'_, T> {
        self.0.write().unwrap()
    }
}

/// A loom condition variable paired with [`Mutex`].
#[derive(Debug, Default)]
pub(crate) struct Condvar(loom::sync::Condvar);

impl Condvar {
    pub(crate) fn new() -> Self {
        Condvar(loom::sync::Condvar::new())
    }

    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        self.0.wait(guard).unwrap()
    }

    /// loom does not model time: a timed wait is a plain wait, which is the
    /// stricter schedule (a timeout can only add wake-ups).
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        _timeout: Duration,
    ) -> (MutexGuard<'a, T>, bool) {
        (self.wait(guard), false)
    }

    pub(crate) fn notify_one(&self) {
        self.0.notify_one();
    }

    pub(crate) fn notify_all(&self) {
        self.0.notify_all();
    }
}

/// The unbounded queue of a mailbox lane under loom: a `VecDeque` behind a
/// loom mutex, with the same interface as crossbeam-queue's `SegQueue` of
/// normal builds (which loom cannot see inside); its length is seen
/// through an atomic, not the lock (see `len` below). It bounds nothing itself,
/// so a model checks the admission count of `mailbox::bounded` that does;
/// it records the most items it ever held, for the models to compare with
/// that bound.
#[derive(Debug)]
pub(crate) struct SegQueue<T> {
    items: loom::sync::Mutex<Items<T>>,
    /// The queue's length, stored (Release) under the lock after each
    /// change and read (Acquire) without it: `is_empty` and `len`
    /// synchronize with a push only through this word, as a lock-free
    /// queue's do through its indices, so a protocol that needs more (a
    /// fence, a read-modify-write elsewhere) must provide it itself.
    len: loom::sync::atomic::AtomicUsize,
}

#[derive(Debug)]
struct Items<T> {
    queue: VecDeque<T>,
    /// The most items `queue` held at once.
    peak: usize,
}

impl<T> SegQueue<T> {
    pub(crate) fn new() -> Self {
        SegQueue {
            items: loom::sync::Mutex::new(Items { queue: VecDeque::new(), peak: 0 }),
            len: loom::sync::atomic::AtomicUsize::new(0),
        }
    }

    pub(crate) fn push(&self, item: T) {
        let mut items = self.items.lock().unwrap();
        items.queue.push_back(item);
        items.peak = items.peak.max(items.queue.len());
        self.len.store(items.queue.len(), std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn pop(&self) -> Option<T> {
        let mut items = self.items.lock().unwrap();
        let item = items.queue.pop_front();
        self.len.store(items.queue.len(), std::sync::atomic::Ordering::Release);
        item
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The most items the queue held at once.
    pub(crate) fn peak(&self) -> usize {
        self.items.lock().unwrap().peak
    }
}
