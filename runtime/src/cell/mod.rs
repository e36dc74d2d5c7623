//! Cells: the [`Cell`] trait, its [`Context`], and the running instance.
//!
//! - `error.rs`: [`CellError`], what a failing hook returns, and
//!   [`SpawnError`], why a spawn failed.
//! - `context.rs`: [`Context`], the cell's view of the runtime, and
//!   [`CellConfig`], the options of a spawn.
//! - `instance.rs`: a spawned cell: its mailbox, its state, its turns.
//!
//! # Lifecycle
//!
//! ```text
//!  spawn ─► started ─► handle, handle, … ─► stopped
//!              │            │
//!              └─ Err/panic ┴─► Failure ─► stopped(Failed) ─► supervisor
//! ```
//!
//! Every hook runs on a worker of the cell's dispatcher, never on the thread
//! that spawned the cell, and never concurrently with another hook of the
//! same cell.
//!
//! - [`Cell::started`] runs before the first message. Messages sent in the
//!   meantime wait in the mailbox. An error or panic here is a failure with
//!   [`Hook::Started`](crate::Hook::Started): the incarnation ends without
//!   handling any message.
//! - [`Cell::handle`] runs once per message. An error or panic is a failure
//!   with [`Hook::Handle`](crate::Hook::Handle): the runtime records it,
//!   dead-letters the message (or keeps it for re-delivery, see
//!   [`Cell::retain`]), and ends the incarnation.
//! - [`Cell::stopped`] runs once when an incarnation ends for any reason but
//!   a kill, after the cell's own children have stopped. A panic here is
//!   recorded as a failure with [`Hook::Stopped`](crate::Hook::Stopped).
//!
//! A cell started from a [`ChildSpec`](crate::ChildSpec) lives on after its
//! incarnation ends: its supervisor restarts it with a new value from the
//! spec's factory, and the mailbox (with what queued meanwhile) carries over.
//! A cell spawned from a value ([`Runtime::spawn`](crate::Runtime::spawn),
//! [`Context::spawn`]) has one incarnation: it stops for good.
//!
//! Panics never unwind into a worker thread: each hook runs under
//! `catch_unwind`.

mod context;
mod error;
pub(crate) mod instance;

pub use self::context::{CellConfig, Context};
pub use self::error::{CellError, SpawnError};

/// The most priority lanes a cell's mailbox can have ([`Cell::LANES`]).
pub const MAX_LANES: usize = 16;

use crate::failure::Failure;
use crate::supervise::Escalation;

/// An autonomous unit of state and behaviour that handles one message type.
///
/// Implement [`handle`](Cell::handle); the other hooks have defaults. A cell
/// is spawned on a [`Runtime`](crate::Runtime), which returns an
/// [`Addr`](crate::Addr) for its message type.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, Context, Runtime};
///
/// struct Greeter {
///     greeted: Vec<String>,
/// }
///
/// impl Cell for Greeter {
///     type Message = String;
///
///     fn handle(&mut self, ctx: &mut Context<Self>, name: String) -> Result<(), CellError> {
///         if name.is_empty() {
///             return Err(CellError::msg("no name"));
///         }
///         tracing::info!(cell = %ctx.path(), %name, "hello");
///         self.greeted.push(name);
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().worker_threads(1).build()?;
/// let greeter = runtime.spawn(Greeter { greeted: Vec::new() })?;
/// greeter.send("Ada".to_string())?;
/// let report = runtime.shutdown(Duration::from_secs(5));
/// assert_eq!(report.cells_stopped, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Cell: Send + Sized + 'static {
    /// The message type this cell handles: its contract.
    type Message: Send + 'static;

    /// Handles one message. An error or a panic is a failure (see the
    /// module docs).
    fn handle(&mut self, ctx: &mut Context<Self>, msg: Self::Message) -> Result<(), CellError>;

    /// Runs once before the first message. The default does nothing.
    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        let _ = ctx;
        Ok(())
    }

    /// Runs once when the cell stops, with the reason. Not run on a kill.
    /// The default does nothing.
    fn stopped(&mut self, ctx: &mut Context<Self>, reason: &StopReason) {
        let _ = (ctx, reason);
    }

    /// How many priority lanes the cell's mailbox has, from 1 (the default:
    /// one first-in, first-out queue) to [`MAX_LANES`] (more count as
    /// `MAX_LANES`). Each lane holds the mailbox's capacity, and
    /// [`lane`](Cell::lane) picks a message's lane. The worker takes from
    /// the highest non-empty lane first: a message in lane 1 overtakes every
    /// lane-0 message queued before it. Priority is strict (lower lanes
    /// wait while higher ones have messages); within a lane, first in,
    /// first out. Lanes order what was admitted; to refuse low-priority
    /// messages as the mailbox fills, give the address a
    /// [`Shedding`](crate::Shedding) policy.
    ///
    /// ```
    /// use cellrt::{Cell, CellError, Context};
    ///
    /// enum Request {
    ///     Browse(u32),
    ///     Checkout(u32),
    /// }
    ///
    /// struct Shop;
    ///
    /// impl Cell for Shop {
    ///     type Message = Request;
    ///     const LANES: usize = 2;
    ///
    ///     fn lane(request: &Request) -> usize {
    ///         match request {
    ///             Request::Browse(_) => 0,
    ///             Request::Checkout(_) => 1,
    ///         }
    ///     }
    ///
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, _request: Request) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    /// ```
    const LANES: usize = 1;

    /// The priority lane of `msg`, from 0 (the lowest) to
    /// [`LANES`](Cell::LANES)` - 1` (higher numbers count as the highest).
    /// Called on the sender's thread for every send when `LANES` is above
    /// 1: keep it cheap, and do not panic (a panic unwinds into the
    /// sender). The default is 0.
    fn lane(msg: &Self::Message) -> usize {
        let _ = msg;
        0
    }

    /// Names the kind of a message, for failures and metrics. Override it
    /// for enums to return the variant name; the default is the type name.
    fn message_kind(msg: &Self::Message) -> &'static str {
        let _ = msg;
        std::any::type_name::<Self::Message>()
    }

    /// A copy of `msg` kept while it is handled, so that a failure does not
    /// lose it: the copy is re-delivered after a restart when the child
    /// spec has a [`RetryPolicy`](crate::RetryPolicy), and goes to the
    /// dead-letter store otherwise. The default keeps nothing (a handler
    /// consumes its message; a failed one reaches the store without a
    /// body). Return `Some(msg.clone())` for messages that are cheap to copy
    /// and hold no [`Reply`](crate::Reply).
    fn retain(msg: &Self::Message) -> Option<Self::Message> {
        let _ = msg;
        None
    }
}

