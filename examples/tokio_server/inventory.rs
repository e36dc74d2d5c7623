//! The inventory: a supervisor `/inventory` over four `Shelf` cells, each
//! keeping the stock of the items that hash to it. An item always goes to
//! the same shelf, so its stock lives in one cell and its reservations
//! never race.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use cellrt::{Addr, Cell, CellError, ChildSpec, Context, Reply, Runtime, StartError, SupervisorSpec};

/// How many shelves share the items.
pub(crate) const SHELVES: usize = 4;

/// What a shelf is asked.
pub(crate) enum ShelfMsg {
    /// How many of `item` are in stock.
    Level { item: String, reply: Reply<u32> },
    /// Adds `quantity` of `item`; answers the new level.
    Restock { item: String, quantity: u32, reply: Reply<u32> },
    /// Takes `quantity` of `item` if there are that many; answers what is
    /// left, or the shortage.
    Reserve { item: String, quantity: u32, reply: Reply<Result<u32, Shortage>> },
}

/// A reservation of more than the stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shortage {
    pub(crate) wanted: u32,
    pub(crate) left: u32,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} wanted, {} left", self.wanted, self.left)
    }
}

/// The stock of the items that hash to one shelf.
#[derive(Default)]
pub(crate) struct Shelf {
    stock: HashMap<String, u32>,
}

impl Cell for Shelf {
    type Message = ShelfMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: ShelfMsg) -> Result<(), CellError> {
        // A caller that gave up leaves its reply unread: nothing to do then.
        match msg {
            ShelfMsg::Level { item, reply } => {
                let _ = reply.send(self.stock.get(&item).copied().unwrap_or(0));
            }
            ShelfMsg::Restock { item, quantity, reply } => {
                let level = self.stock.entry(item).or_insert(0);
                *level = level.saturating_add(quantity);
                let _ = reply.send(*level);
            }
            ShelfMsg::Reserve { item, quantity, reply } => {
                let level = self.stock.entry(item).or_insert(0);
                let answer = match level.checked_sub(quantity) {
                    Some(left) => {
                        *level = left;
                        Ok(left)
                    }
                    None => Err(Shortage { wanted: quantity, left: *level }),
                };
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    fn message_kind(msg: &ShelfMsg) -> &'static str {
        match msg {
            ShelfMsg::Level { .. } => "level",
            ShelfMsg::Restock { .. } => "restock",
            ShelfMsg::Reserve { .. } => "reserve",
        }
    }
}

/// The shelves' addresses; cheap to clone into every request handler.
#[derive(Clone)]
pub(crate) struct Inventory {
    shelves: Vec<Addr<ShelfMsg>>,
}

impl Inventory {
    /// Starts `/inventory` and its shelves on `runtime`.
    pub(crate) fn start(runtime: &Runtime) -> Result<Inventory, StartError> {
        let mut spec = SupervisorSpec::new("inventory").intensity(10, Duration::from_secs(60));
        for n in 0..SHELVES {
            spec = spec.child(ChildSpec::new(format!("shelf-{n}"), Shelf::default));
        }
        let supervisor = runtime.start_supervisor(spec, Duration::from_secs(5))?;
        let shelves = (0..SHELVES)
            .map(|n| supervisor.child::<ShelfMsg>(&format!("shelf-{n}")).expect("the shelf was started"))
            .collect();
        Ok(Inventory { shelves })
    }

    /// The shelf that keeps `item`.
    pub(crate) fn shelf(&self, item: &str) -> &Addr<ShelfMsg> {
        let mut hasher = DefaultHasher::new();
        item.hash(&mut hasher);
        &self.shelves[(hasher.finish() % self.shelves.len() as u64) as usize]
    }
}
