//! Who decides: the engine's [`Mode`], its [`RecomposeConfig`] (the
//! built-in rules' thresholds and the guards), the user [`Policy`] trait,
//! and the built-in rules themselves.
//!
//! # Built-in rules, in the order they are tried
//!
//! A rule must hold for `sustain` windows in a row before it becomes a
//! finding. At most one plan per cell is in flight.
//!
//! 1. **isolate**: the cell has two or more message kinds, one of them
//!    takes at least `isolate_share` of its handling time, and the cell is
//!    strained (mean time in queue at least `strain_queue_delay`, or its
//!    mailbox at least `strain_saturation` full, or its decay above its
//!    threshold). Plan: isolate that kind; expected: queue delay falls by
//!    half.
//! 2. **shed**: the cell's objective has its page alert firing and the
//!    application declared a sheddable kind. Plan: shed it past
//!    `shed_watermark`; expected: queue delay falls by a quarter.
//! 3. **canary**: a variant is registered and the managed cell (served by
//!    its base, alone) or an isolated kind's cell (served by the base)
//!    decays. Plan: a canary of the first variant on `canary_share` of that
//!    cell's traffic; expected: the canary's failure ratio (when fragility
//!    leads the decay) or queue delay is no worse than the cell's, over the
//!    same windows; then it is promoted (the variant takes all the traffic).
//! 4. **split**: the cell is registered stateless or keyed and its mailbox
//!    is at least `split_saturation` full (or refused a send). Plan: a pool
//!    of `split_into`, round-robin for a stateless cell, else by key;
//!    expected: queue delay falls by a quarter.
//! 5. **merge**: the cell is a pool whose fullest mailbox stayed under
//!    `merge_saturation`, with nothing refused, for `merge_windows`
//!    windows. Plan: merge; expected: queue delay holds.

use std::fmt;
use std::time::Duration;

use super::analyze::CellWindow;
use super::error::RecomposeConfigError;
use super::plan::{Action, Expected, Layout, Metric, SplitBy};

/// Whether the engine acts on its findings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum Mode {
    /// Plans are applied as soon as they are made.
    Auto,
    /// Plans wait for [`Recomposer::approve`](crate::Recomposer::approve)
    /// or [`Recomposer::reject`](crate::Recomposer::reject).
    #[default]
    Propose,
    /// The engine makes no plans of its own (plans made by hand still wait
    /// for approval); evaluation of applied plans goes on.
    Off,
}

/// A plan a [`Policy`] proposes for one cell.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Proposal {
    /// What was found, in words.
    pub summary: String,
    /// The actions, applied in order.
    pub actions: Vec<Action>,
    /// The effect the plan is judged by.
    pub expected: Expected,
}

impl Proposal {
    /// A proposal of `actions`, judged by `expected`.
    pub fn new(summary: impl Into<String>, actions: Vec<Action>, expected: Expected) -> Self {
        Proposal { summary: summary.into(), actions, expected }
    }
}

/// An application's own rule, tried after the built-in ones on every window
/// of every managed cell with no plan in flight.
///
/// A policy that panics is disabled (and the journal says so); the engine
/// goes on with its built-in rules.
pub trait Policy: Send + 'static {
    /// The policy's name, recorded as the rule of its findings and plans.
    fn name(&self) -> &str;

    /// A plan for the cell whose last window is `window`, if one is called
    /// for.
    fn propose(&mut self, window: &CellWindow, layout: &Layout) -> Option<Proposal>;
}

/// The engine's settings: its mode, the built-in rules' thresholds and the
/// guards. Every setter documents its default.
#[derive(Clone, Debug, PartialEq)]
pub struct RecomposeConfig {
    pub(crate) mode: Mode,
    pub(crate) sustain: u32,
    pub(crate) baseline_windows: u32,
    pub(crate) evaluation_windows: u32,
    pub(crate) cooldown_windows: u32,
    pub(crate) max_changes_share: f64,
    pub(crate) tolerance: f64,
    pub(crate) evidence_lookback: Duration,
    pub(crate) isolate_share: f64,
    pub(crate) strain_queue_delay: Duration,
    pub(crate) strain_saturation: f64,
    pub(crate) split_saturation: f64,
    pub(crate) split_into: usize,
    pub(crate) merge_saturation: f64,
    pub(crate) merge_windows: u32,
    pub(crate) shed_watermark: f64,
    pub(crate) canary_share: f64,
}

