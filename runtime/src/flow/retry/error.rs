//! Errors of the retry settings and of a retried call.

use std::fmt;
use std::time::Duration;

use super::budget::{MAX_RETRY_RATIO, MAX_TTL, MIN_TTL};

/// Why [`ExponentialBackoff::new`](crate::ExponentialBackoff::new) or
/// [`multiplier`](crate::ExponentialBackoff::multiplier) refused a setting.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BackoffError {
    /// The initial delay was zero: every delay would be zero.
    ZeroInitial,
    /// The maximum delay was shorter than the initial one.
    MaxBelowInitial {
        /// The initial delay given.
        initial: Duration,
        /// The maximum delay given.
        max: Duration,
    },
    /// The multiplier was below 1, NaN or infinite.
    InvalidMultiplier {
        /// The multiplier given.
        multiplier: f64,
    },
}

impl fmt::Display for BackoffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackoffError::ZeroInitial => f.write_str("the initial backoff delay must be greater than zero"),
            BackoffError::MaxBelowInitial { initial, max } => write!(
                f,
                "the maximum backoff delay ({max:?}) must be at least the initial delay ({initial:?})"
            ),
            BackoffError::InvalidMultiplier { multiplier } => {
                write!(f, "the backoff multiplier must be finite and at least 1, got {multiplier}")
            }
        }
    }
}

impl std::error::Error for BackoffError {}

/// Why [`RetryBudget::new`](crate::RetryBudget::new) refused a setting.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum RetryBudgetError {
    /// The window was shorter than 1 ms or longer than 60 s.
    TtlOutOfRange {
        /// The window given.
        ttl: Duration,
    },
    /// The retry ratio was negative, above 1000, NaN or infinite.
    InvalidRetryRatio {
        /// The ratio given.
        ratio: f64,
    },
}

impl fmt::Display for RetryBudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryBudgetError::TtlOutOfRange { ttl } => {
                write!(f, "the retry budget window must be between {MIN_TTL:?} and {MAX_TTL:?}, got {ttl:?}")
            }
            RetryBudgetError::InvalidRetryRatio { ratio } => {
                write!(
                    f,
                    "the retry ratio must be a finite number between 0 and {MAX_RETRY_RATIO}, got {ratio}"
                )
            }
        }
    }
}

impl std::error::Error for RetryBudgetError {}

/// Why [`Retry::new`](crate::Retry::new) refused a setting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryConfigError {
    /// `max_attempts` was zero: the operation could never be tried.
    ZeroMaxAttempts,
}

impl fmt::Display for RetryConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryConfigError::ZeroMaxAttempts => {
                f.write_str("max_attempts must be at least 1 (the first attempt counts)")
            }
        }
    }
}

impl std::error::Error for RetryConfigError {}

/// Why [`Retry::call`](crate::Retry::call) gave up. Carries the error of the
/// last attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RetryError<E> {
    /// Every allowed attempt failed.
    Exhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// The error of the last attempt.
        last: E,
    },
    /// The retry budget refused the next retry: too many retries across all
    /// callers for the traffic they carry.
    BudgetExhausted {
        /// Attempts made, the first included.
        attempts: u32,
        /// The error of the last attempt.
        last: E,
    },
}

impl<E> RetryError<E> {
    /// Attempts made, the first included.
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Exhausted { attempts, .. } | RetryError::BudgetExhausted { attempts, .. } => {
                *attempts
            }
        }
    }

    /// The error of the last attempt.
    pub fn last(&self) -> &E {
        match self {
            RetryError::Exhausted { last, .. } | RetryError::BudgetExhausted { last, .. } => last,
        }
    }

    /// Takes the error of the last attempt.
    pub fn into_last(self) -> E {
        match self {
            RetryError::Exhausted { last, .. } | RetryError::BudgetExhausted { last, .. } => last,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Exhausted { attempts, last } => {
                write!(f, "gave up after {attempts} attempts: {last}")
            }
            RetryError::BudgetExhausted { attempts, last } => {
                write!(f, "retry budget exhausted after {attempts} attempts: {last}")
            }
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.last())
    }
}
