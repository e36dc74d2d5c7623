//! Model of the recomposition swaps racing senders
//! (`runtime/src/recompose/apply.rs`): isolating a kind puts a by-kind route
//! (`KindRoute`) behind the address, splitting puts a round-robin router
//! (`flow::Router`) over the old cell and a new one there, and retiring the
//! kind or merging the pool swaps the old cell back, each by `Slot::swap`
//! (`runtime/src/address.rs`). The route, the router and the swap are the
//! real code, over real mailboxes; the cells' queues are read once every
//! thread has joined, in the order their workers would take them.
//!
//! Properties:
//! - every message is delivered exactly once, to the old cell or to the one
//!   the swap added, and no send is refused (`Full` or `Closed`) because of
//!   a swap, not even by a cell that a retire or merge drains as soon as it
//!   returns;
//! - a swap racing senders is never refused: only a target changed from
//!   outside refuses it;
//! - isolate: messages of the kinds left behind all reach the old cell, in
//!   the order sent; a message of the isolated kind sent after the isolate
//!   returned reaches the isolated cell; an isolate racing a replace either
//!   is refused (the replace came first, and the kind's cell is drained) or
//!   is replaced along with the cell, and afterwards the address reaches the
//!   successor with every kind;
//! - split: every send after the split returned reaches one of the two
//!   cells, and sends through the router alternate between them, even when
//!   two senders route at once;
//! - retire and merge: every send after the swap back returned reaches the
//!   old cell, and the old cell holds what it was sent in the order sent.
//!
//! Planted bugs this model catches (each checked, then reverted):
//! - a `Slot::swap` that compares the target under the read lock and writes
//!   the new one later under the write lock: a replace in between is
//!   overwritten, the successor never gets the address and the closed old
//!   cell refuses the kinds left behind
//!   (`isolate_racing_a_replace_is_refused_or_replaced_with_the_cell`);
//! - a `Slot::try_send` that clones the route under the read lock and
//!   delivers after releasing it: a send that began before a retire reaches
//!   the isolated cell after the drain closed it, and is refused
//!   (`retire_racing_a_sender_leaves_every_later_send_to_the_old_cell`; a
//!   merge hides it, as the router offers a closed member's message to the
//!   old cell);
//! - a round-robin cursor read and then written (`load` and `store` in place
//!   of `fetch_add` in `RouterCore::in_turn`): two senders routing at once
//!   both reach the old cell (`split_racing_senders_delivers_each_message_once`);
//! - a `KindRoute` that, with a single kind isolated, sends every message to
//!   that kind's cell without asking `kind_of`
//!   (`isolate_racing_a_sender_moves_only_the_isolated_kind`,
//!   `retire_racing_a_sender_leaves_every_later_send_to_the_old_cell`);
//! - a retire that drains the kind's cell before swapping the old cell back
//!   (the two steps of `Managed::retire`, as `ModelSlot::unwrap` takes them,
//!   the other way round): a send of the kind in between is refused
//!   (`retire_racing_a_sender_leaves_every_later_send_to_the_old_cell`);
//! - a merge or retire whose swap expects the old cell instead of the
//!   wrapper (`Managed::merge` clearing the shape's wrapper before it swaps,
//!   planted in `ModelSlot::unwrap`): the swap is refused
//!   (`merge_racing_a_sender_leaves_every_later_send_to_the_old_cell`,
//!   `retire_racing_a_sender_leaves_every_later_send_to_the_old_cell`).
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelSlot, ModelTarget};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

/// The kind isolated in these models.
const LEGACY: &str = "legacy";

/// Messages from 100 up are of the kind isolated, the others are card
/// payments, which stay with the old cell.
fn kind_of(msg: &u32) -> &'static str {
    if *msg >= 100 {
        LEGACY
    } else {
        "card"
    }
}

fn is_legacy(msg: &u32) -> bool {
    kind_of(msg) == LEGACY
}

/// Sends `msgs` in order through `slot`, each of which must be accepted;
/// returns those sent after the sender saw `swapped` set (the swap had
/// returned).
fn send_all(slot: &ModelSlot<u32>, swapped: &AtomicBool, msgs: &[u32]) -> Vec<u32> {
    let mut after = Vec::new();
    for &msg in msgs {
        let seen = swapped.load(SeqCst);
        if let Err(err) = slot.try_send(msg) {
            panic!("a send racing a swap was refused: {err}");
        }
        if seen {
            after.push(msg);
        }
    }
    after
}

/// What `target` holds, in the order its worker would handle it. A cell
/// that was sent anything was scheduled exactly once (its run token taken
/// by the first push, as no worker ran).
fn received(target: &ModelTarget<u32>) -> Vec<u32> {
    let msgs = target.mailbox().take_user();
    assert_eq!(target.tokens(), usize::from(!msgs.is_empty()), "a cell sent {msgs:?} is scheduled once");
    msgs
}

