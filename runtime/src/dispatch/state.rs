//! The state word of one cell: its scheduling state and whether it may
//! still be scheduled.
//!
//! One `AtomicUsize` per cell, packed as:
//!
//! | bits   | meaning                                                     | moved by                    |
//! |--------|-------------------------------------------------------------|-----------------------------|
//! | 0..=1  | `IDLE` (0), `SCHEDULED` (1) or `RUNNING` (2)                | senders, the running worker |
//! | 2      | `CLOSED`: the user mailbox admits nothing new (its lanes' senders' counters say so to senders); never cleared | whoever stops or replaces |
//! | 3      | `DONE`: the cell is gone and is never scheduled again; never cleared | the last turn        |
//! | 4      | `SPACE_WAITERS`: a sender sleeps until the queue has room   | set by waiting senders (and again by the waker while tasks still wait), cleared by the worker ending a turn, and half-way through one |
//! | 5      | `ACTIVE`: the cell ran a turn (or had a send refused) since the analysis window last read it | set by the worker starting a turn and by refused sends, cleared by the analysis window |
//!
//! # Invariants
//!
//! - Exactly one party holds the *run token* while the state is `SCHEDULED` or
//!   `RUNNING`: whoever moved it out of `IDLE`. That party either enqueues the
//!   cell on its dispatcher or runs it, so a cell is never run by two workers.
//! - A sender does not write this word to deliver a message: it pushes,
//!   issues a `SeqCst` fence and reads the word; only when that read shows
//!   `IDLE` does it try to take the token ([`CellState::schedule_after_push`]).
//!   A worker going idle does a read-modify-write on the word
//!   ([`CellState::finish_turn_idle`]), issues a `SeqCst` fence, and then
//!   looks at the queues again. The two fences are ordered one way or the
//!   other: if the sender's comes first, the worker's re-check sees the
//!   message; if the worker's comes first, the sender's read sees `IDLE`
//!   (or a later value, from which whoever holds the token then reaches
//!   its own idle transition and re-check after this push). Either the
//!   sender schedules the cell or the worker finds the message: that is the
//!   whole no-lost-wake-up argument, and the loom model
//!   `loom-tests/tests/dispatch_state.rs` checks it. While the cell runs, a
//!   send costs this word one read of a cache line the worker writes only
//!   at the start and end of a turn.
//! - System-queue pushes call [`CellState::notify`], which always *writes*
//!   (a compare-exchange that stores the value it read when the cell is
//!   already scheduled): a read-modify-write of this word is ordered
//!   against the worker's idle transition without a fence (a failed CAS is
//!   only a load and would not be).
//! - A blocked sender sets `SPACE_WAITERS` with a read-modify-write and then
//!   looks at the queue; the worker ending a turn (after popping) clears it
//!   in its own read-modify-write (and half-way through a turn's budget,
//!   [`CellState::take_space_waiters`]) and, if it
//!   was set, wakes the sleepers (and
//!   sets it again, with a read-modify-write, while async senders it did not
//!   wake still wait). One
//!   of the two sees the other, with no fence on the worker's path (see
//!   `mailbox/space.rs`).
//! - `CLOSED` here is what readers of the state see; what refuses senders
//!   is the same bit in each lane's senders' counter, which the closer sets
//!   and whose pushes in flight it waits out (`mailbox/bounded.rs`).
//! - `ACTIVE` is how the analysis window finds the cells that did something
//!   without visiting every cell (see `observe/analysis.rs`). The worker reads
//!   it in the value its `SCHEDULED → RUNNING` read-modify-write returns, so
//!   the message path pays no extra access; only the first turn after the
//!   window cleared it sets it again ([`CellState::mark_active`]) and reports
//!   the cell. The window clears it with a read-modify-write
//!   ([`CellState::take_active`]) that also reads the scheduling state: when
//!   that shows `IDLE`, every earlier turn's writes (its metrics) are visible
//!   to the window (the turn ended with a `Release` RMW earlier in this word's
//!   modification order), and any later turn starts with an RMW later in it,
//!   which sees `ACTIVE` clear and reports the cell again. The loom model
//!   `loom-tests/tests/dispatch_active.rs` checks that no turn goes unreported.

use crate::sync::atomic::{fence, AtomicUsize, Ordering, Ordering::*};

