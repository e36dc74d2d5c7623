//! What a new user gets wrong, one case at a time: each misuse gets a typed
//! error at once, or a documented, deterministic meaning.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use cellrt::{
    Addr, AskError, Cell, CellConfig, CellError, Context, NameError, Reply, Runtime, SendError, SpawnError,
};
use common::{eventually, gate, open, wait_for, Gated, Log, Rec, Recorder, PATIENCE};

/// Answers every ask with the number it carries.
struct Echo;

enum EchoMsg {
    Ask(u32, Reply<u32>),
    Put(u32),
}

impl Cell for Echo {
    type Message = EchoMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: EchoMsg) -> Result<(), CellError> {
        if let EchoMsg::Ask(n, reply) = msg {
            let _ = reply.send(n);
        }
        Ok(())
    }
}

fn one_worker() -> Runtime {
    Runtime::builder().worker_threads(1).quiet_panics(true).build().unwrap()
}

#[test]
fn a_zero_capacity_is_refused_and_named_in_the_error() {
    let rt = one_worker();
    let err = rt.spawn_with(CellConfig::new().capacity(0), Echo).unwrap_err();
    assert_eq!(err, SpawnError::ZeroCapacity);
    assert_eq!(err.to_string(), "mailbox capacity must be at least 1");
    rt.shutdown(PATIENCE);
}

#[test]
fn the_largest_default_capacity_builds_and_serves() {
    let rt = Runtime::builder().worker_threads(1).default_capacity(usize::MAX).build().unwrap();
    let echo = rt.spawn(Echo).unwrap();
    assert_eq!(echo.capacity(), usize::MAX);
    assert_eq!(echo.ask(|r| EchoMsg::Ask(9, r)).unwrap().wait(PATIENCE), Ok(9));
    rt.shutdown(PATIENCE);
}

#[test]
fn after_stop_returns_every_send_is_closed_with_its_message_back() {
    let rt = Runtime::builder().worker_threads(2).build().unwrap();
    for round in 0..200_u32 {
        let echo = rt.spawn(Echo).unwrap();
        echo.try_send(EchoMsg::Put(round)).unwrap();
        rt.stop(&echo);
        match echo.try_send(EchoMsg::Put(round)) {
            Err(SendError::Closed(EchoMsg::Put(n))) => assert_eq!(n, round),
            other => panic!("round {round}: try_send after stop gave {:?}", other.map_err(|e| e.to_string())),
        }
        match echo.send(EchoMsg::Put(round + 1)) {
            Err(SendError::Closed(EchoMsg::Put(n))) => assert_eq!(n, round + 1),
            other => panic!("round {round}: send after stop gave {:?}", other.map_err(|e| e.to_string())),
        }
        match echo.ask(|reply| EchoMsg::Ask(round, reply)) {
            Err(SendError::Closed(EchoMsg::Ask(n, _))) => assert_eq!(n, round),
            Err(other) => panic!("round {round}: ask after stop gave {other}"),
            Ok(_) => panic!("round {round}: ask after stop was accepted"),
        }
        wait_for("the stopped cell to terminate", || echo.is_closed());
    }
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.cells_stopped, 0, "every cell had stopped before the shutdown");
}

#[test]
fn messages_queued_before_stop_are_undelivered_and_their_asks_unanswered() {
    let rt = one_worker();
    let gate = gate();
    let log = Log::default();
    let gated =
        rt.spawn_with(CellConfig::new().capacity(8), Gated { gate: gate.clone(), log: log.clone() }).unwrap();
    gated.send(1).unwrap();
    assert!(eventually(|| gated.queued() == 0), "the first message is being handled");
    gated.send(2).unwrap();
    gated.send(3).unwrap();
    rt.stop(&gated);
    assert_eq!(gated.try_send(4), Err(SendError::Closed(4)));
    open(&gate);
    wait_for("the cell to stop", || gated.is_closed());
    assert_eq!(log.items(), [1], "the queued messages 2 and 3 were not handled");
    rt.shutdown(PATIENCE);

    let rt = one_worker();
    let gate = common::gate();
    let blocker = rt.spawn(Gated { gate: gate.clone(), log: Log::default() }).unwrap();
    let echo = rt.spawn(Echo).unwrap();
    blocker.send(0).unwrap();
    assert!(eventually(|| blocker.queued() == 0), "the only worker is held");
    let pending = echo.ask(|reply| EchoMsg::Ask(5, reply)).unwrap();
    rt.stop(&echo);
    open(&gate);
    assert_eq!(pending.wait(PATIENCE), Err(AskError::Unanswered));
    rt.shutdown(PATIENCE);
}

