//! Model of a box published once (`OnceBox::get_or_init` and
//! `OnceBox::get` in `runtime/src/sync/once_box.rs`), as the lazily
//! allocated parts of a cell use it: racing first users, and readers that
//! only look.
//!
//! Properties:
//!
//! - racing initializers publish exactly one box: every caller is handed
//!   the same box, holding the value its one publisher wrote;
//! - a reader handed the box sees what the initializer wrote into it
//!   before publishing (loom reports the read as a data race otherwise);
//! - a reader that looks before any publication sees nothing, never a box
//!   in the making;
//! - a seal racing a first user: either the seal came first (nothing is
//!   published, then or later) or the publication did (the seal is handed
//!   that box, whole); never both, never a box published after the seal.
//!
//! Planted bugs this model catches (each made a test fail, then was removed):
//!
//! - publishing with a load-then-store instead of a compare-exchange: both
//!   initializers publish, and the two callers are handed different boxes
//!   (`racing_first_users_share_one_box`);
//! - a Relaxed publishing compare-exchange (or a Relaxed load in `get`):
//!   the reader is handed the box without synchronizing with the
//!   initializer's write, which loom reports as a causality violation
//!   (`a_reader_sees_what_the_initializer_wrote`);
//! - a seal that swaps `SEALED` in instead of a compare-exchange from null:
//!   it replaces a box published first, which then no longer reads back
//!   (`a_seal_racing_a_first_user_comes_before_or_after_it`).
#![cfg(cellrt_loom)]

use cellrt::loom_api::ModelOnceBox;
use loom::sync::Arc;
use loom::thread;

#[test]
fn racing_first_users_share_one_box() {
    cellrt_loom_tests::check(3, || {
        let once = Arc::new(ModelOnceBox::new());
        let other = {
            let once = once.clone();
            thread::spawn(move || once.get_or_init(2))
        };
        let mine = once.get_or_init(1);
        let theirs = other.join().unwrap();
        assert_eq!(mine, theirs, "both callers are handed the same box");
        assert!(mine.0 == 1 || mine.0 == 2, "holding what its one publisher wrote");
        assert!((1..=2).contains(&once.built()));
        assert_eq!(once.get(), Some(mine));
    });
}

#[test]
fn a_reader_sees_what_the_initializer_wrote() {
    cellrt_loom_tests::check(3, || {
        let once = Arc::new(ModelOnceBox::new());
        let reader = {
            let once = once.clone();
            thread::spawn(move || once.get())
        };
        let published = once.get_or_init(7);
        match reader.join().unwrap() {
            None => {}
            Some(seen) => assert_eq!(seen, published, "a reader sees the published box whole"),
        }
        assert_eq!(once.built(), 1, "no one else initialized");
    });
}

#[test]
fn a_seal_racing_a_first_user_comes_before_or_after_it() {
    cellrt_loom_tests::check(3, || {
        let once = Arc::new(ModelOnceBox::new());
        let user = {
            let once = once.clone();
            thread::spawn(move || once.try_get_or_init(5))
        };
        let sealed = once.seal();
        let used = user.join().unwrap();
        match (sealed, used) {
            (None, None) => assert_eq!(once.get(), None, "sealed first: nothing published"),
            (Some(box_at_seal), Some(box_used)) => {
                assert_eq!(box_at_seal, box_used, "published first: the seal is handed that box");
                assert_eq!(box_at_seal.0, 5);
                assert_eq!(once.get(), Some(box_at_seal), "the box published first stays");
            }
            (sealed, used) => panic!("seal saw {sealed:?}, the user {used:?}"),
        }
        assert_eq!(once.try_get_or_init(6), once.get(), "nothing is published after the seal");
        assert_eq!(once.seal(), once.get(), "a second seal changes nothing");
    });
}
