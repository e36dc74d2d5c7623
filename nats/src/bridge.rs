//! [`Bridge`]: one connection to a NATS server, the tokio runtime it runs
//! on (a thread of its own, owned by the bridge), the [`BridgeConfig`]
//! every export and import made from it shares, and the calls that make
//! them.
//!
//! # Invariants
//!
//! - The tokio runtime is built, and the first connection made, on the
//!   caller's thread: a server that cannot be reached is a
//!   [`SetupError::Connect`], not a background retry.
//! - After that the client reconnects on its own, as often as it takes;
//!   [`Bridge::is_connected`] follows the client's events, and imports
//!   refuse work at once ([`BridgeError::ConnectionLost`](crate::BridgeError))
//!   while it is down.
//! - The tokio runtime stops when the last handle made from the bridge
//!   (the bridge, its exports and imports) is dropped, or at
//!   [`Bridge::close`]; tasks never hold it, so a drop inside a task
//!   cannot stop it from within.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cellrt::{Addr, BreakerConfig, Runtime, SlidingWindow};

use crate::codec::Codec;
use crate::error::SetupError;
use crate::export::{stream_config, Export};
use crate::import::Remote;
use crate::subject::subject;
use crate::wire::Bridged;

/// What every export and import of a [`Bridge`] shares.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt_nats::{BridgeConfig, Codec};
///
/// let config = BridgeConfig::new("nats://127.0.0.1:4222", "shop")
///     .codec(Codec::Json)
///     .in_flight(256)
///     .send_timeout(Duration::from_secs(2));
/// assert_eq!(config.app(), "shop");
/// ```
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    url: String,
    app: String,
    codec: Codec,
    in_flight: usize,
    capacity: usize,
    send_timeout: Duration,
    connect_timeout: Duration,
    breaker: BreakerConfig,
}

impl BridgeConfig {
    /// A bridge to the server at `url` (`nats://host:port`, or several
    /// separated by commas) for application `app`, whose cells are bridged
    /// under `cellrt.<app>.…`.
    pub fn new(url: impl Into<String>, app: impl Into<String>) -> Self {
        BridgeConfig {
            url: url.into(),
            app: app.into(),
            codec: Codec::Bincode,
            in_flight: 1024,
            capacity: 1024,
            send_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            breaker: default_breaker(),
        }
    }

    /// The payload encoding. Both ends of a subject must agree.
    ///
    /// # Default
    ///
    /// [`Codec::Bincode`].
    pub fn codec(mut self, codec: Codec) -> Self {
        self.codec = codec;
        self
    }

    /// How many messages each import keeps published and not yet answered
    /// by the exporter. Past it, the import's cell waits for an answer
    /// before it publishes more, so its mailbox fills and local senders
    /// see `Full` as with any slow cell. Zero counts as one.
    ///
    /// # Default
    ///
    /// 1024.
    pub fn in_flight(mut self, messages: usize) -> Self {
        self.in_flight = messages.max(1);
        self
    }

    /// The mailbox capacity of each import's bridge cell: how many messages
    /// local senders can queue for the link before `try_send` sees `Full`
    /// (a bound, not an allocation). Zero counts as one.
    ///
    /// # Default
    ///
    /// 1024.
    pub fn capacity(mut self, messages: usize) -> Self {
        self.capacity = messages.max(1);
        self
    }

