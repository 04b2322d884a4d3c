//! The caller's side of a stream's pipeline: hash the record, predict its
//! shard from the shard map, and add it to that shard's packer. This runs
//! on the thread that calls `send`, so aggregation scales with the callers
//! and no channel hop is paid per record.
//!
//! The shard map and the per-shard buffers are replaced together when the
//! map changes: the old set is marked retired and drained by the
//! dispatcher, and a caller that finds its buffer retired simply routes
//! again with the new map.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::sync::mpsc;

use super::envelope::Envelope;
use super::packer::{Packer, Packing};
use super::ticket::{Accounting, Ticket};
use crate::config::FirehoseFraming;
use crate::metrics::StreamMetrics;
use crate::record::UserRecord;
use crate::shard_map::ShardMap;

/// Messages from callers (and from the dispatcher to itself) to a stream's
/// dispatcher.
#[derive(Debug)]
pub(crate) enum Command {
    /// A sealed service record, ready to be collected into a request
    /// (boxed: it is large, and sent once per aggregate, not per record).
    Envelope(Box<Envelope>),
    /// Records are waiting for the first shard map.
    Unrouted,
    /// Something changed (a flush started): look again.
    Wake,
    /// Fail whatever is left and stop once nothing is in flight.
    Shutdown,
}

/// One shard's buffer: a packer and the tickets of the records in it, in
/// the same order.
#[derive(Debug)]
pub(crate) struct ShardBuffer {
    pub(crate) packer: Packer,
    pub(crate) tickets: Vec<Ticket>,
    pub(crate) oldest: Option<Instant>,
}

impl ShardBuffer {
    fn new(packing: Packing) -> Self {
        ShardBuffer {
            packer: Packer::new(packing),
            tickets: Vec::new(),
            oldest: None,
        }
    }

    /// Swaps the contents out for sealing outside the lock.
    pub(crate) fn take_contents(&mut self, packing: Packing) -> Option<(Packer, Vec<Ticket>)> {
        self.take_contents_sized(packing, 0)
    }

    /// Like [`ShardBuffer::take_contents`], with room reserved for
    /// `records` records in the fresh buffer: a buffer that just filled up
    /// will likely fill up again, and growing its vectors and tables from
    /// empty every time costs a reallocation and a copy per doubling.
    fn take_contents_sized(
        &mut self,
        packing: Packing,
        records: usize,
    ) -> Option<(Packer, Vec<Ticket>)> {
        if self.tickets.is_empty() {
            return None;
        }
        self.oldest = None;
        Some((
            std::mem::replace(&mut self.packer, Packer::with_capacity(packing, records)),
            std::mem::replace(&mut self.tickets, Vec::with_capacity(records)),
        ))
    }
}

/// A shard map with one buffer per open shard.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) map: Option<Arc<ShardMap>>,
    pub(crate) shard_ids: Vec<Arc<str>>,
    pub(crate) buffers: Vec<Mutex<ShardBuffer>>,
    /// Records that arrived before the first shard map, in arrival order.
    pub(crate) unrouted: Mutex<VecDeque<(UserRecord, Ticket)>>,
    pub(crate) retired: AtomicBool,
}

impl Routing {
    pub(crate) fn new(map: Option<Arc<ShardMap>>, packing: Packing) -> Self {
        let shard_ids: Vec<Arc<str>> = map
            .iter()
            .flat_map(|m| m.shards())
            .map(|s| Arc::from(s.shard_id.as_str()))
            .collect();
        let buffers = shard_ids
            .iter()
            .map(|_| Mutex::new(ShardBuffer::new(packing)))
            .collect();
        Routing {
            map,
            shard_ids,
            buffers,
            unrouted: Mutex::new(VecDeque::new()),
            retired: AtomicBool::new(false),
        }
    }
}

