//! Load shedding by priority class: [`Shedding`], the admission policy an
//! address applies before a message reaches its mailbox.
//!
//! Each message gets a class from the policy's classifier: a small number,
//! higher is more important (`checkout` 1 above `browse` 0). Each class may
//! have a *watermark*, a fraction of the target's capacity: a message of that
//! class is admitted only while fewer messages than the watermark are
//! queued. A class without a watermark may fill the whole mailbox. Lower
//! classes get lower watermarks, so as the mailbox fills they are shed
//! first and the room above their watermark stays for the classes above.
//!
//! A shed message is never dropped: the send returns
//! [`SendError::Shed`](crate::SendError::Shed) with the message inside, at
//! once (a blocking send does not wait for room for a message the policy
//! refuses), and the policy counts it by class ([`SheddingStats`]).
//!
//! Shedding decides what gets in, not the order in which admitted messages
//! are handled: for that, a cell type declares priority lanes
//! ([`Cell::LANES`](crate::Cell::LANES), [`Cell::lane`](crate::Cell::lane)),
//! and its worker takes the highest lane first.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::mailbox::SendError;
use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The number of classes a policy tells apart: `0..=MAX_CLASS`.
pub const MAX_CLASS: u8 = 15;

const CLASSES: usize = MAX_CLASS as usize + 1;

type Classifier<M> = Box<dyn Fn(&M) -> u8 + Send + Sync>;

/// An address's admission policy by priority class. See the module docs of
/// `flow::shedding` for the rules.
///
/// # Examples
///
/// ```
/// use std::sync::mpsc;
/// use cellrt::{Cell, CellConfig, CellError, Context, Runtime, SendError, Shedding};
///
/// enum Request {
///     Browse(u32),
///     Checkout(u32),
/// }
///
/// /// Handles a request each time the example lets it, so its mailbox fills.
/// struct Shop(mpsc::Receiver<()>);
/// impl Cell for Shop {
///     type Message = Request;
///     fn handle(&mut self, _ctx: &mut Context<Self>, _msg: Request) -> Result<(), CellError> {
///         let _ = self.0.recv();
///         Ok(())
///     }
/// }
///
/// let runtime = Runtime::builder().worker_threads(1).build()?;
/// let (go, gate) = mpsc::channel();
/// let shop = runtime.spawn_with(CellConfig::new().capacity(4), Shop(gate))?;
/// // Browsing may fill half the mailbox; checkout all of it.
/// let policy = Shedding::new(|r: &Request| match r {
///     Request::Browse(_) => 0,
///     Request::Checkout(_) => 1,
/// })
/// .watermark(0, 0.5)?;
/// shop.set_shedding(Some(policy));
///
/// shop.try_send(Request::Browse(1)).unwrap();
/// while shop.queued() > 0 {
///     std::thread::yield_now(); // the worker takes it and waits for `go`
/// }
/// shop.try_send(Request::Browse(2)).unwrap();
/// shop.try_send(Request::Browse(3)).unwrap();
/// // Two of four slots are taken: browse is shed, checkout still gets in.
/// assert!(matches!(shop.try_send(Request::Browse(4)), Err(SendError::Shed(Request::Browse(4)))));
/// shop.try_send(Request::Checkout(5)).unwrap();
/// let stats = shop.shedding_stats().unwrap();
/// assert_eq!((stats.shed(0), stats.admitted(0), stats.admitted(1)), (1, 3, 1));
/// for _ in 0..4 {
///     go.send(()).unwrap();
/// }
/// # runtime.shutdown(std::time::Duration::from_secs(5));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Shedding<M> {
    classify: Classifier<M>,
    /// Per class: the fraction of capacity it may fill; 1.0 when unset.
    watermarks: [f64; CLASSES],
    /// Per class: whether its watermark was set.
    set: [bool; CLASSES],
    admitted: [AtomicU64; CLASSES],
    shed: [AtomicU64; CLASSES],
    classifier_panics: AtomicU64,
}

impl<M> Shedding<M> {
    /// A policy that classes messages with `classify` (values above
    /// [`MAX_CLASS`] count as `MAX_CLASS`) and, until watermarks are set,
    /// sheds nothing.
    pub fn new(classify: impl Fn(&M) -> u8 + Send + Sync + 'static) -> Self {
        Shedding {
            classify: Box::new(classify),
            watermarks: [1.0; CLASSES],
            set: [false; CLASSES],
            admitted: Default::default(),
            shed: Default::default(),
            classifier_panics: AtomicU64::new(0),
        }
    }

