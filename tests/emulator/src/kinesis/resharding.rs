//! Resharding: UpdateShardCount, SplitShard and MergeShards. Each holds
//! the stream's topology lock in write mode, checks the request against
//! the open shards, then lets [`Stream::reshard`] close the parents and
//! open the children.
//!
//! Kept apart because these are the only operations that change a
//! stream's topology; the hash-range arithmetic itself is in the model.

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use super::Kinesis;
use super::model::{Shard, Stream, Topology, even_split};
use super::wire::StreamRef;
use crate::errors::ApiError;
use crate::protocol::{parse_json, to_json};

impl Kinesis {
    pub(super) fn update_shard_count(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "TargetShardCount")]
            target: i64,
            #[serde(rename = "ScalingType", borrow)]
            scaling_type: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        if input.scaling_type != "UNIFORM_SCALING" {
            return Err(ApiError::validation_list(&[format!(
                "Value '{}' at 'scalingType' failed to satisfy constraint: Member must satisfy enum value set: [UNIFORM_SCALING]",
                input.scaling_type
            )]));
        }
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let current = topology.open.len() as i64;
        let target = input.target;
        // AWS scales by at most a factor of two per call.
        if target < 1 || target > 2 * current || 2 * target < current {
            return Err(ApiError::limit_exceeded(format!(
                "UpdateShardCount can only scale between half and double the current open shard count ({current}); requested {target}."
            )));
        }
        if target != current {
            let parents = topology.open.clone();
            stream.reshard(&mut topology, &parents, &even_split(target as u32));
        }
        Ok(to_json(&serde_json::json!({
            "StreamName": stream.name,
            "StreamARN": stream.arn,
            "CurrentShardCount": current,
            "TargetShardCount": target,
        })))
    }

    fn open_shard<'t>(
        &self,
        topology: &'t Topology,
        stream: &Stream,
        shard_id: &str,
    ) -> Result<&'t Arc<Shard>, ApiError> {
        let shard = topology.find(shard_id).ok_or_else(|| {
            ApiError::not_found(format!(
                "Could not find shard {shard_id} in stream {} under account {}.",
                stream.name, self.settings.account_id
            ))
        })?;
        if shard.log.lock().closed.is_some() {
            return Err(ApiError::invalid_argument(format!(
                "Shard {shard_id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
                stream.name, self.settings.account_id
            )));
        }
        Ok(shard)
    }

    pub(super) fn split_shard(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "ShardToSplit", borrow)]
            shard: Cow<'a, str>,
            #[serde(rename = "NewStartingHashKey", borrow)]
            new_starting_hash_key: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let shard = Arc::clone(self.open_shard(&topology, &stream, &input.shard)?);
        let key = input
            .new_starting_hash_key
            .parse::<u128>()
            .ok()
            .filter(|k| *k > shard.start && *k <= shard.end)
            .ok_or_else(|| {
                ApiError::invalid_argument(format!(
                    "NewStartingHashKey {} used in SplitShard() on shard {} in stream {} under account {} is not both greater than one plus the shard's StartingHashKey {} and less than the shard's EndingHashKey {}.",
                    input.new_starting_hash_key, shard.id, stream.name, self.settings.account_id, shard.start, shard.end
                ))
            })?;
        stream.reshard(
            &mut topology,
            std::slice::from_ref(&shard),
            &[(shard.start, key - 1), (key, shard.end)],
        );
        Ok(b"{}".to_vec())
    }

    pub(super) fn merge_shards(&self, body: &[u8]) -> Result<Vec<u8>, ApiError> {
        #[derive(Deserialize)]
        struct Input<'a> {
            #[serde(flatten, borrow)]
            stream: StreamRef<'a>,
            #[serde(rename = "ShardToMerge", borrow)]
            shard: Cow<'a, str>,
            #[serde(rename = "AdjacentShardToMerge", borrow)]
            adjacent: Cow<'a, str>,
        }
        let input: Input<'_> = parse_json(body)?;
        let stream = self.resolve_ref(&input.stream)?;
        let mut topology = stream.topology.write();
        let a = Arc::clone(self.open_shard(&topology, &stream, &input.shard)?);
        let b = Arc::clone(self.open_shard(&topology, &stream, &input.adjacent)?);
        let adjacent =
            a.end.checked_add(1) == Some(b.start) || b.end.checked_add(1) == Some(a.start);
        if !adjacent {
            return Err(ApiError::invalid_argument(format!(
                "Shards {} and {} in stream {} under account {} are not an adjacent pair of shards eligible for merging",
                a.id, b.id, stream.name, self.settings.account_id
            )));
        }
        let range = (a.start.min(b.start), a.end.max(b.end));
        // The child names ShardToMerge as parent and the other as adjacent
        // parent, whatever their hash order.
        stream.reshard(&mut topology, &[a, b], &[range]);
        Ok(b"{}".to_vec())
    }
}
