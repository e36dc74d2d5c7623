//! The system queue: control messages that never wait behind user messages
//! and never block their sender.

use std::collections::VecDeque;

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::Mutex;

/// A control message for one cell. Handled before any user message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemMsg {
    /// Stop after the current message; queued user messages are undelivered.
    Stop(StopCause),
    /// Close the mailbox, handle what is queued, then stop.
    Drain,
    /// Terminate now without running hooks; queued messages are undelivered.
    Kill,
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
}

/// An unbounded FIFO of [`SystemMsg`]. Control messages are few (a handful per
/// cell lifetime), so a locked deque with a length hint for the lock-free
/// emptiness check is enough.
#[derive(Debug, Default)]
pub(crate) struct SystemQueue {
    items: Mutex<VecDeque<SystemMsg>>,
    len: AtomicUsize,
}

impl SystemQueue {
    pub(crate) fn push(&self, msg: SystemMsg) {
        let mut items = self.items.lock();
        items.push_back(msg);
        // Release under the lock: a reader that sees the new length (Acquire)
        // and then takes the lock finds the message.
        self.len.store(items.len(), Release);
    }

    pub(crate) fn pop(&self) -> Option<SystemMsg> {
        if self.len.load(Acquire) == 0 {
            return None;
        }
        let mut items = self.items.lock();
        let msg = items.pop_front();
        self.len.store(items.len(), Release);
        msg
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Acquire) == 0
    }
}
