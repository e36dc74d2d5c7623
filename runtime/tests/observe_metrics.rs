//! Observation: per-cell metrics, the flow map and the exports.

#![cfg(feature = "observe")]

mod common;

use std::time::Duration;

use cellrt::{
    Addr, BuildError, Cell, CellConfig, CellError, ChildSpec, Context, ObservationConfig,
    ObservationConfigError, Runtime, Snapshot, SupervisorSpec,
};
use common::{eventually, PATIENCE};

/// What a [`Worker`] is asked to do.
#[derive(Clone)]
enum Job {
    Ok,
    Fail,
    Panic,
    /// Hand the number on to the next cell.
    Forward(u64),
    /// Wait on the gate.
    Wait(std::sync::Arc<std::sync::Barrier>),
}

struct Worker {
    next: Option<Addr<Job>>,
}

impl Cell for Worker {
    type Message = Job;

    fn handle(&mut self, _: &mut Context<Self>, job: Job) -> Result<(), CellError> {
        match job {
            Job::Ok => Ok(()),
            Job::Fail => Err(CellError::msg("job refused")),
            Job::Panic => panic!("job exploded"),
            Job::Forward(n) => {
                if let Some(next) = &self.next {
                    next.try_send(Job::Forward(n)).map_err(|_| CellError::msg("next is full"))?;
                }
                Ok(())
            }
            Job::Wait(barrier) => {
                barrier.wait();
                Ok(())
            }
        }
    }

    fn message_kind(job: &Job) -> &'static str {
        match job {
            Job::Ok => "Ok",
            Job::Fail => "Fail",
            Job::Panic => "Panic",
            Job::Forward(_) => "Forward",
            Job::Wait(_) => "Wait",
        }
    }
}

fn observed(window: Duration) -> Runtime {
    Runtime::builder()
        .worker_threads(2)
        .quiet_panics(true)
        .observation(ObservationConfig::default().sample_every(1).window(window))
        .build()
        .expect("runtime builds")
}

fn cell<'a>(snapshot: &'a Snapshot, path: &str) -> &'a cellrt::CellSnapshot {
    snapshot.cells.iter().find(|c| c.path.as_str() == path).unwrap_or_else(|| panic!("no cell {path}"))
}

#[test]
fn counters_count_handled_failed_panics_and_restarts_exactly() {
    let rt = observed(Duration::from_secs(60));
    let spec = SupervisorSpec::new("sup")
        .intensity(100, Duration::from_secs(60))
        .child(ChildSpec::new("w", || Worker { next: None }));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<Job>("w").unwrap();
    for job in [Job::Ok, Job::Ok, Job::Fail, Job::Ok, Job::Panic, Job::Ok, Job::Fail] {
        w.send(job).unwrap();
    }
    assert!(eventually(|| {
        let m = cell(&rt.snapshot(), "/sup/w").metrics.clone().unwrap();
        m.handled + m.failed == 7 && m.restarts == 3
    }));
    let m = cell(&rt.snapshot(), "/sup/w").metrics.clone().unwrap();
    assert_eq!((m.handled, m.failed, m.panics, m.restarts), (4, 3, 1, 3));
    assert_eq!(m.handling.count, 7, "sample_every(1) times every message");
    assert_eq!(m.time_in_queue.count, 7);
    assert_eq!(m.message_kinds, ["Ok", "Fail", "Panic"]);
    assert!(m.busy > Duration::ZERO && m.work_per_message > Duration::ZERO);
    assert_eq!(m.rejected_full, 0);
    rt.shutdown(PATIENCE);
}

