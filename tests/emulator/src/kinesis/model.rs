//! The data model of the Kinesis side: streams, their shards and each
//! shard's log of records, the topology that routes hash keys to open
//! shards, sequence numbers, and the hash-range arithmetic of resharding.
//!
//! It is kept apart from the operations so that the invariants (shards
//! cover the hash space, sequence numbers increase, closed shards keep
//! their records) live in one place. Beyond a sequence number's decimal
//! form it knows nothing of the wire: the operations (sibling modules)
//! parse a request, then read and change these types under the locks
//! described in the parent module.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};
use serde::{Serialize, Serializer};

use crate::config::ShardLimits;
use crate::limits::RateWindow;

/// The hash key of a partition key: MD5 of its UTF-8 bytes, big-endian.
pub(super) fn partition_key_hash(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// Where shard `i` of `n` starts when 0..2^128-1 is split evenly, as AWS
/// does at CreateStream and UpdateShardCount: steps of floor(2^128 / n).
pub(super) fn even_split(n: u32) -> Vec<(u128, u128)> {
    let n = u128::from(n.max(1));
    if n == 1 {
        return vec![(0, u128::MAX)];
    }
    // floor(2^128 / n) without overflowing: 2^128 = MAX + 1.
    let step = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i + 1 == n {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

/// A sequence number: a per-stream counter shown as a 56-digit decimal
/// starting with 49, like AWS's. Every number of a stream has the same
/// width, so they compare the same as strings and as big integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct SeqNo(u64);

impl SeqNo {
    const DIGITS: usize = 56;

    pub(super) fn parse(text: &str) -> Option<SeqNo> {
        let digits = text.strip_prefix("49")?;
        if text.len() != Self::DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        u64::try_from(digits.parse::<u128>().ok()?).ok().map(SeqNo)
    }
}

impl fmt::Display for SeqNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "49{:054}", self.0)
    }
}

impl Serialize for SeqNo {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug)]
pub(super) struct Stored {
    pub(super) seq: SeqNo,
    pub(super) arrival: SystemTime,
    pub(super) partition_key: Box<str>,
    pub(super) explicit_hash_key: Option<Box<str>>,
    pub(super) data: Bytes,
    pub(super) hash_key: u128,
}

#[derive(Debug)]
pub(super) struct Closure {
    pub(super) ending_seq: SeqNo,
    pub(super) at: SystemTime,
    pub(super) children: Vec<Arc<Shard>>,
}

#[derive(Debug, Default)]
pub(super) struct ShardCounters {
    pub(super) accepted_records: u64,
    pub(super) accepted_bytes: u64,
    pub(super) throttled_records: u64,
    pub(super) failed_records: u64,
    pub(super) peak_utilisation: f64,
}

/// Everything about a shard that changes; behind the shard's mutex.
#[derive(Debug, Default)]
pub(super) struct ShardLog {
    /// Retained records; `records[0]` has position `first_position`.
    pub(super) records: VecDeque<Stored>,
    pub(super) first_position: u64,
    /// Position of the next record written (positions are what iterators
    /// point at; they survive trimming, unlike indexes).
    pub(super) next_position: u64,
    pub(super) closed: Option<Closure>,
    pub(super) window: RateWindow,
    pub(super) counters: ShardCounters,
}

#[derive(Debug)]
pub(super) struct Shard {
    pub(super) number: usize,
    pub(super) id: String,
    pub(super) parent: Option<String>,
    pub(super) adjacent_parent: Option<String>,
    pub(super) start: u128,
    pub(super) end: u128,
    pub(super) starting_seq: SeqNo,
    pub(super) log: Mutex<ShardLog>,
}

impl Shard {
    pub(super) fn new(
        number: usize,
        range: (u128, u128),
        parents: [Option<String>; 2],
        seq: SeqNo,
    ) -> Self {
        let [parent, adjacent_parent] = parents;
        Shard {
            number,
            id: format!("shardId-{number:012}"),
            parent,
            adjacent_parent,
            start: range.0,
            end: range.1,
            starting_seq: seq,
            log: Mutex::new(ShardLog::default()),
        }
    }

    fn overlaps(&self, start: u128, end: u128) -> bool {
        self.start <= end && start <= self.end
    }
}

/// The shards of a stream. Shard numbers are indexes into `all`.
#[derive(Debug, Default)]
pub(super) struct Topology {
    pub(super) all: Vec<Arc<Shard>>,
    /// Open shards sorted by hash range; together they cover 0..2^128-1.
    pub(super) open: Vec<Arc<Shard>>,
}

impl Topology {
    pub(super) fn route(&self, hash_key: u128) -> &Arc<Shard> {
        let i = self.open.partition_point(|s| s.end < hash_key);
        &self.open[i.min(self.open.len() - 1)]
    }

    pub(super) fn find(&self, shard_id: &str) -> Option<&Arc<Shard>> {
        let number: usize = shard_id.strip_prefix("shardId-")?.parse().ok()?;
        self.all.get(number).filter(|s| s.id == shard_id)
    }
}

#[derive(Debug)]
pub(super) struct Stream {
    pub(super) name: String,
    pub(super) arn: String,
    pub(super) created: SystemTime,
    pub(super) topology: RwLock<Topology>,
    /// Source of sequence numbers; taken under a shard's lock, so numbers
    /// increase within every shard, and children start above their parents.
    pub(super) next_seq: AtomicU64,
}

impl Stream {
    pub(super) fn take_seq(&self) -> SeqNo {
        SeqNo(self.next_seq.fetch_add(1, Ordering::Relaxed))
    }

    pub(super) fn open_shard_count(&self) -> usize {
        self.topology.read().open.len()
    }

