//! Circuit breakers: [`CircuitBreaker`], its configuration, its permits and
//! its errors.
//!
//! The rules are resilience4j's CircuitBreaker
//! (<https://resilience4j.readme.io/docs/circuitbreaker>):
//!
//! - **CLOSED** admits every call and records each outcome in a sliding
//!   window. Once the window holds `minimum_calls` calls (for a count window
//!   of size N, `min(minimum_calls, N)`), the failure rate and the slow-call
//!   rate are computed after every record; when either reaches its threshold
//!   the breaker goes **OPEN**.
//! - **OPEN** refuses every call until `wait_in_open` has passed; the first
//!   acquire after that moves it to **HALF_OPEN** (lazily: no timer runs).
//! - **HALF_OPEN** admits exactly `permitted_in_half_open` trial calls and
//!   refuses the others. When all of them are recorded, the rates over those
//!   calls alone decide: either rate at or above its threshold → OPEN again
//!   (a new wait), else → CLOSED with an empty window.
//! - **FORCED_OPEN** ([`CircuitBreaker::force_open`]) refuses everything and
//!   **DISABLED** ([`CircuitBreaker::disable`]) admits everything, recording
//!   nothing; neither leaves by itself. [`CircuitBreaker::reset`] returns to
//!   CLOSED with an empty window from any state.
//!
//! A call is slow when it took longer than `slow_call_duration`; slow calls
//! are counted apart from failures, so a slow failure counts in both rates.
//!
//! # Sliding windows
//!
//! [`SlidingWindow::Count`]`(n)` keeps the outcomes of the last `n` calls.
//! [`SlidingWindow::Time`]`(d)` keeps a ring of 10 buckets, each `d / 10`
//! long, aligned on the first call recorded into the window: the window is
//! the current (partial) bucket and the 9 before it, so it spans between
//! `0.9 d` and `d` of history, and memory stays bounded whatever the call
//! rate. Sub-second windows work the same way (a 100 ms window has 10 ms
//! buckets).
//!
//! # Stale permits
//!
//! Every transition starts a new *epoch*, and a [`Permit`] carries the epoch
//! it was acquired in. A permit recorded or dropped after the breaker moved
//! on (a closed-state call finishing after the breaker opened, a trial call
//! finishing after a [`reset`](CircuitBreaker::reset)) is ignored, as
//! resilience4j ignores it: it cannot count against the new state's window
//! or give back a half-open slot it does not hold. The epoch is 24 bits and
//! wraps; a permit would have to outlive 16 million transitions to be
//! mistaken for a current one.
//!
//! # Concurrency
//!
//! The state, the epoch and the half-open permits handed out live in one
//! atomic word (layout on `Word`). A CLOSED or DISABLED acquire is one
//! atomic load. A HALF_OPEN acquire takes a trial slot with a
//! compare-and-swap, so concurrent callers can never take more slots than
//! permitted; the loom model `loom-tests/tests/flow_breaker.rs` checks it.
//! Recording, the OPEN → HALF_OPEN move and every other transition happen
//! under one lock, and only there does the epoch change.
//!
//! # Listeners
//!
//! [`CircuitBreaker::on_transition`] listeners are called outside the
//! breaker's locks (they may use the breaker, even make it transition), one
//! transition at a time, in the order the transitions happened. Transitions
//! are queued under the lock and delivered by the thread that made them, or,
//! when another thread is already delivering, by that thread.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crate::address::Addr;
use crate::ask::{self, AskError, Reply};
use crate::mailbox::SendError;
use crate::path::NameError;
use crate::sync::atomic::{AtomicBool, AtomicU64, Ordering::*};
use crate::sync::{Arc, Mutex};

/// Buckets of a time-based sliding window.
const TIME_BUCKETS: u32 = 10;

/// How a breaker's sliding window measures "recent".
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BreakerConfig, SlidingWindow};
///
/// // The last 20 calls.
/// let by_count = BreakerConfig::default().sliding_window(SlidingWindow::Count(20));
/// // The calls of the last 500 ms (10 buckets of 50 ms).
/// let by_time = BreakerConfig::default().sliding_window(SlidingWindow::Time(Duration::from_millis(500)));
/// assert!(by_count.validate().is_ok() && by_time.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SlidingWindow {
    /// The outcomes of the last `n` calls.
    Count(u32),
    /// The outcomes of the calls made within this duration, kept in 10
    /// buckets of a tenth of it each (see the module docs).
    Time(Duration),
}

/// How a [`CircuitBreaker`] decides. Build it from [`Default`] with the
/// setters; [`CircuitBreaker::new`] checks it with
/// [`validate`](BreakerConfig::validate).
///
/// The defaults are resilience4j's: failure rate threshold 50 %, slow-call
/// rate threshold 100 %, slow calls over 60 s, a count window of 100 calls,
/// 100 minimum calls, 60 s in OPEN, 10 trial calls in HALF_OPEN.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BreakerConfig, SlidingWindow};
///
/// let config = BreakerConfig::default()
///     .failure_rate_threshold(25.0)
///     .sliding_window(SlidingWindow::Count(20))
///     .minimum_calls(10)
///     .wait_in_open(Duration::from_secs(5))
///     .permitted_in_half_open(3);
/// assert!(config.validate().is_ok());
/// assert_eq!(config.minimum_calls, 10);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Failure rate, in percent of the calls in the window, at or above which
    /// the breaker opens. In `(0, 100]`. Default: 50.
    pub failure_rate_threshold: f64,
    /// Slow-call rate, in percent of the calls in the window, at or above
    /// which the breaker opens. In `(0, 100]`. Default: 100.
    pub slow_call_rate_threshold: f64,
    /// A call taking longer than this is slow. Default: 60 s.
    pub slow_call_duration: Duration,
    /// The window the rates are computed over. Default: `Count(100)`.
    pub sliding_window: SlidingWindow,
    /// Calls the window must hold before rates are computed (for a count
    /// window of size N, `min(minimum_calls, N)`). At least 1. Default: 100.
    pub minimum_calls: u32,
    /// How long the breaker stays OPEN before it lets trial calls through.
    /// Default: 60 s.
    pub wait_in_open: Duration,
    /// Trial calls admitted in HALF_OPEN; their rates decide between CLOSED
    /// and OPEN. At least 1. Default: 10.
    pub permitted_in_half_open: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_rate_threshold: 50.0,
            slow_call_rate_threshold: 100.0,
            slow_call_duration: Duration::from_secs(60),
            sliding_window: SlidingWindow::Count(100),
            minimum_calls: 100,
            wait_in_open: Duration::from_secs(60),
            permitted_in_half_open: 10,
        }
    }
}

impl BreakerConfig {
    /// Sets the failure rate, in percent, at or above which the breaker
    /// opens. Must be in `(0, 100]`.
    pub fn failure_rate_threshold(mut self, percent: f64) -> Self {
        self.failure_rate_threshold = percent;
        self
    }

    /// Sets the slow-call rate, in percent, at or above which the breaker
    /// opens. Must be in `(0, 100]`.
    pub fn slow_call_rate_threshold(mut self, percent: f64) -> Self {
        self.slow_call_rate_threshold = percent;
        self
    }

    /// Sets the duration beyond which a call is slow.
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = duration;
        self
    }

    /// Sets the sliding window. Must not be empty (`Count(0)`, `Time(0)`).
    pub fn sliding_window(mut self, window: SlidingWindow) -> Self {
        self.sliding_window = window;
        self
    }

    /// Sets the calls the window must hold before rates are computed. At
    /// least 1.
    pub fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = calls;
        self
    }

    /// Sets how long the breaker stays OPEN before admitting trial calls.
    pub fn wait_in_open(mut self, wait: Duration) -> Self {
        self.wait_in_open = wait;
        self
    }

    /// Sets how many trial calls HALF_OPEN admits. At least 1.
    pub fn permitted_in_half_open(mut self, calls: u32) -> Self {
        self.permitted_in_half_open = calls;
        self
    }

    /// Checks every value.
    ///
    /// # Errors
    ///
    /// The first value out of range, as a [`BreakerConfigError`].
    pub fn validate(&self) -> Result<(), BreakerConfigError> {
        if !is_threshold(self.failure_rate_threshold) {
            return Err(BreakerConfigError::FailureRateThreshold(self.failure_rate_threshold));
        }
        if !is_threshold(self.slow_call_rate_threshold) {
            return Err(BreakerConfigError::SlowCallRateThreshold(self.slow_call_rate_threshold));
        }
        match self.sliding_window {
            SlidingWindow::Count(0) => return Err(BreakerConfigError::ZeroWindow),
            SlidingWindow::Time(duration) if duration.is_zero() => {
                return Err(BreakerConfigError::ZeroWindow)
            }
            _ => {}
        }
        if self.minimum_calls == 0 {
            return Err(BreakerConfigError::ZeroMinimumCalls);
        }
        if self.permitted_in_half_open == 0 {
            return Err(BreakerConfigError::ZeroPermittedInHalfOpen);
        }
        Ok(())
    }

    /// Calls the sliding window must hold before its rates are computed.
    fn window_minimum(&self) -> u32 {
        match self.sliding_window {
            SlidingWindow::Count(size) => self.minimum_calls.min(size),
            SlidingWindow::Time(_) => self.minimum_calls,
        }
    }

    /// Whether either rate reached its threshold.
    fn trips(&self, rates: Rates) -> bool {
        rates.failure.is_some_and(|rate| rate >= self.failure_rate_threshold)
            || rates.slow.is_some_and(|rate| rate >= self.slow_call_rate_threshold)
    }
}

