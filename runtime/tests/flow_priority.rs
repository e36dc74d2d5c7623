//! Load shedding by priority class at an address, and priority lanes in a
//! cell's mailbox.

mod common;

use cellrt::{Cell, CellConfig, CellError, Context, Routing, SendError, Shedding};
use common::{held_runtime, hold, PATIENCE};

/// A request of a class, numbered.
#[derive(Debug, PartialEq)]
struct Req {
    class: u8,
    id: u32,
}

struct Sink;

impl Cell for Sink {
    type Message = Req;

    fn handle(&mut self, _: &mut Context<Self>, _: Req) -> Result<(), CellError> {
        Ok(())
    }
}

fn three_classes() -> Shedding<Req> {
    Shedding::new(|r: &Req| r.class).watermark(0, 0.5).unwrap().watermark(1, 0.8).unwrap()
}

#[cfg(feature = "observe")]
#[test]
fn lowest_classes_are_shed_first_and_every_shed_message_comes_back() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let cell = runtime.spawn_with(CellConfig::named("shop").capacity(10).dispatcher("held"), Sink).unwrap();
    cell.set_shedding(Some(three_classes()));
    let (mut admitted, mut shed, mut full) = ([0_u32; 3], [0_u32; 3], [0_u32; 3]);
    for id in 0..10 {
        for class in 0..3_u8 {
            match cell.try_send(Req { class, id }) {
                Ok(()) => admitted[usize::from(class)] += 1,
                Err(SendError::Shed(back)) => {
                    assert_eq!(back, Req { class, id }, "the shed message itself comes back");
                    shed[usize::from(class)] += 1;
                }
                Err(SendError::Full(back)) => {
                    assert_eq!(back, Req { class, id });
                    full[usize::from(class)] += 1;
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
    }
    // Class 0 stops at 5 queued, class 1 at 8, class 2 fills all 10.
    assert_eq!(admitted, [2, 3, 5]);
    assert_eq!(shed, [8, 7, 0]);
    assert_eq!(full, [0, 0, 5], "the top class is refused only by a full mailbox");
    let stats = cell.shedding_stats().unwrap();
    assert_eq!((stats.admitted(0), stats.admitted(1), stats.admitted(2)), (2, 3, 10));
    assert_eq!((stats.shed(0), stats.shed(1), stats.shed(2), stats.shed_total()), (8, 7, 0, 15));
    // The cell's own metrics count the sends it was spared and refused.
    let snapshot = runtime.snapshot();
    let shop = snapshot.cells.iter().find(|c| c.path.as_str() == "/shop").unwrap();
    let metrics = shop.metrics.as_ref().unwrap();
    assert_eq!((metrics.shed, metrics.rejected_full), (15, 5));
    assert!(snapshot.prometheus().contains("cellrt_sends_shed_total{cell=\"/shop\""));
    drop(release);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_blocking_send_of_a_shed_class_returns_at_once_instead_of_waiting_for_room() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let cell = runtime.spawn_with(CellConfig::named("shop").capacity(2).dispatcher("held"), Sink).unwrap();
    cell.set_shedding(Some(three_classes()));
    cell.send(Req { class: 0, id: 1 }).unwrap();
    // A 30 s send timeout: a wait would end in `Timeout`, long after this.
    assert_eq!(cell.send(Req { class: 0, id: 2 }), Err(SendError::Shed(Req { class: 0, id: 2 })));
    drop(release);
    runtime.shutdown(PATIENCE);
}

#[test]
fn the_policy_stays_with_the_address_across_a_replace_and_can_be_cleared() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let cell = runtime.spawn_with(CellConfig::named("shop").capacity(4).dispatcher("held"), Sink).unwrap();
    cell.set_shedding(Some(three_classes()));
    runtime.replace_with(&cell, CellConfig::new().dispatcher("held"), Sink).unwrap();
    cell.try_send(Req { class: 0, id: 1 }).unwrap();
    cell.try_send(Req { class: 0, id: 2 }).unwrap();
    assert!(cell.try_send(Req { class: 0, id: 3 }).unwrap_err().is_shed());
    assert_eq!(cell.shedding_stats().unwrap().shed(0), 1);
    cell.set_shedding(None);
    assert_eq!(cell.shedding_stats(), None);
    cell.try_send(Req { class: 0, id: 3 }).unwrap();
    drop(release);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_router_address_sheds_by_the_depth_of_all_its_members() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let members: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| runtime.spawn_with(CellConfig::named(name).capacity(2).dispatcher("held"), Sink).unwrap())
        .collect();
    let router = runtime.router("front", Routing::round_robin(), members).unwrap();
    router.addr().set_shedding(Some(three_classes()));
    // Capacity 4 in all: class 0 gets in below 2 queued, class 1 below 3.2.
    router.addr().try_send(Req { class: 0, id: 1 }).unwrap();
    router.addr().try_send(Req { class: 0, id: 2 }).unwrap();
    assert!(router.addr().try_send(Req { class: 0, id: 3 }).unwrap_err().is_shed());
    router.addr().try_send(Req { class: 1, id: 4 }).unwrap();
    router.addr().try_send(Req { class: 1, id: 5 }).unwrap();
    assert!(router.addr().try_send(Req { class: 1, id: 6 }).unwrap_err().is_shed());
    assert!(router.addr().try_send(Req { class: 2, id: 7 }).unwrap_err().is_full());
    assert_eq!(router.addr().shedding_stats().unwrap().shed_total(), 2);
    drop(release);
    runtime.shutdown(PATIENCE);
}

