//! A board's main loop driving a thread-less runtime.
//!
//! A `Sensor` cell samples every 10 ms (a cell timer), a `Filter` cell keeps
//! a moving average of the last eight samples, and a durable `Odometer`
//! counts the samples in in-memory storage, flushed periodically. Nothing
//! runs on a thread of the runtime's own: the main loop calls
//! `Runtime::run_once`, and sleeps until `Runtime::next_deadline` when there
//! is nothing to do, as a board would sleep until its next interrupt.
//!
//! Everything is bounded: mailboxes of 8, a journal of 64 entries, 16 dead
//! letters, a 256 KiB storage cache. At the end it prints what the process
//! allocated (a counting global allocator) and, on Linux, its resident
//! memory. Most of the heap is the storage engine's: sled 0.34 allocates
//! about 27 MiB of zero-filled tables whatever its configuration (a global
//! registry of 41 latency histograms of 512 KiB, a 6 MiB page table). The
//! system maps such pages only once they are written, and sled writes few
//! of them, so they cost address space, not memory: the resident figure is
//! what the board pays (a board without virtual memory cannot use sled).
//!
//! Run: `cargo run --release --example embedded`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use cellrt::{
    Addr, Cell, CellConfig, CellError, Context, Durability, Durable, JournalConfig, ObservationConfig, Reply,
    Runtime, StorageConfig,
};

/// Samples the example takes before it stops.
const SAMPLES: u32 = 40;
/// How often the sensor samples.
const PERIOD: Duration = Duration::from_millis(10);

/// The system allocator, counting the bytes live and their peak.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Bytes asked for zero-filled, over the whole run.
static ZEROED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the caller's arguments;
// the counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    // Forwarded, not left to the default (`alloc` then writing zeros): the
    // system hands out zeroed pages that become resident only once written,
    // and the storage engine allocates about 27 MiB of zeroed tables it
    // mostly never touches.
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract, passed on as is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            ZEROED.fetch_add(layout.size(), Relaxed);
            grew(layout.size());
        }
        ptr
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller upholds `realloc`'s contract, passed on as is.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `dealloc`'s contract, passed on as is.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
}

/// Counts `bytes` more live, and the peak.
fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Relaxed) + bytes;
    PEAK.fetch_max(live, Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Reads a (simulated) ADC every `PERIOD` and sends the sample on.
struct Sensor {
    filter: Addr<FilterMsg>,
    odometer: Addr<OdometerMsg>,
    taken: u32,
}

impl Cell for Sensor {
    type Message = ();

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        ctx.send_interval(PERIOD, || ());
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, (): ()) -> Result<(), CellError> {
        if self.taken == SAMPLES {
            ctx.stop();
            return Ok(());
        }
        // A sawtooth between 0 and 99, as an ADC reading might drift.
        let sample = (self.taken * 7) % 100;
        self.taken += 1;
        // Bounded mailboxes: a full one refuses, and the sample is dropped
        // (a board has no room to queue without bound).
        let _ = self.filter.try_send(FilterMsg::Sample(sample));
        let _ = self.odometer.try_send(OdometerMsg::Count);
        Ok(())
    }
}

enum FilterMsg {
    Sample(u32),
    Average(Reply<Option<u32>>),
}

/// A moving average over the last eight samples, in a fixed ring.
#[derive(Default)]
struct Filter {
    ring: [u32; 8],
    filled: usize,
    next: usize,
}

impl Cell for Filter {
    type Message = FilterMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: FilterMsg) -> Result<(), CellError> {
        match msg {
            FilterMsg::Sample(sample) => {
                self.ring[self.next] = sample;
                self.next = (self.next + 1) % self.ring.len();
                self.filled = (self.filled + 1).min(self.ring.len());
            }
            FilterMsg::Average(reply) => {
                let average = (self.filled > 0)
                    .then(|| self.ring[..self.filled].iter().sum::<u32>() / self.filled as u32);
                let _ = reply.send(average);
            }
        }
        Ok(())
    }
}

/// How many samples were taken, kept across restarts in the storage.
struct Odometer(u64);

enum OdometerMsg {
    Count,
    Read(Reply<u64>),
}

impl Cell for Odometer {
    type Message = OdometerMsg;

    fn handle(&mut self, _: &mut Context<Self>, msg: OdometerMsg) -> Result<(), CellError> {
        match msg {
            OdometerMsg::Count => self.0 += 1,
            OdometerMsg::Read(reply) => {
                let _ = reply.send(self.0);
            }
        }
        Ok(())
    }
}

impl Durable for Odometer {
    type State = u64;
    fn state(&self) -> &u64 {
        &self.0
    }
    fn restore(count: u64) -> Self {
        Odometer(count)
    }
}

/// The process's resident memory, from `/proc/self/status`.
fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("VmRSS:"))?;
    line.trim().trim_end_matches("kB").trim().parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = Runtime::builder()
        .threadless(true)
        .default_capacity(8)
        .dead_letter_capacity(16)
        .observation(ObservationConfig::default().journal(JournalConfig::default().capacity(64)))
        .storage(StorageConfig::in_memory().cache_bytes(256 << 10))
        .build()?;
    let filter = runtime.spawn_with(CellConfig::named("filter"), Filter::default())?;
    let odometer = runtime.spawn_durable(
        CellConfig::named("odometer"),
        Durability::Periodic(Duration::from_millis(50)),
        || Odometer(0),
    )?;
    let sensor = runtime.spawn_with(
        CellConfig::named("sensor"),
        Sensor { filter: filter.clone(), odometer: odometer.clone(), taken: 0 },
    )?;
    let mut stopped = runtime.watch(&sensor);

    // The main loop: run what is ready, else sleep until the next timer.
    let started = Instant::now();
    let (mut calls, mut turns, mut sleeps) = (0_u32, 0_usize, 0_u32);
    while stopped.try_take()?.is_none() {
        let step = runtime.run_once()?;
        calls += 1;
        turns += step.turns;
        if step.is_idle() {
            let Some(next) = runtime.next_deadline() else { break };
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            sleeps += 1;
        }
    }
    let mut average = filter.ask(FilterMsg::Average)?;
    let mut count = odometer.ask(OdometerMsg::Read)?;
    runtime.run_until_idle()?;
    println!(
        "{SAMPLES} samples in {:.0?}: {calls} run_once calls, {turns} turns, {sleeps} sleeps until the next timer",
        started.elapsed()
    );
    println!(
        "moving average of the last 8: {:?}; samples counted by the odometer: {:?}",
        average.try_take()?.flatten(),
        count.try_take()?
    );
    println!(
        "heap: {} bytes live, {} bytes at the peak, {} bytes of it asked for zero-filled",
        LIVE.load(Relaxed),
        PEAK.load(Relaxed),
        ZEROED.load(Relaxed)
    );
    if let Some(kib) = resident_kib() {
        println!("resident memory: {kib} KiB");
    }
    let report = runtime.shutdown(Duration::from_secs(1));
    println!(
        "shutdown: {} cells stopped, {} messages undelivered",
        report.cells_stopped, report.messages_undelivered
    );
    Ok(())
}