    /// Admits messages of `class` only while the target holds fewer than
    /// `fraction` of its capacity.
    ///
    /// # Errors
    ///
    /// [`SheddingError::Class`] for a class above [`MAX_CLASS`],
    /// [`SheddingError::Watermark`] for a fraction outside (0, 1], and
    /// [`SheddingError::Inverted`] when a lower class with a watermark would
    /// keep more room than a higher class with one (it would be shed after
    /// it). Classes without a watermark may always fill the mailbox.
    pub fn watermark(mut self, class: u8, fraction: f64) -> Result<Self, SheddingError> {
        if class > MAX_CLASS {
            return Err(SheddingError::Class(class));
        }
        if !(fraction > 0.0 && fraction <= 1.0) {
            return Err(SheddingError::Watermark { class, fraction });
        }
        let at = usize::from(class);
        let set = |c: &usize| self.set[*c];
        if let Some(lower) = (0..at).filter(set).find(|&c| self.watermarks[c] > fraction) {
            return Err(SheddingError::Inverted { lower: lower as u8, higher: class });
        }
        if let Some(higher) = (at + 1..CLASSES).filter(set).find(|&c| self.watermarks[c] < fraction) {
            return Err(SheddingError::Inverted { lower: class, higher: higher as u8 });
        }
        self.watermarks[at] = fraction;
        self.set[at] = true;
        Ok(self)
    }

    /// Lets `msg` through, or hands it back as `Shed` when `queued` messages
    /// of `capacity` are at or over its class's watermark.
    #[inline]
    pub(crate) fn admit(&self, msg: M, queued: usize, capacity: usize) -> Result<M, SendError<M>> {
        let class = match catch_unwind(AssertUnwindSafe(|| (self.classify)(&msg))) {
            Ok(class) => usize::from(class.min(MAX_CLASS)),
            Err(_) => {
                // A classifier bug must not shed what it cannot judge, nor
                // unwind into the sender: the message counts as the top class.
                self.classifier_panics.fetch_add(1, Relaxed);
                tracing::warn!("shedding classifier panicked; message admitted as the top class");
                CLASSES - 1
            }
        };
        let fraction = self.watermarks[class];
        if fraction < 1.0 && queued as f64 >= fraction * capacity as f64 {
            self.shed[class].fetch_add(1, Relaxed);
            return Err(SendError::Shed(msg));
        }
        self.admitted[class].fetch_add(1, Relaxed);
        Ok(msg)
    }

    /// What the policy admitted and shed so far.
    pub fn stats(&self) -> SheddingStats {
        SheddingStats {
            admitted: std::array::from_fn(|c| self.admitted[c].load(Relaxed)),
            shed: std::array::from_fn(|c| self.shed[c].load(Relaxed)),
            classifier_panics: self.classifier_panics.load(Relaxed),
        }
    }
}

impl<M> fmt::Debug for Shedding<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let watermarks: Vec<_> =
            (0..CLASSES).filter(|&c| self.watermarks[c] < 1.0).map(|c| (c, self.watermarks[c])).collect();
        f.debug_struct("Shedding").field("watermarks", &watermarks).finish_non_exhaustive()
    }
}

/// Counts of a [`Shedding`] policy, by class.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SheddingStats {
    admitted: [u64; CLASSES],
    shed: [u64; CLASSES],
    classifier_panics: u64,
}

impl SheddingStats {
    /// Messages of `class` let through (0 for a class above [`MAX_CLASS`]).
    pub fn admitted(&self, class: u8) -> u64 {
        self.admitted.get(usize::from(class)).copied().unwrap_or(0)
    }

    /// Messages of `class` handed back as `Shed`.
    pub fn shed(&self, class: u8) -> u64 {
        self.shed.get(usize::from(class)).copied().unwrap_or(0)
    }

    /// Messages shed, all classes.
    pub fn shed_total(&self) -> u64 {
        self.shed.iter().sum()
    }

    /// Times the classifier panicked (those messages counted as the top class).
    pub fn classifier_panics(&self) -> u64 {
        self.classifier_panics
    }
}

/// A [`Shedding`] watermark that cannot be set.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum SheddingError {
    /// The class is above [`MAX_CLASS`].
    Class(u8),
    /// The fraction is not in (0, 1].
    Watermark {
        /// The class.
        class: u8,
        /// The fraction given.
        fraction: f64,
    },
    /// A lower class would keep a higher watermark than a higher class.
    Inverted {
        /// The lower class.
        lower: u8,
        /// The higher class.
        higher: u8,
    },
}

