//! Routers behind an address: round-robin, least-loaded, consistent hash and
//! broadcast; membership changes while messages flow; misuse.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cellrt::{
    Addr, Cell, CellConfig, CellError, Context, NameError, Router, RouterError, Routing, Runtime, SendError,
};
use common::{eventually, hold, PATIENCE};

/// Who handled which message, in order.
type Seen = Arc<Mutex<Vec<(String, u64)>>>;

/// Records each message with its own name.
struct Member {
    seen: Seen,
}

impl Cell for Member {
    type Message = u64;

    fn handle(&mut self, ctx: &mut Context<Self>, n: u64) -> Result<(), CellError> {
        self.seen.lock().unwrap().push((ctx.path().name().to_owned(), n));
        Ok(())
    }
}

fn runtime() -> Runtime {
    Runtime::builder().worker_threads(2).dispatcher("held", 1).quiet_panics(true).build().unwrap()
}

fn members(
    runtime: &Runtime,
    names: &[&str],
    config: impl Fn(&str) -> CellConfig,
    seen: &Seen,
) -> Vec<Addr<u64>> {
    names
        .iter()
        .map(|name| runtime.spawn_with(config(name), Member { seen: seen.clone() }).unwrap())
        .collect()
}

fn handled_by(seen: &Seen) -> HashMap<u64, String> {
    seen.lock().unwrap().iter().map(|(name, n)| (*n, name.clone())).collect()
}

#[test]
fn round_robin_gives_each_member_the_next_message_in_turn() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["a", "b", "c"], |n| CellConfig::named(n), &seen);
    let router = runtime.router("pool", Routing::round_robin(), pool).unwrap();
    for n in 0..9 {
        router.addr().send(n).unwrap();
    }
    assert!(eventually(|| seen.lock().unwrap().len() == 9));
    let by = handled_by(&seen);
    for (name, expected) in [("a", [0, 3, 6]), ("b", [1, 4, 7]), ("c", [2, 5, 8])] {
        let mut got: Vec<u64> = by.iter().filter(|(_, who)| *who == name).map(|(n, _)| *n).collect();
        got.sort_unstable();
        assert_eq!(got, expected, "member {name}");
    }
    assert_eq!(router.stats().routed, 9);
    assert_eq!(router.addr().path().as_str(), "/pool");
    runtime.shutdown(PATIENCE);
}

#[test]
fn least_loaded_sends_to_the_member_with_the_fewest_waiting() {
    let runtime = runtime();
    let release = hold(&runtime, "blocker", "held");
    let seen = Seen::default();
    let pool = members(&runtime, &["a", "b", "c"], |name| CellConfig::named(name).dispatcher("held"), &seen);
    for _ in 0..3 {
        pool[0].try_send(0).unwrap();
    }
    pool[1].try_send(0).unwrap();
    let router = runtime.router("least", Routing::least_loaded(), pool.clone()).unwrap();
    let depths = || pool.iter().map(Addr::queued).collect::<Vec<_>>();
    router.addr().try_send(1).unwrap();
    assert_eq!(depths(), [3, 1, 1], "c was empty");
    router.addr().try_send(2).unwrap();
    assert_eq!(depths(), [3, 2, 1], "b and c tied: the first in the list");
    router.addr().try_send(3).unwrap();
    assert_eq!(depths(), [3, 2, 2]);
    assert_eq!(router.addr().queued(), 7, "a router's queue is its members' queues");
    drop(release);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_full_member_is_skipped_and_an_all_full_pool_hands_the_message_back() {
    let runtime = runtime();
    let release = hold(&runtime, "blocker", "held");
    let seen = Seen::default();
    let pool =
        members(&runtime, &["a", "b"], |name| CellConfig::named(name).capacity(1).dispatcher("held"), &seen);
    let router = runtime.router("small", Routing::round_robin(), pool.clone()).unwrap();
    router.addr().try_send(1).unwrap(); // a
    router.addr().try_send(2).unwrap(); // b
    assert_eq!(router.addr().try_send(3), Err(SendError::Full(3)));
    assert_eq!(router.addr().capacity(), 2);
    let stats = router.stats();
    assert_eq!((stats.routed, stats.failovers), (2, 0));
    drop(release);
    assert!(eventually(|| seen.lock().unwrap().len() == 2));
    // `a` is free again, and `b` is next in turn but also free: no failover.
    // Fill `b` only, then the turn that starts at `b` fails over to `a`.
    let release = hold(&runtime, "blocker-2", "held");
    pool[1].try_send(9).unwrap();
    router.addr().try_send(4).unwrap(); // turn 3 starts at b (full) → a
    assert_eq!(router.stats().failovers, 1);
    assert_eq!(pool.iter().map(Addr::queued).collect::<Vec<_>>(), [1, 1]);
    drop(release);
    runtime.shutdown(PATIENCE);
}

/// Routes keys `0..KEYS` through `router` and returns who handled each.
fn route_keys(router: &Router<u64>, seen: &Seen) -> HashMap<u64, String> {
    const KEYS: u64 = 2000;
    seen.lock().unwrap().clear();
    for key in 0..KEYS {
        router.addr().send(key).unwrap();
    }
    assert!(eventually(|| seen.lock().unwrap().len() == KEYS as usize));
    handled_by(seen)
}

#[test]
fn consistent_hash_moves_only_about_one_nth_of_the_keys_when_members_change() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["m0", "m1", "m2", "m3"], |n| CellConfig::named(n).capacity(4096), &seen);
    let router = runtime.router("sharded", Routing::consistent_hash(|key: &u64| *key), pool).unwrap();

    let first = route_keys(&router, &seen);
    assert_eq!(route_keys(&router, &seen), first, "equal keys go to the same member");
    for member in ["m0", "m1", "m2", "m3"] {
        let owned = first.values().filter(|m| *m == member).count();
        assert!((250..=750).contains(&owned), "{member} owns {owned} of 2000 keys");
    }

    // Adding a fifth member moves keys only to it, about 1/5 of them.
    let m4 =
        runtime.spawn_with(CellConfig::named("m4").capacity(4096), Member { seen: seen.clone() }).unwrap();
    router.add(m4).unwrap();
    let second = route_keys(&router, &seen);
    let moved: Vec<u64> = (0..2000).filter(|k| first[k] != second[k]).collect();
    assert!(moved.iter().all(|k| second[k] == "m4"), "every moved key moved to the new member");
    assert!((200..=700).contains(&moved.len()), "{} of 2000 keys moved (expected about 400)", moved.len());

    // Removing a member moves exactly its keys, and only them.
    let m1 = router.members().into_iter().find(|m| m.path().name() == "m1").unwrap();
    router.remove(&m1).unwrap();
    let third = route_keys(&router, &seen);
    for key in 0..2000 {
        if second[&key] == "m1" {
            assert_ne!(third[&key], "m1", "key {key} left the removed member");
        } else {
            assert_eq!(third[&key], second[&key], "key {key} did not belong to the removed member");
        }
    }
    runtime.shutdown(PATIENCE);
}

