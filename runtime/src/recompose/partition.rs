//! Key-partitioned pools: the target behind a keyed pool's address
//! ([`KeyedHandover`]), how a stopped cell's stored state and queued
//! messages reach each key's new owner, and how a keyed pool is gathered
//! back into one cell ([`Gather`]).
//!
//! # Keys
//!
//! A keyed cell's messages carry a key (`Recomposable::keyed`): the
//! bytes of a [`StoreKey`]. The cell keeps each key's
//! state in its own tree under that same key. One hash ([`key_hash`]) of
//! those bytes places a message and a stored entry alike on the pool's
//! consistent-hash ring (a [`Router`], 160 points per member placed by the
//! member's path), so a key's messages and its state have one owner.
//!
//! # Split: one cell into a pool of `n`
//!
//! The members are new cells at `<cell>/0` … `<cell>/<n-1>`, spawned
//! *held*: they queue what they are sent and handle none of it.
//!
//! 1. A [`KeyedHandover`] over them replaces the cell through the address's
//!    replace protocol (`Slot::replace`): from the swap on, senders reach
//!    the handover, which sends each message to its key's owner.
//! 2. The cell closes, finishes the message in hand, and stops; its
//!    leftovers come to [`KeyedHandover::release`](Deliver::release).
//! 3. There, nothing writes the cell's tree any more: every entry moves to
//!    its owner's tree; the leftovers are split by owner, each part in its
//!    order; each member is released with its part, which it handles ahead
//!    of what it queued meanwhile.
//!
//! So a key's messages queued at the cell before the swap are handled, in
//! order, before any sent after it, by the key's new owner, which finds
//! the key's state in its own tree. The handover is held (so the address
//! refuses another replace, and a merge) until step 3 is done.
//!
//! # Merge: a keyed pool back into one cell
//!
//! A held cell at the managed cell's path replaces the handover through
//! the same protocol. The handover's `hand_over` replaces each member's
//! own target with a [`Leftovers`] of a shared [`Gather`]: each member
//! closes, finishes its message, stops and hands its leftovers over. When
//! all `n` have, every member tree's entries move into the cell's tree,
//! the leftovers are concatenated (a key's messages all come from one
//! member, so each key keeps its order), and the new cell is released.
//!
//! # Moving entries
//!
//! Entries are put in the destination trees first (one transaction per
//! tree, then a flush), then removed from the source tree (one
//! transaction, then a flush): a crash in between leaves an entry in both
//! trees, never in none. A move that fails is logged (`tracing` error) and
//! leaves the entries it did not remove where they were; the messages are
//! released all the same, so none is lost.
//!
//! # Gotchas
//!
//! - A member that stops on its own (its handler failed: top-level cells
//!   are not restarted) refuses its keys' messages as closed; they do not
//!   fail over to another member, which would not have their state.
//! - Every entry of the cell's tree moves by its key: entries that are not
//!   a key's state (a counter of all keys, say) land with whichever member
//!   owns their key.
//! - The ring and [`key_hash`] use a hash fixed by cellrt (FNV-1a and the
//!   SplitMix64 finalizer), the same on every platform and Rust release, so
//!   a split kept across a restart finds each key's state where it left it.

use std::panic::{catch_unwind, AssertUnwindSafe};
#[cfg(any(feature = "tokio", cellrt_loom))]
use std::task::Waker;
use std::time::{Duration, Instant};

use crate::address::{Addr, Deliver, Slot};
use crate::flow::{Router, RouterError, Routing};
#[cfg(any(feature = "tokio", cellrt_loom))]
use crate::mailbox::SpaceWaiter;
use crate::mailbox::{Envelope, SendError};
use crate::path::CellPath;
use crate::runtime::CellControl;
use crate::store::{Store, StoreError, StoreKey};
use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::{Arc, Mutex};

/// The hash of a message's key, as [`key_hash`] computes it.
pub(crate) type KeyHash<M> = Arc<dyn Fn(&M) -> u64 + Send + Sync>;

/// Where a key's bytes fall on a keyed pool's ring: the same for a
/// message's key and for a stored entry's key.
pub(crate) fn key_hash(bytes: &[u8]) -> u64 {
    crate::flow::stable_hash(&[bytes])
}

/// The [`KeyHash`] of messages whose key `key` takes.
pub(crate) fn hasher<M, K, F>(key: F) -> KeyHash<M>
where
    K: StoreKey,
    F: Fn(&M) -> K + Send + Sync + 'static,
{
    Arc::new(move |msg| key_hash(&key(msg).key_bytes()))
}

