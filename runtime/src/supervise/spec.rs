//! What a supervisor is told: its flags ([`SupervisorSpec`]) and its
//! children ([`ChildSpec`]), and how both are checked ([`SpecError`]).

use std::fmt;
use std::time::Duration;

use crate::cell::{Cell, CellConfig};
use crate::path::{CellPath, NameError};
use crate::sync::{Arc, Mutex};

use super::start::{CellStarter, StartChild, SupervisorStarter};

/// How a supervisor reacts when a child it restarts exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Stop every other child (reverse start order), then restart them all
    /// (start order).
    OneForAll,
    /// Stop the children started after the one that exited (reverse order),
    /// then restart it and them (start order).
    RestForOne,
    /// A pool of identical children started on demand from one template
    /// (OTP's `simple_one_for_one`): each restarted alone, none started with
    /// the supervisor.
    Pool,
}

/// When a child is restarted after it exits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Restart {
    /// Always restarted, whatever the exit.
    #[default]
    Permanent,
    /// Restarted only after an abnormal exit: a failure (an error or panic
    /// in a hook, an overrun deadline). A stop, a shutdown or an escalation
    /// is normal, as OTP's `normal` and `shutdown` are.
    Transient,
    /// Never restarted. Its spec is forgotten when it exits, also when it is
    /// stopped as a bystander of a group restart.
    Temporary,
}

/// How a child is stopped by its supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shutdown {
    /// Killed at once: its `stopped` hook does not run.
    Kill,
    /// Asked to stop; if it has not stopped within the timeout, killed. A
    /// handler that does not return is abandoned: its mailbox is closed and
    /// the supervisor goes on without it (see `docs/supervision.md`).
    Timeout(Duration),
    /// Asked to stop, and waited for without limit (OTP's `infinity`, meant
    /// for child supervisors).
    Infinity,
}

impl Default for Shutdown {
    /// Five seconds, as OTP's default for workers.
    fn default() -> Self {
        Shutdown::Timeout(Duration::from_secs(5))
    }
}

/// When a supervisor shuts itself down because significant children exited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AutoShutdown {
    /// Never: significant children are refused.
    #[default]
    Never,
    /// When any significant child exits for good.
    AnySignificant,
    /// When every significant child has exited for good.
    AllSignificant,
}

/// Delay before a restart, growing with consecutive restarts of one child
/// (Akka's restart-with-backoff shape). [`RestartBackoff::none`] restarts at
/// once.
///
/// The `n`-th consecutive restart waits `min * 2^(n-1)`, at most `max`, then
/// adds a random part of up to `jitter` times that delay. A child that runs
/// for `reset_after` without exiting starts again from `min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RestartBackoff {
    pub(crate) min: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: f64,
    pub(crate) reset_after: Duration,
}

impl RestartBackoff {
    /// No delay: every restart happens at once.
    pub const fn none() -> Self {
        RestartBackoff { min: Duration::ZERO, max: Duration::ZERO, jitter: 0.0, reset_after: Duration::ZERO }
    }

    /// Exponential from `min` to `max`, no jitter, reset after `max * 4` of
    /// quiet. Checked when the supervisor starts (`min <= max`).
    pub const fn exponential(min: Duration, max: Duration) -> Self {
        RestartBackoff { min, max, jitter: 0.0, reset_after: max.saturating_mul(4) }
    }

    /// Adds up to `fraction` (0.0 to 1.0) of the delay at random, so that
    /// siblings failing together do not restart together.
    pub const fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// How long a child must run without exiting for the delay to start
    /// again from `min`.
    pub const fn reset_after(mut self, quiet: Duration) -> Self {
        self.reset_after = quiet;
        self
    }

    /// The delay before the `consecutive`-th restart in a row (from 1),
    /// before jitter.
    pub(crate) fn base_delay(&self, consecutive: u32) -> Duration {
        if self.min.is_zero() {
            return Duration::ZERO;
        }
        let doublings = consecutive.saturating_sub(1).min(31);
        self.min.saturating_mul(1 << doublings).min(self.max)
    }
}

impl Default for RestartBackoff {
    fn default() -> Self {
        RestartBackoff::none()
    }
}

