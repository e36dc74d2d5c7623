//! Exports of a [`Snapshot`]: Prometheus text exposition of the metrics, and
//! the topology with decay as Graphviz DOT. (JSON is the snapshot itself,
//! through serde.)

use std::fmt::Write;

use super::snapshot::Snapshot;
use super::LatencySummary;
use crate::path::CellPath;

impl Snapshot {
    /// The metrics in the Prometheus text exposition format (version
    /// 0.0.4): per cell (labels `cell` and `kind`) its counters, mailbox
    /// gauges, handling time and time in queue as summaries, decay
    /// components and burn rates; per supervisor its restart intensity
    /// (restarts in its window, restarts remaining, restarts allowed); per edge (`from`, `to`) its message count
    /// and rate; per failure signature (`signature`) its count; the
    /// journal's total.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use cellrt::{Cell, CellError, Context, Runtime};
    ///
    /// struct Sink;
    /// impl Cell for Sink {
    ///     type Message = u32;
    ///     fn handle(&mut self, _: &mut Context<Self>, _: u32) -> Result<(), CellError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let runtime = Runtime::builder().build()?;
    /// let sink = runtime.spawn(Sink)?;
    /// sink.send(1)?;
    /// let text = runtime.snapshot().prometheus();
    /// assert!(text.contains("# TYPE cellrt_messages_handled_total counter"));
    /// # runtime.shutdown(Duration::from_secs(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn prometheus(&self) -> String {
        let mut out = Exposition::default();
        let cells: Vec<_> = self.cells.iter().filter_map(|c| Some((c, c.metrics.as_ref()?))).collect();
        let label = |path: &CellPath, kind: &str| {
            format!("cell=\"{}\",kind=\"{}\"", escape(path.as_str()), escape(kind))
        };
        type Counter = (&'static str, &'static str, fn(&super::Metrics) -> u64);
        let counters: [Counter; 8] = [
            ("cellrt_messages_handled_total", "Messages handled successfully.", |m| m.handled),
            ("cellrt_messages_failed_total", "Messages whose handling failed.", |m| m.failed),
            ("cellrt_panics_total", "Panics in any hook of the cell.", |m| m.panics),
            ("cellrt_restarts_total", "New incarnations of the cell in place of ended ones.", |m| m.restarts),
            ("cellrt_sends_rejected_total", "Sends that found the mailbox full (once per send).", |m| {
                m.rejected_full
            }),
            ("cellrt_sends_shed_total", "Sends refused by the address's shedding policy.", |m| m.shed),
            ("cellrt_messages_slow_total", "Messages over the latency objective's threshold.", |m| m.slow),
            (
                "cellrt_messages_expired_total",
                "Messages whose deadline passed before they were handled.",
                |m| m.expired,
            ),
        ];
        for (name, help, value) in counters {
            out.family(name, help, "counter");
            for (cell, metrics) in &cells {
                out.sample(name, &label(&cell.path, &cell.kind), value(metrics));
            }
        }
        type Gauge = (&'static str, &'static str, fn(&super::Metrics) -> usize);
        let gauges: [Gauge; 3] = [
            ("cellrt_mailbox_length", "Messages waiting in the mailbox.", |m| m.mailbox_len),
            ("cellrt_mailbox_capacity", "Capacity of the mailbox.", |m| m.mailbox_capacity),
            ("cellrt_mailbox_high_water", "Longest the mailbox has been.", |m| m.mailbox_high_water),
        ];
        for (name, help, value) in gauges {
            out.family(name, help, "gauge");
            for (cell, metrics) in &cells {
                out.sample(name, &label(&cell.path, &cell.kind), value(metrics));
            }
        }
        type IntensityGauge = (&'static str, &'static str, fn(&crate::supervise::RestartIntensity) -> u32);
        let intensity: [IntensityGauge; 3] = [
            (
                "cellrt_supervisor_restarts_in_window",
                "Restarts a supervisor's intensity window counts now.",
                |i| i.restarts,
            ),
            (
                "cellrt_supervisor_restarts_remaining",
                "Restarts a supervisor still allows before it gives up.",
                |i| i.remaining,
            ),
            ("cellrt_supervisor_max_restarts", "Restarts a supervisor allows in its period.", |i| {
                i.max_restarts
            }),
        ];
        for (name, help, value) in intensity {
            out.family(name, help, "gauge");
            for cell in &self.cells {
                if let Some(window) = &cell.intensity {
                    out.sample(name, &label(&cell.path, &cell.kind), value(window));
                }
            }
        }
        out.family("cellrt_busy_seconds_total", "Time spent handling messages.", "counter");
        for (cell, metrics) in &cells {
            out.sample(
                "cellrt_busy_seconds_total",
                &label(&cell.path, &cell.kind),
                metrics.busy.as_secs_f64(),
            );
        }
        type Summary = (&'static str, &'static str, fn(&super::Metrics) -> &LatencySummary);
        let summaries: [Summary; 2] = [
            ("cellrt_handling_seconds", "Handling time of the stamped messages.", |m| &m.handling),
            ("cellrt_queue_seconds", "Time in queue of the stamped messages.", |m| &m.time_in_queue),
        ];
        for (name, help, value) in summaries {
            out.family(name, help, "summary");
            for (cell, metrics) in &cells {
                let labels = label(&cell.path, &cell.kind);
                let summary = value(metrics);
                for (q, v) in [("0.5", summary.p50), ("0.9", summary.p90), ("0.99", summary.p99)] {
                    out.sample(name, &format!("{labels},quantile=\"{q}\""), v.as_secs_f64());
                }
                let sum = summary.mean.as_secs_f64() * summary.count as f64;
                out.sample(&format!("{name}_sum"), &labels, sum);
                out.sample(&format!("{name}_count"), &labels, summary.count);
            }
        }
        let kind_label = |labels: &str, kind: &str| format!("{labels},message_kind=\"{}\"", escape(kind));
        type KindCounter = (&'static str, &'static str, &'static str, fn(&super::KindMetrics) -> f64);
        let kind_families: [KindCounter; 5] = [
            ("cellrt_kind_sampled_total", "Stamped messages of one message kind.", "counter", |k| {
                k.sampled as f64
            }),
            (
                "cellrt_kind_failed_total",
                "Messages of one message kind whose handling failed.",
                "counter",
                |k| k.failed as f64,
            ),
            (
                "cellrt_kind_busy_seconds_total",
                "Handling time of the stamped messages of one message kind.",
                "counter",
                |k| k.busy.as_secs_f64(),
            ),
            (
                "cellrt_kind_busy_share",
                "One message kind's share of the cell's handling time.",
                "gauge",
                |k| k.busy_share,
            ),
            (
                "cellrt_kind_latency_p99_seconds",
                "p99 of time in queue plus handling, per message kind.",
                "gauge",
                |k| k.latency.p99.as_secs_f64(),
            ),
        ];
        for (name, help, kind, value) in kind_families {
            out.family(name, help, kind);
            for (cell, metrics) in &cells {
                let labels = label(&cell.path, &cell.kind);
                for k in &metrics.kinds {
                    out.sample(name, &kind_label(&labels, &k.kind), value(k));
                }
            }
        }
        out.family("cellrt_decay", "Decay score and components, in [0, 1].", "gauge");
        for cell in &self.cells {
            let Some(decay) = &cell.decay else { continue };
            let labels = label(&cell.path, &cell.kind);
            for (component, value) in [
                ("score", decay.score),
                ("fragility", decay.fragility),
                ("cost", decay.cost),
                ("drag", decay.drag),
            ] {
                out.sample("cellrt_decay", &format!("{labels},component=\"{component}\""), value);
            }
        }
        out.family("cellrt_burn_rate", "Error-budget burn rate of the cell's objective.", "gauge");
        for cell in &self.cells {
            let Some(objective) = &cell.objective else { continue };
            let labels = label(&cell.path, &cell.kind);
            for alert in &objective.status.alerts {
                let name = format!("{:?}", alert.alert).to_lowercase();
                for (window, rate) in [("long", alert.long_rate), ("short", alert.short_rate)] {
                    out.sample(
                        "cellrt_burn_rate",
                        &format!("{labels},alert=\"{name}\",window=\"{window}\""),
                        rate,
                    );
                }
            }
        }
        let edge_label = |from: &CellPath, to: &CellPath| {
            format!("from=\"{}\",to=\"{}\"", escape(from.as_str()), escape(to.as_str()))
        };
        out.family("cellrt_flow_messages_total", "Messages sent from one cell to another.", "counter");
        for edge in &self.edges {
            out.sample("cellrt_flow_messages_total", &edge_label(&edge.from, &edge.to), edge.messages);
        }
        out.family("cellrt_flow_rate", "Messages per second along an edge over the last window.", "gauge");
        for edge in &self.edges {
            out.sample("cellrt_flow_rate", &edge_label(&edge.from, &edge.to), edge.rate);
        }
        out.family("cellrt_failure_signature_total", "Failures per failure signature.", "counter");
        for signature in &self.signatures {
            out.sample(
                "cellrt_failure_signature_total",
                &format!("signature=\"{}\"", escape(&signature.id)),
                signature.count,
            );
        }
        out.family("cellrt_journal_signals_total", "Entries recorded in the signal journal.", "counter");
        out.sample("cellrt_journal_signals_total", "", self.journal_total);
        let measures = &self.measures;
        out.family("cellrt_plans_total", "Recomposition plans, by outcome.", "counter");
        for (outcome, n) in [
            ("applied", measures.plans_applied),
            ("kept", measures.plans_kept),
            ("reverted", measures.plans_reverted),
        ] {
            out.sample("cellrt_plans_total", &format!("outcome=\"{outcome}\""), n);
        }
        out.family(
            "cellrt_learning_velocity_seconds",
            "Mean time from the onset of the signals behind a plan to its application or its being kept.",
            "gauge",
        );
        for (step, velocity) in
            [("applied", measures.velocity_to_applied), ("kept", measures.velocity_to_kept)]
        {
            if let Some(velocity) = velocity {
                out.sample(
                    "cellrt_learning_velocity_seconds",
                    &format!("step=\"{step}\""),
                    velocity.as_secs_f64(),
                );
            }
        }
        out.text
    }

