//! Seed 004's fraud cell, shared by the recomposition tests: two kinds of
//! transaction, `Legacy` costing 3 ms each.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cellrt::{Cell, CellError, Context};

pub enum Txn {
    Card(Instant),
    Legacy,
}

#[derive(Default)]
pub struct Tally {
    pub card: AtomicU64,
    pub legacy: AtomicU64,
    /// Of those, handled by a `Rules` cell.
    pub rules: AtomicU64,
    pub card_latency: Mutex<Vec<(Instant, Duration)>>,
}

pub struct Fraud(pub Arc<Tally>);

impl Cell for Fraud {
    type Message = Txn;

    fn message_kind(txn: &Txn) -> &'static str {
        match txn {
            Txn::Card(_) => "card",
            Txn::Legacy => "legacy",
        }
    }

    fn handle(&mut self, _: &mut Context<Self>, txn: Txn) -> Result<(), CellError> {
        match txn {
            Txn::Card(sent) => {
                self.0.card_latency.lock().unwrap().push((Instant::now(), sent.elapsed()));
                self.0.card.fetch_add(1, SeqCst);
            }
            Txn::Legacy => {
                thread::sleep(Duration::from_millis(3));
                self.0.legacy.fetch_add(1, SeqCst);
            }
        }
        Ok(())
    }
}

/// Waits until the cell at `path` has the message kinds `kinds` in its
/// metrics (they are recorded when its turn ends, after the handler ran).
#[cfg(feature = "observe")]
pub fn wait_for_kinds(runtime: &cellrt::Runtime, path: &str, kinds: &[&str]) {
    super::wait_for("the kinds in the metrics", || {
        runtime.snapshot().cells.iter().any(|c| {
            c.path.as_str() == path
                && c.metrics
                    .as_ref()
                    .is_some_and(|m| kinds.iter().all(|k| m.message_kinds.iter().any(|s| s == k)))
        })
    });
}
