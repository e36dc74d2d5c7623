//! Waiting for room in a full mailbox: blocking senders sleep on a condition
//! variable, async senders (feature `tokio`) leave a waker.

use std::time::Instant;

#[cfg(any(feature = "tokio", cellrt_loom))]
pub(crate) use self::wakers::SpaceWaiter;
use crate::sync::atomic::{fence, Ordering::Acquire};
use crate::sync::{Condvar, Mutex, MutexGuard, OnceBox};

/// What the sleepers' lock guards: the async senders' wakers, allocated by
/// the first async sender that waits on this mailbox (one pointer until
/// then), or nothing in builds without async senders.
#[cfg(any(feature = "tokio", cellrt_loom))]
type AsyncWaiters = Option<crate::sync::Arc<wakers::SpaceWakers>>;
#[cfg(not(any(feature = "tokio", cellrt_loom)))]
type AsyncWaiters = ();

/// Blocking senders sleep here, async senders leave their wakers here; the
/// worker that frees slots wakes every blocking sender and as many waiting
/// tasks as there is room.
///
/// Protocol (with `SPACE_WAITERS` in the cell's state word, see
/// `dispatch/state.rs`): a sender takes this lock, sets the flag with a
/// read-modify-write, looks at the queue, and sleeps only if it is still
/// full. A worker pops during its turn, then ends the turn with a
/// read-modify-write that clears the flag; if the flag was set, it takes this
/// lock and wakes every sleeper. The two RMWs are on one word, so one sees the
/// other: either the sender sees the freed slots or the worker sees the flag.
/// The lock makes "look, then sleep" atomic against "wake". The worker's
/// common path (no sleeper) costs nothing beyond the RMW it does anyway.
///
/// A worker also makes that RMW in the middle of a turn, once, half-way
/// through its budget, and wakes the sleepers then if the flag was set: a
/// sender that filled the mailbox refills it while the worker goes on,
/// instead of sleeping until the worker has emptied it and gone idle (a
/// wake-up of the worker for every refill). The turn-ending RMW stays: a
/// sender that set the flag after the middle of the turn is woken there.
/// The loom model `loom-tests/tests/mailbox_space.rs` checks
/// both. Blocking
/// senders are all woken (`notify_all`): a sleeper whose timeout passes as
/// a `notify_one` reaches it would swallow the wake-up, and a condition
/// variable cannot say who got it to hand it on.
///
/// An async sender follows the same protocol with its waker in place of the
/// sleep: it puts the waker at the back of the list *before* its RMW sets
/// the flag, then looks at the queue, and returns `Pending` only if it is
/// still full. A worker whose turn-ending RMW comes later in the word's
/// order sees the flag and finds the waker in the list; one that came
/// earlier is seen by the sender's RMW (Acquire), and so are its pops.
///
/// A worker does not wake every waiting task, only as many as there is
/// room, first come first woken, as tokio's batch semaphore hands out
/// permits. Under the list's lock it counts the free slots of the queue
/// (every waiter, for a mailbox with priority lanes, whose waiters wait on
/// different lanes), takes away the tasks already woken that have not yet
/// left the list (*granted*), and wakes that many from the front. A woken
/// task keeps its entry, marked woken, until it leaves:
///
/// - it delivered its message: the grant is used;
/// - it found the queue full again (another sender took the slot): it goes
///   back to the *front* of the list, waiting, and the turn that empties the
///   queue again wakes it (the queue is full, so there is such a turn);
/// - it is dropped, times out, or its message is refused otherwise: it hands
///   its wake to the next waiting task;
/// - it delivered through a router, which may put the message in another
///   member than the one it waited on: it hands its wake on as well, since
///   the slot it was woken for may still be free.
///
/// The turn-ending RMW cleared the flag; while tasks are still waiting, the
/// worker sets it again, with an RMW, before it lets the list go, so the
/// next turn wakes them. A turn that ended between the two RMWs saw no
/// flag and woke no one: the worker's second RMW comes after that turn's in
/// the word's order and synchronizes with it, so the worker counts the room
/// once more after it and wakes the tasks that turn's pops made room for.
/// Closing the mailbox wakes every task. The loom model
/// `loom-tests/tests/mailbox_space_async.rs` checks this.
///
/// The lock, the condition variable and the waker list are allocated by the
/// first sender that waits (`sync::OnceBox`): a mailbox no sender ever
/// waited on pays a null pointer. A sender publishes them before its RMW;
/// every waker makes its RMW on the word first (the turn-ending one that
/// found the flag, or the close), then an Acquire fence, then looks for
/// them. A waker whose RMW comes later in the word's order than a sender's
/// therefore synchronizes with that sender's RMW and finds what it
/// published; one whose RMW comes earlier is seen by the sender (room made,
/// or the gate closed), which then does not wait. The same two models
/// check this.
#[derive(Debug, Default)]
pub(crate) struct SpaceSignal {
    /// Allocated by the first sender that waits.
    inner: OnceBox<Signal>,
}