    /// The topology as a Graphviz DOT digraph: each live cell a node
    /// (labelled with its name, type and decay score, filled from green at
    /// decay 0 to red at 1), the supervision tree as dashed grey edges from
    /// parent to child (top-level cells hang from a `runtime` node), and the
    /// flow map's message edges as solid arrows labelled with their rate
    /// and mean latency.
    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph cellrt {\n");
        out.push_str(
            "  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\"];\n",
        );
        out.push_str("  \"/\" [label=\"runtime\", shape=ellipse, fillcolor=\"#eeeeee\"];\n");
        for cell in &self.cells {
            let score = cell.decay.as_ref().map_or(0.0, |d| d.score);
            let decay =
                cell.decay.as_ref().map_or_else(|| "decay -".to_owned(), |d| format!("decay {:.2}", d.score));
            let _ = writeln!(
                out,
                "  \"{}\" [label=\"{}\\n{}\\n{}\", fillcolor=\"{}\"];",
                escape(cell.path.as_str()),
                escape(cell.path.name()),
                escape(&cell.kind),
                decay,
                decay_color(score)
            );
        }
        let live: std::collections::HashSet<&CellPath> = self.cells.iter().map(|c| &c.path).collect();
        for cell in &self.cells {
            let mut parent = cell.path.parent();
            // A parent that is not live (or not a cell) hangs the child from the root.
            while let Some(p) = &parent {
                if p.is_root() || live.contains(p) {
                    break;
                }
                parent = p.parent();
            }
            let parent = parent.unwrap_or_else(CellPath::root);
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [style=dashed, color=\"#999999\", arrowhead=none];",
                escape(parent.as_str()),
                escape(cell.path.as_str())
            );
        }
        for edge in &self.edges {
            let latency = edge.latency_mean.map_or_else(String::new, |l| format!("\\n{l:.1?}"));
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{:.1}/s{}\"];",
                escape(edge.from.as_str()),
                escape(edge.to.as_str()),
                edge.rate,
                latency
            );
        }
        out.push_str("}\n");
        out
    }
}

