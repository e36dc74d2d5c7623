//! [`RetryBudget`]: how many retries all the callers sharing it may make.
//!
//! A budget in the manner of Finagle's `RetryBudget` and tower's
//! `retry::budget::TpsBudget`: every original request *deposits*, every retry
//! *withdraws*, and within any window of `ttl` the retries granted never
//! exceed
//!
//! ```text
//! min_per_sec × ttl_secs  +  retry_ratio × requests deposited within ttl
//! ```
//!
//! The floor lets a quiet service retry at all; the ratio keeps a failing
//! dependency from receiving `max_attempts` times its normal load (a retry
//! storm) when every caller retries at once.
//!
//! # Window
//!
//! The window is a ring of [`BUCKETS`] buckets, each `ttl / BUCKETS` wide,
//! holding the deposits and the withdrawals made while it was current. A
//! bucket is forgotten once `BUCKETS` newer buckets began: a deposit or a
//! withdrawal counts for at least `ttl × (BUCKETS − 1) / BUCKETS` and at most
//! `ttl`. Sub-second windows work the same way (down to [`MIN_TTL`]).
//!
//! # Arithmetic
//!
//! Counts are kept in thousandths of a retry, so the ratio is resolved to
//! 1/1000 and `floor + ratio × requests` is exact: a ratio of 0.2 over 100
//! requests allows exactly 20 retries, never 19.999….

use std::fmt;
use std::time::{Duration, Instant};

use crate::sync::{Arc, Mutex};

use super::error::RetryBudgetError;

/// Buckets in a budget's window.
pub(crate) const BUCKETS: usize = 10;
/// The shortest window a budget accepts.
pub(crate) const MIN_TTL: Duration = Duration::from_millis(1);
/// The longest window a budget accepts.
pub(crate) const MAX_TTL: Duration = Duration::from_secs(60);
/// The largest retry ratio a budget accepts.
pub(crate) const MAX_RETRY_RATIO: f64 = 1000.0;
/// Thousandths of a retry in one retry.
const MILLI: u64 = 1000;

/// Totals of a [`RetryBudget`] since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryBudgetStats {
    /// Requests deposited.
    pub requests: u64,
    /// Retries granted.
    pub retries: u64,
    /// Retries refused.
    pub refused: u64,
}

/// A shared allowance of retries, earned by requests.
///
/// Clones share one budget: give every caller of a dependency a clone, and
/// their retries together stay within the allowance. See the `retry` module
/// docs above for the formula and the window.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::RetryBudget;
///
/// // No floor; one retry for every five requests.
/// let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2)?;
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw()); // 0.2 × 10 = 2 retries
/// let stats = budget.stats();
/// assert_eq!((stats.requests, stats.retries, stats.refused), (10, 2, 1));
/// # Ok::<(), cellrt::RetryBudgetError>(())
/// ```
#[derive(Clone)]
pub struct RetryBudget {
    inner: Arc<BudgetInner>,
}

struct BudgetInner {
    ttl: Duration,
    min_per_sec: u32,
    retry_ratio: f64,
    /// `ttl / BUCKETS`, in nanoseconds (at least 100 µs).
    bucket_nanos: u128,
    /// `min_per_sec × ttl`, in thousandths of a retry.
    reserve: u64,
    /// `retry_ratio`, in thousandths of a retry per request.
    ratio: u64,
    /// Epochs are counted from here.
    origin: Instant,
    window: Mutex<Window>,
}

/// The ring of buckets and the totals. Only touched under the lock.
#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    stats: RetryBudgetStats,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// The bucket's epoch: `(now − origin) / bucket width` when it was
    /// current. Counts in a bucket of an older epoch than the ring slot's
    /// current one are stale.
    epoch: u64,
    deposits: u64,
    withdrawals: u64,
}