#[test]
fn consistent_hash_moves_past_a_stopped_member() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["s0", "s1", "s2"], |n| CellConfig::named(n), &seen);
    let router = runtime.router("ring", Routing::consistent_hash(|key: &u64| *key), pool.clone()).unwrap();
    let before = route_keys(&router, &seen);
    runtime.stop(&pool[0]);
    assert!(eventually(|| pool[0].is_closed()));
    let after = route_keys(&router, &seen);
    let moved = (0..2000).filter(|k| before[k] == "s0").count() as u64;
    assert!(after.values().all(|m| m != "s0"));
    assert!((0..2000).filter(|k| before[k] != "s0").all(|k| after[&k] == before[&k]));
    assert_eq!(router.stats().failovers, moved, "each key of the stopped member failed over once");
    runtime.shutdown(PATIENCE);
}

#[test]
fn broadcast_copies_to_every_member_and_counts_the_ones_that_refused() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["x", "y", "z"], |n| CellConfig::named(n), &seen);
    let router = runtime.router("all", Routing::broadcast(), pool.clone()).unwrap();
    router.addr().send(7).unwrap();
    assert!(eventually(|| seen.lock().unwrap().len() == 3));
    let mut names: Vec<String> = seen.lock().unwrap().iter().map(|(name, _)| name.clone()).collect();
    names.sort();
    assert_eq!(names, ["x", "y", "z"]);

    runtime.stop(&pool[1]);
    assert!(eventually(|| pool[1].is_closed()));
    router.addr().send(8).unwrap();
    assert!(eventually(|| seen.lock().unwrap().len() == 5));
    assert_eq!(router.stats().broadcast_missed, 1);

    runtime.stop(&pool[0]);
    runtime.stop(&pool[2]);
    assert!(eventually(|| pool[0].is_closed() && pool[2].is_closed()));
    assert_eq!(router.addr().send(9), Err(SendError::Closed(9)), "no member took it: it comes back");
    assert_eq!(router.stats().routed, 2);
    runtime.shutdown(PATIENCE);
}

