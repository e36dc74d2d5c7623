//! A box published once, lock-free: the lazily allocated parts of a cell
//! (a mailbox lane's queue, the moved lane, the metrics block, the rarely
//! used state), which cost one null pointer until first used.
//!
//! # Protocol
//!
//! One word, `ptr`: null until a value is published, then the address of a
//! leaked `Box<T>` until the `OnceBox` is dropped; or `SEALED` (an address
//! no box has) when [`seal`](OnceBox::seal) came first: nothing is ever
//! published then. It is never changed again once non-null.
//!
//! - [`get`](OnceBox::get) loads the word with Acquire, which pairs with the
//!   Release of the publishing compare-exchange: a reader that sees the
//!   pointer sees the value written through it before it was published.
//! - [`get_or_init`](OnceBox::get_or_init) builds a box when the word is
//!   null, then publishes it with a compare-exchange from null (AcqRel on
//!   success: Release publishes the value, Acquire is for symmetry with the
//!   failure case). When another thread published first, the
//!   compare-exchange fails with Acquire (pairing with that thread's
//!   Release), the box built here is dropped, and the winner's value is
//!   returned. So every caller sees one value, built by one initializer.
//! - [`seal`](OnceBox::seal) makes sure nothing is published from then on:
//!   a compare-exchange from null to `SEALED`, or, when a box was published
//!   first, that box (failure with Acquire, as above). A sealed box's
//!   [`get`](OnceBox::get) is `None` and its
//!   [`try_get_or_init`](OnceBox::try_get_or_init) publishes nothing. What
//!   seals is what a closed mailbox lane that never held a message needs:
//!   being closed without allocating what it never used.
//! - `Drop` (exclusive access) frees the published box, if any.
//!
//! Initializers may race: two threads can each build a box, and one is
//! dropped unused. Nothing here is suitable for an initializer with side
//! effects beyond its value.
//!
//! The loom model `loom-tests/tests/sync_once_box.rs` checks the protocol.

use std::fmt;
use std::marker::PhantomData;
use std::ptr;

use super::atomic::{AtomicPtr, Ordering::*};

/// The word of a sealed `OnceBox`: an address no allocation has (a box's
/// address is aligned and below the top of the address space).
fn sealed<T>() -> *mut T {
    ptr::without_provenance_mut(usize::MAX)
}

/// A `Box<T>` allocated and published by its first user (see the module
/// docs): an 8-byte `OnceLock<Box<T>>`.
pub(crate) struct OnceBox<T> {
    ptr: AtomicPtr<T>,
    /// The auto traits of a `OnceLock<T>`: sendable when `T` is, shared
    /// across threads when `T` is both `Send` (the value is dropped where
    /// the last owner is) and `Sync` (every thread reads it).
    _owns: PhantomData<std::sync::OnceLock<Box<T>>>,
}

impl<T> OnceBox<T> {
    /// Nothing published yet.
    pub(crate) fn new() -> Self {
        OnceBox { ptr: AtomicPtr::new(ptr::null_mut()), _owns: PhantomData }
    }

    /// The published value, if any.
    #[inline]
    pub(crate) fn get(&self) -> Option<&T> {
        // Acquire pairs with the Release of the publishing compare-exchange.
        let ptr = self.ptr.load(Acquire);
        if ptr == sealed() {
            return None;
        }
        // SAFETY: (1) a non-null `ptr` other than `SEALED` came from `Box::into_raw` in
        // `publish` and was stored by its successful compare-exchange, whose
        // Release this Acquire load synchronizes with, so the box's contents
        // are initialized and visible here; (2) it is freed only by `Drop`,
        // which needs `&mut self`, so it outlives the `&self` borrow the
        // returned reference is tied to; (3) no `&mut T` to it is ever made
        // while `self` is shared.
        unsafe { ptr.as_ref() }
    }

