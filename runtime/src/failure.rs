//! Failures: what went wrong in a cell, as a value.
//!
//! Every handler error, panic and failed `started` hook becomes one
//! [`Failure`]: which cell, which kind of cell, in which hook, handling which
//! kind of message, why, where, and when. Supervision decides what to do with
//! it; observation folds it into a failure signature. Keep it complete: a
//! field dropped here is evidence lost downstream.
//!
//! # Panic locations
//!
//! A panic payload does not carry its location, so the runtime installs a
//! process-wide panic hook (once, chained to the hook that was there before)
//! that records the location of panics raised inside cell code. The previous
//! hook still runs, so panics are printed as usual, unless the runtime was
//! built with `quiet_panics(true)`. A hook installed later by the application
//! replaces ours; locations are then `None`.

use std::any::Any;
use std::cell::{Cell as StdCell, RefCell};
use std::fmt;
use std::sync::Once;
use std::time::SystemTime;

use crate::path::CellPath;

/// One failure of one cell.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// The cell that failed.
    pub path: CellPath,
    /// The Rust type of the cell, as `std::any::type_name` gives it.
    pub cell_kind: &'static str,
    /// The hook that failed.
    pub hook: Hook,
    /// The kind of the message being handled, from [`Cell::message_kind`];
    /// `None` outside `handle`.
    ///
    /// [`Cell::message_kind`]: crate::Cell::message_kind
    pub message_kind: Option<&'static str>,
    /// The error or panic.
    pub cause: FailureCause,
    /// When it happened.
    pub at: SystemTime,
}

/// The lifecycle hook in which a failure happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Hook {
    /// [`Cell::started`](crate::Cell::started): the cell never ran.
    Started,
    /// [`Cell::handle`](crate::Cell::handle).
    Handle,
    /// [`Cell::stopped`](crate::Cell::stopped).
    Stopped,
}

/// Why a cell failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureCause {
    /// The hook returned an error.
    Error {
        /// The error's text (its `Display`, with sources joined by `: `).
        text: String,
        /// The error's Rust type, when it came from a typed error.
        type_name: Option<&'static str>,
    },
    /// The hook panicked.
    Panic {
        /// The payload as text: the `&str` or `String` given to `panic!`, or
        /// a note naming a payload of another type.
        payload: String,
        /// Where the panic was raised, when known.
        location: Option<PanicLocation>,
    },
    /// The cell's storage failed: reading or writing its data, loading or
    /// saving a durable cell's state (an unreadable state is quarantined).
    #[cfg(feature = "storage")]
    Storage(crate::store::StoreError),
    /// The handler ran longer than its deadline
    /// ([`ChildSpec::deadline`](crate::ChildSpec::deadline)).
    DeadlineExceeded {
        /// The deadline.
        deadline: std::time::Duration,
        /// How long it had run: when the watchdog saw it, or when it returned.
        elapsed: std::time::Duration,
    },
    /// A supervisor's start failed because one of its children failed to
    /// start (OTP: `{shutdown, {failed_to_start_child, Id, Reason}}`). The
    /// child's own reason nests: a child supervisor's is this cause again,
    /// down to the child that failed of itself.
    ChildStart {
        /// The child's id.
        id: String,
        /// The child's path.
        path: crate::path::CellPath,
        /// How the child's start ended: its own failure (the error its
        /// `started` returned, a panic…), or, for a supervisor, this cause.
        reason: Box<crate::cell::StopReason>,
    },
    /// Not a failure of the cell: the message's deadline (from
    /// [`Addr::ask_within`](crate::Addr::ask_within) or
    /// [`Addr::try_send_by`](crate::Addr::try_send_by)) had passed when its
    /// turn came, so it was not handled. Only dead letters carry this cause;
    /// it reaches neither supervision nor the failure signatures.
    Expired {
        /// How long after the deadline the message was taken.
        late_by: std::time::Duration,
    },
    /// Not a failure of the cell: a chaos fault
    /// ([`FaultKind::Drop`](crate::FaultKind::Drop), or a
    /// [`FaultKind::Delay`](crate::FaultKind::Delay) whose late delivery
    /// was refused) dropped the message before its handler ran. Only dead letters carry this cause; it
    /// reaches neither supervision nor the failure signatures.
    #[cfg(feature = "chaos")]
    Injected {
        /// The fault, as the spec grammar writes it.
        fault: String,
    },
}

/// Source location of a panic.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PanicLocation {
    /// Source file.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub column: u32,
}

impl fmt::Display for PanicLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

impl FailureCause {
    /// Whether two causes are the same failure, for poison-message
    /// detection: equal, but for how long an overrun handler had run.
    pub(crate) fn same_as(&self, other: &FailureCause) -> bool {
        match (self, other) {
            (
                FailureCause::DeadlineExceeded { deadline: a, .. },
                FailureCause::DeadlineExceeded { deadline: b, .. },
            ) => a == b,
            _ => self == other,
        }
    }
}

