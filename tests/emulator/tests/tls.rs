//! HTTPS with the certificate generated at start-up: clients that trust
//! only that certificate can talk to the emulator.

mod common;

use common::{ClientOptions, blob, kinesis_with};
use shardline_emulator::{Emulator, EmulatorConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sdk_over_https_trusting_the_generated_certificate() {
    let emulator = Emulator::start(EmulatorConfig::default().with_stream("tls", 1).with_tls())
        .await
        .unwrap();
    let https = emulator.https_endpoint().unwrap();
    assert!(https.starts_with("https://127.0.0.1:"));
    let pem = emulator.cert_pem().unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));

    for endpoint in [https.clone(), https.replace("127.0.0.1", "localhost")] {
        let client = kinesis_with(
            &endpoint,
            ClientOptions {
                pem: Some(pem.clone()),
                ..ClientOptions::default()
            },
        );
        client
            .put_record()
            .stream_name("tls")
            .partition_key("k")
            .data(blob("secret"))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(emulator.records("tls").len(), 2);

    // A client that does not trust the certificate is refused.
    let untrusting = kinesis_with(&https, ClientOptions::default());
    assert!(untrusting.list_streams().send().await.is_err());
}

#[test]
fn boto3_over_https_with_verify_pem() {
    let dir = tempfile::tempdir().unwrap();
    let pem_path = dir.path().join("emulator.pem");
    let mut config = EmulatorConfig::default().with_tls();
    config.cert_out = Some(pem_path.clone());
    let emulator = Emulator::start_in_background(config).unwrap();
    assert_eq!(
        std::fs::read_to_string(&pem_path).unwrap(),
        emulator.cert_pem().unwrap()
    );
    let out = common::boto3(
        "tls",
        &emulator.https_endpoint().unwrap(),
        &[pem_path.to_str().unwrap()],
    );
    assert_eq!(out["failed"], 0);
    assert_eq!(out["read"].as_array().unwrap().len(), 51);
}
