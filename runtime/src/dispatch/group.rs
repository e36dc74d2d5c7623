//! Cell groups: a concurrency limit over cells, whatever dispatcher they run on.
//!
//! A group admits at most `max_concurrent` of its members into a turn at
//! once. A member the group cannot admit is *parked* in the group instead of
//! running: it gives its worker back at once and keeps its run token (its
//! state word stays `SCHEDULED`, so senders do not schedule it again). When
//! an admitted member's turn ends, the group hands its permit straight to the
//! oldest parked member and puts that member back on its own dispatcher's
//! run queue.
//!
//! # Protocol
//!
//! All of it runs under the group's lock, except handing over the permit:
//!
//! - **enter** (a worker about to run a member's turn): a member holding a
//!   permit handed over to it takes it (`permit` true → false) and runs.
//!   Otherwise, if fewer than `max_concurrent` members run, `running += 1`
//!   and it runs; if not, it is appended to `parked` and the worker moves
//!   on.
//! - **leave** (the turn is over): if a member is parked, it is taken off
//!   `parked`, its `permit` is set and it is rescheduled on its dispatcher
//!   (`running` is unchanged: the permit moved); otherwise `running -= 1`.
//!
//! Invariants: `running ≤ max_concurrent`; `running` counts members inside a
//! turn plus members holding a handed-over permit on their way to a worker;
//! `parked` is non-empty only while `running == max_concurrent ≥ 1`, so some
//! member's `leave` always comes to wake it (no lost wake-up). A member is in
//! `parked` at most once, since only the holder of its run token parks it.
//! The permit is set before the member is pushed on a run queue (Release,
//! paired with the Acquire of its `enter`), so it is seen by whichever
//! worker takes the member.
//!
//! Handing the permit over, rather than freeing it, keeps the queue fair: a
//! member that yields and re-enters goes behind the members already parked.
//! The loom model `loom-tests/tests/dispatch_group.rs` checks the protocol.

use std::collections::VecDeque;
use std::fmt;

use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::{Arc, Mutex};

use super::TurnEnd;

/// What a group calls to put a parked member back on its dispatcher.
pub(crate) trait Reschedule: Send + Sync {
    /// Pushes the member on its dispatcher's run queue. The member holds
    /// its run token and a permit of its group.
    fn reschedule(self: Arc<Self>);
}

/// A snapshot of a cell group's activity, from
/// [`Runtime::group_stats`](crate::Runtime::group_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Members running a turn now, or holding a permit on their way to a
    /// worker.
    pub running: usize,
    /// Members parked now, waiting for a permit.
    pub parked: usize,
    /// The group's limit on members running at once.
    pub max_concurrent: usize,
    /// Turns the group admitted since the runtime started.
    pub turns: u64,
    /// Times a member was parked since the runtime started.
    pub times_parked: u64,
}

/// A named concurrency limit shared by its member cells.
pub(crate) struct Group {
    name: Arc<str>,
    max_concurrent: usize,
    state: Mutex<GroupState>,
}

struct GroupState {
    running: usize,
    parked: VecDeque<Waiting>,
    turns: u64,
    times_parked: u64,
}

/// A parked member: where to hand it a permit, and how to reschedule it.
struct Waiting {
    permit: Arc<AtomicBool>,
    member: Arc<dyn Reschedule>,
}

impl Group {
    /// A group letting `max_concurrent` (at least 1) members run at once.
    pub(crate) fn new(name: &str, max_concurrent: usize) -> Arc<Self> {
        debug_assert!(max_concurrent > 0, "the builder refuses a zero limit");
        Arc::new(Group {
            name: name.into(),
            max_concurrent,
            state: Mutex::new(GroupState { running: 0, parked: VecDeque::new(), turns: 0, times_parked: 0 }),
        })
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    pub(crate) fn stats(&self) -> GroupStats {
        let state = self.state.lock();
        GroupStats {
            running: state.running,
            parked: state.parked.len(),
            max_concurrent: self.max_concurrent,
            turns: state.turns,
            times_parked: state.times_parked,
        }
    }

    /// Forgets every parked member; at shutdown, once no worker runs them.
    /// Breaks the cycle cell → runtime → group → parked cell.
    pub(crate) fn clear(&self) -> usize {
        let parked = std::mem::take(&mut self.state.lock().parked);
        parked.len()
    }
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("name", &self.name).field("stats", &self.stats()).finish()
    }
}

