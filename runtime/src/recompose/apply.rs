//! Applying actions to a managed cell, through its address's slot and the
//! router that `flow` provides: [`Recomposable`] (what the application
//! offers: the cell's factory and its variants), the managed cell's shape,
//! and the by-kind route that isolation puts behind the address.
//!
//! # Guarantees while an action is applied
//!
//! Senders hold the slot's read lock for one non-blocking push; every
//! action swaps the slot's target under its write lock. So a message sent
//! before the swap reached the old target and one sent after reaches the
//! new one: none is lost or handled twice.
//!
//! - **Isolate** wraps the cell in a by-kind route to a new cell that
//!   starts held; the cell, at its next system check (a regroup, between
//!   two of its messages), hands that kind's queued messages to the new
//!   cell ahead of what it holds, and keeps the rest in order.
//! - **Retire** unwraps it again (refused as in progress until that
//!   hand-over happened); the kind's cell closes, handles what it holds and
//!   stops (a drain). Retiring into a variant replaces the kind's cell.
//! - **Canary** puts a share route in front of the cell or a kind's cell;
//!   **Promote** replaces that cell with the variant, **EndCanary** removes
//!   the route; the canary cell drains either way.
//! - **Split** wraps the cell in a round-robin router over itself and new
//!   cells; the cell keeps what it holds. **Merge** unwraps it; the added
//!   members drain and stop.
//! - **Split by key** retires the cell into a pool of new cells through
//!   the replace protocol, and moves its stored state and its queue to
//!   each key's owner; its **merge** retires the members into a new cell
//!   the same way. See `partition.rs`.
//! - **Replace** uses the runtime's replace protocol: the old cell finishes
//!   its message, hands its queue to the variant (ahead of anything sent
//!   after the swap) and stops.
//! - **Shed** and **Admit** set the address's shedding policy.
//!
//! # Supervised cells
//!
//! A managed cell under a supervisor keeps its place there: the cells an
//! action adds beside it (an isolated kind's cell, a pool member, a canary)
//! are children of the same supervisor, restarted after a failure
//! (`Restart::Transient`) from the factory that made them, restarted with
//! the supervisor and stopped with it; a replace (of the cell, or of a kind's cell) hands the child's
//! record to the new cell, whose restarts then make the variant. A split by
//! key and a retire into another cell retire the cell into what is not one
//! child: the supervisor lets its entry go (`Node::hand_off`, kept in the
//! shape) and takes it back when a merge or a replace puts one cell behind
//! the address again (`Node::take_back`).

use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(any(feature = "tokio", cellrt_loom))]
use std::task::Waker;
use std::time::{Duration, Instant};

use super::error::{RecomposableError, RecomposeError};
#[cfg(feature = "storage")]
use super::partition::{self, KeyHash, KeyedHandover};
use super::plan::{Action, IsolatedKind, Layout, SplitBy};
use crate::address::{Addr, Deliver, Slot};
use crate::cell::{Cell, CellConfig};
use crate::failure::payload_text;
use crate::flow::{Router, Routing, Shedding};
#[cfg(any(feature = "tokio", cellrt_loom))]
use crate::mailbox::SpaceWaiter;
use crate::mailbox::{Envelope, Regroup, SendError, SystemMsg};
use crate::path::CellPath;
use crate::runtime::{CellControl, RuntimeShared, SpawnError, SpawnRequest};
use crate::supervise::{
    CellStarter, ChildName, ChildSpec, HandedOff, Make, Node, NodeLink, Origin, Refusal, Restart,
    StartedChild,
};
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use crate::sync::{Arc, Mutex, Weak};

/// The variant name of a managed cell's own factory.
pub(crate) const BASE: &str = "base";

/// Starts a cell of one type: at a path, or in place of the cell behind an
/// address.
struct Maker<M> {
    spawn_at: SpawnAt<M>,
    /// As `spawn_at`, held: it handles nothing until released.
    spawn_held: SpawnAt<M>,
    replace: ReplaceWith<M>,
    /// As `spawn_at` and `spawn_held`, as a run-time child of a supervisor.
    spawn_child: SpawnChild<M>,
    /// As `replace`, for a supervised cell (its instance id given).
    replace_child: ReplaceChild<M>,
    /// As `replace`, giving a supervised cell's entry back (after a split
    /// by key or a retire into another cell let it go).
    take_back: TakeBack<M>,
    /// The cell type's priority lanes: its mailbox capacity is this many
    /// times the configured one.
    #[cfg(feature = "storage")]
    lanes: usize,
}

type SpawnAt<M> =
    Arc<dyn Fn(&Arc<RuntimeShared>, CellPath, CellConfig) -> Result<Addr<M>, RecomposeError> + Send + Sync>;
type ReplaceWith<M> =
    Arc<dyn Fn(&Arc<RuntimeShared>, &Addr<M>, CellConfig) -> Result<(), RecomposeError> + Send + Sync>;
type SpawnChild<M> =
    Arc<dyn Fn(&Arc<Node>, CellPath, (CellConfig, Start)) -> Result<Addr<M>, RecomposeError> + Send + Sync>;
type ReplaceChild<M> =
    Arc<dyn Fn(&Arc<Node>, u64, &Addr<M>, CellConfig) -> Result<(), RecomposeError> + Send + Sync>;
type TakeBack<M> = Arc<
    dyn Fn(&Arc<Node>, HandedOff, &Addr<M>, CellConfig) -> Result<(), (HandedOff, RecomposeError)>
        + Send
        + Sync,
>;

impl<M> Clone for Maker<M> {
    fn clone(&self) -> Self {
        Maker {
            spawn_at: self.spawn_at.clone(),
            spawn_held: self.spawn_held.clone(),
            replace: self.replace.clone(),
            spawn_child: self.spawn_child.clone(),
            replace_child: self.replace_child.clone(),
            take_back: self.take_back.clone(),
            #[cfg(feature = "storage")]
            lanes: self.lanes,
        }
    }
}

/// A supervised child's factory for its restarts, from a registered one.
fn restarts<C: Cell, F: Fn() -> C + Send + Sync + 'static>(factory: &Arc<F>) -> Make<C> {
    let factory = factory.clone();
    Box::new(move |_: &_| factory())
}

/// The replace protocol behind `addr` for a child of `node` under `spec`:
/// its new instance, of `cell` (restarted from `factory`), not begun.
fn replace_as_child<C, F>(
    node: &Arc<Node>,
    spec: &ChildSpec,
    addr: &Addr<C::Message>,
    config: CellConfig,
    cell: C,
    factory: &Arc<F>,
) -> Result<StartedChild, SpawnError>
where
    C: Cell,
    F: Fn() -> C + Send + Sync + 'static,
{
    let origin = Origin::Seeded(cell, Arc::new(Mutex::new(restarts(factory))));
    let runtime = RuntimeShared::of(node).ok_or(SpawnError::ShutDown)?;
    let parent: Arc<dyn NodeLink> = node.clone();
    let instance = runtime.replace_instance(addr, config, origin, Some(&parent), Some(spec.supervised()))?;
    Ok(StartedChild { handle: instance, addr: Arc::new(addr.clone()) })
}

/// The id under which a supervisor records a cell recomposition placed at
/// `path`: the path below the supervisor's, its names joined with `:`
/// (a child id is one cell name).
fn child_id(supervisor: &CellPath, path: &CellPath) -> String {
    let below = path.as_str().strip_prefix(supervisor.as_str()).unwrap_or(path.as_str());
    below.trim_start_matches('/').replace('/', ":")
}

/// Why a supervisor would not take a cell recomposition placed at `path`.
fn refused(refusal: Refusal, path: &CellPath) -> RecomposeError {
    let supervised = |reason: &str| RecomposeError::Supervised { cell: path.clone(), reason: reason.into() };
    match refusal {
        Refusal::Stopping => supervised("its supervisor is stopping"),
        Refusal::Pool => supervised("its supervisor is a pool, whose children come from its template"),
        Refusal::Busy => RecomposeError::InProgress { cell: path.clone() },
        // As a taken path: the next name is tried.
        Refusal::DuplicateId => {
            RecomposeError::Spawn { cell: path.clone(), error: SpawnError::NameTaken { path: path.clone() } }
        }
        Refusal::Spawn(error) => RecomposeError::Spawn { cell: path.clone(), error },
    }
}

/// Calls a user factory, turning a panic into an error about `path`.
fn call_factory<C>(factory: &(dyn Fn() -> C + Send + Sync), path: &CellPath) -> Result<C, RecomposeError> {
    catch_unwind(AssertUnwindSafe(factory)).map_err(|payload| RecomposeError::FactoryPanicked {
        cell: path.clone(),
        message: payload_text(&*payload),
    })
}

