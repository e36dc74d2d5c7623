//! Per-cell storage: one database per runtime, one tree per cell, typed
//! values.
//!
//! - `config.rs`: [`StorageConfig`], on disk or in memory.
//! - `engine.rs`: the byte-tree engine behind a small trait, and sled.
//! - `error.rs`: [`StoreError`].
//! - `chaos.rs` (feature `chaos`): the storage seam of chaos, failing or
//!   slowing cells' writes and flushes as storage faults say.
//!
//! # Trees
//!
//! Each cell gets the tree named `cell` followed by its path
//! (`cell/app/ledger`), so its data outlives the cell, its restarts and the
//! process, and is found again by the cell that takes the same path. Paths
//! may hold any character but `/` and control characters; tree names are
//! bytes, so none is awkward. The runtime's own trees are named `sys/…`: no
//! cell path starts that way, and a cell is only ever given its own tree.
//!
//! Unnamed cells (`#<id>`) get a tree too, but ids change from one run to
//! the next: a cell whose data must survive the process needs a name.
//!
//! # Encoding
//!
//! Values are serde types encoded with bincode 2 (`bincode::serde`,
//! `config::standard()`: variable-length integers, little-endian). Bytes
//! that do not decode as the requested type, whole, are a
//! [`StoreError::Decode`]: a changed type is detected, not misread. Keys
//! are bytes; [`StoreKey`] says how other key types become bytes so that
//! the tree's byte order is their natural order.

#[cfg(feature = "chaos")]
mod chaos;
mod config;
pub(crate) mod durable;
mod engine;
mod error;

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::config::{StorageConfig, MIN_CACHE_BYTES};
pub use self::durable::{Durability, Durable};
pub use self::error::StoreError;

use self::engine::{Engine, TreeEngine, TxEngine};
use crate::path::CellPath;
use crate::sync::Arc;

/// How a key becomes the bytes it is stored under.
///
/// | key | bytes | order |
/// |---|---|---|
/// | `[u8]`, `Vec<u8>`, `[u8; N]` | as is | bytewise |
/// | `str`, `String` | UTF-8 | bytewise (code point order) |
/// | `u32`, `u64`, `u128` | big-endian | numeric |
/// | `i64` | big-endian with the sign bit flipped | numeric |
pub trait StoreKey {
    /// The key's bytes.
    fn key_bytes(&self) -> Cow<'_, [u8]>;
}

impl<K: StoreKey + ?Sized> StoreKey for &K {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        (**self).key_bytes()
    }
}

impl StoreKey for [u8] {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl<const N: usize> StoreKey for [u8; N] {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl StoreKey for Vec<u8> {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}

impl StoreKey for str {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl StoreKey for String {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}

impl StoreKey for u32 {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl StoreKey for u64 {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl StoreKey for u128 {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_be_bytes().to_vec())
    }
}

impl StoreKey for i64 {
    fn key_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(((*self as u64) ^ (1 << 63)).to_be_bytes().to_vec())
    }
}

fn encode<V: Serialize>(value: &V) -> Result<Vec<u8>, StoreError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .map_err(|err| StoreError::Encode { type_name: std::any::type_name::<V>(), reason: err.to_string() })
}

fn decode<V: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<V, StoreError> {
    let fail = |reason: String| StoreError::Decode {
        type_name: std::any::type_name::<V>(),
        key: key.to_vec(),
        reason,
    };
    match bincode::serde::decode_from_slice(bytes, bincode::config::standard()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(fail(format!("{} trailing bytes after the value", bytes.len() - used))),
        Err(err) => Err(fail(err.to_string())),
    }
}

/// A cell's own tree: typed values under byte keys.
///
/// Get one with [`Context::store`](crate::Context::store) (a cell's tree)
/// or [`Runtime::store`](crate::Runtime::store) (any cell's, from outside).
/// Cloning is cheap; every clone is the same tree. Writes are durable once
/// [`flush`](Store::flush) returned.
///
/// # Examples
///
/// ```
/// use cellrt::{CellPath, Runtime, StorageConfig};
///
/// let runtime = Runtime::builder().storage(StorageConfig::in_memory()).build()?;
/// let store = runtime.store(&CellPath::root().child("ledger")?)?;
/// store.put("alice", &120_u64)?;
/// store.update("alice", |balance: Option<u64>| Some(balance.unwrap_or(0) + 5))?;
/// assert_eq!(store.get::<u64>("alice")?, Some(125));
/// assert_eq!(store.remove("alice")?, true);
/// # runtime.shutdown(std::time::Duration::from_secs(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Store {
    tree: Arc<dyn TreeEngine>,
    name: Arc<str>,
}

