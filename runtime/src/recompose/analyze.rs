//! What the engine reads of a managed cell once per analysis window
//! ([`CellWindow`]), and what it concludes ([`Finding`]) with the evidence
//! behind it.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use super::apply::Sources;
use super::plan::Metric;
use crate::observe::decay::Baselines;
use crate::observe::metrics::{share, Counters, KindTotals};
use crate::observe::Decay;
use crate::path::CellPath;
use crate::runtime::CellControl;
use crate::sync::Arc;

/// One message kind's part of a managed cell's work over one window.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct KindShare {
    /// The message kind.
    pub kind: String,
    /// Stamped messages of this kind in the window.
    pub sampled: u64,
    /// Failures of this kind in the window (all of them).
    pub failed: u64,
    /// Its share of the stamped messages' handling time, 0 to 1.
    pub busy_share: f64,
    /// Its share of the stamped messages, 0 to 1.
    pub load_share: f64,
}

/// One of the cells serving a managed address, over one window.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ServingCell {
    /// Its path: the managed cell's, an isolated kind's cell's
    /// (`<cell>/<kind>`), a pool member's (`<cell>/1`…) or a canary's
    /// (`…/canary`).
    pub path: CellPath,
    /// Messages it took (handled or failed).
    pub messages: u64,
    /// Of those, failed.
    pub failed: u64,
    /// `failed / messages`, 0 without messages.
    pub failure_ratio: f64,
    /// Mean time in queue of its stamped messages.
    pub queue_delay: Duration,
    /// How full its mailbox is, 0 to 1 (1 when it refused a send).
    pub saturation: f64,
    /// Whether its decay is above its threshold.
    pub decaying: bool,
    /// Whether it has stopped for good.
    pub stopped: bool,
}

impl ServingCell {
    /// The value of `metric` for this cell.
    pub fn value(&self, metric: Metric) -> f64 {
        metric.of(self.queue_delay, self.saturation, self.failure_ratio)
    }
}

/// A managed cell over one analysis window: what the rules decide on and
/// plans are evaluated against.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct CellWindow {
    /// The managed cell.
    pub cell: CellPath,
    /// When the window ended.
    pub at: SystemTime,
    /// Messages taken (handled or failed) by every cell serving the address.
    pub messages: u64,
    /// Of those, failed.
    pub failed: u64,
    /// `failed / messages`, 0 without messages.
    pub failure_ratio: f64,
    /// Mean time in queue of the managed cell's stamped messages.
    pub queue_delay: Duration,
    /// How full the fullest mailbox serving the address is, 0 to 1 (1 when
    /// a send was refused as full in the window).
    pub saturation: f64,
    /// Sends refused as full or shed in the window.
    pub rejected: u64,
    /// The managed cell's message kinds in the window, by busy share,
    /// largest first.
    pub kinds: Vec<KindShare>,
    /// The managed cell's decay.
    pub decay: Option<Decay>,
    /// Whether the managed cell's objective has its page alert firing.
    pub burn_page: bool,
    /// Whether the managed cell has stopped for good (an unsupervised cell
    /// stops at its first failure): its address refuses sends.
    pub stopped: bool,
    /// Each cell serving the address, the managed cell first.
    pub cells: Vec<ServingCell>,
}

impl CellWindow {
    /// The serving cell at `path`, if it served in this window.
    pub fn cell(&self, path: &CellPath) -> Option<&ServingCell> {
        self.cells.iter().find(|c| c.path == *path)
    }

    /// The value of `metric` in this window.
    pub fn value(&self, metric: Metric) -> f64 {
        metric.of(self.queue_delay, self.saturation, self.failure_ratio)
    }
}

/// What the engine concluded about a managed cell, with its evidence.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Finding {
    /// The finding's number: 1, 2, 3… per engine.
    pub id: u64,
    /// The managed cell.
    pub cell: CellPath,
    /// The rule that found it (`isolate`, `split`, `merge`, `shed`,
    /// `replace`, or a user policy's name).
    pub rule: String,
    /// What was found, in words.
    pub summary: String,
    /// The window it was found in: decay components, per-kind shares,
    /// queue delay, saturation, failures.
    pub window: CellWindow,
    /// The decay baselines the decay components are measured against.
    pub baselines: Option<Baselines>,
    /// Failure signatures seen at the cell: (id, count).
    pub signatures: Vec<(String, u64)>,
    /// The flow-map edges out of the cell: (receiver, messages per second).
    pub edges: Vec<(CellPath, f64)>,
    /// The journal entries that support it (anomalies about the cell,
    /// recent first excluded), ascending; its own entry last.
    pub evidence: Vec<u64>,
    /// When the earliest of those entries was recorded.
    pub onset: Option<SystemTime>,
}

