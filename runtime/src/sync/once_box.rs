//! A box published once, lock-free: the lazily allocated parts of a cell
//! (a mailbox lane's queue, the moved lane, the metrics block, the rarely
//! used state), which cost one null pointer until first used.
//!
//! # Protocol
//!
//! One word, `ptr`: null until a value is published, then the address of a
//! leaked `Box<T>` until the `OnceBox` is dropped. It is never changed again
//! once non-null.
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
        // SAFETY: (1) a non-null `ptr` came from `Box::into_raw` in
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
    /// thread publishes first.
    #[inline]
    pub(crate) fn get_or_init(&self, init: impl FnOnce() -> Box<T>) -> &T {
        match self.get() {
            Some(value) => value,
            None => self.publish(init()),
        }
    }

    #[cold]
    #[inline(never)]
    fn publish(&self, value: Box<T>) -> &T {
        let new = Box::into_raw(value);
        // AcqRel on success: the Release publishes the box's contents to
        // every Acquire load that sees `new`. Acquire on failure pairs with
        // the Release of the compare-exchange that published the winner.
        match self.ptr.compare_exchange(ptr::null_mut(), new, AcqRel, Acquire) {
            // SAFETY: `new` is the live box just leaked above and is now
            // owned by `self`: freed only by `Drop` (see `get`).
            Ok(_) => unsafe { &*new },
            Err(winner) => {
                // SAFETY: `new` came from `Box::into_raw` above and was
                // never published, so this thread still owns it alone.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: `winner` is non-null (the compare-exchange from
                // null failed), published by its successful
                // compare-exchange, whose Release this failure's Acquire
                // synchronizes with; freed only by `Drop` (see `get`).
                unsafe { &*winner }
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
        if !ptr.is_null() {
            // SAFETY: a non-null word is a box leaked by `publish` and owned
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
