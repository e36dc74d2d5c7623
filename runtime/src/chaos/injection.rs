//! [`Injection`]: the handle on a set of installed faults, which removes
//! them when dropped.

use std::fmt;

use super::registry::{Armed, FaultCount, InjectionRecord};
use crate::runtime::RuntimeShared;
use crate::sync::{Arc, Weak};

/// Faults installed by [`Runtime::inject`](crate::Runtime::inject).
///
/// The faults act until [`remove`](Injection::remove) is called or the
/// handle is dropped (whichever way the scope is left, a panic included),
/// or the runtime shuts down. The log and counts stay readable after
/// removal.
#[must_use = "dropping the handle removes the faults at once"]
pub struct Injection {
    runtime: Weak<RuntimeShared>,
    armed: Arc<Armed>,
}

impl Injection {
    pub(crate) fn new(runtime: Weak<RuntimeShared>, armed: Arc<Armed>) -> Self {
        Injection { runtime, armed }
    }

    /// Every injection so far, in the order made (the first 65,536).
    pub fn log(&self) -> Vec<InjectionRecord> {
        self.armed.log()
    }

    /// Per fault, in set order: its seed, the messages it matched and
    /// those it hit.
    pub fn counts(&self) -> Vec<FaultCount> {
        self.armed.counts()
    }

    /// Whether the faults are still installed: not removed, and the
    /// runtime not shut down.
    pub fn is_active(&self) -> bool {
        self.runtime.upgrade().is_some_and(|runtime| runtime.chaos().contains(&self.armed))
    }

    /// Removes the faults now (no message handled or sent after this
    /// returns is hit) and returns the final counts.
    pub fn remove(self) -> Vec<FaultCount> {
        self.detach();
        self.armed.counts()
    }

    fn detach(&self) {
        if let Some(runtime) = self.runtime.upgrade() {
            if runtime.chaos().remove(&self.armed) {
                let what = format!("chaos: removed {} fault(s)", self.armed.len());
                runtime.journal_chaos(crate::observe::journal::SignalKind::Chaos {
                    experiment: String::new(),
                    what,
                });
            }
        }
    }
}

impl Drop for Injection {
    fn drop(&mut self) {
        self.detach();
    }
}

impl fmt::Debug for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injection").field("counts", &self.armed.counts()).finish()
    }
}
