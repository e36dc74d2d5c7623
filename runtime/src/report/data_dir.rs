//! [`DataDir`]: the data directory of a stopped application, read: its
//! journal, its snapshot history, the plans the recomposition engine kept,
//! its trees, and an integrity check of every cell's tree.
//!
//! The storage engine (sled) lets one process at a time open a directory:
//! [`DataDir::open`] refuses a directory held by a running application at
//! once with [`DataDirError::Locked`], never waiting for it. To read a
//! running application's directory, [`DataDir::open_copy`] copies it first
//! (the snapshot files, then the log, then the blobs, so that the copy never
//! refers to data it lacks) and opens the copy, which the engine recovers
//! as it would after a crash: what the application had flushed before the
//! copy is there (the journal and recorded snapshots are flushed as they
//! are written; cells' data as their durability says). A directory that
//! does not hold a database is refused before anything is written to it
//! ([`DataDirError::NotADataDir`]). Opening an application's directory
//! writes nothing but what the engine itself writes when it opens and
//! closes a database.

use std::fmt;
use std::path::{Path, PathBuf};

use super::Report;
use crate::observe::history;
use crate::observe::journal::{Journal, JournalConfig, JournalOpenError, LearningMeasures, RollUp, Signal};
use crate::observe::snapshot::Snapshot;
use crate::observe::JournalQuery;
use crate::path::CellPath;
use crate::recompose::persist;
use crate::recompose::Action;
use crate::store::{Storage, StorageConfig, StoreError, StoredDeadLetter};

/// The files a sled database keeps in its directory: a directory without
/// them is not a data directory.
const ENGINE_FILES: [&str; 2] = ["conf", "db"];

/// The trees the engine has whatever is stored.
const ENGINE_TREES: [&str; 1] = ["__sled__default"];

/// An application's data directory, open for reading.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::report::{DataDir, DataDirError};
/// use cellrt::{Runtime, StorageConfig};
///
/// let dir = tempfile::tempdir()?;
/// let runtime = Runtime::builder().storage(StorageConfig::dir(dir.path())).build()?;
/// runtime.mark_phase("baseline")?;
/// // While the application runs, its directory is locked.
/// assert!(matches!(DataDir::open(dir.path()), Err(DataDirError::Locked { .. })));
/// runtime.shutdown(Duration::from_secs(5));
///
/// let data = DataDir::open(dir.path())?;
/// assert_eq!(data.journal()?.signals.len(), 1);
/// assert!(data.verify()?.is_clean());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct DataDir {
    path: PathBuf,
    storage: Storage,
}

impl fmt::Debug for DataDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataDir").field("path", &self.path).finish_non_exhaustive()
    }
}

/// The journal of a data directory.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct JournalContents {
    /// The entries kept one by one, by seq.
    pub signals: Vec<Signal>,
    /// The roll-ups of entries past the journal's retention.
    pub rollups: Vec<RollUp>,
    /// The learning measures, over every entry ever recorded.
    pub measures: LearningMeasures,
    /// Entries recorded since the journal began.
    pub total: u64,
    /// Stored entries that could not be read back (skipped).
    pub unreadable: u64,
}

/// A plan the recomposition engine kept for a cell, stored so that the
/// next run applies it again.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct KeptPlan {
    /// The managed cell.
    pub cell: CellPath,
    /// The plan's id in the run that kept it.
    pub plan: u64,
    /// Its actions, in order.
    pub actions: Vec<Action>,
}

/// What [`DataDir::verify`] found in one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TreeCheck {
    /// The tree's name: `cell` followed by the cell's path, or `sys/…`.
    pub name: String,
    /// Entries read.
    pub entries: u64,
    /// Why the tree could not be read through, or why its saved state (key
    /// `state` of a durable cell) is not a readable envelope; `None` when
    /// it is sound.
    pub problem: Option<String>,
}

/// What [`DataDir::verify`] found: every tree read through, and the
/// quarantined states.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verification {
    /// Every tree, in name order.
    pub trees: Vec<TreeCheck>,
    /// The quarantine's keys (`<path>@<time>`) and the size of the bytes
    /// kept under each, in key order.
    pub quarantined: Vec<(String, usize)>,
}