/// A rate threshold is a finite percentage in `(0, 100]`.
fn is_threshold(percent: f64) -> bool {
    percent > 0.0 && percent <= 100.0
}

/// A [`BreakerConfig`] value out of range.
///
/// # Examples
///
/// ```
/// use cellrt::{BreakerConfig, BreakerConfigError};
///
/// let err = BreakerConfig::default().failure_rate_threshold(0.0).validate().unwrap_err();
/// assert_eq!(err, BreakerConfigError::FailureRateThreshold(0.0));
/// assert_eq!(err.to_string(), "failure rate threshold 0 is outside (0, 100] percent");
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum BreakerConfigError {
    /// `failure_rate_threshold` is not a number in `(0, 100]`.
    FailureRateThreshold(f64),
    /// `slow_call_rate_threshold` is not a number in `(0, 100]`.
    SlowCallRateThreshold(f64),
    /// The sliding window is `Count(0)` or `Time(0)`.
    ZeroWindow,
    /// `minimum_calls` is 0.
    ZeroMinimumCalls,
    /// `permitted_in_half_open` is 0.
    ZeroPermittedInHalfOpen,
    /// [`Runtime::breaker`] was given a name that is not a valid cell name,
    /// so it cannot name the breaker's journal path (`/#breaker/<name>`).
    ///
    #[cfg_attr(feature = "observe", doc = "[`Runtime::breaker`]: crate::Runtime::breaker")]
    #[cfg_attr(not(feature = "observe"), doc = "[`Runtime::breaker`]: crate#features")]
    InvalidName(NameError),
}

impl fmt::Display for BreakerConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerConfigError::FailureRateThreshold(value) => {
                write!(f, "failure rate threshold {value} is outside (0, 100] percent")
            }
            BreakerConfigError::SlowCallRateThreshold(value) => {
                write!(f, "slow-call rate threshold {value} is outside (0, 100] percent")
            }
            BreakerConfigError::ZeroWindow => {
                f.write_str("sliding window is empty: it needs at least 1 call or a non-zero duration")
            }
            BreakerConfigError::ZeroMinimumCalls => f.write_str("minimum calls must be at least 1"),
            BreakerConfigError::ZeroPermittedInHalfOpen => {
                f.write_str("calls permitted in half-open must be at least 1")
            }
            BreakerConfigError::InvalidName(err) => write!(f, "invalid breaker name: {err}"),
        }
    }
}

// The name's error is in the text already: no `source`.
impl std::error::Error for BreakerConfigError {}

/// Where a [`CircuitBreaker`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum BreakerState {
    /// Calls pass and their outcomes are recorded.
    Closed,
    /// Calls are refused until the wait in open has passed.
    Open,
    /// A fixed number of trial calls pass; their outcomes decide.
    HalfOpen,
    /// Calls are refused until [`CircuitBreaker::reset`].
    ForcedOpen,
    /// Calls pass and nothing is recorded, until [`CircuitBreaker::reset`].
    Disabled,
}

impl BreakerState {
    /// The state's name: `closed`, `open`, `half-open`, `forced-open`,
    /// `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
            BreakerState::ForcedOpen => "forced-open",
            BreakerState::Disabled => "disabled",
        }
    }

    /// The state's code in the state word.
    const fn code(self) -> u64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::Open => 1,
            BreakerState::HalfOpen => 2,
            BreakerState::ForcedOpen => 3,
            BreakerState::Disabled => 4,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A breaker's state word: state, epoch and half-open slots taken, read and
/// changed as one atomic value.
///
/// ```text
/// bits 0..8    state code (BreakerState::code)
/// bits 8..40   half-open trial slots taken in this epoch (0 in other states)
/// bits 40..64  epoch: +1 (wrapping) at every transition
/// ```
///
/// Who moves it: transitions (a new epoch) are stored only under the
/// breaker's core lock; the slot count is raised by a half-open acquire and
/// lowered by a dropped half-open permit, both by compare-and-swap against
/// the whole word, so a slot is never taken or given back across an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Word(u64);

const STATE_MASK: u64 = 0xFF;
const SLOTS_SHIFT: u32 = 8;
const SLOTS_MASK: u64 = 0xFFFF_FFFF;
const EPOCH_SHIFT: u32 = 40;
const EPOCH_MASK: u64 = 0xFF_FFFF;

/// State codes, indexed by code.
const STATES: [BreakerState; 5] = [
    BreakerState::Closed,
    BreakerState::Open,
    BreakerState::HalfOpen,
    BreakerState::ForcedOpen,
    BreakerState::Disabled,
];

impl Word {
    fn new(state: BreakerState, slots: u32, epoch: u32) -> Word {
        Word(
            state.code()
                | (u64::from(slots) << SLOTS_SHIFT)
                | ((u64::from(epoch) & EPOCH_MASK) << EPOCH_SHIFT),
        )
    }

    fn state(self) -> BreakerState {
        // Only `Word::new` writes the code, always from a `BreakerState`.
        STATES[(self.0 & STATE_MASK) as usize]
    }

    fn slots(self) -> u32 {
        ((self.0 >> SLOTS_SHIFT) & SLOTS_MASK) as u32
    }

    fn epoch(self) -> u32 {
        ((self.0 >> EPOCH_SHIFT) & EPOCH_MASK) as u32
    }

    /// The word of the next epoch, in `state` with `slots` taken.
    fn next(self, state: BreakerState, slots: u32) -> Word {
        Word::new(state, slots, self.epoch().wrapping_add(1))
    }

    fn with_slots(self, slots: u32) -> Word {
        Word::new(self.state(), slots, self.epoch())
    }
}

/// One recorded call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Call {
    failed: bool,
    slow: bool,
}

/// Calls, failures and slow calls over some span.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tally {
    calls: u32,
    failed: u32,
    slow: u32,
}

impl Tally {
    fn add(&mut self, call: Call) {
        self.calls = self.calls.saturating_add(1);
        self.failed = self.failed.saturating_add(u32::from(call.failed));
        self.slow = self.slow.saturating_add(u32::from(call.slow));
    }

    fn remove(&mut self, call: Call) {
        self.calls = self.calls.saturating_sub(1);
        self.failed = self.failed.saturating_sub(u32::from(call.failed));
        self.slow = self.slow.saturating_sub(u32::from(call.slow));
    }

    fn merge(&mut self, other: Tally) {
        self.calls = self.calls.saturating_add(other.calls);
        self.failed = self.failed.saturating_add(other.failed);
        self.slow = self.slow.saturating_add(other.slow);
    }

    /// The rates in percent, once at least `minimum` calls are counted.
    fn rates(self, minimum: u32) -> Rates {
        if self.calls == 0 || self.calls < minimum {
            return Rates { failure: None, slow: None };
        }
        let calls = f64::from(self.calls);
        Rates {
            failure: Some(f64::from(self.failed) * 100.0 / calls),
            slow: Some(f64::from(self.slow) * 100.0 / calls),
        }
    }
}

/// A failure rate and a slow-call rate, in percent; `None` below the minimum
/// number of calls.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rates {
    failure: Option<f64>,
    slow: Option<f64>,
}

impl Rates {
    const NONE: Rates = Rates { failure: None, slow: None };
}

/// One bucket of a time window: the calls of one `bucket_len` span.
#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Which span: `(time - origin) / bucket_len`.
    index: u64,
    tally: Tally,
}

/// The sliding window of the CLOSED state.
#[derive(Debug)]
enum Window {
    Count {
        size: u32,
        /// The last `size` calls, oldest first.
        calls: VecDeque<Call>,
        tally: Tally,
    },
    Time {
        bucket_len: Duration,
        /// Set by the first call recorded: buckets are aligned on it.
        origin: Option<Instant>,
        /// Bucket `i` holds span `index` with `index % TIME_BUCKETS == i`.
        buckets: Box<[Bucket; TIME_BUCKETS as usize]>,
    },
}

impl Window {
    fn new(window: SlidingWindow) -> Window {
        match window {
            SlidingWindow::Count(size) => {
                Window::Count { size, calls: VecDeque::new(), tally: Tally::default() }
            }
            SlidingWindow::Time(span) => Window::Time {
                bucket_len: (span / TIME_BUCKETS).max(Duration::from_nanos(1)),
                origin: None,
                buckets: Box::new([Bucket::default(); TIME_BUCKETS as usize]),
            },
        }
    }

    /// The span index of `now`; instants before the origin fall in span 0.
    fn span(origin: Instant, bucket_len: Duration, now: Instant) -> u64 {
        let since = now.saturating_duration_since(origin).as_nanos() / bucket_len.as_nanos();
        u64::try_from(since).unwrap_or(u64::MAX)
    }

    fn record(&mut self, now: Instant, call: Call) {
        match self {
            Window::Count { size, calls, tally } => {
                calls.push_back(call);
                tally.add(call);
                while calls.len() > *size as usize {
                    if let Some(oldest) = calls.pop_front() {
                        tally.remove(oldest);
                    }
                }
            }
            Window::Time { bucket_len, origin, buckets } => {
                let origin = *origin.get_or_insert(now);
                let span = Window::span(origin, *bucket_len, now);
                let bucket = &mut buckets[(span % u64::from(TIME_BUCKETS)) as usize];
                if bucket.index != span {
                    *bucket = Bucket { index: span, tally: Tally::default() };
                }
                bucket.tally.add(call);
            }
        }
    }