impl<M: Send + 'static> Maker<M> {
    fn of<C, F>(factory: F) -> Self
    where
        C: Cell<Message = M>,
        F: Fn() -> C + Send + Sync + 'static,
    {
        let factory = Arc::new(factory);
        let spawn_factory = factory.clone();
        let held_factory = factory.clone();
        let child_factory = factory.clone();
        let replace_factory = factory.clone();
        let back_factory = factory.clone();
        Maker {
            spawn_at: Arc::new(move |shared, path, config| {
                let cell = call_factory(&*spawn_factory, &path)?;
                shared
                    .spawn_top_level(ChildName::At(path.clone()), config, Origin::Value(cell))
                    .map_err(|error| RecomposeError::Spawn { cell: path, error })
            }),
            spawn_held: Arc::new(move |shared, path, config| {
                let cell = call_factory(&*held_factory, &path)?;
                shared
                    .spawn_held_at(path.clone(), config, Origin::Value(cell))
                    .map_err(|error| RecomposeError::Spawn { cell: path, error })
            }),
            replace: Arc::new(move |shared, addr, config| {
                let cell = call_factory(&*factory, addr.path())?;
                shared
                    .replace_cell(addr, config, cell)
                    .map_err(|error| RecomposeError::Spawn { cell: addr.path().clone(), error })
            }),
            spawn_child: Arc::new(move |node, path, (config, start)| {
                let cell = call_factory(&*child_factory, &path)?;
                let mut spec = ChildSpec::from_starter(
                    child_id(node.path(), &path),
                    Arc::new(CellStarter::<C>::new(restarts(&child_factory))),
                )
                .restart(Restart::Transient);
                spec.config = config.clone();
                let shared = RuntimeShared::of(node).ok_or_else(|| RecomposeError::Spawn {
                    cell: path.clone(),
                    error: SpawnError::ShutDown,
                })?;
                let adopted = node.adopt(spec, |node, spec| {
                    let parent: Arc<dyn NodeLink> = node.clone();
                    let request = SpawnRequest {
                        parent: Some(&parent),
                        name: ChildName::At(path.clone()),
                        config,
                        origin: Origin::Seeded(cell, Arc::new(Mutex::new(restarts(&child_factory)))),
                        supervised: Some(spec.supervised()),
                        existing: None,
                    };
                    let (addr, instance) = shared.spawn_new(request, start == Start::Held)?;
                    Ok(StartedChild { handle: instance, addr: Arc::new(addr) })
                });
                let addr = adopted.map_err(|refusal| refused(refusal, &path))?;
                match addr.downcast_ref::<Addr<M>>() {
                    Some(addr) => Ok(addr.clone()),
                    None => unreachable!("a child spawned from a factory of `C` has an `Addr<C::Message>`"),
                }
            }),
            replace_child: Arc::new(move |node, key, addr, config| {
                let cell = call_factory(&*replace_factory, addr.path())?;
                let start = Arc::new(CellStarter::<C>::new(restarts(&replace_factory)));
                node.replace_child(key, start, |node, spec| {
                    replace_as_child(node, spec, addr, config, cell, &replace_factory)
                })
                .map_err(|refusal| refused(refusal, addr.path()))
            }),
            take_back: Arc::new(move |node, entry, addr, config| {
                let cell = match call_factory(&*back_factory, addr.path()) {
                    Ok(cell) => cell,
                    Err(err) => return Err((entry, err)),
                };
                let start = Arc::new(CellStarter::<C>::new(restarts(&back_factory)));
                node.take_back(entry, start, |node, spec| {
                    replace_as_child(node, spec, addr, config, cell, &back_factory)
                })
                .map_err(|(entry, refusal)| (entry, refused(refusal, addr.path())))
            }),
            #[cfg(feature = "storage")]
            lanes: C::LANES.clamp(1, crate::cell::MAX_LANES),
        }
    }
}

/// The largest pool a split may make: a split spawns its members at once.
pub const MAX_POOL: usize = 1_024;

/// What an application offers the engine for one cell: how to make more of
/// it (for splits and isolated kinds), the variants that may replace it,
/// and what it allows.
///
/// A plan can only choose what is registered here: the engine never invents
/// a cell type.
///
/// # Examples
///
/// ```
/// use cellrt::{Cell, CellError, Context, Recomposable};
///
/// enum Txn {
///     Card(u64),
///     Legacy(u64),
/// }
///
/// struct Fraud;
/// impl Cell for Fraud {
///     type Message = Txn;
///     fn message_kind(txn: &Txn) -> &'static str {
///         match txn {
///             Txn::Card(_) => "card",
///             Txn::Legacy(_) => "legacy",
///         }
///     }
///     fn handle(&mut self, _: &mut Context<Self>, _: Txn) -> Result<(), CellError> {
///         Ok(())
///     }
/// }
///
/// struct RulesEngine;
/// impl Cell for RulesEngine {
///     type Message = Txn;
///     fn handle(&mut self, _: &mut Context<Self>, _: Txn) -> Result<(), CellError> {
///         Ok(())
///     }
/// }
///
/// let fraud = Recomposable::new(|| Fraud)
///     .variant("rules", || RulesEngine)
///     .stateless()
///     .max_pool(4)
///     .sheddable("legacy");
/// # let _ = fraud;
/// ```
pub struct Recomposable<M> {
    kind_of: fn(&M) -> &'static str,
    base: Maker<M>,
    variants: Vec<(String, Maker<M>)>,
    stateless: bool,
    /// The hash of a message's key, for a cell registered keyed.
    #[cfg(feature = "storage")]
    keyed: Option<KeyHash<M>>,
    max_pool: usize,
    sheddable: Vec<String>,
    isolation: CellConfig,
}

