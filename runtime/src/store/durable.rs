//! Durable cells: state saved to the cell's tree after it handles a
//! message, by an explicit [`Durability`], and rebuilt at each start.
//!
//! # Format
//!
//! The state lives at key `state` of the cell's tree as a [`Saved`]
//! envelope: the state type's [`Durable::VERSION`] and the state's own
//! bincode bytes. A version other than the current one goes through
//! [`Durable::migrate`]. Bytes that do not decode, before or after a
//! migration, are copied to the `sys/quarantine` tree (never overwritten,
//! never deleted by the runtime) and the start fails with a typed storage
//! failure.

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cell::{Cell, CellError};
use crate::path::CellPath;
use crate::sync::atomic::{AtomicBool, Ordering::AcqRel};

use super::{Store, StoreError};

/// The key of a durable cell's state in its tree.
pub(crate) const STATE_KEY: &str = "state";

/// When a durable cell's state is made durable, and when the answers to the
/// asks it handled are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Durability {
    /// After each message, the state is written and flushed before the
    /// message counts as handled: answers to asks are sent after the flush.
    /// Nothing acknowledged is ever lost.
    PerMessage,
    /// Written after each message, flushed once per scheduling turn (up to
    /// the dispatcher's throughput in messages); answers wait for that
    /// flush. Nothing acknowledged is lost; fewer flushes.
    PerTurn,
    /// Written after each message, flushed one interval after the first
    /// save not yet flushed (no flush, and no wake-up, while nothing is
    /// saved); answers are sent at once. A crash may lose up to one
    /// interval of acknowledged work.
    Periodic(Duration),
}

impl Durability {
    /// Whether answers wait for the flush.
    pub(crate) fn holds_replies(self) -> bool {
        matches!(self, Durability::PerMessage | Durability::PerTurn)
    }
}

/// A cell whose state is saved and restored by the runtime.
///
/// Start one with [`ChildSpec::durable`](crate::ChildSpec::durable) or
/// [`Runtime::spawn_durable`](crate::Runtime::spawn_durable). At each start
/// (first start, restart, next process) the runtime rebuilds it with
/// [`restore`](Durable::restore) from the saved state, or from the spec's
/// factory when nothing was saved yet. After each message it handled
/// successfully, [`state`](Durable::state) is saved.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellConfig, CellError, Context, Durability, Durable, Reply, Runtime, StorageConfig};
///
/// struct Counter(u64);
///
/// impl Cell for Counter {
///     type Message = Reply<u64>;
///     fn handle(&mut self, _: &mut Context<Self>, reply: Reply<u64>) -> Result<(), CellError> {
///         self.0 += 1;
///         // Sent once the new count is flushed.
///         let _ = reply.send(self.0);
///         Ok(())
///     }
/// }
///
/// impl Durable for Counter {
///     type State = u64;
///     fn state(&self) -> &u64 {
///         &self.0
///     }
///     fn restore(count: u64) -> Self {
///         Counter(count)
///     }
/// }
///
/// let runtime = Runtime::builder().storage(StorageConfig::in_memory()).build()?;
/// let counter = runtime.spawn_durable(CellConfig::named("counter"), Durability::PerMessage, || Counter(0))?;
/// assert_eq!(counter.ask(|r| r)?.wait(Duration::from_secs(5))?, 1);
/// runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Durable: Cell {
    /// What is saved: everything the cell needs to be rebuilt.
    type State: Serialize + DeserializeOwned + Send + 'static;

    /// The version of `State`'s encoding. Raise it when `State` changes, and
    /// teach [`migrate`](Durable::migrate) the older versions.
    const VERSION: u32 = 1;

    /// The state to save.
    fn state(&self) -> &Self::State;

    /// The cell rebuilt from a saved state.
    fn restore(state: Self::State) -> Self;

    /// Converts the bytes of a state saved at an older (or newer) `version`.
    /// The default refuses: the start fails and the bytes are quarantined.
    ///
    /// # Errors
    ///
    /// Why the bytes cannot be converted.
    fn migrate(version: u32, bytes: &[u8]) -> Result<Self::State, CellError> {
        let _ = bytes;
        Err(CellError::msg(format!("no migration from state version {version} to {}", Self::VERSION)))
    }
}

