//! [`FnCell`]: a cell whose handler is a closure.

use std::fmt;
use std::marker::PhantomData;

use cellrt::{Cell, CellError, Context};

/// A cell whose `handle` is the closure it was built with.
///
/// The closure owns whatever state it captures; an `Err` it returns is a
/// failure of the cell like any other.
///
/// # Examples
///
/// ```
/// use cellrt_cells::FnCell;
///
/// let mut total = 0_u64;
/// let summing = FnCell::new(move |n: u64| {
///     total += n;
///     Ok(())
/// });
/// # let _ = summing;
/// ```
pub struct FnCell<M, F> {
    handler: F,
    _message: PhantomData<fn(M)>,
}

impl<M, F> FnCell<M, F>
where
    M: Send + 'static,
    F: FnMut(M) -> Result<(), CellError> + Send + 'static,
{
    /// A cell that calls `handler` for each message.
    pub fn new(handler: F) -> Self {
        FnCell { handler, _message: PhantomData }
    }
}

impl<M, F> Cell for FnCell<M, F>
where
    M: Send + 'static,
    F: FnMut(M) -> Result<(), CellError> + Send + 'static,
{
    type Message = M;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: M) -> Result<(), CellError> {
        (self.handler)(msg)
    }
}

impl<M, F> fmt::Debug for FnCell<M, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCell").field("message", &std::any::type_name::<M>()).finish()
    }
}
