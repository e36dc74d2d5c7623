//! Model of a supervisor retired for good while its suspended children are
//! still sent to: `retire` and `Node::retire_all` in
//! `runtime/src/supervise/node.rs` close each kept child's mailbox
//! (`CellControl::refuse_sends`, the real `Mailbox::close` of
//! `runtime/src/mailbox/`) before `CellInstance::terminate`
//! (`runtime/src/cell/instance.rs`) tells the supervisor's watchers (the
//! real `supervise::watch::Watchers`).
//!
//! Two children are kept (suspended) by a supervisor that ends for good. A
//! supervisor thread does what its end does: closes each child's mailbox,
//! then ends its watchers. A watcher thread adds a watcher, which records
//! that it was told (on whichever thread runs it), then, if told, sends to
//! both children. A sender thread sends one message to each child meanwhile.
//!
//! Property: in every schedule, a send made by anyone who was told of the
//! supervisor's end is refused as `Closed`, on the thread that ended it
//! (inside the watcher) and on the watcher's own thread; and every message
//! a child accepted is still in its mailbox for its end to count, none lost.
//!
//! Planted bug this model catches (checked, then reverted): the watchers
//! told before the children's mailboxes close, which is what happened when
//! each child closed its mailbox in its own turn, on a `Retire` request
//! handled after the supervisor's watchers had been told (a pool's children
//! accepted sends after the pool's watch fired).
#![cfg(cellrt_loom)]

use cellrt::loom_api::{ModelMailbox, ModelWatchers};
use loom::sync::atomic::{AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// Sends `msg` to every child; how many accepted it.
fn send_all(children: &[ModelMailbox<u32>; 2], msg: u32) -> usize {
    children.iter().filter(|c| c.push(msg).is_ok()).count()
}

#[test]
fn children_refuse_sends_once_their_supervisor_is_reported_terminated() {
    cellrt_loom_tests::check(3, || {
        let children = Arc::new([ModelMailbox::<u32>::new(4), ModelMailbox::<u32>::new(4)]);
        let watchers = Arc::new(ModelWatchers::new());
        let told = Arc::new(AtomicBool::new(false));
        let accepted_inside = Arc::new(Mutex::new(None));

        let sender = {
            let children = children.clone();
            thread::spawn(move || send_all(&children, 1))
        };
        let watcher = {
            let (children, watchers, told, inside) =
                (children.clone(), watchers.clone(), told.clone(), accepted_inside.clone());
            thread::spawn(move || {
                let children_inside = children.clone();
                let told_inside = told.clone();
                watchers.add(move || {
                    told_inside.store(true, SeqCst);
                    *inside.lock().unwrap() = Some(send_all(&children_inside, 2));
                });
                if told.load(SeqCst) {
                    send_all(&children, 3)
                } else {
                    0
                }
            })
        };
        // The supervisor ends for good: children first, watchers last.
        for child in children.iter() {
            child.close();
        }
        watchers.end();

        let accepted_before = sender.join().unwrap();
        assert_eq!(watcher.join().unwrap(), 0, "a send after the watch fired was accepted");
        assert_eq!(*accepted_inside.lock().unwrap(), Some(0), "a send inside the watcher was accepted");
        assert!(told.load(SeqCst), "the watcher was told");
        let queued: Vec<Vec<u32>> = children.iter().map(ModelMailbox::take_user).collect();
        let kept = queued.iter().map(Vec::len).sum::<usize>();
        assert_eq!(kept, accepted_before, "an accepted message was lost");
        assert!(queued.iter().flatten().all(|&m| m == 1), "{queued:?}");
    });
}
