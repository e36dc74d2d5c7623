//! [`ObservationConfig`]: what a runtime observes of its cells, and how often
//! it analyses it.

use std::fmt;
use std::time::Duration;

use super::decay::{DecayConfig, DecayConfigError};
use super::journal::{JournalConfig, JournalConfigError};
use super::objective::{BurnWindows, ObjectiveError};
use super::triage::{TriageConfig, TriageConfigError};

/// How a runtime observes its cells. Give it to
/// [`Builder::observation`](crate::Builder::observation).
///
/// With observation on (the default), every cell keeps metrics on its
/// message path (see [`Metrics`](crate::Metrics)) and the runtime analyses
/// them once per `window`: decay against learned baselines, objectives'
/// burn rates, backpressure episodes, the flow map. Failure signatures, the
/// journal of failures, restarts and topology changes, and triage are kept
/// either way: they cost nothing on the message path.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{ObservationConfig, Runtime};
///
/// let runtime = Runtime::builder()
///     .observation(ObservationConfig::default().window(Duration::from_millis(250)).sample_every(8))
///     .build()?;
/// # runtime.shutdown(Duration::from_secs(1));
/// # Ok::<(), cellrt::BuildError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ObservationConfig {
    pub(crate) enabled: bool,
    pub(crate) sample_every: u32,
    pub(crate) kind_evidence: bool,
    pub(crate) window: Duration,
    pub(crate) decay: DecayConfig,
    pub(crate) burn: BurnWindows,
    pub(crate) journal: JournalConfig,
    pub(crate) triage: TriageConfig,
}

impl Default for ObservationConfig {
    fn default() -> Self {
        ObservationConfig {
            enabled: true,
            sample_every: 32,
            kind_evidence: true,
            window: Duration::from_secs(1),
            decay: DecayConfig::default(),
            burn: BurnWindows::default(),
            journal: JournalConfig::default(),
            triage: TriageConfig::default(),
        }
    }
}

impl ObservationConfig {
    /// No metrics on the message path and no periodic analysis.
    pub fn disabled() -> Self {
        ObservationConfig { enabled: false, ..ObservationConfig::default() }
    }

    /// Whether each cell keeps evidence per message kind
    /// ([`Metrics::kinds`](crate::Metrics::kinds)): the stamped messages'
    /// handling time and latency, and the failures, by
    /// [`Cell::message_kind`](crate::Cell::message_kind). Recomposition's
    /// rules read it (without it no kind dominates, and none is isolated).
    ///
    /// # Default
    ///
    /// `true`.
    pub fn kind_evidence(mut self, enabled: bool) -> Self {
        self.kind_evidence = enabled;
        self
    }

    /// One send in `every` (per sending thread) is stamped for time in
    /// queue, handling time and per-edge latency. `1` stamps every message.
    ///
    /// # Default
    ///
    /// 32. `0` is refused by [`build`](crate::Builder::build).
    pub fn sample_every(mut self, every: u32) -> Self {
        self.sample_every = every;
        self
    }

    /// The analysis window: how often the runtime reads the metrics of the
    /// cells that ran and updates decay, burn rates and the flow map (an
    /// idle cell's windows are applied when it is next read).
    ///
    /// # Default
    ///
    /// 1 second. Valid: [`MIN_ANALYSIS_WINDOW`] (1 ms) and longer; shorter windows
    /// are refused by [`build`](crate::Builder::build).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How decay is measured: warmup, baselines, deviations, threshold. See
    /// [`DecayConfig`](crate::DecayConfig).
    pub fn decay(mut self, decay: DecayConfig) -> Self {
        self.decay = decay;
        self
    }

    /// The windows and factors of objectives' burn-rate alerts. See
    /// [`BurnWindows`](crate::BurnWindows).
    pub fn burn_windows(mut self, windows: BurnWindows) -> Self {
        self.burn = windows;
        self
    }

    /// How much of the journal is kept. See [`JournalConfig`](crate::JournalConfig).
    pub fn journal(mut self, journal: JournalConfig) -> Self {
        self.journal = journal;
        self
    }

    /// The windows of triage's rules. See [`TriageConfig`](crate::TriageConfig).
    pub fn triage(mut self, triage: TriageConfig) -> Self {
        self.triage = triage;
        self
    }

    /// Whether cells are observed at all.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    pub(crate) fn validate(&self) -> Result<(), ObservationConfigError> {
        if self.sample_every == 0 {
            return Err(ObservationConfigError::ZeroSampling);
        }
        if self.window.is_zero() {
            return Err(ObservationConfigError::ZeroWindow);
        }
        if self.window < MIN_ANALYSIS_WINDOW {
            return Err(ObservationConfigError::WindowTooShort { window: self.window });
        }
        self.decay.validate().map_err(ObservationConfigError::Decay)?;
        self.burn.validate().map_err(ObservationConfigError::BurnWindows)?;
        self.journal.validate().map_err(ObservationConfigError::Journal)?;
        self.triage.validate().map_err(ObservationConfigError::Triage)?;
        Ok(())
    }
}

/// The shortest analysis window accepted: 1 ms.
pub const MIN_ANALYSIS_WINDOW: Duration = Duration::from_millis(1);

/// Why an [`ObservationConfig`] was refused.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ObservationConfigError {
    /// `sample_every` was 0.
    ZeroSampling,
    /// The analysis window was zero.
    ZeroWindow,
    /// The analysis window was shorter than [`MIN_ANALYSIS_WINDOW`]: the timer
    /// thread would run analysis without a pause.
    WindowTooShort {
        /// The refused window.
        window: Duration,
    },
    /// The decay settings were refused.
    Decay(DecayConfigError),
    /// The burn-rate windows were refused.
    BurnWindows(ObjectiveError),
    /// The journal settings were refused.
    Journal(JournalConfigError),
    /// The triage settings were refused.
    Triage(TriageConfigError),
}

impl fmt::Display for ObservationConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObservationConfigError::ZeroSampling => f.write_str("sample_every must be at least 1"),
            ObservationConfigError::ZeroWindow => f.write_str("the analysis window must be longer than zero"),
            ObservationConfigError::WindowTooShort { window } => {
                write!(
                    f,
                    "the analysis window of {window:?} is shorter than the minimum, {MIN_ANALYSIS_WINDOW:?}"
                )
            }
            ObservationConfigError::Decay(err) => write!(f, "decay: {err}"),
            ObservationConfigError::BurnWindows(err) => write!(f, "burn-rate windows: {err}"),
            ObservationConfigError::Journal(err) => write!(f, "journal: {err}"),
            ObservationConfigError::Triage(err) => write!(f, "triage: {err}"),
        }
    }
}

impl std::error::Error for ObservationConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ObservationConfigError::Decay(err) => Some(err),
            ObservationConfigError::BurnWindows(err) => Some(err),
            ObservationConfigError::Journal(err) => Some(err),
            ObservationConfigError::Triage(err) => Some(err),
            _ => None,
        }
    }
}
