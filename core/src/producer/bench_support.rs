//! Entry points for the criterion benchmarks in `benches/` (crate
//! `shardline-benches`) into parts of the pipeline that are otherwise
//! private: a shard's rate limiter and the collector that fills
//! `PutRecords` requests. Not a supported API: hidden from the docs and
//! free to change with the internals it exposes.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::capacity::Capacity;
use super::dispatcher::{ShardQueue, collect_batch, request_records};
use super::envelope::Envelope;
use super::packer::{Packer, Packing};
use super::ticket::{Accounting, Notify, Ticket};
use super::{PER_RECORD_OVERHEAD, Settings};
use crate::config::{Config, FirehoseFraming};
use crate::limiter::{Quota, RateLimiter};
use crate::metrics::StreamMetrics;
use crate::record::UserRecord;
use crate::sink::OutRecord;

/// One shard's rate limiter, configured as a default Kinesis producer's
/// (adaptive, `rate_limit` 150%) with the given quota.
#[derive(Debug)]
pub struct Limiter(RateLimiter);

impl Limiter {
    /// A limiter for a shard of `bytes_per_second` and `records_per_second`.
    pub fn new(bytes_per_second: u64, records_per_second: u64, now: Instant) -> Self {
        let config = Config::default();
        Limiter(RateLimiter::new(
            Quota {
                bytes_per_second,
                records_per_second,
                requests_per_second: None,
            },
            config.rate_limit_percent,
            config.adaptive_rate_limit,
            now,
        ))
    }

    /// What the collector does for each Kinesis record it considers: asks
    /// whether `bytes` may go at `now` and, if so, accounts them.
    pub fn admit(&mut self, bytes: usize, now: Instant) -> bool {
        if self.0.ready(bytes, now) {
            self.0.take(bytes, now);
            true
        } else {
            false
        }
    }

    /// What the dispatcher does for each stored Kinesis record of `bytes`.
    pub fn on_success(&mut self, bytes: usize, now: Instant) {
        self.0.on_success(bytes, now);
    }
}

/// Sealed envelopes (KPL aggregates with their records' tickets), spread
/// over shard queues, ready for the collector.
#[derive(Debug)]
pub struct CollectorInput {
    envelopes: Vec<(Arc<str>, Envelope)>,
    shard_ids: Vec<Arc<str>>,
    user_records: usize,
    max_count: usize,
    max_bytes: usize,
}

/// What [`CollectorInput::collect_all`] made: the requests' record lists
/// and the envelopes they came from (dropping it fails their tickets, as
/// closing a producer would).
#[derive(Debug)]
pub struct CollectorOutput {
    requests: Vec<(Vec<OutRecord>, Vec<Envelope>)>,
}

impl CollectorOutput {
    /// Number of requests made.
    pub fn requests(&self) -> usize {
        self.requests.len()
    }
}

impl CollectorInput {
    /// Aggregates `records` (round-robin over `shards` shards) with the
    /// default configuration's KPL limits and seals the aggregates; records
    /// too large to aggregate are sealed alone, as the producer does.
    pub fn new(records: Vec<UserRecord>, shards: usize) -> Self {
        let config = Config::default();
        let settings = Settings::new(&config, super::Service::Kinesis);
        let metrics = Arc::new(StreamMetrics::default());
        let accounting = Arc::new(Accounting {
            capacity: Arc::new(Capacity::new(usize::MAX, usize::MAX)),
            metrics,
        });
        let shards = shards.max(1);
        let shard_ids: Vec<Arc<str>> = (0..shards)
            .map(|i| Arc::from(format!("shardId-{i:012}").as_str()))
            .collect();
        let mut packers: Vec<(Packer, Vec<Ticket>)> = (0..shards)
            .map(|_| (Packer::new(settings.packing), Vec::new()))
            .collect();
        let now = Instant::now();
        let mut envelopes = Vec::new();
        let user_records = records.len();
        let seal = |shard: usize, packer: &mut Packer, tickets: Vec<Ticket>| {
            let packed = packer.take().expect("a packer with tickets is not empty");
            Envelope::new(
                packed,
                tickets,
                shard_ids[shard].clone(),
                Duration::from_millis(100),
                Duration::from_secs(30),
                now,
            )
        };
        for (i, record) in records.into_iter().enumerate() {
            let shard = i % shards;
            let ticket = Ticket::new(
                Notify::Callback(Box::new(|_| {})),
                record.hash_key(),
                record.billed_size() + PER_RECORD_OVERHEAD,
                accounting.clone(),
            );
            if settings.packing.sends_alone(&record) {
                // As the producer does: sealed on its own, at once.
                let mut alone = Packer::new(Packing::Single {
                    framing: FirehoseFraming::None,
                });
                if alone.try_add(record).is_err() {
                    unreachable!("an empty packer accepts any record");
                }
                envelopes.push((
                    shard_ids[shard].clone(),
                    seal(shard, &mut alone, vec![ticket]),
                ));
                continue;
            }
            let (packer, tickets) = &mut packers[shard];
            if let Err(record) = packer.try_add(record) {
                let full = std::mem::take(tickets);
                envelopes.push((shard_ids[shard].clone(), seal(shard, packer, full)));
                if packer.try_add(record).is_err() {
                    unreachable!("an empty packer accepts any record");
                }
            }
            tickets.push(ticket);
        }
        for (shard, (packer, tickets)) in packers.iter_mut().enumerate() {
            if !tickets.is_empty() {
                let rest = std::mem::take(tickets);
                envelopes.push((shard_ids[shard].clone(), seal(shard, packer, rest)));
            }
        }
        CollectorInput {
            envelopes,
            shard_ids,
            user_records,
            max_count: settings.collection_max_count,
            max_bytes: settings.collection_max_size,
        }
    }

    /// Number of Kinesis records (aggregates).
    pub fn kinesis_records(&self) -> usize {
        self.envelopes.len()
    }

    /// Number of user records inside them.
    pub fn user_records(&self) -> usize {
        self.user_records
    }

    /// What the dispatcher does with them, limits lifted: queue each
    /// envelope on its shard, then fill requests (shard by shard in turn,
    /// each Kinesis record through its shard's limiter) until every queue
    /// is empty, and make each request's record list.
    pub fn collect_all(self) -> CollectorOutput {
        let created = Instant::now();
        // Limiters start with empty buckets: a moment later, a lifted
        // quota has refilled them far beyond what is queued.
        let now = created + Duration::from_millis(1);
        let mut queues: HashMap<Arc<str>, ShardQueue> = self
            .shard_ids
            .iter()
            .map(|id| {
                let queue = ShardQueue {
                    envelopes: VecDeque::new(),
                    limiter: Limiter::new(1 << 40, 1 << 40, created).0,
                };
                (id.clone(), queue)
            })
            .collect();
        let mut queued = 0;
        for (shard, envelope) in self.envelopes {
            queues
                .get_mut(&shard)
                .expect("a queue per shard")
                .envelopes
                .push_back(envelope);
            queued += 1;
        }
        let mut requests = Vec::new();
        let mut next_shard = 0;
        while queued > 0 {
            let (batch, _bytes, _wake) = collect_batch(
                &mut queues,
                &self.shard_ids,
                next_shard,
                now,
                self.max_count,
                self.max_bytes,
            );
            next_shard = (next_shard + 1) % self.shard_ids.len();
            assert!(
                !batch.is_empty(),
                "limits are lifted: every batch has records"
            );
            queued -= batch.len();
            requests.push((request_records(&batch), batch));
        }
        CollectorOutput { requests }
    }
}