impl<M: Send + 'static> Recomposable<M> {
    /// A cell made by `factory`: the engine calls it for each cell it adds
    /// (a pool member, an isolated kind's cell, a revert to the base).
    /// Message kinds are the cell type's [`Cell::message_kind`].
    pub fn new<C, F>(factory: F) -> Self
    where
        C: Cell<Message = M>,
        F: Fn() -> C + Send + Sync + 'static,
    {
        Recomposable {
            kind_of: C::message_kind,
            base: Maker::of(factory),
            variants: Vec::new(),
            stateless: false,
            #[cfg(feature = "storage")]
            keyed: None,
            max_pool: 4,
            sheddable: Vec::new(),
            isolation: CellConfig::new(),
        }
    }

    /// Registers a variant that may replace the cell
    /// ([`Action::Replace`]), made by `factory`. The name `"base"` is the
    /// cell's own factory and cannot be taken.
    pub fn variant<V, F>(mut self, name: &str, factory: F) -> Self
    where
        V: Cell<Message = M>,
        F: Fn() -> V + Send + Sync + 'static,
    {
        self.variants.push((name.to_owned(), Maker::of(factory)));
        self
    }

    /// Declares the cell stateless: any copy of it may handle any message,
    /// so it may be split into a round-robin pool. Off by default.
    pub fn stateless(mut self) -> Self {
        self.stateless = true;
        self
    }

    /// Declares the cell keyed by `key`, so it may be split by key
    /// ([`SplitBy::Key`]) into a pool whose members each own a share of
    /// the keys. Off by default. Needs a runtime with storage.
    ///
    /// The convention a keyed cell follows: `key(msg)` is the store key
    /// under which the cell keeps that key's state in its own tree
    /// ([`Context::store`](crate::Context::store)), and nothing else the
    /// cell must find again lives outside those entries. A split then moves
    /// each entry to the tree of the member owning its key (the routing key
    /// of a message is the bytes of its store key, hashed onto a
    /// consistent-hash ring), and a merge moves them all back; every entry
    /// of the tree moves by its key. A member's `started` runs before the
    /// state it will own has arrived: read a key's state when handling its
    /// messages. `docs/recomposition.md` in the repository has the whole
    /// protocol.
    ///
    /// # Examples
    ///
    /// ```
    /// use cellrt::{Cell, CellError, Context, Recomposable};
    ///
    /// struct Deposit {
    ///     account: u64,
    ///     amount: u64,
    /// }
    ///
    /// struct Ledger;
    /// impl Cell for Ledger {
    ///     type Message = Deposit;
    ///     fn handle(&mut self, ctx: &mut Context<Self>, d: Deposit) -> Result<(), CellError> {
    ///         // Each account's balance under the account's own key.
    ///         let store = ctx.store()?;
    ///         store.update(d.account, |balance: Option<u64>| Some(balance.unwrap_or(0) + d.amount))?;
    ///         store.flush()?;
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let ledger = Recomposable::new(|| Ledger).keyed(|d: &Deposit| d.account).max_pool(8);
    /// # let _ = ledger;
    /// ```
    #[cfg(feature = "storage")]
    pub fn keyed<K, F>(mut self, key: F) -> Self
    where
        K: crate::store::StoreKey,
        F: Fn(&M) -> K + Send + Sync + 'static,
    {
        self.keyed = Some(partition::hasher(key));
        self
    }

    /// The largest pool a split may make. Default 4; at most [`MAX_POOL`],
    /// and at least 2 for a stateless or keyed cell.
    pub fn max_pool(mut self, cells: usize) -> Self {
        self.max_pool = cells;
        self
    }

    /// Declares that messages of `kind` may be shed when the cell burns its
    /// error budget ([`Action::Shed`]).
    pub fn sheddable(mut self, kind: &str) -> Self {
        self.sheddable.push(kind.to_owned());
        self
    }

    /// Where the cells of isolated kinds run: their dispatcher, group and
    /// capacity (the name is ignored: an isolated kind's cell is
    /// `<cell>/<kind>`). Default: the runtime's defaults. A cell handles one
    /// message at a time, so an isolated kind never takes more than one
    /// worker from the kinds left behind; give it its own dispatcher or
    /// group to take none.
    pub fn isolate_with(mut self, config: CellConfig) -> Self {
        self.isolation = config;
        self
    }

    /// Checks the registration: variant names neither empty nor `"base"`,
    /// each registered once; `max_pool` at most [`MAX_POOL`], and at least 2
    /// for a stateless or keyed cell. [`Recomposer::manage`](crate::Recomposer::manage) calls it.
    ///
    /// # Errors
    ///
    /// The first [`RecomposableError`] found, variants first.
    pub fn validate(&self) -> Result<(), RecomposableError> {
        for (i, (name, _)) in self.variants.iter().enumerate() {
            if name == BASE || name.is_empty() {
                return Err(RecomposableError::VariantName { name: name.clone() });
            }
            if self.variants[..i].iter().any(|(other, _)| other == name) {
                return Err(RecomposableError::DuplicateVariant { name: name.clone() });
            }
        }
        let least = if self.stateless || self.is_keyed() { 2 } else { 0 };
        if !(least..=MAX_POOL).contains(&self.max_pool) {
            return Err(RecomposableError::MaxPool { value: self.max_pool });
        }
        Ok(())
    }

    fn maker(&self, variant: &str) -> Option<&Maker<M>> {
        if variant == BASE {
            return Some(&self.base);
        }
        self.variants.iter().find(|(name, _)| name == variant).map(|(_, maker)| maker)
    }
}

impl<M> Recomposable<M> {
    /// Whether the cell is registered keyed.
    fn is_keyed(&self) -> bool {
        #[cfg(feature = "storage")]
        return self.keyed.is_some();
        #[cfg(not(feature = "storage"))]
        return false;
    }
}

impl<M> std::fmt::Debug for Recomposable<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recomposable")
            .field("variants", &self.variants.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("stateless", &self.stateless)
            .field("keyed", &self.is_keyed())
            .field("max_pool", &self.max_pool)
            .field("sheddable", &self.sheddable)
            .finish_non_exhaustive()
    }
}

/// The cells serving a managed address now, for the analysis.
pub(crate) struct Sources {
    /// The managed cell: alone, the first of a pool, or the one keeping the
    /// kinds not isolated.
    pub(crate) base: Option<Arc<dyn CellControl>>,
    /// The cells of isolated kinds.
    pub(crate) isolated: Vec<Arc<dyn CellControl>>,
    /// The members a split added.
    pub(crate) members: Vec<Arc<dyn CellControl>>,
    /// A canary's cell.
    pub(crate) canary: Vec<Arc<dyn CellControl>>,
    /// Whether the address forwards to another managed cell (retired into it).
    pub(crate) forwarding: bool,
}

impl Sources {
    /// Every cell serving the address.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<dyn CellControl>> {
        self.base.iter().chain(&self.isolated).chain(&self.members).chain(&self.canary)
    }
}

/// What the engine needs of a managed cell, whatever its message type.
pub(crate) trait ManagedCell: Send + Sync + 'static {
    fn path(&self) -> &CellPath;
    fn layout(&self) -> Layout;
    fn sources(&self) -> Sources;
    fn stateless(&self) -> bool;
    /// Whether the cell is registered keyed (`Recomposable::keyed`).
    fn keyed(&self) -> bool;
    fn max_pool(&self) -> usize;
    fn variants(&self) -> Vec<String>;
    fn sheddable(&self) -> Vec<String>;
    /// Checks that `action` names what exists, without applying it.
    fn check(&self, action: &Action) -> Result<(), RecomposeError>;
    /// Applies `action`; on error the cell is as it was.
    fn apply(&self, shared: &Arc<RuntimeShared>, action: &Action) -> Result<(), RecomposeError>;
    /// Applies an action kept by an earlier run: as `apply`, but a kind
    /// the cell has not handled yet in this run may be isolated or shed
    /// (it was checked when the plan was made).
    #[cfg_attr(not(feature = "storage"), allow(dead_code))]
    fn reapply(&self, shared: &Arc<RuntimeShared>, action: &Action) -> Result<(), RecomposeError>;
    /// This cell, to find its message type.
    fn as_any(&self) -> &dyn std::any::Any;
    /// Applies [`Action::RetireInto`] with the successor's handle.
    fn retire_into(
        &self,
        shared: &Arc<RuntimeShared>,
        successor: &dyn ManagedCell,
        state: bool,
    ) -> Result<(), RecomposeError>;
}

/// The shape of one managed cell.
struct Shape<M> {
    version: u64,
    variant: String,
    /// The managed cell's own target (see [`Sources::base`]).
    base: Arc<dyn Deliver<M>>,
    /// What the slot points at when it is not `base` (a by-kind route or a
    /// router).
    wrapper: Option<Arc<dyn Deliver<M>>>,
    isolated: Vec<Isolated<M>>,
    members: Vec<Addr<M>>,
    /// The kind shed, and the address's policy before.
    shed: Option<(String, Option<Arc<Shedding<M>>>)>,
    /// A keyed pool's target (also `wrapper`); `base` is then the first
    /// member's target and `members` the others.
    #[cfg(feature = "storage")]
    keyed: Option<Arc<KeyedHandover<M>>>,
    canary: Option<CanaryRun<M>>,
    /// Names taken so far by cells still draining: the next one tried
    /// carries this number plus one.
    names: u64,
    /// The managed cell the address forwards to, once retired into it
    /// (`base` is then the forwarding target and `variant` empty).
    retired_into: Option<CellPath>,
    /// A supervised cell's entry, let go by its supervisor while the
    /// address serves a keyed pool or forwards to another cell.
    entry: Option<HandedOff>,
}

impl<M> Shape<M> {
    /// Whether the address serves a keyed pool.
    fn is_keyed(&self) -> bool {
        #[cfg(feature = "storage")]
        return self.keyed.is_some();
        #[cfg(not(feature = "storage"))]
        return false;
    }
}

/// An isolated kind's cell.
struct Isolated<M> {
    kind: String,
    addr: Addr<M>,
    variant: String,
}

impl<M> Clone for Isolated<M> {
    fn clone(&self) -> Self {
        Isolated { kind: self.kind.clone(), addr: self.addr.clone(), variant: self.variant.clone() }
    }
}

/// A canary running beside the managed cell or an isolated kind's cell.
struct CanaryRun<M> {
    kind: Option<String>,
    variant: String,
    /// The canary's cell.
    cell: Addr<M>,
    /// The share route put in front of the cell it shares with.
    route: Arc<dyn Deliver<M>>,
    /// What that address pointed at before.
    under: Arc<dyn Deliver<M>>,
}

impl<M: Send + 'static> Shape<M> {
    fn current(&self) -> Arc<dyn Deliver<M>> {
        self.wrapper.clone().unwrap_or_else(|| self.base.clone())
    }
}

/// A managed cell of message type `M`.
pub(crate) struct Managed<M> {
    addr: Addr<M>,
    spec: Recomposable<M>,
    send_timeout: Duration,
    /// The node of the cell's supervisor, for a supervised cell.
    supervisor: Option<Weak<Node>>,
    shape: Mutex<Shape<M>>,
}