    /// The calls in the window at `now`.
    fn tally(&self, now: Instant) -> Tally {
        match self {
            Window::Count { tally, .. } => *tally,
            Window::Time { bucket_len, origin, buckets } => {
                let Some(origin) = *origin else { return Tally::default() };
                let current = Window::span(origin, *bucket_len, now);
                let oldest = current.saturating_sub(u64::from(TIME_BUCKETS) - 1);
                let mut total = Tally::default();
                for bucket in buckets.iter() {
                    if bucket.index >= oldest && bucket.index <= current {
                        total.merge(bucket.tally);
                    }
                }
                total
            }
        }
    }
}

/// A transition listener.
type Listener = Arc<dyn Fn(&BreakerTransition) + Send + Sync>;

/// What the core lock guards.
struct Core {
    /// The CLOSED state's sliding window.
    window: Window,
    /// The trial calls of the current (or last) HALF_OPEN state.
    trials: Tally,
    /// Whether [`CircuitBreaker::metrics`] reports the trial calls (in
    /// HALF_OPEN, and in an OPEN state they decided) rather than the window.
    metrics_from_trials: bool,
    /// When an OPEN breaker admits trial calls; `None` when `wait_in_open`
    /// reaches beyond what an `Instant` can hold.
    open_until: Option<Instant>,
    /// Transitions not yet given to the listeners, oldest first.
    undelivered: VecDeque<BreakerTransition>,
}

struct Inner {
    name: Arc<str>,
    config: BreakerConfig,
    /// See [`Word`]. Release stores and Acquire loads pair so that a caller
    /// seeing a state also sees the transition that made it.
    word: AtomicU64,
    core: Mutex<Core>,
    /// Calls refused, in every state.
    not_permitted: AtomicU64,
    listeners: Mutex<Vec<Listener>>,
    /// Set while a thread is handing transitions to the listeners.
    delivering: AtomicBool,
}

/// A circuit breaker: stops calling a dependency that keeps failing or
/// answering slowly, and tries it again after a while.
///
/// Cloning shares the breaker. The module docs (`flow/breaker.rs`) state the
/// rules, which are resilience4j's.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BreakerConfig, BreakerState, CircuitBreaker, SlidingWindow};
///
/// let breaker = CircuitBreaker::new(
///     "inventory",
///     BreakerConfig::default().sliding_window(SlidingWindow::Count(4)).minimum_calls(4),
/// )?;
/// for _ in 0..2 {
///     breaker.try_acquire()?.success();
/// }
/// for _ in 0..2 {
///     breaker.try_acquire()?.failure();
/// }
/// // 2 failures in 4 calls: 50 %, the default threshold.
/// assert_eq!(breaker.state(), BreakerState::Open);
/// let refused = breaker.try_acquire().unwrap_err();
/// assert_eq!(refused.state, BreakerState::Open);
/// assert!(refused.to_string().starts_with("circuit breaker `inventory` is open; retry after"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    inner: Arc<Inner>,
}

impl CircuitBreaker {
    /// A CLOSED breaker named `name` (the name appears in errors and
    /// transitions).
    ///
    /// # Errors
    ///
    /// The configuration's first value out of range
    /// ([`BreakerConfig::validate`]).
    pub fn new(name: impl Into<String>, config: BreakerConfig) -> Result<Self, BreakerConfigError> {
        config.validate()?;
        let name: Arc<str> = Arc::from(name.into());
        let core = Core {
            window: Window::new(config.sliding_window),
            trials: Tally::default(),
            metrics_from_trials: false,
            open_until: None,
            undelivered: VecDeque::new(),
        };
        Ok(CircuitBreaker {
            inner: Arc::new(Inner {
                name,
                config,
                word: AtomicU64::new(Word::new(BreakerState::Closed, 0, 0).0),
                core: Mutex::new(core),
                not_permitted: AtomicU64::new(0),
                listeners: Mutex::new(Vec::new()),
                delivering: AtomicBool::new(false),
            }),
        })
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current state. An OPEN breaker whose wait has passed still says
    /// OPEN until the next acquire moves it to HALF_OPEN.
    pub fn state(&self) -> BreakerState {
        Word(self.inner.word.load(Acquire)).state()
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    /// Asks to make one call. The returned [`Permit`] records its outcome;
    /// dropping it unrecorded records nothing.
    ///
    /// # Errors
    ///
    /// [`BreakerOpen`] when the breaker is OPEN (and its wait has not
    /// passed), FORCED_OPEN, or HALF_OPEN with every trial call taken.
    pub fn try_acquire(&self) -> Result<Permit, BreakerOpen> {
        self.try_acquire_at(Instant::now())
    }

    /// [`try_acquire`](CircuitBreaker::try_acquire) at `now`.
    pub(crate) fn try_acquire_at(&self, now: Instant) -> Result<Permit, BreakerOpen> {
        let inner = &self.inner;
        let mut word = Word(inner.word.load(Acquire));
        loop {
            match word.state() {
                BreakerState::Closed | BreakerState::Disabled => return Ok(self.permit(word, now)),
                BreakerState::ForcedOpen => return Err(self.refuse(BreakerState::ForcedOpen, None)),
                BreakerState::HalfOpen => {
                    let slots = word.slots();
                    if slots >= inner.config.permitted_in_half_open {
                        return Err(self.refuse(BreakerState::HalfOpen, None));
                    }
                    // AcqRel: the slot taken is part of the word a transition
                    // stores (Release) under the lock; a failed exchange
                    // re-reads the word (Acquire) and decides again.
                    match inner.word.compare_exchange(word.0, word.with_slots(slots + 1).0, AcqRel, Acquire) {
                        Ok(_) => return Ok(self.permit(word, now)),
                        Err(actual) => word = Word(actual),
                    }
                }
                BreakerState::Open => {
                    let mut core = inner.core.lock();
                    let current = Word(inner.word.load(Acquire));
                    if current != word {
                        // Another caller moved it on first.
                        word = current;
                        continue;
                    }
                    let waited = core.open_until.is_some_and(|until| now >= until);
                    if !waited {
                        let retry_after = core.open_until.map(|until| until.saturating_duration_since(now));
                        drop(core);
                        return Err(self.refuse(BreakerState::Open, retry_after));
                    }
                    // This caller takes the first trial slot of the new epoch.
                    let next = inner.transition(&mut core, BreakerState::HalfOpen, 1, Rates::NONE);
                    core.trials = Tally::default();
                    core.metrics_from_trials = true;
                    drop(core);
                    inner.deliver_transitions();
                    return Ok(self.permit(next, now));
                }
            }
        }
    }

    fn permit(&self, word: Word, now: Instant) -> Permit {
        Permit {
            breaker: self.inner.clone(),
            epoch: word.epoch(),
            state: word.state(),
            acquired_at: now,
            settled: false,
        }
    }

    fn refuse(&self, state: BreakerState, retry_after: Option<Duration>) -> BreakerOpen {
        self.inner.not_permitted.fetch_add(1, Relaxed);
        BreakerOpen { breaker: self.inner.name.clone(), state, retry_after }
    }

    /// Moves to FORCED_OPEN: every call is refused until
    /// [`reset`](CircuitBreaker::reset). Listeners hear of it even when the
    /// breaker already was forced open.
    pub fn force_open(&self) {
        self.manual_transition(BreakerState::ForcedOpen);
    }

    /// Moves to DISABLED: every call is admitted and nothing is recorded
    /// until [`reset`](CircuitBreaker::reset). Listeners hear of it even when
    /// the breaker already was disabled.
    pub fn disable(&self) {
        self.manual_transition(BreakerState::Disabled);
    }

    /// Moves to CLOSED with an empty window, from any state (resilience4j's
    /// `reset`). Permits acquired before are ignored when they come back.
    /// Listeners hear of it even when the breaker already was closed.
    pub fn reset(&self) {
        self.manual_transition(BreakerState::Closed);
    }

    fn manual_transition(&self, to: BreakerState) {
        let inner = &self.inner;
        let mut core = inner.core.lock();
        inner.transition(&mut core, to, 0, Rates::NONE);
        if to == BreakerState::Closed {
            core.window = Window::new(inner.config.sliding_window);
            core.trials = Tally::default();
            core.metrics_from_trials = false;
            core.open_until = None;
        }
        drop(core);
        inner.deliver_transitions();
    }

    /// The calls that decide the next transition: the sliding window (in
    /// CLOSED, and in OPEN, FORCED_OPEN and DISABLED when the window decided
    /// last), or the trial calls (in HALF_OPEN, and in the OPEN state they
    /// decided).
    pub fn metrics(&self) -> BreakerMetrics {
        self.metrics_at(Instant::now())
    }

    /// [`metrics`](CircuitBreaker::metrics) at `now`.
    pub(crate) fn metrics_at(&self, now: Instant) -> BreakerMetrics {
        let inner = &self.inner;
        let core = inner.core.lock();
        let state = Word(inner.word.load(Acquire)).state();
        let (tally, minimum) = if core.metrics_from_trials {
            (core.trials, inner.config.permitted_in_half_open)
        } else {
            (core.window.tally(now), inner.config.window_minimum())
        };
        drop(core);
        let rates = tally.rates(minimum);
        BreakerMetrics {
            state,
            calls: tally.calls,
            failed_calls: tally.failed,
            slow_calls: tally.slow,
            failure_rate: rates.failure,
            slow_call_rate: rates.slow,
            not_permitted: inner.not_permitted.load(Relaxed),
        }
    }

    /// Calls `listener` after every transition, outside the breaker's locks,
    /// in transition order (see the module docs). A listener may use the
    /// breaker.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use cellrt::{BreakerConfig, BreakerState, CircuitBreaker};
    ///
    /// let breaker = CircuitBreaker::new("payments", BreakerConfig::default())?;
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let log = seen.clone();
    /// breaker.on_transition(move |t| log.lock().unwrap().push((t.from, t.to)));
    /// breaker.force_open();
    /// breaker.reset();
    /// assert_eq!(
    ///     *seen.lock().unwrap(),
    ///     [(BreakerState::Closed, BreakerState::ForcedOpen), (BreakerState::ForcedOpen, BreakerState::Closed)]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn on_transition(&self, listener: impl Fn(&BreakerTransition) + Send + Sync + 'static) {
        self.inner.listeners.lock().push(Arc::new(listener));
    }

    /// Asks the cell behind `addr` through the breaker, waiting at most
    /// `timeout` for the answer, and records the outcome.
    ///
    /// An answer within `slow_call_duration` (measured from the permit) is a
    /// success, a later answer a slow success; a request the mailbox refused
    /// (full, closed, timed out: the callee is not serving) and an ask
    /// without answer (timeout, reply dropped) are failures.
    ///
    /// The request carries `timeout` as its deadline
    /// ([`Addr::ask_within`]): if it is still queued when that passes, it is
    /// not handled. The calling thread blocks: from inside a cell, prefer
    /// [`try_acquire`](CircuitBreaker::try_acquire) with
    /// [`Addr::ask_within`] and [`Pending::try_take`](crate::Pending::try_take).
    ///
    /// # Errors
    ///
    /// [`CallError::Open`] when the breaker refused: the request is built
    /// all the same (with a reply nobody waits for) and handed back inside.
    /// [`CallError::Send`] with the request when the mailbox refused it,
    /// [`CallError::Ask`] when no answer came.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{BreakerConfig, CallError, Cell, CellError, CircuitBreaker, Context, Reply, Runtime};
    ///
    /// struct Stock;
    ///
    /// impl Cell for Stock {
    ///     type Message = (String, Reply<u32>);
    ///
    ///     fn handle(&mut self, _ctx: &mut Context<Self>, (_sku, reply): Self::Message) -> Result<(), CellError> {
    ///         let _ = reply.send(7);
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let stock = runtime.spawn(Stock)?;
    /// let breaker = CircuitBreaker::new("stock", BreakerConfig::default())?;
    /// let left = breaker.ask(&stock, Duration::from_secs(5), |reply| ("sku-1".to_string(), reply))?;
    /// assert_eq!(left, 7);
    ///
    /// breaker.force_open();
    /// match breaker.ask(&stock, Duration::from_secs(5), |reply| ("sku-2".to_string(), reply)) {
    ///     Err(CallError::Open { msg: (sku, _), .. }) => assert_eq!(sku, "sku-2"),
    ///     other => panic!("expected a refusal, got {other:?}"),
    /// }
    /// # runtime.shutdown(Duration::from_secs(5));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn ask<M: Send + 'static, T>(
        &self,
        addr: &Addr<M>,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> M,
    ) -> Result<T, CallError<M>> {
        let permit = match self.try_acquire() {
            Ok(permit) => permit,
            Err(open) => {
                // The caller gets its request back; the reply answers no one.
                let (reply, pending) = ask::channel();
                drop(pending);
                return Err(CallError::Open { msg: make(reply), open });
            }
        };
        // The timeout travels with the request as its deadline.
        let pending = match addr.ask_within(timeout, make) {
            Ok(pending) => pending,
            Err(refused) => {
                permit.failure();
                return Err(CallError::Send(refused));
            }
        };
        match pending.wait(timeout) {
            Ok(answer) => {
                permit.success();
                Ok(answer)
            }
            Err(unanswered) => {
                permit.failure();
                Err(CallError::Ask(unanswered))
            }
        }
    }
}

