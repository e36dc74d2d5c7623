//! The bridge against a real `nats-server`: two processes, one exporting a
//! cell, one importing it; exact counts, asks, every failure naming its
//! side, malformed payloads, pools, a lost connection and the breaker, the
//! server killed and restarted mid-stream, durable edges.

mod common;

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{CellConfig, Runtime};
use cellrt_nats::{Bridge, BridgeConfig, BridgeError, RemoteSendError, Side};
use common::{eventually, Peer, Server, Work, Worker, ROLE, URL};

const APP: &str = "test";
const PATH: &str = "work";
const WAIT: Duration = Duration::from_secs(20);

/// The second process: exports a [`Worker`] under `test.work` (a durable
/// edge in role `durable-exporter`), prints `READY`, and when its standard
/// input closes, waits for the distinct ids it was told to expect
/// (`EXPECT <n>`) and until deliveries stop, prints `COUNT <n>` and `IDS
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
    // `EXPECT <n>`: wait (20 s at most) until n distinct ids arrived.
    let mut expected = 0;
    for line in std::io::stdin().lock().lines() {
        if let Some(n) = line.unwrap_or_default().strip_prefix("EXPECT ") {
            expected = n.trim().parse().expect("a count");
        }
    }
    let distinct = || {
        let mut ids = ids.lock().unwrap().clone();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    eventually(WAIT, || distinct() >= expected);
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
    let error = remote.send(Work::Item(1)).unwrap_err().into_error();
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
    let error = remote.send(Work::Item(2)).unwrap_err().into_error();
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
    let outcomes: Vec<_> =
        (0..3).map(|id| remote.send(Work::Item(id)).map_err(RemoteSendError::into_error)).collect();
    assert!(outcomes.contains(&Err(BridgeError::RemoteFull)), "{outcomes:?}");
    assert_eq!(BridgeError::RemoteFull.side(), Side::Remote);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn an_ask_the_remote_cell_drops_is_remote_unanswered() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let worker = runtime.spawn(Worker::default()).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    let error = remote.ask(Duration::from_secs(5), Work::Ignore).unwrap_err();
    assert_eq!((error.clone(), error.side()), (BridgeError::RemoteUnanswered, Side::Remote));
    let asked =
        remote.addr().ask_within(Duration::from_secs(5), Work::Ignore).unwrap().wait(Duration::from_secs(5));
    assert_eq!(
        asked,
        Err(cellrt::AskError::Unanswered),
        "resolved when the verdict came, not at the timeout"
    );
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_subscriber_that_never_answers_is_timed_out_on_the_link_side() {
    let Some(server) = Server::start() else { return };
    let runtime = Runtime::builder().build().unwrap();
    let config = BridgeConfig::new(server.url(), APP).send_timeout(Duration::from_millis(100));
    let bridge = Bridge::connect(config).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let _silent = tokio.block_on(async {
        let raw = async_nats::connect(server.url()).await.unwrap();
        let subscription = raw.subscribe("cellrt.test.silent").await.unwrap();
        raw.flush().await.unwrap();
        (raw, subscription)
    });
    let remote = bridge.import::<Work>(&runtime, "silent").unwrap();
    let error = remote.send(Work::Item(1)).unwrap_err();
    assert!(error.into_message().is_none(), "published: the message left the process");
    let error = remote.send(Work::Item(2)).unwrap_err().into_error();
    assert_eq!(error, BridgeError::TimedOut { after: Duration::from_millis(200) }, "twice the send timeout");
    assert_eq!(error.side(), Side::Link);
    assert_eq!(remote.stats().timed_out, 2);
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
    let error = remote.send(Work::Item(7)).unwrap_err().into_error();
    assert!(matches!(&error, BridgeError::RemoteDecode { text } if text.contains("json")), "{error:?}");
    assert_eq!(error.side(), Side::Remote);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_malformed_payload_is_a_typed_dead_letter_and_the_export_keeps_delivering() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let ids = Arc::new(Mutex::new(Vec::new()));
    let worker = runtime.spawn(Worker { ids: ids.clone() }).unwrap();
    let export = bridge.export(&runtime, PATH, &worker).unwrap();
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let answer = tokio.block_on(async {
        let raw = async_nats::connect(server.url()).await.unwrap();
        raw.request("cellrt.test.work", bytes::Bytes::from_static(b"\xff\xfe not a WorkWire")).await.unwrap()
    });
    let header =
        |name: &str| answer.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
    assert_eq!(header("Cellrt-Status").as_deref(), Some("decode"), "the sender is told");
    assert!(header("Cellrt-Error").is_some_and(|text| text.starts_with("cannot decode a ")));
    assert!(eventually(WAIT, || runtime.dead_letter_count() == 1));
    let letter = &runtime.dead_letters()[0];
    assert_eq!(letter.failure().path.as_str(), "/export:cellrt.test.work/rejects");
    assert!(
        matches!(&letter.failure().cause, cellrt::FailureCause::Error { type_name: Some(name), .. } if name.ends_with("CodecError")),
        "{:?}",
        letter.failure().cause
    );
    let rejected = letter.take_message::<cellrt_nats::Rejected>().expect("the payload is kept");
    assert_eq!(rejected.payload, b"\xff\xfe not a WorkWire");
    assert_eq!(rejected.subject, "cellrt.test.work");
    assert_eq!(rejected.error.direction(), cellrt_nats::Direction::Decode);
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    remote.send(Work::Item(9)).unwrap();
    assert!(eventually(WAIT, || ids.lock().unwrap().as_slice() == [9]), "the export still delivers");
    let stats = export.stats();
    assert_eq!((stats.received, stats.rejected, stats.delivered), (2, 1, 1));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn exporters_of_one_path_share_the_work_and_one_leaving_is_seen_as_a_member_leaving() {
    let Some(server) = Server::start() else { return };
    let first = Peer::start("exporter", &server.url());
    let second = Peer::start("exporter", &server.url());
    let (runtime, bridge) = importer(&server);
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    assert_eq!(remote.members(Duration::from_millis(300)).unwrap().len(), 2);
    for id in 0..200 {
        remote.send(Work::Item(id)).unwrap();
    }
    let (left, _) = second.finish();
    assert!(eventually(WAIT, || remote.members(Duration::from_millis(300)).unwrap().len() == 1));
    for id in 200..300 {
        remote.send(Work::Item(id)).expect("the remaining member takes the work");
    }
    let (stayed, ids) = first.finish();
    assert!(left > 0 && left < 200, "the queue group spread the first 200: {left} on the member that left");
    assert_eq!(left + stayed, 300, "every message once, on one member or the other");
    assert!(ids.ends_with(&(200..300).collect::<Vec<_>>()));
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_lost_connection_trips_the_import_breaker_and_it_closes_after_the_server_returns() {
    let Some(mut server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let ids = Arc::new(Mutex::new(Vec::new()));
    let worker = runtime.spawn(Worker { ids: ids.clone() }).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    for id in 0..5 {
        remote.addr().send(Work::Item(id)).unwrap();
    }
    assert!(eventually(WAIT, || remote.stats().delivered == 5));

    server.kill();
    assert!(eventually(WAIT, || !bridge.is_connected()));
    let refused = remote.send(Work::Item(4)).unwrap_err();
    assert_eq!((refused.error().clone(), refused.side()), (BridgeError::ConnectionLost, Side::Link));
    assert!(
        matches!(refused.into_message(), Some(Work::Item(4))),
        "refused before it left, the message comes back"
    );
    for id in 5..25 {
        remote.addr().send(Work::Item(id)).unwrap();
    }
    assert!(eventually(WAIT, || remote.stats().failed() == 21), "{:?}", remote.stats());
    let stats = remote.stats();
    assert_eq!(stats.connection_lost + stats.breaker_open, 21);
    assert!(stats.breaker_open > 0, "the breaker opened and refused the rest: {stats:?}");
    assert_eq!(remote.breaker().state(), cellrt::BreakerState::Open);
    let opened = runtime.journal(&cellrt::JournalQuery::new().kind(cellrt::SignalType::BreakerTransition));
    assert!(opened.iter().any(|signal| matches!(
        &signal.kind,
        cellrt::SignalKind::BreakerTransition { breaker, to: cellrt::BreakerState::Open, .. } if breaker == "nats:cellrt.test.work"
    )));
    let failures = runtime.failures();
    let lost = failures.iter().filter(|f| f.path.as_str() == "/import:cellrt.test.work/bridge").count();
    assert_eq!(lost, 20, "each refused message failed the bridge cell's turn");
    let bridge_cell: cellrt::CellPath = "/import:cellrt.test.work/bridge".parse().unwrap();
    let signatures: Vec<_> =
        runtime.signatures().into_iter().filter(|s| s.cells.contains(&bridge_cell)).collect();
    let mut texts: Vec<_> = signatures.iter().map(|s| s.signature.text.clone()).collect();
    texts.sort();
    assert_eq!(texts, ["breaker nats:cellrt.test.work is open", "connection to the NATS server lost"]);
    assert_eq!(signatures.iter().map(|s| s.count).sum::<u64>(), 20, "folded into two signatures");
    assert_eq!(runtime.dead_letter_count(), 20);
    let refused = remote.send(Work::Item(99)).unwrap_err();
    assert_eq!(refused.side(), Side::Local, "the open breaker refused it here");
    assert!(
        matches!(refused.into_message(), Some(Work::Item(99))),
        "refused before it left, the message comes back"
    );

    server.restart();
    assert!(eventually(WAIT, || bridge.is_connected()));
    let mut next = 25;
    let closed = eventually(WAIT, || {
        let _ = remote.addr().send(Work::Item(next));
        next += 1;
        std::thread::sleep(Duration::from_millis(50));
        remote.breaker().state() == cellrt::BreakerState::Closed
    });
    assert!(closed, "the breaker closed after trial calls succeeded: {:?}", remote.stats());
    assert!(eventually(WAIT, || remote.stats().in_flight() == 0));
    let stats = remote.stats();
    assert_eq!(stats.sent, stats.delivered + stats.failed());
    assert_eq!(ids.lock().unwrap().len() as u64, stats.delivered);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn core_messages_lost_while_the_server_restarts_are_counted_not_hidden() {
    let Some(mut server) = Server::start() else { return };
    let peer = Peer::start("exporter", &server.url());
    let runtime = Runtime::builder().build().unwrap();
    let config = BridgeConfig::new(server.url(), APP).send_timeout(Duration::from_millis(500));
    let bridge = Bridge::connect(config).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    // Every message tries the link: what is counted is the link's loss.
    remote.breaker().disable();
    for id in 0..2_000 {
        if id == 500 {
            server.kill();
        }
        if id == 1_000 {
            server.restart();
            assert!(eventually(WAIT, || bridge.is_connected()));
            // The exporter resubscribes once it has reconnected too.
            std::thread::sleep(Duration::from_millis(500));
        }
        remote.addr().send(Work::Item(id)).unwrap();
        if id % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert!(eventually(WAIT, || remote.stats().sent == 2_000 && remote.stats().in_flight() == 0));
    let stats = remote.stats();
    let (received, _) = peer.finish();
    eprintln!("core restart: {stats:?}, received {received}");
    assert_eq!(stats.sent, 2_000);
    assert_eq!(stats.sent, stats.delivered + stats.failed(), "every message settled and was counted");
    assert!(
        stats.failed() >= 400,
        "the messages sent while the server was down are counted as lost: {stats:?}"
    );
    assert!(stats.delivered >= 1_000, "before and after the outage the link delivers: {stats:?}");
    assert!(
        received >= stats.delivered && received <= stats.delivered + stats.timed_out + stats.connection_lost,
        "the exporter got every delivered message, and at most those whose verdict was lost too"
    );
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_durable_edge_loses_no_acknowledged_message_across_a_server_restart() {
    let Some(mut server) = Server::start() else { return };
    let peer = Peer::start("durable-exporter", &server.url());
    let runtime = Runtime::builder().build().unwrap();
    let bridge = Bridge::connect(BridgeConfig::new(server.url(), APP)).unwrap();
    let remote = bridge.import_durable::<Work>(&runtime, PATH).unwrap();
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    let mut restarted = false;
    for id in 0..300 {
        if id == 150 {
            server.kill();
        }
        // A sender that keeps its message until the edge acknowledges it.
        for _attempt in 0..500 {
            match remote.send(Work::Item(id)) {
                Ok(()) => {
                    acknowledged.push(id);
                    break;
                }
                Err(e) => {
                    let breaker_open = BridgeError::BreakerOpen { breaker: "nats:cellrt.test.work".into() };
                    assert!(e.error().is_link_failure() || *e.error() == breaker_open, "{e:?}");
                    refused += 1;
                    if refused == 10 && !restarted {
                        server.restart();
                        restarted = true;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
    let (count, mut ids) = peer.finish_expecting(acknowledged.len());
    ids.sort_unstable();
    let received = ids.len();
    ids.dedup();
    eprintln!(
        "durable restart: {} acknowledged, {refused} refused, {count} handled, {} duplicates",
        acknowledged.len(),
        received - ids.len()
    );
    let missing: Vec<_> = acknowledged.iter().filter(|id| ids.binary_search(id).is_err()).collect();
    assert!(missing.is_empty(), "acknowledged and never handled: {missing:?}");
    assert_eq!(acknowledged, (0..300).collect::<Vec<_>>(), "the sender's retries got every message stored");
    assert!(refused >= 10, "the outage was seen: {refused} refusals");
    assert_eq!(remote.stats().delivered, 300);
    assert_eq!(ids, (0..300).collect::<Vec<_>>(), "at least once: every message handled, some twice");
    runtime.shutdown(Duration::from_secs(5));
}

/// Forwards every item it gets to the import.
struct Forwarder(cellrt::Addr<Work>);

impl cellrt::Cell for Forwarder {
    type Message = u64;

    fn handle(&mut self, _ctx: &mut cellrt::Context<Self>, id: u64) -> Result<(), cellrt::CellError> {
        self.0.try_send(Work::Item(id)).map_err(|_| cellrt::CellError::msg("the import is full"))
    }
}

#[test]
fn the_edge_from_a_sender_to_an_import_is_in_the_flow_map() {
    let Some(server) = Server::start() else { return };
    let (runtime, bridge) = importer(&server);
    let worker = runtime.spawn(Worker::default()).unwrap();
    let _export = bridge.export(&runtime, PATH, &worker).unwrap();
    let remote = bridge.import::<Work>(&runtime, PATH).unwrap();
    let forwarder =
        runtime.spawn_with(CellConfig::named("forwarder"), Forwarder(remote.addr().clone())).unwrap();
    for id in 0..50 {
        forwarder.send(id).unwrap();
    }
    assert!(eventually(WAIT, || remote.stats().delivered == 50));
    // The edges' counts are read by the analysis, once per window.
    assert!(eventually(WAIT, || {
        runtime.analyse_window_now();
        !runtime.snapshot().edges.is_empty()
    }));
    let edges = runtime.snapshot().edges;
    let edge = edges
        .iter()
        .find(|e| e.from.as_str() == "/forwarder" && e.to.as_str() == "/import:cellrt.test.work/bridge")
        .unwrap_or_else(|| panic!("no edge to the import in {edges:?}"));
    assert_eq!(edge.messages, 50);
    runtime.shutdown(Duration::from_secs(5));
}
