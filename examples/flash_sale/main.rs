//! The flash sale (seed 000): traffic spikes twentyfold, the inventory
//! service slows, and, without flow control, retries cascade into payments
//! until everything fails. Here the graceful version is the natural one:
//!
//! - the gateway's address **sheds** browse requests first once 128 are
//!   queued; each shed request is handed back to the shopper at once
//!   (`SendError::Shed`), and checkout keeps the rest of the room; checkout
//!   has its own **priority lane**, handled before the queued browsing;
//! - browse reads go through a **stale-while-revalidate cache** whose calls
//!   to inventory pass a **circuit breaker**: when stock reads turn slow,
//!   the breaker opens and the cache serves the last good counts, marked
//!   stale; when inventory recovers, a few half-open trial calls close it;
//! - inventory's own address sheds stock reads before reservations, and its
//!   reservations have their own lane, so the checkout path always finds
//!   room and never waits behind slow reads;
//! - every request carries its shopper's **deadline**, passed from cell to
//!   cell; work nobody waits for is not done;
//! - checkout retries a declined charge with exponential backoff and
//!   jitter, within a **retry budget** (10 % of recent checkouts plus 2 a
//!   second), so a failing dependency cannot start a retry storm;
//! - the gateway, the checkout pool (a **router** over two cells) and
//!   inventory run on their own dispatchers: **bulkheads**.
//!
//! Four phases: before (0.5 s), spike with slow inventory (2 s), recovery
//! (1 s), after (1 s). The report shows what became of every request.
//!
//! Run: `cargo run -p cellrt-examples --example flash_sale`

mod scenario;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let report = scenario::run(scenario::SaleConfig::default())?;
    print!("{report}");
    Ok(())
}