impl Store {
    /// The value at `key`, if any.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] when the bytes are not a `V`; I/O and engine errors.
    pub fn get<V: DeserializeOwned>(&self, key: impl StoreKey) -> Result<Option<V>, StoreError> {
        let key = key.key_bytes();
        match self.tree.get(&key)? {
            Some(bytes) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The raw bytes at `key`, if any.
    ///
    /// # Errors
    ///
    /// I/O and engine errors.
    pub fn get_bytes(&self, key: impl StoreKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.tree.get(&key.key_bytes())
    }

    /// Stores `value` at `key`, replacing what was there.
    ///
    /// # Errors
    ///
    /// [`StoreError::Encode`]; I/O and engine errors.
    pub fn put<V: Serialize + ?Sized>(&self, key: impl StoreKey, value: &V) -> Result<(), StoreError> {
        let bytes = encode(&value)?;
        self.tree.insert(&key.key_bytes(), bytes)
    }

    /// Stores raw bytes at `key`.
    ///
    /// # Errors
    ///
    /// I/O and engine errors.
    pub fn put_bytes(&self, key: impl StoreKey, bytes: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        self.tree.insert(&key.key_bytes(), bytes.into())
    }

    /// Removes the value at `key`; returns whether there was one.
    ///
    /// # Errors
    ///
    /// I/O and engine errors.
    pub fn remove(&self, key: impl StoreKey) -> Result<bool, StoreError> {
        self.tree.remove(&key.key_bytes())
    }

    /// The entries whose key starts with `prefix`, in key order, each
    /// decoded as a `V`.
    pub fn scan_prefix<V: DeserializeOwned>(&self, prefix: impl StoreKey) -> Scan<V> {
        Scan { entries: self.tree.scan_prefix(&prefix.key_bytes()), value: PhantomData }
    }

    /// The raw entries whose key starts with `prefix`, in key order.
    pub fn scan_prefix_bytes(
        &self,
        prefix: impl StoreKey,
    ) -> impl Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> {
        self.tree.scan_prefix(&prefix.key_bytes())
    }

    /// Replaces the value at `key` with `f(current)` atomically, and returns
    /// the new value. `None` from `f` removes it. `f` may run more than once
    /// when another writer races it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Decode`] when the current bytes are not a `V` (they are
    /// left as they were); `Encode`; I/O and engine errors.
    pub fn update<V: Serialize + DeserializeOwned>(
        &self,
        key: impl StoreKey,
        mut f: impl FnMut(Option<V>) -> Option<V>,
    ) -> Result<Option<V>, StoreError> {
        let key = key.key_bytes();
        let mut failure = None;
        let mut written = None;
        self.tree.update(&key, &mut |current| {
            failure = None;
            let old = match current.map(|bytes| decode::<V>(&key, bytes)).transpose() {
                Ok(old) => old,
                Err(err) => {
                    failure = Some(err);
                    return current.map(<[u8]>::to_vec);
                }
            };
            let new = f(old);
            let bytes = match new.as_ref().map(encode).transpose() {
                Ok(bytes) => bytes,
                Err(err) => {
                    failure = Some(err);
                    return current.map(<[u8]>::to_vec);
                }
            };
            written = new;
            bytes
        })?;
        match failure {
            Some(err) => Err(err),
            None => Ok(written),
        }
    }

    /// Runs `f` as one atomic transaction on this tree: every write in it
    /// lands, or none. `f` may run more than once on a conflict. Return an
    /// error (for instance [`StoreError::abort`]) to roll back.
    ///
    /// # Errors
    ///
    /// The error `f` returned; I/O and engine errors.
    pub fn transaction<R>(
        &self,
        f: impl Fn(&Transaction<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut out = None;
        let cell = std::cell::RefCell::new(&mut out);
        self.tree.transaction(&|tx| {
            let value = f(&Transaction { tx })?;
            **cell.borrow_mut() = Some(value);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Engine { reason: "transaction committed without a result".into() })
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    ///
    /// I/O and engine errors.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush()
    }

    /// The tree's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Store").field(&self.name).finish()
    }
}

/// Entries of a [`Store::scan_prefix`], in key order.
pub struct Scan<V> {
    entries: engine::Entries,
    value: PhantomData<fn() -> V>,
}

impl<V: DeserializeOwned> Iterator for Scan<V> {
    type Item = Result<(Vec<u8>, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (key, bytes) = match self.entries.next()? {
            Ok(entry) => entry,
            Err(err) => return Some(Err(err)),
        };
        Some(decode(&key, &bytes).map(|value| (key, value)))
    }
}

impl<V> fmt::Debug for Scan<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scan(..)")
    }
}

/// The operations of a [`Store::transaction`].
pub struct Transaction<'a> {
    tx: &'a dyn TxEngine,
}