/// One cell's place in its group.
pub(crate) struct Membership {
    group: Arc<Group>,
    /// Set by the `leave` of another member that handed its permit to this
    /// one while it was parked; taken by this member's next `enter`.
    permit: Arc<AtomicBool>,
}

/// What `enter` decided.
enum Entry {
    Admitted,
    Parked,
}

impl Membership {
    pub(crate) fn new(group: Arc<Group>) -> Self {
        Membership { group, permit: Arc::new(AtomicBool::new(false)) }
    }

    /// Runs one turn of the member if the group admits it, and hands its
    /// permit on afterwards; otherwise parks `member` (the caller holds its
    /// run token) and returns [`TurnEnd::Parked`] without calling `turn`.
    /// `member` is asked for only when parking; `None` (the cell is being
    /// dropped, so no worker holds it) ends with [`TurnEnd::Done`].
    #[inline]
    pub(crate) fn run_turn(
        &self,
        member: impl FnOnce() -> Option<Arc<dyn Reschedule>>,
        turn: impl FnOnce() -> TurnEnd,
    ) -> TurnEnd {
        match self.enter(member) {
            Some(Entry::Admitted) => {}
            Some(Entry::Parked) => return TurnEnd::Parked,
            None => return TurnEnd::Done,
        }
        // Leaves even if the turn unwinds (cell code's panics are caught
        // inside the turn; this guards the runtime's own).
        let _leave = Leave(self);
        turn()
    }

    fn enter(&self, member: impl FnOnce() -> Option<Arc<dyn Reschedule>>) -> Option<Entry> {
        // Acquire pairs with the Release in `leave`.
        if self.permit.swap(false, Acquire) {
            return Some(Entry::Admitted);
        }
        let mut state = self.group.state.lock();
        if state.running < self.group.max_concurrent {
            state.running += 1;
            state.turns += 1;
            return Some(Entry::Admitted);
        }
        let member = member()?;
        state.parked.push_back(Waiting { permit: self.permit.clone(), member });
        state.times_parked += 1;
        Some(Entry::Parked)
    }

    fn leave(&self) {
        let next = {
            let mut state = self.group.state.lock();
            match state.parked.pop_front() {
                Some(next) => {
                    state.turns += 1;
                    next
                }
                None => {
                    state.running -= 1;
                    return;
                }
            }
        };
        // Release pairs with the Acquire in the woken member's `enter`.
        next.permit.store(true, Release);
        next.member.reschedule();
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership").field("group", &self.group.name).finish()
    }
}