#[test]
fn a_supervised_cell_stopped_through_the_runtime_is_not_restarted() {
    use cellrt::{ChildSpec, SupervisorSpec};
    let rt = one_worker();
    let spec = SupervisorSpec::new("sup").child(ChildSpec::new("echo", || Echo));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let echo: Addr<EchoMsg> = sup.child("echo").unwrap();
    rt.stop(&echo);
    assert!(echo.try_send(EchoMsg::Put(1)).unwrap_err().is_closed());
    wait_for("the child to terminate", || echo.is_closed());
    std::thread::sleep(Duration::from_millis(20));
    assert!(echo.is_closed(), "a permanent child stopped by the runtime stays stopped");
    assert!(echo.try_send(EchoMsg::Put(2)).unwrap_err().is_closed());
    rt.shutdown(PATIENCE);
}

/// A cell that stays busy until its gate opens, so its mailbox can be filled.
fn full_mailbox(rt: &Runtime) -> (Addr<u64>, Arc<(Mutex<bool>, std::sync::Condvar)>) {
    let gate = gate();
    let gated = rt
        .spawn_with(CellConfig::new().capacity(1), Gated { gate: gate.clone(), log: Log::default() })
        .unwrap();
    gated.send(1).unwrap();
    assert!(eventually(|| gated.queued() == 0), "the first message is being handled");
    gated.send(2).unwrap();
    (gated, gate)
}

#[test]
fn a_zero_send_timeout_never_waits_for_room() {
    let rt = Runtime::builder().worker_threads(1).send_timeout(Duration::ZERO).build().unwrap();
    let (gated, gate) = full_mailbox(&rt);
    for n in 0..1_000 {
        assert_eq!(gated.send(n), Err(SendError::Full(n)), "send with a zero runtime send timeout");
        assert_eq!(gated.send_timeout(n, Duration::ZERO), Err(SendError::Full(n)));
    }
    open(&gate);
    rt.shutdown(PATIENCE);
}

#[test]
fn a_zero_ask_within_comes_back_as_timeout_with_nothing_sent() {
    let rt = one_worker();
    let echo = rt.spawn(Echo).unwrap();
    for n in 0..1_000 {
        match echo.ask_within(Duration::ZERO, |reply| EchoMsg::Ask(n, reply)) {
            Err(SendError::Timeout(EchoMsg::Ask(back, _))) => assert_eq!(back, n),
            Err(other) => panic!("ask_within(ZERO) gave {other}"),
            Ok(_) => panic!("ask_within(ZERO) was sent"),
        }
    }
    assert_eq!(rt.dead_letter_count(), 0, "nothing was queued, so nothing expired");
    assert_eq!(echo.ask(|r| EchoMsg::Ask(7, r)).unwrap().wait(PATIENCE), Ok(7));
    rt.shutdown(PATIENCE);
}

#[test]
fn a_zero_wait_takes_only_an_answer_already_there() {
    let rt = one_worker();
    let echo = rt.spawn_with(CellConfig::new().capacity(1_000), Echo).unwrap();
    let gate = gate();
    let blocker = rt.spawn(Gated { gate: gate.clone(), log: Log::default() }).unwrap();
    blocker.send(0).unwrap();
    assert!(eventually(|| blocker.queued() == 0), "the only worker is held");
    for n in 0..1_000 {
        let pending = echo.ask(|r| EchoMsg::Ask(n, r)).unwrap();
        assert_eq!(pending.wait(Duration::ZERO), Err(AskError::Timeout), "no worker could answer yet");
    }
    open(&gate);
    rt.shutdown(PATIENCE);
}

/// Asks its own address from its handler.
struct Narcissus {
    outcome: Log<String>,
}

