//! What a fault does and how often: [`Fault`], built by [`FaultBuilder`],
//! made of a [`Target`], a [`FaultKind`], a probability, an optional limit
//! and a seed.
//!
//! # Probabilities
//!
//! A probability is kept in parts per million, so that it prints as a
//! percentage with at most four decimals and reads back to the same value:
//! `0.3` is `30%`, `0.000_001` is `0.0001%`. The builder rounds to the
//! nearest part per million.

use std::fmt;
use std::time::Duration;

use super::error::FaultError;
use super::target::Target;

/// Parts per million in a probability of 1.
pub(crate) const MILLION: u32 = 1_000_000;

/// How long an injected latency lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delay {
    /// Always the same.
    Fixed(Duration),
    /// Uniformly drawn from `low..=high`, to the nanosecond.
    Uniform {
        /// The shortest.
        low: Duration,
        /// The longest.
        high: Duration,
    },
    /// Drawn from an exponential distribution of this mean (capped at 1,000
    /// times the mean).
    Exponential {
        /// The mean.
        mean: Duration,
    },
}

impl Delay {
    /// One delay, drawn with `rng`.
    pub(crate) fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            Delay::Fixed(delay) => delay,
            Delay::Uniform { low, high } => {
                let low_ns = nanos(low);
                let high_ns = nanos(high).max(low_ns);
                Duration::from_nanos(rng.u64(low_ns..=high_ns))
            }
            Delay::Exponential { mean } => {
                // Inverse transform: −mean·ln(1 − u), u in [0, 1).
                let factor = (-(1.0 - rng.f64()).ln()).min(1_000.0);
                // Saturating: `Duration::mul_f64` panics past `Duration::MAX`,
                // which a long mean reaches (any mean above `Duration::MAX`
                // / 1,000 can).
                Duration::try_from_secs_f64(mean.as_secs_f64() * factor.max(0.0)).unwrap_or(Duration::MAX)
            }
        }
    }

    fn check(&self) -> Result<(), FaultError> {
        let durations = match *self {
            Delay::Fixed(delay) => [delay, delay],
            Delay::Uniform { low, high } => [low, high],
            Delay::Exponential { mean } => [mean, mean],
        };
        if let Some(&delay) = durations.iter().find(|d| d.as_nanos() > u128::from(u64::MAX)) {
            return Err(FaultError::DelayTooLong { delay });
        }
        match *self {
            Delay::Uniform { low, high } if low > high => Err(FaultError::EmptyRange { low, high }),
            _ => Ok(()),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

impl fmt::Display for Delay {
    /// As the spec grammar writes it: `100ms`, `uniform 50ms..200ms`,
    /// `exp 20ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delay::Fixed(delay) => write!(f, "{}", DurationText(*delay)),
            Delay::Uniform { low, high } => {
                write!(f, "uniform {}..{}", DurationText(*low), DurationText(*high))
            }
            Delay::Exponential { mean } => write!(f, "exp {}", DurationText(*mean)),
        }
    }
}

/// A duration in the largest unit that writes it exactly: `2s`, `150ms`,
/// `7us`, `3ns`.
pub(crate) struct DurationText(pub(crate) Duration);

impl fmt::Display for DurationText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        for (unit, size) in [("s", 1_000_000_000), ("ms", 1_000_000), ("us", 1_000)] {
            if ns != 0 && ns % size == 0 {
                return write!(f, "{}{unit}", ns / size);
            }
        }
        write!(f, "{ns}ns")
    }
}

/// Where a fault acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seam {
    /// Where a sender offers a message to the cell's mailbox.
    Send,
    /// Where a worker begins a turn of the cell.
    Turn,
    /// Where a worker is about to run the cell's handler on a message.
    Handle,
    /// Where a cell's storage tree is written or flushed.
    Storage,
    /// Where a cell sets a timer.
    Timer,
}

