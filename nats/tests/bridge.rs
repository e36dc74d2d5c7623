//! The bridge against a real `nats-server`: two processes, one exporting a
//! cell, one importing it; exact counts, asks, every failure naming its
//! side, malformed payloads, pools, a lost connection and the breaker, the
//! server killed and restarted mid-stream, durable edges.

mod common;

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{CellConfig, Runtime};
use cellrt_nats::{Bridge, BridgeConfig, BridgeError, Side};
use common::{eventually, Peer, Server, Work, Worker, ROLE, URL};

const APP: &str = "test";
const PATH: &str = "work";
const WAIT: Duration = Duration::from_secs(20);

/// The second process: exports a [`Worker`] under `test.work` (a durable
/// edge in role `durable-exporter`), prints `READY`, and when its standard
/// input closes, waits until deliveries stop, prints `COUNT <n>` and `IDS
/// <ids>` and exits. Ignored: the other tests run it in a process of its own.
#[test]
#[ignore = "the second process of the other tests"]
fn peer() {
    let Ok(role) = std::env::var(ROLE) else { return };
    let url = std::env::var(URL).expect("the server's URL");
    let runtime = Runtime::builder().build().unwrap();
    let ids = Arc::new(Mutex::new(Vec::new()));
    let worker = runtime.spawn_with(CellConfig::named("worker"), Worker { ids: ids.clone() }).unwrap();
    let bridge = Bridge::connect(BridgeConfig::new(url, APP)).unwrap();
    let export = match role.as_str() {
        "exporter" => bridge.export(&runtime, PATH, &worker).unwrap(),
        "durable-exporter" => bridge.export_durable(&runtime, PATH, &worker).unwrap(),
        other => panic!("unknown role {other}"),
    };
    println!("READY");
    for _ in std::io::stdin().lock().lines() {}
    let mut last = usize::MAX;
    while ids.lock().unwrap().len() != last {
        last = ids.lock().unwrap().len();
        std::thread::sleep(Duration::from_millis(500));
    }
    export.stop();
    let ids = ids.lock().unwrap().clone();
    println!("COUNT {}", ids.len());
    println!("IDS {}", ids.iter().map(u64::to_string).collect::<Vec<_>>().join(","));
}

fn importer(server: &Server) -> (Runtime, Bridge) {
    let runtime = Runtime::builder().build().unwrap();
    let bridge = Bridge::connect(BridgeConfig::new(server.url(), APP)).unwrap();
    (runtime, bridge)
}

#[test]
fn messages_sent_to_the_imported_address_arrive_once_each_in_the_other_process() {
    let Some(server) = Server::start() else { return };
    let peer = Peer::start("exporter", &server.url());
    let (runtime, bridge) = importer(&server);
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    for id in 0..1_000 {
        remote.addr().send(Work::Item(id)).unwrap();
    }
    assert!(eventually(WAIT, || remote.stats().delivered == 1_000), "{:?}", remote.stats());
    let stats = remote.stats();
    assert_eq!((stats.sent, stats.delivered, stats.failed()), (1_000, 1_000, 0));
    let (count, ids) = peer.finish();
    assert_eq!(count, 1_000);
    assert_eq!(ids, (0..1_000).collect::<Vec<_>>(), "one subject keeps the order it was sent in");
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn an_ask_through_the_imported_address_is_answered_by_the_other_process() {
    let Some(server) = Server::start() else { return };
    let peer = Peer::start("exporter", &server.url());
    let (runtime, bridge) = importer(&server);
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    for id in 0..10 {
        remote.addr().send(Work::Item(id)).unwrap();
    }
    assert!(eventually(WAIT, || remote.stats().delivered == 10));
    let count =
        remote.addr().ask_within(Duration::from_secs(5), Work::Count).unwrap().wait(Duration::from_secs(5));
    assert_eq!(count, Ok(10));
    let pid = remote.ask(Duration::from_secs(5), Work::Whoami).unwrap();
    assert_ne!(pid, std::process::id(), "answered by the other process");
    let stats = remote.stats();
    assert_eq!((stats.sent, stats.delivered, stats.failed()), (12, 12, 0));
    drop(peer);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn an_import_nobody_exports_is_no_responders_on_the_link_side() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let remote = bridge.import::<Work>(&runtime, "nobody").unwrap();
    let error = remote.send(Work::Item(1)).unwrap_err();
    assert_eq!(error, BridgeError::NoResponders { subject: "cellrt.test.nobody".into() });
    assert_eq!(error.side(), Side::Link);
    let asked = remote.addr().ask(Work::Count).unwrap().wait(Duration::from_secs(5));
    assert_eq!(asked, Err(cellrt::AskError::Unanswered), "an ask the link cannot carry resolves at once");
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_stopped_remote_cell_is_remote_closed() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let worker = runtime.spawn(Worker::default()).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    remote.send(Work::Item(1)).unwrap();
    runtime.stop(&worker);
    assert!(eventually(WAIT, || worker.is_closed()));
    let error = remote.send(Work::Item(2)).unwrap_err();
    assert_eq!((error.clone(), error.side()), (BridgeError::RemoteClosed, Side::Remote));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_remote_mailbox_that_stays_full_is_remote_full() {
    let Some(server) = Server::start() else { return };
    let runtime = Runtime::builder().build().unwrap();
    let config = BridgeConfig::new(server.url(), APP).send_timeout(Duration::from_millis(200));
    let bridge = Bridge::connect(config).unwrap();
    let worker = runtime.spawn_with(CellConfig::named("busy").capacity(1), Worker::default()).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    remote.send(Work::Hold(2_000)).unwrap();
    // The hold is being handled or queued; one more fills the mailbox.
    let outcomes: Vec<_> = (0..3).map(|id| remote.send(Work::Item(id))).collect();
    assert!(outcomes.contains(&Err(BridgeError::RemoteFull)), "{outcomes:?}");
    assert_eq!(BridgeError::RemoteFull.side(), Side::Remote);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn an_exporter_that_never_answers_is_timed_out_and_an_unanswered_ask_is_remote() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let worker = runtime.spawn(Worker::default()).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    assert_eq!(remote.ask(Duration::from_secs(5), Work::Ignore), Err(BridgeError::RemoteUnanswered));
    remote.send(Work::Hold(1_000)).unwrap();
    let error = remote.ask(Duration::from_millis(200), Work::Count).unwrap_err();
    assert!(
        matches!(error, BridgeError::TimedOut { .. } | BridgeError::RemoteUnanswered),
        "an ask whose deadline passes in the remote queue: {error:?}"
    );
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn bincode_on_one_side_and_json_on_the_other_is_a_remote_decode_error() {
    let Some(server) = Server::start() else { return };
    let runtime = Runtime::builder().build().unwrap();
    let json = Bridge::connect(BridgeConfig::new(server.url(), APP).codec(cellrt_nats::Codec::Json)).unwrap();
    let bincode = Bridge::connect(BridgeConfig::new(server.url(), APP)).unwrap();
    let worker = runtime.spawn(Worker::default()).unwrap();
    let _export = json.export(&runtime, PATH, &worker).unwrap();
    let remote = bincode.import::<Work>(&runtime, PATH).unwrap();
    let error = remote.send(Work::Item(7)).unwrap_err();
    assert!(matches!(&error, BridgeError::RemoteDecode { text } if text.contains("json")), "{error:?}");
    assert_eq!(error.side(), Side::Remote);
    runtime.shutdown(Duration::from_secs(5));
}
