//! Reading KPL aggregates back into user records (consumers, tests,
//! examples).

use std::fmt;

use bytes::Bytes;
use md5::{Digest, Md5};
use prost::Message;

use super::format::{AGGREGATE_OVERHEAD, AggregatedRecord, DIGEST_LEN, MAGIC};
use crate::error::{Error, Result};
use crate::hash::{parse_explicit_hash_key, partition_key_hash};

/// One user record recovered from a Kinesis record.
///
/// `Debug` prints lengths, never keys or payload.
#[derive(Clone, PartialEq, Eq)]
pub struct DeaggregatedRecord {
    /// The user record's partition key.
    pub partition_key: String,
    /// The user record's explicit hash key (decimal), if it had one.
    pub explicit_hash_key: Option<String>,
    /// The payload; for an aggregate, a zero-copy slice of its data.
    pub data: Bytes,
}

impl DeaggregatedRecord {
    /// The key that routed this record: the explicit hash key if present,
    /// else MD5 of the partition key. Fails if the explicit hash key is not
    /// a valid decimal in `0..=2^128-1`.
    pub fn hash_key(&self) -> Result<u128> {
        match &self.explicit_hash_key {
            Some(key) => parse_explicit_hash_key(key),
            None => Ok(partition_key_hash(&self.partition_key)),
        }
    }
}

impl fmt::Debug for DeaggregatedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeaggregatedRecord")
            .field("partition_key_len", &self.partition_key.len())
            .field("explicit_hash_key", &self.explicit_hash_key.is_some())
            .field("data_len", &self.data.len())
            .finish()
    }
}

/// Recovers the user records of one Kinesis record, as a consumer sees it.
///
/// Data that does not start with [`MAGIC`] is a plain record and passes
/// through as one record with the Kinesis record's own keys. Data that
/// starts with the magic must be a valid aggregate; a bad digest, a short or
/// malformed message, or a key index outside its table is
/// [`Error::InvalidAggregate`].
///
/// This is stricter than the KCL and `aws-kinesis-agg`, which pass a
/// damaged aggregate through as one opaque record: a producer's test suite
/// wants to hear about damage, not receive it as data.
pub fn deaggregate(
    partition_key: &str,
    explicit_hash_key: Option<&str>,
    data: &Bytes,
) -> Result<Vec<DeaggregatedRecord>> {
    if !data.starts_with(&MAGIC) {
        return Ok(vec![DeaggregatedRecord {
            partition_key: partition_key.to_owned(),
            explicit_hash_key: explicit_hash_key.map(str::to_owned),
            data: data.clone(),
        }]);
    }
    decode_aggregate(data)
}