impl Default for RecomposeConfig {
    fn default() -> Self {
        RecomposeConfig {
            mode: Mode::Propose,
            sustain: 2,
            baseline_windows: 2,
            evaluation_windows: 3,
            cooldown_windows: 5,
            max_changes_share: 0.25,
            tolerance: 0.1,
            evidence_lookback: Duration::from_secs(60),
            isolate_share: 0.6,
            strain_queue_delay: Duration::from_millis(10),
            strain_saturation: 0.5,
            split_saturation: 0.8,
            split_into: 2,
            merge_saturation: 0.1,
            merge_windows: 5,
            shed_watermark: 0.5,
            canary_share: 0.1,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl RecomposeConfig {
    setter!(
        /// Whether plans are applied at once, wait for approval, or are not
        /// made. Default [`Mode::Propose`].
        mode: Mode
    );
    setter!(
        /// Windows in a row a rule must hold before it becomes a finding.
        /// Default 2; at least 1.
        sustain: u32
    );
    setter!(
        /// Windows before a plan whose mean is its "before" (the windows its
        /// rule held in, with the default `sustain`). Default 2; at least 1.
        baseline_windows: u32
    );
    setter!(
        /// Windows after a plan is applied before it is evaluated (its
        /// "after" is their mean). The window the plan is applied in and the
        /// one after it are not counted: they still hold what was queued
        /// before. Default 3; at least 1.
        evaluation_windows: u32
    );
    setter!(
        /// Windows after a plan ends before the same cell may get another.
        /// Default 5.
        cooldown_windows: u32
    );
    setter!(
        /// The share of managed cells that may get a new plan in one window
        /// (at least one cell). Default 0.25; in (0, 1].
        max_changes_share: f64
    );
    setter!(
        /// How much worse than before (as a fraction, beyond the metric's
        /// floor) a plan's metric may be and still be kept. Default 0.1; 0 or more.
        tolerance: f64
    );
    setter!(
        /// How far back a finding looks for journal entries about its cell.
        /// Default 60 s.
        evidence_lookback: Duration
    );
    setter!(
        /// The share of handling time one kind must take for `isolate`.
        /// Default 0.6; in (0, 1].
        isolate_share: f64
    );
    setter!(
        /// The mean time in queue at which a cell is strained. Default 10 ms.
        strain_queue_delay: Duration
    );
    setter!(
        /// How full a mailbox must be for its cell to be strained. Default 0.5; in (0, 1].
        strain_saturation: f64
    );
    setter!(
        /// How full a stateless or keyed cell's mailbox must be for `split`.
        /// Default 0.8; in (0, 1].
        split_saturation: f64
    );
    setter!(
        /// The pool `split` makes. Default 2; at least 2.
        split_into: usize
    );
    setter!(
        /// How full a pool's fullest mailbox may be for `merge`. Default 0.1; in [0, 1)
        /// and below `split_saturation`, so that a merged pool is not split
        /// again at once.
        merge_saturation: f64
    );
    setter!(
        /// Windows in a row a pool must stay under `merge_saturation` for
        /// `merge`. Default 5; at least 1.
        merge_windows: u32
    );
    setter!(
        /// The watermark `shed` installs for the sheddable kind. Default 0.5; in (0, 1].
        shed_watermark: f64
    );

    setter!(
        /// The share of a decaying cell's traffic a canary gets. Default 0.1; in (0, 1).
        canary_share: f64
    );

    /// Checks every value against its documented range, in the order the
    /// fields are declared; the first one out of range is the error.
    /// [`Recomposer::new`](crate::Recomposer::new) calls it.
    ///
    /// # Errors
    ///
    /// [`RecomposeConfigError`], naming the setting.
    pub fn validate(&self) -> Result<(), RecomposeConfigError> {
        let windows = |field: &'static str, value: u32| {
            if value == 0 {
                Err(RecomposeConfigError::ZeroWindows { field })
            } else {
                Ok(())
            }
        };
        let within = |field: &'static str, value: f64, valid: fn(f64) -> bool| {
            if valid(value) {
                Ok(())
            } else {
                Err(RecomposeConfigError::Fraction { field, value })
            }
        };
        let above_zero_to_one = |v: f64| v > 0.0 && v <= 1.0;
        windows("sustain", self.sustain)?;
        windows("baseline_windows", self.baseline_windows)?;
        windows("evaluation_windows", self.evaluation_windows)?;
        within("max_changes_share", self.max_changes_share, above_zero_to_one)?;
        if !(self.tolerance.is_finite() && self.tolerance >= 0.0) {
            return Err(RecomposeConfigError::Tolerance { value: self.tolerance });
        }
        within("isolate_share", self.isolate_share, above_zero_to_one)?;
        within("strain_saturation", self.strain_saturation, above_zero_to_one)?;
        within("split_saturation", self.split_saturation, above_zero_to_one)?;
        if self.split_into < 2 {
            return Err(RecomposeConfigError::SplitInto { value: self.split_into });
        }
        within("merge_saturation", self.merge_saturation, |v| (0.0..1.0).contains(&v))?;
        if self.merge_saturation >= self.split_saturation {
            return Err(RecomposeConfigError::MergeNotBelowSplit {
                merge_saturation: self.merge_saturation,
                split_saturation: self.split_saturation,
            });
        }
        windows("merge_windows", self.merge_windows)?;
        within("shed_watermark", self.shed_watermark, above_zero_to_one)?;
        within("canary_share", self.canary_share, |v| v > 0.0 && v < 1.0)?;
        Ok(())
    }
}

/// A built-in rule's conclusion for one window.
pub(crate) struct Candidate {
    pub(crate) rule: &'static str,
    /// How many windows in a row it must hold.
    pub(crate) sustain: u32,
    pub(crate) proposal: Proposal,
}

impl fmt::Debug for Candidate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidate").field("rule", &self.rule).finish_non_exhaustive()
    }
}

