//! Wire shapes of the `Kinesis_20131202` API: the JSON inputs and outputs
//! that several operations share, those of PutRecord and PutRecords, the
//! opaque shard iterators and pagination tokens, and the helpers that
//! validate members the way AWS does (with its messages). Inputs borrow
//! from the request body (`Cow` falls back to an owned string only when
//! JSON escapes force it). Inputs read by a single other operation are
//! declared inside it.
//!
//! Kept apart from the model so that what clients see (member names,
//! string forms, constraint messages) is in one place, and apart from the
//! operations so that they read as logic.

use std::borrow::Cow;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::model::{SeqNo, Shard};
use crate::errors::ApiError;
use crate::protocol::BASE64;

/// Longest stream name.
pub(super) const MAX_STREAM_NAME_CHARS: usize = 128;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct HashKeyRange {
    starting_hash_key: String,
    ending_hash_key: String,
}

impl HashKeyRange {
    pub(super) fn of(shard: &Shard) -> Self {
        HashKeyRange {
            starting_hash_key: shard.start.to_string(),
            ending_hash_key: shard.end.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct SequenceNumberRange {
    starting_sequence_number: SeqNo,
    #[serde(skip_serializing_if = "Option::is_none")]
    ending_sequence_number: Option<SeqNo>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ShardJson<'a> {
    shard_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_shard_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    adjacent_parent_shard_id: Option<&'a str>,
    hash_key_range: HashKeyRange,
    sequence_number_range: SequenceNumberRange,
}

impl Shard {
    /// The shard as DescribeStream and ListShards show it.
    pub(super) fn describe(&self) -> ShardJson<'_> {
        ShardJson {
            shard_id: &self.id,
            parent_shard_id: self.parent.as_deref(),
            adjacent_parent_shard_id: self.adjacent_parent.as_deref(),
            hash_key_range: HashKeyRange::of(self),
            sequence_number_range: SequenceNumberRange {
                starting_sequence_number: self.starting_seq,
                ending_sequence_number: self.log.lock().closed.as_ref().map(|c| c.ending_seq),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ChildShardJson<'a> {
    pub(super) shard_id: &'a str,
    pub(super) parent_shards: Vec<&'a str>,
    pub(super) hash_key_range: HashKeyRange,
}

/// Every operation names its stream by `StreamName` or `StreamARN`.
#[derive(Deserialize, Default)]
pub(super) struct StreamRef<'a> {
    #[serde(rename = "StreamName", borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    pub(super) arn: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct PutRecordsEntry<'a> {
    /// Base64 text, read as bytes: see [`decode_blob`](crate::protocol::decode_blob).
    #[serde(rename = "Data", borrow)]
    pub(super) data: Cow<'a, [u8]>,
    #[serde(rename = "PartitionKey", borrow)]
    pub(super) partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow)]
    pub(super) explicit_hash_key: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
pub(super) struct PutRecordsInput<'a> {
    #[serde(rename = "StreamName", borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    pub(super) arn: Option<Cow<'a, str>>,
    #[serde(rename = "Records", borrow)]
    pub(super) records: Vec<PutRecordsEntry<'a>>,
}

#[derive(Deserialize)]
pub(super) struct PutRecordInput<'a> {
    #[serde(rename = "StreamName", borrow)]
    pub(super) name: Option<Cow<'a, str>>,
    #[serde(rename = "StreamARN", borrow)]
    pub(super) arn: Option<Cow<'a, str>>,
    /// Base64 text, read as bytes: see [`decode_blob`](crate::protocol::decode_blob).
    #[serde(rename = "Data", borrow)]
    pub(super) data: Cow<'a, [u8]>,
    #[serde(rename = "PartitionKey", borrow)]
    pub(super) partition_key: Cow<'a, str>,
    #[serde(rename = "ExplicitHashKey", borrow)]
    pub(super) explicit_hash_key: Option<Cow<'a, str>>,
}

/// One PutRecords result, in request order.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum PutResult<'a> {
    Ok {
        #[serde(rename = "SequenceNumber")]
        sequence_number: SeqNo,
        #[serde(rename = "ShardId")]
        shard_id: &'a str,
    },
    Failed {
        #[serde(rename = "ErrorCode")]
        error_code: &'static str,
        #[serde(rename = "ErrorMessage")]
        error_message: String,
    },
}

