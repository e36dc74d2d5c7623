//! Decay: per-cell baselines and the fragility, cost and drag measured
//! against them.
//!
//! This module owns the per-cell decay model: the [`WindowSample`] the
//! runtime measures for a cell at each analysis tick, the baselines learned
//! from those samples, the decay components and score computed against the
//! baselines, the threshold crossings, and the message-rate baseline behind
//! load shifts. It holds no clock: every sample carries its own length.
//!
//! # Measures
//!
//! The latest `short_windows` samples (3 by default) form the *short window*:
//! their counts and durations are summed (saturation: the highest). From the
//! short window come six measures:
//!
//! | measure | value | observed when the newest window has |
//! |---|---|---|
//! | fragility | `(failed + restarts) / max(1, handled + failed)` | always |
//! | cost | `busy / timed`, in seconds: mean handling time of the timed (sampled) messages | `timed > 0` |
//! | queue delay | `queue_delay / queue_samples`, in seconds | `queue_samples > 0` |
//! | saturation | highest mailbox fill / capacity, clamped to `[0, 1]` | always |
//! | rejection | `rejected / max(1, rejected + handled + failed)` | always |
//! | rate | `(handled + failed) / length`, messages per second | `length > 0` |
//!
//! A measure is scored whenever the short window holds data for it, and
//! learned only from windows that observe it: a window without traffic
//! leaves the cost and queue-delay baselines as they were.
//!
//! # Baselines
//!
//! Each measure has its own [`Baseline`]: an exponentially weighted mean and
//! variance, updated per learned window with weight `α = baseline_alpha`:
//!
//! ```text
//! d = x − mean;  mean ← mean + α·d;  variance ← (1 − α)·(variance + α·d²)
//! ```
//!
//! (the first learned value sets the mean and a variance of 0). A measure's
//! first `warmup` observations are always learned and score 0; the tracker
//! reports `learning: true` for its first `warmup` windows. After that a
//! measure's baseline is **frozen while the measure is anomalous**, so that
//! a decline is not learned as the new normal. A measure is anomalous when
//!
//! - its deviation `z` (below) is at least `z_low`, or
//! - it has been worse than its baseline mean (`z > 0`) for `drift_windows`
//!   windows in a row (8 by default).
//!
//! The second rule catches slow declines. Without it, a measure that gets a
//! little worse at every window is learned for good: the weighted mean
//! follows a steady climb with a lag of `(1 − α)/α` windows of climb (9 at
//! the default α) and the weighted variance grows with that lag, so once
//! the learned deviation exceeds the floors, the deviation of a linear
//! climb settles at `1/√(1 − α)` (1.05), below `z_low`, however steep the
//! climb. Noise breaks such runs; a climb does not. A window back at or
//! below the mean ends the run and learning resumes.
//!
//! The message rate is baselined the same way but is not part of the score:
//! its baseline is frozen only while the rate is *shifted* (`|z| > z_high`),
//! so that a lasting change of load is learned.
//!
//! # Deviation and components
//!
//! ```text
//! z = (x − mean) / max(deviation, relative_floor · |mean|, absolute_floor)
//! c = clamp((max(z, 0) − z_low) / (z_high − z_low), 0, 1)
//! ```
//!
//! The noise floors ([`NoiseFloor`]) keep a baseline of exactly 0 with no
//! variance from making any small change infinitely deviant. Only getting
//! worse counts: a negative `z` gives 0. Fragility and cost are one measure
//! each; drag is the highest of the queue-delay, saturation and rejection
//! components.
//!
//! # Score
//!
//! ```text
//! score = 1 − (1 − fragility)·(1 − cost)·(1 − drag)
//! ```
//!
//! in `[0, 1]`: 0 when every component is 0, 1 when any component is 1. A
//! cell is *decaying* from the window its score reaches `threshold` until
//! the window it falls below `clear` (hysteresis), and each of these two
//! crossings is reported once, at the window it happens.
//!
//! # Rest
//!
//! Windows without traffic still count: the short window fills with empty
//! samples, and fragility, saturation, rejection and rate go on learning 0.
//! A tracker is *at rest* once an idle window changed nothing in it but its
//! window counts (the score, the components, every mean, variance and run,
//! bit for bit) with its short window all idle and its warmup over. From
//! then on every further idle window does exactly the same, so the analysis
//! applies any number of them at once ([`DecayTracker::skip_idle`]) instead
//! of one per window: the counts move and the short window takes the latest
//! windows' lengths, and nothing else would have changed.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// What one cell did during one analysis window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct WindowSample {
    /// The window's length.
    pub(crate) length: Duration,
    /// Messages handled successfully.
    pub(crate) handled: u64,
    /// Messages whose handling failed (error, panic, deadline, storage).
    pub(crate) failed: u64,
    /// Restarts of the cell in the window.
    pub(crate) restarts: u64,
    /// Total time spent in `handle` for the timed messages.
    pub(crate) busy: Duration,
    /// How many messages `busy` covers: `None` for all of handled + failed
    /// (the runtime times a sample of them).
    pub(crate) timed: Option<u64>,
    /// Sum of the time in queue of the sampled messages.
    pub(crate) queue_delay: Duration,
    /// How many messages were sampled for time in queue.
    pub(crate) queue_samples: u64,
    /// Highest mailbox fill seen in the window / capacity, in `[0, 1]`.
    pub(crate) saturation: f64,
    /// Sends to this cell refused: its mailbox was full, or its address's
    /// shedding policy shed them.
    pub(crate) rejected: u64,
}

/// The most windows a short window may span: each cell keeps one sample per
/// window of it.
pub const MAX_SHORT_WINDOWS: u32 = 1_024;

/// The smallest scale a deviation is measured in, for one measure:
/// `max(relative · |mean|, absolute)`, used when it is larger than the
/// learned standard deviation.
///
/// `absolute` is in the measure's unit: failures per message, seconds,
/// fill ratio, rejections per send, messages per second.
///
/// ```
/// use cellrt::{DecayConfig, NoiseFloor};
///
/// // Count a handling time as deviant only beyond half its usual value,
/// // and never below 50 µs.
/// let config = DecayConfig::default().cost_floor(NoiseFloor { relative: 0.5, absolute: 50e-6 });
/// assert_eq!(config.validate(), Ok(()));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct NoiseFloor {
    /// Fraction of the baseline mean; finite and at least 0.
    pub relative: f64,
    /// In the measure's unit; finite and greater than 0.
    pub absolute: f64,
}

impl NoiseFloor {
    fn is_valid(self) -> bool {
        self.relative.is_finite() && self.relative >= 0.0 && self.absolute.is_finite() && self.absolute > 0.0
    }

    /// The scale of a deviation from `baseline`; always greater than 0 for
    /// a valid floor.
    fn scale(self, baseline: &Ewma) -> f64 {
        baseline.variance.sqrt().max(self.relative * baseline.mean.abs()).max(self.absolute)
    }
}

