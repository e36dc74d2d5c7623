//! The web service: an axum router whose handlers ask the inventory's
//! cells from tokio tasks (`Addr::ask_async`), the runtime's live export on
//! a port beside it, and a smoke run that requests every endpoint of both.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cellrt::{AskAsyncError, HttpConfig, HttpServer, Reply, Runtime, ServeError, StartError};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;

use crate::inventory::{Inventory, ShelfMsg};

/// How long a handler waits for a shelf's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(1);

/// The service's routes over `inventory`:
///
/// - `GET /items/{item}`: the stock level;
/// - `POST /items/{item}/restock?quantity=N`: adds N, answers the level;
/// - `POST /items/{item}/reserve?quantity=N`: takes N, answers what is
///   left, or 409 when there are fewer.
pub(crate) fn router(inventory: Inventory) -> Router {
    Router::new()
        .route("/items/{item}", get(level))
        .route("/items/{item}/restock", post(restock))
        .route("/items/{item}/reserve", post(reserve))
        .with_state(inventory)
}

#[derive(Deserialize)]
struct Quantity {
    quantity: u32,
}

async fn level(State(inventory): State<Inventory>, Path(item): Path<String>) -> Response {
    answer_level(&inventory, item, |item, reply| ShelfMsg::Level { item, reply }).await
}

async fn restock(
    State(inventory): State<Inventory>,
    Path(item): Path<String>,
    Query(Quantity { quantity }): Query<Quantity>,
) -> Response {
    answer_level(&inventory, item, move |item, reply| ShelfMsg::Restock { item, quantity, reply }).await
}

/// Asks `item`'s shelf the request `make` builds, one answered with the
/// item's stock level: the level, or 503 when the shelf did not answer.
async fn answer_level(
    inventory: &Inventory,
    item: String,
    make: impl FnOnce(String, Reply<u32>) -> ShelfMsg,
) -> Response {
    let shelf = inventory.shelf(&item);
    let asked = item.clone();
    match shelf.ask_async(ASK_TIMEOUT, move |reply| make(asked, reply)).await {
        Ok(level) => Json(json!({ "item": item, "level": level })).into_response(),
        Err(err) => unavailable(&err),
    }
}

async fn reserve(
    State(inventory): State<Inventory>,
    Path(item): Path<String>,
    Query(Quantity { quantity }): Query<Quantity>,
) -> Response {
    let shelf = inventory.shelf(&item);
    let asked = item.clone();
    match shelf.ask_async(ASK_TIMEOUT, move |reply| ShelfMsg::Reserve { item: asked, quantity, reply }).await
    {
        Ok(Ok(left)) => Json(json!({ "item": item, "reserved": quantity, "left": left })).into_response(),
        Ok(Err(shortage)) => (
            StatusCode::CONFLICT,
            Json(json!({ "error": format!("not enough {item}: {shortage}"), "left": shortage.left })),
        )
            .into_response(),
        Err(err) => unavailable(&err),
    }
}

/// A shelf that did not answer: 503, with why.
fn unavailable<M>(err: &AskAsyncError<M>) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "error": err.to_string() }))).into_response()
}

/// Why the service did not start.
#[derive(Debug)]
pub(crate) enum StartFailure {
    Runtime(cellrt::BuildError),
    Inventory(StartError),
    Export(ServeError),
    Listen { addr: SocketAddr, err: std::io::Error },
}

impl std::fmt::Display for StartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartFailure::Runtime(err) => write!(f, "the runtime did not start: {err}"),
            StartFailure::Inventory(err) => write!(f, "the inventory did not start: {err}"),
            StartFailure::Export(err) => write!(f, "the live export did not start: {err}"),
            StartFailure::Listen { addr, err } => write!(f, "cannot listen on {addr}: {err}"),
        }
    }
}

impl std::error::Error for StartFailure {}

