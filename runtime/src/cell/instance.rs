//! A spawned cell: its mailbox, its incarnations, and how a worker runs its
//! turns.
//!
//! # Instances and incarnations
//!
//! An *instance* is what an address points at: a mailbox, a path, a place
//! in the tree. An *incarnation* is one value of the cell type living in it,
//! from `started` to `stopped`. A supervised cell keeps its instance, and so
//! its mailbox, across restarts: when an incarnation ends, the instance is
//! *suspended* (senders still queue, nothing is handled) until its
//! supervisor restarts it (a new value from the spec's factory, `started`,
//! then the queued messages) or retires it (terminated for good).
//!
//! ```text
//!  Starting ─► Running ─► Ending ─► Suspended ─► Starting …
//!      │                    │           │
//!      └─ start failure ────┘           └─ Retire ─► Done
//!                           └─ not kept ───────────► Done
//! ```
//!
//! An incarnation ends in `Ending`: its own children are stopped one by one
//! in reverse start order (its node waits for each), then `stopped` runs.
//!
//! # Who touches what
//!
//! - `mailbox`: senders push through the gate; the worker holding the run
//!   token pops. Closing and taking queued messages are safe from any thread.
//! - `body`: the incarnation, the phase, and the message to re-deliver.
//!   Locked only by the holder of the run token (a worker for one turn, or
//!   the runtime killing an idle cell it claimed), so never contended; it
//!   exists so that no `unsafe` is needed to hand the value from worker to
//!   worker.
//! - `rare.node`: this cell's children and how it supervises them; see
//!   `supervise/node.rs`. The instance reports to its own node and its
//!   supervisor's through `dyn NodeLink` (so that a program that makes no
//!   node links none of supervision), and implements the commands
//!   supervision issues (`supervise/child.rs`).
//! - `rare`, `metrics`: allocated by their first user, whichever thread it
//!   is (`sync::OnceBox`), so that an idle cell pays a pointer for each.
//!   The metrics block is allocated by the first message, failure, restart
//!   or refused send; until then the cell reports what a block that has
//!   counted nothing reports.

use std::any::Any;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(any(feature = "tokio", cellrt_loom))]
use std::task::Waker;
use std::time::{Duration, Instant, SystemTime};

use crate::address::{Addr, Deliver, Handover, Slot};
use crate::cell::{Cell, CellError, Context, StopReason, MAX_LANES};
use crate::dead_letter::DeadLetter;
use crate::dispatch::group::{Group, Membership, Reschedule};
use crate::dispatch::state::Schedule;
use crate::dispatch::{worker, Dispatcher, Runnable, TurnEnd};
use crate::failure::{payload_text, Failure, FailureCause, Hook, InCellGuard};
#[cfg(any(feature = "tokio", cellrt_loom))]
use crate::mailbox::SpaceWaiter;
use crate::mailbox::{Envelope, Mailbox, PendingRegroup, Regroup, SendError, StopCause, SystemMsg};
use crate::observe::metrics::{CellMetrics, Stamp, TurnMeter};
use crate::path::CellPath;
use crate::runtime::{CellControl, RuntimeShared};
use crate::supervise::{
    ChildExit, ChildStop, Factory, Node, NodeLink, NodeSeed, Origin, Outcome, Restart, Supervised,
    SupervisedCell, Terminated,
};
use crate::sync::{Arc, Mutex, MutexGuard, OnceBox, Weak};

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// The next turn begins an incarnation: value, `started`, report.
    Starting,
    Running,
    /// Waiting for the children to stop; then `stopped` runs.
    Ending(StopReason),
    /// Between incarnations: waits for `Restart` or `Retire`.
    Suspended(StopReason),
    Done,
}

struct Incarnation<C: Cell> {
    cell: C,
    ctx: Context<C>,
}

/// A failed message kept for re-delivery.
struct Retry<M> {
    msg: M,
    /// Re-deliveries so far.
    attempts: u32,
    cause: FailureCause,
}

struct Body<C: Cell> {
    incarnation: Option<Incarnation<C>>,
    phase: Phase,
    slot: Weak<Slot<C::Message>>,
    /// What few cells use, allocated by first use (every idle cell pays for
    /// what is inline); see [`BodyRare`].
    rare: Option<Box<BodyRare<C>>>,
    /// Set by `Drain`: handle what is queued, then stop.
    draining: bool,
    /// Whether this incarnation told its parent it started.
    reported_started: bool,
    /// The supervisor stopped the cell for good (`terminate_child`): it is
    /// not kept for a restart, whatever its restart kind.
    terminating: bool,
    /// The message at the front is a copy a duplicate fault made: it is
    /// not duplicated again.
    #[cfg(feature = "chaos")]
    chaos_copy: bool,
}

/// The parts of a body few cells use: a factory (supervised cells), a
/// message kept for re-delivery, a durable cell's store, a chaos fault.
struct BodyRare<C: Cell> {
    factory: Option<Factory<C>>,
    /// A failed message waiting for the next incarnation.
    retry: Option<Retry<C::Message>>,
    /// The re-deliveries and last cause of the message at the front, if it
    /// is a re-delivered one.
    front_attempts: Option<(u32, FailureCause)>,
    /// What a durable cell keeps; `None` for a cell that is not durable.
    #[cfg(feature = "storage")]
    durable: Option<Durable<C>>,
    /// What the chaos handle seam decided for the message about to be
    /// handled (see `chaos::registry`).
    #[cfg(feature = "chaos")]
    chaos: Option<Box<crate::chaos::registry::HandleFault>>,
}

impl<C: Cell> Body<C> {
    /// The rarely used parts, allocated now if this is their first use.
    fn rare(&mut self) -> &mut BodyRare<C> {
        self.rare.get_or_insert_with(|| {
            Box::new(BodyRare {
                factory: None,
                retry: None,
                front_attempts: None,
                #[cfg(feature = "storage")]
                durable: None,
                #[cfg(feature = "chaos")]
                chaos: None,
            })
        })
    }

    /// The factory, for a cell that has one.
    fn factory(&self) -> Option<&Factory<C>> {
        self.rare.as_deref()?.factory.as_ref()
    }

    /// What a durable cell keeps; `None` for a cell that is not durable.
    #[cfg(feature = "storage")]
    fn durable(&mut self) -> Option<&mut Durable<C>> {
        self.rare.as_deref_mut()?.durable.as_mut()
    }
}

/// What a durable cell keeps beyond any cell.
#[cfg(feature = "storage")]
struct Durable<C: Cell> {
    /// How the state is saved and restored.
    persist: Arc<dyn crate::store::durable::Persist<C>>,
    /// The cell's tree, once opened.
    store: Option<crate::store::Store>,
    /// Answers held until the state is flushed (`Durability::PerTurn`).
    held: crate::ask::held::HeldReplies,
    /// A state written this turn and not flushed yet (`Durability::PerTurn`).
    unflushed: bool,
}

