//! Shutdown: drain cells in reverse spawn order, kill what is left at the
//! deadline, stop the threads, flush and close the storage, report.

use std::time::{Duration, Instant};

use crate::mailbox::SystemMsg;
use crate::path::CellPath;
use crate::sync::atomic::Ordering::{Acquire, Release};
use crate::sync::{thread, Arc, Backoff};

use super::{CellControl, RuntimeShared};

/// How long killed cells get to terminate before they count as abandoned.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How long the storage engine gets to release the data directory once
/// closed (its I/O threads let go a moment after their last write).
#[cfg(feature = "storage")]
const RELEASE_GRACE: Duration = Duration::from_secs(1);

/// What [`Runtime::shutdown`](crate::Runtime::shutdown) did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Cells that stopped with their `stopped` hook run.
    pub cells_stopped: usize,
    /// Cells killed at the deadline, without hooks.
    pub cells_killed: usize,
    /// Cells whose handler had not returned when the runtime gave up on
    /// them; their worker threads are left to finish on their own.
    pub cells_abandoned: Vec<CellPath>,
    /// User messages that were queued but never handled.
    pub messages_undelivered: u64,
    /// Failures the runtime recorded in its whole life, shutdown included
    /// (as [`Runtime::failure_count`](crate::Runtime::failure_count)): a
    /// hook that returned an error or panicked, a handler past its
    /// deadline, a failed start.
    pub failures: u64,
    /// Whether the timeout passed before every cell drained.
    pub timed_out: bool,
    /// How long the shutdown took.
    pub elapsed: Duration,
}

impl ShutdownReport {
    /// Whether nothing went wrong: no cell ever failed
    /// ([`failures`](ShutdownReport::failures) is 0), every cell stopped
    /// gracefully in time, and every message was handled.
    ///
    /// A runtime whose supervisors restarted failed cells is not clean,
    /// even if the shutdown itself went well: look at the other fields for
    /// that.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Runtime};
    ///
    /// struct Fragile;
    /// impl Cell for Fragile {
    ///     type Message = ();
    ///     fn handle(&mut self, _: &mut Context<Self>, (): ()) -> Result<(), CellError> {
    ///         Err(CellError::msg("broken"))
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().worker_threads(1).build()?;
    /// let fragile = runtime.spawn(Fragile)?;
    /// fragile.send(())?;
    /// # let deadline = std::time::Instant::now() + Duration::from_secs(5);
    /// # while runtime.failure_count() == 0 && std::time::Instant::now() < deadline {
    /// #     std::thread::sleep(Duration::from_millis(1));
    /// # }
    /// let report = runtime.shutdown(Duration::from_secs(5));
    /// assert_eq!(report.failures, 1);
    /// assert!(!report.is_clean());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_clean(&self) -> bool {
        self.failures == 0
            && !self.timed_out
            && self.cells_killed == 0
            && self.cells_abandoned.is_empty()
            && self.messages_undelivered == 0
    }
}