/// Everything running: the cellrt runtime and its inventory, the live
/// export, and the service's listener (not yet serving).
pub(crate) struct Shop {
    pub(crate) runtime: Runtime,
    pub(crate) inventory: Inventory,
    pub(crate) export: HttpServer,
    pub(crate) listener: TcpListener,
}

impl Shop {
    /// Starts the runtime, the inventory and the live export (on
    /// `export_port` of localhost), and binds the service's listener (on
    /// `service_port`); port 0 takes any free port. Call it inside a tokio
    /// runtime.
    pub(crate) async fn start(service_port: u16, export_port: u16) -> Result<Shop, StartFailure> {
        let runtime = Runtime::builder().worker_threads(2).build().map_err(StartFailure::Runtime)?;
        let inventory = Inventory::start(&runtime).map_err(StartFailure::Inventory)?;
        let export = runtime.serve_http(HttpConfig::localhost(export_port)).map_err(StartFailure::Export)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], service_port));
        let listener = TcpListener::bind(addr).await.map_err(|err| StartFailure::Listen { addr, err })?;
        Ok(Shop { runtime, inventory, export, listener })
    }

    /// The service's address.
    pub(crate) fn service_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }
}

/// One request of the smoke run and what came back.
#[derive(Clone, Debug)]
pub(crate) struct Exchange {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) status: u16,
    pub(crate) content_type: String,
    pub(crate) body: String,
}

/// The requests of the smoke run: the service's three routes (a restock,
/// two reservations, the second refused, a level), then every endpoint of
/// the live export, a malformed journal query among them.
pub(crate) fn smoke_requests(service: SocketAddr, export: SocketAddr) -> Vec<(Method, String)> {
    vec![
        (Method::POST, format!("http://{service}/items/widget/restock?quantity=5")),
        (Method::POST, format!("http://{service}/items/widget/reserve?quantity=2")),
        (Method::POST, format!("http://{service}/items/widget/reserve?quantity=9")),
        (Method::GET, format!("http://{service}/items/widget")),
        (Method::GET, format!("http://{export}/metrics")),
        (Method::GET, format!("http://{export}/snapshot.json")),
        (Method::GET, format!("http://{export}/journal?since=0&limit=5")),
        (Method::GET, format!("http://{export}/journal?since=yesterday")),
        (Method::GET, format!("http://{export}/healthz")),
        (Method::GET, format!("http://{export}/readyz")),
    ]
}

/// Sends each request in turn with hyper's client.
pub(crate) async fn exchange(
    requests: Vec<(Method, String)>,
) -> Result<Vec<Exchange>, Box<dyn std::error::Error>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut exchanges = Vec::new();
    for (method, url) in requests {
        let request = Request::builder().method(method.clone()).uri(&url).body(Empty::new())?;
        let response = tokio::time::timeout(Duration::from_secs(10), client.request(request)).await??;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
        exchanges.push(Exchange { method, url, status, content_type, body });
    }
    Ok(exchanges)
}

/// Starts everything on free ports, serves, runs the smoke requests,
/// stops the service and the runtime (which stops the export), and
/// returns what each request got.
pub(crate) fn smoke() -> Result<Vec<Exchange>, Box<dyn std::error::Error>> {
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let exchanges = tokio.block_on(async {
        let shop = Shop::start(0, 0).await?;
        let (service, export) = (shop.service_addr(), shop.export.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(
            axum::serve(shop.listener, router(shop.inventory))
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .into_future(),
        );
        let exchanges = exchange(smoke_requests(service, export)).await;
        let _ = stop.send(());
        serving.await??;
        Ok::<_, Box<dyn std::error::Error>>((exchanges?, shop.runtime, shop.export))
    })?;
    let (exchanges, runtime, export) = exchanges;
    // The live export stops with the runtime.
    runtime.shutdown(Duration::from_secs(5));
    debug_assert!(!export.is_running());
    Ok(exchanges)
}
