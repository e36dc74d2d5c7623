//! The candidates for a mailbox lane's queue, measured against each other
//! (issue 15: a mailbox must cost memory in proportion to what it holds).
//! Each is a bounded queue of `u64` with `try_push` / `pop`:
//!
//! - `channel`: crossbeam-channel's `bounded(cap)`, the lane before: the
//!   array flavour, all `cap` slots allocated at creation.
//! - `segqueue`: crossbeam-queue's `SegQueue` (segments of 31 slots,
//!   allocated as it fills) allocated on the first push, behind an
//!   admission count reserved with a compare-exchange before the push and
//!   released after the pop: the protocol of `runtime/src/mailbox/bounded.rs`,
//!   copied here because that type is private to the runtime.
//! - `list`: crossbeam-channel's `unbounded()` (the list flavour, also 31
//!   slots a block) behind the same admission count.
//!
//! Memory (printed before the timed part; criterion cannot measure bytes): a
//! counting global allocator gives the bytes one queue holds when created,
//! after one push, and after one push and its pop.
//!
//! Timed, at capacities 32 and 1024:
//!
//! - `create`: 1,000 queues created and dropped (what a spawn pays);
//! - `one_thread`: 1,000,000 items, each pushed then popped by the same
//!   thread (the queue work of a ring hop on cellrt's locality path);
//! - `two_threads`: a producer thread pushes 1,000,000 items, waiting while
//!   the queue is full, and a consumer thread pops them, waiting while it is
//!   empty (the counting story's queue work, without the scheduling). A wait
//!   spins 64 times, then yields the thread, so that a side that must wait
//!   for a core on a busy 2-core machine does not stall the other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, BenchmarkId, Criterion, SamplingMode, Throughput};
use crossbeam_queue::SegQueue;

/// The system allocator, counting the bytes currently allocated.
struct Counting;

static ALLOCATED: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; the counter has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATED.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: forwarded as is; `ptr` came from this allocator, i.e. from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CAPACITIES: [usize; 2] = [32, 1024];
const ITEMS: u64 = 1_000_000;
const QUEUES: usize = 1_000;

/// A bounded queue of `u64`, as a mailbox lane uses it.
trait Lane: Send + Sync + 'static {
    const NAME: &'static str;
    fn new(capacity: usize) -> Self;
    fn try_push(&self, item: u64) -> Result<(), u64>;
    fn pop(&self) -> Option<u64>;
}

/// crossbeam-channel's array flavour.
struct Channel {
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl Lane for Channel {
    const NAME: &'static str = "channel";

    fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        Channel { tx, rx }
    }

    fn try_push(&self, item: u64) -> Result<(), u64> {
        self.tx.try_send(item).map_err(crossbeam_channel::TrySendError::into_inner)
    }

    fn pop(&self) -> Option<u64> {
        self.rx.try_recv().ok()
    }
}

/// The admission count shared by the two growing candidates.
struct Admission {
    admitted: AtomicUsize,
    capacity: usize,
}

impl Admission {
    fn new(capacity: usize) -> Self {
        Admission { admitted: AtomicUsize::new(0), capacity }
    }

    fn reserve(&self) -> bool {
        let mut admitted = self.admitted.load(Relaxed);
        loop {
            if admitted >= self.capacity {
                return false;
            }
            match self.admitted.compare_exchange_weak(admitted, admitted + 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => admitted = actual,
            }
        }
    }

    fn release(&self) {
        self.admitted.fetch_sub(1, Release);
    }
}

/// `SegQueue`, allocated on the first push, behind the admission count.
struct Segments {
    admission: Admission,
    items: OnceLock<Box<SegQueue<u64>>>,
}

impl Lane for Segments {
    const NAME: &'static str = "segqueue";

    fn new(capacity: usize) -> Self {
        Segments { admission: Admission::new(capacity), items: OnceLock::new() }
    }

    fn try_push(&self, item: u64) -> Result<(), u64> {
        if !self.admission.reserve() {
            return Err(item);
        }
        self.items.get_or_init(|| Box::new(SegQueue::new())).push(item);
        Ok(())
    }

    fn pop(&self) -> Option<u64> {
        let item = self.items.get()?.pop()?;
        self.admission.release();
        Some(item)
    }
}

/// crossbeam-channel's list flavour behind the admission count.
struct List {
    admission: Admission,
    tx: crossbeam_channel::Sender<u64>,
    rx: crossbeam_channel::Receiver<u64>,
}

impl Lane for List {
    const NAME: &'static str = "list";

