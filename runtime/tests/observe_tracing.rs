//! Every journal entry is a structured `tracing` event (target
//! `cellrt::journal`). One test in its own binary: the subscriber is global.
#![cfg(feature = "observe")]

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use cellrt::{Cell, CellConfig, CellError, Context};
use common::{eventually, runtime, PATIENCE};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata};

type Events = Arc<Mutex<Vec<(Level, BTreeMap<String, String>)>>>;

struct Capture(Events);

struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if event.metadata().target() == "cellrt::journal" {
            let mut fields = Fields(BTreeMap::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push((*event.metadata().level(), fields.0));
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

struct Refuser;

impl Cell for Refuser {
    type Message = u32;

    fn handle(&mut self, _: &mut Context<Self>, n: u32) -> Result<(), CellError> {
        Err(CellError::msg(format!("order {n} refused")))
    }
}

#[test]
fn every_journal_entry_is_a_tracing_event_with_its_fields() {
    let events = Events::default();
    tracing::subscriber::set_global_default(Capture(events.clone())).unwrap();
    let rt = runtime(1);
    let refuser = rt.spawn_with(CellConfig::new().name("refuser"), Refuser).unwrap();
    refuser.send(7).unwrap();
    assert!(eventually(|| events.lock().unwrap().len() >= 3));
    let events = events.lock().unwrap().clone();
    let kind = std::any::type_name::<Refuser>();
    let (level, spawned) = &events[0];
    assert_eq!(*level, Level::INFO);
    assert_eq!(spawned["kind"], "topology");
    assert_eq!(spawned["cell"], "/refuser");
    assert_eq!(spawned["category"], "");
    assert_eq!(spawned["seq"], "1");
    let (level, failed) = &events[1];
    assert_eq!(*level, Level::WARN);
    assert_eq!(failed["kind"], "new_signature");
    assert_eq!(failed["seq"], "2");
    assert_eq!(failed["cell"], "/refuser");
    assert_eq!(failed["category"], "Process Breakdown", "a failure within a minute of a spawn");
    assert!(failed["summary"].contains(&format!("Error in {kind}")), "{failed:?}");
    assert!(failed["summary"].ends_with(": order <n> refused"), "{failed:?}");
    // The cell stopped (it is not supervised): a change of the topology.
    let (_, stopped) = &events[2];
    assert_eq!((stopped["kind"].as_str(), stopped["seq"].as_str()), ("topology", "3"));
    rt.shutdown(PATIENCE);
}