const SCHED_MASK: usize = 0b11;
const IDLE: usize = 0;
const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
/// The user mailbox admits nothing new. Never cleared.
const CLOSED: usize = 1 << 2;
/// The cell has terminated and must never be scheduled again. Never cleared.
const DONE: usize = 1 << 3;
/// A sender sleeps until the queue has room. Cleared by the worker that
/// ends a turn, which then wakes the sleepers.
const SPACE_WAITERS: usize = 1 << 4;
/// The cell ran a turn, or had a send refused, since the analysis window
/// last cleared the bit. Set by workers and refused senders, cleared by the
/// analysis window.
const ACTIVE: usize = 1 << 5;

/// The packed state word of one cell. See the module docs.
#[derive(Debug)]
pub(crate) struct CellState {
    word: AtomicUsize,
}

/// A copy of the state word at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

impl Snapshot {
    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn is_idle(self) -> bool {
        self.0 & SCHED_MASK == IDLE
    }

    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn is_running(self) -> bool {
        self.0 & SCHED_MASK == RUNNING
    }

    pub(crate) fn is_closed(self) -> bool {
        self.0 & CLOSED != 0
    }

    pub(crate) fn is_done(self) -> bool {
        self.0 & DONE != 0
    }
}

/// What the caller of a transition must do next.
#[must_use = "a `Schedule` result says whether the caller now holds the run token"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Schedule {
    /// The caller moved the cell out of `IDLE`: it must enqueue (or run) it.
    Enqueue,
    /// Someone else holds the run token, or the cell is done.
    Nothing,
}

impl Default for CellState {
    fn default() -> Self {
        Self::new()
    }
}

impl CellState {
    pub(crate) fn new() -> Self {
        CellState { word: AtomicUsize::new(IDLE) }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot(self.word.load(Acquire))
    }

    /// After a user message was pushed: takes the run token when the cell
    /// is idle (the caller must then enqueue it), without writing the word
    /// otherwise. See the module docs for why the fence suffices.
    #[inline]
    pub(crate) fn schedule_after_push(&self) -> Schedule {
        // Pairs with the fence in `finish_turn_idle`: either this read sees
        // the worker's idle transition, or its re-check sees the push.
        fence(SeqCst);
        let cur = self.word.load(Relaxed);
        if cur & SCHED_MASK != IDLE || cur & DONE != 0 {
            return Schedule::Nothing;
        }
        self.notify()
    }

    /// Signals work (a control request, handed-over messages, a push that
    /// found the cell idle): takes the run token when the cell is idle and
    /// not done, with one read-modify-write that stores even when it changes
    /// nothing, so it always takes part in this word's modification order
    /// and orders against `finish_turn_idle` without a fence.
    #[inline]
    pub(crate) fn notify(&self) -> Schedule {
        let mut cur = self.word.load(Relaxed);
        loop {
            let take = cur & SCHED_MASK == IDLE && cur & DONE == 0;
            let next = cur | if take { SCHEDULED } else { 0 };
            // Release publishes what the caller queued to the worker whose
            // idle transition reads this value (or a later one in the RMW
            // chain); Acquire pairs with the Release of `finish_turn_idle`, so
            // a caller that takes the token sees the previous turn's writes.
            match self.word.compare_exchange_weak(cur, next, AcqRel, Relaxed) {
                Ok(_) if take => return Schedule::Enqueue,
                Ok(_) => return Schedule::Nothing,
                Err(actual) => cur = actual,
            }
        }
    }

    /// `SCHEDULED → RUNNING`, by the worker that dequeued the cell. Returns
    /// whether `ACTIVE` was clear: the first turn since the analysis window
    /// last read the cell, which should then [`mark_active`](Self::mark_active).
    #[inline]
    pub(crate) fn start_turn(&self) -> bool {
        // Acquire: the turn sees everything done before the token was handed over.
        let prev = self.word.fetch_add(RUNNING - SCHEDULED, Acquire);
        debug_assert_eq!(prev & SCHED_MASK, SCHEDULED, "a cell was run without its run token");
        prev & ACTIVE == 0
    }

