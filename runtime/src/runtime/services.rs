//! What the runtime provides to supervision: the [`Services`] a node uses,
//! and [`SpawnChild`] for every cell type. Supervision defines both
//! interfaces (`supervise/child.rs`); this is their one implementation.

use std::any::Any;
use std::time::Duration;

use crate::cell::{Cell, SpawnError};
use crate::path::CellPath;
use crate::supervise::{ChildRequest, Node, NodeLink, Services, SpawnChild, SpawnedChild, SupervisedCell};
use crate::sync::Arc;
use crate::timer::TimerHandle;

use super::{CellControl, RuntimeShared, SpawnRequest};

impl Services for RuntimeShared {
    fn cell(&self, id: u64) -> Option<Arc<dyn SupervisedCell>> {
        self.control_of(id).map(CellControl::as_supervised)
    }

    fn is_shutting_down(&self) -> bool {
        RuntimeShared::is_shutting_down(self)
    }

    fn call_after(&self, delay: Duration, action: Box<dyn FnOnce() + Send>) -> TimerHandle {
        let mut action = Some(action);
        self.timers().call_after(delay, move || {
            if let Some(action) = action.take() {
                action();
            }
            None
        })
    }

    fn count_undelivered(&self, path: &CellPath, messages: usize) {
        RuntimeShared::count_undelivered(self, path, messages);
    }

    fn as_any(self: Arc<Self>) -> Arc<dyn Any + Send + Sync> {
        self
    }
}

impl RuntimeShared {
    /// The runtime a supervision node belongs to. `None` only if the node
    /// was built on other services, which the runtime never does.
    pub(crate) fn of(node: &Node) -> Option<Arc<RuntimeShared>> {
        node.services().clone().as_any().downcast::<RuntimeShared>().ok()
    }
}

impl<C: Cell> SpawnChild for C {
    fn spawn_child(request: ChildRequest<'_, Self>) -> Result<SpawnedChild<Self>, SpawnError> {
        let runtime = RuntimeShared::of(request.parent).ok_or(SpawnError::ShutDown)?;
        let parent: Arc<dyn NodeLink> = request.parent.clone();
        let (addr, instance) = runtime.spawn_instance(SpawnRequest {
            parent: Some(&parent),
            name: request.name,
            config: request.config,
            origin: request.origin,
            supervised: Some(request.supervised),
            existing: request.existing,
        })?;
        if let Some(seed) = request.seed {
            instance.seed_node(seed);
        }
        Ok((addr, instance))
    }
}
