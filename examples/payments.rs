//! The flagship: seed 004's payments system, run through load, two chaos
//! experiments and the recomposition the runtime chooses, with every
//! payment accounted for.
//!
//! ```text
//! load ──► gateway ──► fraud (card, legacy) ──► ledger (sled) ──breaker──► notify (flaky)
//! ```
//!
//! Four phases, with a progress bar (throughput, p99 latency, phase, the
//! latest plan):
//!
//! 1. **baseline**: 150 payments a second, four in five of them a legacy
//!    transaction type;
//! 2. **chaos: legacy slows**: an experiment injects latency into the
//!    legacy check. Its hypothesis, "the fraud cell's checks stay within
//!    4 ms (p99)", fails while the legacy checks run there, and card
//!    payments wait behind them. The runtime's
//!    analysis finds the legacy kind dominating a strained cell and isolates
//!    it into a cell of its own, on a dispatcher of its own;
//! 3. **chaos: notify fails**: a second experiment slows legacy further
//!    and makes notify slow and fail 30 % of its notices. The ledger keeps recording
//!    (the notify breaker opens); notify's objective pages, so the runtime
//!    sheds notify's low class; the isolated legacy cell decays, so the
//!    runtime tries the registered rules engine on a tenth of its traffic
//!    and, no worse, promotes it: the legacy path is retired;
//! 4. **recovery**: the faults are gone; card latency is back at its
//!    baseline.
//!
//! The summary gives the hypotheses' verdicts, the plans kept and
//! reverted, the learning measures, and what became of every payment:
//! recorded + dead-lettered (+ refused, none expected) = sent. The run
//! leaves `report.html`: one self-contained page (no network) with the
//! supervision tree, the flow map before and after each recomposition, the
//! cells' decay over time with the phases marked, the failure signatures,
//! the triage board and every plan with its evidence and verdict.
//!
//! Run: `cargo run --release --example payments` (about 25 s);
//! `-- --quick` (about 10 s), `-- --duration 40s`, `-- --data-dir DIR`
//! (keep the data: sled trees, journal; a fresh temporary directory
//! otherwise; `cargo run -p cellrt-inspect -- DIR report` renders the
//! page again from it), `-- --report FILE` (where the page goes).

#[path = "payments/scenario.rs"]
mod scenario;

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

const USAGE: &str = "usage: payments [--quick] [--duration SECONDS[s]] [--data-dir DIR] [--report FILE]";

fn parse_args() -> Result<scenario::Config, Box<dyn Error>> {
    let mut config = scenario::Config {
        report: Some(PathBuf::from("report.html")),
        ..scenario::Config::standard(Duration::from_secs(24))
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => {
                config = scenario::Config {
                    data_dir: config.data_dir,
                    report: config.report,
                    ..scenario::Config::quick()
                }
            }
            "--duration" => {
                let value = args.next().ok_or(USAGE)?;
                let seconds: f64 = value
                    .trim_end_matches('s')
                    .parse()
                    .map_err(|_| format!("--duration {value}: {USAGE}"))?;
                if !(1.0..=3600.0).contains(&seconds) {
                    return Err(format!("--duration {value}: from 1 to 3600 seconds").into());
                }
                config.duration = Duration::from_secs_f64(seconds);
            }
            "--data-dir" => config.data_dir = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "--report" => config.report = Some(PathBuf::from(args.next().ok_or(USAGE)?)),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}: {USAGE}").into()),
        }
    }
    Ok(config)
}

fn main() -> Result<(), Box<dyn Error>> {
    let config = parse_args()?;
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{bar:30.cyan/blue} {elapsed:>3} {msg}")
            .map_err(|err| format!("progress template: {err}"))?
            .progress_chars("=> "),
    );
    let shown = bar.clone();
    let on_progress: scenario::OnProgress = Box::new(move |p: &scenario::Progress| {
        let done = p.elapsed.as_secs_f64() / p.total.as_secs_f64().max(f64::EPSILON);
        shown.set_position((done.min(1.0) * 1000.0) as u64);
        let ms =
            |d: Option<Duration>| d.map_or("-".to_owned(), |d| format!("{:.1}ms", d.as_secs_f64() * 1e3));
        shown.set_message(format!(
            "{:<20} {:>6} sent {:>4.0}/s  p99 card {:>7} legacy {:>7}  {}",
            p.phase,
            p.sent,
            p.per_second,
            ms(p.card_p99),
            ms(p.legacy_p99),
            p.last_plan.as_deref().unwrap_or("")
        ));
    });
    let report = scenario::run(config, Some(on_progress))?;
    bar.finish_and_clear();
    print!("{report}");
    let p = &report.payments;
    if p.recorded + p.dead_lettered + p.refused != p.sent {
        return Err(format!("payments unaccounted for: {p:?}").into());
    }
    Ok(())
}
