//! Routers: what an address points to instead of a single cell.
//!
//! A [`Router`] spreads the messages sent to its address over member
//! addresses by a [`Routing`]: round-robin, least-loaded (by mailbox
//! depth), consistent hash on a key taken from the message, or broadcast.
//! Members are addresses, so a member can itself be replaced, shed, or be
//! another router.
//!
//! # Changing members while messages flow
//!
//! Sends hold the member list's read lock for one non-blocking delivery;
//! [`Router::add`] and [`Router::remove`] take the write lock. A message is
//! therefore delivered to exactly one member (all of them, for broadcast)
//! of the list as it was when the send began. A removed member is not
//! stopped: it keeps and handles what it was sent before its removal, so
//! nothing is lost or handled twice; stop it when it has drained if it is
//! no longer needed. With a consistent hash, the keys of a removed member
//! move to the others; messages of one key sent before and after the change
//! may then be handled concurrently by the old and the new member.
//!
//! # Delivery when a member cannot take a message
//!
//! - Round-robin and least-loaded offer a message refused as full, closed
//!   or shed to the other members, in turn; the send fails only if every
//!   member refused (with `Full` if any member was full, else `Shed` if any
//!   shed it, else `Closed`).
//! - A consistent hash keeps its key's member while that member is full
//!   (`Full` comes back: the key's order matters more than spreading) and
//!   moves on along the ring past members that are closed.
//! - Broadcast offers a copy to every member; the send succeeds if at least
//!   one member took it. Members that refused are counted
//!   ([`RouterStats::broadcast_missed`]) and reported in a `tracing` warning.
//! - A key extractor that panics does not unwind into the sender: the message
//!   is routed round-robin instead and the panic is counted
//!   ([`RouterStats::key_panics`]).

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(any(feature = "tokio", cellrt_loom))]
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::address::{Addr, Deliver};
#[cfg(any(feature = "tokio", cellrt_loom))]
use crate::mailbox::SpaceWaiter;
use crate::mailbox::{Envelope, SendError};
use crate::path::CellPath;
use crate::runtime::CellControl;
use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use crate::sync::{Arc, RwLock};

/// A hash of `parts` that is the same on every platform and every Rust
/// release: FNV-1a over the bytes, then the SplitMix64 finalizer to spread
/// it over the ring. The ring's points and a keyed pool's key hashes use it,
/// so that keys find the same owner after a restart (where stored state
/// waits for them).
pub(crate) fn stable_hash(parts: &[&[u8]]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // Parts are delimited, so ("ab", "c") and ("a", "bc") differ.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    }
    let mut z = hash.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Points on the hash ring per member.
const RING_POINTS: u32 = 160;

/// How long a blocking send through a router waits on one member for room
/// before it offers the message to the members again.
const WAIT_SLICE: Duration = Duration::from_millis(5);

type KeyHash<M> = Box<dyn Fn(&M) -> u64 + Send + Sync>;

/// How a [`Router`] chooses members for a message.
pub struct Routing<M> {
    kind: Kind<M>,
}

enum Kind<M> {
    RoundRobin,
    LeastLoaded,
    ConsistentHash(KeyHash<M>),
    Broadcast(fn(&M) -> M),
}

impl<M> Routing<M> {
    /// Each message to the next member in turn.
    pub fn round_robin() -> Self {
        Routing { kind: Kind::RoundRobin }
    }

    /// Each message to the member with the fewest messages waiting (the
    /// first such member in the list on a tie).
    pub fn least_loaded() -> Self {
        Routing { kind: Kind::LeastLoaded }
    }

    /// Each message to the member owning `key(msg)` on a hash ring (160
    /// points per member, placed by the member's path): messages with equal
    /// keys go to the same member, and adding or removing one of `n`
    /// members moves about `1/n` of the keys.
    pub fn consistent_hash<K: Hash>(key: impl Fn(&M) -> K + Send + Sync + 'static) -> Self {
        Routing {
            kind: Kind::ConsistentHash(Box::new(move |msg| {
                let mut hasher = DefaultHasher::new();
                key(msg).hash(&mut hasher);
                hasher.finish()
            })),
        }
    }

    /// [`consistent_hash`](Routing::consistent_hash) on a hash computed by
    /// `hash` itself: for targets that must find a key's owner from the
    /// same hash outside any message ([`Router::owner`]).
    #[cfg(feature = "storage")]
    pub(crate) fn by_hash(hash: impl Fn(&M) -> u64 + Send + Sync + 'static) -> Self {
        Routing { kind: Kind::ConsistentHash(Box::new(hash)) }
    }

    /// A copy of each message to every member.
    pub fn broadcast() -> Self
    where
        M: Clone,
    {
        Routing { kind: Kind::Broadcast(M::clone) }
    }

    fn name(&self) -> &'static str {
        match self.kind {
            Kind::RoundRobin => "round-robin",
            Kind::LeastLoaded => "least-loaded",
            Kind::ConsistentHash(_) => "consistent-hash",
            Kind::Broadcast(_) => "broadcast",
        }
    }
}

