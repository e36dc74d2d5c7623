//! A spawned cell: its mailbox, its value, and how a worker runs its turns.
//!
//! # Who touches what
//!
//! - `mailbox`: senders push through the gate; the worker holding the run
//!   token pops. Closing and taking queued messages are safe from any thread.
//! - `running`: the cell value and its context. Locked only by the holder of
//!   the run token (a worker for one turn, or the runtime killing an idle
//!   cell it claimed), so the lock is never contended; it exists so that no
//!   `unsafe` is needed to hand the value from worker to worker. `None` once
//!   the cell terminated, which also breaks the cycle context → address →
//!   slot → instance.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Instant, SystemTime};

use crate::address::{Deliver, Handover};
use crate::cell::{Cell, CellError, Context, StopReason};
use crate::dispatch::state::Schedule;
use crate::dispatch::{worker, Dispatcher, Runnable, TurnEnd};
use crate::failure::{payload_text, Failure, FailureCause, Hook, InCellGuard};
use crate::mailbox::{Mailbox, SendError, StopCause, SystemMsg};
use crate::path::CellPath;
use crate::runtime::{CellControl, RuntimeShared};
use crate::sync::{Arc, Mutex, MutexGuard, Weak};

struct Running<C: Cell> {
    cell: C,
    ctx: Context<C>,
    /// Whether `started` has run; the first turn runs it before anything else.
    started: bool,
    /// Set by `Drain`: handle what is queued, then stop.
    draining: bool,
}

/// One spawned cell.
pub(crate) struct CellInstance<C: Cell> {
    id: u64,
    path: CellPath,
    mailbox: Mailbox<C::Message>,
    /// Where this cell's leftovers go if it is replaced.
    handover: Handover<C::Message>,
    running: Mutex<Option<Running<C>>>,
    dispatcher: Arc<Dispatcher>,
    runtime: Arc<RuntimeShared>,
    me: Weak<CellInstance<C>>,
}

/// What ends a turn early.
enum Exit {
    Stop(StopReason),
    Kill,
}

