//! The user record: what a caller hands to the producer.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

use crate::error::{Error, Result};
use crate::hash::{parse_explicit_hash_key, partition_key_hash};
use crate::limits::PARTITION_KEY_MAX_CHARS;

/// One record as the caller sees it: data, a partition key and an optional
/// explicit hash key.
///
/// Cloning is cheap for the data (a reference-counted [`Bytes`]). `Debug`
/// prints sizes, never the payload.
#[derive(Clone)]
pub struct UserRecord {
    partition_key: PartitionKey,
    explicit_hash_key: Option<u128>,
    data: Bytes,
}

/// A partition key's text: the caller's own `String`, or a slice of a
/// buffer that holds many records' keys ([`UserRecord::with_shared_key`]).
///
/// Why both: a caller that hands over records in bulk (Python's
/// `put_many`) puts every key of a call in one buffer, one allocation
/// instead of one per record. Allocations per record were a sixth of
/// `put_many`'s time, mostly glibc's arena lock, contended when a producer
/// thread frees what the calling thread allocated.
#[derive(Clone)]
enum PartitionKey {
    Owned(String),
    Shared(ByteString),
}

impl PartitionKey {
    fn as_str(&self) -> &str {
        match self {
            PartitionKey::Owned(key) => key,
            PartitionKey::Shared(key) => key,
        }
    }
}

impl PartialEq for UserRecord {
    fn eq(&self, other: &Self) -> bool {
        self.partition_key() == other.partition_key()
            && self.explicit_hash_key == other.explicit_hash_key
            && self.data == other.data
    }
}

impl Eq for UserRecord {}

impl UserRecord {
    /// A record routed by the MD5 hash of `partition_key`.
    ///
    /// Nothing is checked here; [`UserRecord::validate`] (called by every
    /// producer on `send`) enforces the service's limits.
    pub fn new(partition_key: impl Into<String>, data: impl Into<Bytes>) -> Self {
        UserRecord {
            partition_key: PartitionKey::Owned(partition_key.into()),
            explicit_hash_key: None,
            data: data.into(),
        }
    }

    /// Like [`UserRecord::new`] with the partition key taken from shared
    /// bytes, typically a slice of one buffer that holds the keys (and
    /// data) of many records: no allocation per key, and the buffer is
    /// freed once. Fails if the bytes are not UTF-8.
    ///
    /// The producer takes such a record's key and data to be slices of a
    /// buffer other records share, and lets go of them when the record is
    /// packed: an aggregate copies its records, and a record that goes out
    /// alone (unaggregated, or the only record of its aggregate) is copied
    /// out then, so that a record held back (behind a throttled shard,
    /// between retries) never keeps the whole buffer alive.
    pub fn with_shared_key(
        partition_key: Bytes,
        data: impl Into<Bytes>,
    ) -> std::result::Result<Self, std::str::Utf8Error> {
        Ok(UserRecord {
            partition_key: PartitionKey::Shared(ByteString::try_from(partition_key)?),
            explicit_hash_key: None,
            data: data.into(),
        })
    }

    /// Routes the record by `hash_key` instead of its partition key's hash.
    pub fn with_explicit_hash_key(mut self, hash_key: u128) -> Self {
        self.explicit_hash_key = Some(hash_key);
        self
    }

    /// Like [`UserRecord::with_explicit_hash_key`] from the decimal form the
    /// Kinesis API uses; rejects anything the API would.
    pub fn with_explicit_hash_key_str(self, hash_key: &str) -> Result<Self> {
        Ok(self.with_explicit_hash_key(parse_explicit_hash_key(hash_key)?))
    }

    /// The partition key.
    pub fn partition_key(&self) -> &str {
        self.partition_key.as_str()
    }

    /// The explicit hash key, if the caller supplied one.
    pub fn explicit_hash_key(&self) -> Option<u128> {
        self.explicit_hash_key
    }

    /// The payload.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Takes the record apart.
    pub fn into_parts(self) -> (String, Option<u128>, Bytes) {
        let partition_key = match self.partition_key {
            PartitionKey::Owned(key) => key,
            PartitionKey::Shared(key) => String::from(&*key),
        };
        (partition_key, self.explicit_hash_key, self.data)
    }