/// How a cell's decay is measured: warmup, short window, baseline weight,
/// deviation range, drift rule, threshold and hysteresis, noise floors.
///
/// Every analysis window, the runtime measures a cell over its latest
/// `short_windows` windows (counts and durations summed): fragility
/// `(failed + restarts) / max(1, handled + failed)`, cost (handling time
/// per message), queue delay (time in queue per sampled message), mailbox
/// saturation, rejection ratio `rejected / max(1, rejected + handled +
/// failed)`, and the message rate. Each measure has a [`Baseline`], an
/// exponentially weighted mean and variance (weight `baseline_alpha` per
/// window), and deviates from it by
///
/// ```text
/// z = (x − mean) / max(deviation, relative_floor · |mean|, absolute_floor)
/// ```
///
/// A component is `clamp((max(z, 0) − z_low) / (z_high − z_low), 0, 1)`:
/// only getting worse counts. The first `warmup` windows are learned and
/// score 0. After that a measure is not learned while it is anomalous: `z`
/// at least `z_low`, or worse than its mean for `drift_windows` windows in
/// a row, so that neither a jump nor a slow climb becomes the new normal.
/// The message rate (not scored) is frozen only while `|z| > z_high`, a
/// [`LoadShift`]. The score is `1 − (1 − fragility)·(1 − cost)·(1 − drag)`
/// (see [`Decay`]); a cell is decaying from the window its score reaches
/// `threshold` until it falls below `clear`.
///
/// ```
/// use cellrt::{DecayConfig, DecayConfigError};
///
/// let config = DecayConfig::default().warmup(10).short_windows(5).threshold(0.6);
/// assert_eq!(config.validate(), Ok(()));
///
/// let inverted = DecayConfig::default().z_low(8.0);
/// assert_eq!(inverted.validate(), Err(DecayConfigError::ZHigh { value: 6.0, z_low: 8.0 }));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct DecayConfig {
    pub(crate) warmup: u32,
    pub(crate) short_windows: u32,
    pub(crate) baseline_alpha: f64,
    pub(crate) z_low: f64,
    pub(crate) z_high: f64,
    pub(crate) drift_windows: u32,
    pub(crate) threshold: f64,
    pub(crate) clear: Option<f64>,
    pub(crate) fragility_floor: NoiseFloor,
    pub(crate) cost_floor: NoiseFloor,
    pub(crate) queue_delay_floor: NoiseFloor,
    pub(crate) saturation_floor: NoiseFloor,
    pub(crate) rejection_floor: NoiseFloor,
    pub(crate) rate_floor: NoiseFloor,
}

impl Default for DecayConfig {
    /// Warmup 5 windows, short window 3 windows, `baseline_alpha` 0.1,
    /// `z_low` 2, `z_high` 6, `drift_windows` 8, threshold 0.5, clear at
    /// 0.8 × threshold, and the floors documented on each setter.
    fn default() -> Self {
        DecayConfig {
            warmup: 5,
            short_windows: 3,
            baseline_alpha: 0.1,
            z_low: 2.0,
            z_high: 6.0,
            drift_windows: 8,
            threshold: 0.5,
            clear: None,
            fragility_floor: NoiseFloor { relative: 0.0, absolute: 0.01 },
            cost_floor: NoiseFloor { relative: 0.25, absolute: 10e-6 },
            queue_delay_floor: NoiseFloor { relative: 0.25, absolute: 100e-6 },
            saturation_floor: NoiseFloor { relative: 0.0, absolute: 0.05 },
            rejection_floor: NoiseFloor { relative: 0.0, absolute: 0.01 },
            rate_floor: NoiseFloor { relative: 0.5, absolute: 1.0 },
        }
    }
}

impl DecayConfig {
    /// Windows learned before any score (default 5). At least 1.
    pub fn warmup(mut self, windows: u32) -> Self {
        self.warmup = windows;
        self
    }

    /// How many latest windows form the short window the measures are taken
    /// over (default 3). From 1 to [`MAX_SHORT_WINDOWS`]: every cell keeps
    /// that many samples and sums them each window.
    pub fn short_windows(mut self, windows: u32) -> Self {
        self.short_windows = windows;
        self
    }

    /// Weight of each learned window in the baselines' mean and variance
    /// (default 0.1). In `(0, 1]`.
    pub fn baseline_alpha(mut self, alpha: f64) -> Self {
        self.baseline_alpha = alpha;
        self
    }

    /// Deviation at which a component starts to count (default 2). Finite
    /// and at least 0.
    pub fn z_low(mut self, z: f64) -> Self {
        self.z_low = z;
        self
    }

    /// Deviation at which a component reaches 1 (default 6). Finite and
    /// greater than `z_low`.
    pub fn z_high(mut self, z: f64) -> Self {
        self.z_high = z;
        self
    }

    /// Consecutive windows worse than its baseline mean after which a
    /// measure stops being learned until a window is back at or below the
    /// mean (default 8). At least 1.
    pub fn drift_windows(mut self, windows: u32) -> Self {
        self.drift_windows = windows;
        self
    }

    /// Score at which a cell counts as decaying (default 0.5). In `(0, 1]`.
    pub fn threshold(mut self, score: f64) -> Self {
        self.threshold = score;
        self
    }

    /// Score below which a decaying cell counts as recovered (default
    /// 0.8 × threshold). In `(0, threshold)`.
    pub fn clear(mut self, score: f64) -> Self {
        self.clear = Some(score);
        self
    }

    /// Floor of the fragility deviation, in failures per message (default
    /// relative 0, absolute 0.01).
    pub fn fragility_floor(mut self, floor: NoiseFloor) -> Self {
        self.fragility_floor = floor;
        self
    }

    /// Floor of the cost deviation, absolute part in seconds per message
    /// (default relative 0.25, absolute 10 µs).
    pub fn cost_floor(mut self, floor: NoiseFloor) -> Self {
        self.cost_floor = floor;
        self
    }

    /// Floor of the queue-delay deviation, absolute part in seconds
    /// (default relative 0.25, absolute 100 µs).
    pub fn queue_delay_floor(mut self, floor: NoiseFloor) -> Self {
        self.queue_delay_floor = floor;
        self
    }

    /// Floor of the saturation deviation, in mailbox fill (default relative
    /// 0, absolute 0.05).
    pub fn saturation_floor(mut self, floor: NoiseFloor) -> Self {
        self.saturation_floor = floor;
        self
    }

    /// Floor of the rejection-ratio deviation, in rejections per send
    /// (default relative 0, absolute 0.01).
    pub fn rejection_floor(mut self, floor: NoiseFloor) -> Self {
        self.rejection_floor = floor;
        self
    }

    /// Floor of the message-rate deviation, absolute part in messages per
    /// second (default relative 0.5, absolute 1).
    pub fn rate_floor(mut self, floor: NoiseFloor) -> Self {
        self.rate_floor = floor;
        self
    }

    /// The clear level in effect: the one set, or 0.8 × threshold.
    fn clear_level(&self) -> f64 {
        self.clear.unwrap_or(0.8 * self.threshold)
    }

    /// Checks every setting; the first one out of range is the error.
    pub fn validate(&self) -> Result<(), DecayConfigError> {
        if self.warmup == 0 {
            return Err(DecayConfigError::Warmup { value: self.warmup });
        }
        if !(1..=MAX_SHORT_WINDOWS).contains(&self.short_windows) {
            return Err(DecayConfigError::ShortWindows { value: self.short_windows });
        }
        let alpha = self.baseline_alpha;
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(DecayConfigError::BaselineAlpha { value: alpha });
        }
        if !(self.z_low.is_finite() && self.z_low >= 0.0) {
            return Err(DecayConfigError::ZLow { value: self.z_low });
        }
        if !(self.z_high.is_finite() && self.z_high > self.z_low) {
            return Err(DecayConfigError::ZHigh { value: self.z_high, z_low: self.z_low });
        }
        if self.drift_windows == 0 {
            return Err(DecayConfigError::DriftWindows { value: self.drift_windows });
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(DecayConfigError::Threshold { value: self.threshold });
        }
        let clear = self.clear_level();
        if !(clear > 0.0 && clear < self.threshold) {
            return Err(DecayConfigError::Clear { value: clear, threshold: self.threshold });
        }
        let floors = [
            ("fragility_floor", self.fragility_floor),
            ("cost_floor", self.cost_floor),
            ("queue_delay_floor", self.queue_delay_floor),
            ("saturation_floor", self.saturation_floor),
            ("rejection_floor", self.rejection_floor),
            ("rate_floor", self.rate_floor),
        ];
        for (field, floor) in floors {
            if !floor.is_valid() {
                return Err(DecayConfigError::NoiseFloor { field, floor });
            }
        }
        Ok(())
    }
}