/// One spawned cell.
pub(crate) struct CellInstance<C: Cell> {
    id: u64,
    path: CellPath,
    mailbox: Mailbox<C::Message>,
    /// What a replace, a regroup or a child needs; see [`Rare`].
    rare: OnceBox<Rare<C::Message>>,
    body: Mutex<Body<C>>,
    dispatcher: Arc<Dispatcher>,
    runtime: Arc<RuntimeShared>,
    me: Weak<CellInstance<C>>,
    /// Its supervisor and how it restarts it; `None` for a top-level cell
    /// (boxed: a top-level cell pays one pointer).
    supervision: Option<Box<Supervision>>,
    /// The metrics block of a cell of an observing runtime, allocated by
    /// its first use (a message, a failure, a restart, a refused send): an
    /// idle cell pays a null pointer. Never allocated when the runtime does
    /// not observe its cells.
    metrics: OnceBox<CellMetrics>,
    /// The cell's place in its group, if it is in one (boxed: few cells
    /// are in a group).
    group: Option<Box<Membership>>,
}

/// What few cells of a runtime use, allocated by first use: a cell that is
/// never replaced, asked to regroup or given children pays a null pointer
/// until it terminates (which marks the hand-over and the regroup slot
/// closed, and so allocates it). Any thread may allocate it; see
/// `sync/once_box.rs`.
struct Rare<M> {
    /// Where this cell's leftovers go if it is replaced.
    handover: Handover<M>,
    /// Work on the queued messages asked for by recomposition (see
    /// `Deliver::regroup`): `None` when none is pending. Taken by the run
    /// token holder at its next system check, or at termination.
    regroup: PendingRegroup<M>,
    /// This cell's own children: made by its first child's spawn, or at
    /// its own spawn for a declared supervisor.
    node: Mutex<Option<Arc<dyn NodeLink>>>,
}

impl<M: Send + 'static> Rare<M> {
    fn new() -> Self {
        Rare { handover: Handover::new(), regroup: PendingRegroup::new(), node: Mutex::new(None) }
    }
}

/// A supervised cell's ties to its supervisor.
struct Supervision {
    /// The supervisor node this cell reports to.
    parent: Option<Weak<dyn NodeLink>>,
    /// How it is restarted.
    supervised: Option<Supervised>,
    /// Set while a handler runs, for cells with a deadline only.
    handling: Option<Mutex<Option<Handling>>>,
}

/// A handler with a deadline, as the watchdog sees it.
#[derive(Clone, Copy)]
struct Handling {
    since: Instant,
    kind: &'static str,
    /// Whether the watchdog has reported the overrun.
    reported: bool,
}

/// What ends a turn early.
enum Exit {
    Stop(StopReason),
    /// Terminated for good by its supervisor, which needs no report.
    Retire(StopReason),
    Kill,
}

