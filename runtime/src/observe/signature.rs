//! Failure signatures: the same defect gives the same signature across
//! restarts, across cells of the same kind, and across process runs.
//!
//! A signature is made of the cell kind, the failure kind, the hook, the
//! message kind, where the failure comes from (a panic's location, an
//! error's type) and the failure's text *normalized*: numbers, hex strings,
//! UUIDs and quoted values are replaced by placeholders, so that
//! `user 42 not found` and `user 7 not found` are one defect. The cell's
//! path is not part of it: the cells a signature affects are listed beside
//! it. The fingerprint is a 64-bit FNV-1a hash of those parts, stable from
//! one run (and one machine) to the next for the same build.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use crate::failure::{Failure, FailureCause, Hook};
use crate::path::CellPath;

/// What kind of failure a signature stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FailureKind {
    /// A hook returned an error.
    Error,
    /// A hook panicked.
    Panic,
    /// A handler overran its deadline.
    Deadline,
    /// The cell's storage failed.
    Storage,
    /// A message's deadline passed before it was handled.
    Expired,
    /// A chaos fault dropped a message before it was handled.
    Injected,
}

/// The fingerprint of a class of failures. See the module docs of
/// `observe::signature` for what it is made of.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub struct FailureSignature {
    /// The 64-bit fingerprint of the fields below.
    pub fingerprint: u64,
    /// The cell's Rust type.
    pub cell_kind: &'static str,
    /// The failure kind.
    pub kind: FailureKind,
    /// The hook that failed.
    pub hook: Hook,
    /// The message kind, for failures in `handle`.
    pub message_kind: Option<&'static str>,
    /// Where it comes from: `file:line:column` of a panic, the Rust type of
    /// an error, when known.
    pub origin: Option<String>,
    /// The failure's text, normalized.
    pub text: String,
}

impl FailureSignature {
    /// The signature of `failure`.
    pub fn of(failure: &Failure) -> Self {
        let (kind, origin, text) = match &failure.cause {
            FailureCause::Error { text, type_name } => {
                (FailureKind::Error, type_name.map(str::to_owned), normalize(text))
            }
            FailureCause::Panic { payload, location } => {
                (FailureKind::Panic, location.as_ref().map(ToString::to_string), normalize(payload))
            }
            FailureCause::DeadlineExceeded { deadline, .. } => {
                (FailureKind::Deadline, None, format!("deadline {deadline:?}"))
            }
            FailureCause::ChildStart { .. } => {
                let text = failure.to_string();
                (FailureKind::Error, Some("cellrt::StartError".to_owned()), normalize(&text))
            }
            FailureCause::Expired { .. } => (FailureKind::Expired, None, "expired".to_owned()),
            #[cfg(feature = "chaos")]
            FailureCause::Injected { fault } => (FailureKind::Injected, None, normalize(fault)),
            #[cfg(feature = "storage")]
            FailureCause::Storage(err) => (FailureKind::Storage, None, normalize(&err.to_string())),
        };
        let mut hash = Fnv::new();
        hash.write(failure.cell_kind.as_bytes());
        hash.write(kind_name(kind).as_bytes());
        hash.write(hook_name(failure.hook).as_bytes());
        hash.write(failure.message_kind.unwrap_or("").as_bytes());
        hash.write(origin.as_deref().unwrap_or("").as_bytes());
        hash.write(text.as_bytes());
        FailureSignature {
            fingerprint: hash.finish(),
            cell_kind: failure.cell_kind,
            kind,
            hook: failure.hook,
            message_kind: failure.message_kind,
            origin,
            text,
        }
    }

    /// The fingerprint as 16 hex digits.
    pub fn id(&self) -> String {
        format!("{:016x}", self.fingerprint)
    }
}

impl fmt::Display for FailureSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} in {} ({:?}", self.id(), self.kind, self.cell_kind, self.hook)?;
        if let Some(kind) = self.message_kind {
            write!(f, ", {kind}")?;
        }
        f.write_str(")")?;
        if let Some(origin) = &self.origin {
            write!(f, " at {origin}")?;
        }
        write!(f, ": {}", self.text)
    }
}

