//! Helpers for integration tests: starting local servers on free loopback
//! ports (kinesalite, kinesis-mock, moto) and AWS SDK clients pointed at them.
//!
//! The servers are installed by `scripts/setup-test-deps.sh`; see
//! `tests/servers/README.md` for what each one does and doesn't do.

mod clients;
mod moto_s3;
mod servers;
mod verify;

pub use clients::{
    TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY, firehose_client, http_client,
    kinesis_client, list_all_shards, parse_hash_key, read_all_records, wait_for_stream_active,
};
pub use moto_s3::{create_bucket, create_s3_delivery_stream, s3_objects};
pub use servers::{
    Kinesalite, KinesisMock, LocalServer, Moto, ServerKind, free_port, python, repo_root,
};
pub use verify::{
    ReadRecord, consumer_view, local_config, multiset, read_user_records, send_from_threads,
    workload,
};
