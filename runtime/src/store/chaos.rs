//! The storage seam of chaos: an engine wrapper that fails or slows the
//! writes and flushes of cells' trees as installed storage faults say
//! (see `chaos::registry::StorageSeam`).
//!
//! Only cells' trees (`cell/<path>`) are wrapped: the runtime's own trees
//! (dead letters, quarantine, journal) and the database-wide flush are
//! never injected. An unwrapped read costs nothing; a wrapped write or
//! flush costs one relaxed load while no storage fault is installed.

use super::engine::{Engine, Entries, TreeEngine, TxEngine, Updater};
use super::error::StoreError;
use crate::chaos::registry::StorageSeam;
use crate::path::CellPath;
use crate::sync::Arc;

/// `engine`, with cells' trees wrapped, and the seam its faults come from.
pub(crate) fn wrap(engine: Arc<dyn Engine>) -> (Arc<dyn Engine>, Arc<StorageSeam>) {
    let seam = Arc::new(StorageSeam::default());
    (Arc::new(ChaosEngine { inner: engine, seam: seam.clone() }), seam)
}

struct ChaosEngine {
    inner: Arc<dyn Engine>,
    seam: Arc<StorageSeam>,
}

impl Engine for ChaosEngine {
    fn open_tree(&self, name: &[u8]) -> Result<Arc<dyn TreeEngine>, StoreError> {
        let inner = self.inner.open_tree(name)?;
        let path = std::str::from_utf8(name)
            .ok()
            .and_then(|name| name.strip_prefix("cell")?.parse::<CellPath>().ok());
        Ok(match path {
            Some(path) => Arc::new(ChaosTree { inner, path, seam: self.seam.clone() }),
            None => inner,
        })
    }

    fn flush(&self) -> Result<(), StoreError> {
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

struct ChaosTree {
    inner: Arc<dyn TreeEngine>,
    path: CellPath,
    seam: Arc<StorageSeam>,
}

impl ChaosTree {
    fn write(&self, action: &'static str) -> Result<(), StoreError> {
        if !self.seam.is_active() {
            return Ok(());
        }
        match self.seam.on_write(&self.path) {
            Some(fault) => Err(StoreError::Io { action, reason: format!("injected I/O error ({fault})") }),
            None => Ok(()),
        }
    }
}

impl TreeEngine for ChaosTree {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> Result<(), StoreError> {
        self.write("writing")?;
        self.inner.insert(key, value)
    }

    fn remove(&self, key: &[u8]) -> Result<bool, StoreError> {
        self.write("removing")?;
        self.inner.remove(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries {
        self.inner.scan_prefix(prefix)
    }

    fn update(&self, key: &[u8], f: Updater<'_>) -> Result<(), StoreError> {
        self.write("updating")?;
        self.inner.update(key, f)
    }

    fn transaction(&self, f: &dyn Fn(&dyn TxEngine) -> Result<(), StoreError>) -> Result<(), StoreError> {
        self.write("committing a transaction")?;
        self.inner.transaction(f)
    }

    fn flush(&self) -> Result<(), StoreError> {
        if self.seam.is_active() {
            let (slow, failed) = self.seam.on_flush(&self.path);
            if let Some(slow) = slow {
                crate::sync::thread::sleep(slow);
            }
            if let Some(fault) = failed {
                return Err(StoreError::Io {
                    action: "flushing",
                    reason: format!("injected I/O error ({fault})"),
                });
            }
        }
        self.inner.flush()
    }
}