/// Records the order it handles requests in; checkout (class 1) has its own
/// priority lane.
struct Prioritized {
    order: std::sync::Arc<std::sync::Mutex<Vec<u32>>>,
}

impl Cell for Prioritized {
    type Message = Req;
    const LANES: usize = 2;

    fn lane(req: &Req) -> usize {
        usize::from(req.class)
    }

    fn handle(&mut self, _: &mut Context<Self>, req: Req) -> Result<(), CellError> {
        self.order.lock().unwrap().push(req.id);
        Ok(())
    }
}

#[test]
fn a_message_in_a_higher_lane_overtakes_the_ones_queued_before_it() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let order = std::sync::Arc::default();
    let shop = runtime
        .spawn_with(
            CellConfig::named("shop").dispatcher("held"),
            Prioritized { order: std::sync::Arc::clone(&order) },
        )
        .unwrap();
    for (class, id) in [(0, 1), (0, 2), (0, 3), (1, 4), (0, 5), (1, 6)] {
        shop.try_send(Req { class, id }).unwrap();
    }
    drop(release);
    assert!(common::eventually(|| order.lock().unwrap().len() == 6));
    assert_eq!(*order.lock().unwrap(), [4, 6, 1, 2, 3, 5], "checkout first, each lane in order");
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_full_lower_lane_does_not_refuse_the_higher_lane() {
    let runtime = held_runtime();
    let release = hold(&runtime, "blocker", "held");
    let shop = runtime
        .spawn_with(
            CellConfig::named("shop").capacity(2).dispatcher("held"),
            Prioritized { order: std::sync::Arc::default() },
        )
        .unwrap();
    assert_eq!(shop.capacity(), 4, "two lanes of two");
    shop.try_send(Req { class: 0, id: 1 }).unwrap();
    shop.try_send(Req { class: 0, id: 2 }).unwrap();
    assert_eq!(shop.try_send(Req { class: 0, id: 3 }), Err(SendError::Full(Req { class: 0, id: 3 })));
    shop.try_send(Req { class: 1, id: 4 }).unwrap();
    // A class above the last lane goes to the last lane.
    shop.try_send(Req { class: 9, id: 5 }).unwrap();
    assert_eq!(shop.try_send(Req { class: 1, id: 6 }), Err(SendError::Full(Req { class: 1, id: 6 })));
    assert_eq!(shop.queued(), 4);
    drop(release);
    runtime.shutdown(PATIENCE);
}