pub(super) fn run(shared: &Arc<RuntimeShared>, timeout: Duration) -> ShutdownReport {
    let started = Instant::now();
    let deadline = started.checked_add(timeout);
    shared.shutting_down.store(true, Release);
    // No fault outlives the runtime's work: every set is removed now.
    #[cfg(feature = "chaos")]
    shared.chaos().clear();
    // Spawns still counted, not journaled, go in before the journal closes.
    #[cfg(feature = "observe")]
    shared.observer.flush_spawns();
    let (cells, stopped_before, killed_before, undelivered_before) = {
        let mut registry = shared.registry.lock();
        registry.accepting = false;
        (registry.reverse_spawn_order(), registry.stopped, registry.killed, registry.undelivered)
    };
    tracing::info!(cells = cells.len(), ?timeout, "shutting down");

    let mut timed_out = false;
    if !timeout.is_zero() {
        for cell in &cells {
            if cell.is_terminated() {
                continue;
            }
            cell.send_system(SystemMsg::Drain);
            if !wait_terminated(shared, std::slice::from_ref(cell), deadline) {
                timed_out = true;
                break;
            }
        }
    }

    let remaining: Vec<Arc<dyn CellControl>> = cells.into_iter().filter(|c| !c.is_terminated()).collect();
    for cell in &remaining {
        if !cell.try_kill_idle() {
            cell.send_system(SystemMsg::Kill);
        }
    }
    let kill_deadline = Instant::now() + KILL_GRACE;
    wait_terminated(shared, &remaining, Some(kill_deadline));
    let mut discarded = 0_u64;
    let mut abandoned = Vec::new();
    for cell in remaining.iter().filter(|c| !c.is_terminated()) {
        discarded += cell.discard_queued() as u64;
        abandoned.push(cell.path().clone());
    }
    drop(remaining);

    shared.timers.shut_down();
    let detached = stop_workers(shared, kill_deadline);
    // The live export ends with the cells, before the storage it reads
    // closes; until now its readiness said the runtime was shutting down.
    #[cfg(feature = "http")]
    shared.run_shutdown_hooks();
    #[cfg(feature = "storage")]
    if let Some(storage) = &shared.settings.storage {
        if let Err(err) = storage.flush() {
            tracing::error!(%err, "could not flush the storage at shutdown");
        }
        // Closed now, not when the last handle on the runtime goes: the data
        // directory is free for the next runtime when `shutdown` returns.
        if !storage.close(Instant::now() + RELEASE_GRACE) {
            tracing::warn!("the data directory was still locked when the shutdown ended");
        }
    }

    let report = {
        let mut registry = shared.registry.lock();
        // Abandoned cells stay out of reach: drop the registry's handles.
        registry.cells.clear();
        registry.paths.clear();
        ShutdownReport {
            cells_stopped: registry.stopped - stopped_before,
            cells_killed: registry.killed - killed_before,
            cells_abandoned: abandoned,
            messages_undelivered: registry.undelivered - undelivered_before + discarded,
            failures: shared.failures_total.load(Acquire),
            timed_out,
            elapsed: started.elapsed(),
        }
    };
    if report.cells_abandoned.is_empty() {
        tracing::info!(?report, "shut down");
    } else {
        tracing::warn!(?report, detached_workers = detached, "shut down with abandoned cells");
    }
    report
}

/// Waits until every cell in `cells` terminated; `false` if `deadline` came first.
fn wait_terminated(
    shared: &RuntimeShared,
    cells: &[Arc<dyn CellControl>],
    deadline: Option<Instant>,
) -> bool {
    if shared.is_threadless() {
        // No worker will run the cells: this thread does.
        loop {
            let step = shared.run_once();
            if cells.iter().all(|c| c.is_terminated()) {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if step.is_idle() {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }
    // An idle cell drains in microseconds: spin a little before sleeping.
    let backoff = Backoff::new();
    while !backoff.is_completed() {
        if cells.iter().all(|c| c.is_terminated()) {
            return true;
        }
        backoff.snooze();
    }
    let mut registry = shared.registry.lock();
    loop {
        if cells.iter().all(|c| c.is_terminated()) {
            return true;
        }
        let left = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left,
                _ => return false,
            },
            None => Duration::from_secs(3600),
        };
        registry = shared.terminated.wait_timeout(registry, left).0;
    }
}

/// Stops every dispatcher's workers and joins those that exit by `deadline`.
/// Returns how many were left running (stuck in an abandoned handler).
fn stop_workers(shared: &RuntimeShared, deadline: Instant) -> usize {
    for dispatcher in &shared.dispatcher_order {
        dispatcher.stop_workers();
    }
    let mut handles: Vec<thread::JoinHandle<()>> =
        shared.dispatcher_order.iter().flat_map(|d| d.take_threads()).collect();
    loop {
        let (done, running): (Vec<_>, Vec<_>) = handles.into_iter().partition(|h| h.is_finished());
        for handle in done {
            let _ = handle.join();
        }
        handles = running;
        if handles.is_empty() || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    for dispatcher in &shared.dispatcher_order {
        // Tasks of killed or abandoned cells: dropping them breaks the
        // cycle cell → runtime → dispatcher → queue → cell.
        drop(dispatcher.queue.clear());
    }
    for group in shared.groups() {
        // Parked cells of killed or abandoned cells: the same cycle, through
        // the group.
        group.clear();
    }
    handles.len()
}
