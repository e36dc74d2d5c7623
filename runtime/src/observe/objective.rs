//! Objectives and error-budget burn rates.
//!
//! This module owns per-cell service-level objectives ([`Objective`]), the
//! windows of the multiwindow, multi-burn-rate alerts ([`BurnWindows`],
//! [`BurnAlert`]) and the tracker that counts good and bad events per
//! objective and raises and clears those alerts. It holds no clock: every
//! call takes the time it is made at.
//!
//! # Burn rate
//!
//! An objective with target `t` (say 0.999) leaves an error budget of
//! `1 − t` (0.1 % of events may be bad). Over a window,
//!
//! ```text
//! burn rate = (bad / (good + bad)) / (1 − t)      (0 when the window saw no event)
//! ```
//!
//! is how many times faster than sustainable the budget is being spent: 1
//! spends exactly the budget over the objective's period. An alert fires
//! when the burn rate over both its long and its short window is at least
//! its factor (Google SRE workbook, "Alerting on SLOs"): the long window
//! makes it significant, the short window makes it clear soon after the
//! burning stops. A relative tolerance of 10⁻⁹ absorbs floating-point
//! rounding, so that an error ratio of exactly `factor × (1 − t)` fires.
//!
//! # Bounded memory
//!
//! Each window is kept as 12 buckets of 1/12 of its length plus the
//! current, partial one; buckets that fall out are dropped. A tracker holds
//! at most 13 buckets per window (78 for its three pairs of windows),
//! whatever the window lengths and however often it is fed. The price: a
//! window's sums cover between its length and its length plus one bucket
//! (1/12 of it) of the most recent events.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// The alerts of the multiwindow, multi-burn-rate rule (Google SRE
/// workbook, "Alerting on SLOs"): each fires when the error budget burns
/// at least its factor faster than sustainable over both its long and its
/// short window. Their windows and factors are set by [`BurnWindows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum BurnAlert {
    /// 14.4× over the fast pair of windows (by default 1 h and 5 min): 2 %
    /// of a 30-day budget in an hour. Pages.
    Fast,
    /// 6× over the slow pair (by default 6 h and 30 min): 5 % of the budget
    /// in six hours. Pages.
    Slow,
    /// 1× over the ticket pair (by default 3 days and 6 h): 10 % of the
    /// budget in three days. Opens a ticket.
    Ticket,
}

impl BurnAlert {
    /// Every alert, fastest first.
    const ALL: [BurnAlert; 3] = [BurnAlert::Fast, BurnAlert::Slow, BurnAlert::Ticket];
}

/// What an objective measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Indicator {
    /// Messages handled without failure.
    Success,
    /// Messages whose latency (time in queue plus handling) is at most
    /// `threshold`.
    Latency {
        /// The latency a good message stays within.
        threshold: Duration,
    },
}

/// A per-cell service-level objective: the fraction of messages that must
/// be good, by an [`Indicator`].
///
/// ```
/// use std::time::Duration;
/// use cellrt::Objective;
///
/// let success = Objective::success_ratio(0.999)?;
/// assert_eq!(success.to_string(), "success ≥ 99.9%");
/// assert_eq!(success.name(), "success>=99.9%");
///
/// let latency = Objective::latency(Duration::from_millis(10), 0.99)?;
/// assert_eq!(latency.to_string(), "p99 ≤ 10ms");
///
/// assert!(Objective::success_ratio(1.0).is_err(), "a target of 1 leaves no budget");
/// # Ok::<(), cellrt::ObjectiveError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Objective {
    indicator: Indicator,
    target: f64,
}

impl Objective {
    /// At least `target` of the messages handled without failure (error,
    /// panic, deadline, storage). `target` is in `(0, 1)`.
    pub fn success_ratio(target: f64) -> Result<Objective, ObjectiveError> {
        Objective { indicator: Indicator::Success, target }.checked()
    }

    /// At least `target` of the messages with a latency (time in queue plus
    /// handling) of at most `threshold`. `target` is in `(0, 1)`;
    /// `threshold` is greater than 0.
    pub fn latency(threshold: Duration, target: f64) -> Result<Objective, ObjectiveError> {
        Objective { indicator: Indicator::Latency { threshold }, target }.checked()
    }

    fn checked(self) -> Result<Objective, ObjectiveError> {
        if !(self.target > 0.0 && self.target < 1.0) {
            return Err(ObjectiveError::Target { value: self.target });
        }
        if let Indicator::Latency { threshold } = self.indicator {
            if threshold.is_zero() {
                return Err(ObjectiveError::ZeroLatencyThreshold);
            }
        }
        Ok(self)
    }

    /// What the objective measures.
    pub fn indicator(&self) -> Indicator {
        self.indicator
    }

    /// The fraction of messages that must be good, in `(0, 1)`.
    pub fn target(&self) -> f64 {
        self.target
    }

    /// The fraction of messages that may be bad: `1 − target`.
    pub fn error_budget(&self) -> f64 {
        1.0 - self.target
    }