impl RetryBudget {
    /// A budget granting, within any window of `ttl`, `min_per_sec × ttl`
    /// retries plus `retry_ratio` retries per request deposited.
    ///
    /// # Errors
    ///
    /// [`RetryBudgetError::TtlOutOfRange`] unless `ttl` is within 1 ms and
    /// 60 s; [`RetryBudgetError::InvalidRetryRatio`] unless `retry_ratio` is
    /// finite and within 0 and 1000.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_ratio: f64) -> Result<Self, RetryBudgetError> {
        RetryBudget::new_at(ttl, min_per_sec, retry_ratio, Instant::now())
    }

    fn new_at(
        ttl: Duration,
        min_per_sec: u32,
        retry_ratio: f64,
        origin: Instant,
    ) -> Result<Self, RetryBudgetError> {
        if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
            return Err(RetryBudgetError::TtlOutOfRange { ttl });
        }
        if !retry_ratio.is_finite() || !(0.0..=MAX_RETRY_RATIO).contains(&retry_ratio) {
            return Err(RetryBudgetError::InvalidRetryRatio { ratio: retry_ratio });
        }
        // Thousandths of a retry: min_per_sec × ttl_nanos / 10⁶, at most
        // u32::MAX × 6·10⁴ ≈ 2.6·10¹⁴, which fits.
        let reserve = u128::from(min_per_sec) * ttl.as_nanos() / 1_000_000;
        let reserve = u64::try_from(reserve).unwrap_or(u64::MAX);
        Ok(RetryBudget {
            inner: Arc::new(BudgetInner {
                ttl,
                min_per_sec,
                retry_ratio,
                bucket_nanos: ttl.as_nanos() / BUCKETS as u128,
                reserve,
                ratio: (retry_ratio * MILLI as f64).round() as u64,
                origin,
                window: Mutex::new(Window {
                    buckets: [Bucket::default(); BUCKETS],
                    stats: Default::default(),
                }),
            }),
        })
    }

    /// Records one original request (not a retry): it earns `retry_ratio`
    /// retries for the next `ttl`.
    pub fn deposit(&self) {
        self.deposit_at(Instant::now());
    }

    /// Takes one retry from the budget: `true` when granted, `false` (and
    /// counted as refused) when the window's retries are used up.
    pub fn try_withdraw(&self) -> bool {
        self.try_withdraw_at(Instant::now())
    }

    /// Totals since the budget was created, shared by all clones.
    pub fn stats(&self) -> RetryBudgetStats {
        self.inner.window.lock().stats
    }

    /// The window given to [`new`](RetryBudget::new).
    pub fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    /// The floor given to [`new`](RetryBudget::new), in retries per second.
    pub fn min_per_sec(&self) -> u32 {
        self.inner.min_per_sec
    }

    /// The ratio given to [`new`](RetryBudget::new).
    pub fn retry_ratio(&self) -> f64 {
        self.inner.retry_ratio
    }

    pub(crate) fn deposit_at(&self, now: Instant) {
        let epoch = self.inner.epoch(now);
        let mut window = self.inner.window.lock();
        window.current(epoch).deposits += 1;
        window.stats.requests += 1;
    }

    pub(crate) fn try_withdraw_at(&self, now: Instant) -> bool {
        let epoch = self.inner.epoch(now);
        let mut window = self.inner.window.lock();
        let (deposits, withdrawals) = window.live_counts(epoch);
        let allowed = self.inner.reserve.saturating_add(self.inner.ratio.saturating_mul(deposits));
        if withdrawals.saturating_add(1).saturating_mul(MILLI) > allowed {
            window.stats.refused += 1;
            return false;
        }
        window.current(epoch).withdrawals += 1;
        window.stats.retries += 1;
        true
    }
}

impl BudgetInner {
    /// The bucket epoch `now` falls in; instants before the origin fall in
    /// epoch 0.
    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(elapsed / self.bucket_nanos).unwrap_or(u64::MAX)
    }
}

