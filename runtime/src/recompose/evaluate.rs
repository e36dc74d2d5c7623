//! Judging an applied plan: its expected effect against the mean of its
//! metric before and after.
//!
//! Differences smaller than the metric's floor ([`Metric::floor`]) do not
//! count. A plan is **worse** when its metric ends above `before × (1 +
//! tolerance)` plus the floor; it is then reverted. Otherwise it is kept,
//! and **met** says whether it reached what it expected: for
//! `Fall { by }`, a fall of at least `by × before` (a metric already under
//! its floor has nothing to fall, and holding it meets the plan); for
//! `Hold`, not being worse. A canary's plan is judged the same way, with
//! the canary's mean as "after" and the mean of the cell it shares with,
//! over the same windows, as "before".

use super::plan::{Expected, Metric};

/// The outcome of an evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not worse, and the expected effect was reached.
    Met,
    /// Not worse, but short of the expected effect.
    Short,
    /// Worse than before: revert.
    Worse,
}

/// Judges `expected` on `before` and `after`.
pub(crate) fn judge(expected: Expected, before: f64, after: f64, tolerance: f64) -> Verdict {
    let floor = expected.metric().floor();
    if after > before * (1.0 + tolerance) + floor {
        return Verdict::Worse;
    }
    match expected {
        Expected::Hold { .. } | Expected::Canary { .. } => Verdict::Met,
        Expected::Fall { by, .. } => {
            if before <= floor || before - after >= by * before {
                Verdict::Met
            } else {
                Verdict::Short
            }
        }
    }
}

/// `value` in the metric's unit, for the journal.
pub(crate) fn show(metric: Metric, value: f64) -> String {
    match metric {
        Metric::QueueDelay => format!("{:.3} ms", value * 1000.0),
        Metric::Saturation | Metric::FailureRatio => format!("{value:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FALL_HALF: Expected = Expected::Fall { metric: Metric::QueueDelay, by: 0.5 };
    const HOLD_FAILURES: Expected = Expected::Hold { metric: Metric::FailureRatio };

    #[test]
    fn a_fall_to_half_or_lower_meets_a_fall_by_half() {
        assert_eq!(judge(FALL_HALF, 0.040, 0.020, 0.1), Verdict::Met);
        assert_eq!(judge(FALL_HALF, 0.040, 0.002, 0.1), Verdict::Met);
    }

    #[test]
    fn a_smaller_fall_is_short_but_kept() {
        assert_eq!(judge(FALL_HALF, 0.040, 0.030, 0.1), Verdict::Short);
    }

    #[test]
    fn a_rise_past_the_tolerance_and_the_floor_is_worse() {
        // 40 ms → 46 ms: above 40 × 1.1 + 1 = 45 ms.
        assert_eq!(judge(FALL_HALF, 0.040, 0.046, 0.1), Verdict::Worse);
        // 40 ms → 44.5 ms: within it.
        assert_eq!(judge(FALL_HALF, 0.040, 0.0445, 0.1), Verdict::Short);
    }

    #[test]
    fn values_under_the_floor_count_as_equal() {
        // 0.1 ms → 0.9 ms is under the 1 ms floor: nothing to fall, not worse.
        assert_eq!(judge(FALL_HALF, 0.0001, 0.0009, 0.1), Verdict::Met);
    }

    #[test]
    fn a_failure_ratio_that_rises_is_worse_for_a_hold() {
        assert_eq!(judge(HOLD_FAILURES, 0.0, 0.25, 0.1), Verdict::Worse);
        assert_eq!(judge(HOLD_FAILURES, 0.0, 0.01, 0.1), Verdict::Met);
    }
}