/// What the built-in rules know of a managed cell beyond its window.
pub(crate) struct CellFacts {
    pub(crate) stateless: bool,
    pub(crate) keyed: bool,
    pub(crate) max_pool: usize,
    pub(crate) variants: Vec<String>,
    pub(crate) sheddable: Vec<String>,
}

/// The built-in rules' candidates for one window, in order of preference.
pub(crate) fn built_in(
    config: &RecomposeConfig,
    window: &CellWindow,
    layout: &Layout,
    facts: &CellFacts,
) -> Vec<Candidate> {
    let mut found = Vec::new();
    if window.stopped {
        return found;
    }
    let cell = &layout.cell;
    let decaying = window.decay.as_ref().is_some_and(|d| d.decaying);
    let strained = window.queue_delay >= config.strain_queue_delay
        || window.saturation >= config.strain_saturation
        || decaying;
    let split = layout.pool > 1;
    // 1. isolate
    if strained && !split && window.kinds.len() >= 2 {
        let top = &window.kinds[0];
        let isolated = layout.isolated.iter().any(|i| i.kind == top.kind);
        if top.busy_share >= config.isolate_share && !isolated {
            found.push(Candidate {
                rule: "isolate",
                sustain: config.sustain,
                proposal: Proposal::new(
                    format!(
                        "kind {:?} takes {:.0}% of {cell}'s handling time while its messages wait {:?} in queue",
                        top.kind,
                        top.busy_share * 100.0,
                        window.queue_delay
                    ),
                    vec![Action::Isolate { cell: cell.clone(), kind: top.kind.clone() }],
                    Expected::Fall { metric: Metric::QueueDelay, by: 0.5 },
                ),
            });
        }
    }
    // 2. shed
    if window.burn_page && layout.shedding.is_none() {
        if let Some(kind) = facts.sheddable.first() {
            found.push(Candidate {
                rule: "shed",
                sustain: config.sustain,
                proposal: Proposal::new(
                    format!("{cell} burns its error budget at the page rate; {kind:?} may be shed"),
                    vec![Action::Shed {
                        cell: cell.clone(),
                        kind: kind.clone(),
                        watermark: config.shed_watermark,
                    }],
                    Expected::Fall { metric: Metric::QueueDelay, by: 0.25 },
                ),
            });
        }
    }
    // 3. canary: a decaying path tries a registered variant on a share of
    // its traffic; the plan promotes it if it is no worse.
    if let (Some(variant), None) = (facts.variants.first(), &layout.canary) {
        let metric = match &window.decay {
            Some(d) if d.fragility >= d.cost.max(d.drag) => Metric::FailureRatio,
            _ => Metric::QueueDelay,
        };
        let canary = |kind: Option<String>, what: String| Candidate {
            rule: "canary",
            sustain: config.sustain,
            proposal: Proposal::new(
                format!("{what} decays; variant {variant:?} is registered"),
                vec![Action::Canary {
                    cell: cell.clone(),
                    kind,
                    variant: variant.clone(),
                    share: config.canary_share,
                }],
                Expected::Canary { metric },
            ),
        };
        if decaying && layout.variant == super::apply::BASE && !split && layout.isolated.is_empty() {
            found.push(canary(None, cell.to_string()));
        }
        for isolated in layout.isolated.iter().filter(|i| i.variant == super::apply::BASE) {
            if window.cell(&isolated.cell).is_some_and(|c| c.decaying && !c.stopped) {
                found.push(canary(
                    Some(isolated.kind.clone()),
                    format!("the cell of kind {:?}", isolated.kind),
                ));
                break;
            }
        }
    }
    // 4. split
    if (facts.stateless || facts.keyed)
        && !split
        && layout.isolated.is_empty()
        && window.saturation >= config.split_saturation
    {
        let into = config.split_into.min(facts.max_pool);
        let by = if facts.stateless { SplitBy::Stateless } else { SplitBy::Key };
        if into >= 2 {
            found.push(Candidate {
                rule: "split",
                sustain: config.sustain,
                proposal: Proposal::new(
                    format!("{cell}'s mailbox is {:.0}% full", window.saturation * 100.0),
                    vec![Action::Split { cell: cell.clone(), into, by }],
                    Expected::Fall { metric: Metric::QueueDelay, by: 0.25 },
                ),
            });
        }
    }
    // 5. merge
    if split && window.saturation <= config.merge_saturation && window.rejected == 0 {
        found.push(Candidate {
            rule: "merge",
            sustain: config.merge_windows,
            proposal: Proposal::new(
                format!("the pool of {cell} stays under {:.0}% full", config.merge_saturation * 100.0),
                vec![Action::Merge { cell: cell.clone() }],
                Expected::Hold { metric: Metric::QueueDelay },
            ),
        });
    }
    found
}

