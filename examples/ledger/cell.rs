//! The ledger cell shared by the `durable_ledger` example and the crash
//! test's child process: a durable list of numbers, appended to one ask at
//! a time.

#![allow(dead_code, unreachable_pub)]

use cellrt::{Cell, CellError, Context, Durable, Reply};
use serde::{Deserialize, Serialize};

/// The saved state: the appended numbers, in order.
#[derive(Default, Serialize, Deserialize)]
pub struct Entries(pub Vec<u64>);

/// The cell.
pub struct Ledger(pub Entries);

/// What the ledger is asked.
pub enum Msg {
    Append(u64, Reply<u64>),
    Read(Reply<Vec<u64>>),
}

impl Cell for Ledger {
    type Message = Msg;

    fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Append(n, reply) => {
                self.0 .0.push(n);
                let _ = reply.send(n);
            }
            Msg::Read(reply) => drop(reply.send(self.0 .0.clone())),
        }
        Ok(())
    }
}

impl Durable for Ledger {
    type State = Entries;

    fn state(&self) -> &Entries {
        &self.0
    }

    fn restore(entries: Entries) -> Self {
        Ledger(entries)
    }
}

/// Whether `entries` is 0, 1, 2, … with no gap or repeat.
pub fn is_consistent(entries: &[u64]) -> bool {
    entries.iter().enumerate().all(|(i, n)| *n == i as u64)
}
