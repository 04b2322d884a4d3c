//! An envelope is one service record (a KPL aggregate, a packed Firehose
//! record or a single user record) with the tickets of the user records it
//! carries: the unit the dispatcher rate-limits, batches and retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::packer::Packed;
use super::ticket::Ticket;
use crate::completion::Attempt;
use crate::sink::OutRecord;

#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) record: OutRecord,
    pub(crate) aggregated: bool,
    pub(crate) tickets: Vec<Ticket>,
    /// The shard it was predicted for (empty for Firehose).
    pub(crate) shard_id: Arc<str>,
    /// Bytes of the user records, as counted in metrics.
    pub(crate) user_bytes: u64,
    pub(crate) first_received: Instant,
    /// The earliest `record_ttl` deadline of its records.
    pub(crate) deadline: Instant,
    /// When it should go even if the request is not full.
    pub(crate) sendable_at: Instant,
    /// Backoff: not before this instant.
    pub(crate) not_before: Option<Instant>,
    pub(crate) retries: u32,
    pub(crate) last_attempt_end: Option<Instant>,
}

impl std::fmt::Debug for OutRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutRecord")
            .field("partition_key_len", &self.partition_key.len())
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl Envelope {
    pub(crate) fn new(
        packed: Packed,
        tickets: Vec<Ticket>,
        shard_id: Arc<str>,
        max_buffered_time: Duration,
        ttl: Duration,
        now: Instant,
    ) -> Self {
        let first_received = tickets.iter().map(|t| t.received_at).min().unwrap_or(now);
        let user_bytes = tickets
            .iter()
            .map(|t| t.reserved_bytes.saturating_sub(super::PER_RECORD_OVERHEAD) as u64)
            .sum();
        Envelope {
            record: packed.record,
            aggregated: packed.aggregated,
            deadline: first_received + ttl,
            sendable_at: first_received + max_buffered_time,
            tickets,
            shard_id,
            user_bytes,
            first_received,
            not_before: None,
            retries: 0,
            last_attempt_end: None,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.record.billed_size()
    }

    /// When this envelope may be sent, ignoring rate limits.
    pub(crate) fn ready_at(&self) -> Instant {
        match self.not_before {
            Some(t) => t.max(self.sendable_at),
            None => self.sendable_at,
        }
    }

    /// Records one try in every ticket's history.
    pub(crate) fn record_attempt(
        &mut self,
        started: Instant,
        duration: Duration,
        error: Option<(&str, &str)>,
    ) {
        for ticket in &mut self.tickets {
            let waited_since = self.last_attempt_end.unwrap_or(ticket.received_at);
            ticket.attempts.push(Attempt {
                delay: started.saturating_duration_since(waited_since),
                duration,
                error_code: error.map(|(code, _)| code.to_owned()),
                error_message: error.map(|(_, message)| message.to_owned()),
            });
        }
        self.last_attempt_end = Some(started + duration);
    }
}
