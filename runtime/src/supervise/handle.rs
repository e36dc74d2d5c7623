//! [`Supervisor`]: a handle on a running supervisor.

use std::any::{Any, TypeId};
use std::fmt;
use std::time::{Duration, Instant};

use crate::address::Addr;
use crate::ask::{self, AskError, Pending};
use crate::cell::StopReason;
use crate::path::CellPath;
use crate::sync::Arc;

use super::child::{ChildStop, NodeLink};
use super::error::{ChildError, StartError, StopError};
use super::info::{ChildCounts, ChildInfo, RestartIntensity, SupervisionEvent};
use super::node::{Command, Node};
use super::spec::ChildSpec;
use super::start::SupervisorMsg;
use super::watch::Terminated;

/// A handle on a running supervisor: look up its children, read its
/// history, start and stop children.
///
/// The operations of OTP's `supervisor` module, on a handle that stays
/// valid across the supervisor's restarts: its [`path`](Supervisor::path),
/// [`which_children`](Supervisor::which_children),
/// [`count_children`](Supervisor::count_children),
/// [`start_child`](Supervisor::start_child),
/// [`terminate_child`](Supervisor::terminate_child),
/// [`restart_child`](Supervisor::restart_child),
/// [`delete_child`](Supervisor::delete_child), a [`watch`](Supervisor::watch),
/// and [`stop`](Supervisor::stop) for the supervisor itself.
///
/// Reads (`child`, `which_children`, `count_children`, `history`) answer at
/// once. Requests (`start_child`, `terminate_child`, …) are processed by the
/// supervisor in its turn, in order with the exits of its children, and
/// waited for up to `timeout`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, ChildSpec, ChildState, Context, Runtime, SupervisorSpec};
///
/// struct Echo;
/// impl Cell for Echo {
///     type Message = String;
///     fn handle(&mut self, _: &mut Context<Self>, _: String) -> Result<(), CellError> {
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let sup = runtime.start_supervisor(SupervisorSpec::new("sup"), Duration::from_secs(5))?;
/// sup.start_child(ChildSpec::new("echo", || Echo), Duration::from_secs(5))?;
/// let children = sup.which_children();
/// assert_eq!(children[0].id, "echo");
/// assert_eq!(children[0].state, ChildState::Running);
/// sup.child::<String>("echo").unwrap().send("hi".into())?;
/// runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Supervisor {
    addr: Addr<SupervisorMsg>,
    node: Arc<Node>,
}

impl Supervisor {
    pub(crate) fn new(addr: Addr<SupervisorMsg>, node: Arc<Node>) -> Self {
        Supervisor { addr, node }
    }

    /// The supervisor's path.
    pub fn path(&self) -> &CellPath {
        self.addr.path()
    }