/// The kind's name as its `Debug` prints it: the spelling the fingerprint
/// has always hashed, without formatting into a `String`.
fn kind_name(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Error => "Error",
        FailureKind::Panic => "Panic",
        FailureKind::Deadline => "Deadline",
        FailureKind::Storage => "Storage",
        FailureKind::Expired => "Expired",
        FailureKind::Injected => "Injected",
    }
}

/// The hook's name as its `Debug` prints it (see [`kind_name`]).
fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Started => "Started",
        Hook::Handle => "Handle",
        Hook::Stopped => "Stopped",
    }
}

/// 64-bit FNV-1a: small, and stable across runs (unlike std's hasher).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Hashes `bytes` and a separator, so that parts cannot run together.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes.iter().chain(std::iter::once(&0xff)) {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Replaces what varies between occurrences of one defect: quoted values by
/// `<q>`, UUIDs by `<uuid>`, hex numbers and long hex strings by `<hex>`,
/// other numbers by `<n>`; runs of whitespace by one space.
pub(crate) fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    // One buffer for every token classified, not one allocation each.
    let mut token = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Quoted values.
        if c == '"' || c == '\'' || c == '`' {
            if let Some(end) = chars[i + 1..].iter().position(|&d| d == c) {
                out.push_str("<q>");
                i += end + 2;
                continue;
            }
        }
        if c.is_ascii_alphanumeric() && (i == 0 || !is_word(chars[i - 1])) {
            // A whole token of letters, digits, `-` and `_`.
            let end =
                (i..chars.len()).find(|&j| !is_word(chars[j]) && chars[j] != '-').unwrap_or(chars.len());
            token.clear();
            token.extend(&chars[i..end]);
            if let Some(placeholder) = classify(&token) {
                out.push_str(placeholder);
                i = end;
                // A decimal: `1.5` is one number.
                if placeholder == "<n>"
                    && chars.get(i) == Some(&'.')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)
                {
                    i += 1;
                    while chars.get(i).is_some_and(char::is_ascii_digit) {
                        i += 1;
                    }
                }
                continue;
            }
        }
        if c.is_ascii_digit() {
            // Digits inside a word (`v2`, `page10`) or after a sign.
            let end = (i..chars.len())
                .find(|&j| !chars[j].is_ascii_digit() && chars[j] != '.')
                .unwrap_or(chars.len());
            out.push_str("<n>");
            i = end;
            continue;
        }
        if c.is_whitespace() {
            if !out.ends_with(' ') && !out.is_empty() {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim_end().to_owned()
}

fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The placeholder for a whole token that varies, if it is one.
fn classify(token: &str) -> Option<&'static str> {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    let mut parts = token.split('-');
    if [8, 4, 4, 4, 12].iter().all(|n| parts.next().is_some_and(|p| p.len() == *n && hex(p)))
        && parts.next().is_none()
    {
        return Some("<uuid>");
    }
    if let Some(rest) = token.strip_prefix("0x").or_else(|| token.strip_prefix("0X")) {
        if hex(rest) {
            return Some("<hex>");
        }
    }
    if token.chars().all(|c| c.is_ascii_digit()) {
        return Some("<n>");
    }
    if token.len() >= 8 && hex(token) && token.chars().any(|c| c.is_ascii_digit()) {
        return Some("<hex>");
    }
    None
}

/// How many cells a signature lists (the first ones seen).
const CELLS_KEPT: usize = 64;
/// How many one-second buckets the recent rates look back over.
const SECONDS_KEPT: u64 = 3600;

/// What the runtime knows of one failure signature.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignatureStats {
    /// The signature.
    pub signature: FailureSignature,
    /// Failures with this signature since the runtime started.
    pub count: u64,
    /// When it was first seen.
    pub first_seen: SystemTime,
    /// When it was last seen.
    pub last_seen: SystemTime,
    /// The cells it affected (the first 64).
    pub cells: BTreeSet<CellPath>,
    /// The most recent failure with this signature.
    pub sample: Failure,
    /// Failures in the last minute.
    pub last_minute: u64,
    /// Failures in the last hour.
    pub last_hour: u64,
}

/// Counts per second over the last hour.
#[derive(Debug, Default)]
struct Rate {
    /// (second since the epoch, count), oldest first.
    seconds: VecDeque<(u64, u64)>,
}