    /// How long a message sent (not asked) waits: on the importing side,
    /// for the exporter's verdict; on the exporting side, for room in the
    /// cell's mailbox before the sender is told it is full. An ask waits
    /// until its own deadline instead.
    ///
    /// # Default
    ///
    /// 5 seconds.
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long the first connection may take.
    ///
    /// # Default
    ///
    /// 2 seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The breaker each import puts in front of the link: link failures
    /// (connection lost, no responders, timeouts) count against it, remote
    /// refusals (full, closed) do not. While it is open, the import refuses
    /// messages at once.
    ///
    /// # Default
    ///
    /// Opens at 50 % failures over the last 20 calls (10 at least), stays
    /// open 1 second, then lets 3 trial calls through.
    pub fn breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = config;
        self
    }

    /// The application name.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The server's address.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn breaker_config(&self) -> &BreakerConfig {
        &self.breaker
    }

    pub(crate) fn codec_in_use(&self) -> Codec {
        self.codec
    }

    pub(crate) fn capacity_in_use(&self) -> usize {
        self.capacity
    }

    pub(crate) fn in_flight_limit(&self) -> usize {
        self.in_flight
    }

    pub(crate) fn send_timeout_in_use(&self) -> Duration {
        self.send_timeout
    }
}

fn default_breaker() -> BreakerConfig {
    BreakerConfig::default()
        .sliding_window(SlidingWindow::Count(20))
        .minimum_calls(10)
        .wait_in_open(Duration::from_secs(1))
        .permitted_in_half_open(3)
}

/// A connection to a NATS server, from which cells are exported
/// ([`Bridge::export`]) and imported ([`Bridge::import`]). Clones share the
/// connection.
#[derive(Clone)]
pub struct Bridge {
    pub(crate) shared: Arc<Shared>,
}

/// What the bridge's handles share.
pub(crate) struct Shared {
    pub(crate) config: BridgeConfig,
    pub(crate) client: async_nats::Client,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) link: Arc<LinkState>,
    tokio: Mutex<Option<tokio::runtime::Runtime>>,
}

/// The connection's state, as the client's events report it.
#[derive(Debug, Default)]
pub(crate) struct LinkState {
    pub(crate) connected: AtomicBool,
    pub(crate) disconnects: AtomicU64,
}

