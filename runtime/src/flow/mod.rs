//! Flow control: what limits, spreads and bounds the traffic between cells.
//!
//! - `retry`: retries spaced by an exponential backoff with jitter and
//!   bounded, across all callers, by a retry budget.

mod retry;

pub use self::retry::{
    BackoffError, ExponentialBackoff, Jitter, Retry, RetryBudget, RetryBudgetError, RetryBudgetStats,
    RetryConfigError, RetryError,
};
