//! Per-cell storage: typed access, isolation by path, durability across
//! runtimes, and every refused configuration with its own error.

#![cfg(feature = "storage")]

mod common;

use cellrt::{
    BuildError, Cell, CellConfig, CellError, CellPath, ChildSpec, Context, Reply, Runtime, StorageConfig,
    StoreError, SupervisorSpec,
};
use common::{eventually, PATIENCE};
use serde::{Deserialize, Serialize};

fn memory_runtime() -> Runtime {
    Runtime::builder()
        .worker_threads(1)
        .quiet_panics(true)
        .storage(StorageConfig::in_memory())
        .build()
        .unwrap()
}

fn path(name: &str) -> CellPath {
    CellPath::root().child(name).unwrap()
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Account {
    owner: String,
    balance: i64,
}

#[test]
fn typed_values_round_trip_and_update_atomically() {
    let rt = memory_runtime();
    let store = rt.store(&path("bank")).unwrap();
    assert_eq!(store.name(), "cell/bank");
    store.put("ada", &Account { owner: "Ada".into(), balance: 10 }).unwrap();
    assert_eq!(store.get::<Account>("ada").unwrap(), Some(Account { owner: "Ada".into(), balance: 10 }));
    let after =
        store.update("ada", |a: Option<Account>| a.map(|a| Account { balance: a.balance - 3, ..a })).unwrap();
    assert_eq!(after.map(|a| a.balance), Some(7));
    assert_eq!(store.update("nobody", |n: Option<u8>| n).unwrap(), None, "None leaves nothing");
    assert_eq!(store.get::<u8>("nobody").unwrap(), None);
    assert!(store.remove("ada").unwrap());
    assert!(!store.remove("ada").unwrap());
    assert_eq!(store.get::<Account>("ada").unwrap(), None);
}

#[test]
fn integer_keys_scan_in_numeric_order() {
    let rt = memory_runtime();
    let store = rt.store(&path("numbers")).unwrap();
    for n in [300_u64, 2, 70_000, 1] {
        store.put(n, &n).unwrap();
    }
    let values: Vec<u64> = store.scan_prefix::<u64>([]).map(|e| e.unwrap().1).collect();
    assert_eq!(values, [1, 2, 300, 70_000]);
    let signed = rt.store(&path("signed")).unwrap();
    for n in [5_i64, -1, i64::MIN, 0, i64::MAX] {
        signed.put(n, &n).unwrap();
    }
    let values: Vec<i64> = signed.scan_prefix::<i64>([]).map(|e| e.unwrap().1).collect();
    assert_eq!(values, [i64::MIN, -1, 0, 5, i64::MAX]);
}

#[test]
fn scan_prefix_returns_only_matching_keys_in_order() {
    let rt = memory_runtime();
    let store = rt.store(&path("users")).unwrap();
    for key in ["user/b", "order/1", "user/a", "user/c", "userx"] {
        store.put(key, &key.len()).unwrap();
    }
    let keys: Vec<String> =
        store.scan_prefix::<usize>("user/").map(|e| String::from_utf8(e.unwrap().0).unwrap()).collect();
    assert_eq!(keys, ["user/a", "user/b", "user/c"]);
}

#[test]
fn a_transaction_commits_every_write_or_none() {
    let rt = memory_runtime();
    let store = rt.store(&path("ledger")).unwrap();
    store.put("a", &100_i64).unwrap();
    store.put("b", &0_i64).unwrap();
    let moved = store
        .transaction(|tx| {
            let a: i64 = tx.get("a")?.unwrap_or(0);
            tx.put("a", &(a - 40))?;
            let b: i64 = tx.get("b")?.unwrap_or(0);
            tx.put("b", &(b + 40))?;
            Ok(40)
        })
        .unwrap();
    assert_eq!(moved, 40);
    let refused = store.transaction(|tx| -> Result<(), StoreError> {
        tx.put("a", &0_i64)?;
        Err(StoreError::abort("insufficient funds"))
    });
    assert_eq!(refused, Err(StoreError::Aborted { reason: "insufficient funds".into() }));
    assert_eq!(store.get::<i64>("a").unwrap(), Some(60), "the aborted write did not land");
    assert_eq!(store.get::<i64>("b").unwrap(), Some(40));
}

#[test]
fn bytes_of_another_type_are_a_decode_error_naming_type_and_key() {
    let rt = memory_runtime();
    let store = rt.store(&path("typed")).unwrap();
    store.put("pair", &(1_u32, 2_u32)).unwrap();
    let err = store.get::<u32>("pair").unwrap_err();
    let StoreError::Decode { type_name, key, reason } = &err else { panic!("{err:?}") };
    assert_eq!((*type_name, key.as_slice()), ("u32", b"pair".as_slice()));
    assert!(reason.contains("trailing"), "{reason}");
    store.put_bytes("junk", vec![0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(store.get::<Account>("junk"), Err(StoreError::Decode { .. })));
    store.put("text", &"hello").unwrap();
    assert!(matches!(store.get::<u64>("text"), Err(StoreError::Decode { .. })));
}

#[test]
fn an_update_of_undecodable_bytes_fails_and_leaves_them() {
    let rt = memory_runtime();
    let store = rt.store(&path("typed")).unwrap();
    store.put_bytes("junk", vec![0xff, 0xfe]).unwrap();
    let err = store.update("junk", |n: Option<u64>| Some(n.unwrap_or(0) + 1)).unwrap_err();
    assert!(matches!(err, StoreError::Decode { .. }), "{err:?}");
    assert_eq!(store.get_bytes("junk").unwrap(), Some(vec![0xff, 0xfe]));
}

/// Writes what it is sent to its own tree; answers with what is there.
struct Keeper;

enum KeeperMsg {
    Put(String, u64),
    Get(String, Reply<Option<u64>>),
}

impl Cell for Keeper {
    type Message = KeeperMsg;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: KeeperMsg) -> Result<(), CellError> {
        match msg {
            KeeperMsg::Put(key, value) => ctx.store()?.put(key.as_str(), &value)?,
            KeeperMsg::Get(key, reply) => drop(reply.send(ctx.store()?.get::<u64>(key.as_str())?)),
        }
        Ok(())
    }
}

#[test]
fn each_cell_has_its_own_tree_whatever_characters_its_name_holds() {
    let rt = memory_runtime();
    let names = ["plain", "with.dot", "ünïcödé", "%2F", "..", "a:b*c?d", "sys", "__sled__default"];
    for (n, name) in names.iter().enumerate() {
        let cell = rt.spawn_with(CellConfig::named(*name), Keeper).unwrap();
        cell.send(KeeperMsg::Put("k".into(), n as u64)).unwrap();
        assert_eq!(
            cell.ask(|r| KeeperMsg::Get("k".into(), r)).unwrap().wait(PATIENCE).unwrap(),
            Some(n as u64)
        );
    }
    for (n, name) in names.iter().enumerate() {
        assert_eq!(rt.store(&path(name)).unwrap().get::<u64>("k").unwrap(), Some(n as u64), "{name}");
    }
}

#[test]
fn a_supervised_cell_finds_its_data_after_a_restart() {
    let rt = memory_runtime();
    struct Crashy;
    impl Cell for Crashy {
        type Message = KeeperMsg;
        fn handle(&mut self, ctx: &mut Context<Self>, msg: KeeperMsg) -> Result<(), CellError> {
            match msg {
                KeeperMsg::Put(key, value) => {
                    ctx.store()?.put(key.as_str(), &value)?;
                    panic!("crash after writing");
                }
                KeeperMsg::Get(key, reply) => drop(reply.send(ctx.store()?.get::<u64>(key.as_str())?)),
            }
            Ok(())
        }
    }
    let sup = rt
        .start_supervisor(SupervisorSpec::new("sup").child(ChildSpec::new("c", || Crashy)), PATIENCE)
        .unwrap();
    let c = sup.child::<KeeperMsg>("c").unwrap();
    c.send(KeeperMsg::Put("k".into(), 9)).unwrap();
    assert_eq!(c.ask(|r| KeeperMsg::Get("k".into(), r)).unwrap().wait(PATIENCE).unwrap(), Some(9));
    assert_eq!(sup.which_children()[0].restarts, 1);
}

#[test]
fn data_outlives_the_runtime_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::dir(dir.path());
    {
        let rt = Runtime::builder().storage(config.clone()).build().unwrap();
        rt.store(&path("durable")).unwrap().put("k", &"kept").unwrap();
        rt.shutdown(PATIENCE);
    }
    let rt = Runtime::builder().storage(config).build().unwrap();
    assert_eq!(rt.store(&path("durable")).unwrap().get::<String>("k").unwrap().as_deref(), Some("kept"));
}

