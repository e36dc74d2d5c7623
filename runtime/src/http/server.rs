//! [`HttpServer`]: the server's thread, its accept loop and its stop, and
//! [`Runtime::serve_http`], which starts it.
//!
//! # Invariants
//!
//! - The socket is bound and the tokio runtime built on the caller's thread,
//!   so every failure to start comes back as a [`ServeError`]; the thread
//!   only serves.
//! - The server holds the runtime weakly: it never keeps a stopped runtime's
//!   state alive, and a request that finds it gone gets a 503.
//! - [`Control::stop`] is the one way out, whoever calls it (the handle's
//!   `stop` or drop, or the runtime's shutdown through its
//!   `ShutdownHook`): it signals the thread and joins it, so the port is
//!   released when it returns. The thread closes the listener at once, gives
//!   open connections [`CLOSE_GRACE`] to finish, and drops the rest.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::task::Poll;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::config::HttpConfig;
use super::error::ServeError;
use super::routes::{self, ALLOWED};
use crate::runtime::{Runtime, RuntimeShared, ShutdownHook};
use crate::sync::{thread, Arc, Mutex, Weak};

/// How long connections still open when the server stops get to finish
/// the request they are on.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// How long the accept loop waits after a failed accept (out of file
/// descriptors, say) before it tries again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The running live export of a runtime: `/metrics`, `/snapshot.json`,
/// `/journal`, `/healthz`, `/readyz` (see the crate's `Runtime::serve_http`).
///
/// The server stops when [`stop`](HttpServer::stop) is called, when this
/// handle is dropped, or when the runtime shuts down, whichever comes
/// first; once stopped, its port is free and connecting to it is refused.
#[must_use = "the server stops when its handle is dropped"]
pub struct HttpServer {
    local_addr: SocketAddr,
    control: Arc<Control>,
}

impl HttpServer {
    /// The address the server listens on, with the port the system picked
    /// when the configuration asked for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether the server still runs: neither stopped nor ended with its
    /// runtime.
    pub fn is_running(&self) -> bool {
        self.control.thread.lock().as_ref().is_some_and(|thread| !thread.is_finished())
    }

    /// Stops the server and waits until it has: the listener is closed
    /// (connecting is refused), connections still open get a second to
    /// finish their request, then are dropped. Dropping the handle does the
    /// same.
    pub fn stop(self) {
        self.control.stop();
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.control.stop();
    }
}

impl fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServer")
            .field("local_addr", &self.local_addr)
            .field("running", &self.is_running())
            .finish()
    }
}