/// Why a cell stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The cell called [`Context::stop`], or was stopped through the runtime.
    Requested,
    /// The runtime shut down gracefully (the mailbox was closed and
    /// drained), its supervisor stopped it (`terminate_child`), or, for a
    /// supervisor, its significant children exited (auto-shutdown).
    Shutdown,
    /// The cell was replaced behind its address by another cell.
    Replaced,
    /// Its parent (or supervisor) stopped.
    ParentStopped,
    /// Its supervisor stopped it to restart it with its group
    /// ([`Strategy::OneForAll`](crate::Strategy::OneForAll),
    /// [`Strategy::RestForOne`](crate::Strategy::RestForOne)).
    Restart,
    /// It is a supervisor that gave up: a child's restart exceeded its
    /// restart intensity. Its children were stopped first. Like OTP's
    /// `shutdown`, this is a normal exit for a [`Restart::Transient`](crate::Restart::Transient)
    /// supervisor's parent.
    Escalated(Box<Escalation>),
    /// The runtime terminated it without running hooks: a shutdown whose
    /// deadline passed, or a runtime dropped without `shutdown`.
    Killed,
    /// A hook failed.
    Failed(Box<Failure>),
    /// Its `started` hook said there was nothing to run
    /// ([`Context::ignore`]): a normal end; `stopped` does not run.
    Ignored,
}

impl StopReason {
    /// Whether the stop was abnormal (a failure).
    pub fn is_failure(&self) -> bool {
        matches!(self, StopReason::Failed(_))
    }

    /// Whether a [`Restart::Transient`](crate::Restart::Transient) child that
    /// stopped this way is restarted: a failure, or a kill. A stop, a
    /// shutdown, a replace, a group restart and an escalation are normal.
    pub fn is_abnormal(&self) -> bool {
        matches!(self, StopReason::Failed(_) | StopReason::Killed)
    }
}

/// A sentence for logs and the journal, e.g. `failed: cell /a failed in
/// handle: error: boom`.
impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Requested => f.write_str("stopped on request"),
            StopReason::Shutdown => f.write_str("shut down"),
            StopReason::Replaced => f.write_str("replaced"),
            StopReason::ParentStopped => f.write_str("its parent stopped"),
            StopReason::Restart => f.write_str("restarted with its group"),
            StopReason::Escalated(escalation) => write!(f, "escalated: {escalation}"),
            StopReason::Killed => f.write_str("killed"),
            StopReason::Failed(failure) => write!(f, "failed: {failure}"),
            StopReason::Ignored => f.write_str("ignored: nothing to run"),
        }
    }
}
