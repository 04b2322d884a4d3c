//! What a caller learns about each record: exactly one completion, success or
//! failure, with the history of its attempts.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

/// One try at putting a record (or the aggregate that carried it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How long the record waited (buffering, rate limiting, backoff) before
    /// this try was sent.
    pub delay: Duration,
    /// How long the request took.
    pub duration: Duration,
    /// The error code of a failed try (`ProvisionedThroughputExceededException`,
    /// `InternalFailure`, `Timeout`, ...); `None` for the successful one.
    pub error_code: Option<String>,
    /// The service's or transport's message for a failed try.
    pub error_message: Option<String>,
}

impl Attempt {
    /// True when this try succeeded.
    pub fn is_success(&self) -> bool {
        self.error_code.is_none()
    }
}

/// The tries of a record, oldest first.
///
/// The records of one aggregate share one history, so the list is
/// reference-counted rather than copied per record: completing a 500-record
/// aggregate costs one allocation, not 500. It reads like a slice
/// (`attempts.len()`, `attempts.iter()`, `attempts.last()`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attempts(Option<Arc<[Attempt]>>);

impl Attempts {
    /// `self` followed by `more`; shares `more` when `self` is empty.
    pub(crate) fn followed_by(&self, more: &Attempts) -> Attempts {
        if self.is_empty() {
            more.clone()
        } else if more.is_empty() {
            self.clone()
        } else {
            self.iter().chain(more.iter()).cloned().collect()
        }
    }
}

impl Deref for Attempts {
    type Target = [Attempt];

    fn deref(&self) -> &[Attempt] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl fmt::Debug for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Attempt>> for Attempts {
    fn from(attempts: Vec<Attempt>) -> Self {
        // An empty history stays unallocated.
        Attempts((!attempts.is_empty()).then(|| Arc::from(attempts)))
    }
}

impl FromIterator<Attempt> for Attempts {
    fn from_iter<I: IntoIterator<Item = Attempt>>(iter: I) -> Self {
        Attempts::from(iter.into_iter().collect::<Vec<_>>())
    }
}

impl<'a> IntoIterator for &'a Attempts {
    type Item = &'a Attempt;
    type IntoIter = std::slice::Iter<'a, Attempt>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// A record that was stored by the service.
///
/// The shard, sequence number and attempts are shared with the other
/// records of the same aggregate (cloning them is a reference-count
/// increment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The shard that stored it (Kinesis Data Streams); `None` for Firehose.
    pub shard_id: Option<Arc<str>>,
    /// The Kinesis sequence number of the record, or of the aggregate that
    /// carried it; the Firehose record id for Firehose.
    pub sequence_number: Arc<str>,
    /// Every try, the last one the success.
    pub attempts: Attempts,
    /// True when it travelled inside a KPL aggregate (or a packed Firehose
    /// record) with other user records.
    pub aggregated: bool,
}

/// Why a record will not be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The service rejected it with a non-retryable error (unknown stream,
    /// access denied, validation, KMS errors).
    Rejected,
    /// It was still undelivered when its `record_ttl` ran out.
    Expired,
    /// The producer was closed (or dropped) before it could be delivered.
    Closed,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Rejected => "rejected",
            FailureKind::Expired => "expired",
            FailureKind::Closed => "producer closed",
        })
    }
}

/// A record that will not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("record not delivered ({kind}) after {} attempt(s): {}{}", attempts.len(),
    code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(), message)]
pub struct DeliveryError {
    /// The class of failure.
    pub kind: FailureKind,
    /// The last error code seen, if any.
    pub code: Option<String>,
    /// A human-readable reason.
    pub message: String,
    /// Every try that was made.
    pub attempts: Attempts,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(code: Option<&str>) -> Attempt {
        Attempt {
            delay: Duration::from_millis(1),
            duration: Duration::from_millis(2),
            error_code: code.map(str::to_owned),
            error_message: code.map(|c| format!("{c} happened")),
        }
    }

    #[test]
    fn an_empty_history_reads_as_an_empty_slice() {
        let none = Attempts::default();
        assert!(none.is_empty());
        assert_eq!(none, Attempts::from(Vec::new()));
        assert_eq!(format!("{none:?}"), "[]");
    }

    #[test]
    fn a_fresh_record_shares_its_aggregates_history() {
        let aggregate = Attempts::from(vec![attempt(Some("Throttled")), attempt(None)]);
        let record = Attempts::default().followed_by(&aggregate);
        assert_eq!(record.len(), 2);
        assert!(std::ptr::eq(record.as_ptr(), aggregate.as_ptr()));
        assert!(record.last().unwrap().is_success());
    }

    #[test]
    fn a_rerouted_record_keeps_its_earlier_tries_first() {
        let earlier = Attempts::from(vec![attempt(Some("InternalFailure"))]);
        let later = Attempts::from(vec![attempt(Some("Throttled")), attempt(None)]);
        let joined = earlier.followed_by(&later);
        let codes: Vec<_> = joined.iter().map(|a| a.error_code.as_deref()).collect();
        assert_eq!(codes, [Some("InternalFailure"), Some("Throttled"), None]);
        // Neither input changed.
        assert_eq!(earlier.len(), 1);
        assert_eq!(later.len(), 2);
        assert_eq!(earlier.followed_by(&Attempts::default()), earlier);
    }
}
