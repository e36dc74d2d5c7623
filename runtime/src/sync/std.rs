//! Real primitives for normal builds. See the parent module for the contract.

pub(crate) use std::sync::{Arc, Weak};

pub(crate) mod atomic {
    pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
}

pub(crate) mod thread {
    pub(crate) use std::thread::{
        current, park, park_timeout, sleep, yield_now, Builder, JoinHandle, Thread,
    };

    /// Number of worker threads a default dispatcher starts: one per core.
    pub(crate) fn available_parallelism() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// Declares thread-locals whose initial value is a constant, as
/// `std::thread_local!` with a `const { .. }` initializer (one access costs
/// a load and, for a value with a destructor, a check that the thread is
/// not exiting). For state that must be per thread under loom too: there
/// a model's threads share one OS thread.
macro_rules! thread_local_const {
    ($($(#[$attr:meta])* $vis:vis static $name:ident: $t:ty = const { $init:expr };)+) => {
        ::std::thread_local! { $($(#[$attr])* $vis static $name: $t = const { $init };)+ }
    };
}
pub(crate) use thread_local_const as thread_local;

pub(crate) mod cell {
    /// `std::cell::UnsafeCell` behind loom's interface: the pointer is only
    /// lent to a closure, so the loom build can check every access.
    #[derive(Debug, Default)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(value: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(value))
        }

        /// Lends a unique pointer to the contents.
        #[inline]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

/// Exponential spin-then-yield backoff for short waits.
pub(crate) use crossbeam_utils::Backoff;

/// A busy-wait hint for short spins on a state another thread is about to change.
#[inline]
pub(crate) fn spin_loop() {
    std::hint::spin_loop();
}

/// Busy-wait hints [`spin_until`] gives between its first and last look:
/// as many as a crossbeam `Backoff` spins before it starts to yield.
const SPIN_CHECKS: u32 = 127;

/// Spins until `done` holds, looking after every busy-wait hint, for as
/// long as a crossbeam `Backoff` spins; returns whether `done` held. A
/// `Backoff` looks only between its rounds, which grow to 64 hints: a
/// change that lands at the start of a round is seen up to 64 hints (a few
/// microseconds) late, which is more than a whole round trip between two
/// threads takes.
#[inline]
pub(crate) fn spin_until(done: impl Fn() -> bool) -> bool {
    for _ in 0..SPIN_CHECKS {
        if done() {
            return true;
        }
        std::hint::spin_loop();
    }
    done()
}

/// Yields the thread until `done` holds or `budget` has passed; returns
/// whether `done` held. For waits whose answer usually comes sooner than a
/// sleeping thread would wake up.
pub(crate) fn yield_until(budget: std::time::Duration, done: impl Fn() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= budget {
            return false;
        }
        std::thread::yield_now();
    }
}

#[cfg(feature = "parking_lot")]
mod lock {
    use std::marker::PhantomData;
    use std::time::Duration;

    /// A mutual-exclusion lock whose `lock` never reports poisoning.
    ///
    /// The `PhantomData` keeps `Send`/`Sync` identical to `std::sync::Mutex`, so
    /// the auto traits of cellrt's types do not change with the feature.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized> {
        _std: PhantomData<std::sync::Mutex<()>>,
        inner: parking_lot::Mutex<T>,
    }

    pub(crate) type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex { _std: PhantomData, inner: parking_lot::const_mutex(value) }
        }
    }

    impl<T: ?Sized> Mutex<T> {
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.inner.lock()
        }
    }

    /// A reader-writer lock whose guards never report poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T: ?Sized> {
        _std: PhantomData<std::sync::RwLock<()>>,
        inner: parking_lot::RwLock<T>,
    }

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> Self {
            RwLock { _std: PhantomData, inner: parking_lot::const_rwlock(value) }
        }
    }

    impl<T: ?Sized> RwLock<T> {
        pub(crate) fn read(&self) -> parking_lot::RwLockReadGuard<'_, T> {
            self.inner.read()
        }

        pub(crate) fn write(&self) -> parking_lot::RwLockWriteGuard<'_, T> {
            self.inner.write()
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar {
        _std: PhantomData<std::sync::Condvar>,
        inner: parking_lot::Condvar,
    }

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar { _std: PhantomData, inner: parking_lot::Condvar::new() }
        }

        pub(crate) fn wait<'a, T>(&self, mut guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.inner.wait(&mut guard);
            guard
        }

        /// Waits at most `timeout`; the flag is `true` when the wait timed out.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            mut guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let result = self.inner.wait_for(&mut guard, timeout);
            (guard, result.timed_out())
        }

        pub(crate) fn notify_one(&self) {
            self.inner.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.inner.notify_all();
        }
    }
}

#[cfg(not(feature = "parking_lot"))]
mod lock {
    use std::sync::PoisonError;
    use std::time::Duration;

    /// A mutual-exclusion lock whose `lock` never reports poisoning.
    ///
    /// cellrt catches every panic of user code before it can unwind through a
    /// held lock, so a poisoned lock carries no information worth stopping for.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub(crate) const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// A reader-writer lock whose guards never report poisoning.
    #[derive(Debug, Default)]
    pub(crate) struct RwLock<T: ?Sized>(std::sync::RwLock<T>);

    impl<T> RwLock<T> {
        pub(crate) const fn new(value: T) -> Self {
            RwLock(std::sync::RwLock::new(value))
        }
    }

    impl<T: ?Sized> RwLock<T> {
        pub(crate) fn read(&self) -> std::sync::RwLockReadGuard<'_, T> {
            self.0.read().unwrap_or_else(PoisonError::into_inner)
        }

        pub(crate) fn write(&self) -> std::sync::RwLockWriteGuard<'_, T> {
            self.0.write().unwrap_or_else(PoisonError::into_inner)
        }
    }

    /// A condition variable paired with [`Mutex`].
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(std::sync::Condvar);

    impl Condvar {
        pub(crate) const fn new() -> Self {
            Condvar(std::sync::Condvar::new())
        }

        pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
            self.0.wait(guard).unwrap_or_else(PoisonError::into_inner)
        }

        /// Waits at most `timeout`; the flag is `true` when the wait timed out.
        pub(crate) fn wait_timeout<'a, T>(
            &self,
            guard: MutexGuard<'a, T>,
            timeout: Duration,
        ) -> (MutexGuard<'a, T>, bool) {
            let (guard, result) = self.0.wait_timeout(guard, timeout).unwrap_or_else(PoisonError::into_inner);
            (guard, result.timed_out())
        }

        pub(crate) fn notify_one(&self) {
            self.0.notify_one();
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}

pub(crate) use lock::{Condvar, Mutex, MutexGuard, RwLock};

/// The unbounded, lock-free queue behind each lane of a cell's user
/// mailbox: segments of 31 slots, allocated as it fills and freed as it
/// drains, so it costs memory in proportion to what it holds. The bound is
/// enforced above it, by `mailbox::bounded`.
pub(crate) use crossbeam_queue::SegQueue;
