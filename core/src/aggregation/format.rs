//! The KPL aggregated-record wire format: schema, constants and exact size
//! arithmetic.
//!
//! An aggregate is `MAGIC ‖ protobuf(AggregatedRecord) ‖ MD5(protobuf)`. The
//! schema below is the KPL's `messages.proto` (proto2), written as prost
//! derive structs so no `protoc` step is needed. The structs are the schema
//! for *decoding*; the aggregator encodes by hand (same bytes, no
//! intermediate copies) and the unit tests prove the two agree byte for byte.

use std::fmt;

use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// The four bytes every KPL aggregate starts with.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Length of the MD5 digest that ends every aggregate.
pub const DIGEST_LEN: usize = 16;

/// Bytes an aggregate adds around its protobuf message: magic plus digest.
pub const AGGREGATE_OVERHEAD: usize = MAGIC.len() + DIGEST_LEN;

/// Field numbers of `AggregatedRecord`.
pub(crate) const PARTITION_KEY_TABLE_TAG: u32 = 1;
pub(crate) const EXPLICIT_HASH_KEY_TABLE_TAG: u32 = 2;
pub(crate) const RECORDS_TAG: u32 = 3;
/// Field numbers of `Record`.
pub(crate) const PARTITION_KEY_INDEX_TAG: u32 = 1;
pub(crate) const EXPLICIT_HASH_KEY_INDEX_TAG: u32 = 2;
pub(crate) const DATA_TAG: u32 = 3;

/// `message AggregatedRecord` of the KPL format.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct AggregatedRecord {
    /// Distinct partition keys of the records, referenced by index.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Distinct explicit hash keys (decimal strings), referenced by index.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records, in the order they were added.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<Record>,
}

/// `message Record` of the KPL format: one user record inside an aggregate.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct Record {
    /// Index into [`AggregatedRecord::partition_key_table`].
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into [`AggregatedRecord::explicit_hash_key_table`], present
    /// only when the caller supplied an explicit hash key.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The payload; a zero-copy slice of the aggregate when decoded from
    /// [`Bytes`].
    #[prost(bytes = "bytes", required, tag = "3")]
    pub data: Bytes,
    /// KPL tags; unused by Shardline and by every known consumer.
    #[prost(message, repeated, tag = "4")]
    pub tags: Vec<Tag>,
}

/// `message Tag` of the KPL format.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct Tag {
    /// Tag name.
    #[prost(string, required, tag = "1")]
    pub key: String,
    /// Tag value.
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

impl fmt::Debug for AggregatedRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregatedRecord")
            .field("partition_keys", &self.partition_key_table.len())
            .field("explicit_hash_keys", &self.explicit_hash_key_table.len())
            .field("records", &self.records.len())
            .finish()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("partition_key_index", &self.partition_key_index)
            .field("explicit_hash_key_index", &self.explicit_hash_key_index)
            .field("data_len", &self.data.len())
            .field("tags", &self.tags.len())
            .finish()
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tag")
            .field("key_len", &self.key.len())
            .field("has_value", &self.value.is_some())
            .finish()
    }
}

// ---- size arithmetic ------------------------------------------------------
//
// Every tag used here is below 16, so each field key is one byte.

/// Encoded length of a varint.
#[inline]
pub(crate) fn varint_len(value: usize) -> usize {
    encoded_len_varint(value as u64)
}

/// Bytes one entry of a key table adds to the message: key, length, string.
#[inline]
pub(crate) fn table_entry_len(key_len: usize) -> usize {
    1 + varint_len(key_len) + key_len
}

/// Length of a `Record` message body (without its own key and length).
#[inline]
pub(crate) fn record_body_len(
    partition_key_index: usize,
    explicit_hash_key_index: Option<usize>,
    data_len: usize,
) -> usize {
    1 + varint_len(partition_key_index)
        + explicit_hash_key_index.map_or(0, |index| 1 + varint_len(index))
        + 1
        + varint_len(data_len)
        + data_len
}

/// Bytes one `Record` adds to the message, framing included.
#[inline]
pub(crate) fn record_field_len(body_len: usize) -> usize {
    1 + varint_len(body_len) + body_len
}

/// Number of decimal digits of `value` (the length of an explicit hash key
/// in the table).
#[inline]
pub(crate) fn decimal_len(value: u128) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

// ---- hand encoding --------------------------------------------------------