/// What a fault does to a message (or, for `Stall`, a turn) it hits.
///
/// `Latency`, `Error`, `Panic`, `Drop` and `Duplicate` act where a worker is about to
/// run the cell's handler; `Full` and `Delay` where a sender offers the
/// message to the cell's mailbox (and so does `Drop` on an edge target,
/// whose sender is known only there); `Stall` where a worker begins a turn
/// of the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FaultKind {
    /// The worker waits this long before running the handler; the wait
    /// counts in the handler's measured time.
    Latency(Delay),
    /// The handler is not run; it is as if it returned an error (an
    /// [`InjectedError`](crate::InjectedError)). Supervision reacts as to
    /// a real one.
    Error,
    /// The handler is not run; it is as if it panicked. Supervision reacts
    /// as to a real one.
    Panic,
    /// The message is not handled: it goes to the dead letters with the
    /// cause [`FailureCause::Injected`](crate::FailureCause::Injected).
    Drop,
    /// The message is handled twice: a copy, made by
    /// [`Cell::retain`](crate::Cell::retain), is handled right after it. A
    /// message the cell does not retain cannot be copied, and does not
    /// count as matched.
    Duplicate,
    /// The send is refused as if the mailbox were full:
    /// [`SendError::Full`](crate::SendError::Full) hands the message back,
    /// and the cell's metrics count the rejection.
    Full,
    /// The send succeeds, but the message enters the mailbox only after
    /// this delay, behind what was sent meanwhile: delivery reordered
    /// across senders (and within one).
    Delay(Delay),
    /// The worker stops this long before it begins a turn of the cell: a
    /// stalled consumer. The wait shows as time in queue, not handling
    /// time, and holds up every cell waiting for that worker.
    Stall(Delay),
    /// A write to the cell's storage (insert, update, remove, transaction)
    /// fails with an I/O error
    #[cfg_attr(feature = "storage", doc = "([`StoreError::Io`](crate::StoreError::Io), feature `storage`).")]
    #[cfg_attr(not(feature = "storage"), doc = "(`StoreError::Io`, feature `storage`).")]
    WriteError,
    /// A flush of the cell's storage fails with an I/O error.
    FlushError,
    /// A flush of the cell's storage takes this much longer.
    SlowFlush(Delay),
    /// A timer the cell sets ([`Context::send_after`](crate::Context::send_after),
    /// [`Context::send_interval`](crate::Context::send_interval)) fires
    /// this much later (an interval's period is stretched by it).
    TimerSkew(Delay),
}

impl FaultKind {
    fn delay(self) -> Option<Delay> {
        match self {
            FaultKind::Latency(delay)
            | FaultKind::Delay(delay)
            | FaultKind::Stall(delay)
            | FaultKind::SlowFlush(delay)
            | FaultKind::TimerSkew(delay) => Some(delay),
            _ => None,
        }
    }

    /// The fault's name in the spec grammar.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Latency(_) => "latency",
            FaultKind::Error => "error",
            FaultKind::Panic => "panic",
            FaultKind::Drop => "drop",
            FaultKind::Full => "full",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Delay(_) => "delay",
            FaultKind::Stall(_) => "stall",
            FaultKind::WriteError => "write_error",
            FaultKind::FlushError => "flush_error",
            FaultKind::SlowFlush(_) => "slow_flush",
            FaultKind::TimerSkew(_) => "timer_skew",
        }
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultKind::Latency(delay)
            | FaultKind::Delay(delay)
            | FaultKind::Stall(delay)
            | FaultKind::SlowFlush(delay)
            | FaultKind::TimerSkew(delay) => write!(f, "{}({delay})", self.name()),
            other => f.write_str(other.name()),
        }
    }
}

/// One fault: what it does ([`FaultKind`]), to which messages
/// ([`Target`]), with which probability, at most how many times, and from
/// which seed its draws come.
///
/// The same seed and the same order of matching messages give the same
/// injections. Without a seed, one is drawn when the fault is installed and
/// reported with it, so a run can be replayed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Delay, Fault, FaultKind, Target};
///
/// let slow_inventory = Fault::builder(
///     Target::cells("/inventory")?,
///     FaultKind::Latency(Delay::Uniform { low: Duration::from_millis(50), high: Duration::from_millis(200) }),
/// )
/// .probability(0.3)
/// .seed(7)
/// .build()?;
/// assert_eq!(slow_inventory.to_string(), "/inventory: 30% latency(uniform 50ms..200ms) seed=7");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fault {
    pub(crate) target: Target,
    pub(crate) kind: FaultKind,
    pub(crate) ppm: u32,
    pub(crate) limit: Option<u64>,
    pub(crate) seed: Option<u64>,
}

impl Fault {
    /// A builder for a fault of `kind` on `target`, with probability 1, no
    /// limit and no seed.
    pub fn builder(target: Target, kind: FaultKind) -> FaultBuilder {
        FaultBuilder { target, kind, probability: 1.0, limit: None, seed: None }
    }

    /// Where it applies.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// What it does.
    pub fn kind(&self) -> FaultKind {
        self.kind
    }

    /// Its probability, from 0 to 1.
    pub fn probability(&self) -> f64 {
        f64::from(self.ppm) / f64::from(MILLION)
    }

    /// The most injections it makes, if limited.
    pub fn limit(&self) -> Option<u64> {
        self.limit
    }

    /// Its seed, if one was given.
    pub fn seed(&self) -> Option<u64> {
        self.seed
    }

    /// Where it acts.
    pub(crate) fn seam(&self) -> Seam {
        match self.kind {
            FaultKind::Full | FaultKind::Delay(_) => Seam::Send,
            FaultKind::Drop if self.target.is_edge() => Seam::Send,
            FaultKind::Stall(_) => Seam::Turn,
            FaultKind::WriteError | FaultKind::FlushError | FaultKind::SlowFlush(_) => Seam::Storage,
            FaultKind::TimerSkew(_) => Seam::Timer,
            _ => Seam::Handle,
        }
    }