impl Inner {
    /// Stores the next epoch's word in state `to` with `slots` trial slots
    /// taken, and queues the transition for the listeners. Called with the
    /// core lock held: only here does the epoch change.
    fn transition(&self, core: &mut Core, to: BreakerState, slots: u32, rates: Rates) -> Word {
        let current = Word(self.word.load(Acquire));
        let next = current.next(to, slots);
        // Release pairs with the Acquire loads of `try_acquire` and `record`.
        // A half-open slot taken by exchange between the load and this store
        // belongs to the old epoch: its permit is stale and ignored.
        self.word.store(next.0, Release);
        core.undelivered.push_back(BreakerTransition {
            breaker: self.name.clone(),
            from: current.state(),
            to,
            failure_rate: rates.failure,
            slow_call_rate: rates.slow,
            at: SystemTime::now(),
        });
        next
    }

    /// OPEN from CLOSED or HALF_OPEN, decided by `rates`.
    fn open(&self, core: &mut Core, now: Instant, rates: Rates) {
        self.transition(core, BreakerState::Open, 0, rates);
        core.open_until = now.checked_add(self.config.wait_in_open);
    }

    /// Records one call made with a permit of `epoch`; ignored when the
    /// breaker has moved on since.
    fn record(&self, epoch: u32, outcome: CallOutcome, elapsed: Duration, now: Instant) {
        let call =
            Call { failed: outcome == CallOutcome::Failure, slow: elapsed > self.config.slow_call_duration };
        let mut core = self.core.lock();
        let word = Word(self.word.load(Acquire));
        if word.epoch() != epoch {
            return;
        }
        let transitioned = match word.state() {
            BreakerState::Closed => {
                core.window.record(now, call);
                let rates = core.window.tally(now).rates(self.config.window_minimum());
                let trips = self.config.trips(rates);
                if trips {
                    self.open(&mut core, now, rates);
                }
                trips
            }
            BreakerState::HalfOpen => {
                core.trials.add(call);
                let permitted = self.config.permitted_in_half_open;
                let decided = core.trials.calls >= permitted;
                if decided {
                    let rates = core.trials.rates(permitted);
                    if self.config.trips(rates) {
                        self.open(&mut core, now, rates);
                    } else {
                        self.transition(&mut core, BreakerState::Closed, 0, rates);
                        core.window = Window::new(self.config.sliding_window);
                        core.metrics_from_trials = false;
                        core.open_until = None;
                    }
                }
                decided
            }
            // DISABLED records nothing; OPEN and FORCED_OPEN hand out no
            // permits of their own epoch.
            BreakerState::Open | BreakerState::ForcedOpen | BreakerState::Disabled => false,
        };
        drop(core);
        if transitioned {
            self.deliver_transitions();
        }
    }

    /// Gives back the trial slot of an unrecorded permit of `epoch`, if the
    /// breaker is still in that HALF_OPEN epoch.
    fn release(&self, epoch: u32) {
        let mut word = Word(self.word.load(Acquire));
        loop {
            if word.epoch() != epoch || word.state() != BreakerState::HalfOpen || word.slots() == 0 {
                return;
            }
            match self.word.compare_exchange(word.0, word.with_slots(word.slots() - 1).0, AcqRel, Acquire) {
                Ok(_) => return,
                Err(actual) => word = Word(actual),
            }
        }
    }

    /// Hands queued transitions to the listeners, unless another thread is
    /// already doing so (it will deliver these too, in order).
    fn deliver_transitions(&self) {
        loop {
            // Acquire pairs with the Release that ends another delivery.
            if self.delivering.compare_exchange(false, true, Acquire, Relaxed).is_err() {
                return;
            }
            let delivery = Delivery(&self.delivering);
            loop {
                let next = self.core.lock().undelivered.pop_front();
                let Some(transition) = next else { break };
                let listeners = self.listeners.lock().clone();
                for listener in &listeners {
                    listener(&transition);
                }
            }
            drop(delivery);
            // A transition queued while this thread was finishing found the
            // flag still set and left it here: look once more. The core lock
            // orders that queueing against this check.
            if self.core.lock().undelivered.is_empty() {
                return;
            }
        }
    }
}

/// Ends a delivery, even when a listener panics.
struct Delivery<'a>(&'a AtomicBool);

impl Drop for Delivery<'_> {
    fn drop(&mut self) {
        self.0.store(false, Release);
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker").field("name", &self.name()).field("state", &self.state()).finish()
    }
}

/// How a call made under a [`Permit`] went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The call did what was asked (slow or not).
    Success,
    /// The call failed.
    Failure,
}

/// Leave to make one call through a [`CircuitBreaker`]. Record how it went
/// with [`success`](Permit::success), [`failure`](Permit::failure) or
/// [`record`](Permit::record).
///
/// Dropping a permit unrecorded records nothing; a half-open permit gives
/// its trial slot back. A permit that outlives a transition is ignored (see
/// the module docs on stale permits).
#[must_use = "a permit's call counts only when its outcome is recorded"]
pub struct Permit {
    breaker: Arc<Inner>,
    epoch: u32,
    state: BreakerState,
    acquired_at: Instant,
    settled: bool,
}