impl<C: Cell> CellInstance<C> {
    /// A cell with an empty mailbox; `held` for the successor of a replaced
    /// cell, which waits for its predecessor's leftovers.
    pub(crate) fn new(
        id: u64,
        path: CellPath,
        capacity: usize,
        held: bool,
        dispatcher: Arc<Dispatcher>,
        runtime: Arc<RuntimeShared>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| CellInstance {
            id,
            path,
            mailbox: if held { Mailbox::new_held(capacity) } else { Mailbox::new(capacity) },
            handover: Handover::new(),
            running: Mutex::new(None),
            dispatcher,
            runtime,
            me: me.clone(),
        })
    }

    /// Gives the instance its value and context. Nothing runs until [`begin`].
    ///
    /// [`begin`]: CellInstance::begin
    pub(crate) fn install(&self, cell: C, ctx: Context<C>) {
        *self.running.lock() = Some(Running { cell, ctx, started: false, draining: false });
    }

    /// Schedules the first turn, which runs `started` before any message.
    pub(crate) fn begin(&self) {
        if self.mailbox.state().notify() == Schedule::Enqueue {
            self.schedule();
        }
    }

    fn schedule(&self) {
        if let Some(me) = self.me.upgrade() {
            self.dispatcher.schedule(me);
        }
    }

    fn failure(&self, hook: Hook, message_kind: Option<&'static str>, cause: FailureCause) -> Box<Failure> {
        Box::new(Failure {
            path: self.path.clone(),
            cell_kind: std::any::type_name::<C>(),
            hook,
            message_kind,
            cause,
            at: SystemTime::now(),
        })
    }

    fn error_cause(err: CellError) -> FailureCause {
        FailureCause::Error { text: err.full_text(), type_name: err.type_name() }
    }

    fn panic_cause(payload: Box<dyn std::any::Any + Send>, guard: &InCellGuard) -> FailureCause {
        let text = payload_text(&*payload);
        // A payload whose own `Drop` panics must not unwind into the worker.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        FailureCause::Panic { payload: text, location: guard.take_location() }
    }

    fn call_started(&self, running: &mut Running<C>, guard: &InCellGuard) -> Result<(), Box<Failure>> {
        let Running { cell, ctx, .. } = running;
        match catch_unwind(AssertUnwindSafe(|| cell.started(ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.failure(Hook::Started, None, Self::error_cause(err))),
            Err(payload) => Err(self.failure(Hook::Started, None, Self::panic_cause(payload, guard))),
        }
    }

    fn call_handle(
        &self,
        running: &mut Running<C>,
        msg: C::Message,
        guard: &InCellGuard,
    ) -> Result<(), Box<Failure>> {
        let Running { cell, ctx, .. } = running;
        let mut kind = None;
        let result = catch_unwind(AssertUnwindSafe(|| {
            kind = Some(C::message_kind(&msg));
            cell.handle(ctx, msg)
        }));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.failure(Hook::Handle, kind, Self::error_cause(err))),
            Err(payload) => Err(self.failure(Hook::Handle, kind, Self::panic_cause(payload, guard))),
        }
    }

    /// Runs `started` if it has not run, then the system messages; `Some`
    /// when one of them ends the cell.
    fn run_system(&self, running: &mut Running<C>, guard: &InCellGuard) -> Option<Exit> {
        if !running.started {
            running.started = true;
            if let Err(failure) = self.call_started(running, guard) {
                return Some(Exit::Stop(self.failed(failure)));
            }
            if running.ctx.stop_requested {
                return Some(Exit::Stop(StopReason::Requested));
            }
        }
        while let Some(msg) = self.mailbox.pop_system() {
            match msg {
                SystemMsg::Stop(cause) => {
                    return Some(Exit::Stop(match cause {
                        StopCause::Requested => StopReason::Requested,
                        StopCause::Replaced => StopReason::Replaced,
                        StopCause::ParentStopped => StopReason::ParentStopped,
                    }))
                }
                SystemMsg::Drain => {
                    running.draining = true;
                    self.mailbox.close();
                }
                SystemMsg::Kill => return Some(Exit::Kill),
            }
        }
        None
    }

    /// Records a failure and turns it into the stop reason.
    fn failed(&self, failure: Box<Failure>) -> StopReason {
        self.runtime.record_failure(&failure);
        StopReason::Failed(failure)
    }

    /// Ends the cell: closes and empties the mailbox, stops children and
    /// timers, runs `stopped` (unless killed), drops the value, reports.
    fn terminate(
        &self,
        slot: &mut MutexGuard<'_, Option<Running<C>>>,
        reason: StopReason,
        guard: Option<&InCellGuard>,
    ) {
        // Closes the mailbox; what is left goes to a successor if this cell
        // was replaced. Dropping the rest resolves asks among it to `Unanswered`.
        let undelivered = self.handover.retire(&self.mailbox).len();
        if let Some(mut running) = slot.take() {
            for child in running.ctx.children.iter().rev() {
                child.send_system(SystemMsg::Stop(StopCause::ParentStopped));
            }
            for timer in &running.ctx.timers {
                timer.cancel();
            }
            if let Some(guard) = guard {
                let Running { cell, ctx, .. } = &mut running;
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cell.stopped(ctx, &reason))) {
                    let failure = self.failure(Hook::Stopped, None, Self::panic_cause(payload, guard));
                    self.runtime.record_failure(&failure);
                }
            }
            // The cell's own `Drop` is user code too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(running)));
        }
        // DONE in the state word is what `is_terminated` reads. Blocked
        // senders were woken when `retire` closed the mailbox.
        self.mailbox.state().finish();
        self.runtime.cell_terminated(self.id, &self.path, undelivered, &reason);
    }
}

