//! A durable ledger, run as a child process by the crash test
//! (`examples/tests/crash.rs`), and readable as a small example of a
//! durable cell.
//!
//! `durable-ledger <data-dir>` opens the data directory, starts the ledger
//! cell (restored from its saved state, if any), prints
//! `state <len> <consistent|inconsistent>`, then appends `len`, `len + 1`, …
//! one ask at a time, forever, printing `ack <n>` for each answered append.
//! The ledger is `Durability::PerMessage`: an append is answered only once it
//! is flushed, so every printed `ack` must survive a kill.

use std::io::Write;
use std::time::Duration;

use cellrt::{Cell, CellConfig, CellError, Context, Durability, Durable, Reply, Runtime, StorageConfig};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Entries(Vec<u64>);

struct Ledger(Entries);

enum Msg {
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

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: durable-ledger <data-dir>")?;
    let runtime = Runtime::builder()
        .worker_threads(1)
        .storage(StorageConfig::dir(&dir).create_missing(true).background_flush(None))
        .build()?;
    let ledger = runtime
        .spawn_durable(CellConfig::named("ledger"), Durability::PerMessage, || Ledger(Entries::default()))?;
    let timeout = Duration::from_secs(10);
    let entries = ledger.ask(Msg::Read)?.wait(timeout)?;
    let consistent = entries.iter().enumerate().all(|(i, n)| *n == i as u64);
    let mut out = std::io::stdout().lock();
    writeln!(out, "state {} {}", entries.len(), if consistent { "consistent" } else { "inconsistent" })?;
    out.flush()?;
    for n in entries.len() as u64.. {
        let acked = ledger.ask(|reply| Msg::Append(n, reply))?.wait(timeout)?;
        writeln!(out, "ack {acked}")?;
        out.flush()?;
    }
    Ok(())
}