impl Permit {
    /// The state the breaker was in when it gave this permit:
    /// [`Closed`](BreakerState::Closed), [`HalfOpen`](BreakerState::HalfOpen)
    /// (a trial call) or [`Disabled`](BreakerState::Disabled).
    pub fn state(&self) -> BreakerState {
        self.state
    }

    /// Records a success, timed from the acquire.
    pub fn success(self) {
        let elapsed = self.acquired_at.elapsed();
        self.record(CallOutcome::Success, elapsed);
    }

    /// Records a failure, timed from the acquire.
    pub fn failure(self) {
        let elapsed = self.acquired_at.elapsed();
        self.record(CallOutcome::Failure, elapsed);
    }

    /// Records `outcome` for a call that took `elapsed` (slow when longer
    /// than the breaker's `slow_call_duration`).
    pub fn record(self, outcome: CallOutcome, elapsed: Duration) {
        self.record_at(outcome, elapsed, Instant::now());
    }

    /// [`record`](Permit::record) at `now` (the time window's clock).
    pub(crate) fn record_at(mut self, outcome: CallOutcome, elapsed: Duration, now: Instant) {
        self.settled = true;
        self.breaker.record(self.epoch, outcome, elapsed, now);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.release(self.epoch);
        }
    }
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("breaker", &&*self.breaker.name).field("state", &self.state).finish()
    }
}

/// A call a [`CircuitBreaker`] refused.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BreakerOpen, BreakerState};
///
/// let refused = BreakerOpen {
///     breaker: "inventory".into(),
///     state: BreakerState::Open,
///     retry_after: Some(Duration::from_millis(1200)),
/// };
/// assert_eq!(refused.to_string(), "circuit breaker `inventory` is open; retry after 1.2s");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerOpen {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state that refused: `Open`, `ForcedOpen`, or `HalfOpen` with
    /// every trial call taken.
    pub state: BreakerState,
    /// For `Open`, how long until trial calls are admitted; `None` otherwise
    /// (and when the wait is beyond what the clock can represent).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for BreakerOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.breaker;
        match (self.state, self.retry_after) {
            (BreakerState::HalfOpen, _) => {
                write!(f, "circuit breaker `{name}` is half-open and its trial calls are taken")
            }
            (BreakerState::ForcedOpen, _) => write!(f, "circuit breaker `{name}` is forced open"),
            (_, Some(after)) => write!(f, "circuit breaker `{name}` is open; retry after {after:?}"),
            (_, None) => write!(f, "circuit breaker `{name}` is open"),
        }
    }
}

impl std::error::Error for BreakerOpen {}

/// Why [`CircuitBreaker::ask`] produced no answer. Every variant that holds
/// the request hands it back ([`into_message`](CallError::into_message)).
///
/// `Debug` and `Display` never print the message, so `M` needs no `Debug`
/// bound.
#[non_exhaustive]
pub enum CallError<M> {
    /// The breaker refused the call; the request was not sent.
    Open {
        /// The request, built with a reply nobody waits for.
        msg: M,
        /// Why the breaker refused.
        open: BreakerOpen,
    },
    /// The mailbox refused the request (recorded as a failure).
    Send(SendError<M>),
    /// The request was delivered and no answer came (recorded as a failure).
    Ask(AskError),
}

impl<M> CallError<M> {
    /// Takes back the request that was not delivered: `None` for
    /// [`CallError::Ask`], whose request was delivered.
    pub fn into_message(self) -> Option<M> {
        match self {
            CallError::Open { msg, .. } => Some(msg),
            CallError::Send(refused) => Some(refused.into_inner()),
            CallError::Ask(_) => None,
        }
    }

    /// The breaker refused the call.
    pub fn is_open(&self) -> bool {
        matches!(self, CallError::Open { .. })
    }
}

impl<M> fmt::Debug for CallError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Open { open, .. } => {
                f.debug_struct("Open").field("open", open).finish_non_exhaustive()
            }
            CallError::Send(refused) => f.debug_tuple("Send").field(refused).finish(),
            CallError::Ask(unanswered) => f.debug_tuple("Ask").field(unanswered).finish(),
        }
    }
}

impl<M> fmt::Display for CallError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Open { open, .. } => write!(f, "{open}"),
            CallError::Send(refused) => write!(f, "request not delivered: {refused}"),
            CallError::Ask(unanswered) => write!(f, "no answer: {unanswered}"),
        }
    }
}

impl<M> std::error::Error for CallError<M> {}

/// A breaker's state changed.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerTransition {
    /// The breaker's name.
    pub breaker: Arc<str>,
    /// The state left.
    pub from: BreakerState,
    /// The state entered (may equal `from` for `force_open`, `disable` and
    /// `reset`).
    pub to: BreakerState,
    /// The failure rate, in percent, of the calls that decided the
    /// transition: the sliding window for CLOSED → OPEN, the trial calls for
    /// HALF_OPEN → CLOSED or OPEN; `None` for the timed OPEN → HALF_OPEN and
    /// for manual transitions.
    pub failure_rate: Option<f64>,
    /// The slow-call rate, in percent, of the same calls.
    pub slow_call_rate: Option<f64>,
    /// When it happened.
    pub at: SystemTime,
}

/// What a breaker has counted ([`CircuitBreaker::metrics`]).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct BreakerMetrics {
    /// The state at the time of reading.
    pub state: BreakerState,
    /// Calls counted: in the sliding window, or the trial calls (see
    /// [`CircuitBreaker::metrics`]).
    pub calls: u32,
    /// Of those, failed.
    pub failed_calls: u32,
    /// Of those, slower than `slow_call_duration` (failed or not).
    pub slow_calls: u32,
    /// Failed calls in percent; `None` below the minimum number of calls.
    pub failure_rate: Option<f64>,
    /// Slow calls in percent; `None` below the minimum number of calls.
    pub slow_call_rate: Option<f64>,
    /// Calls refused since the breaker was made.
    pub not_permitted: u64,
}

#[cfg(cellrt_loom)]
impl CircuitBreaker {
    /// Trial slots taken in the current epoch, for the loom model.
    pub(crate) fn trial_slots(&self) -> u32 {
        Word(self.inner.word.load(Acquire)).slots()
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;
    use std::sync::mpsc;

    use crate::{Cell, CellConfig, CellError, Context, Runtime};

    const WAIT: Duration = Duration::from_secs(10);
    const FAST: Duration = Duration::from_millis(1);

    type Seen = std::sync::Arc<std::sync::Mutex<Vec<(BreakerState, BreakerState)>>>;

    /// A count window of `size` calls, all needed for a rate, a 10 s wait
    /// and 2 trial calls.
    fn counting(size: u32) -> BreakerConfig {
        BreakerConfig::default()
            .sliding_window(SlidingWindow::Count(size))
            .minimum_calls(size)
            .wait_in_open(WAIT)
            .permitted_in_half_open(2)
    }

    fn breaker(config: BreakerConfig) -> CircuitBreaker {
        CircuitBreaker::new("inventory", config).expect("valid config")
    }

    fn call(breaker: &CircuitBreaker, now: Instant, outcome: CallOutcome) {
        breaker.try_acquire_at(now).expect("the call is admitted").record_at(outcome, FAST, now);
    }

    fn watch(breaker: &CircuitBreaker) -> Seen {
        let seen = Seen::default();
        let log = seen.clone();
        breaker.on_transition(move |t| log.lock().unwrap().push((t.from, t.to)));
        seen
    }

    fn taken(seen: &Seen) -> Vec<(BreakerState, BreakerState)> {
        std::mem::take(&mut *seen.lock().unwrap())
    }

    /// A breaker on `counting(2)` opened at `base` by two failures.
    fn opened_at(base: Instant) -> CircuitBreaker {
        let breaker = breaker(counting(2));
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base, CallOutcome::Failure);
        assert_eq!(breaker.state(), BreakerState::Open);
        breaker
    }

    use BreakerState::{Closed, Disabled, ForcedOpen, HalfOpen, Open};

