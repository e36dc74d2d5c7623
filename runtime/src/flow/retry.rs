//! Retries: an [`ExponentialBackoff`] spaces them, a [`RetryBudget`] bounds
//! them across every caller, and [`Retry`] puts the two together with a cap
//! on attempts.
//!
//! - `backoff.rs`: [`ExponentialBackoff`] and [`Jitter`];
//! - `budget.rs`: [`RetryBudget`], the window of deposits and withdrawals;
//! - `error.rs`: the settings' errors and [`RetryError`].
//!
//! # In a cell
//!
//! A cell never sleeps on its worker. It deposits into the budget once per
//! original request, and when handling fails asks
//! [`Retry::next_delay`] for the wait before the next attempt; `None` means
//! give up (attempts exhausted, or the budget refused). It then re-sends the
//! message to itself with `ctx.send_after(delay, msg)`, carrying the attempt
//! number in the message.
//!
//! # On other threads
//!
//! [`Retry::call`] runs a fallible closure until it succeeds, sleeping the
//! backoff between attempts. It blocks: do not call it from a cell's handler.

mod backoff;
mod budget;
mod error;

use std::time::Duration;

use crate::sync::thread;

pub use self::backoff::{ExponentialBackoff, Jitter};
pub use self::budget::{RetryBudget, RetryBudgetStats};
pub use self::error::{BackoffError, RetryBudgetError, RetryConfigError, RetryError};

/// A retry policy: a backoff between attempts, a shared budget, and a cap
/// on attempts.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{ExponentialBackoff, Retry, RetryBudget, RetryError};
///
/// let backoff = ExponentialBackoff::new(Duration::from_micros(10), Duration::from_millis(1))?;
/// let budget = RetryBudget::new(Duration::from_secs(10), 10, 0.2)?;
/// let retry = Retry::new(backoff, budget, 3)?;
///
/// // Fails twice, then succeeds on the third attempt.
/// let answer = retry.call(|attempt| if attempt < 3 { Err("busy") } else { Ok(attempt * 14) });
/// assert_eq!(answer, Ok(42));
///
/// // Never succeeds: gives up after 3 attempts with the last error.
/// let failed = retry.call(|_| Err::<(), _>("down"));
/// assert_eq!(failed, Err(RetryError::Exhausted { attempts: 3, last: "down" }));
/// assert_eq!(retry.budget().stats().retries, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct Retry {
    backoff: ExponentialBackoff,
    budget: RetryBudget,
    max_attempts: u32,
}

impl Retry {
    /// A policy making at most `max_attempts` attempts (the first
    /// included), spaced by `backoff`, each retry withdrawn from `budget`.
    ///
    /// # Errors
    ///
    /// [`RetryConfigError::ZeroMaxAttempts`] when `max_attempts` is zero.
    pub fn new(
        backoff: ExponentialBackoff,
        budget: RetryBudget,
        max_attempts: u32,
    ) -> Result<Self, RetryConfigError> {
        if max_attempts == 0 {
            return Err(RetryConfigError::ZeroMaxAttempts);
        }
        Ok(Retry { backoff, budget, max_attempts })
    }

    /// The budget retries are withdrawn from; deposit into it once per
    /// original request.
    pub fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    /// The backoff between attempts.
    pub fn backoff(&self) -> &ExponentialBackoff {
        &self.backoff
    }

    /// Most attempts made, the first included.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// After attempt `attempt` (counting from 1; 0 counts as 1) failed: how
    /// long to wait before the next one, or `None` to give up because the
    /// attempts are used up or the budget refused the retry. A refusal is
    /// counted in the budget's [`stats`](RetryBudget::stats); attempts used
    /// up withdraw nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{ExponentialBackoff, Jitter, Retry, RetryBudget};
    ///
    /// let backoff = ExponentialBackoff::new(Duration::from_millis(100), Duration::from_secs(1))?
    ///     .jitter(Jitter::None);
    /// let retry = Retry::new(backoff, RetryBudget::new(Duration::from_secs(10), 1, 0.0)?, 3)?;
    /// assert_eq!(retry.next_delay(1), Some(Duration::from_millis(100)));
    /// assert_eq!(retry.next_delay(2), Some(Duration::from_millis(200)));
    /// assert_eq!(retry.next_delay(3), None); // three attempts made
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn next_delay(&self, attempt: u32) -> Option<Duration> {
        let attempt = attempt.max(1);
        if attempt >= self.max_attempts || !self.budget.try_withdraw() {
            return None;
        }
        Some(self.backoff.delay(attempt))
    }

