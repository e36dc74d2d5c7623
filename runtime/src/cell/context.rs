//! [`Context`]: what a cell can do besides handling its message, and
//! [`CellConfig`]: how to spawn it.

use std::fmt;
use std::time::{Duration, Instant};

use crate::address::Addr;
use crate::path::CellPath;
use crate::runtime::{RuntimeShared, SpawnError};
use crate::supervise::{ChildInfo, ChildSpec, SpecError, StartError, Strategy, SupervisorSpec, Terminated};
use crate::sync::{Arc, Weak};
use crate::timer::TimerHandle;

use super::instance::CellInstance;
use super::{Cell, StopReason};

/// Options for spawning a cell. Every field has a default.
///
/// # Examples
///
/// ```
/// use cellrt::CellConfig;
///
/// let config = CellConfig::named("parser").capacity(256).dispatcher("io");
/// # let _ = config;
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CellConfig {
    pub(crate) name: Option<String>,
    pub(crate) capacity: Option<usize>,
    pub(crate) dispatcher: Option<String>,
    pub(crate) group: Option<String>,
}

impl CellConfig {
    /// Defaults: an automatic name (`#<id>`), the runtime's default capacity,
    /// the parent's dispatcher (the default one for top-level cells).
    pub fn new() -> Self {
        CellConfig::default()
    }

    /// Defaults with the given name.
    pub fn named(name: impl Into<String>) -> Self {
        CellConfig::new().name(name)
    }

    /// The cell's name, unique among its siblings: 1 to 255 bytes, no `/`,
    /// whitespace or control characters, not starting with `#` (unnamed
    /// cells are called `#<id>`); see [`NameError`](crate::NameError) for
    /// the grammar. Checked at spawn, refused with
    /// [`SpawnError::InvalidName`](crate::SpawnError::InvalidName).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Capacity of the user mailbox, in messages (per priority lane). Must
    /// be at least 1: capacity 0 is refused at spawn with
    /// [`SpawnError::ZeroCapacity`] (a cell is scheduled, so a rendezvous
    /// would block its sender on a worker it does not control). Any larger
    /// value up to `usize::MAX` is valid: the capacity is a bound, not an
    /// allocation. The mailbox allocates as it fills (blocks of 31
    /// messages) and frees as it drains, so a capacity of `1 << 30` costs
    /// nothing until messages queue up.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The dispatcher (worker pool) the cell runs on, by name. See
    /// [`Builder::dispatcher`](crate::Builder::dispatcher).
    pub fn dispatcher(mut self, name: impl Into<String>) -> Self {
        self.dispatcher = Some(name.into());
        self
    }

    /// The group (concurrency limit) the cell belongs to, by name. See
    /// [`Builder::group`](crate::Builder::group). An unknown name is refused
    /// at spawn with [`SpawnError::UnknownGroup`].
    ///
    /// Membership is explicit: unlike the dispatcher, a cell's children do
    /// not inherit its group. A supervisor's children join a group through
    /// the config of their own spec.
    pub fn group(mut self, name: impl Into<String>) -> Self {
        self.group = Some(name.into());
        self
    }
}

/// A cell's view of the runtime, passed to every hook.
///
/// Gives the cell its own address and path, and lets it spawn children, stop
/// itself and schedule messages to itself.
pub struct Context<C: Cell> {
    pub(crate) addr: Addr<C::Message>,
    pub(crate) runtime: Arc<RuntimeShared>,
    /// How the cell asked its incarnation to end, if it did.
    pub(crate) stop_requested: Option<StopReason>,
    /// The timers the cell set and may still cancel (boxed, allocated by
    /// the first timer: most cells set none).
    #[allow(clippy::box_collection, reason = "a cell without timers pays one word, not a `Vec`'s three")]
    pub(crate) timers: Option<Box<Vec<TimerHandle>>>,
    /// The instance this context belongs to.
    host: Weak<CellInstance<C>>,
    /// The cell's tree, once asked for (boxed: most cells never ask).
    #[cfg(feature = "storage")]
    store: Option<Box<crate::store::Store>>,
    /// The deadline of the message being handled, if its sender gave one.
    pub(crate) deadline: Option<Instant>,
}

