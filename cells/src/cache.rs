//! [`SwrCache`]: a stale-while-revalidate cache cell in front of an upstream
//! cell, calling it through a circuit breaker.
//!
//! # Freshness
//!
//! A value is *fresh* for [`fresh_for`](SwrCache::fresh_for) after its answer
//! was taken from upstream, then *stale* for
//! [`serve_stale_for`](SwrCache::serve_stale_for) more, then expired (and
//! forgotten). A `Get`:
//!
//! - of a fresh value answers it at once;
//! - of a stale value answers it at once, marked stale, and refreshes it in
//!   the background;
//! - of a missing or expired value waits for upstream (the reply is parked)
//!   and answers the value, or a [`CacheError`] saying why there is none.
//!
//! There is at most one upstream request in flight per key: `Get`s of a key
//! being fetched wait for that request.
//!
//! # Upstream and the breaker
//!
//! Every upstream request goes through the [`CircuitBreaker`] given at
//! construction (a breaker from `Runtime::breaker` journals its
//! transitions): it is refused while the breaker is open, and its outcome is
//! recorded: an `Ok` answer is a success, an `Err` answer, a request the
//! mailbox refused, a reply dropped unanswered and no answer within
//! [`upstream_timeout`](SwrCache::upstream_timeout) are failures. Call
//! durations are measured from the request to the moment the cache takes the
//! answer, so they include up to one poll period.
//!
//! The cell never blocks its worker: requests are sent with
//! `Addr::ask_within` (the upstream timeout travels as the request's
//! deadline, so an upstream that falls behind skips the requests nobody waits
//! for), which inside a cell never waits for mailbox room (a full upstream
//! mailbox is a failure at once), and answers are collected with
//! `Pending::try_take` on every `Get` and on a periodic self-tick
//! ([`poll_every`](SwrCache::poll_every)) that runs only while requests are
//! in flight, so an idle cache costs no CPU.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

use cellrt::{
    Addr, BreakerOpen, Cell, CellError, CircuitBreaker, Context, Pending, Permit, Reply, SendError,
    TimerHandle,
};

/// What a `Get` answers.
pub type CacheReply<V> = Reply<Result<Cached<V>, CacheError>>;

/// What the upstream answers: the value, or why there is none.
pub type UpstreamReply<V> = Reply<Result<V, String>>;

/// Messages of a [`SwrCache`].
pub enum CacheMsg<K, V> {
    /// The value of `key`.
    Get {
        /// The key.
        key: K,
        /// Answered with the value (possibly stale) or why there is none.
        reply: CacheReply<V>,
    },
    /// The counters so far.
    Stats(Reply<CacheStats>),
    /// Collects upstream answers and expires what timed out. Sent by the
    /// cache's own timer every `poll_every`; sending more is harmless.
    Poll,
}

impl<K, V> fmt::Debug for CacheMsg<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CacheMsg::Get { .. } => "Get { .. }",
            CacheMsg::Stats(_) => "Stats(..)",
            CacheMsg::Poll => "Poll",
        })
    }
}

/// A value served by a [`SwrCache`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cached<V> {
    /// The value.
    pub value: V,
    /// Served past its freshness: stale and being refreshed, or kept because
    /// upstream failed or the breaker is open.
    pub stale: bool,
    /// Time since the value was taken from upstream.
    pub age: Duration,
}

/// Why a [`SwrCache`] has no value to give.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// The breaker refused to call upstream.
    BreakerOpen(BreakerOpen),
    /// Upstream answered with this error.
    Upstream(String),
    /// Upstream dropped the request unanswered (it stopped or failed).
    Unanswered,
    /// Upstream did not answer within this timeout.
    Timeout(Duration),
    /// Upstream's mailbox was full.
    UpstreamFull,
    /// Upstream has stopped.
    UpstreamClosed,
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("value unavailable: ")?;
        match self {
            CacheError::BreakerOpen(open) => write!(f, "{open}"),
            CacheError::Upstream(error) => write!(f, "upstream failed: {error}"),
            CacheError::Unanswered => f.write_str("upstream dropped the request unanswered"),
            CacheError::Timeout(after) => write!(f, "upstream did not answer within {after:?}"),
            CacheError::UpstreamFull => f.write_str("upstream mailbox full"),
            CacheError::UpstreamClosed => f.write_str("upstream stopped"),
        }
    }
}

impl std::error::Error for CacheError {}

/// What a [`SwrCache`] has counted since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// `Get`s answered with a fresh cached value.
    pub fresh_hits: u64,
    /// `Get`s answered with a stale value.
    pub stale_served: u64,
    /// `Get`s that found no value to serve (missing or expired).
    pub misses: u64,
    /// Requests sent to upstream (admitted by the breaker).
    pub upstream_calls: u64,
    /// Upstream requests that failed: an error answer, no answer in time, a
    /// reply dropped, or the request refused by upstream's mailbox.
    pub upstream_failures: u64,
    /// Upstream requests the breaker refused.
    pub refused_by_breaker: u64,
}

