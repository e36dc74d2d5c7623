//! How a child spec starts an instance: the type-erased starters behind
//! [`ChildSpec`], and the cell a declared supervisor runs as.

use std::any::{Any, TypeId};

use crate::address::Addr;
use crate::cell::SpawnError;
use crate::cell::{Cell, CellError, Context};
use crate::sync::{Arc, Mutex};

use super::child::{ChildRequest, Origin, SpawnChild, SupervisedCell};
use super::node::{Node, NodeSeed};
use super::spec::{ChildSpec, Factory, Make, SpecError, SupervisorSpec};

/// The name a child takes under its parent.
pub(crate) enum ChildName {
    Named(String),
    /// `#<id>`: pool children and unnamed spawns.
    Numbered,
    /// A whole path, for a top-level cell placed beside another (the cells
    /// recomposition adds under a managed cell's path).
    At(crate::path::CellPath),
}

/// Where a child starts.
pub(crate) struct ChildPlacement<'a> {
    pub(crate) parent: &'a Arc<Node>,
    pub(crate) name: ChildName,
    /// An address the new instance takes over (a fresh start of a child
    /// whose previous instance terminated).
    pub(crate) existing: Option<&'a Arc<dyn Any + Send + Sync>>,
}

/// A spawned child, not yet begun: the caller records it, then calls
/// `handle.begin()`, so that its first report finds the record.
#[derive(Clone)]
pub(crate) struct StartedChild {
    pub(crate) handle: Arc<dyn SupervisedCell>,
    /// The child's `Addr<M>`.
    pub(crate) addr: Arc<dyn Any + Send + Sync>,
}

/// Starts instances of one child spec.
pub(crate) trait StartChild: Send + Sync + 'static {
    /// The cell type, for debugging.
    fn kind(&self) -> &'static str;
    /// Whether the child is a declared supervisor.
    fn is_supervisor(&self) -> bool;
    /// The message type the cell handles, and its name.
    fn message_type(&self) -> (TypeId, &'static str);
    /// Checks what the spec nests (a supervisor's own spec).
    fn validate(&self) -> Result<(), SpecError> {
        Ok(())
    }
    /// Spawns an instance (not begun).
    fn start(&self, spec: &ChildSpec, placement: ChildPlacement<'_>) -> Result<StartedChild, SpawnError>;
}

/// Starts a worker cell from its factory.
pub(crate) struct CellStarter<C: Cell> {
    factory: Factory<C>,
    #[cfg(feature = "storage")]
    persist: Option<Arc<dyn crate::store::durable::Persist<C>>>,
}

impl<C: Cell> CellStarter<C> {
    pub(crate) fn new(make: Make<C>) -> Self {
        CellStarter {
            factory: Arc::new(Mutex::new(make)),
            #[cfg(feature = "storage")]
            persist: None,
        }
    }
}

impl<C: Cell> CellStarter<C> {
    /// The origin of a durable child, if this spec is one.
    fn persist_origin(&self) -> Option<Origin<C>> {
        #[cfg(feature = "storage")]
        if let Some(persist) = &self.persist {
            return Some(Origin::Durable(self.factory.clone(), persist.clone()));
        }
        None
    }
}

#[cfg(feature = "storage")]
impl<C: crate::store::Durable> CellStarter<C> {
    pub(crate) fn durable(make: Make<C>, durability: crate::store::Durability) -> Self {
        CellStarter {
            factory: Arc::new(Mutex::new(make)),
            persist: Some(Arc::new(crate::store::durable::DurableState::<C>::new(durability))),
        }
    }
}

fn spawn_child<C: Cell>(
    spec: &ChildSpec,
    placement: ChildPlacement<'_>,
    origin: Origin<C>,
    seed: Option<NodeSeed>,
) -> Result<StartedChild, SpawnError> {
    let existing = placement.existing.and_then(|a| a.downcast_ref::<Addr<C::Message>>()).cloned();
    let (addr, handle) = C::spawn_child(ChildRequest {
        parent: placement.parent,
        name: placement.name,
        config: spec.config.clone(),
        origin,
        supervised: spec.supervised(),
        seed,
        existing,
    })?;
    Ok(StartedChild { handle, addr: Arc::new(addr) })
}

impl<C: Cell> StartChild for CellStarter<C> {
    fn kind(&self) -> &'static str {
        std::any::type_name::<C>()
    }

    fn message_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<C::Message>(), std::any::type_name::<C::Message>())
    }

    fn is_supervisor(&self) -> bool {
        false
    }

    fn start(&self, spec: &ChildSpec, placement: ChildPlacement<'_>) -> Result<StartedChild, SpawnError> {
        let origin = self.persist_origin().unwrap_or_else(|| Origin::Factory(self.factory.clone()));
        spawn_child(spec, placement, origin, None)
    }
}

/// Starts a declared supervisor.
pub(crate) struct SupervisorStarter {
    spec: SupervisorSpec,
}

impl SupervisorStarter {
    pub(crate) fn new(spec: SupervisorSpec) -> Self {
        SupervisorStarter { spec }
    }
}

impl StartChild for SupervisorStarter {
    fn kind(&self) -> &'static str {
        std::any::type_name::<SupervisorCell>()
    }

    fn message_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<SupervisorMsg>(), std::any::type_name::<SupervisorMsg>())
    }

    fn is_supervisor(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), SpecError> {
        self.spec.validate()
    }

    fn start(&self, spec: &ChildSpec, placement: ChildPlacement<'_>) -> Result<StartedChild, SpawnError> {
        let factory: Factory<SupervisorCell> = Arc::new(Mutex::new(Box::new(|_: &_| SupervisorCell)));
        let seed = NodeSeed {
            flags: self.spec.flags,
            statics: self.spec.children.clone(),
            template: self.spec.template.clone(),
        };
        spawn_child(spec, placement, Origin::Factory(factory), Some(seed))
    }
}

/// The spec of a child spawned from a value (`Context::spawn`): temporary,
/// never restarted, so never started again.
pub(crate) struct ValueStarter {
    kind: &'static str,
}

impl StartChild for ValueStarter {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn message_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<()>(), "(spawned from a value)")
    }

    fn is_supervisor(&self) -> bool {
        false
    }

    fn start(&self, _: &ChildSpec, placement: ChildPlacement<'_>) -> Result<StartedChild, SpawnError> {
        Err(SpawnError::NotRestartable { path: placement.parent.path().clone() })
    }
}

impl ChildSpec {
    /// The record of a child spawned from a value.
    pub(crate) fn temporary_marker(id: &str, kind: &'static str) -> ChildSpec {
        ChildSpec::from_starter(id.to_owned(), Arc::new(ValueStarter { kind }))
            .restart(super::spec::Restart::Temporary)
    }
}

/// Never sent: a supervisor handles no user message.
#[derive(Debug)]
pub enum SupervisorMsg {}

/// The cell a declared supervisor runs as. Its behaviour is its node's.
pub(crate) struct SupervisorCell;

impl Cell for SupervisorCell {
    type Message = SupervisorMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: SupervisorMsg) -> Result<(), CellError> {
        match msg {}
    }
}
