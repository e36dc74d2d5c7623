//! The storage engine behind [`Store`](crate::Store), as a small internal
//! trait, and its sled implementation.
//!
//! Everything above this file speaks of byte trees: get, insert, remove,
//! scan by prefix, an atomic update, a transaction, a flush. sled 0.34 is
//! beta software; keeping it behind this seam lets another engine replace
//! it without touching cells.
//!
//! # Closing
//!
//! A runtime's shutdown closes its engine: every handle of the database it
//! handed out, those inside [`Store`](crate::Store)s kept by cells or
//! callers included, is dropped at once (an operation in flight keeps its
//! own until it returns), and later operations fail with
//! [`StoreError::Closed`].
//!
//! Dropping the last handle writes and syncs what is left of the log, but
//! does not release the data directory: sled writes log buffers as tasks on
//! a global pool of I/O threads, and a task holds the log, hence the open
//! `db` file whose `flock` is the directory's lock, until it returns, a
//! moment after the thread waiting for the write was told it is stable. A
//! runtime opened on the directory in that moment is refused with
//! [`StoreError::Locked`]; so closing ends by waiting until the lock is
//! free, and a runtime opened on the same directory after a shutdown
//! returned finds it so.

use std::cell::RefCell;
use std::path::PathBuf;
use std::time::Instant;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::config::{Location, StorageConfig};
use super::error::StoreError;
use crate::sync::{Arc, Mutex, RwLock, Weak};

/// A scan's results, key and value bytes.
pub(crate) type Entries = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>), StoreError>> + Send>;

/// How an atomic update computes the new bytes from the current ones.
pub(crate) type Updater<'a> = &'a mut dyn FnMut(Option<&[u8]>) -> Option<Vec<u8>>;

/// A database of named byte trees.
pub(crate) trait Engine: Send + Sync {
    fn open_tree(&self, name: &[u8]) -> Result<Arc<dyn TreeEngine>, StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
    /// A number never handed out before, in this database's life.
    fn generate_id(&self) -> Result<u64, StoreError>;
    /// The names of the trees in the database, in byte order (read by
    /// reports, feature `report`).
    #[cfg_attr(not(feature = "report"), allow(dead_code))]
    fn tree_names(&self) -> Result<Vec<Vec<u8>>, StoreError>;
    /// Drops every handle of the database, the trees' included, and waits
    /// until its directory is released; `false` if it was still held at
    /// `deadline` (a scan still iterating holds the database).
    fn close(&self, deadline: Instant) -> bool;
}

/// One byte tree.
pub(crate) trait TreeEngine: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, key: &[u8]) -> Result<bool, StoreError>;
    fn scan_prefix(&self, prefix: &[u8]) -> Entries;
    /// Replaces the value at `key` by `f(current)` atomically (`None`
    /// removes); `f` may run more than once.
    fn update(&self, key: &[u8], f: Updater<'_>) -> Result<(), StoreError>;
    /// Runs `f` as one atomic transaction on this tree; `f` may run more
    /// than once.
    fn transaction(&self, f: &dyn Fn(&dyn TxEngine) -> Result<(), StoreError>) -> Result<(), StoreError>;
    fn flush(&self) -> Result<(), StoreError>;
}

/// The operations inside a transaction.
pub(crate) trait TxEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError>;
    fn remove(&self, key: &[u8]) -> Result<bool, StoreError>;
}