    /// Calls `f` with the attempt number (from 1) until it succeeds, the
    /// attempts are used up, or the budget refuses a retry; sleeps the
    /// backoff between attempts. Deposits into the budget once per call.
    ///
    /// Blocks the calling thread: for threads that are not a runtime's
    /// workers. A cell uses [`next_delay`](Retry::next_delay) instead.
    ///
    /// # Errors
    ///
    /// [`RetryError::Exhausted`] or [`RetryError::BudgetExhausted`], with
    /// the number of attempts made and the last attempt's error.
    pub fn call<T, E>(&self, mut f: impl FnMut(u32) -> Result<T, E>) -> Result<T, RetryError<E>> {
        self.budget.deposit();
        let mut attempt = 1;
        loop {
            let last = match f(attempt) {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if attempt >= self.max_attempts {
                return Err(RetryError::Exhausted { attempts: attempt, last });
            }
            if !self.budget.try_withdraw() {
                return Err(RetryError::BudgetExhausted { attempts: attempt, last });
            }
            thread::sleep(self.backoff.delay(attempt));
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: Duration = Duration::from_secs(1);

    fn backoff() -> ExponentialBackoff {
        ExponentialBackoff::new(Duration::from_micros(1), Duration::from_micros(100))
            .expect("valid backoff")
            .jitter(Jitter::None)
    }

    fn retry(min_per_sec: u32, ratio: f64, max_attempts: u32) -> Retry {
        let budget = RetryBudget::new(60 * SEC, min_per_sec, ratio).expect("valid budget");
        Retry::new(backoff(), budget, max_attempts).expect("valid retry")
    }

    #[test]
    fn call_returns_the_first_success_and_stops_trying() {
        let retry = retry(10, 0.0, 5);
        let mut seen = Vec::new();
        let result = retry.call(|attempt| {
            seen.push(attempt);
            if attempt == 2 {
                Ok("done")
            } else {
                Err(attempt)
            }
        });
        assert_eq!(result, Ok("done"));
        assert_eq!(seen, [1, 2]);
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 1, retries: 1, refused: 0 });
    }

    #[test]
    fn call_succeeding_at_once_withdraws_nothing() {
        let retry = retry(0, 0.0, 5);
        assert_eq!(retry.call(Ok::<_, ()>), Ok(1));
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 1, retries: 0, refused: 0 });
    }

    #[test]
    fn call_gives_up_after_max_attempts_with_the_last_error() {
        let retry = retry(100, 0.0, 4);
        let mut calls = 0;
        let result = retry.call(|attempt| {
            calls += 1;
            Err::<(), _>(format!("failure {attempt}"))
        });
        assert_eq!(result, Err(RetryError::Exhausted { attempts: 4, last: "failure 4".to_owned() }));
        assert_eq!(calls, 4);
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 1, retries: 3, refused: 0 });
    }

    #[test]
    fn a_single_attempt_policy_never_retries() {
        let retry = retry(100, 0.0, 1);
        assert_eq!(
            retry.call(|_| Err::<(), _>("no")),
            Err(RetryError::Exhausted { attempts: 1, last: "no" })
        );
        assert_eq!(retry.budget().stats().retries, 0);
        assert_eq!(retry.next_delay(1), None);
    }

    #[test]
    fn call_stops_when_the_budget_refuses_a_retry() {
        // No floor; 0.5 retries per request: the first call earns 0.5, the
        // second call's deposit completes one retry.
        let retry = retry(0, 0.5, 10);
        let first = retry.call(|_| Err::<(), _>("busy"));
        assert_eq!(first, Err(RetryError::BudgetExhausted { attempts: 1, last: "busy" }));
        let second = retry.call(|_| Err::<(), _>("busy"));
        assert_eq!(second, Err(RetryError::BudgetExhausted { attempts: 2, last: "busy" }));
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 2, retries: 1, refused: 2 });
    }

    #[test]
    fn clones_of_a_policy_share_the_budget() {
        let first = retry(0, 1.0, 10);
        let second = first.clone();
        first.budget().deposit();
        assert_eq!(second.next_delay(1), Some(Duration::from_micros(1)));
        assert_eq!(first.next_delay(1), None);
        assert_eq!(first.budget().stats(), RetryBudgetStats { requests: 1, retries: 1, refused: 1 });
    }

    #[test]
    fn next_delay_follows_the_backoff_until_the_attempts_are_used_up() {
        let retry = retry(100, 0.0, 4);
        let delays: Vec<_> = (1..=5).map(|attempt| retry.next_delay(attempt)).collect();
        let us = Duration::from_micros;
        assert_eq!(delays, [Some(us(1)), Some(us(2)), Some(us(4)), None, None]);
        assert_eq!(retry.next_delay(0), Some(us(1)));
        // Attempts used up withdraw nothing and are not refusals.
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 0, retries: 4, refused: 0 });
    }

    #[test]
    fn next_delay_counts_a_budget_refusal() {
        let retry = retry(1, 0.0, 100);
        let granted = (1..=100).filter_map(|attempt| retry.next_delay(attempt)).count();
        // A floor of 1 per second over a 60 s window.
        assert_eq!(granted, 60);
        assert_eq!(retry.budget().stats(), RetryBudgetStats { requests: 0, retries: 60, refused: 39 });
    }

    #[test]
    fn zero_max_attempts_is_refused() {
        let budget = RetryBudget::new(SEC, 1, 0.1).expect("valid budget");
        let err = Retry::new(backoff(), budget, 0).expect_err("zero attempts");
        assert_eq!(err, RetryConfigError::ZeroMaxAttempts);
        assert_eq!(err.to_string(), "max_attempts must be at least 1 (the first attempt counts)");
    }

    #[test]
    fn retry_errors_say_why_and_after_how_many_attempts() {
        let exhausted: RetryError<&str> = RetryError::Exhausted { attempts: 3, last: "timeout" };
        assert_eq!(exhausted.to_string(), "gave up after 3 attempts: timeout");
        assert_eq!((exhausted.attempts(), *exhausted.last()), (3, "timeout"));
        let refused: RetryError<&str> = RetryError::BudgetExhausted { attempts: 2, last: "refused" };
        assert_eq!(refused.to_string(), "retry budget exhausted after 2 attempts: refused");
        assert_eq!(refused.into_last(), "refused");
    }

    #[test]
    fn a_retry_error_gives_the_last_error_as_its_source() {
        use std::error::Error;
        let inner = RetryConfigError::ZeroMaxAttempts;
        let err = RetryError::Exhausted { attempts: 1, last: inner.clone() };
        let source = err.source().expect("a source");
        assert_eq!(source.to_string(), inner.to_string());
    }
}