#[test]
fn dead_letters_are_stored_and_read_back_by_a_later_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::dir(dir.path());
    struct Fails;
    impl Cell for Fails {
        type Message = u8;
        fn handle(&mut self, _: &mut Context<Self>, _: u8) -> Result<(), CellError> {
            Err(CellError::msg("always"))
        }
    }
    {
        let rt = Runtime::builder().quiet_panics(true).storage(config.clone()).build().unwrap();
        let sup =
            rt.start_supervisor(SupervisorSpec::new("sup").child(ChildSpec::new("f", || Fails)), PATIENCE);
        sup.unwrap().child::<u8>("f").unwrap().send(1).unwrap();
        assert!(eventually(|| rt.dead_letter_count() == 1));
        rt.shutdown(PATIENCE);
    }
    let rt = Runtime::builder().storage(config).build().unwrap();
    let letters = rt.stored_dead_letters().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].path, "/sup/f");
    assert_eq!(letters[0].message_kind.as_deref(), Some("u8"));
    assert_eq!(letters[0].failure, "cell /sup/f failed in handle (u8): error: always");
    assert_eq!((letters[0].redeliveries, letters[0].poison), (0, false));
}

#[test]
fn a_data_directory_open_in_another_runtime_is_refused_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::dir(dir.path());
    let first = Runtime::builder().storage(config.clone()).build().unwrap();
    let err = Runtime::builder().storage(config.clone()).build().unwrap_err();
    assert_eq!(err, BuildError::Storage(StoreError::Locked { path: dir.path().to_path_buf() }));
    first.shutdown(PATIENCE);
    assert!(Runtime::builder().storage(config).build().is_ok(), "shutdown released the directory");
}

