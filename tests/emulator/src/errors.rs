//! AWS-style error answers of the JSON protocol.
//!
//! Both the AWS SDKs and botocore read the error type from the `__type`
//! member of the body and the text from `message`, so that is all we send
//! (plus the `x-amzn-ErrorType` header some clients log).

use http::StatusCode;

/// An error answered to the client as `{"__type": code, "message": ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationException", message)
    }

    /// Joins constraint violations the way AWS's request validator does:
    /// `2 validation errors detected: ...; ...`.
    pub(crate) fn validation_list(errors: &[String]) -> Self {
        let plural = if errors.len() == 1 { "error" } else { "errors" };
        Self::validation(format!(
            "{} validation {plural} detected: {}",
            errors.len(),
            errors.join("; ")
        ))
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgumentException", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ResourceNotFoundException",
            message,
        )
    }

    pub(crate) fn in_use(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ResourceInUseException", message)
    }

    pub(crate) fn limit_exceeded(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "LimitExceededException", message)
    }

    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "SerializationException", message)
    }

    pub(crate) fn throughput_exceeded(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ProvisionedThroughputExceededException",
            message,
        )
    }

    pub(crate) fn internal_failure() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalFailure",
            "Internal service failure.",
        )
    }

    /// Kinesis answers an overloaded front end with this generic code.
    pub(crate) fn service_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service Unavailable. Please try again later.",
        )
    }

    /// Firehose models its throttling and outages as this exception.
    pub(crate) fn firehose_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            "Slow down.",
        )
    }

    pub(crate) fn expired_token() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )
    }

    pub(crate) fn unknown_operation(target: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UnknownOperationException",
            format!("Unknown operation: '{target}'"),
        )
    }

    /// The JSON body of the answer.
    pub(crate) fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "__type": self.code,
            "message": self.message,
        }))
        .unwrap_or_default()
    }
}