impl<C: Cell> Context<C> {
    pub(crate) fn new(
        addr: Addr<C::Message>,
        runtime: Arc<RuntimeShared>,
        host: Weak<CellInstance<C>>,
    ) -> Self {
        Context {
            addr,
            runtime,
            stop_requested: None,
            timers: None,
            host,
            #[cfg(feature = "storage")]
            store: None,
            deadline: None,
        }
    }

    fn host(&self) -> Result<Arc<CellInstance<C>>, SpawnError> {
        self.host.upgrade().ok_or(SpawnError::ShutDown)
    }

    /// The cell's own address.
    pub fn addr(&self) -> &Addr<C::Message> {
        &self.addr
    }

    /// The cell's path in the tree.
    pub fn path(&self) -> &CellPath {
        self.addr.path()
    }

    /// The deadline of the message being handled, if its sender gave one
    /// ([`Addr::ask_within`], [`Addr::try_send_by`]): past it, the sender
    /// no longer waits for the result. A message whose deadline passed
    /// before its turn is not handled at all (it is dead-lettered as
    /// expired), so a handler sees only deadlines still ahead when it
    /// starts. Pass it on to the cells it asks with [`Addr::try_send_by`].
    /// `None` in `started` and `stopped`, for messages without one, and for
    /// a message re-delivered after a restart. A message moved to a
    /// replacement keeps its deadline.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The cell's own storage tree, named by its path: it outlives the
    /// cell, its restarts and the process. See [`Store`](crate::Store).
    ///
    /// # Errors
    ///
    /// [`StoreError::Disabled`](crate::StoreError::Disabled) when the
    /// runtime has no storage; I/O and engine errors.
    #[cfg(feature = "storage")]
    pub fn store(&mut self) -> Result<crate::store::Store, crate::store::StoreError> {
        if let Some(store) = &self.store {
            return Ok((**store).clone());
        }
        let store = self.runtime.store(self.addr.path())?;
        self.store = Some(Box::new(store.clone()));
        Ok(store)
    }

    /// Ends this incarnation once the current hook returns (a normal exit,
    /// [`StopReason::Requested`](crate::StopReason::Requested)).
    ///
    /// A cell spawned from a value stops for good: messages still queued are
    /// not handled, they are counted undelivered, and asks among them
    /// resolve to [`AskError::Unanswered`](crate::AskError::Unanswered). A
    /// supervised cell is restarted if its restart kind says so (a permanent
    /// child is), and then handles what is queued.
    pub fn stop(&mut self) {
        self.stop_requested = Some(StopReason::Requested);
    }

    /// Ends this incarnation once the current hook returns, with
    /// [`StopReason::Shutdown`](crate::StopReason::Shutdown): a normal exit,
    /// as OTP's `{stop, shutdown, State}`. A
    /// [`Restart::Transient`](crate::Restart::Transient) child is not
    /// restarted (its supervisor keeps its spec, stopped); a
    /// [`Restart::Permanent`](crate::Restart::Permanent) one is. An abnormal
    /// exit, which a transient child is restarted after, is a handler that
    /// returns an error or panics.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, ChildSpec, ChildState, Context, Restart, Runtime, StopReason, SupervisorSpec};
    ///
    /// /// Runs one job, then is done.
    /// struct Job;
    ///
    /// impl Cell for Job {
    ///     type Message = ();
    ///     fn handle(&mut self, ctx: &mut Context<Self>, _: ()) -> Result<(), CellError> {
    ///         ctx.shutdown();
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let spec = SupervisorSpec::new("jobs").child(ChildSpec::new("job", || Job).restart(Restart::Transient));
    /// let jobs = runtime.start_supervisor(spec, Duration::from_secs(5))?;
    /// let job = jobs.child::<()>("job").unwrap();
    /// let done = runtime.watch(&job);
    /// job.send(())?;
    /// assert_eq!(done.wait(Duration::from_secs(5))?.reason, StopReason::Shutdown);
    /// assert_eq!(jobs.which_children()[0].state, ChildState::Stopped);
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn shutdown(&mut self) {
        self.stop_requested = Some(StopReason::Shutdown);
    }