impl<M> fmt::Debug for Routing<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A router's members and, for a consistent hash, their ring.
struct Members<M> {
    list: Vec<Addr<M>>,
    /// Sorted (point, index into `list`).
    ring: Vec<(u64, usize)>,
}

impl<M: Send + 'static> Members<M> {
    fn new(list: Vec<Addr<M>>, hashed: bool) -> Self {
        let mut members = Members { list, ring: Vec::new() };
        if hashed {
            members.rebuild_ring();
        }
        members
    }

    fn rebuild_ring(&mut self) {
        self.ring.clear();
        for (index, member) in self.list.iter().enumerate() {
            for point in 0..RING_POINTS {
                let hash = stable_hash(&[member.path().as_str().as_bytes(), &point.to_le_bytes()]);
                self.ring.push((hash, index));
            }
        }
        self.ring.sort_unstable();
    }

    /// Where the owner of `hash` sits on the ring: the first point at or
    /// after it, wrapping.
    fn ring_start(&self, hash: u64) -> usize {
        self.ring.partition_point(|&(point, _)| point < hash) % self.ring.len()
    }

    /// The members in ring order after the owner at `start`, each once, the
    /// owner left out: where its keys go while it is closed.
    fn ring_successors(&self, start: usize) -> impl Iterator<Item = usize> + '_ {
        let owner = self.ring[start].1;
        let mut seen = vec![false; self.list.len()];
        seen[owner] = true;
        (1..self.ring.len()).filter_map(move |i| {
            let (_, index) = self.ring[(start + i) % self.ring.len()];
            if std::mem::replace(&mut seen[index], true) {
                None
            } else {
                Some(index)
            }
        })
    }
}

/// The target behind a router's address.
struct RouterCore<M> {
    routing: Routing<M>,
    members: RwLock<Members<M>>,
    next: AtomicUsize,
    routed: AtomicU64,
    failovers: AtomicU64,
    key_panics: AtomicU64,
    broadcast_missed: AtomicU64,
}

/// Which refusal a failed offer to every member reports.
#[derive(Default)]
struct Refusals {
    full: bool,
    shed: bool,
}

impl Refusals {
    fn note<M>(&mut self, err: &SendError<M>) {
        match err {
            SendError::Full(_) | SendError::Timeout(_) => self.full = true,
            SendError::Shed(_) => self.shed = true,
            _ => {}
        }
    }

    fn error<M>(&self, msg: M) -> SendError<M> {
        if self.full {
            SendError::Full(msg)
        } else if self.shed {
            SendError::Shed(msg)
        } else {
            SendError::Closed(msg)
        }
    }
}

