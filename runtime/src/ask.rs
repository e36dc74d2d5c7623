//! Request and reply: [`Reply`], the handle a cell answers through, and
//! [`Pending`], the caller's side.
//!
//! A reply is answered at most once. If the `Reply` is dropped unanswered
//! (the cell stopped, panicked, or forgot), the `Pending` resolves to
//! [`AskError::Unanswered`] at once: an ask never hangs on a dead cell. If the
//! caller gives up first (timeout, or dropping the `Pending`), a late
//! [`Reply::send`] hands the value back and nothing is kept.
//!
//! `Pending` works without any async runtime: `wait(timeout)` blocks the
//! calling thread; awaiting it (it implements `Future`) parks the task and is
//! woken by the reply.
//!
//! This module owns the reply slot both handles share: one allocation
//! holding a state word, the answer, and the waiter to wake. The state word
//! is a small lock-free state machine: waiting, then answered, unanswered
//! (the `Reply` was dropped) or closed (the caller gave up), each reached
//! from waiting by one compare-exchange, and closed again once the caller
//! took the answer; plus a flag saying that a waiter (a sleeping thread or
//! a task's waker) sits in the slot's lock.
//! The reply side writes the answer before its Release publishes it; a
//! waiter that did not see the answer within its spin leaves its
//! `Thread` or `Waker` behind the lock and raises the flag, and only then
//! does the reply side take that lock, to wake it. An ask answered while
//! the caller spins takes no lock at all.
//!
//! The allocation is a leaked `Box`, not an `Arc`: each handle holds a raw
//! pointer, and a `RELEASED` flag in the state word says which side frees
//! it. The first side to let go raises the flag with its last change of
//! the word (the reply side with its move out of waiting, unless it has a
//! waiter to wake; the caller's side when its `Pending` is dropped); the
//! second, seeing the flag, frees the box with the answer still in it, if
//! any, and the waiter left behind the lock. An ask answered while the
//! caller spins thus costs one compare-exchange in all: the caller sees the
//! flag and frees without another atomic write. A leaked handle leaks the
//! slot.
//!
//! Freeing a slot drops what it holds (an answer not taken, a waiter left
//! behind) and keeps the box for the next ask made on the freeing thread
//! (`spare` below: a few boxes per thread, known by their layout), which
//! then writes its slot there instead of allocating; in an ask answered
//! while the caller waits, that is the caller's thread, so an ask in a loop
//! allocates once. Only the second side to let go keeps the box, so the
//! `RELEASED` protocol alone still decides who may touch a slot when.
//!
//! The loom model `loom-tests/tests/ask.rs` checks that an ask resolves
//! exactly once, that no sleeping waiter is missed, that every slot is
//! freed exactly once, after the other side's last access (under loom,
//! every access reads a cell that the free writes), and that asks in a row
//! on one thread reuse a box only once both sides let go of it.

use std::alloc::Layout;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::ptr::{self, NonNull};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, Instant};

use crate::dispatch::worker;
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::cell::UnsafeCell;
use crate::sync::{thread, Mutex};

/// How long [`Pending::wait`] keeps the thread awake for an answer before it
/// sleeps.
const SPIN_BUDGET: Duration = Duration::from_micros(50);

/// The phase of a reply slot, in the low bits of its state word. Only the
/// reply side leaves `WAITING` for `READY` or `UNANSWERED`; only the caller's
/// side leaves it for `CLOSED`, and moves `READY` on to `CLOSED` when it
/// takes the answer.
const PHASE: usize = 0b11;
/// No answer yet.
const WAITING: usize = 0;
/// The answer is in the slot, not yet taken.
const READY: usize = 1;
/// The reply handle was dropped without an answer.
const UNANSWERED: usize = 2;
/// The caller took the result or gave up.
const CLOSED: usize = 3;
/// Set by the caller's side once its waiter (a thread or a waker) is behind
/// `Shared::waiter`: whoever resolves the slot then wakes it.
const WAITER: usize = 0b100;
/// Set by the first side to let go of the slot, with its last change of the
/// state word (Release); the second side, seeing it (Acquire), frees the
/// slot. Never set while the phase is `WAITING`: the reply side lets go
/// only once it resolved the slot, the caller's side closes a waiting slot
/// in the same move.
const RELEASED: usize = 0b1000;

/// What sleeps on an answer.
enum Waiter {
    /// A thread in `Pending::wait`, parked.
    Thread(thread::Thread),
    /// A task awaiting the `Pending`.
    Task(Waker),
}

impl Waiter {
    fn wake(self) {
        match self {
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::Task(waker) => waker.wake(),
        }
    }
}

struct Shared<T> {
    /// Phase, `WAITER` and `RELEASED` flags.
    state: AtomicUsize,
    /// The answer: written by the reply side while the phase is `WAITING`,
    /// published by its move to `READY`, read by the caller's side once.
    value: UnsafeCell<MaybeUninit<T>>,
    /// The waiter to wake, once the caller's side has raised `WAITER`.
    /// Locked only by a caller that sleeps or polls, and by a reply that
    /// finds the flag raised.
    waiter: Mutex<Option<Waiter>>,
    /// Under loom, read by every access of a side to the slot (`Slot::get`)
    /// and written when the slot is freed: a free not ordered after the
    /// other side's last access, even an atomic one, is a race the model
    /// reports.
    #[cfg(cellrt_loom)]
    alive: UnsafeCell<()>,
}

// SAFETY: the slot moves a `T` from one thread to another, so `T: Send` is
// required and enough: the value is only ever accessed by one side at a
// time (the reply side before it publishes `READY`, the caller's side
// after it sees `READY` with Acquire), never shared by reference. Every
// other field is `Send + Sync` itself.
unsafe impl<T: Send> Send for Shared<T> {}
// SAFETY: as for `Send`: through `&Shared` a thread can only reach the
// value when the state word gives it the value alone.
unsafe impl<T: Send> Sync for Shared<T> {}