/// Appends one key-table entry (`tag` is 1 or 2).
#[inline]
pub(crate) fn put_table_entry(tag: u32, key: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(key.len() as u64, out);
    out.extend_from_slice(key);
}

/// Appends one explicit-hash-key table entry, formatting the decimal without
/// a heap allocation.
#[inline]
pub(crate) fn put_decimal_table_entry(value: u128, out: &mut Vec<u8>) {
    let mut digits = [0u8; 39]; // u128::MAX has 39 digits
    let text = format_decimal(value, &mut digits);
    put_table_entry(EXPLICIT_HASH_KEY_TABLE_TAG, text, out);
}

/// Writes `value` in decimal at the end of `buf` and returns that slice.
fn format_decimal(mut value: u128, buf: &mut [u8; 39]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[start..];
        }
    }
}

/// Appends one `Record` field; `body_len` must come from
/// [`record_body_len`] with the same arguments.
#[inline]
pub(crate) fn put_record(
    body_len: usize,
    partition_key_index: usize,
    explicit_hash_key_index: Option<usize>,
    data: &[u8],
    out: &mut Vec<u8>,
) {
    encode_key(RECORDS_TAG, WireType::LengthDelimited, out);
    encode_varint(body_len as u64, out);
    encode_key(PARTITION_KEY_INDEX_TAG, WireType::Varint, out);
    encode_varint(partition_key_index as u64, out);
    if let Some(index) = explicit_hash_key_index {
        encode_key(EXPLICIT_HASH_KEY_INDEX_TAG, WireType::Varint, out);
        encode_varint(index as u64, out);
    }
    encode_key(DATA_TAG, WireType::LengthDelimited, out);
    encode_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn decimal_lengths_match_formatting() {
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            u64::MAX as u128,
            u128::MAX - 1,
            u128::MAX,
        ] {
            let mut buf = [0u8; 39];
            let text = format_decimal(value, &mut buf);
            assert_eq!(text, value.to_string().as_bytes());
            assert_eq!(decimal_len(value), text.len());
        }
        for power in 0..39 {
            let value = 10u128.pow(power);
            assert_eq!(decimal_len(value), power as usize + 1);
            assert_eq!(decimal_len(value - 1), (power as usize).max(1));
        }
    }

    #[test]
    fn hand_encoding_matches_prost_and_the_size_arithmetic() {
        let message = AggregatedRecord {
            partition_key_table: vec!["a".into(), "ключ".into(), "k".repeat(200)],
            explicit_hash_key_table: vec!["0".into(), u128::MAX.to_string()],
            records: vec![
                Record {
                    partition_key_index: 0,
                    explicit_hash_key_index: None,
                    data: Bytes::from_static(b"x"),
                    tags: vec![],
                },
                Record {
                    partition_key_index: 2,
                    explicit_hash_key_index: Some(1),
                    data: Bytes::from(vec![7u8; 300]),
                    tags: vec![],
                },
                Record {
                    partition_key_index: 1,
                    explicit_hash_key_index: Some(0),
                    data: Bytes::new(),
                    tags: vec![],
                },
            ],
        };
        let by_prost = message.encode_to_vec();

        let mut by_hand = Vec::new();
        let mut predicted = 0;
        for key in &message.partition_key_table {
            put_table_entry(PARTITION_KEY_TABLE_TAG, key.as_bytes(), &mut by_hand);
            predicted += table_entry_len(key.len());
        }
        for key in [0, u128::MAX] {
            put_decimal_table_entry(key, &mut by_hand);
            predicted += table_entry_len(decimal_len(key));
        }
        for record in &message.records {
            let pk = record.partition_key_index as usize;
            let ehk = record.explicit_hash_key_index.map(|i| i as usize);
            let body = record_body_len(pk, ehk, record.data.len());
            put_record(body, pk, ehk, &record.data, &mut by_hand);
            predicted += record_field_len(body);
        }
        assert_eq!(by_hand, by_prost);
        assert_eq!(predicted, by_prost.len());
        assert_eq!(message.encoded_len(), by_prost.len());
    }

    #[test]
    fn debug_shows_no_payload() {
        let record = Record {
            partition_key_index: 0,
            explicit_hash_key_index: None,
            data: Bytes::from_static(b"secret"),
            tags: vec![],
        };
        assert!(!format!("{record:?}").contains("secret"));
    }
}