/// The envelope of a saved state.
#[derive(Serialize, Deserialize)]
struct Saved {
    version: u32,
    state: Vec<u8>,
}

/// The version in the envelope of saved state `bytes` (stored at `key`),
/// without decoding the state: whether a saved state is readable as one.
#[cfg(feature = "report")]
pub(crate) fn saved_version(key: &[u8], bytes: &[u8]) -> Result<u32, StoreError> {
    super::decode::<Saved>(key, bytes).map(|saved| saved.version)
}

/// Why a saved state could not be loaded.
pub(crate) enum LoadError {
    /// Storage failed.
    Store(StoreError),
    /// The bytes are not a state this cell can use; they were quarantined.
    Unreadable(StoreError),
}

/// How an instance saves and restores its cell; erases the `Durable` bound.
pub(crate) trait Persist<C>: Send + Sync {
    fn durability(&self) -> Durability;
    /// The saved cell, if a state was saved.
    fn load(&self, store: &Store, quarantine: &Store, path: &CellPath) -> Result<Option<C>, LoadError>;
    /// Writes the cell's state (without flushing).
    fn save(&self, cell: &C, store: &Store) -> Result<(), StoreError>;
    /// After a save that waits for a periodic flush: `true` when none was
    /// pending, so the caller schedules one.
    fn mark_unflushed(&self) -> bool;
    /// Before a periodic flush: the saves marked so far are covered by it;
    /// a save marked after this schedules the next one.
    fn clear_unflushed(&self);
}

/// [`Persist`] for a [`Durable`] cell.
pub(crate) struct DurableState<C> {
    durability: Durability,
    /// Whether a save waits for a periodic flush (`Durability::Periodic`):
    /// set by the cell's turn after its save, cleared by the flush before
    /// it flushes. Both are swaps (AcqRel), so either the flush reads the
    /// save's mark, and the save is before the flush, or the save's mark
    /// reads the cleared flag, and schedules the next flush.
    unflushed: AtomicBool,
    cell: PhantomData<fn() -> C>,
}

impl<C> DurableState<C> {
    pub(crate) fn new(durability: Durability) -> Self {
        DurableState { durability, unflushed: AtomicBool::new(false), cell: PhantomData }
    }
}

impl<C: Durable> Persist<C> for DurableState<C> {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn mark_unflushed(&self) -> bool {
        !self.unflushed.swap(true, AcqRel)
    }

    fn clear_unflushed(&self) {
        self.unflushed.swap(false, AcqRel);
    }

    fn load(&self, store: &Store, quarantine: &Store, path: &CellPath) -> Result<Option<C>, LoadError> {
        let Some(bytes) = store.get_bytes(STATE_KEY).map_err(LoadError::Store)? else { return Ok(None) };
        let unreadable = |reason: String| {
            // Kept aside under the cell's path and the time, not overwritten.
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let key = format!("{}@{stamp:032}", path.as_str());
            if let Err(err) = quarantine.put_bytes(key.as_str(), bytes.clone()) {
                return LoadError::Store(err);
            }
            tracing::error!(cell = %path, %reason, quarantined = %key, "saved state is unreadable");
            LoadError::Unreadable(StoreError::Decode {
                type_name: std::any::type_name::<C::State>(),
                key: STATE_KEY.as_bytes().to_vec(),
                reason,
            })
        };
        let saved: Saved = match super::decode(STATE_KEY.as_bytes(), &bytes) {
            Ok(saved) => saved,
            Err(err) => return Err(unreadable(format!("not a saved state: {err}"))),
        };
        let state = if saved.version == C::VERSION {
            match super::decode::<C::State>(STATE_KEY.as_bytes(), &saved.state) {
                Ok(state) => state,
                Err(err) => return Err(unreadable(err.to_string())),
            }
        } else {
            match C::migrate(saved.version, &saved.state) {
                Ok(state) => state,
                Err(err) => return Err(unreadable(err.full_text())),
            }
        };
        Ok(Some(C::restore(state)))
    }

    fn save(&self, cell: &C, store: &Store) -> Result<(), StoreError> {
        let state = super::encode(cell.state())?;
        store.put(STATE_KEY, &Saved { version: C::VERSION, state })
    }
}
