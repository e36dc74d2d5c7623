//! What the bridge's tests share: a real `nats-server` on a loopback port
//! (started, killed and restarted on the same port), the second process
//! (this test binary, run again in a role), and the message type that
//! crosses.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use cellrt::{Cell, CellError, Context, Reply};
use cellrt_nats::{Answers, Asks, Bridged};
use serde::{Deserialize, Serialize};

/// The environment variable naming the role of a second process.
pub const ROLE: &str = "CELLRT_NATS_PEER";
/// The environment variable giving a second process the server's URL.
pub const URL: &str = "CELLRT_NATS_URL";

/// `nats-server`: `CELLRT_NATS_SERVER`, else on the path, else where Debian
/// installs it (`/usr/sbin`, often not on a user's path).
pub fn server_program() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("CELLRT_NATS_SERVER") {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).map(|dir| dir.join("nats-server")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path.into_iter().chain([PathBuf::from("/usr/sbin/nats-server")]).find(|path| path.is_file())
}

/// A running `nats-server` with JetStream, its store in a temporary
/// directory, on a free loopback port it keeps across restarts.
pub struct Server {
    program: PathBuf,
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl Server {
    /// Starts a server, or, without `nats-server`, says the test is skipped
    /// and returns `None`; with `CELLRT_REQUIRE_NATS=1` (as CI sets) a
    /// missing server fails the test instead.
    pub fn start() -> Option<Server> {
        let Some(program) = server_program() else {
            let required = std::env::var("CELLRT_REQUIRE_NATS").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "nats-server not found and CELLRT_REQUIRE_NATS=1: install it (apt-get install nats-server) \
                 or set CELLRT_NATS_SERVER to one"
            );
            eprintln!(
                "SKIPPED: nats-server not found (apt-get install nats-server): the bridge was not tested"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
        let store = tempfile::tempdir().expect("a store directory");
        let mut server = Server { program, port, store, child: None };
        server.restart();
        Some(server)
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port, with the same store, and
    /// waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.program)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not listen on {} within 10 s", self.port);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// This test binary, run again as a second process in `role` (the ignored
/// test `peer` dispatches on it). It prints `READY` once it serves, and
/// ends when its standard input closes.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    pub fn start(role: &str, url: &str) -> Peer {
        let mut child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "peer", "--ignored", "--nocapture", "--test-threads", "1"])
            .env(ROLE, role)
            .env(URL, url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the peer process starts");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("the peer's stdout"));
        let mut peer = Peer { child, stdin, stdout };
        peer.expect_line("READY");
        peer
    }

    /// Reads lines until one starts with `prefix`, and returns the rest.
    pub fn expect_line(&mut self, prefix: &str) -> String {
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads on this thread, bounded by a watchdog that kills the peer.
        let pid = self.child.id();
        let watchdog = std::thread::spawn(move || {
            if rx.recv_timeout(Duration::from_secs(30)).is_err() {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        });
        let mut line = String::new();
        let found = loop {
            line.clear();
            if self.stdout.read_line(&mut line).unwrap_or(0) == 0 {
                break None;
            }
            // The test harness prints `test peer ... ` before the first line.
            if let Some(at) = line.find(prefix) {
                break Some(line[at + prefix.len()..].trim().to_owned());
            }
        };
        let _ = tx.send(());
        let _ = watchdog.join();
        found.unwrap_or_else(|| panic!("the peer ended (or hung 30 s) before printing {prefix}"))
    }

    /// Closes the peer's standard input: it stops, prints what it counted
    /// (`COUNT <n>` and `IDS <ids>`), and exits.
    pub fn finish(mut self) -> (u64, Vec<u64>) {
        drop(self.stdin.take());
        let count = self.expect_line("COUNT").parse().expect("a count");
        let ids = self.expect_line("IDS");
        let ids = ids.split(',').filter(|s| !s.is_empty()).map(|s| s.parse().expect("an id")).collect();
        let _ = self.child.wait();
        (count, ids)
    }

    /// As [`finish`](Peer::finish), once the peer has received `distinct`
    /// different ids (at most 20 s): redeliveries may come late.
    pub fn finish_expecting(mut self, distinct: usize) -> (u64, Vec<u64>) {
        self.write(&format!("EXPECT {distinct}"));
        self.finish()
    }

    /// Kills the peer (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn write(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("the peer's stdin");
        writeln!(stdin, "{line}").expect("the peer reads");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The message that crosses in the tests.
pub enum Work {
    /// One item of work, by id.
    Item(u64),
    /// Items handled so far.
    Count(Reply<u64>),
    /// The handling process's id.
    Whoami(Reply<u32>),
    /// Keeps the cell busy for this many milliseconds.
    Hold(u64),
    /// Takes the reply and drops it unanswered.
    Ignore(Reply<u64>),
}

#[derive(Serialize, Deserialize)]
pub enum WorkWire {
    Item(u64),
    Count,
    Whoami,
    Hold(u64),
    Ignore,
}

impl Bridged for Work {
    type Wire = WorkWire;

    fn into_wire(self, asks: &mut Asks) -> WorkWire {
        match self {
            Work::Item(id) => WorkWire::Item(id),
            Work::Hold(ms) => WorkWire::Hold(ms),
            Work::Count(reply) => {
                asks.expect(reply);
                WorkWire::Count
            }
            Work::Whoami(reply) => {
                asks.expect(reply);
                WorkWire::Whoami
            }
            Work::Ignore(reply) => {
                asks.expect(reply);
                WorkWire::Ignore
            }
        }
    }

    fn from_wire(wire: WorkWire, answers: &mut Answers) -> Work {
        match wire {
            WorkWire::Item(id) => Work::Item(id),
            WorkWire::Hold(ms) => Work::Hold(ms),
            WorkWire::Count => Work::Count(answers.reply()),
            WorkWire::Whoami => Work::Whoami(answers.reply()),
            WorkWire::Ignore => Work::Ignore(answers.reply()),
        }
    }
}

/// Counts the items it handles, and keeps their ids.
#[derive(Default)]
pub struct Worker {
    pub ids: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
}

impl Cell for Worker {
    type Message = Work;

    fn handle(&mut self, _ctx: &mut Context<Self>, msg: Work) -> Result<(), CellError> {
        match msg {
            Work::Item(id) => self.ids.lock().unwrap().push(id),
            Work::Count(reply) => drop(reply.send(self.ids.lock().unwrap().len() as u64)),
            Work::Whoami(reply) => drop(reply.send(std::process::id())),
            Work::Hold(ms) => std::thread::sleep(Duration::from_millis(ms)),
            Work::Ignore(reply) => drop(reply),
        }
        Ok(())
    }
}

/// Waits until `done` holds, at most `timeout`; whether it did.
pub fn eventually(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    done()
}
