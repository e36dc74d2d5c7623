//! Which cell is sending: the path of the cell whose turn runs on this
//! thread, kept while faults are installed, for edge targets.
//!
//! The turn seam enters it (only when the registry is active, so an
//! inactive runtime pays nothing more than its one load per turn) and the
//! guard leaves it when the turn ends, however it ends.

use std::cell::RefCell;

use crate::path::CellPath;

thread_local! {
    static CURRENT: RefCell<Option<CellPath>> = const { RefCell::new(None) };
}

/// Marks this thread as running a turn of a cell until dropped.
#[must_use = "the sender is forgotten when the guard drops"]
pub(crate) struct SenderGuard(());

impl SenderGuard {
    pub(crate) fn enter(path: &CellPath) -> SenderGuard {
        CURRENT.with(|current| *current.borrow_mut() = Some(path.clone()));
        SenderGuard(())
    }
}

impl Drop for SenderGuard {
    fn drop(&mut self) {
        CURRENT.with(|current| current.borrow_mut().take());
    }
}

/// The cell whose turn runs on this thread, if one is marked.
pub(crate) fn current() -> Option<CellPath> {
    CURRENT.with(|current| current.borrow().clone())
}
