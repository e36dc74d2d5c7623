//! The cell every ask workload asks, shared by `benches/ping_pong.rs` and the
//! `ask_once` and `tokio_ask` examples.

use cellrt::{Cell, CellError, Context, Reply};

/// Answers `(n, reply)` with `n + 1`.
pub(crate) struct Echo;

impl Cell for Echo {
    type Message = (u64, Reply<u64>);

    fn handle(&mut self, _ctx: &mut Context<Self>, (n, reply): (u64, Reply<u64>)) -> Result<(), CellError> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}