#[derive(Debug, Default)]
struct Signal {
    lock: Mutex<AsyncWaiters>,
    cond: Condvar,
}

impl SpaceSignal {
    /// The lock and condition variable, allocated now if this is their
    /// first use.
    fn signal(&self) -> &Signal {
        self.inner.get_or_init(Box::default)
    }

    /// Takes the lock a sender holds from registering to sleeping.
    pub(crate) fn lock(&self) -> MutexGuard<'_, AsyncWaiters> {
        self.signal().lock.lock()
    }

    /// Sleeps (releasing `guard`) until woken or `deadline` passes; `false`
    /// when the deadline passed.
    pub(crate) fn sleep(&self, guard: MutexGuard<'_, AsyncWaiters>, deadline: Instant) -> bool {
        match deadline.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => !self.signal().cond.wait_timeout(guard, left).1,
            _ => false,
        }
    }

    /// Wakes every sleeper and as many waiting tasks as `room` (the free
    /// slots, counted now) is above the tasks already woken; `rearm` sets
    /// `SPACE_WAITERS` again when tasks are left waiting. The caller has
    /// just made its turn-ending RMW on the cell's state word (see above).
    pub(crate) fn wake(&self, room: impl Fn() -> usize, rearm: impl FnOnce()) {
        #[cfg(any(feature = "tokio", cellrt_loom))]
        if let Some(Some(wakers)) = self.wake_sleepers() {
            wakers.wake_for_room(room, rearm);
        }
        #[cfg(not(any(feature = "tokio", cellrt_loom)))]
        {
            self.wake_sleepers();
            let _ = (room, rearm);
        }
    }

    /// Wakes every sleeper and every waiting task: the mailbox closed. The
    /// caller has just made its closing RMW on the cell's state word.
    pub(crate) fn wake_all(&self) {
        #[cfg(any(feature = "tokio", cellrt_loom))]
        if let Some(Some(wakers)) = self.wake_sleepers() {
            wakers.wake_all();
        }
        #[cfg(not(any(feature = "tokio", cellrt_loom)))]
        self.wake_sleepers();
    }

    /// Wakes the blocking senders; returns the async senders' list (`None`
    /// when no sender ever waited here).
    fn wake_sleepers(&self) -> Option<AsyncWaiters> {
        // With the caller's RMW, synchronizes with the RMW of every sender
        // earlier in the word's order, so what it published is seen here.
        fence(Acquire);
        let signal = self.inner.get()?;
        let guard = signal.lock.lock();
        signal.cond.notify_all();
        // Cloned out of the lock: the tasks are woken outside it, since a
        // waker may run arbitrary scheduler code.
        #[cfg(any(feature = "tokio", cellrt_loom))]
        let waiters = guard.clone();
        drop(guard);
        #[cfg(any(feature = "tokio", cellrt_loom))]
        return Some(waiters);
        #[cfg(not(any(feature = "tokio", cellrt_loom)))]
        Some(())
    }
}

/// The async senders' side: a list of wakers and the registration each
/// waiting future holds.
#[cfg(any(feature = "tokio", cellrt_loom))]
mod wakers {
    use std::task::Waker;

    use slab::Slab;

    use super::SpaceSignal;
    use crate::sync::{Arc, Mutex};

    /// The wakers of the tasks waiting for room in one mailbox.
    #[derive(Debug, Default)]
    pub(crate) struct SpaceWakers {
        list: Mutex<Waiters>,
    }

    /// The entries of the tasks registered on one mailbox: the waiting ones
    /// linked first come first, the woken ones (granted) unlinked until
    /// their task leaves. A key names one task's entry from its insertion
    /// to its removal, so no task ever reaches another's.
    #[derive(Debug, Default)]
    struct Waiters {
        entries: Slab<Node>,
        /// The longest waiting entry.
        head: Option<usize>,
        /// The latest waiting entry.
        tail: Option<usize>,
        /// Entries woken whose task has not left yet.
        granted: usize,
    }

