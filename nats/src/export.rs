//! Exporting a local cell: [`Export`], the consumer task that reads the
//! cell's subject (a queue group, so exporters of one path share the work),
//! delivers into the cell with its normal backpressure, and answers every
//! request with a verdict; presence answers for the pool's membership; and
//! the rejects cell, where a payload that does not decode becomes a dead
//! letter ([`Rejected`]).
//!
//! # Invariants
//!
//! - Messages of one subject are delivered in the order the exporter
//!   receives them: the task waits for room in the mailbox before it reads
//!   the next. An ask's answer is awaited in a task of its own, so a slow
//!   answer does not hold the subject.
//! - Every request is answered: `delivered`, `answered`, `full`, `closed`,
//!   `decode` or `unanswered` (see `wire`); none is dropped unanswered
//!   while the exporter runs.
//! - On a durable edge, a message is acknowledged to JetStream once the
//!   cell's mailbox took it; refused, it is negatively acknowledged and
//!   redelivered; undecodable, it is terminated (never redelivered) and
//!   dead-lettered.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::{HeaderMap, Subject};
use bytes::Bytes;
use cellrt::{Addr, Cell, CellError, ChildSpec, Context, Runtime, SendError, Supervisor, SupervisorSpec};
use futures_util::StreamExt;

use crate::bridge::Bridge;
use crate::codec::{Codec, CodecError};
use crate::error::SetupError;
use crate::subject::{members_subject, stream_name, subject};
use crate::wire::{self, Answers, Bridged, Status, Unanswered};

/// How long the export's supervisor may take to start its rejects cell.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the delivery of an ask with a deadline retries a full mailbox.
const FULL_RETRY: Duration = Duration::from_millis(1);

/// How long a durable consumer waits before it reads again after its
/// message stream ended (the server restarted, say).
const RESUME_DELAY: Duration = Duration::from_millis(100);

/// A local cell, exported: while this handle lives, messages published on
/// its subject are delivered into the cell. Dropping it (or
/// [`stop`](Export::stop)) unsubscribes; queued messages stay with the
/// server (durable edges) or go to the other members of the pool.
#[must_use = "the export stops when its handle is dropped"]
pub struct Export {
    subject: String,
    member: String,
    counters: Arc<ExportCounters>,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    supervisor: Supervisor,
    bridge: Bridge,
}

/// What the consumer task needs, shared by the asks it answers.
struct Consumer<M> {
    client: async_nats::Client,
    subject: String,
    codec: Codec,
    send_timeout: Duration,
    target: Addr<M>,
    rejects: Addr<Rejected>,
    counters: Arc<ExportCounters>,
}

