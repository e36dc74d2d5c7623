//! Watching an address: one notice when the cell behind it stops for good.

use crate::ask::Reply;
use crate::cell::StopReason;
use crate::path::CellPath;
use crate::sync::{Mutex, OnceBox};

/// Delivered to watchers when a cell stops for good: not when it is
/// restarted, nor when it is replaced behind its address.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Terminated {
    /// The cell's path.
    pub path: CellPath,
    /// Why it stopped.
    pub reason: StopReason,
}

type Watcher = Box<dyn FnOnce(&Terminated) + Send>;

enum WatchState {
    Live(Vec<Watcher>),
    Ended(Terminated),
}

/// The watchers of one address. The state is allocated by the first
/// watcher or by the end, whichever comes first: an address nobody watches
/// pays a null pointer while its cell lives.
#[derive(Default)]
pub(crate) struct Watchers {
    state: OnceBox<Mutex<WatchState>>,
}

impl Watchers {
    /// The state, allocated now if this is its first use.
    fn state(&self) -> &Mutex<WatchState> {
        self.state.get_or_init(|| Box::new(Mutex::new(WatchState::Live(Vec::new()))))
    }

    /// Adds a watcher; called at once if the cell already stopped for good.
    pub(crate) fn add(&self, watcher: Watcher) {
        let mut state = self.state().lock();
        match &mut *state {
            WatchState::Live(watchers) => watchers.push(watcher),
            WatchState::Ended(terminated) => {
                let terminated = terminated.clone();
                drop(state);
                watcher(&terminated);
            }
        }
    }

    /// Adds a watcher that answers `reply`.
    pub(crate) fn add_reply(&self, reply: Reply<Terminated>) {
        self.add(Box::new(move |t| drop(reply.send(t.clone()))));
    }

    /// The cell stopped for good: every watcher is told, once.
    pub(crate) fn end(&self, terminated: Terminated) {
        let watchers = {
            let mut state = self.state().lock();
            match std::mem::replace(&mut *state, WatchState::Ended(terminated.clone())) {
                WatchState::Live(watchers) => watchers,
                WatchState::Ended(_) => Vec::new(),
            }
        };
        for watcher in watchers {
            watcher(&terminated);
        }
    }

    /// A new instance serves the address again (a fresh start behind it).
    pub(crate) fn revive(&self) {
        // No state yet: nothing ended, nobody watches.
        let Some(state) = self.state.get() else { return };
        let mut state = state.lock();
        if let WatchState::Ended(_) = &*state {
            *state = WatchState::Live(Vec::new());
        }
    }
}