/// Decodes a KPL aggregate, requiring the magic (unlike [`deaggregate`],
/// which passes non-aggregates through).
pub fn decode_aggregate(data: &Bytes) -> Result<Vec<DeaggregatedRecord>> {
    let invalid = |message: String| Error::InvalidAggregate(message);
    if !data.starts_with(&MAGIC) {
        return Err(invalid(
            "data does not start with the magic bytes f3 89 9a c2".into(),
        ));
    }
    if data.len() < AGGREGATE_OVERHEAD {
        return Err(invalid(format!(
            "aggregate is {} bytes; the magic and the md5 digest alone take {AGGREGATE_OVERHEAD}",
            data.len()
        )));
    }
    let digest_start = data.len() - DIGEST_LEN;
    let message = data.slice(MAGIC.len()..digest_start);
    if Md5::digest(&message)[..] != data[digest_start..] {
        return Err(invalid(
            "md5 digest does not match the protobuf message (damaged or truncated)".into(),
        ));
    }
    // Decoding from `Bytes` makes every record's data a slice of `data`.
    let aggregate = AggregatedRecord::decode(message)
        .map_err(|error| invalid(format!("malformed protobuf message: {error}")))?;

    let partition_keys = &aggregate.partition_key_table;
    let explicit_hash_keys = &aggregate.explicit_hash_key_table;
    let mut out = Vec::with_capacity(aggregate.records.len());
    for (position, record) in aggregate.records.into_iter().enumerate() {
        let partition_key = usize::try_from(record.partition_key_index)
            .ok()
            .and_then(|index| partition_keys.get(index))
            .ok_or_else(|| {
                invalid(format!(
                    "record {position} has partition key index {} but the table has {} keys",
                    record.partition_key_index,
                    partition_keys.len()
                ))
            })?;
        let explicit_hash_key = match record.explicit_hash_key_index {
            None => None,
            Some(index) => Some(
                usize::try_from(index)
                    .ok()
                    .and_then(|index| explicit_hash_keys.get(index))
                    .ok_or_else(|| {
                        invalid(format!(
                            "record {position} has explicit hash key index {index} but the table has {} keys",
                            explicit_hash_keys.len()
                        ))
                    })?
                    .clone(),
            ),
        };
        out.push(DeaggregatedRecord {
            partition_key: partition_key.clone(),
            explicit_hash_key,
            data: record.data,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregation::format::{Record, Tag};

    /// Frames `message` as an aggregate with a correct digest.
    fn frame(message: &[u8]) -> Bytes {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(message);
        out.extend_from_slice(&Md5::digest(message));
        Bytes::from(out)
    }

    fn expect_invalid(result: Result<Vec<DeaggregatedRecord>>, needle: &str) {
        match result {
            Err(Error::InvalidAggregate(message)) => {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}")
            }
            other => panic!("expected InvalidAggregate({needle}), got {other:?}"),
        }
    }

    fn sample() -> AggregatedRecord {
        AggregatedRecord {
            partition_key_table: vec!["a".into(), "b".into()],
            explicit_hash_key_table: vec!["42".into()],
            records: vec![
                Record {
                    partition_key_index: 1,
                    explicit_hash_key_index: None,
                    data: Bytes::from_static(b"one"),
                    tags: vec![],
                },
                Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: Some(0),
                    data: Bytes::from_static(b"two"),
                    tags: vec![Tag {
                        key: "t".into(),
                        value: None,
                    }],
                },
            ],
        }
    }

    #[test]
    fn decodes_records_with_their_keys_and_ignores_tags() {
        let data = frame(&sample().encode_to_vec());
        let records = decode_aggregate(&data).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].partition_key, "b");
        assert_eq!(records[0].explicit_hash_key, None);
        assert_eq!(records[0].data, "one");
        assert_eq!(records[1].partition_key, "a");
        assert_eq!(records[1].explicit_hash_key.as_deref(), Some("42"));
        assert_eq!(records[1].hash_key().unwrap(), 42);
        // Zero copy: the payload points into the aggregate's buffer.
        let range = data.as_ptr_range();
        assert!(range.contains(&records[1].data.as_ptr()));
        assert_eq!(deaggregate("outer", Some("1"), &data).unwrap(), records);
    }

    #[test]
    fn plain_data_passes_through_with_the_outer_keys() {
        for data in [
            Bytes::new(),
            Bytes::from_static(b"\xf3\x89\x9a"),
            Bytes::from_static(b"hello"),
        ] {
            let records = deaggregate("pk", Some("9"), &data).unwrap();
            assert_eq!(
                records,
                [DeaggregatedRecord {
                    partition_key: "pk".into(),
                    explicit_hash_key: Some("9".into()),
                    data: data.clone(),
                }]
            );
            expect_invalid(decode_aggregate(&data), "magic");
        }
    }

    #[test]
    fn an_empty_aggregate_has_no_records() {
        assert_eq!(decode_aggregate(&frame(&[])).unwrap(), []);
    }

    #[test]
    fn each_kind_of_damage_is_named() {
        let good = frame(&sample().encode_to_vec());

        // Shorter than magic + digest.
        expect_invalid(deaggregate("k", None, &good.slice(..19)), "19 bytes");
        expect_invalid(
            deaggregate("k", None, &Bytes::from_static(&MAGIC)),
            "4 bytes",
        );

        // Any flipped bit in message or digest, or a cut-off tail.
        let mut flipped = good.to_vec();
        flipped[6] ^= 1;
        expect_invalid(deaggregate("k", None, &flipped.into()), "digest");
        let mut bad_digest = good.to_vec();
        *bad_digest.last_mut().unwrap() ^= 0x80;
        expect_invalid(deaggregate("k", None, &bad_digest.into()), "digest");
        expect_invalid(
            deaggregate("k", None, &good.slice(..good.len() - 1)),
            "digest",
        );

        // A truncated message with a digest that matches it.
        let message = sample().encode_to_vec();
        let truncated = frame(&message[..message.len() - 2]);
        expect_invalid(deaggregate("k", None, &truncated), "malformed protobuf");
        // Garbage that is not protobuf at all (wire type 7 does not exist).
        expect_invalid(deaggregate("k", None, &frame(&[0x0f, 0x00])), "malformed");

        // Indexes outside their tables.
        let mut bad_partition_key = sample();
        bad_partition_key.records[0].partition_key_index = 2;
        expect_invalid(
            deaggregate("k", None, &frame(&bad_partition_key.encode_to_vec())),
            "record 0 has partition key index 2 but the table has 2 keys",
        );
        let mut bad_explicit = sample();
        bad_explicit.records[1].explicit_hash_key_index = Some(1);
        expect_invalid(
            deaggregate("k", None, &frame(&bad_explicit.encode_to_vec())),
            "record 1 has explicit hash key index 1 but the table has 1 keys",
        );
        let mut huge_index = sample();
        huge_index.records[1].partition_key_index = u64::MAX;
        expect_invalid(
            deaggregate("k", None, &frame(&huge_index.encode_to_vec())),
            "partition key index 18446744073709551615",
        );
    }

    #[test]
    fn hash_key_rejects_a_bad_explicit_key() {
        let record = DeaggregatedRecord {
            partition_key: "a".into(),
            explicit_hash_key: Some("01".into()),
            data: Bytes::new(),
        };
        assert!(matches!(
            record.hash_key(),
            Err(Error::InvalidExplicitHashKey { .. })
        ));
        let shown = format!(
            "{:?}",
            DeaggregatedRecord {
                partition_key: "secret".into(),
                explicit_hash_key: None,
                data: Bytes::from_static(b"secret"),
            }
        );
        assert!(!shown.contains("secret"));
    }
}