impl<M: Send + 'static> RouterCore<M> {
    fn route(&self, msg: M, expires: Option<Instant>) -> Result<(), SendError<M>> {
        let members = self.members.read();
        let result = match &self.routing.kind {
            Kind::RoundRobin => self.in_turn(&members, msg, expires),
            Kind::LeastLoaded => {
                let least = (0..members.list.len()).min_by_key(|&i| members.list[i].queued()).unwrap_or(0);
                self.offer(&members, least, msg, expires)
            }
            Kind::ConsistentHash(key) => match catch_unwind(AssertUnwindSafe(|| key(&msg))) {
                Ok(hash) => self.by_key(&members, hash, msg, expires),
                Err(_) => {
                    self.key_panics.fetch_add(1, Relaxed);
                    tracing::warn!("router key extractor panicked; message routed round-robin");
                    self.in_turn(&members, msg, expires)
                }
            },
            Kind::Broadcast(clone) => self.broadcast(&members, *clone, msg, expires),
        };
        if result.is_ok() {
            self.routed.fetch_add(1, Relaxed);
        }
        result
    }

    fn in_turn(&self, members: &Members<M>, msg: M, expires: Option<Instant>) -> Result<(), SendError<M>> {
        let first = self.next.fetch_add(1, Relaxed) % members.list.len();
        self.offer(members, first, msg, expires)
    }

    /// Offers `msg` to member `first`, then to the others in list order.
    fn offer(
        &self,
        members: &Members<M>,
        first: usize,
        msg: M,
        expires: Option<Instant>,
    ) -> Result<(), SendError<M>> {
        let n = members.list.len();
        let order = (0..n).map(|i| (first + i) % n);
        self.offer_in(members, order, msg, expires)
    }

    fn offer_in(
        &self,
        members: &Members<M>,
        order: impl Iterator<Item = usize>,
        mut msg: M,
        expires: Option<Instant>,
    ) -> Result<(), SendError<M>> {
        let mut refusals = Refusals::default();
        for (attempt, index) in order.enumerate() {
            match members.list[index].slot().try_send_until(msg, expires) {
                Ok(()) => {
                    if attempt > 0 {
                        self.failovers.fetch_add(1, Relaxed);
                    }
                    return Ok(());
                }
                Err(err) => {
                    refusals.note(&err);
                    msg = err.into_inner();
                }
            }
        }
        Err(refusals.error(msg))
    }

    /// Offers `msg` to the owner of `hash`, or, past closed members, to the
    /// next live member along the ring, which then owns the key. Finding
    /// the owner allocates nothing; only a failover walks the ring.
    fn by_key(
        &self,
        members: &Members<M>,
        hash: u64,
        msg: M,
        expires: Option<Instant>,
    ) -> Result<(), SendError<M>> {
        let start = members.ring_start(hash);
        let owner = members.ring[start].1;
        let mut msg = match members.list[owner].slot().try_send_until(msg, expires) {
            Err(SendError::Closed(back)) => back,
            other => return other,
        };
        for index in members.ring_successors(start) {
            match members.list[index].slot().try_send_until(msg, expires) {
                Err(SendError::Closed(back)) => msg = back,
                other => {
                    if other.is_ok() {
                        self.failovers.fetch_add(1, Relaxed);
                    }
                    return other;
                }
            }
        }
        Err(SendError::Closed(msg))
    }

    fn broadcast(
        &self,
        members: &Members<M>,
        clone: fn(&M) -> M,
        msg: M,
        expires: Option<Instant>,
    ) -> Result<(), SendError<M>> {
        let (last, others) = members.list.split_last().expect("a router has at least one member");
        let mut accepted = 0_usize;
        let mut refusals = Refusals::default();
        for member in others {
            match member.slot().try_send_until(clone(&msg), expires) {
                Ok(()) => accepted += 1,
                Err(err) => refusals.note(&err),
            }
        }
        let last = last.slot().try_send_until(msg, expires);
        let missed = match &last {
            Ok(()) => members.list.len() - accepted - 1,
            Err(_) if accepted == 0 => return last,
            Err(err) => {
                refusals.note(err);
                members.list.len() - accepted
            }
        };
        if missed > 0 {
            self.broadcast_missed.fetch_add(missed as u64, Relaxed);
            tracing::warn!(
                missed,
                members = members.list.len(),
                full = refusals.full,
                "broadcast not taken by every member"
            );
        }
        Ok(())
    }
}