/// The variant serving isolated `kind` in `layout` (`"base"` when unknown).
fn kind_variant(layout: &Layout, kind: &str) -> String {
    layout
        .isolated
        .iter()
        .find(|i| i.kind == kind)
        .map_or_else(|| super::apply::BASE.to_owned(), |i| i.variant.clone())
}

/// The actions that undo `actions`, given the layout before them.
pub(crate) fn inverse(actions: &[Action], before: &Layout, shed_watermark: f64) -> Vec<Action> {
    actions
        .iter()
        .rev()
        .map(|action| match action {
            Action::Replace { cell, .. } => {
                Action::Replace { cell: cell.clone(), variant: before.variant.clone() }
            }
            Action::Split { cell, .. } => Action::Merge { cell: cell.clone() },
            Action::Merge { cell } => {
                let by = if before.keyed { SplitBy::Key } else { SplitBy::Stateless };
                Action::Split { cell: cell.clone(), into: before.pool, by }
            }
            Action::Isolate { cell, kind } => {
                Action::Retire { cell: cell.clone(), kind: kind.clone(), successor: None }
            }
            Action::Retire { cell, kind, successor: None } => {
                Action::Isolate { cell: cell.clone(), kind: kind.clone() }
            }
            Action::Retire { cell, kind, successor: Some(_) } => Action::Retire {
                cell: cell.clone(),
                kind: kind.clone(),
                successor: Some(kind_variant(before, kind)),
            },
            Action::RetireInto { cell, .. } => {
                Action::Replace { cell: cell.clone(), variant: before.variant.clone() }
            }
            Action::Canary { cell, kind, .. } => Action::EndCanary { cell: cell.clone(), kind: kind.clone() },
            Action::Promote { cell, kind: None } => {
                Action::Replace { cell: cell.clone(), variant: before.variant.clone() }
            }
            Action::Promote { cell, kind: Some(kind) } => Action::Retire {
                cell: cell.clone(),
                kind: kind.clone(),
                successor: Some(kind_variant(before, kind)),
            },
            // Ending a canary changes what serves nothing: the canary cannot
            // be started again as it was (its share of traffic is gone).
            Action::EndCanary { cell, kind } => match &before.canary {
                Some((_, variant)) => Action::Canary {
                    cell: cell.clone(),
                    kind: kind.clone(),
                    variant: variant.clone(),
                    share: 0.1,
                },
                None => Action::EndCanary { cell: cell.clone(), kind: kind.clone() },
            },
            Action::Shed { cell, .. } => Action::Admit { cell: cell.clone() },
            Action::Admit { cell } => Action::Shed {
                cell: cell.clone(),
                kind: before.shedding.clone().unwrap_or_default(),
                watermark: shed_watermark,
            },
        })
        .collect()
}
