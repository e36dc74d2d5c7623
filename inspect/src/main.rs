//! `cellrt-inspect`: reads the data directory of a stopped cellrt
//! application and prints what it holds.
//!
//! ```text
//! cellrt-inspect <DIR> tree                 the supervision tree, with restarts
//! cellrt-inspect <DIR> cells                path, kind, mailbox, decay, restarts
//! cellrt-inspect <DIR> signatures           failure signatures
//! cellrt-inspect <DIR> journal [--since 5m|TIME] [--after-seq N] [--limit N]
//! cellrt-inspect <DIR> plans                recomposition plans, and those kept for the next run
//! cellrt-inspect <DIR> report -o run.html   the self-contained HTML report
//! cellrt-inspect <DIR> verify               every tree read through, quarantined states listed
//! ```
//!
//! `--json` prints any command's answer as JSON. Cells, decay and mailboxes
//! come from the latest snapshot the application recorded
//! (`Runtime::record_snapshot`); without one, from the journal alone.
//!
//! The storage engine admits one process per directory: a directory held
//! by a running application is refused at once (exit code 4). `--copy`
//! reads it anyway: it copies the directory to a temporary one and reads
//! the copy, which holds what the application had flushed (its journal and
//! recorded snapshots are flushed as they are written).
//!
//! Exit codes: 0 done; 1 `verify` found a problem; 2 bad arguments; 3 the
//! path is missing, not a directory, or not a data directory; 4 the
//! directory is in use; 5 the storage or the output failed.
//!
//! - `main.rs`: the arguments, errors and exit codes.
//! - `commands.rs`: what each command reads and prints.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use cellrt::report::{DataDir, DataDirError, ReportError};
use clap::{Parser, Subcommand};

/// Reads the data directory of a stopped cellrt application.
#[derive(Debug, Parser)]
#[command(name = "cellrt-inspect", version)]
struct Cli {
    /// The application's data directory (its `StorageConfig::dir`).
    dir: PathBuf,
    /// Print the answer as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Read a copy of the directory, taken now: for an application that is
    /// running.
    #[arg(long, global = true)]
    copy: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The supervision tree, with restarts.
    Tree,
    /// Every cell: path, kind, mailbox depth, decay, restarts.
    Cells,
    /// Failure signatures, the most frequent first.
    Signatures,
    /// Journal entries, oldest first.
    Journal {
        /// Only entries recorded at most this long ago (`90s`, `5m`, `2h`,
        /// `1day`), or at or after a time (`2026-12-05T09:30:00Z`).
        #[arg(long, value_parser = parse_since)]
        since: Option<SystemTime>,
        /// Only entries after this one.
        #[arg(long)]
        after_seq: Option<u64>,
        /// Only the latest N entries.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Recomposition plans, and the plans kept for the next run.
    Plans,
    /// Writes the self-contained HTML report.
    Report {
        /// Where to write it.
        #[arg(short, long, default_value = "report.html")]
        output: PathBuf,
    },
    /// Reads every tree through and lists quarantined states.
    Verify,
}

/// `--since`: a time in RFC 3339, or a duration before now.
fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        return Ok(time);
    }
    let ago = humantime::parse_duration(text)
        .map_err(|err| format!("neither a time (2026-12-05T09:30:00Z) nor a duration (5m): {err}"))?;
    Ok(SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
enum Failure {
    /// The data directory could not be opened or read.
    DataDir(DataDirError),
    /// The report could not be written.
    Report(ReportError),
    /// The answer could not be printed.
    Output(String),
    /// `verify` found problems (already printed).
    Unsound,
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Unsound => 1,
            Failure::DataDir(
                DataDirError::Missing { .. }
                | DataDirError::NotADirectory { .. }
                | DataDirError::NotADataDir { .. },
            ) => 3,
            Failure::DataDir(DataDirError::Locked { .. }) => 4,
            Failure::DataDir(_) | Failure::Report(_) | Failure::Output(_) => 5,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::DataDir(err) => err.fmt(f),
            Failure::Report(err) => err.fmt(f),
            Failure::Output(reason) => write!(f, "cannot print the answer: {reason}"),
            Failure::Unsound => f.write_str("the data directory has problems (listed above)"),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("cellrt-inspect: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    // The copy lives as long as the command runs.
    let scratch;
    let dir = if cli.copy {
        scratch = tempfile::tempdir()
            .map_err(|err| Failure::Output(format!("cannot make a temporary directory: {err}")))?;
        DataDir::open_copy(&cli.dir, scratch.path().join("copy"))
    } else {
        DataDir::open(&cli.dir)
    };
    let dir = dir.map_err(Failure::DataDir)?;
    let out = commands::Out { json: cli.json };
    match &cli.command {
        Command::Tree => commands::tree(&dir, out),
        Command::Cells => commands::cells(&dir, out),
        Command::Signatures => commands::signatures(&dir, out),
        Command::Journal { since, after_seq, limit } => {
            commands::journal(&dir, out, *since, *after_seq, *limit)
        }
        Command::Plans => commands::plans(&dir, out),
        Command::Report { output } => commands::report(&dir, out, output),
        Command::Verify => commands::verify(&dir, out),
    }
}