/// Opens the engine `config` describes; checks the directory first, so
/// that each problem has its own error.
pub(crate) fn open(config: &StorageConfig) -> Result<Arc<dyn Engine>, StoreError> {
    // The engine panics below this size: refused before it sees it.
    if config.cache_bytes < crate::store::MIN_CACHE_BYTES {
        return Err(StoreError::CacheTooSmall { bytes: config.cache_bytes });
    }
    // At least a millisecond; an interval too long for the engine's
    // millisecond count is the longest it takes.
    let flush_ms = config.background_flush.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
    let mut sled_config = sled::Config::new().cache_capacity(config.cache_bytes).flush_every_ms(flush_ms);
    #[cfg(test)]
    let mut faults = None;
    let dir = match &config.location {
        Location::Memory => {
            sled_config = sled_config.temporary(true);
            None
        }
        #[cfg(test)]
        Location::Faulty(switch) => {
            sled_config = sled_config.temporary(true);
            faults = Some(switch.clone());
            None
        }
        Location::Dir(path) => {
            check_dir(path, config.create_missing)?;
            sled_config = sled_config.path(path);
            Some(path.clone())
        }
    };
    match sled_config.open() {
        #[cfg(test)]
        Ok(db) if faults.is_some() => Ok(Arc::new(faults::FaultyEngine {
            inner: SledEngine::new(db, dir),
            switch: faults.unwrap_or_default(),
        })),
        Ok(db) => Ok(Arc::new(SledEngine::new(db, dir))),
        Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked { path: dir.unwrap_or_default() })
        }
        Err(sled::Error::Io(io)) if io.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(StoreError::ReadOnly { path: dir.unwrap_or_default() })
        }
        Err(err) => Err(StoreError::from_engine("opening the database", err)),
    }
}

fn check_dir(path: &PathBuf, create: bool) -> Result<(), StoreError> {
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => Err(StoreError::NotADirectory { path: path.clone() }),
        Ok(meta) if meta.permissions().readonly() => Err(StoreError::ReadOnly { path: path.clone() }),
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if !create {
                return Err(StoreError::MissingDirectory { path: path.clone() });
            }
            std::fs::create_dir_all(path).map_err(|err| StoreError::Io {
                action: "creating the data directory",
                reason: err.to_string(),
            })
        }
        Err(err) => Err(StoreError::Io { action: "reading the data directory", reason: err.to_string() }),
    }
}

/// A sled database, until it is closed.
pub(crate) struct SledEngine {
    db: RwLock<Option<sled::Db>>,
    /// Every tree handed out, to be closed with the database.
    trees: Mutex<Trees>,
    /// The data directory, locked by sled while the database is open;
    /// `None` in memory.
    dir: Option<PathBuf>,
}

/// The trees a [`SledEngine`] handed out. Dropped ones are pruned when the
/// list has doubled since the last pruning, so opening stays O(1) amortised.
struct Trees {
    handed_out: Vec<Weak<SledTree>>,
    prune_at: usize,
}

impl SledEngine {
    fn new(db: sled::Db, dir: Option<PathBuf>) -> Self {
        SledEngine {
            db: RwLock::new(Some(db)),
            trees: Mutex::new(Trees { handed_out: Vec::new(), prune_at: 64 }),
            dir,
        }
    }

    /// A handle of the database, or [`StoreError::Closed`].
    fn db(&self) -> Result<sled::Db, StoreError> {
        self.db.read().clone().ok_or(StoreError::Closed)
    }
}

impl Engine for SledEngine {
    fn open_tree(&self, name: &[u8]) -> Result<Arc<dyn TreeEngine>, StoreError> {
        let db = self.db()?;
        let tree = db.open_tree(name).map_err(|e| StoreError::from_engine("opening a tree", e))?;
        let tree = Arc::new(SledTree { tree: RwLock::new(Some(tree)) });
        let mut trees = self.trees.lock();
        if trees.handed_out.len() >= trees.prune_at {
            trees.handed_out.retain(|t| t.strong_count() > 0);
            trees.prune_at = (trees.handed_out.len() * 2).max(64);
        }
        trees.handed_out.push(Arc::downgrade(&tree));
        Ok(tree)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        db.flush().map(drop).map_err(|e| StoreError::from_engine("flushing", e))
    }

    fn generate_id(&self) -> Result<u64, StoreError> {
        let db = self.db()?;
        db.generate_id().map_err(|e| StoreError::from_engine("numbering", e))
    }

    fn tree_names(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut names: Vec<Vec<u8>> = self.db()?.tree_names().iter().map(|name| name.to_vec()).collect();
        names.sort();
        Ok(names)
    }