/// A shard iterator: stream, shard number and position, base64-encoded so
/// that clients treat it as opaque.
pub(super) struct ShardIterator<'a> {
    pub(super) stream: Cow<'a, str>,
    pub(super) shard: usize,
    pub(super) position: u64,
}

impl ShardIterator<'_> {
    pub(super) fn encode(&self) -> String {
        BASE64.encode(format!("{}/{}/{}", self.stream, self.shard, self.position))
    }

    pub(super) fn decode(text: &str) -> Option<ShardIterator<'static>> {
        let raw = String::from_utf8(BASE64.decode(text).ok()?).ok()?;
        let mut parts = raw.split('/');
        let stream = parts.next()?.to_owned();
        let shard = parts.next()?.parse().ok()?;
        let position = parts.next()?.parse().ok()?;
        parts.next().is_none().then_some(ShardIterator {
            stream: Cow::Owned(stream),
            shard,
            position,
        })
    }
}

/// Pagination token of ListShards / ListStreams: an opaque offset.
pub(super) fn encode_token(scope: &str, offset: usize) -> String {
    BASE64.encode(format!("{scope}/{offset}"))
}

pub(super) fn decode_token(token: &str) -> Option<(String, usize)> {
    let raw = String::from_utf8(BASE64.decode(token).ok()?).ok()?;
    let (scope, offset) = raw.rsplit_once('/')?;
    Some((scope.to_owned(), offset.parse().ok()?))
}

pub(super) fn is_valid_stream_name(name: &str) -> bool {
    (1..=MAX_STREAM_NAME_CHARS).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// AWS's pattern for explicit hash keys: `0|([1-9]\d{0,38})`.
pub(super) fn matches_hash_key_pattern(key: &str) -> bool {
    key == "0"
        || (!key.is_empty()
            && key.len() <= 39
            && !key.starts_with('0')
            && key.bytes().all(|b| b.is_ascii_digit()))
}

pub(super) fn limit_value(
    value: Option<i64>,
    name: &str,
    max: i64,
    default: usize,
) -> Result<usize, ApiError> {
    match value {
        None => Ok(default),
        Some(v) if v < 1 => Err(ApiError::validation_list(&[format!(
            "Value '{v}' at '{name}' failed to satisfy constraint: Member must have value greater than or equal to 1"
        )])),
        Some(v) if v > max => Err(ApiError::validation_list(&[format!(
            "Value '{v}' at '{name}' failed to satisfy constraint: Member must have value less than or equal to {max}"
        )])),
        Some(v) => Ok(v as usize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_key_pattern_is_aws_regex() {
        assert!(matches_hash_key_pattern("0"));
        assert!(matches_hash_key_pattern(&u128::MAX.to_string()));
        assert!(!matches_hash_key_pattern("01"));
        assert!(!matches_hash_key_pattern("-1"));
        assert!(!matches_hash_key_pattern(""));
        assert!(!matches_hash_key_pattern(&"9".repeat(40)));
    }

    #[test]
    fn iterators_are_opaque_but_decodable() {
        let it = ShardIterator {
            stream: Cow::Borrowed("s.1"),
            shard: 3,
            position: 77,
        };
        let back = ShardIterator::decode(&it.encode()).unwrap();
        assert_eq!(
            (back.stream.as_ref(), back.shard, back.position),
            ("s.1", 3, 77)
        );
        assert!(ShardIterator::decode("garbage!").is_none());
    }
}