    /// The address of child `id`, if it exists and handles `M`. The address
    /// stays valid across the child's restarts.
    pub fn child<M: Send + 'static>(&self, id: &str) -> Option<Addr<M>> {
        self.node.child_addr(id).and_then(|addr| downcast_addr(&*addr))
    }

    /// The child `id`, if it is a supervisor.
    pub fn supervisor(&self, id: &str) -> Option<Supervisor> {
        let addr = self.child::<SupervisorMsg>(id)?;
        let node = self.node.child_handle(id)?.node()?;
        Some(Supervisor { addr, node })
    }

    /// Every child, in start order, with its state and restart count.
    pub fn which_children(&self) -> Vec<ChildInfo> {
        self.node.which_children()
    }

    /// Child counts.
    pub fn count_children(&self) -> ChildCounts {
        self.node.count_children()
    }

    /// The restart intensity as of now: the restarts its sliding window
    /// counts and how many more it allows before it gives up. A supervisor
    /// restarted by its parent begins with an empty window.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Runtime, SupervisorSpec};
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let spec = SupervisorSpec::new("sup").intensity(3, Duration::from_secs(10));
    /// let sup = runtime.start_supervisor(spec, Duration::from_secs(5))?;
    /// let intensity = sup.intensity();
    /// assert_eq!((intensity.restarts, intensity.remaining, intensity.max_restarts), (0, 3, 3));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn intensity(&self) -> RestartIntensity {
        self.node.intensity()
    }

    /// The latest supervision events (up to 256), oldest first: exits,
    /// restarts, failed starts, abandoned children, giving up.
    pub fn history(&self) -> Vec<SupervisionEvent> {
        self.node.history()
    }

    /// Adds a child and starts it, waiting for its `started` hook.
    ///
    /// # Errors
    ///
    /// [`StartError::Spec`] for an invalid spec or a duplicate id,
    /// [`StartError::ChildFailed`] when it failed to start (it is not
    /// added), `Timeout`, or `SupervisorStopping`.
    pub fn start_child(&self, spec: ChildSpec, timeout: Duration) -> Result<(), StartError> {
        let (reply, pending) = ask::channel();
        self.node.command(Command::StartChild { spec, reply });
        pending.wait(timeout)?.map(drop)
    }

    /// Starts one more child of a [`Strategy::Pool`](crate::Strategy::Pool)
    /// supervisor from its template; returns its address.
    ///
    /// # Errors
    ///
    /// As [`start_child`](Supervisor::start_child); `Spec(WrongStrategy)`
    /// when the supervisor is not a pool, `MessageType` (and no child is
    /// started) when the template does not handle `M`.
    pub fn start_pool_child<M: Send + 'static>(&self, timeout: Duration) -> Result<Addr<M>, StartError> {
        let (reply, pending) = ask::channel();
        let message = (TypeId::of::<M>(), std::any::type_name::<M>());
        self.node.command(Command::StartPoolChild { message, reply });
        let addr = pending.wait(timeout)??;
        // The node checked the template's message type before starting it.
        downcast_addr(&*addr).ok_or(StartError::MessageType { expected: message.1, found: "another type" })
    }

    /// Stops child `id` (its shutdown rule applies) and keeps its spec;
    /// [`restart_child`](Supervisor::restart_child) starts it again. Pool
    /// and temporary children are forgotten.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Timeout` or `SupervisorStopping`.
    pub fn terminate_child(&self, id: &str, timeout: Duration) -> Result<(), ChildError> {
        self.request(timeout, |reply| Command::TerminateChild { id: id.to_owned(), reply })
    }

    /// Starts a stopped child again, behind the same address, and waits for
    /// its `started` hook.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Running` if it is not stopped, `StartFailed` (it stays
    /// stopped), `Timeout` or `SupervisorStopping`.
    pub fn restart_child(&self, id: &str, timeout: Duration) -> Result<(), ChildError> {
        self.request(timeout, |reply| Command::RestartChild { id: id.to_owned(), reply })
    }

    /// Forgets a stopped child's spec.
    ///
    /// # Errors
    ///
    /// `NotFound`, `Running` if it is not stopped, `Timeout` or `SupervisorStopping`.
    pub fn delete_child(&self, id: &str, timeout: Duration) -> Result<(), ChildError> {
        self.request(timeout, |reply| Command::DeleteChild { id: id.to_owned(), reply })
    }

    fn request(
        &self,
        timeout: Duration,
        make: impl FnOnce(ask::Reply<Result<(), ChildError>>) -> Command,
    ) -> Result<(), ChildError> {
        let (reply, pending) = ask::channel();
        self.node.command(make(reply));
        pending.wait(timeout)?
    }

    /// Stops the supervisor for good and waits up to `timeout` until it has:
    /// its children stop first, in reverse start order (a pool's all at
    /// once), each per its [`Shutdown`](crate::Shutdown), then the
    /// supervisor ends. Returns what its watchers are told.
    ///
    /// `reason` is [`StopReason::Requested`] or [`StopReason::Shutdown`],
    /// and is the reason a top-level supervisor ends with. A supervisor
    /// nested in another is stopped by its parent, as
    /// [`terminate_child`](Supervisor::terminate_child) does: it ends with
    /// `Shutdown`, is not restarted, and its spec stays in its parent
    /// (`restart_child` starts it again); this returns once the parent has
    /// recorded it stopped.
    ///
    /// # Errors
    ///
    /// [`StopError::InvalidReason`] for another reason (nothing is
    /// stopped); [`StopError::Timeout`] when it has not stopped in time (it
    /// goes on stopping).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, ChildSpec, Context, Runtime, SendError, StopReason, SupervisorSpec};
    ///
    /// struct Echo;
    /// impl Cell for Echo {
    ///     type Message = String;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: String) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let spec = SupervisorSpec::new("app").child(ChildSpec::new("echo", || Echo));
    /// let app = runtime.start_supervisor(spec, Duration::from_secs(5))?;
    /// let echo = app.child::<String>("echo").unwrap();
    ///
    /// let terminated = app.stop(StopReason::Shutdown, Duration::from_secs(5))?;
    /// assert_eq!(terminated.path.as_str(), "/app");
    /// assert_eq!(terminated.reason, StopReason::Shutdown);
    /// assert!(matches!(echo.send("late".into()), Err(SendError::Closed(_))));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop(&self, reason: StopReason, timeout: Duration) -> Result<Terminated, StopError> {
        let cause = match reason {
            StopReason::Requested => ChildStop::Requested,
            StopReason::Shutdown => ChildStop::Supervisor,
            reason => return Err(StopError::InvalidReason { reason }),
        };
        let started = Instant::now();
        let watch = self.watch();
        let parent_answer = match self.node.parent() {
            Some(parent) => {
                let (reply, answer) = ask::channel();
                parent.command(Command::TerminateChild { id: self.path().name().to_owned(), reply });
                Some(answer)
            }
            None => {
                self.node.stop_owner(cause);
                None
            }
        };
        let terminated = watch.wait(timeout).map_err(|_| StopError::Timeout)?;
        if let Some(answer) = parent_answer {
            // The parent answers once it has recorded the stop, which may
            // come just after the watchers were told: wait for that too, so
            // that its `which_children` says `Stopped` when this returns.
            // Its verdict does not matter here; the supervisor has ended.
            let left = timeout.saturating_sub(started.elapsed());
            if let Err(AskError::Timeout) = answer.wait(left) {
                return Err(StopError::Timeout);
            }
        }
        Ok(terminated)
    }

    /// Resolves when the supervisor stops for good; see [`Addr`]'s `watch`
    /// in [`Runtime::watch`](crate::Runtime::watch).
    pub fn watch(&self) -> Pending<Terminated> {
        let (reply, pending) = ask::channel();
        self.addr.slot().watchers().add_reply(reply);
        pending
    }

    /// Whether the supervisor has stopped for good.
    pub fn is_stopped(&self) -> bool {
        self.addr.is_closed()
    }
}

fn downcast_addr<M: Send + 'static>(addr: &(dyn Any + Send + Sync)) -> Option<Addr<M>> {
    addr.downcast_ref::<Addr<M>>().cloned()
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Supervisor").field(self.addr.path()).finish()
    }
}
