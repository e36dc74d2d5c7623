//! The snapshot history: [`Snapshot`]s kept in the storage's
//! `sys/snapshots` tree as a run goes, so that what the runtime observed
//! over time (decay, flow rates, restarts) can be read back after the
//! process has stopped, by a report or an inspector.
//!
//! | key | value |
//! |---|---|
//! | `s` + number (8 bytes, big-endian, so keys sort in recording order) | a [`Snapshot`] without its journal entries (the journal keeps them) |
//! | `n` | the numbers of the oldest and the next snapshot |
//!
//! The tree keeps the latest [`CAPACITY`] snapshots: recording one more
//! removes the oldest, in the same transaction.

use super::snapshot::Snapshot;
use crate::store::{Store, StoreError};

/// Snapshots the history keeps.
pub(crate) const CAPACITY: u64 = 4096;

/// Prefix of snapshot keys.
const SNAPSHOT_PREFIX: [u8; 1] = [b's'];
/// Key of the oldest and next numbers.
const RANGE_KEY: [u8; 1] = [b'n'];

fn snapshot_key(number: u64) -> Vec<u8> {
    let mut key = SNAPSHOT_PREFIX.to_vec();
    key.extend_from_slice(&number.to_be_bytes());
    key
}

/// Keeps `snapshot` (without its journal entries) as the latest in
/// `store`, removing the oldest beyond `capacity` (at least 1), and
/// flushes.
pub(crate) fn keep(store: &Store, snapshot: &Snapshot, capacity: u64) -> Result<(), StoreError> {
    let capacity = capacity.max(1);
    let mut kept = snapshot.clone();
    kept.journal = Vec::new();
    store.transaction(|tx| {
        let (oldest, next) = tx.get::<(u64, u64)>(RANGE_KEY)?.unwrap_or((0, 0));
        tx.put(snapshot_key(next), &kept)?;
        let mut oldest = oldest;
        while next + 1 - oldest > capacity {
            tx.remove(snapshot_key(oldest))?;
            oldest += 1;
        }
        tx.put(RANGE_KEY, &(oldest, next + 1))
    })?;
    store.flush()
}

/// The snapshots kept in `store`, oldest first, and how many could not be
/// read (skipped). Read by reports (feature `report`).
#[cfg_attr(not(feature = "report"), allow(dead_code))]
pub(crate) fn read(store: &Store) -> Result<(Vec<Snapshot>, u64), StoreError> {
    let mut snapshots = Vec::new();
    let mut unreadable = 0;
    for entry in store.scan_prefix::<Snapshot>(SNAPSHOT_PREFIX) {
        match entry {
            Ok((_, snapshot)) => snapshots.push(snapshot),
            Err(StoreError::Decode { .. }) => unreadable += 1,
            Err(err) => return Err(err),
        }
    }
    Ok((snapshots, unreadable))
}

#[cfg(all(test, not(cellrt_loom)))]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::observe::journal::{Signal, SignalKind};
    use crate::observe::LearningMeasures;
    use crate::store::{Storage, StorageConfig};

    fn snapshot(secs: u64) -> Snapshot {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
        Snapshot {
            taken_at: at,
            cells: Vec::new(),
            edges: Vec::new(),
            signatures: Vec::new(),
            journal: vec![Signal {
                seq: 1,
                at,
                cell: None,
                cell_kind: None,
                kind: SignalKind::Phase { name: "baseline".into() },
                category: None,
            }],
            journal_total: secs,
            journal_errors: 0,
            rollups: Vec::new(),
            measures: LearningMeasures::default(),
        }
    }

    #[test]
    fn snapshots_are_read_back_in_recording_order_without_their_journal_entries() {
        let storage = Storage::open(&StorageConfig::in_memory()).unwrap();
        let store = storage.snapshots().unwrap();
        for secs in [5, 1, 3] {
            keep(&store, &snapshot(secs), CAPACITY).unwrap();
        }
        let (snapshots, unreadable) = read(&store).unwrap();
        assert_eq!(unreadable, 0);
        assert_eq!(snapshots.iter().map(|s| s.journal_total).collect::<Vec<_>>(), [5, 1, 3]);
        assert!(snapshots.iter().all(|s| s.journal.is_empty()));
    }

    #[test]
    fn the_history_keeps_the_latest_snapshots_up_to_its_capacity() {
        let storage = Storage::open(&StorageConfig::in_memory()).unwrap();
        let store = storage.snapshots().unwrap();
        for secs in 0..7 {
            keep(&store, &snapshot(secs), 4).unwrap();
        }
        let (snapshots, _) = read(&store).unwrap();
        assert_eq!(snapshots.iter().map(|s| s.journal_total).collect::<Vec<_>>(), [3, 4, 5, 6]);
        assert_eq!(store.scan_prefix_bytes(SNAPSHOT_PREFIX).count(), 4);
    }

    #[test]
    fn an_unreadable_snapshot_is_skipped_and_counted() {
        let storage = Storage::open(&StorageConfig::in_memory()).unwrap();
        let store = storage.snapshots().unwrap();
        keep(&store, &snapshot(1), CAPACITY).unwrap();
        store.put_bytes(snapshot_key(7), vec![0xff, 0xff]).unwrap();
        keep(&store, &snapshot(2), CAPACITY).unwrap();
        let (snapshots, unreadable) = read(&store).unwrap();
        assert_eq!((snapshots.len(), unreadable), (2, 1));
    }
}
