//! The JSON bodies of `PutRecords` and `PutRecordBatch`, written by hand.
//!
//! The AWS SDK still does everything else for these two calls (endpoint,
//! credentials, SigV4, the connection, parsing the answer); only the request
//! body is ours. A producer's cost is moving bytes, and the SDK's
//! serializer moves them more than it must: it base64-encodes each record
//! into a temporary string, copies that into a body that grows by doubling
//! (a 6.7 MiB body passes through 8 reallocations and leaves an 8 MiB block
//! behind), and takes its input as owned structs built per record. Here
//! each body is sized exactly before it is written, every record is
//! base64-encoded straight into it, and the size the dispatcher holds
//! against `max_buffered_bytes` ([`super::body_size`]) bounds what is
//! allocated (but for keys with characters JSON escapes).
//!
//! Both services speak the AWS JSON 1.1 protocol: a JSON object whose
//! member names are the API's, with blobs in standard base64. String
//! escaping is `serde_json`'s, base64 is `base64-simd` (the codec the SDK
//! itself uses).

use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;

use super::OutRecord;

/// The members of one entry besides its data.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    /// Kinesis: `PartitionKey` and, when set, `ExplicitHashKey`.
    Kinesis,
    /// Firehose: `Data` only.
    Firehose,
}

impl Entry {
    /// The request member that names the stream.
    fn stream_member(self) -> &'static str {
        match self {
            Entry::Kinesis => "StreamName",
            Entry::Firehose => "DeliveryStreamName",
        }
    }
}

/// `{"<stream_member>":"<stream>","Records":[{"Data":"…",…},…]}`.
pub(crate) fn put_body(stream: &str, records: &[OutRecord], entry: Entry) -> Bytes {
    let stream_member = entry.stream_member();
    let b64 = base64_simd::STANDARD;
    // Exact (but for one comma) unless a key needs escapes, which
    // serde_json writes as they come: the vector grows in the rare body
    // that has some.
    let capacity = r#"{"":"","Records":[]}"#.len()
        + stream_member.len()
        + stream.len()
        + records
            .iter()
            .map(|r| {
                let keys = match entry {
                    Entry::Kinesis => {
                        r#","PartitionKey":"""#.len()
                            + r.partition_key.len()
                            + r.explicit_hash_key
                                .as_ref()
                                .map_or(0, |k| r#","ExplicitHashKey":"""#.len() + k.len())
                    }
                    Entry::Firehose => 0,
                };
                r#",{"Data":""}"#.len() + b64.encoded_length(r.data.len()) + keys
            })
            .sum::<usize>();
    let mut body = Vec::with_capacity(capacity);
    body.extend_from_slice(b"{\"");
    body.extend_from_slice(stream_member.as_bytes());
    body.extend_from_slice(b"\":");
    push_json_string(&mut body, stream);
    body.extend_from_slice(b",\"Records\":[");
    for (i, record) in records.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(b"{\"Data\":\"");
        b64.encode_append(&record.data, &mut body);
        body.push(b'"');
        if let Entry::Kinesis = entry {
            body.extend_from_slice(b",\"PartitionKey\":");
            push_json_string(&mut body, &record.partition_key);
            if let Some(key) = &record.explicit_hash_key {
                body.extend_from_slice(b",\"ExplicitHashKey\":");
                push_json_string(&mut body, key);
            }
        }
        body.push(b'}');
    }
    body.extend_from_slice(b"]}");
    Bytes::from(body)
}

/// Puts `body` in place of what the SDK serialized (the call's other
/// members, with no records), before the request is signed. The SDK may
/// call this once per attempt; `Bytes` clones share the buffer.
pub(crate) fn replace_body(request: &mut HttpRequest, body: &Bytes) {
    let headers = request.headers_mut();
    headers.insert("Content-Length", body.len().to_string());
    // What the client's protocol sets already, stated here because the
    // body is written for it.
    headers.insert("Content-Type", "application/x-amz-json-1.1");
    *request.body_mut() = SdkBody::from(body.clone());
}

fn push_json_string(body: &mut Vec<u8>, text: &str) {
    if needs_escape(text) {
        serde_json::to_writer(&mut *body, text).expect("writing JSON into a Vec cannot fail");
    } else {
        // The common case, and what serde_json would write.
        body.push(b'"');
        body.extend_from_slice(text.as_bytes());
        body.push(b'"');
    }
}

