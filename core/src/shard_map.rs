//! The stream's shards and their hash-key ranges: which shard a hash key
//! goes to.
//!
//! Built from `ListShards` output filtered to open shards (those without an
//! ending sequence number). The open shards of a stream partition the
//! 128-bit hash-key space exactly; a response that leaves a gap or overlaps
//! is rejected rather than guessed at, because a wrong guess misroutes
//! aggregated records and KCL then drops them.

use std::fmt;

use crate::error::{Error, Result};

/// One open shard and the inclusive hash-key range it owns.
#[derive(Clone, PartialEq, Eq)]
pub struct Shard {
    /// The shard id, e.g. `shardId-000000000003`.
    pub shard_id: String,
    /// First hash key of the range (inclusive).
    pub starting_hash_key: u128,
    /// Last hash key of the range (inclusive).
    pub ending_hash_key: u128,
}

impl Shard {
    /// A shard owning `starting_hash_key..=ending_hash_key`.
    pub fn new(
        shard_id: impl Into<String>,
        starting_hash_key: u128,
        ending_hash_key: u128,
    ) -> Self {
        Shard {
            shard_id: shard_id.into(),
            starting_hash_key,
            ending_hash_key,
        }
    }

    /// Parses the decimal range strings `ListShards` returns.
    pub fn from_decimal(shard_id: &str, starting: &str, ending: &str) -> Result<Self> {
        let parse = |what: &str, s: &str| {
            s.parse::<u128>().map_err(|_| {
                Error::InvalidShardMap(format!(
                    "shard {shard_id} has a {what} hash key that is not a 128-bit decimal: {s:?}"
                ))
            })
        };
        Ok(Shard::new(
            shard_id,
            parse("starting", starting)?,
            parse("ending", ending)?,
        ))
    }

    /// True when `hash_key` is in this shard's range.
    pub fn contains(&self, hash_key: u128) -> bool {
        (self.starting_hash_key..=self.ending_hash_key).contains(&hash_key)
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}..={}]",
            self.shard_id, self.starting_hash_key, self.ending_hash_key
        )
    }
}

/// The open shards of one stream, sorted by hash-key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    shards: Vec<Shard>,
}

