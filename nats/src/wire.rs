//! What crosses the link: the [`Bridged`] trait that splits a message into
//! its wire form and its reply slot, the [`Asks`] and [`Answers`] that carry
//! the reply across, and the headers of the bridge's protocol.
//!
//! # The protocol
//!
//! Every message is a NATS request on the cell's subject: the payload is
//! the encoded wire form, and the headers say what the importer expects.
//! The exporter answers on the reply subject with a status header, and for
//! an ask, with the encoded answer as payload:
//!
//! | header | set by | value |
//! |---|---|---|
//! | `Cellrt-Ask` | importer | `1` when the message carries a reply |
//! | `Cellrt-Deadline-Ms` | importer | milliseconds left before the ask's deadline |
//! | `Nats-Msg-Id` | importer, durable edges | `<import id>-<sequence>`, JetStream's dedup key |
//! | `Cellrt-Status` | exporter | one of the [`Status`] words |
//! | `Cellrt-Error` | exporter | the decode error's text, with status `decode` |

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

use cellrt::Reply;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Codec, CodecError};

pub(crate) const ASK: &str = "Cellrt-Ask";
pub(crate) const DEADLINE_MS: &str = "Cellrt-Deadline-Ms";
pub(crate) const STATUS: &str = "Cellrt-Status";
pub(crate) const ERROR: &str = "Cellrt-Error";
pub(crate) const MSG_ID: &str = "Nats-Msg-Id";

/// A message type that can cross a bridge.
///
/// A message is its data plus, for an ask, a [`Reply`], which cannot be
/// serialized. The importing side splits the message with
/// [`into_wire`](Bridged::into_wire), handing its reply to
/// [`Asks::expect`]; the exporting side rebuilds it with
/// [`from_wire`](Bridged::from_wire), taking a fresh reply from
/// [`Answers::reply`] whose answer is encoded and sent back to the asker.
/// A message carries at most one reply.
///
/// # Examples
///
/// ```
/// use cellrt::Reply;
/// use cellrt_nats::{Answers, Asks, Bridged};
/// use serde::{Deserialize, Serialize};
///
/// enum Account {
///     Deposit(u64),
///     Balance(Reply<u64>),
/// }
///
/// #[derive(Serialize, Deserialize)]
/// enum AccountWire {
///     Deposit(u64),
///     Balance,
/// }
///
/// impl Bridged for Account {
///     type Wire = AccountWire;
///
///     fn into_wire(self, asks: &mut Asks) -> AccountWire {
///         match self {
///             Account::Deposit(n) => AccountWire::Deposit(n),
///             Account::Balance(reply) => {
///                 asks.expect(reply);
///                 AccountWire::Balance
///             }
///         }
///     }
///
///     fn from_wire(wire: AccountWire, answers: &mut Answers) -> Self {
///         match wire {
///             AccountWire::Deposit(n) => Account::Deposit(n),
///             AccountWire::Balance => Account::Balance(answers.reply()),
///         }
///     }
/// }
/// ```
pub trait Bridged: Send + Sized + 'static {
    /// The message without its reply: what is encoded and published.
    type Wire: Serialize + DeserializeOwned + Send + 'static;

    /// Splits the message: its reply, if any, goes to `asks`.
    fn into_wire(self, asks: &mut Asks) -> Self::Wire;

    /// Rebuilds the message, with a reply from `answers` if it is an ask.
    fn from_wire(wire: Self::Wire, answers: &mut Answers) -> Self;
}

/// What decodes an answer's bytes and hands the value to the asker's reply.
pub(crate) type Deliver = Box<dyn FnOnce(&[u8]) -> Result<(), CodecError> + Send>;

/// The reply slot of a message leaving through an import (see [`Bridged`]).
pub struct Asks {
    codec: Codec,
    expected: Option<Expected>,
}

struct Expected {
    deadline: Option<Instant>,
    deliver: Deliver,
}

