//! The live export (feature `http`), through a real HTTP client (hyper's)
//! against the running server: each endpoint's status, content type and
//! body, the 400/404/405 answers, readiness, and the server's end with the
//! runtime. The last test runs Prometheus's `promtool` on `/metrics`.
#![cfg(feature = "http")]

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use cellrt::{
    CellConfig, ChildSpec, HttpConfig, HttpServer, JournalQuery, Objective, Runtime, ServeError,
    SupervisorSpec,
};
use common::{gate, open, runtime, wait_for, Gated, Log, Rec, Recorder, PATIENCE};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// What the server answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    content_type: String,
    allow: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

/// Sends `method` to `http://addr/path_and_query` with hyper's client, on a
/// tokio runtime of its own, within [`PATIENCE`].
fn request(method: Method, addr: SocketAddr, path_and_query: &str) -> Result<Answer, String> {
    let tokio = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    tokio.block_on(async {
        let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
        let request = Request::builder()
            .method(method)
            .uri(format!("http://{addr}{path_and_query}"))
            .body(Empty::new())
            .unwrap();
        let exchange = async {
            let response = client.request(request).await.map_err(|err| format!("{err:?}"))?;
            let status = response.status();
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .map(|v: &hyper::header::HeaderValue| v.to_str().unwrap().to_owned())
            };
            let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
            let allow = header(hyper::header::ALLOW);
            let body = response.into_body().collect().await.map_err(|err| err.to_string())?.to_bytes();
            let body = String::from_utf8(body.to_vec()).map_err(|err| err.to_string())?;
            Ok(Answer { status, content_type, allow, body })
        };
        tokio::time::timeout(PATIENCE, exchange).await.map_err(|_| "no answer in time".to_owned())?
    })
}

fn get(addr: SocketAddr, path_and_query: &str) -> Answer {
    request(Method::GET, addr, path_and_query).unwrap_or_else(|err| panic!("GET {path_and_query}: {err}"))
}

fn serve(runtime: &Runtime) -> HttpServer {
    runtime.serve_http(HttpConfig::default()).expect("the live export starts")
}

/// A runtime with `/orders` (3 messages handled) and `/stock` (1).
fn shop() -> (Runtime, Log<u64>) {
    let runtime = runtime(1);
    let log = Log::default();
    let orders = runtime.spawn_with(CellConfig::named("orders"), Recorder::new(&log)).unwrap();
    let stock = runtime.spawn_with(CellConfig::named("stock"), Recorder::new(&log)).unwrap();
    for n in 1..=3 {
        orders.send(Rec::Put(n)).unwrap();
    }
    stock.send(Rec::Put(4)).unwrap();
    wait_for("four messages handled", || log.len() == 4);
    wait_for("the metrics counted them", || {
        runtime.snapshot().cells.iter().filter_map(|c| c.metrics.as_ref()).map(|m| m.handled).sum::<u64>()
            == 4
    });
    (runtime, log)
}

const RECORDER: &str = "http::common::Recorder";

#[test]
fn metrics_are_the_prometheus_text_of_the_snapshot() {
    let (runtime, _log) = shop();
    let server = serve(&runtime);
    let answer = get(server.local_addr(), "/metrics");
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(answer.body.starts_with("# HELP cellrt_messages_handled_total Messages handled successfully.\n"));
    let orders = format!("cellrt_messages_handled_total{{cell=\"/orders\",kind=\"{RECORDER}\"}} 3\n");
    let stock = format!("cellrt_messages_handled_total{{cell=\"/stock\",kind=\"{RECORDER}\"}} 1\n");
    assert!(answer.body.contains(&orders), "{}", answer.body);
    assert!(answer.body.contains(&stock), "{}", answer.body);
    runtime.shutdown(PATIENCE);
}

