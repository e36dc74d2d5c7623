//! Observation: failures folded into signatures.

#![cfg(feature = "observe")]

mod common;

use cellrt::{Cell, CellError, ChildSpec, Context, FailureKind, SupervisorSpec};
use common::{eventually, runtime, PATIENCE};

/// Fails looking up the user it is sent, or panics on zero.
struct Users;

impl Cell for Users {
    type Message = u64;

    fn handle(&mut self, _: &mut Context<Self>, id: u64) -> Result<(), CellError> {
        if id == 0 {
            panic!("no user zero");
        }
        Err(CellError::msg(format!("user {id} not found")))
    }
}

#[test]
fn one_defect_in_two_cells_of_one_kind_is_one_signature() {
    let rt = runtime(2);
    let spec = SupervisorSpec::new("sup")
        .intensity(100, std::time::Duration::from_secs(60))
        .child(ChildSpec::new("a", || Users))
        .child(ChildSpec::new("b", || Users));
    let sup = rt.start_supervisor(spec, PATIENCE).unwrap();
    sup.child::<u64>("a").unwrap().send(42).unwrap();
    sup.child::<u64>("b").unwrap().send(7).unwrap();
    sup.child::<u64>("b").unwrap().send(9).unwrap();
    sup.child::<u64>("a").unwrap().send(0).unwrap();
    assert!(eventually(|| rt.failure_count() == 4));
    let signatures = rt.signatures();
    assert_eq!(signatures.len(), 2, "{signatures:#?}");
    let lookup = &signatures[0];
    assert_eq!(lookup.count, 3);
    assert_eq!(lookup.signature.kind, FailureKind::Error);
    assert_eq!(lookup.signature.text, "user <n> not found");
    assert!(lookup.signature.cell_kind.ends_with("Users"));
    assert_eq!(lookup.signature.message_kind, Some("u64"));
    let cells: Vec<&str> = lookup.cells.iter().map(|c| c.as_str()).collect();
    assert_eq!(cells, ["/sup/a", "/sup/b"]);
    assert_eq!(lookup.last_minute, 3);
    let panic = &signatures[1];
    assert_eq!((panic.count, panic.signature.kind), (1, FailureKind::Panic));
    assert!(panic.signature.origin.as_deref().is_some_and(|o| o.contains("tests/observe.rs")), "{panic:?}");
    assert_ne!(lookup.signature.fingerprint, panic.signature.fingerprint);
}
