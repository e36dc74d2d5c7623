//! The storage engine behind [`Store`](crate::Store), as a small internal
//! trait, and its sled implementation.
//!
//! Everything above this file speaks of byte trees: get, insert, remove,
//! scan by prefix, an atomic update, a transaction, a flush. sled 0.34 is
//! beta software; keeping it behind this seam lets another engine replace
//! it without touching cells.

use std::cell::RefCell;
use std::path::PathBuf;

use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

use super::config::{Location, StorageConfig};
use super::error::StoreError;
use crate::sync::Arc;

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
    let mut sled_config = sled::Config::new()
        .cache_capacity(config.cache_bytes)
        .flush_every_ms(config.background_flush.map(|d| d.as_millis().max(1) as u64));
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
            inner: SledEngine { db },
            switch: faults.unwrap_or_default(),
        })),
        Ok(db) => Ok(Arc::new(SledEngine { db })),
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

pub(crate) struct SledEngine {
    db: sled::Db,
}

impl Engine for SledEngine {
    fn open_tree(&self, name: &[u8]) -> Result<Arc<dyn TreeEngine>, StoreError> {
        let tree = self.db.open_tree(name).map_err(|e| StoreError::from_engine("opening a tree", e))?;
        Ok(Arc::new(SledTree { tree }))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(|e| StoreError::from_engine("flushing", e))
    }

    fn generate_id(&self) -> Result<u64, StoreError> {
        self.db.generate_id().map_err(|e| StoreError::from_engine("numbering", e))
    }
}

struct SledTree {
    tree: sled::Tree,
}

impl TreeEngine for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.tree.get(key).map_err(|e| StoreError::from_engine("reading", e))?;
        Ok(value.map(|v| v.to_vec()))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.tree.insert(key, value).map(drop).map_err(|e| StoreError::from_engine("writing", e))
    }

    fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        let old = self.tree.remove(key).map_err(|e| StoreError::from_engine("removing", e))?;
        Ok(old.is_some())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries {
        Box::new(self.tree.scan_prefix(prefix).map(|entry| {
            entry.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| StoreError::from_engine("scanning", e))
        }))
    }

    fn update(&self, key: &[u8], f: Updater<'_>) -> Result<(), StoreError> {
        self.tree.fetch_and_update(key, f).map(drop).map_err(|e| StoreError::from_engine("updating", e))
    }

    fn transaction(&self, f: &dyn Fn(&dyn TxEngine) -> Result<(), StoreError>) -> Result<(), StoreError> {
        let result = self.tree.transaction(|tree| {
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
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.tree.flush().map(drop).map_err(|e| StoreError::from_engine("flushing", e))
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