/// A value and when it was taken from upstream.
struct Entry<V> {
    value: V,
    fetched_at: Instant,
}

/// An upstream request in flight, and the `Get`s waiting for it.
struct Fetch<V> {
    pending: Pending<Result<V, String>>,
    permit: Permit,
    sent_at: Instant,
    waiters: Vec<CacheReply<V>>,
}

/// Builds the upstream request for a key.
type MakeRequest<K, V, U> = Box<dyn Fn(K, UpstreamReply<V>) -> U + Send>;

/// A stale-while-revalidate cache in front of the cell behind an `Addr<U>`
/// (see the module docs of `cache.rs` for the rules).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{BreakerConfig, Cell, CellError, Context, Reply, Runtime};
/// use cellrt_cells::{CacheMsg, SwrCache};
///
/// /// The slow source of truth: stock levels by product.
/// struct Stock;
///
/// impl Cell for Stock {
///     type Message = (String, Reply<Result<u32, String>>);
///
///     fn handle(&mut self, _ctx: &mut Context<Self>, (sku, reply): Self::Message) -> Result<(), CellError> {
///         let _ = reply.send(Ok(sku.len() as u32));
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let stock = runtime.spawn(Stock)?;
/// let breaker = runtime.breaker("stock", BreakerConfig::default())?;
/// let cache = runtime.spawn(
///     SwrCache::new(stock, breaker, |sku: String, reply| (sku, reply))
///         .fresh_for(Duration::from_secs(30))
///         .serve_stale_for(Duration::from_secs(300)),
/// )?;
/// let get = |key: &str| cache.ask(|reply| CacheMsg::Get { key: key.to_string(), reply });
/// let first = get("sku-42")?.wait(Duration::from_secs(5))??;
/// assert_eq!((first.value, first.stale), (6, false));
/// let again = get("sku-42")?.wait(Duration::from_secs(5))??;
/// assert_eq!(again.value, 6);
/// let stats = cache.ask(CacheMsg::Stats)?.wait(Duration::from_secs(5))?;
/// assert_eq!((stats.misses, stats.fresh_hits, stats.upstream_calls), (1, 1, 1));
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SwrCache<K, V, U> {
    upstream: Addr<U>,
    breaker: CircuitBreaker,
    make_request: MakeRequest<K, V, U>,
    fresh_for: Duration,
    serve_stale_for: Duration,
    upstream_timeout: Duration,
    poll_every: Duration,
    entries: HashMap<K, Entry<V>>,
    fetches: HashMap<K, Fetch<V>>,
    /// The poll timer, running while requests are in flight.
    ticks: Option<TimerHandle>,
    stats: CacheStats,
}

