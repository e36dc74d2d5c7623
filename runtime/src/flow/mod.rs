//! Flow control: what stands between a sender and a cell that cannot keep
//! up, or cannot serve it at all.
//!
//! Each submodule owns one mechanism, built on the message path's handles
//! ([`Addr`](crate::Addr), [`Reply`](crate::Reply), [`Pending`](crate::Pending))
//! and, for routers and shedding, on the address's slot. None of them knows
//! of recomposition, which creates and reconfigures them through their
//! public types.
//!
//! - `router.rs`: [`Router`], an address spread over member addresses
//!   (round-robin, least-loaded, consistent hash, broadcast), whose members
//!   change while messages flow.
//! - `shedding.rs`: [`Shedding`], an address's admission policy by priority
//!   class: the lowest classes are refused first as a mailbox fills, each
//!   handed back as `SendError::Shed`.
//! - `breaker.rs`: circuit breakers ([`CircuitBreaker`]) with resilience4j's
//!   states and rules: failure and slow-call rates over a sliding window,
//!   open, half-open trial calls, forced-open and disabled.
//! - `retry.rs`: retries spaced by an exponential backoff with jitter and
//!   bounded, across all callers, by a retry budget ([`RetryBudget`]).
//!
//! Deadlines travel with messages (see [`Addr::ask_within`](crate::Addr::ask_within)):
//! a message whose deadline passed before its turn is dead-lettered as
//! expired instead of handled.

mod breaker;
mod retry;
mod router;
mod shedding;

pub use self::breaker::{
    BreakerConfig, BreakerConfigError, BreakerMetrics, BreakerOpen, BreakerState, BreakerTransition,
    CallError, CallOutcome, CircuitBreaker, Permit, SlidingWindow,
};
pub use self::retry::{
    BackoffError, ExponentialBackoff, Jitter, Retry, RetryBudget, RetryBudgetError, RetryBudgetStats,
    RetryConfigError, RetryError,
};
#[cfg(all(feature = "storage", feature = "observe"))]
pub(crate) use self::router::stable_hash;
pub use self::router::{Router, RouterError, RouterStats, Routing};
pub use self::shedding::{Shedding, SheddingError, SheddingStats, MAX_CLASS};
