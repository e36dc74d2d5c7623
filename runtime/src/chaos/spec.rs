//! [`FaultSet`]: faults as a value, and as a spec string that reads back to
//! the same value (`docs/chaos.md` gives the grammar).
//!
//! ```text
//! spec     = [entry *(";" entry)] [";"]
//! entry    = target ":" [percent] fault *option
//! target   = [edge | glob] *part       ; at most one of each kind of part
//! edge     = cell "->" cell          ; a cell is a glob, or a bare name for /name
//! part     = "type(" name ")" | "kind(" name ")"
//! percent  = digits ["." 1*4digit] "%"
//! fault    = ("latency(" | "delay(" | "stall(" | "slow_flush(" | "timer_skew(") delay ")"
//!          | "error" | "panic" | "drop" | "duplicate" | "full" | "write_error" | "flush_error"
//! delay    = duration | "fixed" duration | "uniform" duration ".." duration | "exp" duration
//! duration = digits ("ns" | "us" | "ms" | "s")
//! option   = "limit=" digits | "seed=" digits
//! ```
//!
//! Whitespace may separate any two tokens.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use super::error::{FaultSpecError, SpecCause};
use super::fault::{Delay, Fault, FaultKind, MILLION};
use super::target::Target;

/// What the grammar expects where a target begins.
const TARGET: &str = "a target: a cell glob starting with '/', an edge (a -> b), type(...) or kind(...)";

/// The characters that end a glob or a bare name.
const RESERVED: &[char] = &[':', ';', '(', ')', '>'];

/// The environment variable [`FaultSet::from_env`] reads.
pub const CHAOS_ENV: &str = "CELLRT_CHAOS";

/// A list of faults, installed together by
/// [`Runtime::inject`](crate::Runtime::inject).
///
/// It prints as a spec string, and [`parse`](FaultSet::parse) reads that
/// string back to the same value.
///
/// # Examples
///
/// ```
/// use cellrt::FaultSet;
///
/// let faults = FaultSet::parse("/inventory: 30% latency(uniform 50ms..200ms); /payments/fraud*: 5% drop seed=7")?;
/// assert_eq!(faults.len(), 2);
/// assert_eq!(faults.to_string().parse::<FaultSet>()?, faults);
///
/// let err = FaultSet::parse("/inventory: 30% slow").unwrap_err();
/// assert_eq!(err.position, 16);
/// # Ok::<(), cellrt::FaultSpecError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FaultSet {
    faults: Vec<Fault>,
}

impl FaultSet {
    /// An empty set.
    pub fn new() -> Self {
        FaultSet::default()
    }

    /// Adds a fault.
    pub fn push(&mut self, fault: Fault) -> &mut Self {
        self.faults.push(fault);
        self
    }

    /// The faults, in order.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// How many faults.
    pub fn len(&self) -> usize {
        self.faults.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }

    /// Reads a spec string.
    ///
    /// # Errors
    ///
    /// [`FaultSpecError`] with the byte position, what was expected there, and
    /// the target or fault error when a well-formed value was refused.
    pub fn parse(spec: &str) -> Result<FaultSet, FaultSpecError> {
        Parser { text: spec, at: 0 }.spec()
    }

    /// The faults in the environment variable `CELLRT_CHAOS`, if it is set
    /// and not blank. The runtime never reads it by itself: an application
    /// opts in by passing the result to
    /// [`Runtime::inject`](crate::Runtime::inject).
    ///
    /// # Errors
    ///
    /// As [`parse`](FaultSet::parse).
    pub fn from_env() -> Result<Option<FaultSet>, FaultSpecError> {
        match std::env::var(CHAOS_ENV) {
            Ok(spec) if !spec.trim().is_empty() => FaultSet::parse(&spec).map(Some),
            _ => Ok(None),
        }
    }
}

impl From<Fault> for FaultSet {
    fn from(fault: Fault) -> Self {
        FaultSet { faults: vec![fault] }
    }
}

impl FromIterator<Fault> for FaultSet {
    fn from_iter<I: IntoIterator<Item = Fault>>(iter: I) -> Self {
        FaultSet { faults: iter.into_iter().collect() }
    }
}

impl FromStr for FaultSet {
    type Err = FaultSpecError;

    fn from_str(spec: &str) -> Result<Self, FaultSpecError> {
        FaultSet::parse(spec)
    }
}

impl fmt::Display for FaultSet {
    /// The faults as a spec string, separated by `; `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

/// A cursor over the spec.
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.at..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn error(&self, expected: &'static str) -> FaultSpecError {
        self.error_at(self.at, expected, None)
    }