impl<C: Cell> CellInstance<C> {
    /// A cell with an empty mailbox; `held` for the successor of a replaced
    /// cell, which waits for its predecessor's leftovers.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: u64,
        path: CellPath,
        capacity: usize,
        held: bool,
        dispatcher: Arc<Dispatcher>,
        runtime: Arc<RuntimeShared>,
        parent: Option<Weak<dyn NodeLink>>,
        supervised: Option<Supervised>,
        group: Option<Arc<Group>>,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me| CellInstance {
            id,
            path,
            mailbox: Mailbox::with_lanes(capacity, C::LANES.clamp(1, MAX_LANES), held),
            rare: OnceBox::new(),
            body: Mutex::new(Body {
                incarnation: None,
                phase: Phase::Starting,
                slot: Weak::new(),
                rare: None,
                draining: false,
                reported_started: false,
                terminating: false,
                #[cfg(feature = "chaos")]
                chaos_copy: false,
            }),
            dispatcher,
            me: me.clone(),
            supervision: (parent.is_some() || supervised.is_some()).then(|| {
                Box::new(Supervision {
                    parent,
                    supervised,
                    handling: supervised.and_then(|s| s.deadline).map(|_| Mutex::new(None)),
                })
            }),
            metrics: OnceBox::new(),
            runtime,
            group: group.map(|group| Box::new(Membership::new(group))),
        })
    }

    /// Gives the instance its address and its value (or factory). Nothing
    /// runs until [`begin`](CellInstance::begin).
    pub(crate) fn install(&self, slot: &Arc<Slot<C::Message>>, origin: Origin<C>) {
        let mut body = self.body.lock();
        body.slot = Arc::downgrade(slot);
        match origin {
            Origin::Value(cell) => {
                let ctx = self.new_context(slot);
                body.incarnation = Some(Incarnation { cell, ctx });
            }
            Origin::Factory(factory) => body.rare().factory = Some(factory),
            Origin::Seeded(cell, factory) => {
                let ctx = self.new_context(slot);
                body.incarnation = Some(Incarnation { cell, ctx });
                body.rare().factory = Some(factory);
            }
            #[cfg(feature = "storage")]
            Origin::Durable(factory, persist) => {
                let rare = body.rare();
                rare.factory = Some(factory);
                rare.durable =
                    Some(Durable { persist, store: None, held: Default::default(), unflushed: false });
            }
        }
    }

    /// Makes the instance a declared supervisor before it starts: its
    /// node, with the spec's flags and static children.
    pub(crate) fn seed_node(&self, seed: NodeSeed) -> Arc<Node> {
        let node = self.make_node(Some(seed));
        *self.rare().node.lock() = Some(node.clone());
        node
    }

    /// The cell's own node, made now if this is its first child: for the
    /// cell's supervising calls (`Context::spawn`, `Context::supervise`, …).
    pub(crate) fn own_node(&self) -> Arc<Node> {
        let mut own = self.rare().node.lock();
        if let Some(node) = &*own {
            return node.clone().node();
        }
        let node = self.make_node(None);
        *own = Some(node.clone());
        node
    }

    fn make_node(&self, seed: Option<NodeSeed>) -> Arc<Node> {
        let owner: Weak<dyn SupervisedCell> = self.me.clone();
        Node::with_seed(owner, self.path.clone(), self.dispatcher.name.clone(), self.runtime.clone(), seed)
    }

    fn new_context(&self, slot: &Arc<Slot<C::Message>>) -> Context<C> {
        Context::new(Addr::from_slot(slot.clone()), self.runtime.clone(), self.me.clone())
    }

    /// Schedules the first turn, which runs `started` before any message.
    pub(crate) fn begin(&self) {
        if self.mailbox.state().notify() == Schedule::Enqueue {
            self.schedule();
        }
    }

    /// The cell did something the analysis window reads (a turn, a refused
    /// send): reports it to the window once per window, when observed.
    #[cold]
    fn note_active(&self) {
        #[cfg(feature = "observe")]
        if self.runtime.observes_cells() && self.mailbox.state().mark_active() {
            self.runtime.observer().active(self.id);
        }
    }

    /// The metrics block, allocated now if this is its first use. For a
    /// cell of an observing runtime only.
    fn metrics_block(&self) -> &CellMetrics {
        self.metrics.get_or_init(|| self.runtime.new_cell_metrics())
    }

    /// The metrics block if the runtime observes its cells (allocated now
    /// if this is its first use), else `None`.
    #[inline]
    fn observed_metrics(&self) -> Option<&CellMetrics> {
        match self.metrics.get() {
            Some(metrics) => Some(metrics),
            None if self.runtime.observes_cells() => Some(self.metrics_block()),
            None => None,
        }
    }

    fn schedule(&self) {
        if let Some(me) = self.me.upgrade() {
            self.dispatcher.schedule(me);
        }
    }

    fn failure(&self, hook: Hook, message_kind: Option<&'static str>, cause: FailureCause) -> Box<Failure> {
        if let FailureCause::Panic { .. } = &cause {
            if let Some(metrics) = self.observed_metrics() {
                metrics.panicked();
            }
        }
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
        #[cfg(feature = "storage")]
        if let Some(store) = err.source_error().and_then(|e| e.downcast_ref::<crate::store::StoreError>()) {
            return FailureCause::Storage(store.clone());
        }
        FailureCause::Error { text: err.full_text(), type_name: err.type_name() }
    }

    fn panic_cause(payload: Box<dyn Any + Send>, guard: &InCellGuard) -> FailureCause {
        let text = payload_text(&*payload);
        // A payload whose own `Drop` panics must not unwind into the worker.
        let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        FailureCause::Panic { payload: text, location: guard.take_location() }
    }

    /// Creates the incarnation (from the factory, unless the value was
    /// given) and runs `started`.
    fn start_incarnation(&self, body: &mut Body<C>, guard: &InCellGuard) -> Result<(), Box<Failure>> {
        let Incarnation { cell, ctx } = match body.incarnation {
            Some(ref mut incarnation) => incarnation,
            None => {
                let Some(slot) = body.slot.upgrade() else {
                    let cause =
                        FailureCause::Error { text: "the cell's address is gone".into(), type_name: None };
                    return Err(self.failure(Hook::Started, None, cause));
                };
                let cell = self.make_cell(body, guard)?;
                body.incarnation.insert(Incarnation { cell, ctx: self.new_context(&slot) })
            }
        };
        match catch_unwind(AssertUnwindSafe(|| cell.started(ctx))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(self.failure(Hook::Started, None, Self::error_cause(err))),
            Err(payload) => Err(self.failure(Hook::Started, None, Self::panic_cause(payload, guard))),
        }
    }

    /// A new value for the next incarnation: a durable cell's saved state,
    /// else the factory's.
    fn make_cell(&self, body: &mut Body<C>, guard: &InCellGuard) -> Result<C, Box<Failure>> {
        #[cfg(feature = "storage")]
        if let Some(cell) = self.restore(body, guard)? {
            return Ok(cell);
        }
        let Some(factory) = body.factory().cloned() else {
            let cause = FailureCause::Error { text: "the cell has no factory".into(), type_name: None };
            return Err(self.failure(Hook::Started, None, cause));
        };
        catch_unwind(AssertUnwindSafe(|| (factory.lock())(&self.path)))
            .map_err(|payload| self.failure(Hook::Started, None, Self::panic_cause(payload, guard)))
    }

    /// A durable cell rebuilt from its saved state; `None` when it is not
    /// durable or nothing was saved yet.
    #[cfg(feature = "storage")]
    fn restore(&self, body: &mut Body<C>, guard: &InCellGuard) -> Result<Option<C>, Box<Failure>> {
        use crate::store::durable::LoadError;
        let Some(durable) = body.durable() else { return Ok(None) };
        let persist = durable.persist.clone();
        let storage_failure = |err| self.failure(Hook::Started, None, FailureCause::Storage(err));
        let store = match &durable.store {
            Some(store) => store.clone(),
            None => {
                let store = self.runtime.store(&self.path).map_err(storage_failure)?;
                durable.store = Some(store.clone());
                store
            }
        };
        let quarantine = self.runtime.quarantine().map_err(storage_failure)?;
        // `restore` and `migrate` are user code.
        let loaded = catch_unwind(AssertUnwindSafe(|| persist.load(&store, &quarantine, &self.path)));
        match loaded {
            Ok(Ok(cell)) => Ok(cell),
            Ok(Err(LoadError::Store(err) | LoadError::Unreadable(err))) => Err(storage_failure(err)),
            Err(payload) => Err(self.failure(Hook::Started, None, Self::panic_cause(payload, guard))),
        }
    }

    /// After a message handled successfully: saves a durable cell's state,
    /// and flushes it as its durability says. `held` are the answers the
    /// handler sent, released once they may be.
    #[cfg(feature = "storage")]
    fn commit(
        &self,
        body: &mut Body<C>,
        held: crate::ask::held::HeldReplies,
    ) -> Result<(), crate::store::StoreError> {
        use crate::store::Durability;
        let durable = body.rare.as_deref_mut().and_then(|rare| rare.durable.as_mut());
        let (Some(durable), Some(inc)) = (durable, &body.incarnation) else {
            held.release();
            return Ok(());
        };
        let (persist, Some(store)) = (&durable.persist, &durable.store) else {
            held.release();
            return Ok(());
        };
        persist.save(&inc.cell, store)?;
        match persist.durability() {
            Durability::PerMessage => {
                store.flush()?;
                held.release();
            }
            Durability::PerTurn => {
                durable.held.append(held);
                durable.unflushed = true;
            }
            Durability::Periodic(every) => {
                held.release();
                if persist.mark_unflushed() {
                    let persist = persist.clone();
                    self.runtime.flush_after(every, &self.path, move || persist.clear_unflushed());
                }
            }
        }
        Ok(())
    }

    /// Ends a turn's run of messages: a durable cell's state is flushed and
    /// the answers held for it released (`Durability::PerTurn`). On failure
    /// the answers are dropped; the next incarnation reloads what was last
    /// flushed.
    #[cfg_attr(not(feature = "storage"), allow(clippy::unnecessary_wraps, unused_variables))]
    fn commit_turn(&self, body: &mut Body<C>) -> Result<(), StopReason> {
        #[cfg(feature = "storage")]
        if let Err(err) = self.release_held(body) {
            return Err(self.failed(self.failure(Hook::Handle, None, FailureCause::Storage(err))));
        }
        Ok(())
    }

    /// Flushes a durable cell's state and releases the answers held for it.
    /// On failure the answers are dropped: their asks resolve `Unanswered`.
    /// Inlined as far as the look that finds nothing to do, which is all
    /// a turn of a cell that is not durable pays.
    #[cfg(feature = "storage")]
    #[inline]
    fn release_held(&self, body: &mut Body<C>) -> Result<(), crate::store::StoreError> {
        match body.durable() {
            Some(durable) if durable.unflushed || !durable.held.is_empty() => Self::flush_held(durable),
            _ => Ok(()),
        }
    }

    /// [`release_held`](Self::release_held) once there is something to do.
    #[cfg(feature = "storage")]
    #[cold]
    #[inline(never)]
    fn flush_held(durable: &mut Durable<C>) -> Result<(), crate::store::StoreError> {
        durable.unflushed = false;
        let held = std::mem::take(&mut durable.held);
        if let Some(store) = &durable.store {
            store.flush()?;
        }
        held.release();
        Ok(())
    }

    /// Runs `handle` on one message, whose sender's deadline (if any) the
    /// handler reads from its context. On failure, returns the failure and
    /// the stop reason (recording it, unless the watchdog already did).
    fn call_handle(
        &self,
        body: &mut Body<C>,
        msg: C::Message,
        expires: Option<Instant>,
        kind: &'static str,
        guard: &InCellGuard,
    ) -> Result<(), StopReason> {
        let retained = C::retain(&msg);
        let attempts = body.rare.as_deref_mut().and_then(|rare| rare.front_attempts.take());
        let deadline = self.supervised().and_then(|s| s.deadline);
        let since = self.handling().map(|handling| {
            let since = Instant::now();
            *handling.lock() = Some(Handling { since, kind, reported: false });
            // After the record's lock is released: see `dormancy.rs`.
            self.runtime.handler_began();
            since
        });
        let Some(Incarnation { cell, ctx }) = body.incarnation.as_mut() else {
            unreachable!("a running cell has an incarnation")
        };
        #[cfg(feature = "storage")]
        let holding = body
            .rare
            .as_deref()
            .and_then(|rare| rare.durable.as_ref())
            .is_some_and(|d| d.persist.durability().holds_replies());
        #[cfg(feature = "storage")]
        if holding {
            crate::ask::held::begin();
        }
        ctx.deadline = expires;
        #[cfg(not(feature = "chaos"))]
        let result = catch_unwind(AssertUnwindSafe(|| cell.handle(ctx, msg)));
        // The fault is matched by value: it is dropped inside its arm, so a
        // message with none pays no call to drop an empty box.
        #[cfg(feature = "chaos")]
        let result = match body.rare.as_deref_mut().and_then(|rare| rare.chaos.take()) {
            None => catch_unwind(AssertUnwindSafe(|| cell.handle(ctx, msg))),
            Some(fault) => {
                let since = Instant::now();
                let result = fault.run(|| catch_unwind(AssertUnwindSafe(|| cell.handle(ctx, msg))));
                if fault.observe {
                    self.runtime.chaos().observed(&self.path, since.elapsed(), matches!(result, Ok(Ok(()))));
                }
                result
            }
        };
        ctx.deadline = None;
        // Answers sent by a handler that then failed are dropped with it.
        #[cfg(feature = "storage")]
        let held = if holding { crate::ask::held::end() } else { Default::default() };
        let mut overrun = None;
        if let (Some(deadline), Some(since), Some(handling)) = (deadline, since, self.handling()) {
            let reported = handling.lock().take().is_some_and(|h| h.reported);
            let elapsed = since.elapsed();
            if elapsed > deadline {
                overrun = Some((deadline, elapsed, reported));
            }
        }
        let (failure, recorded) = match result {
            Ok(Ok(())) => match overrun {
                #[cfg(feature = "storage")]
                None => match self.commit(body, held) {
                    Ok(()) => return Ok(()),
                    Err(err) => (self.failure(Hook::Handle, Some(kind), FailureCause::Storage(err)), false),
                },
                #[cfg(not(feature = "storage"))]
                None => return Ok(()),
                Some((deadline, elapsed, reported)) => (
                    self.failure(
                        Hook::Handle,
                        Some(kind),
                        FailureCause::DeadlineExceeded { deadline, elapsed },
                    ),
                    reported,
                ),
            },
            Ok(Err(err)) => (self.failure(Hook::Handle, Some(kind), Self::error_cause(err)), false),
            Err(payload) => {
                (self.failure(Hook::Handle, Some(kind), Self::panic_cause(payload, guard)), false)
            }
        };
        self.dispose_failed(body, retained, attempts, &failure);
        if recorded {
            Err(StopReason::Failed(failure))
        } else {
            Err(self.failed(failure))
        }
    }

    /// Decides what becomes of a message whose handling failed: kept for
    /// re-delivery, or dead-lettered.
    fn dispose_failed(
        &self,
        body: &mut Body<C>,
        retained: Option<C::Message>,
        attempts: Option<(u32, FailureCause)>,
        failure: &Failure,
    ) {
        let policy = self.supervised().and_then(|s| s.retry);
        let (done, poison) = match &attempts {
            Some((n, cause)) => (*n, cause.same_as(&failure.cause)),
            None => (0, false),
        };
        match (policy, retained) {
            (Some(policy), Some(msg)) if !poison && done < policy.attempts => {
                body.rare().retry = Some(Retry { msg, attempts: done + 1, cause: failure.cause.clone() });
            }
            (_, retained) => {
                let letter =
                    DeadLetter::new(failure.clone(), done, poison, retained.map(|m| Box::new(m) as _));
                self.runtime.dead_letter(letter);
            }
        }
    }

    /// Records a failure and turns it into the stop reason.
    fn failed(&self, failure: Box<Failure>) -> StopReason {
        self.runtime.record_failure(&failure);
        StopReason::Failed(failure)
    }

    fn node(&self) -> Option<Arc<dyn NodeLink>> {
        self.rare.get()?.node.lock().clone()
    }

    /// The rarely used parts, allocated now if this is their first use.
    fn rare(&self) -> &Rare<C::Message> {
        self.rare.get_or_init(|| Box::new(Rare::new()))
    }

    /// The supervisor node this cell reports to; `None` for top-level cells.
    #[inline]
    fn parent(&self) -> Option<&Weak<dyn NodeLink>> {
        self.supervision.as_deref()?.parent.as_ref()
    }

    /// How a supervised cell is restarted.
    #[inline]
    fn supervised(&self) -> Option<&Supervised> {
        self.supervision.as_deref()?.supervised.as_ref()
    }

    /// The handler record the deadline watchdog reads, for cells with a
    /// deadline only.
    #[inline]
    fn handling(&self) -> Option<&Mutex<Option<Handling>>> {
        self.supervision.as_deref()?.handling.as_ref()
    }

    /// Handles pending control requests; `Some` when one ends the turn.
    fn run_system(&self, body: &mut Body<C>) -> Option<Exit> {
        while let Some(msg) = self.mailbox.pop_system() {
            match msg {
                SystemMsg::Kill => return Some(Exit::Kill),
                SystemMsg::Retire => {
                    if let Phase::Suspended(reason) = &body.phase {
                        return Some(Exit::Retire(reason.clone()));
                    }
                }
                SystemMsg::Restart => {
                    if let Phase::Suspended(reason) = &body.phase {
                        if let Some(metrics) = self.observed_metrics() {
                            metrics.restarted();
                        }
                        self.runtime.cell_restarting(&self.path, std::any::type_name::<C>(), reason);
                        body.phase = Phase::Starting;
                    }
                }
                SystemMsg::Regroup => self.run_regroup(false),
                SystemMsg::Supervise => {
                    if let Some(node) = self.node() {
                        for outcome in node.process() {
                            self.apply(body, outcome);
                        }
                    }
                }
                SystemMsg::Stop(cause) => {
                    let reason = match cause {
                        StopCause::Requested => StopReason::Requested,
                        StopCause::Replaced => StopReason::Replaced,
                        StopCause::ParentStopped => StopReason::ParentStopped,
                        StopCause::Supervisor => StopReason::Shutdown,
                        StopCause::GroupRestart => StopReason::Restart,
                        StopCause::Kill => StopReason::Killed,
                    };
                    // The runtime's `stop` closed the mailbox: the cell
                    // ends for good, it is never restarted behind it.
                    let for_good = matches!(cause, StopCause::Supervisor | StopCause::Requested);
                    match body.phase {
                        Phase::Starting | Phase::Running => {
                            body.terminating = for_good;
                            self.begin_end(body, reason);
                        }
                        Phase::Ending(_) if cause == StopCause::Requested => body.terminating = true,
                        // Between incarnations: the restart, if one is
                        // pending, is withdrawn, and the exit reported again
                        // as final.
                        Phase::Suspended(_) if cause == StopCause::Requested => {
                            self.mailbox.take_system(SystemMsg::Restart);
                            return Some(Exit::Stop(reason));
                        }
                        // Told to restart, then to stop, before it ran: the
                        // stop is the supervisor's latest word. The restart
                        // is withdrawn and the exit reported again, which is
                        // what the supervisor now waits for.
                        Phase::Suspended(_) if self.mailbox.take_system(SystemMsg::Restart) => {
                            body.phase = Phase::Suspended(reason.clone());
                            self.report_exit(ChildExit { reason, started: false, kept: true });
                        }
                        // Already between incarnations (or ending): its exit
                        // is reported, or will be, once.
                        Phase::Suspended(_) | Phase::Ending(_) | Phase::Done => {}
                    }
                }
                SystemMsg::Drain => {
                    self.mailbox.close();
                    match body.phase {
                        Phase::Suspended(_) => return Some(Exit::Stop(StopReason::Shutdown)),
                        _ => body.draining = true,
                    }
                }
            }
        }
        None
    }

    /// Runs the pending regroup, if any (see `mailbox::PendingRegroup`).
    /// With `close`, no regroup is accepted afterwards (the cell terminates).
    fn run_regroup(&self, close: bool) {
        // Closing needs the slot (a later offer must be refused); running
        // a pending regroup finds it allocated by the offer.
        let rare = if close { Some(self.rare()) } else { self.rare.get() };
        if let Some(rare) = rare {
            rare.regroup.run(&self.mailbox, close);
        }
    }

    /// Acts on what the node decided.
    fn apply(&self, body: &mut Body<C>, outcome: Outcome) {
        match outcome {
            Outcome::StartedAll => {
                if matches!(body.phase, Phase::Running) && !body.reported_started {
                    body.reported_started = true;
                    self.report_started();
                }
            }
            Outcome::StartFailed(failure) => {
                if matches!(body.phase, Phase::Starting | Phase::Running) {
                    let reason = self.failed(failure);
                    self.begin_end(body, reason);
                }
            }
            Outcome::Escalate(escalation) => {
                if matches!(body.phase, Phase::Starting | Phase::Running) {
                    self.runtime.supervisor_escalating(std::any::type_name::<C>(), &escalation);
                    self.begin_end(body, StopReason::Escalated(escalation));
                }
            }
            Outcome::AutoShutdown => {
                if matches!(body.phase, Phase::Starting | Phase::Running) {
                    self.begin_end(body, StopReason::Shutdown);
                }
            }
        }
    }

    /// Starts ending the incarnation: no more user messages; the children
    /// stop first (see the module docs).
    fn begin_end(&self, body: &mut Body<C>, reason: StopReason) {
        self.mailbox.suspend();
        // What was handled before the end is acknowledged once flushed.
        #[cfg(feature = "storage")]
        if let Err(err) = self.release_held(body) {
            tracing::error!(cell = %self.path, %err, "could not flush the state; held answers dropped");
        }
        if let Some(inc) = body.incarnation.as_mut() {
            for timer in inc.ctx.timers.take().into_iter().flat_map(|timers| *timers) {
                timer.cancel();
            }
        }
        if let Some(node) = self.node() {
            node.begin_owner_end();
        }
        body.phase = Phase::Ending(reason);
    }

    /// Whether the supervisor may restart this cell in place after an
    /// incarnation that ended with `reason`.
    fn kept(&self, reason: &StopReason) -> bool {
        let Some(supervised) = self.supervised() else { return false };
        let parent_alive = self.parent().is_some_and(|p| p.strong_count() > 0);
        if !parent_alive || self.runtime.is_shutting_down() {
            return false;
        }
        match reason {
            StopReason::Replaced | StopReason::Ignored => false,
            // Only the supervisor's kill (`Shutdown::Kill`) ends an
            // incarnation this way; the runtime's kill terminates at once.
            StopReason::Killed => supervised.restart != Restart::Temporary,
            StopReason::Restart | StopReason::ParentStopped => supervised.restart != Restart::Temporary,
            StopReason::Failed(_) => supervised.restart != Restart::Temporary,
            // `terminate_child` is ruled out by the caller, a runtime
            // shutdown above: this is a child supervisor's auto-shutdown.
            StopReason::Requested | StopReason::Shutdown | StopReason::Escalated(_) => {
                supervised.restart == Restart::Permanent
            }
        }
    }

    /// Finishes an ending incarnation once its children have stopped: runs
    /// `stopped`, drops the value, then suspends (kept) or terminates.
    /// Returns whether the cell is done.
    fn finish_end(
        &self,
        body: &mut MutexGuard<'_, Body<C>>,
        reason: StopReason,
        guard: &InCellGuard,
    ) -> bool {
        if let Some(node) = self.node() {
            if !node.children_stopped() {
                return false;
            }
        }
        let started = body.reported_started;
        body.reported_started = false;
        if let Some(mut inc) = body.incarnation.take() {
            let Incarnation { cell, ctx } = &mut inc;
            // A kill (the supervisor's `Shutdown::Kill`) runs no hook, nor
            // does an ignored start: nothing ran.
            if !matches!(reason, StopReason::Killed | StopReason::Ignored) {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| cell.stopped(ctx, &reason))) {
                    let failure = self.failure(Hook::Stopped, None, Self::panic_cause(payload, guard));
                    self.runtime.record_failure(&failure);
                }
            }
            // The cell's own `Drop` is user code too.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(inc)));
        }
        if !body.terminating && self.kept(&reason) {
            body.phase = Phase::Suspended(reason.clone());
            self.report_exit(ChildExit { reason, started, kept: true });
            false
        } else {
            self.terminate(body, reason, started, true);
            true
        }
    }

    /// Ends the cell for good: closes and empties the mailbox, retires its
    /// children, dead-letters a message kept for re-delivery, tells
    /// watchers, reports.
    fn terminate(&self, body: &mut Body<C>, reason: StopReason, started: bool, report: bool) {
        self.run_regroup(true);
        // Closes the mailbox; what is left goes to a successor if this cell
        // was replaced. Dropping the rest resolves asks among it to `Unanswered`.
        let rare = self.rare();
        let undelivered = rare.handover.retire(&self.mailbox).len();
        if let Some(node) = rare.node.lock().take() {
            if matches!(reason, StopReason::Killed) {
                node.kill_all();
            } else {
                node.retire_all();
            }
        }
        if let Some(inc) = body.incarnation.take() {
            for timer in inc.ctx.timers.iter().flat_map(|timers| timers.iter()) {
                timer.cancel();
            }
            let _ = catch_unwind(AssertUnwindSafe(move || drop(inc)));
        }
        if let Some(retry) = body.rare.as_deref_mut().and_then(|rare| rare.retry.take()) {
            let failure = match &reason {
                StopReason::Failed(failure) => (**failure).clone(),
                _ => *self.failure(Hook::Handle, None, retry.cause),
            };
            let letter = DeadLetter::new(failure, retry.attempts - 1, false, Some(Box::new(retry.msg)));
            self.runtime.dead_letter(letter);
        }
        body.phase = Phase::Done;
        if let Some(rare) = body.rare.as_deref_mut() {
            rare.factory = None;
        }
        // DONE in the state word is what `is_terminated` reads. Blocked
        // senders were woken when `retire` closed the mailbox.
        self.mailbox.state().finish();
        self.runtime.cell_terminated(self.id, &self.path, std::any::type_name::<C>(), undelivered, &reason);
        let watchers = match reason {
            StopReason::Replaced => None,
            _ => body.slot.upgrade(),
        };
        let terminated =
            watchers.as_ref().map(|_| Terminated { path: self.path.clone(), reason: reason.clone() });
        if report {
            self.report_exit(ChildExit { reason, started, kept: false });
        }
        // Last: a watcher told of the termination finds its consequences
        // (the supervisor's records, an escalation at the root) in place.
        if let (Some(slot), Some(terminated)) = (watchers, terminated) {
            slot.watchers().end(terminated);
        }
    }

    fn report_started(&self) {
        match self.parent() {
            Some(parent) => {
                if let Some(node) = parent.upgrade() {
                    node.child_started(self.id);
                }
            }
            None => self.runtime.root_child_started(self.id),
        }
    }

    fn report_exit(&self, exit: ChildExit) {
        match self.parent() {
            Some(parent) => match parent.upgrade() {
                Some(node) => node.child_exited(self.id, exit),
                // The parent is gone: nobody will restart this cell.
                None if exit.kept => self.send_system(SystemMsg::Retire),
                None => {}
            },
            None => self.runtime.root_child_exited(self.id, &self.path, exit),
        }
    }

    /// How the incarnation asked to end, taken once.
    fn stop_request(body: &mut Body<C>) -> Option<StopReason> {
        body.incarnation.as_mut().and_then(|i| i.ctx.stop_requested.take())
    }

    /// Begins an incarnation: value, `started`, the re-delivered message.
    /// `Err` carries the start failure. An incarnation whose `started`
    /// ignored its start reports no start: it is about to end.
    fn begin_incarnation(&self, body: &mut Body<C>, guard: &InCellGuard) -> Result<(), Box<Failure>> {
        self.start_incarnation(body, guard)?;
        body.phase = Phase::Running;
        if body.incarnation.as_ref().is_some_and(|i| i.ctx.stop_requested == Some(StopReason::Ignored)) {
            return Ok(());
        }
        if let Some(retry) = body.rare.as_deref_mut().and_then(|rare| rare.retry.take()) {
            let Retry { msg, attempts, cause } = retry;
            self.mailbox.push_front(std::iter::once(msg));
            body.rare().front_attempts = Some((attempts, cause));
        }
        self.mailbox.resume();
        // A supervisor reports once its children have started.
        let node = self.node();
        match node {
            Some(node) if node.is_supervisor() => {
                node.begin_owner_start();
                for outcome in node.process() {
                    self.apply(body, outcome);
                }
            }
            _ => {
                body.reported_started = true;
                self.report_started();
            }
        }
        Ok(())
    }
}