    /// A short ASCII name for journal entries: `success>=99.9%`,
    /// `p99<=10ms`.
    pub fn name(&self) -> String {
        match self.indicator {
            Indicator::Success => format!("success>={}%", percent(self.target)),
            Indicator::Latency { threshold } => format!("p{}<={threshold:?}", percent(self.target)),
        }
    }
}

impl fmt::Display for Objective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.indicator {
            Indicator::Success => write!(f, "success ≥ {}%", percent(self.target)),
            Indicator::Latency { threshold } => write!(f, "p{} ≤ {threshold:?}", percent(self.target)),
        }
    }
}

/// `fraction` as a percentage with at most 4 decimals, without trailing
/// zeros: 0.999 → `99.9`.
fn percent(fraction: f64) -> String {
    let text = format!("{:.4}", fraction * 100.0);
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The long and short window and the factor of one alert.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub(crate) struct AlertWindows {
    pub(crate) long: Duration,
    pub(crate) short: Duration,
    pub(crate) factor: f64,
}

/// The windows and factors of the burn-rate alerts. The default is the SRE
/// workbook's: [`Fast`](BurnAlert::Fast) 1 h and 5 min at 14.4×,
/// [`Slow`](BurnAlert::Slow) 6 h and 30 min at 6×,
/// [`Ticket`](BurnAlert::Ticket) 3 days and 6 h at 1×.
///
/// Over a window, the burn rate of an objective with target `t` is
/// `(bad / (good + bad)) / (1 − t)`, 0 when the window saw no event. An
/// alert fires while the burn rates over both its windows are at least its
/// factor (within a relative 10⁻⁹ for rounding). Each window is counted in
/// 12 buckets of 1/12 of its length plus the current one, so memory stays
/// bounded and a window's sums cover between its length and its length
/// plus 1/12 of it.
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BurnAlert, BurnWindows, ObjectiveError};
///
/// let minute = Duration::from_secs(60);
/// let windows = BurnWindows::new().window(BurnAlert::Fast, 30 * minute, 3 * minute).factor(BurnAlert::Fast, 10.0);
/// assert_eq!(windows.validate(), Ok(()));
///
/// let inverted = BurnWindows::new().window(BurnAlert::Slow, minute, 2 * minute);
/// assert_eq!(
///     inverted.validate(),
///     Err(ObjectiveError::ShortNotShorter { alert: BurnAlert::Slow, long: minute, short: 2 * minute })
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct BurnWindows {
    pub(crate) fast: AlertWindows,
    pub(crate) slow: AlertWindows,
    pub(crate) ticket: AlertWindows,
}

impl Default for BurnWindows {
    fn default() -> Self {
        const HOUR: u64 = 3600;
        let hours = |n: u64| Duration::from_secs(n * HOUR);
        BurnWindows {
            fast: AlertWindows { long: hours(1), short: Duration::from_secs(5 * 60), factor: 14.4 },
            slow: AlertWindows { long: hours(6), short: Duration::from_secs(30 * 60), factor: 6.0 },
            ticket: AlertWindows { long: hours(72), short: hours(6), factor: 1.0 },
        }
    }
}

impl BurnWindows {
    /// The SRE workbook's windows and factors (the default).
    pub fn new() -> Self {
        BurnWindows::default()
    }

    /// Sets `alert`'s long and short window. Both must be longer than 0,
    /// `short` shorter than `long`, and `long` longer than the long window
    /// of every faster alert (`Fast` < `Slow` < `Ticket`): an alert named
    /// for paging on a fast burn must look at a shorter span than the one
    /// that opens a ticket.
    pub fn window(mut self, alert: BurnAlert, long: Duration, short: Duration) -> Self {
        let windows = self.of_mut(alert);
        windows.long = long;
        windows.short = short;
        self
    }

    /// Sets `alert`'s factor: the burn rate at which it fires. Finite and
    /// greater than 0.
    pub fn factor(mut self, alert: BurnAlert, factor: f64) -> Self {
        self.of_mut(alert).factor = factor;
        self
    }

    /// Checks every alert's windows and factor, fastest alert first, then
    /// that the alerts' long windows grow from [`Fast`](BurnAlert::Fast) to
    /// [`Slow`](BurnAlert::Slow) to [`Ticket`](BurnAlert::Ticket).
    pub fn validate(&self) -> Result<(), ObjectiveError> {
        for alert in BurnAlert::ALL {
            let AlertWindows { long, short, factor } = self.of(alert);
            if long.is_zero() || short.is_zero() {
                return Err(ObjectiveError::ZeroWindow { alert, long, short });
            }
            if short >= long {
                return Err(ObjectiveError::ShortNotShorter { alert, long, short });
            }
            if !(factor.is_finite() && factor > 0.0) {
                return Err(ObjectiveError::Factor { alert, value: factor });
            }
        }
        for pair in BurnAlert::ALL.windows(2) {
            let (faster, alert) = (pair[0], pair[1]);
            let (faster_long, long) = (self.of(faster).long, self.of(alert).long);
            if long <= faster_long {
                return Err(ObjectiveError::OutOfOrder { alert, long, faster, faster_long });
            }
        }
        Ok(())
    }