/// The previous readings of each cell instance, to turn cumulative counters
/// into per-window ones.
#[derive(Default)]
pub(crate) struct Readings {
    last: HashMap<u64, (Counters, Vec<KindTotals>)>,
}

/// The difference of one instance's readings over a window.
struct Delta {
    counters: Counters,
    kinds: Vec<KindTotals>,
}

impl Readings {
    /// Reads `cell` and returns what changed since the last reading.
    fn delta(&mut self, cell: &Arc<dyn CellControl>) -> Option<Delta> {
        let (counters, kinds) = match cell.metrics() {
            Some(metrics) => (metrics.counters(), metrics.kind_totals()),
            // Observed, but nothing counted yet: no block was allocated.
            None if cell.is_observed() => (Counters::default(), Vec::new()),
            None => return None,
        };
        let (last, last_kinds) = self.last.insert(cell.id(), (counters, kinds.clone())).unwrap_or_default();
        let kinds = kinds
            .into_iter()
            .map(|now| {
                let before = last_kinds.iter().find(|k| k.kind == now.kind);
                KindTotals {
                    kind: now.kind,
                    sampled: now.sampled - before.map_or(0, |b| b.sampled),
                    failed: now.failed - before.map_or(0, |b| b.failed),
                    busy: now.busy.saturating_sub(before.map_or(Duration::ZERO, |b| b.busy)),
                }
            })
            .collect();
        Some(Delta {
            counters: Counters {
                handled: counters.handled - last.handled,
                failed: counters.failed - last.failed,
                panics: counters.panics - last.panics,
                restarts: counters.restarts - last.restarts,
                rejected: counters.rejected - last.rejected,
                shed: counters.shed - last.shed,
                slow: counters.slow - last.slow,
                busy: counters.busy.saturating_sub(last.busy),
                queue_delay: counters.queue_delay.saturating_sub(last.queue_delay),
                queue_samples: counters.queue_samples - last.queue_samples,
            },
            kinds,
        })
    }

    /// Forgets instances not in `live`.
    pub(crate) fn retain(&mut self, live: &std::collections::HashSet<u64>) {
        self.last.retain(|id, _| live.contains(id));
    }

    /// One window of the cell served by `sources`.
    pub(crate) fn window(
        &mut self,
        cell: &CellPath,
        sources: &Sources,
        decay_of: &dyn Fn(u64) -> Option<Decay>,
        burn_page: bool,
    ) -> CellWindow {
        let mut window = CellWindow {
            cell: cell.clone(),
            at: SystemTime::now(),
            messages: 0,
            failed: 0,
            failure_ratio: 0.0,
            queue_delay: Duration::ZERO,
            saturation: 0.0,
            rejected: 0,
            kinds: Vec::new(),
            decay: None,
            burn_page,
            stopped: !sources.forwarding && sources.base.as_ref().is_none_or(|b| b.is_terminated()),
            cells: Vec::new(),
        };
        let base_id = sources.base.as_ref().map(|b| b.id());
        for source in sources.all() {
            let Some(delta) = self.delta(source) else { continue };
            let c = delta.counters;
            window.messages += c.handled + c.failed;
            window.failed += c.failed;
            window.rejected += c.rejected + c.shed;
            let (queued, capacity) = source.mailbox_len();
            let full = if c.rejected > 0 { 1.0 } else { share(queued as f64, capacity as f64).min(1.0) };
            window.saturation = window.saturation.max(full);
            let messages = c.handled + c.failed;
            let queue_delay = if c.queue_samples > 0 {
                c.queue_delay / u32::try_from(c.queue_samples).unwrap_or(u32::MAX)
            } else {
                Duration::ZERO
            };
            let decay = decay_of(source.id());
            window.cells.push(ServingCell {
                path: source.path().clone(),
                messages,
                failed: c.failed,
                failure_ratio: share(c.failed as f64, messages as f64),
                queue_delay,
                saturation: full,
                decaying: decay.as_ref().is_some_and(|d| d.decaying),
                stopped: source.is_terminated(),
            });
            if Some(source.id()) == base_id {
                window.queue_delay = queue_delay;
                window.decay = decay;
                let sampled: u64 = delta.kinds.iter().map(|k| k.sampled).sum();
                let busy: f64 = delta.kinds.iter().map(|k| k.busy.as_secs_f64()).sum();
                window.kinds = delta
                    .kinds
                    .iter()
                    .filter(|k| k.sampled > 0 || k.failed > 0)
                    .map(|k| KindShare {
                        kind: k.kind.to_owned(),
                        sampled: k.sampled,
                        failed: k.failed,
                        busy_share: share(k.busy.as_secs_f64(), busy),
                        load_share: share(k.sampled as f64, sampled as f64),
                    })
                    .collect();
                window.kinds.sort_by(|a, b| b.busy_share.total_cmp(&a.busy_share));
            }
        }
        window.failure_ratio = share(window.failed as f64, window.messages as f64);
        window
    }
}