    /// Opens `ranges` as new shards that replace `parents` (closed here).
    /// Parent numbers of each child are the closed shards its range
    /// overlaps; AWS can name two, which is all SplitShard, MergeShards and
    /// an UpdateShardCount within [half, double] produce for even ranges.
    pub(super) fn reshard(
        &self,
        topology: &mut Topology,
        parents: &[Arc<Shard>],
        ranges: &[(u128, u128)],
    ) {
        let now = SystemTime::now();
        let mut logs: Vec<_> = parents.iter().map(|p| p.log.lock()).collect();
        for log in &mut logs {
            log.closed = Some(Closure {
                ending_seq: self.take_seq(),
                at: now,
                children: Vec::new(),
            });
        }
        let mut children = Vec::with_capacity(ranges.len());
        for &(start, end) in ranges {
            let mut overlapping = parents.iter().filter(|p| p.overlaps(start, end));
            let parent_ids = [
                overlapping.next().map(|p| p.id.clone()),
                overlapping.next().map(|p| p.id.clone()),
            ];
            let child = Arc::new(Shard::new(
                topology.all.len(),
                (start, end),
                parent_ids,
                self.take_seq(),
            ));
            topology.all.push(Arc::clone(&child));
            children.push(child);
        }
        for (parent, log) in parents.iter().zip(&mut logs) {
            if let Some(closure) = log.closed.as_mut() {
                closure.children = children
                    .iter()
                    .filter(|c| parent.overlaps(c.start, c.end))
                    .cloned()
                    .collect();
            }
        }
        drop(logs);
        topology
            .open
            .retain(|s| !parents.iter().any(|p| Arc::ptr_eq(p, s)));
        topology.open.extend(children);
        topology.open.sort_by_key(|s| s.start);
    }
}

/// What happened to one record of a put.
pub(super) enum Appended {
    Stored(SeqNo),
    Throttled,
}

impl ShardLog {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn append(
        &mut self,
        stream: &Stream,
        now: Instant,
        arrival: SystemTime,
        limits: Option<ShardLimits>,
        retain: Option<usize>,
        record: RecordIn<'_>,
    ) -> Appended {
        let cost = (record.data.len() + record.partition_key.len()) as u64;
        self.window.expire(now);
        if let Some(l) = limits
            && !self
                .window
                .fits(cost, 1, l.bytes_per_second, l.records_per_second)
        {
            self.counters.throttled_records += 1;
            return Appended::Throttled;
        }
        self.window.add(now, cost, 1);
        let seq = stream.take_seq();
        self.counters.accepted_records += 1;
        self.counters.accepted_bytes += cost;
        let utilisation = self.utilisation(limits);
        if utilisation > self.counters.peak_utilisation {
            self.counters.peak_utilisation = utilisation;
        }
        self.next_position += 1;
        if retain.is_none_or(|n| n > 0) {
            self.records.push_back(Stored {
                seq,
                arrival,
                partition_key: record.partition_key.into(),
                explicit_hash_key: record.explicit_hash_key.map(Into::into),
                data: record.data,
                hash_key: record.hash_key,
            });
        }
        if let Some(n) = retain {
            while self.records.len() > n {
                self.records.pop_front();
            }
        }
        self.first_position = self.next_position - self.records.len() as u64;
        Appended::Stored(seq)
    }

    /// Share of the quota used over the last second (window already expired).
    fn utilisation(&self, limits: Option<ShardLimits>) -> f64 {
        utilisation(self.window.totals(), limits)
    }
}

/// The larger of the bytes and records ratios against the quota (the
/// default quota when limits are off, so the figure stays meaningful).
pub(super) fn utilisation((bytes, records): (u64, u64), limits: Option<ShardLimits>) -> f64 {
    let l = limits.unwrap_or_default();
    let b = bytes as f64 / l.bytes_per_second.max(1) as f64;
    let r = records as f64 / l.records_per_second.max(1) as f64;
    b.max(r)
}

/// One record of a put, validated and decoded.
pub(super) struct RecordIn<'a> {
    pub(super) partition_key: &'a str,
    pub(super) explicit_hash_key: Option<&'a str>,
    pub(super) data: Bytes,
    pub(super) hash_key: u128,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_split_matches_aws() {
        let two = even_split(2);
        assert_eq!(two[0], (0, (1u128 << 127) - 1));
        assert_eq!(two[1], (1u128 << 127, u128::MAX));
        let three = even_split(3);
        assert_eq!(
            three[1].0,
            113_427_455_640_312_821_154_458_202_477_256_070_485
        );
        assert_eq!(three[2].1, u128::MAX);
        let four = even_split(4);
        assert_eq!(
            four[1].0,
            85_070_591_730_234_615_865_843_651_857_942_052_864
        );
        for n in 1..50 {
            let ranges = even_split(n);
            assert_eq!(ranges[0].0, 0);
            assert_eq!(ranges.last().unwrap().1, u128::MAX);
            for w in ranges.windows(2) {
                assert_eq!(w[0].1 + 1, w[1].0);
            }
        }
    }

    #[test]
    fn partition_key_hash_is_big_endian_md5() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(partition_key_hash("a"), 0x0cc175b9c0f1b6a831c399e269772661);
    }

    #[test]
    fn sequence_numbers_round_trip_and_order_as_strings() {
        let a = SeqNo(9).to_string();
        let b = SeqNo(10).to_string();
        assert_eq!(a.len(), 56);
        assert!(a < b);
        assert_eq!(SeqNo::parse(&b), Some(SeqNo(10)));
        assert_eq!(SeqNo::parse("12"), None);
    }
}
