//! The one result enum of the C ABI, its static strings and predicates.

use std::ffi::c_char;

use shardline::{Error, FailureKind};

use crate::guard;

/// Result of every fallible call, and the outcome in a delivery report.
///
/// 0 is success, so C callers can write `if (rc) ...`. The numbers are
/// stable: codes are only ever added, never renumbered or reused.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum shardline_result {
    /// Success.
    SHARDLINE_OK = 0,
    /// A required pointer argument was NULL.
    SHARDLINE_NULL_PARAMETER = 1,
    /// The handle is not a live handle of that type (freed, or never one).
    SHARDLINE_INVALID_HANDLE = 2,
    /// A string argument (stream name, key, value) is not valid UTF-8.
    SHARDLINE_INVALID_UTF8 = 3,
    /// Another argument is out of range (e.g. a length without its pointer).
    SHARDLINE_INVALID_ARGUMENT = 4,
    /// `shardline_config_set` was given a key it does not know.
    SHARDLINE_UNKNOWN_CONFIG_KEY = 5,
    /// A configuration value is malformed or out of range, or the options
    /// contradict each other.
    SHARDLINE_INVALID_CONFIG = 6,
    /// The producer could not be set up (region, endpoint, credentials, TLS).
    SHARDLINE_SETUP = 7,
    /// The partition key is empty.
    SHARDLINE_EMPTY_PARTITION_KEY = 8,
    /// The partition key is longer than 256 Unicode characters.
    SHARDLINE_PARTITION_KEY_TOO_LONG = 9,
    /// The record (data + partition key) is over the configured size limit.
    SHARDLINE_RECORD_TOO_LARGE = 10,
    /// The explicit hash key is not a decimal integer in 0..2^128-1.
    SHARDLINE_INVALID_EXPLICIT_HASH_KEY = 11,
    /// The stream name is empty, too long or has characters outside
    /// `[a-zA-Z0-9_.-]`.
    SHARDLINE_INVALID_STREAM_NAME = 12,
    /// The producer holds as many records or bytes as it may; serve delivery
    /// reports (`shardline_producer_poll`) and try again.
    SHARDLINE_QUEUE_FULL = 13,
    /// The operation did not finish within its timeout.
    SHARDLINE_TIMEOUT = 14,
    /// The producer is closing or closed.
    SHARDLINE_CLOSED = 15,
    /// Delivery report: the service rejected the record for good.
    SHARDLINE_DELIVERY_REJECTED = 16,
    /// Delivery report: the record's `record_ttl` ran out before it was stored.
    SHARDLINE_DELIVERY_EXPIRED = 17,
    /// Delivery report: the producer was freed before the record was stored.
    SHARDLINE_DELIVERY_CLOSED = 18,
    /// Delivery report: the record failed for another reason.
    SHARDLINE_DELIVERY_FAILED = 19,
    /// poll, flush or a blocking send was called from inside a delivery
    /// callback, where it could never finish.
    SHARDLINE_CALLBACK_REENTRY = 20,
    /// A bug inside Shardline was caught at the ABI boundary.
    SHARDLINE_PANIC = 21,
    /// An error Shardline has no specific code for yet.
    SHARDLINE_INTERNAL = 22,
}

use shardline_result::*;

impl shardline_result {
    const ALL: [shardline_result; 23] = [
        SHARDLINE_OK,
        SHARDLINE_NULL_PARAMETER,
        SHARDLINE_INVALID_HANDLE,
        SHARDLINE_INVALID_UTF8,
        SHARDLINE_INVALID_ARGUMENT,
        SHARDLINE_UNKNOWN_CONFIG_KEY,
        SHARDLINE_INVALID_CONFIG,
        SHARDLINE_SETUP,
        SHARDLINE_EMPTY_PARTITION_KEY,
        SHARDLINE_PARTITION_KEY_TOO_LONG,
        SHARDLINE_RECORD_TOO_LARGE,
        SHARDLINE_INVALID_EXPLICIT_HASH_KEY,
        SHARDLINE_INVALID_STREAM_NAME,
        SHARDLINE_QUEUE_FULL,
        SHARDLINE_TIMEOUT,
        SHARDLINE_CLOSED,
        SHARDLINE_DELIVERY_REJECTED,
        SHARDLINE_DELIVERY_EXPIRED,
        SHARDLINE_DELIVERY_CLOSED,
        SHARDLINE_DELIVERY_FAILED,
        SHARDLINE_CALLBACK_REENTRY,
        SHARDLINE_PANIC,
        SHARDLINE_INTERNAL,
    ];