    fn close(&self, deadline: Instant) -> bool {
        let trees = std::mem::take(&mut self.trees.lock().handed_out);
        for tree in trees.iter().filter_map(Weak::upgrade) {
            drop(tree.tree.write().take());
        }
        // The engine's own handle, the last one unless an operation is in
        // flight: sled writes what is left of its log and syncs the file
        // before this returns.
        drop(self.db.write().take());
        match &self.dir {
            Some(dir) => lock::wait_released(dir, deadline),
            None => true,
        }
    }
}

/// The data directory's lock, as sled takes it.
mod lock {
    use std::path::Path;
    use std::time::Instant;

    /// Waits until nobody holds the lock sled takes on `dir` (an exclusive
    /// `flock` of its `db` file, on the platforms where sled locks); `false`
    /// if it is still held at `deadline`.
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "windows"))]
    pub(super) fn wait_released(dir: &Path, deadline: Instant) -> bool {
        use fs2::FileExt;

        use crate::sync::{thread, Backoff};

        let Ok(file) = std::fs::OpenOptions::new().read(true).open(dir.join("db")) else {
            // No database file: nothing holds it.
            return true;
        };
        // sled's I/O thread lets go right after its last write: spinning
        // and yielding is usually enough, sleeping covers a loaded machine.
        let backoff = Backoff::new();
        loop {
            if file.try_lock_exclusive().is_ok() {
                // Dropping the file releases the lock again.
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            if backoff.is_completed() {
                thread::sleep(std::time::Duration::from_millis(1));
            } else {
                backoff.snooze();
            }
        }
    }

    /// sled takes no lock on this platform.
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    pub(super) fn wait_released(_dir: &Path, _deadline: Instant) -> bool {
        true
    }
}

/// A tree of a [`SledEngine`], until the engine is closed.
struct SledTree {
    tree: RwLock<Option<sled::Tree>>,
}

impl SledTree {
    /// Runs `op` on the tree, or fails with [`StoreError::Closed`].
    ///
    /// `op` works on a handle of its own (sled's handles are reference
    /// counted), not under the lock: an updater may use the store again, and
    /// a close never waits for an operation, only for the directory.
    fn with<T>(&self, op: impl FnOnce(&sled::Tree) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let tree = self.tree.read().clone().ok_or(StoreError::Closed)?;
        op(&tree)
    }
}

impl TreeEngine for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.with(|tree| tree.get(key).map_err(|e| StoreError::from_engine("reading", e)))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.with(|tree| tree.insert(key, value).map(drop).map_err(|e| StoreError::from_engine("writing", e)))
    }

    fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        let old = self.with(|tree| tree.remove(key).map_err(|e| StoreError::from_engine("removing", e)))?;
        Ok(old.is_some())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries {
        match self.with(|tree| Ok(tree.scan_prefix(prefix))) {
            Ok(entries) => Box::new(entries.map(|entry| {
                entry
                    .map(|(k, v)| (k.to_vec(), v.to_vec()))
                    .map_err(|e| StoreError::from_engine("scanning", e))
            })),
            Err(err) => Box::new(std::iter::once(Err(err))),
        }
    }

    fn update(&self, key: &[u8], f: Updater<'_>) -> Result<(), StoreError> {
        self.with(|tree| {
            tree.fetch_and_update(key, f).map(drop).map_err(|e| StoreError::from_engine("updating", e))
        })
    }

    fn transaction(&self, f: &dyn Fn(&dyn TxEngine) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.with(|tree| {
            let result = tree.transaction(|tree| {
                let tx = SledTx { tree, failed: RefCell::new(None) };
                let outcome = f(&tx);
                // A conflict makes sled run the transaction again; a storage
                // error ends it. Either way it wins over what `f` returned.
                if let Some(failed) = tx.failed.into_inner() {
                    return Err(failed);
                }
                outcome.map_err(ConflictableTransactionError::Abort)
            });
            match result {
                Ok(()) => Ok(()),
                Err(TransactionError::Abort(err)) => Err(err),
                Err(TransactionError::Storage(err)) => {
                    Err(StoreError::from_engine("committing a transaction", err))
                }
            }
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.with(|tree| tree.flush().map(drop).map_err(|e| StoreError::from_engine("flushing", e)))
    }
}

struct SledTx<'a> {
    tree: &'a TransactionalTree,
    failed: RefCell<Option<ConflictableTransactionError<StoreError>>>,
}

