//! Helpers for integration tests: starting local servers on free loopback
//! ports (kinesalite, kinesis-mock, moto) and AWS SDK clients pointed at them.
//!
//! The servers are installed by `scripts/setup-test-deps.sh`; see
//! `tests/servers/README.md` for what each one does and doesn't do.

mod clients;
mod servers;

pub use clients::{
    TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY, firehose_client, http_client,
    kinesis_client, list_all_shards, parse_hash_key, read_all_records, wait_for_stream_active,
};
pub use servers::{
    Kinesalite, KinesisMock, LocalServer, Moto, ServerKind, free_port, python, repo_root,
};