impl Asks {
    pub(crate) fn new(codec: Codec) -> Self {
        Asks { codec, expected: None }
    }

    /// Takes the message's reply: the answer that comes back across the
    /// bridge is decoded as a `T` and sent to it. When no answer comes (the
    /// remote failed, the link failed, the deadline passed) the reply is
    /// dropped, so the asker's `Pending` resolves to an error at once. A
    /// second call replaces the first, whose reply is dropped.
    pub fn expect<T: DeserializeOwned + Send + 'static>(&mut self, reply: Reply<T>) {
        let codec = self.codec;
        let deadline = reply.deadline();
        let deliver: Deliver = Box::new(move |bytes| {
            let value = codec.decode::<T>(bytes)?;
            // An asker who gave up gets nothing; the value is dropped.
            let _ = reply.send(value);
            Ok(())
        });
        self.expected = Some(Expected { deadline, deliver });
    }

    pub(crate) fn is_ask(&self) -> bool {
        self.expected.is_some()
    }

    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.expected.as_ref().and_then(|e| e.deadline)
    }

    /// The delivery of the answer, taken out (dropping it resolves the
    /// asker's reply as unanswered).
    pub(crate) fn take(&mut self) -> Option<Deliver> {
        self.expected.take().map(|e| e.deliver)
    }
}

impl std::fmt::Debug for Asks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Asks").field("codec", &self.codec).field("ask", &self.is_ask()).finish()
    }
}

/// The answer of a rebuilt ask, encoded, once the cell has answered.
pub(crate) type Answer = Pin<Box<dyn Future<Output = Result<Vec<u8>, Unanswered>> + Send>>;

/// The cell dropped the reply, or the answer could not be encoded.
#[derive(Debug)]
pub(crate) enum Unanswered {
    Dropped,
    Encode(CodecError),
}

/// The reply slot of a message arriving through an export (see [`Bridged`]).
pub struct Answers {
    codec: Codec,
    deadline: Option<Instant>,
    answer: Option<Answer>,
}

impl Answers {
    pub(crate) fn new(codec: Codec, deadline: Option<Instant>) -> Self {
        Answers { codec, deadline, answer: None }
    }

    /// A reply for the rebuilt message: what the cell sends to it is encoded
    /// and published to the asker. It carries the ask's deadline
    /// ([`Reply::deadline`]). A second call replaces the first, whose answer
    /// is not sent.
    pub fn reply<T: Serialize + Send + 'static>(&mut self) -> Reply<T> {
        let (reply, pending) = Reply::pair(self.deadline);
        let codec = self.codec;
        self.answer = Some(Box::pin(async move {
            match pending.await {
                Ok(value) => codec.encode(&value).map_err(Unanswered::Encode),
                Err(_) => Err(Unanswered::Dropped),
            }
        }));
        reply
    }

    pub(crate) fn take(&mut self) -> Option<Answer> {
        self.answer.take()
    }
}

impl std::fmt::Debug for Answers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answers").field("codec", &self.codec).field("ask", &self.answer.is_some()).finish()
    }
}

/// The exporter's verdict on a message, in the `Cellrt-Status` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// The message is in the cell's mailbox.
    Delivered,
    /// The cell answered; the payload is the answer.
    Answered,
    /// The mailbox stayed full.
    Full,
    /// The cell has stopped.
    Closed,
    /// The payload could not be decoded.
    Decode,
    /// The cell dropped the reply, or the deadline passed.
    Unanswered,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Delivered => "delivered",
            Status::Answered => "answered",
            Status::Full => "full",
            Status::Closed => "closed",
            Status::Decode => "decode",
            Status::Unanswered => "unanswered",
        }
    }

    pub(crate) fn parse(word: &str) -> Option<Status> {
        [
            Status::Delivered,
            Status::Answered,
            Status::Full,
            Status::Closed,
            Status::Decode,
            Status::Unanswered,
        ]
        .into_iter()
        .find(|s| s.as_str() == word)
    }
}