impl<K, V, U> SwrCache<K, V, U>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
    U: Send + 'static,
{
    /// A cache in front of `upstream`, calling it through `breaker`, with
    /// requests built by `make_request`. Defaults: fresh for 60 s, served
    /// stale for 10 min more, upstream timeout 5 s, poll every 10 ms.
    pub fn new(
        upstream: Addr<U>,
        breaker: CircuitBreaker,
        make_request: impl Fn(K, UpstreamReply<V>) -> U + Send + 'static,
    ) -> Self {
        SwrCache {
            upstream,
            breaker,
            make_request: Box::new(make_request),
            fresh_for: Duration::from_secs(60),
            serve_stale_for: Duration::from_secs(600),
            upstream_timeout: Duration::from_secs(5),
            poll_every: Duration::from_millis(10),
            entries: HashMap::new(),
            fetches: HashMap::new(),
            ticks: None,
            stats: CacheStats::default(),
        }
    }

    /// How long a value is fresh after it was taken from upstream. Zero:
    /// every cached value is stale (served, and refreshed).
    pub fn fresh_for(mut self, fresh_for: Duration) -> Self {
        self.fresh_for = fresh_for;
        self
    }

    /// How long past its freshness a value may still be served, marked
    /// stale. Zero: never.
    pub fn serve_stale_for(mut self, serve_stale_for: Duration) -> Self {
        self.serve_stale_for = serve_stale_for;
        self
    }

    /// How long an upstream request may go unanswered before it counts as a
    /// failure. It travels with the request as its deadline
    /// ([`Addr::ask_within`](cellrt::Addr::ask_within)): an upstream that
    /// falls behind skips the requests that have timed out.
    pub fn upstream_timeout(mut self, timeout: Duration) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// How often the cache collects upstream answers while requests are in
    /// flight (zero is taken as 1 ms).
    pub fn poll_every(mut self, period: Duration) -> Self {
        self.poll_every = period;
        self
    }

    fn get(&mut self, now: Instant, key: K, reply: CacheReply<V>) {
        self.poll(now);
        if let Some(entry) = self.entries.get(&key) {
            let age = now.saturating_duration_since(entry.fetched_at);
            if age < self.fresh_for {
                self.stats.fresh_hits += 1;
                let _ = reply.send(Ok(Cached { value: entry.value.clone(), stale: false, age }));
                return;
            }
            if age < self.fresh_for.saturating_add(self.serve_stale_for) {
                self.stats.stale_served += 1;
                let served = Cached { value: entry.value.clone(), stale: true, age };
                // The refresh is on its way before the stale value is; a
                // refusal leaves the stale value.
                let _ = self.fetch(now, &key);
                let _ = reply.send(Ok(served));
                return;
            }
            self.entries.remove(&key);
        }
        self.stats.misses += 1;
        match self.fetch(now, &key) {
            Ok(()) => {
                if let Some(fetch) = self.fetches.get_mut(&key) {
                    fetch.waiters.push(reply);
                }
            }
            Err(error) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Makes sure a request for `key` is in flight.
    fn fetch(&mut self, now: Instant, key: &K) -> Result<(), CacheError> {
        if self.fetches.contains_key(key) {
            return Ok(());
        }
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(open) => {
                self.stats.refused_by_breaker += 1;
                return Err(CacheError::BreakerOpen(open));
            }
        };
        self.stats.upstream_calls += 1;
        let make_request = &self.make_request;
        // The timeout travels as the request's deadline: an upstream that
        // falls behind skips requests nobody waits for any more.
        match self.upstream.ask_within(self.upstream_timeout, |reply| make_request(key.clone(), reply)) {
            Ok(pending) => {
                let fetch = Fetch { pending, permit, sent_at: now, waiters: Vec::new() };
                self.fetches.insert(key.clone(), fetch);
                Ok(())
            }
            Err(refused) => {
                permit.failure();
                self.stats.upstream_failures += 1;
                Err(match refused {
                    SendError::Closed(_) => CacheError::UpstreamClosed,
                    _ => CacheError::UpstreamFull,
                })
            }
        }
    }

    /// Ticks every `poll_every` while requests are in flight, and not at
    /// all otherwise: an idle cache costs no CPU.
    fn pace_polls(&mut self, ctx: &mut Context<Self>) {
        if self.fetches.is_empty() {
            if let Some(ticks) = self.ticks.take() {
                ticks.cancel();
            }
        } else if self.ticks.is_none() {
            self.ticks = Some(ctx.send_interval(self.poll_every, || CacheMsg::Poll));
        }
    }

    /// Settles every request answered or timed out, and forgets expired
    /// values.
    fn poll(&mut self, now: Instant) {
        for (key, mut fetch) in std::mem::take(&mut self.fetches) {
            let outcome = match fetch.pending.try_take() {
                Ok(Some(Ok(value))) => Ok(value),
                Ok(Some(Err(error))) => Err(CacheError::Upstream(error)),
                Ok(None) => {
                    if now.saturating_duration_since(fetch.sent_at) < self.upstream_timeout {
                        self.fetches.insert(key, fetch);
                        continue;
                    }
                    Err(CacheError::Timeout(self.upstream_timeout))
                }
                // `try_take` only fails when the reply was dropped unanswered.
                Err(_) => Err(CacheError::Unanswered),
            };
            self.settle(now, key, fetch, outcome);
        }
        let servable = self.fresh_for.saturating_add(self.serve_stale_for);
        self.entries.retain(|_, entry| now.saturating_duration_since(entry.fetched_at) < servable);
    }

    fn settle(&mut self, now: Instant, key: K, fetch: Fetch<V>, outcome: Result<V, CacheError>) {
        let Fetch { permit, waiters, .. } = fetch;
        match outcome {
            Ok(value) => {
                permit.success();
                for waiter in waiters {
                    let _ =
                        waiter.send(Ok(Cached { value: value.clone(), stale: false, age: Duration::ZERO }));
                }
                self.entries.insert(key, Entry { value, fetched_at: now });
            }
            Err(error) => {
                permit.failure();
                self.stats.upstream_failures += 1;
                for waiter in waiters {
                    let _ = waiter.send(Err(error.clone()));
                }
            }
        }
    }
}

impl<K, V, U> Cell for SwrCache<K, V, U>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
    U: Send + 'static,
{
    type Message = CacheMsg<K, V>;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: CacheMsg<K, V>) -> Result<(), CellError> {
        let now = Instant::now();
        match msg {
            CacheMsg::Get { key, reply } => self.get(now, key, reply),
            CacheMsg::Stats(reply) => {
                self.poll(now);
                let _ = reply.send(self.stats.clone());
            }
            CacheMsg::Poll => self.poll(now),
        }
        self.pace_polls(ctx);
        Ok(())
    }

    fn message_kind(msg: &CacheMsg<K, V>) -> &'static str {
        match msg {
            CacheMsg::Get { .. } => "Get",
            CacheMsg::Stats(_) => "Stats",
            CacheMsg::Poll => "Poll",
        }
    }
}

impl<K, V, U> fmt::Debug for SwrCache<K, V, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SwrCache")
            .field("breaker", &self.breaker)
            .field("entries", &self.entries.len())
            .field("in_flight", &self.fetches.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