impl<M: Send + 'static> Deliver<M> for RouterCore<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.route(msg, None)
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.route(msg, Some(deadline))
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        // Wait on the least loaded member for a slice, then let the sender
        // offer the message to all of them again.
        let target = {
            let members = self.members.read();
            members.list.iter().min_by_key(|m| m.queued()).map(|m| m.slot().current())
        };
        let slice = Instant::now() + WAIT_SLICE;
        match target {
            Some(target) if slice < deadline => {
                target.wait_for_space(msg, slice);
                true
            }
            Some(target) => target.wait_for_space(msg, deadline),
            None => false,
        }
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        // Wait on the least loaded member, then offer the message to all of
        // them again. A router always has a member; were it to have none,
        // the caller would offer again and get the router's refusal.
        let target = {
            let members = self.members.read();
            members.list.iter().min_by_key(|m| m.queued()).map(|m| m.slot().current())
        };
        // Woken by that member, the sender offers to all of them again and
        // may fill another: its wake is then handed on (see
        // `mailbox/space.rs`).
        waiter.may_deliver_elsewhere();
        target.is_none_or(|target| target.register_for_space(msg, waiter, waker))
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        // Members keep what was routed to them; the router itself holds
        // nothing, so the successor starts at once.
        successor.release(Vec::new());
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        // A router is only ever installed as a new address's first target
        // (`Runtime::router`), never as a successor, so nothing is moved to
        // it. Should that change, the messages are offered to the members.
        for Envelope { msg, stamp } in moved {
            if let Err(err) = self.route(msg, stamp.and_then(|stamp| stamp.deadline())) {
                tracing::error!(error = %err, "message moved to a router was refused by every member");
            }
        }
    }

    fn is_held(&self) -> bool {
        false
    }

    fn queued(&self) -> usize {
        self.members.read().list.iter().map(Addr::queued).sum()
    }

    fn capacity(&self) -> usize {
        self.members.read().list.iter().map(Addr::capacity).fold(0, usize::saturating_add)
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        None
    }

    fn members(&self) -> Option<Vec<Addr<M>>> {
        Some(self.members.read().list.clone())
    }

    fn is_supervised(&self) -> bool {
        false
    }
}

/// A router: an address that spreads messages over member addresses.
///
/// Made by [`Runtime::router`](crate::Runtime::router); see the module docs
/// of `flow::router` for delivery rules. Senders use [`addr`](Router::addr)
/// like any address; the `Router` handle changes the members.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellConfig, CellError, Context, Reply, Routing, Runtime};
///
/// struct Worker(u32);
/// impl Cell for Worker {
///     type Message = Reply<u32>;
///     fn handle(&mut self, _ctx: &mut Context<Self>, reply: Reply<u32>) -> Result<(), CellError> {
///         let _ = reply.send(self.0);
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().worker_threads(1).build()?;
/// let a = runtime.spawn_with(CellConfig::named("a"), Worker(1))?;
/// let b = runtime.spawn_with(CellConfig::named("b"), Worker(2))?;
/// let pool = runtime.router("workers", Routing::round_robin(), vec![a, b])?;
/// let wait = Duration::from_secs(5);
/// let answers: Vec<u32> = (0..4).map(|_| pool.addr().ask(|r| r).unwrap().wait(wait).unwrap()).collect();
/// assert_eq!(answers, [1, 2, 1, 2]);
///
/// // Grow the pool while it serves.
/// let c = runtime.spawn_with(CellConfig::named("c"), Worker(3))?;
/// pool.add(c)?;
/// assert_eq!(pool.len(), 3);
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Router<M> {
    core: Arc<RouterCore<M>>,
    addr: Addr<M>,
}