/// How the reply side's move out of `WAITING` went.
enum Resolved {
    /// Resolved, and the reply side let go of the slot in the same move:
    /// it must not touch the slot again.
    LetGo,
    /// Resolved; the waiter was taken out to wake. The reply side still
    /// holds the slot and must [`release`] it (before waking the waiter).
    Wake(Option<Waiter>),
    /// The caller closed the slot first; the state word as found (with
    /// Acquire). The reply side still holds the slot and must [`release`]
    /// it.
    Closed(usize),
}

impl<T> Shared<T> {
    /// Moves the phase from `WAITING` to `to`, keeping the `WAITER` flag,
    /// and lets go of the slot in the same move unless a waiter is to be
    /// woken. Called by the reply side only, once.
    fn resolve(&self, to: usize) -> Resolved {
        let mut current = WAITING;
        loop {
            // A waiter behind the lock is taken out after the move: let go
            // only then.
            let next = if current & WAITER == 0 { to | RELEASED } else { to | WAITER };
            // AcqRel: Release publishes the answer written before and, with
            // `RELEASED`, every access of this side to the slot; Acquire
            // pairs with the caller's Release when it raised `WAITER`, so
            // the waiter it left behind the lock is there to take.
            match self.state.compare_exchange_weak(current, next, AcqRel, Acquire) {
                Ok(_) if next & RELEASED != 0 => return Resolved::LetGo,
                Ok(_) => return Resolved::Wake(self.waiter.lock().take()),
                Err(found) if found & PHASE == WAITING => current = found,
                Err(found) => return Resolved::Closed(found),
            }
        }
    }

    /// Gives up on the answer: moves the phase from `WAITING` to `CLOSED`.
    /// Returns the state found instead when the reply side resolved the
    /// slot first. Called by the caller's side only.
    fn close(&self) -> Result<(), usize> {
        let mut current = self.state.load(Acquire);
        loop {
            if current & PHASE != WAITING {
                return Err(current);
            }
            // Acquire on failure: a `READY` found here is then taken.
            match self.state.compare_exchange_weak(current, CLOSED | (current & WAITER), Acquire, Acquire) {
                Ok(_) => return Ok(()),
                Err(found) => current = found,
            }
        }
    }

    /// The result of a resolved slot, whose state (read with Acquire by
    /// the caller's side) is `state`; the answer is taken out and the slot
    /// closed. `None` while the phase is still `WAITING`. Called by the
    /// caller's side only.
    fn take(&self, state: usize) -> Option<Result<T, AskError>> {
        match state & PHASE {
            READY => {
                // The answer is moved out: mark the slot closed first, so
                // that neither a second take nor the slot's drop reads it
                // again. Relaxed: the reply side has left the value for
                // good; this side's own release comes later.
                if state & RELEASED != 0 {
                    // The reply side let go: no one else writes the word.
                    self.state.store(state | CLOSED, Relaxed);
                } else {
                    // The reply side may still raise `RELEASED`: keep it.
                    // `READY | CLOSED` is `CLOSED`.
                    self.state.fetch_or(CLOSED, Relaxed);
                }
                // SAFETY: the phase was `READY`, read with Acquire, so the
                // reply side wrote the value before its Release and never
                // touches it again; only the caller's side (this thread,
                // through `&mut Pending` or `Pending` by value) reads it,
                // once, since the phase is now `CLOSED`.
                Some(Ok(self.value.with_mut(|value| unsafe { (*value).assume_init_read() })))
            }
            UNANSWERED | CLOSED => Some(Err(AskError::Unanswered)),
            _ => None,
        }
    }

    /// The state word now, with Acquire: a `READY` seen here may be taken.
    #[inline]
    fn state(&self) -> usize {
        self.state.load(Acquire)
    }

    /// The phase now, with Acquire: a `READY` seen here may be taken.
    #[inline]
    fn phase(&self) -> usize {
        self.state() & PHASE
    }

    /// Puts `waiter` behind the lock and raises `WAITER`. Returns the state
    /// the slot had then: while its phase is `WAITING`, whoever resolves the
    /// slot wakes the waiter.
    fn register(&self, waiter: Waiter) -> usize {
        *self.waiter.lock() = Some(waiter);
        // Release: the reply side that sees the flag (with Acquire) finds
        // the waiter; Acquire: a `READY` found here may be taken.
        self.state.fetch_or(WAITER, AcqRel)
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        // Acquire: the side that frees may not be the thread that wrote the
        // answer (it saw `RELEASED` with Acquire already; this is cheap).
        if self.state.load(Acquire) & PHASE == READY {
            // SAFETY: `READY` means the value was written and not taken
            // (taking it moves the phase to `CLOSED`); this is the slot's
            // last owner, so no one else can read it.
            self.value.with_mut(|value| unsafe { (*value).assume_init_drop() });
        }
    }
}

/// One side's hold on the slot: a `Box<Shared<T>>` leaked at creation and
/// freed by whichever side lets go second.
struct Slot<T> {
    ptr: NonNull<Shared<T>>,
    _owns: PhantomData<Box<Shared<T>>>,
}

impl<T> Slot<T> {
    /// The slot, while this side holds it.
    #[inline]
    fn get(&self) -> &Shared<T> {
        // SAFETY: the box is freed (or kept for another ask) only by the
        // second side to let go, and this side has not let go yet: a side
        // lets go only by consuming its `Slot` (`release`, `free`, or the
        // moves that set `RELEASED` followed by dropping the `Slot` unused).
        let shared = unsafe { self.ptr.as_ref() };
        #[cfg(cellrt_loom)]
        shared.alive.with(|_| ());
        shared
    }

