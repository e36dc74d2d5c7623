//! [`StoreError`]: what went wrong with a cell's storage.

use std::fmt;
use std::path::PathBuf;

/// Why a storage operation, or opening the storage, failed.
///
/// Storage failures never panic a worker: a handler that meets one returns
/// it (it converts into [`CellError`](crate::CellError)), and its supervisor
/// sees a typed failure.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The runtime was built without storage ([`Builder::storage`](crate::Builder::storage)).
    Disabled,
    /// The runtime shut down and closed its database; a [`Store`](crate::Store)
    /// kept past the shutdown reads and writes nothing more.
    Closed,
    /// [`StorageConfig::cache_bytes`](crate::StorageConfig::cache_bytes)
    /// is below [`MIN_CACHE_BYTES`](crate::MIN_CACHE_BYTES), the least the
    /// storage engine works with.
    CacheTooSmall {
        /// The refused size, in bytes.
        bytes: u64,
    },
    /// The data directory does not exist (and creating it was not asked for).
    MissingDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// The data path exists and is not a directory.
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The data directory is read-only.
    ReadOnly {
        /// The directory.
        path: PathBuf,
    },
    /// Another runtime, in this process or another, has the data directory
    /// open.
    Locked {
        /// The directory.
        path: PathBuf,
    },
    /// An I/O error: a full disk, a failing device, a permission refused.
    Io {
        /// What was being done.
        action: &'static str,
        /// The system's error text.
        reason: String,
    },
    /// The storage engine found corrupted data on disk.
    Corrupted {
        /// The engine's description.
        reason: String,
    },
    /// The storage engine failed in a way it reports as its own bug or an
    /// unsupported use.
    Engine {
        /// The engine's description.
        reason: String,
    },
    /// A value could not be encoded.
    Encode {
        /// The value's Rust type.
        type_name: &'static str,
        /// Why.
        reason: String,
    },
    /// Stored bytes could not be decoded as the requested type: corrupt
    /// bytes, or a type changed since they were written.
    Decode {
        /// The requested Rust type.
        type_name: &'static str,
        /// The key the bytes were stored under.
        key: Vec<u8>,
        /// Why.
        reason: String,
    },
    /// A transaction was aborted by its closure with this reason.
    Aborted {
        /// The reason given.
        reason: String,
    },
}

impl StoreError {
    /// An error to abort a [`Store::transaction`](crate::Store::transaction) with.
    pub fn abort(reason: impl Into<String>) -> Self {
        StoreError::Aborted { reason: reason.into() }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Disabled => f.write_str("the runtime was built without storage"),
            StoreError::Closed => f.write_str("the runtime's storage was closed at shutdown"),
            StoreError::CacheTooSmall { bytes } => write!(
                f,
                "a storage cache of {bytes} bytes is below the minimum, {} bytes",
                crate::store::MIN_CACHE_BYTES
            ),
            StoreError::MissingDirectory { path } => {
                write!(f, "data directory {} does not exist", path.display())
            }
            StoreError::NotADirectory { path } => {
                write!(f, "data path {} is not a directory", path.display())
            }
            StoreError::ReadOnly { path } => write!(f, "data directory {} is read-only", path.display()),
            StoreError::Locked { path } => {
                write!(f, "data directory {} is already open in another runtime", path.display())
            }
            StoreError::Io { action, reason } => write!(f, "storage I/O failed while {action}: {reason}"),
            StoreError::Corrupted { reason } => write!(f, "storage is corrupted: {reason}"),
            StoreError::Engine { reason } => write!(f, "storage engine error: {reason}"),
            StoreError::Encode { type_name, reason } => write!(f, "cannot encode {type_name}: {reason}"),
            StoreError::Decode { type_name, key, reason } => {
                write!(f, "cannot decode the value at key {key:?} as {type_name}: {reason}")
            }
            StoreError::Aborted { reason } => write!(f, "transaction aborted: {reason}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// Maps an engine error met while doing `action`.
    pub(crate) fn from_engine(action: &'static str, err: sled::Error) -> Self {
        match err {
            sled::Error::Io(io) => StoreError::Io { action, reason: io.to_string() },
            sled::Error::Corruption { at, .. } => StoreError::Corrupted { reason: format!("at {at:?}") },
            sled::Error::CollectionNotFound(name) => {
                StoreError::Engine { reason: format!("tree {:?} not found", String::from_utf8_lossy(&name)) }
            }
            other => StoreError::Engine { reason: other.to_string() },
        }
    }
}
