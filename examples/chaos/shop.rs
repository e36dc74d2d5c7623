//! A small shop for chaos experiments: checkout reserves stock from
//! inventory for every order. Each runs on its own one-worker dispatcher
//! (a bulkhead: a checkout waiting for stock never holds up inventory or
//! the supervisor). A *guarded* checkout gives each reservation a deadline
//! that travels with it and declines the order when stock does not answer
//! in time; an unguarded one waits as long as it takes.

use std::time::Duration;

use cellrt::{
    Addr, Cell, CellError, ChildSpec, Context, Experiment, FaultSet, Predicate, Reply, Runtime, Span,
    Supervisor, SupervisorSpec,
};

/// How long anything in the shop may take before it counts as broken.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// Inventory: every reservation succeeds.
pub(crate) struct Stock;

impl Cell for Stock {
    type Message = Reply<bool>;

    fn handle(&mut self, _: &mut Context<Self>, reply: Reply<bool>) -> Result<(), CellError> {
        let _ = reply.send(true);
        Ok(())
    }

    fn message_kind(_: &Reply<bool>) -> &'static str {
        "Reserve"
    }
}

/// Checkout: one reservation per order; `deadline` guards it.
pub(crate) struct Checkout {
    stock: Addr<Reply<bool>>,
    deadline: Option<Duration>,
}

impl Cell for Checkout {
    type Message = Reply<bool>;

    fn handle(&mut self, _: &mut Context<Self>, order: Reply<bool>) -> Result<(), CellError> {
        let reserved = match self.deadline {
            Some(deadline) => self.stock.ask_within(deadline, |reply| reply).map(|p| p.wait(deadline)),
            None => self.stock.ask(|reply| reply).map(|p| p.wait(PATIENCE)),
        };
        // A reservation that did not come back in time declines the order.
        let _ = order.send(matches!(reserved, Ok(Ok(true))));
        Ok(())
    }

    fn message_kind(_: &Reply<bool>) -> &'static str {
        "Order"
    }
}

/// The running shop.
pub(crate) struct Shop {
    pub(crate) runtime: Runtime,
    pub(crate) supervisor: Supervisor,
}

impl Shop {
    /// Starts `/shop/inventory` and `/shop/checkout`; `deadline` guards
    /// checkout's reservations.
    pub(crate) fn start(deadline: Option<Duration>) -> Result<Shop, Box<dyn std::error::Error>> {
        let runtime = Runtime::builder()
            .worker_threads(1)
            .dispatcher("inventory", 1)
            .dispatcher("checkout", 1)
            .build()?;
        let spec =
            SupervisorSpec::new("shop").child(ChildSpec::new("inventory", || Stock).dispatcher("inventory"));
        let supervisor = runtime.start_supervisor(spec, PATIENCE)?;
        let stock = supervisor.child::<Reply<bool>>("inventory").ok_or("no inventory")?;
        let checkout = move || Checkout { stock: stock.clone(), deadline };
        supervisor.start_child(ChildSpec::new("checkout", checkout).dispatcher("checkout"), PATIENCE)?;
        Ok(Shop { runtime, supervisor })
    }

    /// One order, sent and waited for: the experiments' load.
    pub(crate) fn shopper(&self) -> impl FnMut() {
        let checkout = self.supervisor.child::<Reply<bool>>("checkout");
        move || {
            if let Some(checkout) = &checkout {
                let _ = checkout.ask(|reply| reply).map(|pending| pending.wait(PATIENCE));
            }
        }
    }
}

/// "Checkout stays fast while inventory is slow": checkout's p99 within
/// `limit`, no failed order, with `spec` injected into inventory only.
pub(crate) fn experiment(spec: &str, limit: Duration) -> Result<Experiment, Box<dyn std::error::Error>> {
    let checkout = "/shop/checkout".parse()?;
    let experiment = Experiment::builder("checkout tolerates slow inventory")
        .hypothesis(Predicate::p99_at_most(&checkout, limit))
        .hypothesis(Predicate::error_share_at_most(&checkout, 0.0))
        .faults(FaultSet::parse(spec)?)
        .blast_radius("/shop/inventory")
        .control(Span::Messages(50))
        .fault_phase(Span::Messages(50))
        .recovery(Span::Messages(20), 5)
        .build()?;
    Ok(experiment)
}