    /// Lets go of a slot whose state this side last saw as `seen` (with
    /// Acquire): frees it if the other side let go already, otherwise
    /// raises `RELEASED` so that the other side frees it.
    fn release(self, seen: usize) {
        if seen & RELEASED == 0 {
            // AcqRel: Release orders this side's accesses to the slot
            // before the other side's free; Acquire orders the other side's
            // accesses before this side's free, if it let go first.
            let before = self.get().state.fetch_or(RELEASED, AcqRel);
            if before & RELEASED == 0 {
                return;
            }
        }
        self.free();
    }

    /// Frees the slot: the other side let go (this side saw `RELEASED`
    /// with Acquire), and this side lets go now. What the slot holds (an
    /// answer not taken, a waiter left behind) is dropped; the box is kept
    /// for this thread's next ask, or given back to the allocator.
    fn free(self) {
        #[cfg(cellrt_loom)]
        model::freed(self.get());
        // SAFETY: both sides have let go (the other side raised `RELEASED`
        // after its last access, this side consumes its `Slot`), so
        // nothing reaches the slot after this: it is dropped once, here.
        unsafe { ptr::drop_in_place(self.ptr.as_ptr()) };
        // SAFETY: the box was allocated by `channel_until` with the layout
        // of `Shared<T>` (a `Box`, or a kept box of that layout), it holds
        // nothing now, and no handle points to it any more.
        unsafe { spare::keep(self.ptr.cast(), Layout::new::<Shared<T>>()) };
    }
}

// SAFETY: a `Slot` is one side's share of a `Shared<T>` that is `Send + Sync`
// for `T: Send` (see there), as `Arc<Shared<T>>` would be.
unsafe impl<T: Send> Send for Slot<T> {}
// SAFETY: as for `Send`.
unsafe impl<T: Send> Sync for Slot<T> {}

/// Under loom, a freed slot counts as a write to its answer and to its
/// `alive` cell, which every access reads (a free not ordered after the
/// other side's last access is a race in the model), and
/// the slots live on the model's thread are counted: a model checks that
/// every slot it made was freed exactly once.
#[cfg(cellrt_loom)]
pub(crate) mod model {
    use std::cell::Cell;

    std::thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    pub(super) fn made() {
        LIVE.with(|live| live.set(live.get() + 1));
    }

    pub(super) fn freed<T>(shared: &super::Shared<T>) {
        shared.value.with_mut(|_| ());
        shared.alive.with_mut(|_| ());
        LIVE.with(|live| {
            assert!(live.get() > 0, "a reply slot freed twice");
            live.set(live.get() - 1);
        });
    }

    /// Reply slots made and not yet freed on this thread (loom runs a
    /// model's threads on one).
    pub(crate) fn live() -> isize {
        LIVE.with(Cell::get)
    }

    /// Forgets the count, at the start of a model's run.
    pub(crate) fn reset() {
        LIVE.with(|live| live.set(0));
    }
}

/// Reply boxes kept for the next ask of the thread that freed them, so
/// that an ask in a loop allocates its slot once.
///
/// A box is kept only by [`Slot::free`], which the second side to let go
/// runs: from then on no handle points to it, and the thread that freed it
/// owns it alone (the `RELEASED` protocol, unchanged, decides which side
/// that is: the caller's in an ask answered while it waits). A kept box
/// holds nothing (its slot was dropped in place) and is known by its
/// layout: a box made for one answer type serves any other of the same size
/// and alignment. A thread keeps at most [`KEPT`] boxes, none larger than
/// [`KEPT_SIZE_MAX`] bytes; any other goes back to the allocator, as the
/// kept ones do when the thread exits (or, during its exit, at once).
mod spare {
    use std::alloc::{dealloc, Layout};
    use std::cell::Cell;
    use std::ptr::NonNull;

    /// Boxes one thread keeps: one for each answer layout of the few a
    /// thread usually asks for. A take looks at each in turn.
    pub(super) const KEPT: usize = 2;
    /// The largest box kept, in bytes: a slot for a large answer is not
    /// kept around for an ask that may never come.
    pub(super) const KEPT_SIZE_MAX: usize = 256;

    /// A box that no slot lives in.
    #[derive(Clone, Copy)]
    struct Spare {
        ptr: NonNull<u8>,
        layout: Layout,
    }

    /// One thread's kept boxes; an entry is taken and replaced whole.
    struct Kept([Cell<Option<Spare>>; KEPT]);

    impl Drop for Kept {
        fn drop(&mut self) {
            for entry in &self.0 {
                if let Some(spare) = entry.take() {
                    // SAFETY: `keep` took the box with the promise that the
                    // global allocator made it with `layout` and that
                    // nothing else points to it; it was not handed out
                    // again (`take` empties its entry).
                    unsafe { dealloc(spare.ptr.as_ptr(), spare.layout) };
                }
            }
        }
    }

    crate::sync::thread_local! {
        static KEPT_BOXES: Kept = const { Kept([const { Cell::new(None) }; KEPT]) };
    }

    /// A kept box of `layout`, if this thread has one; the caller owns it
    /// from now on (to write a slot in).
    #[inline]
    pub(super) fn take(layout: Layout) -> Option<NonNull<u8>> {
        if layout.size() > KEPT_SIZE_MAX {
            return None;
        }
        KEPT_BOXES
            .try_with(|kept| {
                kept.0.iter().find_map(|entry| match entry.get() {
                    Some(spare) if spare.layout == layout => {
                        entry.set(None);
                        Some(spare.ptr)
                    }
                    _ => None,
                })
            })
            .ok()
            .flatten()
    }

