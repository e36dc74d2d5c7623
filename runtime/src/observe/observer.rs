//! The [`Observer`]: everything a runtime keeps of what it observes, and the
//! one path by which an observation becomes a journal entry (triaged, then
//! recorded).

use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use super::analysis::{Analysis, CellView};
use super::journal::{Journal, JournalError, JournalQuery, Signal, SignalKind, SignalType, TopologyChange};
use super::objective::Objective;
use super::signature::Signatures;
use super::triage::Triage;
use super::{ObservationConfig, ObservationConfigError, SignatureStats};
use crate::failure::Failure;
use crate::path::CellPath;
use crate::sync::Mutex;

/// What one runtime observes. Lock order: `dependencies`, then `triage`;
/// `analysis` is never held while either is taken; `active` and
/// `objectives_changed` are taken alone.
pub(crate) struct Observer {
    config: ObservationConfig,
    signatures: Mutex<Signatures>,
    /// Signatures first seen by an earlier run (a persisted journal's
    /// `NewSignature` entries), by id, with when they were first seen.
    earlier: HashMap<String, SystemTime>,
    journal: Journal,
    triage: Mutex<Triage>,
    pub(crate) analysis: Mutex<Analysis>,
    objectives: Mutex<HashMap<CellPath, Objective>>,
    /// Paths whose objective was set or cleared since the last window.
    objectives_changed: Mutex<Vec<CellPath>>,
    /// Cells that reported activity since the last window, by instance id
    /// (each at most once per window; see `dispatch/state.rs`).
    active: Mutex<Vec<u64>>,
    /// Which cells each cell sends to, from the latest window.
    dependencies: Mutex<HashMap<CellPath, Vec<CellPath>>>,
    /// Spawns not journaled yet; see [`Observer::spawned`].
    spawns: Mutex<Vec<Spawns>>,
}

/// What an analysis window reads besides the cells it watches anyway.
pub(crate) struct Touched {
    /// Instance ids, possibly repeated.
    pub(crate) ids: Vec<u64>,
    /// Paths whose objective changed.
    pub(crate) paths: Vec<CellPath>,
}

/// Spawns of one cell kind since the last journal entry.
struct Spawns {
    kind: &'static str,
    count: u64,
    /// The first one's path and time.
    first: CellPath,
    at: SystemTime,
}

impl Observer {
    /// An observer with `journal`; `config` was validated.
    pub(crate) fn new(config: ObservationConfig, journal: Journal) -> Result<Self, ObservationConfigError> {
        let triage = Triage::new(config.triage.clone()).map_err(ObservationConfigError::Triage)?;
        let earlier = journal
            .query(&JournalQuery::new().kind(SignalType::NewSignature))
            .into_iter()
            .filter_map(|signal| Some((signal.kind.signature()?.to_owned(), signal.at)))
            .collect();
        Ok(Observer {
            signatures: Mutex::new(Signatures::default()),
            earlier,
            journal,
            triage: Mutex::new(triage),
            analysis: Mutex::new(
                Analysis::new(config.decay.clone(), config.burn.clone())
                    .map_err(ObservationConfigError::Decay)?,
            ),
            objectives: Mutex::new(HashMap::new()),
            objectives_changed: Mutex::new(Vec::new()),
            active: Mutex::new(Vec::new()),
            dependencies: Mutex::new(HashMap::new()),
            spawns: Mutex::new(Vec::new()),
            config,
        })
    }

    pub(crate) fn config(&self) -> &ObservationConfig {
        &self.config
    }

    /// The journal, with the spawns counted so far recorded in it.
    pub(crate) fn journal(&self) -> &Journal {
        self.flush_spawns();
        &self.journal
    }

    /// Triages `kind`, about the cell at `cell` (of type `cell_kind`) if
    /// any, and records it. (The journal refuses only malformed entries,
    /// which the runtime does not make; a refusal is traced.)
    pub(crate) fn signal(
        &self,
        at: SystemTime,
        cell: Option<&CellPath>,
        cell_kind: Option<&str>,
        kind: SignalKind,
    ) -> Option<Signal> {
        self.flush_spawns();
        self.record(at, cell, cell_kind, kind)
    }

    /// Records a record of an act (no category) and returns it, or why the
    /// journal refused it.
    pub(crate) fn mark(&self, at: SystemTime, kind: SignalKind) -> Result<Signal, JournalError> {
        self.flush_spawns();
        self.journal.record(at, None, None, kind, None)
    }