/// How a failed message is re-delivered to the restarted cell.
///
/// The message is copied before it is handled, with
/// [`Cell::retain`](crate::Cell::retain): a cell that does not retain its
/// messages cannot have them re-delivered, and its failed messages reach the
/// dead-letter store without a body. A re-delivered message that fails again
/// with the same cause is a *poison message*: dead-lettered, not retried
/// again. Each message is re-delivered at most `attempts` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    pub(crate) attempts: u32,
}

impl RetryPolicy {
    /// Re-delivers a failed message up to `attempts` times.
    pub const fn attempts(attempts: u32) -> Self {
        RetryPolicy { attempts }
    }
}

/// How to start, stop and restart one child of a supervisor.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, ChildSpec, Context, Restart, Shutdown};
///
/// struct Worker;
/// impl Cell for Worker {
///     type Message = ();
///     fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), CellError> {
///         Ok(())
///     }
/// }
///
/// let spec = ChildSpec::new("worker", || Worker)
///     .restart(Restart::Transient)
///     .shutdown(Shutdown::Timeout(Duration::from_secs(1)))
///     .capacity(64);
/// assert_eq!(spec.id(), "worker");
/// ```
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: String,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) significant: bool,
    pub(crate) config: CellConfig,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) start: Arc<dyn StartChild>,
}

impl ChildSpec {
    /// A worker child: `make` builds the cell at each start and restart.
    /// Permanent, 5 s shutdown timeout, not significant.
    pub fn new<C: Cell>(id: impl Into<String>, mut make: impl FnMut() -> C + Send + 'static) -> Self {
        ChildSpec::new_at(id, move |_: &CellPath| make())
    }

    /// A worker child whose `make` is given the path of the instance it
    /// builds the cell for, at each start and restart: a pool's template
    /// learns which child it makes (its id is the path's last segment,
    /// `#<n>`), a static child its place in the tree. Otherwise as
    /// [`new`](ChildSpec::new).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, ChildSpec, Context, Reply, Runtime, SupervisorSpec};
    ///
    /// /// A worker that knows which pool child it is.
    /// struct Worker { id: String }
    ///
    /// impl Cell for Worker {
    ///     type Message = Reply<String>;
    ///     fn handle(&mut self, _: &mut Context<Self>, reply: Reply<String>) -> Result<(), CellError> {
    ///         let _ = reply.send(self.id.clone());
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let template = ChildSpec::new_at("worker", |path| Worker { id: path.name().to_owned() });
    /// let pool = runtime.start_supervisor(SupervisorSpec::pool("pool", template), Duration::from_secs(5))?;
    /// let worker = pool.start_pool_child::<Reply<String>>(Duration::from_secs(5))?;
    /// let id = worker.ask(|reply| reply)?.wait(Duration::from_secs(5))?;
    /// assert_eq!(id, pool.which_children()[0].id);
    /// assert!(id.starts_with('#'));
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new_at<C: Cell>(id: impl Into<String>, make: impl FnMut(&CellPath) -> C + Send + 'static) -> Self {
        ChildSpec::from_starter(id.into(), Arc::new(CellStarter::<C>::new(Box::new(make))))
    }

    /// A durable worker child: rebuilt from the state saved at its path at
    /// each start (first start, restart, next run), from `make` when none
    /// was saved; its state saved after each message as `durability` says.
    /// An unreadable saved state is a start failure (a typed storage
    /// failure); its bytes are quarantined. See [`Durable`](crate::Durable).
    #[cfg(feature = "storage")]
    pub fn durable<C: crate::store::Durable>(
        id: impl Into<String>,
        durability: crate::store::Durability,
        mut make: impl FnMut() -> C + Send + 'static,
    ) -> Self {
        let make: Make<C> = Box::new(move |_: &CellPath| make());
        ChildSpec::from_starter(id.into(), Arc::new(CellStarter::<C>::durable(make, durability)))
    }

    /// A child that is itself a supervisor. Waited for without limit when
    /// stopped ([`Shutdown::Infinity`]), as OTP does for supervisors.
    pub fn supervisor(id: impl Into<String>, spec: SupervisorSpec) -> Self {
        let mut child = ChildSpec::from_starter(id.into(), Arc::new(SupervisorStarter::new(spec)));
        child.shutdown = Shutdown::Infinity;
        child
    }

