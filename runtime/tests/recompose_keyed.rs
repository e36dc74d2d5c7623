//! Recomposition by key: a keyed ledger is split into a pool under
//! traffic, each account's stored state moving to the member that owns
//! the account, and merged back into one cell; nothing lost, nothing
//! applied twice, each sender's deposits to an account in order.

#![cfg(all(feature = "storage", feature = "observe"))]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use cellrt::{
    Action, Addr, Cell, CellConfig, CellError, CellPath, Context, Expected, Metric, Mode, ObservationConfig,
    PlanStatus, Recomposable, RecomposeConfig, RecomposeError, Recomposer, Reply, Runtime, SplitBy,
    StorageConfig, StoreError,
};
use common::{eventually, wait_for, PATIENCE};

const WINDOW: Duration = Duration::from_millis(100);
const ACCOUNTS: u64 = 64;
const SENDERS: usize = 2;
const ROUNDS: u64 = 12;
const HOLD: Expected = Expected::Hold { metric: Metric::QueueDelay };

// --------------------------------------------------------------- ledger ----

enum Ledger {
    /// The `seq`-th deposit of `sender` to `account` (1, 2, 3…).
    Deposit {
        sender: usize,
        account: u64,
        seq: u64,
        amount: u64,
    },
    Balance {
        account: u64,
        reply: Reply<u64>,
    },
    /// Blocks the handler: says so on `entered`, then waits for `gate`.
    Wait {
        account: u64,
        entered: mpsc::Sender<()>,
        gate: mpsc::Receiver<()>,
    },
}

impl Ledger {
    fn account(&self) -> u64 {
        match self {
            Ledger::Deposit { account, .. }
            | Ledger::Balance { account, .. }
            | Ledger::Wait { account, .. } => *account,
        }
    }
}

/// An account's stored state: its balance, and the last deposit applied
/// from each sender.
type Account = (u64, [u64; SENDERS]);

/// The cells that applied each account's deposits.
type Handlers = Arc<Mutex<BTreeMap<u64, BTreeSet<CellPath>>>>;

/// Keeps each account under its own key in its tree, flushed after each
/// deposit. A deposit that is not the next one of its sender for its
/// account fails (and is dead-lettered).
struct Books {
    handlers: Handlers,
    /// How long each deposit takes on top of its write.
    slow: Duration,
}

impl Cell for Books {
    type Message = Ledger;

    fn handle(&mut self, ctx: &mut Context<Self>, msg: Ledger) -> Result<(), CellError> {
        match msg {
            Ledger::Deposit { sender, account, seq, amount } => {
                let store = ctx.store()?;
                let (balance, mut last): Account = store.get(account)?.unwrap_or_default();
                if seq != last[sender] + 1 {
                    return Err(CellError::msg(format!(
                        "account {account}: deposit {seq} of sender {sender} after {}",
                        last[sender]
                    )));
                }
                last[sender] = seq;
                store.put(account, &(balance + amount, last))?;
                store.flush()?;
                self.handlers.lock().unwrap().entry(account).or_default().insert(ctx.path().clone());
                if !self.slow.is_zero() {
                    thread::sleep(self.slow);
                }
            }
            Ledger::Balance { account, reply } => {
                let (balance, _): Account = ctx.store()?.get(account)?.unwrap_or_default();
                let _ = reply.send(balance);
            }
            Ledger::Wait { entered, gate, .. } => {
                let _ = entered.send(());
                let _ = gate.recv_timeout(PATIENCE);
            }
        }
        Ok(())
    }
}

fn amount(sender: usize, account: u64, seq: u64) -> u64 {
    1 + (sender as u64 * 7 + account * 3 + seq) % 10
}

/// What `account` holds once every sender's deposits 1..=`rounds` are applied.
fn expected(account: u64, rounds: u64) -> u64 {
    expected_each(account, [rounds; SENDERS])
}

/// What `account` holds once each sender `s`'s deposits 1..=`rounds[s]` are applied.
fn expected_each(account: u64, rounds: [u64; SENDERS]) -> u64 {
    (0..SENDERS).map(|sender| (1..=rounds[sender]).map(|seq| amount(sender, account, seq)).sum::<u64>()).sum()
}

fn ledger_runtime(dir: Option<&Path>) -> Runtime {
    ledger_runtime_with(dir, 256)
}

