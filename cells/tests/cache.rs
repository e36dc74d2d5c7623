//! The stale-while-revalidate cache, on a real runtime, in front of a
//! scripted upstream cell that answers, fails, holds its answers until
//! released, or drops them.

use std::time::Duration;

use cellrt::{
    Addr, BreakerConfig, BreakerOpen, BreakerState, Cell, CellError, CellPath, CircuitBreaker, Context,
    JournalQuery, Reply, Runtime, SignalKind, SlidingWindow,
};
use cellrt_cells::{CacheError, CacheMsg, CacheStats, Cached, SwrCache, UpstreamReply};

const PATIENCE: Duration = Duration::from_secs(10);
const HOUR: Duration = Duration::from_secs(3600);

/// How the scripted upstream answers.
#[derive(Clone)]
enum Mode {
    /// Answers this value at once.
    Healthy(u32),
    /// Answers this error at once.
    Failing(String),
    /// Keeps the requests until `Release`, then answers this value.
    Holding(u32),
    /// Drops the replies unanswered.
    Forgetting,
}

enum Upstream {
    Fetch(String, UpstreamReply<u32>),
    Set(Mode),
    /// Answers every held request.
    Release,
    /// The keys requested so far, in order.
    Calls(Reply<Vec<String>>),
}

struct Scripted {
    mode: Mode,
    held: Vec<UpstreamReply<u32>>,
    calls: Vec<String>,
}

impl Cell for Scripted {
    type Message = Upstream;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Upstream) -> Result<(), CellError> {
        match msg {
            Upstream::Fetch(key, reply) => {
                self.calls.push(key);
                match &self.mode {
                    Mode::Healthy(value) => drop(reply.send(Ok(*value))),
                    Mode::Failing(error) => drop(reply.send(Err(error.clone()))),
                    Mode::Holding(_) => self.held.push(reply),
                    Mode::Forgetting => drop(reply),
                }
            }
            Upstream::Set(mode) => self.mode = mode,
            Upstream::Release => {
                let value = match self.mode {
                    Mode::Holding(value) | Mode::Healthy(value) => value,
                    _ => 0,
                };
                for reply in self.held.drain(..) {
                    drop(reply.send(Ok(value)));
                }
            }
            Upstream::Calls(reply) => drop(reply.send(self.calls.clone())),
        }
        Ok(())
    }
}

type Cache = Addr<CacheMsg<String, u32>>;

struct Setup {
    runtime: Runtime,
    upstream: Addr<Upstream>,
    cache: Cache,
    breaker: CircuitBreaker,
}

impl Setup {
    /// A cache (as `configure` sets it) in front of an upstream in `mode`,
    /// through `breaker`.
    fn with_breaker(
        mode: Mode,
        breaker: impl FnOnce(&Runtime) -> CircuitBreaker,
        configure: impl FnOnce(SwrCache<String, u32, Upstream>) -> SwrCache<String, u32, Upstream>,
    ) -> Setup {
        let runtime = Runtime::builder().worker_threads(1).build().unwrap();
        let upstream = runtime.spawn(Scripted { mode, held: Vec::new(), calls: Vec::new() }).unwrap();
        let breaker = breaker(&runtime);
        let cache = SwrCache::new(upstream.clone(), breaker.clone(), Upstream::Fetch);
        let cache = runtime.spawn(configure(cache)).unwrap();
        Setup { runtime, upstream, cache, breaker }
    }

    /// As `with_breaker`, with a breaker that never opens by itself.
    fn new(
        mode: Mode,
        configure: impl FnOnce(SwrCache<String, u32, Upstream>) -> SwrCache<String, u32, Upstream>,
    ) -> Setup {
        Setup::with_breaker(
            mode,
            |_| CircuitBreaker::new("upstream", BreakerConfig::default()).unwrap(),
            configure,
        )
    }

    fn get(&self, key: &str) -> Result<Cached<u32>, CacheError> {
        self.cache.ask(|reply| CacheMsg::Get { key: key.to_string(), reply }).unwrap().wait(PATIENCE).unwrap()
    }

    fn stats(&self) -> CacheStats {
        self.cache.ask(CacheMsg::Stats).unwrap().wait(PATIENCE).unwrap()
    }

    /// The keys upstream was asked for. Upstream handles its messages in
    /// order, so whatever was sent to it before has been handled.
    fn upstream_calls(&self) -> Vec<String> {
        self.upstream.ask(Upstream::Calls).unwrap().wait(PATIENCE).unwrap()
    }

    fn set(&self, mode: Mode) {
        self.upstream.send(Upstream::Set(mode)).unwrap();
    }

    fn shutdown(self) {
        self.runtime.shutdown(PATIENCE);
    }
}

