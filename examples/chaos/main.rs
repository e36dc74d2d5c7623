//! Chaos, end to end: a steady-state hypothesis ("checkout's p99 stays
//! within 150 ms while inventory is slow"), tested by injecting latency
//! into inventory only, first into a checkout that waits for stock as long
//! as it takes, then into one that gives each reservation a 20 ms deadline
//! and declines the order when stock is late. Then a ramp finds, for each,
//! the intensity at which the hypothesis breaks.
//!
//! Run: `cargo run -p cellrt-examples --example chaos`

mod shop;

use std::time::Duration;

use shop::Shop;

/// Inventory slows down: 30 % of reservations wait 400 ms.
const SLOW_INVENTORY: &str = "/shop/inventory: 30% latency(400ms) seed=7";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let limit = Duration::from_millis(150);
    for (title, deadline) in
        [("unguarded checkout", None), ("guarded checkout", Some(Duration::from_millis(20)))]
    {
        println!("== {title}");
        let shop = Shop::start(deadline)?;
        let report = shop::experiment(SLOW_INVENTORY, limit)?.run_with_load(&shop.runtime, shop.shopper())?;
        print!("{report}");
        if deadline.is_none() {
            println!("as JSON: {}", serde_json::to_string(&report)?);
        }
        let ramp = shop::experiment("/shop/inventory: latency(400ms) seed=7", limit)?.ramp(
            &shop.runtime,
            &[0.01, 0.02, 0.05, 0.1, 0.2, 0.5],
            shop.shopper(),
        )?;
        print!("{ramp}");
        shop.runtime.shutdown(shop::PATIENCE);
        println!();
    }
    Ok(())
}