    /// Keeps the box at `ptr` for a later [`take`] of its layout on this
    /// thread, or gives it back to the allocator when it is too large, this
    /// thread keeps enough already, or the thread is exiting.
    ///
    /// # Safety
    ///
    /// The global allocator made `ptr` with `layout`; it holds no value,
    /// and nothing else points to it or will.
    #[inline]
    pub(super) unsafe fn keep(ptr: NonNull<u8>, layout: Layout) {
        let kept = layout.size() <= KEPT_SIZE_MAX
            && KEPT_BOXES
                .try_with(|kept| match kept.0.iter().find(|entry| entry.get().is_none()) {
                    Some(entry) => {
                        entry.set(Some(Spare { ptr, layout }));
                        true
                    }
                    None => false,
                })
                .unwrap_or(false);
        if !kept {
            // SAFETY: as the caller promised.
            unsafe { dealloc(ptr.as_ptr(), layout) };
        }
    }

    /// How many boxes this thread keeps now.
    #[cfg(all(test, not(cellrt_loom)))]
    pub(super) fn kept() -> usize {
        KEPT_BOXES.with(|kept| kept.0.iter().filter(|entry| entry.get().is_some()).count())
    }
}

/// Creates a connected reply handle and pending result.
pub(crate) fn channel<T>() -> (Reply<T>, Pending<T>) {
    channel_until(None)
}

/// [`channel`] for an ask that must be answered before `deadline`: the
/// handler reads it with [`Reply::deadline`].
pub(crate) fn channel_until<T>(deadline: Option<Instant>) -> (Reply<T>, Pending<T>) {
    let shared = Shared {
        state: AtomicUsize::new(WAITING),
        value: UnsafeCell::new(MaybeUninit::uninit()),
        waiter: Mutex::new(None),
        #[cfg(cellrt_loom)]
        alive: UnsafeCell::new(()),
    };
    #[cfg(cellrt_loom)]
    model::made();
    let ptr = match spare::take(Layout::new::<Shared<T>>()) {
        Some(kept) => {
            let ptr = kept.cast::<Shared<T>>();
            // SAFETY: a kept box has the layout of `Shared<T>` (size and
            // alignment), holds nothing, and belongs to this thread alone
            // (`spare::take` handed it over), so it is written, not
            // dropped into.
            unsafe { ptr.as_ptr().write(shared) };
            ptr
        }
        None => NonNull::from(Box::leak(Box::new(shared))),
    };
    (
        Reply { slot: Some(Slot { ptr, _owns: PhantomData }), deadline },
        Pending { slot: Slot { ptr, _owns: PhantomData } },
    )
}

/// The handle a cell answers an ask through. Put it in the message.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use cellrt::{Cell, CellError, Context, Reply, Runtime};
///
/// enum Msg {
///     Add(u64),
///     Total(Reply<u64>),
/// }
///
/// #[derive(Default)]
/// struct Sum(u64);
///
/// impl Cell for Sum {
///     type Message = Msg;
///
///     fn handle(&mut self, _ctx: &mut Context<Self>, msg: Msg) -> Result<(), CellError> {
///         match msg {
///             Msg::Add(n) => self.0 += n,
///             Msg::Total(reply) => {
///                 // A caller that gave up gets nothing; the value comes back.
///                 let _ = reply.send(self.0);
///             }
///         }
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().build()?;
/// let sum = runtime.spawn(Sum::default())?;
/// sum.try_send(Msg::Add(2)).unwrap();
/// sum.try_send(Msg::Add(3)).unwrap();
/// let total = sum.ask(Msg::Total).unwrap().wait(Duration::from_secs(5))?;
/// assert_eq!(total, 5);
/// # runtime.shutdown(Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reply<T> {
    /// `None` once answered.
    slot: Option<Slot<T>>,
    deadline: Option<Instant>,
}

impl<T: Send + 'static> Reply<T> {
    /// Answers the ask. Hands `value` back when the caller already gave up.
    ///
    /// Inside a durable cell whose durability holds acknowledgements
    /// (`Durability::PerMessage`, `PerTurn`), the answer is held until the
    /// cell's state is flushed, and dropped (the ask resolves to
    /// [`AskError::Unanswered`]) if that fails; `send` then returns `Ok`.
    pub fn send(self, value: T) -> Result<(), T> {
        // Most answers are sent outside any durable cell: one flag says so.
        #[cfg(feature = "storage")]
        if held::is_holding() {
            return match held::hold(self, value) {
                Ok(()) => Ok(()),
                Err((me, value)) => me.deliver(value),
            };
        }
        self.deliver(value)
    }
}

impl<T> Reply<T> {
    /// A connected reply and answer, outside any ask: code that carries a
    /// request across a boundary the runtime does not see (a bridge to
    /// another process, say) builds the request around the `Reply` and
    /// waits for, or awaits, the [`Pending`] itself. `deadline` is what
    /// [`deadline`](Reply::deadline) returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::Reply;
    ///
    /// let (reply, pending) = Reply::pair(None);
    /// reply.send(7).unwrap();
    /// assert_eq!(pending.wait(Duration::from_secs(1)), Ok(7));
    /// ```
    pub fn pair(deadline: Option<Instant>) -> (Reply<T>, Pending<T>) {
        channel_until(deadline)
    }

    fn deliver(mut self, value: T) -> Result<(), T> {
        let slot = self.slot.take().expect("a reply is answered at most once");
        let shared = slot.get();
        // SAFETY: the phase is not `READY` (only this handle sets it, and
        // only here, once), so the caller's side never reads the value now;
        // this handle is the only writer. If the slot turns out closed, the
        // value is read back below before anyone else could look.
        shared.value.with_mut(|cell| unsafe { (*cell).write(value) });
        match shared.resolve(READY) {
            Resolved::LetGo => Ok(()),
            Resolved::Wake(waiter) => {
                slot.release(WAITING);
                if let Some(waiter) = waiter {
                    waiter.wake();
                }
                Ok(())
            }
            // The caller gave up; `CLOSED` stays.
            Resolved::Closed(seen) => {
                // SAFETY: written just above, and the phase never became
                // `READY`, so the caller's side did not and will not take
                // it; this side still holds the slot.
                let back = shared.value.with_mut(|cell| unsafe { (*cell).assume_init_read() });
                slot.release(seen);
                Err(back)
            }
        }
    }