fn fresh(value: u32) -> impl Fn(&Cached<u32>) -> bool {
    move |cached| cached.value == value && !cached.stale
}

fn stale(value: u32) -> impl Fn(&Cached<u32>) -> bool {
    move |cached| cached.value == value && cached.stale
}

/// The counters, as (fresh hits, stale served, misses, upstream calls,
/// upstream failures, refused by breaker).
fn counts(stats: &CacheStats) -> (u64, u64, u64, u64, u64, u64) {
    (
        stats.fresh_hits,
        stats.stale_served,
        stats.misses,
        stats.upstream_calls,
        stats.upstream_failures,
        stats.refused_by_breaker,
    )
}

#[test]
fn a_fresh_value_is_served_without_calling_upstream() {
    let setup = Setup::new(Mode::Healthy(7), |cache| cache.fresh_for(HOUR));
    let first = setup.get("sku-1").unwrap();
    assert_eq!((first.value, first.stale, first.age), (7, false, Duration::ZERO));
    assert!(fresh(7)(&setup.get("sku-1").unwrap()));
    assert_eq!(setup.upstream_calls(), ["sku-1"]);
    assert_eq!(counts(&setup.stats()), (1, 0, 1, 1, 0, 0));
    assert_eq!(setup.breaker.metrics().calls, 1);
    setup.shutdown();
}

#[test]
fn a_stale_value_is_served_at_once_and_refreshed_in_the_background() {
    let setup = Setup::new(Mode::Healthy(1), |cache| {
        cache.fresh_for(Duration::from_millis(300)).serve_stale_for(HOUR)
    });
    assert!(fresh(1)(&setup.get("sku-1").unwrap()));
    // Let the value age past its freshness.
    std::thread::sleep(Duration::from_millis(350));
    setup.set(Mode::Holding(2));
    let served = setup.get("sku-1").unwrap();
    assert!(stale(1)(&served), "{served:?}");
    assert!(served.age >= Duration::from_millis(350));
    assert!(stale(1)(&setup.get("sku-1").unwrap()), "the refresh is still held upstream");
    assert_eq!(setup.upstream_calls(), ["sku-1", "sku-1"], "one refresh in flight, not one per Get");
    setup.upstream.send(Upstream::Release).unwrap();
    setup.upstream_calls();
    assert!(fresh(2)(&setup.get("sku-1").unwrap()));
    assert_eq!(counts(&setup.stats()), (1, 2, 1, 2, 0, 0));
    setup.shutdown();
}

#[test]
fn gets_of_a_key_being_fetched_wait_for_one_upstream_request() {
    let setup = Setup::new(Mode::Holding(5), |cache| cache.fresh_for(HOUR));
    let ask = |key: &str| setup.cache.ask(|reply| CacheMsg::Get { key: key.to_string(), reply }).unwrap();
    let (first, second, other) = (ask("sku-1"), ask("sku-1"), ask("sku-2"));
    assert_eq!(counts(&setup.stats()), (0, 0, 3, 2, 0, 0));
    assert_eq!(setup.upstream_calls(), ["sku-1", "sku-2"]);
    setup.upstream.send(Upstream::Release).unwrap();
    for pending in [first, second, other] {
        let cached = pending.wait(PATIENCE).unwrap().unwrap();
        assert_eq!((cached.value, cached.stale), (5, false));
    }
    assert_eq!(setup.upstream_calls(), ["sku-1", "sku-2"]);
    setup.shutdown();
}

#[test]
fn with_the_breaker_open_the_last_good_value_is_served_marked_stale() {
    let setup = Setup::new(Mode::Healthy(3), |cache| cache.fresh_for(Duration::ZERO).serve_stale_for(HOUR));
    assert!(fresh(3)(&setup.get("sku-1").unwrap()));
    setup.breaker.force_open();
    assert!(stale(3)(&setup.get("sku-1").unwrap()));
    assert_eq!(counts(&setup.stats()), (0, 1, 1, 1, 0, 1));
    assert_eq!(setup.upstream_calls(), ["sku-1"]);
    setup.shutdown();
}

#[test]
fn when_upstream_fails_the_last_good_value_is_still_served_marked_stale() {
    let setup = Setup::new(Mode::Healthy(1), |cache| cache.fresh_for(Duration::ZERO).serve_stale_for(HOUR));
    assert!(fresh(1)(&setup.get("sku-1").unwrap()));
    setup.set(Mode::Failing("db down".into()));
    assert!(stale(1)(&setup.get("sku-1").unwrap()));
    assert_eq!(setup.upstream_calls().len(), 2);
    assert_eq!(counts(&setup.stats()), (0, 1, 1, 2, 1, 0), "the refresh failed");
    assert!(stale(1)(&setup.get("sku-1").unwrap()));
    assert_eq!(setup.breaker.metrics().failed_calls, 1);
    setup.shutdown();
}

