//! One round of the counting story, once, for instruction counts: one
//! producer thread sends 1,000,000 `u64` to one cell with the blocking
//! `Addr::send`, then asks for the count. Meant to run under
//! `valgrind --tool=callgrind`, whose counts (unlike times) repeat from run
//! to run, to compare two settings of the runtime by the instructions its
//! worker spends per message (see `docs/benchmarks.md`).
//!
//! ```text
//! cargo build -p cellrt-benches --release --example counting_once
//! valgrind --tool=callgrind --toggle-collect='*CellInstance*run_turn*' \
//!     target/release/examples/counting_once kind-evidence-off
//! ```
//!
//! Settings (one argument): `defaults`, `kind-evidence-on`,
//! `kind-evidence-off`, `observation-off`. One worker thread, mailbox
//! capacity 32, as in `counting_kind_evidence`.

use std::process::exit;
use std::time::Duration;

use cellrt::{Cell, CellError, Context, ObservationConfig, Reply, Runtime};

const MESSAGES: u64 = 1_000_000;

enum Msg {
    Add(u64),
    Take(Reply<(u64, u64)>),
}

#[derive(Default)]
struct Counter {
    count: u64,
    sum: u64,
}

impl Cell for Counter {
    type Message = Msg;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Add(n) => {
                self.count += 1;
                self.sum = self.sum.wrapping_add(n);
            }
            Msg::Take(reply) => {
                let _ = reply.send((self.count, self.sum));
            }
        }
        Ok(())
    }
}

fn main() {
    let setting = std::env::args().nth(1).unwrap_or_else(|| "defaults".to_owned());
    let observation = match setting.as_str() {
        "defaults" | "kind-evidence-on" => ObservationConfig::default(),
        "kind-evidence-off" => ObservationConfig::default().kind_evidence(false),
        "observation-off" => ObservationConfig::disabled(),
        other => {
            eprintln!(
                "unknown setting {other:?}: defaults, kind-evidence-on, kind-evidence-off, observation-off"
            );
            exit(2);
        }
    };
    let rt = Runtime::builder()
        .worker_threads(1)
        .default_capacity(32)
        .observation(observation)
        .build()
        .expect("runtime builds");
    let addr = rt.spawn(Counter::default()).expect("spawn");
    for n in 0..MESSAGES {
        addr.send(Msg::Add(n)).expect("send");
    }
    let (count, sum) = addr.ask(Msg::Take).expect("ask").wait(Duration::from_secs(600)).expect("answer");
    assert_eq!(count, MESSAGES);
    println!("{setting}: {count} messages, sum {sum}");
    rt.shutdown(Duration::from_secs(60));
}