fn ledger_runtime_with(dir: Option<&Path>, capacity: usize) -> Runtime {
    let mut builder = Runtime::builder();
    builder
        .worker_threads(2)
        .quiet_panics(true)
        .default_capacity(capacity)
        .observation(ObservationConfig::default().window(WINDOW));
    if let Some(dir) = dir {
        builder.storage(StorageConfig::dir(dir));
    }
    builder.build().expect("runtime builds")
}

/// The engine never evaluates (so never reverts) on its own here.
fn engine(runtime: &Runtime) -> Recomposer {
    Recomposer::new(runtime, RecomposeConfig::default().mode(Mode::Off).evaluation_windows(10_000)).unwrap()
}

/// A ledger at `/ledger`, managed as keyed by account.
fn keyed_ledger(runtime: &Runtime, engine: &Recomposer) -> (Addr<Ledger>, Handlers) {
    keyed_ledger_taking(runtime, engine, Duration::ZERO)
}

/// [`keyed_ledger`] whose deposits each take `slow` more.
fn keyed_ledger_taking(runtime: &Runtime, engine: &Recomposer, slow: Duration) -> (Addr<Ledger>, Handlers) {
    let handlers = Handlers::default();
    let books = Books { handlers: handlers.clone(), slow };
    let ledger = runtime.spawn_with(CellConfig::named("ledger"), books).unwrap();
    let made = handlers.clone();
    let spec =
        Recomposable::new(move || Books { handlers: made.clone(), slow }).keyed(Ledger::account).max_pool(4);
    engine.manage(&ledger, spec).unwrap();
    (ledger, handlers)
}

fn split_by_key(ledger: &Addr<Ledger>, into: usize) -> Action {
    Action::Split { cell: ledger.path().clone(), into, by: SplitBy::Key }
}

