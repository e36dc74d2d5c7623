//! A durable cell: a ledger whose entries survive a restart of the process.
//!
//! ```sh
//! cargo run --example durable_ledger               # data in ./durable-ledger-data
//! cargo run --example durable_ledger -- some/dir   # data in some/dir
//! ```
//!
//! Each run opens the data directory (under the working directory unless a
//! path is given), restores the ledger cell from its saved state, appends
//! five entries, and shuts down. Run it twice: the second run starts where
//! the first stopped. The ledger is `Durability::PerMessage`: an append is
//! answered only once it is flushed to disk, so an acknowledged entry
//! survives even a crash (`tests/crash.rs` kills the same ledger at random
//! moments and checks it).

use std::time::Duration;

use cellrt::{CellConfig, Durability, Runtime, StorageConfig};

#[path = "ledger/cell.rs"]
mod cell;

use cell::{is_consistent, Entries, Ledger, Msg};

/// Entries each run appends.
const APPENDS: u64 = 5;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| "durable-ledger-data".to_owned());
    let runtime = Runtime::builder()
        .worker_threads(1)
        .storage(StorageConfig::dir(&dir).create_missing(true))
        .build()?;
    let ledger = runtime
        .spawn_durable(CellConfig::named("ledger"), Durability::PerMessage, || Ledger(Entries::default()))?;
    let timeout = Duration::from_secs(10);
    let restored = ledger.ask(Msg::Read)?.wait(timeout)?;
    println!("data directory: {dir}");
    println!("restored {} entries: {restored:?}", restored.len());
    let first = restored.len() as u64;
    for n in first..first + APPENDS {
        let acked = ledger.ask(|reply| Msg::Append(n, reply))?.wait(timeout)?;
        println!("appended {acked} (flushed before the answer)");
    }
    let entries = ledger.ask(Msg::Read)?.wait(timeout)?;
    let consistent = if is_consistent(&entries) { "0, 1, 2, … with no gap" } else { "NOT consistent" };
    println!("ledger holds {} entries, {consistent}", entries.len());
    let report = runtime.shutdown(timeout);
    println!("shutdown: {}", if report.is_clean() { "clean" } else { "NOT clean" });
    println!("run it again: the next run restores these {} entries", entries.len());
    Ok(())
}
