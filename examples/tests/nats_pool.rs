//! The nats_pool example's run: two worker processes share the work of a
//! gateway over a NATS queue group; one leaves and the other takes it all.
//! See `nats_pool/main.rs`. Needs `nats-server` (or `NATS_URL`): without
//! one, the test says it skipped, unless `CELLRT_REQUIRE_NATS=1`.

#[path = "../nats_pool/pool.rs"]
mod pool;

use std::process::Command;

/// A worker process: this test binary, run again. Ignored: the test below
/// runs it in processes of its own.
#[test]
#[ignore = "a worker process of the test below"]
fn worker() {
    let Ok(url) = std::env::var("CELLRT_NATS_POOL_WORKER") else { return };
    pool::run_worker(&url).expect("the worker serves");
}

#[test]
fn two_workers_share_the_jobs_and_when_one_leaves_the_other_does_them_all() {
    let server = match pool::Server::find_or_start() {
        Ok(server) => server,
        Err(e) => {
            let required = std::env::var("CELLRT_REQUIRE_NATS").is_ok_and(|v| v == "1");
            assert!(!required, "{e}, and CELLRT_REQUIRE_NATS=1");
            eprintln!("SKIPPED: {e}");
            return;
        }
    };
    let program = std::env::current_exe().unwrap();
    let summary = pool::run_gateway(&server.url, 100, || {
        let mut command = Command::new(&program);
        command
            .args(["--exact", "worker", "--ignored", "--nocapture", "--test-threads", "1"])
            .env("CELLRT_NATS_POOL_WORKER", &server.url);
        command
    })
    .expect("the gateway runs");
    assert_eq!(summary.members, (2, 1), "two members, then one after a worker left");
    let (first, second) = summary.first_round;
    assert_eq!(first + second, 100);
    assert!(first > 0 && second > 0, "the queue group spread the work: {first} and {second}");
    assert_eq!(summary.second_round, (0, 100), "the remaining worker did every job");
    assert!(summary.all_correct);
}
