//! Importing a remote cell: [`Remote<M>`], the local [`Addr<M>`] in front of
//! it (an ordinary cell whose turn encodes and publishes), the link that
//! carries each message and reads the exporter's verdict, and the counts
//! of what became of every message ([`ImportStats`]).
//!
//! # Invariants
//!
//! - Every message given to the import is counted once in `sent`, and once
//!   more, when it settles, in `delivered` or in exactly one failure count:
//!   `sent = delivered + failures + in flight`.
//! - A message refused before it is published (connection down, breaker
//!   open, encoding failed) fails the bridge cell's turn, so it is a dead
//!   letter with a failure signature; the cell's supervisor restarts it at
//!   once, mailbox kept.
//! - At most `in_flight` messages are published and not settled; the bridge
//!   cell's turn waits for room, so its bounded mailbox is what local
//!   senders push against.
//! - Link failures (connection lost, no responders, timeouts, refusals by
//!   the server) count against the breaker; the remote cell's refusals do
//!   not: the link worked.

use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use bytes::Bytes;
use cellrt::{
    Addr, Cell, CellError, ChildSpec, CircuitBreaker, Context, Permit, Reply, Runtime, Supervisor,
    SupervisorSpec,
};
use std::future::IntoFuture;

use crate::bridge::Bridge;
use crate::codec::Codec;
use crate::error::{BridgeError, RemoteSendError, SetupError};
use crate::subject::{members_subject, subject};
use crate::wire::{self, Asks, Bridged, Status};

/// How long a lost connection, a full window or a stopped runtime may hold
/// a bridge cell's turn before the message is refused.
const SUPERVISOR_TIMEOUT: Duration = Duration::from_secs(5);

/// A remote cell, imported: a local [`Addr<M>`] for code that sends as to
/// any cell, and typed calls that say what failed across the link.
///
/// The address is that of the import's bridge cell (`/import:<subject>/bridge`):
/// a message sent to it is encoded and published by the cell's turn, so it
/// shows in the flow map as an edge from its sender, and an ask through it
/// is answered when the exporter answers. The typed calls
/// ([`send`](Remote::send), [`ask`](Remote::ask)) wait for the exporter's
/// verdict and return a [`BridgeError`] naming the failed side.
pub struct Remote<M> {
    addr: Addr<M>,
    link: Arc<Link>,
    supervisor: Supervisor,
}

impl<M: Bridged> Remote<M> {
    pub(crate) fn start(
        bridge: &Bridge,
        runtime: &Runtime,
        path: &str,
        durable: Option<async_nats::jetstream::Context>,
    ) -> Result<Remote<M>, SetupError> {
        let config = &bridge.shared.config;
        let subject = subject(config.app(), path)?;
        let breaker = runtime.breaker(&format!("nats:{subject}"), config.breaker_config().clone())?;
        let link = Arc::new(Link {
            bridge: bridge.clone(),
            codec: config.codec_in_use(),
            send_timeout: config.send_timeout_in_use(),
            window: Arc::new(tokio::sync::Semaphore::new(config.in_flight_limit())),
            counters: Counters::default(),
            id: import_id(),
            sequence: AtomicU64::new(0),
            inbox: bridge.shared.client.new_inbox(),
            replies: Replies::default(),
            subject,
            breaker,
            durable,
        });
        let cell_link = link.clone();
        let verdicts = bridge
            .shared
            .handle
            .block_on(bridge.shared.client.subscribe(format!("{}.*", link.inbox)))
            .map_err(|e| SetupError::Subscribe { subject: link.subject.clone(), text: e.to_string() })?;
        bridge.shared.handle.spawn(route_verdicts(verdicts, link.replies.clone()));
        let spec = SupervisorSpec::new(format!("import:{}", link.subject))
            .intensity(u32::MAX, Duration::from_secs(1))
            .child(
                ChildSpec::new("bridge", move || BridgeOut::<M> {
                    link: cell_link.clone(),
                    message: PhantomData,
                })
                .capacity(config.capacity_in_use()),
            );
        let supervisor =
            runtime.start_supervisor(spec, SUPERVISOR_TIMEOUT).map_err(|e| SetupError::Subscribe {
                subject: link.subject.clone(),
                text: format!("the import's supervisor did not start: {e}"),
            })?;
        let addr = supervisor.child::<M>("bridge").ok_or_else(|| SetupError::Subscribe {
            subject: link.subject.clone(),
            text: "the import's bridge cell did not start".into(),
        })?;
        Ok(Remote { addr, link, supervisor })
    }