#[test]
fn a_miss_while_upstream_fails_is_unavailable_with_upstream_error() {
    let setup = Setup::new(Mode::Failing("db down".into()), |cache| cache);
    let err = setup.get("sku-1").unwrap_err();
    assert_eq!(err, CacheError::Upstream("db down".into()));
    assert_eq!(err.to_string(), "value unavailable: upstream failed: db down");
    assert_eq!(counts(&setup.stats()), (0, 0, 1, 1, 1, 0));
    let metrics = setup.breaker.metrics();
    assert_eq!((metrics.calls, metrics.failed_calls), (1, 1));
    setup.shutdown();
}

#[test]
fn a_miss_while_the_breaker_is_open_is_unavailable_without_calling_upstream() {
    let setup = Setup::new(Mode::Healthy(1), |cache| cache);
    setup.breaker.force_open();
    let err = setup.get("sku-1").unwrap_err();
    assert_eq!(
        err,
        CacheError::BreakerOpen(BreakerOpen {
            breaker: "upstream".into(),
            state: BreakerState::ForcedOpen,
            retry_after: None
        })
    );
    assert_eq!(err.to_string(), "value unavailable: circuit breaker `upstream` is forced open");
    assert!(setup.upstream_calls().is_empty());
    assert_eq!(counts(&setup.stats()), (0, 0, 1, 0, 0, 1));
    setup.shutdown();
}

#[test]
fn upstream_failures_open_a_journaled_breaker_and_later_misses_are_refused() {
    let config =
        BreakerConfig::default().sliding_window(SlidingWindow::Count(2)).minimum_calls(2).wait_in_open(HOUR);
    let setup = Setup::with_breaker(
        Mode::Failing("db down".into()),
        |runtime| runtime.breaker("stock", config).unwrap(),
        |cache| cache,
    );
    assert_eq!(setup.get("sku-1"), Err(CacheError::Upstream("db down".into())));
    assert_eq!(setup.get("sku-2"), Err(CacheError::Upstream("db down".into())));
    assert_eq!(setup.breaker.state(), BreakerState::Open);
    let Err(CacheError::BreakerOpen(open)) = setup.get("sku-3") else { panic!("expected a refusal") };
    assert_eq!(open.state, BreakerState::Open);
    assert_eq!(counts(&setup.stats()), (0, 0, 3, 2, 2, 1));
    let journal = setup.runtime.journal(&JournalQuery::new().cell(CellPath::breaker("stock").unwrap()));
    assert_eq!(journal.len(), 1);
    assert!(matches!(
        journal[0].kind,
        SignalKind::BreakerTransition { from: BreakerState::Closed, to: BreakerState::Open, .. }
    ));
    setup.shutdown();
}

#[test]
fn a_value_past_serve_stale_for_is_not_served() {
    let setup = Setup::new(Mode::Healthy(1), |cache| {
        cache.fresh_for(Duration::ZERO).serve_stale_for(Duration::from_millis(200))
    });
    assert!(fresh(1)(&setup.get("sku-1").unwrap()));
    // Let the value age past what may be served.
    std::thread::sleep(Duration::from_millis(250));
    setup.breaker.force_open();
    assert!(matches!(setup.get("sku-1"), Err(CacheError::BreakerOpen(_))));
    assert_eq!(counts(&setup.stats()), (0, 0, 2, 1, 0, 1));
    setup.shutdown();
}

#[test]
fn an_upstream_that_never_answers_times_out() {
    let timeout = Duration::from_millis(50);
    let setup = Setup::new(Mode::Holding(1), |cache| {
        cache.upstream_timeout(timeout).poll_every(Duration::from_millis(5))
    });
    let err = setup.get("sku-1").unwrap_err();
    assert_eq!(err, CacheError::Timeout(timeout));
    assert_eq!(err.to_string(), "value unavailable: upstream did not answer within 50ms");
    assert_eq!(counts(&setup.stats()), (0, 0, 1, 1, 1, 0));
    assert_eq!(setup.breaker.metrics().failed_calls, 1);
    setup.shutdown();
}

#[test]
fn an_upstream_that_drops_the_request_leaves_it_unanswered() {
    let setup = Setup::new(Mode::Forgetting, |cache| cache);
    assert_eq!(setup.get("sku-1"), Err(CacheError::Unanswered));
    assert_eq!(counts(&setup.stats()), (0, 0, 1, 1, 1, 0));
    setup.shutdown();
}
