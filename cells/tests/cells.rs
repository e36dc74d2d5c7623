//! The ready-made cells, on a real runtime.

use std::time::Duration;

use cellrt::{CellError, Runtime};
use cellrt_cells::{Collect, Collector, FnCell};

const PATIENCE: Duration = Duration::from_secs(10);

#[test]
fn collector_hands_over_items_in_arrival_order_and_forgets_them() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let sink = rt.spawn(Collector::new()).unwrap();
    for n in 0..5_u32 {
        sink.send(Collect::Item(n)).unwrap();
    }
    assert_eq!(sink.ask(Collect::Len).unwrap().wait(PATIENCE), Ok(5));
    assert_eq!(sink.ask(Collect::Take).unwrap().wait(PATIENCE), Ok(vec![0, 1, 2, 3, 4]));
    assert_eq!(sink.ask(Collect::Take).unwrap().wait(PATIENCE), Ok(vec![]));
    rt.shutdown(PATIENCE);
}

#[test]
fn collector_with_a_limit_keeps_the_newest_items() {
    let rt = Runtime::builder().worker_threads(1).build().unwrap();
    let sink = rt.spawn(Collector::with_limit(3)).unwrap();
    for n in 0..10_u32 {
        sink.send(Collect::Item(n)).unwrap();
    }
    assert_eq!(sink.ask(Collect::Take).unwrap().wait(PATIENCE), Ok(vec![7, 8, 9]));
    let empty = rt.spawn(Collector::with_limit(0)).unwrap();
    empty.send(Collect::Item(1_u32)).unwrap();
    assert_eq!(empty.ask(Collect::Len).unwrap().wait(PATIENCE), Ok(0));
    rt.shutdown(PATIENCE);
}

#[test]
fn fn_cell_runs_its_closure_and_its_errors_are_failures() {
    let rt = Runtime::builder().worker_threads(1).quiet_panics(true).build().unwrap();
    let sink = rt.spawn(Collector::new()).unwrap();
    let forward = {
        let sink = sink.clone();
        rt.spawn(FnCell::new(move |n: i32| {
            if n < 0 {
                return Err(CellError::msg("negative input"));
            }
            sink.try_send(Collect::Item(n * 10)).map_err(|e| CellError::msg(e.to_string()))
        }))
        .unwrap()
    };
    forward.send(1).unwrap();
    forward.send(2).unwrap();
    forward.send(-1).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !forward.is_closed() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(forward.is_closed());
    assert_eq!(sink.ask(Collect::Take).unwrap().wait(PATIENCE), Ok(vec![10, 20]));
    let failures = rt.failures();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].to_string().rsplit(": ").next(), Some("negative input"));
    rt.shutdown(PATIENCE);
}
