//! The restart workload's cell, shared by `benches/restart.rs` and
//! `examples/restart_once.rs`: a supervised cell whose handler panics on
//! demand and whose answers show which incarnation gave them.

use std::time::Duration;

use cellrt::{
    Addr, Cell, CellError, ChildSpec, Context, Reply, RestartBackoff, Runtime, Strategy, Supervisor,
    SupervisorSpec,
};

/// Messages of [`Fragile`].
pub(crate) enum Msg {
    /// The handler panics.
    Fail,
    /// Answers how many requests this incarnation has handled, this one
    /// included.
    Get(Reply<u64>),
}

/// A cell whose handler panics on [`Msg::Fail`]. Its state is the number
/// of requests its current incarnation handled, so an answer of 1 right
/// after a failure shows a restart happened.
#[derive(Default)]
pub(crate) struct Fragile {
    handled: u64,
}

impl Fragile {
    pub(crate) fn next(&mut self) -> u64 {
        self.handled += 1;
        self.handled
    }
}

impl Cell for Fragile {
    type Message = Msg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Fail => panic!("injected failure"),
            Msg::Get(reply) => {
                let _ = reply.send(self.next());
            }
        }
        Ok(())
    }
}

/// Flags shared by every supervisor here: one-for-one (or pool), restart
/// at once, never give up.
pub(crate) fn flags(spec: SupervisorSpec) -> SupervisorSpec {
    spec.intensity(u32::MAX, Duration::from_secs(1)).backoff(RestartBackoff::none())
}

/// A one-for-one supervisor with one [`Fragile`] child, started within
/// `wait`; its address.
pub(crate) fn supervised_cell(rt: &Runtime, wait: Duration) -> (Supervisor, Addr<Msg>) {
    let spec = flags(SupervisorSpec::new("restart-latency").strategy(Strategy::OneForOne))
        .child(ChildSpec::new("fragile", Fragile::default));
    let sup = rt.start_supervisor(spec, wait).expect("supervisor starts");
    let addr = sup.child::<Msg>("fragile").expect("child address");
    (sup, addr)
}