    fn error_at(&self, at: usize, expected: &'static str, cause: Option<SpecCause>) -> FaultSpecError {
        FaultSpecError { position: at, expected, found: self.text[at..].chars().take(16).collect(), cause }
    }

    /// Takes `token` if the rest starts with it.
    fn eat(&mut self, token: &str) -> bool {
        if self.rest().starts_with(token) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &str, expected: &'static str) -> Result<(), FaultSpecError> {
        self.skip_ws();
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.error(expected))
        }
    }

    fn spec(mut self) -> Result<FaultSet, FaultSpecError> {
        let mut faults = Vec::new();
        loop {
            self.skip_ws();
            if self.rest().is_empty() {
                return Ok(FaultSet { faults });
            }
            faults.push(self.entry()?);
            self.skip_ws();
            if self.rest().is_empty() {
                return Ok(FaultSet { faults });
            }
            if !self.eat(";") {
                return Err(self.error("';' or an option (limit=, seed=)"));
            }
        }
    }

    fn entry(&mut self) -> Result<Fault, FaultSpecError> {
        let start = self.at;
        let target = self.target()?;
        self.expect(":", "':' after the target")?;
        self.skip_ws();
        let probability_at = self.at;
        let ppm =
            if self.rest().starts_with(|c: char| c.is_ascii_digit()) { Some(self.percent()?) } else { None };
        self.skip_ws();
        let kind = self.fault_kind()?;
        let mut builder = Fault::builder(target, kind);
        if let Some(ppm) = ppm {
            builder.probability(f64::from(ppm) / f64::from(MILLION));
        }
        loop {
            self.skip_ws();
            if self.eat("limit=") {
                builder.limit(self.number()?);
            } else if self.eat("seed=") {
                builder.seed(self.number()?);
            } else {
                break;
            }
        }
        builder.build().map_err(|err| {
            let at = match err {
                super::error::FaultError::Probability { .. } => probability_at,
                _ => start,
            };
            self.error_at(at, "a valid fault", Some(SpecCause::Fault(err)))
        })
    }

    fn target(&mut self) -> Result<Target, FaultSpecError> {
        self.skip_ws();
        let start = self.at;
        let (mut from, mut glob, mut cell_type, mut kind) = (None, None, None, None);
        loop {
            self.skip_ws();
            let at = self.at;
            let bare = self.rest().starts_with(|c: char| !c.is_whitespace() && !RESERVED.contains(&c))
                && !self.rest().starts_with("type(")
                && !self.rest().starts_with("kind(")
                && !self.rest().starts_with("->");
            if bare && glob.is_none() {
                let (token_at, token) = self.glob_token();
                self.skip_ws();
                if self.eat("->") {
                    self.skip_ws();
                    if !self.rest().starts_with(|c: char| !c.is_whitespace() && !RESERVED.contains(&c)) {
                        return Err(self.error("the receiving cell after '->'"));
                    }
                    from = Some((token_at, token));
                    glob = Some(self.glob_token());
                } else if self.text[token_at..].starts_with('/') {
                    glob = Some((token_at, token));
                } else {
                    return Err(self.error_at(at, TARGET, None));
                }
            } else if self.rest().starts_with('/') {
                return Err(self.error("one cell glob per target"));
            } else if self.eat("type(") {
                if cell_type.is_some() {
                    return Err(self.error_at(at, "one type(...) per target", None));
                }
                cell_type = Some((self.at, self.name()?));
            } else if self.eat("kind(") {
                if kind.is_some() {
                    return Err(self.error_at(at, "one kind(...) per target", None));
                }
                kind = Some((self.at, self.name()?));
            } else {
                break;
            }
        }
        if glob.is_none() && cell_type.is_none() && kind.is_none() {
            return Err(self.error_at(start, TARGET, None));
        }
        let target_error = |at, err| self.error_at(at, "a valid target", Some(SpecCause::Target(err)));
        let mut target = match (from, glob) {
            (Some((from_at, from)), Some((at, glob))) => Target::edge(&from, &glob)
                .map_err(|err| target_error(if from_at < at { from_at } else { at }, err))?,
            (_, Some((at, glob))) => Target::cells(&glob).map_err(|err| target_error(at, err))?,
            _ => Target::every(),
        };
        if let Some((at, name)) = cell_type {
            target = target.and_cell_type(name).map_err(|err| target_error(at, err))?;
        }
        if let Some((at, name)) = kind {
            target = target.message_kind(name).map_err(|err| target_error(at, err))?;
        }
        Ok(target)
    }

    /// A cell glob, or a bare name on either side of `->` (which becomes
    /// `/name`): the text up to whitespace, a reserved character or `->`.
    fn glob_token(&mut self) -> (usize, String) {
        let start = self.at;
        let rest = self.rest();
        let mut end = start;
        for (i, c) in rest.char_indices() {
            if c.is_whitespace() || RESERVED.contains(&c) || rest[i..].starts_with("->") {
                break;
            }
            end = start + i + c.len_utf8();
        }
        self.at = end;
        let text = &self.text[start..end];
        let glob = if text.starts_with('/') { text.to_owned() } else { format!("/{text}") };
        (start, glob)
    }

    /// The text up to the next `)`, which is taken too.
    fn name(&mut self) -> Result<&'a str, FaultSpecError> {
        let Some(len) = self.rest().find([')', ';']) else {
            return Err(self.error_at(self.text.len(), "')' closing the name", None));
        };
        if self.rest()[len..].starts_with(';') {
            return Err(self.error_at(self.at + len, "')' closing the name", None));
        }
        let start = self.at;
        self.at += len + 1;
        Ok(&self.text[start..start + len])
    }

    /// `digits ["." 1*4digit] "%"`, in parts per million (unchecked).
    fn percent(&mut self) -> Result<u32, FaultSpecError> {
        let whole = self.digits("a percentage")?;
        let mut fraction = 0_u64;
        if self.eat(".") {
            let start = self.at;
            let len = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest().len());
            if len == 0 || len > 4 {
                return Err(self.error_at(start, "1 to 4 decimals", None));
            }
            fraction = self.text[start..start + len].parse::<u64>().unwrap_or(0) * 10_u64.pow(4 - len as u32);
            self.at += len;
        }
        if !self.eat("%") {
            return Err(self.error("'%' after the probability"));
        }
        let ppm = whole.saturating_mul(10_000).saturating_add(fraction);
        Ok(u32::try_from(ppm).unwrap_or(u32::MAX))
    }

    fn digits(&mut self, expected: &'static str) -> Result<u64, FaultSpecError> {
        let len = self.rest().find(|c: char| !c.is_ascii_digit()).unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.error(expected));
        }
        let value = self.rest()[..len].parse::<u64>().map_err(|_| self.error("a number below 2^64"))?;
        self.at += len;
        Ok(value)
    }

    fn number(&mut self) -> Result<u64, FaultSpecError> {
        self.digits("a number")
    }

    fn fault_kind(&mut self) -> Result<FaultKind, FaultSpecError> {
        for (word, make) in [
            ("latency(", FaultKind::Latency as fn(Delay) -> FaultKind),
            ("delay(", FaultKind::Delay),
            ("stall(", FaultKind::Stall),
            ("slow_flush(", FaultKind::SlowFlush),
            ("timer_skew(", FaultKind::TimerSkew),
        ] {
            if self.eat(word) {
                let delay = self.delay()?;
                self.expect(")", "')' closing the duration")?;
                return Ok(make(delay));
            }
        }
        for (word, kind) in [
            ("error", FaultKind::Error),
            ("panic", FaultKind::Panic),
            ("drop", FaultKind::Drop),
            ("full", FaultKind::Full),
            ("duplicate", FaultKind::Duplicate),
            ("write_error", FaultKind::WriteError),
            ("flush_error", FaultKind::FlushError),
        ] {
            let next = self.rest().as_bytes().get(word.len());
            if self.rest().starts_with(word) && !next.is_some_and(u8::is_ascii_alphanumeric) {
                self.at += word.len();
                return Ok(kind);
            }
        }
        Err(self
            .error("a fault: latency(...), error, panic, drop, duplicate, full, delay(...), stall(...), write_error, flush_error, slow_flush(...) or timer_skew(...)"))
    }

    fn delay(&mut self) -> Result<Delay, FaultSpecError> {
        self.skip_ws();
        if self.eat("uniform") {
            let low = self.duration()?;
            self.expect("..", "'..' between the bounds")?;
            let high = self.duration()?;
            Ok(Delay::Uniform { low, high })
        } else if self.eat("exp") {
            Ok(Delay::Exponential { mean: self.duration()? })
        } else {
            self.eat("fixed");
            Ok(Delay::Fixed(self.duration()?))
        }
    }

    fn duration(&mut self) -> Result<Duration, FaultSpecError> {
        self.skip_ws();
        let start = self.at;
        let value = self.digits("a duration (like 50ms)")?;
        let scale: u128 = if self.eat("ns") {
            1
        } else if self.eat("us") {
            1_000
        } else if self.eat("ms") {
            1_000_000
        } else if self.eat("s") {
            1_000_000_000
        } else {
            return Err(self.error("a unit: ns, us, ms or s"));
        };
        let nanos = u128::from(value) * scale;
        match u64::try_from(nanos) {
            Ok(nanos) => Ok(Duration::from_nanos(nanos)),
            Err(_) => Err(self.error_at(start, "a duration below 2^64 nanoseconds", None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::chaos::error::{FaultError, TargetError};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_issue_example_reads_as_two_faults() {
        let set = FaultSet::parse("/inventory: 30% latency(uniform 50ms..200ms); /fraud: 5% drop").unwrap();
        let inventory = &set.faults()[0];
        assert_eq!(inventory.target(), &Target::cells("/inventory").unwrap());
        assert_eq!(inventory.kind(), FaultKind::Latency(Delay::Uniform { low: ms(50), high: ms(200) }));
        assert_eq!(inventory.probability(), 0.3);
        assert_eq!(set.faults()[1].kind(), FaultKind::Drop);
        assert_eq!(set.faults()[1].probability(), 0.05);
    }

    #[test]
    fn targets_options_and_delays_read_as_written() {
        let set = FaultSet::parse(
            "type(app::Fraud) kind(Score): panic limit=3 seed=9; kind(Reserve): latency(exp 20ms); /a/*: latency(1s) ;",
        )
        .unwrap();
        let fraud = &set.faults()[0];
        assert_eq!(fraud.target().cell_type_name(), Some("app::Fraud"));
        assert_eq!(fraud.target().message_kind_name(), Some("Score"));
        assert_eq!((fraud.limit(), fraud.seed(), fraud.probability()), (Some(3), Some(9), 1.0));
        assert_eq!(set.faults()[1].kind(), FaultKind::Latency(Delay::Exponential { mean: ms(20) }));
        assert_eq!(set.faults()[2].kind(), FaultKind::Latency(Delay::Fixed(Duration::from_secs(1))));
        assert_eq!(FaultSet::parse("  ").unwrap(), FaultSet::new());
    }

    #[test]
    fn errors_give_the_position_and_what_was_expected() {
        let err = FaultSet::parse("/inventory 30% drop").unwrap_err();
        assert_eq!(
            (err.position, err.expected, err.found.as_str()),
            (11, "':' after the target", "30% drop")
        );
        let err = FaultSet::parse("/a: latency(50)").unwrap_err();
        assert_eq!((err.position, err.expected), (14, "a unit: ns, us, ms or s"));
        let err = FaultSet::parse("/a: drop /b: drop").unwrap_err();
        assert_eq!((err.position, err.expected), (9, "';' or an option (limit=, seed=)"));
        let err = FaultSet::parse("inventory: drop").unwrap_err();
        assert_eq!((err.position, err.expected), (0, TARGET));
        let err = FaultSet::parse("/a: 1.23456% drop").unwrap_err();
        assert_eq!((err.position, err.expected), (6, "1 to 4 decimals"));
    }

    #[test]
    fn edges_delays_and_stalls_read_as_written() {
        let spec = "gateway->fraud: 5% drop; /a/b -> /c* kind(X): delay(uniform 1ms..2ms); /d: stall(3ms)";
        let set = FaultSet::parse(spec).unwrap();
        assert_eq!(set.faults()[0].target(), &Target::edge("/gateway", "/fraud").unwrap());
        assert_eq!(set.faults()[0].to_string(), "/gateway -> /fraud: 5% drop");
        let edge = set.faults()[1].target();
        assert_eq!(
            (edge.sender_glob(), edge.glob(), edge.message_kind_name()),
            (Some("/a/b"), "/c*", Some("X"))
        );
        assert_eq!(set.faults()[1].kind(), FaultKind::Delay(Delay::Uniform { low: ms(1), high: ms(2) }));
        assert_eq!(set.faults()[2].kind(), FaultKind::Stall(Delay::Fixed(ms(3))));
        let err = FaultSet::parse("gateway->fraud: error").unwrap_err();
        assert_eq!(err.cause, Some(SpecCause::Fault(FaultError::EdgeOutsideSend { kind: "error" })));
        let err = FaultSet::parse("gateway-> : drop").unwrap_err();
        assert_eq!((err.position, err.expected), (10, "the receiving cell after '->'"));
    }

    #[test]
    fn refused_values_carry_the_target_or_fault_error() {
        let err = FaultSet::parse("/a: 150% drop").unwrap_err();
        assert_eq!(err.position, 4);
        assert_eq!(err.cause, Some(SpecCause::Fault(FaultError::Probability { value: 1.5 })));
        let err = FaultSet::parse("/a//b: drop").unwrap_err();
        assert_eq!(err.cause, Some(SpecCause::Target(TargetError::EmptySegment { pattern: "/a//b".into() })));
        let err = FaultSet::parse("/a: latency(uniform 9ms..3ms)").unwrap_err();
        assert_eq!(err.cause, Some(SpecCause::Fault(FaultError::EmptyRange { low: ms(9), high: ms(3) })));
        assert!(std::error::Error::source(&err).is_some());
    }

    fn glob() -> impl Strategy<Value = String> {
        prop::collection::vec("[a-z0-9_*-]{1,6}|\\*\\*", 1..4)
            .prop_map(|segments| format!("/{}", segments.join("/")))
    }

    fn name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_:<>, ]{0,10}[A-Za-z0-9_>]"
    }

    fn target() -> impl Strategy<Value = Target> {
        let cells = prop_oneof![
            Just(None),
            glob().prop_map(|glob| Some(Target::cells(&glob).unwrap())),
            (glob(), glob()).prop_map(|(from, to)| Some(Target::edge(&from, &to).unwrap())),
        ];
        (cells, prop::option::of(name()), prop::option::of(name())).prop_map(|(cells, ty, kind)| {
            let mut target = cells.unwrap_or_else(Target::every);
            if let Some(ty) = ty {
                target = target.and_cell_type(&ty).unwrap();
            }
            if let Some(kind) = kind {
                target = target.message_kind(&kind).unwrap();
            }
            target
        })
    }

    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            any::<u64>().prop_map(Duration::from_nanos),
            (0_u64..10_000).prop_map(Duration::from_millis)
        ]
    }

    fn kind() -> impl Strategy<Value = FaultKind> {
        prop_oneof![
            duration().prop_map(|d| FaultKind::Latency(Delay::Fixed(d))),
            (duration(), duration())
                .prop_map(|(a, b)| FaultKind::Latency(Delay::Uniform { low: a.min(b), high: a.max(b) })),
            duration().prop_map(|d| FaultKind::Latency(Delay::Exponential { mean: d })),
            Just(FaultKind::Error),
            Just(FaultKind::Panic),
            Just(FaultKind::Drop),
            Just(FaultKind::Full),
            Just(FaultKind::Duplicate),
            Just(FaultKind::WriteError),
            Just(FaultKind::FlushError),
            duration().prop_map(|d| FaultKind::SlowFlush(Delay::Fixed(d))),
            duration().prop_map(|d| FaultKind::TimerSkew(Delay::Fixed(d))),
            duration().prop_map(|d| FaultKind::Delay(Delay::Fixed(d))),
            duration().prop_map(|d| FaultKind::Stall(Delay::Exponential { mean: d })),
        ]
    }

    fn fault() -> impl Strategy<Value = Fault> {
        let parts =
            (target(), kind(), 0..=MILLION, prop::option::of(1_u64..), prop::option::of(any::<u64>()));
        parts.prop_filter_map(
            "an edge takes send-side faults only, a stall no message kind",
            |(target, kind, ppm, limit, seed)| {
                let mut builder = Fault::builder(target, kind);
                builder.probability(f64::from(ppm) / f64::from(MILLION));
                if let Some(limit) = limit {
                    builder.limit(limit);
                }
                if let Some(seed) = seed {
                    builder.seed(seed);
                }
                builder.build().ok()
            },
        )
    }

    proptest! {
        #[test]
        fn every_printed_spec_parses_back_to_the_same_value(faults in prop::collection::vec(fault(), 0..4)) {
            let set: FaultSet = faults.into_iter().collect();
            let printed = set.to_string();
            prop_assert_eq!(FaultSet::parse(&printed), Ok(set), "{}", printed);
        }

        #[test]
        fn no_input_panics(spec in "\\PC{0,64}") {
            let _ = FaultSet::parse(&spec);
        }

        #[test]
        fn no_input_near_the_grammar_panics(
            tokens in prop::collection::vec(
                prop_oneof![
                    Just("/a"), Just("/**"), Just(":"), Just(";"), Just("%"), Just("."), Just("30"),
                    Just("latency("), Just(")"), Just("uniform"), Just(".."), Just("exp"), Just("ms"),
                    Just("drop"), Just("type("), Just("kind("), Just("seed="), Just("limit="), Just(" "),
                    Just("->"), Just("-"), Just("gateway"), Just("stall("), Just("delay("),
                    Just("99999999999999999999"), Just("é"),
                ],
                0..16,
            )
        ) {
            let spec: String = tokens.concat();
            if let Err(err) = FaultSet::parse(&spec) {
                prop_assert!(err.position <= spec.len());
            }
        }
    }
}