    /// When the caller stops waiting, for an ask sent with
    /// [`Addr::ask_within`](crate::Addr::ask_within); `None` otherwise. Work
    /// that cannot finish before it is wasted: the answer would come back.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the caller has given up (timed out or dropped its `Pending`).
    pub fn is_abandoned(&self) -> bool {
        match &self.slot {
            Some(slot) => slot.get().phase() == CLOSED,
            None => true,
        }
    }
}

impl<T> Drop for Reply<T> {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            // Unanswered, unless the caller already gave up: then `CLOSED`
            // stays.
            match slot.get().resolve(UNANSWERED) {
                Resolved::LetGo => {}
                Resolved::Wake(waiter) => {
                    slot.release(WAITING);
                    if let Some(waiter) = waiter {
                        waiter.wake();
                    }
                }
                Resolved::Closed(seen) => slot.release(seen),
            }
        }
    }
}

impl<T> fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").field("abandoned", &self.is_abandoned()).finish()
    }
}

/// The result of an ask, still to come.
///
/// Wait for it with [`wait`](Pending::wait), or `.await` it. Dropping it
/// abandons the ask: a late reply is handed back to the replying cell.
#[must_use = "an ask's result is lost unless it is waited for or awaited"]
pub struct Pending<T> {
    slot: Slot<T>,
}

/// Why an ask produced no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AskError {
    /// No answer before the timeout. A late answer is discarded.
    Timeout,
    /// The reply handle was dropped unanswered: the cell stopped, failed
    /// while handling the request, or did not answer.
    Unanswered,
}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Timeout => "ask timed out",
            AskError::Unanswered => "ask dropped unanswered",
        })
    }
}

impl std::error::Error for AskError {}

impl<T> Pending<T> {
    /// Blocks until the answer arrives, the reply is dropped unanswered, or
    /// `timeout` passes.
    ///
    /// The thread spins, then yields, for up to 50 µs before it sleeps:
    /// an answer that comes within that time is seen at once instead of
    /// after a wake-up, at the price of that much CPU time for a slow answer.
    /// The timeout is counted from the end of the first spin (a few
    /// microseconds at most), so an answer that comes at once costs no look
    /// at the clock.
    ///
    /// A zero `timeout` does not wait at all: the answer if it is already
    /// there, `Unanswered` if the reply was already dropped, otherwise
    /// `Timeout`, decided by one look at the state (no spinning), as
    /// [`try_take`](Pending::try_take) does.
    ///
    /// # Blocking a worker
    ///
    /// Called on a worker thread this blocks that worker: the runtime warns
    /// once per dispatcher through `tracing` (level `WARN`). Inside a cell, prefer the message-back pattern: put
    /// the asking cell's own address (or a message built from the answer)
    /// into the request, and let the answer arrive as a message of its own,
    /// so the worker goes on serving other cells meanwhile. On a runtime
    /// with one worker, a handler that waits for another cell's answer waits
    /// for the whole timeout: no other worker can run that cell. Before it
    /// blocks, the worker hands the cell it was about to run next to its
    /// dispatcher's shared queue, so asking a cell this handler just woke
    /// cannot wait on itself. A cell asking its own address is refused at
    /// once by [`Addr::ask`](crate::Addr::ask) with
    /// [`SendError::SelfAsk`](crate::SendError::SelfAsk).
    pub fn wait(self, timeout: Duration) -> Result<T, AskError> {
        if timeout.is_zero() {
            return self.take_now();
        }
        worker::before_blocking_wait();
        // A reply usually comes within microseconds: spin a little before
        // sleeping, looking after every hint so that the answer is seen as
        // it lands.
        let resolved = || self.slot.get().phase() != WAITING;
        if !crate::sync::spin_until(resolved) {
            let deadline = Instant::now().checked_add(timeout);
            // Then keep yielding for a while: a thread that sleeps here is
            // woken tens of microseconds after the answer on a busy or
            // virtual machine, longer than most answers take (a restart and
            // the ask behind it take a few microseconds).
            if !crate::sync::yield_until(SPIN_BUDGET.min(timeout), resolved) {
                self.sleep(deadline);
            }
        }
        self.take_now()
    }

    /// Parks the thread until the slot is resolved or `deadline` passes
    /// (`None`: a deadline too far away to represent, no deadline).
    fn sleep(&self, deadline: Option<Instant>) {
        if self.slot.get().register(Waiter::Thread(thread::current())) & PHASE != WAITING {
            return;
        }
        // The reply side now unparks this thread when it resolves the slot;
        // a wake-up can also be spurious, or left over from an earlier
        // unpark, so the state is looked at after each.
        while self.slot.get().phase() == WAITING {
            match deadline {
                Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => thread::park_timeout(left),
                    _ => return,
                },
                None => thread::park(),
            }
        }
    }

    /// One look at the state: the result if the slot is resolved;
    /// otherwise the caller gives up and gets `Timeout`, unless the answer
    /// lands just then.
    fn take_now(self) -> Result<T, AskError> {
        let shared = self.slot.get();
        if let Some(result) = shared.take(shared.state()) {
            return result;
        }
        match shared.close() {
            Ok(()) => Err(AskError::Timeout),
            Err(state) => shared.take(state).unwrap_or(Err(AskError::Unanswered)),
        }
    }

    /// The answer if it has arrived, without blocking. `Ok(None)` while it
    /// is still to come.
    pub fn try_take(&mut self) -> Result<Option<T>, AskError> {
        let shared = self.slot.get();
        match shared.take(shared.state()) {
            Some(result) => result.map(Some),
            None => Ok(None),
        }
    }
}

