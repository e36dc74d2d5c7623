//! [`Context`]: what a cell can do besides handling its message, and
//! [`CellConfig`]: how to spawn it.

use std::fmt;
use std::time::Duration;

use crate::address::Addr;
use crate::path::CellPath;
use crate::runtime::{CellControl, RuntimeShared, SpawnError};
use crate::sync::Arc;
use crate::timer::TimerHandle;

use super::Cell;

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
    /// no control characters, not starting with `#` (unnamed cells are
    /// called `#<id>`). Checked at spawn.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Capacity of the user mailbox, in messages. Must be at least 1:
    /// capacity 0 is refused at spawn with [`SpawnError::ZeroCapacity`]
    /// (a cell is scheduled, so a rendezvous would block its sender on a
    /// worker it does not control). All slots are allocated at spawn.
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
}

/// A cell's view of the runtime, passed to every hook.
///
/// Gives the cell its own address and path, and lets it spawn children, stop
/// itself and schedule messages to itself.
pub struct Context<C: Cell> {
    pub(crate) addr: Addr<C::Message>,
    pub(crate) runtime: Arc<RuntimeShared>,
    pub(crate) dispatcher: Arc<str>,
    pub(crate) stop_requested: bool,
    pub(crate) children: Vec<Arc<dyn CellControl>>,
    pub(crate) timers: Vec<TimerHandle>,
}

impl<C: Cell> Context<C> {
    pub(crate) fn new(addr: Addr<C::Message>, runtime: Arc<RuntimeShared>, dispatcher: Arc<str>) -> Self {
        Context { addr, runtime, dispatcher, stop_requested: false, children: Vec::new(), timers: Vec::new() }
    }

    /// The cell's own address.
    pub fn addr(&self) -> &Addr<C::Message> {
        &self.addr
    }

    /// The cell's path in the tree.
    pub fn path(&self) -> &CellPath {
        self.addr.path()
    }

    /// Stops the cell once the current hook returns. Messages still queued
    /// are not handled: they are counted undelivered and asks among them
    /// resolve to [`AskError::Unanswered`](crate::AskError::Unanswered).
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }

    /// Spawns a child cell with default options. Children stop when their
    /// parent stops, before its `stopped` hook runs.
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
        self.children.retain(|child| !child.is_terminated());
        let (addr, control) =
            self.runtime.spawn_cell(Some((self.addr.path(), &self.dispatcher)), config, cell)?;
        self.children.push(control);
        Ok(addr)
    }

    /// Delivers `msg` to this cell after `delay`.
    ///
    /// If the mailbox is full then, delivery is retried every millisecond
    /// until it succeeds or the cell stops: the message is not dropped. The
    /// timer is cancelled when the cell stops.
    pub fn send_after(&mut self, delay: Duration, msg: C::Message) -> TimerHandle {
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
        let handle = self.runtime.timers().send_interval(self.addr.downgrade(), period, make);
        self.keep_timer(handle.clone());
        handle
    }

    fn keep_timer(&mut self, handle: TimerHandle) {
        self.timers.retain(|t| !t.is_finished());
        self.timers.push(handle);
    }
}

impl<C: Cell> fmt::Debug for Context<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("path", self.addr.path())
            .field("dispatcher", &self.dispatcher)
            .field("children", &self.children.len())
            .finish()
    }
}
