//! Project automation for cellrt.
//!
//! `cargo xtask test` runs every check of the workspace: the size of the
//! embedded core's dependency tree, unit, integration and doc tests, the
//! embedded core without default features, the runtime's API docs with every
//! feature and with none (warnings denied, so a broken link fails), and
//! the loom models (which need the crate rebuilt with `--cfg cellrt_loom`,
//! in a target directory of their own so the normal build stays cached).
//!
//! `cargo xtask loom` runs only the loom models, `cargo xtask docs` only the
//! docs, `cargo xtask deps` only the count of the embedded core's crates,
//! `cargo xtask size` only the size of the embedded hello (the runtime's
//! `hello` example without default features, built with the `min-size`
//! profile, stripped) against its budget.
//!
//! Some tests call programs from outside the toolchain: the report's opens a
//! page in Chromium, the live export's checks `/metrics` with Prometheus's
//! `promtool`, the NATS bridge's run a `nats-server`. Where one is missing
//! its tests skip that check, and `xtask test` says so before and after the
//! run; `CELLRT_REQUIRE_BROWSER=1`, `CELLRT_REQUIRE_PROMTOOL=1` and
//! `CELLRT_REQUIRE_NATS=1` (set by `.ci/run`) make a missing one fail.

use std::collections::BTreeSet;
use std::env;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{exit, Command, Stdio};

/// Preemption bound of the loom models: 2 finds the classic lost-wake-up
/// interleavings in milliseconds and keeps every model within minutes.
const LOOM_MAX_PREEMPTIONS: &str = "2";

/// The most crates the embedded core may pull in: what `cargo tree` lists for
/// cellrt without default features, normal dependencies on the host target,
/// cellrt itself included.
const EMBEDDED_CRATES_MAX: usize = 10;

/// The most bytes the embedded hello may take, stripped: the project's
/// target for the smallest program a board runs (`docs/benchmarks.md`,
/// "Embedded footprint").
const EMBEDDED_HELLO_MAX: u64 = 450_000;

fn main() {
    let task = env::args().nth(1).unwrap_or_else(|| "test".to_owned());
    let steps: &[Step] = match task.as_str() {
        "test" => &[
            Step::EmbeddedDependencies,
            Step::EmbeddedSize,
            Step::Workspace,
            Step::EmbeddedCore,
            Step::Docs { all_features: true },
            Step::Docs { all_features: false },
            Step::Loom,
        ],
        "loom" => &[Step::Loom],
        "docs" => &[Step::Docs { all_features: true }, Step::Docs { all_features: false }],
        "deps" => &[Step::EmbeddedDependencies],
        "size" => &[Step::EmbeddedSize],
        other => {
            eprintln!(
                "unknown task {other:?}; tasks: test (everything, loom included), loom, docs, deps, size"
            );
            exit(2);
        }
    };
    let missing = if task == "test" { missing_programs() } else { Vec::new() };
    for (program, check) in &missing {
        println!("xtask: {program} not found: {check} will be skipped");
    }
    let mut totals = Totals::default();
    for step in steps {
        step.run(&mut totals);
    }
    println!("xtask: all steps passed");
    println!("xtask: {} passed, {} failed", totals.passed, totals.failed);
    for (program, check) in &missing {
        println!("xtask: SKIPPED {check}: {program} not found");
    }
}

/// The outside programs the tests call that cannot be found, with the check
/// each one's absence skips; the tests look them up the same way.
fn missing_programs() -> Vec<(&'static str, &'static str)> {
    let runs = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let browser = env::var("CELLRT_BROWSER").map_or_else(
        |_| ["chromium", "chromium-browser", "google-chrome"].iter().any(|name| runs(name)),
        |browser| runs(&browser),
    );
    let promtool = runs(&env::var("CELLRT_PROMTOOL").unwrap_or_else(|_| "promtool".to_owned()));
    // Debian installs it in /usr/sbin, which a user's path may not hold.
    let nats_server = env::var("CELLRT_NATS_SERVER")
        .map_or_else(|_| runs("nats-server") || runs("/usr/sbin/nats-server"), |server| runs(&server));
    let mut missing = Vec::new();
    if !nats_server {
        missing.push((
            "nats-server (apt-get install nats-server)",
            "the NATS bridge's tests against a real server",
        ));
    }
    if !browser {
        missing.push(("chromium (apt-get install chromium)", "opening the rendered reports in a browser"));
    }
    if !promtool {
        missing.push(("promtool (apt-get install prometheus)", "checking /metrics with promtool"));
    }
    missing
}

