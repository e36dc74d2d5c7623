//! Restart intensity: how many restarts fit in a sliding window, counted as
//! OTP counts them.

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use super::info::CountedRestart;

/// The recent restarts of one supervisor.
///
/// A restart is allowed when, counting it, at most `max` restarts happened
/// within the last `period` (a restart exactly `period` ago still counts).
/// The one that makes `max + 1` is refused: the supervisor gives up.
#[derive(Debug, Default)]
pub(crate) struct RestartWindow {
    times: VecDeque<Instant>,
    /// Which child each restart of `times` was for, and when, by the clock.
    counted: VecDeque<CountedRestart>,
}

impl RestartWindow {
    /// Records a restart at `now`; `false` when it exceeds the intensity.
    #[cfg(any(test, cellrt_loom))]
    pub(crate) fn admit(&mut self, now: Instant, max: u32, period: Duration) -> bool {
        self.admit_child(now, max, period, String::new())
    }

    /// [`admit`](RestartWindow::admit), for child `child`.
    pub(crate) fn admit_child(&mut self, now: Instant, max: u32, period: Duration, child: String) -> bool {
        self.slide(now, period);
        self.times.push_back(now);
        self.counted.push_back(CountedRestart { child, at: SystemTime::now() });
        self.times.len() <= max as usize
    }

    /// Forgets the restarts older than `period` at `now`.
    fn slide(&mut self, now: Instant, period: Duration) {
        while let Some(&oldest) = self.times.front() {
            if now.saturating_duration_since(oldest) > period {
                self.times.pop_front();
                self.counted.pop_front();
            } else {
                break;
            }
        }
    }

    /// Restarts within the last `period` at `now`.
    pub(crate) fn in_window(&self, now: Instant, period: Duration) -> usize {
        self.times.iter().filter(|&&at| now.saturating_duration_since(at) <= period).count()
    }

    /// The restarts counted in the window as of the last `admit`, oldest
    /// first; the last is the one just admitted (or refused).
    pub(crate) fn counted(&self) -> impl Iterator<Item = &CountedRestart> {
        self.counted.iter()
    }

    /// Restarts inside the window as of the last `admit`.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.times.len()
    }

    /// Forgets every restart (a supervisor's new incarnation starts afresh).
    pub(crate) fn clear(&mut self) {
        self.times.clear();
        self.counted.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: Duration = Duration::from_secs(5);

    #[test]
    fn intensity_two_refuses_the_third_restart_within_the_period() {
        let t0 = Instant::now();
        let mut window = RestartWindow::default();
        assert!(window.admit(t0, 2, PERIOD));
        assert!(window.admit(t0 + Duration::from_secs(1), 2, PERIOD));
        assert!(!window.admit(t0 + Duration::from_secs(2), 2, PERIOD));
    }

    #[test]
    fn restarts_spaced_beyond_the_period_never_exhaust_intensity_one() {
        let t0 = Instant::now();
        let mut window = RestartWindow::default();
        for n in 0..100 {
            let at = t0 + (PERIOD + Duration::from_millis(1)) * n;
            assert!(window.admit(at, 1, PERIOD), "restart {n}");
            assert_eq!(window.len(), 1);
        }
    }

    #[test]
    fn a_restart_exactly_one_period_ago_still_counts() {
        let t0 = Instant::now();
        let mut window = RestartWindow::default();
        assert!(window.admit(t0, 1, PERIOD));
        assert!(!window.admit(t0 + PERIOD, 1, PERIOD));
    }

    #[test]
    fn the_window_slides_old_restarts_out() {
        let t0 = Instant::now();
        let mut window = RestartWindow::default();
        assert!(window.admit(t0, 2, PERIOD));
        assert!(window.admit(t0 + Duration::from_secs(4), 2, PERIOD));
        // t0 has left the window: two restarts in it, counting this one.
        assert!(window.admit(t0 + Duration::from_secs(6), 2, PERIOD));
        assert_eq!(window.len(), 2);
        assert!(!window.admit(t0 + Duration::from_secs(7), 2, PERIOD));
    }

    #[test]
    fn zero_max_restarts_refuses_every_restart() {
        let mut window = RestartWindow::default();
        assert!(!window.admit(Instant::now(), 0, PERIOD));
    }
}
