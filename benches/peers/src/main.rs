//! Peers side by side (issue 15): the same seven workloads on cellrt,
//! actix, ractor, kameo and (for 1–3) raw crossbeam-channel, in one run,
//! printed as one markdown table. See `README.md` for what each workload
//! measures and how each framework is called.
//!
//! Usage: `cellrt-peers [--quick] [--only 1,3,...]` (`--only`: a subset of
//! the workloads, by number). The idle-memory workload re-executes this
//! binary as `cellrt-peers --memory <framework> <bounded|default> [--quick]`, one
//! child process per framework, so that one framework's allocations do not
//! pollute another's resident set.

mod actix_side;
mod cellrt_side;
mod crossbeam_side;
mod kameo_side;
mod ractor_side;
mod workload;

use std::panic::{self, AssertUnwindSafe};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use workload::{Mailbox, Outcome, Plan, Row, Side, Skip, Table};

/// Every column, in table order.
const SIDES: [Side; 5] =
    [cellrt_side::SIDE, actix_side::SIDE, ractor_side::SIDE, kameo_side::SIDE, crossbeam_side::SIDE];

/// The peers' versions, as locked in `Cargo.lock`.
const VERSIONS: &str = "actix 0.13.5 (actix-rt 2.15.0) · ractor 0.16.5 · kameo 0.22.2 · tokio 1.54.1 · \
                        crossbeam-channel 0.5.17 · cellrt from this repository";

/// While set, panic messages are not printed (the restart workload panics
/// on purpose thousands of times).
static QUIET_PANICS: AtomicBool = AtomicBool::new(false);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let plan = if quick { Plan::QUICK } else { Plan::FULL };
    if let Some(at) = args.iter().position(|a| a == "--memory") {
        return memory_child(&plan, args.get(at + 1), args.get(at + 2));
    }
    let only = match parse_only(&args) {
        Ok(only) => only,
        Err(error) => {
            eprintln!("{error}; usage: cellrt-peers [--quick] [--only 1,3,...]");
            return ExitCode::FAILURE;
        }
    };
    quiet_panics_when_asked();
    let load_before = load_average();
    let started = Instant::now();
    let table = run(&plan, &only, started);
    let load_after = load_average();
    println!("## cellrt and peers, side by side{}", if quick { " (--quick smoke run)" } else { "" });
    println!();
    println!(
        "{} · {} cores (`available_parallelism`) · {} rounds per cell after one warm-up round · \
         median **bold**, (min–max) · total {:.0} s",
        utc_now(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        plan.rounds,
        started.elapsed().as_secs_f64(),
    );
    println!();
    println!("load average (1/5/15 min, `/proc/loadavg`): {load_before} before, {load_after} after the run");
    println!();
    println!("{VERSIONS}");
    println!();
    print!("{}", table.markdown());
    ExitCode::SUCCESS
}

/// The workload numbers of `--only 1,3,...` (empty: all); an error for
/// any other argument but `--quick`.
fn parse_only(args: &[String]) -> Result<Vec<u32>, String> {
    let mut only = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {}
            "--only" => {
                let list = args.next().ok_or("--only needs a list of workload numbers")?;
                for n in list.split(',') {
                    match n.trim().parse::<u32>() {
                        Ok(n @ 1..=7) => only.push(n),
                        _ => return Err(format!("no workload {n:?} (1 to 7)")),
                    }
                }
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(only)
}

/// Installs a panic hook that stays silent while [`QUIET_PANICS`] is set
/// and otherwise defers to the default one. Installed before any runtime
/// is built, so hooks the frameworks chain on top keep working.
fn quiet_panics_when_asked() {
    let previous = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !QUIET_PANICS.load(Relaxed) {
            previous(info);
        }
    }));
}

/// Runs `f`, turning a panic of the harness or of a framework into a
/// failed cell instead of ending the run.
fn guarded<T>(f: impl FnOnce() -> Result<T, Skip>) -> Result<T, Skip> {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        Err(Skip::Failed(format!("panicked: {what}")))
    })
}

/// Runs one workload across every side, logging progress to stderr.
fn row(name: String, unit: &'static str, started: Instant, f: impl Fn(&Side) -> Outcome) -> Row {
    let outcomes = SIDES
        .iter()
        .map(|side| {
            eprintln!("[{:6.1} s] {name} / {}", started.elapsed().as_secs_f64(), side.name);
            guarded(|| f(side))
        })
        .collect();
    Row { name, unit, outcomes }
}

