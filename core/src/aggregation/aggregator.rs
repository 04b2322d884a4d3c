//! Packs user records bound for one shard into KPL aggregates.

use std::collections::HashMap;
use std::fmt;
use std::mem;

use bytes::Bytes;
use md5::{Digest, Md5};

use super::format::{
    AGGREGATE_OVERHEAD, DIGEST_LEN, MAGIC, PARTITION_KEY_TABLE_TAG, decimal_len,
    put_decimal_table_entry, put_record, put_table_entry, record_body_len, record_field_len,
    table_entry_len,
};
use super::key_table::PartitionKeyTable;
use crate::record::UserRecord;

/// A record as sent to Kinesis: one user record as-is, or a KPL aggregate.
///
/// `Debug` prints lengths only, never keys or payload.
#[derive(Clone, PartialEq, Eq)]
pub struct KinesisRecord {
    /// The partition key sent with the record. For an aggregate, the first
    /// user record's partition key.
    pub partition_key: String,
    /// The explicit hash key (decimal) sent with the record. For an
    /// aggregate, always the first user record's hash key, so the aggregate
    /// routes to the shard its records were predicted for.
    pub explicit_hash_key: Option<String>,
    /// The record's data: the user's payload, or the aggregate bytes.
    pub data: Bytes,
    /// How many user records this Kinesis record carries.
    pub user_record_count: usize,
    /// True when `data` is a KPL aggregate.
    pub aggregated: bool,
}

impl KinesisRecord {
    /// The size the service charges against its limits: data plus partition
    /// key, in bytes.
    pub fn billed_size(&self) -> usize {
        self.data.len() + self.partition_key.len()
    }
}

impl fmt::Debug for KinesisRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KinesisRecord")
            .field("partition_key_len", &self.partition_key.len())
            .field("explicit_hash_key", &self.explicit_hash_key.is_some())
            .field("data_len", &self.data.len())
            .field("user_record_count", &self.user_record_count)
            .field("aggregated", &self.aggregated)
            .finish()
    }
}

/// Where a record's key sits in a key table: an existing entry, or a new
/// one appended at `index`.
#[derive(Clone, Copy)]
struct KeySlot {
    index: usize,
    is_new: bool,
}

/// What adding one record would change, computed without changing anything.
struct Placement {
    partition_key_index: usize,
    /// The key's hash when the key is new to the table (kept so `try_add`
    /// does not hash it twice); `None` when it is already there.
    new_partition_key_hash: Option<u64>,
    explicit_hash_key: Option<KeySlot>,
    added_len: usize,
}

/// Table indexes of one held record; kept so `take` can encode without
/// looking keys up again.
#[derive(Clone, Copy)]
struct RecordIndexes {
    partition_key: usize,
    explicit_hash_key: Option<usize>,
}

/// Accumulates user records into one KPL aggregate, tracking its exact
/// encoded size as records are added.
///
/// Callers keep one aggregator per predicted shard: the KCL drops user
/// records whose hash key is outside the shard it reads, so only records
/// predicted for the same shard may share an aggregate.
///
/// The size is kept incrementally with varint arithmetic; nothing is
/// encoded until [`Aggregator::take`], which encodes once into a buffer of
/// exactly the right length.
///
/// ```
/// use shardline::UserRecord;
/// use shardline::aggregation::{Aggregator, deaggregate};
///
/// let mut aggregator = Aggregator::new(50 * 1024, 1000);
/// aggregator.try_add(UserRecord::new("user-1", "hello")).unwrap();
/// aggregator.try_add(UserRecord::new("user-2", "world")).unwrap();
/// let (kinesis_record, user_records) = aggregator.take().unwrap();
/// assert!(kinesis_record.aggregated);
/// assert_eq!(user_records.len(), 2);
/// let back = deaggregate(
///     &kinesis_record.partition_key,
///     kinesis_record.explicit_hash_key.as_deref(),
///     &kinesis_record.data,
/// )
/// .unwrap();
/// assert_eq!(back[1].data, "world");
/// ```
pub struct Aggregator {
    max_size: usize,
    max_count: usize,
    records: Vec<UserRecord>,
    indexes: Vec<RecordIndexes>,
    /// The partition-key table; it reads keys from `records`.
    partition_keys: PartitionKeyTable,
    /// Explicit hash key -> its index in the explicit-hash-key table. Keyed
    /// by the number, not the decimal string: nothing is formatted until
    /// `take`.
    explicit_hash_key_index: HashMap<u128, usize>,
    /// The explicit-hash-key table, in index order.
    explicit_hash_keys: Vec<u128>,
    /// Length of the protobuf message for what is held (no magic, no
    /// digest).
    protobuf_len: usize,
}