    /// The local address of the remote cell. Sends, `try_send` and asks
    /// work as for a local cell; a message the link refuses becomes a dead
    /// letter of the bridge cell, and an ask it cannot carry resolves to
    /// `AskError::Unanswered` at once.
    pub fn addr(&self) -> &Addr<M> {
        &self.addr
    }

    /// The subject the remote cell is exported under.
    pub fn subject(&self) -> &str {
        &self.link.subject
    }

    /// Sends `msg` and waits for the exporter's verdict (at most the
    /// bridge's send timeout): `Ok` once the remote cell's mailbox took it
    /// (on a durable edge: once JetStream stored it). Blocks the calling
    /// thread; call it from outside tokio tasks.
    ///
    /// # Errors
    ///
    /// A [`RemoteSendError`] with the [`BridgeError`] naming what failed and
    /// on which side, and the message when it was refused before it left
    /// this process (connection down, breaker open).
    pub fn send(&self, msg: M) -> Result<(), RemoteSendError<M>> {
        self.link.call_blocking(msg)
    }

    /// Asks across the bridge and waits at most `timeout` for the answer,
    /// which travels as the ask's deadline: the exporter does not deliver
    /// the request after it. Blocks the calling thread; call it from
    /// outside tokio tasks.
    ///
    /// # Errors
    ///
    /// A [`BridgeError`] naming what failed and on which side;
    /// [`BridgeError::RemoteUnanswered`] when the remote cell dropped the
    /// reply or the deadline passed in its queue.
    pub fn ask<T: Send + 'static>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Reply<T>) -> M,
    ) -> Result<T, BridgeError> {
        let (reply, mut pending) = Reply::pair(Instant::now().checked_add(timeout));
        self.link.call_blocking(make(reply)).map_err(RemoteSendError::into_error)?;
        match pending.try_take() {
            Ok(Some(value)) => Ok(value),
            // The message carried no reply the answer could reach.
            _ => Err(BridgeError::RemoteUnanswered),
        }
    }

    /// The processes exporting the subject now: each answers a presence
    /// request with its member name (`<host>:<pid>:<n>`) within `window`.
    /// Blocks the calling thread.
    ///
    /// # Errors
    ///
    /// [`BridgeError::ConnectionLost`] while the connection is down, or the
    /// client's error.
    pub fn members(&self, window: Duration) -> Result<Vec<String>, BridgeError> {
        let link = self.link.clone();
        self.link.bridge.shared.handle.block_on(async move { link.members(window).await })
    }

    /// What became of the messages given to the import so far.
    pub fn stats(&self) -> ImportStats {
        self.link.counters.snapshot()
    }

    /// The breaker in front of the link (named `nats:<subject>`; its
    /// transitions are in the runtime's journal).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.link.breaker
    }

    /// The supervisor of the import's bridge cell.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }
}

impl<M> fmt::Debug for Remote<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("subject", &self.link.subject)
            .field("stats", &self.link.counters.snapshot())
            .finish()
    }
}

/// The import's bridge cell: each turn hands one message to the link.
struct BridgeOut<M> {
    link: Arc<Link>,
    message: PhantomData<fn(M)>,
}

impl<M: Bridged> Cell for BridgeOut<M> {
    type Message = M;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: M) -> Result<(), CellError> {
        self.link.dispatch(msg).map_err(CellError::from)
    }
}

/// A message ready to publish.
struct Outgoing {
    payload: Bytes,
    asks: Asks,
}

/// A published message waiting for its verdict.
enum Published {
    Core {
        sequence: u64,
        verdict: tokio::sync::oneshot::Receiver<async_nats::Message>,
        timeout: Duration,
        deliver: Option<wire::Deliver>,
    },
    Durable {
        id: String,
        payload: Bytes,
        ack: Option<async_nats::jetstream::context::PublishAckFuture>,
    },
}

/// The verdicts awaited, by sequence number.
type Replies =
    Arc<std::sync::Mutex<std::collections::HashMap<u64, tokio::sync::oneshot::Sender<async_nats::Message>>>>;

/// One import's link: the subject, its breaker, its window and counts.
pub(crate) struct Link {
    bridge: Bridge,
    subject: String,
    codec: Codec,
    send_timeout: Duration,
    breaker: CircuitBreaker,
    window: Arc<tokio::sync::Semaphore>,
    counters: Counters,
    /// Set on durable edges: publishes go to JetStream.
    durable: Option<async_nats::jetstream::Context>,
    /// This import's part of every `Nats-Msg-Id`.
    id: String,
    sequence: AtomicU64,
    /// The subject prefix verdicts come back on (`<inbox>.<sequence>`).
    inbox: String,
    replies: Replies,
}

