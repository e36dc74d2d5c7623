//! Triage: the category of each signal.
