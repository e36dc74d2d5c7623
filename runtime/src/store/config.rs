//! [`StorageConfig`]: where the runtime's database lives and how it is tuned.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The smallest storage cache accepted, in bytes: the least the storage
/// engine works with.
pub const MIN_CACHE_BYTES: u64 = 256;

/// Where and how the runtime stores cell data. Give it to
/// [`Builder::storage`](crate::Builder::storage).
///
/// # Examples
///
/// ```
/// use cellrt::StorageConfig;
///
/// // On disk, created if missing, with a 4 MiB cache for a small board.
/// let disk = StorageConfig::dir("/var/lib/app").create_missing(true).cache_bytes(4 << 20);
/// // In memory: gone when the runtime is.
/// let memory = StorageConfig::in_memory();
/// # let _ = (disk, memory);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub(crate) location: Location,
    pub(crate) create_missing: bool,
    pub(crate) cache_bytes: u64,
    pub(crate) background_flush: Option<Duration>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    Dir(PathBuf),
    Memory,
    /// In memory, with writes and flushes that fail while the switch is on.
    #[cfg(test)]
    Faulty(super::engine::faults::Switch),
}

impl StorageConfig {
    /// A database in `path`, which must be a directory that exists (see
    /// [`create_missing`](StorageConfig::create_missing)). Only one runtime
    /// at a time can have it open.
    pub fn dir(path: impl AsRef<Path>) -> Self {
        StorageConfig::at(Location::Dir(path.as_ref().to_path_buf()))
    }

    /// A temporary database, removed when the runtime stops: for tests,
    /// examples and diskless boards.
    pub fn in_memory() -> Self {
        StorageConfig::at(Location::Memory)
    }

    #[cfg(test)]
    pub(crate) fn faulty(switch: super::engine::faults::Switch) -> Self {
        StorageConfig::at(Location::Faulty(switch))
    }

    fn at(location: Location) -> Self {
        // A temporary database outlives nothing: flushing it in the
        // background would only wake the process.
        let background_flush = match location {
            Location::Dir(_) => Some(Duration::from_millis(500)),
            _ => None,
        };
        StorageConfig { location, create_missing: false, cache_bytes: 64 << 20, background_flush }
    }

    /// Creates the directory (and its parents) if it does not exist.
    pub fn create_missing(mut self, create: bool) -> Self {
        self.create_missing = create;
        self
    }

    /// The most bytes the engine's page cache holds (sled's
    /// `cache_capacity`). The cache fills as pages are read and written and
    /// evicts past this bound; it is not allocated up front, so a small
    /// database takes less than the bound whatever it is.
    ///
    /// # Default
    ///
    /// 64 MiB (sled's own default is 1 GiB). A few hundred KiB suit a small
    /// board.
    ///
    /// # What the engine takes anyway
    ///
    /// sled 0.34 also allocates about 27 MiB of zero-filled tables that no
    /// setting changes: a process-wide registry of latency histograms
    /// (20.5 MiB) and a page table (6 MiB). A system with virtual memory
    /// maps their pages only once written, and few are, so they cost
    /// address space rather than resident memory (`examples/embedded.rs`
    /// in the repository, with this cache at 256 KiB, runs in about 5 MiB
    /// resident). Its log buffer (one segment, 512 KiB) is filled as it is
    /// written; sled keeps the segment size a hidden, testing-only setting,
    /// so it is not offered here.
    ///
    /// Valid: [`MIN_CACHE_BYTES`] (256) and more; a smaller cache is
    /// refused by [`Builder::build`](crate::Builder::build) with
    /// [`StoreError::CacheTooSmall`](crate::StoreError::CacheTooSmall).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// How often the engine flushes on its own, in the background; `None`
    /// flushes only when asked. Durability guarantees never rest on it:
    /// what must survive a crash is flushed explicitly (see
    /// [`Durability`](crate::Durability)).
    ///
    /// The engine's flusher thread wakes at this interval for as long as
    /// the database is open, idle or not: a board that must not wake when
    /// idle sets `None`.
    ///
    /// # Default
    ///
    /// Every 500 ms for [`dir`](StorageConfig::dir); `None` for
    /// [`in_memory`](StorageConfig::in_memory).
    ///
    /// Every interval is valid: one below a millisecond flushes every
    /// millisecond.
    pub fn background_flush(mut self, every: Option<Duration>) -> Self {
        self.background_flush = every;
        self
    }
}