/// Two senders, each depositing to every account once per round for
/// `rounds`, with a short pause between rounds; `sent` counts the deposits.
fn traffic(
    ledger: &Addr<Ledger>,
    rounds: std::ops::RangeInclusive<u64>,
    sent: &Arc<AtomicU64>,
) -> Vec<thread::JoinHandle<()>> {
    (0..SENDERS)
        .map(|sender| {
            let (ledger, sent, rounds) = (ledger.clone(), sent.clone(), rounds.clone());
            thread::spawn(move || {
                for seq in rounds {
                    for account in 0..ACCOUNTS {
                        let amount = amount(sender, account, seq);
                        ledger
                            .send(Ledger::Deposit { sender, account, seq, amount })
                            .unwrap_or_else(|_| panic!("deposit {seq} of {sender} to {account} refused"));
                        sent.fetch_add(1, SeqCst);
                    }
                    thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect()
}

/// Asks every account's balance through the address and checks it.
fn assert_balances(ledger: &Addr<Ledger>, rounds: u64) {
    let mut total = 0;
    for account in 0..ACCOUNTS {
        let balance = ledger.ask(|reply| Ledger::Balance { account, reply }).unwrap().wait(PATIENCE).unwrap();
        assert_eq!(balance, expected(account, rounds), "balance of account {account}");
        total += balance;
    }
    let sent: u64 = (0..ACCOUNTS).map(|account| expected(account, rounds)).sum();
    assert_eq!(total, sent, "the balances add up to what was deposited");
}

fn account_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key.try_into().expect("an account key is 8 bytes"))
}

/// Every account stored in the tree of the cell at `path`, with its state.
fn stored(runtime: &Runtime, path: &CellPath) -> BTreeMap<u64, Account> {
    let tree = runtime.store(path).unwrap();
    tree.scan_prefix::<Account>([]).map(|entry| entry.unwrap()).map(|(k, v)| (account_of(&k), v)).collect()
}

fn member_paths(ledger: &Addr<Ledger>, into: usize) -> Vec<CellPath> {
    (0..into).map(|n| ledger.path().child(&n.to_string()).unwrap()).collect()
}

/// Splits `ledger` by key into 3 while two senders deposit rounds
/// 1..=`ROUNDS`, approving the plan once a third is sent; returns the
/// plan. Every deposit is sent when it returns.
fn split_under_traffic(engine: &Recomposer, ledger: &Addr<Ledger>) -> u64 {
    let plan = engine.propose(vec![split_by_key(ledger, 3)], HOLD).unwrap();
    let total = SENDERS as u64 * ACCOUNTS * ROUNDS;
    let sent = Arc::new(AtomicU64::new(0));
    let senders = traffic(ledger, 1..=ROUNDS, &sent);
    wait_for("a third of the deposits sent", || sent.load(SeqCst) >= total / 3);
    engine.approve(plan).unwrap();
    let at_split = sent.load(SeqCst);
    senders.into_iter().for_each(|s| s.join().unwrap());
    assert!(at_split < total, "the split came after the traffic: {at_split} of {total} sent");
    assert_eq!(sent.load(SeqCst), total);
    plan
}

// ---------------------------------------------------------------- split ----

#[test]
fn a_split_by_key_under_traffic_moves_each_accounts_state_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let (ledger, handlers) = keyed_ledger(&runtime, &engine);

    let plan = split_under_traffic(&engine, &ledger);
    let layout = engine.layout(ledger.path()).unwrap();
    assert_eq!((layout.pool, layout.keyed, layout.version), (3, true, 1));
    assert_eq!(engine.plan(plan).unwrap().inverse, vec![Action::Merge { cell: ledger.path().clone() }]);

    // Every deposit applied exactly once, each sender's in order per account.
    assert_balances(&ledger, ROUNDS);
    assert_eq!(runtime.dead_letter_count(), 0, "{:?}", runtime.dead_letters());
    assert_eq!(runtime.failure_count(), 0, "{:?}", runtime.failures());

    // Nothing is left in the retired cell's tree; each account is in
    // exactly one member's tree, complete.
    assert!(stored(&runtime, ledger.path()).is_empty(), "the base tree is empty");
    let mut holder = BTreeMap::new();
    for member in member_paths(&ledger, 3) {
        let accounts = stored(&runtime, &member);
        assert!(!accounts.is_empty(), "{member} owns some accounts");
        for (account, (balance, last)) in accounts {
            assert_eq!((balance, last), (expected(account, ROUNDS), [ROUNDS; SENDERS]), "account {account}");
            assert!(holder.insert(account, member.clone()).is_none(), "account {account} in two trees");
        }
    }
    assert_eq!(holder.len(), ACCOUNTS as usize);
    // The tree holding an account is the one of the member its deposits
    // went to after the split (its owner on the ring), and only that one.
    for (account, cells) in handlers.lock().unwrap().iter() {
        let after: Vec<&CellPath> = cells.iter().filter(|c| *c != ledger.path()).collect();
        assert_eq!(after, [&holder[account]], "account {account} was handled by {cells:?}");
    }

    // The base cell was retired into the pool.
    wait_for("the base cell retired", || runtime.cell_count() == 3);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_saturated_keyed_cell_is_split_by_key_by_the_built_in_rule() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime_with(Some(dir.path()), 64);
    let config = RecomposeConfig::default().mode(Mode::Auto).evaluation_windows(10_000).merge_windows(10_000);
    let engine = Recomposer::new(&runtime, config).unwrap();
    let (ledger, _) = keyed_ledger_taking(&runtime, &engine, Duration::from_micros(300));

    // Two senders as fast as the ledger takes them, whole rounds, until the
    // engine has split it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let senders: Vec<thread::JoinHandle<u64>> = (0..SENDERS)
        .map(|sender| {
            let (ledger, stop) = (ledger.clone(), stop.clone());
            thread::spawn(move || {
                let mut seq = 0;
                while !stop.load(SeqCst) {
                    seq += 1;
                    for account in 0..ACCOUNTS {
                        let amount = amount(sender, account, seq);
                        ledger.send(Ledger::Deposit { sender, account, seq, amount }).unwrap();
                    }
                }
                seq
            })
        })
        .collect();
    let split = eventually(|| engine.layout(ledger.path()).unwrap().pool == 2);
    stop.store(true, SeqCst);
    let rounds: Vec<u64> = senders.into_iter().map(|s| s.join().unwrap()).collect();
    assert!(split, "never split: {:?}", engine.plans());

    let plans = engine.plans();
    assert_eq!(plans.len(), 1, "{plans:?}");
    assert_eq!(plans[0].rule, "split");
    assert_eq!(plans[0].actions, vec![split_by_key(&ledger, 2)]);
    assert!(engine.layout(ledger.path()).unwrap().keyed);
    let rounds = [rounds[0], rounds[1]];
    for account in 0..ACCOUNTS {
        let balance = ledger.ask(|reply| Ledger::Balance { account, reply }).unwrap().wait(PATIENCE).unwrap();
        assert_eq!(balance, expected_each(account, rounds), "account {account}");
    }
    assert_eq!(runtime.dead_letter_count(), 0, "{:?}", runtime.dead_letters());
    runtime.shutdown(Duration::from_secs(5));
}

// ---------------------------------------------------------------- merge ----

#[test]
fn reverting_a_split_by_key_under_traffic_brings_every_account_back_into_the_base_tree() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let (ledger, handlers) = keyed_ledger(&runtime, &engine);
    let plan = split_under_traffic(&engine, &ledger);
    // The pool has taken over: every account answers from its owner.
    assert_balances(&ledger, ROUNDS);

    // More rounds, and the revert (a merge) half-way through them.
    let total = SENDERS as u64 * ACCOUNTS * ROUNDS;
    let sent = Arc::new(AtomicU64::new(0));
    let senders = traffic(&ledger, ROUNDS + 1..=2 * ROUNDS, &sent);
    wait_for("a third of the deposits sent", || sent.load(SeqCst) >= total / 3);
    engine.revert(plan).unwrap();
    let at_merge = sent.load(SeqCst);
    senders.into_iter().for_each(|s| s.join().unwrap());
    assert!(at_merge < total, "the merge came after the traffic: {at_merge} of {total} sent");

    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Reverted { .. }));
    let layout = engine.layout(ledger.path()).unwrap();
    assert_eq!((layout.pool, layout.keyed, layout.version), (1, false, 2));
    assert_balances(&ledger, 2 * ROUNDS);
    assert_eq!(runtime.dead_letter_count(), 0, "{:?}", runtime.dead_letters());
    assert_eq!(runtime.failure_count(), 0, "{:?}", runtime.failures());

    // All the state is back in the base tree; the members' trees are empty.
    let accounts = stored(&runtime, ledger.path());
    assert_eq!(accounts.len(), ACCOUNTS as usize);
    for (account, state) in accounts {
        assert_eq!(state, (expected(account, 2 * ROUNDS), [2 * ROUNDS; SENDERS]), "account {account}");
    }
    for member in member_paths(&ledger, 3) {
        assert!(stored(&runtime, &member).is_empty(), "{member}'s tree is empty");
    }
    // Every account was handled at the base path again after the merge.
    let handled_at_base =
        handlers.lock().unwrap().values().filter(|cells| cells.contains(ledger.path())).count();
    assert_eq!(handled_at_base, ACCOUNTS as usize);
    wait_for("the members retired", || runtime.cell_count() == 1);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_keyed_pool_is_not_merged_before_the_split_has_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let (ledger, _) = keyed_ledger(&runtime, &engine);
    let deposit =
        |sender, account, seq| Ledger::Deposit { sender, account, seq, amount: amount(sender, account, seq) };
    for account in 0..ACCOUNTS {
        ledger.send(deposit(0, account, 1)).unwrap();
    }
    // The base cell is in the middle of a message when the split comes.
    let (entered_tx, entered) = mpsc::channel();
    let (open, gate) = mpsc::channel();
    ledger.send(Ledger::Wait { account: 0, entered: entered_tx, gate }).unwrap();
    entered.recv_timeout(PATIENCE).unwrap();
    let plan = engine.propose(vec![split_by_key(&ledger, 2)], HOLD).unwrap();
    engine.approve(plan).unwrap();
    // Sent after the split: queued at the held members.
    for account in 0..ACCOUNTS {
        ledger.send(deposit(0, account, 2)).unwrap();
    }
    let err = engine.revert(plan).unwrap_err();
    assert!(
        matches!(&err, RecomposeError::Layout { reason, .. } if reason.contains("handing over")),
        "{err}"
    );
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Applied { .. }));

    // The base finishes its message and hands over: the members take it
    // from there, deposits 1 (moved) before 2 (sent after the split).
    open.send(()).unwrap();
    for account in 0..ACCOUNTS {
        let balance = ledger.ask(|reply| Ledger::Balance { account, reply }).unwrap().wait(PATIENCE).unwrap();
        assert_eq!(balance, amount(0, account, 1) + amount(0, account, 2), "account {account}");
    }
    engine.revert(plan).unwrap();
    assert_eq!(engine.layout(ledger.path()).unwrap().pool, 1);
    // The merge hands over the same way: an answer comes once it is done.
    let balance = ledger.ask(|reply| Ledger::Balance { account: 7, reply }).unwrap().wait(PATIENCE).unwrap();
    assert_eq!(balance, amount(0, 7, 1) + amount(0, 7, 2));
    assert_eq!(stored(&runtime, ledger.path()).len(), ACCOUNTS as usize);
    assert_eq!(runtime.dead_letter_count(), 0, "{:?}", runtime.dead_letters());
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_keyed_pool_whose_member_stopped_refuses_its_keys_and_still_merges_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let (ledger, handlers) = keyed_ledger(&runtime, &engine);
    let plan = engine.propose(vec![split_by_key(&ledger, 2)], HOLD).unwrap();
    engine.approve(plan).unwrap();
    let deposit = |account, seq| Ledger::Deposit { sender: 0, account, seq, amount: amount(0, account, seq) };
    for account in 0..ACCOUNTS {
        ledger.send(deposit(account, 1)).unwrap();
    }
    for account in 0..ACCOUNTS {
        let balance = ledger.ask(|reply| Ledger::Balance { account, reply }).unwrap().wait(PATIENCE).unwrap();
        assert_eq!(balance, amount(0, account, 1));
    }
    // The owner of account 0 fails on a deposit out of order and stops
    // (a top-level cell is not restarted).
    let owner = handlers.lock().unwrap()[&0].iter().next().unwrap().clone();
    ledger.send(deposit(0, 5)).unwrap();
    wait_for("the owner stopped", || runtime.cell_count() == 1);
    assert_eq!(runtime.dead_letter_count(), 1);
    // Its keys are refused, not sent to the other member (which lacks their state).
    assert!(matches!(ledger.try_send(deposit(0, 2)), Err(cellrt::SendError::Closed(_))));
    let other_account = (0..ACCOUNTS).find(|a| !handlers.lock().unwrap()[a].contains(&owner)).unwrap();
    ledger.send(deposit(other_account, 2)).unwrap();

    // The merge counts the stopped member at once and takes its tree too.
    engine.revert(plan).unwrap();
    for account in 0..ACCOUNTS {
        let balance = ledger.ask(|reply| Ledger::Balance { account, reply }).unwrap().wait(PATIENCE).unwrap();
        let more = if account == other_account { amount(0, account, 2) } else { 0 };
        assert_eq!(balance, amount(0, account, 1) + more, "account {account}");
    }
    assert_eq!(stored(&runtime, ledger.path()).len(), ACCOUNTS as usize);
    assert!(stored(&runtime, &owner).is_empty());
    assert_eq!(runtime.dead_letter_count(), 1);
    runtime.shutdown(Duration::from_secs(5));
}