#[test]
fn the_snapshot_is_json_naming_every_cell() {
    let (runtime, _log) = shop();
    let server = serve(&runtime);
    let answer = get(server.local_addr(), "/snapshot.json");
    assert_eq!((answer.status, answer.content_type.as_str()), (StatusCode::OK, "application/json"));
    let snapshot = answer.json();
    let cells: Vec<(&str, &str, u64)> = snapshot["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap(),
                c["kind"].as_str().unwrap(),
                c["metrics"]["handled"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(cells, [("/orders", RECORDER, 3), ("/stock", RECORDER, 1)]);
    for part in ["edges", "signatures", "journal", "rollups"] {
        assert!(snapshot[part].is_array(), "{part}");
    }
    assert!(snapshot["measures"].is_object());
    runtime.shutdown(PATIENCE);
}

#[test]
fn the_journal_gives_the_entries_after_an_id_as_json_lines() {
    let runtime = runtime(1);
    let baseline = runtime.mark_phase("baseline").unwrap();
    let chaos = runtime.mark_phase("chaos").unwrap();
    let recovery = runtime.mark_phase("recovery").unwrap();
    let server = serve(&runtime);

    let answer = get(server.local_addr(), &format!("/journal?since={}", baseline.seq));
    assert_eq!((answer.status, answer.content_type.as_str()), (StatusCode::OK, "application/x-ndjson"));
    assert!(answer.body.ends_with('\n'));
    let lines: Vec<Value> = answer.body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let expected: Vec<Value> = runtime
        .journal(&JournalQuery::new())
        .into_iter()
        .filter(|signal| signal.seq > baseline.seq)
        .map(|signal| serde_json::to_value(signal).unwrap())
        .collect();
    assert_eq!(lines, expected);
    let seqs: Vec<u64> = lines.iter().map(|line| line["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [chaos.seq, recovery.seq]);
    assert_eq!(lines[0]["kind"], json!({ "Phase": { "name": "chaos" } }));

    let first = get(server.local_addr(), &format!("/journal?since={}&limit=1", baseline.seq));
    assert_eq!(first.body.lines().count(), 1);
    assert_eq!(serde_json::from_str::<Value>(first.body.trim_end()).unwrap()["seq"], chaos.seq);
    let none = get(server.local_addr(), &format!("/journal?since={}", recovery.seq));
    assert_eq!((none.status, none.body.as_str()), (StatusCode::OK, ""));
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_malformed_query_gets_400_with_a_json_error() {
    let runtime = runtime(1);
    let server = serve(&runtime);
    let addr = server.local_addr();
    let cases = [
        ("/journal?since=abc", "query parameter \"since\" must be a whole number, not \"abc\""),
        ("/journal?since=1&since=2", "query parameter \"since\" is given twice"),
        ("/journal?limit=10001", "query parameter \"limit\" must be at most 10000, not 10001"),
        ("/journal?cell=/orders", "unknown query parameter \"cell\": /journal takes since and limit"),
        ("/metrics?debug=1", "unknown query parameter \"debug\": /metrics takes no parameters"),
    ];
    for (path, error) in cases {
        let answer = get(addr, path);
        assert_eq!(
            (answer.status, answer.content_type.as_str()),
            (StatusCode::BAD_REQUEST, "application/json")
        );
        assert_eq!(answer.body, format!("{}\n", json!({ "error": error })), "{path}");
    }
    runtime.shutdown(PATIENCE);
}

#[test]
fn an_unknown_path_gets_404_and_another_method_405() {
    let runtime = runtime(1);
    let server = serve(&runtime);
    let addr = server.local_addr();
    let missing = get(addr, "/metrics/cells");
    assert_eq!((missing.status, missing.content_type.as_str()), (StatusCode::NOT_FOUND, "application/json"));
    assert_eq!(
        missing.json(),
        json!({ "error": "no endpoint at /metrics/cells; the endpoints are /metrics, /snapshot.json, /journal, /healthz, /readyz" })
    );
    let post = request(Method::POST, addr, "/journal").unwrap();
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.allow.as_deref(), Some("GET, HEAD"));
    assert_eq!(post.json(), json!({ "error": "method POST is not allowed on /journal: use GET or HEAD" }));
    let head = request(Method::HEAD, addr, "/healthz").unwrap();
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_running_runtime_is_alive_and_ready() {
    let runtime = runtime(1);
    let server = serve(&runtime);
    let health = get(server.local_addr(), "/healthz");
    assert_eq!((health.status, health.content_type.as_str()), (StatusCode::OK, "application/json"));
    assert_eq!(health.json(), json!({ "status": "alive" }));
    let ready = get(server.local_addr(), "/readyz");
    assert_eq!((ready.status, ready.json()), (StatusCode::OK, json!({ "status": "ready" })));
    runtime.shutdown(PATIENCE);
}

#[test]
fn an_escalation_to_the_root_makes_the_runtime_unready_but_alive() {
    let runtime = runtime(1);
    let log = Log::default();
    let spec = SupervisorSpec::new("payments")
        .intensity(0, Duration::from_secs(60))
        .child(ChildSpec::new("ledger", move || Recorder::new(&log)));
    let supervisor = runtime.start_supervisor(spec, PATIENCE).unwrap();
    let server = serve(&runtime);
    supervisor.child::<Rec>("ledger").unwrap().send(Rec::Fail("disk full")).unwrap();
    wait_for("the escalation", || !runtime.escalations().is_empty());

    let ready = get(server.local_addr(), "/readyz");
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json(),
        json!({
            "status": "not ready",
            "reason": "1 escalation reached the runtime root; the latest: supervisor /payments gave up when /payments/ledger exited past 0 restarts in 60s"
        })
    );
    assert_eq!(get(server.local_addr(), "/healthz").status, StatusCode::OK);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_shutting_down_runtime_is_unready_until_the_server_stops_with_it() {
    let runtime = runtime(1);
    let door = gate();
    let gated = runtime
        .spawn_with(CellConfig::named("gated"), Gated { gate: door.clone(), log: Log::default() })
        .unwrap();
    gated.send(1).unwrap();
    let server = serve(&runtime);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/readyz").status, StatusCode::OK);

    // The gated cell holds the drain until its gate opens.
    let shutdown = std::thread::spawn(move || runtime.shutdown(PATIENCE));
    wait_for("readiness to fail", || get(addr, "/readyz").status == StatusCode::SERVICE_UNAVAILABLE);
    let ready = get(addr, "/readyz");
    assert_eq!(ready.json(), json!({ "status": "not ready", "reason": "the runtime is shutting down" }));
    assert_eq!(get(addr, "/healthz").status, StatusCode::OK);
    assert!(server.is_running());

    open(&door);
    let report = shutdown.join().unwrap();
    assert_eq!(report.cells_stopped, 1);
    assert!(!server.is_running());
    let refused = TcpStream::connect(addr).expect_err("the port is closed");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(request(Method::GET, addr, "/healthz").is_err());
}

#[test]
fn stopping_the_server_releases_its_port_and_leaves_the_runtime_running() {
    let (runtime, log) = shop();
    let server = serve(&runtime);
    let addr = server.local_addr();
    assert_eq!(get(addr, "/healthz").status, StatusCode::OK);
    server.stop();
    let refused = TcpStream::connect(addr).expect_err("the port is closed");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    // The port is free again: another server takes it.
    let again = runtime.serve_http(HttpConfig::localhost(addr.port())).expect("the port is free");
    assert_eq!(again.local_addr(), addr);
    assert_eq!(get(addr, "/healthz").status, StatusCode::OK);
    assert_eq!(log.len(), 4);
    runtime.shutdown(PATIENCE);
}

#[test]
fn binding_an_occupied_port_is_a_typed_error_naming_the_address() {
    let runtime = runtime(1);
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = runtime.serve_http(HttpConfig::localhost(addr.port())).expect_err("the port is taken");
    assert!(err.is_addr_in_use(), "{err:?}");
    match &err {
        ServeError::Bind { addr: refused, kind, .. } => {
            assert_eq!((*refused, *kind), (addr, std::io::ErrorKind::AddrInUse));
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().starts_with(&format!("cannot listen on {addr}: ")), "{err}");
    runtime.shutdown(PATIENCE);
}

/// `promtool`, Prometheus's own checker, if it is installed.
fn promtool() -> Option<String> {
    let tool = std::env::var("CELLRT_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let found = Command::new(&tool).arg("--version").output().ok()?;
    found.status.success().then_some(tool)
}

#[test]
fn promtool_accepts_the_live_metrics() {
    let Some(promtool) = promtool() else {
        let required = std::env::var("CELLRT_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "promtool not found and CELLRT_REQUIRE_PROMTOOL=1: install it (apt-get install prometheus) \
             or set CELLRT_PROMTOOL to it"
        );
        eprintln!("SKIPPED: promtool not found (apt-get install prometheus): /metrics was not checked by it");
        return;
    };
    // Every family filled: cells with metrics, decay and an objective, a
    // supervisor whose child failed and was restarted, a failure signature.
    let runtime = runtime(1);
    let log = Log::default();
    let child_log = log.clone();
    let spec =
        SupervisorSpec::new("payments").child(ChildSpec::new("ledger", move || Recorder::new(&child_log)));
    let supervisor = runtime.start_supervisor(spec, PATIENCE).unwrap();
    let ledger = supervisor.child::<Rec>("ledger").unwrap();
    let orders = runtime.spawn_with(CellConfig::named("orders"), Recorder::new(&log)).unwrap();
    runtime.set_objective(orders.path(), Some(Objective::success_ratio(0.99).unwrap()));
    ledger.send(Rec::Fail("disk full")).unwrap();
    for n in 0..10 {
        orders.send(Rec::Put(n)).unwrap();
        ledger.send(Rec::Put(n)).unwrap();
    }
    wait_for("twenty messages handled", || log.len() == 20);
    runtime.analyse_window_now();
    let server = serve(&runtime);
    let metrics = get(server.local_addr(), "/metrics").body;
    assert!(metrics.contains("cellrt_failure_signature_total{signature=\""), "{metrics}");
    assert!(metrics.contains("cellrt_decay{cell=\"/orders\""), "{metrics}");

    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check.stdin.take().unwrap().write_all(metrics.as_bytes()).unwrap();
    let output = check.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "promtool check metrics refused /metrics:\n{said}\n{metrics}");
    assert_eq!(said.trim(), "", "promtool's lints:\n{said}");
    runtime.shutdown(PATIENCE);
}