    /// Says, in [`Cell::started`](crate::Cell::started), that there is
    /// nothing to run here (OTP's `ignore` from a child's start): once
    /// `started` returns, the cell ends without its `stopped` hook, with
    /// [`StopReason::Ignored`](crate::StopReason::Ignored), and its mailbox
    /// refuses sends.
    ///
    /// Its supervisor keeps its spec and counts it as not running
    /// ([`ChildState::Stopped`](crate::ChildState::Stopped)); its start
    /// counts as done, so the supervisor's start goes on with the next
    /// child. [`Supervisor::restart_child`](crate::Supervisor::restart_child)
    /// tries it again, behind the same address. A pool drops it:
    /// [`Supervisor::start_pool_child`](crate::Supervisor::start_pool_child)
    /// returns [`StartError::Ignored`](crate::StartError::Ignored).
    ///
    /// Called elsewhere than in `started`, it ends the incarnation as
    /// [`stop`](Context::stop) does.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, ChildSpec, ChildState, Context, Runtime, SupervisorSpec};
    ///
    /// /// Runs only where a device is present.
    /// struct Sensor { present: bool }
    ///
    /// impl Cell for Sensor {
    ///     type Message = ();
    ///     fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
    ///         if !self.present {
    ///             ctx.ignore();
    ///         }
    ///         Ok(())
    ///     }
    ///     fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let spec = SupervisorSpec::new("board").child(ChildSpec::new("sensor", || Sensor { present: false }));
    /// let board = runtime.start_supervisor(spec, Duration::from_secs(5))?;
    /// assert_eq!(board.which_children()[0].state, ChildState::Stopped);
    /// assert_eq!(board.count_children().active, 0);
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ignore(&mut self) {
        self.stop_requested = Some(StopReason::Ignored);
    }

    /// Spawns a temporary child cell with default options: never restarted.
    /// Children stop when their parent's incarnation ends, in reverse start
    /// order, each waited for, before the parent's `stopped` hook runs.
    pub fn spawn<D: Cell>(&mut self, cell: D) -> Result<Addr<D::Message>, SpawnError> {
        self.spawn_with(CellConfig::new(), cell)
    }

    /// Spawns a child cell. Without a dispatcher in `config`, the child runs
    /// on its parent's dispatcher.
    pub fn spawn_with<D: Cell>(
        &mut self,
        config: CellConfig,
        cell: D,
    ) -> Result<Addr<D::Message>, SpawnError> {
        self.host()?.own_node().spawn_value(config, cell)
    }

    /// Makes this cell the supervisor of its children: `spec`'s strategy,
    /// intensity, backoff and auto-shutdown apply to them, and its children
    /// are started now, in order, without waiting (a failed start is in
    /// [`Supervisor`](crate::Supervisor)-style history and the child is
    /// dropped). `spec`'s name is not used. Children added this way belong
    /// to this incarnation: they stop when it ends and are not restarted
    /// with the next one, which starts its own (typically from `started`).
    ///
    /// # Errors
    ///
    /// The first invalid flag or child, or a spawn the runtime refused.
    /// [`Strategy::Pool`] is refused: a cell adds children by spec.
    pub fn supervise(&mut self, spec: SupervisorSpec) -> Result<(), StartError> {
        spec.validate()?;
        if spec.flags.strategy == Strategy::Pool {
            return Err(StartError::Spec(SpecError::WrongStrategy { strategy: Strategy::Pool }));
        }
        let node = self.host()?.own_node();
        node.set_flags(spec.flags);
        for child in spec.children {
            node.start_child_now(child)?;
        }
        Ok(())
    }