/// Asserts that `a` and `b` together hold each of `sent` exactly once.
fn assert_exactly_once(a: &[u32], b: &[u32], sent: &[u32]) {
    let mut all: Vec<u32> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut expected = sent.to_vec();
    expected.sort_unstable();
    assert_eq!(all, expected, "each message delivered exactly once: {a:?} and {b:?}");
}

/// Asserts that `msgs` keep the order they were sent in (`sent`).
fn assert_in_send_order(msgs: &[u32], sent: &[u32]) {
    let positions: Vec<usize> =
        msgs.iter().map(|m| sent.iter().position(|s| s == m).expect("a message that was sent")).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{msgs:?} is not in the order sent, {sent:?}");
}

/// What a round-robin router over (old cell, new cell), fresh from a
/// split, gives the new cell of `routed`, the messages sent through it in
/// order: every second one, the old cell taking the first.
fn second_of_each_pair(routed: &[u32]) -> Vec<u32> {
    routed.iter().copied().skip(1).step_by(2).collect()
}

#[test]
fn isolate_racing_a_sender_moves_only_the_isolated_kind() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(4);
        let isolated = ModelTarget::new(4);
        let slot = Arc::new(ModelSlot::new(&base));
        let swapped = Arc::new(AtomicBool::new(false));

        let sender = {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || send_all(&slot, &swapped, &[1, 101, 2]))
        };
        let wrapper = slot.isolate(&base, kind_of, LEGACY, &isolated);
        assert!(wrapper.is_some(), "an isolate racing a sender is never refused");
        swapped.store(true, SeqCst);
        let after = sender.join().unwrap();
        // After the isolate, each kind goes to its owner.
        slot.try_send(3).expect("after an isolate, the old cell takes the kinds left behind");
        slot.try_send(102).expect("after an isolate, the isolated cell takes its kind");

        let at_base = received(&base);
        let at_isolated = received(&isolated);
        assert_exactly_once(&at_base, &at_isolated, &[1, 101, 2, 3, 102]);
        let cards: Vec<u32> = at_base.iter().copied().filter(|m| !is_legacy(m)).collect();
        assert_eq!(cards, [1, 2, 3], "the kinds left behind stay with the old cell, in order");
        assert!(at_isolated.iter().all(is_legacy), "only the isolated kind moves: {at_isolated:?}");
        for msg in after.iter().chain(&[102]).filter(|m| is_legacy(m)) {
            assert!(at_isolated.contains(msg), "{msg}, sent after the isolate, reached the isolated cell");
        }
    });
}

#[test]
fn isolate_racing_a_replace_is_refused_or_replaced_with_the_cell() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(2);
        let isolated = ModelTarget::new(2);
        let successor = ModelTarget::new_held(2);
        let slot = Arc::new(ModelSlot::new(&base));

        let replacer = {
            let (slot, successor) = (slot.clone(), successor.clone());
            thread::spawn(move || slot.replace(&successor))
        };
        let isolated_first = slot.isolate(&base, kind_of, LEGACY, &isolated).is_some();
        assert!(replacer.join().unwrap(), "nothing was held: the replace is never refused");
        assert_eq!(base.replaced(), 1, "the old cell is asked to hand over once, wrapped or not");

        // Whichever came first, the address now reaches the successor with
        // every kind: a refused isolate changed nothing, and a replace takes
        // the address from the by-kind route along with the cell.
        slot.try_send(1).expect("the kinds left behind reach the successor");
        slot.try_send(101).expect("the isolated kind reaches the successor");
        // The old cell stops and hands over (it held nothing).
        assert_eq!(base.stop(), [], "the old cell's leftovers go to its successor");
        assert!(!successor.is_held(), "the successor was released");
        assert_eq!(received(&successor), [1, 101]);
        assert_eq!(received(&isolated), [], "isolated first: {isolated_first}; the kind's cell got nothing");
        assert_eq!(
            isolated.mailbox().snapshot().is_closed(),
            !isolated_first,
            "a refused isolate drains the kind's cell it started"
        );
    });
}

#[test]
fn split_racing_senders_delivers_each_message_once() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(4);
        let added = ModelTarget::new(4);
        let slot = Arc::new(ModelSlot::new(&base));
        let swapped = Arc::new(AtomicBool::new(false));

        let senders = [1, 2].map(|msg| {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || send_all(&slot, &swapped, &[msg]))
        });
        let wrapper = slot.split(&base, &added);
        assert!(wrapper.is_some(), "a split racing senders is never refused");
        swapped.store(true, SeqCst);
        let after: Vec<u32> = senders.into_iter().flat_map(|sender| sender.join().unwrap()).collect();

        let at_base = received(&base);
        let at_added = received(&added);
        assert_exactly_once(&at_base, &at_added, &[1, 2]);
        if after.len() == 2 {
            // Both sends went through the router: one to each cell.
            assert_eq!((at_base.len(), at_added.len()), (1, 1), "round-robin: {at_base:?} and {at_added:?}");
        } else {
            // The router takes the old cell first: the new cell takes the
            // second message routed, if there was one.
            assert!(at_added.len() <= 1, "round-robin: {at_base:?} and {at_added:?}");
        }
    });
}

