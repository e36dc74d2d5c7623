//! Model of a circuit breaker's half-open admission
//! (`runtime/src/flow/breaker.rs`): the state word's trial slots, taken by
//! compare-and-swap in `CircuitBreaker::try_acquire` and given back by a
//! dropped `Permit`, against the OPEN → HALF_OPEN move and the decision
//! that ends HALF_OPEN, both made under the breaker's lock.
//!
//! A breaker allowing `permitted` trial calls is opened (one failure in a
//! window of one call), then three threads acquire at once, at an instant
//! past the wait in open: the first to arrive moves the breaker to
//! HALF_OPEN, the others race for the remaining slots.
//!
//! Properties:
//! - whatever the interleaving, at no time do more than `permitted` trial
//!   permits exist (`trial_permits_never_exceed_the_permitted_calls`);
//! - when every trial call succeeds, the breaker ends CLOSED, with exactly
//!   `permitted` calls admitted as trials and the others refused or admitted
//!   by the CLOSED state;
//! - with a failure, a success and a dropped permit racing the acquisitions
//!   (`records_racing_acquisitions_leave_a_consistent_state`), the breaker
//!   ends OPEN exactly when both the failure and the success were trial
//!   calls (50 % failures reach the threshold); otherwise it is still
//!   HALF_OPEN with one slot per recorded trial call and no permit leaked: a
//!   new caller is admitted as a trial.
//!
//! Planted bugs this model catches (each checked, then reverted): a
//! half-open acquire that stores the slot count plus one instead of
//! exchanging it (three trial permits for two slots); an OPEN → HALF_OPEN
//! move that does not re-check the word under the lock (two callers each
//! start a half-open epoch).
#![cfg(cellrt_loom)]

use std::time::{Duration, Instant};

use cellrt::loom_api::ModelBreaker;
use cellrt::{BreakerConfig, BreakerState, CallOutcome, SlidingWindow};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

const WAIT: Duration = Duration::from_secs(1);
const FAST: Duration = Duration::from_millis(1);

/// An OPEN breaker allowing `permitted` trial calls, opened at `base`.
fn opened(base: Instant, permitted: u32) -> ModelBreaker {
    let config = BreakerConfig::default()
        .sliding_window(SlidingWindow::Count(1))
        .minimum_calls(1)
        .wait_in_open(WAIT)
        .permitted_in_half_open(permitted);
    let breaker = ModelBreaker::new(config).unwrap();
    let permit = breaker.try_acquire_at(base).unwrap();
    breaker.record_at(permit, CallOutcome::Failure, FAST, base);
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker
}

/// Trial permits alive now; panics past `permitted`.
struct TrialCount {
    alive: AtomicUsize,
    admitted: AtomicUsize,
    permitted: usize,
}

impl TrialCount {
    fn new(permitted: u32) -> Self {
        TrialCount {
            alive: AtomicUsize::new(0),
            admitted: AtomicUsize::new(0),
            permitted: permitted as usize,
        }
    }

    fn admit(&self) {
        self.admitted.fetch_add(1, SeqCst);
        let alive = self.alive.fetch_add(1, SeqCst) + 1;
        assert!(alive <= self.permitted, "{alive} trial permits exist, {} permitted", self.permitted);
    }

    /// Before a trial permit is dropped unrecorded (its slot goes back).
    fn give_back(&self) {
        self.alive.fetch_sub(1, SeqCst);
    }
}

fn all_succeed(base: Instant, permitted: u32) {
    let now = base + WAIT;
    let breaker = opened(base, permitted);
    let trials = Arc::new(TrialCount::new(permitted));
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (breaker, trials) = (breaker.clone(), trials.clone());
            thread::spawn(move || match breaker.try_acquire_at(now) {
                Ok(permit) => {
                    if permit.state() == BreakerState::HalfOpen {
                        trials.admit();
                    } else {
                        assert_eq!(permit.state(), BreakerState::Closed);
                    }
                    breaker.record_at(permit, CallOutcome::Success, FAST, now);
                }
                Err(refused) => assert_eq!(refused.state, BreakerState::HalfOpen),
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(trials.admitted.load(SeqCst), permitted as usize, "every trial slot was used exactly once");
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.trial_slots(), 0);
}

#[test]
fn trial_permits_never_exceed_the_permitted_calls() {
    let base = Instant::now();
    cellrt_loom_tests::check(3, move || all_succeed(base, 1));
}

#[test]
fn trial_permits_never_exceed_two_permitted_calls() {
    let base = Instant::now();
    cellrt_loom_tests::check(2, move || all_succeed(base, 2));
}

#[test]
fn records_racing_acquisitions_leave_a_consistent_state() {
    let base = Instant::now();
    cellrt_loom_tests::check(2, move || {
        let now = base + WAIT;
        let breaker = opened(base, 2);
        let trials = Arc::new(TrialCount::new(2));
        let recorded = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = [Some(CallOutcome::Failure), Some(CallOutcome::Success), None]
            .into_iter()
            .map(|outcome| {
                let (breaker, trials, recorded) = (breaker.clone(), trials.clone(), recorded.clone());
                thread::spawn(move || {
                    let Ok(permit) = breaker.try_acquire_at(now) else { return };
                    assert_eq!(
                        permit.state(),
                        BreakerState::HalfOpen,
                        "only the failure could decide, and it opens"
                    );
                    trials.admit();
                    match outcome {
                        Some(outcome) => {
                            breaker.record_at(permit, outcome, FAST, now);
                            recorded.fetch_add(1, SeqCst);
                        }
                        None => {
                            trials.give_back();
                            drop(permit);
                        }
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        let recorded = recorded.load(SeqCst);
        if recorded == 2 {
            assert_eq!(breaker.state(), BreakerState::Open, "1 failure in 2 trial calls reaches 50 %");
        } else {
            assert_eq!(recorded, 1, "the dropped permit held at most one slot at a time");
            assert_eq!(breaker.state(), BreakerState::HalfOpen);
            assert_eq!(breaker.trial_slots(), 1, "a slot per recorded trial call, none leaked");
            assert_eq!(breaker.recorded_calls_at(now), 1);
            let next = breaker.try_acquire_at(now).expect("the free slot admits a new trial call");
            assert_eq!(next.state(), BreakerState::HalfOpen);
        }
    });
}
