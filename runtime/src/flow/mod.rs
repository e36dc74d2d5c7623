//! Flow control: what stands between a caller and a cell that may not be able
//! to serve it.
//!
//! Each submodule owns one mechanism, built only on the public handles of the
//! message path ([`Addr`](crate::Addr), [`Reply`](crate::Reply),
//! [`Pending`](crate::Pending)); none of them knows of recomposition, which
//! drives them through their public types.
//!
//! - `breaker`: circuit breakers ([`CircuitBreaker`]) with resilience4j's
//!   states and rules: failure and slow-call rates over a sliding window,
//!   open, half-open trial calls, forced-open and disabled.

mod breaker;

pub use self::breaker::{
    BreakerConfig, BreakerConfigError, BreakerMetrics, BreakerOpen, BreakerState, BreakerTransition,
    CallError, CallOutcome, CircuitBreaker, Permit, SlidingWindow,
};