/// Runs the workloads numbered in `only` (all of them if it is empty).
fn run(plan: &Plan, only: &[u32], started: Instant) -> Table {
    let wanted = |n: u32| only.is_empty() || only.contains(&n);
    let mut rows = Vec::new();
    if wanted(1) {
        rows.push(row("1. counting 1→1".into(), "M msgs/s ↑", started, |s| (s.counting)(plan)));
    }
    if wanted(2) {
        rows.push(row("2. fan-in 4→1".into(), "M msgs/s ↑", started, |s| (s.fan_in)(plan)));
    }
    if wanted(3) {
        let name = "3. ping-pong (thread asks actor)";
        rows.push(row(name.into(), "ns/round trip ↓", started, |s| (s.ping_pong)(plan)));
    }
    if wanted(4) {
        rows.push(row("4. ring of 1,000, 1 worker".into(), "ns/hop ↓", started, |s| (s.ring)(plan, 1)));
        rows.push(row("4. ring of 1,000, 2 workers".into(), "ns/hop ↓", started, |s| (s.ring)(plan, 2)));
    }
    if wanted(5) {
        let name = format!("5. spawn {} actors", thousands(plan.actors));
        rows.push(row(name, "k actors/s ↑", started, |s| (s.spawn)(plan)));
    }
    if wanted(6) {
        for mailbox in [Mailbox::Bounded, Mailbox::Default] {
            let name = match mailbox {
                Mailbox::Bounded => "6. idle memory, mailbox 1024",
                Mailbox::Default => "6. idle memory, default mailbox",
            };
            rows.push(row(name.into(), "B/actor ↓", started, |s| memory_in_child(plan, s, mailbox)));
        }
    }
    if wanted(7) {
        restart_rows(plan, started, &mut rows);
    }
    Table { columns: SIDES.iter().map(|s| s.name).collect(), rows }
}

/// Workload 7: one measurement per side gives two rows (p50 and p99).
fn restart_rows(plan: &Plan, started: Instant, rows: &mut Vec<Row>) {
    // Restarts give two rows from one measurement.
    QUIET_PANICS.store(true, Relaxed);
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for side in &SIDES {
        eprintln!("[{:6.1} s] 7. restart / {}", started.elapsed().as_secs_f64(), side.name);
        match guarded(|| (side.restart)(plan)) {
            Ok((a, b)) => {
                p50.push(Ok(a));
                p99.push(Ok(b));
            }
            Err(skip) => {
                p50.push(Err(skip.clone()));
                p99.push(Err(skip));
            }
        }
    }
    QUIET_PANICS.store(false, Relaxed);
    rows.push(Row { name: "7. restart after a panic, p50".into(), unit: "µs ↓", outcomes: p50 });
    rows.push(Row { name: "7. restart after a panic, p99".into(), unit: "µs ↓", outcomes: p99 });
}

/// `100000` as `100,000`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs the idle-memory workload of `side` in a child process.
fn memory_in_child(plan: &Plan, side: &Side, mailbox: Mailbox) -> Outcome {
    let exe = std::env::current_exe().map_err(|e| Skip::Failed(format!("current_exe: {e}")))?;
    let mut command = Command::new(exe);
    command.args(["--memory", side.name, mailbox.arg()]);
    if plan.quick {
        command.arg("--quick");
    }
    let output = command.output().map_err(|e| Skip::Failed(format!("child: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if stdout.lines().any(|line| line == "not-applicable") {
        return Err(Skip::NotApplicable);
    }
    if let Some(why) = stdout.lines().find_map(|line| line.strip_prefix("cannot ")) {
        // A handful of short texts per run: leaking them is harmless.
        return Err(Skip::Cannot(Box::leak(why.to_owned().into_boxed_str())));
    }
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("bytes-per-actor "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| vec![v])
        .ok_or_else(|| {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let last = stderr.lines().last().unwrap_or("").to_owned();
            Skip::Failed(format!("child {}: {} {last}", output.status, stdout.trim()))
        })
}

/// The child process of the idle-memory workload: prints
/// `bytes-per-actor <value>` or the error.
fn memory_child(plan: &Plan, side: Option<&String>, mailbox: Option<&String>) -> ExitCode {
    let side = SIDES.iter().find(|s| Some(&s.name.to_owned()) == side);
    let mailbox = mailbox.and_then(|m| Mailbox::parse(m));
    let (Some(side), Some(mailbox)) = (side, mailbox) else {
        eprintln!("usage: cellrt-peers --memory <framework> <bounded|default> [--quick]");
        return ExitCode::FAILURE;
    };
    match guarded(|| (side.memory)(plan, mailbox)) {
        Ok(bytes) => {
            println!("bytes-per-actor {bytes:.1}");
            ExitCode::SUCCESS
        }
        Err(Skip::NotApplicable) => {
            println!("not-applicable");
            ExitCode::SUCCESS
        }
        Err(Skip::Cannot(why)) => {
            println!("cannot {why}");
            ExitCode::SUCCESS
        }
        Err(Skip::Failed(error)) => {
            println!("error {error}");
            ExitCode::FAILURE
        }
    }
}

/// Resident set size of this process, in bytes (`VmRSS` of
/// `/proc/self/status`).
fn rss() -> Result<u64, Skip> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| Skip::Failed(format!("{e}")))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| Skip::Failed("no VmRSS in /proc/self/status".into()))
}

/// RSS growth per actor across `spawn_all` (which spawns `n` idle actors
/// and waits until they started), measured after the process settled.
pub(crate) fn rss_per_actor(n: usize, spawn_all: impl FnOnce() -> Result<(), Skip>) -> Result<f64, Skip> {
    let settle = || thread::sleep(Duration::from_millis(200));
    settle();
    let before = rss()?;
    spawn_all()?;
    settle();
    let after = rss()?;
    Ok((after as f64 - before as f64) / n as f64)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them
/// (other processes' load makes the figures noisy: the header says how
/// busy the machine was).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rem / 3_600, rem % 3_600 / 60)
}
