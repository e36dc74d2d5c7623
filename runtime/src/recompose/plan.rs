//! Plans as data: [`Plan`], its [`Action`]s, the [`Expected`] effect it is
//! judged by, and the [`Layout`] a managed cell has.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::path::CellPath;

/// How a [`Split`](Action::Split) spreads the cell's messages over its pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum SplitBy {
    /// Round-robin: any member may take any message. Only for cells
    /// registered as stateless ([`Recomposable::stateless`](crate::Recomposable::stateless)).
    Stateless,
    /// By key: each message goes to the member owning its key on a
    /// consistent-hash ring, and each key's stored state moves to that
    /// member's tree. Only for cells registered keyed
    /// (`Recomposable::keyed`, feature `storage`), on a runtime with
    /// storage. The cell is retired into a pool of new cells; see
    /// [`Action::Split`].
    Key,
}

impl fmt::Display for SplitBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitBy::Stateless => "stateless",
            SplitBy::Key => "by key",
        })
    }
}

/// One change to a managed cell's topology.
///
/// Every action keeps the cell's address: senders hold the same
/// [`Addr`](crate::Addr) before, during and after it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Action {
    /// Puts a registered variant (or `"base"`, the cell's own factory)
    /// behind the address in place of the cell serving it; queued messages
    /// move to it, none lost or handled twice.
    Replace {
        /// The managed cell.
        cell: CellPath,
        /// The variant's name.
        variant: String,
    },
    /// Turns the cell into a pool of `into` cells behind the same address.
    ///
    /// - [`SplitBy::Stateless`]: the cell itself plus `into - 1` new ones
    ///   from its factory, round-robin.
    /// - [`SplitBy::Key`]: `into` new cells from the factory of the variant
    ///   serving, at `<cell>/0` … `<cell>/<into - 1>`. The cell finishes its
    ///   message and stops; its stored entries and its queued messages go
    ///   to each key's owner, which handles them before anything sent after
    ///   the split.
    Split {
        /// The managed cell.
        cell: CellPath,
        /// The pool's size, at least 2.
        into: usize,
        /// How messages are spread.
        by: SplitBy,
    },
    /// Moves one message kind to a cell of its own (at `<cell>/<kind>`),
    /// so its cost and its failures no longer hold up the other kinds.
    /// Messages of that kind already queued are handled where they are.
    Isolate {
        /// The managed cell.
        cell: CellPath,
        /// The message kind ([`Cell::message_kind`](crate::Cell::message_kind)).
        kind: String,
    },
    /// Installs shedding on the address for one message kind: it is refused
    /// ([`SendError::Shed`](crate::SendError::Shed)) once the mailbox is
    /// past `watermark` of its capacity.
    Shed {
        /// The managed cell.
        cell: CellPath,
        /// The message kind to shed.
        kind: String,
        /// A fraction of the capacity, in (0, 1].
        watermark: f64,
    },
    /// Removes the shedding a [`Shed`](Action::Shed) installed, putting back
    /// the address's policy from before.
    Admit {
        /// The managed cell.
        cell: CellPath,
    },
    /// Retires the cell that serves an isolated kind: it drains and stops,
    /// and the kind's traffic (and queue) goes to its successor — back into
    /// the managed cell (`successor: None`), or to a new cell of a
    /// registered variant that keeps serving the kind on its own (the
    /// runtime's replace protocol: the queue moves, none lost).
    Retire {
        /// The managed cell.
        cell: CellPath,
        /// The isolated kind.
        kind: String,
        /// The variant that takes the kind over, or `None` for the managed cell.
        successor: Option<String>,
    },
    /// Starts a canary: `share` of the traffic of the managed cell (`kind:
    /// None`) or of an isolated kind's cell goes to a new cell of
    /// `variant` (at `<that cell>/canary`); the rest stays. Its plan
    /// ([`Expected::Canary`]) compares the two over the evaluation windows
    /// and, if the variant is no worse, [`Promote`](Action::Promote)s it;
    /// otherwise [`EndCanary`](Action::EndCanary).
    Canary {
        /// The managed cell.
        cell: CellPath,
        /// The isolated kind whose cell shares its traffic, or `None` for
        /// the managed cell itself (which must then be alone behind its
        /// address).
        kind: Option<String>,
        /// The variant tried.
        variant: String,
        /// The share of the traffic it gets, in (0, 1).
        share: f64,
    },
    /// The canary's variant takes over: the cell it shared with is replaced
    /// by a new cell of the variant (the replace protocol), and the canary
    /// cell drains and stops.
    Promote {
        /// The managed cell.
        cell: CellPath,
        /// As in the [`Canary`](Action::Canary).
        kind: Option<String>,
    },
    /// The canary ends: all the traffic goes back to the cell it shared
    /// with, and the canary cell drains and stops.
    EndCanary {
        /// The managed cell.
        cell: CellPath,
        /// As in the [`Canary`](Action::Canary).
        kind: Option<String>,
    },
    /// Retires the managed cell itself into another managed cell (of the
    /// same message type): the cell finishes its message, hands what it
    /// holds to the successor and stops, and its address forwards to the
    /// successor from then on. With `state`, the entries of its stored tree
    /// move to the successor's tree (a key the successor already has stays
    /// where it was). Undone by a `Replace` with the cell's variant before
    /// (the state does not move back).
    RetireInto {
        /// The managed cell.
        cell: CellPath,
        /// The managed cell that takes its traffic.
        successor: CellPath,
        /// Whether its stored state moves too.
        state: bool,
    },
    /// Folds a pool back into one cell. A stateless pool: the members
    /// added by the split drain what they hold and stop; the first member
    /// serves alone. A keyed pool: a new cell at the managed cell's path
    /// takes over from every member (their queued messages and their
    /// stored entries) once each has finished its message and stopped.
    Merge {
        /// The managed cell.
        cell: CellPath,
    },
}