    /// What an instance started from this spec knows of it.
    pub(crate) fn supervised(&self) -> super::child::Supervised {
        super::child::Supervised { restart: self.restart, retry: self.retry, deadline: self.deadline }
    }

    pub(crate) fn from_starter(id: String, start: Arc<dyn StartChild>) -> Self {
        ChildSpec {
            id,
            restart: Restart::Permanent,
            shutdown: Shutdown::default(),
            significant: false,
            config: CellConfig::new(),
            retry: None,
            deadline: None,
            start,
        }
    }

    /// The child's id, unique among its siblings; also its path name.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// When the child is restarted. Default: [`Restart::Permanent`].
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// How the child is stopped. Default: a 5 s timeout for workers,
    /// [`Shutdown::Infinity`] for supervisors.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Marks the child significant for its supervisor's [`AutoShutdown`].
    /// Only transient and temporary children may be significant.
    pub fn significant(mut self, significant: bool) -> Self {
        self.significant = significant;
        self
    }

    /// Mailbox capacity (default: the runtime's).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.config = self.config.capacity(capacity);
        self
    }

    /// The dispatcher the child runs on (default: its supervisor's).
    pub fn dispatcher(mut self, name: impl Into<String>) -> Self {
        self.config = self.config.dispatcher(name);
        self
    }

    /// Re-delivers a message whose handling failed to the restarted cell;
    /// see [`RetryPolicy`].
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// The longest a handler may run. A watchdog reports a handler that runs
    /// longer as a failure at once; since a thread cannot be preempted, the
    /// cell is restarted when the handler returns.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    pub(crate) fn is_supervisor(&self) -> bool {
        self.start.is_supervisor()
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("kind", &self.start.kind())
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("significant", &self.significant)
            .finish_non_exhaustive()
    }
}

/// A supervisor: its strategy, restart intensity, backoff, auto-shutdown and
/// children.
///
/// Defaults follow OTP: one-for-one, at most 1 restart in 5 seconds, no
/// auto-shutdown; and no backoff.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, ChildSpec, Context, Runtime, Strategy, SupervisorSpec};
///
/// struct Worker;
/// impl Cell for Worker {
///     type Message = u32;
///     fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
///         if n == 0 {
///             return Err(CellError::msg("zero"));
///         }
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().quiet_panics(true).build()?;
/// let sup = runtime.start_supervisor(
///     SupervisorSpec::new("app")
///         .strategy(Strategy::OneForOne)
///         .intensity(3, Duration::from_secs(5))
///         .child(ChildSpec::new("a", || Worker))
///         .child(ChildSpec::new("b", || Worker)),
///     Duration::from_secs(5),
/// )?;
/// let a = sup.child::<u32>("a").expect("a is running");
/// a.send(0)?; // fails; the supervisor restarts it with its mailbox
/// a.send(1)?;
/// runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorSpec {
    pub(crate) name: String,
    pub(crate) flags: Flags,
    pub(crate) children: Vec<ChildSpec>,
    pub(crate) template: Option<ChildSpec>,
}

/// The supervisor flags, as checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Flags {
    pub(crate) strategy: Strategy,
    pub(crate) max_restarts: u32,
    pub(crate) period: Duration,
    pub(crate) auto_shutdown: AutoShutdown,
    pub(crate) backoff: RestartBackoff,
}

impl Default for Flags {
    fn default() -> Self {
        Flags {
            strategy: Strategy::OneForOne,
            max_restarts: 1,
            period: Duration::from_secs(5),
            auto_shutdown: AutoShutdown::Never,
            backoff: RestartBackoff::none(),
        }
    }
}

impl SupervisorSpec {
    /// A supervisor named `name` (its path name), with OTP's defaults.
    pub fn new(name: impl Into<String>) -> Self {
        SupervisorSpec { name: name.into(), flags: Flags::default(), children: Vec::new(), template: None }
    }

    /// A [`Strategy::Pool`] supervisor whose children are all started from
    /// `template` with [`Supervisor::start_pool_child`](crate::Supervisor::start_pool_child).
    pub fn pool(name: impl Into<String>, template: ChildSpec) -> Self {
        let mut spec = SupervisorSpec::new(name).strategy(Strategy::Pool);
        spec.template = Some(template);
        spec
    }