    pub(crate) fn of(&self, alert: BurnAlert) -> AlertWindows {
        match alert {
            BurnAlert::Fast => self.fast,
            BurnAlert::Slow => self.slow,
            BurnAlert::Ticket => self.ticket,
        }
    }

    fn of_mut(&mut self, alert: BurnAlert) -> &mut AlertWindows {
        match alert {
            BurnAlert::Fast => &mut self.fast,
            BurnAlert::Slow => &mut self.slow,
            BurnAlert::Ticket => &mut self.ticket,
        }
    }
}

/// An [`Objective`] or [`BurnWindows`] setting out of range, with the
/// refused value.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ObjectiveError {
    /// The target was not in `(0, 1)`: 1 leaves no error budget.
    Target {
        /// The refused target.
        value: f64,
    },
    /// A latency objective's threshold was 0.
    ZeroLatencyThreshold,
    /// An alert had a window of length 0.
    ZeroWindow {
        /// The alert.
        alert: BurnAlert,
        /// Its long window.
        long: Duration,
        /// Its short window.
        short: Duration,
    },
    /// An alert's short window was not shorter than its long window.
    ShortNotShorter {
        /// The alert.
        alert: BurnAlert,
        /// Its long window.
        long: Duration,
        /// Its short window.
        short: Duration,
    },
    /// An alert's factor was not finite and greater than 0.
    Factor {
        /// The alert.
        alert: BurnAlert,
        /// The refused factor.
        value: f64,
    },
    /// An alert's long window was not longer than a faster alert's: the
    /// long windows must grow from `Fast` to `Slow` to `Ticket`.
    OutOfOrder {
        /// The alert.
        alert: BurnAlert,
        /// Its long window.
        long: Duration,
        /// The faster alert just before it.
        faster: BurnAlert,
        /// That alert's long window.
        faster_long: Duration,
    },
}

impl fmt::Display for ObjectiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectiveError::Target { value } => {
                write!(f, "an objective's target must be in (0, 1), got {value}")
            }
            ObjectiveError::ZeroLatencyThreshold => {
                f.write_str("a latency objective's threshold must be greater than 0")
            }
            ObjectiveError::ZeroWindow { alert, long, short } => write!(
                f,
                "the {alert:?} burn alert's windows must be longer than 0, got long {long:?} and short {short:?}"
            ),
            ObjectiveError::ShortNotShorter { alert, long, short } => write!(
                f,
                "the {alert:?} burn alert's short window ({short:?}) must be shorter than its long window \
                 ({long:?})"
            ),
            ObjectiveError::Factor { alert, value } => {
                write!(f, "the {alert:?} burn alert's factor must be finite and greater than 0, got {value}")
            }
            ObjectiveError::OutOfOrder { alert, long, faster, faster_long } => write!(
                f,
                "the {alert:?} burn alert's long window ({long:?}) must be longer than the {faster:?} alert's \
                 ({faster_long:?})"
            ),
        }
    }
}

impl std::error::Error for ObjectiveError {}

/// An alert raised or cleared by an evaluation.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BurnTransition {
    /// The alert.
    pub alert: BurnAlert,
    /// Raised (`true`) or cleared (`false`).
    pub raised: bool,
    /// The burn rate over the alert's long window.
    pub long_rate: f64,
    /// The burn rate over the alert's short window.
    pub short_rate: f64,
    /// The alert's factor.
    pub factor: f64,
}

/// One alert's burn rates at one time.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct AlertBurn {
    /// The alert.
    pub alert: BurnAlert,
    /// The burn rate over its long window.
    pub long_rate: f64,
    /// The burn rate over its short window.
    pub short_rate: f64,
    /// Its factor.
    pub factor: f64,
    /// Both rates are at least the factor.
    pub firing: bool,
}

/// An objective's error-budget burn at one time.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BurnStatus {
    /// The objective.
    pub objective: Objective,
    /// Every alert's burn rates, fastest alert first.
    pub alerts: Vec<AlertBurn>,
    /// The error budget left over the longest window, as a fraction:
    /// `1 − burn rate` over it; 1 with no event, negative once overspent.
    pub budget_remaining: f64,
    /// Good events since the tracker started.
    pub good: u64,
    /// Bad events since the tracker started.
    pub bad: u64,
}

impl BurnStatus {
    /// `alert`'s burn rates.
    pub fn alert(&self, alert: BurnAlert) -> Option<&AlertBurn> {
        self.alerts.iter().find(|burn| burn.alert == alert)
    }
}

/// Full buckets per window; the current, partial one comes on top.
const BUCKETS_PER_WINDOW: u64 = 12;
/// The most buckets a window holds.
const MAX_WINDOW_BUCKETS: usize = BUCKETS_PER_WINDOW as usize + 1;
#[cfg(test)]
/// The most buckets a tracker holds: a long and a short window per alert.
pub(crate) const MAX_BUCKETS: usize = 2 * BurnAlert::ALL.len() * MAX_WINDOW_BUCKETS;
/// Relative tolerance of the comparison of a burn rate with a factor.
const RATE_TOLERANCE: f64 = 1e-9;