impl Action {
    /// The managed cell the action changes.
    pub fn cell(&self) -> &CellPath {
        match self {
            Action::Replace { cell, .. }
            | Action::Split { cell, .. }
            | Action::Isolate { cell, .. }
            | Action::Shed { cell, .. }
            | Action::Admit { cell }
            | Action::Retire { cell, .. }
            | Action::RetireInto { cell, .. }
            | Action::Canary { cell, .. }
            | Action::Promote { cell, .. }
            | Action::EndCanary { cell, .. }
            | Action::Merge { cell } => cell,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Replace { cell, variant } => write!(f, "replace {cell} with variant {variant:?}"),
            Action::Split { cell, into, by } => write!(f, "split {cell} into a pool of {into} ({by})"),
            Action::Isolate { cell, kind } => write!(f, "isolate kind {kind:?} of {cell}"),
            Action::Shed { cell, kind, watermark } => {
                write!(f, "shed kind {kind:?} of {cell} past {:.0}% full", watermark * 100.0)
            }
            Action::Admit { cell } => write!(f, "remove the shedding of {cell}"),
            Action::Retire { cell, kind, successor: None } => {
                write!(f, "retire the cell of kind {kind:?} back into {cell}")
            }
            Action::Retire { cell, kind, successor: Some(variant) } => {
                write!(f, "retire the cell of kind {kind:?} of {cell} into variant {variant:?}")
            }
            Action::RetireInto { cell, successor, state } => {
                write!(f, "retire {cell} into {successor}")?;
                if *state {
                    f.write_str(" with its stored state")?;
                }
                Ok(())
            }
            Action::Canary { cell, kind, variant, share } => {
                write!(f, "canary {:.0}% of ", share * 100.0)?;
                of_kind(f, cell, kind)?;
                write!(f, " to variant {variant:?}")
            }
            Action::Promote { cell, kind } => {
                f.write_str("promote the canary of ")?;
                of_kind(f, cell, kind)
            }
            Action::EndCanary { cell, kind } => {
                f.write_str("end the canary of ")?;
                of_kind(f, cell, kind)
            }
            Action::Merge { cell } => write!(f, "merge the pool of {cell} into one cell"),
        }
    }
}

/// `cell`, or `kind {kind:?} of cell`.
fn of_kind(f: &mut fmt::Formatter<'_>, cell: &CellPath, kind: &Option<String>) -> fmt::Result {
    match kind {
        Some(kind) => write!(f, "kind {kind:?} of {cell}"),
        None => write!(f, "{cell}"),
    }
}

/// A measure a plan is expected to move, read per analysis window from the
/// cells that serve the managed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Metric {
    /// Mean time in queue of the stamped messages of the managed cell (the
    /// first member of a pool, the cell that keeps the other kinds after an
    /// isolation).
    QueueDelay,
    /// How full the fullest mailbox serving the address got, 0 to 1 (1 when
    /// a send was refused as full).
    Saturation,
    /// Failed messages over messages taken, over every cell serving the
    /// address.
    FailureRatio,
}

impl Metric {
    /// The smallest difference in this metric that counts: below it, two
    /// values are the same (a queue delay of 0.2 ms is not "twice" 0.1 ms).
    pub fn floor(self) -> f64 {
        match self {
            Metric::QueueDelay => 0.001,
            Metric::Saturation => 0.05,
            Metric::FailureRatio => 0.02,
        }
    }

    /// The metric's value among a cell's measures.
    pub(crate) fn of(self, queue_delay: Duration, saturation: f64, failure_ratio: f64) -> f64 {
        match self {
            Metric::QueueDelay => queue_delay.as_secs_f64(),
            Metric::Saturation => saturation,
            Metric::FailureRatio => failure_ratio,
        }
    }

    /// The metric's unit, for reports.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::QueueDelay => "s",
            Metric::Saturation | Metric::FailureRatio => "",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::QueueDelay => "queue delay",
            Metric::Saturation => "saturation",
            Metric::FailureRatio => "failure ratio",
        })
    }
}