/// Moves every entry of `from` to `to[owner(key)]`: put in the destination
/// trees (one transaction and a flush each), then removed from `from` (one
/// transaction and a flush). Returns how many entries moved.
fn move_entries(from: &Store, to: &[Store], owner: impl Fn(&[u8]) -> usize) -> Result<usize, StoreError> {
    let entries = from.scan_prefix_bytes([]).collect::<Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>>()?;
    if entries.is_empty() {
        return Ok(0);
    }
    let mut parts: Vec<Vec<&(Vec<u8>, Vec<u8>)>> = to.iter().map(|_| Vec::new()).collect();
    for entry in &entries {
        let index = owner(&entry.0).min(to.len() - 1);
        parts[index].push(entry);
    }
    for (tree, part) in to.iter().zip(&parts) {
        if part.is_empty() {
            continue;
        }
        tree.transaction(|tx| {
            for (key, value) in part {
                tx.put_bytes(key.as_slice(), value.clone())?;
            }
            Ok(())
        })?;
        tree.flush()?;
    }
    from.transaction(|tx| {
        for (key, _) in &entries {
            tx.remove(key.as_slice())?;
        }
        Ok(())
    })?;
    from.flush()?;
    Ok(entries.len())
}

/// What a keyed pool's address points at: routes each message to the
/// member owning its key, and carries out both hand-overs of the module
/// docs (the split's in [`release`](Deliver::release), the merge's in
/// [`hand_over`](Deliver::hand_over)).
pub(crate) struct KeyedHandover<M> {
    hash: KeyHash<M>,
    /// The ring; its members are `members`, in the same order.
    router: Router<M>,
    members: Vec<Addr<M>>,
    /// The members' trees, in `members` order.
    trees: Vec<Store>,
    /// The managed cell's tree.
    base: Store,
    cell: CellPath,
    /// Set by the first [`release`](Deliver::release), so a second one (none
    /// is expected) only delivers.
    taken: AtomicBool,
    /// True until every member has been released with its part. Cleared
    /// (Release) after the last member's release; read (Acquire) by
    /// `is_held`: whoever sees it clear sees every member released. Never
    /// set again.
    held: AtomicBool,
}

impl<M: Send + 'static> KeyedHandover<M> {
    /// A held handover to `members` (held cells, with their trees) for the
    /// cell at `cell`, whose tree is `base`.
    pub(crate) fn new(
        hash: KeyHash<M>,
        members: Vec<Addr<M>>,
        trees: Vec<Store>,
        base: Store,
        cell: CellPath,
        send_timeout: Duration,
    ) -> Result<Self, RouterError> {
        let routing = {
            let hash = hash.clone();
            Routing::by_hash(move |msg| hash(msg))
        };
        let path = cell.clone();
        let router = Router::new(routing, members.clone(), |target| {
            Addr::from_slot(Arc::new(Slot::new(target, path, send_timeout)))
        })?;
        Ok(KeyedHandover {
            hash,
            router,
            members,
            trees,
            base,
            cell,
            taken: AtomicBool::new(false),
            held: AtomicBool::new(true),
        })
    }

    /// The member owning `hash`.
    fn owner_of_hash(&self, hash: u64) -> usize {
        self.router.owner(hash).unwrap_or(0)
    }

    /// The member owning `msg`'s key. A key function that panics does not
    /// unwind into the sender: the message goes to the first member.
    fn owner(&self, msg: &M) -> usize {
        match catch_unwind(AssertUnwindSafe(|| (self.hash)(msg))) {
            Ok(hash) => self.owner_of_hash(hash),
            Err(_) => {
                tracing::warn!(cell = %self.cell, "key function panicked; message sent to the first member");
                0
            }
        }
    }

    /// Delivers `msg` to its key's owner.
    fn deliver(&self, msg: M, expires: Option<Instant>) -> Result<(), SendError<M>> {
        let member = &self.members[self.owner(&msg)];
        match expires {
            None => member.try_send(msg),
            Some(deadline) => member.try_send_by(msg, deadline),
        }
    }
}

impl<M: Send + 'static> Deliver<M> for KeyedHandover<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.deliver(msg, None)
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.deliver(msg, Some(deadline))
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        self.members[self.owner(msg)].slot().current().wait_for_space(msg, deadline)
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.members[self.owner(msg)].slot().current().register_for_space(msg, waiter, waker)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        // The merge (or a replace from outside): every member hands over
        // to the gather, which releases `successor` once all have.
        let gather = Arc::new(Gather {
            successor,
            trees: self.trees.clone(),
            base: self.base.clone(),
            cell: self.cell.clone(),
            parts: Mutex::new(GatherParts { parts: self.members.iter().map(|_| None).collect(), arrived: 0 }),
            done: AtomicBool::new(false),
        });
        for (index, member) in self.members.iter().enumerate() {
            let leftovers: Arc<dyn Deliver<M>> = Arc::new(Leftovers { index, gather: gather.clone() });
            // Through the member's slot, so what is still sent to the
            // member's own address reaches the successor too. Its target
            // is only held while this handover is, which refuses the
            // replace that leads here.
            if let Err(leftovers) = member.slot().replace(leftovers) {
                member.slot().current().hand_over(leftovers);
            }
        }
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        if self.taken.swap(true, AcqRel) {
            tracing::error!(cell = %self.cell, "a keyed pool was released twice; messages routed by key");
            for Envelope { msg, stamp } in moved {
                if let Err(err) = self.deliver(msg, stamp.and_then(|s| s.deadline())) {
                    tracing::error!(cell = %self.cell, error = %err, "moved message refused by its owner");
                }
            }
            return;
        }
        // The cell has stopped: nothing writes its tree any more.
        match move_entries(&self.base, &self.trees, |key| self.owner_of_hash(key_hash(key))) {
            Ok(entries) => {
                tracing::debug!(cell = %self.cell, entries, "stored state moved to the key owners")
            }
            Err(err) => tracing::error!(
                cell = %self.cell,
                %err,
                "could not move the stored state to the key owners; what was not moved stays in the cell's tree"
            ),
        }
        let mut parts: Vec<Vec<Envelope<M>>> = self.members.iter().map(|_| Vec::new()).collect();
        for envelope in moved {
            parts[self.owner(&envelope.msg)].push(envelope);
        }
        for (member, part) in self.members.iter().zip(parts) {
            member.slot().current().release(part);
        }
        // Release pairs with the Acquire in `is_held`.
        self.held.store(false, Release);
    }

    fn is_held(&self) -> bool {
        self.held.load(Acquire)
    }

    fn queued(&self) -> usize {
        self.members.iter().map(Addr::queued).sum()
    }

    fn capacity(&self) -> usize {
        self.members.iter().map(Addr::capacity).fold(0, usize::saturating_add)
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        None
    }

    fn is_supervised(&self) -> bool {
        false
    }

    fn members(&self) -> Option<Vec<Addr<M>>> {
        Some(self.members.clone())
    }
}

