//! [`Collector`]: a sink that gathers items until asked for them.

use cellrt::{Cell, CellError, Context, Reply};

/// Messages of a [`Collector`].
#[derive(Debug)]
pub enum Collect<T> {
    /// Keep this item.
    Item(T),
    /// Answer with every item kept so far, and forget them.
    Take(Reply<Vec<T>>),
    /// Answer with how many items are kept.
    Len(Reply<usize>),
}

/// A sink cell: keeps items in arrival order and hands them over on request.
///
/// With a limit, the oldest items are dropped to keep at most `limit`, and
/// counted; see [`Collector::with_limit`].
#[derive(Debug)]
pub struct Collector<T> {
    items: Vec<T>,
    limit: Option<usize>,
    dropped: u64,
}

impl<T> Default for Collector<T> {
    fn default() -> Self {
        Collector { items: Vec::new(), limit: None, dropped: 0 }
    }
}

impl<T: Send + 'static> Collector<T> {
    /// A collector without a limit.
    pub fn new() -> Self {
        Collector::default()
    }

    /// A collector that keeps at most `limit` items, dropping the oldest.
    /// A limit of 0 keeps nothing.
    pub fn with_limit(limit: usize) -> Self {
        Collector { limit: Some(limit), ..Collector::default() }
    }

    /// Items dropped to respect the limit.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl<T: Send + 'static> Cell for Collector<T> {
    type Message = Collect<T>;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Collect<T>) -> Result<(), CellError> {
        match msg {
            Collect::Item(item) => {
                self.items.push(item);
                if let Some(limit) = self.limit {
                    if self.items.len() > limit {
                        let excess = self.items.len() - limit;
                        self.items.drain(..excess);
                        self.dropped += excess as u64;
                    }
                }
            }
            // An asker that gave up gets nothing; the items are gone either way.
            Collect::Take(reply) => drop(reply.send(std::mem::take(&mut self.items))),
            Collect::Len(reply) => drop(reply.send(self.items.len())),
        }
        Ok(())
    }

    fn message_kind(msg: &Collect<T>) -> &'static str {
        match msg {
            Collect::Item(_) => "Item",
            Collect::Take(_) => "Take",
            Collect::Len(_) => "Len",
        }
    }
}