/// Green (`#c8e6c9`) at 0, through yellow, to red (`#ef9a9a`) at 1.
fn decay_color(score: f64) -> String {
    let score = if score.is_nan() { 0.0 } else { score.clamp(0.0, 1.0) };
    let (low, high): ([f64; 3], [f64; 3]) = ([200.0, 230.0, 201.0], [239.0, 154.0, 154.0]);
    let channel = |i: usize| (low[i] + (high[i] - low[i]) * score).round() as u8;
    format!("#{:02x}{:02x}{:02x}", channel(0), channel(1), channel(2))
}

/// Escapes a label value (Prometheus) or a quoted ID (DOT): backslash,
/// double quote and newline.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The exposition being written: families in order, each sample once.
#[derive(Default)]
struct Exposition {
    text: String,
    /// `name{labels}` of every sample written: a series shows once, even
    /// when two cells share a path (a replacement caught midway); the first
    /// one, in path order, is the one shown.
    series: std::collections::HashSet<String>,
}

impl Exposition {
    fn family(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl SampleValue) {
        let series = if labels.is_empty() { name.to_owned() } else { format!("{name}{{{labels}}}") };
        if !self.series.insert(series.clone()) {
            return;
        }
        self.text.push_str(&series);
        self.text.push(' ');
        value.write_to(&mut self.text);
        self.text.push('\n');
    }
}