impl Cell for Narcissus {
    type Message = Option<Reply<u32>>;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Option<Reply<u32>>) -> Result<(), CellError> {
        if let Some(reply) = msg {
            let _ = reply.send(1);
            return Ok(());
        }
        let started = Instant::now();
        let outcome = match ctx.addr().ask(Some) {
            Err(SendError::SelfAsk(Some(_))) => "self-ask refused".to_owned(),
            Err(other) => format!("other error: {other}"),
            Ok(pending) => format!("sent: {:?}", pending.wait(Duration::from_secs(1))),
        };
        assert!(started.elapsed() < Duration::from_secs(1), "the refusal came at once");
        let within = match ctx.addr().ask_within(Duration::from_secs(1), Some) {
            Err(err) if err.is_self_ask() => "self-ask refused",
            _ => "not refused",
        };
        self.outcome.push(format!("{outcome}; {within}"));
        Ok(())
    }
}

#[test]
fn a_cell_asking_itself_is_refused_at_once() {
    let rt = one_worker();
    let outcome = Log::default();
    let cell = rt.spawn(Narcissus { outcome: outcome.clone() }).unwrap();
    cell.send(None).unwrap();
    wait_for("the handler", || outcome.len() == 1);
    assert_eq!(outcome.items(), ["self-ask refused; self-ask refused"]);
    // From outside the cell, the same address answers.
    assert_eq!(cell.ask(Some).unwrap().wait(PATIENCE), Ok(1));
    rt.shutdown(PATIENCE);
}

type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// Keeps the runtime's warnings, with their fields.
struct Warnings(Events);

struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Warnings {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() == tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() == tracing::Level::WARN {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn warnings() -> Events {
    static INSTALL: Once = Once::new();
    static EVENTS: std::sync::OnceLock<Events> = std::sync::OnceLock::new();
    let events = EVENTS.get_or_init(Events::default).clone();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Warnings(events.clone())).unwrap());
    events
}

/// Waits, inside its handler, for another cell's answer.
struct Waiter {
    echo: Addr<EchoMsg>,
    answers: Log<Result<u32, AskError>>,
}

impl Cell for Waiter {
    type Message = u32;

    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        let answer = self.echo.ask(|r| EchoMsg::Ask(n, r)).map_err(|e| CellError::msg(e.to_string()))?;
        self.answers.push(answer.wait(Duration::from_secs(5)));
        Ok(())
    }
}

#[test]
fn a_blocking_wait_on_a_worker_is_warned_about_once_per_dispatcher() {
    let events = warnings();
    let rt = Runtime::builder().worker_threads(1).dispatcher("blocking-probe", 2).build().unwrap();
    let echo = rt.spawn(Echo).unwrap();
    let answers = Log::default();
    let waiter = rt
        .spawn_with(CellConfig::new().dispatcher("blocking-probe"), Waiter { echo, answers: answers.clone() })
        .unwrap();
    for n in 0..3 {
        waiter.send(n).unwrap();
    }
    wait_for("three answers", || answers.len() == 3);
    assert_eq!(answers.items(), [Ok(0), Ok(1), Ok(2)]);
    let probe: Vec<_> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|fields| fields.get("dispatcher").map(String::as_str) == Some("blocking-probe"))
        .cloned()
        .collect();
    assert_eq!(probe.len(), 1, "{probe:?}");
    assert_eq!(
        probe[0]["message"],
        "a handler blocks its worker thread waiting for an answer; send the answer back as a message \
         instead (warned once per dispatcher)"
    );
    rt.shutdown(PATIENCE);
}

#[test]
fn a_shutdown_after_a_panic_is_not_clean() {
    let rt = one_worker();
    let log = Log::default();
    let recorder = rt.spawn(Recorder::new(&log)).unwrap();
    recorder.send(Rec::Panic("boom")).unwrap();
    wait_for("the failure", || rt.failure_count() == 1);
    let report = rt.shutdown(PATIENCE);
    assert_eq!((report.failures, report.timed_out, report.cells_killed), (1, false, 0));
    assert!(!report.is_clean(), "{report:?}");

    let rt = one_worker();
    let report = rt.shutdown(PATIENCE);
    assert_eq!(report.failures, 0);
    assert!(report.is_clean(), "{report:?}");
}

