//! The crash test: a durable ledger (`ledger-crash-child`, `Durability::PerMessage`)
//! is killed with SIGKILL at random moments, again and again on the same data
//! directory. Every acknowledged append must be there after each restart, and
//! the ledger must be exactly 0, 1, 2, … (no gap, nothing applied twice).

#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const CYCLES: usize = 24;

/// A small deterministic generator; the seed is printed to replay a run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn start(dir: &std::path::Path) -> (Child, impl Iterator<Item = String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ledger-crash-child"))
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the ledger starts");
    let lines = BufReader::new(child.stdout.take().unwrap()).lines().map(|l| l.expect("a line"));
    (child, lines)
}

#[test]
fn every_acknowledged_append_survives_repeated_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rng = Rng(seed);
    println!("seed {seed}");
    let mut acked: Option<u64> = None;
    let mut total_acks = 0_u64;
    for cycle in 0..CYCLES {
        let (mut child, mut lines) = start(dir.path());
        let state = lines.next().expect("the ledger reports its state");
        let fields: Vec<&str> = state.split(' ').collect();
        assert_eq!(fields[0], "state", "{state}");
        let len: u64 = fields[1].parse().unwrap();
        assert_eq!(fields[2], "consistent", "cycle {cycle}: the ledger is 0, 1, 2, … with no gap or repeat");
        if let Some(last) = acked {
            assert!(len > last, "cycle {cycle}: append {last} was acknowledged, the ledger holds {len}");
            // Only the append in flight at the kill may be there unacknowledged.
            assert!(len <= last + 2, "cycle {cycle}: {len} entries, {last} acknowledged last");
        }
        // Kill after a random number of acknowledgements, or a random time.
        let kill_after = rng.below(150);
        let deadline = Instant::now() + Duration::from_millis(rng.below(400));
        let mut seen = 0;
        for line in lines.by_ref() {
            let n: u64 = line.strip_prefix("ack ").expect("an ack line").parse().unwrap();
            assert_eq!(n, len + seen, "acks follow the ledger");
            acked = Some(n);
            seen += 1;
            if seen >= kill_after || Instant::now() >= deadline {
                break;
            }
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        // Acks printed before the kill and not read yet count too.
        for line in lines {
            let n: u64 = line.strip_prefix("ack ").expect("an ack line").parse().unwrap();
            assert_eq!(n, len + seen, "acks follow the ledger");
            acked = Some(n);
            seen += 1;
        }
        total_acks += seen;
    }
    let (mut child, mut lines) = start(dir.path());
    let state = lines.next().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    println!("{CYCLES} kills, {total_acks} acknowledged appends, final {state}");
    assert!(total_acks > 0, "the ledger made progress");
    let len: u64 = state.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(acked.is_none_or(|last| len > last), "{state}, last acknowledged {acked:?}");
    assert!(state.ends_with("consistent") && !state.ends_with("inconsistent"), "{state}");
}

#[test]
fn a_data_directory_held_by_another_process_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut lines) = start(dir.path());
    assert!(lines.next().unwrap().starts_with("state 0 "), "the other process has the directory open");
    let started = Instant::now();
    let err = cellrt::Runtime::builder().storage(cellrt::StorageConfig::dir(dir.path())).build().unwrap_err();
    assert_eq!(
        err,
        cellrt::BuildError::Storage(cellrt::StoreError::Locked { path: dir.path().to_path_buf() })
    );
    assert!(started.elapsed() < Duration::from_secs(5), "refused, not waited for");
    child.kill().unwrap();
    child.wait().unwrap();
}