impl Bridge {
    /// Connects to the server named in `config`, on a tokio runtime the
    /// bridge starts on a thread of its own.
    ///
    /// # Errors
    ///
    /// [`SetupError::Subject`] for an application name that cannot be a
    /// subject token, [`SetupError::Connect`] when the server cannot be
    /// reached within the connect timeout, [`SetupError::Runtime`] when the
    /// thread cannot be started.
    pub fn connect(config: BridgeConfig) -> Result<Bridge, SetupError> {
        subject(&config.app, "probe")?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("cellrt-nats")
            .enable_all()
            .build()
            .map_err(SetupError::Runtime)?;
        let link = Arc::new(LinkState::default());
        let events = link.clone();
        let options = async_nats::ConnectOptions::new()
            .name(format!("cellrt-{}", config.app))
            .connection_timeout(config.connect_timeout)
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| Duration::from_millis(50 * attempts.min(10) as u64))
            .event_callback(move |event| {
                let events = events.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => events.connected.store(true, Ordering::SeqCst),
                        async_nats::Event::Disconnected | async_nats::Event::Closed
                            if events.connected.swap(false, Ordering::SeqCst) =>
                        {
                            events.disconnects.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                }
            });
        let url = config.url.clone();
        let client = tokio
            .block_on(async {
                tokio::time::timeout(config.connect_timeout, options.connect(url.as_str())).await
            })
            .map_err(|_| SetupError::Connect { url: url.clone(), text: "timed out".into() })?
            .map_err(|e| SetupError::Connect { url: url.clone(), text: e.to_string() })?;
        link.connected.store(true, Ordering::SeqCst);
        let handle = tokio.handle().clone();
        Ok(Bridge {
            shared: Arc::new(Shared { config, client, handle, link, tokio: Mutex::new(Some(tokio)) }),
        })
    }

    /// Exports the cell behind `target` under `cellrt.<app>.<path>`: until
    /// the returned [`Export`] is dropped, messages published there are
    /// delivered into the cell, and every exporter of the path shares them
    /// (a queue group). Its rejects cell is spawned under a supervisor of
    /// its own, `/export:<subject>`.
    ///
    /// # Errors
    ///
    /// [`SetupError::Subject`] for a path that cannot be a subject,
    /// [`SetupError::Subscribe`] when the server refuses the subscription.
    pub fn export<M: Bridged>(
        &self,
        runtime: &Runtime,
        path: &str,
        target: &Addr<M>,
    ) -> Result<Export, SetupError> {
        Export::start(self, runtime, path, target, false)
    }

    /// Imports the cell exported under `cellrt.<app>.<path>`. The import's
    /// bridge cell is spawned under a supervisor of its own,
    /// `/import:<subject>`, and lives until the runtime shuts down.
    ///
    /// # Errors
    ///
    /// As [`export`](Bridge::export); [`SetupError::Breaker`] for an invalid
    /// breaker configuration.
    pub fn import<M: Bridged>(&self, runtime: &Runtime, path: &str) -> Result<Remote<M>, SetupError> {
        Remote::start(self, runtime, path, None)
    }

    /// Exports the cell behind `target` as the consumer of a durable edge:
    /// the durable consumer of the JetStream stream that holds the path's
    /// subject (both made if missing). A message is acknowledged once the
    /// cell's mailbox took it, redelivered when the mailbox refused it.
    ///
    /// # Errors
    ///
    /// As [`export`](Bridge::export); [`SetupError::Subscribe`] when JetStream
    /// is not enabled on the server.
    pub fn export_durable<M: Bridged>(
        &self,
        runtime: &Runtime,
        path: &str,
        target: &Addr<M>,
    ) -> Result<Export, SetupError> {
        Export::start(self, runtime, path, target, true)
    }

    /// Imports the cell at `path` over a durable edge: messages are published
    /// to the path's JetStream stream (made if missing), each with a
    /// `Nats-Msg-Id`, and count as delivered once the server stored them.
    /// Asks are refused ([`BridgeError::AskOnDurableEdge`](crate::BridgeError)).
    ///
    /// # Errors
    ///
    /// As [`import`](Bridge::import); [`SetupError::Subscribe`] when JetStream
    /// is not enabled on the server.
    pub fn import_durable<M: Bridged>(&self, runtime: &Runtime, path: &str) -> Result<Remote<M>, SetupError> {
        let subject = subject(self.config().app(), path)?;
        let context = {
            let _runtime = self.shared.handle.enter();
            async_nats::jetstream::new(self.shared.client.clone())
        };
        let config = stream_config(&subject);
        self.shared
            .handle
            .block_on(async { context.get_or_create_stream(config).await.map(|_| ()) })
            .map_err(|e| SetupError::Subscribe { subject: subject.clone(), text: e.to_string() })?;
        Remote::start(self, runtime, path, Some(context))
    }

    /// Whether the connection is up now.
    pub fn is_connected(&self) -> bool {
        self.shared.link.connected.load(Ordering::SeqCst)
    }

    /// How many times the connection was lost since the bridge connected.
    pub fn disconnects(&self) -> u64 {
        self.shared.link.disconnects.load(Ordering::SeqCst)
    }

    /// The configuration the bridge was made with.
    pub fn config(&self) -> &BridgeConfig {
        &self.shared.config
    }

    /// Flushes what is buffered to the server and stops the bridge's tokio
    /// runtime, waiting up to `timeout`. Exports and imports made from it
    /// stop: their tasks end, and their cells refuse messages as a lost
    /// connection does.
    pub fn close(self, timeout: Duration) {
        // From now on imports refuse messages at once, as while disconnected.
        self.shared.link.connected.store(false, Ordering::SeqCst);
        let _ = self
            .shared
            .handle
            .block_on(async { tokio::time::timeout(timeout, self.shared.client.flush()).await });
        let tokio = self.shared.tokio.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tokio) = tokio {
            tokio.shutdown_timeout(timeout);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let tokio = self.tokio.get_mut().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tokio) = tokio {
            // Safe from inside a task too, unlike dropping the runtime.
            tokio.shutdown_background();
        }
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("url", &self.shared.config.url)
            .field("app", &self.shared.config.app)
            .field("connected", &self.is_connected())
            .finish()
    }
}