impl Link {
    /// Checks the link and the breaker, then splits and encodes `msg`.
    fn admit<M: Bridged>(&self, msg: M) -> Result<(Permit, Outgoing), (BridgeError, Option<M>)> {
        self.counters.sent.fetch_add(1, Ordering::Relaxed);
        let permit = match self.breaker.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                let error = BridgeError::BreakerOpen { breaker: self.breaker.name().to_owned() };
                return Err((self.count(error), Some(msg)));
            }
        };
        if !self.bridge.is_connected() {
            permit.failure();
            return Err((self.count(BridgeError::ConnectionLost), Some(msg)));
        }
        let mut asks = Asks::new(self.codec);
        let wire = msg.into_wire(&mut asks);
        match self.codec.encode(&wire) {
            Ok(payload) => Ok((permit, Outgoing { payload: Bytes::from(payload), asks })),
            // Released, not recorded: the link was not tried.
            Err(e) => Err((self.count(BridgeError::Encode(e)), None)),
        }
    }

    /// The bridge cell's turn: admit, wait for room in the window, publish
    /// (here, so that one sender's messages leave in order), and settle the
    /// message in a task when its verdict comes.
    fn dispatch<M: Bridged>(self: &Arc<Self>, msg: M) -> Result<(), BridgeError> {
        let (permit, outgoing) = self.admit(msg).map_err(|(error, _)| error)?;
        let window = self.window.clone();
        let room = self
            .bridge
            .shared
            .handle
            .block_on(async { tokio::time::timeout(SUPERVISOR_TIMEOUT, window.acquire_owned()).await });
        let Ok(Ok(room)) = room else {
            drop(permit);
            return Err(self.count(BridgeError::TimedOut { after: SUPERVISOR_TIMEOUT }));
        };
        let published = self.bridge.shared.handle.block_on(self.publish(outgoing));
        let published = match published {
            Ok(published) => published,
            Err(e) => return self.settle(Err(e), permit),
        };
        let link = self.clone();
        self.bridge.shared.handle.spawn(async move {
            let outcome = link.verdict(published).await;
            let _ = link.settle(outcome, permit);
            drop(room);
        });
        Ok(())
    }

    /// A typed call: admit, publish, wait for the verdict on this thread.
    fn call_blocking<M: Bridged>(self: &Arc<Self>, msg: M) -> Result<(), RemoteSendError<M>> {
        let (permit, outgoing) =
            self.admit(msg).map_err(|(error, message)| RemoteSendError { error, message })?;
        let link = self.clone();
        self.bridge
            .shared
            .handle
            .block_on(async move {
                let outcome = match link.publish(outgoing).await {
                    Ok(published) => link.verdict(published).await,
                    Err(e) => Err(e),
                };
                link.settle(outcome, permit)
            })
            .map_err(|error| RemoteSendError { error, message: None })
    }

    /// Records an outcome in the breaker (link failures only) and the counts.
    fn settle(&self, outcome: Result<(), BridgeError>, permit: Permit) -> Result<(), BridgeError> {
        match &outcome {
            Err(e) if e.is_link_failure() => permit.failure(),
            _ => permit.success(),
        }
        match outcome {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(self.count(e)),
        }
    }

    /// Publishes one message: a request whose verdict comes to this link's
    /// inbox, or a JetStream publish whose acknowledgement is awaited.
    async fn publish(&self, outgoing: Outgoing) -> Result<Published, BridgeError> {
        let Outgoing { payload, mut asks } = outgoing;
        let deadline = asks.deadline();
        let deliver = asks.take();
        drop(asks);
        let client = &self.bridge.shared.client;
        if let Some(jetstream) = &self.durable {
            if deliver.is_some() {
                return Err(BridgeError::AskOnDurableEdge);
            }
            let id = format!("{}-{}", self.id, self.sequence.fetch_add(1, Ordering::Relaxed));
            let mut headers = HeaderMap::new();
            headers.insert(wire::MSG_ID, id.as_str());
            let ack =
                jetstream.publish_with_headers(self.subject.clone(), headers, payload.clone()).await.ok();
            return Ok(Published::Durable { id, payload, ack });
        }
        let timeout = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            // The exporter may wait the send timeout for room before it
            // answers `full`: its verdict gets as long again to arrive.
            None => self.send_timeout.saturating_mul(2),
        };
        let mut headers = HeaderMap::new();
        if deliver.is_some() {
            headers.insert(wire::ASK, "1");
        }
        if deadline.is_some() {
            headers.insert(wire::DEADLINE_MS, timeout.as_millis().to_string().as_str());
        }
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let (tx, verdict) = tokio::sync::oneshot::channel();
        self.replies.lock().unwrap_or_else(|p| p.into_inner()).insert(sequence, tx);
        let reply = format!("{}.{sequence}", self.inbox);
        if let Err(e) =
            client.publish_with_reply_and_headers(self.subject.clone(), reply, headers, payload).await
        {
            self.replies.lock().unwrap_or_else(|p| p.into_inner()).remove(&sequence);
            return Err(if self.bridge.is_connected() {
                BridgeError::Link { text: e.to_string() }
            } else {
                BridgeError::ConnectionLost
            });
        }
        Ok(Published::Core { sequence, verdict, timeout, deliver })
    }

    /// Waits for a published message's verdict and hands an answer to the
    /// asker.
    async fn verdict(&self, published: Published) -> Result<(), BridgeError> {
        match published {
            Published::Core { sequence, verdict, timeout, deliver } => {
                let answer = match tokio::time::timeout(timeout, verdict).await {
                    Ok(Ok(answer)) => answer,
                    _ => {
                        self.replies.lock().unwrap_or_else(|p| p.into_inner()).remove(&sequence);
                        return Err(if self.bridge.is_connected() {
                            BridgeError::TimedOut { after: timeout }
                        } else {
                            BridgeError::ConnectionLost
                        });
                    }
                };
                if answer.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
                    return Err(BridgeError::NoResponders { subject: self.subject.clone() });
                }
                let header = |name: &str| {
                    answer.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_owned())
                };
                match (header(wire::STATUS).as_deref().and_then(Status::parse), deliver) {
                    (Some(Status::Delivered), None) => Ok(()),
                    (Some(Status::Answered), Some(deliver)) => {
                        deliver(&answer.payload).map_err(BridgeError::Decode)
                    }
                    (Some(Status::Full), _) => Err(BridgeError::RemoteFull),
                    (Some(Status::Closed), _) => Err(BridgeError::RemoteClosed),
                    (Some(Status::Unanswered), _) => Err(BridgeError::RemoteUnanswered),
                    (Some(Status::Decode), _) => {
                        Err(BridgeError::RemoteDecode { text: header(wire::ERROR).unwrap_or_default() })
                    }
                    _ => Err(BridgeError::Link {
                        text: "an answer without the status the request expects".into(),
                    }),
                }
            }
            Published::Durable { id, payload, ack } => self.acknowledged(id, payload, ack).await,
        }
    }

    /// Waits for JetStream's acknowledgement, publishing again with the same
    /// `Nats-Msg-Id` after a failure, until the send timeout passes.
    async fn acknowledged(
        &self,
        id: String,
        payload: Bytes,
        mut ack: Option<async_nats::jetstream::context::PublishAckFuture>,
    ) -> Result<(), BridgeError> {
        let Some(jetstream) = &self.durable else { return Err(BridgeError::AskOnDurableEdge) };
        let give_up = tokio::time::Instant::now() + self.send_timeout;
        let mut last = BridgeError::TimedOut { after: self.send_timeout };
        loop {
            if let Some(pending) = ack.take() {
                match tokio::time::timeout_at(give_up, pending.into_future()).await {
                    Ok(Ok(_)) => return Ok(()),
                    Ok(Err(e)) => {
                        last = if self.bridge.is_connected() {
                            BridgeError::Link { text: e.to_string() }
                        } else {
                            BridgeError::ConnectionLost
                        }
                    }
                    Err(_) => return Err(BridgeError::TimedOut { after: self.send_timeout }),
                }
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(last);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            if self.bridge.is_connected() {
                let mut headers = HeaderMap::new();
                headers.insert(wire::MSG_ID, id.as_str());
                ack =
                    jetstream.publish_with_headers(self.subject.clone(), headers, payload.clone()).await.ok();
            } else {
                last = BridgeError::ConnectionLost;
            }
        }
    }

    async fn members(&self, window: Duration) -> Result<Vec<String>, BridgeError> {
        use futures_util::StreamExt;
        if !self.bridge.is_connected() {
            return Err(BridgeError::ConnectionLost);
        }
        let client = &self.bridge.shared.client;
        let inbox = client.new_inbox();
        let link_error = |e: &dyn std::error::Error| BridgeError::Link { text: e.to_string() };
        let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| link_error(&e))?;
        client
            .publish_with_reply(members_subject(&self.subject), inbox, Bytes::new())
            .await
            .map_err(|e| link_error(&e))?;
        let mut members = Vec::new();
        let until = tokio::time::Instant::now() + window;
        while let Ok(Some(answer)) = tokio::time::timeout_at(until, answers.next()).await {
            // The server's "no responders" status carries no name.
            if answer.status.is_none() {
                members.push(String::from_utf8_lossy(&answer.payload).into_owned());
            }
        }
        members.sort();
        Ok(members)
    }

    fn count(&self, error: BridgeError) -> BridgeError {
        let c = &self.counters;
        let counter = match &error {
            BridgeError::ConnectionLost => &c.connection_lost,
            BridgeError::NoResponders { .. } => &c.no_responders,
            BridgeError::TimedOut { .. } => &c.timed_out,
            BridgeError::BreakerOpen { .. } => &c.breaker_open,
            BridgeError::Encode(_) | BridgeError::Decode(_) | BridgeError::RemoteDecode { .. } => &c.codec,
            BridgeError::RemoteFull => &c.remote_full,
            BridgeError::RemoteClosed => &c.remote_closed,
            BridgeError::RemoteUnanswered => &c.remote_unanswered,
            BridgeError::AskOnDurableEdge | BridgeError::Link { .. } => &c.link,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        error
    }
}