impl ShardMap {
    /// Builds the map from a stream's open shards, in any order.
    ///
    /// Fails unless the ranges cover `0..=2^128-1` with no gap and no
    /// overlap, or if the list is empty or names a shard twice.
    pub fn new(shards: impl IntoIterator<Item = Shard>) -> Result<Self> {
        let mut shards: Vec<Shard> = shards.into_iter().collect();
        if shards.is_empty() {
            return Err(Error::InvalidShardMap(
                "the stream has no open shards".into(),
            ));
        }
        shards.sort_by_key(|s| s.starting_hash_key);
        let mut expected_start = Some(0u128);
        for shard in &shards {
            if shard.starting_hash_key > shard.ending_hash_key {
                return Err(Error::InvalidShardMap(format!(
                    "shard {} has a range that ends before it starts",
                    shard.shard_id
                )));
            }
            match expected_start {
                None => {
                    return Err(Error::InvalidShardMap(format!(
                        "shard {} overlaps a shard that ends at 2^128-1",
                        shard.shard_id
                    )));
                }
                Some(start) if shard.starting_hash_key > start => {
                    return Err(Error::InvalidShardMap(format!(
                        "no shard covers hash keys {start}..={}",
                        shard.starting_hash_key - 1
                    )));
                }
                Some(start) if shard.starting_hash_key < start => {
                    return Err(Error::InvalidShardMap(format!(
                        "shard {} overlaps the shard before it",
                        shard.shard_id
                    )));
                }
                Some(_) => {}
            }
            expected_start = shard.ending_hash_key.checked_add(1);
        }
        if let Some(start) = expected_start {
            return Err(Error::InvalidShardMap(format!(
                "no shard covers hash keys {start}..=2^128-1"
            )));
        }
        let mut ids: Vec<&str> = shards.iter().map(|s| s.shard_id.as_str()).collect();
        ids.sort_unstable();
        if let Some(dup) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::InvalidShardMap(format!(
                "shard {} is listed twice",
                dup[0]
            )));
        }
        Ok(ShardMap { shards })
    }

    /// The shard that owns `hash_key`. Every key has one: the map covers
    /// the whole space.
    pub fn lookup(&self, hash_key: u128) -> &Shard {
        // Ranges are sorted and contiguous: the owner is the first shard
        // whose range ends at or after the key.
        let index = self
            .shards
            .partition_point(|shard| shard.ending_hash_key < hash_key);
        &self.shards[index]
    }

    /// Position of the shard owning `hash_key` in [`ShardMap::shards`];
    /// stable for the life of this map, so callers can index per-shard state
    /// with it.
    pub fn lookup_index(&self, hash_key: u128) -> usize {
        self.shards
            .partition_point(|shard| shard.ending_hash_key < hash_key)
    }

    /// The shard with this id, if it is open.
    pub fn get(&self, shard_id: &str) -> Option<&Shard> {
        self.shards.iter().find(|s| s.shard_id == shard_id)
    }

    /// The open shards, sorted by hash-key range.
    pub fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Number of open shards.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a map has at least one shard.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }

    /// The layout `CreateStream` gives `count` shards: equal ranges, the
    /// last one taking the remainder. Used by tests and the emulator-less
    /// examples.
    pub fn uniform(count: usize) -> Self {
        assert!(count > 0, "a stream has at least one shard");
        let width = u128::MAX / count as u128;
        let shards = (0..count).map(|i| {
            let start = width * i as u128 + if i == 0 { 0 } else { i as u128 };
            let end = if i + 1 == count {
                u128::MAX
            } else {
                width * (i as u128 + 1) + i as u128
            };
            Shard::new(format!("shardId-{i:012}"), start, end)
        });
        ShardMap::new(shards).expect("uniform layout is contiguous")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_owner_at_every_boundary() {
        for count in [1, 2, 3, 4, 7, 64] {
            let map = ShardMap::uniform(count);
            assert_eq!(map.len(), count);
            for shard in map.shards() {
                for key in [shard.starting_hash_key, shard.ending_hash_key] {
                    assert_eq!(map.lookup(key).shard_id, shard.shard_id);
                }
            }
            assert_eq!(map.lookup(0).shard_id, map.shards()[0].shard_id);
            assert_eq!(
                map.lookup(u128::MAX).shard_id,
                map.shards()[count - 1].shard_id
            );
        }
    }

    #[test]
    fn gaps_overlaps_and_duplicates_are_rejected() {
        let half = u128::MAX / 2;
        let ok = ShardMap::new([
            Shard::new("b", half + 1, u128::MAX),
            Shard::new("a", 0, half),
        ]);
        assert_eq!(ok.unwrap().shards()[0].shard_id, "a");

        let gap = ShardMap::new([
            Shard::new("a", 0, half),
            Shard::new("b", half + 2, u128::MAX),
        ]);
        assert!(matches!(gap, Err(Error::InvalidShardMap(m)) if m.contains("no shard covers")));

        let overlap = ShardMap::new([Shard::new("a", 0, half), Shard::new("b", half, u128::MAX)]);
        assert!(matches!(overlap, Err(Error::InvalidShardMap(m)) if m.contains("overlaps")));

        let short = ShardMap::new([Shard::new("a", 0, half)]);
        assert!(matches!(short, Err(Error::InvalidShardMap(m)) if m.contains("2^128-1")));

        let low = ShardMap::new([Shard::new("a", 1, u128::MAX)]);
        assert!(matches!(low, Err(Error::InvalidShardMap(m)) if m.contains("0..=0")));

        let dup = ShardMap::new([
            Shard::new("a", 0, half),
            Shard::new("a", half + 1, u128::MAX),
        ]);
        assert!(matches!(dup, Err(Error::InvalidShardMap(m)) if m.contains("twice")));

        assert!(ShardMap::new([]).is_err());
        assert!(Shard::from_decimal("s", "0", "-1").is_err());
    }
}
