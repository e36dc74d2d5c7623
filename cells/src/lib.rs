//! Ready-made cells for [`cellrt`], built only on its public API.
//!
//! - [`FnCell`]: a cell from a closure, for small stages and glue.
//! - [`Collector`]: gathers items and hands them over on request, for sinks
//!   and tests.
//! - [`SwrCache`]: a stale-while-revalidate cache in front of an upstream
//!   cell, calling it through a circuit breaker.
//!
//! ```
//! use std::time::Duration;
//! use cellrt::Runtime;
//! use cellrt_cells::{Collect, Collector, FnCell};
//!
//! let runtime = Runtime::builder().worker_threads(1).build()?;
//! let sink = runtime.spawn(Collector::<u64>::new())?;
//! let double = {
//!     let sink = sink.clone();
//!     runtime.spawn(FnCell::new(move |n: u64| {
//!         sink.try_send(Collect::Item(n * 2)).map_err(|e| cellrt::CellError::msg(e.to_string()))
//!     }))?
//! };
//! for n in 1..=3 {
//!     double.send(n)?;
//! }
//! # let deadline = std::time::Instant::now() + Duration::from_secs(5);
//! # while sink.ask(Collect::Len)?.wait(Duration::from_secs(5))? < 3 && std::time::Instant::now() < deadline {}
//! assert_eq!(sink.ask(Collect::Take)?.wait(Duration::from_secs(5))?, vec![2, 4, 6]);
//! runtime.shutdown(Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod collector;
mod fn_cell;

pub use crate::cache::{CacheError, CacheMsg, CacheReply, CacheStats, Cached, SwrCache, UpstreamReply};
pub use crate::collector::{Collect, Collector};
pub use crate::fn_cell::FnCell;