#[test]
fn members_added_and_removed_under_traffic_lose_and_duplicate_nothing() {
    const SENDERS: u64 = 2;
    const EACH: u64 = 5000;
    let runtime = runtime();
    let seen = Seen::default();
    let names = ["r0", "r1", "r2", "r3"];
    let pool = members(&runtime, &names, |n| CellConfig::named(n).capacity(16_384), &seen);
    let router = runtime.router("churn", Routing::round_robin(), pool[..1].to_vec()).unwrap();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let addr = router.addr().clone();
            thread::spawn(move || {
                for i in 0..EACH {
                    addr.send(s * EACH + i).unwrap();
                }
            })
        })
        .collect();
    // Grow to four members and shrink back to one, over and over, while
    // the senders run.
    while !senders.iter().all(|s| s.is_finished()) {
        for member in &pool[1..] {
            router.add(member.clone()).unwrap();
        }
        thread::yield_now();
        for member in &pool[1..] {
            router.remove(member).unwrap();
        }
    }
    for sender in senders {
        sender.join().unwrap();
    }
    assert!(eventually(|| seen.lock().unwrap().len() as u64 >= SENDERS * EACH));
    thread::sleep(Duration::from_millis(20));
    let mut got: Vec<u64> = seen.lock().unwrap().iter().map(|(_, n)| *n).collect();
    got.sort_unstable();
    assert_eq!(got, (0..SENDERS * EACH).collect::<Vec<_>>(), "each message handled exactly once");
    assert_eq!(router.stats().routed, SENDERS * EACH);
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_router_address_can_be_replaced_by_a_cell() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["p0", "p1"], |n| CellConfig::named(n), &seen);
    let router = runtime.router("merged", Routing::round_robin(), pool).unwrap();
    router.addr().send(1).unwrap();
    router.addr().send(2).unwrap();
    runtime.replace(router.addr(), Member { seen: seen.clone() }).unwrap();
    router.addr().send(3).unwrap();
    assert!(eventually(|| seen.lock().unwrap().len() == 3));
    let by = handled_by(&seen);
    assert_eq!(by[&3], "merged", "after the swap the cell at the router's path handles");
    assert!(by[&1].starts_with('p') && by[&2].starts_with('p'), "members kept what they were sent");
    runtime.shutdown(PATIENCE);
}

#[test]
fn router_misuse_is_refused_with_a_typed_error() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["u0", "u1"], |n| CellConfig::named(n), &seen);

    let empty = runtime.router::<u64>("empty", Routing::round_robin(), Vec::new());
    assert_eq!(empty.unwrap_err(), RouterError::EmptyPool);
    let twice = runtime.router("twice", Routing::round_robin(), vec![pool[0].clone(), pool[0].clone()]);
    assert_eq!(twice.unwrap_err(), RouterError::DuplicateMember { path: pool[0].path().clone() });
    let bad = runtime.router("a/b", Routing::round_robin(), pool.clone());
    assert!(matches!(bad.unwrap_err(), RouterError::InvalidName(NameError::InvalidChar { found: '/', .. })));

    let router = runtime.router("pair", Routing::round_robin(), pool.clone()).unwrap();
    assert_eq!(
        router.add(pool[1].clone()),
        Err(RouterError::DuplicateMember { path: pool[1].path().clone() })
    );
    assert_eq!(router.add(router.addr().clone()), Err(RouterError::SelfMember));
    // A router over this one, added to it, would make a loop.
    let outer = runtime.router("outer", Routing::round_robin(), vec![router.addr().clone()]).unwrap();
    let cycle = router.add(outer.addr().clone()).unwrap_err();
    assert_eq!(cycle, RouterError::Cycle { path: outer.addr().path().clone() });
    assert_eq!(cycle.to_string(), "/outer reaches the router through its members: a message would loop");
    assert_eq!(router.len(), 2, "nothing was added");
    let stranger = runtime.spawn_with(CellConfig::named("stranger"), Member { seen: seen.clone() }).unwrap();
    assert_eq!(router.remove(&stranger), Err(RouterError::NotMember { path: stranger.path().clone() }));
    router.remove(&pool[0]).unwrap();
    let last = router.remove(&pool[1]).unwrap_err();
    assert_eq!(last, RouterError::LastMember { path: pool[1].path().clone() });
    assert_eq!(last.to_string(), "/u1 is the router's last member; a router keeps at least one");
    assert_eq!((router.len(), router.members()), (1, vec![pool[1].clone()]));
    assert_eq!(RouterError::EmptyPool.to_string(), "a router needs at least one member");
    runtime.shutdown(PATIENCE);
}

#[test]
fn a_panicking_key_extractor_routes_round_robin_instead() {
    let runtime = runtime();
    let seen = Seen::default();
    let pool = members(&runtime, &["k0", "k1"], |n| CellConfig::named(n), &seen);
    let router = runtime
        .router(
            "keyed",
            Routing::consistent_hash(|n: &u64| if *n == 13 { panic!("no key for 13") } else { *n }),
            pool,
        )
        .unwrap();
    router.addr().send(13).unwrap();
    router.addr().send(14).unwrap();
    assert!(eventually(|| seen.lock().unwrap().len() == 2));
    let stats = router.stats();
    assert_eq!((stats.key_panics, stats.routed), (1, 2));
    runtime.shutdown(PATIENCE);
}