    /// Starts a child from a spec, supervised by this cell (see
    /// [`supervise`](Context::supervise)); returns at once, without waiting
    /// for its `started`. Find its address with [`child`](Context::child).
    ///
    /// # Errors
    ///
    /// An invalid spec, a duplicate id, or a spawn the runtime refused.
    pub fn start_child(&mut self, spec: ChildSpec) -> Result<(), StartError> {
        self.host()?.own_node().start_child_now(spec).map(drop)
    }

    /// The address of this cell's child `id`, if it handles `M`.
    pub fn child<M: Send + 'static>(&self, id: &str) -> Option<Addr<M>> {
        let node = self.host().ok()?.own_node();
        node.child_addr(id)?.downcast_ref::<Addr<M>>().cloned()
    }

    /// This cell's children, with their state and restart count.
    pub fn which_children(&self) -> Vec<ChildInfo> {
        self.host().map(|h| h.own_node().which_children()).unwrap_or_default()
    }

    /// Delivers `map(terminated)` to this cell once the cell behind `addr`
    /// stops for good (at once if it already has). A full mailbox is retried
    /// every millisecond: the notice is not dropped.
    pub fn watch<N: Send + 'static>(
        &mut self,
        addr: &Addr<N>,
        map: impl FnOnce(Terminated) -> C::Message + Send + 'static,
    ) {
        let me = self.addr.downgrade();
        let runtime = Arc::downgrade(&self.runtime);
        addr.slot().watchers().add(Box::new(move |terminated| {
            if let Some(runtime) = runtime.upgrade() {
                runtime.timers().send_after(me, Duration::ZERO, map(terminated.clone()));
            }
        }));
    }

    /// Delivers `msg` to this cell after `delay`.
    ///
    /// If the mailbox is full then, delivery is retried every millisecond
    /// until it succeeds or the cell stops: the message is not dropped. The
    /// timer is cancelled when the cell stops.
    pub fn send_after(&mut self, delay: Duration, msg: C::Message) -> TimerHandle {
        #[cfg(feature = "chaos")]
        let delay = delay.saturating_add(self.chaos_skew(Some(C::message_kind(&msg))));
        let handle = self.runtime.timers().send_after(self.addr.downgrade(), delay, msg);
        self.keep_timer(handle.clone());
        handle
    }

    /// Delivers `make()` to this cell every `period`, first after one period.
    ///
    /// A tick that finds the mailbox full is skipped (and the message `make`
    /// produced for it dropped): ticks do not pile up behind a slow cell.
    /// Missed ticks are not made up. Cancelled when the cell stops.
    ///
    /// A zero `period` is treated as one millisecond.
    pub fn send_interval(
        &mut self,
        period: Duration,
        make: impl FnMut() -> C::Message + Send + 'static,
    ) -> TimerHandle {
        #[cfg(feature = "chaos")]
        let period = period.saturating_add(self.chaos_skew(None));
        let handle = self.runtime.timers().send_interval(self.addr.downgrade(), period, make);
        self.keep_timer(handle.clone());
        handle
    }

    /// The chaos timer seam: how much later a timer set now fires (zero,
    /// after one relaxed load, when no fault is installed).
    #[cfg(feature = "chaos")]
    fn chaos_skew(&self, kind: Option<&str>) -> Duration {
        let chaos = self.runtime.chaos();
        if !chaos.is_active() {
            return Duration::ZERO;
        }
        chaos.on_timer(self.addr.path(), std::any::type_name::<C>(), kind)
    }

    fn keep_timer(&mut self, handle: TimerHandle) {
        let timers = self.timers.get_or_insert_with(Box::default);
        timers.retain(|t| !t.is_finished());
        timers.push(handle);
    }
}

impl<C: Cell> fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("path", self.addr.path()).finish()
    }
}