impl<C: Cell> Runnable for CellInstance<C> {
    #[inline]
    fn run_turn(&self, budget: usize) -> TurnEnd {
        match &self.group {
            None => self.run_own_turn(budget),
            Some(membership) => membership.run_turn(
                || self.me.upgrade().map(|me| me as Arc<dyn Reschedule>),
                || self.run_own_turn(budget),
            ),
        }
    }
}

impl<C: Cell> Reschedule for CellInstance<C> {
    fn reschedule(self: Arc<Self>) {
        let dispatcher = self.dispatcher.clone();
        dispatcher.schedule(self);
    }
}

impl<C: Cell> CellInstance<C> {
    /// One turn, once the cell's group (if any) admitted it.
    fn run_own_turn(&self, budget: usize) -> TurnEnd {
        let state = self.mailbox.state();
        if state.start_turn() {
            self.note_active();
        }
        let mut body = self.body.lock();
        if body.phase == Phase::Done {
            // Terminated while it sat in a run queue.
            state.finish();
            return TurnEnd::Done;
        }
        #[cfg(feature = "chaos")]
        let _sender = self.chaos_turn();
        let guard = InCellGuard::enter(self.runtime.quiet_panics(), body.slot.as_ptr() as *const () as usize);
        let block = || self.metrics_block();
        let mut meter =
            self.runtime.observes_cells().then(|| TurnMeter::begin_lazy(&block, self.metrics.get(), self.id));
        let mut handled = 0_usize;
        loop {
            if let Some(exit) = self.run_system(&mut body) {
                let (reason, report) = match exit {
                    Exit::Kill => (StopReason::Killed, true),
                    Exit::Stop(reason) => (reason, true),
                    Exit::Retire(reason) => (reason, false),
                };
                let started = body.reported_started;
                self.terminate(&mut body, reason, started, report);
                return TurnEnd::Done;
            }
            match &body.phase {
                Phase::Starting => {
                    match self.begin_incarnation(&mut body, &guard) {
                        Err(failure) => {
                            let reason = self.failed(failure);
                            self.begin_end(&mut body, reason);
                        }
                        Ok(()) => {
                            if let Some(reason) = Self::stop_request(&mut body) {
                                self.begin_end(&mut body, reason);
                            }
                        }
                    }
                    continue;
                }
                Phase::Ending(reason) => {
                    let reason = reason.clone();
                    if self.finish_end(&mut body, reason, &guard) {
                        return TurnEnd::Done;
                    }
                    break;
                }
                Phase::Suspended(_) | Phase::Done => break,
                Phase::Running => {}
            }
            if body.draining && !self.mailbox.has_user_work() {
                self.begin_end(&mut body, StopReason::Shutdown);
                continue;
            }
            let next = if handled < budget { self.mailbox.pop_stamped() } else { None };
            let Some((msg, stamp)) = next else {
                // The turn's messages are done: what they changed is committed.
                match self.commit_turn(&mut body) {
                    Ok(()) => break,
                    Err(reason) => {
                        self.begin_end(&mut body, reason);
                        continue;
                    }
                }
            };
            let expires = stamp.as_deref().and_then(Stamp::deadline);
            if let Some(late_by) =
                expires.and_then(|deadline| Instant::now().checked_duration_since(deadline))
            {
                // Its sender stopped waiting: no work is wasted on it.
                handled += 1;
                self.expire(msg, late_by);
                continue;
            }
            if handled > 0 {
                // The turn goes on: whatever it scheduled so far should not
                // wait for the rest of it. Let another worker take it.
                worker::offload_next();
                if handled == budget / 2 {
                    // Half a budget's worth of room made: senders sleeping
                    // for it refill the mailbox while this turn goes on.
                    self.mailbox.wake_senders_mid_turn();
                }
            }
            handled += 1;
            let kind = C::message_kind(&msg);
            // The chaos handle seam: one relaxed load while no fault is
            // installed, and the message stays where it is.
            #[cfg(feature = "chaos")]
            let msg = if self.runtime.chaos().is_active() {
                let Some(msg) = self.chaos_decide(&mut body, msg, kind) else {
                    continue;
                };
                msg
            } else {
                msg
            };
            let timed = meter.as_mut().and_then(|meter| meter.taken(stamp, || self.mailbox.len()));
            let result = self.call_handle(&mut body, msg, expires, kind, &guard);
            if let Some(meter) = &mut meter {
                meter.done(timed, kind, result.is_ok());
            }
            if let Err(reason) = result {
                self.begin_end(&mut body, reason);
                continue;
            }
            if let Some(reason) = Self::stop_request(&mut body) {
                // `ignore` means something only in `started`.
                let reason = if reason == StopReason::Ignored { StopReason::Requested } else { reason };
                self.begin_end(&mut body, reason);
            }
        }
        drop(meter);
        drop(guard);
        drop(body);
        self.mailbox.end_turn()
    }
}