impl SledTx<'_> {
    fn check<T>(
        &self,
        result: Result<T, sled::transaction::UnabortableTransactionError>,
    ) -> Result<T, StoreError> {
        result.map_err(|err| {
            let reason = err.to_string();
            *self.failed.borrow_mut() = Some(err.into());
            StoreError::Engine { reason }
        })
    }
}

impl TxEngine for SledTx<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.check(self.tree.get(key)).map(|v| v.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.check(self.tree.insert(key, value)).map(drop)
    }

    fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.check(self.tree.remove(key)).map(|old| old.is_some())
    }
}

/// An engine whose writes and flushes fail on demand, as a full disk's do.
#[cfg(test)]
pub(crate) mod faults {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};

    use super::{Arc, Engine, Entries, SledEngine, StoreError, TreeEngine, TxEngine, Updater};

    /// Turns the faults on and off.
    #[derive(Clone, Debug, Default)]
    pub(crate) struct Switch(std::sync::Arc<AtomicBool>);

    impl PartialEq for Switch {
        fn eq(&self, other: &Self) -> bool {
            std::sync::Arc::ptr_eq(&self.0, &other.0)
        }
    }

    impl Eq for Switch {}

    impl Switch {
        pub(crate) fn set(&self, failing: bool) {
            self.0.store(failing, SeqCst);
        }

        fn check(&self, action: &'static str) -> Result<(), StoreError> {
            if self.0.load(SeqCst) {
                return Err(StoreError::Io {
                    action,
                    reason: "No space left on device (os error 28)".into(),
                });
            }
            Ok(())
        }
    }

    pub(crate) struct FaultyEngine {
        pub(crate) inner: SledEngine,
        pub(crate) switch: Switch,
    }

    impl Engine for FaultyEngine {
        fn open_tree(&self, name: &[u8]) -> Result<Arc<dyn TreeEngine>, StoreError> {
            let inner = self.inner.open_tree(name)?;
            Ok(Arc::new(FaultyTree { inner, switch: self.switch.clone() }))
        }

        fn flush(&self) -> Result<(), StoreError> {
            self.switch.check("flushing")?;
            self.inner.flush()
        }

        fn generate_id(&self) -> Result<u64, StoreError> {
            self.inner.generate_id()
        }

        fn tree_names(&self) -> Result<Vec<Vec<u8>>, StoreError> {
            self.inner.tree_names()
        }

        fn close(&self, deadline: std::time::Instant) -> bool {
            self.inner.close(deadline)
        }
    }

    struct FaultyTree {
        inner: Arc<dyn TreeEngine>,
        switch: Switch,
    }

    impl TreeEngine for FaultyTree {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }

        fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
            self.switch.check("writing")?;
            self.inner.insert(key, value)
        }

        fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
            self.switch.check("removing")?;
            self.inner.remove(key)
        }

        fn scan_prefix(&self, prefix: &[u8]) -> Entries {
            self.inner.scan_prefix(prefix)
        }

        fn update(&self, key: &[u8], f: Updater<'_>) -> Result<(), StoreError> {
            self.switch.check("updating")?;
            self.inner.update(key, f)
        }

        fn transaction(&self, f: &dyn Fn(&dyn TxEngine) -> Result<(), StoreError>) -> Result<(), StoreError> {
            self.switch.check("committing a transaction")?;
            self.inner.transaction(f)
        }

        fn flush(&self) -> Result<(), StoreError> {
            self.switch.check("flushing")?;
            self.inner.flush()
        }
    }
}
