//! moto's Firehose writes into its mocked S3; these read it back with boto3
//! (a client nobody here wrote), through `tests/servers/s3_tool.py`.

use aws_sdk_firehose::types::{
    BufferingHints, CompressionFormat, DeliveryStreamType, ExtendedS3DestinationConfiguration,
};
use base64::Engine;

use crate::servers::{python, repo_root};

fn s3_tool(endpoint: &str, cmd: &str, bucket: &str) -> serde_json::Value {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/servers/s3_tool.py"))
        .args([cmd, endpoint, bucket])
        .output()
        .expect("run s3_tool.py");
    assert!(
        out.status.success(),
        "s3_tool.py {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("s3_tool.py prints JSON")
}

/// Creates a bucket in moto's S3.
pub fn create_bucket(endpoint: &str, bucket: &str) {
    s3_tool(endpoint, "create-bucket", bucket);
}

/// Every object of `bucket` as (key, bytes), read with boto3.
pub fn s3_objects(endpoint: &str, bucket: &str) -> Vec<(String, Vec<u8>)> {
    let v = s3_tool(endpoint, "dump", bucket);
    v["objects"]
        .as_array()
        .expect("objects array")
        .iter()
        .map(|o| {
            let data = base64::engine::general_purpose::STANDARD
                .decode(o["data_b64"].as_str().expect("data_b64"))
                .expect("valid base64");
            (o["key"].as_str().expect("key").to_owned(), data)
        })
        .collect()
}

/// Creates a Direct PUT delivery stream writing to `bucket` under `out/`.
pub async fn create_s3_delivery_stream(
    client: &aws_sdk_firehose::Client,
    name: &str,
    bucket: &str,
) {
    client
        .create_delivery_stream()
        .delivery_stream_name(name)
        .delivery_stream_type(DeliveryStreamType::DirectPut)
        .extended_s3_destination_configuration(
            ExtendedS3DestinationConfiguration::builder()
                .role_arn("arn:aws:iam::123456789012:role/firehose")
                .bucket_arn(format!("arn:aws:s3:::{bucket}"))
                .prefix("out/")
                // moto echoes back only what it was given, and the SDK fails to
                // parse a DescribeDeliveryStream without CompressionFormat.
                .compression_format(CompressionFormat::Uncompressed)
                .buffering_hints(
                    BufferingHints::builder()
                        .size_in_mbs(128)
                        .interval_in_seconds(900)
                        .build(),
                )
                .build()
                .expect("valid destination"),
        )
        .send()
        .await
        .expect("CreateDeliveryStream");
}
