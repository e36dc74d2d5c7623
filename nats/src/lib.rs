//! A cellrt cell boundary bridged over [NATS](https://nats.io): a cell in
//! one process is **exported** under a subject, and **imported** in another
//! as an ordinary [`Addr<M>`](cellrt::Addr), with the same contract:
//! bounded backpressure, asks with deadlines, typed errors, nothing dropped
//! without a count or a dead letter.
//!
//! ```no_run
//! use std::time::Duration;
//! use cellrt::{Cell, CellError, Context, Reply, Runtime};
//! use cellrt_nats::{Answers, Asks, Bridge, BridgeConfig, Bridged};
//! use serde::{Deserialize, Serialize};
//!
//! enum Account {
//!     Deposit(u64),
//!     Balance(Reply<u64>),
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! enum AccountWire {
//!     Deposit(u64),
//!     Balance,
//! }
//!
//! impl Bridged for Account {
//!     type Wire = AccountWire;
//!     fn into_wire(self, asks: &mut Asks) -> AccountWire {
//!         match self {
//!             Account::Deposit(n) => AccountWire::Deposit(n),
//!             Account::Balance(reply) => {
//!                 asks.expect(reply);
//!                 AccountWire::Balance
//!             }
//!         }
//!     }
//!     fn from_wire(wire: AccountWire, answers: &mut Answers) -> Self {
//!         match wire {
//!             AccountWire::Deposit(n) => Account::Deposit(n),
//!             AccountWire::Balance => Account::Balance(answers.reply()),
//!         }
//!     }
//! }
//!
//! struct Ledger(u64);
//! impl Cell for Ledger {
//!     type Message = Account;
//!     fn handle(&mut self, _: &mut Context<Self>, msg: Account) -> Result<(), CellError> {
//!         match msg {
//!             Account::Deposit(n) => self.0 += n,
//!             Account::Balance(reply) => drop(reply.send(self.0)),
//!         }
//!         Ok(())
//!     }
//! }
//!
//! // Process A: the ledger, exported as `cellrt.bank.ledger`.
//! let runtime = Runtime::builder().build()?;
//! let ledger = runtime.spawn(Ledger(0))?;
//! let bridge = Bridge::connect(BridgeConfig::new("nats://127.0.0.1:4222", "bank"))?;
//! let _export = bridge.export(&runtime, "ledger", &ledger)?;
//!
//! // Process B: the ledger, imported; an `Addr<Account>` like any other.
//! let remote = bridge.import::<Account>(&runtime, "ledger")?;
//! remote.addr().send(Account::Deposit(40))?;
//! let balance = remote.addr().ask_within(Duration::from_secs(2), Account::Balance)?.wait(Duration::from_secs(2))?;
//! // The typed call says which side failed, if one did.
//! let same = remote.ask(Duration::from_secs(2), Account::Balance)?;
//! # let _ = (balance, same);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Bridges, subjects, codecs
//!
//! A [`Bridge`] is one connection to a NATS server, on a tokio runtime the
//! bridge runs on a thread of its own. Cells are bridged under
//! `cellrt.<app>.<path>` ([`subject`]); names that cannot be subject tokens
//! are a [`SubjectError`]. Payloads are encoded with the bridge's [`Codec`]:
//! bincode (the default) or JSON.
//!
//! # Export
//!
//! [`Bridge::export`] reads the subject in a task and delivers each message
//! into the cell with the cell's normal backpressure (waiting for room up
//! to the bridge's send timeout), then answers the sender with a verdict:
//! delivered, answered, full, closed, undecodable, unanswered. A payload
//! that does not decode is a dead letter of the export's rejects cell
//! ([`Rejected`]), and the export goes on.
//!
//! # Import
//!
//! [`Bridge::import`] returns a [`Remote`], whose [`addr`](Remote::addr) is
//! the address of the import's bridge cell: an ordinary cell whose turn
//! encodes and publishes, so local senders push against its bounded mailbox
//! and a window of messages in flight, and the edge to it is in the flow
//! map. [`Remote::send`] and [`Remote::ask`] wait for the verdict and return
//! a [`BridgeError`] whose [`side`](BridgeError::side) says where the message
//! was stopped. [`Remote::stats`] counts what became of every message.
//!
//! # Asks
//!
//! A message type implements [`Bridged`]: it splits into a wire form and
//! its [`Reply`](cellrt::Reply) on the importing side ([`Asks::expect`]),
//! and is rebuilt with a reply that answers across the bridge on the
//! exporting side ([`Answers::reply`]). The ask's timeout travels as its
//! deadline.
//!
//! # Pools
//!
//! Exporters of one path form a NATS queue group: each message goes to one
//! of them. [`Remote::members`] lists the exporters present; one that leaves
//! stops answering, and the work goes to the others.
//!
//! # Durable edges
//!
//! [`Bridge::import_durable`] and [`Bridge::export_durable`] carry a path over
//! a JetStream stream: the importer's send returns once the server stored the
//! message (retried under the same `Nats-Msg-Id`, the dedup key), the
//! exporter acknowledges once the cell's mailbox took it. Delivery is at
//! least once.
//!
//! # The breaker
//!
//! Each import has a [`CircuitBreaker`](cellrt::CircuitBreaker) named
//! `nats:<subject>` ([`Remote::breaker`]), journaled by the runtime. Link
//! failures count against it; a lost connection opens it, and trial calls
//! close it once the server is back.
//!
//! `docs/scaling.md` in the repository states what is and is not
//! guaranteed across the link.
//!
//! # Features and requirements
//!
//! The crate turns off async-nats's default features and enables only
//! `jetstream`: no TLS crypto provider is compiled in, so a server that
//! requires TLS cannot be reached. The tests need `nats-server`
//! (`apt-get install nats-server`).
//!
//! # Minimum supported Rust version
//!
//! 1.89, what async-nats 0.52 needs (the rest of the workspace needs 1.85).

mod bridge;
mod codec;
mod error;
mod export;
mod import;
mod subject;
mod wire;

pub use crate::bridge::{Bridge, BridgeConfig};
pub use crate::codec::{Codec, CodecError, Direction};
pub use crate::error::{BridgeError, RemoteSendError, SetupError, Side};
pub use crate::export::{Export, ExportStats, Rejected};
pub use crate::import::{ImportStats, Remote};
pub use crate::subject::{subject, Part, SubjectError};
pub use crate::wire::{Answers, Asks, Bridged};