/// A [`DecayConfig`] setting out of range, with the refused value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum DecayConfigError {
    /// `warmup` was 0: no baseline would be learned before scoring.
    Warmup {
        /// The refused value.
        value: u32,
    },
    /// `short_windows` was 0 (the short window would hold no sample) or
    /// above [`MAX_SHORT_WINDOWS`] (every cell would keep, and sum each
    /// window, that many samples: a value near `u32::MAX` asked for tens of
    /// gigabytes at once).
    ShortWindows {
        /// The refused value.
        value: u32,
    },
    /// `baseline_alpha` was not in `(0, 1]`.
    BaselineAlpha {
        /// The refused value.
        value: f64,
    },
    /// `z_low` was negative or not finite.
    ZLow {
        /// The refused value.
        value: f64,
    },
    /// `z_high` was not finite or not greater than `z_low`.
    ZHigh {
        /// The refused value.
        value: f64,
        /// The `z_low` it must exceed.
        z_low: f64,
    },
    /// `drift_windows` was 0.
    DriftWindows {
        /// The refused value.
        value: u32,
    },
    /// `threshold` was not in `(0, 1]`.
    Threshold {
        /// The refused value.
        value: f64,
    },
    /// The clear level (set, or 0.8 × threshold) was not in
    /// `(0, threshold)`.
    Clear {
        /// The refused value.
        value: f64,
        /// The threshold it must stay below.
        threshold: f64,
    },
    /// A noise floor had a negative or non-finite relative part, or an
    /// absolute part not finite and greater than 0.
    NoiseFloor {
        /// The setting: `fragility_floor`, `cost_floor`, `queue_delay_floor`,
        /// `saturation_floor`, `rejection_floor` or `rate_floor`.
        field: &'static str,
        /// The refused floor.
        floor: NoiseFloor,
    },
}

impl fmt::Display for DecayConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecayConfigError::Warmup { value } => write!(f, "warmup must be at least 1 window, got {value}"),
            DecayConfigError::ShortWindows { value } => {
                write!(f, "short_windows must be 1 to {MAX_SHORT_WINDOWS} windows, got {value}")
            }
            DecayConfigError::BaselineAlpha { value } => {
                write!(f, "baseline_alpha must be in (0, 1], got {value}")
            }
            DecayConfigError::ZLow { value } => write!(f, "z_low must be finite and at least 0, got {value}"),
            DecayConfigError::ZHigh { value, z_low } => {
                write!(f, "z_high must be finite and greater than z_low ({z_low}), got {value}")
            }
            DecayConfigError::DriftWindows { value } => {
                write!(f, "drift_windows must be at least 1 window, got {value}")
            }
            DecayConfigError::Threshold { value } => write!(f, "threshold must be in (0, 1], got {value}"),
            DecayConfigError::Clear { value, threshold } => {
                write!(f, "clear must be in (0, threshold {threshold}), got {value}")
            }
            DecayConfigError::NoiseFloor { field, floor } => write!(
                f,
                "{field} needs a finite relative part >= 0 and a finite absolute part > 0, \
                 got relative {} and absolute {}",
                floor.relative, floor.absolute
            ),
        }
    }
}

impl std::error::Error for DecayConfigError {}

/// A learned baseline of one measure: exponentially weighted mean and
/// standard deviation, and how many windows were learned.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Baseline {
    /// Weighted mean, in the measure's unit.
    pub mean: f64,
    /// Weighted standard deviation, in the measure's unit.
    pub deviation: f64,
    /// Windows learned (frozen windows are not counted).
    pub windows: u64,
}

/// A cell's baselines, for snapshots. Units: fragility in failures per
/// message, cost and queue delay in seconds, saturation in mailbox fill,
/// rejection in rejections per send, rate in messages per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Baselines {
    /// Failures and restarts per message.
    pub fragility: Baseline,
    /// Handling time per message.
    pub cost: Baseline,
    /// Time in queue per sampled message.
    pub queue_delay: Baseline,
    /// Highest mailbox fill.
    pub saturation: Baseline,
    /// Rejected sends per send.
    pub rejection: Baseline,
    /// Messages per second (not part of the score).
    pub rate: Baseline,
}

/// How far a cell has decayed from its baselines, as of its latest window.
///
/// Each component is in `[0, 1]`: 0 while its measure deviates less than
/// `z_low` from its baseline, rising linearly to 1 at `z_high` (see
/// [`DecayConfig`]). The score combines them as
///
/// ```text
/// score = 1 − (1 − fragility)·(1 − cost)·(1 − drag)
/// ```
///
/// in `[0, 1]`: 0 when all are 0, 1 when any is 1, and higher than each of
/// them otherwise.
///
/// ```
/// fn page(decay: &cellrt::Decay) -> bool {
///     decay.decaying && decay.rising_for >= 3
/// }
/// # let _ = page;
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Decay {
    /// Failures and restarts per message against their baseline.
    pub fragility: f64,
    /// Handling time per message against its baseline.
    pub cost: f64,
    /// The highest of the queue-delay, saturation and rejection components.
    pub drag: f64,
    /// `1 − (1 − fragility)·(1 − cost)·(1 − drag)`, in `[0, 1]`.
    pub score: f64,
    /// Still within the warmup windows: the baselines are being learned
    /// and the score is 0.
    pub learning: bool,
    /// The score reached the threshold and has not fallen below the clear
    /// level since.
    pub decaying: bool,
    /// Consecutive windows, up to this one, in which the score rose
    /// strictly.
    pub rising_for: u32,
}

/// The message rate far from its baseline (`|z| > z_high`).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LoadShift {
    /// Messages per second over the short window.
    pub rate: f64,
    /// The baseline mean, in messages per second.
    pub baseline: f64,
    /// The deviation: positive for more load, negative for less.
    pub z: f64,
}

/// A crossing of the decay threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Crossing {
    /// The score reached the threshold: the cell is decaying.
    Rose,
    /// The score of a decaying cell fell below the clear level: it
    /// recovered.
    Fell,
}

/// What one window did to a cell's decay.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct DecayStep {
    /// The decay as of this window.
    pub(crate) decay: Decay,
    /// The threshold crossing at this window, if any.
    pub(crate) crossed: Option<Crossing>,
}

/// The combined score of three components in `[0, 1]`:
/// `1 − (1 − fragility)·(1 − cost)·(1 − drag)`.
fn combined_score(fragility: f64, cost: f64, drag: f64) -> f64 {
    (1.0 - (1.0 - fragility) * (1.0 - cost) * (1.0 - drag)).clamp(0.0, 1.0)
}

/// Exponentially weighted mean and variance.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Ewma {
    mean: f64,
    variance: f64,
    windows: u64,
}

impl Ewma {
    fn learn(&mut self, x: f64, alpha: f64) {
        if self.windows == 0 {
            self.mean = x;
            self.variance = 0.0;
        } else {
            let d = x - self.mean;
            let step = alpha * d;
            self.mean += step;
            self.variance = (1.0 - alpha) * (self.variance + d * step);
        }
        self.windows = self.windows.saturating_add(1);
    }

    fn baseline(&self) -> Baseline {
        Baseline { mean: self.mean, deviation: self.variance.sqrt(), windows: self.windows }
    }
}

/// One baselined measure.
#[derive(Clone, Debug)]
struct Measure {
    floor: NoiseFloor,
    learned: Ewma,
    /// Consecutive observed windows worse than the mean.
    worse_for: u32,
}

/// A measure's value over the short window, and whether the newest window
/// observed it.
#[derive(Clone, Copy, Debug)]
struct Observation {
    value: f64,
    fresh: bool,
}

impl Measure {
    fn new(floor: NoiseFloor) -> Self {
        Measure { floor, learned: Ewma::default(), worse_for: 0 }
    }

    fn z(&self, x: f64) -> f64 {
        (x - self.learned.mean) / self.floor.scale(&self.learned)
    }

    fn warming_up(&self, config: &DecayConfig) -> bool {
        self.learned.windows < u64::from(config.warmup)
    }