/// Events counted in one bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Buckets since the tracker's first record.
    index: u64,
    good: u64,
    bad: u64,
}

/// One window's counts, in buckets of 1/12 of it.
#[derive(Clone, Debug)]
struct Window {
    span: Duration,
    /// Nanoseconds per bucket, at least 1.
    bucket: u128,
    /// Oldest first, indices strictly increasing, at most 13.
    buckets: VecDeque<Bucket>,
}

impl Window {
    fn new(span: Duration) -> Self {
        let bucket = (span.as_nanos() / u128::from(BUCKETS_PER_WINDOW)).max(1);
        Window { span, bucket, buckets: VecDeque::with_capacity(MAX_WINDOW_BUCKETS) }
    }

    /// The bucket `now` falls in.
    fn index(&self, origin: Instant, now: Instant) -> u64 {
        let buckets = now.saturating_duration_since(origin).as_nanos() / self.bucket;
        u64::try_from(buckets).unwrap_or(u64::MAX)
    }

    /// Adds events at bucket `index`; events older than the latest bucket
    /// are added to it.
    fn add(&mut self, index: u64, good: u64, bad: u64) {
        if good != 0 || bad != 0 {
            match self.buckets.back_mut() {
                Some(last) if last.index >= index => {
                    last.good = last.good.saturating_add(good);
                    last.bad = last.bad.saturating_add(bad);
                }
                _ => self.buckets.push_back(Bucket { index, good, bad }),
            }
        }
        self.prune(index);
    }

    /// Drops the buckets older than the window as of bucket `index`.
    fn prune(&mut self, index: u64) {
        while self.buckets.front().is_some_and(|b| !Self::within(b, index)) {
            self.buckets.pop_front();
        }
    }

    fn within(bucket: &Bucket, index: u64) -> bool {
        bucket.index.saturating_add(BUCKETS_PER_WINDOW) >= index
    }

    /// Good and bad events in the window as of bucket `index`.
    fn sums(&self, index: u64) -> (u64, u64) {
        self.buckets
            .iter()
            .filter(|b| Self::within(b, index))
            .fold((0, 0), |(good, bad), b| (good.saturating_add(b.good), bad.saturating_add(b.bad)))
    }
}

/// One alert's windows and state.
#[derive(Clone, Debug)]
struct AlertState {
    alert: BurnAlert,
    factor: f64,
    long: Window,
    short: Window,
    firing: bool,
}

/// Counts one objective's good and bad events and raises and clears its
/// burn-rate alerts. See the module docs for the rule and the memory
/// bound.
#[derive(Clone, Debug)]
pub(crate) struct BurnTracker {
    objective: Objective,
    /// The time of the first record: bucket 0 starts there.
    origin: Option<Instant>,
    /// Fastest alert first.
    alerts: Vec<AlertState>,
    good: u64,
    bad: u64,
}

impl BurnTracker {
    /// A tracker with no event yet, or the first setting of `objective` or
    /// `windows` out of range.
    pub(crate) fn new(objective: Objective, windows: &BurnWindows) -> Result<Self, ObjectiveError> {
        let objective = objective.checked()?;
        windows.validate()?;
        let alerts = BurnAlert::ALL
            .into_iter()
            .map(|alert| {
                let AlertWindows { long, short, factor } = windows.of(alert);
                AlertState {
                    alert,
                    factor,
                    long: Window::new(long),
                    short: Window::new(short),
                    firing: false,
                }
            })
            .collect();
        Ok(BurnTracker { objective, origin: None, alerts, good: 0, bad: 0 })
    }

    #[cfg(test)]
    /// The objective tracked.
    pub(crate) fn objective(&self) -> &Objective {
        &self.objective
    }

    /// Counts one analysis tick's good and bad events, at `now`. Events at
    /// a `now` earlier than a previous record's are counted with the latest
    /// ones.
    pub(crate) fn record(&mut self, now: Instant, good: u64, bad: u64) {
        let origin = *self.origin.get_or_insert(now);
        self.good = self.good.saturating_add(good);
        self.bad = self.bad.saturating_add(bad);
        for state in &mut self.alerts {
            for window in [&mut state.long, &mut state.short] {
                let index = window.index(origin, now);
                window.add(index, good, bad);
            }
        }
    }

    /// Evaluates every alert at `now`; returns those raised or cleared
    /// since the previous evaluation, fastest alert first.
    pub(crate) fn evaluate(&mut self, now: Instant) -> Vec<BurnTransition> {
        let Some(origin) = self.origin else {
            return Vec::new();
        };
        let budget = self.objective.error_budget();
        let mut transitions = Vec::new();
        for state in &mut self.alerts {
            for window in [&mut state.long, &mut state.short] {
                let index = window.index(origin, now);
                window.prune(index);
            }
            let burn = state.burn(origin, now, budget);
            if burn.firing != state.firing {
                state.firing = burn.firing;
                transitions.push(BurnTransition {
                    alert: state.alert,
                    raised: burn.firing,
                    long_rate: burn.long_rate,
                    short_rate: burn.short_rate,
                    factor: state.factor,
                });
            }
        }
        transitions
    }