/// Test counts summed over every `test result:` line cargo printed.
#[derive(Default)]
struct Totals {
    passed: u64,
    failed: u64,
}

impl Totals {
    /// Adds the counts of a line like `test result: ok. 12 passed; 0 failed; …`.
    fn add(&mut self, line: &str) {
        let Some(rest) = line.trim_start().strip_prefix("test result: ") else { return };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(count)) = (words.next(), words.next()) else { continue };
            let Ok(count) = count.parse::<u64>() else { continue };
            match label {
                "passed" => self.passed += count,
                "failed" => self.failed += count,
                _ => {}
            }
        }
    }
}

enum Step {
    /// The crates the embedded core depends on, counted against
    /// [`EMBEDDED_CRATES_MAX`].
    EmbeddedDependencies,
    /// The embedded hello's stripped size, against [`EMBEDDED_HELLO_MAX`].
    EmbeddedSize,
    /// Unit, integration and doc tests of every crate, examples built.
    Workspace,
    /// The runtime alone with `--no-default-features`: the embedded core.
    EmbeddedCore,
    /// The runtime's API docs, warnings (unresolved links) denied; doc tests
    /// run with the workspace's tests.
    Docs {
        /// With every feature (`report`, `tokio`, `http` included), or with none.
        all_features: bool,
    },
    /// The loom models against the real protocol code.
    Loom,
}

