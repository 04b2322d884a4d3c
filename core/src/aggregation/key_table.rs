//! The per-aggregate partition-key table, built without copying keys.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use crate::record::UserRecord;

/// Deduplicates partition keys and numbers them in order of first use.
///
/// The aggregator already owns every key (inside its held records), so the
/// table stores no strings: it maps a 64-bit hash of the key to the table
/// index, and the index to the position of the record that introduced the
/// key, where the key is read back to confirm a match. This saves an
/// allocation, a copy and a second hashing per distinct key, which at
/// small record sizes is a visible share of the cost.
///
/// The hash is keyed ([`RandomState`], SipHash), so keys chosen by an
/// adversary cannot be made to collide. Two distinct keys with the same
/// 64-bit hash are still handled correctly: the later one goes to a small
/// map keyed by the string itself.
pub(super) struct PartitionKeyTable<S = RandomState> {
    hasher: S,
    index_by_hash: HashMap<u64, usize, BuildHasherDefault<PrehashedKey>>,
    /// Keys whose hash was already taken by a different key.
    index_by_colliding_key: HashMap<String, usize>,
    /// For each table index, the position in the held records of the record
    /// that introduced the key.
    first_record: Vec<usize>,
}

impl PartitionKeyTable {
    /// An empty table with room for `keys` distinct keys.
    pub(super) fn with_capacity(keys: usize) -> Self {
        let mut table = Self::with_hasher(RandomState::new());
        table.index_by_hash.reserve(keys);
        table.first_record.reserve(keys);
        table
    }
}

impl<S: BuildHasher> PartitionKeyTable<S> {
    pub(super) fn with_hasher(hasher: S) -> Self {
        PartitionKeyTable {
            hasher,
            index_by_hash: HashMap::default(),
            index_by_colliding_key: HashMap::new(),
            first_record: Vec::new(),
        }
    }

    /// The hash [`find`](Self::find) and [`insert`](Self::insert) take, so
    /// a key is hashed once per record.
    pub(super) fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The table index of `key`, if present; `records` are the held records
    /// the table was built from.
    pub(super) fn find(&self, key: &str, hash: u64, records: &[UserRecord]) -> Option<usize> {
        let &index = self.index_by_hash.get(&hash)?;
        if records[self.first_record[index]].partition_key() == key {
            Some(index)
        } else {
            self.index_by_colliding_key.get(key).copied()
        }
    }

    /// Appends `key` (known to be absent) as introduced by the record at
    /// `position`; returns its index.
    pub(super) fn insert(&mut self, key: &str, hash: u64, position: usize) -> usize {
        let index = self.first_record.len();
        match self.index_by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
            Entry::Occupied(_) => {
                self.index_by_colliding_key.insert(key.to_owned(), index);
            }
        }
        self.first_record.push(position);
        index
    }

    /// Number of distinct keys.
    pub(super) fn len(&self) -> usize {
        self.first_record.len()
    }

    /// For each table index in order, the position of the record holding
    /// the key.
    pub(super) fn first_records(&self) -> &[usize] {
        &self.first_record
    }

    /// Empties the table, keeping its capacity.
    pub(super) fn clear(&mut self) {
        self.index_by_hash.clear();
        self.index_by_colliding_key.clear();
        self.first_record.clear();
    }
}

/// Hasher for keys that are already hashes: passes the `u64` through.
#[derive(Default)]
pub(super) struct PrehashedKey(u64);

impl Hasher for PrehashedKey {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed with this; stay correct for anything.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key hashes to the same value: all but the first collide.
    #[derive(Default)]
    struct Constant;
    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            42
        }
        fn write(&mut self, _: &[u8]) {}
    }

    #[test]
    fn colliding_keys_are_still_told_apart() {
        let mut table = PartitionKeyTable::with_hasher(BuildHasherDefault::<Constant>::default());
        let records: Vec<UserRecord> = ["a", "b", "a", "c", "b"]
            .iter()
            .map(|key| UserRecord::new(*key, ""))
            .collect();
        let mut indexes = Vec::new();
        for (position, record) in records.iter().enumerate() {
            let key = record.partition_key();
            let hash = table.hash(key);
            let index = match table.find(key, hash, &records) {
                Some(index) => index,
                None => table.insert(key, hash, position),
            };
            indexes.push(index);
        }
        assert_eq!(indexes, [0, 1, 0, 2, 1]);
        assert_eq!(table.first_records(), [0, 1, 3]);
        assert_eq!(table.len(), 3);
        table.clear();
        assert_eq!(table.len(), 0);
        assert_eq!(table.find("a", table.hash("a"), &records), None);
    }
}