impl Export {
    pub(crate) fn start<M: Bridged>(
        bridge: &Bridge,
        runtime: &Runtime,
        path: &str,
        target: &Addr<M>,
        durable: bool,
    ) -> Result<Export, SetupError> {
        let shared = &bridge.shared;
        let subject = subject(shared.config.app(), path)?;
        let setup = |text: String| SetupError::Subscribe { subject: subject.clone(), text };
        let spec = SupervisorSpec::new(format!("export:{subject}"))
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(ChildSpec::new("rejects", || RejectsCell));
        let supervisor = runtime
            .start_supervisor(spec, SUPERVISOR_TIMEOUT)
            .map_err(|e| setup(format!("the export's supervisor did not start: {e}")))?;
        let rejects = supervisor
            .child::<Rejected>("rejects")
            .ok_or_else(|| setup("the rejects cell did not start".into()))?;
        let member = member_name();
        let counters = Arc::new(ExportCounters::default());
        let consumer = Arc::new(Consumer {
            client: shared.client.clone(),
            subject: subject.clone(),
            codec: shared.config.codec_in_use(),
            send_timeout: shared.config.send_timeout_in_use(),
            target: target.clone(),
            rejects,
            counters: counters.clone(),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let client = shared.client.clone();
        let presence = shared
            .handle
            .block_on(async {
                let presence = client.subscribe(members_subject(&subject)).await?;
                Ok::<_, async_nats::SubscribeError>(presence)
            })
            .map_err(|e| setup(e.to_string()))?;
        shared.handle.spawn(answer_presence(client.clone(), presence, member.clone(), stopped.clone()));
        if durable {
            let consumer_stream =
                shared.handle.block_on(durable_consumer(&client, &subject)).map_err(setup)?;
            shared.handle.spawn(consume_durable(consumer, consumer_stream, stopped));
        } else {
            let messages = shared
                .handle
                .block_on(async {
                    let messages = client.queue_subscribe(subject.clone(), subject.clone()).await?;
                    // The subscription is registered when this returns.
                    let _ = client.flush().await;
                    Ok::<_, async_nats::SubscribeError>(messages)
                })
                .map_err(|e| setup(e.to_string()))?;
            shared.handle.spawn(consume(consumer, messages, stopped));
        }
        Ok(Export { subject, member, counters, stop: Some(stop), supervisor, bridge: bridge.clone() })
    }

    /// The subject the cell is exported under.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// This exporter's name in the pool (`<host>:<pid>:<n>`), as
    /// [`Remote::members`](crate::Remote::members) lists it.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// What became of the messages that arrived so far.
    pub fn stats(&self) -> ExportStats {
        self.counters.snapshot()
    }

    /// The supervisor of the export's rejects cell, where undecodable
    /// payloads become dead letters.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Stops consuming, and waits until the server has seen the
    /// unsubscription (at most a second).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
            let client = self.bridge.shared.client.clone();
            let _ = self.bridge.shared.handle.block_on(async move {
                // Let the tasks drop their subscriptions first.
                tokio::task::yield_now().await;
                tokio::time::timeout(Duration::from_secs(1), client.flush()).await
            });
        }
    }
}

impl Drop for Export {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
    }
}

impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("subject", &self.subject)
            .field("member", &self.member)
            .field("stats", &self.counters.snapshot())
            .finish()
    }
}

/// Reads the subject until the export stops.
async fn consume<M: Bridged>(
    consumer: Arc<Consumer<M>>,
    mut messages: async_nats::Subscriber,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            message = messages.next() => match message {
                Some(message) => consumer.clone().take(message).await,
                None => return,
            },
            _ = stopped.changed() => {
                let _ = messages.unsubscribe().await;
                return;
            }
        }
    }
}

/// Answers presence requests with the member's name until the export stops.
async fn answer_presence(
    client: async_nats::Client,
    mut requests: async_nats::Subscriber,
    member: String,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            request = requests.next() => match request {
                Some(request) => if let Some(reply) = request.reply {
                    let _ = client.publish(reply, Bytes::from(member.clone())).await;
                },
                None => return,
            },
            _ = stopped.changed() => {
                let _ = requests.unsubscribe().await;
                return;
            }
        }
    }
}

/// Where a message came from and how its verdict goes back.
enum Origin {
    /// A core NATS request (or a plain publish, with no reply subject).
    Core(Option<Subject>),
    /// A JetStream message, acknowledged by its verdict.
    Durable(Box<jetstream::Message>),
}