impl<T> Drop for Pending<T> {
    fn drop(&mut self) {
        // Give up: a reply still to come finds `CLOSED` and is handed back.
        // A resolved slot (the end of every ask that was waited for) is
        // left as it is: an answer not taken is dropped with the slot.
        // Either way this side lets go in the same move, or frees the slot
        // if the reply side let go already.
        let shared = self.slot.get();
        let mut current = shared.state();
        loop {
            if current & RELEASED != 0 {
                break;
            }
            let next = if current & PHASE == WAITING {
                CLOSED | RELEASED | (current & WAITER)
            } else {
                current | RELEASED
            };
            // AcqRel: Release orders this side's accesses to the slot (the
            // answer taken, the waiter left) before the reply side's free;
            // Acquire: a reply side that let go meanwhile is seen above.
            match shared.state.compare_exchange_weak(current, next, AcqRel, Acquire) {
                Ok(_) => return,
                Err(found) => current = found,
            }
        }
        // The reply side let go: this side frees the slot.
        Slot { ptr: self.slot.ptr, _owns: PhantomData }.free();
    }
}

impl<T> Future for Pending<T> {
    type Output = Result<T, AskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let shared = self.slot.get();
        if let Some(result) = shared.take(shared.state()) {
            return Poll::Ready(result);
        }
        // Leave the waker (this poll's: the task may have moved), then look
        // again: an answer that landed before the flag was raised did not
        // wake it.
        let state = shared.register(Waiter::Task(cx.waker().clone()));
        match shared.take(state) {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }
}