impl<C: Cell> Runnable for CellInstance<C> {
    fn run_turn(&self, budget: usize) -> TurnEnd {
        let state = self.mailbox.state();
        state.start_turn();
        let mut slot = self.running.lock();
        let Some(running) = slot.as_mut() else {
            // Terminated while it sat in a run queue.
            state.finish();
            return TurnEnd::Done;
        };
        let guard = InCellGuard::enter(self.runtime.quiet_panics());
        let mut handled = 0_usize;
        let exit = loop {
            if let Some(exit) = self.run_system(running, &guard) {
                break Some(exit);
            }
            if handled == budget {
                break None;
            }
            let Some(msg) = self.mailbox.pop_user() else { break None };
            if handled > 0 {
                // The turn goes on: whatever it scheduled so far should not
                // wait for the rest of it. Let another worker take it.
                worker::offload_next();
            }
            handled += 1;
            if let Err(failure) = self.call_handle(running, msg, &guard) {
                break Some(Exit::Stop(self.failed(failure)));
            }
            if running.ctx.stop_requested {
                break Some(Exit::Stop(StopReason::Requested));
            }
        };
        match exit {
            Some(Exit::Stop(reason)) => {
                self.terminate(&mut slot, reason, Some(&guard));
                return TurnEnd::Done;
            }
            Some(Exit::Kill) => {
                self.terminate(&mut slot, StopReason::Killed, None);
                return TurnEnd::Done;
            }
            None => {}
        }
        if running.draining && !self.mailbox.has_user_work() {
            self.terminate(&mut slot, StopReason::Shutdown, Some(&guard));
            return TurnEnd::Done;
        }
        drop(guard);
        drop(slot);
        self.mailbox.end_turn()
    }
}

impl<C: Cell> Deliver<C::Message> for CellInstance<C> {
    #[inline]
    fn try_deliver(&self, msg: C::Message) -> Result<(), SendError<C::Message>> {
        if self.mailbox.push(msg)? == Schedule::Enqueue {
            self.schedule();
        }
        Ok(())
    }

    fn wait_for_space(&self, deadline: Instant) -> bool {
        self.mailbox.wait_for_space(deadline)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<C::Message>>) {
        // Blocked senders wake, see `Closed` here and retry through the slot.
        self.mailbox.close();
        match self.handover.request(successor) {
            // `terminate` hands the leftovers over once the message in hand
            // (if any) is done.
            Ok(()) => self.send_system(SystemMsg::Stop(StopCause::Replaced)),
            // Already stopped: its leftovers were dropped and counted then.
            Err(successor) => successor.release(Vec::new()),
        }
    }

    fn release(&self, moved: Vec<C::Message>) {
        match self.handover.accept(moved, |moved| self.mailbox.release(moved)) {
            Ok(Schedule::Enqueue) => self.schedule(),
            Ok(Schedule::Nothing) => {}
            // Stopped (killed at shutdown, or stopped by request) while it
            // waited: the leftovers are undelivered.
            Err(moved) => self.runtime.count_undelivered(&self.path, moved.len()),
        }
    }

    fn is_held(&self) -> bool {
        self.mailbox.is_held()
    }

    fn queued(&self) -> usize {
        self.mailbox.len()
    }

    fn capacity(&self) -> usize {
        self.mailbox.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        self.me.upgrade().map(|me| me as Arc<dyn CellControl>)
    }
}

impl<C: Cell> CellControl for CellInstance<C> {
    fn path(&self) -> &CellPath {
        &self.path
    }

    fn send_system(&self, msg: SystemMsg) {
        if self.mailbox.push_system(msg) == Schedule::Enqueue {
            self.schedule();
        }
    }

    fn is_terminated(&self) -> bool {
        self.mailbox.snapshot().is_done()
    }

    fn try_kill_idle(&self) -> bool {
        if !self.mailbox.state().try_claim_idle() {
            return false;
        }
        let mut slot = self.running.lock();
        self.terminate(&mut slot, StopReason::Killed, None);
        true
    }

    fn discard_queued(&self) -> usize {
        self.mailbox.close();
        self.mailbox.take_user().len()
    }
}

impl<C: Cell> fmt::Debug for CellInstance<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CellInstance")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("state", &self.mailbox.snapshot())
            .finish()
    }
}