impl<M: Bridged> Consumer<M> {
    async fn take(self: Arc<Self>, message: async_nats::Message) {
        let header =
            |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned());
        let deadline = header(wire::DEADLINE_MS)
            .and_then(|ms| ms.parse::<u64>().ok())
            .and_then(|ms| Instant::now().checked_add(Duration::from_millis(ms)));
        let payload = message.payload.clone();
        self.handle(payload, deadline, Origin::Core(message.reply)).await;
    }

    /// Decodes, delivers, and answers one message.
    async fn handle(self: Arc<Self>, payload: Bytes, deadline: Option<Instant>, origin: Origin) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        let wire = match self.codec.decode::<M::Wire>(&payload) {
            Ok(wire) => wire,
            Err(error) => {
                self.counters.rejected.fetch_add(1, Ordering::Relaxed);
                let text = error.to_string();
                let rejected = Rejected { subject: self.subject.clone(), payload: payload.to_vec(), error };
                // The rejects cell fails its turn on it: a dead letter with
                // its signature. A full rejects mailbox loses only the
                // record, not a message the cell could have handled.
                let _ = self.rejects.try_send(rejected);
                self.verdict(origin, Status::Decode, Some(text), Bytes::new()).await;
                return;
            }
        };
        let mut answers = Answers::new(self.codec, deadline);
        let msg = M::from_wire(wire, &mut answers);
        let answer = answers.take();
        let sent = match deadline {
            None => self.target.send_async_timeout(msg, self.send_timeout).await,
            Some(deadline) => deliver_by(&self.target, msg, deadline).await,
        };
        match sent {
            Ok(()) => match answer {
                None => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    self.verdict(origin, Status::Delivered, None, Bytes::new()).await;
                }
                Some(answer) => {
                    self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                    let wait =
                        deadline.map_or(self.send_timeout, |d| d.saturating_duration_since(Instant::now()));
                    tokio::spawn(async move {
                        match tokio::time::timeout(wait, answer).await {
                            Ok(Ok(bytes)) => {
                                self.counters.answered.fetch_add(1, Ordering::Relaxed);
                                self.verdict(origin, Status::Answered, None, Bytes::from(bytes)).await;
                            }
                            Ok(Err(Unanswered::Encode(error))) => {
                                self.counters.unanswered.fetch_add(1, Ordering::Relaxed);
                                let text = Some(error.to_string());
                                self.verdict(origin, Status::Unanswered, text, Bytes::new()).await;
                            }
                            Ok(Err(Unanswered::Dropped)) | Err(_) => {
                                self.counters.unanswered.fetch_add(1, Ordering::Relaxed);
                                self.verdict(origin, Status::Unanswered, None, Bytes::new()).await;
                            }
                        }
                    });
                }
            },
            Err(SendError::Closed(_)) => {
                self.counters.closed.fetch_add(1, Ordering::Relaxed);
                self.verdict(origin, Status::Closed, None, Bytes::new()).await;
            }
            Err(_) => {
                self.counters.full.fetch_add(1, Ordering::Relaxed);
                self.verdict(origin, Status::Full, None, Bytes::new()).await;
            }
        }
    }

    /// Tells the sender: a reply on core NATS, an acknowledgement on
    /// JetStream.
    async fn verdict(&self, origin: Origin, status: Status, error: Option<String>, payload: Bytes) {
        match origin {
            Origin::Core(None) => {}
            Origin::Core(Some(reply)) => {
                let mut headers = HeaderMap::new();
                headers.insert(wire::STATUS, status.as_str());
                if let Some(error) = error {
                    headers.insert(wire::ERROR, error.replace(['\r', '\n'], " ").as_str());
                }
                let _ = self.client.publish_with_headers(reply, headers, payload).await;
            }
            Origin::Durable(message) => {
                let ack = match status {
                    Status::Delivered | Status::Answered | Status::Unanswered => jetstream::AckKind::Ack,
                    Status::Decode => jetstream::AckKind::Term,
                    Status::Full | Status::Closed => {
                        jetstream::AckKind::Nak(Some(Duration::from_millis(100)))
                    }
                };
                let _ = message.ack_with(ack).await;
            }
        }
    }
}

/// Delivers an ask that must not be handled after `deadline`, waiting for
/// room until then.
async fn deliver_by<M: Send + 'static>(
    target: &Addr<M>,
    mut msg: M,
    deadline: Instant,
) -> Result<(), SendError<M>> {
    loop {
        match target.try_send_by(msg, deadline) {
            Err(SendError::Full(back)) if Instant::now() < deadline => {
                msg = back;
                tokio::time::sleep(FULL_RETRY).await;
            }
            other => return other,
        }
    }
}

