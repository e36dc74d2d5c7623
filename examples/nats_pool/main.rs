//! A pool of workers across processes, over NATS: two worker processes
//! each export the same cell (`cellrt.pool.jobs`), so they form one NATS
//! queue group, and a gateway process imports it as an `Addr<Job>` and asks
//! it for work. Halfway, one worker leaves: the gateway sees the pool shrink
//! to one member, and the work goes on on the other.
//!
//! Run: `cargo run -p cellrt-examples --example nats_pool` (`--smoke` for a
//! short run). It uses the server at `NATS_URL`, or starts `nats-server`
//! on a free port (`apt-get install nats-server`). The example starts its
//! workers itself, as copies of its own binary (`--worker <url>`).

mod pool;

use std::process::Command;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--worker") {
        let url = args.get(at + 1).expect("--worker <url>");
        if let Err(e) = pool::run_worker(url) {
            eprintln!("worker: {e}");
            std::process::exit(1);
        }
        return;
    }
    let jobs = if args.iter().any(|a| a == "--smoke") { 100 } else { 2_000 };
    let server = match pool::Server::find_or_start() {
        Ok(server) => server,
        Err(e) => {
            eprintln!("nats_pool: {e}");
            std::process::exit(2);
        }
    };
    let program = std::env::current_exe().expect("the example's own binary");
    let url = server.url.clone();
    let summary = pool::run_gateway(&server.url, jobs, || {
        let mut command = Command::new(&program);
        command.args(["--worker", &url]);
        command
    });
    match summary {
        Ok(summary) => {
            println!("pool members: {} then {} after one worker left", summary.members.0, summary.members.1);
            println!(
                "first {jobs} jobs: {} on worker 1, {} on worker 2",
                summary.first_round.0, summary.first_round.1
            );
            println!(
                "next {jobs} jobs:  {} on worker 1, {} on worker 2",
                summary.second_round.0, summary.second_round.1
            );
            println!("every answer correct: {}", summary.all_correct);
        }
        Err(e) => {
            eprintln!("nats_pool: {e}");
            std::process::exit(1);
        }
    }
}