/// The merge's meeting point: collects each member's leftovers and, once
/// all are in, moves the members' trees into the cell's tree and releases
/// the successor.
pub(crate) struct Gather<M> {
    successor: Arc<dyn Deliver<M>>,
    trees: Vec<Store>,
    base: Store,
    cell: CellPath,
    parts: Mutex<GatherParts<M>>,
    /// Set (Release) once the successor is released; read (Acquire) by the
    /// [`Leftovers`]' `is_held`. Never cleared.
    done: AtomicBool,
}

struct GatherParts<M> {
    /// Each member's leftovers, once it has stopped.
    parts: Vec<Option<Vec<Envelope<M>>>>,
    arrived: usize,
}

impl<M: Send + 'static> Gather<M> {
    /// Member `index` has stopped and left `moved`.
    fn arrive(&self, index: usize, moved: Vec<Envelope<M>>) {
        let all = {
            let mut parts = self.parts.lock();
            let GatherParts { parts: slots, arrived } = &mut *parts;
            match slots.get_mut(index) {
                // A second hand-over of one member (none is expected):
                // after the others, or after the successor's release.
                Some(Some(part)) => {
                    part.extend(moved);
                    return;
                }
                Some(slot) => *slot = Some(moved),
                None => {
                    drop(parts);
                    self.successor.release(moved);
                    return;
                }
            }
            *arrived += 1;
            if *arrived < slots.len() {
                return;
            }
            std::mem::take(slots)
        };
        // Every member has stopped: nothing writes their trees any more.
        for tree in &self.trees {
            if let Err(err) = move_entries(tree, std::slice::from_ref(&self.base), |_| 0) {
                tracing::error!(
                    cell = %self.cell,
                    tree = tree.name(),
                    %err,
                    "could not move a member's stored state back; what was not moved stays in its tree"
                );
            }
        }
        self.successor.release(all.into_iter().flatten().flatten().collect());
        // Release pairs with the Acquire in `Leftovers::is_held`.
        self.done.store(true, Release);
    }
}

/// What one member of a keyed pool hands over to in a merge: its part of
/// the [`Gather`]. Sends that still reach the member's own address go to
/// the successor.
struct Leftovers<M> {
    index: usize,
    gather: Arc<Gather<M>>,
}

impl<M: Send + 'static> Deliver<M> for Leftovers<M> {
    fn try_deliver(&self, msg: M) -> Result<(), SendError<M>> {
        self.gather.successor.try_deliver(msg)
    }

    fn try_deliver_until(&self, msg: M, deadline: Instant) -> Result<(), SendError<M>> {
        self.gather.successor.try_deliver_until(msg, deadline)
    }

    fn wait_for_space(&self, msg: &M, deadline: Instant) -> bool {
        self.gather.successor.wait_for_space(msg, deadline)
    }

    #[cfg(any(feature = "tokio", cellrt_loom))]
    fn register_for_space(&self, msg: &M, waiter: &mut SpaceWaiter, waker: &Waker) -> bool {
        self.gather.successor.register_for_space(msg, waiter, waker)
    }

    fn hand_over(&self, successor: Arc<dyn Deliver<M>>) {
        // Holds nothing of its own: the gather's successor has it all.
        successor.release(Vec::new());
    }

    fn release(&self, moved: Vec<Envelope<M>>) {
        self.gather.arrive(self.index, moved);
    }

    fn is_held(&self) -> bool {
        !self.gather.done.load(Acquire)
    }

    fn queued(&self) -> usize {
        self.gather.successor.queued()
    }

    fn capacity(&self) -> usize {
        self.gather.successor.capacity()
    }

    fn control(&self) -> Option<Arc<dyn CellControl>> {
        None
    }

    fn is_supervised(&self) -> bool {
        false
    }
}
