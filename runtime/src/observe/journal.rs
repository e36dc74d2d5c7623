//! The signal journal.