/// Hands each verdict to the message waiting for it, by the sequence
/// number that ends its subject; a verdict nobody waits for any more (the
/// wait timed out) is dropped.
async fn route_verdicts(mut verdicts: async_nats::Subscriber, replies: Replies) {
    use futures_util::StreamExt;
    while let Some(verdict) = verdicts.next().await {
        let sequence = verdict.subject.rsplit('.').next().and_then(|s| s.parse::<u64>().ok());
        let waiting = sequence.and_then(|s| replies.lock().unwrap_or_else(|p| p.into_inner()).remove(&s));
        if let Some(waiting) = waiting {
            let _ = waiting.send(verdict);
        }
    }
}

/// A name unique to this import in this process and run, for `Nats-Msg-Id`.
fn import_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}-{}", std::process::id(), started.as_nanos(), NEXT.fetch_add(1, Ordering::Relaxed))
}

#[derive(Default)]
struct Counters {
    sent: AtomicU64,
    delivered: AtomicU64,
    connection_lost: AtomicU64,
    no_responders: AtomicU64,
    timed_out: AtomicU64,
    breaker_open: AtomicU64,
    codec: AtomicU64,
    remote_full: AtomicU64,
    remote_closed: AtomicU64,
    remote_unanswered: AtomicU64,
    link: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> ImportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ImportStats {
            sent: get(&self.sent),
            delivered: get(&self.delivered),
            connection_lost: get(&self.connection_lost),
            no_responders: get(&self.no_responders),
            timed_out: get(&self.timed_out),
            breaker_open: get(&self.breaker_open),
            codec: get(&self.codec),
            remote_full: get(&self.remote_full),
            remote_closed: get(&self.remote_closed),
            remote_unanswered: get(&self.remote_unanswered),
            link: get(&self.link),
        }
    }
}