impl Verification {
    /// Whether every tree was read through and nothing is quarantined.
    pub fn is_clean(&self) -> bool {
        self.quarantined.is_empty() && self.trees.iter().all(|t| t.problem.is_none())
    }
}

impl DataDir {
    /// Opens the data directory at `path`, which a stopped application
    /// built with [`StorageConfig::dir`] left.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Missing`], [`NotADirectory`](DataDirError::NotADirectory),
    /// [`NotADataDir`](DataDirError::NotADataDir) (no database in it: nothing
    /// is written), [`Locked`](DataDirError::Locked) (an application has it
    /// open), or [`Store`](DataDirError::Store).
    pub fn open(path: impl AsRef<Path>) -> Result<DataDir, DataDirError> {
        let path = path.as_ref().to_owned();
        match std::fs::metadata(&path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(DataDirError::Missing { path })
            }
            Err(err) => {
                return Err(DataDirError::Store(StoreError::Io {
                    action: "reading the data directory",
                    reason: err.to_string(),
                }))
            }
            Ok(meta) if !meta.is_dir() => return Err(DataDirError::NotADirectory { path }),
            Ok(_) => {}
        }
        if let Some(missing) = ENGINE_FILES.iter().find(|file| !path.join(file).is_file()) {
            return Err(DataDirError::NotADataDir { path, missing: missing.to_string() });
        }
        match Storage::open(&StorageConfig::dir(&path).background_flush(None)) {
            Ok(storage) => Ok(DataDir { path, storage }),
            Err(StoreError::Locked { .. }) => Err(DataDirError::Locked { path }),
            Err(err) => Err(DataDirError::Store(err)),
        }
    }

    /// Copies the data directory at `source`, which an application may be
    /// running on, into `scratch` (a directory that does not exist yet or is
    /// empty), and opens the copy: see the module docs for what the copy
    /// holds.
    ///
    /// # Errors
    ///
    /// As [`open`](DataDir::open) for `source` (but never `Locked`), and
    /// [`DataDirError::Store`] when the copy cannot be made, or `scratch` is
    /// not empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::report::DataDir;
    /// use cellrt::{Runtime, StorageConfig};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let runtime = Runtime::builder().storage(StorageConfig::dir(dir.path())).build()?;
    /// runtime.mark_phase("load")?;
    /// runtime.record_snapshot()?; // flushed when it returns
    ///
    /// let scratch = tempfile::tempdir()?;
    /// let copy = DataDir::open_copy(dir.path(), scratch.path().join("copy"))?;
    /// assert_eq!(copy.snapshots()?.0.len(), 1);
    /// assert_eq!(copy.journal()?.signals.len(), 1);
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_copy(source: impl AsRef<Path>, scratch: impl AsRef<Path>) -> Result<DataDir, DataDirError> {
        let source = source.as_ref();
        let scratch = scratch.as_ref();
        check_data_dir(source)?;
        let io = |action: &'static str| {
            move |err: std::io::Error| DataDirError::Store(StoreError::Io { action, reason: err.to_string() })
        };
        std::fs::create_dir_all(scratch).map_err(io("creating the copy's directory"))?;
        if std::fs::read_dir(scratch).map_err(io("reading the copy's directory"))?.next().is_some() {
            return Err(DataDirError::Store(StoreError::Io {
                action: "copying the data directory",
                reason: format!("{} is not empty", scratch.display()),
            }));
        }
        let mut snapshots = Vec::new();
        for entry in std::fs::read_dir(source).map_err(io("listing the data directory"))? {
            let name = entry.map_err(io("listing the data directory"))?.file_name();
            if name.to_string_lossy().starts_with("snap.") {
                snapshots.push(name);
            }
        }
        let copy = |name: &std::ffi::OsStr| match std::fs::copy(source.join(name), scratch.join(name)) {
            // A snapshot file the engine replaced meanwhile: the log has it all.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other.map(drop),
        };
        copy("conf".as_ref()).map_err(io("copying the data directory"))?;
        for name in &snapshots {
            copy(name).map_err(io("copying the data directory"))?;
        }
        copy("db".as_ref()).map_err(io("copying the data directory"))?;
        let blobs = source.join("blobs");
        if blobs.is_dir() {
            std::fs::create_dir_all(scratch.join("blobs")).map_err(io("copying the data directory"))?;
            for entry in std::fs::read_dir(&blobs).map_err(io("copying the data directory"))? {
                let name = entry.map_err(io("copying the data directory"))?.file_name();
                copy(Path::new("blobs").join(name).as_os_str()).map_err(io("copying the data directory"))?;
            }
        }
        DataDir::open(scratch)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal: every entry still kept, roll-ups, measures.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Store`] when the journal's tree cannot be read.
    pub fn journal(&self) -> Result<JournalContents, DataDirError> {
        // Capacities no smaller than any run's, so that opening rolls
        // nothing up: reading writes nothing.
        let config = JournalConfig::default().capacity(usize::MAX).persisted_capacity(usize::MAX);
        let journal =
            Journal::persisted(config, self.storage.journal().clone()).map_err(|err| match err {
                JournalOpenError::Store(err) => DataDirError::Store(err),
                JournalOpenError::Config(err) => {
                    DataDirError::Store(StoreError::Engine { reason: err.to_string() })
                }
            })?;
        Ok(JournalContents {
            signals: journal.query(&JournalQuery::new()),
            rollups: journal.rollups(),
            measures: journal.measures(),
            total: journal.total(),
            unreadable: journal.read_errors(),
        })
    }

    /// The snapshots recorded during the runs
    /// ([`Runtime::record_snapshot`](crate::Runtime::record_snapshot)),
    /// oldest first, and how many could not be read (skipped).
    ///
    /// # Errors
    ///
    /// [`DataDirError::Store`] when the tree cannot be read.
    pub fn snapshots(&self) -> Result<(Vec<Snapshot>, u64), DataDirError> {
        let store = self.storage.snapshots().map_err(DataDirError::Store)?;
        history::read(&store).map_err(DataDirError::Store)
    }

    /// The plans the recomposition engine kept, per managed cell in path
    /// order, oldest first.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Store`] when the tree cannot be read or decoded.
    pub fn kept_plans(&self) -> Result<Vec<KeptPlan>, DataDirError> {
        let store = self.storage.recompositions().map_err(DataDirError::Store)?;
        let mut kept = Vec::new();
        for entry in store.scan_prefix::<Vec<persist::KeptPlan>>([]) {
            let (key, plans) = entry.map_err(DataDirError::Store)?;
            let cell: CellPath = String::from_utf8_lossy(&key).parse().map_err(|_| {
                DataDirError::Store(StoreError::Engine {
                    reason: format!("kept plans stored under {key:?}, which is not a cell path"),
                })
            })?;
            kept.extend(plans.into_iter().map(|p| KeptPlan {
                cell: cell.clone(),
                plan: p.plan,
                actions: p.actions,
            }));
        }
        Ok(kept)
    }

    /// Every dead letter kept, oldest first.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Store`] when they cannot be read.
    pub fn dead_letters(&self) -> Result<Vec<StoredDeadLetter>, DataDirError> {
        self.storage.dead_letters().map_err(DataDirError::Store)
    }

    /// Reads every tree through, checks that each durable cell's saved
    /// state is a readable envelope (its version; the state itself is the
    /// application's type), and lists the quarantined states.
    ///
    /// # Errors
    ///
    /// [`DataDirError::Store`] when the trees cannot be listed.
    pub fn verify(&self) -> Result<Verification, DataDirError> {
        let mut trees = Vec::new();
        for name in self.storage.tree_names().map_err(DataDirError::Store)? {
            if ENGINE_TREES.contains(&name.as_str()) {
                continue;
            }
            trees.push(self.check(&name));
        }
        let mut quarantined = Vec::new();
        for entry in self.storage.quarantine().scan_prefix_bytes([]) {
            let (key, bytes) = entry.map_err(DataDirError::Store)?;
            quarantined.push((String::from_utf8_lossy(&key).into_owned(), bytes.len()));
        }
        Ok(Verification { trees, quarantined })
    }

    fn check(&self, name: &str) -> TreeCheck {
        let mut check = TreeCheck { name: name.to_owned(), entries: 0, problem: None };
        let store = match self.storage.tree_named(name) {
            Ok(store) => store,
            Err(err) => {
                check.problem = Some(err.to_string());
                return check;
            }
        };
        let is_cell = name.starts_with("cell/");
        for entry in store.scan_prefix_bytes([]) {
            match entry {
                Ok((key, bytes)) => {
                    check.entries += 1;
                    if is_cell && key == crate::store::durable::STATE_KEY.as_bytes() {
                        if let Err(err) = crate::store::durable::saved_version(&key, &bytes) {
                            check.problem = Some(format!("saved state unreadable: {err}"));
                        }
                    }
                }
                Err(err) => {
                    check.problem = Some(err.to_string());
                    break;
                }
            }
        }
        check
    }

    /// The report of what the directory holds: the journal, its roll-ups
    /// and measures, and the snapshot history.
    ///
    /// # Errors
    ///
    /// As [`journal`](DataDir::journal) and [`snapshots`](DataDir::snapshots).
    pub fn report(&self) -> Result<Report, DataDirError> {
        let journal = self.journal()?;
        let (snapshots, _) = self.snapshots()?;
        Ok(Report::new(format!("cellrt run: {}", self.path.display()))
            .journal(journal.signals)
            .rollups(journal.rollups)
            .measures(journal.measures)
            .snapshots(snapshots))
    }
}

