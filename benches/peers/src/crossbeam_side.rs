//! The raw baseline for workloads 1–3: plain threads and crossbeam
//! `bounded(1024)` channels, no framework. A dash for 4–7.

use std::thread;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::workload::{
    millions_per_sec, nanos_each, repeat, timed, Mailbox, Outcome, Plan, Side, Skip, CAPACITY, PRODUCERS,
    WAIT,
};

/// The baseline's column.
pub const SIDE: Side = Side {
    name: "crossbeam-channel (baseline)",
    counting,
    fan_in,
    ping_pong,
    ring: |_, _| Err(Skip::NotApplicable),
    spawn: |_| Err(Skip::NotApplicable),
    memory: |_, _: Mailbox| Err(Skip::NotApplicable),
    restart: |_| Err(Skip::NotApplicable),
};

/// Requests of the consumer thread: the shape of the actors' messages.
enum Raw {
    Add(u64),
    Take(Sender<(u64, u64)>),
}

/// A consumer thread counting and summing what arrives on a
/// `bounded(1024)` channel; answers and resets on `Take`.
fn consumer() -> (Sender<Raw>, thread::JoinHandle<()>) {
    let (tx, rx) = bounded::<Raw>(CAPACITY);
    let handle = thread::spawn(move || {
        let (mut count, mut sum) = (0_u64, 0_u64);
        for msg in rx {
            match msg {
                Raw::Add(n) => {
                    count += 1;
                    sum = sum.wrapping_add(n);
                }
                Raw::Take(reply) => {
                    let _ = reply.send((count, sum));
                    (count, sum) = (0, 0);
                }
            }
        }
    });
    (tx, handle)
}

fn take(tx: &Sender<Raw>, expected: u64) -> Result<(), Skip> {
    let (reply, answer) = bounded(1);
    tx.send(Raw::Take(reply)).map_err(|_| "consumer gone")?;
    let got = answer.recv_timeout(WAIT).map_err(|_| "no answer")?;
    if got != (expected, Plan::sum_below(expected)) {
        return Err(format!("counted {got:?}, expected {expected}").into());
    }
    Ok(())
}

fn with_consumer(f: impl FnOnce(&Sender<Raw>) -> Outcome) -> Outcome {
    let (tx, handle) = consumer();
    let outcome = f(&tx);
    drop(tx);
    handle.join().map_err(|_| "consumer panicked")?;
    outcome
}

fn counting(plan: &Plan) -> Outcome {
    with_consumer(|tx| {
        repeat(
            plan,
            || {
                timed(|| {
                    for n in 0..plan.messages {
                        tx.send(Raw::Add(n)).map_err(|_| "consumer gone")?;
                    }
                    take(tx, plan.messages)
                })
                .map(|(d, ())| d)
            },
            millions_per_sec(plan.messages),
        )
    })
}

fn fan_in(plan: &Plan) -> Outcome {
    let per = plan.per_producer();
    with_consumer(|tx| {
        repeat(
            plan,
            || {
                timed(|| {
                    thread::scope(|scope| {
                        for p in 0..PRODUCERS {
                            scope.spawn(move || {
                                for n in 0..per {
                                    if tx.send(Raw::Add(p * per + n)).is_err() {
                                        break;
                                    }
                                }
                            });
                        }
                    });
                    take(tx, per * PRODUCERS)
                })
                .map(|(d, ())| d)
            },
            millions_per_sec(per * PRODUCERS),
        )
    })
}

/// A server thread answering each number with the number plus one.
fn echo() -> (Sender<u64>, Receiver<u64>, thread::JoinHandle<()>) {
    let (req_tx, req_rx) = bounded::<u64>(CAPACITY);
    let (resp_tx, resp_rx) = bounded::<u64>(CAPACITY);
    let handle = thread::spawn(move || {
        for n in req_rx {
            if resp_tx.send(n + 1).is_err() {
                break;
            }
        }
    });
    (req_tx, resp_rx, handle)
}

fn ping_pong(plan: &Plan) -> Outcome {
    let (req, resp, handle) = echo();
    let outcome = repeat(
        plan,
        || {
            timed(|| {
                let mut n = 0;
                for _ in 0..plan.round_trips {
                    req.send(n).map_err(|_| "echo gone")?;
                    n = resp.recv_timeout(WAIT).map_err(|_| "no answer")?;
                }
                Ok(n)
            })
            .map(|(d, _)| d)
        },
        nanos_each(plan.round_trips),
    );
    drop(req);
    handle.join().map_err(|_| "echo panicked")?;
    outcome
}
