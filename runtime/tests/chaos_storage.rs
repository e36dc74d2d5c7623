//! Storage faults on a durable cell: the failure surfaces as the typed
//! storage error, as a real one would.

#![cfg(all(feature = "chaos", feature = "storage"))]

mod common;

use cellrt::{
    AskError, Cell, CellConfig, CellError, Context, Durability, Durable, Effect, FailureCause, FaultSet,
    Reply, Runtime, StorageConfig, StoreError,
};
use common::{eventually, PATIENCE};

/// A durable sum; each `Add` answers with the new sum once it is flushed.
struct Tally(u64);

impl Cell for Tally {
    type Message = (u64, Reply<u64>);
    fn handle(&mut self, _: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
        self.0 += n;
        let _ = reply.send(self.0);
        Ok(())
    }
}

impl Durable for Tally {
    type State = u64;
    fn state(&self) -> &u64 {
        &self.0
    }
    fn restore(sum: u64) -> Self {
        Tally(sum)
    }
}

fn tally() -> (Runtime, cellrt::Addr<(u64, Reply<u64>)>) {
    let runtime = Runtime::builder()
        .worker_threads(1)
        .quiet_panics(true)
        .storage(StorageConfig::in_memory())
        .build()
        .unwrap();
    let tally =
        runtime.spawn_durable(CellConfig::named("tally"), Durability::PerMessage, || Tally(0)).unwrap();
    (runtime, tally)
}

fn add(tally: &cellrt::Addr<(u64, Reply<u64>)>, n: u64) -> Result<u64, AskError> {
    tally.ask(|reply| (n, reply)).unwrap().wait(PATIENCE)
}

#[test]
fn a_failing_write_surfaces_as_the_typed_storage_error() {
    let (runtime, tally) = tally();
    assert_eq!(add(&tally, 1), Ok(1));
    let injection = runtime.inject(FaultSet::parse("/tally: write_error limit=1 seed=1").unwrap()).unwrap();
    assert_eq!(add(&tally, 2), Err(AskError::Unanswered), "the answer waited for a save that failed");
    assert!(eventually(|| runtime.failure_count() == 1));
    let failure = &runtime.failures()[0];
    assert_eq!(
        failure.cause,
        FailureCause::Storage(StoreError::Io {
            action: "writing",
            reason: "injected I/O error (/tally: write_error limit=1 seed=1)".into()
        })
    );
    assert_eq!(injection.log()[0].effect, Effect::WriteError);
}

#[test]
fn a_failing_flush_surfaces_as_the_typed_storage_error() {
    let (runtime, tally) = tally();
    let injection = runtime.inject(FaultSet::parse("/tally: flush_error limit=1 seed=1").unwrap()).unwrap();
    assert_eq!(add(&tally, 5), Err(AskError::Unanswered));
    assert!(eventually(|| runtime.failure_count() == 1));
    let FailureCause::Storage(StoreError::Io { action, .. }) = &runtime.failures()[0].cause else {
        panic!("{:?}", runtime.failures()[0])
    };
    assert_eq!(*action, "flushing");
    assert_eq!(injection.counts()[0].injected, 1);
}

#[test]
fn a_slow_flush_delays_the_answer_but_keeps_the_state() {
    let (runtime, tally) = tally();
    let injection =
        runtime.inject(FaultSet::parse("/tally: slow_flush(20ms) limit=1 seed=1").unwrap()).unwrap();
    assert_eq!(add(&tally, 3), Ok(3));
    assert_eq!(add(&tally, 4), Ok(7));
    assert_eq!(
        injection.log().iter().map(|r| r.effect).collect::<Vec<_>>(),
        vec![Effect::SlowFlush(std::time::Duration::from_millis(20))]
    );
    assert_eq!(runtime.failure_count(), 0);
}

#[test]
fn the_runtimes_own_trees_are_never_injected() {
    let (runtime, tally) = tally();
    let _injection = runtime.inject(FaultSet::parse("/**: write_error").unwrap()).unwrap();
    assert_eq!(add(&tally, 1), Err(AskError::Unanswered));
    assert!(eventually(|| runtime.failure_count() == 1));
    // The failed message's dead letter was written to the runtime's own tree.
    assert_eq!(runtime.dead_letter_count(), 1);
    assert_eq!(runtime.stored_dead_letters().unwrap().len(), 1);
}
