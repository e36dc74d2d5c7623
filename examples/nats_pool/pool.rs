//! The pool: workers that each export the same `jobs` cell, so they form one
//! NATS queue group, and a gateway that imports it and asks it for work.
//! Shared by the example (`main.rs`) and its test.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cellrt::{Cell, CellConfig, CellError, Context, Reply, Runtime};
use cellrt_nats::{Answers, Asks, Bridge, BridgeConfig, Bridged};
use serde::{Deserialize, Serialize};

/// The application's name in subjects: the pool serves `cellrt.pool.jobs`.
const APP: &str = "pool";
/// The exported cell's path.
const JOBS: &str = "jobs";

/// A job: square a number; the answer names the worker process.
pub(crate) enum Job {
    Square(u64, Reply<Done>),
}

/// A job's result and the process that did it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Done {
    pub(crate) worker: u32,
    pub(crate) square: u64,
}

#[derive(Serialize, Deserialize)]
pub(crate) enum JobWire {
    Square(u64),
}

impl Bridged for Job {
    type Wire = JobWire;

    fn into_wire(self, asks: &mut Asks) -> JobWire {
        let Job::Square(n, reply) = self;
        asks.expect(reply);
        JobWire::Square(n)
    }

    fn from_wire(wire: JobWire, answers: &mut Answers) -> Job {
        let JobWire::Square(n) = wire;
        Job::Square(n, answers.reply())
    }
}

struct Squarer;

impl Cell for Squarer {
    type Message = Job;

    fn handle(&mut self, _ctx: &mut Context<Self>, job: Job) -> Result<(), CellError> {
        let Job::Square(n, reply) = job;
        let _ = reply.send(Done { worker: std::process::id(), square: n * n });
        Ok(())
    }
}

/// A worker process: exports its squarer under `cellrt.pool.jobs`, says
/// `READY`, and serves until its standard input closes.
pub(crate) fn run_worker(url: &str) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().build()?;
    let squarer = runtime.spawn_with(CellConfig::named("squarer"), Squarer)?;
    let bridge = Bridge::connect(BridgeConfig::new(url, APP))?;
    let export = bridge.export(&runtime, JOBS, &squarer)?;
    println!("READY {}", export.member());
    for _ in std::io::stdin().lock().lines() {}
    export.stop();
    runtime.shutdown(Duration::from_secs(5));
    Ok(())
}

/// A worker process started by the gateway.
pub(crate) struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Worker {
    /// Starts `command` (which must run [`run_worker`]) and waits for its
    /// `READY`.
    pub(crate) fn start(mut command: Command) -> Result<Worker, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start a worker: {e}"))?;
        let stdin = child.stdin.take();
        let stdout: ChildStdout = child.stdout.take().ok_or("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("READY ") => break,
                Some(Ok(_)) => continue,
                _ => return Err("a worker ended before it was ready".into()),
            }
        }
        // The rest of what it prints is read and dropped, so that it never
        // writes to a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Worker { child, stdin })
    }

    /// Closes the worker's input: it stops exporting and exits.
    pub(crate) fn leave(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the gateway saw.
#[derive(Debug)]
pub(crate) struct Summary {
    /// Pool members before and after the first worker left.
    pub(crate) members: (usize, usize),
    /// Jobs of the first round, done by each worker (first, second).
    pub(crate) first_round: (u64, u64),
    /// Jobs of the second round, done by each worker (first, second).
    pub(crate) second_round: (u64, u64),
    /// Every answer was the right square.
    pub(crate) all_correct: bool,
}

/// The gateway: starts two workers with `worker`, imports the pool, asks it
/// `jobs` squares, lets the first worker leave, asks `jobs` more.
pub(crate) fn run_gateway(url: &str, jobs: u64, worker: impl Fn() -> Command) -> Result<Summary, String> {
    let first = Worker::start(worker())?;
    let second = Worker::start(worker())?;
    let pids = (first.child.id(), second.child.id());
    let runtime = Runtime::builder().build().map_err(|e| e.to_string())?;
    let bridge = Bridge::connect(BridgeConfig::new(url, APP)).map_err(|e| e.to_string())?;
    let pool = bridge.import::<Job>(&runtime, JOBS).map_err(|e| e.to_string())?;
    let members_before = pool.members(Duration::from_millis(300)).map_err(|e| e.to_string())?.len();
    let mut all_correct = true;
    let mut round = |from: u64| -> Result<(u64, u64), String> {
        let mut done = (0, 0);
        for n in from..from + jobs {
            let answer = pool
                .addr()
                .ask_within(Duration::from_secs(5), |reply| Job::Square(n, reply))
                .map_err(|e| format!("the gateway's bridge cell refused a job: {e}"))?
                .wait(Duration::from_secs(5))
                .map_err(|e| format!("job {n} unanswered: {e}"))?;
            all_correct &= answer.square == n * n;
            if answer.worker == pids.0 {
                done.0 += 1;
            } else if answer.worker == pids.1 {
                done.1 += 1;
            }
        }
        Ok(done)
    };
    let first_round = round(0)?;
    first.leave();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut members_after = members_before;
    while Instant::now() < deadline {
        members_after = pool.members(Duration::from_millis(300)).map_err(|e| e.to_string())?.len();
        if members_after < members_before {
            break;
        }
    }
    let second_round = round(jobs)?;
    second.leave();
    runtime.shutdown(Duration::from_secs(5));
    Ok(Summary { members: (members_before, members_after), first_round, second_round, all_correct })
}

/// A NATS server: `NATS_URL`, or `nats-server` started on a free loopback
/// port (`CELLRT_NATS_SERVER`, the path, or Debian's `/usr/sbin`), killed
/// when dropped.
pub(crate) struct Server {
    pub(crate) url: String,
    child: Option<Child>,
}

impl Server {
    pub(crate) fn find_or_start() -> Result<Server, String> {
        if let Ok(url) = std::env::var("NATS_URL") {
            return Ok(Server { url, child: None });
        }
        let program = match std::env::var("CELLRT_NATS_SERVER") {
            Ok(path) => Some(PathBuf::from(path)).filter(|p| p.is_file()),
            Err(_) => std::env::var_os("PATH")
                .map(|paths| std::env::split_paths(&paths).map(|d| d.join("nats-server")).collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .chain([PathBuf::from("/usr/sbin/nats-server")])
                .find(|p| p.is_file()),
        };
        let program = program.ok_or(
            "no NATS server: set NATS_URL to one, or install nats-server (apt-get install nats-server)",
        )?;
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
        let child = Command::new(program)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start nats-server: {e}"))?;
        let server = Server { url: format!("nats://127.0.0.1:{port}"), child: Some(child) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(server)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