impl Rate {
    fn add(&mut self, second: u64) {
        match self.seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.seconds.push_back((second, 1)),
        }
        while self.seconds.front().is_some_and(|(s, _)| s + SECONDS_KEPT <= second) {
            self.seconds.pop_front();
        }
    }

    fn within(&self, now: u64, span: u64) -> u64 {
        self.seconds.iter().filter(|(s, _)| s + span > now).map(|(_, n)| n).sum()
    }
}

struct Entry {
    stats: SignatureStats,
    rate: Rate,
}

/// Every signature seen by one runtime.
#[derive(Default)]
pub(crate) struct Signatures {
    entries: HashMap<FailureSignature, Entry>,
}

impl Signatures {
    /// Folds `failure` in; returns its signature, its count so far (1 for
    /// a new one) and when it was first seen.
    pub(crate) fn fold(&mut self, failure: &Failure) -> (FailureSignature, u64, SystemTime) {
        let signature = FailureSignature::of(failure);
        let second = epoch_second(failure.at);
        match self.entries.get_mut(&signature) {
            Some(entry) => {
                let stats = &mut entry.stats;
                stats.count += 1;
                stats.last_seen = stats.last_seen.max(failure.at);
                if stats.cells.len() < CELLS_KEPT {
                    stats.cells.insert(failure.path.clone());
                }
                stats.sample = failure.clone();
                entry.rate.add(second);
                (signature, stats.count, stats.first_seen)
            }
            None => {
                let mut rate = Rate::default();
                rate.add(second);
                let stats = SignatureStats {
                    signature: signature.clone(),
                    count: 1,
                    first_seen: failure.at,
                    last_seen: failure.at,
                    cells: BTreeSet::from([failure.path.clone()]),
                    sample: failure.clone(),
                    last_minute: 0,
                    last_hour: 0,
                };
                self.entries.insert(signature.clone(), Entry { stats, rate });
                (signature, 1, failure.at)
            }
        }
    }

    /// Every signature's statistics as of `now`, the most frequent first.
    pub(crate) fn snapshot(&self, now: SystemTime) -> Vec<SignatureStats> {
        let second = epoch_second(now);
        let mut all: Vec<SignatureStats> = self
            .entries
            .values()
            .map(|entry| {
                let mut stats = entry.stats.clone();
                stats.last_minute = entry.rate.within(second, 60);
                stats.last_hour = entry.rate.within(second, SECONDS_KEPT);
                stats
            })
            .collect();
        all.sort_by(|a, b| b.count.cmp(&a.count).then(a.signature.cmp(&b.signature)));
        all
    }
}