    /// The code for a raw number from C, if it is one.
    pub fn from_raw(rc: i32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as i32 == rc)
    }

    /// The NUL-terminated description `shardline_result_str` returns.
    pub fn description(self) -> &'static [u8] {
        match self {
            SHARDLINE_OK => b"ok\0",
            SHARDLINE_NULL_PARAMETER => b"a required pointer argument is NULL\0",
            SHARDLINE_INVALID_HANDLE => b"not a live handle (freed, or never created)\0",
            SHARDLINE_INVALID_UTF8 => b"a string argument is not valid UTF-8\0",
            SHARDLINE_INVALID_ARGUMENT => b"an argument is out of range\0",
            SHARDLINE_UNKNOWN_CONFIG_KEY => b"unknown configuration key\0",
            SHARDLINE_INVALID_CONFIG => b"invalid configuration value\0",
            SHARDLINE_SETUP => b"producer setup failed\0",
            SHARDLINE_EMPTY_PARTITION_KEY => b"partition key is empty\0",
            SHARDLINE_PARTITION_KEY_TOO_LONG => b"partition key is longer than 256 characters\0",
            SHARDLINE_RECORD_TOO_LARGE => b"record is larger than the limit\0",
            SHARDLINE_INVALID_EXPLICIT_HASH_KEY => b"explicit hash key is invalid\0",
            SHARDLINE_INVALID_STREAM_NAME => b"stream name is invalid\0",
            SHARDLINE_QUEUE_FULL => b"producer queue is full\0",
            SHARDLINE_TIMEOUT => b"timed out\0",
            SHARDLINE_CLOSED => b"producer is closed\0",
            SHARDLINE_DELIVERY_REJECTED => b"record rejected by the service\0",
            SHARDLINE_DELIVERY_EXPIRED => b"record expired before delivery\0",
            SHARDLINE_DELIVERY_CLOSED => b"producer closed before delivery\0",
            SHARDLINE_DELIVERY_FAILED => b"record not delivered\0",
            SHARDLINE_CALLBACK_REENTRY => b"not allowed inside a delivery callback\0",
            SHARDLINE_PANIC => b"internal error (panic caught)\0",
            SHARDLINE_INTERNAL => b"internal error\0",
        }
    }

    /// True when the same call may succeed later.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            SHARDLINE_QUEUE_FULL | SHARDLINE_TIMEOUT | SHARDLINE_DELIVERY_EXPIRED
        )
    }
}

impl From<&Error> for shardline_result {
    fn from(error: &Error) -> Self {
        match error {
            Error::EmptyPartitionKey => SHARDLINE_EMPTY_PARTITION_KEY,
            Error::PartitionKeyTooLong { .. } => SHARDLINE_PARTITION_KEY_TOO_LONG,
            Error::RecordTooLarge { .. } => SHARDLINE_RECORD_TOO_LARGE,
            Error::InvalidExplicitHashKey { .. } => SHARDLINE_INVALID_EXPLICIT_HASH_KEY,
            Error::InvalidStreamName { .. } => SHARDLINE_INVALID_STREAM_NAME,
            Error::UnknownConfigKey(_) => SHARDLINE_UNKNOWN_CONFIG_KEY,
            Error::InvalidConfig { .. } => SHARDLINE_INVALID_CONFIG,
            Error::QueueFull => SHARDLINE_QUEUE_FULL,
            Error::Closed => SHARDLINE_CLOSED,
            Error::Timeout(_) => SHARDLINE_TIMEOUT,
            Error::Delivery(e) => failure_kind(e.kind),
            Error::Setup(_) => SHARDLINE_SETUP,
            _ => SHARDLINE_INTERNAL,
        }
    }
}

/// The delivery-report code for a failed record.
pub(crate) fn failure_kind(kind: FailureKind) -> shardline_result {
    match kind {
        FailureKind::Rejected => SHARDLINE_DELIVERY_REJECTED,
        FailureKind::Expired => SHARDLINE_DELIVERY_EXPIRED,
        FailureKind::Closed => SHARDLINE_DELIVERY_CLOSED,
        _ => SHARDLINE_DELIVERY_FAILED,
    }
}

/// A static, NUL-terminated description of `rc` (also for numbers that are
/// not a code: "unknown result code"). Never NULL; do not free it.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_result_str(rc: i32) -> *const c_char {
    const UNKNOWN: &[u8] = b"unknown result code\0";
    let text = guard("shardline_result_str", UNKNOWN, || {
        shardline_result::from_raw(rc).map_or(UNKNOWN, shardline_result::description)
    });
    text.as_ptr().cast()
}

/// True when a call that returned `rc` may succeed if tried again later
/// (`SHARDLINE_QUEUE_FULL`, `SHARDLINE_TIMEOUT`, `SHARDLINE_DELIVERY_EXPIRED`).
#[unsafe(no_mangle)]
pub extern "C" fn shardline_result_is_retryable(rc: i32) -> bool {
    guard("shardline_result_is_retryable", false, || {
        shardline_result::from_raw(rc).is_some_and(shardline_result::is_retryable)
    })
}
