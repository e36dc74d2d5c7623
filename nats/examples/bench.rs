//! Throughput and ask latency across the bridge on loopback, beside raw
//! async-nats publish/subscribe and request/reply in the same run.
//!
//! ```text
//! cargo run --release -p cellrt-nats --example bench [-- --quick]
//! ```
//!
//! Uses the server at `NATS_URL`, or starts `nats-server` on a free port
//! (`CELLRT_NATS_SERVER`, the path, or `/usr/sbin`). The exporting and the
//! importing side each have their own connection, as two processes would.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cellrt::{Cell, CellConfig, CellError, Context, Reply, Runtime};
use cellrt_nats::{Answers, Asks, Bridge, BridgeConfig, Bridged, Codec};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

enum Msg {
    Item(u64),
    Echo(u64, Reply<u64>),
}

#[derive(Serialize, Deserialize)]
enum MsgWire {
    Item(u64),
    Echo(u64),
}

impl Bridged for Msg {
    type Wire = MsgWire;
    fn into_wire(self, asks: &mut Asks) -> MsgWire {
        match self {
            Msg::Item(n) => MsgWire::Item(n),
            Msg::Echo(n, reply) => {
                asks.expect(reply);
                MsgWire::Echo(n)
            }
        }
    }
    fn from_wire(wire: MsgWire, answers: &mut Answers) -> Msg {
        match wire {
            MsgWire::Item(n) => Msg::Item(n),
            MsgWire::Echo(n) => Msg::Echo(n, answers.reply()),
        }
    }
}

struct Sink(Arc<AtomicU64>);

impl Cell for Sink {
    type Message = Msg;
    fn handle(&mut self, _: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
        match msg {
            Msg::Item(_) => drop(self.0.fetch_add(1, Ordering::Relaxed)),
            Msg::Echo(n, reply) => drop(reply.send(n)),
        }
        Ok(())
    }
}

struct Server(Option<Child>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server() -> (String, Server) {
    if let Ok(url) = std::env::var("NATS_URL") {
        return (url, Server(None));
    }
    let program = std::env::var("CELLRT_NATS_SERVER").ok().or_else(|| {
        ["nats-server", "/usr/sbin/nats-server"]
            .into_iter()
            .find(|p| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success()))
            .map(str::to_owned)
    });
    let Some(program) = program else {
        eprintln!("no NATS server: set NATS_URL, or install nats-server (apt-get install nats-server)");
        std::process::exit(2);
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(program)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server starts");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(10));
    }
    (format!("nats://127.0.0.1:{port}"), Server(Some(child)))
}

fn percentiles(histogram: &Histogram<u64>) -> (f64, f64) {
    (histogram.value_at_quantile(0.5) as f64 / 1_000.0, histogram.value_at_quantile(0.99) as f64 / 1_000.0)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (messages, asks) = if quick { (20_000u64, 2_000u64) } else { (200_000, 20_000) };
    let (url, _server) = server();
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    println!("| path | messages | msgs/s | ask p50 µs | ask p99 µs |");
    println!("|---|---:|---:|---:|---:|");

    // Raw async-nats publish → subscribe, 16-byte payloads.
    let rate = tokio.block_on(async {
        let publisher = async_nats::connect(&url).await.unwrap();
        let subscriber = async_nats::connect(&url).await.unwrap();
        let mut sub = subscriber.subscribe("bench.raw").await.unwrap();
        subscriber.flush().await.unwrap();
        let counting = tokio::spawn(async move {
            let mut seen = 0;
            while seen < messages {
                if sub.next().await.is_none() {
                    break;
                }
                seen += 1;
            }
            seen
        });
        let started = Instant::now();
        let payload = Bytes::from_static(&[7; 16]);
        for _ in 0..messages {
            publisher.publish("bench.raw", payload.clone()).await.unwrap();
        }
        publisher.flush().await.unwrap();
        let seen = tokio::time::timeout(Duration::from_secs(60), counting).await.unwrap().unwrap();
        seen as f64 / started.elapsed().as_secs_f64()
    });
    println!("| raw async-nats publish/subscribe | {messages} | {rate:.0} | | |");

    // Raw async-nats request/reply, one at a time.
    let (p50, p99) = tokio.block_on(async {
        let requester = async_nats::connect(&url).await.unwrap();
        let responder = async_nats::connect(&url).await.unwrap();
        let mut sub = responder.subscribe("bench.echo").await.unwrap();
        responder.flush().await.unwrap();
        tokio::spawn(async move {
            while let Some(request) = sub.next().await {
                if let Some(reply) = request.reply {
                    let _ = responder.publish(reply, request.payload).await;
                }
            }
        });
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for _ in 0..asks {
            let started = Instant::now();
            requester.request("bench.echo", Bytes::from_static(&[7; 8])).await.unwrap();
            histogram.record(started.elapsed().as_nanos() as u64).unwrap();
        }
        percentiles(&histogram)
    });
    println!("| raw async-nats request/reply | {asks} | | {p50:.0} | {p99:.0} |");

    let runtime = Runtime::builder().build().unwrap();
    for codec in [Codec::Bincode, Codec::Json] {
        let exporting = Bridge::connect(BridgeConfig::new(url.as_str(), "bench").codec(codec)).unwrap();
        let importing = Bridge::connect(BridgeConfig::new(url.as_str(), "bench").codec(codec)).unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let path = format!("sink-{}", codec.as_str());
        let sink = runtime
            .spawn_with(CellConfig::named(path.as_str()).capacity(4_096), Sink(count.clone()))
            .unwrap();
        let export = exporting.export(&runtime, &path, &sink).unwrap();
        let remote = importing.import::<Msg>(&runtime, &path).unwrap();

        // Sends through the imported address, to the exported cell.
        let started = Instant::now();
        for n in 0..messages {
            let mut msg = Msg::Item(n);
            loop {
                match remote.addr().send(msg) {
                    Ok(()) => break,
                    Err(e) => msg = e.into_inner(),
                }
            }
        }
        while count.load(Ordering::Relaxed) < messages && started.elapsed() < Duration::from_secs(120) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let rate = count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
        let stats = remote.stats();
        assert_eq!(stats.failed(), 0, "{stats:?}");
        println!("| bridge send, Addr → NATS → cell ({}) | {messages} | {rate:.0} | | |", codec.as_str());

        // Asks through the imported address, one at a time.
        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for n in 0..asks {
            let started = Instant::now();
            let pending =
                remote.addr().ask_within(Duration::from_secs(5), |reply| Msg::Echo(n, reply)).ok().unwrap();
            assert_eq!(pending.wait(Duration::from_secs(5)), Ok(n));
            histogram.record(started.elapsed().as_nanos() as u64).unwrap();
        }
        let (p50, p99) = percentiles(&histogram);
        println!("| bridge ask, Addr::ask_within ({}) | {asks} | | {p50:.0} | {p99:.0} |", codec.as_str());

        let mut histogram = Histogram::<u64>::new(3).unwrap();
        for n in 0..asks {
            let started = Instant::now();
            assert_eq!(remote.ask(Duration::from_secs(5), |reply| Msg::Echo(n, reply)), Ok(n));
            histogram.record(started.elapsed().as_nanos() as u64).unwrap();
        }
        let (p50, p99) = percentiles(&histogram);
        println!("| bridge ask, Remote::ask ({}) | {asks} | | {p50:.0} | {p99:.0} |", codec.as_str());
        drop(export);
    }
    runtime.shutdown(Duration::from_secs(5));
}
