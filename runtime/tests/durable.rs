//! Durable cells: state saved after each message by its durability mode,
//! rebuilt at restart and in the next runtime; unreadable states refused
//! with a typed failure and quarantined.

#![cfg(feature = "storage")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cellrt::{
    AskError, Cell, CellConfig, CellError, CellPath, ChildSpec, Context, Durability, Durable, FailureCause,
    Reply, Runtime, SpawnError, StorageConfig, StoreError, SupervisorSpec,
};
use common::{eventually, PATIENCE};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Ledger {
    entries: Vec<u64>,
}

/// Appends entries; counts how many times it was built by the factory.
struct Book {
    ledger: Ledger,
}

enum BookMsg {
    /// Append, and answer with the ledger's length.
    Append(u64, Reply<usize>),
    /// Append, answer, then fail: the append must not be saved.
    AppendThenFail(u64, Reply<usize>),
    Panic,
    Read(Reply<Vec<u64>>),
}

impl Cell for Book {
    type Message = BookMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: BookMsg) -> Result<(), CellError> {
        match msg {
            BookMsg::Append(n, reply) => {
                self.ledger.entries.push(n);
                let _ = reply.send(self.ledger.entries.len());
            }
            BookMsg::AppendThenFail(n, reply) => {
                self.ledger.entries.push(n);
                let _ = reply.send(self.ledger.entries.len());
                return Err(CellError::msg("after the answer"));
            }
            BookMsg::Panic => panic!("crash"),
            BookMsg::Read(reply) => drop(reply.send(self.ledger.entries.clone())),
        }
        Ok(())
    }
}

impl Durable for Book {
    type State = Ledger;
    fn state(&self) -> &Ledger {
        &self.ledger
    }
    fn restore(ledger: Ledger) -> Self {
        Book { ledger }
    }
}

fn book(built: &Arc<AtomicU32>) -> impl FnMut() -> Book + Send + 'static {
    let built = built.clone();
    move || {
        built.fetch_add(1, SeqCst);
        Book { ledger: Ledger::default() }
    }
}

fn runtime_at(config: &StorageConfig) -> Runtime {
    Runtime::builder().worker_threads(2).quiet_panics(true).storage(config.clone()).build().unwrap()
}

fn append(addr: &cellrt::Addr<BookMsg>, n: u64) -> Result<usize, AskError> {
    addr.ask(|r| BookMsg::Append(n, r)).unwrap().wait(PATIENCE)
}

fn read(addr: &cellrt::Addr<BookMsg>) -> Vec<u64> {
    addr.ask(BookMsg::Read).unwrap().wait(PATIENCE).unwrap()
}

#[test]
fn every_durability_restores_the_state_in_the_next_runtime() {
    for durability in
        [Durability::PerMessage, Durability::PerTurn, Durability::Periodic(Duration::from_millis(20))]
    {
        let dir = tempfile::tempdir().unwrap();
        let config = StorageConfig::dir(dir.path());
        let built = Arc::new(AtomicU32::new(0));
        {
            let rt = runtime_at(&config);
            let b = rt.spawn_durable(CellConfig::named("book"), durability, book(&built)).unwrap();
            for n in 1..=5 {
                assert_eq!(append(&b, n), Ok(n as usize), "{durability:?}");
            }
            rt.shutdown(PATIENCE);
        }
        let rt = runtime_at(&config);
        let b = rt.spawn_durable(CellConfig::named("book"), durability, book(&built)).unwrap();
        assert_eq!(read(&b), [1, 2, 3, 4, 5], "{durability:?}");
        assert_eq!(built.load(SeqCst), 1, "the factory ran once, for the first run only: {durability:?}");
    }
}

#[test]
fn a_restarted_durable_child_is_rebuilt_from_its_last_saved_state() {
    let rt = runtime_at(&StorageConfig::in_memory());
    let built = Arc::new(AtomicU32::new(0));
    let spec =
        SupervisorSpec::new("sup").child(ChildSpec::durable("book", Durability::PerMessage, book(&built)));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let b = sup.child::<BookMsg>("book").unwrap();
    append(&b, 1).unwrap();
    append(&b, 2).unwrap();
    b.send(BookMsg::Panic).unwrap();
    assert_eq!(read(&b), [1, 2], "restored, not rebuilt empty");
    assert_eq!(built.load(SeqCst), 1);
    assert_eq!(sup.which_children()[0].restarts, 1);
}

#[test]
fn a_failed_message_is_not_saved_and_its_held_answer_is_dropped() {
    for durability in [Durability::PerMessage, Durability::PerTurn] {
        let rt = runtime_at(&StorageConfig::in_memory());
        let built = Arc::new(AtomicU32::new(0));
        let spec = SupervisorSpec::new("sup").child(ChildSpec::durable("book", durability, book(&built)));
        let b = rt.start_supervisor(spec, PATIENCE).unwrap().child::<BookMsg>("book").unwrap();
        append(&b, 1).unwrap();
        let answer = b.ask(|r| BookMsg::AppendThenFail(2, r)).unwrap().wait(PATIENCE);
        assert_eq!(answer, Err(AskError::Unanswered), "never acknowledged: {durability:?}");
        assert_eq!(read(&b), [1], "{durability:?}");
    }
}

#[test]
fn periodic_durability_answers_before_the_flush() {
    let rt = runtime_at(&StorageConfig::in_memory());
    let built = Arc::new(AtomicU32::new(0));
    let spec = SupervisorSpec::new("sup").child(ChildSpec::durable(
        "book",
        Durability::Periodic(Duration::from_secs(3600)),
        book(&built),
    ));
    let b = rt.start_supervisor(spec, PATIENCE).unwrap().child::<BookMsg>("book").unwrap();
    append(&b, 1).unwrap();
    // Answered (so not held), then failed: the answer stood.
    assert_eq!(b.ask(|r| BookMsg::AppendThenFail(2, r)).unwrap().wait(PATIENCE), Ok(2));
    assert_eq!(read(&b), [1], "the failed message's change was not saved");
}