/// What a plan should do to a [`Metric`], against the mean of the windows
/// before it was applied.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Expected {
    /// The metric falls by at least this fraction (0.5: to half).
    Fall {
        /// The metric.
        metric: Metric,
        /// The fraction, in (0, 1].
        by: f64,
    },
    /// The metric stays where it was (within the tolerance).
    Hold {
        /// The metric.
        metric: Metric,
    },
    /// For a [`Canary`](Action::Canary): over the same windows, the
    /// canary's metric is no worse (within the tolerance) than that of the
    /// cell it shares the traffic with. Then the canary is promoted;
    /// otherwise it ends.
    Canary {
        /// The metric compared.
        metric: Metric,
    },
}

impl Expected {
    /// The metric the plan is judged by.
    pub fn metric(&self) -> Metric {
        match *self {
            Expected::Fall { metric, .. } | Expected::Hold { metric } | Expected::Canary { metric } => metric,
        }
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expected::Fall { metric, by } => write!(f, "{metric} falls by {:.0}%", by * 100.0),
            Expected::Hold { metric } => write!(f, "{metric} holds"),
            Expected::Canary { metric } => write!(f, "the canary's {metric} is no worse"),
        }
    }
}

/// Where a plan is in its life.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum PlanStatus {
    /// Waits for [`Recomposer::approve`](crate::Recomposer::approve).
    Pending,
    /// Applied; its evaluation window runs.
    Applied {
        /// When.
        at: SystemTime,
    },
    /// Evaluated and kept.
    Kept {
        /// The metric's value before and after.
        before: f64,
        /// See `before`.
        after: f64,
        /// Whether the expected effect was reached (a plan that did not
        /// make things worse is kept even when it fell short).
        met: bool,
    },
    /// Reverted: its inverse was applied.
    Reverted {
        /// Why.
        reason: String,
    },
    /// Rejected by an operator, or refused as stale.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Applying failed; the topology is as it was.
    Failed {
        /// Why.
        reason: String,
    },
}

impl PlanStatus {
    /// Whether the plan is over (kept, reverted, rejected or failed).
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            PlanStatus::Kept { .. }
                | PlanStatus::Reverted { .. }
                | PlanStatus::Rejected { .. }
                | PlanStatus::Failed { .. }
        )
    }
}

/// A recomposition plan: what to change, why, what it should achieve, and
/// how to undo it.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Plan {
    /// The plan's number: 1, 2, 3… per engine.
    pub id: u64,
    /// The managed cell it changes.
    pub cell: CellPath,
    /// The rule (or user policy) that made it; `"manual"` for
    /// [`Recomposer::propose`](crate::Recomposer::propose).
    pub rule: String,
    /// The findings it answers (their [`Finding::id`](crate::Finding::id)).
    pub findings: Vec<u64>,
    /// The journal entries behind it: its findings' entries and their
    /// evidence, ascending.
    pub evidence: Vec<u64>,
    /// When the earliest signal behind it was recorded.
    pub onset: Option<SystemTime>,
    /// The actions, applied in order.
    pub actions: Vec<Action>,
    /// The effect it is judged by.
    pub expected: Expected,
    /// The actions that undo it, applied in order on a revert.
    pub inverse: Vec<Action>,
    /// Where it is in its life.
    pub status: PlanStatus,
    /// When it was made.
    pub created: SystemTime,
    /// How long its evaluation waits after it is applied.
    pub evaluation: Duration,
}

impl Plan {
    /// The actions in words, `; `-separated.
    pub fn description(&self) -> String {
        self.actions.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// The shape a managed cell has now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Layout {
    /// The managed cell.
    pub cell: CellPath,
    /// The variant serving the address (`"base"` for the cell's own factory).
    pub variant: String,
    /// The cells of a pool (1 when not split).
    pub pool: usize,
    /// The kinds moved to cells of their own.
    pub isolated: Vec<IsolatedKind>,
    /// The canary running, if any: the kind whose cell shares its traffic
    /// (`None` for the managed cell) and the variant tried.
    pub canary: Option<(Option<String>, String)>,
    /// The managed cell its address forwards to, once retired into it
    /// ([`Action::RetireInto`]).
    pub retired_into: Option<CellPath>,
    /// Whether the pool is keyed ([`SplitBy::Key`]): each key's messages
    /// and stored state belong to one member, and a merge moves the
    /// members' state back into the cell's tree.
    #[cfg_attr(feature = "serde", serde(default))]
    pub keyed: bool,
    /// The kind being shed, if any.
    pub shedding: Option<String>,
    /// Changes so far: a plan made against an older version is stale.
    pub version: u64,
}

/// A kind served by a cell of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct IsolatedKind {
    /// The message kind.
    pub kind: String,
    /// Its cell's path, `<managed cell>/<kind>`.
    pub cell: CellPath,
    /// The variant serving it (`"base"` for the managed cell's factory).
    pub variant: String,
}
