//! What to do about a failed put, by error code, and how long to wait
//! before trying again.

use std::time::Duration;

use rand::Rng;

/// How a failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureClass {
    /// The shard (or delivery stream) is over its quota: retry with backoff
    /// and slow the limiter down.
    Throttled,
    /// A passing fault (5xx, timeout, connection error): retry with backoff.
    Transient,
    /// Credentials expired or were refused as stale: retry within the TTL,
    /// by which time the credential provider should have fresh ones.
    Credentials,
    /// The request can never succeed as sent: fail the records now.
    Fatal,
}

impl FailureClass {
    pub(crate) fn is_retryable(self) -> bool {
        self != FailureClass::Fatal
    }
}

/// Classifies a service error code (per record or for a whole request).
/// Unknown codes are treated as transient: retrying within the TTL is
/// safer than failing records for a code this table has not met.
pub(crate) fn classify(code: &str) -> FailureClass {
    match code {
        "ProvisionedThroughputExceededException"
        | "ThrottlingException"
        | "LimitExceededException"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "SlowDown"
        | "RequestLimitExceeded" => FailureClass::Throttled,
        "KMSThrottlingException" => FailureClass::Throttled,
        "ExpiredTokenException"
        | "ExpiredToken"
        | "RequestExpired"
        | "InvalidSignatureException"
        | "CredentialsError" => FailureClass::Credentials,
        "ResourceNotFoundException"
        | "AccessDeniedException"
        | "AccessDenied"
        | "InvalidArgumentException"
        | "ValidationException"
        | "SerializationException"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "KMSAccessDeniedException"
        | "KMSDisabledException"
        | "KMSInvalidStateException"
        | "KMSNotFoundException"
        | "KMSOptInRequired"
        | "InvalidKMSResourceException"
        | "ResourceInUseException"
        | "ConstructionFailure" => FailureClass::Fatal,
        _ => FailureClass::Transient,
    }
}

/// Exponential backoff with full jitter: a random wait in
/// `[min/2, min(max, min * 2^retry)]`, so that many producers retrying at
/// once spread out instead of hitting the shard together.
pub(crate) fn backoff(retry: u32, min: Duration, max: Duration) -> Duration {
    let exp = min.saturating_mul(1u32 << retry.min(20));
    let ceiling = exp.min(max).max(min);
    let floor = min / 2;
    let span = ceiling.saturating_sub(floor);
    floor + span.mul_f64(rand::rng().random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_the_design_table() {
        assert_eq!(
            classify("ProvisionedThroughputExceededException"),
            FailureClass::Throttled
        );
        assert_eq!(classify("InternalFailure"), FailureClass::Transient);
        assert_eq!(classify("KMSThrottlingException"), FailureClass::Throttled);
        assert_eq!(classify("ResourceNotFoundException"), FailureClass::Fatal);
        assert_eq!(classify("KMSDisabledException"), FailureClass::Fatal);
        assert_eq!(classify("ExpiredTokenException"), FailureClass::Credentials);
        assert!(classify("SomethingNew").is_retryable());
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for retry in 0..40 {
            let d = backoff(retry, min, max);
            assert!(d >= min / 2 && d <= max, "retry {retry}: {d:?}");
        }
        let late: Duration = (0..200).map(|_| backoff(10, min, max)).sum::<Duration>() / 200;
        assert!(late > Duration::from_secs(1), "{late:?}");
    }
}