impl Transaction<'_> {
    /// The value at `key`, as this transaction sees it.
    ///
    /// # Errors
    ///
    /// As [`Store::get`].
    pub fn get<V: DeserializeOwned>(&self, key: impl StoreKey) -> Result<Option<V>, StoreError> {
        let key = key.key_bytes();
        match self.tx.get(&key)? {
            Some(bytes) => decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` at `key` when the transaction commits.
    ///
    /// # Errors
    ///
    /// As [`Store::put`].
    pub fn put<V: Serialize + ?Sized>(&self, key: impl StoreKey, value: &V) -> Result<(), StoreError> {
        let bytes = encode(&value)?;
        self.tx.insert(&key.key_bytes(), bytes)
    }

    /// Stores raw bytes at `key` when the transaction commits.
    ///
    /// # Errors
    ///
    /// As [`Store::put_bytes`].
    pub fn put_bytes(&self, key: impl StoreKey, bytes: impl Into<Vec<u8>>) -> Result<(), StoreError> {
        self.tx.insert(&key.key_bytes(), bytes.into())
    }

    /// Removes the value at `key` when the transaction commits; returns
    /// whether there was one.
    ///
    /// # Errors
    ///
    /// As [`Store::remove`].
    pub fn remove(&self, key: impl StoreKey) -> Result<bool, StoreError> {
        self.tx.remove(&key.key_bytes())
    }
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Transaction(..)")
    }
}

/// A dead letter as the storage keeps it: what the in-memory
/// [`DeadLetter`](crate::DeadLetter) says, as text, without the message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct StoredDeadLetter {
    /// The cell's path.
    pub path: String,
    /// The cell's Rust type.
    pub cell_kind: String,
    /// The kind of the failed message.
    pub message_kind: Option<String>,
    /// The failure, as [`Failure`](crate::Failure)'s `Display` gives it.
    pub failure: String,
    /// Re-deliveries before it was given up.
    pub redeliveries: u32,
    /// Whether it was a poison message.
    pub poison: bool,
    /// When it failed, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl StoredDeadLetter {
    fn from_letter(letter: &crate::DeadLetter) -> Self {
        let failure = letter.failure();
        StoredDeadLetter {
            path: failure.path.as_str().to_owned(),
            cell_kind: failure.cell_kind.to_owned(),
            message_kind: failure.message_kind.map(str::to_owned),
            failure: failure.to_string(),
            redeliveries: letter.redeliveries(),
            poison: letter.is_poison(),
            at_unix_ms: failure
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis().min(u128::from(u64::MAX)) as u64),
        }
    }
}

/// The runtime's database.
pub(crate) struct Storage {
    engine: Arc<dyn Engine>,
    dead_letters: Store,
    quarantine: Store,
    journal: Store,
    /// Where the storage faults of chaos act.
    #[cfg(feature = "chaos")]
    chaos: Arc<crate::chaos::registry::StorageSeam>,
}

impl Storage {
    pub(crate) fn open(config: &StorageConfig) -> Result<Storage, StoreError> {
        let engine = engine::open(config)?;
        #[cfg(feature = "chaos")]
        let (engine, chaos) = chaos::wrap(engine);
        let dead_letters = Storage::tree_of(&engine, "sys/dead_letters".to_owned())?;
        let quarantine = Storage::tree_of(&engine, "sys/quarantine".to_owned())?;
        let journal = Storage::tree_of(&engine, "sys/journal".to_owned())?;
        Ok(Storage {
            engine,
            dead_letters,
            quarantine,
            journal,
            #[cfg(feature = "chaos")]
            chaos,
        })
    }

    /// Where the storage faults of chaos act.
    #[cfg(feature = "chaos")]
    pub(crate) fn chaos_seam(&self) -> Arc<crate::chaos::registry::StorageSeam> {
        self.chaos.clone()
    }

    /// Where the signal journal is kept (see `observe::journal`).
    pub(crate) fn journal(&self) -> &Store {
        &self.journal
    }

    /// Where unreadable saved states are kept.
    pub(crate) fn quarantine(&self) -> &Store {
        &self.quarantine
    }

    /// Keeps a dead letter, numbered in the order letters arrive.
    pub(crate) fn keep_dead_letter(&self, letter: &crate::DeadLetter) -> Result<(), StoreError> {
        let id = self.engine.generate_id()?;
        self.dead_letters.put(id, &StoredDeadLetter::from_letter(letter))
    }

    /// Every dead letter kept, oldest first.
    pub(crate) fn dead_letters(&self) -> Result<Vec<StoredDeadLetter>, StoreError> {
        self.dead_letters.scan_prefix::<StoredDeadLetter>([]).map(|entry| entry.map(|(_, v)| v)).collect()
    }

    /// The tree where the recomposition engine keeps each managed cell's
    /// kept plans.
    pub(crate) fn recompositions(&self) -> Result<Store, StoreError> {
        self.tree("sys/recompose".to_owned())
    }

    /// The names of the database's trees (cells' `cell/…` and the
    /// runtime's `sys/…`), in byte order; names that are not UTF-8 are
    /// given lossily.
    #[cfg(feature = "report")]
    pub(crate) fn tree_names(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.engine.tree_names()?.iter().map(|name| String::from_utf8_lossy(name).into_owned()).collect())
    }

    /// A tree by its full name, for reading another run's data.
    #[cfg(feature = "report")]
    pub(crate) fn tree_named(&self, name: &str) -> Result<Store, StoreError> {
        self.tree(name.to_owned())
    }

    /// The tree where snapshots are kept over a run (see
    /// `observe::history`).
    pub(crate) fn snapshots(&self) -> Result<Store, StoreError> {
        self.tree("sys/snapshots".to_owned())
    }

    /// The tree of the cell at `path`.
    pub(crate) fn cell_tree(&self, path: &CellPath) -> Result<Store, StoreError> {
        self.tree(format!("cell{}", path.as_str()))
    }

    fn tree(&self, name: String) -> Result<Store, StoreError> {
        Storage::tree_of(&self.engine, name)
    }

    fn tree_of(engine: &Arc<dyn Engine>, name: String) -> Result<Store, StoreError> {
        let tree = engine.open_tree(name.as_bytes())?;
        Ok(Store { tree, name: name.into() })
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        self.engine.flush()
    }

    /// Closes the database, every [`Store`] of it included, and waits until
    /// its data directory is released; `false` if it was still held at
    /// `deadline`. See `engine.rs`, "Closing".
    pub(crate) fn close(&self, deadline: std::time::Instant) -> bool {
        self.engine.close(deadline)
    }
}

impl fmt::Debug for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Storage(..)")
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use std::time::Duration;

    use super::engine::faults::Switch;
    use super::*;
    use crate::{AskError, Cell, CellConfig, Context, FailureCause, Reply, Runtime};

    struct Counter(u64);

    impl Cell for Counter {
        type Message = Reply<u64>;
        fn handle(&mut self, _: &mut Context<Self>, reply: Reply<u64>) -> Result<(), crate::CellError> {
            self.0 += 1;
            let _ = reply.send(self.0);
            Ok(())
        }
    }

    impl Durable for Counter {
        type State = u64;
        fn state(&self) -> &u64 {
            &self.0
        }
        fn restore(n: u64) -> Self {
            Counter(n)
        }
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    #[test]
    fn a_failing_disk_is_a_typed_storage_failure_and_nothing_is_acknowledged() {
        let switch = Switch::default();
        let runtime = Runtime::builder()
            .worker_threads(1)
            .quiet_panics(true)
            .storage(StorageConfig::faulty(switch.clone()))
            .build()
            .unwrap();
        let counter = runtime
            .spawn_durable(CellConfig::named("counter"), Durability::PerMessage, || Counter(0))
            .unwrap();
        assert_eq!(counter.ask(|r| r).unwrap().wait(PATIENCE), Ok(1));
        switch.set(true);
        assert_eq!(counter.ask(|r| r).unwrap().wait(PATIENCE), Err(AskError::Unanswered));
        // The answer is dropped before the failure is recorded.
        let deadline = std::time::Instant::now() + PATIENCE;
        while runtime.failure_count() == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        let failures = runtime.failures();
        assert_eq!(failures.len(), 1);
        let FailureCause::Storage(StoreError::Io { action, reason }) = &failures[0].cause else {
            panic!("{:?}", failures[0])
        };
        assert_eq!(*action, "writing");
        assert!(reason.contains("No space left"), "{reason}");
        // The worker survived: another cell still runs on it.
        switch.set(false);
        let other = runtime
            .spawn_durable(CellConfig::named("other"), Durability::PerMessage, || Counter(10))
            .unwrap();
        assert_eq!(other.ask(|r| r).unwrap().wait(PATIENCE), Ok(11));
        let store = runtime.store(&crate::CellPath::root().child("counter").unwrap()).unwrap();
        assert!(store.get_bytes("state").unwrap().is_some(), "the acknowledged state is there");
    }
}