impl<M: Send + 'static> Router<M> {
    /// Builds the router's target; the runtime gives it its address.
    pub(crate) fn new(
        routing: Routing<M>,
        members: Vec<Addr<M>>,
        make_addr: impl FnOnce(Arc<dyn Deliver<M>>) -> Addr<M>,
    ) -> Result<Self, RouterError> {
        if members.is_empty() {
            return Err(RouterError::EmptyPool);
        }
        if let Some(path) = duplicate(&members) {
            return Err(RouterError::DuplicateMember { path });
        }
        let hashed = matches!(routing.kind, Kind::ConsistentHash(_));
        let core = Arc::new(RouterCore {
            routing,
            members: RwLock::new(Members::new(members, hashed)),
            next: AtomicUsize::new(0),
            routed: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            key_panics: AtomicU64::new(0),
            broadcast_missed: AtomicU64::new(0),
        });
        let addr = make_addr(core.clone());
        Ok(Router { core, addr })
    }

    /// What the router's address points at, to put it behind another
    /// address (recomposition's pools).
    pub(crate) fn target(&self) -> Arc<dyn Deliver<M>> {
        self.core.clone()
    }

    /// The index, in [`members`](Router::members) order, of the member that
    /// owns `hash` on a consistent hash's ring (the first point at or after
    /// it): where a message whose key hashes to `hash` goes while that
    /// member is open. `None` for the other routings.
    #[cfg(feature = "storage")]
    pub(crate) fn owner(&self, hash: u64) -> Option<usize> {
        let members = self.core.members.read();
        if members.ring.is_empty() {
            return None;
        }
        Some(members.ring[members.ring_start(hash)].1)
    }

    /// The router's address: send to it as to a cell.
    pub fn addr(&self) -> &Addr<M> {
        &self.addr
    }

    /// Adds `member`; messages sent from now on may go to it.
    ///
    /// # Errors
    ///
    /// `DuplicateMember` when it is already a member, `SelfMember` when it
    /// is the router's own address, `Cycle` when it is a router that reaches
    /// this one through its members (a message would loop forever). The
    /// check walks the members as they are now: two adds racing to make two
    /// routers members of each other are not caught.
    pub fn add(&self, member: Addr<M>) -> Result<(), RouterError> {
        if member == self.addr {
            return Err(RouterError::SelfMember);
        }
        if reaches(&member, &self.addr) {
            return Err(RouterError::Cycle { path: member.path().clone() });
        }
        let mut members = self.core.members.write();
        if members.list.contains(&member) {
            return Err(RouterError::DuplicateMember { path: member.path().clone() });
        }
        members.list.push(member);
        if matches!(self.core.routing.kind, Kind::ConsistentHash(_)) {
            members.rebuild_ring();
        }
        Ok(())
    }

    /// Removes `member`: messages sent from now on go to the others. The
    /// member is not stopped and handles what it was sent before.
    ///
    /// # Errors
    ///
    /// `NotMember` when it is not a member, `LastMember` when it is the
    /// only one (a router always has a member; replace the router's address
    /// or stop sending instead).
    pub fn remove(&self, member: &Addr<M>) -> Result<(), RouterError> {
        let mut members = self.core.members.write();
        let Some(index) = members.list.iter().position(|m| m == member) else {
            return Err(RouterError::NotMember { path: member.path().clone() });
        };
        if members.list.len() == 1 {
            return Err(RouterError::LastMember { path: member.path().clone() });
        }
        members.list.remove(index);
        if matches!(self.core.routing.kind, Kind::ConsistentHash(_)) {
            members.rebuild_ring();
        }
        Ok(())
    }

    /// The members, in the order they were added.
    pub fn members(&self) -> Vec<Addr<M>> {
        self.core.members.read().list.clone()
    }

    /// The number of members (at least 1).
    pub fn len(&self) -> usize {
        self.core.members.read().list.len()
    }

    /// Always `false`: a router keeps at least one member.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// What the router has routed so far.
    pub fn stats(&self) -> RouterStats {
        RouterStats {
            routed: self.core.routed.load(Relaxed),
            failovers: self.core.failovers.load(Relaxed),
            key_panics: self.core.key_panics.load(Relaxed),
            broadcast_missed: self.core.broadcast_missed.load(Relaxed),
        }
    }
}