#[test]
fn corrupt_saved_state_is_a_typed_start_failure_and_is_quarantined_not_overwritten() {
    let rt = runtime_at(&StorageConfig::in_memory());
    let path = CellPath::root().child("book").unwrap();
    let garbage = vec![0xde, 0xad, 0xbe, 0xef, 0xff];
    rt.store(&path).unwrap().put_bytes("state", garbage.clone()).unwrap();
    let built = Arc::new(AtomicU32::new(0));
    let b = rt.spawn_durable(CellConfig::named("book"), Durability::PerMessage, book(&built)).unwrap();
    assert!(eventually(|| b.is_closed()), "the start failed");
    let failure = &rt.failures()[0];
    assert!(matches!(&failure.cause, FailureCause::Storage(StoreError::Decode { .. })), "{failure:?}");
    assert_eq!(built.load(SeqCst), 0, "not silently rebuilt empty");
    assert_eq!(rt.store(&path).unwrap().get_bytes("state").unwrap(), Some(garbage.clone()), "left in place");
    let kept: Vec<(Vec<u8>, Vec<u8>)> =
        rt.quarantine().unwrap().scan_prefix_bytes("/book@").collect::<Result<_, _>>().unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].1, garbage, "the bytes are kept aside as they were");
}

/// The same ledger, at a newer version of its state type.
struct BookV2 {
    ledger: LedgerV2,
}

#[derive(Serialize, Deserialize)]
struct LedgerV2 {
    entries: Vec<u64>,
    total: u64,
}

impl Cell for BookV2 {
    type Message = Reply<(usize, u64)>;
    fn handle(&mut self, _: &mut Context<Self>, reply: Self::Message) -> Result<(), CellError> {
        let _ = reply.send((self.ledger.entries.len(), self.ledger.total));
        Ok(())
    }
}

impl Durable for BookV2 {
    type State = LedgerV2;
    const VERSION: u32 = 2;
    fn state(&self) -> &LedgerV2 {
        &self.ledger
    }
    fn restore(ledger: LedgerV2) -> Self {
        BookV2 { ledger }
    }
    fn migrate(version: u32, bytes: &[u8]) -> Result<LedgerV2, CellError> {
        if version != 1 {
            return Err(CellError::msg(format!("unknown version {version}")));
        }
        let (old, _): (Ledger, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
        Ok(LedgerV2 { total: old.entries.iter().sum(), entries: old.entries })
    }
}

/// Version 2 without a migration.
struct BookV2Strict(LedgerV2);

impl Cell for BookV2Strict {
    type Message = ();
    fn handle(&mut self, _: &mut Context<Self>, _: ()) -> Result<(), CellError> {
        Ok(())
    }
}

impl Durable for BookV2Strict {
    type State = LedgerV2;
    const VERSION: u32 = 2;
    fn state(&self) -> &LedgerV2 {
        &self.0
    }
    fn restore(ledger: LedgerV2) -> Self {
        BookV2Strict(ledger)
    }
}

#[test]
fn a_state_saved_at_an_older_version_is_migrated_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::dir(dir.path());
    {
        let rt = runtime_at(&config);
        let built = Arc::new(AtomicU32::new(0));
        let b = rt.spawn_durable(CellConfig::named("book"), Durability::PerMessage, book(&built)).unwrap();
        for n in [10, 20, 30] {
            append(&b, n).unwrap();
        }
        rt.shutdown(PATIENCE);
    }
    {
        let rt = runtime_at(&config);
        let strict = rt
            .spawn_durable(CellConfig::named("book"), Durability::PerMessage, || {
                BookV2Strict(LedgerV2 { entries: vec![], total: 0 })
            })
            .unwrap();
        assert!(eventually(|| strict.is_closed()), "no migration: the start fails");
        let failure = rt.failures()[0].to_string();
        assert!(failure.contains("no migration from state version 1 to 2"), "{failure}");
        rt.shutdown(PATIENCE);
    }
    let rt = runtime_at(&config);
    let v2 = rt
        .spawn_durable(CellConfig::named("book"), Durability::PerMessage, || BookV2 {
            ledger: LedgerV2 { entries: vec![], total: 0 },
        })
        .unwrap();
    assert_eq!(v2.ask(|r| r).unwrap().wait(PATIENCE).unwrap(), (3, 60), "migrated from version 1");
}

#[test]
fn a_durable_cell_needs_a_name_and_storage() {
    let built = Arc::new(AtomicU32::new(0));
    let rt = runtime_at(&StorageConfig::in_memory());
    let err = rt.spawn_durable(CellConfig::new(), Durability::PerMessage, book(&built)).unwrap_err();
    assert_eq!(err, SpawnError::Unnamed);
    let bare = Runtime::builder().worker_threads(1).build().unwrap();
    let err =
        bare.spawn_durable(CellConfig::named("book"), Durability::PerMessage, book(&built)).unwrap_err();
    assert_eq!(err, SpawnError::Storage(StoreError::Disabled));
    // A durable child under a runtime without storage fails to start, typed.
    let sup = bare.start_supervisor(
        SupervisorSpec::new("sup").child(ChildSpec::durable("book", Durability::PerMessage, book(&built))),
        PATIENCE,
    );
    assert!(matches!(sup, Err(cellrt::StartError::ChildFailed { .. })), "{sup:?}");
    assert_eq!(built.load(SeqCst), 0);
}
