//! The smallest cellrt program: one cell, one message, one reply. Its size
//! is the embedded core's footprint:
//!
//! ```text
//! cargo build -p cellrt --no-default-features --profile min-size --example hello
//! ```

use std::time::Duration;

use cellrt::{Cell, CellError, Context, Reply, Runtime};

struct Hello;

impl Cell for Hello {
    type Message = Reply<&'static str>;
    fn handle(&mut self, _: &mut Context<Self>, reply: Reply<&'static str>) -> Result<(), CellError> {
        let _ = reply.send("hello");
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder().worker_threads(1).build()?;
    let hello = runtime.spawn(Hello)?;
    let answer = hello.ask(|reply| reply)?.wait(Duration::from_secs(5))?;
    println!("{answer}");
    runtime.shutdown(Duration::from_secs(1));
    Ok(())
}