    /// Sets `ACTIVE`; returns whether it was clear, in which case the caller
    /// reports the cell to the analysis window (once per window at most).
    pub(crate) fn mark_active(&self) -> bool {
        // AcqRel: one RMW in the chain the window's `take_active` is part
        // of; Release publishes what was counted before (a refused send's
        // counter) to the window that clears the bit next.
        self.word.fetch_or(ACTIVE, AcqRel) & ACTIVE == 0
    }

    /// Clears `ACTIVE`, for the analysis window about to read the cell's
    /// metrics. Returns whether the cell was idle (not scheduled, not
    /// running) at that instant: then every turn so far has ended and its
    /// writes are visible, and the next turn will report the cell again.
    pub(crate) fn take_active(&self) -> bool {
        // AcqRel: Acquire pairs with the Release of the turn-ending RMW
        // (`finish_turn_idle`) and of `mark_active`, earlier in this word's
        // modification order; Release orders the clear before the RMW of
        // the next `start_turn`, which therefore sees `ACTIVE` clear.
        self.word.fetch_and(!ACTIVE, AcqRel) & SCHED_MASK == IDLE
    }

    /// `RUNNING → SCHEDULED`: the turn used its budget and work is left; the
    /// worker keeps the token and must enqueue the cell again. Returns whether
    /// senders were waiting for room (the flag is cleared; wake them).
    #[inline]
    #[must_use = "sleeping senders must be woken when this returns true"]
    pub(crate) fn yield_turn(&self) -> bool {
        // Release: the next token holder sees this turn's writes.
        self.end_turn(|cur| cur - (RUNNING - SCHEDULED), Release)
    }

    /// `RUNNING → IDLE`: the worker found no work and gives the token up.
    /// Returns whether senders were waiting for room (cleared; wake them).
    ///
    /// The caller must then look at the queues again and, when it finds work,
    /// call [`CellState::notify`] to try to take the token back.
    #[inline]
    #[must_use = "sleeping senders must be woken when this returns true"]
    pub(crate) fn finish_turn_idle(&self) -> bool {
        // AcqRel: Release hands this turn's writes to the next token holder;
        // Acquire pairs with the Release of `notify` calls earlier in this
        // word's modification order, so the re-check sees what they signal.
        let waiters = self.end_turn(|cur| cur - RUNNING, AcqRel);
        // Pairs with the fence in `schedule_after_push`: a sender that read
        // a state before this transition has its push seen by the re-check.
        fence(SeqCst);
        waiters
    }

