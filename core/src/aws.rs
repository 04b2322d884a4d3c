//! Building the AWS SDK configuration: region, endpoint, credentials and one
//! HTTPS client (hyper 1 + rustls + ring) for every service client.

use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::stalled_stream_protection::StalledStreamProtectionConfig;
use aws_config::timeout::TimeoutConfig;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use crate::config::{Config, Credentials};
use crate::error::{Error, Result};

/// Region used when the caller names an endpoint but no region: local
/// servers accept any, and SigV4 needs one.
const FALLBACK_REGION_FOR_CUSTOM_ENDPOINT: &str = "us-east-1";

/// Loads the SDK configuration the service clients are built from.
///
/// The SDK's own retries are off: the producer retries per record, and an
/// SDK retry of a whole `PutRecords` would resend records that succeeded.
pub(crate) async fn load_sdk_config(config: &Config) -> Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(https_client(config)?)
        .retry_config(RetryConfig::disabled())
        .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(config.connect_timeout)
                .operation_attempt_timeout(config.request_timeout)
                .build(),
        );
    if let Some(region) = &config.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    if let Credentials::Static {
        access_key_id,
        secret_access_key,
        session_token,
    } = &config.credentials
    {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            access_key_id,
            secret_access_key,
            session_token.clone(),
            None,
            "shardline-static",
        ));
    }
    let mut sdk_config = loader.load().await;
    if sdk_config.region().is_none() {
        if config.endpoint_url.is_some() {
            sdk_config = sdk_config
                .into_builder()
                .region(aws_config::Region::new(FALLBACK_REGION_FOR_CUSTOM_ENDPOINT))
                .build();
        } else {
            return Err(Error::Setup(
                "no AWS region: set `region`, AWS_REGION, or a profile with a region".into(),
            ));
        }
    }
    Ok(sdk_config)
}

fn https_client(config: &Config) -> Result<SharedHttpClient> {
    if !config.verify_certificate {
        return Ok(crate::insecure_tls::client(config.connect_timeout));
    }
    let mut trust_store = TrustStore::default();
    if let Some(path) = &config.ca_bundle {
        let pem = std::fs::read(path)
            .map_err(|e| Error::Setup(format!("cannot read ca_bundle {}: {e}", path.display())))?;
        trust_store = trust_store.with_pem_certificate(pem);
    }
    let tls_context = TlsContext::builder()
        .with_trust_store(trust_store)
        .build()
        .map_err(|e| Error::Setup(format!("TLS configuration: {e}")))?;
    Ok(aws_smithy_http_client::Builder::new()
        .pool_idle_timeout(Duration::from_secs(60))
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https())
}