/// Where the cells an action starts live, and how the cells it replaces
/// are replaced.
enum Home {
    /// Top-level cells, by the runtime's replace protocol.
    TopLevel,
    /// Run-time children of this supervisor, which the replace protocol's
    /// new cell takes the child's record from.
    Supervisor(Arc<Node>),
}

impl<M: Send + 'static> Managed<M> {
    /// Takes `addr` under management; it must be served by one cell.
    pub(crate) fn new(
        addr: &Addr<M>,
        spec: Recomposable<M>,
        send_timeout: Duration,
    ) -> Result<Self, RecomposeError> {
        spec.validate().map_err(RecomposeError::Registration)?;
        let cell = addr.path().clone();
        let target = addr.slot().current();
        if target.members().is_some() || target.control().is_none() || target.is_held() {
            return Err(RecomposeError::NotACell { cell });
        }
        let Some(control) = target.control().filter(|c| !c.is_terminated()) else {
            return Err(RecomposeError::NotACell { cell });
        };
        let supervisor = match (target.is_supervised(), control.supervisor()) {
            (false, _) => None,
            (true, Some(node)) => Some(Arc::downgrade(&node)),
            (true, None) => {
                return Err(RecomposeError::Supervised { cell, reason: "its supervisor has stopped".into() });
            }
        };
        Ok(Managed {
            addr: addr.clone(),
            spec,
            send_timeout,
            supervisor,
            shape: Mutex::new(Shape {
                version: 0,
                variant: BASE.to_owned(),
                base: target,
                wrapper: None,
                isolated: Vec::new(),
                members: Vec::new(),
                shed: None,
                canary: None,
                names: 0,
                retired_into: None,
                entry: None,
                #[cfg(feature = "storage")]
                keyed: None,
            }),
        })
    }

    /// Where the cells an action starts live: beside a top-level cell, or
    /// under the managed cell's supervisor while it runs.
    fn home(&self) -> Result<Home, RecomposeError> {
        match &self.supervisor {
            None => Ok(Home::TopLevel),
            Some(node) => node.upgrade().map(Home::Supervisor).ok_or_else(|| RecomposeError::Supervised {
                cell: self.addr.path().clone(),
                reason: "its supervisor has stopped".into(),
            }),
        }
    }

    /// Puts a cell of `maker` behind `addr` in place of the one serving it,
    /// by the replace protocol (see [`Home`]).
    fn replace_with(
        &self,
        shared: &Arc<RuntimeShared>,
        maker: &Maker<M>,
        addr: &Addr<M>,
        config: CellConfig,
    ) -> Result<(), RecomposeError> {
        match self.home()? {
            Home::TopLevel => (maker.replace)(shared, addr, config),
            Home::Supervisor(node) => {
                let Some(key) = addr.slot().current().control().map(|c| c.id()) else {
                    return Err(RecomposeError::Stopped { cell: addr.path().clone() });
                };
                (maker.replace_child)(&node, key, addr, config)
            }
        }
    }

    /// Retires the cell by `retire` (the replace protocol, into a keyed
    /// pool or a forward): a supervised cell's supervisor lets its entry go
    /// (kept in the shape until [`Managed::revive`]).
    fn retire_base(
        &self,
        shape: &mut Shape<M>,
        retire: impl FnOnce() -> Result<(), RecomposeError>,
    ) -> Result<(), RecomposeError> {
        match self.home()? {
            Home::TopLevel => retire(),
            Home::Supervisor(node) => {
                let Some(key) = shape.base.control().map(|c| c.id()) else {
                    return Err(RecomposeError::Stopped { cell: self.addr.path().clone() });
                };
                let handed = node.hand_off(key, retire).map_err(|r| refused(r, self.addr.path()))??;
                shape.entry = Some(handed);
                Ok(())
            }
        }
    }

    /// Puts a cell of `maker` behind the address by the replace protocol in
    /// place of a keyed pool or a forward; a supervised cell's entry comes
    /// back to its supervisor with it.
    fn revive(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        maker: &Maker<M>,
        config: CellConfig,
    ) -> Result<(), RecomposeError> {
        let home = self.home()?;
        match (home, shape.entry.take()) {
            (Home::Supervisor(node), Some(entry)) => (maker.take_back)(&node, entry, &self.addr, config)
                .map_err(|(entry, err)| {
                    shape.entry = Some(entry);
                    err
                }),
            (_, entry) => {
                shape.entry = entry;
                (maker.replace)(shared, &self.addr, config)
            }
        }
    }

    fn layout_error(&self, reason: impl Into<String>) -> RecomposeError {
        RecomposeError::Layout { cell: self.addr.path().clone(), reason: reason.into() }
    }

    /// Whether the base cell has seen (or its type names) `kind`.
    fn knows_kind(&self, shape: &Shape<M>, kind: &str) -> bool {
        shape.isolated.iter().any(|i| i.kind == kind)
            || shape
                .base
                .control()
                .and_then(|c| c.metrics().map(|m| m.kinds().contains(&kind)))
                .unwrap_or(false)
    }

    fn check_shape(&self, shape: &Shape<M>, action: &Action) -> Result<(), RecomposeError> {
        self.check_against(shape, action, true)
    }

    /// Checks `action` against `shape`; `known_kinds` refuses a kind the
    /// cell has not handled.
    fn check_against(
        &self,
        shape: &Shape<M>,
        action: &Action,
        known_kinds: bool,
    ) -> Result<(), RecomposeError> {
        let cell = self.addr.path();
        if let (Some(into), false) = (&shape.retired_into, matches!(action, Action::Replace { .. })) {
            return Err(self.layout_error(format!("it is retired into {into}; a Replace revives it")));
        }
        let canary_action = matches!(action, Action::Promote { .. } | Action::EndCanary { .. });
        if shape.canary.is_some() && !canary_action {
            return Err(self.layout_error("a canary runs; promote or end it first"));
        }
        let unknown_variant = |variant: &String| RecomposeError::UnknownVariant {
            cell: cell.clone(),
            variant: variant.clone(),
        };
        match action {
            Action::RetireInto { successor, .. } => {
                if successor == cell {
                    return Err(RecomposeError::Invalid {
                        reason: format!("{cell} cannot retire into itself"),
                    });
                }
                if shape.wrapper.is_some() || !shape.isolated.is_empty() || !shape.members.is_empty() {
                    return Err(self.layout_error(
                        "a split or isolated cell cannot retire; merge or retire its kinds first",
                    ));
                }
            }
            Action::Canary { kind, variant, share, .. } => {
                if !(*share > 0.0 && *share < 1.0) {
                    return Err(RecomposeError::Invalid {
                        reason: format!("a canary share of {share} is outside (0, 1)"),
                    });
                }
                if self.spec.maker(variant).is_none() {
                    return Err(unknown_variant(variant));
                }
                let serving = match kind {
                    None if shape.wrapper.is_some() => {
                        return Err(self.layout_error("a canary of a split or isolated cell needs a kind"));
                    }
                    None => &shape.variant,
                    Some(kind) => match shape.isolated.iter().find(|i| i.kind == *kind) {
                        Some(isolated) => &isolated.variant,
                        None => return Err(self.layout_error(format!("kind {kind:?} is not isolated"))),
                    },
                };
                if serving == variant {
                    return Err(self.layout_error(format!("variant {variant:?} serves it already")));
                }
            }
            Action::Promote { kind, .. } | Action::EndCanary { kind, .. } => {
                if shape.canary.as_ref().is_none_or(|c| c.kind != *kind) {
                    return Err(self.layout_error("no canary runs there"));
                }
            }
            Action::Replace { variant, .. } => {
                if self.spec.maker(variant).is_none() {
                    return Err(RecomposeError::UnknownVariant {
                        cell: cell.clone(),
                        variant: variant.clone(),
                    });
                }
                if shape.wrapper.is_some() {
                    return Err(self
                        .layout_error("a split or isolated cell cannot be replaced; merge or retire first"));
                }
                if *variant == shape.variant {
                    return Err(self.layout_error(format!("variant {variant:?} serves it already")));
                }
            }
            Action::Split { into, by, .. } => {
                let registered = match by {
                    SplitBy::Stateless => self.spec.stateless,
                    SplitBy::Key => self.spec.is_keyed(),
                };
                if !registered {
                    let as_what = match by {
                        SplitBy::Stateless => "stateless",
                        SplitBy::Key => "keyed",
                    };
                    return Err(self.layout_error(format!("it is not registered as {as_what}")));
                }
                if *into < 2 || *into > self.spec.max_pool {
                    return Err(RecomposeError::Invalid {
                        reason: format!("a pool of {into}: it must hold 2 to {} cells", self.spec.max_pool),
                    });
                }
                if !shape.members.is_empty() || !shape.isolated.is_empty() {
                    return Err(self.layout_error("it is already split or has isolated kinds"));
                }
            }
            Action::Isolate { kind, .. } => {
                if !shape.members.is_empty() {
                    return Err(self.layout_error("a pool cannot isolate a kind; merge first"));
                }
                if shape.isolated.iter().any(|i| i.kind == *kind) {
                    return Err(self.layout_error(format!("kind {kind:?} is isolated already")));
                }
                if known_kinds && !self.knows_kind(shape, kind) {
                    return Err(RecomposeError::UnknownKind { cell: cell.clone(), kind: kind.clone() });
                }
            }
            Action::Retire { kind, successor, .. } => {
                let Some(isolated) = shape.isolated.iter().find(|i| i.kind == *kind) else {
                    return Err(self.layout_error(format!("kind {kind:?} is not isolated")));
                };
                if isolated.addr.slot().current().is_held() {
                    return Err(RecomposeError::InProgress { cell: cell.clone() });
                }
                if let Some(variant) = successor {
                    if self.spec.maker(variant).is_none() {
                        return Err(unknown_variant(variant));
                    }
                    if isolated.variant == *variant {
                        return Err(
                            self.layout_error(format!("variant {variant:?} serves kind {kind:?} already"))
                        );
                    }
                }
            }
            Action::Merge { .. } => {
                if shape.members.is_empty() {
                    return Err(self.layout_error("it is not a pool"));
                }
                if shape.is_keyed() && shape.current().is_held() {
                    return Err(self.layout_error("its split by key is still handing over to the pool"));
                }
            }
            Action::Shed { kind, watermark, .. } => {
                if !(*watermark > 0.0 && *watermark <= 1.0) {
                    return Err(RecomposeError::Invalid {
                        reason: format!("watermark {watermark} is outside (0, 1]"),
                    });
                }
                if shape.shed.is_some() {
                    return Err(self.layout_error("it sheds a kind already"));
                }
                if known_kinds && !self.knows_kind(shape, kind) {
                    return Err(RecomposeError::UnknownKind { cell: cell.clone(), kind: kind.clone() });
                }
            }
            Action::Admit { .. } => {
                if shape.shed.is_none() {
                    return Err(self.layout_error("it sheds nothing"));
                }
            }
        }
        Ok(())
    }

    /// Points the address at `new` in place of what the shape says it
    /// points at.
    fn swap(&self, shape: &Shape<M>, new: Arc<dyn Deliver<M>>) -> Result<(), RecomposeError> {
        self.addr
            .slot()
            .swap(&shape.current(), new)
            .map_err(|_| self.layout_error("its address was changed outside recomposition"))
    }

    fn kind_route(&self, shape: &Shape<M>, isolated: &[Isolated<M>]) -> Arc<dyn Deliver<M>> {
        if isolated.is_empty() {
            return shape.base.clone();
        }
        let isolated = isolated.iter().map(|i| (i.kind.clone(), i.addr.clone())).collect();
        Arc::new(KindRoute::new(self.spec.kind_of, isolated, shape.base.clone()))
    }

    fn isolate(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        kind: &str,
    ) -> Result<(), RecomposeError> {
        let name: String = kind.chars().map(|c| if c == '/' || c.is_control() { '_' } else { c }).collect();
        let name = if name.starts_with('#') { format!("kind{name}") } else { name };
        // Held: it takes what it is sent from the swap on, and handles it
        // after the messages of its kind that were queued at the cell.
        let cell = self.spawn_beside(
            shape,
            &self.spec.base,
            shared,
            self.addr.path(),
            &name,
            (self.spec.isolation.clone(), Start::Held),
        )?;
        let target = cell.slot().current();
        let mut isolated = shape.isolated.clone();
        isolated.push(Isolated { kind: kind.to_owned(), addr: cell.clone(), variant: BASE.to_owned() });
        let route = self.kind_route(shape, &isolated);
        if let Err(err) = self.swap(shape, route.clone()) {
            target.release(Vec::new());
            drain(&cell);
            return Err(err);
        }
        shape.wrapper = Some(route);
        shape.isolated = isolated;
        // The cell moves the kind's queued messages over between two of its
        // own messages (see `Deliver::regroup`).
        offer_kind_move(&shape.base, kind_regroup(self.spec.kind_of, kind, target));
        Ok(())
    }

    fn retire(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        kind: &str,
        successor: Option<&str>,
    ) -> Result<(), RecomposeError> {
        let mut isolated = shape.isolated.clone();
        let Some(index) = isolated.iter().position(|i| i.kind == kind) else {
            return Err(self.layout_error(format!("kind {kind:?} is not isolated")));
        };
        if let Some(variant) = successor {
            let entry = &mut shape.isolated[index];
            self.replace_at(shared, &entry.addr, variant)?;
            entry.variant = variant.to_owned();
            return Ok(());
        }
        let Isolated { addr: cell, .. } = isolated.remove(index);
        let route = self.kind_route(shape, &isolated);
        self.swap(shape, route.clone())?;
        shape.wrapper = (!isolated.is_empty()).then_some(route);
        shape.isolated = isolated;
        drain(&cell);
        Ok(())
    }

    /// Replaces the cell behind `addr` with a new cell of `variant`.
    fn replace_at(
        &self,
        shared: &Arc<RuntimeShared>,
        addr: &Addr<M>,
        variant: &str,
    ) -> Result<(), RecomposeError> {
        let Some(maker) = self.spec.maker(variant) else {
            return Err(RecomposeError::UnknownVariant {
                cell: self.addr.path().clone(),
                variant: variant.to_owned(),
            });
        };
        self.replace_with(shared, maker, addr, CellConfig::new())
    }

    /// The address a canary of `kind` shares: the managed cell's, or the
    /// isolated kind's cell's.
    fn canary_target(&self, shape: &Shape<M>, kind: &Option<String>) -> Result<Addr<M>, RecomposeError> {
        match kind {
            None => Ok(self.addr.clone()),
            Some(kind) => shape
                .isolated
                .iter()
                .find(|i| i.kind == *kind)
                .map(|i| i.addr.clone())
                .ok_or_else(|| self.layout_error(format!("kind {kind:?} is not isolated"))),
        }
    }

    fn start_canary(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        kind: &Option<String>,
        variant: &str,
        share: f64,
    ) -> Result<(), RecomposeError> {
        let target = self.canary_target(shape, kind)?;
        let Some(maker) = self.spec.maker(variant) else {
            return Err(RecomposeError::UnknownVariant {
                cell: self.addr.path().clone(),
                variant: variant.to_owned(),
            });
        };
        // On the runtime's defaults, not beside the cell it is compared
        // with: sharing that cell's dispatcher would measure the sharing.
        let cell = self.spawn_beside(
            shape,
            maker,
            shared,
            target.path(),
            "canary",
            (CellConfig::new(), Start::Ready),
        )?;
        let under = target.slot().current();
        let route: Arc<dyn Deliver<M>> = Arc::new(ShareRoute::new(share, cell.clone(), under.clone()));
        if target.slot().swap(&under, route.clone()).is_err() {
            drain(&cell);
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        shape.canary =
            Some(CanaryRun { kind: kind.clone(), variant: variant.to_owned(), cell, route, under });
        Ok(())
    }

    /// Ends the canary; with `promote`, its variant then replaces the cell it
    /// shared with.
    fn end_canary(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        promote: bool,
    ) -> Result<(), RecomposeError> {
        let Some(run) = shape.canary.take() else {
            return Err(self.layout_error("no canary runs there"));
        };
        let target = self.canary_target(shape, &run.kind)?;
        if target.slot().swap(&run.route, run.under.clone()).is_err() {
            shape.canary = Some(run);
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        drain(&run.cell);
        if promote {
            self.replace_at(shared, &target, &run.variant)?;
            match &run.kind {
                None => {
                    shape.base = self.addr.slot().current();
                    shape.variant = run.variant;
                }
                Some(kind) => {
                    if let Some(isolated) = shape.isolated.iter_mut().find(|i| i.kind == *kind) {
                        isolated.variant = run.variant;
                    }
                }
            }
        }
        Ok(())
    }

    fn split(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        into: usize,
    ) -> Result<(), RecomposeError> {
        let path = self.addr.path();
        let first = Addr::from_slot(Arc::new(Slot::new(shape.base.clone(), path.clone(), self.send_timeout)));
        let mut added = Vec::with_capacity(into - 1);
        for n in 1..into {
            let config = (CellConfig::new(), Start::Ready);
            match self.spawn_beside(shape, &self.spec.base, shared, path, &n.to_string(), config) {
                Ok(addr) => added.push(addr),
                Err(err) => {
                    added.iter().for_each(drain);
                    return Err(err);
                }
            }
        }
        let mut members = vec![first];
        members.extend(added.iter().cloned());
        let timeout = self.send_timeout;
        let router = Router::new(Routing::round_robin(), members, |target| {
            Addr::from_slot(Arc::new(Slot::new(target, path.clone(), timeout)))
        });
        let router = match router {
            Ok(router) => router,
            Err(err) => {
                added.iter().for_each(drain);
                return Err(RecomposeError::Invalid { reason: err.to_string() });
            }
        };
        let target = router.target();
        if let Err(err) = self.swap(shape, target.clone()) {
            added.iter().for_each(drain);
            return Err(err);
        }
        shape.wrapper = Some(target);
        shape.members = added;
        Ok(())
    }

    fn merge(&self, shape: &mut Shape<M>) -> Result<(), RecomposeError> {
        self.swap(shape, shape.base.clone())?;
        shape.wrapper = None;
        std::mem::take(&mut shape.members).iter().for_each(drain);
        Ok(())
    }

    /// Retires the cell into a keyed pool of `into` new cells; see
    /// `partition.rs`. Every tree opens before anything changes.
    #[cfg(feature = "storage")]
    fn split_by_key(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        into: usize,
    ) -> Result<(), RecomposeError> {
        let Some(hash) = self.spec.keyed.clone() else {
            return Err(self.layout_error("it is not registered as keyed"));
        };
        let Some(maker) = self.spec.maker(&shape.variant) else {
            return Err(RecomposeError::UnknownVariant {
                cell: self.addr.path().clone(),
                variant: shape.variant.clone(),
            });
        };
        let path = self.addr.path();
        let tree = |path: &CellPath| {
            shared.store(path).map_err(|error| RecomposeError::Storage { cell: path.clone(), error })
        };
        let base = tree(path)?;
        let mut paths = Vec::with_capacity(into);
        let mut trees = Vec::with_capacity(into);
        for n in 0..into {
            let member =
                path.child(&n.to_string()).map_err(|e| RecomposeError::Invalid { reason: e.to_string() })?;
            trees.push(tree(&member)?);
            paths.push(member);
        }
        if !Arc::ptr_eq(&self.addr.slot().current(), &shape.base) || shape.base.is_held() {
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        // Held: they queue what the handover routes to them and handle
        // nothing until it releases them with their keys' state. Each has
        // the cell's capacity.
        let config = CellConfig::new().capacity((shape.base.capacity() / maker.lanes).max(1));
        let mut members: Vec<Addr<M>> = Vec::with_capacity(into);
        let discard = |members: &[Addr<M>]| {
            for member in members {
                member.slot().current().release(Vec::new());
                drain(member);
            }
        };
        let home = self.home()?;
        for member in paths {
            let spawned = match &home {
                Home::TopLevel => (maker.spawn_held)(shared, member, config.clone()),
                Home::Supervisor(node) => (maker.spawn_child)(node, member, (config.clone(), Start::Held)),
            };
            match spawned {
                Ok(addr) => members.push(addr),
                Err(err) => {
                    discard(&members);
                    return Err(err);
                }
            }
        }
        let handover =
            KeyedHandover::new(hash, members.clone(), trees, base, path.clone(), self.send_timeout);
        let handover = match handover {
            Ok(handover) => Arc::new(handover),
            Err(err) => {
                discard(&members);
                return Err(RecomposeError::Invalid { reason: err.to_string() });
            }
        };
        let target: Arc<dyn Deliver<M>> = handover.clone();
        let retired = self.retire_base(shape, || {
            self.addr
                .slot()
                .replace(target.clone())
                .map_err(|_| self.layout_error("its cell is still taking over from a predecessor"))
        });
        if let Err(err) = retired {
            discard(&members);
            return Err(err);
        }
        shape.base = members[0].slot().current();
        shape.wrapper = Some(target);
        shape.members = members[1..].to_vec();
        shape.keyed = Some(handover);
        Ok(())
    }

    /// Retires a keyed pool into a new cell at the managed cell's path, by
    /// the replace protocol; see `partition.rs`.
    #[cfg(feature = "storage")]
    fn merge_keyed(&self, shared: &Arc<RuntimeShared>, shape: &mut Shape<M>) -> Result<(), RecomposeError> {
        let Some(maker) = self.spec.maker(&shape.variant) else {
            return Err(RecomposeError::UnknownVariant {
                cell: self.addr.path().clone(),
                variant: shape.variant.clone(),
            });
        };
        if !Arc::ptr_eq(&self.addr.slot().current(), &shape.current()) {
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        // One member's capacity: what the cell had before the split.
        let config = CellConfig::new().capacity((shape.base.capacity() / maker.lanes).max(1));
        self.revive(shared, shape, maker, config)?;
        shape.base = self.addr.slot().current();
        shape.wrapper = None;
        shape.members.clear();
        shape.keyed = None;
        Ok(())
    }

    fn replace(
        &self,
        shared: &Arc<RuntimeShared>,
        shape: &mut Shape<M>,
        variant: &str,
    ) -> Result<(), RecomposeError> {
        let Some(maker) = self.spec.maker(variant) else {
            return Err(RecomposeError::UnknownVariant {
                cell: self.addr.path().clone(),
                variant: variant.to_owned(),
            });
        };
        if !Arc::ptr_eq(&self.addr.slot().current(), &shape.base) {
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        if shape.retired_into.is_some() {
            self.revive(shared, shape, maker, CellConfig::new())?;
        } else {
            self.replace_with(shared, maker, &self.addr, CellConfig::new())?;
        }
        shape.base = self.addr.slot().current();
        shape.variant = variant.to_owned();
        shape.retired_into = None;
        Ok(())
    }

    fn shed(&self, shape: &mut Shape<M>, kind: &str, watermark: f64) -> Result<(), RecomposeError> {
        let kind_of = self.spec.kind_of;
        let shed_kind = kind.to_owned();
        let policy = Shedding::new(move |msg: &M| u8::from(kind_of(msg) != shed_kind))
            .watermark(0, watermark)
            .map_err(|e| RecomposeError::Invalid { reason: e.to_string() })?;
        let previous = self.addr.slot().shedding();
        self.addr.slot().set_shedding(Some(Arc::new(policy)));
        shape.shed = Some((kind.to_owned(), previous));
        Ok(())
    }

    fn admit(&self, shape: &mut Shape<M>) {
        if let Some((_, previous)) = shape.shed.take() {
            self.addr.slot().set_shedding(previous);
        }
    }
}

/// Whether the cell behind `target` is gone: no lifecycle handle (a
/// forwarding target), or terminated.
fn gone<M: Send + 'static>(target: &Arc<dyn Deliver<M>>) -> bool {
    target.control().is_none_or(|c| c.is_terminated())
}

/// How many names [`Managed::spawn_beside`] tries.
const NAME_TRIES: usize = 16;

/// Whether a cell is spawned ready or held (it handles nothing until released).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Start {
    Ready,
    Held,
}

impl<M: Send + 'static> Managed<M> {
    /// Spawns a cell of `maker` at `<parent>/<name>`; while that path is
    /// still taken (a cell of an earlier change still draining), at
    /// `<parent>/<name>-<n>` with `n` from the shape's counter, which only
    /// grows, so a path freed late is not tried again.
    fn spawn_beside(
        &self,
        shape: &mut Shape<M>,
        maker: &Maker<M>,
        shared: &Arc<RuntimeShared>,
        parent: &CellPath,
        name: &str,
        (config, start): (CellConfig, Start),
    ) -> Result<Addr<M>, RecomposeError> {
        let home = self.home()?;
        let spawn = |path: CellPath| match &home {
            Home::TopLevel if start == Start::Held => (maker.spawn_held)(shared, path, config.clone()),
            Home::TopLevel => (maker.spawn_at)(shared, path, config.clone()),
            Home::Supervisor(node) => (maker.spawn_child)(node, path, (config.clone(), start)),
        };
        let mut candidate = name.to_owned();
        let mut last = None;
        for _ in 0..NAME_TRIES {
            let path = parent.child(&candidate).map_err(|e| RecomposeError::Invalid {
                reason: format!("{candidate:?} does not make a cell name: {e}"),
            })?;
            match spawn(path) {
                Err(RecomposeError::Spawn {
                    error: crate::runtime::SpawnError::NameTaken { path }, ..
                }) => {
                    last = Some(path);
                    shape.names += 1;
                    candidate = format!("{name}-{}", shape.names + 1);
                }
                other => return other,
            }
        }
        let path = last.unwrap_or_else(|| parent.clone());
        Err(RecomposeError::Spawn {
            cell: path.clone(),
            error: crate::runtime::SpawnError::NameTaken { path },
        })
    }
}

/// The regroup step of an isolate: the queued messages of `kind` go to
/// `target` (held until then, so they come before what it was sent since),
/// the others stay, in their order.
pub(crate) fn kind_regroup<M: Send + 'static>(
    kind_of: fn(&M) -> &'static str,
    kind: &str,
    target: Arc<dyn Deliver<M>>,
) -> Regroup<M> {
    let kind = kind.to_owned();
    Box::new(move |queued| {
        let (moved, kept): (Vec<_>, Vec<_>) = queued.into_iter().partition(|envelope: &Envelope<M>| {
            // A panicking `message_kind` leaves the message where it is.
            catch_unwind(AssertUnwindSafe(|| kind_of(&envelope.msg))).is_ok_and(|k| k == kind)
        });
        target.release(moved);
        kept
    })
}

