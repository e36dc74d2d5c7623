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

mod bridge;
mod codec;
mod error;
mod export;
mod import;
mod subject;
mod wire;

pub use crate::bridge::{Bridge, BridgeConfig};
pub use crate::codec::{Codec, CodecError, Direction};
pub use crate::error::{BridgeError, SetupError, Side};
pub use crate::export::{Export, ExportStats, Rejected};
pub use crate::import::{ImportStats, Remote};
pub use crate::subject::{subject, Part, SubjectError};
pub use crate::wire::{Answers, Asks, Bridged};

impl Bridge {
    /// Exports the cell behind `target` under `cellrt.<app>.<path>`.
    pub fn export<M: Bridged>(
        &self,
        runtime: &cellrt::Runtime,
        path: &str,
        target: &cellrt::Addr<M>,
    ) -> Result<Export, SetupError> {
        Export::start(self, runtime, path, target, false)
    }

    /// Imports the cell exported under `cellrt.<app>.<path>`.
    pub fn import<M: Bridged>(&self, runtime: &cellrt::Runtime, path: &str) -> Result<Remote<M>, SetupError> {
        Remote::start(self, runtime, path, None)
    }

    /// Exports the cell behind `target` as the consumer of a durable edge.
    pub fn export_durable<M: Bridged>(
        &self,
        runtime: &cellrt::Runtime,
        path: &str,
        target: &cellrt::Addr<M>,
    ) -> Result<Export, SetupError> {
        Export::start(self, runtime, path, target, true)
    }

    /// Imports the cell at `path` over a durable edge.
    pub fn import_durable<M: Bridged>(
        &self,
        runtime: &cellrt::Runtime,
        path: &str,
    ) -> Result<Remote<M>, SetupError> {
        let subject = subject(self.config().app(), path)?;
        let context = {
            let _runtime = self.shared.handle.enter();
            async_nats::jetstream::new(self.shared.client.clone())
        };
        let config = export::stream_config(&subject);
        self.shared
            .handle
            .block_on(async { context.get_or_create_stream(config).await.map(|_| ()) })
            .map_err(|e| SetupError::Subscribe { subject: subject.clone(), text: e.to_string() })?;
        Remote::start(self, runtime, path, Some(context))
    }
}
