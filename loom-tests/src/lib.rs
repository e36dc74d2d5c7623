//! Loom models of cellrt's protocols live in `tests/`; this library is empty.