impl<C: Cell> CellInstance<C> {
    /// The priority lane of `msg`: always 0 for a cell type without lanes
    /// (decided at compile time).
    #[inline]
    fn lane_of(msg: &C::Message) -> usize {
        if C::LANES > 1 {
            C::lane(msg)
        } else {
            0
        }
    }

    /// Pushes a message into its lane and schedules the cell if the push
    /// took the run token; an observed cell also counts the edge from the
    /// sending cell, or a rejection as full.
    #[inline]
    fn push(&self, msg: C::Message, stamp: Option<Box<Stamp>>) -> Result<(), SendError<C::Message>> {
        #[cfg(feature = "chaos")]
        if self.runtime.chaos().is_active() {
            return self.chaos_push(msg, stamp);
        }
        let pushed = self.mailbox.push_to(Self::lane_of(&msg), msg, stamp);
        self.pushed(pushed)
    }

    /// After a push: the metrics, and the schedule if the push took the run
    /// token.
    #[inline]
    fn pushed(&self, pushed: Result<Schedule, SendError<C::Message>>) -> Result<(), SendError<C::Message>> {
        match &pushed {
            Ok(_) => {
                if self.metrics.get().is_some() || self.runtime.observes_cells() {
                    CellMetrics::accepted(self.id, &self.path);
                }
            }
            Err(err) if err.is_full() => {
                if let Some(metrics) = self.observed_metrics() {
                    // A send is counted once, at its first refusal.
                    if !crate::address::offering_again() {
                        metrics.rejected(self.mailbox.capacity());
                    }
                    self.note_active();
                }
            }
            Err(_) => {}
        }
        if pushed? == Schedule::Enqueue {
            self.schedule();
        }
        Ok(())
    }