#[test]
fn a_refused_name_says_which_rule_and_where() {
    let rt = one_worker();
    let refusal = |name: &str| rt.spawn_with(CellConfig::named(name), Echo).unwrap_err();
    let cases: [(&str, NameError, &str); 5] = [
        ("", NameError::Empty, "name is empty: a name has 1 to 255 bytes"),
        (
            "a/b",
            NameError::InvalidChar { found: '/', position: 1 },
            "name has '/' at byte 1: a name has no '/', whitespace or control characters",
        ),
        (
            "#1",
            NameError::Reserved,
            "name starts with '#': names starting with '#' are kept for unnamed cells",
        ),
        (
            "x\n",
            NameError::InvalidChar { found: '\n', position: 1 },
            "name has '\\n' at byte 1: a name has no '/', whitespace or control characters",
        ),
        (
            "with space",
            NameError::InvalidChar { found: ' ', position: 4 },
            "name has ' ' at byte 4: a name has no '/', whitespace or control characters",
        ),
    ];
    for (name, reason, text) in cases {
        let err = refusal(name);
        assert_eq!(err, SpawnError::InvalidName(reason), "{name:?}");
        assert_eq!(err.to_string(), format!("invalid cell name: {text}"), "{name:?}");
    }
    let long = "n".repeat(300);
    assert_eq!(
        refusal(&long).to_string(),
        "invalid cell name: name is 300 bytes long: a name has at most 255 bytes"
    );
    assert!(rt.spawn_with(CellConfig::named("ordres-élevés#1"), Echo).is_ok());
    rt.shutdown(PATIENCE);
}

/// Fails every message.
struct Brittle;

impl Cell for Brittle {
    type Message = u32;

    fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
        Err(CellError::msg("brittle"))
    }
}

