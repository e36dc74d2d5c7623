//! [`ExponentialBackoff`]: how long to wait before each retry.
//!
//! The delay before retry `n` (counting from 1) is
//! `min(max, initial × multiplierⁿ⁻¹)`, then spread by a [`Jitter`] as in
//! "Exponential Backoff And Jitter" (Marc Brooker, AWS Architecture Blog,
//! 2015, <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>):
//! clients that failed together should not all retry together.

use std::time::Duration;

use super::error::BackoffError;

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How a backoff delay is spread at random.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Jitter {
    /// No spread: the delay is exactly the capped exponential.
    None,
    /// "Full jitter": uniform between zero and the capped exponential.
    /// Spreads retries the most; AWS's measurements favour it.
    #[default]
    Full,
    /// "Equal jitter": half the capped exponential, plus a uniform share of
    /// the other half. Never waits less than half the delay.
    Equal,
}

/// Delays that grow by a multiplier from an initial value up to a maximum,
/// spread by a [`Jitter`].
///
/// # Default
///
/// Multiplier 2, [`Jitter::Full`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{ExponentialBackoff, Jitter};
///
/// let backoff = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1))?
///     .jitter(Jitter::None);
/// assert_eq!(backoff.delay(1), Duration::from_millis(100));
/// assert_eq!(backoff.delay(2), Duration::from_millis(200));
/// assert_eq!(backoff.delay(4), Duration::from_millis(800));
/// assert_eq!(backoff.delay(5), Duration::from_secs(1)); // capped
/// # Ok::<(), cellrt::BackoffError>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ExponentialBackoff {
    initial: Duration,
    max: Duration,
    multiplier: f64,
    jitter: Jitter,
}

impl ExponentialBackoff {
    /// A backoff starting at `initial` and never exceeding `max`.
    ///
    /// # Errors
    ///
    /// [`BackoffError::ZeroInitial`] when `initial` is zero,
    /// [`BackoffError::MaxBelowInitial`] when `max < initial`.
    pub fn new(initial: Duration, max: Duration) -> Result<Self, BackoffError> {
        if initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if max < initial {
            return Err(BackoffError::MaxBelowInitial { initial, max });
        }
        Ok(ExponentialBackoff { initial, max, multiplier: 2.0, jitter: Jitter::default() })
    }

    /// How much each delay grows over the previous one. `1` gives a
    /// constant delay.
    ///
    /// # Errors
    ///
    /// [`BackoffError::InvalidMultiplier`] unless `multiplier` is finite and
    /// at least 1.
    pub fn multiplier(mut self, multiplier: f64) -> Result<Self, BackoffError> {
        if !multiplier.is_finite() || multiplier < 1.0 {
            return Err(BackoffError::InvalidMultiplier { multiplier });
        }
        self.multiplier = multiplier;
        Ok(self)
    }

    /// How delays are spread at random.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retry `attempt` (1 is the first retry), with jitter
    /// drawn from the thread's random generator. Attempt 0 is the first
    /// try, which waits for nothing.
    pub fn delay(&self, attempt: u32) -> Duration {
        // `Rng::new` seeds a generator from the thread's one: no lock, no
        // shared state between threads.
        self.delay_with(attempt, &mut fastrand::Rng::new())
    }

    /// [`delay`](ExponentialBackoff::delay) with jitter drawn from `rng`:
    /// seed it for a reproducible sequence.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{ExponentialBackoff, Jitter};
    ///
    /// let backoff = ExponentialBackoff::new(Duration::from_millis(10), Duration::from_secs(1))?
    ///     .jitter(Jitter::Equal);
    /// let first = backoff.delay_with(3, &mut fastrand::Rng::with_seed(7));
    /// let again = backoff.delay_with(3, &mut fastrand::Rng::with_seed(7));
    /// assert_eq!(first, again);
    /// assert!(first >= Duration::from_millis(20) && first <= Duration::from_millis(40));
    /// # Ok::<(), cellrt::BackoffError>(())
    /// ```
    pub fn delay_with(&self, attempt: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(attempt);
        match self.jitter {
            Jitter::None => ceiling,
            Jitter::Full => from_nanos(rng.u128(0..=ceiling.as_nanos())),
            Jitter::Equal => {
                let nanos = ceiling.as_nanos();
                let half = nanos / 2;
                from_nanos(nanos - half + rng.u128(0..=half))
            }
        }
    }