    /// The chaos send seam, once a fault is installed: a push as the faults
    /// say.
    #[cfg(feature = "chaos")]
    #[cold]
    #[inline(never)]
    fn chaos_push(&self, msg: C::Message, stamp: Option<Box<Stamp>>) -> Result<(), SendError<C::Message>> {
        use crate::chaos::registry::SendVerdict;
        let kind = C::message_kind(&msg);
        let pushed = match self.runtime.chaos().on_send(&self.path, std::any::type_name::<C>(), kind) {
            SendVerdict::Deliver => self.mailbox.push_to(Self::lane_of(&msg), msg, stamp),
            SendVerdict::Full => Err(SendError::Full(msg)),
            SendVerdict::Drop(fault) => {
                self.chaos_drop(msg, fault);
                return Ok(());
            }
            SendVerdict::Delay(delay, fault) => {
                self.chaos_delay(msg, stamp, delay, fault);
                return Ok(());
            }
        };
        self.pushed(pushed)
    }

    /// Dead-letters a message a fault dropped. As for a failed message, the
    /// letter keeps the cell's retained copy, and the message itself is
    /// dropped (an ask among it resolves `Unanswered` at once).
    #[cfg(feature = "chaos")]
    fn chaos_drop(&self, msg: C::Message, fault: String) {
        let kind = C::message_kind(&msg);
        let retained = C::retain(&msg);
        drop(msg);
        let failure = self.failure(Hook::Handle, Some(kind), FailureCause::Injected { fault });
        let letter = DeadLetter::new(*failure, 0, false, retained.map(|m| Box::new(m) as _));
        self.runtime.dead_letter(letter);
    }

