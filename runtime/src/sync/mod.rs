//! The synchronization primitives every other module uses.
//!
//! This is the only module of the crate that names atomics, locks, condition
//! variables or threads. It selects one of two sibling backends and re-exports
//! it, so the protocol code above it is the same in every build:
//!
//! - `std.rs`: the real primitives (`parking_lot` locks when that feature is on,
//!   `std::sync` otherwise; crossbeam-queue's `SegQueue` for mailbox lanes);
//! - `loom.rs`: loom's model-checked primitives, selected by
//!   `RUSTFLAGS="--cfg cellrt_loom"`. loom cannot see inside crossbeam-queue,
//!   so under loom a `SegQueue` is a loom `Mutex<VecDeque>` with the same
//!   interface; the admission count that bounds a lane
//!   (`mailbox/bounded.rs`) is the real code in both.
//!
//! Both backends export the same names with the same signatures: `Arc`,
//! `Mutex`/`MutexGuard` (no poisoning: `lock()` always returns the guard),
//! `RwLock`, `Condvar`, `atomic::*`, `cell::UnsafeCell` (with loom's
//! `with`/`with_mut` interface), `thread` (parking included), `thread_local!`
//! (for per-thread state a protocol relies on; its initializer a
//! `const { .. }` block), `spin_loop`,
//! `spin_until`, `yield_until`, `Backoff` and `SegQueue`.
//!
//! Beside them, `once_box.rs` builds [`OnceBox`] on the backend's atomics:
//! a box published once with a compare-exchange, the same code in both
//! builds, so the models check it too.
//!
//! The loom switch is a test harness hook, not part of the public API.

#[cfg(not(cellrt_loom))]
mod std;
#[cfg(not(cellrt_loom))]
pub(crate) use self::std::*;

#[cfg(cellrt_loom)]
mod loom;
#[cfg(cellrt_loom)]
pub(crate) use self::loom::*;

mod once_box;
pub(crate) use self::once_box::OnceBox;