impl Step {
    fn run(&self, totals: &mut Totals) {
        let mut cmd = Command::new(cargo());
        let title = match self {
            Step::EmbeddedDependencies => {
                check_embedded_dependencies();
                return;
            }
            Step::EmbeddedSize => {
                check_embedded_size();
                return;
            }
            Step::Workspace => {
                cmd.args(["test", "--workspace"]);
                "workspace tests (unit, integration, doc)"
            }
            Step::EmbeddedCore => {
                cmd.args(["test", "-p", "cellrt", "--no-default-features"]);
                "embedded core (--no-default-features: unit, integration, doc tests, examples)"
            }
            Step::Docs { all_features } => {
                let mut rustdocflags = env::var("RUSTDOCFLAGS").unwrap_or_default();
                if !rustdocflags.is_empty() {
                    rustdocflags.push(' ');
                }
                rustdocflags.push_str("-D warnings");
                cmd.env("RUSTDOCFLAGS", rustdocflags);
                cmd.args(["doc", "--no-deps", "-p", "cellrt"]);
                if *all_features {
                    cmd.arg("--all-features");
                    "API docs (every feature, warnings denied)"
                } else {
                    cmd.arg("--no-default-features");
                    "API docs (--no-default-features, warnings denied)"
                }
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
        // cargo's test output is passed through line by line and counted.
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap_or_else(|err| {
            eprintln!("xtask: cannot run cargo: {err}");
            exit(1);
        });
        if let Some(stdout) = child.stdout.take() {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("{line}");
                totals.add(&line);
            }
        }
        let status = child.wait().unwrap_or_else(|err| {
            eprintln!("xtask: cargo did not finish: {err}");
            exit(1);
        });
        exit_unless_success(status, title);
    }
}

/// Exits with the step's own code when it did not succeed.
fn exit_unless_success(status: std::process::ExitStatus, title: &str) {
    if !status.success() {
        eprintln!("xtask: {title} failed");
        exit(status.code().unwrap_or(1));
    }
}

/// The cargo that runs this task.
fn cargo() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// Counts the crates of the embedded core's tree; exits if there are more
/// than [`EMBEDDED_CRATES_MAX`].
fn check_embedded_dependencies() {
    let title = "embedded core dependencies";
    let mut cmd = Command::new(cargo());
    cmd.args(["tree", "-p", "cellrt", "--no-default-features", "-e", "normal", "--prefix", "none"]);
    println!("xtask: {title}: {cmd:?}");
    let output = cmd.stderr(Stdio::inherit()).output().unwrap_or_else(|err| {
        eprintln!("xtask: cannot run cargo: {err}");
        exit(1);
    });
    if !output.status.success() {
        eprintln!("xtask: {title}: cargo tree failed");
        exit(output.status.code().unwrap_or(1));
    }
    let listed = String::from_utf8_lossy(&output.stdout);
    let crates = crates_in_tree(&listed);
    let names: Vec<&str> = crates.iter().map(|(name, _)| *name).collect();
    println!(
        "xtask: {title}: {} crates of at most {EMBEDDED_CRATES_MAX}: {}",
        crates.len(),
        names.join(", ")
    );
    if crates.len() > EMBEDDED_CRATES_MAX {
        eprintln!(
            "xtask: {title}: {} crates, more than {EMBEDDED_CRATES_MAX}; the embedded core must stay small",
            crates.len()
        );
        exit(1);
    }
}

/// Builds the embedded hello and weighs it; exits if it takes more than
/// [`EMBEDDED_HELLO_MAX`] bytes.
fn check_embedded_size() {
    let title = "embedded hello size";
    let mut cmd = Command::new(cargo());
    cmd.args([
        "build",
        "-p",
        "cellrt",
        "--no-default-features",
        "--profile",
        "min-size",
        "--example",
        "hello",
    ]);
    println!("xtask: {title}: {cmd:?}");
    let status = cmd.status().unwrap_or_else(|err| {
        eprintln!("xtask: cannot run cargo: {err}");
        exit(1);
    });
    exit_unless_success(status, title);
    let binary = target_dir().join("min-size").join("examples").join("hello");
    let bytes = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or_else(|err| {
        eprintln!("xtask: {title}: cannot read {}: {err}", binary.display());
        exit(1);
    });
    println!("xtask: {title}: {bytes} bytes of at most {EMBEDDED_HELLO_MAX} ({})", binary.display());
    if bytes > EMBEDDED_HELLO_MAX {
        eprintln!("xtask: {title}: {bytes} bytes, more than {EMBEDDED_HELLO_MAX}; the embedded core must stay small");
        exit(1);
    }
}

/// Where cargo builds: `CARGO_TARGET_DIR` if set, else the workspace's
/// `target`.
fn target_dir() -> PathBuf {
    env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
        xtask.parent().unwrap_or(xtask).join("target")
    })
}

/// The distinct crates (name, version) in the output of
/// `cargo tree --prefix none`, one a line, repeats marked `(*)` or not.
fn crates_in_tree(listed: &str) -> BTreeSet<(&str, &str)> {
    listed
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            Some((words.next()?, words.next()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{crates_in_tree, Totals};

    #[test]
    fn a_crate_listed_twice_in_the_tree_counts_once() {
        let listed = "cellrt v0.1.0 (/src/runtime)\n\
                      crossbeam-channel v0.5.17\n\
                      crossbeam-utils v0.8.23\n\
                      crossbeam-utils v0.8.23\n\
                      tracing v0.1.44\n\
                      tracing-core v0.1.36 (*)\n\
                      tracing-core v0.1.36\n\
                      \n";
        let crates: Vec<_> = crates_in_tree(listed).into_iter().collect();
        assert_eq!(
            crates,
            [
                ("cellrt", "v0.1.0"),
                ("crossbeam-channel", "v0.5.17"),
                ("crossbeam-utils", "v0.8.23"),
                ("tracing", "v0.1.44"),
                ("tracing-core", "v0.1.36"),
            ]
        );
    }

    #[test]
    fn totals_sum_passed_and_failed_of_cargo_result_lines() {
        let mut totals = Totals::default();
        totals.add(
            "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.08s",
        );
        totals.add("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out");
        totals.add("running 5 tests");
        assert_eq!((totals.passed, totals.failed), (15, 2));
    }
}