    /// This fault with another probability, in parts per million (for
    /// ramps, which scale intensity).
    pub(crate) fn with_ppm(&self, ppm: u32) -> Fault {
        Fault { ppm: ppm.min(MILLION), ..self.clone() }
    }
}

impl fmt::Display for Fault {
    /// As the spec grammar writes it: `target: [p%] kind [limit=n] [seed=n]`,
    /// the probability left out when it is 100 %.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.target)?;
        if self.ppm != MILLION {
            write!(f, "{} ", PercentText(self.ppm))?;
        }
        write!(f, "{}", self.kind)?;
        if let Some(limit) = self.limit {
            write!(f, " limit={limit}")?;
        }
        if let Some(seed) = self.seed {
            write!(f, " seed={seed}")?;
        }
        Ok(())
    }
}

/// Parts per million as a percentage: `30%`, `0.5%`, `0.0001%`.
pub(crate) struct PercentText(pub(crate) u32);

impl fmt::Display for PercentText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 10_000;
        let fraction = self.0 % 10_000;
        if fraction == 0 {
            return write!(f, "{whole}%");
        }
        let digits = format!("{fraction:04}");
        write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
    }
}

/// Builds a [`Fault`]; see [`Fault::builder`].
#[derive(Clone, Debug)]
pub struct FaultBuilder {
    target: Target,
    kind: FaultKind,
    probability: f64,
    limit: Option<u64>,
    seed: Option<u64>,
}

impl FaultBuilder {
    /// The chance, from 0 to 1, that a matching message is hit (rounded to
    /// a part per million).
    ///
    /// # Default
    ///
    /// 1: every matching message.
    pub fn probability(&mut self, probability: f64) -> &mut Self {
        self.probability = probability;
        self
    }

    /// The most messages the fault hits; after that it matches but does
    /// nothing.
    ///
    /// # Default
    ///
    /// No limit.
    pub fn limit(&mut self, limit: u64) -> &mut Self {
        self.limit = Some(limit);
        self
    }

    /// The seed of the fault's random draws (whether a message is hit, how
    /// long a latency lasts).
    ///
    /// # Default
    ///
    /// None: one is drawn at installation and reported.
    pub fn seed(&mut self, seed: u64) -> &mut Self {
        self.seed = Some(seed);
        self
    }