    /// The restart strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.flags.strategy = strategy;
        self
    }

    /// At most `max_restarts` restarts within any `period`: one more
    /// terminates the supervisor and escalates to its parent.
    pub fn intensity(mut self, max_restarts: u32, period: Duration) -> Self {
        self.flags.max_restarts = max_restarts;
        self.flags.period = period;
        self
    }

    /// When significant children shut the supervisor down.
    pub fn auto_shutdown(mut self, auto_shutdown: AutoShutdown) -> Self {
        self.flags.auto_shutdown = auto_shutdown;
        self
    }

    /// Delay between a child's exit and its restart.
    pub fn backoff(mut self, backoff: RestartBackoff) -> Self {
        self.flags.backoff = backoff;
        self
    }

    /// Appends a child; children start in the order they are added.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }

    /// The supervisor's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks the flags and every child spec.
    ///
    /// # Errors
    ///
    /// The first [`SpecError`] found.
    pub fn validate(&self) -> Result<(), SpecError> {
        CellPath::root()
            .child(&self.name)
            .map_err(|err| SpecError::InvalidName { name: self.name.clone(), err })?;
        self.flags.validate()?;
        match (self.flags.strategy, &self.template) {
            (Strategy::Pool, None) => return Err(SpecError::PoolWithoutTemplate),
            (Strategy::Pool, Some(template)) => {
                if !self.children.is_empty() {
                    return Err(SpecError::PoolWithStaticChildren);
                }
                validate_child(template, self.flags.auto_shutdown)?;
            }
            (_, Some(_)) => return Err(SpecError::TemplateWithoutPool),
            (_, None) => {}
        }
        let mut seen = std::collections::HashSet::new();
        for child in &self.children {
            validate_child(child, self.flags.auto_shutdown)?;
            if !seen.insert(child.id.as_str()) {
                return Err(SpecError::DuplicateId { id: child.id.clone() });
            }
        }
        Ok(())
    }
}

impl Flags {
    pub(crate) fn validate(&self) -> Result<(), SpecError> {
        if self.period.is_zero() {
            return Err(SpecError::ZeroPeriod);
        }
        if self.strategy == Strategy::Pool && self.auto_shutdown != AutoShutdown::Never {
            return Err(SpecError::AutoShutdownInPool);
        }
        let backoff = &self.backoff;
        if backoff.min > backoff.max {
            return Err(SpecError::BackoffRange { min: backoff.min, max: backoff.max });
        }
        if !(0.0..=1.0).contains(&backoff.jitter) {
            return Err(SpecError::Jitter { jitter: backoff.jitter });
        }
        Ok(())
    }
}

pub(crate) fn validate_child(child: &ChildSpec, auto_shutdown: AutoShutdown) -> Result<(), SpecError> {
    CellPath::root().child(&child.id).map_err(|err| SpecError::InvalidId { id: child.id.clone(), err })?;
    if child.significant {
        if child.restart == Restart::Permanent {
            return Err(SpecError::SignificantPermanent { id: child.id.clone() });
        }
        if auto_shutdown == AutoShutdown::Never {
            return Err(SpecError::SignificantWithoutAutoShutdown { id: child.id.clone() });
        }
    }
    if child.config.capacity == Some(0) {
        return Err(SpecError::ZeroCapacity { id: child.id.clone() });
    }
    if child.deadline == Some(Duration::ZERO) {
        return Err(SpecError::ZeroDeadline { id: child.id.clone() });
    }
    if let Some(RetryPolicy { attempts: 0 }) = child.retry {
        return Err(SpecError::ZeroRetries { id: child.id.clone() });
    }
    child.start.validate()
}

