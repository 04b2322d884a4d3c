//! Shared helpers of the integration tests: SDK clients pointed at an
//! emulator, and the boto3 driver.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_sdk_kinesis::config::SharedHttpClient;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::timeout::TimeoutConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::Builder;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};

/// One HTTPS-capable client (rustls + ring) that trusts `extra_pem` only,
/// so a passing HTTPS test proves the emulator's certificate is used.
pub fn http_client(extra_pem: Option<&str>) -> SharedHttpClient {
    let mut trust = TrustStore::empty();
    if let Some(pem) = extra_pem {
        trust = trust.with_pem_certificate(pem.as_bytes());
    }
    Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(trust)
                .build()
                .expect("tls context"),
        )
        .build_https()
}

/// Options of a test client; no retries so every answer is visible.
#[derive(Clone, Default)]
pub struct ClientOptions {
    pub pem: Option<String>,
    pub access_key: Option<String>,
    pub attempt_timeout: Option<Duration>,
}

pub fn kinesis(endpoint: &str) -> aws_sdk_kinesis::Client {
    kinesis_with(endpoint, ClientOptions::default())
}

pub fn kinesis_with(endpoint: &str, options: ClientOptions) -> aws_sdk_kinesis::Client {
    let mut timeouts = TimeoutConfig::builder();
    if let Some(t) = options.attempt_timeout {
        timeouts = timeouts.operation_attempt_timeout(t);
    }
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(
            options.access_key.as_deref().unwrap_or("test"),
            "test",
            None,
            None,
            "tests",
        ))
        .http_client(http_client(options.pem.as_deref()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts.build())
        .build();
    aws_sdk_kinesis::Client::from_conf(config)
}

pub fn firehose(endpoint: &str) -> aws_sdk_firehose::Client {
    let config = aws_sdk_firehose::Config::builder()
        .behavior_version(aws_sdk_firehose::config::BehaviorVersion::latest())
        .region(aws_sdk_firehose::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_firehose::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .http_client(http_client(None))
        .retry_config(aws_sdk_firehose::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_firehose::Client::from_conf(config)
}

pub fn blob(data: impl Into<Vec<u8>>) -> aws_sdk_kinesis::primitives::Blob {
    aws_sdk_kinesis::primitives::Blob::new(data)
}

/// The AWS error code of a failed SDK call (`None` for transport errors).
pub fn error_code<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> Option<String>
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned)
}

pub fn error_message<E, R>(error: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    error
        .as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_owned()
}

/// The Python that has boto3: `$SHARDLINE_PYTHON`, else the repository's
/// `.venv`, else `python3`.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SHARDLINE_PYTHON") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.exists() {
        return venv;
    }
    "python3".into()
}

/// Runs `tests/boto3_client.py <scenario> <endpoint> [args...]` and returns
/// its JSON output.
pub fn boto3(scenario: &str, endpoint: &str, args: &[&str]) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/boto3_client.py");
    let output = Command::new(python())
        .arg(script)
        .arg(scenario)
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "boto3 scenario {scenario} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "boto3 scenario {scenario} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