// ------------------------------------------------------------ bad input ----

#[test]
fn a_split_by_key_of_a_cell_not_registered_keyed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let ledger = runtime
        .spawn_with(
            CellConfig::named("ledger"),
            Books { handlers: Handlers::default(), slow: Duration::ZERO },
        )
        .unwrap();
    engine
        .manage(
            &ledger,
            Recomposable::new(|| Books { handlers: Handlers::default(), slow: Duration::ZERO }).stateless(),
        )
        .unwrap();
    let err = engine.propose(vec![split_by_key(&ledger, 2)], HOLD).unwrap_err();
    assert!(matches!(&err, RecomposeError::Layout { reason, .. } if reason.contains("keyed")), "{err}");
    assert!(engine.plans().is_empty());
    assert_eq!(engine.layout(ledger.path()).unwrap().pool, 1);
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_split_by_key_outside_two_to_max_pool_cells_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = engine(&runtime);
    let (ledger, _) = keyed_ledger(&runtime, &engine);
    for into in [0, 1, 5] {
        let err = engine.propose(vec![split_by_key(&ledger, into)], HOLD).unwrap_err();
        assert!(matches!(err, RecomposeError::Invalid { .. }), "into {into}: {err}");
    }
    assert!(engine.plans().is_empty());
    // A keyed registration needs room for a pool.
    let other = runtime
        .spawn_with(CellConfig::named("other"), Books { handlers: Handlers::default(), slow: Duration::ZERO })
        .unwrap();
    let spec = Recomposable::new(|| Books { handlers: Handlers::default(), slow: Duration::ZERO })
        .keyed(Ledger::account)
        .max_pool(1);
    assert_eq!(
        engine.manage(&other, spec).err(),
        Some(RecomposeError::Registration(cellrt::RecomposableError::MaxPool { value: 1 }))
    );
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_split_by_key_without_storage_fails_and_changes_nothing() {
    let runtime = ledger_runtime(None);
    let engine = engine(&runtime);
    let (ledger, _) = keyed_ledger(&runtime, &engine);
    let plan = engine.propose(vec![split_by_key(&ledger, 2)], HOLD).unwrap();
    assert_eq!(
        engine.approve(plan),
        Err(RecomposeError::Storage { cell: ledger.path().clone(), error: StoreError::Disabled })
    );
    assert!(matches!(engine.plan(plan).unwrap().status, PlanStatus::Failed { .. }));
    let layout = engine.layout(ledger.path()).unwrap();
    assert_eq!((layout.pool, layout.keyed, layout.version), (1, false, 0));
    // The same cell serves, alone: no member was started.
    assert_eq!(runtime.cell_count(), 1);
    assert!(!ledger.is_closed());
    let (entered_tx, entered) = mpsc::channel();
    let (open, gate) = mpsc::channel();
    ledger.send(Ledger::Wait { account: 0, entered: entered_tx, gate }).unwrap();
    entered.recv_timeout(PATIENCE).unwrap();
    open.send(()).unwrap();
    runtime.shutdown(Duration::from_secs(5));
}