    fn new(capacity: usize) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        List { admission: Admission::new(capacity), tx, rx }
    }

    fn try_push(&self, item: u64) -> Result<(), u64> {
        if !self.admission.reserve() {
            return Err(item);
        }
        self.tx.send(item).expect("the receiver is alive");
        Ok(())
    }

    fn pop(&self) -> Option<u64> {
        let item = self.rx.try_recv().ok()?;
        self.admission.release();
        Some(item)
    }
}

fn allocated() -> isize {
    ALLOCATED.load(Relaxed)
}

/// Bytes one queue of `L` holds: created, after one push, after its pop.
fn memory<L: Lane>(capacity: usize) -> [isize; 3] {
    let before = allocated();
    let queue = L::new(capacity);
    let created = allocated() - before;
    queue.try_push(1).expect("room");
    let pushed = allocated() - before;
    assert_eq!(queue.pop(), Some(1));
    let popped = allocated() - before;
    drop(black_box(queue));
    [created + size_of::<L>() as isize, pushed + size_of::<L>() as isize, popped + size_of::<L>() as isize]
}

fn report_memory() {
    println!("mailbox_queue memory, u64 items (bytes, the struct itself included):");
    println!("  {:<10} {:>8} {:>10} {:>10} {:>12}", "queue", "capacity", "created", "one push", "push + pop");
    for capacity in CAPACITIES {
        for (name, bytes) in [
            (Channel::NAME, memory::<Channel>(capacity)),
            (Segments::NAME, memory::<Segments>(capacity)),
            (List::NAME, memory::<List>(capacity)),
        ] {
            println!("  {name:<10} {capacity:>8} {:>10} {:>10} {:>12}", bytes[0], bytes[1], bytes[2]);
        }
    }
}

fn one_thread<L: Lane>(queue: &L) {
    for n in 0..ITEMS {
        queue.try_push(n).expect("room");
        black_box(queue.pop());
    }
}

/// One step of a wait: a spin, or a yield after 64 of them.
fn pause(spins: &mut u32) {
    if *spins < 64 {
        *spins += 1;
        std::hint::spin_loop();
    } else {
        thread::yield_now();
    }
}

fn two_threads<L: Lane>(capacity: usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let queue = std::sync::Arc::new(L::new(capacity));
        let consumer = {
            let queue = queue.clone();
            thread::spawn(move || {
                let mut sum = 0_u64;
                let mut left = ITEMS;
                let mut spins = 0;
                while left > 0 {
                    match queue.pop() {
                        Some(n) => {
                            sum = sum.wrapping_add(n);
                            left -= 1;
                            spins = 0;
                        }
                        None => pause(&mut spins),
                    }
                }
                sum
            })
        };
        let t0 = Instant::now();
        for n in 0..ITEMS {
            let (mut item, mut spins) = (n, 0);
            while let Err(back) = queue.try_push(item) {
                item = back;
                pause(&mut spins);
            }
        }
        let sum = consumer.join().expect("consumer");
        total += t0.elapsed();
        assert_eq!(sum, (0..ITEMS).sum::<u64>());
    }
    total
}

fn bench_lane<L: Lane>(c: &mut Criterion, capacity: usize) {
    let mut group = c.benchmark_group("mailbox_queue/create");
    group.throughput(Throughput::Elements(QUEUES as u64));
    group.bench_function(BenchmarkId::new(L::NAME, capacity), |b| {
        b.iter(|| {
            let queues: Vec<L> = (0..QUEUES).map(|_| L::new(capacity)).collect();
            black_box(queues)
        });
    });
    group.finish();

    let mut group = c.benchmark_group("mailbox_queue/one_thread");
    group.throughput(Throughput::Elements(ITEMS));
    group.sampling_mode(SamplingMode::Flat);
    let queue = L::new(capacity);
    group.bench_function(BenchmarkId::new(L::NAME, capacity), |b| b.iter(|| one_thread(&queue)));
    group.finish();

    let mut group = c.benchmark_group("mailbox_queue/two_threads");
    group.throughput(Throughput::Elements(ITEMS));
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function(BenchmarkId::new(L::NAME, capacity), |b| {
        b.iter_custom(|iters| two_threads::<L>(capacity, iters));
    });
    group.finish();
}

fn mailbox_queue(c: &mut Criterion) {
    for capacity in CAPACITIES {
        bench_lane::<Channel>(c, capacity);
        bench_lane::<Segments>(c, capacity);
        bench_lane::<List>(c, capacity);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    targets = mailbox_queue
}

fn main() {
    report_memory();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
