//! Project automation for cellrt.
//!
//! `cargo xtask test` runs every test of the workspace: unit, integration and
//! doc tests, the embedded core without default features, and the loom models
//! (which need the crate rebuilt with `--cfg cellrt_loom`, in a target
//! directory of their own so the normal build stays cached).
//!
//! `cargo xtask loom` runs only the loom models.

use std::env;
use std::process::{exit, Command};

/// Preemption bound of the loom models: 2 finds the classic lost-wake-up
/// interleavings in milliseconds and keeps every model within minutes.
const LOOM_MAX_PREEMPTIONS: &str = "2";

fn main() {
    let task = env::args().nth(1).unwrap_or_else(|| "test".to_owned());
    let steps: &[Step] = match task.as_str() {
        "test" => &[Step::Workspace, Step::EmbeddedCore, Step::Loom],
        "loom" => &[Step::Loom],
        other => {
            eprintln!("unknown task {other:?}; tasks: test (everything, loom included), loom");
            exit(2);
        }
    };
    for step in steps {
        step.run();
    }
    println!("xtask: all test steps passed");
}

enum Step {
    /// Unit, integration and doc tests of every crate, examples built.
    Workspace,
    /// The runtime alone with `--no-default-features`: the embedded core.
    EmbeddedCore,
    /// The loom models against the real protocol code.
    Loom,
}

impl Step {
    fn run(&self) {
        let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut cmd = Command::new(cargo);
        let title = match self {
            Step::Workspace => {
                cmd.args(["test", "--workspace"]);
                "workspace tests (unit, integration, doc)"
            }
            Step::EmbeddedCore => {
                cmd.args(["test", "-p", "cellrt", "--no-default-features", "--lib", "--tests"]);
                "embedded core (--no-default-features)"
            }
            Step::Loom => {
                let mut rustflags = env::var("RUSTFLAGS").unwrap_or_default();
                if !rustflags.is_empty() {
                    rustflags.push(' ');
                }
                rustflags.push_str("--cfg cellrt_loom");
                cmd.env("RUSTFLAGS", rustflags);
                if env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
                    cmd.env("LOOM_MAX_PREEMPTIONS", LOOM_MAX_PREEMPTIONS);
                }
                cmd.args(["test", "-p", "cellrt-loom-tests", "--release", "--target-dir", "target/loom"]);
                "loom models (--cfg cellrt_loom, release)"
            }
        };
        println!("xtask: {title}: {cmd:?}");
        let status = cmd.status().unwrap_or_else(|err| {
            eprintln!("xtask: cannot run cargo: {err}");
            exit(1);
        });
        if !status.success() {
            eprintln!("xtask: {title} failed");
            exit(status.code().unwrap_or(1));
        }
    }
}
