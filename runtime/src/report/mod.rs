//! The report of a run, and the reading of a data directory after it
//! (feature `report`).
//!
//! - `mod.rs`: [`Report`], what goes into one and where from; [`ReportError`].
//! - `data_dir.rs`: [`DataDir`], a stopped application's data directory,
//!   read: journal, snapshot history, kept plans, trees, quarantine.
//! - `model.rs`: what the report shows, derived from a journal and
//!   snapshots (pure functions).
//! - `html.rs`: the page: one self-contained HTML file, every text
//!   escaped; `page.css` and `page.js` are inlined in it.
//!
//! A report is drawn from the signal journal and a series of
//! [`Snapshot`]s, so the same renderer works on a live runtime
//! ([`Report::from_runtime`]), on any data directory
//! ([`Report::from_data_dir`]), or on entries and snapshots gathered by
//! hand ([`Report::new`]). A run that wants its decay and flow rates drawn
//! over time records snapshots as it goes
//! ([`Runtime::record_snapshot`](crate::Runtime::record_snapshot)), and
//! marks its phases ([`Runtime::mark_phase`](crate::Runtime::mark_phase)).
//!
//! The page shows: the learning measures; the application's phases; the
//! supervision tree with restarts; the flow map with each edge's rate
//! before and after each recomposition; each cell's decay components over
//! time with its baselines, phase boundaries and recompositions marked; the
//! failure-signature timeline; the triage board in seed 004's categories;
//! each plan with its evidence, expected and measured effect and outcome;
//! the journal. Charts are SVG drawn by the page's own script from data
//! embedded in it: nothing is fetched when it is viewed. The script
//! records what it did on the `<body>`: `data-charts-drawn` (the number of
//! charts drawn) when done, `data-script-error` if it failed.
//!
//! ```
//! use std::time::Duration;
//! use cellrt::report::Report;
//! use cellrt::{JournalQuery, Runtime};
//!
//! let runtime = Runtime::builder().build()?;
//! runtime.mark_phase("baseline")?;
//! let snapshots = vec![runtime.snapshot()];
//! let html = Report::new("a run")
//!     .journal(runtime.journal(&JournalQuery::new()))
//!     .snapshots(snapshots)
//!     .render();
//! assert!(html.starts_with("<!DOCTYPE html>"));
//! assert!(html.contains("baseline"));
//! # runtime.shutdown(Duration::from_secs(1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod data_dir;
mod html;
mod model;

use std::fmt;
use std::path::{Path, PathBuf};

pub use self::data_dir::{DataDir, DataDirError, JournalContents, KeptPlan, TreeCheck, Verification};

use crate::observe::journal::{JournalQuery, LearningMeasures, RollUp, Signal};
use crate::observe::snapshot::Snapshot;
use crate::runtime::Runtime;

/// A report of a run: a journal and snapshots, rendered as one
/// self-contained HTML page (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct Report {
    title: String,
    signals: Vec<Signal>,
    rollups: Vec<RollUp>,
    measures: Option<LearningMeasures>,
    snapshots: Vec<Snapshot>,
}

impl Report {
    /// An empty report titled `title`.
    pub fn new(title: impl Into<String>) -> Report {
        Report { title: title.into(), ..Report::default() }
    }

    /// The report of a live runtime: its whole journal, the snapshots it
    /// recorded in its storage ([`Runtime::record_snapshot`]) if it has
    /// storage, and a snapshot taken now.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::report::Report;
    /// use cellrt::{Runtime, StorageConfig};
    ///
    /// let runtime = Runtime::builder().storage(StorageConfig::in_memory()).build()?;
    /// runtime.mark_phase("load")?;
    /// runtime.record_snapshot()?;
    /// let report = Report::from_runtime(&runtime);
    /// assert_eq!((report.signals().len(), report.snapshot_count()), (1, 2));
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_runtime(runtime: &Runtime) -> Report {
        let mut snapshots = runtime.recorded_snapshots();
        let now = runtime.snapshot();
        let report = Report::new("cellrt run")
            .journal(runtime.journal(&JournalQuery::new()))
            .rollups(now.rollups.clone())
            .measures(now.measures.clone());
        snapshots.push(now);
        report.snapshots(snapshots)
    }

    /// The report of the application whose data directory is `path`, once
    /// it has stopped: see [`DataDir::open`] and [`DataDir::report`].
    ///
    /// # Errors
    ///
    /// As [`DataDir::open`]; a [`DataDirError`] when the journal or the
    /// snapshots cannot be read.
    pub fn from_data_dir(path: impl AsRef<Path>) -> Result<Report, ReportError> {
        let dir = DataDir::open(path).map_err(ReportError::DataDir)?;
        dir.report().map_err(ReportError::DataDir)
    }

    /// Sets the title.
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the journal entries, sorted by seq.
    pub fn journal(mut self, signals: Vec<Signal>) -> Self {
        self.signals = signals;
        self.signals.sort_by_key(|s| s.seq);
        self
    }

    /// Sets the journal's roll-ups (counted on the triage board).
    pub fn rollups(mut self, rollups: Vec<RollUp>) -> Self {
        self.rollups = rollups;
        self
    }

    /// Sets the learning measures; without them the report shows the
    /// latest snapshot's.
    pub fn measures(mut self, measures: LearningMeasures) -> Self {
        self.measures = Some(measures);
        self
    }

    /// Sets the snapshots, sorted by the time they were taken.
    pub fn snapshots(mut self, snapshots: Vec<Snapshot>) -> Self {
        self.snapshots = snapshots;
        self.snapshots.sort_by_key(|s| s.taken_at);
        self
    }

    /// The journal entries, by seq.
    pub fn signals(&self) -> &[Signal] {
        &self.signals
    }

    /// How many snapshots it has.
    pub fn snapshot_count(&self) -> usize {
        self.snapshots.len()
    }

    /// The page: one self-contained HTML document.
    pub fn render(&self) -> String {
        let measures = self.measures.clone().or_else(|| self.snapshots.last().map(|s| s.measures.clone()));
        html::render(&html::Input {
            title: &self.title,
            signals: &self.signals,
            rollups: &self.rollups,
            measures: measures.as_ref(),
            snapshots: &self.snapshots,
        })
    }

    /// Renders the page and writes it to `path`.
    ///
    /// # Errors
    ///
    /// [`ReportError::Write`] when the file cannot be written.
    pub fn write_to(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        std::fs::write(path, self.render())
            .map_err(|err| ReportError::Write { path: path.to_owned(), reason: err.to_string() })
    }
}

/// Why a report could not be made or written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The data directory could not be read.
    DataDir(DataDirError),
    /// The page could not be written.
    Write {
        /// Where.
        path: PathBuf,
        /// The I/O error, as text.
        reason: String,
    },
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReportError::DataDir(err) => write!(f, "cannot make the report: {err}"),
            ReportError::Write { path, reason } => {
                write!(f, "cannot write the report to {}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for ReportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReportError::DataDir(err) => Some(err),
            ReportError::Write { .. } => None,
        }
    }
}