    #[derive(Debug)]
    struct Node {
        waker: Waker,
        turn: Turn,
        prev: Option<usize>,
        next: Option<usize>,
    }

    /// Where a registered task stands. Only `Waiting` entries are linked.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Turn {
        Waiting,
        /// Woken, not polled since: counted in `granted`.
        Granted,
        /// Woken and polled: offering its message now. No longer counted
        /// in `granted`, so that a turn that frees the slot it is about to
        /// fill, before it leaves, still wakes the next task (at worst one
        /// more than needed, who finds the queue full and waits again).
        Offering,
    }

    impl Waiters {
        fn insert(&mut self, waker: Waker) -> usize {
            let key = self.entries.insert(Node { waker, turn: Turn::Waiting, prev: None, next: None });
            self.link_back(key);
            key
        }

        fn link_back(&mut self, key: usize) {
            self.entries[key].prev = self.tail;
            self.entries[key].next = None;
            match self.tail {
                Some(tail) => self.entries[tail].next = Some(key),
                None => self.head = Some(key),
            }
            self.tail = Some(key);
        }

        fn link_front(&mut self, key: usize) {
            self.entries[key].prev = None;
            self.entries[key].next = self.head;
            match self.head {
                Some(head) => self.entries[head].prev = Some(key),
                None => self.tail = Some(key),
            }
            self.head = Some(key);
        }

        fn unlink(&mut self, key: usize) {
            let Node { prev, next, .. } = self.entries[key];
            match prev {
                Some(prev) => self.entries[prev].next = next,
                None => self.head = next,
            }
            match next {
                Some(next) => self.entries[next].prev = prev,
                None => self.tail = prev,
            }
        }

        /// Marks up to `n` waiting entries woken, longest waiting first,
        /// and collects their wakers into `woken`.
        fn wake(&mut self, n: usize, woken: &mut Vec<Waker>) {
            for _ in 0..n {
                let Some(key) = self.head else { return };
                self.unlink(key);
                let node = &mut self.entries[key];
                node.turn = Turn::Granted;
                woken.push(node.waker.clone());
                self.granted += 1;
            }
        }

        /// Removes the entry `key`; `true` when it had been woken.
        fn remove(&mut self, key: usize) -> bool {
            match self.entries[key].turn {
                Turn::Waiting => self.unlink(key),
                Turn::Granted => self.granted -= 1,
                Turn::Offering => {}
            }
            self.entries.remove(key).turn != Turn::Waiting
        }
    }

    impl SpaceWakers {
        /// Wakes as many waiting tasks as `room` is above the tasks already
        /// woken; with tasks left waiting, calls `rearm` (which sets
        /// `SPACE_WAITERS` with an RMW) and counts the room once more.
        pub(crate) fn wake_for_room(&self, room: impl Fn() -> usize, rearm: impl FnOnce()) {
            let mut woken = Vec::new();
            {
                let mut list = self.list.lock();
                let free = room().saturating_sub(list.granted);
                list.wake(free, &mut woken);
                if list.head.is_some() {
                    rearm();
                    let free = room().saturating_sub(list.granted);
                    list.wake(free, &mut woken);
                }
            }
            for waker in woken {
                waker.wake();
            }
        }

        /// Wakes every waiting task.
        pub(crate) fn wake_all(&self) {
            let mut woken = Vec::new();
            {
                self.list.lock().wake(usize::MAX, &mut woken);
            }
            for waker in woken {
                waker.wake();
            }
        }
    }

    /// A waiting future's place in a mailbox's list of wakers; removed when
    /// the future cancels, completes or is dropped.
    #[derive(Debug, Default)]
    pub(crate) struct SpaceWaiter {
        entry: Option<Entry>,
        /// Set by a router: a delivery may land in another mailbox than the
        /// one this waiter waited on.
        may_deliver_elsewhere: bool,
    }

    #[derive(Debug)]
    struct Entry {
        wakers: Arc<SpaceWakers>,
        key: usize,
    }

    impl SpaceWaiter {
        /// Puts `waker` in `signal`'s list (allocating the list for the
        /// first async sender of the mailbox): at the back for a new
        /// waiter, in place for one still waiting, at the front for one
        /// that was woken and found the queue full again.
        pub(crate) fn register(&mut self, signal: &SpaceSignal, waker: &Waker) {
            let wakers = signal.lock().get_or_insert_with(Arc::default).clone();
            if let Some(entry) = &self.entry {
                if Arc::ptr_eq(&entry.wakers, &wakers) {
                    let mut list = wakers.list.lock();
                    let node = &mut list.entries[entry.key];
                    node.waker.clone_from(waker);
                    let turn = std::mem::replace(&mut node.turn, Turn::Waiting);
                    if turn == Turn::Granted {
                        list.granted -= 1;
                    }
                    if turn != Turn::Waiting {
                        list.link_front(entry.key);
                    }
                    return;
                }
            }
            // Leaving another mailbox's list unused: a wake it got there
            // goes on to the next task waiting there.
            self.leave(true);
            let key = wakers.list.lock().insert(waker.clone());
            self.entry = Some(Entry { wakers, key });
        }

        /// Called as the task offers its message again: a woken entry stops
        /// counting as granted (see [`Turn::Offering`]), though it still
        /// hands its wake on should the offer be refused.
        pub(crate) fn offering(&mut self) {
            let Some(entry) = &self.entry else { return };
            let mut list = entry.wakers.list.lock();
            let node = &mut list.entries[entry.key];
            if node.turn == Turn::Granted {
                node.turn = Turn::Offering;
                list.granted -= 1;
            }
        }

        /// Whether this waiter is in a list: it offered a message, was
        /// refused as full, and has not left since (waiting or woken).
        pub(crate) fn is_in_list(&self) -> bool {
            self.entry.is_some()
        }

        /// Leaves the list without having delivered (dropped, timed out,
        /// refused): a wake this waiter got goes on to the next task.
        pub(crate) fn cancel(&mut self) {
            self.leave(true);
        }

        /// Leaves the list after delivering: the wake, if any, is used,
        /// unless the delivery may have landed elsewhere (a router).
        pub(crate) fn delivered(&mut self) {
            self.leave(self.may_deliver_elsewhere);
        }

        /// Marks this waiter's deliveries as routed: one may land in
        /// another mailbox than the one it waited on.
        pub(crate) fn may_deliver_elsewhere(&mut self) {
            self.may_deliver_elsewhere = true;
        }

        /// Removes the entry; a woken one hands its wake on when `hand_on`.
        fn leave(&mut self, hand_on: bool) {
            let Some(entry) = self.entry.take() else { return };
            let mut next = Vec::new();
            {
                let mut list = entry.wakers.list.lock();
                if list.remove(entry.key) && hand_on {
                    list.wake(1, &mut next);
                }
            }
            for waker in next {
                waker.wake();
            }
        }

        /// Whether this waiter waits in a list (registered, and neither
        /// woken nor gone since).
        #[cfg(test)]
        pub(crate) fn is_registered(&self) -> bool {
            self.entry
                .as_ref()
                .is_some_and(|entry| entry.wakers.list.lock().entries[entry.key].turn == Turn::Waiting)
        }
    }

    impl Drop for SpaceWaiter {
        fn drop(&mut self) {
            self.cancel();
        }
    }

    #[cfg(all(test, not(cellrt_loom)))]
    mod tests {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::task::Wake;

        use super::*;

        /// A waker that counts its wake-ups.
        #[derive(Default)]
        struct Count(AtomicUsize);

        impl Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        impl Count {
            fn get(&self) -> usize {
                self.0.load(Ordering::SeqCst)
            }
        }

        fn counting() -> (std::sync::Arc<Count>, Waker) {
            let count = std::sync::Arc::new(Count::default());
            (count.clone(), Waker::from(count))
        }

        fn listed(signal: &SpaceSignal) -> usize {
            signal.lock().as_ref().map_or(0, |wakers| wakers.list.lock().entries.len())
        }

        /// `n` waiters registered in order, each with its own counter.
        fn waiting(signal: &SpaceSignal, n: usize) -> (Vec<std::sync::Arc<Count>>, Vec<SpaceWaiter>) {
            (0..n)
                .map(|_| {
                    let (count, waker) = counting();
                    let mut waiter = SpaceWaiter::default();
                    waiter.register(signal, &waker);
                    (count, waiter)
                })
                .unzip()
        }

        fn counts(counts: &[std::sync::Arc<Count>]) -> Vec<usize> {
            counts.iter().map(|count| count.get()).collect()
        }

        /// A turn's wake-up with `room` free slots; returns whether it set
        /// the flag again.
        fn turn(signal: &SpaceSignal, room: usize) -> bool {
            let rearmed = std::cell::Cell::new(false);
            signal.wake(|| room, || rearmed.set(true));
            rearmed.get()
        }

        #[test]
        fn the_list_is_allocated_by_the_first_waiter() {
            let signal = SpaceSignal::default();
            assert!(signal.lock().is_none());
            let (_, waker) = counting();
            let mut waiter = SpaceWaiter::default();
            waiter.register(&signal, &waker);
            assert!(signal.lock().is_some());
            assert_eq!(listed(&signal), 1);
        }

        #[test]
        fn registering_again_replaces_the_entry_instead_of_adding_one() {
            let signal = SpaceSignal::default();
            let (first, first_waker) = counting();
            let (second, second_waker) = counting();
            let mut waiter = SpaceWaiter::default();
            waiter.register(&signal, &first_waker);
            waiter.register(&signal, &second_waker);
            assert_eq!(listed(&signal), 1);
            turn(&signal, 1);
            assert_eq!((first.get(), second.get()), (0, 1));
        }

        #[test]
        fn a_turn_wakes_as_many_waiters_as_there_is_room_longest_waiting_first() {
            let signal = SpaceSignal::default();
            let (count, _waiters) = waiting(&signal, 4);
            assert!(turn(&signal, 2), "two are left waiting: the flag is set again");
            assert_eq!(counts(&count), [1, 1, 0, 0]);
            // The two woken have not left: the same room grants nothing more.
            assert!(turn(&signal, 2));
            assert_eq!(counts(&count), [1, 1, 0, 0]);
            assert!(!turn(&signal, 4), "no one is left waiting");
            assert_eq!(counts(&count), [1, 1, 1, 1]);
        }

        #[test]
        fn a_woken_waiter_that_delivered_hands_nothing_on() {
            let signal = SpaceSignal::default();
            let (count, mut waiters) = waiting(&signal, 2);
            turn(&signal, 1);
            waiters[0].delivered();
            assert_eq!(counts(&count), [1, 0]);
            assert_eq!(listed(&signal), 1);
        }

        #[test]
        fn a_woken_waiter_dropped_hands_its_wake_to_the_next() {
            let signal = SpaceSignal::default();
            let (count, mut waiters) = waiting(&signal, 3);
            turn(&signal, 1);
            drop(waiters.remove(0));
            assert_eq!(counts(&count), [1, 1, 0]);
            assert_eq!(listed(&signal), 2);
        }

        #[test]
        fn a_waiter_dropped_before_its_wake_leaves_no_entry_and_hands_nothing_on() {
            let signal = SpaceSignal::default();
            let (count, mut waiters) = waiting(&signal, 2);
            drop(waiters.remove(0));
            assert_eq!(listed(&signal), 1);
            assert_eq!(counts(&count), [0, 0]);
            turn(&signal, 1);
            assert_eq!(counts(&count), [0, 1]);
        }

        #[test]
        fn a_routed_waiter_hands_its_wake_on_even_after_delivering() {
            let signal = SpaceSignal::default();
            let (count, mut waiters) = waiting(&signal, 2);
            waiters[0].may_deliver_elsewhere();
            turn(&signal, 1);
            waiters[0].delivered();
            assert_eq!(counts(&count), [1, 1]);
        }

        #[test]
        fn a_woken_waiter_that_found_the_queue_full_waits_again_at_the_front() {
            let signal = SpaceSignal::default();
            let (count, mut waiters) = waiting(&signal, 2);
            turn(&signal, 1);
            let (again, again_waker) = counting();
            waiters[0].register(&signal, &again_waker);
            assert!(waiters[0].is_registered());
            turn(&signal, 1);
            assert_eq!((again.get(), counts(&count)), (1, vec![1, 0]));
        }

        #[test]
        fn close_wakes_every_waiter_once() {
            let signal = SpaceSignal::default();
            let (count, waiters) = waiting(&signal, 3);
            signal.wake_all();
            assert_eq!(counts(&count), [1, 1, 1]);
            assert!(waiters.iter().all(|waiter| !waiter.is_registered()));
            signal.wake_all();
            assert_eq!(counts(&count), [1, 1, 1], "a woken waiter is not woken again");
            drop(waiters);
            assert_eq!(listed(&signal), 0);
        }

        #[test]
        fn moving_to_another_mailbox_leaves_the_first_list_and_hands_a_wake_on() {
            let (first, second) = (SpaceSignal::default(), SpaceSignal::default());
            let (count, mut waiters) = waiting(&first, 2);
            turn(&first, 1);
            let (_, waker) = counting();
            waiters[0].register(&second, &waker);
            assert_eq!((listed(&first), listed(&second)), (1, 1));
            assert_eq!(counts(&count), [1, 1]);
        }
    }
}
