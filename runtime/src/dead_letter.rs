//! Dead letters: messages whose handling failed and that no retry will
//! re-deliver, kept with their [`Failure`].

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;

use crate::failure::Failure;
use crate::sync::{Arc, Mutex};

/// A message whose handling failed for good.
///
/// It carries the failure, how many times the message was re-delivered
/// before, whether it was a *poison message* (it failed again with the same
/// cause), and the message itself when the cell retained a copy
/// ([`Cell::retain`](crate::Cell::retain)): a handler consumes its message,
/// so only a copy made before handling can survive the failure.
///
/// Dead letters are shared: clones see the same message, and
/// [`take_message`](DeadLetter::take_message) hands it out once.
#[derive(Clone)]
pub struct DeadLetter {
    failure: Failure,
    redeliveries: u32,
    poison: bool,
    message: Option<SharedMessage>,
}

/// A dead message, shared by the clones of its letter; taken at most once.
type SharedMessage = Arc<Mutex<Option<Box<dyn Any + Send>>>>;

impl DeadLetter {
    pub(crate) fn new(
        failure: Failure,
        redeliveries: u32,
        poison: bool,
        message: Option<Box<dyn Any + Send>>,
    ) -> Self {
        DeadLetter { failure, redeliveries, poison, message: message.map(|m| Arc::new(Mutex::new(Some(m)))) }
    }

    /// The failure of the last attempt to handle the message: cell path,
    /// cell kind, message kind, cause, time.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }

    /// How many times the message was re-delivered before it was given up.
    pub fn redeliveries(&self) -> u32 {
        self.redeliveries
    }

    /// Whether the message failed again, after a re-delivery, with the same
    /// cause.
    pub fn is_poison(&self) -> bool {
        self.poison
    }

    /// Whether the message itself was kept (and not taken yet).
    pub fn has_message(&self) -> bool {
        self.message.as_ref().is_some_and(|m| m.lock().is_some())
    }

    /// Takes the message out, if it was kept and is an `M`. Once taken, it
    /// is gone from every clone.
    pub fn take_message<M: 'static>(&self) -> Option<M> {
        let slot = self.message.as_ref()?;
        let mut slot = slot.lock();
        if !slot.as_ref().is_some_and(|m| m.is::<M>()) {
            return None;
        }
        slot.take().and_then(|m| m.downcast::<M>().ok()).map(|m| *m)
    }
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("failure", &self.failure)
            .field("redeliveries", &self.redeliveries)
            .field("poison", &self.poison)
            .field("has_message", &self.has_message())
            .finish()
    }
}

/// The runtime's dead-letter store: the latest `capacity` letters.
pub(crate) struct DeadLetters {
    letters: Mutex<VecDeque<DeadLetter>>,
    capacity: usize,
    total: crate::sync::atomic::AtomicU64,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> Self {
        DeadLetters {
            letters: Mutex::new(VecDeque::new()),
            capacity,
            total: crate::sync::atomic::AtomicU64::new(0),
        }
    }

    pub(crate) fn push(&self, letter: DeadLetter) {
        use crate::sync::atomic::Ordering::Relaxed;
        tracing::warn!(
            cell = %letter.failure.path,
            message = letter.failure.message_kind,
            poison = letter.poison,
            redeliveries = letter.redeliveries,
            "dead letter"
        );
        self.total.fetch_add(1, Relaxed);
        if self.capacity == 0 {
            return;
        }
        let mut letters = self.letters.lock();
        if letters.len() == self.capacity {
            letters.pop_front();
        }
        letters.push_back(letter);
    }

    pub(crate) fn snapshot(&self) -> Vec<DeadLetter> {
        self.letters.lock().iter().cloned().collect()
    }

    pub(crate) fn total(&self) -> u64 {
        self.total.load(crate::sync::atomic::Ordering::Relaxed)
    }
}
