//! Kinesis Data Streams: `PutRecords` and paginated `ListShards`.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::types::{ShardFilter, ShardFilterType};

use super::body::{Entry, put_body, replace_body};
use super::{EntryOutcome, OutRecord, RequestFailure, request_failure};
use crate::shard_map::Shard;

#[derive(Clone)]
pub(crate) struct KinesisSink {
    client: Client,
}

/// The SDK client's own `Debug` prints its whole configuration, with the
/// access key id in full; a producer's `Debug` (in a log line or a panic
/// message) must not.
impl std::fmt::Debug for KinesisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisSink").finish_non_exhaustive()
    }
}

impl KinesisSink {
    pub(crate) fn new(sdk_config: &aws_config::SdkConfig) -> Self {
        KinesisSink {
            client: Client::new(sdk_config),
        }
    }

    pub(crate) async fn put_records(
        &self,
        stream: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<EntryOutcome>, RequestFailure> {
        let count = records.len();
        let body = put_body(stream, &records, Entry::Kinesis);
        let output = self
            .client
            .put_records()
            .stream_name(stream)
            // The records go in the body written above, not through the
            // SDK's serializer (see `body`); the SDK still signs and sends it.
            .set_records(Some(Vec::new()))
            .customize()
            .mutate_request(move |request| replace_body(request, &body))
            .send()
            .await
            .map_err(|e| request_failure(&e))?;
        let results = output.records();
        if results.len() != count {
            return Err(RequestFailure::new(
                "MalformedResponse",
                format!(
                    "PutRecords answered {} entries for {count} records",
                    results.len()
                ),
            ));
        }
        Ok(results
            .iter()
            .map(
                |entry| match (entry.error_code(), entry.sequence_number()) {
                    (None, Some(seq)) => EntryOutcome::Stored {
                        shard_id: entry.shard_id().map(str::to_owned),
                        sequence_number: seq.to_owned(),
                    },
                    (code, _) => EntryOutcome::Failed {
                        code: code.unwrap_or("MalformedResponse").to_owned(),
                        message: entry
                            .error_message()
                            .unwrap_or("entry has neither a sequence number nor an error")
                            .to_owned(),
                    },
                },
            )
            .collect())
    }

    /// Every open shard of the stream, following `NextToken`.
    pub(crate) async fn open_shards(&self, stream: &str) -> Result<Vec<Shard>, RequestFailure> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        loop {
            // NextToken and StreamName are mutually exclusive in ListShards.
            let request = match &next_token {
                Some(token) => self.client.list_shards().next_token(token),
                None => self.client.list_shards().stream_name(stream).shard_filter(
                    ShardFilter::builder()
                        .r#type(ShardFilterType::AtLatest)
                        .build()
                        .map_err(|e| RequestFailure::new("ConstructionFailure", e.to_string()))?,
                ),
            };
            let page = request.send().await.map_err(|e| request_failure(&e))?;
            for shard in page.shards() {
                // Closed shards have an ending sequence number; a server that
                // ignores the filter still gets them dropped here.
                if shard
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some()
                {
                    continue;
                }
                let Some(range) = shard.hash_key_range() else {
                    return Err(RequestFailure::new(
                        "MalformedResponse",
                        format!("shard {} has no hash key range", shard.shard_id()),
                    ));
                };
                let parsed = Shard::from_decimal(
                    shard.shard_id(),
                    range.starting_hash_key(),
                    range.ending_hash_key(),
                )
                .map_err(|e| RequestFailure::new("MalformedResponse", e.to_string()))?;
                shards.push(parsed);
            }
            next_token = page.next_token().map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(shards)
    }
}
