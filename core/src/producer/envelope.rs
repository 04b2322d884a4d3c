//! An envelope is one service record (a KPL aggregate, a packed Firehose
//! record or a single user record) with the tickets of the user records it
//! carries: the unit the dispatcher rate-limits, batches and retries.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::packer::Packed;
use super::ticket::Ticket;
use crate::completion::{Attempt, Attempts};
use crate::sink::OutRecord;

#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) record: OutRecord,
    pub(crate) aggregated: bool,
    tickets: Vec<Ticket>,
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
    /// Tries of this envelope, kept once for all its records (an aggregate
    /// of 500 records retried 20 times would otherwise hold 10,000 copies
    /// of the error messages); folded into each ticket when the tickets
    /// leave the envelope.
    attempts: Vec<Attempt>,
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
            attempts: Vec::new(),
        }
    }

    /// The tickets, each with this envelope's attempts added to its own
    /// history. Every path by which a record leaves an envelope (completion,
    /// re-routing, expiry) goes through here. Tickets without an earlier
    /// history (the common case) share this envelope's list.
    pub(crate) fn into_tickets(self) -> Vec<Ticket> {
        let mut tickets = self.tickets;
        if !self.attempts.is_empty() {
            let attempts = Attempts::from(self.attempts);
            for ticket in &mut tickets {
                ticket.attempts = ticket.attempts.followed_by(&attempts);
            }
        }
        tickets
    }

    /// When the TTL of its most recently received record runs out.
    pub(crate) fn deadline_of_newest(&self, ttl: Duration) -> Instant {
        self.tickets
            .iter()
            .map(|t| t.deadline(ttl))
            .max()
            .unwrap_or(self.deadline)
    }

    /// Number of user records carried.
    pub(crate) fn record_count(&self) -> usize {
        self.tickets.len()
    }

    /// The most recent try, if any: this envelope's, or, for records
    /// re-routed here from an earlier envelope, the one they carry.
    pub(crate) fn last_attempt(&self) -> Option<&Attempt> {
        self.attempts
            .last()
            .or_else(|| self.tickets.iter().filter_map(|t| t.attempts.last()).next())
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

    /// Records one try. The wait is counted from the envelope's oldest
    /// record for the first try, from the previous try after that.
    pub(crate) fn record_attempt(
        &mut self,
        started: Instant,
        duration: Duration,
        error: Option<(&str, &str)>,
    ) {
        let waited_since = self.last_attempt_end.unwrap_or(self.first_received);
        self.attempts.push(Attempt {
            delay: started.saturating_duration_since(waited_since),
            duration,
            error_code: error.map(|(code, _)| code.to_owned()),
            error_message: error.map(|(_, message)| message.to_owned()),
        });
        self.last_attempt_end = Some(started + duration);
    }
}