/// The durable consumer of a durable edge, made (or found) on the stream
/// that holds the edge's subject, made (or found) too.
async fn durable_consumer(
    client: &async_nats::Client,
    subject: &str,
) -> Result<jetstream::consumer::PullConsumer, String> {
    let context = jetstream::new(client.clone());
    let stream = context.get_or_create_stream(stream_config(subject)).await.map_err(|e| e.to_string())?;
    let name = format!("{}_EXPORT", stream_name(subject));
    stream
        .get_or_create_consumer(
            &name,
            jetstream::consumer::pull::Config {
                durable_name: Some(name.clone()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs(5),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

/// The stream of a durable edge: the edge's subject, on disk, with the
/// default two-minute window in which a repeated `Nats-Msg-Id` is dropped.
pub(crate) fn stream_config(subject: &str) -> jetstream::stream::Config {
    jetstream::stream::Config {
        name: stream_name(subject),
        subjects: vec![subject.to_owned()],
        storage: jetstream::stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    }
}

/// Reads the durable consumer until the export stops, resuming after the
/// server comes back.
async fn consume_durable<M: Bridged>(
    consumer: Arc<Consumer<M>>,
    pull: jetstream::consumer::PullConsumer,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Ok(mut messages) = pull.messages().await {
            loop {
                tokio::select! {
                    message = messages.next() => match message {
                        Some(Ok(message)) => {
                            let payload = message.payload.clone();
                            consumer.clone().handle(payload, None, Origin::Durable(Box::new(message))).await;
                        }
                        // Missed heartbeats while the server is away: read on.
                        Some(Err(_)) => continue,
                        None => break,
                    },
                    _ = stopped.changed() => return,
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(RESUME_DELAY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A name for this exporter among the pool's members: host, process id,
/// and a count within the process.
fn member_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into());
    format!("{host}:{}:{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// A payload that arrived on an exported subject and did not decode as the
/// cell's message: the message of the export's rejects cell's dead letters
/// (`DeadLetter::take_message::<Rejected>()`), whose failure is the
/// [`CodecError`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// The subject it arrived on.
    pub subject: String,
    /// The payload, as it arrived.
    pub payload: Vec<u8>,
    /// Why it did not decode.
    pub error: CodecError,
}

/// The export's rejects cell: each turn fails with the rejected payload's
/// decode error, so the payload is a dead letter with a failure signature.
struct RejectsCell;

impl Cell for RejectsCell {
    type Message = Rejected;

    fn handle(&mut self, _ctx: &mut Context<Self>, rejected: Rejected) -> Result<(), CellError> {
        Err(CellError::from(rejected.error))
    }

    fn retain(rejected: &Rejected) -> Option<Rejected> {
        Some(rejected.clone())
    }
}

#[derive(Default)]
struct ExportCounters {
    received: AtomicU64,
    delivered: AtomicU64,
    answered: AtomicU64,
    unanswered: AtomicU64,
    full: AtomicU64,
    closed: AtomicU64,
    rejected: AtomicU64,
}

impl ExportCounters {
    fn snapshot(&self) -> ExportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ExportStats {
            received: get(&self.received),
            delivered: get(&self.delivered),
            answered: get(&self.answered),
            unanswered: get(&self.unanswered),
            full: get(&self.full),
            closed: get(&self.closed),
            rejected: get(&self.rejected),
        }
    }
}

/// What became of the messages that arrived at an export.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Messages read from the subject.
    pub received: u64,
    /// Taken by the cell's mailbox (asks included).
    pub delivered: u64,
    /// Asks answered.
    pub answered: u64,
    /// Asks the cell left unanswered (dropped the reply, or past the deadline).
    pub unanswered: u64,
    /// Refused: the mailbox stayed full.
    pub full: u64,
    /// Refused: the cell had stopped.
    pub closed: u64,
    /// Payloads that did not decode (dead letters of the rejects cell).
    pub rejected: u64,
}
