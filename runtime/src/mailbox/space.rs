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
/// worker that frees slots wakes them all.
///
/// Protocol (with `SPACE_WAITERS` in the cell's state word, see
/// `dispatch/state.rs`): a sender takes this lock, sets the flag with a
/// read-modify-write, looks at the queue, and sleeps only if it is still
/// full. A worker pops during its turn, then ends the turn with a
/// read-modify-write that clears the flag; if the flag was set, it takes this
/// lock and wakes every sleeper. The two RMWs are on one word, so one sees the
/// other: either the sender sees the freed slots or the worker sees the flag.
/// The lock makes "look, then sleep" atomic against "wake". The worker's
/// common path (no sleeper) costs nothing beyond the RMW it does anyway. The
/// loom model `loom-tests/tests/mailbox_space.rs` checks this.
///
/// An async sender follows the same protocol with its waker in place of the
/// sleep: it puts the waker in the list *before* its RMW sets the flag, then
/// looks at the queue, and returns `Pending` only if it is still full. A
/// worker whose turn-ending RMW comes later in the word's order sees the
/// flag and finds the waker in the list; one that came earlier is seen by
/// the sender's RMW (Acquire), and so are its pops. Every waker is woken, so
/// a future dropped after its wake-up takes no other sender's turn. The loom
/// model `loom-tests/tests/mailbox_space_async.rs` checks this.
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

    /// Wakes every sleeper and every waiting task. The caller has just made
    /// its RMW on the cell's state word (see above).
    pub(crate) fn wake(&self) {
        // With the caller's RMW, synchronizes with the RMW of every sender
        // earlier in the word's order, so what it published is seen here.
        fence(Acquire);
        let Some(signal) = self.inner.get() else { return };
        let guard = signal.lock.lock();
        signal.cond.notify_all();
        #[cfg(any(feature = "tokio", cellrt_loom))]
        {
            let wakers = guard.clone();
            drop(guard);
            // Outside the lock: a waker may run arbitrary scheduler code.
            if let Some(wakers) = wakers {
                wakers.wake_all();
            }
        }
        #[cfg(not(any(feature = "tokio", cellrt_loom)))]
        drop(guard);
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
    ///
    /// `wake_all` empties the list and starts a new *round*; a registration
    /// names its round and its key, so one made in an earlier round never
    /// removes the entry another future got under the same key since.
    #[derive(Debug, Default)]
    pub(crate) struct SpaceWakers {
        list: Mutex<Round>,
    }

    #[derive(Debug, Default)]
    struct Round {
        /// Counts `wake_all` calls; never goes back.
        number: u64,
        wakers: Slab<Waker>,
    }

    impl SpaceWakers {
        /// Wakes every waiting task and empties the list.
        pub(crate) fn wake_all(&self) {
            let woken = {
                let mut round = self.list.lock();
                round.number += 1;
                std::mem::take(&mut round.wakers)
            };
            for (_, waker) in woken {
                waker.wake();
            }
        }
    }

    /// A waiting future's place in a mailbox's list of wakers; removed when
    /// the future cancels, completes or is dropped.
    #[derive(Debug, Default)]
    pub(crate) struct SpaceWaiter {
        entry: Option<Entry>,
    }

    #[derive(Debug)]
    struct Entry {
        wakers: Arc<SpaceWakers>,
        round: u64,
        key: usize,
    }

    impl SpaceWaiter {
        /// Puts `waker` in `signal`'s list (allocating the list for the
        /// first async sender of the mailbox), in place of this waiter's
        /// earlier entry, if any.
        pub(crate) fn register(&mut self, signal: &SpaceSignal, waker: &Waker) {
            let wakers = signal.lock().get_or_insert_with(Arc::default).clone();
            if let Some(entry) = &self.entry {
                if Arc::ptr_eq(&entry.wakers, &wakers) {
                    let mut round = wakers.list.lock();
                    if round.number == entry.round {
                        if let Some(old) = round.wakers.get_mut(entry.key) {
                            old.clone_from(waker);
                            return;
                        }
                    }
                }
            }
            self.cancel();
            let mut round = wakers.list.lock();
            let key = round.wakers.insert(waker.clone());
            let number = round.number;
            drop(round);
            self.entry = Some(Entry { wakers, round: number, key });
        }

        /// Takes this waiter's waker out of the list, unless a wake-up
        /// already took it.
        pub(crate) fn cancel(&mut self) {
            let Some(entry) = self.entry.take() else { return };
            let mut round = entry.wakers.list.lock();
            if round.number == entry.round {
                round.wakers.try_remove(entry.key);
            }
        }

        /// Whether this waiter's waker is in a list (it was registered and
        /// neither woken nor cancelled since).
        #[cfg(test)]
        pub(crate) fn is_registered(&self) -> bool {
            self.entry.as_ref().is_some_and(|entry| {
                let round = entry.wakers.list.lock();
                round.number == entry.round && round.wakers.contains(entry.key)
            })
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

        fn counting() -> (std::sync::Arc<Count>, Waker) {
            let count = std::sync::Arc::new(Count::default());
            (count.clone(), Waker::from(count))
        }

        fn listed(signal: &SpaceSignal) -> usize {
            signal.lock().as_ref().map_or(0, |wakers| wakers.list.lock().wakers.len())
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
            signal.wake();
            assert_eq!((first.0.load(Ordering::SeqCst), second.0.load(Ordering::SeqCst)), (0, 1));
        }

        #[test]
        fn wake_wakes_every_waiter_once_and_empties_the_list() {
            let signal = SpaceSignal::default();
            let (count, waker) = counting();
            let mut waiters: Vec<SpaceWaiter> = (0..3).map(|_| SpaceWaiter::default()).collect();
            for waiter in &mut waiters {
                waiter.register(&signal, &waker);
            }
            signal.wake();
            assert_eq!(count.0.load(Ordering::SeqCst), 3);
            assert_eq!(listed(&signal), 0);
            assert!(waiters.iter().all(|waiter| !waiter.is_registered()));
            signal.wake();
            assert_eq!(count.0.load(Ordering::SeqCst), 3, "a woken waiter is not woken again");
        }

        #[test]
        fn a_dropped_waiter_leaves_no_entry() {
            let signal = SpaceSignal::default();
            let (count, waker) = counting();
            let mut waiter = SpaceWaiter::default();
            waiter.register(&signal, &waker);
            drop(waiter);
            assert_eq!(listed(&signal), 0);
            signal.wake();
            assert_eq!(count.0.load(Ordering::SeqCst), 0);
        }

        #[test]
        fn a_stale_waiter_does_not_remove_the_entry_that_reused_its_key() {
            let signal = SpaceSignal::default();
            let (count, waker) = counting();
            let mut stale = SpaceWaiter::default();
            stale.register(&signal, &waker);
            signal.wake();
            // The next round hands out the same slab key again.
            let mut fresh = SpaceWaiter::default();
            fresh.register(&signal, &waker);
            drop(stale);
            assert!(fresh.is_registered());
            signal.wake();
            assert_eq!(count.0.load(Ordering::SeqCst), 2);
        }

        #[test]
        fn moving_to_another_mailbox_leaves_the_first_list() {
            let (first, second) = (SpaceSignal::default(), SpaceSignal::default());
            let (_, waker) = counting();
            let mut waiter = SpaceWaiter::default();
            waiter.register(&first, &waker);
            waiter.register(&second, &waker);
            assert_eq!((listed(&first), listed(&second)), (0, 1));
        }
    }
}