impl fmt::Display for SheddingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SheddingError::Class(class) => write!(f, "class {class} is above the highest class, {MAX_CLASS}"),
            SheddingError::Watermark { class, fraction } => {
                write!(f, "watermark {fraction} for class {class} is not a fraction of capacity in (0, 1]")
            }
            SheddingError::Inverted { lower, higher } => write!(
                f,
                "class {lower} would keep a higher watermark than class {higher}: lower classes are shed first"
            ),
        }
    }
}

impl std::error::Error for SheddingError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_value() -> Shedding<u8> {
        Shedding::new(|m: &u8| *m)
    }

    #[test]
    fn without_watermarks_nothing_is_shed() {
        let policy = by_value();
        assert_eq!(policy.admit(0, 99, 100).ok(), Some(0));
        assert_eq!(policy.admit(7, 99, 100).ok(), Some(7));
        assert_eq!(policy.stats().shed_total(), 0);
        assert_eq!((policy.stats().admitted(0), policy.stats().admitted(7)), (1, 1));
    }

    #[test]
    fn a_class_is_shed_from_its_watermark_on_and_handed_back() {
        let policy = by_value().watermark(0, 0.5).unwrap().watermark(1, 0.8).unwrap();
        // Class 0: admitted below 5 of 10, shed at 5.
        assert_eq!(policy.admit(0, 4, 10).ok(), Some(0));
        assert_eq!(policy.admit(0, 5, 10).err(), Some(SendError::Shed(0)));
        // Class 1: still admitted at 5 and 7, shed at 8.
        assert_eq!(policy.admit(1, 5, 10).ok(), Some(1));
        assert_eq!(policy.admit(1, 7, 10).ok(), Some(1));
        assert_eq!(policy.admit(1, 8, 10).err(), Some(SendError::Shed(1)));
        // Class 2 has no watermark: the mailbox decides (Full), not the policy.
        assert_eq!(policy.admit(2, 10, 10).ok(), Some(2));
        let stats = policy.stats();
        assert_eq!((stats.admitted(0), stats.shed(0)), (1, 1));
        assert_eq!((stats.admitted(1), stats.shed(1)), (2, 1));
        assert_eq!((stats.admitted(2), stats.shed(2)), (1, 0));
        assert_eq!(stats.shed_total(), 2);
    }

    #[test]
    fn classes_above_the_highest_count_as_the_highest() {
        let policy = by_value().watermark(MAX_CLASS, 0.5).unwrap();
        assert_eq!(policy.admit(200, 5, 10).err(), Some(SendError::Shed(200)));
        assert_eq!(policy.stats().shed(MAX_CLASS), 1);
        assert_eq!(policy.stats().shed(200), 0);
    }

    #[test]
    fn a_panicking_classifier_admits_as_the_top_class_and_is_counted() {
        let policy =
            Shedding::new(|m: &u8| if *m == 13 { panic!("unlucky") } else { 0 }).watermark(0, 0.1).unwrap();
        assert_eq!(policy.admit(13, 5, 10).ok(), Some(13));
        assert_eq!(policy.admit(1, 5, 10).err(), Some(SendError::Shed(1)));
        let stats = policy.stats();
        assert_eq!((stats.classifier_panics(), stats.admitted(MAX_CLASS), stats.shed(0)), (1, 1, 1));
    }

    #[test]
    fn bad_watermarks_are_refused_with_what_is_wrong() {
        assert_eq!(by_value().watermark(16, 0.5).unwrap_err(), SheddingError::Class(16));
        for fraction in [0.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            let err = by_value().watermark(3, fraction).unwrap_err();
            assert!(matches!(err, SheddingError::Watermark { class: 3, .. }), "{fraction}: {err:?}");
        }
        let err = by_value().watermark(2, 0.5).unwrap().watermark(1, 0.7).unwrap_err();
        assert_eq!(err, SheddingError::Inverted { lower: 1, higher: 2 });
        let err = by_value().watermark(1, 0.3).unwrap().watermark(4, 0.2).unwrap_err();
        assert_eq!(err, SheddingError::Inverted { lower: 1, higher: 4 });
        assert_eq!(
            SheddingError::Inverted { lower: 1, higher: 2 }.to_string(),
            "class 1 would keep a higher watermark than class 2: lower classes are shed first"
        );
        assert_eq!(
            SheddingError::Watermark { class: 3, fraction: 1.5 }.to_string(),
            "watermark 1.5 for class 3 is not a fraction of capacity in (0, 1]"
        );
    }

    #[test]
    fn equal_watermarks_are_allowed() {
        let policy = by_value().watermark(0, 0.5).unwrap().watermark(1, 0.5).unwrap();
        assert_eq!(policy.admit(1, 5, 10).err(), Some(SendError::Shed(1)));
    }
}
