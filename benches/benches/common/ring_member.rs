//! The ring workload's cell, shared by `benches/ring.rs` and
//! `examples/ring_once.rs`: each cell forwards the token to the next one with
//! `try_send` from its handler, and the cell that receives it with no hops
//! left answers the ask that started it.

use cellrt::{Addr, Cell, CellError, Context, Reply, Runtime};

pub(crate) enum RingMsg {
    /// Tells a cell which cell follows it.
    Next(Addr<RingMsg>),
    /// The token: hops left, and where to report when none are.
    Token(u64, Reply<u64>),
}

#[derive(Default)]
pub(crate) struct Member {
    next: Option<Addr<RingMsg>>,
}

impl Cell for Member {
    type Message = RingMsg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: RingMsg) -> Result<(), CellError> {
        match msg {
            RingMsg::Next(addr) => self.next = Some(addr),
            RingMsg::Token(0, done) => {
                let _ = done.send(0);
            }
            RingMsg::Token(left, done) => {
                let next = self.next.as_ref().ok_or_else(|| CellError::msg("ring not closed"))?;
                next.try_send(RingMsg::Token(left - 1, done)).map_err(|_| CellError::msg("next full"))?;
            }
        }
        Ok(())
    }
}

/// Spawns `cells` members on `rt` and closes them into a ring.
pub(crate) fn spawn_ring(rt: &Runtime, cells: usize) -> Vec<Addr<RingMsg>> {
    let members: Vec<Addr<RingMsg>> =
        (0..cells).map(|_| rt.spawn(Member::default()).expect("spawn")).collect();
    for (i, member) in members.iter().enumerate() {
        member.send(RingMsg::Next(members[(i + 1) % cells].clone())).expect("send");
    }
    members
}

/// Sends the token around from `first` for `hops` hops and waits until the
/// last cell answers (with the hops left: 0).
pub(crate) fn pass_token(first: &Addr<RingMsg>, hops: u64, wait: std::time::Duration) {
    let left = first.ask(|done| RingMsg::Token(hops, done)).expect("ask").wait(wait).expect("answer");
    assert_eq!(left, 0, "the token stopped early");
}