/// A sample's value as the exposition format writes it.
trait SampleValue {
    fn write_to(&self, out: &mut String);
}

macro_rules! integer_samples {
    ($($t:ty),*) => {$(
        impl SampleValue for $t {
            fn write_to(&self, out: &mut String) {
                let _ = write!(out, "{self}");
            }
        }
    )*};
}

integer_samples!(u32, u64, usize);

impl SampleValue for f64 {
    /// `NaN`, `+Inf` and `-Inf` as the format spells them (Rust prints
    /// `inf`); finite values in Rust's shortest round-trip form.
    fn write_to(&self, out: &mut String) {
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::time::Duration;

    use super::*;
    use crate::{Cell, CellConfig, CellError, ChildSpec, Context, Objective, Runtime, SupervisorSpec};

    /// Checks `text` against the Prometheus text exposition format 0.0.4,
    /// as Prometheus's own parser reads it: `# HELP` then `# TYPE` once per
    /// family, before its samples; metric and label names in their
    /// charsets; label values quoted with only `\\`, `\"` and `\n`
    /// escaped; values that parse as floats (`NaN`, `+Inf`, `-Inf`
    /// included); a summary's samples its quantiles, `_sum` and `_count`;
    /// no series twice; a newline at the end.
    fn check_exposition(text: &str) -> Result<(), String> {
        let metric_name = |name: &str| {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        let label_name = |name: &str| {
            let mut chars = name.chars();
            chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with("__")
        };
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the text does not end with a newline".into());
        }
        let mut families: HashMap<String, (bool, Option<String>)> = HashMap::new();
        let mut current: Option<String> = None;
        let mut series = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let n = n + 1;
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, _) = rest.split_once(' ').ok_or(format!("line {n}: HELP without text"))?;
                if !metric_name(name) {
                    return Err(format!("line {n}: bad metric name {name:?}"));
                }
                if families.insert(name.to_owned(), (true, None)).is_some() {
                    return Err(format!("line {n}: family {name} described twice"));
                }
                current = Some(name.to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').ok_or(format!("line {n}: TYPE without type"))?;
                if !["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind) {
                    return Err(format!("line {n}: unknown type {kind:?}"));
                }
                match families.get_mut(name) {
                    Some((true, kind_seen @ None)) if current.as_deref() == Some(name) => {
                        *kind_seen = Some(kind.to_owned())
                    }
                    _ => return Err(format!("line {n}: TYPE of {name} not right after its HELP")),
                }
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                return Err(format!("line {n}: unexpected line {line:?}"));
            }
            let (name, rest) = match line.find(['{', ' ']) {
                Some(i) => line.split_at(i),
                None => return Err(format!("line {n}: no value")),
            };
            if !metric_name(name) {
                return Err(format!("line {n}: bad metric name {name:?}"));
            }
            let family = current.clone().ok_or(format!("line {n}: sample before any family"))?;
            let kind =
                families[&family].1.clone().ok_or(format!("line {n}: sample of {family} before its TYPE"))?;
            let allowed = if kind == "summary" {
                vec![family.clone(), format!("{family}_sum"), format!("{family}_count")]
            } else {
                vec![family.clone()]
            };
            if !allowed.contains(&name.to_owned()) {
                return Err(format!("line {n}: sample {name} in family {family}"));
            }
            let (labels, value) = if let Some(rest) = rest.strip_prefix('{') {
                let mut labels = Vec::new();
                let mut chars = rest.char_indices().peekable();
                let end = loop {
                    let start = chars.peek().map(|&(i, _)| i).ok_or(format!("line {n}: open label set"))?;
                    if rest[start..].starts_with('}') {
                        break start + 1;
                    }
                    let eq = rest[start..].find('=').ok_or(format!("line {n}: label without value"))? + start;
                    let label = &rest[start..eq];
                    if !label_name(label) {
                        return Err(format!("line {n}: bad label name {label:?}"));
                    }
                    while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                        chars.next();
                    }
                    if chars.next().map(|(_, c)| c) != Some('"') {
                        return Err(format!("line {n}: label {label} not quoted"));
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next().map(|(_, c)| c) {
                            Some('"') => break,
                            Some('\\') => match chars.next().map(|(_, c)| c) {
                                Some('\\') => value.push('\\'),
                                Some('"') => value.push('"'),
                                Some('n') => value.push('\n'),
                                other => return Err(format!("line {n}: bad escape {other:?} in {label}")),
                            },
                            Some(c) => value.push(c),
                            None => return Err(format!("line {n}: unterminated value of {label}")),
                        }
                    }
                    labels.push((label.to_owned(), value));
                    match chars.next().map(|(_, c)| c) {
                        Some(',') => {}
                        Some('}') => break chars.peek().map_or(rest.len(), |&(i, _)| i),
                        other => return Err(format!("line {n}: {other:?} after label {label}")),
                    }
                };
                (labels, &rest[end..])
            } else {
                (Vec::new(), rest)
            };
            let value = value.strip_prefix(' ').ok_or(format!("line {n}: no space before the value"))?;
            let parses =
                matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok_and(f64::is_finite);
            if !parses {
                return Err(format!("line {n}: bad value {value:?}"));
            }
            let mut names: Vec<&str> = labels.iter().map(|(l, _)| l.as_str()).collect();
            names.sort_unstable();
            if names.windows(2).any(|w| w[0] == w[1]) {
                return Err(format!("line {n}: a label twice"));
            }
            if kind == "summary" && name == family && !names.contains(&"quantile") {
                return Err(format!("line {n}: summary sample without quantile"));
            }
            let mut key = labels.clone();
            key.sort();
            if !series.insert((name.to_owned(), key)) {
                return Err(format!("line {n}: series {name}{labels:?} twice"));
            }
        }
        Ok(())
    }

    struct Worker;

    impl Cell for Worker {
        type Message = u32;

        fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
            if n % 3 == 0 {
                return Err(CellError::msg("every third fails"));
            }
            Ok(())
        }
    }

    /// A snapshot with every family filled: cells, a supervisor, failures,
    /// an objective, decay; then values no real cell has: a kind with
    /// every character that needs escaping, a cell twice (a replacement
    /// caught midway), an infinite rate, a NaN decay.
    fn awkward_snapshot() -> Snapshot {
        let runtime = Runtime::builder().worker_threads(1).quiet_panics(true).build().unwrap();
        let spec = SupervisorSpec::new("sup")
            .child(ChildSpec::new("worker", || Worker))
            .intensity(100, Duration::from_secs(60));
        let sup = runtime.start_supervisor(spec, Duration::from_secs(5)).unwrap();
        let worker = sup.child::<u32>("worker").unwrap();
        let plain = runtime.spawn_with(CellConfig::named("plain"), Worker).unwrap();
        runtime.set_objective(plain.path(), Some(Objective::success_ratio(0.99).unwrap()));
        // The top-level cell handles six messages; the supervised one fails
        // three times and is restarted.
        for n in (1..=9).filter(|n| n % 3 != 0) {
            plain.send(n).unwrap();
        }
        for n in [3, 6, 9] {
            worker.send(n).unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let handled = |runtime: &Runtime| {
            let snapshot = runtime.snapshot();
            let plain = snapshot.cells.iter().find(|c| c.path.as_str() == "/plain");
            plain.and_then(|c| c.metrics.as_ref()).map_or(0, |m| m.handled)
        };
        while (runtime.failure_count() < 3 || handled(&runtime) < 6) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        runtime.analyse_window_now();
        let mut snapshot = runtime.snapshot();
        runtime.shutdown(Duration::from_secs(5));
        let plain = snapshot.cells.iter().position(|c| c.path.as_str() == "/plain").unwrap();
        snapshot.cells[plain].kind = "app::Odd<\"quoted\", back\\slash,\nnewline>".into();
        if let Some(decay) = snapshot.cells[plain].decay.as_mut() {
            decay.score = f64::NAN;
        }
        let twin = snapshot.cells[plain].clone();
        snapshot.cells.insert(plain, twin);
        snapshot.edges.push(crate::FlowEdge {
            from: CellPath::root().child("plain").unwrap(),
            to: CellPath::root().child("sup").unwrap(),
            messages: 1,
            rate: f64::INFINITY,
            latency_mean: None,
            latency_max: None,
        });
        snapshot
    }

    #[test]
    fn the_prometheus_text_follows_the_exposition_format() {
        let text = awkward_snapshot().prometheus();
        assert_eq!(check_exposition(&text), Ok(()), "{text}");
        let kind = "kind=\"app::Odd<\\\"quoted\\\", back\\\\slash,\\nnewline>\"";
        let handled = format!("cellrt_messages_handled_total{{cell=\"/plain\",{kind}}} 6\n");
        assert_eq!(text.matches(&handled).count(), 1, "{text}");
        assert!(text.contains("cellrt_flow_rate{from=\"/plain\",to=\"/sup\"} +Inf\n"), "{text}");
        assert!(
            text.contains(&format!("cellrt_decay{{cell=\"/plain\",{kind},component=\"score\"}} NaN\n")),
            "{text}"
        );
        assert!(text.contains("# TYPE cellrt_supervisor_max_restarts gauge\n"));
        assert!(text.contains("cellrt_supervisor_max_restarts{cell=\"/sup\","), "{text}");
    }

    #[test]
    fn the_format_check_catches_what_prometheus_refuses() {
        let family = "# HELP m A metric.\n# TYPE m gauge\n";
        assert_eq!(check_exposition(&format!("{family}m 1\nm{{a=\"x\"}} 2\n")), Ok(()));
        assert!(check_exposition(&format!("{family}m 1\nm 2\n")).unwrap_err().contains("twice"));
        assert!(check_exposition("m 1\n").unwrap_err().contains("before any family"));
        assert!(check_exposition(&format!("{family}m{{a=\"x\\y\"}} 1\n"))
            .unwrap_err()
            .contains("bad escape"));
        assert!(check_exposition(&format!("{family}m{{a=x}} 1\n")).unwrap_err().contains("not quoted"));
        assert!(check_exposition(&format!("{family}m inf\n")).unwrap_err().contains("bad value"));
        assert!(check_exposition(&format!("{family}m-x 1\n")).unwrap_err().contains("bad metric name"));
        assert!(check_exposition(&format!("{family}n 1\n")).unwrap_err().contains("in family m"));
        assert!(check_exposition(&format!("{family}m 1")).unwrap_err().contains("newline"));
    }

    #[test]
    fn sample_values_spell_nan_and_infinities_as_prometheus_does() {
        let written = |v: f64| {
            let mut out = String::new();
            v.write_to(&mut out);
            out
        };
        assert_eq!(written(f64::NAN), "NaN");
        assert_eq!(written(f64::INFINITY), "+Inf");
        assert_eq!(written(f64::NEG_INFINITY), "-Inf");
        assert_eq!(written(0.25), "0.25");
        assert_eq!(written(3.0), "3");
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }

    #[test]
    fn decay_colors_run_from_green_to_red() {
        assert_eq!(decay_color(0.0), "#c8e6c9");
        assert_eq!(decay_color(1.0), "#ef9a9a");
        assert_eq!(decay_color(f64::NAN), "#c8e6c9");
        assert_eq!(decay_color(7.0), "#ef9a9a");
    }
}
