//! Decay: per-cell baselines and the fragility, cost and drag measured
//! against them.