/// Why a supervisor or child spec was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SpecError {
    /// Two children share an id.
    DuplicateId {
        /// The repeated id.
        id: String,
    },
    /// A child id is not a valid cell name.
    InvalidId {
        /// The refused id.
        id: String,
        /// Why.
        err: NameError,
    },
    /// The supervisor name is not a valid cell name.
    InvalidName {
        /// The refused name.
        name: String,
        /// Why.
        err: NameError,
    },
    /// The intensity period is zero: no window to count restarts in.
    ZeroPeriod,
    /// A permanent child cannot be significant: it never exits for good.
    SignificantPermanent {
        /// The child's id.
        id: String,
    },
    /// A significant child under a supervisor with [`AutoShutdown::Never`].
    SignificantWithoutAutoShutdown {
        /// The child's id.
        id: String,
    },
    /// A [`Strategy::Pool`] supervisor cannot auto-shut down.
    AutoShutdownInPool,
    /// A [`Strategy::Pool`] supervisor without a child template.
    PoolWithoutTemplate,
    /// A [`Strategy::Pool`] supervisor with static children.
    PoolWithStaticChildren,
    /// A child template given to a supervisor that is not a pool.
    TemplateWithoutPool,
    /// `start_pool_child` on a supervisor that is not a pool, or
    /// `start_child` on one that is.
    WrongStrategy {
        /// The supervisor's strategy.
        strategy: Strategy,
    },
    /// The backoff's minimum is above its maximum.
    BackoffRange {
        /// The minimum.
        min: Duration,
        /// The maximum.
        max: Duration,
    },
    /// The backoff's jitter is outside 0.0..=1.0.
    Jitter {
        /// The refused fraction.
        jitter: f64,
    },
    /// A child mailbox capacity of zero.
    ZeroCapacity {
        /// The child's id.
        id: String,
    },
    /// A zero handler deadline.
    ZeroDeadline {
        /// The child's id.
        id: String,
    },
    /// A retry policy of zero attempts.
    ZeroRetries {
        /// The child's id.
        id: String,
    },
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::DuplicateId { id } => write!(f, "two children have the id {id:?}"),
            SpecError::InvalidId { id, err } => write!(f, "invalid child id {id:?}: {err}"),
            SpecError::InvalidName { name, err } => write!(f, "invalid supervisor name {name:?}: {err}"),
            SpecError::ZeroPeriod => f.write_str("the restart intensity period must not be zero"),
            SpecError::SignificantPermanent { id } => {
                write!(f, "child {id:?} is permanent and cannot be significant")
            }
            SpecError::SignificantWithoutAutoShutdown { id } => {
                write!(f, "child {id:?} is significant but the supervisor never auto-shuts down")
            }
            SpecError::AutoShutdownInPool => f.write_str("a pool supervisor cannot auto-shut down"),
            SpecError::PoolWithoutTemplate => f.write_str("a pool supervisor needs a child template"),
            SpecError::PoolWithStaticChildren => f.write_str("a pool supervisor has no static children"),
            SpecError::TemplateWithoutPool => f.write_str("a child template needs the pool strategy"),
            SpecError::WrongStrategy { strategy } => {
                write!(f, "not allowed for a supervisor with strategy {strategy:?}")
            }
            SpecError::BackoffRange { min, max } => {
                write!(f, "backoff minimum {min:?} is above its maximum {max:?}")
            }
            SpecError::Jitter { jitter } => write!(f, "backoff jitter {jitter} is outside 0.0..=1.0"),
            SpecError::ZeroCapacity { id } => write!(f, "child {id:?} has a mailbox capacity of zero"),
            SpecError::ZeroDeadline { id } => write!(f, "child {id:?} has a zero handler deadline"),
            SpecError::ZeroRetries { id } => write!(f, "child {id:?} has a retry policy of zero attempts"),
        }
    }
}

impl std::error::Error for SpecError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpecError::InvalidId { err, .. } | SpecError::InvalidName { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Makes a cell value for the instance at the path it is given.
pub(crate) type Make<C> = Box<dyn FnMut(&CellPath) -> C + Send>;

/// A cell factory shared by a spec and the instances started from it.
pub(crate) type Factory<C> = Arc<Mutex<Make<C>>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_min_and_stops_at_max() {
        let backoff = RestartBackoff::exponential(Duration::from_millis(10), Duration::from_millis(50));
        let delays: Vec<u64> = (1..=5).map(|n| backoff.base_delay(n).as_millis() as u64).collect();
        assert_eq!(delays, vec![10, 20, 40, 50, 50]);
        assert_eq!(RestartBackoff::none().base_delay(7), Duration::ZERO);
        assert_eq!(backoff.base_delay(u32::MAX), Duration::from_millis(50), "no overflow");
    }
}