/// What became of the messages given to an import: `sent` is every
/// message, each of the others counts a way one settled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportStats {
    /// Messages the import took: from its bridge cell's mailbox (messages
    /// still queued there are not counted yet) or through its typed calls.
    pub sent: u64,
    /// Taken by the remote cell's mailbox (answered, for asks); on a
    /// durable edge, stored by JetStream.
    pub delivered: u64,
    /// Refused because the connection was down.
    pub connection_lost: u64,
    /// Refused by the server: nobody exports the subject.
    pub no_responders: u64,
    /// Not answered in time: lost, or delivered with its verdict lost.
    pub timed_out: u64,
    /// Refused by the open breaker.
    pub breaker_open: u64,
    /// Not encodable here, not decodable there, or an answer not decodable here.
    pub codec: u64,
    /// Refused by the remote cell's full mailbox.
    pub remote_full: u64,
    /// Refused because the remote cell had stopped.
    pub remote_closed: u64,
    /// Asks the remote cell left unanswered.
    pub remote_unanswered: u64,
    /// Refused by the link for another reason.
    pub link: u64,
}

impl ImportStats {
    /// Messages that settled without being delivered: the sum of the
    /// failure counts.
    pub fn failed(&self) -> u64 {
        self.connection_lost
            + self.no_responders
            + self.timed_out
            + self.breaker_open
            + self.codec
            + self.remote_full
            + self.remote_closed
            + self.remote_unanswered
            + self.link
    }

    /// Messages published and not settled yet.
    pub fn in_flight(&self) -> u64 {
        // The counts are read one by one while messages settle.
        self.sent.saturating_sub(self.delivered + self.failed())
    }
}
