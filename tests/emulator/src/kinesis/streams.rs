//! The control plane for streams: CreateStream, DeleteStream, ListStreams,
//! DescribeStream, DescribeStreamSummary and ListShards.
//!
//! Kept apart from the data plane (records) and from resharding: these
//! operations only read the topology, apart from adding or removing a
//! whole stream, and most of their code is paging and filtering.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::Kinesis;
use super::model::{Shard, Stream};
use super::wire::{
    MAX_STREAM_NAME_CHARS, StreamRef, decode_token, encode_token, is_valid_stream_name, limit_value,
};
use crate::errors::ApiError;
use crate::protocol::{epoch_seconds, parse_json, to_json};

impl Kinesis {
    pub(super) fn create_stream_op(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "StreamName", borrow)]
            name: Cow<'a, str>,
            #[serde(rename = "ShardCount")]
            shard_count: Option<i64>,
            #[serde(rename = "StreamModeDetails")]
            mode: Option<serde_json::Value>,
        }
        let input: Input<'_> = parse_json(body)?;
        if !is_valid_stream_name(&input.name) {
            return Err(ApiError::validation_list(&[format!(
                "Value '{}' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and {MAX_STREAM_NAME_CHARS}",
                input.name
            )]));
        }
        let on_demand = input
            .mode
            .as_ref()
            .and_then(|m| m.get("StreamMode"))
            .and_then(|m| m.as_str())
            == Some("ON_DEMAND");
        let shards = match input.shard_count {
            // On-demand streams start with four shards, as AWS's do.
            None if on_demand => 4,
            None => {
                return Err(ApiError::invalid_argument(
                    "ShardCount must be specified for a PROVISIONED stream",
                ));
            }
            Some(n) if !(1..=10_000).contains(&n) => {
                return Err(ApiError::validation_list(&[format!(
                    "Value '{n}' at 'shardCount' failed to satisfy constraint: Member must have value between 1 and 10000"
                )]));
            }
            Some(n) => n as u32,
        };
        if !self.create_stream(&input.name, shards) {
            return Err(ApiError::in_use(format!(
                "Stream {} under account {} already exists.",
                input.name, self.settings.account_id
            )));
        }
        Ok(b"{}".to_vec())
    }

    pub(super) fn delete_stream(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: StreamRef<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input)?;
        self.streams.write().remove(&stream.name);
        Ok(b"{}".to_vec())
    }

    pub(super) fn list_streams(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(rename = "Limit")]
            limit: Option<i64>,
            #[serde(rename = "ExclusiveStartStreamName", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
            #[serde(rename = "NextToken", borrow)]
            next_token: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = limit_value(input.limit, "limit", 10_000, 100)?;
        let after = match &input.next_token {
            Some(token) => Some(
                decode_token(token)
                    .map(|(name, _)| name)
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?,
            ),
            None => input.exclusive_start.map(Cow::into_owned),
        };
        let streams = self.streams.read();
        let selected: Vec<&Arc<Stream>> = streams
            .values()
            .filter(|s| after.as_deref().is_none_or(|a| s.name.as_str() > a))
            .take(limit + 1)
            .collect();
        let has_more = selected.len() > limit;
        let page = &selected[..selected.len().min(limit)];
        let summaries: Vec<_> = page
            .iter()
            .map(|s| {
                serde_json::json!({
                    "StreamName": s.name,
                    "StreamARN": s.arn,
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                    "StreamCreationTimestamp": epoch_seconds(s.created),
                })
            })
            .collect();
        let mut out = serde_json::json!({
            "StreamNames": page.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more,
            "StreamSummaries": summaries,
        });
        if has_more && let Some(last) = page.last() {
            out["NextToken"] = encode_token(&last.name, 0).into();
        }
        Ok(to_json(&out))
    }

    pub(super) fn describe_stream(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "Limit")]
            limit: Option<i64>,
            #[serde(rename = "ExclusiveStartShardId", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let limit = limit_value(input.limit, "limit", 10_000, 100)?;
        let stream = self.resolve_ref(&input.stream)?;
        let topology = stream.topology.read();
        let after: Vec<&Arc<Shard>> = topology
            .all
            .iter()
            .filter(|s| {
                input
                    .exclusive_start
                    .as_deref()
                    .is_none_or(|x| s.id.as_str() > x)
            })
            .collect();
        let shards: Vec<_> = after.iter().take(limit).map(|s| s.describe()).collect();
        Ok(to_json(&serde_json::json!({
            "StreamDescription": {
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                "Shards": shards,
                "HasMoreShards": after.len() > limit,
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": epoch_seconds(stream.created),
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
            }
        })))
    }

    pub(super) fn describe_stream_summary(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        let input: StreamRef<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input)?;
        Ok(to_json(&serde_json::json!({
            "StreamDescriptionSummary": {
                "StreamName": stream.name,
                "StreamARN": stream.arn,
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": { "StreamMode": "PROVISIONED" },
                "RetentionPeriodHours": 24,
                "StreamCreationTimestamp": epoch_seconds(stream.created),
                "EnhancedMonitoring": [{ "ShardLevelMetrics": [] }],
                "EncryptionType": "NONE",
                "OpenShardCount": stream.open_shard_count(),
                "ConsumerCount": 0,
            }
        })))
    }

    pub(super) fn list_shards(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Filter<'a> {
            #[serde(rename = "Type", borrow)]
            kind: Cow<'a, str>,
            #[serde(rename = "ShardId", borrow)]
            shard_id: Option<Cow<'a, str>>,
            #[serde(rename = "Timestamp")]
            timestamp: Option<f64>,
        }
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "NextToken", borrow)]
            next_token: Option<Cow<'a, str>>,
            #[serde(rename = "MaxResults")]
            max_results: Option<i64>,
            #[serde(rename = "ExclusiveStartShardId", borrow)]
            exclusive_start: Option<Cow<'a, str>>,
            #[serde(rename = "ShardFilter", borrow)]
            filter: Option<Filter<'a>>,
        }
        let input: Input<'_> = parse_json(body)?;
        let max = limit_value(input.max_results, "maxResults", 10_000, 1_000)?;
        let (stream, offset) = match &input.next_token {
            Some(token) => {
                if input.stream.name.is_some() || input.stream.arn.is_some() {
                    return Err(ApiError::invalid_argument(
                        "NextToken and StreamName cannot be provided together.",
                    ));
                }
                let (name, offset) = decode_token(token)
                    .ok_or_else(|| ApiError::invalid_argument("Invalid NextToken."))?;
                (self.resolve(Some(&name), None)?, offset)
            }
            None => (self.resolve_ref(&input.stream)?, 0),
        };
        let topology = stream.topology.read();
        let keep = |s: &Shard| -> Result<bool, ApiError> {
            if input
                .exclusive_start
                .as_deref()
                .is_some_and(|x| s.id.as_str() <= x)
            {
                return Ok(false);
            }
            let Some(filter) = &input.filter else {
                return Ok(true);
            };
            let closed_at = s.log.lock().closed.as_ref().map(|c| c.at);
            Ok(match &*filter.kind {
                "AT_LATEST" => closed_at.is_none(),
                // Everything is within retention here.
                "AT_TRIM_HORIZON" | "FROM_TRIM_HORIZON" => true,
                "AFTER_SHARD_ID" => {
                    let id = filter.shard_id.as_deref().ok_or_else(|| {
                        ApiError::invalid_argument(
                            "ShardId must be specified for the AFTER_SHARD_ID ShardFilter type.",
                        )
                    })?;
                    s.id.as_str() > id
                }
                "AT_TIMESTAMP" | "FROM_TIMESTAMP" => {
                    let ts = filter.timestamp.ok_or_else(|| {
                        ApiError::invalid_argument(
                            "Timestamp must be specified for this ShardFilter type.",
                        )
                    })?;
                    closed_at.is_none_or(|at| epoch_seconds(at) >= ts)
                }
                other => {
                    return Err(ApiError::validation_list(&[format!(
                        "Value '{other}' at 'shardFilter.type' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]"
                    )]));
                }
            })
        };
        let mut selected = Vec::new();
        for shard in &topology.all {
            if keep(shard)? {
                selected.push(shard);
            }
        }
        let page: Vec<_> = selected
            .iter()
            .skip(offset)
            .take(max)
            .map(|s| s.describe())
            .collect();
        let mut out = serde_json::json!({ "Shards": page });
        if offset + max < selected.len() {
            out["NextToken"] = encode_token(&stream.name, offset + max).into();
        }
        Ok(to_json(&out))
    }
}
