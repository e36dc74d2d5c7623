//! Every public type is `Send` and `Sync` where a user would share it.

use cellrt::*;

fn send_sync<T: Send + Sync>() {}
fn send<T: Send>() {}

struct Nothing;

impl Cell for Nothing {
    type Message = Reply<u8>;

    fn handle(&mut self, _ctx: &mut Context<Self>, _msg: Reply<u8>) -> Result<(), CellError> {
        Ok(())
    }
}

#[test]
fn public_types_are_send_and_sync() {
    send_sync::<Addr<Reply<u8>>>();
    send_sync::<WeakAddr<Reply<u8>>>();
    send_sync::<Runtime>();
    send_sync::<Builder>();
    send_sync::<Pending<Vec<u8>>>();
    send_sync::<Reply<Vec<u8>>>();
    send_sync::<SendError<Reply<u8>>>();
    send_sync::<AskError>();
    send_sync::<Failure>();
    send_sync::<ShutdownReport>();
    send_sync::<RunReport>();
    send_sync::<TimerHandle>();
    send_sync::<CellPath>();
    send_sync::<CellConfig>();
    send_sync::<SpawnError>();
    send_sync::<BuildError>();
    send_sync::<StopError>();
    send_sync::<RunError>();
    send_sync::<StopReason>();
    send_sync::<CircuitBreaker>();
    send_sync::<Permit>();
    send_sync::<BreakerConfig>();
    send_sync::<BreakerConfigError>();
    send_sync::<BreakerOpen>();
    send_sync::<BreakerMetrics>();
    send_sync::<BreakerTransition>();
    send_sync::<CallError<Reply<u8>>>();
    send::<CellError>();
    send::<Context<Nothing>>();
}

#[cfg(feature = "chaos")]
#[test]
fn chaos_types_are_send_and_sync() {
    send_sync::<Target>();
    send_sync::<Fault>();
    send_sync::<FaultBuilder>();
    send_sync::<FaultSet>();
    send_sync::<Injection>();
    send_sync::<InjectionRecord>();
    send_sync::<FaultCount>();
    send_sync::<FaultSpecError>();
    send_sync::<InjectError>();
    send_sync::<Experiment>();
    send_sync::<ExperimentBuilder>();
    send_sync::<ExperimentError>();
    send_sync::<ExperimentBuildError>();
    send_sync::<Predicate>();
    send_sync::<Observation>();
    send_sync::<Report>();
    send_sync::<RampReport>();
}

#[cfg(feature = "http")]
#[test]
fn http_types_are_send_and_sync() {
    send_sync::<HttpConfig>();
    send_sync::<HttpServer>();
    send_sync::<ServeError>();
}