/// What stops the server: shared by the handle and the runtime's shutdown.
struct Control {
    stop: watch::Sender<bool>,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl Control {
    /// Signals the server's thread and joins it; at once if it has ended.
    fn stop(&self) {
        self.stop.send_replace(true);
        let Some(handle) = self.thread.lock().take() else { return };
        if handle.thread().id() == std::thread::current().id() {
            // A stop from the server's own thread (a runtime dropped in a
            // request): the signal is enough, the thread ends after it.
            return;
        }
        if handle.join().is_err() {
            tracing::error!("the live export's thread panicked");
        }
    }
}

impl ShutdownHook for Control {
    fn runtime_stopping(&self) {
        self.stop();
    }
}

impl Runtime {
    /// Starts the live export: an HTTP/1.1 server, on a thread of its own,
    /// that answers `GET` (and `HEAD`) on
    ///
    /// | path | answer |
    /// |---|---|
    /// | `/metrics` | [`Snapshot::prometheus`](crate::Snapshot::prometheus), `text/plain; version=0.0.4; charset=utf-8` |
    /// | `/snapshot.json` | the [`Snapshot`](crate::Snapshot) as JSON |
    /// | `/journal?since=ID&limit=N` | journal entries numbered after `ID` (default 0), oldest first, at most `N` (default 1,000, at most 10,000), one JSON [`Signal`](crate::Signal) a line (`application/x-ndjson`) |
    /// | `/healthz` | 200 `{"status":"alive"}` while the runtime runs |
    /// | `/readyz` | 200 `{"status":"ready"}`, or 503 `{"status":"not ready","reason":…}` while the runtime shuts down or once an escalation reached its root |
    ///
    /// A query parameter an endpoint does not take, or a value that is not
    /// a decimal number, gets 400 with `{"error": "…"}`; an unknown path
    /// 404 and another method 405, both with the same JSON body.
    ///
    /// The server holds the runtime weakly, never keeps it alive, and
    /// stops with it: [`shutdown`](Runtime::shutdown) (or dropping the
    /// runtime) stops it once the cells are drained, and until then
    /// `/readyz` answers 503. Its thread runs a current-thread tokio
    /// runtime of its own, so an application needs none; the answers are
    /// computed on that thread, one request at a time.
    ///
    /// The endpoints expose the application's internals: by default the
    /// server listens on `127.0.0.1` only (see [`HttpConfig`]).
    ///
    /// # Errors
    ///
    /// [`ServeError::Bind`] when the address cannot be bound (taken,
    /// not local, privileged), [`ServeError::Start`] when the thread or
    /// its tokio runtime cannot start.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{HttpConfig, Runtime};
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let server = runtime.serve_http(HttpConfig::default())?;
    /// let addr = server.local_addr();
    /// assert!(addr.ip().is_loopback() && addr.port() != 0);
    /// println!("curl http://{addr}/metrics");
    /// runtime.shutdown(Duration::from_secs(5));
    /// // The server ended with the runtime: its port is closed.
    /// assert!(!server.is_running());
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve_http(&self, config: HttpConfig) -> Result<HttpServer, ServeError> {
        let addr = config.addr();
        let listener = StdListener::bind(addr).map_err(|err| ServeError::bind(addr, &err))?;
        let local_addr = listener.local_addr().map_err(|err| ServeError::bind(addr, &err))?;
        listener.set_nonblocking(true).map_err(|err| ServeError::start(&err))?;
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|err| ServeError::start(&err))?;
        let listener = {
            let _context = tokio.enter();
            TcpListener::from_std(listener).map_err(|err| ServeError::start(&err))?
        };
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::downgrade(self.shared());
        let thread = thread::Builder::new()
            .name("cellrt-http".to_owned())
            .spawn(move || tokio.block_on(serve(listener, shared, stopped)))
            .map_err(|err| ServeError::start(&err))?;
        let control = Arc::new(Control { stop, thread: Mutex::new(Some(thread)) });
        let hook: Weak<dyn ShutdownHook> = Arc::downgrade(&control) as Weak<dyn ShutdownHook>;
        self.shared().add_shutdown_hook(hook);
        tracing::info!(addr = %local_addr, loopback = local_addr.ip().is_loopback(), "live export listening");
        Ok(HttpServer { local_addr, control })
    }
}

/// The accept loop, until `stopped` says so; then the graceful close.
async fn serve(listener: TcpListener, runtime: Weak<RuntimeShared>, stopped: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut stop = std::pin::pin!(stop_signal(stopped));
    loop {
        let accepted = std::future::poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, _peer))) => {
                let runtime = runtime.clone();
                let service = service_fn(move |request| {
                    let response = answer(&runtime, &request);
                    std::future::ready(Ok::<_, Infallible>(response))
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service);
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(%err, "live export connection ended with an error");
                    }
                });
            }
            Some(Err(err)) => {
                tracing::warn!(%err, "the live export could not accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(CLOSE_GRACE, graceful.shutdown()).await.is_err() {
        tracing::debug!("live export connections still open after the grace period were dropped");
    }
    tracing::info!("live export stopped");
}

/// Resolves once the stop flag is set or its sender is gone.
async fn stop_signal(mut stopped: watch::Receiver<bool>) {
    while !*stopped.borrow_and_update() {
        if stopped.changed().await.is_err() {
            return;
        }
    }
}

/// The HTTP response to `request`.
fn answer(runtime: &Weak<RuntimeShared>, request: &Request<Incoming>) -> hyper::Response<Full<Bytes>> {
    let uri = request.uri();
    let answer = routes::respond(runtime, request.method(), uri.path(), uri.query());
    let mut response = hyper::Response::new(Full::new(Bytes::from(answer.body)));
    *response.status_mut() = answer.status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(answer.content_type));
    // Every answer is the state of the moment.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if answer.status == StatusCode::METHOD_NOT_ALLOWED {
        headers.insert(ALLOW, HeaderValue::from_static(ALLOWED));
    }
    response
}
