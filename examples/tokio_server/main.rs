//! A tokio web service in front of cells: an axum router whose handlers ask
//! the inventory's shelves (cells under a supervisor) with
//! `Addr::ask_async`, and beside it, on a port of its own, the runtime's
//! live export (`Runtime::serve_http`): Prometheus metrics, the JSON
//! snapshot, the journal, liveness and readiness. Both listen on
//! localhost only.
//!
//! Run: `cargo run -p cellrt-examples --example tokio_server`, then, from
//! another terminal:
//!
//! ```text
//! curl -X POST 'http://127.0.0.1:3000/items/widget/restock?quantity=5'
//! curl -X POST 'http://127.0.0.1:3000/items/widget/reserve?quantity=2'
//! curl http://127.0.0.1:3000/items/widget
//! curl http://127.0.0.1:9464/metrics
//! curl http://127.0.0.1:9464/snapshot.json
//! curl 'http://127.0.0.1:9464/journal?since=0&limit=20'
//! curl -i http://127.0.0.1:9464/readyz
//! ```
//!
//! Ctrl-C stops it: the service drains its connections, then the runtime
//! shuts down, and the live export with it.
//!
//! Options: `--port N` (the service, default 3000), `--export-port N`
//! (the live export, default 9464), `--smoke` (start on free ports, request
//! every endpoint once, print what came back, exit).

mod inventory;
mod service;

use std::time::Duration;

use service::Shop;

const USAGE: &str = "usage: tokio_server [--port N] [--export-port N] [--smoke]";

struct Options {
    port: u16,
    export_port: u16,
    smoke: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options { port: 3000, export_port: 9464, smoke: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut port = |name: &str| {
            let value = args.next().ok_or(format!("{name} needs a port"))?;
            value.parse::<u16>().map_err(|_| format!("{name}: {value:?} is not a port"))
        };
        match arg.as_str() {
            "--port" => options.port = port("--port")?,
            "--export-port" => options.export_port = port("--export-port")?,
            "--smoke" => options.smoke = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = match options() {
        Ok(options) => options,
        Err(err) => {
            eprintln!("{err}\n{USAGE}");
            std::process::exit(2);
        }
    };
    if options.smoke {
        for exchange in service::smoke()? {
            let first_line = exchange.body.lines().next().unwrap_or("");
            let shown: String = first_line.chars().take(100).collect();
            println!(
                "{} {} -> {} {}\n    {shown}",
                exchange.method, exchange.url, exchange.status, exchange.content_type
            );
        }
        return Ok(());
    }
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let runtime = tokio.block_on(async {
        let shop = Shop::start(options.port, options.export_port).await?;
        let (service, export) = (shop.service_addr(), shop.export.local_addr());
        println!("the service:     http://{service}/items/{{item}}");
        println!("the live export: http://{export}/metrics, /snapshot.json, /journal, /healthz, /readyz");
        println!();
        println!("curl -X POST 'http://{service}/items/widget/restock?quantity=5'");
        println!("curl -X POST 'http://{service}/items/widget/reserve?quantity=2'");
        println!("curl http://{service}/items/widget");
        println!("curl http://{export}/metrics");
        println!("curl 'http://{export}/journal?since=0&limit=20'");
        println!();
        println!("Ctrl-C stops it.");
        axum::serve(shop.listener, service::router(shop.inventory))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, Box<dyn std::error::Error>>((shop.runtime, shop.export))
    })?;
    let (runtime, _export) = runtime;
    let report = runtime.shutdown(Duration::from_secs(5));
    println!("stopped: {} cells, {} messages undelivered", report.cells_stopped, report.messages_undelivered);
    Ok(())
}
