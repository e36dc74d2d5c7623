//! Work asked of a cell on its queued user messages: recomposition moves an
//! isolated kind's messages out of a cell's queue without stopping it.
//!
//! Protocol. The requester offers a [`Regroup`] step, then asks the cell for
//! a system check (`SystemMsg::Regroup`). The holder of the cell's run token
//! runs the pending step at that check, between two messages, or when the
//! cell terminates; no message is taken from the queue meanwhile, because
//! only the run token holder takes messages. The step is given every queued
//! user message in the order the worker would have taken them, and what it
//! returns goes back into the moved lane, ahead of anything queued since:
//! each sender's kept messages keep their order. A step offered after the
//! cell terminated is refused and handed back, so the requester can finish
//! its own part (release the cell it was moving messages to). The loom
//! model `loom-tests/tests/recompose_regroup.rs` checks this.

use super::{Envelope, Mailbox};
use crate::sync::Mutex;

/// Work a cell runs on its queued messages between two of its own turns'
/// messages: it is given every user message queued, and returns those to
/// put back, ahead of anything queued meanwhile.
pub(crate) type Regroup<M> = Box<dyn FnOnce(Vec<Envelope<M>>) -> Vec<Envelope<M>> + Send>;

/// The regroup step a cell has been asked to run, if any, and whether the
/// cell still accepts one.
pub(crate) struct PendingRegroup<M> {
    slot: Mutex<Slot<M>>,
}

enum Slot<M> {
    Open(Option<Regroup<M>>),
    /// The cell terminated: no step is accepted any more.
    Closed,
}

impl<M> PendingRegroup<M> {
    pub(crate) fn new() -> Self {
        PendingRegroup { slot: Mutex::new(Slot::Open(None)) }
    }

    /// Records `regroup` to run at the cell's next system check; the caller
    /// then asks for that check. A step offered while another is pending
    /// runs after it, on what the first one kept. Hands `regroup` back when
    /// the cell has terminated.
    pub(crate) fn offer(&self, regroup: Regroup<M>) -> Result<(), Regroup<M>>
    where
        M: 'static,
    {
        let mut slot = self.slot.lock();
        match &mut *slot {
            Slot::Closed => Err(regroup),
            Slot::Open(pending) => {
                *pending = Some(match pending.take() {
                    Some(first) => Box::new(move |queued| regroup(first(queued))),
                    None => regroup,
                });
                Ok(())
            }
        }
    }

    /// Runs the pending step, if any, on `mailbox`'s queued user messages
    /// and puts back what it keeps, ahead of the rest. Called by the run
    /// token holder only. With `close` (the cell terminates), no step is
    /// accepted afterwards; one pending still runs.
    pub(crate) fn run(&self, mailbox: &Mailbox<M>, close: bool) {
        let pending = {
            let mut slot = self.slot.lock();
            let pending = match &mut *slot {
                Slot::Open(pending) => pending.take(),
                Slot::Closed => None,
            };
            if close {
                *slot = Slot::Closed;
            }
            pending
        };
        if let Some(regroup) = pending {
            let kept = regroup(mailbox.take_user());
            if !kept.is_empty() {
                // Nothing was taken meanwhile (the caller holds the run
                // token), so they keep their place ahead of newer ones.
                let _ = mailbox.release(kept);
            }
        }
    }
}

impl<M> std::fmt::Debug for PendingRegroup<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.slot.lock() {
            Slot::Open(None) => "idle",
            Slot::Open(Some(_)) => "pending",
            Slot::Closed => "closed",
        };
        f.debug_struct("PendingRegroup").field("state", &state).finish()
    }
}