#[test]
fn a_kept_split_by_key_comes_back_after_a_restart_with_each_account_at_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let config = || RecomposeConfig::default().mode(Mode::Off).evaluation_windows(1);
    let members;
    let owners: BTreeMap<CellPath, BTreeSet<u64>>;
    {
        let runtime = ledger_runtime(Some(dir.path()));
        let engine = Recomposer::new(&runtime, config()).unwrap();
        let (ledger, _) = keyed_ledger(&runtime, &engine);
        let sent = Arc::new(AtomicU64::new(0));
        traffic(&ledger, 1..=2, &sent).into_iter().for_each(|t| t.join().unwrap());
        let plan = engine.propose(vec![split_by_key(&ledger, 3)], HOLD).unwrap();
        engine.approve(plan).unwrap();
        traffic(&ledger, 3..=4, &sent).into_iter().for_each(|t| t.join().unwrap());
        wait_for("the split kept", || matches!(engine.plan(plan).unwrap().status, PlanStatus::Kept { .. }));
        assert_balances(&ledger, 4);
        members = member_paths(&ledger, 3);
        owners = members.iter().map(|m| (m.clone(), stored(&runtime, m).into_keys().collect())).collect();
        assert_eq!(owners.values().map(BTreeSet::len).sum::<usize>(), ACCOUNTS as usize);
        runtime.shutdown(PATIENCE);
    }
    // The next run spawns the ledger as it always did; the engine puts the
    // pool back, and each account is found at the member that owned it.
    let runtime = ledger_runtime(Some(dir.path()));
    let engine = Recomposer::new(&runtime, config()).unwrap();
    let handlers = Handlers::default();
    let books = Books { handlers: handlers.clone(), slow: Duration::ZERO };
    let ledger = runtime.spawn_with(CellConfig::named("ledger"), books).unwrap();
    let made = handlers.clone();
    let spec = Recomposable::new(move || Books { handlers: made.clone(), slow: Duration::ZERO })
        .keyed(Ledger::account)
        .max_pool(4);
    let restored = engine.manage(&ledger, spec).unwrap();
    assert_eq!((restored.plans, restored.warning), (vec![1], None));
    let layout = engine.layout(ledger.path()).unwrap();
    assert_eq!((layout.pool, layout.keyed), (3, true));
    assert_balances(&ledger, 4);
    let sent = Arc::new(AtomicU64::new(0));
    traffic(&ledger, 5..=5, &sent).into_iter().for_each(|t| t.join().unwrap());
    assert_balances(&ledger, 5);
    // Every account's deposits in this run were applied by its owner.
    for (member, accounts) in &owners {
        for account in accounts {
            assert_eq!(
                handlers.lock().unwrap()[account],
                BTreeSet::from([member.clone()]),
                "account {account}"
            );
        }
        let now: BTreeSet<u64> = stored(&runtime, member).into_keys().collect();
        assert_eq!(&now, accounts);
    }
    assert!(stored(&runtime, ledger.path()).is_empty());
    runtime.shutdown(PATIENCE);
}