fn epoch_second(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::PanicLocation;

    fn failure(cause: FailureCause, path: &str) -> Failure {
        Failure {
            path: CellPath::root().child(path).unwrap(),
            cell_kind: "app::Orders",
            hook: Hook::Handle,
            message_kind: Some("Place"),
            cause,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000),
        }
    }

    fn error(text: &str) -> FailureCause {
        FailureCause::Error { text: text.into(), type_name: Some("app::OrderError") }
    }

    fn panic_at(line: u32) -> FailureCause {
        FailureCause::Panic {
            payload: "index 3 out of range".into(),
            location: Some(PanicLocation { file: "src/orders.rs".into(), line, column: 9 }),
        }
    }

    #[test]
    fn normalization_strips_what_varies_between_occurrences() {
        let cases = [
            ("user 42 not found", "user <n> not found"),
            ("order 'A-17' rejected", "order <q> rejected"),
            ("at 0x7ffd5e8a, retry in 1.5s", "at <hex>, retry in <n>s"),
            ("request 550e8400-e29b-41d4-a716-446655440000 failed", "request <uuid> failed"),
            ("blob deadbeef01 corrupt", "blob <hex> corrupt"),
            ("v2 of page10  broke", "v<n> of page<n> broke"),
            ("say \"hi\" and `x`", "say <q> and <q>"),
            ("an unmatched ' quote stays", "an unmatched ' quote stays"),
            ("deadbeef is a word", "deadbeef is a word"),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize(text), expected, "{text}");
        }
    }

    #[test]
    fn failures_differing_only_in_an_id_share_a_signature() {
        let a = FailureSignature::of(&failure(error("user 42 not found"), "a"));
        let b = FailureSignature::of(&failure(error("user 7 not found"), "b"));
        assert_eq!(a, b, "ids and cell paths are not part of a signature");
        assert_eq!(a.text, "user <n> not found");
    }

    #[test]
    fn different_locations_kinds_or_message_kinds_give_different_signatures() {
        let base = FailureSignature::of(&failure(panic_at(10), "a"));
        assert_ne!(base, FailureSignature::of(&failure(panic_at(11), "a")), "another location");
        assert_ne!(
            base,
            FailureSignature::of(&failure(error("index 3 out of range"), "a")),
            "an error, not a panic"
        );
        let mut other_message = failure(panic_at(10), "a");
        other_message.message_kind = Some("Cancel");
        assert_ne!(base, FailureSignature::of(&other_message));
        let mut other_cell_kind = failure(panic_at(10), "a");
        other_cell_kind.cell_kind = "app::Billing";
        assert_ne!(base, FailureSignature::of(&other_cell_kind));
    }

    #[test]
    fn the_fingerprint_is_stable_across_runs() {
        // Computed once and written down: a change here breaks stored signatures.
        let signature = FailureSignature::of(&failure(error("user 42 not found"), "a"));
        assert_eq!(signature.id(), format!("{:016x}", signature.fingerprint));
        assert_eq!(
            signature.fingerprint,
            FailureSignature::of(&failure(error("user 9 not found"), "z")).fingerprint
        );
        assert_eq!(signature.id(), STABLE_ID);
    }

    const STABLE_ID: &str = "17efc48a90769589";

    #[test]
    fn fingerprints_of_known_failures_are_pinned() {
        // Computed once and written down: signature ids already in journals
        // must not change when the normalization or hashing is rewritten.
        let panic_with = |payload: &str| FailureCause::Panic {
            payload: payload.into(),
            location: Some(PanicLocation { file: "src/orders.rs".into(), line: 42, column: 9 }),
        };
        let cases = [
            (error("user 42 not found"), PINNED[0]),
            (error("order 'A-17' rejected at 0x7ffd5e8a, retry in 1.5s"), PINNED[1]),
            (error("request 550e8400-e29b-41d4-a716-446655440000 failed"), PINNED[2]),
            (error("blob deadbeef01 corrupt; v2 of page10  broke "), PINNED[3]),
            (panic_with("fail requested"), PINNED[4]),
            (panic_with("say \"hi\" and `x`, an unmatched ' quote, deadbeef"), PINNED[5]),
            (panic_with("caf\u{e9} \u{2014} 3\u{a0}items, -7 left"), PINNED[6]),
        ];
        let ids: Vec<String> =
            cases.iter().map(|(cause, _)| FailureSignature::of(&failure(cause.clone(), "a")).id()).collect();
        let pinned: Vec<&str> = cases.iter().map(|(_, id)| *id).collect();
        assert_eq!(ids, pinned);
    }

    const PINNED: [&str; 7] = [
        "17efc48a90769589",
        "a74a1992bb2019c0",
        "bddd5165950e6044",
        "c00e5b22b6735b02",
        "0dc74f2e58494383",
        "a952c705aba66468",
        "d496c97b921ac8a1",
    ];

    #[test]
    fn statistics_count_cells_and_recent_rates() {
        let mut signatures = Signatures::default();
        let first_failure = failure(error("user 1 not found"), "a");
        let (first, count, first_seen) = signatures.fold(&first_failure);
        assert_eq!((count, first_seen), (1, first_failure.at));
        let mut later = failure(error("user 2 not found"), "b");
        later.at += Duration::from_secs(120);
        let (second, count, first_seen) = signatures.fold(&later);
        assert_eq!((count, first_seen), (2, first_failure.at));
        assert_eq!(first, second);
        signatures.fold(&failure(panic_at(3), "a"));
        let now = later.at;
        let all = signatures.snapshot(now);
        assert_eq!(all.len(), 2);
        let top = &all[0];
        assert_eq!(top.count, 2);
        assert_eq!(top.cells.iter().map(CellPath::as_str).collect::<Vec<_>>(), ["/a", "/b"]);
        assert_eq!((top.first_seen, top.last_seen), (later.at - Duration::from_secs(120), later.at));
        assert_eq!((top.last_minute, top.last_hour), (1, 2));
        assert_eq!(top.sample, later, "the latest failure is the sample");
    }
}