impl Aggregator {
    /// An empty aggregator emitting aggregates of at most `max_size` bytes
    /// (magic, protobuf and digest) and at most `max_count` user records.
    ///
    /// A single record is always accepted by an empty aggregator, whatever
    /// the limits: deciding whether it may be sent at all is the
    /// validation's job, not the aggregator's.
    pub fn new(max_size: usize, max_count: usize) -> Self {
        Self::with_capacity(max_size, max_count, 0)
    }

    /// Like [`Aggregator::new`], with room for `records` user records (and
    /// as many distinct keys) reserved up front.
    pub fn with_capacity(max_size: usize, max_count: usize, records: usize) -> Self {
        Aggregator {
            max_size,
            max_count,
            records: Vec::with_capacity(records),
            indexes: Vec::with_capacity(records),
            partition_keys: PartitionKeyTable::with_capacity(records),
            explicit_hash_key_index: HashMap::new(),
            explicit_hash_keys: Vec::new(),
            protobuf_len: 0,
        }
    }

    /// Number of user records held.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no user record is held.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Exact length of the aggregate data (magic + protobuf + digest) if it
    /// were taken now; 0 when empty.
    ///
    /// With a single record held, [`Aggregator::take`] sends that record
    /// raw, so the data sent is then smaller than this.
    pub fn size(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            AGGREGATE_OVERHEAD + self.protobuf_len
        }
    }

    /// Exact aggregate length if `record` were added, with its keys counted
    /// only if they are not already in the tables.
    pub fn size_with(&self, record: &UserRecord) -> usize {
        AGGREGATE_OVERHEAD + self.protobuf_len + self.place(record).added_len
    }

    /// Adds `record` if the aggregate stays within `max_size` bytes and
    /// `max_count` records; an empty aggregator accepts any one record.
    /// Hands the record back when it does not fit.
    pub fn try_add(&mut self, record: UserRecord) -> Result<(), UserRecord> {
        let placement = self.place(&record);
        if !self.is_empty() {
            let new_size = AGGREGATE_OVERHEAD + self.protobuf_len + placement.added_len;
            if new_size > self.max_size || self.records.len() >= self.max_count {
                return Err(record);
            }
        }
        let position = self.records.len();
        if let Some(hash) = placement.new_partition_key_hash {
            let index = self
                .partition_keys
                .insert(record.partition_key(), hash, position);
            debug_assert_eq!(index, placement.partition_key_index);
        }
        let explicit_hash_key = match (placement.explicit_hash_key, record.explicit_hash_key()) {
            (Some(slot), Some(key)) => {
                if slot.is_new {
                    self.explicit_hash_key_index.insert(key, slot.index);
                    self.explicit_hash_keys.push(key);
                }
                Some(slot.index)
            }
            _ => None,
        };
        self.indexes.push(RecordIndexes {
            partition_key: placement.partition_key_index,
            explicit_hash_key,
        });
        self.protobuf_len += placement.added_len;
        self.records.push(record);
        Ok(())
    }

    /// Emits what is held and resets; `None` when empty.
    ///
    /// One record goes out raw: its own data, partition key and explicit
    /// hash key (decimal) if it had one, with `aggregated == false`. Two or
    /// more go out as a KPL aggregate whose partition key is the first user
    /// record's partition key and whose explicit hash key is the decimal of
    /// the first user record's [`UserRecord::hash_key`], so the aggregate
    /// routes to the shard its records were predicted for. The user records
    /// come back in the order they were added.
    pub fn take(&mut self) -> Option<(KinesisRecord, Vec<UserRecord>)> {
        let records = mem::take(&mut self.records);
        let kinesis_record = match records.as_slice() {
            [] => return None,
            [single] => KinesisRecord {
                partition_key: single.partition_key().to_owned(),
                explicit_hash_key: single.explicit_hash_key().map(|key| key.to_string()),
                data: single.data().clone(),
                user_record_count: 1,
                aggregated: false,
            },
            [first, ..] => KinesisRecord {
                partition_key: first.partition_key().to_owned(),
                explicit_hash_key: Some(first.hash_key().to_string()),
                data: self.encode(&records),
                user_record_count: records.len(),
                aggregated: true,
            },
        };
        self.reset();
        Some((kinesis_record, records))
    }

    /// Where `record`'s keys would go and how many bytes it would add.
    fn place(&self, record: &UserRecord) -> Placement {
        let partition_key = record.partition_key();
        // Runs of one key are common (one hot key per shard); comparing with
        // the last record is cheaper than hashing.
        let (partition_key_index, new_partition_key_hash) = match self.records.last() {
            Some(last) if last.partition_key() == partition_key => {
                (self.indexes[self.indexes.len() - 1].partition_key, None)
            }
            _ => {
                let hash = self.partition_keys.hash(partition_key);
                match self.partition_keys.find(partition_key, hash, &self.records) {
                    Some(index) => (index, None),
                    None => (self.partition_keys.len(), Some(hash)),
                }
            }
        };
        let mut added_len = 0;
        if new_partition_key_hash.is_some() {
            added_len += table_entry_len(partition_key.len());
        }
        let explicit_hash_key_slot =
            record
                .explicit_hash_key()
                .map(|key| match self.explicit_hash_key_index.get(&key) {
                    Some(&index) => KeySlot {
                        index,
                        is_new: false,
                    },
                    None => {
                        added_len += table_entry_len(decimal_len(key));
                        KeySlot {
                            index: self.explicit_hash_keys.len(),
                            is_new: true,
                        }
                    }
                });
        let body_len = record_body_len(
            partition_key_index,
            explicit_hash_key_slot.map(|slot| slot.index),
            record.data().len(),
        );
        added_len += record_field_len(body_len);
        Placement {
            partition_key_index,
            new_partition_key_hash,
            explicit_hash_key: explicit_hash_key_slot,
            added_len,
        }
    }

    /// Encodes the held records (passed in because `take` has already moved
    /// them out) into one exactly-sized buffer: magic, key tables, records,
    /// then the MD5 of the protobuf part.
    fn encode(&self, records: &[UserRecord]) -> Bytes {
        let total_len = AGGREGATE_OVERHEAD + self.protobuf_len;
        let mut out = Vec::with_capacity(total_len);
        out.extend_from_slice(&MAGIC);
        for &position in self.partition_keys.first_records() {
            let key = records[position].partition_key();
            put_table_entry(PARTITION_KEY_TABLE_TAG, key.as_bytes(), &mut out);
        }
        for &key in &self.explicit_hash_keys {
            put_decimal_table_entry(key, &mut out);
        }
        for (record, indexes) in records.iter().zip(&self.indexes) {
            let data = record.data();
            let body_len =
                record_body_len(indexes.partition_key, indexes.explicit_hash_key, data.len());
            put_record(
                body_len,
                indexes.partition_key,
                indexes.explicit_hash_key,
                data,
                &mut out,
            );
        }
        debug_assert_eq!(
            out.len() + DIGEST_LEN,
            total_len,
            "incremental size disagrees with the encoding"
        );
        let digest = Md5::digest(&out[MAGIC.len()..]);
        out.extend_from_slice(&digest);
        debug_assert_eq!(out.len(), total_len);
        Bytes::from(out)
    }

    /// Empties the tables, keeping their capacity for the next aggregate.
    fn reset(&mut self) {
        self.records.clear();
        self.indexes.clear();
        self.partition_keys.clear();
        self.explicit_hash_key_index.clear();
        self.explicit_hash_keys.clear();
        self.protobuf_len = 0;
    }
}