    /// Pushes `msg` after `delay`, on the timer thread; if the mailbox
    /// refuses it then (full, or the cell stopped), it is dead-lettered as
    /// dropped by the fault.
    #[cfg(feature = "chaos")]
    fn chaos_delay(&self, msg: C::Message, stamp: Option<Box<Stamp>>, delay: Duration, fault: String) {
        let cell = self.me.clone();
        let mut held = Some((msg, stamp));
        self.runtime.timers().call_after(delay, move || {
            let (msg, stamp) = held.take()?;
            let cell = cell.upgrade()?;
            match cell.mailbox.push_to(Self::lane_of(&msg), msg, stamp) {
                Ok(Schedule::Enqueue) => cell.schedule(),
                Ok(Schedule::Nothing) => {}
                Err(refused) => cell.chaos_drop(refused.into_inner(), format!("{fault}, then refused")),
            }
            None
        });
    }

    /// The chaos turn seam: while faults are installed, marks this thread
    /// as sending for this cell (edge targets) and stalls the worker if a
    /// fault says so. One relaxed load per turn when nothing is installed.
    #[cfg(feature = "chaos")]
    #[inline]
    fn chaos_turn(&self) -> Option<crate::chaos::SenderGuard> {
        if !self.runtime.chaos().is_active() {
            return None;
        }
        self.chaos_begin_turn()
    }

    #[cfg(feature = "chaos")]
    #[cold]
    #[inline(never)]
    fn chaos_begin_turn(&self) -> Option<crate::chaos::SenderGuard> {
        if let Some(stall) = self.runtime.chaos().on_turn(&self.path, std::any::type_name::<C>()) {
            crate::sync::thread::sleep(stall);
        }
        Some(crate::chaos::SenderGuard::enter(&self.path))
    }

    /// The chaos handle seam, once a fault is installed (the turn looks
    /// first, with one relaxed load): `None` when a fault dropped `msg` (it
    /// is dead-lettered); else the message, with what else was decided left
    /// in `body.chaos` for `call_handle`.
    #[cfg(feature = "chaos")]
    #[cold]
    #[inline(never)]
    fn chaos_decide(&self, body: &mut Body<C>, msg: C::Message, kind: &'static str) -> Option<C::Message> {
        use crate::chaos::registry::HandleVerdict;
        let mut copy = None;
        let is_copy = std::mem::take(&mut body.chaos_copy);
        let mut make_copy = || {
            copy = if is_copy { None } else { C::retain(&msg) };
            copy.is_some()
        };
        match self.runtime.chaos().on_handle(&self.path, std::any::type_name::<C>(), kind, &mut make_copy) {
            HandleVerdict::Handle(fault) => {
                // The copy goes first in the queue: it is handled next.
                if let Some(copy) = copy.filter(|_| fault.as_ref().is_some_and(|f| f.duplicate)) {
                    self.mailbox.push_front(std::iter::once(copy));
                    body.chaos_copy = true;
                }
                match (fault, body.rare.as_deref_mut()) {
                    (Some(fault), _) => body.rare().chaos = Some(fault),
                    (None, Some(rare)) => rare.chaos = None,
                    (None, None) => {}
                }
                Some(msg)
            }
            HandleVerdict::Drop(fault) => {
                self.chaos_drop(msg, fault);
                None
            }
        }
    }

