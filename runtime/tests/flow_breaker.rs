//! Circuit breakers made by the runtime: their transitions are journaled at
//! `/#breaker/<name>`, in order, triaged as Hidden Dependency Exposed, and
//! kept by a persisted journal.

#![cfg(feature = "observe")]

use std::time::Duration;

use cellrt::{
    BreakerConfig, BreakerConfigError, BreakerState, Category, CellPath, CircuitBreaker, JournalQuery,
    NameError, Runtime, Signal, SignalKind, SignalType, SlidingWindow,
};

const PATIENCE: Duration = Duration::from_secs(5);

/// Opens at 2 failures in 2 calls; the first acquire after opening is a
/// trial (no wait); 2 trial calls decide.
fn config() -> BreakerConfig {
    BreakerConfig::default()
        .sliding_window(SlidingWindow::Count(2))
        .minimum_calls(2)
        .wait_in_open(Duration::ZERO)
        .permitted_in_half_open(2)
}

/// Opens the breaker with two failures, then closes it with two trial
/// successes.
fn open_then_close(breaker: &CircuitBreaker) {
    breaker.try_acquire().unwrap().failure();
    breaker.try_acquire().unwrap().failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker.try_acquire().unwrap().success();
    breaker.try_acquire().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

/// Each entry's (from, to, failure rate, slow-call rate).
fn transitions(entries: &[Signal]) -> Vec<(BreakerState, BreakerState, Option<f64>, Option<f64>)> {
    entries
        .iter()
        .map(|entry| match &entry.kind {
            SignalKind::BreakerTransition { breaker, from, to, failure_rate, slow_call_rate } => {
                assert_eq!(breaker, "inventory");
                (*from, *to, *failure_rate, *slow_call_rate)
            }
            other => panic!("not a breaker transition: {other:?}"),
        })
        .collect()
}

fn expected() -> Vec<(BreakerState, BreakerState, Option<f64>, Option<f64>)> {
    vec![
        (BreakerState::Closed, BreakerState::Open, Some(100.0), Some(0.0)),
        (BreakerState::Open, BreakerState::HalfOpen, None, None),
        (BreakerState::HalfOpen, BreakerState::Closed, Some(0.0), Some(0.0)),
    ]
}

#[test]
fn a_runtime_breaker_that_opens_and_closes_journals_exactly_those_transitions_in_order() {
    let runtime = Runtime::builder().worker_threads(1).build().unwrap();
    let breaker = runtime.breaker("inventory", config()).unwrap();
    open_then_close(&breaker);

    let path = CellPath::breaker("inventory").unwrap();
    let entries = runtime.journal(&JournalQuery::new().cell(path.clone()));
    assert_eq!(transitions(&entries), expected());
    for entry in &entries {
        assert_eq!(entry.cell.as_ref(), Some(&path));
        assert_eq!(entry.cell_kind.as_deref(), Some("cellrt::CircuitBreaker"));
        assert_eq!(entry.kind.signal_type(), SignalType::BreakerTransition);
        assert_eq!(entry.category, Some(Category::HiddenDependency));
    }
    let seqs: Vec<u64> = entries.iter().map(|entry| entry.seq).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "in record order: {seqs:?}");

    let by_kind = runtime.journal(&JournalQuery::new().kind(SignalType::BreakerTransition));
    assert_eq!(by_kind, entries, "no other breaker transition was journaled");
    runtime.shutdown(PATIENCE);
}

#[test]
fn manual_transitions_are_journaled_too() {
    let runtime = Runtime::builder().worker_threads(1).build().unwrap();
    let breaker = runtime.breaker("inventory", config()).unwrap();
    breaker.force_open();
    breaker.disable();
    breaker.reset();
    let entries = runtime.journal(&JournalQuery::new().kind(SignalType::BreakerTransition));
    assert_eq!(
        transitions(&entries),
        [
            (BreakerState::Closed, BreakerState::ForcedOpen, None, None),
            (BreakerState::ForcedOpen, BreakerState::Disabled, None, None),
            (BreakerState::Disabled, BreakerState::Closed, None, None),
        ]
    );
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_plain_breaker_journals_nothing() {
    let runtime = Runtime::builder().worker_threads(1).build().unwrap();
    let breaker = CircuitBreaker::new("inventory", config()).unwrap();
    open_then_close(&breaker);
    assert!(runtime.journal(&JournalQuery::new().kind(SignalType::BreakerTransition)).is_empty());
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_breaker_name_that_is_no_cell_name_is_refused() {
    let runtime = Runtime::builder().worker_threads(1).build().unwrap();
    let err = runtime.breaker("stock/eu", config()).unwrap_err();
    assert_eq!(err, BreakerConfigError::InvalidName(NameError::InvalidChar { found: '/', position: 5 }));
    assert_eq!(
        err.to_string(),
        "invalid breaker name: name has '/' at byte 5: a name has no '/', whitespace or control characters"
    );
    assert_eq!(runtime.breaker("", config()).unwrap_err(), BreakerConfigError::InvalidName(NameError::Empty));
    assert_eq!(
        runtime.breaker("inventory", config().minimum_calls(0)).unwrap_err(),
        BreakerConfigError::ZeroMinimumCalls
    );
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_breaker_outlives_its_runtime_unjournaled() {
    let runtime = Runtime::builder().worker_threads(1).build().unwrap();
    let breaker = runtime.breaker("inventory", config()).unwrap();
    runtime.shutdown(PATIENCE);
    open_then_close(&breaker);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[test]
fn breaker_paths_cannot_be_taken_by_cells() {
    let path = CellPath::breaker("inventory").unwrap();
    assert_eq!(path.as_str(), "/#breaker/inventory");
    assert_eq!("/#breaker/inventory".parse::<CellPath>().unwrap(), path);
    assert_eq!(CellPath::root().child("#breaker"), Err(NameError::Reserved));
    assert_eq!("/a/#breaker/inventory".parse::<CellPath>(), Err(NameError::Reserved));
}

#[cfg(feature = "storage")]
#[test]
fn a_persisted_journal_keeps_breaker_transitions_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let storage = cellrt::StorageConfig::dir(dir.path());
    let build = || Runtime::builder().worker_threads(1).storage(storage.clone()).build().unwrap();
    {
        let runtime = build();
        open_then_close(&runtime.breaker("inventory", config()).unwrap());
        runtime.shutdown(PATIENCE);
    }
    let runtime = build();
    let entries = runtime.journal(&JournalQuery::new().kind(SignalType::BreakerTransition));
    assert_eq!(transitions(&entries), expected());
    assert!(entries.iter().all(|entry| entry.cell == Some(CellPath::breaker("inventory").unwrap())));
    runtime.shutdown(PATIENCE);
}