/// Asks `base` to run `regroup` at its next system check; a cell that has
/// stopped has nothing queued to move, and the step runs on nothing (which
/// releases the cell it moves messages to).
pub(crate) fn offer_kind_move<M: Send + 'static>(base: &Arc<dyn Deliver<M>>, regroup: Regroup<M>) {
    if let Err(regroup) = base.regroup(regroup) {
        let kept = regroup(Vec::new());
        debug_assert!(kept.is_empty());
    }
}

/// Closes `addr`'s cell to new messages; it handles what it holds, then
/// stops.
fn drain<M: Send + 'static>(addr: &Addr<M>) {
    if let Some(control) = addr.slot().current().control() {
        control.send_system(SystemMsg::Drain);
    }
}

impl<M: Send + 'static> ManagedCell for Managed<M> {
    fn path(&self) -> &CellPath {
        self.addr.path()
    }

    fn layout(&self) -> Layout {
        let shape = self.shape.lock();
        Layout {
            cell: self.addr.path().clone(),
            variant: shape.variant.clone(),
            pool: 1 + shape.members.len(),
            isolated: shape
                .isolated
                .iter()
                .map(|i| IsolatedKind {
                    kind: i.kind.clone(),
                    cell: i.addr.path().clone(),
                    variant: i.variant.clone(),
                })
                .collect(),
            canary: shape.canary.as_ref().map(|c| (c.kind.clone(), c.variant.clone())),
            retired_into: shape.retired_into.clone(),
            keyed: shape.is_keyed(),
            shedding: shape.shed.as_ref().map(|(k, _)| k.clone()),
            version: shape.version,
        }
    }

    fn sources(&self) -> Sources {
        let shape = self.shape.lock();
        let control = |addr: &Addr<M>| addr.slot().current().control();
        Sources {
            base: shape.base.control(),
            isolated: shape.isolated.iter().filter_map(|i| control(&i.addr)).collect(),
            members: shape.members.iter().filter_map(control).collect(),
            canary: shape.canary.iter().filter_map(|c| control(&c.cell)).collect(),
            forwarding: shape.retired_into.is_some(),
        }
    }

    fn stateless(&self) -> bool {
        self.spec.stateless
    }

    fn keyed(&self) -> bool {
        self.spec.is_keyed()
    }

    fn max_pool(&self) -> usize {
        self.spec.max_pool
    }

    fn variants(&self) -> Vec<String> {
        self.spec.variants.iter().map(|(name, _)| name.clone()).collect()
    }

    fn sheddable(&self) -> Vec<String> {
        self.spec.sheddable.clone()
    }

    fn check(&self, action: &Action) -> Result<(), RecomposeError> {
        if action.cell() != self.addr.path() {
            return Err(RecomposeError::UnknownCell { cell: action.cell().clone() });
        }
        self.check_shape(&self.shape.lock(), action)
    }

    fn apply(&self, shared: &Arc<RuntimeShared>, action: &Action) -> Result<(), RecomposeError> {
        self.apply_checked(shared, action, true)
    }

    fn reapply(&self, shared: &Arc<RuntimeShared>, action: &Action) -> Result<(), RecomposeError> {
        self.apply_checked(shared, action, false)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    #[cfg_attr(not(feature = "storage"), allow(unused_variables))]
    fn retire_into(
        &self,
        shared: &Arc<RuntimeShared>,
        successor: &dyn ManagedCell,
        state: bool,
    ) -> Result<(), RecomposeError> {
        let cell = self.addr.path().clone();
        let Some(into) = successor.as_any().downcast_ref::<Managed<M>>() else {
            return Err(RecomposeError::Invalid {
                reason: format!("{} handles another message type than {cell}", successor.path()),
            });
        };
        if into.shape.lock().retired_into.is_some() {
            return Err(RecomposeError::Layout {
                cell: into.addr.path().clone(),
                reason: "the successor is itself retired".into(),
            });
        }
        let action = Action::RetireInto { cell: cell.clone(), successor: into.addr.path().clone(), state };
        let mut shape = self.shape.lock();
        if let Some(into) = &shape.retired_into {
            return Err(self.layout_error(format!("it is retired into {into} already")));
        }
        if gone(&shape.base) {
            return Err(RecomposeError::Stopped { cell });
        }
        self.check_against(&shape, &action, true)?;
        #[cfg(not(feature = "storage"))]
        if state {
            return Err(RecomposeError::Invalid {
                reason: "moving stored state needs the `storage` feature".into(),
            });
        }
        #[cfg(feature = "storage")]
        if state {
            shared.store(&cell).map_err(|error| RecomposeError::Storage { cell: cell.clone(), error })?;
        }
        let forward: Arc<dyn Deliver<M>> = Arc::new(Forward {
            to: into.addr.clone(),
            #[cfg(feature = "storage")]
            state: state.then(|| (shared.clone(), cell.clone())),
        });
        if !Arc::ptr_eq(&self.addr.slot().current(), &shape.base) {
            return Err(self.layout_error("its address was changed outside recomposition"));
        }
        // The replace protocol: the cell finishes its message, then hands
        // what it holds to the forwarding target, which passes it on.
        self.retire_base(&mut shape, || {
            self.addr
                .slot()
                .replace(forward.clone())
                .map_err(|_| RecomposeError::InProgress { cell: cell.clone() })
        })?;
        shape.base = forward;
        shape.variant = String::new();
        shape.retired_into = Some(into.addr.path().clone());
        shape.version += 1;
        Ok(())
    }
}