    /// Every alert's burn rates at `now`, the budget left over the longest
    /// window, and the events counted since the start.
    pub(crate) fn status(&self, now: Instant) -> BurnStatus {
        let budget = self.objective.error_budget();
        let (alerts, budget_remaining) = match self.origin {
            None => (
                self.alerts
                    .iter()
                    .map(|state| AlertBurn {
                        alert: state.alert,
                        long_rate: 0.0,
                        short_rate: 0.0,
                        factor: state.factor,
                        firing: false,
                    })
                    .collect(),
                1.0,
            ),
            Some(origin) => {
                let alerts = self.alerts.iter().map(|state| state.burn(origin, now, budget)).collect();
                let longest = self
                    .alerts
                    .iter()
                    .flat_map(|state| [&state.long, &state.short])
                    .max_by_key(|window| window.span);
                let remaining = longest.map_or(1.0, |window| {
                    let (good, bad) = window.sums(window.index(origin, now));
                    1.0 - burn_rate(good, bad, budget)
                });
                (alerts, remaining)
            }
        };
        BurnStatus { objective: self.objective, alerts, budget_remaining, good: self.good, bad: self.bad }
    }

    #[cfg(test)]
    /// Buckets held over every window; at most [`MAX_BUCKETS`].
    pub(crate) fn buckets(&self) -> usize {
        self.alerts.iter().map(|state| state.long.buckets.len() + state.short.buckets.len()).sum()
    }
}

impl AlertState {
    fn burn(&self, origin: Instant, now: Instant, budget: f64) -> AlertBurn {
        let (long_good, long_bad) = self.long.sums(self.long.index(origin, now));
        let (short_good, short_bad) = self.short.sums(self.short.index(origin, now));
        let long_rate = burn_rate(long_good, long_bad, budget);
        let short_rate = burn_rate(short_good, short_bad, budget);
        let reaches = |rate: f64| rate >= self.factor * (1.0 - RATE_TOLERANCE);
        let seen = |good: u64, bad: u64| good != 0 || bad != 0;
        let firing = seen(long_good, long_bad)
            && seen(short_good, short_bad)
            && reaches(long_rate)
            && reaches(short_rate);
        AlertBurn { alert: self.alert, long_rate, short_rate, factor: self.factor, firing }
    }
}