    /// Dead-letters a message whose deadline passed `late_by` before its
    /// turn. Not a failure of the cell: supervision and signatures never
    /// see it.
    fn expire(&self, msg: C::Message, late_by: Duration) {
        if let Some(metrics) = self.observed_metrics() {
            metrics.expired();
        }
        let kind = C::message_kind(&msg);
        let failure = self.failure(Hook::Handle, Some(kind), FailureCause::Expired { late_by });
        self.runtime.dead_letter(DeadLetter::new(*failure, 0, false, Some(Box::new(msg))));
    }
}

impl<C: Cell> Deliver<C::Message> for CellInstance<C> {
    #[inline]
    fn try_deliver(&self, msg: C::Message) -> Result<(), SendError<C::Message>> {
        let stamp = self.observed_metrics().and_then(CellMetrics::stamp);
        self.push(msg, stamp)
    }

    fn try_deliver_until(&self, msg: C::Message, deadline: Instant) -> Result<(), SendError<C::Message>> {
        self.push(msg, Some(Stamp::with_deadline(deadline)))
    }

    fn may_take(&self, msg: &C::Message) -> bool {
        self.mailbox.may_take(Self::lane_of(msg))
    }

    fn wait_for_space(&self, msg: &C::Message, deadline: Instant) -> bool {
        self.mailbox.wait_for_space(C::lane(msg), deadline)
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &C::Message, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.mailbox.register_for_space(C::lane(msg), waiter, waker)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<C::Message>>) {
        // Blocked senders wake, see `Closed` here and retry through the slot.
        self.mailbox.close();
        match self.rare().handover.request(successor) {
            // `terminate` hands the leftovers over once the message in hand
            // (if any) is done.
            Ok(()) => self.send_system(SystemMsg::Stop(StopCause::Replaced)),
            // Already stopped: its leftovers were dropped and counted then.
            Err(successor) => successor.release(Vec::new()),
        }
    }

    fn regroup(&self, regroup: Regroup<C::Message>) -> Result<(), Regroup<C::Message>> {
        self.rare().regroup.offer(regroup)?;
        self.send_system(SystemMsg::Regroup);
        Ok(())
    }

    fn release(&self, moved: Vec<Envelope<C::Message>>) {
        match self.rare().handover.accept(moved, |moved| self.mailbox.release(moved)) {
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

    fn is_supervised(&self) -> bool {
        self.supervised().is_some()
    }

    fn note_shed(&self) {
        if let Some(metrics) = self.observed_metrics() {
            metrics.shed();
            self.note_active();
        }
    }
}

impl<C: Cell> CellControl for CellInstance<C> {
    fn id(&self) -> u64 {
        self.id
    }

    fn path(&self) -> &CellPath {
        &self.path
    }

    fn begin(&self) {
        CellInstance::begin(self);
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
        let mut body = self.body.lock();
        if body.phase == Phase::Done {
            self.mailbox.state().finish();
            return true;
        }
        let started = body.reported_started;
        self.terminate(&mut body, StopReason::Killed, started, true);
        true
    }

    fn refuse_sends(&self) {
        self.mailbox.close();
        if let Some(node) = self.node() {
            node.refuse_kept_sends();
        }
    }

    fn discard_queued(&self) -> usize {
        self.mailbox.close();
        self.mailbox.take_user().len()
    }

    fn abandon(&self) -> usize {
        self.send_system(SystemMsg::Kill);
        self.discard_queued()
    }

    fn as_supervised(self: Arc<Self>) -> Arc<dyn SupervisedCell> {
        self
    }

    fn restart_intensity(&self) -> Option<crate::supervise::RestartIntensity> {
        self.node().filter(|node| node.is_supervisor()).map(|node| node.intensity())
    }

    fn supervisor(&self) -> Option<Arc<Node>> {
        self.supervised()?;
        Some(self.parent()?.upgrade()?.node())
    }

    fn report_overrun(&self, now: Instant) -> (bool, Option<Box<Failure>>) {
        let (Some(deadline), Some(handling)) = (self.supervised().and_then(|s| s.deadline), self.handling())
        else {
            return (false, None);
        };
        let mut handling = handling.lock();
        let Some(current) = handling.as_mut() else { return (false, None) };
        let elapsed = now.saturating_duration_since(current.since);
        if current.reported || elapsed <= deadline {
            return (true, None);
        }
        current.reported = true;
        let kind = current.kind;
        drop(handling);
        let failure =
            self.failure(Hook::Handle, Some(kind), FailureCause::DeadlineExceeded { deadline, elapsed });
        (true, Some(failure))
    }

    fn cell_kind(&self) -> &'static str {
        std::any::type_name::<C>()
    }

    fn metrics(&self) -> Option<&CellMetrics> {
        self.metrics.get()
    }

    #[cfg(feature = "observe")]
    fn metrics_or_init(&self) -> &CellMetrics {
        self.metrics_block()
    }

    #[cfg(feature = "observe")]
    fn is_observed(&self) -> bool {
        self.runtime.observes_cells()
    }

    fn mailbox_len(&self) -> (usize, usize) {
        (self.mailbox.len(), self.mailbox.capacity())
    }

    fn take_active(&self) -> bool {
        self.mailbox.state().take_active()
    }
}

/// The mailbox's stop request for a supervisor's stop.
fn stop_cause(cause: ChildStop) -> StopCause {
    match cause {
        ChildStop::Requested => StopCause::Requested,
        ChildStop::ParentStopped => StopCause::ParentStopped,
        ChildStop::Supervisor => StopCause::Supervisor,
        ChildStop::GroupRestart => StopCause::GroupRestart,
        ChildStop::Kill => StopCause::Kill,
    }
}

impl<C: Cell> SupervisedCell for CellInstance<C> {
    fn id(&self) -> u64 {
        self.id
    }

    fn path(&self) -> &CellPath {
        &self.path
    }

    fn cell_kind(&self) -> &'static str {
        std::any::type_name::<C>()
    }

    fn begin(&self) {
        CellInstance::begin(self);
    }

    fn stop(&self, cause: ChildStop) {
        CellControl::send_system(self, SystemMsg::Stop(stop_cause(cause)));
    }

    fn kill(&self) {
        CellControl::send_system(self, SystemMsg::Kill);
    }

    fn restart(&self) {
        CellControl::send_system(self, SystemMsg::Restart);
    }

    fn retire(&self) {
        CellControl::send_system(self, SystemMsg::Retire);
    }

    fn refuse_sends(&self) {
        CellControl::refuse_sends(self);
    }

    fn abandon(&self) -> usize {
        CellControl::abandon(self)
    }

    fn supervise(&self) {
        CellControl::send_system(self, SystemMsg::Supervise);
    }

    fn node(&self) -> Option<Arc<Node>> {
        CellInstance::node(self).map(NodeLink::node)
    }

    fn supervisor(&self) -> Option<Arc<Node>> {
        CellControl::supervisor(self)
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
