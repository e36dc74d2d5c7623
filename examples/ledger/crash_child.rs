//! The child process of the crash test (`tests/crash.rs`); not an example
//! (see `durable_ledger.rs` for that).
//!
//! `ledger-crash-child <data-dir>` opens the data directory, starts the
//! ledger cell (restored from its saved state, if any), prints
//! `state <len> <consistent|inconsistent>`, then appends `len`, `len + 1`, …
//! one ask at a time, forever, printing `ack <n>` for each answered append.
//! The ledger is `Durability::PerMessage`: an append is answered only once it
//! is flushed, so every printed `ack` must survive a kill.

use std::io::Write;
use std::time::Duration;

use cellrt::{CellConfig, Durability, Runtime, StorageConfig};

#[path = "cell.rs"]
mod cell;

use cell::{is_consistent, Entries, Ledger, Msg};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: ledger-crash-child <data-dir>")?;
    let runtime = Runtime::builder()
        .worker_threads(1)
        .storage(StorageConfig::dir(&dir).create_missing(true).background_flush(None))
        .build()?;
    let ledger = runtime
        .spawn_durable(CellConfig::named("ledger"), Durability::PerMessage, || Ledger(Entries::default()))?;
    let timeout = Duration::from_secs(10);
    let entries = ledger.ask(Msg::Read)?.wait(timeout)?;
    let mut out = std::io::stdout().lock();
    let consistent = if is_consistent(&entries) { "consistent" } else { "inconsistent" };
    writeln!(out, "state {} {consistent}", entries.len())?;
    out.flush()?;
    for n in entries.len() as u64.. {
        let acked = ledger.ask(|reply| Msg::Append(n, reply))?.wait(timeout)?;
        writeln!(out, "ack {acked}")?;
        out.flush()?;
    }
    Ok(())
}