impl<T> fmt::Debug for Pending<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pending(..)")
    }
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn answer_before_wait_is_returned() {
        let (reply, pending) = channel();
        reply.send(5).unwrap();
        assert_eq!(pending.wait(Duration::from_secs(1)), Ok(5));
    }

    #[test]
    fn dropped_reply_resolves_to_unanswered_at_once() {
        let (reply, pending) = channel::<u8>();
        drop(reply);
        let started = Instant::now();
        assert_eq!(pending.wait(Duration::from_secs(60)), Err(AskError::Unanswered));
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn timeout_then_late_reply_is_handed_back() {
        let (reply, pending) = channel();
        assert_eq!(pending.wait(Duration::from_millis(1)), Err(AskError::Timeout));
        assert!(reply.is_abandoned());
        assert_eq!(reply.send(9), Err(9));
    }

    #[test]
    fn late_reply_value_is_dropped_not_leaked() {
        struct Counted(std::sync::Arc<AtomicUsize>);
        impl Drop for Counted {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        drop(pending);
        let value = reply.send(Counted(drops.clone())).unwrap_err();
        drop(value);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_zero_wait_takes_an_answer_already_there() {
        for _ in 0..1_000 {
            let (reply, pending) = channel();
            reply.send(3).unwrap();
            assert_eq!(pending.wait(Duration::ZERO), Ok(3));
        }
    }

    #[test]
    fn a_zero_wait_times_out_at_once_while_the_answer_is_to_come() {
        for _ in 0..1_000 {
            let (reply, pending) = channel::<u8>();
            assert_eq!(pending.wait(Duration::ZERO), Err(AskError::Timeout));
            assert!(reply.is_abandoned(), "the caller gave up: a late answer comes back");
            assert_eq!(reply.send(4), Err(4));
        }
    }

    #[test]
    fn a_zero_wait_on_a_dropped_reply_is_unanswered() {
        let (reply, pending) = channel::<u8>();
        drop(reply);
        assert_eq!(pending.wait(Duration::ZERO), Err(AskError::Unanswered));
    }

    #[test]
    fn a_pair_made_outside_an_ask_carries_its_deadline_and_resolves_unanswered_on_drop() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let (reply, pending) = Reply::<u8>::pair(Some(deadline));
        assert_eq!(reply.deadline(), Some(deadline));
        drop(reply);
        assert_eq!(pending.wait(Duration::from_secs(1)), Err(AskError::Unanswered));
    }

    #[test]
    fn try_take_sees_nothing_then_the_answer() {
        let (reply, mut pending) = channel();
        assert_eq!(pending.try_take(), Ok(None));
        reply.send("hi").unwrap();
        assert_eq!(pending.try_take(), Ok(Some("hi")));
    }

    /// A reply value that counts its drops.
    struct Counted(std::sync::Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_leaked_pending_then_a_reply_is_accepted_and_the_answer_kept_until_the_slot_goes() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        let pending = std::mem::ManuallyDrop::new(pending);
        assert!(!reply.is_abandoned(), "a leaked caller never gave up");
        assert!(reply.send(Counted(drops.clone())).is_ok());
        assert_eq!(drops.load(Ordering::SeqCst), 0, "the answer waits for a caller that never comes");
        // Only now does the caller's side let go: the answer goes with it.
        drop(std::mem::ManuallyDrop::into_inner(pending));
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn an_answer_never_taken_is_dropped_once_with_the_pending() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, pending) = channel();
        assert!(reply.send(Counted(drops.clone())).is_ok());
        drop(pending);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_taken_answer_is_dropped_once_by_its_taker() {
        let drops = std::sync::Arc::new(AtomicUsize::new(0));
        let (reply, mut pending) = channel();
        assert!(reply.send(Counted(drops.clone())).is_ok());
        let answer = pending.try_take().unwrap().expect("the answer is there");
        assert_eq!(pending.try_take().map(|a| a.is_some()), Err(AskError::Unanswered), "taken once");
        drop(pending);
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        drop(answer);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_reply_dropped_while_the_caller_sleeps_wakes_it_with_unanswered() {
        let (reply, pending) = channel::<u8>();
        let cell = std::thread::spawn(move || {
            // Well past the spin budget: the caller is asleep by now.
            std::thread::sleep(Duration::from_millis(20));
            drop(reply);
        });
        let started = Instant::now();
        assert_eq!(pending.wait(Duration::from_secs(60)), Err(AskError::Unanswered));
        assert!(started.elapsed() < Duration::from_secs(30), "woken by the drop, not the timeout");
        cell.join().unwrap();
    }

    #[test]
    fn a_sleeping_caller_that_times_out_hands_a_late_answer_back() {
        let (reply, pending) = channel();
        // Past the spin budget, so the caller parks and then gives up.
        assert_eq!(pending.wait(Duration::from_millis(5)), Err(AskError::Timeout));
        assert!(reply.is_abandoned());
        assert_eq!(reply.send(11), Err(11));
    }

    /// A waker that counts its wake-ups.
    struct CountingWaker(AtomicUsize);

    impl std::task::Wake for CountingWaker {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_polled_pending_is_woken_once_by_the_answer_and_then_ready() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let (reply, mut pending) = channel();
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending, "polled again, still to come");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0);
        reply.send(8).unwrap();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Ready(Ok(8)));
    }

    #[test]
    fn a_polled_then_waited_pending_gets_the_answer() {
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let (reply, mut pending) = channel();
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        let answer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            reply.send(12).unwrap();
        });
        assert_eq!(pending.wait(Duration::from_secs(60)), Ok(12));
        answer.join().unwrap();
    }

    #[test]
    fn a_leaked_pending_is_not_freed_under_it_by_a_reply_or_a_dropped_reply() {
        // The slot stays alive for a caller that never lets go: reading
        // it after the reply side let go must find it intact.
        for answer in [true, false] {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let (reply, pending) = channel();
            let mut pending = std::mem::ManuallyDrop::new(pending);
            if answer {
                assert!(reply.send(Counted(drops.clone())).is_ok());
            } else {
                drop(reply);
            }
            let taken = pending.try_take();
            assert_eq!(taken.is_ok(), answer, "the answer, or unanswered, is still there to take");
            drop(taken);
            assert_eq!(drops.load(Ordering::SeqCst), usize::from(answer));
            // Truly leaked: the slot (and nothing else) is lost.
        }
    }

    #[test]
    fn each_drop_order_frees_the_slot_and_its_answer_once() {
        // Reply first (answered or not) then the pending, and the other way
        // round, with and without a sleeping waiter left behind the lock.
        for reply_first in [true, false] {
            for answered in [true, false] {
                let drops = std::sync::Arc::new(AtomicUsize::new(0));
                let (reply, pending) = channel();
                let counted = Counted(drops.clone());
                if reply_first {
                    if answered {
                        assert!(reply.send(counted).is_ok());
                    } else {
                        drop(reply);
                        drop(counted);
                    }
                    drop(pending);
                } else {
                    drop(pending);
                    if answered {
                        drop(reply.send(counted).expect_err("the caller gave up: the value comes back"));
                    } else {
                        drop(reply);
                        drop(counted);
                    }
                }
                assert_eq!(drops.load(Ordering::SeqCst), 1, "reply first {reply_first}, answered {answered}");
            }
        }
    }

    #[test]
    fn a_waker_left_in_a_slot_is_dropped_with_it() {
        // The task leaves its waker, then gives up; the reply goes after.
        let counter = std::sync::Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = TaskContext::from_waker(&waker);
        let (reply, mut pending) = channel::<u8>();
        assert_eq!(Pin::new(&mut pending).poll(&mut cx), Poll::Pending);
        drop(waker);
        assert_eq!(std::sync::Arc::strong_count(&counter), 2, "one waker in the slot");
        drop(pending);
        assert_eq!(reply.send(1), Err(1));
        assert_eq!(std::sync::Arc::strong_count(&counter), 1, "the waker went with the slot");
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "a caller that gave up is not woken");
    }

    #[test]
    fn a_held_reply_dropped_unrun_resolves_unanswered_and_frees_once() {
        let (reply, pending) = Reply::<u8>::pair(None);
        let held: Box<dyn FnOnce() + Send> = Box::new(move || {
            let _ = reply.send(1);
        });
        drop(held);
        assert_eq!(pending.wait(Duration::from_secs(1)), Err(AskError::Unanswered));
    }

    /// Where a pending's slot lives.
    fn address<T>(pending: &Pending<T>) -> usize {
        pending.slot.ptr.as_ptr() as usize
    }

    /// Runs `body` on a thread of its own, which keeps no boxes yet.
    fn on_fresh_thread(body: impl FnOnce() + Send + 'static) {
        std::thread::spawn(body).join().unwrap();
    }

    #[test]
    fn the_next_ask_on_a_thread_reuses_the_box_its_last_ask_freed() {
        on_fresh_thread(|| {
            let (reply, pending) = channel();
            let first = address(&pending);
            reply.send(1_u64).unwrap();
            assert_eq!(pending.wait(Duration::from_secs(1)), Ok(1));
            assert_eq!(spare::kept(), 1, "the caller let go last and kept the box");
            let (reply, pending) = channel();
            assert_eq!(address(&pending), first, "the kept box is the next ask's");
            assert_eq!(spare::kept(), 0);
            reply.send(2_u64).unwrap();
            assert_eq!(pending.wait(Duration::from_secs(1)), Ok(2));
        });
    }

    #[test]
    fn a_box_one_side_still_holds_is_neither_kept_nor_reused() {
        on_fresh_thread(|| {
            let (reply, first) = channel::<u64>();
            drop(reply);
            assert_eq!(spare::kept(), 0, "the pending still holds the slot");
            let (second_reply, second) = channel::<u64>();
            assert_ne!(address(&second), address(&first));
            assert_eq!(first.wait(Duration::from_secs(1)), Err(AskError::Unanswered));
            assert_eq!(spare::kept(), 1, "kept once both sides let go");
            drop((second_reply, second));
            assert_eq!(spare::kept(), 2);
        });
    }

    #[test]
    fn a_box_the_reply_side_frees_is_kept_by_the_replying_thread() {
        on_fresh_thread(|| {
            let (reply, pending) = channel::<u64>();
            let slot = address(&pending);
            drop(pending);
            assert_eq!(spare::kept(), 0, "the reply still holds the slot");
            on_fresh_thread(move || {
                assert_eq!(reply.send(3), Err(3), "the caller gave up");
                assert_eq!(spare::kept(), 1, "the reply side let go last and kept the box");
                let (_reply, pending) = channel::<u64>();
                assert_eq!(address(&pending), slot);
            });
            assert_eq!(spare::kept(), 0, "kept where it was freed");
        });
    }

    #[test]
    fn a_kept_box_serves_only_asks_of_its_layout() {
        on_fresh_thread(|| {
            let (reply, pending) = channel::<u8>();
            let small = address(&pending);
            drop((reply, pending));
            let (_reply, pending) = channel::<[u64; 8]>();
            assert_ne!(address(&pending), small, "a larger answer needs a box of its own");
            assert_eq!(spare::kept(), 1, "the small box waits for an ask of its layout");
            let (_reply, pending) = channel::<i8>();
            assert_eq!(address(&pending), small, "another answer type of the same layout takes it");
        });
    }

    #[test]
    fn a_thread_keeps_at_most_a_few_boxes_and_none_too_large() {
        on_fresh_thread(|| {
            let asks: Vec<_> = (0..spare::KEPT + 2).map(|_| channel::<u64>()).collect();
            drop(asks);
            assert_eq!(spare::kept(), spare::KEPT, "the others went back to the allocator");
            on_fresh_thread(|| {
                drop(channel::<[u8; spare::KEPT_SIZE_MAX]>());
                assert_eq!(spare::kept(), 0, "a box for a large answer is not kept");
            });
        });
    }

    #[test]
    fn an_answer_left_in_a_kept_box_is_dropped_once_and_the_box_serves_again() {
        on_fresh_thread(|| {
            let drops = std::sync::Arc::new(AtomicUsize::new(0));
            let (reply, pending) = channel();
            assert!(reply.send(Counted(drops.clone())).is_ok());
            drop(pending);
            assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped when the box was kept");
            assert_eq!(spare::kept(), 1);
            let (reply, pending) = channel();
            assert!(reply.send(Counted(drops.clone())).is_ok());
            let Ok(answer) = pending.wait(Duration::from_secs(1)) else { panic!("the answer comes") };
            assert_eq!(drops.load(Ordering::SeqCst), 1, "the new answer is intact");
            drop(answer);
            assert_eq!(drops.load(Ordering::SeqCst), 2);
        });
    }

    #[test]
    fn answer_from_another_thread_wakes_the_waiter() {
        let (reply, pending) = channel();
        let answer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            reply.send(42).unwrap();
        });
        assert_eq!(pending.wait(Duration::from_secs(10)), Ok(42));
        answer.join().unwrap();
    }
}