#[test]
fn each_message_kind_has_its_own_sampled_count_failures_and_shares() {
    let rt = observed(Duration::from_secs(60));
    let spec = SupervisorSpec::new("sup")
        .intensity(100, Duration::from_secs(60))
        .child(ChildSpec::new("w", || Worker { next: None }));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    let w = sup.child::<Job>("w").unwrap();
    for job in [Job::Ok, Job::Fail, Job::Ok, Job::Ok, Job::Panic, Job::Fail, Job::Ok] {
        w.send(job).unwrap();
    }
    assert!(eventually(|| {
        let m = cell(&rt.snapshot(), "/sup/w").metrics.clone().unwrap();
        m.handled + m.failed == 7 && m.restarts == 3
    }));
    let m = cell(&rt.snapshot(), "/sup/w").metrics.clone().unwrap();
    let kinds: Vec<(&str, u64, u64)> =
        m.kinds.iter().map(|k| (k.kind.as_str(), k.sampled, k.failed)).collect();
    assert_eq!(kinds, [("Ok", 4, 0), ("Fail", 2, 2), ("Panic", 1, 1)]);
    let load: f64 = m.kinds.iter().map(|k| k.load_share).sum();
    let busy: f64 = m.kinds.iter().map(|k| k.busy_share).sum();
    assert!((load - 1.0).abs() < 1e-9 && (busy - 1.0).abs() < 1e-9, "shares sum to 1: {load} {busy}");
    assert!((m.kinds[0].load_share - 4.0 / 7.0).abs() < 1e-9);
    assert_eq!(m.kinds[0].latency.count, 4);
    let text = rt.snapshot().prometheus();
    assert!(text.contains("cellrt_kind_failed_total{cell=\"/sup/w\",kind=\"observe_metrics::Worker\",message_kind=\"Fail\"} 2"), "{text}");
    rt.shutdown(PATIENCE);
}

#[test]
fn without_kind_evidence_the_kinds_are_listed_but_not_measured() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .observation(ObservationConfig::default().sample_every(1).kind_evidence(false))
        .build()
        .unwrap();
    let w = rt.spawn_with(CellConfig::named("w"), Worker { next: None }).unwrap();
    w.send(Job::Ok).unwrap();
    w.send(Job::Ok).unwrap();
    assert!(eventually(|| cell(&rt.snapshot(), "/w").metrics.as_ref().is_some_and(|m| m.handled == 2)));
    let m = cell(&rt.snapshot(), "/w").metrics.clone().unwrap();
    assert_eq!(m.message_kinds, ["Ok"]);
    assert!(m.kinds.is_empty());
    rt.shutdown(PATIENCE);
}

#[test]
fn a_send_that_waits_for_room_counts_one_rejection_however_often_it_offers() {
    let rt = observed(Duration::from_secs(60));
    let w = rt.spawn_with(CellConfig::new().name("w").capacity(1), Worker { next: None }).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    w.send(Job::Wait(barrier.clone())).unwrap();
    assert!(eventually(|| w.queued() == 0));
    w.try_send(Job::Ok).unwrap();
    // Full: a send that waits 30 ms offers again and again, then times out.
    assert!(matches!(w.send_timeout(Job::Ok, Duration::from_millis(30)), Err(cellrt::SendError::Timeout(_))));
    let m = cell(&rt.snapshot(), "/w").metrics.clone().unwrap();
    assert_eq!(m.rejected_full, 1);
    // A send that waits until the cell makes room, then gets in.
    let sender = {
        let w = w.clone();
        std::thread::spawn(move || w.send_timeout(Job::Ok, PATIENCE).is_ok())
    };
    assert!(eventually(|| cell(&rt.snapshot(), "/w").metrics.as_ref().unwrap().rejected_full == 2));
    std::thread::sleep(Duration::from_millis(20));
    barrier.wait();
    assert!(sender.join().unwrap());
    assert!(eventually(|| cell(&rt.snapshot(), "/w").metrics.as_ref().unwrap().handled == 3));
    let m = cell(&rt.snapshot(), "/w").metrics.clone().unwrap();
    assert_eq!((m.rejected_full, m.handled), (2, 3), "one rejection per send that found the mailbox full");
    rt.shutdown(PATIENCE);
}

#[test]
fn a_full_mailbox_counts_rejections_and_its_high_water_mark_is_the_capacity() {
    let rt = observed(Duration::from_secs(60));
    let w = rt.spawn_with(CellConfig::new().name("w").capacity(4), Worker { next: None }).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    w.send(Job::Wait(barrier.clone())).unwrap();
    // The cell is inside `Wait` once its queue drains to the 4 that follow.
    assert!(eventually(|| w.queued() == 0));
    for _ in 0..4 {
        w.try_send(Job::Ok).unwrap();
    }
    let mut rejected = 0;
    for _ in 0..3 {
        if w.try_send(Job::Ok).is_err() {
            rejected += 1;
        }
    }
    assert_eq!(rejected, 3);
    let m = cell(&rt.snapshot(), "/w").metrics.clone().unwrap();
    assert_eq!((m.rejected_full, m.mailbox_len, m.mailbox_capacity, m.mailbox_high_water), (3, 4, 4, 4));
    barrier.wait();
    assert!(eventually(|| cell(&rt.snapshot(), "/w").metrics.as_ref().unwrap().handled == 5));
    rt.shutdown(PATIENCE);
}