    /// Scores a worse-is-higher measure and learns it unless anomalous;
    /// returns its component.
    fn component(&mut self, observation: Option<Observation>, config: &DecayConfig) -> f64 {
        let Some(Observation { value, fresh }) = observation else {
            return 0.0;
        };
        if self.warming_up(config) {
            if fresh {
                self.learned.learn(value, config.baseline_alpha);
            }
            return 0.0;
        }
        let z = self.z(value);
        if fresh {
            self.worse_for = if z > 0.0 { self.worse_for.saturating_add(1) } else { 0 };
            if z < config.z_low && self.worse_for < config.drift_windows {
                self.learned.learn(value, config.baseline_alpha);
            }
        }
        ((z.max(0.0) - config.z_low) / (config.z_high - config.z_low)).clamp(0.0, 1.0)
    }

    /// Scores the two-sided rate and learns it unless shifted; returns its
    /// deviation once warmed up.
    fn shift(&mut self, observation: Option<Observation>, config: &DecayConfig) -> Option<f64> {
        let Observation { value, fresh } = observation?;
        if self.warming_up(config) {
            if fresh {
                self.learned.learn(value, config.baseline_alpha);
            }
            return None;
        }
        let z = self.z(value);
        if fresh && z.abs() <= config.z_high {
            self.learned.learn(value, config.baseline_alpha);
        }
        Some(z)
    }
}

impl WindowSample {
    /// A window of `length` in which nothing happened.
    pub(crate) fn idle(length: Duration) -> Self {
        WindowSample { length, timed: Some(0), ..WindowSample::default() }
    }

    /// Whether nothing happened in this window.
    fn is_idle(&self) -> bool {
        *self == WindowSample::idle(self.length)
    }

    /// How many messages `busy` covers.
    fn timed(&self) -> u64 {
        self.timed.unwrap_or(self.handled.saturating_add(self.failed))
    }
}

/// The sum of the short window's samples (saturation: the highest).
fn aggregate<'a>(samples: impl Iterator<Item = &'a WindowSample>) -> WindowSample {
    samples.fold(WindowSample::default(), |total, s| WindowSample {
        length: total.length.saturating_add(s.length),
        handled: total.handled.saturating_add(s.handled),
        failed: total.failed.saturating_add(s.failed),
        restarts: total.restarts.saturating_add(s.restarts),
        busy: total.busy.saturating_add(s.busy),
        timed: Some(total.timed.unwrap_or(0).saturating_add(s.timed())),
        queue_delay: total.queue_delay.saturating_add(s.queue_delay),
        queue_samples: total.queue_samples.saturating_add(s.queue_samples),
        saturation: total.saturation.max(s.saturation),
        rejected: total.rejected.saturating_add(s.rejected),
    })
}

/// `value` clamped to `[0, 1]`, NaN as 0.
fn unit(value: f64) -> f64 {
    if value.is_nan() {
        0.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Which measures, in [`DecayTracker::measures`] order, learn from one more
/// idle window of a tracker at rest; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rest {
    learns: [bool; MEASURES],
}

/// The number of baselined measures.
const MEASURES: usize = 6;

/// What an idle window may change in a tracker besides its counts and the
/// lengths in its short window, bit for bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    /// Mean and variance bits, the run worse than the mean, windows learned.
    measures: [(u64, u64, u32, u64); MEASURES],
    decay: [u64; 4],
    decaying: bool,
    learning: bool,
    rising_for: u32,
    rate_now: Option<u64>,
    rate_z: Option<u64>,
}

/// Learns one cell's baselines window by window and measures its decay
/// against them. See the module docs for the model.
#[derive(Clone, Debug)]
pub(crate) struct DecayTracker {
    config: DecayConfig,
    /// The latest `short_windows` samples, oldest first.
    recent: VecDeque<WindowSample>,
    /// Windows observed.
    windows: u64,
    fragility: Measure,
    cost: Measure,
    queue_delay: Measure,
    saturation: Measure,
    rejection: Measure,
    rate: Measure,
    decay: Decay,
    /// Messages per second over the short window, when it has a length.
    rate_now: Option<f64>,
    /// The rate's deviation, once warmed up.
    rate_z: Option<f64>,
}

impl DecayTracker {
    /// A tracker with nothing learned yet, or the first setting of `config`
    /// out of range.
    pub(crate) fn new(config: DecayConfig) -> Result<Self, DecayConfigError> {
        config.validate()?;
        Ok(DecayTracker {
            recent: VecDeque::new(),
            windows: 0,
            fragility: Measure::new(config.fragility_floor),
            cost: Measure::new(config.cost_floor),
            queue_delay: Measure::new(config.queue_delay_floor),
            saturation: Measure::new(config.saturation_floor),
            rejection: Measure::new(config.rejection_floor),
            rate: Measure::new(config.rate_floor),
            decay: Decay {
                fragility: 0.0,
                cost: 0.0,
                drag: 0.0,
                score: 0.0,
                learning: true,
                decaying: false,
                rising_for: 0,
            },
            rate_now: None,
            rate_z: None,
            config,
        })
    }

    /// Folds in the cell's latest window: measures it against the
    /// baselines, then learns from it what is not anomalous. A saturation
    /// outside `[0, 1]` is clamped into it (NaN counts as 0).
    pub(crate) fn observe(&mut self, sample: &WindowSample) -> DecayStep {
        let mut newest = *sample;
        newest.saturation = unit(newest.saturation);
        if self.recent.len() >= self.config.short_windows as usize {
            self.recent.pop_front();
        }
        self.recent.push_back(newest);
        self.windows = self.windows.saturating_add(1);

        let short = aggregate(self.recent.iter());
        let messages = short.handled.saturating_add(short.failed);
        let (timed, newest_timed) = (short.timed(), newest.timed());
        let always = |value: f64| Some(Observation { value, fresh: true });

        let fragility = self.fragility.component(
            always(short.failed.saturating_add(short.restarts) as f64 / messages.max(1) as f64),
            &self.config,
        );
        let cost = self.cost.component(
            (timed > 0).then(|| Observation {
                value: short.busy.as_secs_f64() / timed as f64,
                fresh: newest_timed > 0,
            }),
            &self.config,
        );
        let queue_delay = self.queue_delay.component(
            (short.queue_samples > 0).then(|| Observation {
                value: short.queue_delay.as_secs_f64() / short.queue_samples as f64,
                fresh: newest.queue_samples > 0,
            }),
            &self.config,
        );
        let saturation = self.saturation.component(always(short.saturation), &self.config);
        let sends = short.rejected.saturating_add(messages);
        let rejection =
            self.rejection.component(always(short.rejected as f64 / sends.max(1) as f64), &self.config);

        self.rate_now = (!short.length.is_zero()).then(|| messages as f64 / short.length.as_secs_f64());
        let rate = self.rate_now.map(|value| Observation { value, fresh: !newest.length.is_zero() });
        self.rate_z = self.rate.shift(rate, &self.config);

        let drag = queue_delay.max(saturation).max(rejection);
        let score = combined_score(fragility, cost, drag);
        let previous = self.decay;
        let decaying = if previous.decaying {
            score >= self.config.clear_level()
        } else {
            score >= self.config.threshold
        };
        let crossed = match (previous.decaying, decaying) {
            (false, true) => Some(Crossing::Rose),
            (true, false) => Some(Crossing::Fell),
            _ => None,
        };
        self.decay = Decay {
            fragility,
            cost,
            drag,
            score,
            learning: self.windows <= u64::from(self.config.warmup),
            decaying,
            rising_for: if score > previous.score { previous.rising_for.saturating_add(1) } else { 0 },
        };
        DecayStep { decay: self.decay, crossed }
    }

    fn measures(&self) -> [&Measure; MEASURES] {
        [&self.fragility, &self.cost, &self.queue_delay, &self.saturation, &self.rejection, &self.rate]
    }

    fn measures_mut(&mut self) -> [&mut Measure; MEASURES] {
        [
            &mut self.fragility,
            &mut self.cost,
            &mut self.queue_delay,
            &mut self.saturation,
            &mut self.rejection,
            &mut self.rate,
        ]
    }