#[test]
fn a_cell_waiting_for_its_restart_stopped_through_the_runtime_is_retired() {
    use cellrt::{ChildSpec, RestartBackoff, SupervisorSpec};
    let rt = one_worker();
    let backoff = RestartBackoff::exponential(Duration::from_millis(300), Duration::from_millis(300));
    let spec = SupervisorSpec::new("sup").backoff(backoff).child(ChildSpec::new("brittle", || Brittle));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let brittle: Addr<u32> = sup.child("brittle").unwrap();
    brittle.send(1).unwrap();
    wait_for("the failure", || rt.failure_count() == 1);
    // Suspended for the backoff: sends still queue.
    assert_eq!(brittle.try_send(2), Ok(()));
    rt.stop(&brittle);
    assert_eq!(brittle.try_send(3), Err(SendError::Closed(3)));
    wait_for("the child to terminate", || brittle.is_closed());
    std::thread::sleep(Duration::from_millis(400));
    assert!(brittle.is_closed(), "the backoff's restart did not bring it back");
    assert_eq!(rt.failure_count(), 1, "message 2 was never handled");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_restart_backoff_of_the_longest_duration_with_jitter_waits_instead_of_overflowing() {
    use cellrt::{ChildSpec, RestartBackoff, SupervisionEventKind, SupervisorSpec};
    let rt = one_worker();
    // The base delay is `Duration::MAX`; its jitter used to be added to it
    // with `+`, which overflowed and panicked the supervisor's restart
    // decision: the restart was never scheduled nor recorded.
    let backoff = RestartBackoff::exponential(Duration::MAX, Duration::MAX).jitter(1.0);
    let spec = SupervisorSpec::new("sup").backoff(backoff).child(ChildSpec::new("brittle", || Brittle));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let brittle: Addr<u32> = sup.child("brittle").unwrap();
    brittle.send(1).unwrap();
    let restarting = || {
        sup.history().into_iter().find_map(|event| match event.kind {
            SupervisionEventKind::Restarting { restarts, delay } => Some((event.child, restarts, delay)),
            _ => None,
        })
    };
    wait_for("the restart to be scheduled", || restarting().is_some());
    assert_eq!(restarting(), Some(("brittle".to_owned(), 1, Duration::MAX)));
    let failed: Vec<String> = rt.failures().iter().map(|failure| failure.path.to_string()).collect();
    assert_eq!(failed, ["/sup/brittle"]);
    rt.shutdown(PATIENCE);
}

#[cfg(feature = "storage")]
#[test]
fn a_storage_cache_below_the_engine_minimum_is_refused_at_build() {
    use cellrt::{BuildError, StorageConfig, StoreError, MIN_CACHE_BYTES};
    let err = Runtime::builder().storage(StorageConfig::in_memory().cache_bytes(0)).build().unwrap_err();
    assert_eq!(err, BuildError::Storage(StoreError::CacheTooSmall { bytes: 0 }));
    assert_eq!(
        err.to_string(),
        "cannot open the storage: a storage cache of 0 bytes is below the minimum, 256 bytes"
    );
    let smallest =
        StorageConfig::in_memory().cache_bytes(MIN_CACHE_BYTES).background_flush(Some(Duration::MAX));
    let rt = Runtime::builder().worker_threads(1).storage(smallest).build().unwrap();
    rt.shutdown(PATIENCE);
}

#[cfg(feature = "observe")]
#[test]
fn a_plan_under_the_longest_analysis_window_is_evaluated_after_the_longest_duration() {
    use cellrt::{Action, Expected, Metric, ObservationConfig, Recomposable, RecomposeConfig, Recomposer};
    // The plan's evaluation period is the window times `evaluation_windows`;
    // it used to be multiplied with `*`, which overflowed and panicked the
    // caller of `propose`.
    let rt = Runtime::builder()
        .worker_threads(1)
        .observation(ObservationConfig::default().window(Duration::MAX))
        .build()
        .unwrap();
    let engine = Recomposer::new(&rt, RecomposeConfig::default().evaluation_windows(3)).unwrap();
    let echo = rt.spawn_with(CellConfig::named("echo"), Echo).unwrap();
    engine.manage(&echo, Recomposable::new(|| Echo).variant("v2", || Echo)).unwrap();
    let replace = vec![Action::Replace { cell: echo.path().clone(), variant: "v2".into() }];
    let plan = engine.propose(replace, Expected::Hold { metric: Metric::QueueDelay }).unwrap();
    assert_eq!(engine.plan(plan).map(|plan| plan.evaluation), Some(Duration::MAX));
    rt.shutdown(PATIENCE);
}

#[cfg(feature = "observe")]
#[test]
fn a_short_window_of_billions_of_windows_is_refused_instead_of_allocated() {
    use cellrt::{BuildError, DecayConfig, DecayConfigError, ObservationConfig, MAX_SHORT_WINDOWS};
    // `u32::MAX` windows used to be allocated at build, as one queue of
    // 68 GB: the process aborted.
    let build = |windows: u32| {
        Runtime::builder()
            .threadless(true)
            .observation(ObservationConfig::default().decay(DecayConfig::default().short_windows(windows)))
            .build()
    };
    let err = build(u32::MAX).unwrap_err();
    assert_eq!(
        err,
        BuildError::Observation(cellrt::ObservationConfigError::Decay(DecayConfigError::ShortWindows {
            value: u32::MAX
        }))
    );
    assert_eq!(
        err.to_string(),
        "invalid observation settings: decay: short_windows must be 1 to 1024 windows, got 4294967295"
    );
    let longest = build(MAX_SHORT_WINDOWS).unwrap();
    longest.shutdown(PATIENCE);
}

#[cfg(feature = "observe")]
#[test]
fn burn_alerts_whose_long_windows_do_not_grow_from_fast_to_ticket_are_refused() {
    use cellrt::{BurnAlert, BurnWindows, ObjectiveError};
    let hour = Duration::from_secs(3_600);
    // A fast alert over a day, beside the default slow one over 6 hours.
    let swapped = BurnWindows::new().window(BurnAlert::Fast, 24 * hour, hour);
    assert_eq!(
        swapped.validate(),
        Err(ObjectiveError::OutOfOrder {
            alert: BurnAlert::Slow,
            long: 6 * hour,
            faster: BurnAlert::Fast,
            faster_long: 24 * hour
        })
    );
    assert_eq!(
        swapped.validate().unwrap_err().to_string(),
        "the Slow burn alert's long window (21600s) must be longer than the Fast alert's (86400s)"
    );
}

#[cfg(feature = "observe")]
#[test]
fn a_recompose_setting_out_of_range_is_named_and_a_merge_at_or_above_the_split_is_refused() {
    use cellrt::{RecomposeConfig, RecomposeConfigError};
    let config = RecomposeConfig::default().split_saturation(0.5).merge_saturation(0.5);
    let err = config.validate().unwrap_err();
    assert_eq!(
        err,
        RecomposeConfigError::MergeNotBelowSplit { merge_saturation: 0.5, split_saturation: 0.5 }
    );
    assert_eq!(err.field(), "merge_saturation");
    assert_eq!(err.to_string(), "merge_saturation (0.5) must be below split_saturation (0.5)");
    let err = RecomposeConfig::default().shed_watermark(f64::NAN).validate().unwrap_err();
    assert_eq!(
        (err.field(), err.to_string()),
        ("shed_watermark", "shed_watermark must be in (0, 1], got NaN".into())
    );
}

#[cfg(feature = "observe")]
#[test]
fn a_pool_larger_than_a_split_can_spawn_is_refused_at_registration() {
    use cellrt::{Recomposable, RecomposableError, MAX_POOL};
    assert_eq!(Recomposable::new(|| Echo).max_pool(MAX_POOL).validate(), Ok(()));
    assert_eq!(
        Recomposable::new(|| Echo).stateless().max_pool(usize::MAX).validate(),
        Err(RecomposableError::MaxPool { value: usize::MAX })
    );
    assert_eq!(
        Recomposable::new(|| Echo).variant("", || Echo).validate(),
        Err(RecomposableError::VariantName { name: String::new() })
    );
}

#[cfg(feature = "chaos")]
#[test]
fn a_fault_delay_the_spec_grammar_cannot_write_is_refused() {
    use cellrt::{Delay, Fault, FaultError, FaultKind, FaultSet, Target};
    // An exponential latency with the longest mean used to be built, then
    // panicked the worker that drew a delay above `Duration::MAX`; and its
    // spec text did not read back.
    let longest = Delay::Exponential { mean: Duration::MAX };
    let err = Fault::builder(Target::every(), FaultKind::Latency(longest)).build().unwrap_err();
    assert_eq!(err, FaultError::DelayTooLong { delay: Duration::MAX });
    let below = Duration::from_nanos(u64::MAX);
    let fault = Fault::builder(Target::every(), FaultKind::Latency(Delay::Exponential { mean: below }))
        .build()
        .unwrap();
    let set = FaultSet::from(fault);
    assert_eq!(set.to_string(), "/**: latency(exp 18446744073709551615ns)");
    assert_eq!(FaultSet::parse(&set.to_string()), Ok(set));
}

#[cfg(feature = "chaos")]
#[test]
fn an_experiment_without_a_name_or_with_a_bound_out_of_range_is_refused_at_build() {
    use cellrt::{CellPath, Experiment, ExperimentBuildError, FaultSet, Predicate};
    let echo: CellPath = "/echo".parse().unwrap();
    let build = |name: &str, predicate: Predicate| {
        Experiment::builder(name)
            .faults(FaultSet::parse("/echo: error").unwrap())
            .hypothesis(predicate)
            .blast_radius("/echo")
            .build()
    };
    assert_eq!(
        build(" \t", Predicate::error_share_at_most(&echo, 0.1)).unwrap_err(),
        ExperimentBuildError::BlankName
    );
    assert_eq!(
        build("errors", Predicate::error_share_at_most(&echo, 1.5)).unwrap_err(),
        ExperimentBuildError::PredicateBound {
            predicate: "error share of /echo <= 1.5".into(),
            bound: "share",
            value: 1.5
        }
    );
    let err = build("rate", Predicate::throughput_at_least(&echo, -1.0)).unwrap_err();
    assert_eq!(err.to_string(), "predicate \"throughput of /echo >= -1/s\": per_second -1 is out of range");
    assert!(build("errors", Predicate::error_share_at_most(&echo, 1.0)).is_ok());
}
