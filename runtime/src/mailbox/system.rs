//! The system lane: control requests that never wait behind user messages
//! and never block their sender.
//!
//! Control requests are idempotent (stopping twice is stopping once), so the
//! lane is a word of pending flags rather than a queue: a push sets a bit, a
//! pop clears the most urgent one. No lock, no allocation, one word per cell.

use crate::sync::atomic::{AtomicUsize, Ordering::*};

/// A control request for one cell. Handled before any user message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemMsg {
    /// Stop after the current message; queued user messages are undelivered
    /// (or handed to a successor).
    Stop(StopCause),
    /// Close the mailbox, handle what is queued, then stop.
    Drain,
    /// Terminate now without running hooks; queued messages are undelivered.
    Kill,
    /// Begin a new incarnation: the supervisor restarts a suspended cell.
    Restart,
    /// Terminate a suspended cell for good: its supervisor will not restart it.
    Retire,
    /// The cell's supervision has events to process (children started or
    /// exited, a timer fired, a request arrived).
    Supervise,
    /// Recomposition asks the cell to regroup its queued messages (move an
    /// isolated kind's to that kind's cell) before its next message.
    Regroup,
}

/// Who asked a cell to stop, for [`SystemMsg::Stop`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// The runtime's `stop`.
    Requested,
    /// Another cell took over the address.
    Replaced,
    /// The parent stopped.
    ParentStopped,
    /// The supervisor stopped it on request (`terminate_child`).
    Supervisor,
    /// The supervisor stops it to restart it with its group.
    GroupRestart,
    /// The supervisor kills it (`Shutdown::Kill`): the incarnation ends at
    /// its next system check without hooks; the instance is kept.
    Kill,
}

/// Requests in the order a pop hands them out: most urgent first.
const BY_URGENCY: [SystemMsg; 12] = [
    SystemMsg::Kill,
    SystemMsg::Stop(StopCause::Kill),
    SystemMsg::Retire,
    SystemMsg::Supervise,
    SystemMsg::Regroup,
    SystemMsg::Stop(StopCause::Replaced),
    SystemMsg::Stop(StopCause::ParentStopped),
    SystemMsg::Stop(StopCause::Supervisor),
    SystemMsg::Stop(StopCause::GroupRestart),
    SystemMsg::Stop(StopCause::Requested),
    SystemMsg::Drain,
    SystemMsg::Restart,
];

fn bit(msg: SystemMsg) -> usize {
    1 << BY_URGENCY.iter().position(|m| *m == msg).unwrap_or(0)
}

/// Pending control requests of one cell, as bits of one word.
#[derive(Debug, Default)]
pub(crate) struct SystemQueue {
    pending: AtomicUsize,
}

impl SystemQueue {
    /// Records a request; a request already pending is not doubled.
    pub(crate) fn push(&self, msg: SystemMsg) {
        // Release: pairs with the Acquire of `pop`/`is_empty`. The caller's
        // `CellState::notify` that follows orders it against an idle turn.
        self.pending.fetch_or(bit(msg), Release);
    }

    /// Takes the most urgent pending request.
    pub(crate) fn pop(&self) -> Option<SystemMsg> {
        let mut pending = self.pending.load(Acquire);
        loop {
            if pending == 0 {
                return None;
            }
            let lowest = pending & pending.wrapping_neg();
            match self.pending.compare_exchange_weak(pending, pending & !lowest, AcqRel, Acquire) {
                Ok(_) => return Some(BY_URGENCY[lowest.trailing_zeros() as usize]),
                Err(actual) => pending = actual,
            }
        }
    }

    /// Withdraws a pending request; returns whether it was pending.
    pub(crate) fn take(&self, msg: SystemMsg) -> bool {
        self.pending.fetch_and(!bit(msg), AcqRel) & bit(msg) != 0
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.load(Acquire) == 0
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn pop_hands_out_the_most_urgent_request_first() {
        let queue = SystemQueue::default();
        queue.push(SystemMsg::Drain);
        queue.push(SystemMsg::Stop(StopCause::Requested));
        queue.push(SystemMsg::Kill);
        assert_eq!(queue.pop(), Some(SystemMsg::Kill));
        assert_eq!(queue.pop(), Some(SystemMsg::Stop(StopCause::Requested)));
        assert_eq!(queue.pop(), Some(SystemMsg::Drain));
        assert_eq!(queue.pop(), None);
        assert!(queue.is_empty());
    }

    #[test]
    fn a_repeated_request_is_pending_once() {
        let queue = SystemQueue::default();
        queue.push(SystemMsg::Stop(StopCause::Replaced));
        queue.push(SystemMsg::Stop(StopCause::Replaced));
        assert_eq!(queue.pop(), Some(SystemMsg::Stop(StopCause::Replaced)));
        assert_eq!(queue.pop(), None);
    }
}
