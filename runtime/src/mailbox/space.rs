//! Waiting for room in a full mailbox, for blocking senders.

use std::time::Instant;

use crate::sync::{Condvar, Mutex, MutexGuard};

/// Blocking senders sleep here; the worker that frees slots wakes them.
///
/// Protocol (with `SPACE_WAITERS` in the cell's state word, see
/// `dispatch/state.rs`): a sender takes this lock, sets the flag with a
/// read-modify-write, looks at the queue, and sleeps only if it is still
/// full. A worker pops during its turn, then ends the turn with a
/// read-modify-write that clears the flag; if the flag was set, it takes this
/// lock and wakes every sleeper. The two RMWs are on one word, so one sees the
/// other: either the sender sees the freed slots or the worker sees the flag.
/// The lock makes "look, then sleep" atomic against "wake". The worker's
/// common path (no sleeper) costs nothing beyond the RMW it does anyway. The
/// loom model `loom-tests/tests/mailbox_space.rs` checks this.
#[derive(Debug, Default)]
pub(crate) struct SpaceSignal {
    lock: Mutex<()>,
    cond: Condvar,
}

impl SpaceSignal {
    /// Takes the lock a sender holds from registering to sleeping.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock()
    }

    /// Sleeps (releasing `guard`) until woken or `deadline` passes; `false`
    /// when the deadline passed.
    pub(crate) fn sleep(&self, guard: MutexGuard<'_, ()>, deadline: Instant) -> bool {
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => !self.cond.wait_timeout(guard, left).1,
            _ => false,
        }
    }

    /// Wakes every sleeper.
    pub(crate) fn wake(&self) {
        let _guard = self.lock.lock();
        self.cond.notify_all();
    }
}
