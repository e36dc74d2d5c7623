//! The flash sale, checked: a twentyfold browse spike while inventory is
//! slow, then recovery. See `flash_sale/main.rs` for the story.

#[path = "../flash_sale/scenario.rs"]
mod scenario;

use cellrt::BreakerState;
use scenario::{SaleConfig, PHASES};

/// The stated level: at least this share of checkouts succeeds in every
/// phase, the spike included.
const CHECKOUT_SUCCESS: f64 = 0.9;

#[test]
fn the_flash_sale_sheds_browse_first_serves_stale_stock_bounds_retries_and_recovers() {
    let report = scenario::run(SaleConfig::default()).expect("the sale runs");
    println!("{report}");

    // Nothing is lost: every request ended in exactly one way.
    for (i, phase) in PHASES.iter().enumerate() {
        assert_eq!(
            report.browse[i].accounted(),
            report.browse[i].sent,
            "browse, {phase}: {:?}",
            report.browse[i]
        );
        assert_eq!(
            report.checkout[i].accounted(),
            report.checkout[i].sent,
            "checkout, {phase}: {:?}",
            report.checkout[i]
        );
        assert!(report.browse[i].sent > 0 && report.checkout[i].sent > 0, "{phase} sent requests");
    }

    // Browse is shed first: during the spike only, never a checkout.
    assert!(report.browse[1].shed > 0, "the spike sheds browse: {:?}", report.browse[1]);
    assert_eq!((report.browse[0].shed, report.browse[3].shed), (0, 0), "no shedding before or after");
    for (i, phase) in PHASES.iter().enumerate() {
        let checkout = &report.checkout[i];
        assert_eq!(
            (checkout.shed, checkout.full),
            (0, 0),
            "checkout is never refused at the gateway ({phase})"
        );
        assert!(
            checkout.success_ratio() >= CHECKOUT_SUCCESS,
            "checkout success {:.3} in {phase}: {checkout:?}",
            checkout.success_ratio()
        );
    }

    // The inventory breaker opened during the slowness, cached stock was
    // served marked stale, and the breaker closed again.
    let opened =
        report.transitions.iter().position(|t| (t.from, t.to) == (BreakerState::Closed, BreakerState::Open));
    let opened = opened.unwrap_or_else(|| panic!("the breaker opened: {:?}", report.transitions));
    let last = report.transitions.last().expect("transitions were journaled");
    assert_eq!(last.to, BreakerState::Closed, "{:?}", report.transitions);
    assert!(report.transitions[opened..].iter().any(|t| t.to == BreakerState::HalfOpen));
    assert_eq!(report.breaker_end, BreakerState::Closed);
    assert!(report.browse[1].stale > 0, "stale stock served in the spike: {:?}", report.browse[1]);
    assert!(report.cache.stale_served >= report.browse.iter().map(|b| b.stale).sum::<u64>());
    assert!(report.cache.refused_by_breaker > 0, "the open breaker kept reads off inventory");

    // Retries stayed within the budget, counted on both sides.
    assert_eq!(report.retries, report.budget.retries, "each scheduled retry was granted by the budget");
    assert!(report.retries <= report.retry_bound, "{} retries, bound {}", report.retries, report.retry_bound);

    // Throughput returned: after the spike, browse answers come back fresh.
    let after = &report.browse[3];
    assert!(after.success_ratio() >= 0.95, "browse after the sale: {after:?}");
    assert!(after.ok > after.stale, "mostly fresh again: {after:?}");
}