impl Window {
    /// The bucket of `epoch`, emptied first if it held an older epoch.
    fn current(&mut self, epoch: u64) -> &mut Bucket {
        let bucket = &mut self.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket { epoch, deposits: 0, withdrawals: 0 };
        }
        bucket
    }

    /// Deposits and withdrawals in the buckets of the last `BUCKETS` epochs,
    /// `epoch` included.
    fn live_counts(&self, epoch: u64) -> (u64, u64) {
        let oldest = epoch.saturating_sub(BUCKETS as u64 - 1);
        self.buckets
            .iter()
            .filter(|bucket| (oldest..=epoch).contains(&bucket.epoch))
            .fold((0, 0), |(d, w), bucket| (d + bucket.deposits, w + bucket.withdrawals))
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("ttl", &self.inner.ttl)
            .field("min_per_sec", &self.inner.min_per_sec)
            .field("retry_ratio", &self.inner.retry_ratio)
            .field("stats", &self.stats())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);

    fn budget(ttl: Duration, min_per_sec: u32, ratio: f64, origin: Instant) -> RetryBudget {
        RetryBudget::new_at(ttl, min_per_sec, ratio, origin).expect("valid budget")
    }

    /// Withdraws until refused; returns the retries granted.
    fn drain(budget: &RetryBudget, now: Instant) -> u64 {
        let mut granted = 0;
        while budget.try_withdraw_at(now) {
            granted += 1;
        }
        granted
    }

    #[test]
    fn grants_exactly_the_floor_plus_the_ratio_of_requests_then_refuses() {
        let t0 = Instant::now();
        let budget = budget(SEC, 10, 0.2, t0);
        for _ in 0..100 {
            budget.deposit_at(t0);
        }
        assert_eq!(drain(&budget, t0), 30);
        assert!(!budget.try_withdraw_at(t0));
        assert_eq!(budget.stats(), RetryBudgetStats { requests: 100, retries: 30, refused: 2 });
    }

    #[test]
    fn a_retry_storm_is_bounded_to_the_budget() {
        // 100 requests, each retried up to 100 times: 10,000 retries tried.
        let t0 = Instant::now();
        let budget = budget(SEC, 10, 0.2, t0);
        let mut granted = 0_u64;
        for request in 0..100_u32 {
            let now = t0 + Duration::from_millis(u64::from(request) * 5);
            budget.deposit_at(now);
            for _ in 0..100 {
                if budget.try_withdraw_at(now) {
                    granted += 1;
                }
            }
        }
        // Everything happened within 500 ms of a 1 s window: floor 10 plus
        // 0.2 × 100 requests.
        assert_eq!(granted, 30);
        assert_eq!(budget.stats(), RetryBudgetStats { requests: 100, retries: 30, refused: 9_970 });
    }

    #[test]
    fn the_floor_alone_grants_min_per_sec_times_the_window() {
        let t0 = Instant::now();
        assert_eq!(drain(&budget(SEC, 10, 0.0, t0), t0), 10);
        assert_eq!(drain(&budget(2 * SEC, 10, 0.0, t0), t0), 20);
        assert_eq!(drain(&budget(100 * MS, 10, 0.0, t0), t0), 1);
        assert_eq!(drain(&budget(50 * MS, 10, 0.0, t0), t0), 0);
        assert_eq!(drain(&budget(SEC, 0, 0.0, t0), t0), 0);
    }

    #[test]
    fn a_fractional_allowance_rounds_down_to_whole_retries() {
        let t0 = Instant::now();
        let budget = budget(SEC, 0, 0.29, t0);
        for _ in 0..100 {
            budget.deposit_at(t0);
        }
        // 0.29 × 100 is 29 exactly, not 28.999….
        assert_eq!(drain(&budget, t0), 29);
        let budget = self::budget(SEC, 0, 0.25, t0);
        for _ in 0..7 {
            budget.deposit_at(t0);
        }
        assert_eq!(drain(&budget, t0), 1);
    }

    #[test]
    fn deposits_expire_after_the_window() {
        let t0 = Instant::now();
        let budget = budget(SEC, 0, 1.0, t0);
        for _ in 0..5 {
            budget.deposit_at(t0);
        }
        // Still within the window: 899 ms later, the deposits count.
        assert!(budget.try_withdraw_at(t0 + 899 * MS));
        // A window later they are gone.
        assert!(!budget.try_withdraw_at(t0 + SEC));
        // A new deposit counts; the withdrawal at 899 ms expires by 1800 ms.
        budget.deposit_at(t0 + SEC);
        assert_eq!(drain(&budget, t0 + 1800 * MS), 1);
        assert_eq!(budget.stats(), RetryBudgetStats { requests: 6, retries: 2, refused: 2 });
    }

    #[test]
    fn withdrawals_expire_with_the_window_so_the_floor_refills() {
        let t0 = Instant::now();
        let budget = budget(SEC, 3, 0.0, t0);
        assert_eq!(drain(&budget, t0), 3);
        assert_eq!(drain(&budget, t0 + 500 * MS), 0);
        assert_eq!(drain(&budget, t0 + SEC), 3);
        assert_eq!(budget.stats(), RetryBudgetStats { requests: 0, retries: 6, refused: 3 });
    }

    #[test]
    fn only_the_buckets_within_the_window_count() {
        let t0 = Instant::now();
        let budget = budget(SEC, 0, 1.0, t0);
        // One deposit in each 100 ms bucket from 0 ms to 900 ms.
        for bucket in 0..10_u32 {
            budget.deposit_at(t0 + bucket * 100 * MS);
        }
        // At 1250 ms the deposits of 0, 100 and 200 ms are more than a
        // window old: 7 remain.
        assert_eq!(drain(&budget, t0 + 1250 * MS), 7);
    }

    #[test]
    fn a_sub_second_window_works_the_same_way() {
        let t0 = Instant::now();
        let budget = budget(10 * MS, 0, 0.5, t0);
        for _ in 0..4 {
            budget.deposit_at(t0);
        }
        assert_eq!(drain(&budget, t0 + 5 * MS), 2);
        assert_eq!(drain(&budget, t0 + 10 * MS), 0);
        let shortest = self::budget(MS, 0, 1.0, t0);
        shortest.deposit_at(t0);
        assert!(shortest.try_withdraw_at(t0 + Duration::from_micros(999)));
        shortest.deposit_at(t0);
        assert!(!shortest.try_withdraw_at(t0 + MS));
    }

    #[test]
    fn instants_before_the_budget_was_created_count_as_its_first_bucket() {
        let t0 = Instant::now() + SEC;
        let budget = budget(SEC, 0, 1.0, t0);
        budget.deposit_at(t0 - 500 * MS);
        assert!(budget.try_withdraw_at(t0));
    }

    #[test]
    fn clones_share_one_budget() {
        let t0 = Instant::now();
        let first = budget(SEC, 0, 1.0, t0);
        let second = first.clone();
        first.deposit_at(t0);
        assert!(second.try_withdraw_at(t0));
        assert!(!first.try_withdraw_at(t0));
        assert_eq!(first.stats(), second.stats());
        assert_eq!(second.stats(), RetryBudgetStats { requests: 1, retries: 1, refused: 1 });
    }

    #[test]
    fn the_largest_settings_do_not_overflow() {
        let t0 = Instant::now();
        let budget = budget(MAX_TTL, u32::MAX, MAX_RETRY_RATIO, t0);
        budget.deposit_at(t0);
        for _ in 0..1000 {
            assert!(budget.try_withdraw_at(t0));
        }
        assert_eq!(budget.stats().retries, 1000);
    }

    #[test]
    fn windows_outside_one_millisecond_to_sixty_seconds_are_refused() {
        for ttl in
            [Duration::ZERO, Duration::from_micros(999), Duration::from_secs(60) + Duration::from_nanos(1)]
        {
            let err = RetryBudget::new(ttl, 1, 0.1).expect_err("ttl out of range");
            assert_eq!(err, RetryBudgetError::TtlOutOfRange { ttl });
        }
        assert!(RetryBudget::new(MIN_TTL, 1, 0.1).is_ok());
        assert!(RetryBudget::new(MAX_TTL, 1, 0.1).is_ok());
        let err = RetryBudget::new(Duration::ZERO, 1, 0.1).expect_err("zero ttl");
        assert_eq!(err.to_string(), "the retry budget window must be between 1ms and 60s, got 0ns");
    }

    #[test]
    fn ratios_outside_zero_to_a_thousand_or_not_finite_are_refused() {
        for ratio in [-0.001, 1000.001, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            match RetryBudget::new(SEC, 1, ratio).expect_err("invalid ratio") {
                RetryBudgetError::InvalidRetryRatio { ratio: given } => {
                    assert!(given.to_bits() == ratio.to_bits(), "{given} != {ratio}");
                }
                other => panic!("unexpected error {other:?}"),
            }
        }
        assert!(RetryBudget::new(SEC, 1, 0.0).is_ok());
        assert!(RetryBudget::new(SEC, 1, 1000.0).is_ok());
        let err = RetryBudget::new(SEC, 1, -1.0).expect_err("negative ratio");
        assert_eq!(err.to_string(), "the retry ratio must be a finite number between 0 and 1000, got -1");
    }

    #[test]
    fn the_settings_read_back_as_given() {
        let budget = RetryBudget::new(3 * SEC, 7, 0.5).expect("valid budget");
        assert_eq!((budget.ttl(), budget.min_per_sec(), budget.retry_ratio()), (3 * SEC, 7, 0.5));
        assert_eq!(budget.stats(), RetryBudgetStats::default());
    }
}