/// Whether `target` can be reached from `from` through routers' members.
fn reaches<M: Send + 'static>(from: &Addr<M>, target: &Addr<M>) -> bool {
    let mut stack = vec![from.clone()];
    let mut seen: Vec<Addr<M>> = Vec::new();
    while let Some(addr) = stack.pop() {
        if &addr == target {
            return true;
        }
        if seen.contains(&addr) {
            continue;
        }
        if let Some(members) = addr.slot().current().members() {
            stack.extend(members);
        }
        seen.push(addr);
    }
    false
}

fn duplicate<M: Send + 'static>(members: &[Addr<M>]) -> Option<CellPath> {
    members.iter().enumerate().find(|(i, m)| members[..*i].contains(m)).map(|(_, m)| m.path().clone())
}

impl<M> Clone for Router<M> {
    fn clone(&self) -> Self {
        Router { core: self.core.clone(), addr: self.addr.clone() }
    }
}

impl<M: Send + 'static> fmt::Debug for Router<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> =
            self.core.members.read().list.iter().map(|m| m.path().to_string()).collect();
        f.debug_struct("Router")
            .field("path", self.addr.path())
            .field("routing", &self.core.routing)
            .field("members", &members)
            .finish()
    }
}

/// Counts of a [`Router`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouterStats {
    /// Messages a member (or, for broadcast, at least one member) took.
    pub routed: u64,
    /// Messages taken by another member than the first one offered (that
    /// one was full, closed or shed).
    pub failovers: u64,
    /// Times the consistent-hash key extractor panicked (those messages were
    /// routed round-robin).
    pub key_panics: u64,
    /// Broadcast copies a member refused.
    pub broadcast_missed: u64,
}

/// A router that cannot be made or changed as asked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RouterError {
    /// A router needs at least one member.
    EmptyPool,
    /// The address is a member already.
    DuplicateMember {
        /// The member's path.
        path: CellPath,
    },
    /// A router cannot be its own member.
    SelfMember,
    /// The member is a router that reaches this one through its own
    /// members: a message would go round forever.
    Cycle {
        /// The member's path.
        path: CellPath,
    },
    /// The address is not a member.
    NotMember {
        /// The address's path.
        path: CellPath,
    },
    /// The member is the router's last one.
    LastMember {
        /// The member's path.
        path: CellPath,
    },
    /// The router's name is not a valid cell name.
    InvalidName(crate::path::NameError),
    /// The runtime is shutting down.
    ShutDown,
}

impl fmt::Display for RouterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouterError::EmptyPool => f.write_str("a router needs at least one member"),
            RouterError::DuplicateMember { path } => write!(f, "{path} is a member of the router already"),
            RouterError::SelfMember => f.write_str("a router cannot be its own member"),
            RouterError::Cycle { path } => {
                write!(f, "{path} reaches the router through its members: a message would loop")
            }
            RouterError::NotMember { path } => write!(f, "{path} is not a member of the router"),
            RouterError::LastMember { path } => {
                write!(f, "{path} is the router's last member; a router keeps at least one")
            }
            RouterError::InvalidName(err) => write!(f, "invalid router name: {err}"),
            RouterError::ShutDown => f.write_str("the runtime is shutting down"),
        }
    }
}

impl std::error::Error for RouterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RouterError::InvalidName(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn the_stable_hash_has_fixed_values_that_keyed_state_relies_on() {
        // Stored keyed state is found by these values after a restart:
        // changing them strands it.
        assert_eq!(stable_hash(&[b"account-7"]), 0x12a6_fe80_4ae9_431c);
        assert_eq!(stable_hash(&[b"/ledger/1", &3_u32.to_le_bytes()]), 0x7488_b96e_20e7_059b);
    }

    #[test]
    fn the_stable_hash_delimits_its_parts() {
        assert_eq!(stable_hash(&[b"ab", b"c"]), 0x2f98_a392_c69b_efec);
        assert_eq!(stable_hash(&[b"a", b"bc"]), 0xc759_ca85_f43a_a8c1);
    }
}