    /// What an idle window may change, for [`rest_since`](Self::rest_since).
    pub(crate) fn shape(&self) -> Shape {
        let d = &self.decay;
        Shape {
            measures: self.measures().map(|m| {
                (m.learned.mean.to_bits(), m.learned.variance.to_bits(), m.worse_for, m.learned.windows)
            }),
            decay: [d.fragility, d.cost, d.drag, d.score].map(f64::to_bits),
            decaying: d.decaying,
            learning: d.learning,
            rising_for: d.rising_for,
            rate_now: self.rate_now.map(f64::to_bits),
            rate_z: self.rate_z.map(f64::to_bits),
        }
    }

    /// Whether the tracker is at rest, given its shape `before` the idle
    /// window it just observed: `Some` with what further idle windows teach
    /// it. See the module docs.
    pub(crate) fn rest_since(&self, before: &Shape) -> Option<Rest> {
        let after = self.shape();
        let warmup = u64::from(self.config.warmup);
        if self.recent.len() < self.config.short_windows as usize
            || !self.recent.iter().all(WindowSample::is_idle)
            || after.learning
            || (after.decay, after.decaying, after.rising_for, after.rate_now, after.rate_z)
                != (before.decay, before.decaying, before.rising_for, before.rate_now, before.rate_z)
        {
            return None;
        }
        let mut learns = [false; MEASURES];
        for (i, (was, is)) in before.measures.iter().zip(&after.measures).enumerate() {
            let (mean, variance, worse_for, windows) = *is;
            if (mean, variance, worse_for) != (was.0, was.1, was.2) {
                return None;
            }
            match windows.checked_sub(was.3) {
                Some(0) => {}
                // Learned, and out of warmup before it: the next one learns too.
                Some(1) if was.3 >= warmup => learns[i] = true,
                _ => return None,
            }
        }
        Some(Rest { learns })
    }

    /// Applies `windows` idle windows to a tracker at rest (`rest` from
    /// [`rest_since`](Self::rest_since)), as observing them one by one would;
    /// `lengths` holds the latest windows' lengths, oldest first (at least
    /// `min(windows, short_windows)` of them).
    pub(crate) fn skip_idle(&mut self, rest: Rest, windows: u64, lengths: &VecDeque<Duration>) {
        if windows == 0 {
            return;
        }
        self.windows = self.windows.saturating_add(windows);
        for (measure, learns) in self.measures_mut().into_iter().zip(rest.learns) {
            if learns {
                measure.learned.windows = measure.learned.windows.saturating_add(windows);
            }
        }
        let newest = lengths.len().min(usize::try_from(windows).unwrap_or(usize::MAX));
        for &length in lengths.range(lengths.len() - newest..) {
            self.recent.pop_front();
            self.recent.push_back(WindowSample::idle(length));
        }
    }

    /// The baselines after `windows` more idle windows, at rest.
    pub(crate) fn baselines_skipping(&self, rest: Rest, windows: u64) -> Baselines {
        let mut baselines = self.baselines();
        let all = [
            &mut baselines.fragility,
            &mut baselines.cost,
            &mut baselines.queue_delay,
            &mut baselines.saturation,
            &mut baselines.rejection,
            &mut baselines.rate,
        ];
        for (baseline, learns) in all.into_iter().zip(rest.learns) {
            if learns {
                baseline.windows = baseline.windows.saturating_add(windows);
            }
        }
        baselines
    }

    /// Sets the lengths of the newest samples of the short window to the
    /// latest windows' (`lengths`, oldest first), for a tracker whose idle
    /// windows were observed with stand-in lengths.
    pub(crate) fn relength(&mut self, lengths: &VecDeque<Duration>) {
        for (sample, &length) in self.recent.iter_mut().rev().zip(lengths.iter().rev()) {
            sample.length = length;
        }
    }

    /// The decay as of the latest window (before any: learning, all 0).
    pub(crate) fn decay(&self) -> Decay {
        self.decay
    }

    /// The baselines learned so far.
    pub(crate) fn baselines(&self) -> Baselines {
        Baselines {
            fragility: self.fragility.learned.baseline(),
            cost: self.cost.learned.baseline(),
            queue_delay: self.queue_delay.learned.baseline(),
            saturation: self.saturation.learned.baseline(),
            rejection: self.rejection.learned.baseline(),
            rate: self.rate.learned.baseline(),
        }
    }

    #[cfg(test)]
    /// Messages per second over the short window; `None` before any window
    /// with a length. Its baseline is [`Baselines::rate`].
    pub(crate) fn rate(&self) -> Option<f64> {
        self.rate_now
    }

    /// The message rate, when it is shifted: after warmup, `|z| > z_high`
    /// against the rate baseline (which is frozen meanwhile). Not part of
    /// the score.
    pub(crate) fn load_shift(&self) -> Option<LoadShift> {
        let (rate, z) = (self.rate_now?, self.rate_z?);
        (z.abs() > self.config.z_high).then_some(LoadShift { rate, baseline: self.rate.learned.mean, z })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOLERANCE: f64 = 1e-9;

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= TOLERANCE * expected.abs().max(1.0)
    }

    /// A healthy window of 100 ms: 50 messages of 1 ms each, 10 sampled
    /// with 200 µs in queue, the mailbox at most 10 % full, no failure.
    fn healthy() -> WindowSample {
        WindowSample {
            length: Duration::from_millis(100),
            handled: 50,
            failed: 0,
            restarts: 0,
            busy: Duration::from_millis(50),
            timed: None,
            queue_delay: Duration::from_millis(2),
            queue_samples: 10,
            saturation: 0.1,
            rejected: 0,
        }
    }

    /// `healthy()` with every message taking `micros` µs.
    fn costing(micros: u64) -> WindowSample {
        WindowSample { busy: Duration::from_micros(50 * micros), ..healthy() }
    }

    fn tracker(config: DecayConfig) -> DecayTracker {
        DecayTracker::new(config).expect("valid config")
    }

    /// A tracker past its default warmup of 5 healthy windows.
    fn warmed(config: DecayConfig) -> DecayTracker {
        let mut tracker = tracker(config);
        for _ in 0..5 {
            tracker.observe(&healthy());
        }
        tracker
    }