/// Answers held back until a durable cell's state is flushed.
#[cfg(feature = "storage")]
pub(crate) mod held {
    use std::cell::{Cell, RefCell};

    use super::Reply;

    type Held = Box<dyn FnOnce() + Send>;

    thread_local! {
        /// Set while a durable cell's handler runs with acknowledgements held.
        static HELD: RefCell<Option<Vec<Held>>> = const { RefCell::new(None) };
        /// Whether `HELD` is set: read on every answer, so kept where
        /// reading it costs one load (no destructor to register, no borrow
        /// to check).
        static HOLDING: Cell<bool> = const { Cell::new(false) };
    }

    /// Whether answers sent on this thread are held now.
    #[inline]
    pub(super) fn is_holding() -> bool {
        HOLDING.get()
    }

    /// Answers sent while holding, to release after the flush (or drop).
    #[derive(Default)]
    pub(crate) struct HeldReplies(Vec<Held>);

    impl HeldReplies {
        /// Delivers every answer. Inlined down to an emptiness check: most
        /// handlers hold nothing, and this runs after every one of them.
        #[inline]
        pub(crate) fn release(self) {
            if !self.0.is_empty() {
                Self::deliver(self.0);
            }
        }

        #[inline(never)]
        fn deliver(held: Vec<Held>) {
            for deliver in held {
                deliver();
            }
        }

        pub(crate) fn append(&mut self, mut other: HeldReplies) {
            self.0.append(&mut other.0);
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// From now on, answers sent on this thread are held.
    pub(crate) fn begin() {
        HELD.with(|held| *held.borrow_mut() = Some(Vec::new()));
        HOLDING.set(true);
    }

    /// Stops holding; returns what was held.
    pub(crate) fn end() -> HeldReplies {
        HOLDING.set(false);
        HeldReplies(HELD.with(|held| held.borrow_mut().take()).unwrap_or_default())
    }

    /// Holds `value` for `reply` if holding is on; otherwise hands both back.
    pub(super) fn hold<T: Send + 'static>(reply: Reply<T>, value: T) -> Result<(), (Reply<T>, T)> {
        HELD.with(|held| match held.borrow_mut().as_mut() {
            Some(list) => {
                list.push(Box::new(move || drop(reply.deliver(value))));
                Ok(())
            }
            None => Err((reply, value)),
        })
    }
}
