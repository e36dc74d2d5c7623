//! A gateway forwarding card payments to a worker that declines some: the
//! cells of the recorded runs that the report's tests and `cellrt-inspect`'s
//! tests (which include this file by path) read back.

use std::path::Path;
use std::time::Duration;

use cellrt::{Addr, Cell, CellError, Context, ObservationConfig, Runtime, StorageConfig};

/// Fails every tenth message, with a cause a rendered report must escape.
pub struct Worker;

impl Cell for Worker {
    type Message = u32;
    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        if n % 10 == 3 {
            return Err(CellError::msg(format!("card {n} declined by <issuer>")));
        }
        Ok(())
    }
}

/// Forwards to the worker.
pub struct Gateway(pub Addr<u32>);

impl Cell for Gateway {
    type Message = u32;
    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        self.0.try_send(n).map_err(|err| CellError::msg(err.to_string()))
    }
}

/// A two-worker runtime storing in `dir`, observing in 50 ms windows with
/// every message sampled, its cells' panics kept quiet.
pub fn runtime(dir: &Path) -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .quiet_panics(true)
        .storage(StorageConfig::dir(dir))
        .observation(ObservationConfig::default().window(Duration::from_millis(50)).sample_every(1))
        .build()
        .expect("runtime builds")
}
