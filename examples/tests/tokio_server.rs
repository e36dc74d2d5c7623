//! The tokio_server example's smoke run: every route of the service and
//! every endpoint of the live export, answered. See `tokio_server/main.rs`.

#[allow(dead_code)]
#[path = "../tokio_server/inventory.rs"]
mod inventory;
#[allow(dead_code)]
#[path = "../tokio_server/service.rs"]
mod service;

use serde_json::{json, Value};

#[test]
fn the_smoke_run_gets_an_answer_from_every_route_and_endpoint() {
    let exchanges = service::smoke().expect("the smoke run completes");
    let got: Vec<(String, u16, &str)> = exchanges
        .iter()
        .map(|e| {
            let path = e.url.splitn(4, '/').nth(3).unwrap_or("");
            (format!("{} /{path}", e.method), e.status, e.content_type.as_str())
        })
        .collect();
    assert_eq!(
        got,
        [
            ("POST /items/widget/restock?quantity=5".to_owned(), 200, "application/json"),
            ("POST /items/widget/reserve?quantity=2".to_owned(), 200, "application/json"),
            ("POST /items/widget/reserve?quantity=9".to_owned(), 409, "application/json"),
            ("GET /items/widget".to_owned(), 200, "application/json"),
            ("GET /metrics".to_owned(), 200, "text/plain; version=0.0.4; charset=utf-8"),
            ("GET /snapshot.json".to_owned(), 200, "application/json"),
            ("GET /journal?since=0&limit=5".to_owned(), 200, "application/x-ndjson"),
            ("GET /journal?since=yesterday".to_owned(), 400, "application/json"),
            ("GET /healthz".to_owned(), 200, "application/json"),
            ("GET /readyz".to_owned(), 200, "application/json"),
        ]
    );
    let body = |i: usize| serde_json::from_str::<Value>(&exchanges[i].body).unwrap();
    assert_eq!(body(0), json!({ "item": "widget", "level": 5 }));
    assert_eq!(body(1), json!({ "item": "widget", "reserved": 2, "left": 3 }));
    assert_eq!(body(2), json!({ "error": "not enough widget: 9 wanted, 3 left", "left": 3 }));
    assert_eq!(body(3), json!({ "item": "widget", "level": 3 }));

    // The four asks went to the shelf that keeps widgets, and to no other.
    // A turn adds its counts to the cell's counters when it ends, which may
    // be after its last answer reached the caller: a scrape taken right
    // after the fourth answer counts each ask at most once, and at least
    // the asks of the turns that ended (the first ask's turn ends long
    // before the fourth request is sent).
    let metrics = &exchanges[4].body;
    let handled = |shelf: &str| -> u64 {
        let prefix = format!("cellrt_messages_handled_total{{cell=\"/inventory/{shelf}\"");
        let line =
            metrics.lines().find(|line| line.starts_with(&prefix)).unwrap_or_else(|| panic!("{metrics}"));
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    let shelves: Vec<String> = (0..4).map(|i| format!("shelf-{i}")).collect();
    let widget_shelf =
        shelves.iter().find(|s| handled(s) > 0).unwrap_or_else(|| panic!("no ask counted: {metrics}"));
    assert!(handled(widget_shelf) <= 4, "{metrics}");
    for other in shelves.iter().filter(|s| *s != widget_shelf) {
        assert_eq!(handled(other), 0, "{other}: {metrics}");
    }
    let snapshot = body(5);
    let mut cells: Vec<&str> =
        snapshot["cells"].as_array().unwrap().iter().map(|c| c["path"].as_str().unwrap()).collect();
    cells.sort_unstable();
    assert_eq!(
        cells,
        [
            "/inventory",
            "/inventory/shelf-0",
            "/inventory/shelf-1",
            "/inventory/shelf-2",
            "/inventory/shelf-3"
        ]
    );
    let journal: Vec<Value> =
        exchanges[6].body.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    // The spawns, numbered from 1: the supervisor's, and its four shelves'
    // (one entry each, or one for a run of them).
    let seqs: Vec<u64> = journal.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=journal.len() as u64).collect::<Vec<_>>());
    let spawned: u64 = journal
        .iter()
        .map(|e| match &e["kind"]["Topology"]["change"] {
            Value::String(change) if change == "Spawned" => 1,
            change => change["SpawnedCells"]["count"].as_u64().unwrap_or_else(|| panic!("{e}")),
        })
        .sum();
    assert_eq!(spawned, 5, "{journal:?}");
    assert_eq!(
        body(7),
        json!({ "error": "query parameter \"since\" must be a whole number, not \"yesterday\"" })
    );
    assert_eq!(body(8), json!({ "status": "alive" }));
    assert_eq!(body(9), json!({ "status": "ready" }));
}