    #[test]
    fn default_config_is_resilience4j_defaults() {
        let config = BreakerConfig::default();
        assert_eq!(config.failure_rate_threshold, 50.0);
        assert_eq!(config.slow_call_rate_threshold, 100.0);
        assert_eq!(config.slow_call_duration, Duration::from_secs(60));
        assert_eq!(config.sliding_window, SlidingWindow::Count(100));
        assert_eq!(config.minimum_calls, 100);
        assert_eq!(config.wait_in_open, Duration::from_secs(60));
        assert_eq!(config.permitted_in_half_open, 10);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn setters_set_each_value() {
        let config = BreakerConfig::default()
            .failure_rate_threshold(20.0)
            .slow_call_rate_threshold(30.0)
            .slow_call_duration(Duration::from_millis(250))
            .sliding_window(SlidingWindow::Time(Duration::from_secs(2)))
            .minimum_calls(7)
            .wait_in_open(Duration::from_millis(1500))
            .permitted_in_half_open(3);
        assert_eq!(config.failure_rate_threshold, 20.0);
        assert_eq!(config.slow_call_rate_threshold, 30.0);
        assert_eq!(config.slow_call_duration, Duration::from_millis(250));
        assert_eq!(config.sliding_window, SlidingWindow::Time(Duration::from_secs(2)));
        assert_eq!(config.minimum_calls, 7);
        assert_eq!(config.wait_in_open, Duration::from_millis(1500));
        assert_eq!(config.permitted_in_half_open, 3);
    }

    #[test]
    fn thresholds_outside_zero_to_one_hundred_are_refused() {
        for bad in [f64::NAN, 0.0, -1.0, 100.1, f64::INFINITY, f64::NEG_INFINITY] {
            let failure = BreakerConfig::default().failure_rate_threshold(bad).validate();
            assert!(
                matches!(failure, Err(BreakerConfigError::FailureRateThreshold(v)) if v.to_bits() == bad.to_bits()),
                "failure threshold {bad}: {failure:?}"
            );
            let slow = BreakerConfig::default().slow_call_rate_threshold(bad).validate();
            assert!(
                matches!(slow, Err(BreakerConfigError::SlowCallRateThreshold(v)) if v.to_bits() == bad.to_bits()),
                "slow threshold {bad}: {slow:?}"
            );
        }
        for good in [0.001, 50.0, 100.0] {
            assert_eq!(BreakerConfig::default().failure_rate_threshold(good).validate(), Ok(()));
            assert_eq!(BreakerConfig::default().slow_call_rate_threshold(good).validate(), Ok(()));
        }
    }

    #[test]
    fn empty_windows_and_zero_counts_are_refused() {
        let check = |config: BreakerConfig| config.validate().unwrap_err();
        assert_eq!(
            check(BreakerConfig::default().sliding_window(SlidingWindow::Count(0))),
            BreakerConfigError::ZeroWindow
        );
        assert_eq!(
            check(BreakerConfig::default().sliding_window(SlidingWindow::Time(Duration::ZERO))),
            BreakerConfigError::ZeroWindow
        );
        assert_eq!(check(BreakerConfig::default().minimum_calls(0)), BreakerConfigError::ZeroMinimumCalls);
        assert_eq!(
            check(BreakerConfig::default().permitted_in_half_open(0)),
            BreakerConfigError::ZeroPermittedInHalfOpen
        );
        assert_eq!(
            BreakerConfig::default().sliding_window(SlidingWindow::Time(Duration::from_nanos(1))).validate(),
            Ok(())
        );
    }

    #[test]
    fn config_errors_say_what_is_wrong_and_the_allowed_range() {
        assert_eq!(
            BreakerConfigError::FailureRateThreshold(100.1).to_string(),
            "failure rate threshold 100.1 is outside (0, 100] percent"
        );
        assert_eq!(
            BreakerConfigError::FailureRateThreshold(f64::NAN).to_string(),
            "failure rate threshold NaN is outside (0, 100] percent"
        );
        assert_eq!(
            BreakerConfigError::SlowCallRateThreshold(-1.0).to_string(),
            "slow-call rate threshold -1 is outside (0, 100] percent"
        );
        assert_eq!(
            BreakerConfigError::ZeroWindow.to_string(),
            "sliding window is empty: it needs at least 1 call or a non-zero duration"
        );
        assert_eq!(BreakerConfigError::ZeroMinimumCalls.to_string(), "minimum calls must be at least 1");
        assert_eq!(
            BreakerConfigError::ZeroPermittedInHalfOpen.to_string(),
            "calls permitted in half-open must be at least 1"
        );
    }

    #[test]
    fn new_refuses_an_invalid_config() {
        let err = CircuitBreaker::new("inventory", BreakerConfig::default().minimum_calls(0)).unwrap_err();
        assert_eq!(err, BreakerConfigError::ZeroMinimumCalls);
    }

    #[test]
    fn new_breaker_is_closed_with_its_name_and_config() {
        let breaker = breaker(counting(4));
        assert_eq!(breaker.name(), "inventory");
        assert_eq!(breaker.state(), Closed);
        assert_eq!(breaker.config(), &counting(4));
        assert_eq!(format!("{breaker:?}"), "CircuitBreaker { name: \"inventory\", state: Closed }");
    }

    #[test]
    fn no_rate_is_computed_below_minimum_calls() {
        let breaker = breaker(counting(10).minimum_calls(5));
        let now = Instant::now();
        for _ in 0..4 {
            call(&breaker, now, CallOutcome::Failure);
        }
        let metrics = breaker.metrics_at(now);
        assert_eq!(metrics.state, Closed);
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.slow_calls), (4, 4, 0));
        assert_eq!((metrics.failure_rate, metrics.slow_call_rate), (None, None));
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn failure_rate_at_the_threshold_opens_the_breaker() {
        let breaker = breaker(counting(4));
        let seen = watch(&breaker);
        let transitions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = transitions.clone();
        breaker.on_transition(move |t| log.lock().unwrap().push(t.clone()));
        let now = Instant::now();
        call(&breaker, now, CallOutcome::Success);
        call(&breaker, now, CallOutcome::Success);
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Closed);
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
        assert_eq!(taken(&seen), [(Closed, Open)]);
        let transitions = transitions.lock().unwrap();
        assert_eq!(&*transitions[0].breaker, "inventory");
        assert_eq!(transitions[0].failure_rate, Some(50.0));
        assert_eq!(transitions[0].slow_call_rate, Some(0.0));
    }

    #[test]
    fn failure_rate_below_the_threshold_keeps_the_breaker_closed() {
        let breaker = breaker(counting(4));
        let now = Instant::now();
        for outcome in
            [CallOutcome::Success, CallOutcome::Success, CallOutcome::Success, CallOutcome::Failure]
        {
            call(&breaker, now, outcome);
        }
        let metrics = breaker.metrics_at(now);
        assert_eq!(metrics.state, Closed);
        assert_eq!(metrics.failure_rate, Some(25.0));
        assert_eq!(metrics.slow_call_rate, Some(0.0));
    }

    #[test]
    fn count_window_smaller_than_minimum_calls_decides_at_its_size() {
        let breaker = breaker(BreakerConfig::default().sliding_window(SlidingWindow::Count(2)));
        assert_eq!(breaker.config().minimum_calls, 100);
        let now = Instant::now();
        call(&breaker, now, CallOutcome::Success);
        assert_eq!(breaker.metrics_at(now).failure_rate, None);
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
    }

    #[test]
    fn count_window_forgets_its_oldest_call() {
        let breaker = breaker(counting(3));
        let now = Instant::now();
        for outcome in [CallOutcome::Failure, CallOutcome::Success, CallOutcome::Success] {
            call(&breaker, now, outcome);
        }
        assert_eq!(breaker.metrics_at(now).failed_calls, 1);
        call(&breaker, now, CallOutcome::Success);
        let metrics = breaker.metrics_at(now);
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.failure_rate), (3, 0, Some(0.0)));
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Closed, "1 failure in 3 calls is below 50 %");
        call(&breaker, now, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open, "2 failures in the last 3 calls");
    }

    #[test]
    fn time_window_keeps_the_last_ten_buckets() {
        let config =
            counting(1).sliding_window(SlidingWindow::Time(Duration::from_millis(100))).minimum_calls(3);
        let breaker = breaker(config);
        let base = Instant::now();
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base + Duration::from_millis(95), CallOutcome::Success);
        // Buckets of 10 ms from the first call: 0 ms and 95 ms fall in buckets 0 and 9.
        let metrics = breaker.metrics_at(base + Duration::from_millis(99));
        assert_eq!((metrics.calls, metrics.failed_calls), (2, 1));
        // At 100 ms bucket 10 begins and bucket 0 leaves the window.
        let metrics = breaker.metrics_at(base + Duration::from_millis(100));
        assert_eq!((metrics.calls, metrics.failed_calls), (1, 0));
        let metrics = breaker.metrics_at(base + Duration::from_millis(200));
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.failure_rate), (0, 0, None));
    }

    #[test]
    fn time_window_rates_count_only_unexpired_calls() {
        let config = counting(1)
            .sliding_window(SlidingWindow::Time(Duration::from_millis(100)))
            .minimum_calls(2)
            .failure_rate_threshold(50.0);
        let breaker = breaker(config);
        let base = Instant::now();
        call(&breaker, base, CallOutcome::Failure);
        // 150 ms later the failure has expired: two successes, 0 %.
        call(&breaker, base + Duration::from_millis(150), CallOutcome::Success);
        call(&breaker, base + Duration::from_millis(151), CallOutcome::Success);
        assert_eq!(breaker.state(), Closed);
        assert_eq!(breaker.metrics_at(base + Duration::from_millis(151)).failure_rate, Some(0.0));
        call(&breaker, base + Duration::from_millis(160), CallOutcome::Failure);
        call(&breaker, base + Duration::from_millis(170), CallOutcome::Failure);
        assert_eq!(breaker.state(), Open, "2 failures in 4 calls within 100 ms");
    }

    #[test]
    fn time_window_reuses_a_bucket_for_a_later_span() {
        let config =
            counting(1).sliding_window(SlidingWindow::Time(Duration::from_secs(1))).minimum_calls(10);
        let breaker = breaker(config);
        let base = Instant::now();
        call(&breaker, base, CallOutcome::Failure);
        // 1 s later the same bucket slot holds a new span.
        call(&breaker, base + Duration::from_secs(1), CallOutcome::Success);
        let metrics = breaker.metrics_at(base + Duration::from_secs(1));
        assert_eq!((metrics.calls, metrics.failed_calls), (1, 0));
    }

    #[test]
    fn slow_call_rate_at_the_threshold_opens_the_breaker() {
        let config =
            counting(4).slow_call_duration(Duration::from_millis(100)).slow_call_rate_threshold(50.0);
        let breaker = breaker(config);
        let transitions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = transitions.clone();
        breaker.on_transition(move |t| log.lock().unwrap().push(t.clone()));
        let now = Instant::now();
        let slow = Duration::from_millis(200);
        breaker.try_acquire_at(now).unwrap().record_at(CallOutcome::Success, slow, now);
        call(&breaker, now, CallOutcome::Success);
        call(&breaker, now, CallOutcome::Success);
        assert_eq!(breaker.state(), Closed);
        breaker.try_acquire_at(now).unwrap().record_at(CallOutcome::Success, slow, now);
        assert_eq!(breaker.state(), Open);
        let transitions = transitions.lock().unwrap();
        assert_eq!((transitions[0].from, transitions[0].to), (Closed, Open));
        assert_eq!(transitions[0].failure_rate, Some(0.0));
        assert_eq!(transitions[0].slow_call_rate, Some(50.0));
    }

    #[test]
    fn a_call_is_slow_only_beyond_slow_call_duration() {
        let breaker = breaker(counting(10).slow_call_duration(Duration::from_millis(100)));
        let now = Instant::now();
        breaker.try_acquire_at(now).unwrap().record_at(CallOutcome::Success, Duration::from_millis(100), now);
        assert_eq!(breaker.metrics_at(now).slow_calls, 0);
        breaker.try_acquire_at(now).unwrap().record_at(CallOutcome::Success, Duration::from_millis(101), now);
        assert_eq!(breaker.metrics_at(now).slow_calls, 1);
    }

    #[test]
    fn a_slow_failure_counts_as_failed_and_as_slow() {
        let breaker = breaker(counting(10).slow_call_duration(Duration::from_millis(100)));
        let now = Instant::now();
        breaker.try_acquire_at(now).unwrap().record_at(CallOutcome::Failure, Duration::from_secs(1), now);
        let metrics = breaker.metrics_at(now);
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.slow_calls), (1, 1, 1));
    }

    #[test]
    fn open_breaker_refuses_until_its_wait_has_passed() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let refused = breaker.try_acquire_at(base + Duration::from_secs(4)).unwrap_err();
        assert_eq!(
            refused,
            BreakerOpen {
                breaker: "inventory".into(),
                state: Open,
                retry_after: Some(Duration::from_secs(6))
            }
        );
        assert_eq!(refused.to_string(), "circuit breaker `inventory` is open; retry after 6s");
        assert_eq!(breaker.state(), Open);
        assert_eq!(breaker.metrics_at(base).not_permitted, 1);
    }

    #[test]
    fn open_breaker_admits_a_trial_call_once_its_wait_has_passed() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let seen = watch(&breaker);
        let transitions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = transitions.clone();
        breaker.on_transition(move |t| log.lock().unwrap().push(t.clone()));
        let permit = breaker.try_acquire_at(base + WAIT).expect("a trial call");
        assert_eq!(permit.state(), HalfOpen);
        assert_eq!(breaker.state(), HalfOpen);
        assert_eq!(taken(&seen), [(Open, HalfOpen)]);
        let transitions = transitions.lock().unwrap();
        assert_eq!((transitions[0].failure_rate, transitions[0].slow_call_rate), (None, None));
    }

    #[test]
    fn half_open_admits_exactly_the_permitted_trial_calls() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let now = base + WAIT;
        let first = breaker.try_acquire_at(now).unwrap();
        let second = breaker.try_acquire_at(now).unwrap();
        let refused = breaker.try_acquire_at(now).unwrap_err();
        assert_eq!(refused, BreakerOpen { breaker: "inventory".into(), state: HalfOpen, retry_after: None });
        assert_eq!(
            refused.to_string(),
            "circuit breaker `inventory` is half-open and its trial calls are taken"
        );
        assert_eq!((first.state(), second.state()), (HalfOpen, HalfOpen));
        assert_eq!(breaker.metrics_at(now).not_permitted, 1);
    }

    #[test]
    fn half_open_closes_with_an_empty_window_when_trial_calls_succeed() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let now = base + WAIT;
        let seen = watch(&breaker);
        let transitions = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = transitions.clone();
        breaker.on_transition(move |t| log.lock().unwrap().push(t.clone()));
        call(&breaker, now, CallOutcome::Success);
        assert_eq!(breaker.state(), HalfOpen);
        let metrics = breaker.metrics_at(now);
        assert_eq!((metrics.calls, metrics.failure_rate), (1, None));
        call(&breaker, now, CallOutcome::Success);
        assert_eq!(breaker.state(), Closed);
        assert_eq!(taken(&seen), [(Open, HalfOpen), (HalfOpen, Closed)]);
        assert_eq!(transitions.lock().unwrap()[1].failure_rate, Some(0.0));
        let metrics = breaker.metrics_at(now);
        assert_eq!((metrics.state, metrics.calls, metrics.failed_calls), (Closed, 0, 0));
    }

    #[test]
    fn half_open_reopens_for_a_new_wait_when_trial_calls_fail() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let trial = base + WAIT;
        let seen = watch(&breaker);
        call(&breaker, trial, CallOutcome::Success);
        call(&breaker, trial, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
        assert_eq!(taken(&seen), [(Open, HalfOpen), (HalfOpen, Open)]);
        let metrics = breaker.metrics_at(trial);
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.failure_rate), (2, 1, Some(50.0)));
        let refused = breaker.try_acquire_at(trial + Duration::from_secs(1)).unwrap_err();
        assert_eq!(refused.retry_after, Some(Duration::from_secs(9)));
        assert_eq!(breaker.try_acquire_at(trial + WAIT).unwrap().state(), HalfOpen);
    }

    #[test]
    fn dropped_trial_permit_gives_its_slot_back() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let now = base + WAIT;
        let first = breaker.try_acquire_at(now).unwrap();
        let second = breaker.try_acquire_at(now).unwrap();
        assert!(breaker.try_acquire_at(now).is_err());
        drop(second);
        let third = breaker.try_acquire_at(now).expect("the slot was given back");
        assert_eq!(breaker.metrics_at(now).calls, 0, "a dropped permit records nothing");
        first.record_at(CallOutcome::Success, FAST, now);
        third.record_at(CallOutcome::Success, FAST, now);
        assert_eq!(breaker.state(), Closed);
    }

    #[test]
    fn dropped_closed_permit_records_nothing() {
        let breaker = breaker(counting(4));
        let now = Instant::now();
        drop(breaker.try_acquire_at(now).unwrap());
        assert_eq!(breaker.metrics_at(now).calls, 0);
        assert_eq!(breaker.state(), Closed);
    }

    #[test]
    fn closed_permit_recorded_after_opening_is_ignored() {
        let base = Instant::now();
        let breaker = breaker(counting(2));
        let late = breaker.try_acquire_at(base).unwrap();
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
        let trial = breaker.try_acquire_at(base + WAIT).unwrap();
        late.record_at(CallOutcome::Failure, FAST, base + WAIT);
        let metrics = breaker.metrics_at(base + WAIT);
        assert_eq!((metrics.state, metrics.calls), (HalfOpen, 0), "the stale record is not a trial call");
        trial.record_at(CallOutcome::Success, FAST, base + WAIT);
        assert_eq!(breaker.metrics_at(base + WAIT).calls, 1);
    }

    #[test]
    fn trial_permit_recorded_after_reset_is_ignored() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let trial = breaker.try_acquire_at(base + WAIT).unwrap();
        breaker.reset();
        trial.record_at(CallOutcome::Failure, FAST, base + WAIT);
        let metrics = breaker.metrics_at(base + WAIT);
        assert_eq!((metrics.state, metrics.calls), (Closed, 0));
    }

    #[test]
    fn stale_trial_permit_dropped_later_frees_no_slot_of_a_later_half_open() {
        let base = Instant::now();
        let breaker = opened_at(base);
        let stale = breaker.try_acquire_at(base + WAIT).unwrap();
        breaker.reset();
        call(&breaker, base + WAIT, CallOutcome::Failure);
        call(&breaker, base + WAIT, CallOutcome::Failure);
        assert_eq!(breaker.state(), Open);
        let later = base + WAIT * 2;
        let first = breaker.try_acquire_at(later).unwrap();
        let second = breaker.try_acquire_at(later).unwrap();
        drop(stale);
        assert!(breaker.try_acquire_at(later).is_err(), "the stale permit gave back a slot it did not hold");
        drop((first, second));
    }

    #[test]
    fn forced_open_refuses_every_call_until_reset() {
        let breaker = breaker(counting(2));
        let seen = watch(&breaker);
        let now = Instant::now();
        breaker.force_open();
        let refused = breaker.try_acquire_at(now + Duration::from_secs(3600)).unwrap_err();
        assert_eq!(
            refused,
            BreakerOpen { breaker: "inventory".into(), state: ForcedOpen, retry_after: None }
        );
        assert_eq!(refused.to_string(), "circuit breaker `inventory` is forced open");
        breaker.force_open();
        breaker.reset();
        assert_eq!(breaker.try_acquire_at(now).unwrap().state(), Closed);
        assert_eq!(taken(&seen), [(Closed, ForcedOpen), (ForcedOpen, ForcedOpen), (ForcedOpen, Closed)]);
    }

    #[test]
    fn disabled_breaker_admits_everything_and_records_nothing() {
        let breaker = breaker(counting(2));
        let seen = watch(&breaker);
        let now = Instant::now();
        breaker.disable();
        for _ in 0..10 {
            let permit = breaker.try_acquire_at(now).unwrap();
            assert_eq!(permit.state(), Disabled);
            permit.record_at(CallOutcome::Failure, FAST, now);
        }
        let metrics = breaker.metrics_at(now);
        assert_eq!((metrics.state, metrics.calls, metrics.not_permitted), (Disabled, 0, 0));
        assert_eq!(taken(&seen), [(Closed, Disabled)]);
    }

    #[test]
    fn reset_closes_with_an_empty_window() {
        let breaker = breaker(counting(4));
        let seen = watch(&breaker);
        let now = Instant::now();
        call(&breaker, now, CallOutcome::Failure);
        breaker.reset();
        assert_eq!(breaker.metrics_at(now).calls, 0);
        assert_eq!(taken(&seen), [(Closed, Closed)]);
        let opened = opened_at(now);
        opened.reset();
        assert_eq!(opened.try_acquire_at(now).unwrap().state(), Closed);
    }

    #[test]
    fn every_listener_hears_every_transition_in_order() {
        let base = Instant::now();
        let breaker = breaker(counting(2));
        let first = watch(&breaker);
        let second = watch(&breaker);
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base + WAIT, CallOutcome::Failure);
        call(&breaker, base + WAIT, CallOutcome::Failure);
        call(&breaker, base + WAIT * 2, CallOutcome::Success);
        call(&breaker, base + WAIT * 2, CallOutcome::Success);
        breaker.force_open();
        breaker.disable();
        breaker.reset();
        let expected = [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed),
            (Closed, ForcedOpen),
            (ForcedOpen, Disabled),
            (Disabled, Closed),
        ];
        assert_eq!(taken(&first), expected);
        assert_eq!(taken(&second), expected);
    }

    #[test]
    fn a_listener_may_make_the_breaker_transition() {
        let base = Instant::now();
        let breaker = breaker(counting(2));
        let seen = watch(&breaker);
        // The listener holds the breaker that holds it: a cycle this test
        // accepts, it lives until the test ends.
        let inside = breaker.clone();
        breaker.on_transition(move |t| {
            if t.to == Open {
                inside.reset();
            }
        });
        call(&breaker, base, CallOutcome::Failure);
        call(&breaker, base, CallOutcome::Failure);
        assert_eq!(breaker.state(), Closed);
        assert_eq!(taken(&seen), [(Closed, Open), (Open, Closed)]);
    }

    #[test]
    fn every_refusal_is_counted() {
        let base = Instant::now();
        let breaker = opened_at(base);
        for _ in 0..3 {
            assert!(breaker.try_acquire_at(base).is_err());
        }
        breaker.force_open();
        assert!(breaker.try_acquire_at(base).is_err());
        assert_eq!(breaker.metrics_at(base).not_permitted, 4);
    }

    #[test]
    fn open_without_a_representable_end_gives_no_retry_time() {
        let breaker = breaker(counting(1).wait_in_open(Duration::MAX));
        let now = Instant::now();
        call(&breaker, now, CallOutcome::Failure);
        let refused = breaker.try_acquire_at(now).unwrap_err();
        assert_eq!(refused.retry_after, None);
        assert_eq!(refused.to_string(), "circuit breaker `inventory` is open");
    }

    #[test]
    fn call_error_hands_the_message_back_and_never_prints_it() {
        struct Secret(u8);
        let open = BreakerOpen { breaker: "inventory".into(), state: ForcedOpen, retry_after: None };
        let refused = CallError::Open { msg: Secret(1), open };
        assert!(refused.is_open());
        assert_eq!(
            format!("{refused:?}"),
            "Open { open: BreakerOpen { breaker: \"inventory\", state: ForcedOpen, retry_after: None }, .. }"
        );
        assert_eq!(refused.to_string(), "circuit breaker `inventory` is forced open");
        assert_eq!(refused.into_message().map(|m| m.0), Some(1));
        let full = CallError::Send(SendError::Full(Secret(2)));
        assert_eq!(format!("{full:?}"), "Send(Full(..))");
        assert_eq!(full.to_string(), "request not delivered: mailbox full");
        assert_eq!(full.into_message().map(|m| m.0), Some(2));
        let unanswered = CallError::<Secret>::Ask(AskError::Unanswered);
        assert_eq!(unanswered.to_string(), "no answer: ask dropped unanswered");
        assert!(unanswered.into_message().is_none());
    }

    #[test]
    fn breaker_types_are_send_and_sync() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<CircuitBreaker>();
        send_sync::<Permit>();
        send_sync::<BreakerOpen>();
        send_sync::<BreakerTransition>();
        send_sync::<BreakerMetrics>();
        send_sync::<CallError<u8>>();
    }

    /// The callee of the `ask` tests.
    enum Stock {
        Count(u32, Reply<u32>),
        Forget(Reply<u32>),
        Slow(Duration, Reply<u32>),
        /// Tells `started`, then handles nothing until `release` is sent to.
        Block(mpsc::Sender<()>, mpsc::Receiver<()>),
    }

    struct StockCell;

    impl Cell for StockCell {
        type Message = Stock;

        fn handle(&mut self, _ctx: &mut Context<Self>, msg: Stock) -> Result<(), CellError> {
            match msg {
                Stock::Count(n, reply) => {
                    let _ = reply.send(n * 2);
                }
                Stock::Forget(reply) => drop(reply),
                Stock::Slow(delay, reply) => {
                    // The scripted slowness of the dependency.
                    std::thread::sleep(delay);
                    let _ = reply.send(1);
                }
                Stock::Block(started, release) => {
                    let _ = started.send(());
                    let _ = release.recv();
                }
            }
            Ok(())
        }
    }

    fn runtime() -> Runtime {
        Runtime::builder().worker_threads(1).send_timeout(Duration::from_millis(20)).build().unwrap()
    }

    #[test]
    fn ask_answered_in_time_is_a_success() {
        let runtime = runtime();
        let stock = runtime.spawn(StockCell).unwrap();
        let breaker = breaker(counting(10));
        let answer = breaker.ask(&stock, Duration::from_secs(10), |reply| Stock::Count(21, reply));
        assert_eq!(answer.unwrap(), 42);
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.slow_calls), (1, 0, 0));
        runtime.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn ask_whose_reply_is_dropped_is_a_failure() {
        let runtime = runtime();
        let stock = runtime.spawn(StockCell).unwrap();
        let breaker = breaker(counting(10));
        let answer = breaker.ask(&stock, Duration::from_secs(10), Stock::Forget);
        assert!(matches!(answer, Err(CallError::Ask(AskError::Unanswered))), "{answer:?}");
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failed_calls), (1, 1));
        runtime.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn ask_answered_late_is_a_slow_success() {
        let runtime = runtime();
        let stock = runtime.spawn(StockCell).unwrap();
        let breaker = breaker(counting(10).slow_call_duration(Duration::from_millis(10)));
        let answer = breaker
            .ask(&stock, Duration::from_secs(10), |reply| Stock::Slow(Duration::from_millis(30), reply));
        assert_eq!(answer.unwrap(), 1);
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failed_calls, metrics.slow_calls), (1, 0, 1));
        runtime.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn ask_refused_by_the_breaker_hands_the_request_back() {
        let runtime = runtime();
        let stock = runtime.spawn(StockCell).unwrap();
        let breaker = breaker(counting(10));
        breaker.force_open();
        let refused = breaker.ask(&stock, Duration::from_secs(10), |reply| Stock::Count(5, reply));
        let Err(CallError::Open { msg: Stock::Count(n, reply), open }) = refused else {
            panic!("expected the request back: {refused:?}");
        };
        assert_eq!(n, 5);
        assert_eq!(open.state, ForcedOpen);
        assert!(reply.is_abandoned(), "nobody waits for the reply of a refused request");
        assert_eq!(reply.send(1), Err(1));
        assert_eq!(breaker.metrics().not_permitted, 1);
        runtime.shutdown(Duration::from_secs(5));
    }

    #[test]
    fn ask_the_mailbox_refuses_is_a_failure_and_hands_the_request_back() {
        let runtime = runtime();
        let stock = runtime.spawn_with(CellConfig::new().capacity(1), StockCell).unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        stock.try_send(Stock::Block(started_tx, release_rx)).unwrap();
        started.recv().unwrap();
        let (filler, _filler_answer) = crate::ask::channel();
        stock.try_send(Stock::Count(0, filler)).unwrap();
        let breaker = breaker(counting(10));
        let refused = breaker.ask(&stock, Duration::from_secs(10), |reply| Stock::Count(9, reply));
        let Err(CallError::Send(SendError::Timeout(Stock::Count(n, _)))) = refused else {
            panic!("expected the mailbox to refuse: {refused:?}");
        };
        assert_eq!(n, 9);
        let metrics = breaker.metrics();
        assert_eq!((metrics.calls, metrics.failed_calls), (1, 1));
        release.send(()).unwrap();
        runtime.shutdown(Duration::from_secs(5));
    }
}
