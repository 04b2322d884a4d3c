//! Amazon Data Firehose Direct PUT: `PutRecordBatch`.

use aws_sdk_firehose::Client;

use super::body::{Entry, put_body, replace_body};
use super::{EntryOutcome, OutRecord, RequestFailure, request_failure};

#[derive(Clone)]
pub(crate) struct FirehoseSink {
    client: Client,
}

/// The SDK client's own `Debug` prints its whole configuration, with the
/// access key id in full; a producer's `Debug` (in a log line or a panic
/// message) must not.
impl std::fmt::Debug for FirehoseSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseSink").finish_non_exhaustive()
    }
}

impl FirehoseSink {
    pub(crate) fn new(sdk_config: &aws_config::SdkConfig) -> Self {
        FirehoseSink {
            client: Client::new(sdk_config),
        }
    }

    pub(crate) async fn put_record_batch(
        &self,
        delivery_stream: &str,
        records: Vec<OutRecord>,
    ) -> Result<Vec<EntryOutcome>, RequestFailure> {
        let count = records.len();
        let body = put_body(delivery_stream, &records, Entry::Firehose);
        let output = self
            .client
            .put_record_batch()
            .delivery_stream_name(delivery_stream)
            // As for Kinesis: the records go in the body written above.
            .set_records(Some(Vec::new()))
            .customize()
            .mutate_request(move |request| replace_body(request, &body))
            .send()
            .await
            .map_err(|e| request_failure(&e))?;
        let results = output.request_responses();
        if results.len() != count {
            return Err(RequestFailure::new(
                "MalformedResponse",
                format!(
                    "PutRecordBatch answered {} entries for {count} records",
                    results.len()
                ),
            ));
        }
        Ok(results
            .iter()
            .map(|entry| match (entry.error_code(), entry.record_id()) {
                (None, Some(id)) => EntryOutcome::Stored {
                    shard_id: None,
                    sequence_number: id.to_owned(),
                },
                (code, _) => EntryOutcome::Failed {
                    code: code.unwrap_or("MalformedResponse").to_owned(),
                    message: entry
                        .error_message()
                        .unwrap_or("entry has neither a record id nor an error")
                        .to_owned(),
                },
            })
            .collect())
    }
}