    /// Triages and records one entry, spawns already flushed.
    fn record(
        &self,
        at: SystemTime,
        cell: Option<&CellPath>,
        cell_kind: Option<&str>,
        kind: SignalKind,
    ) -> Option<Signal> {
        let category = {
            let dependencies = self.dependencies.lock();
            let depends_on = |path: &CellPath| dependencies.get(path).cloned().unwrap_or_default();
            self.triage.lock().classify(at, cell, &kind, &depends_on)
        };
        match self.journal.record(at, cell.cloned(), cell_kind.map(str::to_owned), kind, category) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::error!(%err, "the journal refused an entry");
                None
            }
        }
    }

    /// Folds a failure into its signature and journals it: a new signature,
    /// or a recurrence of one known to this run or, with a persisted
    /// journal, to an earlier one (`count` is this run's).
    pub(crate) fn failure(&self, failure: &Failure) {
        let (signature, count, first_seen) = self.signatures.lock().fold(failure);
        let id = signature.id();
        let earlier = self.earlier.get(&id).copied();
        let kind = if count > 1 || earlier.is_some() {
            let first_seen = earlier.map_or(first_seen, |at| at.min(first_seen));
            SignalKind::Recurrence { signature: id, count, first_seen }
        } else {
            tracing::warn!(signature = %signature, cell = %failure.path, "new failure signature");
            SignalKind::NewSignature { signature: id, summary: signature.to_string() }
        };
        self.signal(failure.at, Some(&failure.path), Some(failure.cell_kind), kind);
    }

    /// Every signature's statistics, the most frequent first.
    pub(crate) fn signatures(&self, now: SystemTime) -> Vec<SignatureStats> {
        self.signatures.lock().snapshot(now)
    }

    /// Notes that a cell of type `kind` was spawned at `path`.
    ///
    /// Spawns come in bursts (a supervisor starting its children, a pool
    /// filling up, 50,000 cells at startup), and a journal entry per spawn
    /// would cost each spawn more than the spawn itself. So a spawn is only
    /// counted here, by cell kind; before the next entry is recorded (or
    /// the journal is read, or the analysis window ticks) the counts become
    /// entries: `Topology { Spawned }` at the cell's path for a kind spawned
    /// once, `Topology { SpawnedCells { count } }` for a burst. Triage sees
    /// them before anything recorded after the spawns, so nothing that
    /// follows a spawn is classified as if the spawn had not happened.
    pub(crate) fn spawned(&self, path: &CellPath, kind: &'static str) {
        let mut spawns = self.spawns.lock();
        // A kind is a type name, usually one `&'static str` per type: the
        // pointers decide before the texts are compared.
        match spawns.iter_mut().find(|s| std::ptr::eq(s.kind, kind) || s.kind == kind) {
            Some(burst) => burst.count += 1,
            None => spawns.push(Spawns { kind, count: 1, first: path.clone(), at: SystemTime::now() }),
        }
    }

    /// Journals the spawns counted since the last entry.
    pub(crate) fn flush_spawns(&self) {
        let spawns = std::mem::take(&mut *self.spawns.lock());
        for burst in spawns {
            if burst.count == 1 {
                let change = TopologyChange::Spawned;
                self.record(burst.at, Some(&burst.first), Some(burst.kind), SignalKind::Topology { change });
            } else {
                let change = TopologyChange::SpawnedCells { count: burst.count };
                self.record(burst.at, None, Some(burst.kind), SignalKind::Topology { change });
            }
        }
    }

    /// Journals a change of the topology.
    pub(crate) fn topology(&self, path: &CellPath, kind: &str, change: TopologyChange) {
        self.signal(SystemTime::now(), Some(path), Some(kind), SignalKind::Topology { change });
    }

    /// Sets or clears the objective of the cell at `path`; the next window
    /// applies it.
    pub(crate) fn set_objective(&self, path: &CellPath, objective: Option<Objective>) {
        let what = match &objective {
            Some(objective) => format!("objective {} set", objective.name()),
            None => "objective cleared".to_owned(),
        };
        match objective {
            Some(objective) => self.objectives.lock().insert(path.clone(), objective),
            None => self.objectives.lock().remove(path),
        };
        self.objectives_changed.lock().push(path.clone());
        self.signal(SystemTime::now(), Some(path), None, SignalKind::Configuration { what });
    }

    /// The analysis window was dormant and runs again from `now`: the time
    /// it slept, when nothing ran, is not part of the next window.
    pub(crate) fn resume(&self, now: Instant) {
        self.analysis.lock().resume(now);
    }

    /// Cell instance `id` did something since the last window.
    pub(crate) fn active(&self, id: u64) {
        self.active.lock().push(id);
    }

    /// What the next window must read: the cells that reported activity,
    /// those the analysis still watches, and the paths whose objective
    /// changed. Taking them starts the next report.
    pub(crate) fn touched(&self) -> Touched {
        let mut ids = std::mem::take(&mut *self.active.lock());
        ids.extend(self.analysis.lock().watched());
        let paths = std::mem::take(&mut *self.objectives_changed.lock());
        Touched { ids, paths }
    }

    /// The objectives set now, by cell path: what one analysis window reads.
    pub(crate) fn objectives(&self) -> HashMap<CellPath, Objective> {
        self.objectives.lock().clone()
    }

    /// One analysis window over `cells` (the touched ones that live), after
    /// the cells in `departed` terminated, with `objectives` as they were
    /// when the window began (see [`objectives`](Observer::objectives)).
    pub(crate) fn analyse(
        &self,
        now: Instant,
        cells: &[CellView<'_>],
        departed: &[u64],
        objectives: &HashMap<CellPath, Objective>,
    ) {
        self.flush_spawns();
        let (findings, dependencies) = {
            let mut analysis = self.analysis.lock();
            let findings = analysis.tick(now, cells, departed, &|path| objectives.get(path).cloned());
            (findings, analysis.take_dependencies())
        };
        if let Some(dependencies) = dependencies {
            *self.dependencies.lock() = dependencies;
        }
        let at = SystemTime::now();
        for finding in findings {
            self.signal(at, Some(&finding.cell), Some(finding.cell_kind), finding.kind);
        }
    }
}