    /// True if made by [`UserRecord::with_shared_key`]: its key and data
    /// are taken to be slices of a buffer other records share.
    pub(crate) fn in_shared_buffer(&self) -> bool {
        matches!(self.partition_key, PartitionKey::Shared(_))
    }

    /// The key that routes this record to a shard: the explicit hash key if
    /// there is one, else MD5 of the partition key.
    pub fn hash_key(&self) -> u128 {
        self.explicit_hash_key
            .unwrap_or_else(|| partition_key_hash(self.partition_key()))
    }

    /// The size the service charges against its record and request limits:
    /// data plus partition key, in bytes.
    pub fn billed_size(&self) -> usize {
        self.data.len() + self.partition_key().len()
    }

    /// Checks the record against the Kinesis limits: a partition key of 1 to
    /// 256 characters and a billed size of at most `max_record_bytes`.
    pub fn validate(&self, max_record_bytes: usize) -> Result<()> {
        validate_partition_key(self.partition_key())?;
        let size = self.billed_size();
        if size > max_record_bytes {
            return Err(Error::RecordTooLarge {
                size,
                limit: max_record_bytes,
            });
        }
        Ok(())
    }
}

/// Checks that a partition key has 1 to 256 Unicode characters.
pub fn validate_partition_key(partition_key: &str) -> Result<()> {
    if partition_key.is_empty() {
        return Err(Error::EmptyPartitionKey);
    }
    // Counting chars is only needed when the byte length could exceed the
    // limit; most keys are short ASCII.
    if partition_key.len() > PARTITION_KEY_MAX_CHARS {
        let chars = partition_key.chars().count();
        if chars > PARTITION_KEY_MAX_CHARS {
            return Err(Error::PartitionKeyTooLong { chars });
        }
    }
    Ok(())
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("partition_key_len", &self.partition_key().len())
            .field("explicit_hash_key", &self.explicit_hash_key.is_some())
            .field("data_len", &self.data.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_each_problem() {
        let max = 1024 * 1024;
        assert_eq!(
            UserRecord::new("", "x").validate(max),
            Err(Error::EmptyPartitionKey)
        );
        let long_key = "é".repeat(257);
        assert_eq!(
            UserRecord::new(long_key, "x").validate(max),
            Err(Error::PartitionKeyTooLong { chars: 257 })
        );
        // 256 two-byte characters are 512 bytes but only 256 characters.
        assert!(UserRecord::new("é".repeat(256), "x").validate(max).is_ok());
        let big = UserRecord::new("k", vec![0u8; max]);
        assert_eq!(
            big.validate(max),
            Err(Error::RecordTooLarge {
                size: max + 1,
                limit: max
            })
        );
        assert!(
            UserRecord::new("k", vec![0u8; max - 1])
                .validate(max)
                .is_ok()
        );
        assert!(UserRecord::new("k", Bytes::new()).validate(max).is_ok());
    }

    #[test]
    fn debug_never_prints_the_payload() {
        let rec = UserRecord::new("secret-key", "secret-data");
        let shown = format!("{rec:?}");
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn a_shared_key_is_the_same_record_as_an_owned_one() {
        let keys = Bytes::from_static("ab\u{e9}".as_bytes());
        let shared = UserRecord::with_shared_key(keys.slice(0..4), "x").unwrap();
        let owned = UserRecord::new("ab\u{e9}", "x");
        assert_eq!(shared, owned);
        assert_eq!(shared.partition_key(), "ab\u{e9}");
        assert_eq!(shared.hash_key(), owned.hash_key());
        assert_eq!(shared.billed_size(), owned.billed_size());
        assert_eq!(shared.clone().into_parts(), owned.into_parts());
        assert!(!format!("{shared:?}").contains("ab"));
        // Half of the two-byte character is not UTF-8.
        assert!(UserRecord::with_shared_key(keys.slice(0..3), "x").is_err());
        assert_eq!(
            UserRecord::with_shared_key(Bytes::new(), "x")
                .unwrap()
                .validate(1024),
            Err(Error::EmptyPartitionKey)
        );
    }

    #[test]
    fn hash_key_prefers_the_explicit_one() {
        let rec = UserRecord::new("a", "x");
        assert_eq!(rec.hash_key(), partition_key_hash("a"));
        assert_eq!(rec.with_explicit_hash_key(7).hash_key(), 7);
    }
}