#[test]
fn the_flow_map_has_each_sender_to_receiver_edge_with_its_count_rate_and_latency() {
    let rt = observed(Duration::from_millis(20));
    // Room for every message at every hop: a refused forward would fail it.
    let c = rt.spawn_with(CellConfig::new().name("c").capacity(64), Worker { next: None }).unwrap();
    let b =
        rt.spawn_with(CellConfig::new().name("b").capacity(64), Worker { next: Some(c.clone()) }).unwrap();
    let a =
        rt.spawn_with(CellConfig::new().name("a").capacity(64), Worker { next: Some(b.clone()) }).unwrap();
    for n in 0..50 {
        a.send(Job::Forward(n)).unwrap();
    }
    assert!(eventually(|| cell(&rt.snapshot(), "/c").metrics.as_ref().unwrap().handled == 50));
    // The edges' counts are read by the analysis, once per window.
    assert!(eventually(|| rt.snapshot().edges.iter().map(|e| e.messages).sum::<u64>() == 100));
    let snapshot = rt.snapshot();
    let edges: Vec<(&str, &str, u64)> =
        snapshot.edges.iter().map(|e| (e.from.as_str(), e.to.as_str(), e.messages)).collect();
    assert_eq!(
        edges,
        [("/a", "/b", 50), ("/b", "/c", 50)],
        "no edge from the sending thread, which is no cell"
    );
    for edge in &snapshot.edges {
        assert!(edge.latency_mean.is_some() && edge.latency_max >= edge.latency_mean, "{edge:?}");
    }
    rt.shutdown(PATIENCE);
}

/// Hands each message on to the receiver it names.
struct Switch {
    to: [Addr<Job>; 2],
}

impl Cell for Switch {
    type Message = usize;

    fn handle(&mut self, _: &mut Context<Self>, to: usize) -> Result<(), CellError> {
        self.to[to].try_send(Job::Ok).map_err(|_| CellError::msg("receiver is full"))
    }
}

#[test]
fn edge_counts_stay_exact_while_a_cell_keeps_to_one_edge_and_when_it_changes() {
    // No message stamped: turns that send on the edge used last add to its
    // count without the detail lock; only a change of edge takes it.
    let rt = Runtime::builder()
        .worker_threads(2)
        .observation(ObservationConfig::default().sample_every(u32::MAX).window(Duration::from_millis(20)))
        .build()
        .expect("runtime builds");
    let b = rt.spawn_with(CellConfig::new().name("b").capacity(64), Worker { next: None }).unwrap();
    let c = rt.spawn_with(CellConfig::new().name("c").capacity(64), Worker { next: None }).unwrap();
    let switch = rt.spawn_with(CellConfig::new().name("s").capacity(64), Switch { to: [b, c] }).unwrap();
    let edges = || -> Vec<(String, String, u64)> {
        let snapshot = rt.snapshot();
        snapshot.edges.iter().map(|e| (e.from.to_string(), e.to.to_string(), e.messages)).collect()
    };
    let expect = |b: u64, c: u64| -> Vec<(String, String, u64)> {
        [("/s", "/b", b), ("/s", "/c", c)]
            .into_iter()
            .filter(|&(_, _, n)| n > 0)
            .map(|(from, to, n)| (from.to_owned(), to.to_owned(), n))
            .collect()
    };
    let mut handled = 0;
    // One message a turn: each waits for the turn before it to end.
    for (to, times, after) in [(0, 5, (5, 0)), (1, 3, (5, 3)), (0, 2, (7, 3))] {
        for _ in 0..times {
            switch.send(to).unwrap();
            handled += 1;
            assert!(eventually(|| cell(&rt.snapshot(), "/s").metrics.as_ref().unwrap().handled == handled));
        }
        // The edges' counts are read by the analysis, once per window.
        let expected = expect(after.0, after.1);
        assert!(eventually(|| edges() == expected), "{:?}, expected {expected:?}", edges());
    }
    rt.shutdown(PATIENCE);
}