impl<M: Send + 'static> Managed<M> {
    fn apply_checked(
        &self,
        shared: &Arc<RuntimeShared>,
        action: &Action,
        known_kinds: bool,
    ) -> Result<(), RecomposeError> {
        if shared.is_shutting_down() {
            return Err(RecomposeError::ShutDown);
        }
        if action.cell() != self.addr.path() {
            return Err(RecomposeError::UnknownCell { cell: action.cell().clone() });
        }
        let mut shape = self.shape.lock();
        if let (Some(into), false) = (&shape.retired_into, matches!(action, Action::Replace { .. })) {
            return Err(self.layout_error(format!("it is retired into {into}; a Replace revives it")));
        }
        let revives = matches!(action, Action::Replace { .. } | Action::Promote { kind: None, .. });
        let pool = !shape.members.is_empty() || shape.is_keyed();
        if !revives && !pool && gone(&shape.base) {
            return Err(RecomposeError::Stopped { cell: self.addr.path().clone() });
        }
        self.check_against(&shape, action, known_kinds)?;
        match action {
            Action::Replace { variant, .. } => self.replace(shared, &mut shape, variant)?,
            Action::Split { into, by: SplitBy::Stateless, .. } => self.split(shared, &mut shape, *into)?,
            #[cfg(feature = "storage")]
            Action::Split { into, by: SplitBy::Key, .. } => self.split_by_key(shared, &mut shape, *into)?,
            #[cfg(not(feature = "storage"))]
            Action::Split { by: SplitBy::Key, .. } => {
                return Err(self.layout_error("it is not registered as keyed"));
            }
            Action::Isolate { kind, .. } => self.isolate(shared, &mut shape, kind)?,
            Action::Retire { kind, successor, .. } => {
                self.retire(shared, &mut shape, kind, successor.as_deref())?
            }
            Action::Canary { kind, variant, share, .. } => {
                self.start_canary(shared, &mut shape, kind, variant, *share)?
            }
            Action::RetireInto { .. } => {
                return Err(RecomposeError::Invalid {
                    reason: "retiring into another cell is applied by the engine, which knows that cell"
                        .into(),
                });
            }
            Action::Promote { .. } => self.end_canary(shared, &mut shape, true)?,
            Action::EndCanary { .. } => self.end_canary(shared, &mut shape, false)?,
            #[cfg(feature = "storage")]
            Action::Merge { .. } if shape.is_keyed() => self.merge_keyed(shared, &mut shape)?,
            Action::Merge { .. } => self.merge(&mut shape)?,
            Action::Shed { kind, watermark, .. } => self.shed(&mut shape, kind, *watermark)?,
            Action::Admit { .. } => self.admit(&mut shape),
        }
        shape.version += 1;
        Ok(())
    }
}