#[test]
fn shutdown_closes_the_storage_while_addresses_and_stores_are_still_held() {
    let dir = tempfile::tempdir().unwrap();
    let config = StorageConfig::dir(dir.path());
    let first = Runtime::builder().worker_threads(1).storage(config.clone()).build().unwrap();
    let keeper = first.spawn_with(CellConfig::named("keeper"), Keeper).unwrap();
    keeper.send(KeeperMsg::Put("k".into(), 7)).unwrap();
    assert_eq!(keeper.ask(|r| KeeperMsg::Get("k".into(), r)).unwrap().wait(PATIENCE).unwrap(), Some(7));
    let kept = first.store(&path("keeper")).unwrap();
    first.shutdown(PATIENCE);
    // `keeper` and `kept` still hold the first runtime's state.
    assert_eq!(kept.get::<u64>("k"), Err(StoreError::Closed));
    assert_eq!(kept.put("k", &8_u64), Err(StoreError::Closed));
    let second = Runtime::builder().worker_threads(1).storage(config).build().unwrap();
    assert_eq!(second.store(&path("keeper")).unwrap().get::<u64>("k").unwrap(), Some(7));
    drop(keeper);
}

#[test]
fn a_missing_data_directory_is_refused_unless_creating_it_was_asked() {
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("a/b");
    let err = Runtime::builder().storage(StorageConfig::dir(&missing)).build().unwrap_err();
    assert_eq!(err, BuildError::Storage(StoreError::MissingDirectory { path: missing.clone() }));
    let rt = Runtime::builder().storage(StorageConfig::dir(&missing).create_missing(true)).build().unwrap();
    rt.store(&path("x")).unwrap().put("k", &1_u8).unwrap();
    assert!(missing.is_dir());
}

#[test]
fn a_read_only_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut permissions = std::fs::metadata(dir.path()).unwrap().permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(dir.path(), permissions.clone()).unwrap();
    let err = Runtime::builder().storage(StorageConfig::dir(dir.path())).build().unwrap_err();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(dir.path(), permissions).unwrap();
    assert_eq!(err, BuildError::Storage(StoreError::ReadOnly { path: dir.path().to_path_buf() }));
}

#[test]
fn a_data_path_that_is_a_file_is_refused() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let err = Runtime::builder().storage(StorageConfig::dir(file.path())).build().unwrap_err();
    assert_eq!(err, BuildError::Storage(StoreError::NotADirectory { path: file.path().to_path_buf() }));
}

#[test]
fn without_storage_a_cell_is_told_so() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    assert_eq!(rt.store(&path("x")).unwrap_err(), StoreError::Disabled);
    let keeper = rt.spawn(Keeper).unwrap();
    let answer = keeper.ask(|r| KeeperMsg::Get("k".into(), r)).unwrap().wait(PATIENCE);
    assert!(answer.is_err(), "the handler failed with StoreError::Disabled");
    // The ask resolves as the handler's reply is dropped, before the
    // failure is recorded.
    assert!(eventually(|| rt.failure_count() == 1));
    let failure = &rt.failures()[0];
    assert!(failure.to_string().ends_with("the runtime was built without storage"), "{failure}");
    assert_eq!(rt.stored_dead_letters(), Err(StoreError::Disabled));
}
