//! Log-bucketed latency histograms: what the metrics keep of handling times
//! and times in queue.
//!
//! A value (nanoseconds) falls into a bucket by its power of two and, within
//! it, one of eight equal sub-buckets, so a bucket spans at most 12.5 % of
//! its values: a percentile is reported as its bucket's upper edge, never
//! lower than the true value and at most 12.5 % above it (values below
//! 64 ns share one bucket; values above 2⁴⁰ ns, about 18 minutes, share the
//! last). The same scheme as HdrHistogram with one significant digit, in a
//! fixed 2.2 KiB array, allocated only for cells that receive messages.

use std::time::Duration;

/// Sub-buckets per power of two.
const SUB: usize = 8;
const SUB_BITS: u32 = 3;
/// Values below `2^LOW_BITS` ns share the first bucket.
const LOW_BITS: u32 = 6;
/// Values at or above `2^HIGH_BITS` ns share the last bucket.
const HIGH_BITS: u32 = 40;
const BUCKETS: usize = (HIGH_BITS - LOW_BITS) as usize * SUB + 2;

/// Counts of values per log bucket.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    sum_ns: u128,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram { counts: Box::new([0; BUCKETS]), total: 0, sum_ns: 0, max_ns: 0 }
    }
}

fn bucket_of(ns: u64) -> usize {
    if ns < 1 << LOW_BITS {
        return 0;
    }
    if ns >= 1 << HIGH_BITS {
        return BUCKETS - 1;
    }
    let octave = 63 - ns.leading_zeros();
    let sub = ((ns >> (octave - SUB_BITS)) as usize) & (SUB - 1);
    1 + (octave - LOW_BITS) as usize * SUB + sub
}

/// The largest value that falls into bucket `index`.
fn upper_edge(index: usize) -> u64 {
    if index == 0 {
        return (1 << LOW_BITS) - 1;
    }
    if index == BUCKETS - 1 {
        return u64::MAX;
    }
    let octave = LOW_BITS + ((index - 1) / SUB) as u32;
    let sub = ((index - 1) % SUB) as u64;
    let width = 1_u64 << (octave - SUB_BITS);
    (1 << octave) + (sub + 1) * width - 1
}

impl Histogram {
    pub(crate) fn record(&mut self, value: Duration) {
        let ns = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)] += 1;
        self.total += 1;
        self.sum_ns += u128::from(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// The value at quantile `q` (in [0, 1]): the upper edge of its bucket,
    /// capped at the largest value seen.
    fn quantile(&self, q: f64) -> Duration {
        if self.total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(upper_edge(index).min(self.max_ns));
            }
        }
        Duration::from_nanos(self.max_ns)
    }

    pub(crate) fn summary(&self) -> LatencySummary {
        LatencySummary {
            count: self.total,
            mean: if self.total == 0 {
                Duration::ZERO
            } else {
                Duration::from_nanos((self.sum_ns / u128::from(self.total)) as u64)
            },
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p99: self.quantile(0.99),
            max: Duration::from_nanos(self.max_ns),
        }
    }
}

/// Percentiles of a latency distribution (see the metrics docs for how
/// close they are).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Their mean (exact).
    pub mean: Duration,
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The largest value (exact).
    pub max: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_every_value() {
        let mut previous_edge = upper_edge(0);
        for index in 1..BUCKETS - 1 {
            let edge = upper_edge(index);
            assert_eq!(bucket_of(previous_edge + 1), index, "first value of bucket {index}");
            assert_eq!(bucket_of(edge), index, "last value of bucket {index}");
            previous_edge = edge;
        }
        assert_eq!(bucket_of(previous_edge + 1), BUCKETS - 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn a_bucket_spans_at_most_an_eighth_of_its_values() {
        for index in 1..BUCKETS - 1 {
            let low = upper_edge(index - 1) + 1;
            let high = upper_edge(index);
            assert!((high - low) as f64 <= low as f64 / 8.0, "bucket {index}: {low}..={high}");
        }
    }

    #[test]
    fn percentiles_are_never_below_the_value_and_within_an_eighth_above() {
        let mut histogram = Histogram::default();
        for micros in 1..=1000 {
            histogram.record(Duration::from_micros(micros));
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.mean, Duration::from_nanos(500_500));
        assert_eq!(summary.max, Duration::from_micros(1000));
        for (got, exact) in [(summary.p50, 500_000.0), (summary.p90, 900_000.0), (summary.p99, 990_000.0)] {
            let got = got.as_nanos() as f64;
            assert!(got >= exact && got <= exact * 1.125, "{got} for {exact}");
        }
    }

    #[test]
    fn an_empty_histogram_reports_zeros() {
        assert_eq!(Histogram::default().summary(), LatencySummary::default());
    }

    #[test]
    fn a_percentile_never_exceeds_the_largest_value() {
        let mut histogram = Histogram::default();
        histogram.record(Duration::from_nanos(1_000_001));
        let summary = histogram.summary();
        assert_eq!((summary.p50, summary.p99), (summary.max, summary.max));
    }
}