    /// Deterministic noise in `[-1, 1)`.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        }
    }

    #[test]
    fn a_constant_healthy_cell_stays_at_zero_and_never_crosses() {
        let mut tracker = tracker(DecayConfig::default());
        for window in 0..200 {
            let step = tracker.observe(&healthy());
            assert_eq!(step.decay.score, 0.0, "window {window}");
            assert_eq!(step.crossed, None, "window {window}");
            assert!(!step.decay.decaying);
            assert_eq!(step.decay.rising_for, 0);
        }
        let baselines = tracker.baselines();
        assert!(close(baselines.cost.mean, 0.001), "{baselines:?}");
        assert_eq!(baselines.cost.deviation, 0.0);
        assert_eq!(baselines.cost.windows, 200);
        assert_eq!(tracker.load_shift(), None);
    }

    #[test]
    fn a_noisy_healthy_cell_stays_at_zero_and_never_crosses() {
        let mut tracker = tracker(DecayConfig::default());
        let mut noise = Noise(7);
        for window in 0..200 {
            let handled = (50.0 * (1.0 + 0.2 * noise.next())).round() as u64;
            let per_message = 1000.0 * (1.0 + 0.05 * noise.next());
            let sample = WindowSample {
                handled,
                failed: u64::from(noise.next() > 0.9),
                busy: Duration::from_secs_f64(handled as f64 * per_message * 1e-6),
                queue_delay: Duration::from_secs_f64(10.0 * 200e-6 * (1.0 + 0.1 * noise.next())),
                saturation: 0.15 + 0.05 * noise.next(),
                ..healthy()
            };
            let step = tracker.observe(&sample);
            assert_eq!(step.decay.score, 0.0, "window {window}: {step:?}");
            assert_eq!(step.crossed, None, "window {window}");
            assert_eq!(tracker.load_shift(), None, "window {window}");
        }
    }

    #[test]
    fn warmup_windows_learn_and_score_zero_even_for_terrible_samples() {
        let mut tracker = tracker(DecayConfig::default());
        assert!(tracker.decay().learning, "learning before any window");
        let terrible = WindowSample {
            failed: 50,
            restarts: 3,
            rejected: 500,
            saturation: 1.0,
            busy: Duration::from_secs(5),
            ..healthy()
        };
        for window in 1..=5 {
            let step = tracker.observe(&terrible);
            assert_eq!(
                step.decay,
                Decay {
                    fragility: 0.0,
                    cost: 0.0,
                    drag: 0.0,
                    score: 0.0,
                    learning: true,
                    decaying: false,
                    rising_for: 0
                },
                "window {window}"
            );
            assert_eq!(step.crossed, None);
        }
        assert_eq!(tracker.baselines().fragility.windows, 5);
        assert!(close(tracker.baselines().fragility.mean, 53.0 / 100.0));
        assert!(!tracker.observe(&terrible).decay.learning, "the sixth window is scored");
    }

    #[test]
    fn tripled_handling_time_crosses_via_cost_and_rises_once() {
        let mut tracker = warmed(DecayConfig::default());
        let mut steps = Vec::new();
        for _ in 0..20 {
            steps.push(tracker.observe(&costing(3000)));
        }
        // The short window of 3 mixes in the new cost: 5/3 ms, 7/3 ms, then
        // 3 ms, against a baseline of 1 ms with a floor of 0.25 ms, so z is
        // 8/3, 16/3, then 8.
        assert!(close(steps[0].decay.cost, 1.0 / 6.0), "{:?}", steps[0]);
        assert!(close(steps[1].decay.cost, 5.0 / 6.0), "{:?}", steps[1]);
        assert_eq!(steps[2].decay.cost, 1.0);
        let last = steps[19].decay;
        assert_eq!((last.cost, last.score, last.fragility, last.drag), (1.0, 1.0, 0.0, 0.0));
        assert!(last.decaying);
        let crossings: Vec<_> =
            steps.iter().enumerate().filter_map(|(i, s)| s.crossed.map(|c| (i, c))).collect();
        assert_eq!(crossings, [(1, Crossing::Rose)]);
        let cost = tracker.baselines().cost;
        assert!(close(cost.mean, 0.001), "frozen while anomalous: {cost:?}");
        assert_eq!(cost.windows, 5);
    }

    #[test]
    fn failing_a_fifth_of_messages_crosses_via_fragility() {
        let mut tracker = warmed(DecayConfig::default());
        let failing = WindowSample { handled: 40, failed: 10, ..healthy() };
        let first = tracker.observe(&failing);
        // 10 failures in the 150 messages of the short window: z = 6.67.
        assert_eq!(first.crossed, Some(Crossing::Rose));
        assert_eq!((first.decay.fragility, first.decay.cost, first.decay.drag), (1.0, 0.0, 0.0));
        assert_eq!(first.decay.score, 1.0);
        for _ in 0..10 {
            assert_eq!(tracker.observe(&failing).crossed, None);
        }
        assert_eq!(tracker.baselines().fragility.mean, 0.0);
    }

    #[test]
    fn restarts_count_as_fragility_even_without_messages() {
        let mut tracker = warmed(DecayConfig::default());
        let step = tracker.observe(&WindowSample { restarts: 1, ..healthy() });
        // One restart in 150 messages: 0.0067 per message, z = 0.67.
        assert_eq!(step.decay.fragility, 0.0);
        let idle_restarting = WindowSample { restarts: 2, ..WindowSample::default() };
        let mut tracker = warmed(DecayConfig::default().short_windows(1));
        let step = tracker.observe(&idle_restarting);
        assert_eq!(step.decay.fragility, 1.0, "2 restarts over max(1, 0) messages");
    }

    #[test]
    fn growing_queue_delay_crosses_via_drag() {
        let mut tracker = warmed(DecayConfig::default());
        let slow_queue = WindowSample { queue_delay: Duration::from_millis(50), ..healthy() };
        let step = tracker.observe(&slow_queue);
        // (2 + 2 + 50) ms over 30 samples = 1.8 ms against 0.2 ms with a
        // floor of 0.1 ms: z = 16.
        assert_eq!(step.crossed, Some(Crossing::Rose));
        assert_eq!((step.decay.drag, step.decay.cost, step.decay.fragility), (1.0, 0.0, 0.0));
        assert_eq!(step.decay.score, 1.0);
    }

    #[test]
    fn a_full_mailbox_crosses_via_drag() {
        let mut tracker = warmed(DecayConfig::default());
        let step = tracker.observe(&WindowSample { saturation: 1.0, ..healthy() });
        // 1.0 against 0.1 with a floor of 0.05: z = 18.
        assert_eq!(step.crossed, Some(Crossing::Rose));
        assert_eq!((step.decay.drag, step.decay.score), (1.0, 1.0));
    }

    #[test]
    fn rejected_sends_cross_via_drag() {
        let mut tracker = warmed(DecayConfig::default());
        let step = tracker.observe(&WindowSample { rejected: 50, ..healthy() });
        // 50 rejected of 200 sends: 0.25 against 0 with a floor of 0.01.
        assert_eq!(step.crossed, Some(Crossing::Rose));
        assert_eq!((step.decay.drag, step.decay.score), (1.0, 1.0));
    }

    #[test]
    fn a_slow_linear_decline_crosses_because_the_baseline_stops_learning_it() {
        let mut tracker = warmed(DecayConfig::default());
        let mut rose = Vec::new();
        for window in 1..=200 {
            // +2 % of the healthy cost per window: 1.02 ms, 1.04 ms, ...
            let step = tracker.observe(&costing(1000 + 20 * window));
            if step.crossed == Some(Crossing::Rose) {
                rose.push(window);
            }
        }
        // The first 7 windows of the climb are learned (the mean reaches
        // 1.036 ms), then the run of worse windows freezes it. The cost
        // component reaches 0.5 at z = 4, twice the frozen mean: the short
        // window averages 2.08 ms at window 55.
        assert_eq!(rose, [55]);
        let cost = tracker.baselines().cost;
        assert_eq!(cost.windows, 5 + 7);
        assert!((cost.mean - 0.001).abs() < 0.05 * 0.001, "the baseline stayed near 1 ms: {cost:?}");
        assert!(tracker.decay().decaying);
        assert_eq!(tracker.decay().cost, 1.0);
    }

    #[test]
    fn without_the_drift_rule_a_slow_linear_decline_is_learned_as_normal() {
        let mut tracker = warmed(DecayConfig::default().drift_windows(u32::MAX));
        for window in 1..=200 {
            let step = tracker.observe(&costing(1000 + 20 * window));
            assert_eq!(step.crossed, None, "window {window}");
        }
        // The mean lags the climb by about 9 windows of it.
        assert!(tracker.baselines().cost.mean > 0.004, "{:?}", tracker.baselines().cost);
    }

    #[test]
    fn recovery_falls_once_below_clear_and_wavering_above_it_does_not() {
        // One window per measure, so each sample sets the score directly:
        // 1.95 ms against 1 ms is z = 3.8, a cost of 0.45, between the
        // clear level (0.4) and the threshold (0.5).
        let mut tracker = warmed(DecayConfig::default().short_windows(1));
        let crossings: Vec<_> = [3000, 1950, 3000, 1950, 1000, 1950, 1000, 3000]
            .into_iter()
            .map(|micros| {
                let step = tracker.observe(&costing(micros));
                (step.crossed, step.decay.decaying)
            })
            .collect();
        assert_eq!(
            crossings,
            [
                (Some(Crossing::Rose), true),
                (None, true),
                (None, true),
                (None, true),
                (Some(Crossing::Fell), false),
                (None, false),
                (None, false),
                (Some(Crossing::Rose), true),
            ]
        );
    }

    #[test]
    fn a_recovered_cell_reports_fell_when_its_short_window_clears() {
        let mut tracker = warmed(DecayConfig::default());
        for _ in 0..5 {
            tracker.observe(&costing(3000));
        }
        let steps: Vec<_> = (0..5).map(|_| tracker.observe(&healthy())).collect();
        // 7/3 ms (cost 5/6) keeps it decaying; 5/3 ms (cost 1/6) clears.
        assert_eq!(
            steps.iter().map(|s| s.crossed).collect::<Vec<_>>(),
            [None, Some(Crossing::Fell), None, None, None]
        );
        assert_eq!(steps[4].decay.score, 0.0);
    }

    #[test]
    fn idle_windows_leave_cost_and_queue_delay_baselines_unchanged() {
        let mut tracker = warmed(DecayConfig::default());
        for _ in 0..5 {
            tracker.observe(&healthy());
        }
        let before = tracker.baselines();
        let idle = WindowSample { length: Duration::from_millis(100), ..WindowSample::default() };
        for window in 0..10 {
            let step = tracker.observe(&idle);
            assert_eq!(step.decay.score, 0.0, "window {window}");
        }
        let after = tracker.baselines();
        assert_eq!(after.cost, before.cost);
        assert_eq!(after.queue_delay, before.queue_delay);
        assert_eq!(after.fragility.windows, before.fragility.windows + 10, "fragility is observed always");
        // A busy window after the idle ones is measured against the same
        // baselines.
        assert_eq!(tracker.observe(&healthy()).decay.score, 0.0);
    }

    #[test]
    fn the_score_combines_components_as_independent_chances() {
        assert_eq!(combined_score(0.0, 0.0, 0.0), 0.0);
        assert_eq!(combined_score(1.0, 0.0, 0.0), 1.0);
        assert_eq!(combined_score(0.0, 1.0, 0.25), 1.0);
        assert_eq!(combined_score(0.0, 0.0, 1.0), 1.0);
        assert_eq!(combined_score(0.5, 0.0, 0.0), 0.5);
        assert_eq!(combined_score(0.5, 0.5, 0.0), 0.75);
        assert_eq!(combined_score(0.5, 0.5, 0.5), 0.875);
        assert_eq!(combined_score(0.25, 0.5, 0.0), 0.625);
    }

    #[test]
    fn a_cost_and_a_drag_component_combine_in_the_score() {
        let mut tracker = warmed(DecayConfig::default().short_windows(1));
        // Cost 2 ms against 1 ms with a floor of 0.25 ms: z = 4, component
        // 0.5. Saturation 0.3 against 0.1 with a floor of 0.05: z = 4, drag
        // 0.5. Score 1 − 0.5·0.5 = 0.75.
        let step = tracker.observe(&WindowSample { saturation: 0.3, ..costing(2000) });
        assert!(close(step.decay.cost, 0.5), "{step:?}");
        assert!(close(step.decay.drag, 0.5), "{step:?}");
        assert!(close(step.decay.score, 0.75), "{step:?}");
    }

    #[test]
    fn rising_for_counts_consecutive_strict_rises() {
        let mut tracker = warmed(DecayConfig::default());
        let rising: Vec<u32> = [3000, 3000, 3000, 3000, 1000, 1000, 1000, 3000]
            .into_iter()
            .map(|micros| tracker.observe(&costing(micros)).decay.rising_for)
            .collect();
        // Scores: 1/6, 5/6, 1, 1 (flat), 5/6, 1/6, 0, 1/6.
        assert_eq!(rising, [1, 2, 3, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_tenfold_rate_spike_is_a_load_shift_and_not_scored() {
        let mut tracker = warmed(DecayConfig::default().short_windows(1));
        assert_eq!(tracker.load_shift(), None);
        let spike = WindowSample { handled: 500, busy: Duration::from_millis(500), ..healthy() };
        let step = tracker.observe(&spike);
        assert_eq!(step.decay.score, 0.0, "load is not decay");
        let shift = tracker.load_shift().expect("a shift");
        // 5000/s against 500/s with a floor of 250/s: z = 18.
        assert!(
            close(shift.rate, 5000.0) && close(shift.baseline, 500.0) && close(shift.z, 18.0),
            "{shift:?}"
        );
        for _ in 0..10 {
            tracker.observe(&spike);
        }
        assert!(close(tracker.baselines().rate.mean, 500.0), "frozen while shifted");
        assert!(tracker.load_shift().is_some());
        tracker.observe(&healthy());
        assert_eq!(tracker.load_shift(), None, "back to the baseline");
    }

    #[test]
    fn a_tenfold_spike_shows_through_the_default_short_window() {
        let mut tracker = warmed(DecayConfig::default());
        let spike = WindowSample { handled: 500, busy: Duration::from_millis(500), ..healthy() };
        // The first spike window is (50 + 50 + 500) messages in 0.3 s,
        // 2000/s: z = 6, not beyond z_high. From the second on it is.
        tracker.observe(&spike);
        for window in 2..=10 {
            tracker.observe(&spike);
            let shift = tracker.load_shift().unwrap_or_else(|| panic!("no shift at window {window}"));
            assert!(shift.z > 6.0 && shift.rate >= 3500.0 - 1e-6, "{shift:?}");
        }
    }

    #[test]
    fn twenty_percent_rate_noise_is_no_load_shift() {
        let mut tracker = tracker(DecayConfig::default());
        let mut noise = Noise(11);
        for window in 0..200 {
            let handled = (50.0 * (1.0 + 0.2 * noise.next())).round() as u64;
            tracker.observe(&WindowSample { handled, busy: Duration::from_millis(handled), ..healthy() });
            assert_eq!(tracker.load_shift(), None, "window {window}");
        }
    }

    #[test]
    fn a_load_shift_is_two_sided() {
        // With the default relative floor of 0.5, a drop is at most z = -2;
        // a tighter floor lets a drop to nothing show.
        let config =
            DecayConfig::default().short_windows(1).rate_floor(NoiseFloor { relative: 0.05, absolute: 1.0 });
        let mut tracker = warmed(config);
        tracker.observe(&WindowSample { length: Duration::from_millis(100), ..WindowSample::default() });
        let shift = tracker.load_shift().expect("a shift");
        assert_eq!(shift.rate, 0.0);
        assert!(close(shift.z, -20.0), "{shift:?}");

        let mut tracker = warmed(DecayConfig::default().short_windows(1));
        tracker.observe(&WindowSample { length: Duration::from_millis(100), ..WindowSample::default() });
        assert_eq!(tracker.load_shift(), None, "z = -2 with the default floor");
    }

    #[test]
    fn zero_length_windows_give_no_rate() {
        let mut tracker = tracker(DecayConfig::default().short_windows(1));
        tracker.observe(&WindowSample { length: Duration::ZERO, ..healthy() });
        assert_eq!(tracker.rate(), None);
        assert_eq!(tracker.baselines().rate.windows, 0);
        tracker.observe(&healthy());
        assert!(close(tracker.rate().expect("a rate"), 500.0));
    }

    #[test]
    fn saturation_out_of_range_is_clamped() {
        let mut tracker = tracker(DecayConfig::default().short_windows(1));
        for saturation in [f64::NAN, -3.0, 0.0, f64::NEG_INFINITY, 0.0] {
            tracker.observe(&WindowSample { saturation, ..healthy() });
        }
        assert_eq!(tracker.baselines().saturation, Baseline { mean: 0.0, deviation: 0.0, windows: 5 });
        let step = tracker.observe(&WindowSample { saturation: 7.0, ..healthy() });
        // 1.0 against 0 with a floor of 0.05: z = 20.
        assert_eq!(step.decay.drag, 1.0);
    }

    #[test]
    fn cost_is_the_mean_handling_time_of_the_timed_messages() {
        let mut tracker = tracker(DecayConfig::default().warmup(1).short_windows(1));
        // 5 of 50 messages timed, 10 ms in all: 2 ms each.
        let sampled = WindowSample { busy: Duration::from_millis(10), timed: Some(5), ..healthy() };
        tracker.observe(&sampled);
        assert!((tracker.baselines().cost.mean - 0.002).abs() < 1e-12, "{:?}", tracker.baselines().cost);
        // None timed: no cost observation, the baseline stays.
        tracker.observe(&WindowSample { busy: Duration::ZERO, timed: Some(0), ..healthy() });
        assert_eq!(tracker.baselines().cost.windows, 1);
    }

    #[test]
    fn extreme_counts_and_durations_do_not_overflow() {
        let mut tracker = tracker(DecayConfig::default());
        let extreme = WindowSample {
            length: Duration::MAX,
            handled: u64::MAX,
            failed: u64::MAX,
            restarts: u64::MAX,
            busy: Duration::MAX,
            timed: None,
            queue_delay: Duration::MAX,
            queue_samples: u64::MAX,
            saturation: 1.0,
            rejected: u64::MAX,
        };
        for _ in 0..10 {
            let step = tracker.observe(&extreme);
            assert!((0.0..=1.0).contains(&step.decay.score), "{step:?}");
        }
    }

    #[cfg(feature = "serde")]
    #[test]
    fn decay_data_round_trips_through_serde() {
        use crate::observe::round_trip;
        let mut tracker = warmed(DecayConfig::default());
        let decay = tracker.observe(&costing(3000)).decay;
        assert_eq!(round_trip::<Decay>(&decay), decay);
        let baselines = tracker.baselines();
        assert_eq!(round_trip::<Baselines>(&baselines), baselines);
        let config = DecayConfig::default().clear(0.3);
        assert_eq!(round_trip::<DecayConfig>(&config), config);
    }

    #[test]
    fn baselines_are_exponentially_weighted() {
        let mut ewma = Ewma::default();
        ewma.learn(1.0, 0.5);
        assert_eq!(ewma.baseline(), Baseline { mean: 1.0, deviation: 0.0, windows: 1 });
        ewma.learn(3.0, 0.5);
        // d = 2: mean 1 + 0.5·2 = 2, variance 0.5·(0 + 2·1) = 1.
        assert_eq!(ewma.baseline(), Baseline { mean: 2.0, deviation: 1.0, windows: 2 });
        ewma.learn(2.0, 0.5);
        // d = 0: mean 2, variance 0.5·1.
        assert_eq!(ewma.baseline(), Baseline { mean: 2.0, deviation: 0.5f64.sqrt(), windows: 3 });
    }

    #[test]
    fn the_default_config_is_valid_and_documented() {
        let config = DecayConfig::default();
        assert_eq!(config.validate(), Ok(()));
        assert_eq!((config.warmup, config.short_windows, config.drift_windows), (5, 3, 8));
        assert_eq!(
            (config.baseline_alpha, config.z_low, config.z_high, config.threshold),
            (0.1, 2.0, 6.0, 0.5)
        );
        assert_eq!(config.clear_level(), 0.4);
        assert_eq!(config.threshold(0.625).clear_level(), 0.5, "0.8 × threshold");
    }

    #[test]
    fn every_bad_setting_is_refused_by_name() {
        let base = DecayConfig::default;
        let nan = f64::NAN;
        let cases: Vec<(DecayConfig, DecayConfigError)> = vec![
            (base().warmup(0), DecayConfigError::Warmup { value: 0 }),
            (base().short_windows(0), DecayConfigError::ShortWindows { value: 0 }),
            (base().short_windows(MAX_SHORT_WINDOWS + 1), DecayConfigError::ShortWindows { value: 1_025 }),
            (base().short_windows(u32::MAX), DecayConfigError::ShortWindows { value: u32::MAX }),
            (base().baseline_alpha(0.0), DecayConfigError::BaselineAlpha { value: 0.0 }),
            (base().baseline_alpha(1.5), DecayConfigError::BaselineAlpha { value: 1.5 }),
            (base().baseline_alpha(-0.1), DecayConfigError::BaselineAlpha { value: -0.1 }),
            (base().z_low(-1.0), DecayConfigError::ZLow { value: -1.0 }),
            (base().z_low(f64::INFINITY), DecayConfigError::ZLow { value: f64::INFINITY }),
            (base().z_high(2.0), DecayConfigError::ZHigh { value: 2.0, z_low: 2.0 }),
            (base().z_high(1.0), DecayConfigError::ZHigh { value: 1.0, z_low: 2.0 }),
            (base().z_high(f64::INFINITY), DecayConfigError::ZHigh { value: f64::INFINITY, z_low: 2.0 }),
            (base().drift_windows(0), DecayConfigError::DriftWindows { value: 0 }),
            (base().threshold(0.0), DecayConfigError::Threshold { value: 0.0 }),
            (base().threshold(1.5), DecayConfigError::Threshold { value: 1.5 }),
            (base().clear(0.5), DecayConfigError::Clear { value: 0.5, threshold: 0.5 }),
            (base().clear(0.6), DecayConfigError::Clear { value: 0.6, threshold: 0.5 }),
            (base().clear(0.0), DecayConfigError::Clear { value: 0.0, threshold: 0.5 }),
            (base().threshold(0.3).clear(0.4), DecayConfigError::Clear { value: 0.4, threshold: 0.3 }),
        ];
        for (config, expected) in cases {
            assert_eq!(config.validate(), Err(expected.clone()), "{config:?}");
            assert_eq!(DecayTracker::new(config).err(), Some(expected));
        }
        let bad_floors = [
            NoiseFloor { relative: -0.1, absolute: 1.0 },
            NoiseFloor { relative: 0.1, absolute: 0.0 },
            NoiseFloor { relative: 0.1, absolute: -1.0 },
            NoiseFloor { relative: f64::INFINITY, absolute: 1.0 },
            NoiseFloor { relative: 0.1, absolute: f64::INFINITY },
        ];
        type Setter = fn(DecayConfig, NoiseFloor) -> DecayConfig;
        let setters: [(&str, Setter); 6] = [
            ("fragility_floor", DecayConfig::fragility_floor),
            ("cost_floor", DecayConfig::cost_floor),
            ("queue_delay_floor", DecayConfig::queue_delay_floor),
            ("saturation_floor", DecayConfig::saturation_floor),
            ("rejection_floor", DecayConfig::rejection_floor),
            ("rate_floor", DecayConfig::rate_floor),
        ];
        for (field, set) in setters {
            for floor in bad_floors {
                assert_eq!(set(base(), floor).validate(), Err(DecayConfigError::NoiseFloor { field, floor }));
            }
        }
        // NaN is refused everywhere (compared through Display: NaN ≠ NaN).
        for config in [
            base().baseline_alpha(nan),
            base().z_low(nan),
            base().z_high(nan),
            base().threshold(nan),
            base().clear(nan),
            base().cost_floor(NoiseFloor { relative: nan, absolute: 1.0 }),
            base().rate_floor(NoiseFloor { relative: 0.5, absolute: nan }),
        ] {
            assert!(config.validate().is_err(), "{config:?}");
        }
        assert_eq!(
            base().z_high(1.0).validate().unwrap_err().to_string(),
            "z_high must be finite and greater than z_low (2), got 1"
        );
        assert_eq!(
            base()
                .cost_floor(NoiseFloor { relative: 0.25, absolute: 0.0 })
                .validate()
                .unwrap_err()
                .to_string(),
            "cost_floor needs a finite relative part >= 0 and a finite absolute part > 0, \
             got relative 0.25 and absolute 0"
        );
    }

    #[test]
    fn edge_settings_are_accepted() {
        let config = DecayConfig::default()
            .warmup(1)
            .short_windows(1)
            .baseline_alpha(1.0)
            .z_low(0.0)
            .z_high(0.001)
            .drift_windows(1)
            .threshold(1.0)
            .clear(0.999)
            .fragility_floor(NoiseFloor { relative: 0.0, absolute: f64::MIN_POSITIVE });
        assert_eq!(config.validate(), Ok(()));
        let mut tracker = tracker(config);
        tracker.observe(&healthy());
        let step = tracker.observe(&WindowSample { failed: 1, ..healthy() });
        assert_eq!((step.decay.fragility, step.crossed), (1.0, Some(Crossing::Rose)));
    }
}