    fn end_turn(&self, transition: impl Fn(usize) -> usize, success: Ordering) -> bool {
        let mut cur = self.word.load(Relaxed);
        loop {
            debug_assert_eq!(cur & SCHED_MASK, RUNNING);
            let next = transition(cur) & !SPACE_WAITERS;
            match self.word.compare_exchange_weak(cur, next, success, Relaxed) {
                Ok(_) => return cur & SPACE_WAITERS != 0,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Clears `SPACE_WAITERS` in the middle of a turn, after pops that made
    /// room; returns whether it was set (then wake the sleepers). The same
    /// read-modify-write as the turn-ending ones, and for the same reason:
    /// a sender's `wait_for_space` RMW either comes earlier in this word's
    /// order, and is seen here, or later, and sees the pops.
    #[must_use = "sleeping senders must be woken when this returns true"]
    pub(crate) fn take_space_waiters(&self) -> bool {
        // AcqRel: Release publishes the pops before it to a sender whose
        // RMW reads this one; Acquire pairs with that sender's RMW, so the
        // waker finds what it published (with the fence in `space.rs`).
        self.word.fetch_and(!SPACE_WAITERS, AcqRel) & SPACE_WAITERS != 0
    }

    /// A blocked sender announces it sleeps until there is room. The
    /// returned snapshot is the word just before, for the closed check.
    pub(crate) fn wait_for_space(&self) -> Snapshot {
        // AcqRel: Acquire pairs with the Release of the worker's turn-ending
        // RMW, so a sender ordered after it sees that turn's pops.
        Snapshot(self.word.fetch_or(SPACE_WAITERS, AcqRel))
    }

    /// Marks the cell done while its last turn runs: no one can take the run
    /// token again.
    pub(crate) fn finish(&self) {
        self.word.fetch_or(DONE, AcqRel);
    }

    /// Marks the user mailbox closed, for readers of the state (the lanes'
    /// senders' counters are what refuse senders). Returns `false` when it
    /// was already closed.
    pub(crate) fn close(&self) -> bool {
        // AcqRel: one RMW in this word's order, so a waiting sender's
        // `wait_for_space` either sees it or is woken after it.
        self.word.fetch_or(CLOSED, AcqRel) & CLOSED == 0
    }

    /// Takes the run token from an idle cell without enqueueing it, so the
    /// caller can act on the cell directly (forced termination).
    pub(crate) fn try_claim_idle(&self) -> bool {
        let mut cur = self.word.load(Relaxed);
        loop {
            if cur & SCHED_MASK != IDLE || cur & DONE != 0 {
                return false;
            }
            match self.word.compare_exchange_weak(cur, cur | RUNNING, AcqRel, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn first_push_takes_the_token_and_later_pushes_do_not() {
        let state = CellState::new();
        assert_eq!(state.schedule_after_push(), Schedule::Enqueue);
        assert_eq!(state.schedule_after_push(), Schedule::Nothing);
        state.start_turn();
        assert!(state.snapshot().is_running());
        assert_eq!(state.schedule_after_push(), Schedule::Nothing, "a running cell is not scheduled again");
        assert!(!state.finish_turn_idle());
        assert_eq!(state.schedule_after_push(), Schedule::Enqueue, "an idle one is");
    }

    #[test]
    fn idle_cell_can_be_scheduled_again_after_its_turn() {
        let state = CellState::new();
        assert_eq!(state.notify(), Schedule::Enqueue);
        state.start_turn();
        assert_eq!(state.notify(), Schedule::Nothing);
        assert!(!state.finish_turn_idle());
        assert!(state.snapshot().is_idle());
        assert_eq!(state.notify(), Schedule::Enqueue);
    }

    #[test]
    fn closing_is_seen_once_and_does_not_schedule() {
        let state = CellState::new();
        assert!(state.close());
        assert!(state.snapshot().is_closed());
        assert!(state.snapshot().is_idle());
        assert!(!state.close(), "closing twice reports it was already closed");
    }

    #[test]
    fn done_cell_is_never_scheduled() {
        let state = CellState::new();
        assert_eq!(state.notify(), Schedule::Enqueue);
        state.start_turn();
        state.finish();
        assert!(!state.finish_turn_idle());
        assert!(state.snapshot().is_done());
        assert_eq!(state.notify(), Schedule::Nothing);
        assert_eq!(state.schedule_after_push(), Schedule::Nothing);
        assert!(!state.try_claim_idle());
    }

    #[test]
    fn ending_a_turn_reports_and_clears_space_waiters() {
        let state = CellState::new();
        assert_eq!(state.notify(), Schedule::Enqueue);
        state.start_turn();
        assert!(!state.wait_for_space().is_closed());
        assert!(state.yield_turn(), "the waiter is reported once");
        state.start_turn();
        assert!(!state.finish_turn_idle(), "and then cleared");
        assert!(state.snapshot().is_idle());
    }

    #[test]
    fn only_the_first_turn_after_the_window_reads_the_cell_reports_it() {
        let state = CellState::new();
        assert_eq!(state.notify(), Schedule::Enqueue);
        assert!(state.start_turn(), "a new cell's first turn reports it");
        assert!(state.mark_active());
        assert!(!state.take_active(), "read mid-turn: the cell is running");
        assert!(state.start_turn_after_yield(), "cleared mid-turn: the next turn reports it again");
        assert!(state.mark_active());
        assert!(!state.mark_active(), "a refused send while marked reports nothing");
        assert!(!state.finish_turn_idle());
        assert!(state.take_active(), "read between turns: the cell is idle");
        assert!(state.mark_active(), "a refused send after the window reports the cell");
        assert_eq!(state.notify(), Schedule::Enqueue);
        assert!(!state.start_turn(), "already reported in this window");
    }

    impl CellState {
        /// `RUNNING → SCHEDULED → RUNNING`: a yield and the next turn.
        fn start_turn_after_yield(&self) -> bool {
            assert!(!self.yield_turn());
            self.start_turn()
        }
    }

    #[test]
    fn claim_succeeds_only_on_an_idle_cell() {
        let state = CellState::new();
        assert!(state.try_claim_idle());
        assert!(!state.try_claim_idle());
        assert!(state.snapshot().is_running());
    }
}