impl Failure {
    /// Whether the failure was a panic.
    pub fn is_panic(&self) -> bool {
        matches!(self.cause, FailureCause::Panic { .. })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = match self.hook {
            Hook::Started => "started",
            Hook::Handle => "handle",
            Hook::Stopped => "stopped",
        };
        write!(f, "cell {} failed in {hook}", self.path)?;
        if let Some(kind) = self.message_kind {
            write!(f, " ({kind})")?;
        }
        match &self.cause {
            FailureCause::Error { text, .. } => write!(f, ": error: {text}"),
            FailureCause::Panic { payload, location: Some(at) } => {
                write!(f, ": panicked at {at}: {payload}")
            }
            FailureCause::Panic { payload, location: None } => write!(f, ": panicked: {payload}"),
            FailureCause::DeadlineExceeded { deadline, elapsed } => {
                write!(f, ": overran its deadline of {deadline:?} ({elapsed:?})")
            }
            FailureCause::ChildStart { id, reason, .. } => match &**reason {
                crate::cell::StopReason::Failed(inner) => write!(f, ": child {id} failed to start: {inner}"),
                other => write!(f, ": child {id} stopped while starting: {other}"),
            },
            FailureCause::Expired { late_by } => write!(f, ": deadline passed {late_by:?} before handling"),
            #[cfg(feature = "chaos")]
            FailureCause::Injected { fault } => write!(f, ": dropped by an injected fault ({fault})"),
            #[cfg(feature = "storage")]
            FailureCause::Storage(err) => write!(f, ": storage: {err}"),
        }
    }
}

/// Turns a panic payload into text.
pub(crate) fn payload_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// What this thread knows of the cell code running on it. Plain cells in
/// one thread-local without a destructor: a turn sets and clears them with
/// no registration check and no borrow.
struct InCell {
    /// Set while cell code runs on this thread.
    running: StdCell<bool>,
    /// Suppress the previous hook's report for panics in cell code.
    quiet: StdCell<bool>,
    /// The address slot of the cell whose turn runs on this thread, as a
    /// number (0: none), for `Addr::ask` to refuse a cell asking itself.
    slot: StdCell<usize>,
    /// Whether `LAST_LOCATION` may hold a location (the hook recorded one
    /// and it was not taken since): only then does a turn clear it.
    recorded: StdCell<bool>,
}

thread_local! {
    static IN_CELL: InCell = const {
        InCell {
            running: StdCell::new(false),
            quiet: StdCell::new(false),
            slot: StdCell::new(0),
            recorded: StdCell::new(false),
        }
    };
    /// Location of the last panic raised in cell code on this thread.
    static LAST_LOCATION: RefCell<Option<PanicLocation>> = const { RefCell::new(None) };
}

/// The address slot (as a number, see `InCellGuard::enter`) of the cell
/// whose turn runs on this thread; 0 when no cell's does.
#[inline]
pub(crate) fn running_slot() -> usize {
    IN_CELL.with(|in_cell| in_cell.slot.get())
}

static HOOK: Once = Once::new();

/// Installs the chained panic hook once per process.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let (running, quiet) = IN_CELL.with(|in_cell| (in_cell.running.get(), in_cell.quiet.get()));
            if running {
                let location = info.location().map(|l| PanicLocation {
                    file: l.file().to_owned(),
                    line: l.line(),
                    column: l.column(),
                });
                LAST_LOCATION.with(|last| *last.borrow_mut() = location);
                IN_CELL.with(|in_cell| in_cell.recorded.set(true));
                if quiet {
                    return;
                }
            }
            previous(info);
        }));
    });
}

/// Marks this thread as running cell code for the guard's lifetime.
pub(crate) struct InCellGuard;

impl InCellGuard {
    /// Marks the turn of the cell served through the address slot at
    /// `slot` (its pointer as a number), until dropped.
    /// A location left from an earlier panic on this thread is cleared.
    #[inline]
    pub(crate) fn enter(quiet: bool, slot: usize) -> Self {
        let stale = IN_CELL.with(|in_cell| {
            in_cell.running.set(true);
            in_cell.quiet.set(quiet);
            in_cell.slot.set(slot);
            in_cell.recorded.replace(false)
        });
        if stale {
            LAST_LOCATION.with(|last| last.borrow_mut().take());
        }
        InCellGuard
    }

    /// The location recorded for the panic just caught on this thread.
    pub(crate) fn take_location(&self) -> Option<PanicLocation> {
        IN_CELL.with(|in_cell| in_cell.recorded.set(false));
        LAST_LOCATION.with(|last| last.borrow_mut().take())
    }
}

impl Drop for InCellGuard {
    #[inline]
    fn drop(&mut self) {
        IN_CELL.with(|in_cell| {
            in_cell.running.set(false);
            in_cell.quiet.set(false);
            in_cell.slot.set(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_text_reads_str_string_and_other_payloads() {
        assert_eq!(payload_text(&"boom"), "boom");
        assert_eq!(payload_text(&String::from("bang")), "bang");
        assert_eq!(payload_text(&42_u32), "non-string panic payload");
    }

    #[test]
    fn display_names_path_hook_message_kind_and_cause() {
        let failure = Failure {
            path: CellPath::root().child("parser").unwrap(),
            cell_kind: "app::Parser",
            hook: Hook::Handle,
            message_kind: Some("Line"),
            cause: FailureCause::Panic {
                payload: "bad byte".into(),
                location: Some(PanicLocation { file: "src/parser.rs".into(), line: 7, column: 9 }),
            },
            at: SystemTime::UNIX_EPOCH,
        };
        assert_eq!(
            failure.to_string(),
            "cell /parser failed in handle (Line): panicked at src/parser.rs:7:9: bad byte"
        );
        assert!(failure.is_panic());
    }
}
