//! Where inventory latency breaks checkout, with and without a deadline on
//! checkout's reservations. See `chaos/main.rs` for the story.

#[path = "../chaos/shop.rs"]
mod shop;

use std::time::Duration;

use cellrt::Outcome;
use shop::Shop;

const LATENCY: &str = "/shop/inventory: latency(400ms) seed=7";
const STEPS: [f64; 5] = [0.0, 0.02, 0.05, 0.1, 0.2];

#[test]
fn slow_inventory_breaks_an_unguarded_checkout_at_the_same_step_every_time() {
    let ramp = || {
        let shop = Shop::start(None).unwrap();
        let experiment = shop::experiment(LATENCY, Duration::from_millis(150)).unwrap();
        experiment.ramp(&shop.runtime, &STEPS, shop.shopper()).unwrap()
    };
    let first = ramp();
    let second = ramp();
    println!("{first}");
    let breaking = first.breaking_point.expect("an unguarded checkout breaks");
    assert_eq!(second.breaking_point, Some(breaking));
    assert!(breaking >= 1, "no latency, no break: {first}");
    let injected: Vec<u64> = first.steps.iter().map(|step| step.injected).collect();
    assert_eq!(injected, second.steps.iter().map(|step| step.injected).collect::<Vec<_>>());
}

#[test]
fn a_deadline_on_reservations_keeps_checkout_within_its_hypothesis_at_every_step() {
    let shop = Shop::start(Some(Duration::from_millis(20))).unwrap();
    let experiment = shop::experiment(LATENCY, Duration::from_millis(150)).unwrap();
    let ramp = experiment.ramp(&shop.runtime, &STEPS, shop.shopper()).unwrap();
    println!("{ramp}");
    assert_eq!(ramp.breaking_point, None, "{ramp}");
    assert_eq!(ramp.steps.len(), STEPS.len());
    let report = shop::experiment(LATENCY, Duration::from_millis(150))
        .unwrap()
        .run_with_load(&shop.runtime, shop.shopper())
        .unwrap();
    assert_eq!(report.outcome, Outcome::Held, "{report}");
}