    /// The delay before retry `attempt` without jitter: the most any
    /// jitter can give.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        if attempt == 0 {
            return Duration::ZERO;
        }
        // The first retry, and every retry of a constant backoff, waits
        // the initial delay exactly: through `f64`, a delay of more than
        // 2^53 ns (about 104 days) would come back rounded.
        if attempt == 1 || self.multiplier == 1.0 {
            return self.initial;
        }
        // `powi` takes an i32; past 2^31 retries the power is infinite for
        // any multiplier above 1 and exactly 1 for a multiplier of 1.
        let exponent = i32::try_from(attempt - 1).unwrap_or(i32::MAX);
        let nanos = self.initial.as_nanos() as f64 * self.multiplier.powi(exponent);
        if !nanos.is_finite() || nanos >= self.max.as_nanos() as f64 {
            return self.max;
        }
        // Below `max`, so it fits a Duration; rounded to the nanosecond.
        from_nanos(nanos.round() as u128).min(self.max)
    }
}

/// A `Duration` of `nanos` nanoseconds; saturates at `Duration::MAX`.
fn from_nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    Duration::new(secs, (nanos % NANOS_PER_SEC) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn exact(initial: Duration, max: Duration) -> ExponentialBackoff {
        ExponentialBackoff::new(initial, max).expect("valid backoff").jitter(Jitter::None)
    }

    #[test]
    fn delays_double_from_the_initial_delay_and_stop_at_the_maximum() {
        let backoff = exact(100 * MS, 1000 * MS);
        let delays: Vec<Duration> = (1..=6).map(|n| backoff.delay(n)).collect();
        assert_eq!(delays, [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]);
    }

    #[test]
    fn a_fractional_multiplier_grows_the_delay_by_that_factor() {
        let backoff = exact(100 * MS, 1000 * MS).multiplier(1.5).expect("valid multiplier");
        let delays: Vec<Duration> = (1..=7).map(|n| backoff.delay(n)).collect();
        assert_eq!(
            delays,
            [
                100 * MS,
                150 * MS,
                225 * MS,
                Duration::from_micros(337_500),
                Duration::from_micros(506_250),
                Duration::from_micros(759_375),
                1000 * MS
            ]
        );
    }

    #[test]
    fn a_delay_too_long_for_an_f64_of_nanoseconds_is_kept_exact_where_it_does_not_grow() {
        // 21,285,167.448366093 s: above 2^53 ns, rounded when it goes
        // through an f64.
        let long = Duration::new(21_285_167, 448_366_093);
        let backoff = exact(long, Duration::MAX);
        assert_eq!((backoff.delay(1), backoff.ceiling(1)), (long, long));
        let constant = backoff.clone().multiplier(1.0).expect("valid multiplier");
        assert_eq!(constant.delay(u32::MAX), long);
    }

    #[test]
    fn a_multiplier_of_one_gives_a_constant_delay() {
        let backoff = exact(30 * MS, 1000 * MS).multiplier(1.0).expect("valid multiplier");
        assert_eq!(backoff.delay(1), 30 * MS);
        assert_eq!(backoff.delay(1000), 30 * MS);
        assert_eq!(backoff.delay(u32::MAX), 30 * MS);
    }

    #[test]
    fn the_first_try_waits_for_nothing() {
        assert_eq!(exact(100 * MS, 1000 * MS).delay(0), Duration::ZERO);
        let jittered = ExponentialBackoff::new(100 * MS, 1000 * MS).expect("valid backoff");
        assert_eq!(jittered.delay(0), Duration::ZERO);
    }

    #[test]
    fn huge_attempt_numbers_stay_at_the_maximum_without_overflow() {
        let backoff = exact(100 * MS, Duration::from_secs(30));
        assert_eq!(backoff.delay(64), Duration::from_secs(30));
        assert_eq!(backoff.delay(1000), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
        let widest = exact(Duration::from_nanos(1), Duration::MAX);
        assert_eq!(widest.delay(u32::MAX), Duration::MAX);
        assert_eq!(widest.delay(31), Duration::from_nanos(1 << 30));
    }

    #[test]
    fn an_initial_delay_equal_to_the_maximum_is_constant() {
        let backoff = exact(50 * MS, 50 * MS);
        assert_eq!(backoff.delay(1), 50 * MS);
        assert_eq!(backoff.delay(9), 50 * MS);
    }

    #[test]
    fn a_zero_initial_delay_is_refused() {
        let err = ExponentialBackoff::new(Duration::ZERO, MS).expect_err("zero initial");
        assert_eq!(err, BackoffError::ZeroInitial);
        assert_eq!(err.to_string(), "the initial backoff delay must be greater than zero");
    }

    #[test]
    fn a_maximum_below_the_initial_delay_is_refused() {
        let err = ExponentialBackoff::new(2 * MS, MS).expect_err("max below initial");
        assert_eq!(err, BackoffError::MaxBelowInitial { initial: 2 * MS, max: MS });
        assert_eq!(
            err.to_string(),
            "the maximum backoff delay (1ms) must be at least the initial delay (2ms)"
        );
    }

    #[test]
    fn multipliers_below_one_or_not_finite_are_refused() {
        for multiplier in [0.999, 0.0, -2.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = exact(MS, MS).multiplier(multiplier).expect_err("invalid multiplier");
            match err {
                BackoffError::InvalidMultiplier { multiplier: given } => {
                    assert!(given.to_bits() == multiplier.to_bits(), "{given} != {multiplier}");
                }
                other => panic!("unexpected error {other:?}"),
            }
        }
        let err = exact(MS, MS).multiplier(0.5).expect_err("below one");
        assert_eq!(err.to_string(), "the backoff multiplier must be finite and at least 1, got 0.5");
    }

    #[test]
    fn the_default_is_full_jitter_with_multiplier_two() {
        let backoff = ExponentialBackoff::new(MS, 10 * MS).expect("valid backoff");
        assert_eq!(backoff, exact(MS, 10 * MS).multiplier(2.0).expect("valid").jitter(Jitter::Full));
    }

    #[test]
    fn a_seeded_generator_gives_the_same_jittered_sequence() {
        let backoff = ExponentialBackoff::new(10 * MS, 1000 * MS).expect("valid backoff");
        let run = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (1..=8).map(|n| backoff.delay_with(n, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    proptest! {
        #[test]
        fn full_jitter_stays_between_zero_and_the_capped_delay(
            initial_us in 1_u64..1_000_000,
            extra_us in 0_u64..10_000_000,
            attempt in 0_u32..2000,
            seed in any::<u64>(),
        ) {
            let initial = Duration::from_micros(initial_us);
            let max = initial + Duration::from_micros(extra_us);
            let backoff = ExponentialBackoff::new(initial, max).expect("valid").jitter(Jitter::Full);
            let delay = backoff.delay_with(attempt, &mut fastrand::Rng::with_seed(seed));
            prop_assert!(delay <= backoff.ceiling(attempt));
            prop_assert!(delay <= max);
        }

        #[test]
        fn equal_jitter_stays_between_half_and_all_of_the_capped_delay(
            initial_us in 1_u64..1_000_000,
            extra_us in 0_u64..10_000_000,
            attempt in 0_u32..2000,
            seed in any::<u64>(),
        ) {
            let initial = Duration::from_micros(initial_us);
            let max = initial + Duration::from_micros(extra_us);
            let backoff = ExponentialBackoff::new(initial, max).expect("valid").jitter(Jitter::Equal);
            let delay = backoff.delay_with(attempt, &mut fastrand::Rng::with_seed(seed));
            let ceiling = backoff.ceiling(attempt);
            prop_assert!(delay <= ceiling);
            prop_assert!(delay >= ceiling / 2);
        }

        #[test]
        fn without_jitter_delays_never_shrink_and_never_pass_the_maximum(
            initial_us in 1_u64..1_000_000,
            extra_us in 0_u64..10_000_000,
            multiplier in 1.0_f64..10.0,
            attempt in 1_u32..u32::MAX,
        ) {
            let initial = Duration::from_micros(initial_us);
            let max = initial + Duration::from_micros(extra_us);
            let backoff = ExponentialBackoff::new(initial, max)
                .expect("valid")
                .multiplier(multiplier)
                .expect("valid")
                .jitter(Jitter::None);
            let delay = backoff.delay(attempt);
            prop_assert!(delay >= initial);
            prop_assert!(delay <= max);
            prop_assert!(backoff.delay(attempt + 1) >= delay);
        }
    }
}
