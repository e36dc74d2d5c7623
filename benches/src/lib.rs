//! Benchmarks live in `benches/`; this library holds what several of them
//! share.
//!
//! - [`CountingAlloc`]: the system allocator, counting the bytes currently
//!   allocated and the live blocks by size, for the figures criterion cannot
//!   measure (bytes per idle cell).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// The system allocator, counting the bytes currently allocated and the live
/// blocks by size. A bench installs it as its global allocator:
///
/// ```text
/// #[global_allocator]
/// static GLOBAL: cellrt_benches::CountingAlloc = cellrt_benches::CountingAlloc;
/// ```
///
/// Every allocation of the process pays two relaxed atomic adds.
#[derive(Debug)]
pub struct CountingAlloc;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

/// Largest allocation size tracked individually by [`live_by_size`].
pub const TRACKED_SIZES: usize = 4096;

/// Live allocations by exact size (the last bucket holds every larger one).
static LIVE_BY_SIZE: [AtomicIsize; TRACKED_SIZES + 1] = [const { AtomicIsize::new(0) }; TRACKED_SIZES + 1];

fn count(size: usize, delta: isize) {
    ALLOCATED.fetch_add(delta * size as isize, Relaxed);
    LIVE_BY_SIZE[size.min(TRACKED_SIZES)].fetch_add(delta, Relaxed);
}

/// Bytes currently allocated through [`CountingAlloc`].
pub fn allocated() -> isize {
    ALLOCATED.load(Relaxed)
}

/// Live blocks by exact size, index = size in bytes; the last entry counts
/// every block larger than [`TRACKED_SIZES`]. Compare two readings to see
/// what something is made of.
pub fn live_by_size() -> Vec<isize> {
    LIVE_BY_SIZE.iter().map(|n| n.load(Relaxed)).collect()
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counters have no effect on
// the memory handed out.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size(), 1);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s contract.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size(), 1);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is; `ptr` came from `System` with `layout`.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        new
    }
}