impl fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aggregator")
            .field("max_size", &self.max_size)
            .field("max_count", &self.max_count)
            .field("records", &self.records.len())
            .field("partition_keys", &self.partition_keys.len())
            .field("explicit_hash_keys", &self.explicit_hash_keys.len())
            .field("size", &self.size())
            .finish()
    }
}

/// Packs `records`, in order, into as few Kinesis records as the limits
/// allow, for callers without a producer.
///
/// It does not group by shard: every record in one call should be
/// predicted for the same shard (see [`Aggregator`]).
pub fn aggregate_all(
    records: impl IntoIterator<Item = UserRecord>,
    max_size: usize,
    max_count: usize,
) -> Vec<KinesisRecord> {
    let mut aggregator = Aggregator::new(max_size, max_count);
    let mut out = Vec::new();
    for record in records {
        if let Err(record) = aggregator.try_add(record) {
            out.extend(aggregator.take().map(|(kinesis_record, _)| kinesis_record));
            aggregator
                .try_add(record)
                .expect("an empty aggregator accepts any record");
        }
    }
    out.extend(aggregator.take().map(|(kinesis_record, _)| kinesis_record));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::decode_aggregate;
    use crate::hash::partition_key_hash;

    const KNOWN_ANSWER_HEX: &str = concat!(
        "f3899ac2",
        // partition_key_table: "a", "b"; explicit_hash_key_table: "5"
        "0a01610a0162120135",
        // records: {pk 0, "x"}, {pk 1, ehk 0, "yz"}, {pk 0, ""}
        "1a0508001a0178",
        "1a08080110001a02797a",
        "1a0408001a00",
        // md5 of the protobuf part (computed with Python's hashlib)
        "c7dc72342186d6cc9b1a780fcca23f85",
    );

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_answer_vector() {
        let mut aggregator = Aggregator::new(usize::MAX, usize::MAX);
        aggregator.try_add(UserRecord::new("a", "x")).unwrap();
        aggregator
            .try_add(UserRecord::new("b", "yz").with_explicit_hash_key(5))
            .unwrap();
        aggregator.try_add(UserRecord::new("a", "")).unwrap();
        assert_eq!(aggregator.size(), KNOWN_ANSWER_HEX.len() / 2);
        let (kinesis_record, user_records) = aggregator.take().unwrap();
        assert_eq!(hex(&kinesis_record.data), KNOWN_ANSWER_HEX);
        assert_eq!(kinesis_record.partition_key, "a");
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            kinesis_record.explicit_hash_key.as_deref(),
            Some("16955237001963240173058271559858726497")
        );
        assert_eq!(kinesis_record.user_record_count, 3);
        assert!(kinesis_record.aggregated);
        let keys: Vec<&str> = user_records.iter().map(|r| r.partition_key()).collect();
        assert_eq!(keys, ["a", "b", "a"]);
        assert!(aggregator.is_empty());
        assert_eq!(aggregator.size(), 0);
        assert!(aggregator.take().is_none());
    }

    #[test]
    fn aggregate_routes_by_the_first_records_hash_key() {
        let mut aggregator = Aggregator::new(usize::MAX, usize::MAX);
        aggregator
            .try_add(UserRecord::new("p", "1").with_explicit_hash_key(u128::MAX))
            .unwrap();
        aggregator.try_add(UserRecord::new("q", "2")).unwrap();
        let (kinesis_record, _) = aggregator.take().unwrap();
        assert_eq!(kinesis_record.partition_key, "p");
        assert_eq!(
            kinesis_record.explicit_hash_key,
            Some(u128::MAX.to_string())
        );
        let back = decode_aggregate(&kinesis_record.data).unwrap();
        assert_eq!(back[0].explicit_hash_key, Some(u128::MAX.to_string()));
        // Only caller-supplied keys go into the table.
        assert_eq!(back[1].explicit_hash_key, None);
        assert_eq!(back[1].hash_key().unwrap(), partition_key_hash("q"));
    }

    #[test]
    fn a_lone_record_goes_out_raw() {
        let mut aggregator = Aggregator::new(100, 10);
        aggregator
            .try_add(UserRecord::new("k", "payload").with_explicit_hash_key(0))
            .unwrap();
        let (kinesis_record, user_records) = aggregator.take().unwrap();
        assert!(!kinesis_record.aggregated);
        assert_eq!(kinesis_record.data, "payload");
        assert_eq!(kinesis_record.partition_key, "k");
        assert_eq!(kinesis_record.explicit_hash_key.as_deref(), Some("0"));
        assert_eq!(kinesis_record.billed_size(), 8);
        assert_eq!(user_records.len(), 1);

        aggregator.try_add(UserRecord::new("k", "x")).unwrap();
        let (kinesis_record, _) = aggregator.take().unwrap();
        assert_eq!(kinesis_record.explicit_hash_key, None);
    }

    #[test]
    fn limits_are_exact_and_an_empty_aggregator_takes_anything() {
        let mut aggregator = Aggregator::new(10, 0);
        let huge = UserRecord::new("k", vec![0u8; 1000]);
        assert!(aggregator.size_with(&huge) > 10);
        aggregator.try_add(huge).unwrap();
        assert!(aggregator.try_add(UserRecord::new("k", "")).is_err());

        let first = UserRecord::new("k", "abc");
        let second = UserRecord::new("k", "defg");
        let mut probe = Aggregator::new(usize::MAX, usize::MAX);
        probe.try_add(first.clone()).unwrap();
        let exact = probe.size_with(&second);

        let mut at_limit = Aggregator::new(exact, 2);
        at_limit.try_add(first.clone()).unwrap();
        at_limit.try_add(second.clone()).unwrap();
        assert_eq!(at_limit.size(), exact);
        assert_eq!(at_limit.take().unwrap().0.data.len(), exact);

        let mut one_short = Aggregator::new(exact - 1, 2);
        one_short.try_add(first.clone()).unwrap();
        let refused = one_short.try_add(second.clone()).unwrap_err();
        assert_eq!(refused, second);
        assert_eq!(one_short.len(), 1);

        let mut count_limited = Aggregator::new(usize::MAX, 2);
        count_limited.try_add(first.clone()).unwrap();
        count_limited.try_add(first.clone()).unwrap();
        assert!(count_limited.try_add(first).is_err());
    }

    #[test]
    fn keys_are_deduplicated_and_size_tracks_every_add() {
        let mut aggregator = Aggregator::new(usize::MAX, usize::MAX);
        let records = [
            UserRecord::new("a", "1"),
            UserRecord::new("b", "2").with_explicit_hash_key(7),
            UserRecord::new("a", "3").with_explicit_hash_key(7),
            UserRecord::new("a", "4"),
            UserRecord::new("c", "5").with_explicit_hash_key(8),
        ];
        for record in records.iter().cloned() {
            let predicted = aggregator.size_with(&record);
            aggregator.try_add(record).unwrap();
            assert_eq!(aggregator.size(), predicted);
        }
        let size = aggregator.size();
        let (kinesis_record, _) = aggregator.take().unwrap();
        assert_eq!(kinesis_record.data.len(), size);
        let message = <crate::aggregation::format::AggregatedRecord as prost::Message>::decode(
            kinesis_record.data.slice(4..size - 16),
        )
        .unwrap();
        assert_eq!(message.partition_key_table, ["a", "b", "c"]);
        assert_eq!(message.explicit_hash_key_table, ["7", "8"]);
        let indexes: Vec<_> = message
            .records
            .iter()
            .map(|r| (r.partition_key_index, r.explicit_hash_key_index))
            .collect();
        assert_eq!(
            indexes,
            [
                (0, None),
                (1, Some(0)),
                (0, Some(0)),
                (0, None),
                (2, Some(1))
            ]
        );
    }

    #[test]
    fn aggregate_all_packs_in_order() {
        let records: Vec<_> = (0..100)
            .map(|i| UserRecord::new(format!("key-{}", i % 7), vec![i as u8; 50]))
            .collect();
        let out = aggregate_all(records.clone(), 1000, 500);
        assert!(out.len() > 1);
        let mut back = Vec::new();
        for kinesis_record in &out {
            assert!(kinesis_record.data.len() <= 1000);
            back.extend(
                crate::aggregation::deaggregate(
                    &kinesis_record.partition_key,
                    kinesis_record.explicit_hash_key.as_deref(),
                    &kinesis_record.data,
                )
                .unwrap(),
            );
        }
        assert_eq!(back.len(), 100);
        for (original, decoded) in records.iter().zip(&back) {
            assert_eq!(decoded.partition_key, original.partition_key());
            assert_eq!(&decoded.data, original.data());
        }
        assert!(aggregate_all(Vec::new(), 1000, 500).is_empty());
    }

    #[test]
    fn debug_shows_no_keys_or_payload() {
        let mut aggregator = Aggregator::new(1000, 10);
        aggregator
            .try_add(UserRecord::new("secret-key", "secret-data"))
            .unwrap();
        aggregator
            .try_add(UserRecord::new("secret-key2", "secret-data"))
            .unwrap();
        assert!(!format!("{aggregator:?}").contains("secret"));
        let (kinesis_record, _) = aggregator.take().unwrap();
        assert!(!format!("{kinesis_record:?}").contains("secret"));
    }
}
