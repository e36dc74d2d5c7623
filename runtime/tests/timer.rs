//! Timers: one-shot and periodic messages to self, cancellation, full mailboxes.

mod common;

use std::time::{Duration, Instant};

use cellrt::{Cell, CellConfig, CellError, Context, TimerHandle};
use common::{eventually, gate, open, runtime, Log, PATIENCE};

enum Tick {
    Once(Instant),
    Every,
    Cancel,
    Stop,
}

/// Schedules timers in `started` as configured and logs what arrives.
struct Clock {
    once_after: Option<Duration>,
    every: Option<Duration>,
    log: Log<String>,
    handles: Log<TimerHandle>,
    interval: Option<TimerHandle>,
    /// Messages waiting in the mailbox when the interval was cancelled.
    queued_at_cancel: Log<usize>,
}

impl Clock {
    fn new(log: &Log<String>, handles: &Log<TimerHandle>) -> Self {
        Clock {
            once_after: None,
            every: None,
            log: log.clone(),
            handles: handles.clone(),
            interval: None,
            queued_at_cancel: Log::default(),
        }
    }
}

impl Cell for Clock {
    type Message = Tick;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        if let Some(delay) = self.once_after {
            let handle = ctx.send_after(delay, Tick::Once(Instant::now()));
            self.handles.push(handle);
        }
        if let Some(period) = self.every {
            let handle = ctx.send_interval(period, || Tick::Every);
            self.handles.push(handle.clone());
            self.interval = Some(handle);
        }
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Context<Self>, tick: Tick) -> Result<(), CellError> {
        match tick {
            Tick::Once(at) => self.log.push(format!("once after {}ms", at.elapsed().as_millis() / 10 * 10)),
            Tick::Every => self.log.push("every".into()),
            Tick::Cancel => {
                if let Some(handle) = &self.interval {
                    handle.cancel();
                }
                self.queued_at_cancel.push(ctx.addr().queued());
                self.log.push("cancelled".into());
            }
            Tick::Stop => ctx.stop(),
        }
        Ok(())
    }
}

#[test]
fn send_after_delivers_once_no_earlier_than_the_delay() {
    let rt = runtime(1);
    let log = Log::default();
    let handles = Log::default();
    let started = Instant::now();
    let clock = Clock { once_after: Some(Duration::from_millis(30)), ..Clock::new(&log, &handles) };
    let _addr = rt.spawn(clock).unwrap();
    assert!(eventually(|| log.len() == 1));
    assert!(started.elapsed() >= Duration::from_millis(30));
    std::thread::sleep(Duration::from_millis(40));
    assert_eq!(log.len(), 1, "a one-shot timer fires once");
    assert!(handles.items()[0].is_finished());
    rt.shutdown(PATIENCE);
}

#[test]
fn send_interval_repeats_until_cancelled() {
    let rt = runtime(1);
    let log = Log::default();
    let handles = Log::default();
    let clock = Clock { every: Some(Duration::from_millis(2)), ..Clock::new(&log, &handles) };
    let queued_at_cancel = clock.queued_at_cancel.clone();
    let addr = rt.spawn(clock).unwrap();
    assert!(eventually(|| log.len() >= 3));
    addr.send(Tick::Cancel).unwrap();
    assert!(eventually(|| log.items().contains(&"cancelled".to_owned())));
    let at_cancel = log.items().iter().position(|s| s == "cancelled").unwrap();
    std::thread::sleep(Duration::from_millis(30));
    // Ticks already in the mailbox when the timer was cancelled stay there
    // (a slow worker may let several gather behind the cancel); beyond
    // them, at most the one the timer thread was sending at that moment.
    let queued = queued_at_cancel.items()[0];
    let after = log.len() - at_cancel - 1;
    assert!(
        after <= queued + 1,
        "{queued} ticks queued at the cancel, then at most one in flight; saw {after}"
    );
    assert!(log.items()[at_cancel + 1..].iter().all(|s| s == "every"));
    assert!(handles.items()[0].is_finished());
    rt.shutdown(PATIENCE);
}

#[test]
fn timers_are_cancelled_when_their_cell_stops() {
    let rt = runtime(1);
    let log = Log::default();
    let handles = Log::default();
    let addr =
        rt.spawn(Clock { every: Some(Duration::from_millis(1)), ..Clock::new(&log, &handles) }).unwrap();
    assert!(eventually(|| !log.items().is_empty()));
    addr.send(Tick::Stop).unwrap();
    assert!(eventually(|| addr.is_closed()));
    assert!(handles.items()[0].is_finished());
    rt.shutdown(PATIENCE);
}

/// Blocks on a gate for message 1, schedules 99 to itself when started.
struct Patient {
    gate: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    log: Log<u64>,
}

impl Cell for Patient {
    type Message = u64;

    fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), CellError> {
        ctx.send_after(Duration::from_millis(10), 99);
        Ok(())
    }

    fn handle(&mut self, _ctx: &mut Context<Self>, n: u64) -> Result<(), CellError> {
        if n == 1 {
            common::wait_open(&self.gate);
        }
        self.log.push(n);
        Ok(())
    }
}

#[test]
fn a_delayed_message_waits_for_room_instead_of_being_dropped() {
    let rt = runtime(1);
    let gate = gate();
    let log = Log::default();
    let addr = rt
        .spawn_with(CellConfig::new().capacity(1), Patient { gate: gate.clone(), log: log.clone() })
        .unwrap();
    addr.send(1).unwrap();
    assert!(eventually(|| addr.queued() == 0));
    addr.send(2).unwrap();
    // The timer fires into a full mailbox and keeps retrying.
    std::thread::sleep(Duration::from_millis(40));
    open(&gate);
    assert!(eventually(|| log.len() == 3));
    assert_eq!(log.items(), vec![1, 2, 99]);
    rt.shutdown(PATIENCE);
}