/// Whether `path` is a directory holding a database.
fn check_data_dir(path: &Path) -> Result<(), DataDirError> {
    match std::fs::metadata(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataDirError::Missing { path: path.to_owned() })
        }
        Err(err) => {
            return Err(DataDirError::Store(StoreError::Io {
                action: "reading the data directory",
                reason: err.to_string(),
            }))
        }
        Ok(meta) if !meta.is_dir() => return Err(DataDirError::NotADirectory { path: path.to_owned() }),
        Ok(_) => {}
    }
    match ENGINE_FILES.iter().find(|file| !path.join(file).is_file()) {
        Some(missing) => {
            Err(DataDirError::NotADataDir { path: path.to_owned(), missing: missing.to_string() })
        }
        None => Ok(()),
    }
}

/// Why a data directory could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataDirError {
    /// Nothing is at the path.
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The path is not a directory.
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds no database: not an application's data
    /// directory.
    NotADataDir {
        /// The path given.
        path: PathBuf,
        /// The first of the engine's files it lacks.
        missing: String,
    },
    /// A running application holds the directory (the engine allows one
    /// process at a time).
    Locked {
        /// The path given.
        path: PathBuf,
    },
    /// The storage failed.
    Store(StoreError),
}

impl fmt::Display for DataDirError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataDirError::Missing { path } => write!(f, "{} does not exist", path.display()),
            DataDirError::NotADirectory { path } => write!(f, "{} is not a directory", path.display()),
            DataDirError::NotADataDir { path, missing } => write!(
                f,
                "{} is not a cellrt data directory (it has no database: no `{missing}` file)",
                path.display()
            ),
            DataDirError::Locked { path } => write!(
                f,
                "{} is in use by a running application (its database admits one process at a time); \
                 stop the application, or read a copy of the directory (DataDir::open_copy; \
                 cellrt-inspect --copy)",
                path.display()
            ),
            DataDirError::Store(err) => write!(f, "cannot read the data directory: {err}"),
        }
    }
}

impl std::error::Error for DataDirError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DataDirError::Store(err) => Some(err),
            _ => None,
        }
    }
}

impl Drop for DataDir {
    fn drop(&mut self) {
        // Release the directory before returning, as a runtime's shutdown
        // does, so that an application started right after finds it free.
        let _ = self.storage.flush();
        self.storage.close(std::time::Instant::now() + std::time::Duration::from_secs(5));
    }
}