#[test]
fn exports_show_the_same_numbers_as_the_snapshot() {
    let rt = observed(Duration::from_millis(20));
    let b = rt.spawn_with(CellConfig::new().name("b"), Worker { next: None }).unwrap();
    let a = rt.spawn_with(CellConfig::new().name("a"), Worker { next: Some(b.clone()) }).unwrap();
    for n in 0..3 {
        a.send(Job::Forward(n)).unwrap();
    }
    assert!(eventually(|| rt.snapshot().edges.len() == 1));
    let snapshot = rt.snapshot();
    let kind = std::any::type_name::<Worker>();

    let text = snapshot.prometheus();
    assert!(
        text.contains(&format!("cellrt_messages_handled_total{{cell=\"/a\",kind=\"{kind}\"}} 3\n")),
        "{text}"
    );
    assert!(text.contains(&format!("cellrt_messages_handled_total{{cell=\"/b\",kind=\"{kind}\"}} 3\n")));
    assert!(text.contains("cellrt_flow_messages_total{from=\"/a\",to=\"/b\"} 3\n"));
    assert!(text.contains(&format!("cellrt_handling_seconds_count{{cell=\"/a\",kind=\"{kind}\"}} 3\n")));
    assert_eq!(text.matches("# TYPE cellrt_mailbox_capacity gauge\n").count(), 1);

    let dot = snapshot.to_dot();
    assert!(dot.starts_with("digraph cellrt {\n") && dot.ends_with("}\n"));
    assert!(dot.contains("  \"/\" -> \"/a\" [style=dashed"), "{dot}");
    assert!(dot.contains("  \"/a\" -> \"/b\" [label=\""), "{dot}");

    #[cfg(feature = "serde")]
    {
        let json = serde_json::to_value(&snapshot).unwrap();
        let cells = json["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[0]["path"], "/a");
        assert_eq!(cells[0]["metrics"]["handled"], 3);
        assert_eq!(json["edges"][0]["from"], "/a");
        assert_eq!(json["edges"][0]["to"], "/b");
        assert_eq!(json["edges"][0]["messages"], 3);
    }
    rt.shutdown(PATIENCE);
}

#[test]
fn an_idle_cell_reports_zero_counters_and_its_mailbox_until_its_first_message() {
    let rt = observed(Duration::from_secs(60));
    let w = rt.spawn_with(CellConfig::new().name("w").capacity(8), Worker { next: None }).unwrap();
    // Windows read the idle cell too (its start reported it active).
    rt.analyse_window_now();
    rt.analyse_window_now();
    let idle = cell(&rt.snapshot(), "/w").metrics.clone().expect("an observed cell has metrics");
    assert_eq!((idle.handled, idle.failed, idle.rejected_full), (0, 0, 0));
    assert_eq!((idle.mailbox_len, idle.mailbox_capacity, idle.mailbox_high_water), (0, 8, 0));
    assert!(idle.message_kinds.is_empty());
    w.send(Job::Ok).unwrap();
    assert!(eventually(|| cell(&rt.snapshot(), "/w").metrics.as_ref().is_some_and(|m| m.handled == 1)));
    let touched = cell(&rt.snapshot(), "/w").metrics.clone().unwrap();
    assert_eq!(touched.message_kinds, ["Ok"]);
    rt.shutdown(PATIENCE);
}

#[test]
fn with_observation_off_cells_have_no_metrics_but_failures_are_still_signed() {
    let rt = Runtime::builder()
        .worker_threads(1)
        .quiet_panics(true)
        .observation(ObservationConfig::disabled())
        .build()
        .unwrap();
    let w = rt.spawn_with(CellConfig::new().name("w"), Worker { next: None }).unwrap();
    w.send(Job::Fail).unwrap();
    assert!(eventually(|| rt.failure_count() == 1));
    let snapshot = rt.snapshot();
    assert!(snapshot.cells.iter().all(|c| c.metrics.is_none() && c.decay.is_none()));
    assert_eq!(snapshot.signatures.len(), 1);
    assert!(snapshot.edges.is_empty());
    rt.shutdown(PATIENCE);
}

#[test]
fn invalid_observation_settings_are_refused_by_build() {
    let refused = |config: ObservationConfig| Runtime::builder().observation(config).build().unwrap_err();
    assert_eq!(
        refused(ObservationConfig::default().sample_every(0)),
        BuildError::Observation(ObservationConfigError::ZeroSampling)
    );
    assert_eq!(
        refused(ObservationConfig::default().window(Duration::ZERO)),
        BuildError::Observation(ObservationConfigError::ZeroWindow)
    );
}