/// Whether JSON needs anything of `text` escaped: quotes, backslashes and
/// control characters (everything else, all of Unicode included, goes as is).
fn needs_escape(text: &str) -> bool {
    text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &[u8], key: &str, hash_key: Option<&str>) -> OutRecord {
        OutRecord {
            partition_key: key.to_owned(),
            explicit_hash_key: hash_key.map(str::to_owned),
            data: Bytes::copy_from_slice(data),
        }
    }

    fn parse(body: &Bytes) -> serde_json::Value {
        serde_json::from_slice(body).expect("the body is JSON")
    }

    #[test]
    fn a_kinesis_body_carries_every_record_in_order_with_its_keys() {
        let records = [
            record(b"hello", "k1", None),
            record(
                &[0, 255, 7],
                "k\"2\\\n",
                Some("170141183460469231731687303715884105728"),
            ),
            record(b"", "\u{e9}t\u{e9}", None),
        ];
        let body = put_body("my-stream", &records, Entry::Kinesis);
        let value = parse(&body);
        assert_eq!(value["StreamName"], "my-stream");
        let entries = value["Records"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        for (entry, record) in entries.iter().zip(&records) {
            let data = base64_simd::STANDARD
                .decode_to_vec(entry["Data"].as_str().unwrap())
                .unwrap();
            assert_eq!(data, record.data);
            assert_eq!(entry["PartitionKey"], record.partition_key.as_str());
            match &record.explicit_hash_key {
                Some(key) => assert_eq!(entry["ExplicitHashKey"], key.as_str()),
                None => assert!(entry.get("ExplicitHashKey").is_none()),
            }
        }
    }

    proptest::proptest! {
        /// Any Unicode key and any bytes: the body parses, and gives back
        /// exactly what went in.
        #[test]
        fn any_keys_and_bytes_round_trip_through_json(
            stream in "\\PC{0,20}|[\"\\\\\\x00-\\x1f]{1,4}",
            entries in proptest::collection::vec(
                ("\\PC{1,40}|[\"\\\\\\x00-\\x1f]{1,8}", proptest::collection::vec(proptest::num::u8::ANY, 0..300), proptest::option::of(proptest::num::u128::ANY)),
                0..20,
            ),
        ) {
            let records: Vec<_> = entries
                .iter()
                .map(|(key, data, hash_key)| record(data, key, hash_key.map(|k| k.to_string()).as_deref()))
                .collect();
            let body = put_body(&stream, &records, Entry::Kinesis);
            if !records.iter().any(|r| needs_escape(&r.partition_key)) && !needs_escape(&stream) {
                let billed = records.iter().map(OutRecord::billed_size).sum();
                proptest::prop_assert!(body.len() <= super::super::body_size(billed, records.len()));
            }
            let value = parse(&body);
            proptest::prop_assert_eq!(value["StreamName"].as_str(), Some(stream.as_str()));
            let got = value["Records"].as_array().unwrap();
            proptest::prop_assert_eq!(got.len(), records.len());
            for (entry, record) in got.iter().zip(&records) {
                let data = base64_simd::STANDARD.decode_to_vec(entry["Data"].as_str().unwrap()).unwrap();
                proptest::prop_assert_eq!(&data[..], &record.data[..]);
                proptest::prop_assert_eq!(entry["PartitionKey"].as_str(), Some(record.partition_key.as_str()));
                proptest::prop_assert_eq!(entry["ExplicitHashKey"].as_str(), record.explicit_hash_key.as_deref());
            }
        }
    }

    #[test]
    fn a_firehose_body_carries_only_the_data() {
        let records = [
            record(b"a\n", "ignored", None),
            record(&[1; 1000], "x", None),
        ];
        let body = put_body("d\u{1}", &records, Entry::Firehose);
        let value = parse(&body);
        assert_eq!(value["DeliveryStreamName"], "d\u{1}");
        let entries = value["Records"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].as_object().unwrap().len(), 1);
        assert_eq!(
            entries[1]["Data"],
            base64_simd::STANDARD.encode_to_string([1u8; 1000])
        );
    }

    #[test]
    fn the_body_is_allocated_once_at_its_size_and_within_the_dispatchers_estimate() {
        let records: Vec<_> = (0..500)
            .map(|i| record(&vec![i as u8; 1000 + i], &format!("key-{i}"), None))
            .collect();
        let body = put_body("s", &records, Entry::Kinesis);
        let billed: usize = records.iter().map(OutRecord::billed_size).sum();
        assert!(body.len() <= super::super::body_size(billed, records.len()));
        // One allocation: converting a full Vec into Bytes keeps its buffer.
        let vec: Vec<u8> = body.into();
        assert!(
            vec.capacity() - vec.len() < 64,
            "{} of {}",
            vec.len(),
            vec.capacity()
        );
    }

    /// The dispatcher's bound at its tightest: one-byte keys, the longest
    /// explicit hash keys, data lengths that leave base64 padding, and the
    /// longest stream name.
    #[test]
    fn the_dispatchers_estimate_bounds_the_worst_body_without_escapes() {
        let longest_hash_key = u128::MAX.to_string();
        let records: Vec<_> = (0..500)
            .map(|i| record(&vec![7; i % 4], "k", Some(&longest_hash_key)))
            .collect();
        let billed: usize = records.iter().map(OutRecord::billed_size).sum();
        let name = "n".repeat(128);
        for entry in [Entry::Kinesis, Entry::Firehose] {
            let body = put_body(&name, &records, entry);
            let bound = super::super::body_size(billed, records.len());
            let member = entry.stream_member();
            assert!(body.len() <= bound, "{member}: {} > {bound}", body.len());
        }
    }
}