/// What an address points at once kinds are isolated: messages of an
/// isolated kind go to that kind's cell, every other message to the
/// managed cell. The loom model `loom-tests/tests/recompose_apply.rs`
/// checks it against senders racing the swap.
pub(crate) struct KindRoute<M> {
    kind_of: fn(&M) -> &'static str,
    isolated: Vec<(String, Addr<M>)>,
    rest: Arc<dyn Deliver<M>>,
}

impl<M: Send + 'static> KindRoute<M> {
    /// A route sending each kind in `isolated` to its address, the rest to `rest`.
    pub(crate) fn new(
        kind_of: fn(&M) -> &'static str,
        isolated: Vec<(String, Addr<M>)>,
        rest: Arc<dyn Deliver<M>>,
    ) -> Self {
        KindRoute { kind_of, isolated, rest }
    }

    #[inline]
    fn owner(&self, msg: &M) -> Option<&Addr<M>> {
        let kind = (self.kind_of)(msg);
        self.isolated.iter().find(|(k, _)| k == kind).map(|(_, addr)| addr)
    }
}

impl<M: Send + 'static> Deliver<M> for KindRoute<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        match self.owner(&msg) {
            Some(addr) => addr.try_send(msg),
            None => self.rest.try_deliver(msg),
        }
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        match self.owner(&msg) {
            Some(addr) => addr.try_send_by(msg, deadline),
            None => self.rest.try_deliver_until(msg, deadline),
        }
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        match self.owner(msg) {
            Some(addr) => addr.slot().current().wait_for_space(msg, deadline),
            None => self.rest.wait_for_space(msg, deadline),
        }
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        match self.owner(msg) {
            Some(addr) => addr.slot().current().register_for_space(msg, waiter, waker),
            None => self.rest.register_for_space(msg, waiter, waker),
        }
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        // Replaced from outside (`Runtime::replace`): the managed cell hands
        // over what it holds; the isolated cells keep what was routed to them.
        self.rest.hand_over(successor);
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        // A by-kind route is installed by a swap, never as a successor;
        // should one be moved here, each message goes where its kind goes.
        for Envelope { msg, stamp } in moved {
            let result = match stamp.and_then(|stamp| stamp.deadline()) {
                Some(deadline) => self.try_deliver_until(msg, deadline),
                None => self.try_deliver(msg),
            };
            if let Err(err) = result {
                tracing::error!(error = %err, "message moved to a by-kind route was refused");
            }
        }
    }

    fn is_held(&self) -> bool {
        self.rest.is_held()
    }

    fn queued(&self) -> usize {
        self.rest.queued() + self.isolated.iter().map(|(_, a)| a.queued()).sum::<usize>()
    }

    fn capacity(&self) -> usize {
        self.rest.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        self.rest.control()
    }

    fn is_supervised(&self) -> bool {
        false
    }

    fn note_shed(&self) {
        self.rest.note_shed();
    }
}

