//! Objectives and error-budget burn rates.

/// The alerts of the multiwindow, multi-burn-rate rule (Google SRE
/// workbook, "Alerting on SLOs"): each fires when the error budget burns
/// at least its factor faster than sustainable over both its long and its
/// short window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum BurnAlert {
    /// 14.4× over the fast pair of windows (by default 1 h and 5 min): 2 %
    /// of a 30-day budget in an hour. Pages.
    Fast,
    /// 6× over the slow pair (by default 6 h and 30 min): 5 % of the budget
    /// in six hours. Pages.
    Slow,
    /// 1× over the ticket pair (by default 3 days and 6 h): 10 % of the
    /// budget in three days. Opens a ticket.
    Ticket,
}