/// The shared part of one stream's pipeline.
#[derive(Debug)]
pub(crate) struct StreamPipeline {
    pub(crate) name: Arc<str>,
    pub(crate) routing: RwLock<Arc<Routing>>,
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) metrics: Arc<StreamMetrics>,
    pub(crate) accounting: Arc<Accounting>,
    pub(crate) packing: Packing,
    pub(crate) max_buffered_time: Duration,
    pub(crate) record_ttl: Duration,
    /// Set when the dispatcher stops for good.
    pub(crate) shut_down: AtomicBool,
}

impl StreamPipeline {
    /// Adds a record to the buffer of the shard it is predicted for; seals
    /// and hands the buffer to the dispatcher when it is full.
    pub(crate) fn route(&self, record: UserRecord, ticket: Ticket) {
        let mut item = (record, ticket);
        loop {
            let routing = self.routing.read().clone();
            match self.route_into(&routing, item.0, item.1) {
                Ok(()) => return,
                Err((record, ticket)) => {
                    if self.shut_down.load(Ordering::Acquire) {
                        // The dispatcher has stopped: no routing will follow.
                        drop(record);
                        ticket.fail(
                            crate::FailureKind::Closed,
                            None,
                            "the producer was closed before this record was sent".into(),
                        );
                        return;
                    }
                    // Retired: the dispatcher is moving this routing's
                    // records into the next one and publishes it when done.
                    item = (record, ticket);
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Adds a record to `routing`; hands it back if that routing is retired.
    pub(crate) fn route_into(
        &self,
        routing: &Routing,
        record: UserRecord,
        ticket: Ticket,
    ) -> Result<(), (UserRecord, Ticket)> {
        let Some(map) = &routing.map else {
            let mut unrouted = routing.unrouted.lock();
            if routing.retired.load(Ordering::Acquire) {
                return Err((record, ticket));
            }
            let was_empty = unrouted.is_empty();
            unrouted.push_back((record, ticket));
            drop(unrouted);
            if was_empty {
                let _ = self.commands.send(Command::Unrouted);
            }
            return Ok(());
        };
        let index = map.lookup_index(ticket.hash_key);
        let mut buffer = routing.buffers[index].lock();
        // Checked under the buffer lock: the dispatcher retires a routing
        // before it drains the buffers, so a record added here is either
        // drained or sees the flag and goes round again.
        if routing.retired.load(Ordering::Acquire) {
            return Err((record, ticket));
        }
        let sealed = self.add(&mut buffer, record, ticket);
        drop(buffer);
        if let Some(sealed) = sealed {
            for (packer, tickets) in sealed {
                self.send_sealed(routing.shard_ids[index].clone(), packer, tickets);
            }
        }
        Ok(())
    }

    /// Adds to a locked buffer; returns what became full (at most two: the
    /// previous contents, and this record if it fills a packer alone), or
    /// the record alone if it is too large to aggregate (the buffer is then
    /// left as it was).
    ///
    /// `None` in the common case: the packers are large values, and moving
    /// an array of two optional ones out of here for every record was a
    /// visible share of the caller's cost.
    fn add(
        &self,
        buffer: &mut ShardBuffer,
        record: UserRecord,
        ticket: Ticket,
    ) -> Option<Vec<(Packer, Vec<Ticket>)>> {
        if self.packing.sends_alone(&record) {
            let mut alone = Packer::new(Packing::Single {
                framing: FirehoseFraming::None,
            });
            if alone.try_add(record).is_err() {
                unreachable!("an empty packer accepts any record");
            }
            return Some(vec![(alone, vec![ticket])]);
        }
        let mut sealed = None;
        if let Err(record) = buffer.packer.try_add(record) {
            let hint = buffer.tickets.len();
            sealed = buffer
                .take_contents_sized(self.packing, hint)
                .map(|contents| vec![contents]);
            // An empty packer takes any record.
            if buffer.packer.try_add(record).is_err() {
                unreachable!("an empty packer accepts any record");
            }
        }
        if buffer.oldest.is_none() {
            buffer.oldest = Some(ticket.received_at);
        }
        buffer.tickets.push(ticket);
        if buffer.packer.is_full()
            && let Some(contents) = buffer.take_contents(self.packing)
        {
            sealed.get_or_insert_with(Vec::new).push(contents);
        }
        sealed
    }

    /// Seals a packer's contents into an envelope for the dispatcher.
    pub(crate) fn send_sealed(&self, shard_id: Arc<str>, packer: Packer, tickets: Vec<Ticket>) {
        if let Some(envelope) = self.seal(shard_id, packer, tickets, Instant::now()) {
            // The dispatcher outlives every sender; if it is gone the
            // envelope's tickets complete as closed when dropped.
            let _ = self.commands.send(Command::Envelope(Box::new(envelope)));
        }
    }

    pub(crate) fn seal(
        &self,
        shard_id: Arc<str>,
        mut packer: Packer,
        tickets: Vec<Ticket>,
        now: Instant,
    ) -> Option<Envelope> {
        let packed = packer.take()?;
        Some(Envelope::new(
            packed,
            tickets,
            shard_id,
            self.max_buffered_time,
            self.record_ttl,
            now,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::capacity::Capacity;
    use crate::producer::ticket::Notify;
    use crate::shard_map::Shard;

    /// A one-shard stream's pipeline aggregating records of at most 4096
    /// billed bytes, and the dispatcher's end of its channel.
    fn pipeline() -> (StreamPipeline, mpsc::UnboundedReceiver<Command>) {
        let packing = Packing::Kpl {
            max_size: 50 * 1024,
            max_count: 1000,
            max_record_size: 4096,
        };
        let map = ShardMap::new([Shard::new("shardId-0", 0, u128::MAX)]).unwrap();
        let metrics = Arc::new(StreamMetrics::default());
        let (commands, received) = mpsc::unbounded_channel();
        let pipeline = StreamPipeline {
            name: Arc::from("s"),
            routing: RwLock::new(Arc::new(Routing::new(Some(Arc::new(map)), packing))),
            commands,
            metrics: metrics.clone(),
            accounting: Arc::new(Accounting {
                capacity: Arc::new(Capacity::new(usize::MAX, usize::MAX)),
                metrics,
            }),
            packing,
            max_buffered_time: Duration::from_millis(100),
            record_ttl: Duration::from_secs(30),
            shut_down: AtomicBool::new(false),
        };
        (pipeline, received)
    }

    fn route(pipeline: &StreamPipeline, size: usize) {
        let record = UserRecord::new("key", vec![b'x'; size]);
        // Reserved as `send` does: the tickets left in the buffers give
        // their room back when the test drops them.
        assert!(
            pipeline
                .accounting
                .capacity
                .try_reserve(record.billed_size())
        );
        let ticket = Ticket::new(
            Notify::Callback(Box::new(|_| {})),
            record.hash_key(),
            record.billed_size(),
            pipeline.accounting.clone(),
        );
        pipeline.route(record, ticket);
    }

    fn held(pipeline: &StreamPipeline) -> usize {
        pipeline.routing.read().buffers[0].lock().tickets.len()
    }

    #[test]
    fn a_large_record_is_sealed_alone_and_leaves_the_aggregate_filling() {
        let (pipeline, mut received) = pipeline();
        route(&pipeline, 100);
        route(&pipeline, 100);
        // Billed at 4096 + 3 bytes: one more than the limit.
        route(&pipeline, 4096);
        let Ok(Command::Envelope(alone)) = received.try_recv() else {
            panic!("the large record was not sealed on arrival");
        };
        assert!(!alone.aggregated);
        assert_eq!(alone.record.data.len(), 4096);
        assert_eq!(held(&pipeline), 2, "the small records are still waiting");
        // At the limit a record is still aggregated with the others.
        route(&pipeline, 4093);
        assert!(received.try_recv().is_err());
        assert_eq!(held(&pipeline), 3);
    }
}