/// `(bad / (good + bad)) / budget`; 0 with no event.
fn burn_rate(good: u64, bad: u64, budget: f64) -> f64 {
    if good == 0 && bad == 0 {
        return 0.0;
    }
    let bad = bad as f64;
    (bad / (good as f64 + bad)) / budget
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default windows scaled from hours to milliseconds (1 min → 1 ms).
    fn ms_windows() -> BurnWindows {
        let ms = Duration::from_millis;
        BurnWindows::new()
            .window(BurnAlert::Fast, ms(60), ms(5))
            .window(BurnAlert::Slow, ms(360), ms(30))
            .window(BurnAlert::Ticket, ms(4320), ms(360))
    }

    fn tracker(target: f64) -> BurnTracker {
        BurnTracker::new(Objective::success_ratio(target).unwrap(), &ms_windows()).unwrap()
    }

    /// Records `good` and `bad` at every millisecond tick of `ticks` and
    /// evaluates after each; returns the transitions with their tick.
    fn run(
        tracker: &mut BurnTracker,
        t0: Instant,
        ticks: std::ops::RangeInclusive<u64>,
        good: u64,
        bad: u64,
    ) -> Vec<(u64, BurnTransition)> {
        let mut transitions = Vec::new();
        for tick in ticks {
            let now = t0 + Duration::from_millis(tick);
            tracker.record(now, good, bad);
            transitions.extend(tracker.evaluate(now).into_iter().map(|t| (tick, t)));
        }
        transitions
    }

    fn alerts(transitions: &[(u64, BurnTransition)], raised: bool) -> Vec<BurnAlert> {
        transitions.iter().filter(|(_, t)| t.raised == raised).map(|(_, t)| t.alert).collect()
    }

    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= 1e-9 * expected.abs().max(1.0)
    }

    #[test]
    fn no_errors_never_fire() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        assert_eq!(run(&mut tracker, t0, 1..=5000, 100, 0), []);
        let status = tracker.status(t0 + Duration::from_millis(5000));
        assert_eq!((status.good, status.bad, status.budget_remaining), (500_000, 0, 1.0));
        for burn in &status.alerts {
            assert_eq!((burn.long_rate, burn.short_rate, burn.firing), (0.0, 0.0, false), "{burn:?}");
        }
    }

    #[test]
    fn nothing_fires_before_any_event() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        assert_eq!(tracker.evaluate(t0), []);
        assert_eq!(run(&mut tracker, t0, 1..=100, 0, 0), [], "ticks without events");
        let status = tracker.status(t0);
        assert_eq!(status.budget_remaining, 1.0);
        assert!(status.alerts.iter().all(|burn| !burn.firing && burn.long_rate == 0.0));
    }

    #[test]
    fn all_errors_fire_every_alert_once_its_windows_have_data() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        let transitions = run(&mut tracker, t0, 1..=1000, 0, 10);
        let everything_bad = 1.0 / (1.0 - 0.999);
        assert_eq!(transitions.len(), 3, "{transitions:?}");
        for ((tick, transition), alert) in transitions.iter().zip(BurnAlert::ALL) {
            assert_eq!((*tick, transition.alert, transition.raised), (1, alert, true));
            assert_eq!((transition.long_rate, transition.short_rate), (everything_bad, everything_bad));
        }
        let status = tracker.status(t0 + Duration::from_millis(1000));
        assert!(status.alerts.iter().all(|burn| burn.firing));
        assert_eq!(status.budget_remaining, 1.0 - everything_bad, "overspent: negative");
    }

    #[test]
    fn exactly_fourteen_point_four_times_the_budget_fires_fast() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        // 1.44 % bad: a burn rate of 14.4, which f64 rounds to just below.
        let transitions = run(&mut tracker, t0, 1..=100, 9856, 144);
        assert_eq!(alerts(&transitions, true), BurnAlert::ALL);
        assert_eq!(alerts(&transitions, false), []);
        let fast = tracker.status(t0 + Duration::from_millis(100)).alert(BurnAlert::Fast).copied().unwrap();
        assert!(fast.firing && close(fast.long_rate, 14.4) && close(fast.short_rate, 14.4), "{fast:?}");
        assert!(fast.long_rate < 14.4, "the tolerance is what makes it fire: {fast:?}");
    }

    #[test]
    fn one_percent_errors_fire_slow_and_ticket_but_not_fast() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        let transitions = run(&mut tracker, t0, 1..=1000, 9900, 100);
        assert_eq!(alerts(&transitions, true), [BurnAlert::Slow, BurnAlert::Ticket]);
        let status = tracker.status(t0 + Duration::from_millis(1000));
        let fast = status.alert(BurnAlert::Fast).unwrap();
        assert!(!fast.firing && close(fast.long_rate, 10.0) && close(fast.short_rate, 10.0), "{fast:?}");
    }

    #[test]
    fn transitions_are_reported_once_on_raise_and_once_on_clear() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        let mut transitions = run(&mut tracker, t0, 1..=20, 0, 100);
        transitions.extend(run(&mut tracker, t0, 21..=6000, 100, 0));
        assert_eq!(alerts(&transitions, true), BurnAlert::ALL);
        assert_eq!(alerts(&transitions, false), BurnAlert::ALL, "cleared fastest first");
        for (tick, transition) in &transitions {
            if !transition.raised {
                let short = ms_windows().of(transition.alert).short.as_millis() as u64;
                // The last bad tick was 20; its short window forgets it
                // within one bucket (1/12 of it) after its length.
                assert!(
                    (20 + short..=20 + short + short / 12 + 1).contains(tick),
                    "{transition:?} at {tick}"
                );
            }
        }
        assert!(tracker.status(t0 + Duration::from_millis(6000)).alerts.iter().all(|b| !b.firing));
    }

    #[test]
    fn a_burst_that_ends_clears_on_the_short_window_while_the_long_window_still_burns() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        let mut transitions = run(&mut tracker, t0, 1..=100, 100, 0);
        transitions.extend(run(&mut tracker, t0, 101..=110, 0, 100));
        transitions.extend(run(&mut tracker, t0, 111..=200, 100, 0));
        let fast: Vec<_> = transitions.iter().filter(|(_, t)| t.alert == BurnAlert::Fast).collect();
        assert_eq!(fast.len(), 2, "{fast:?}");
        let (raised_at, raised) = fast[0];
        assert!(raised.raised && *raised_at == 101, "{raised:?} at {raised_at}");
        let (cleared_at, cleared) = fast[1];
        assert!(!cleared.raised && (115..=116).contains(cleared_at), "{cleared:?} at {cleared_at}");
        assert!(cleared.short_rate < 14.4, "the short window is clean: {cleared:?}");
        assert!(cleared.long_rate >= 100.0, "the long window still burns: {cleared:?}");
    }

    #[test]
    fn the_budget_remaining_is_over_the_longest_window() {
        let mut tracker = tracker(0.75);
        let t0 = Instant::now();
        // 1 bad in 8 is half the budget of 1 in 4.
        run(&mut tracker, t0, 1..=10, 7, 1);
        let status = tracker.status(t0 + Duration::from_millis(10));
        assert_eq!((status.budget_remaining, status.good, status.bad), (0.5, 70, 10));
        // Beyond the ticket's 4.32 s (plus one bucket), those events are gone.
        run(&mut tracker, t0, 4800..=4800, 1, 0);
        assert_eq!(tracker.status(t0 + Duration::from_millis(4800)).budget_remaining, 1.0);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_window_and_the_tick_rate() {
        let objective = Objective::success_ratio(0.999).unwrap();
        let mut workbook = BurnTracker::new(objective, &BurnWindows::new()).unwrap();
        let t0 = Instant::now();
        let tick = Duration::from_millis(300);
        // 1,000,000 ticks of 300 ms: 3.47 days, past the 3-day window.
        let mut now = t0;
        for _ in 0..1_000_000 {
            now += tick;
            workbook.record(now, 99, 1);
        }
        workbook.evaluate(now);
        assert_eq!(MAX_BUCKETS, 78);
        assert_eq!(workbook.buckets(), MAX_BUCKETS, "13 buckets for each of 6 windows");
        let status = workbook.status(now);
        assert_eq!((status.good, status.bad), (99_000_000, 1_000_000));
        let ticket = status.alert(BurnAlert::Ticket).unwrap();
        assert!(close(ticket.long_rate, 10.0) && ticket.firing, "{ticket:?}");

        // Ticks far finer than any bucket add to the current one.
        let mut fine = tracker(0.999);
        let mut now = t0;
        for _ in 0..1_000_000 {
            now += Duration::from_nanos(50);
            fine.record(now, 1, 0);
        }
        assert!(fine.buckets() <= MAX_BUCKETS, "{}", fine.buckets());
        assert_eq!(fine.status(now).good, 1_000_000);
    }

    #[test]
    fn a_time_before_the_latest_record_counts_in_the_latest_bucket() {
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        tracker.record(t0 + Duration::from_millis(10), 0, 5);
        tracker.record(t0 + Duration::from_millis(4), 0, 5);
        tracker.record(t0, 10, 0);
        let status = tracker.status(t0 + Duration::from_millis(10));
        let fast = status.alert(BurnAlert::Fast).unwrap();
        assert!(close(fast.short_rate, 0.5 / (1.0 - 0.999)), "{fast:?}");
        assert_eq!((status.good, status.bad), (10, 10));
    }

    #[test]
    fn a_latency_objective_burns_by_its_own_target() {
        let objective = Objective::latency(Duration::from_millis(10), 0.99).unwrap();
        let mut tracker = BurnTracker::new(objective, &ms_windows()).unwrap();
        let t0 = Instant::now();
        // 10 % slow at a 1 % budget: a burn rate of 10.
        let transitions = run(&mut tracker, t0, 1..=10, 90, 10);
        assert_eq!(alerts(&transitions, true), [BurnAlert::Slow, BurnAlert::Ticket]);
        assert_eq!(tracker.objective(), &objective);
    }

    #[test]
    fn objectives_accept_targets_strictly_between_zero_and_one() {
        let success = Objective::success_ratio(0.999).unwrap();
        assert_eq!((success.indicator(), success.target()), (Indicator::Success, 0.999));
        assert!(close(success.error_budget(), 0.001));
        let latency = Objective::latency(Duration::from_millis(10), 0.99).unwrap();
        assert_eq!(latency.indicator(), Indicator::Latency { threshold: Duration::from_millis(10) });
        assert!(Objective::success_ratio(f64::MIN_POSITIVE).is_ok());
        assert!(Objective::success_ratio(1.0 - f64::EPSILON).is_ok());
        for target in [0.0, 1.0, -0.5, 1.5, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(Objective::success_ratio(target), Err(ObjectiveError::Target { value: target }));
            assert_eq!(
                Objective::latency(Duration::from_millis(1), target),
                Err(ObjectiveError::Target { value: target })
            );
        }
        assert!(
            matches!(Objective::success_ratio(f64::NAN), Err(ObjectiveError::Target { value }) if value.is_nan())
        );
        assert_eq!(Objective::latency(Duration::ZERO, 0.99), Err(ObjectiveError::ZeroLatencyThreshold));
        assert!(Objective::latency(Duration::from_nanos(1), 0.99).is_ok());
    }

    #[test]
    fn objectives_display_and_name_themselves() {
        let cases = [
            (Objective::success_ratio(0.999).unwrap(), "success ≥ 99.9%", "success>=99.9%"),
            (Objective::success_ratio(0.99).unwrap(), "success ≥ 99%", "success>=99%"),
            (Objective::success_ratio(0.9999).unwrap(), "success ≥ 99.99%", "success>=99.99%"),
            (Objective::latency(Duration::from_millis(10), 0.99).unwrap(), "p99 ≤ 10ms", "p99<=10ms"),
            (
                Objective::latency(Duration::from_micros(1500), 0.995).unwrap(),
                "p99.5 ≤ 1.5ms",
                "p99.5<=1.5ms",
            ),
            (Objective::latency(Duration::from_secs(2), 0.5).unwrap(), "p50 ≤ 2s", "p50<=2s"),
        ];
        for (objective, display, name) in cases {
            assert_eq!(objective.to_string(), display);
            assert_eq!(objective.name(), name);
        }
    }

    #[test]
    fn the_default_windows_are_the_workbooks() {
        let windows = BurnWindows::default();
        assert_eq!(windows, BurnWindows::new());
        assert_eq!(windows.validate(), Ok(()));
        let minutes = |n: u64| Duration::from_secs(60 * n);
        assert_eq!(
            windows.of(BurnAlert::Fast),
            AlertWindows { long: minutes(60), short: minutes(5), factor: 14.4 }
        );
        assert_eq!(
            windows.of(BurnAlert::Slow),
            AlertWindows { long: minutes(360), short: minutes(30), factor: 6.0 }
        );
        assert_eq!(
            windows.of(BurnAlert::Ticket),
            AlertWindows { long: minutes(3 * 24 * 60), short: minutes(360), factor: 1.0 }
        );
    }

    #[test]
    fn every_bad_window_and_factor_is_refused() {
        let ms = Duration::from_millis;
        let cases = [
            (
                BurnWindows::new().window(BurnAlert::Fast, Duration::ZERO, ms(5)),
                ObjectiveError::ZeroWindow { alert: BurnAlert::Fast, long: Duration::ZERO, short: ms(5) },
            ),
            (
                BurnWindows::new().window(BurnAlert::Slow, ms(60), Duration::ZERO),
                ObjectiveError::ZeroWindow { alert: BurnAlert::Slow, long: ms(60), short: Duration::ZERO },
            ),
            (
                BurnWindows::new().window(BurnAlert::Ticket, ms(60), ms(60)),
                ObjectiveError::ShortNotShorter { alert: BurnAlert::Ticket, long: ms(60), short: ms(60) },
            ),
            (
                BurnWindows::new().window(BurnAlert::Fast, ms(5), ms(60)),
                ObjectiveError::ShortNotShorter { alert: BurnAlert::Fast, long: ms(5), short: ms(60) },
            ),
            (
                BurnWindows::new().factor(BurnAlert::Slow, 0.0),
                ObjectiveError::Factor { alert: BurnAlert::Slow, value: 0.0 },
            ),
            (
                BurnWindows::new().factor(BurnAlert::Ticket, -1.0),
                ObjectiveError::Factor { alert: BurnAlert::Ticket, value: -1.0 },
            ),
            (
                BurnWindows::new().factor(BurnAlert::Fast, f64::INFINITY),
                ObjectiveError::Factor { alert: BurnAlert::Fast, value: f64::INFINITY },
            ),
            (
                BurnWindows::new().window(BurnAlert::Fast, ms(7 * 3_600_000), ms(60)),
                ObjectiveError::OutOfOrder {
                    alert: BurnAlert::Slow,
                    long: ms(6 * 3_600_000),
                    faster: BurnAlert::Fast,
                    faster_long: ms(7 * 3_600_000),
                },
            ),
            (
                BurnWindows::new().window(BurnAlert::Ticket, ms(6 * 3_600_000), ms(60)),
                ObjectiveError::OutOfOrder {
                    alert: BurnAlert::Ticket,
                    long: ms(6 * 3_600_000),
                    faster: BurnAlert::Slow,
                    faster_long: ms(6 * 3_600_000),
                },
            ),
        ];
        let objective = Objective::success_ratio(0.999).unwrap();
        for (windows, expected) in cases {
            assert_eq!(windows.validate(), Err(expected.clone()), "{windows:?}");
            assert_eq!(BurnTracker::new(objective, &windows).err(), Some(expected));
        }
        assert!(matches!(
            BurnWindows::new().factor(BurnAlert::Fast, f64::NAN).validate(),
            Err(ObjectiveError::Factor { alert: BurnAlert::Fast, value }) if value.is_nan()
        ));
        assert_eq!(
            BurnWindows::new().window(BurnAlert::Fast, ms(5), ms(60)).validate().unwrap_err().to_string(),
            "the Fast burn alert's short window (60ms) must be shorter than its long window (5ms)"
        );
        assert_eq!(
            Objective::success_ratio(1.0).unwrap_err().to_string(),
            "an objective's target must be in (0, 1), got 1"
        );
    }

    #[cfg(feature = "serde")]
    #[test]
    fn burn_data_round_trips_through_serde() {
        use crate::observe::round_trip;
        let mut tracker = tracker(0.999);
        let t0 = Instant::now();
        let transitions = run(&mut tracker, t0, 1..=10, 0, 1);
        assert_eq!(round_trip::<BurnTransition>(&transitions[0].1), transitions[0].1);
        let status = tracker.status(t0 + Duration::from_millis(10));
        assert_eq!(round_trip::<BurnStatus>(&status), status);
        assert_eq!(round_trip::<BurnWindows>(&ms_windows()), ms_windows());
    }

    #[test]
    fn tiny_windows_still_have_buckets() {
        let ns = Duration::from_nanos;
        let windows = BurnWindows::new()
            .window(BurnAlert::Fast, ns(2), ns(1))
            .window(BurnAlert::Slow, ns(3), ns(1))
            .window(BurnAlert::Ticket, ns(4), ns(1));
        let mut tracker = BurnTracker::new(Objective::success_ratio(0.99).unwrap(), &windows).unwrap();
        let t0 = Instant::now();
        tracker.record(t0, 0, 1);
        let raised = tracker.evaluate(t0);
        assert!(raised.iter().all(|t| t.raised) && raised.len() == 3, "{raised:?}");
        tracker.record(t0 + Duration::from_millis(1), 1, 0);
        let cleared = tracker.evaluate(t0 + Duration::from_millis(1));
        assert!(cleared.iter().all(|t| !t.raised) && cleared.len() == 3, "{cleared:?}");
    }
}
