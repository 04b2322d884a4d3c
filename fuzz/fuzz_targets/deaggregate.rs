//! The KPL deaggregator: any bytes, and any protobuf message wrapped in a
//! valid magic + digest (so the fuzzer gets past the MD5 check), must give
//! records or an error, never a panic or a hang.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use shardline::aggregation::{deaggregate, decode_aggregate};

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let data = if mode & 1 == 1 {
        // A well-framed aggregate around whatever message the fuzzer made.
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(rest);
        framed.extend_from_slice(&Md5::digest(rest));
        Bytes::from(framed)
    } else {
        Bytes::copy_from_slice(rest)
    };
    if let Ok(records) = deaggregate("pk", None, &data) {
        for record in &records {
            let _ = record.hash_key();
            // Debug never prints payloads, and never panics.
            let _ = format!("{record:?}");
        }
    }
    if let Ok(records) = decode_aggregate(&data) {
        assert!(data.starts_with(&MAGIC));
        for record in records {
            // Zero-copy: every payload lies inside the input.
            assert!(record.data.len() <= data.len());
        }
    }
});