struct Leave<'a>(&'a Membership);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;
    use crate::sync::Mutex;

    /// A member that records its reschedules instead of running.
    #[derive(Default)]
    struct Recorder {
        rescheduled: Mutex<u32>,
    }

    impl Reschedule for Recorder {
        fn reschedule(self: Arc<Self>) {
            *self.rescheduled.lock() += 1;
        }
    }

    fn member(recorder: &Arc<Recorder>) -> impl FnOnce() -> Option<Arc<dyn Reschedule>> + '_ {
        move || Some(recorder.clone() as Arc<dyn Reschedule>)
    }

    #[test]
    fn members_within_the_limit_run_at_once() {
        let group = Group::new("g", 2);
        let (a, b) = (Membership::new(group.clone()), Membership::new(group.clone()));
        let recorder = Arc::new(Recorder::default());
        let end = a.run_turn(member(&recorder), || {
            let inner = b.run_turn(member(&recorder), || {
                assert_eq!(group.stats().running, 2);
                TurnEnd::Idle
            });
            assert_eq!(inner, TurnEnd::Idle);
            TurnEnd::Yield
        });
        assert_eq!(end, TurnEnd::Yield);
        assert_eq!(
            group.stats(),
            GroupStats { running: 0, parked: 0, max_concurrent: 2, turns: 2, times_parked: 0 }
        );
        assert_eq!(*recorder.rescheduled.lock(), 0);
    }

    #[test]
    fn a_member_over_the_limit_parks_and_gets_the_permit_when_a_turn_ends() {
        let group = Group::new("g", 1);
        let (a, b) = (Membership::new(group.clone()), Membership::new(group.clone()));
        let (ra, rb) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
        let mut b_ran = false;
        a.run_turn(member(&ra), || {
            let end = b.run_turn(member(&rb), || {
                b_ran = true;
                TurnEnd::Idle
            });
            assert_eq!(end, TurnEnd::Parked);
            assert_eq!(group.stats().parked, 1);
            TurnEnd::Idle
        });
        assert!(!b_ran);
        // A's turn ended: B was rescheduled, holding the permit.
        assert_eq!((*ra.rescheduled.lock(), *rb.rescheduled.lock()), (0, 1));
        assert_eq!(
            group.stats(),
            GroupStats { running: 1, parked: 0, max_concurrent: 1, turns: 2, times_parked: 1 }
        );
        // A cannot barge in ahead of B, who holds the permit.
        assert_eq!(a.run_turn(member(&ra), || TurnEnd::Idle), TurnEnd::Parked);
        assert_eq!(b.run_turn(member(&rb), || TurnEnd::Idle), TurnEnd::Idle);
        // B's turn handed the permit to A.
        assert_eq!(*ra.rescheduled.lock(), 1);
        assert_eq!(a.run_turn(member(&ra), || TurnEnd::Done), TurnEnd::Done);
        assert_eq!(
            group.stats(),
            GroupStats { running: 0, parked: 0, max_concurrent: 1, turns: 3, times_parked: 2 }
        );
    }

    #[test]
    fn parked_members_are_woken_in_the_order_they_parked() {
        let group = Group::new("g", 1);
        let members: Vec<_> = (0..4).map(|_| Membership::new(group.clone())).collect();
        let recorders: Vec<_> = (0..4).map(|_| Arc::new(Recorder::default())).collect();
        members[0].run_turn(member(&recorders[0]), || {
            for i in [2, 1, 3] {
                assert_eq!(members[i].run_turn(member(&recorders[i]), || TurnEnd::Idle), TurnEnd::Parked);
            }
            TurnEnd::Idle
        });
        let woken = |i: usize| *recorders[i].rescheduled.lock();
        assert_eq!((woken(1), woken(2), woken(3)), (0, 1, 0));
        members[2].run_turn(member(&recorders[2]), || TurnEnd::Idle);
        assert_eq!((woken(1), woken(2), woken(3)), (1, 1, 0));
        members[1].run_turn(member(&recorders[1]), || TurnEnd::Idle);
        assert_eq!((woken(1), woken(2), woken(3)), (1, 1, 1));
        members[3].run_turn(member(&recorders[3]), || TurnEnd::Idle);
        assert_eq!(group.stats().running, 0);
        assert_eq!(group.stats().turns, 4);
    }

    #[test]
    fn a_member_that_cannot_be_parked_ends_its_turn_as_done() {
        let group = Group::new("g", 1);
        let (a, b) = (Membership::new(group.clone()), Membership::new(group.clone()));
        let recorder = Arc::new(Recorder::default());
        a.run_turn(member(&recorder), || {
            assert_eq!(b.run_turn(|| None, || TurnEnd::Idle), TurnEnd::Done);
            TurnEnd::Idle
        });
        assert_eq!(
            group.stats(),
            GroupStats { running: 0, parked: 0, max_concurrent: 1, turns: 1, times_parked: 0 }
        );
    }

    #[test]
    fn clearing_forgets_parked_members() {
        let group = Group::new("g", 1);
        let (a, b) = (Membership::new(group.clone()), Membership::new(group.clone()));
        let recorder = Arc::new(Recorder::default());
        a.run_turn(member(&recorder), || {
            b.run_turn(member(&recorder), || TurnEnd::Idle);
            assert_eq!(group.clear(), 1);
            TurnEnd::Idle
        });
        assert_eq!(*recorder.rescheduled.lock(), 0);
        assert_eq!(group.stats().parked, 0);
    }
}