    /// The published value, built by `init` and published first if there
    /// is none. `init` may run and its box be dropped unused if another
    /// thread publishes first. For a box that is never sealed.
    #[inline]
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> Box<T>) -> &T {
        match self.try_get_or_init(init) {
            Some(value) => value,
            None => unreachable!("a sealed OnceBox is only read with `get` and `try_get_or_init`"),
        }
    }

    /// As [`get_or_init`](OnceBox::get_or_init), or `None` when the box
    /// was sealed before anything was published.
    #[inline]
    pub(crate) fn try_get_or_init(&self, init: impl FnOnce() -> Box<T>) -> Option<&T> {
        let ptr = self.ptr.load(Acquire);
        if ptr.is_null() {
            return self.publish(init());
        }
        // SAFETY: as in `get`: published (or `SEALED`, checked here), and
        // seen through an Acquire load.
        (ptr != sealed()).then(|| unsafe { &*ptr })
    }

    /// Seals the box: nothing is published from now on. Returns the value
    /// published before, if one was (it stays).
    pub(crate) fn seal(&self) -> Option<&T> {
        // AcqRel on success, for symmetry with `publish`; Acquire on failure
        // pairs with the Release of the compare-exchange that published.
        match self.ptr.compare_exchange(ptr::null_mut(), sealed(), AcqRel, Acquire) {
            Ok(_) => None,
            Err(current) if current == sealed() => None,
            // SAFETY: `current` is neither null nor `SEALED`: a box
            // published by its successful compare-exchange, whose Release
            // this failure's Acquire synchronizes with; freed only by
            // `Drop` (see `get`).
            Err(current) => Some(unsafe { &*current }),
        }
    }

    #[cold]
    #[inline(never)]
    fn publish(&self, value: Box<T>) -> Option<&T> {
        let new = Box::into_raw(value);
        // AcqRel on success: the Release publishes the box's contents to
        // every Acquire load that sees `new`. Acquire on failure pairs with
        // the Release of the compare-exchange that published the winner.
        match self.ptr.compare_exchange(ptr::null_mut(), new, AcqRel, Acquire) {
            // SAFETY: `new` is the live box just leaked above and is now
            // owned by `self`: freed only by `Drop` (see `get`).
            Ok(_) => Some(unsafe { &*new }),
            Err(winner) => {
                // SAFETY: `new` came from `Box::into_raw` above and was
                // never published, so this thread still owns it alone.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `winner` is non-null (the compare-exchange from
                // null failed) and, unless `SEALED`, published by its
                // successful compare-exchange, whose Release this failure's
                // Acquire synchronizes with; freed only by `Drop` (see `get`).
                (winner != sealed()).then(|| unsafe { &*winner })
            }
        }
    }
}

impl<T> Default for OnceBox<T> {
    fn default() -> Self {
        OnceBox::new()
    }
}

impl<T> Drop for OnceBox<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread can publish or read any more; the
        // Acquire load sees the last publication.
        let ptr = self.ptr.load(Acquire);
        if !ptr.is_null() && ptr != sealed() {
            // SAFETY: a word neither null nor `SEALED` is a box leaked by `publish` and owned
            // by `self`; it is freed here once, with exclusive access, and
            // no reference returned by `get` outlives `&self`.
            drop(unsafe { Box::from_raw(ptr) });
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for OnceBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.get() {
            Some(value) => f.debug_tuple("OnceBox").field(value).finish(),
            None if self.ptr.load(Acquire) == sealed() => f.write_str("OnceBox(<sealed>)"),
            None => f.write_str("OnceBox(<unset>)"),
        }
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_first_initializer_wins_and_later_ones_do_not_run() {
        let once = OnceBox::new();
        assert_eq!(once.get(), None);
        assert_eq!(*once.get_or_init(|| Box::new(1)), 1);
        assert_eq!(*once.get_or_init(|| unreachable!("already published")), 1);
        assert_eq!(once.get(), Some(&1));
    }

    #[test]
    fn a_box_sealed_unused_stays_empty_and_runs_no_initializer() {
        let once: OnceBox<u32> = OnceBox::new();
        assert_eq!(once.seal(), None);
        assert_eq!(once.try_get_or_init(|| unreachable!("sealed")), None);
        assert_eq!(once.get(), None);
        assert_eq!(once.seal(), None, "sealing twice changes nothing");
        assert_eq!(format!("{once:?}"), "OnceBox(<sealed>)");
    }

    #[test]
    fn sealing_a_published_box_hands_it_back_and_keeps_it() {
        let value = std::sync::Arc::new(7);
        let once = OnceBox::new();
        assert_eq!(once.try_get_or_init(|| Box::new(value.clone())).map(|v| **v), Some(7));
        assert_eq!(once.seal().map(|v| **v), Some(7));
        assert_eq!(once.get().map(|v| **v), Some(7));
        assert_eq!(once.try_get_or_init(|| unreachable!("published")).map(|v| **v), Some(7));
        drop(once);
        assert_eq!(std::sync::Arc::strong_count(&value), 1, "the published box is dropped with it");
    }

    #[test]
    fn racing_initializers_publish_one_value_and_drop_the_other() {
        let built = std::sync::Arc::new(());
        let once = OnceBox::new();
        let seen: Vec<usize> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    let (once, built) = (&once, &built);
                    s.spawn(move || once.get_or_init(|| Box::new(built.clone())) as *const _ as usize)
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(seen.windows(2).all(|w| w[0] == w[1]), "every caller sees the same box");
        assert_eq!(std::sync::Arc::strong_count(&built), 2, "the losers' boxes were dropped");
        drop(once);
        assert_eq!(std::sync::Arc::strong_count(&built), 1, "the published box is dropped with it");
    }
}
