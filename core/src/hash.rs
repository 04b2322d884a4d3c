//! Where a record's 128-bit hash key comes from.
//!
//! Kinesis routes a record by an unsigned 128-bit hash key: the MD5 digest of
//! its partition key (UTF-8 bytes) read as a big-endian integer, or a decimal
//! explicit hash key supplied by the caller.

use md5::{Digest, Md5};

use crate::error::{Error, Result};

/// The hash key of a partition key: MD5 of its UTF-8 bytes as a big-endian
/// `u128`.
pub fn partition_key_hash(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// Parses an explicit hash key the way the Kinesis API validates it: a
/// decimal integer without sign, spaces or leading zeros, at most
/// 2^128 - 1.
pub fn parse_explicit_hash_key(key: &str) -> Result<u128> {
    let invalid = |reason| Error::InvalidExplicitHashKey {
        key: key.chars().take(64).collect(),
        reason,
    };
    if key.is_empty() {
        return Err(invalid("it is empty"));
    }
    if !key.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("it must contain only the digits 0-9"));
    }
    if key.len() > 1 && key.starts_with('0') {
        return Err(invalid("it must not have leading zeros"));
    }
    key.parse::<u128>()
        .map_err(|_| invalid("it is greater than 2^128 - 1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_of_key_is_read_big_endian() {
        // md5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(
            partition_key_hash("a"),
            0x0cc175b9c0f1b6a831c399e269772661_u128
        );
        // md5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            partition_key_hash(""),
            0xd41d8cd98f00b204e9800998ecf8427e_u128
        );
    }

    #[test]
    fn explicit_hash_keys_follow_the_api_rules() {
        assert_eq!(parse_explicit_hash_key("0"), Ok(0));
        assert_eq!(
            parse_explicit_hash_key("340282366920938463463374607431768211455"),
            Ok(u128::MAX)
        );
        for bad in [
            "",
            "-1",
            "+1",
            " 1",
            "1 ",
            "01",
            "1.0",
            "0x10",
            "340282366920938463463374607431768211456",
            "99999999999999999999999999999999999999999",
        ] {
            let err = parse_explicit_hash_key(bad).unwrap_err();
            assert!(
                matches!(err, Error::InvalidExplicitHashKey { .. }),
                "{bad:?} gave {err:?}"
            );
        }
    }
}