/// What an address points at while a canary runs: one message in
/// `1 / share` goes to the canary's cell, the rest to the cell it shares
/// with. A message the canary refuses (full, or stopped) goes to the rest.
struct ShareRoute<M> {
    /// Messages seen, to spread the share evenly.
    seen: AtomicU64,
    share: f64,
    canary: Addr<M>,
    rest: Arc<dyn Deliver<M>>,
}

impl<M: Send + 'static> ShareRoute<M> {
    fn new(share: f64, canary: Addr<M>, rest: Arc<dyn Deliver<M>>) -> Self {
        ShareRoute { seen: AtomicU64::new(0), share, canary, rest }
    }

    /// Whether the next message is the canary's: when `n × share` crosses
    /// a whole number.
    fn canary_turn(&self) -> bool {
        let n = self.seen.fetch_add(1, Relaxed) as f64;
        ((n + 1.0) * self.share).floor() > (n * self.share).floor()
    }

    fn deliver(&self, msg: M, deadline: Option<Instant>) -> Result<(), SendError<M>> {
        let msg = if self.canary_turn() {
            let sent = match deadline {
                Some(deadline) => self.canary.try_send_by(msg, deadline),
                None => self.canary.try_send(msg),
            };
            match sent {
                Ok(()) => return Ok(()),
                Err(err) => err.into_inner(),
            }
        } else {
            msg
        };
        match deadline {
            Some(deadline) => self.rest.try_deliver_until(msg, deadline),
            None => self.rest.try_deliver(msg),
        }
    }
}

impl<M: Send + 'static> Deliver<M> for ShareRoute<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.deliver(msg, None)
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.deliver(msg, Some(deadline))
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        self.rest.wait_for_space(msg, deadline)
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.rest.register_for_space(msg, waiter, waker)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        self.rest.hand_over(successor);
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        for Envelope { msg, stamp } in moved {
            if let Err(err) = self.deliver(msg, stamp.and_then(|stamp| stamp.deadline())) {
                tracing::error!(error = %err, "message moved to a canary route was refused");
            }
        }
    }

    fn is_held(&self) -> bool {
        self.rest.is_held()
    }

    fn queued(&self) -> usize {
        self.rest.queued() + self.canary.queued()
    }

    fn capacity(&self) -> usize {
        self.rest.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        self.rest.control()
    }

    fn is_supervised(&self) -> bool {
        false
    }

    fn note_shed(&self) {
        self.rest.note_shed();
    }
}

/// What a retired cell's address points at: every message goes to the
/// successor's address. It receives the retired cell's leftovers (the
/// replace protocol) and passes them to the successor ahead of its queue,
/// moving the retired cell's stored entries first when asked to.
struct Forward<M> {
    to: Addr<M>,
    /// The runtime and the retired cell's path, when its state moves too.
    #[cfg(feature = "storage")]
    state: Option<(Arc<RuntimeShared>, CellPath)>,
}

impl<M: Send + 'static> Forward<M> {
    /// Moves the retired cell's entries to the successor's tree, leaving a
    /// key the successor already has where it was.
    #[cfg(feature = "storage")]
    fn move_state(&self) {
        let Some((shared, from)) = &self.state else { return };
        let moved = shared.store(from).and_then(|from_tree| {
            let to_tree = shared.store(self.to.path())?;
            let mut moved = 0;
            for entry in from_tree.scan_prefix_bytes([]) {
                let (key, value) = entry?;
                if to_tree.get_bytes(key.as_slice())?.is_some() {
                    tracing::warn!(from = %from, to = %self.to.path(), "a stored key the successor already has stays behind");
                    continue;
                }
                to_tree.put_bytes(key.as_slice(), value)?;
                from_tree.remove(key.as_slice())?;
                moved += 1;
            }
            to_tree.flush()?;
            from_tree.flush()?;
            Ok(moved)
        });
        match moved {
            Ok(moved) => tracing::debug!(from = %from, to = %self.to.path(), moved, "stored state moved"),
            Err(err) => tracing::error!(from = %from, to = %self.to.path(), %err, "stored state not moved"),
        }
    }
}

impl<M: Send + 'static> Deliver<M> for Forward<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.to.try_send(msg)
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.to.try_send_by(msg, deadline)
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        self.to.slot().current().wait_for_space(msg, deadline)
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.to.slot().current().register_for_space(msg, waiter, waker)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        // Revived by a replace: nothing is held here.
        successor.release(Vec::new());
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        #[cfg(feature = "storage")]
        self.move_state();
        self.to.slot().current().release(moved);
    }

    fn is_held(&self) -> bool {
        false
    }

    fn queued(&self) -> usize {
        self.to.queued()
    }

    fn capacity(&self) -> usize {
        self.to.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        None
    }

    fn is_supervised(&self) -> bool {
        false
    }
}
