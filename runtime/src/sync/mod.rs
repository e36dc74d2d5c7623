//! The synchronization primitives every other module uses.
//!
//! This is the only module of the crate that names atomics, locks, condition
//! variables or threads. It selects one of two sibling backends and re-exports
//! it, so the protocol code above it is the same in every build:
//!
//! - `std.rs`: the real primitives (`parking_lot` locks when that feature is on,
//!   `std::sync` otherwise; crossbeam-channel for mailbox queues);
//! - `loom.rs`: loom's model-checked primitives, selected by
//!   `RUSTFLAGS="--cfg cellrt_loom"`. loom cannot see inside crossbeam-channel,
//!   so under loom a mailbox queue is a loom `Mutex<VecDeque>` with the same
//!   bounded contract.
//!
//! Both backends export the same names with the same signatures: `Arc`,
//! `Mutex`/`MutexGuard` (no poisoning: `lock()` always returns the guard),
//! `RwLock`, `Condvar`, `atomic::*`, `thread`, `spin_loop` and `MailboxQueue`.
//! The loom switch is a test harness hook, not part of the public API.

#[cfg(not(cellrt_loom))]
mod std;
#[cfg(not(cellrt_loom))]
pub(crate) use self::std::*;

#[cfg(cellrt_loom)]
mod loom;
#[cfg(cellrt_loom)]
pub(crate) use self::loom::*;