#[test]
fn split_then_sends_alternate_between_the_two_cells() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(4);
        let added = ModelTarget::new(4);
        let slot = Arc::new(ModelSlot::new(&base));
        let swapped = Arc::new(AtomicBool::new(false));

        let sender = {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || send_all(&slot, &swapped, &[1, 2, 3]))
        };
        assert!(slot.split(&base, &added).is_some(), "a split racing a sender is never refused");
        swapped.store(true, SeqCst);
        let after = sender.join().unwrap();
        // After the split, two sends in a row reach one cell each.
        slot.try_send(4).expect("after a split, the router takes every message");
        slot.try_send(5).expect("after a split, the router takes every message");

        let at_base = received(&base);
        let at_added = received(&added);
        assert_exactly_once(&at_base, &at_added, &[1, 2, 3, 4, 5]);
        assert_in_send_order(&at_base, &[1, 2, 3, 4, 5]);
        assert_in_send_order(&at_added, &[1, 2, 3, 4, 5]);
        // The router took a suffix of what was sent, at least what was sent
        // after the split returned, and gave the new cell every second one.
        let sent = [1, 2, 3, 4, 5];
        let mut routed = (2 + after.len()..=sent.len()).map(|len| &sent[sent.len() - len..]);
        assert!(
            routed.any(|routed| second_of_each_pair(routed) == at_added),
            "the new cell took {at_added:?}; sent after the split: {after:?}"
        );
    });
}

#[test]
fn retire_racing_a_sender_leaves_every_later_send_to_the_old_cell() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(4);
        let isolated = ModelTarget::new(4);
        let slot = Arc::new(ModelSlot::new(&base));
        let swapped = Arc::new(AtomicBool::new(false));
        let wrapper = slot.isolate(&base, kind_of, LEGACY, &isolated).expect("nothing races the isolate");

        let sender = {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || send_all(&slot, &swapped, &[101, 1, 102]))
        };
        // The retired kind's cell is drained as soon as the swap returned: it
        // closes to new messages and handles what it holds.
        assert!(slot.unwrap(&wrapper), "a retire racing a sender is never refused");
        swapped.store(true, SeqCst);
        assert!(isolated.mailbox().snapshot().is_closed());
        let after = sender.join().unwrap();
        slot.try_send(103).expect("after a retire, the old cell takes the kind");

        let at_base = received(&base);
        let at_isolated = received(&isolated);
        assert_exactly_once(&at_base, &at_isolated, &[101, 1, 102, 103]);
        assert_in_send_order(&at_base, &[101, 1, 102, 103]);
        for msg in after.iter().chain(&[103]) {
            assert!(at_base.contains(msg), "{msg}, sent after the retire, reached the old cell");
        }
        assert!(
            [101, 102].starts_with(&at_isolated),
            "the isolated cell took the kind's first messages, those sent before the retire: {at_isolated:?}"
        );
    });
}

#[test]
fn merge_racing_a_sender_leaves_every_later_send_to_the_old_cell() {
    cellrt_loom_tests::check(3, || {
        let base = ModelTarget::new(4);
        let added = ModelTarget::new(4);
        let slot = Arc::new(ModelSlot::new(&base));
        let swapped = Arc::new(AtomicBool::new(false));
        let wrapper = slot.split(&base, &added).expect("nothing races the split");

        let sender = {
            let (slot, swapped) = (slot.clone(), swapped.clone());
            thread::spawn(move || send_all(&slot, &swapped, &[1, 2, 3]))
        };
        // The added member is drained as soon as the swap returned.
        assert!(slot.unwrap(&wrapper), "a merge racing a sender is never refused");
        swapped.store(true, SeqCst);
        assert!(added.mailbox().snapshot().is_closed());
        assert!(!base.mailbox().snapshot().is_closed(), "the old cell is not drained");
        let after = sender.join().unwrap();
        slot.try_send(4).expect("after a merge, the old cell takes every message");

        let at_base = received(&base);
        let at_added = received(&added);
        assert_exactly_once(&at_base, &at_added, &[1, 2, 3, 4]);
        assert_in_send_order(&at_base, &[1, 2, 3, 4]);
        for msg in after.iter().chain(&[4]) {
            assert!(at_base.contains(msg), "{msg}, sent after the merge, reached the old cell");
        }
        // The router took a prefix of the sends, the new cell every second.
        assert!(at_added.is_empty() || at_added == [2], "the new cell took {at_added:?}");
    });
}
