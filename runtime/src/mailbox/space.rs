//! Waiting for room in a full mailbox, for blocking senders.

use std::time::Instant;

use crate::sync::atomic::{fence, AtomicUsize, Ordering::*};
use crate::sync::{Condvar, Mutex};

/// Blocking senders wait here; the worker that frees slots wakes them.
///
/// Protocol: a waiter registers (`waiters += 1`), issues a SeqCst fence and
/// re-checks the condition under the lock before sleeping; the worker pops,
/// issues a SeqCst fence and wakes under the lock only when `waiters > 0`.
/// The two fences order "register, then look" against "free, then look", so
/// either the waiter sees the free slot or the worker sees the waiter.
#[derive(Debug, Default)]
pub(crate) struct SpaceSignal {
    waiters: AtomicUsize,
    lock: Mutex<()>,
    cond: Condvar,
}

impl SpaceSignal {
    /// Sleeps until `still_blocked()` is false, a wake-up arrives, or
    /// `deadline` passes. Returns `false` when the deadline passed.
    pub(crate) fn wait(&self, deadline: Instant, still_blocked: impl Fn() -> bool) -> bool {
        self.waiters.fetch_add(1, SeqCst);
        fence(SeqCst);
        let guard = self.lock.lock();
        let in_time = if still_blocked() {
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => !self.cond.wait_timeout(guard, left).1,
                _ => false,
            }
        } else {
            true
        };
        self.waiters.fetch_sub(1, Relaxed);
        in_time
    }

    /// Wakes every waiter when there is one. Called after freeing room or
    /// closing the mailbox.
    pub(crate) fn notify(&self) {
        fence(SeqCst);
        if self.waiters.load(Relaxed) > 0 {
            let _guard = self.lock.lock();
            self.cond.notify_all();
        }
    }
}
