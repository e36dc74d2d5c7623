//! [`Dormancy`]: how a periodic background job (the analysis window, the
//! deadline watchdog) stops when there is nothing to do, and how the
//! activity it watches starts it again, without losing either.
//!
//! # States
//!
//! One word, moved by two parties: the *job* (one scheduled timer entry at a
//! time) and the *markers* (whoever does the work the job watches).
//!
//! | state | meaning |
//! |---|---|
//! | `DORMANT` | no job is scheduled; the next marker must arm one |
//! | `QUIET` | a job is scheduled; nothing was marked since its last tick began |
//! | `ACTIVE` | a job is scheduled; something was marked since its last tick began |
//!
//! Transitions: a marker moves `QUIET`/`DORMANT` → `ACTIVE`
//! ([`mark`](Dormancy::mark)), and the one that moved it from `DORMANT` arms
//! the job. The job's tick begins by moving the word to `QUIET`
//! ([`begin_tick`](Dormancy::begin_tick)), looks at the work, and when it
//! found nothing to do moves `QUIET` → `DORMANT`
//! ([`try_sleep`](Dormancy::try_sleep)) and is not scheduled again; a
//! marker that came in between makes that compare-exchange fail, and the
//! job runs again. Both moves from `DORMANT` and to it are read-modify-writes
//! of the same word, so exactly one of them sees the other: no activity is
//! left without a job, and never are two jobs armed.
//!
//! # The markers' fast path
//!
//! A marker that reads `ACTIVE` does nothing. That read may be stale, so the
//! callers uphold one rule: between its activity and its mark, the marker
//! releases a lock that the job's tick takes while it looks at that
//! activity (a cell's handler record for the watchdog, the run queue's
//! sleeper list for the analysis). Then either the tick's look comes after
//! the marker's release and sees the activity, or it comes before, and the
//! marker's read comes after the tick's `begin_tick` and cannot return the
//! `ACTIVE` that `begin_tick` replaced.
//!
//! The loom model `loom-tests/tests/dormancy.rs` checks this protocol.

use crate::sync::atomic::{AtomicUsize, Ordering::*};

/// No job is scheduled.
const DORMANT: usize = 0;
/// A job is scheduled; no activity since its tick began.
const QUIET: usize = 1;
/// A job is scheduled; activity since its tick began.
const ACTIVE: usize = 2;

/// The state word of one background job; see the module docs.
#[derive(Debug)]
pub(crate) struct Dormancy {
    state: AtomicUsize,
}

impl Dormancy {
    /// A job that is not scheduled: the first [`mark`](Dormancy::mark) arms it.
    pub(crate) fn new() -> Self {
        Dormancy { state: AtomicUsize::new(DORMANT) }
    }

    /// Records activity after it happened (see "The markers' fast path").
    /// `true` when the job was dormant: the caller must schedule it, once.
    #[must_use = "a dormant job must be armed by the marker that woke it"]
    #[inline]
    pub(crate) fn mark(&self) -> bool {
        // Relaxed: see the module docs for why a stale ACTIVE is harmless.
        if self.state.load(Relaxed) == ACTIVE {
            return false;
        }
        // AcqRel: pairs with the job's `begin_tick` and `try_sleep`.
        self.state.swap(ACTIVE, AcqRel) == DORMANT
    }

    /// Begins a tick of the scheduled job: `true` when activity was marked
    /// since the previous tick began.
    pub(crate) fn begin_tick(&self) -> bool {
        // AcqRel: pairs with the markers' swap.
        self.state.swap(QUIET, AcqRel) == ACTIVE
    }

    /// Ends a tick that found nothing to do: `true` when the job must stop
    /// (it is dormant now), `false` when activity came in since
    /// [`begin_tick`](Dormancy::begin_tick) and the job must run again.
    #[must_use]
    pub(crate) fn try_sleep(&self) -> bool {
        // AcqRel: pairs with the markers' swap.
        self.state.compare_exchange(QUIET, DORMANT, AcqRel, Acquire).is_ok()
    }

    /// Whether no job is scheduled.
    pub(crate) fn is_dormant(&self) -> bool {
        self.state.load(Acquire) == DORMANT
    }
}

/// What arms a dormant job.
type Arm = Box<dyn Fn() + Send + Sync>;

/// A [`Dormancy`] with the action that arms its job: for markers that do
/// not know the job's owner (the dispatchers' workers mark the runtime's
/// analysis window).
pub(crate) struct ActivityGate {
    dormancy: Dormancy,
    /// Set once the job's owner exists; `None` until then, and for a job
    /// that is never run (observation off).
    arm: crate::sync::Mutex<Option<Arm>>,
}

impl std::fmt::Debug for ActivityGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityGate").field("dormant", &self.dormancy.is_dormant()).finish()
    }
}

impl ActivityGate {
    pub(crate) fn new() -> Self {
        ActivityGate { dormancy: Dormancy::new(), arm: crate::sync::Mutex::new(None) }
    }

    /// Sets what arms the job; the job stays dormant until the next mark.
    pub(crate) fn set_arm(&self, arm: impl Fn() + Send + Sync + 'static) {
        *self.arm.lock() = Some(Box::new(arm));
    }

    /// Records activity; arms the job if it was dormant (see [`Dormancy::mark`]).
    #[inline]
    pub(crate) fn mark(&self) {
        if self.dormancy.mark() {
            if let Some(arm) = &*self.arm.lock() {
                arm();
            }
        }
    }

    /// The gate's state word, for the job.
    pub(crate) fn dormancy(&self) -> &Dormancy {
        &self.dormancy
    }
}
