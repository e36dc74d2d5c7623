//! Ready-made cells built on cellrt's public API.