    /// The fault.
    ///
    /// # Errors
    ///
    /// [`FaultError::Probability`] outside `0..=1` (or NaN),
    /// [`FaultError::ZeroLimit`], [`FaultError::DelayTooLong`] for a delay
    /// of 2^64 nanoseconds or more, [`FaultError::EmptyRange`] for a uniform
    /// delay whose low end is above its high end,
    /// [`FaultError::EdgeOutsideSend`] for an edge target on a fault that
    /// does not act where messages are sent (only `drop`, `full` and
    /// `delay` do), [`FaultError::StallOfMessageKind`] for a stall whose
    /// target names a message kind (a stall acts on a turn),
    /// [`FaultError::StorageByPathOnly`] for a storage fault whose target
    /// names a cell type or message kind (a storage tree has only a path).
    pub fn build(&self) -> Result<Fault, FaultError> {
        if !(0.0..=1.0).contains(&self.probability) {
            return Err(FaultError::Probability { value: self.probability });
        }
        if self.limit == Some(0) {
            return Err(FaultError::ZeroLimit);
        }
        if let Some(delay) = self.kind.delay() {
            delay.check()?;
        }
        let at_send = matches!(self.kind, FaultKind::Drop | FaultKind::Full | FaultKind::Delay(_));
        if self.target.is_edge() && !at_send {
            return Err(FaultError::EdgeOutsideSend { kind: self.kind.name() });
        }
        if matches!(self.kind, FaultKind::Stall(_)) && self.target.message_kind_name().is_some() {
            return Err(FaultError::StallOfMessageKind);
        }
        let storage =
            matches!(self.kind, FaultKind::WriteError | FaultKind::FlushError | FaultKind::SlowFlush(_));
        let by_path_only =
            self.target.cell_type_name().is_none() && self.target.message_kind_name().is_none();
        if storage && !by_path_only {
            return Err(FaultError::StorageByPathOnly { kind: self.kind.name() });
        }
        // In 0..=1 × 10⁶: the cast is exact after rounding.
        let ppm = (self.probability * f64::from(MILLION)).round() as u32;
        Ok(Fault { target: self.target.clone(), kind: self.kind, ppm, limit: self.limit, seed: self.seed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn probability_outside_zero_to_one_is_refused() {
        for value in [-0.1, 1.5, f64::NAN] {
            let err =
                Fault::builder(Target::every(), FaultKind::Drop).probability(value).build().unwrap_err();
            assert!(matches!(err, FaultError::Probability { .. }), "{value}");
        }
        assert!(Fault::builder(Target::every(), FaultKind::Drop).probability(0.0).build().is_ok());
        assert!(Fault::builder(Target::every(), FaultKind::Drop).probability(1.0).build().is_ok());
    }

    #[test]
    fn zero_limit_and_inverted_range_are_refused() {
        assert_eq!(
            Fault::builder(Target::every(), FaultKind::Error).limit(0).build(),
            Err(FaultError::ZeroLimit)
        );
        let inverted = FaultKind::Latency(Delay::Uniform { low: ms(9), high: ms(3) });
        assert_eq!(
            Fault::builder(Target::every(), inverted).build(),
            Err(FaultError::EmptyRange { low: ms(9), high: ms(3) })
        );
    }

    #[test]
    fn edges_take_only_faults_that_act_where_messages_are_sent() {
        let edge = || Target::edge("/gateway", "/fraud").unwrap();
        for kind in [FaultKind::Drop, FaultKind::Full, FaultKind::Delay(Delay::Fixed(ms(1)))] {
            assert_eq!(Fault::builder(edge(), kind).build().unwrap().seam(), Seam::Send);
        }
        assert_eq!(
            Fault::builder(edge(), FaultKind::Error).build(),
            Err(FaultError::EdgeOutsideSend { kind: "error" })
        );
        let drop = Fault::builder(Target::cells("/fraud").unwrap(), FaultKind::Drop).build().unwrap();
        assert_eq!(drop.seam(), Seam::Handle);
    }

    #[test]
    fn storage_faults_target_cells_by_path_only() {
        let target = Target::cells("/a").unwrap().message_kind("M").unwrap();
        assert_eq!(
            Fault::builder(target, FaultKind::WriteError).build(),
            Err(FaultError::StorageByPathOnly { kind: "write_error" })
        );
        let fault = Fault::builder(Target::cells("/a").unwrap(), FaultKind::FlushError).build().unwrap();
        assert_eq!(fault.seam(), Seam::Storage);
    }

    #[test]
    fn a_stall_cannot_target_a_message_kind() {
        let target = Target::cells("/a").unwrap().message_kind("M").unwrap();
        let stall = FaultKind::Stall(Delay::Fixed(ms(1)));
        assert_eq!(Fault::builder(target, stall).build(), Err(FaultError::StallOfMessageKind));
    }

    #[test]
    fn durations_print_in_the_largest_exact_unit() {
        assert_eq!(DurationText(Duration::from_secs(2)).to_string(), "2s");
        assert_eq!(DurationText(ms(1500)).to_string(), "1500ms");
        assert_eq!(DurationText(Duration::from_micros(7)).to_string(), "7us");
        assert_eq!(DurationText(Duration::from_nanos(3)).to_string(), "3ns");
        assert_eq!(DurationText(Duration::ZERO).to_string(), "0ns");
    }

    #[test]
    fn percentages_print_without_trailing_zeros() {
        assert_eq!(PercentText(300_000).to_string(), "30%");
        assert_eq!(PercentText(5_000).to_string(), "0.5%");
        assert_eq!(PercentText(1).to_string(), "0.0001%");
        assert_eq!(PercentText(0).to_string(), "0%");
    }

    #[test]
    fn delays_stay_within_their_range_and_repeat_with_the_seed() {
        let uniform = Delay::Uniform { low: ms(50), high: ms(200) };
        let draw = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (0..100).map(|_| uniform.sample(&mut rng)).collect::<Vec<_>>()
        };
        assert!(draw(1).iter().all(|d| (ms(50)..=ms(200)).contains(d)));
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
        let mut rng = fastrand::Rng::with_seed(3);
        assert_eq!(Delay::Fixed(ms(5)).sample(&mut rng), ms(5));
        assert!(Delay::Exponential { mean: ms(1) }.sample(&mut rng) <= ms(1000));
    }

    #[test]
    fn an_exponential_delay_with_the_longest_mean_saturates_instead_of_overflowing() {
        let longest = Delay::Exponential { mean: Duration::MAX };
        let mut rng = fastrand::Rng::with_seed(5);
        let draws: Vec<Duration> = (0..100).map(|_| longest.sample(&mut rng)).collect();
        let saturated = draws.iter().filter(|d| **d == Duration::MAX).count();
        // A draw above the mean (factor > 1) is capped at `Duration::MAX`:
        // about 1 in e of them.
        assert!((20..=50).contains(&saturated), "{saturated} of 100 saturated");
        assert!(draws.iter().all(|d| *d > Duration::ZERO));
    }
}
