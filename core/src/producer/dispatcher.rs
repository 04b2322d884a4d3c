//! The background side of a stream's pipeline, one task per stream.
//!
//! It owns the per-shard queues of sealed envelopes and their rate
//! limiters, collects envelopes into `PutRecords` / `PutRecordBatch`
//! requests, sends them with bounded concurrency, and acts on the outcome
//! of every entry: complete it, retry it after a backoff, re-route it after
//! the shard map changed, or fail it. It also flushes buffers that have
//! waited `record_max_buffered_time`, expires records past `record_ttl`,
//! and loads the shard map.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::Shared;
use super::envelope::Envelope;
use super::packer::unpack;
use super::routing::{Command, Routing, StreamPipeline};
use super::ticket::Ticket;
use crate::completion::FailureKind;
use crate::limiter::RateLimiter;
use crate::retry::{FailureClass, backoff, classify};
use crate::shard_map::{Shard, ShardMap};
use crate::sink::{EntryOutcome, OutRecord, RequestFailure, body_size};

/// How often queued records are checked against their TTL.
const EXPIRY_SCAN_INTERVAL: Duration = Duration::from_millis(100);
/// Most records failed per lock of the waiting list when they expire.
const EXPIRY_CHUNK: usize = 4096;
/// Least time between two shard-map loads triggered by surprises.
const MIN_REFRESH_SPACING: Duration = Duration::from_millis(500);
/// Retry delay for a map load that failed, growing with failures.
const REFRESH_BACKOFF_MIN: Duration = Duration::from_millis(200);
const REFRESH_BACKOFF_MAX: Duration = Duration::from_secs(10);
/// How soon to look again when every request slot is taken.
const PERMIT_RETRY: Duration = Duration::from_millis(2);

pub(crate) struct ShardQueue {
    pub(crate) envelopes: VecDeque<Envelope>,
    pub(crate) limiter: RateLimiter,
}

enum Event {
    RequestDone {
        batch: Vec<Envelope>,
        result: Result<Vec<EntryOutcome>, RequestFailure>,
        started: Instant,
        elapsed: Duration,
    },
    MapLoaded(Result<Vec<Shard>, RequestFailure>),
}

/// A stored aggregate that landed on a shard other than the predicted one;
/// held until the new map says which of its records that shard owns.
struct Misrouted {
    envelope: Envelope,
    actual_shard: Option<Arc<str>>,
    sequence_number: Arc<str>,
    /// When the request that stored it started (for its metrics).
    started: Instant,
}

#[derive(Default)]
struct RefreshState {
    in_progress: bool,
    wanted: bool,
    failures: u32,
    not_before: Option<Instant>,
    periodic_at: Option<Instant>,
    /// Why the last load failed (code, message), until one succeeds:
    /// records that expire waiting for a map report it.
    last_failure: Option<(String, String)>,
}

pub(crate) struct Dispatcher {
    shared: Arc<Shared>,
    pipeline: Arc<StreamPipeline>,
    commands: mpsc::UnboundedReceiver<Command>,
    requests: JoinSet<Event>,
    queues: HashMap<Arc<str>, ShardQueue>,
    order: Vec<Arc<str>>,
    next_shard: usize,
    queued_records: usize,
    queued_bytes: usize,
    misrouted: Vec<Misrouted>,
    refresh: RefreshState,
    next_expiry_scan: Instant,
    shutting_down: bool,
    /// The flush generation this dispatcher has acted on.
    seen_flush_generation: u64,
    /// True for a loop pass that serves a flush requested since the last.
    flush_pass: bool,
}

impl Dispatcher {
    pub(crate) fn new(
        shared: Arc<Shared>,
        pipeline: Arc<StreamPipeline>,
        commands: mpsc::UnboundedReceiver<Command>,
    ) -> Self {
        Dispatcher {
            shared,
            pipeline,
            commands,
            requests: JoinSet::new(),
            queues: HashMap::new(),
            order: Vec::new(),
            next_shard: 0,
            queued_records: 0,
            queued_bytes: 0,
            misrouted: Vec::new(),
            refresh: RefreshState {
                wanted: true,
                ..RefreshState::default()
            },
            next_expiry_scan: Instant::now(),
            shutting_down: false,
            seen_flush_generation: 0,
            flush_pass: false,
        }
    }

    pub(crate) async fn run(mut self) {
        let tick = buffer_scan_interval(self.pipeline.max_buffered_time);
        loop {
            let now = Instant::now();
            let generation = self.shared.flush_generation.load(Ordering::Acquire);
            self.flush_pass = generation != self.seen_flush_generation;
            self.seen_flush_generation = generation;
            if self.flush_pass {
                // Everything queued now is due, even if this pass cannot
                // send it all (no free request slot).
                for queue in self.queues.values_mut() {
                    for envelope in &mut queue.envelopes {
                        envelope.sendable_at = envelope.sendable_at.min(now);
                    }
                }
            }
            if self.shutting_down {
                self.fail_everything_queued("the producer was closed before this record was sent");
                // `close` has waited its timeout already: requests still in
                // flight are abandoned, and their records complete as
                // failed when the aborted tasks drop them (they may have
                // been stored: delivery is at least once).
                self.requests.abort_all();
                while let Some(done) = self.requests.join_next().await {
                    // A request that answered before it could be aborted
                    // keeps its outcome: its stored records succeed, and
                    // the rest fail as closed (`shutting_down` is set).
                    // A shard map that loaded is of no use any more.
                    if let Ok(Event::RequestDone {
                        batch,
                        result,
                        started,
                        elapsed,
                    }) = done
                    {
                        self.request_done(batch, result, started, elapsed);
                    }
                }
                break;
            } else {
                self.flush_aged_buffers(now);
                if now >= self.next_expiry_scan {
                    self.expire(now);
                    self.next_expiry_scan = now + EXPIRY_SCAN_INTERVAL;
                }
                self.maybe_refresh_map(now);
            }
            let mut wake = now + tick;
            if let Some(t) = self.dispatch(now) {
                wake = wake.min(t);
            }
            wake = wake.min(self.next_expiry_scan);
            if let Some(t) = self.refresh_due_at(now) {
                wake = wake.min(t.max(now));
            }

            tokio::select! {
                Some(done) = self.requests.join_next(), if !self.requests.is_empty() => {
                    match done {
                        Ok(event) => self.handle_event(event),
                        // The request task panicked: its envelopes were
                        // dropped, which completed their tickets as failed.
                        Err(e) if e.is_cancelled() => {}
                        Err(e) => tracing::error!(stream = %self.pipeline.name, "request task failed: {e}"),
                    }
                }
                command = self.commands.recv() => match command {
                    Some(c) => self.handle_command(c),
                    None => self.shutting_down = true,
                },
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            // Take everything else that is already waiting, so a busy
            // stream pays the loop's fixed costs once per batch of messages.
            while let Ok(command) = self.commands.try_recv() {
                self.handle_command(command);
            }
        }
        tracing::debug!(stream = %self.pipeline.name, "dispatcher stopped");
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Envelope(envelope) => self.enqueue(*envelope),
            Command::Unrouted | Command::Wake => {}
            Command::Shutdown => self.shutting_down = true,
        }
    }

    fn handle_event(&mut self, event: Event) {
        match event {
            Event::RequestDone {
                batch,
                result,
                started,
                elapsed,
            } => self.request_done(batch, result, started, elapsed),
            Event::MapLoaded(result) => self.map_loaded(result),
        }
    }

    fn flushing(&self) -> bool {
        self.flush_pass
            || self.shared.flushing.load(Ordering::Acquire) > 0
            || self.shared.closed.load(Ordering::Acquire)
    }

    // ----- queues -------------------------------------------------------

    fn enqueue(&mut self, envelope: Envelope) {
        if self.shutting_down {
            fail_envelope(
                envelope,
                FailureKind::Closed,
                None,
                "the producer was closed before this record was sent",
            );
            return;
        }
        match self.queues.get_mut(&envelope.shard_id) {
            Some(queue) => {
                self.queued_records += 1;
                self.queued_bytes += envelope.size();
                if envelope.retries > 0 {
                    // Retries go first: they are the oldest records of the
                    // shard, and it keeps a shard's records roughly in order.
                    queue.envelopes.push_front(envelope);
                } else {
                    push_back_in_due_order(&mut queue.envelopes, envelope);
                }
            }
            // The shard left the map while this envelope was being sealed:
            // route its records again.
            None => self.reroute(envelope),
        }
    }

    /// Routes an envelope's user records again from the start of the
    /// pipeline (after the shard map changed).
    fn reroute(&mut self, envelope: Envelope) {
        match unpack(&envelope.record, envelope.aggregated) {
            Ok(records) if records.len() == envelope.record_count() => {
                for (record, ticket) in records.into_iter().zip(envelope.into_tickets()) {
                    self.pipeline.route(record, ticket);
                }
            }
            Ok(_) | Err(_) => fail_envelope(
                envelope,
                FailureKind::Rejected,
                Some("InternalError".into()),
                "could not recover the records of an aggregate for re-routing",
            ),
        }
    }

    fn flush_aged_buffers(&mut self, now: Instant) {
        let routing = self.pipeline.routing.read().clone();
        let flushing = self.flushing();
        for (index, buffer) in routing.buffers.iter().enumerate() {
            let contents = {
                let mut buffer = buffer.lock();
                let aged = buffer.oldest.is_some_and(|t| {
                    now.saturating_duration_since(t) >= self.pipeline.max_buffered_time
                });
                if aged || (flushing && !buffer.tickets.is_empty()) {
                    buffer.take_contents(self.pipeline.packing)
                } else {
                    None
                }
            };
            if let Some((packer, tickets)) = contents
                && let Some(mut envelope) =
                    self.pipeline
                        .seal(routing.shard_ids[index].clone(), packer, tickets, now)
            {
                envelope.sendable_at = now;
                self.enqueue(envelope);
            }
        }
    }

    // ----- collecting and sending ---------------------------------------

    /// Sends every request that is due and allowed; returns when to look
    /// again.
    fn dispatch(&mut self, now: Instant) -> Option<Instant> {
        let max_count = self.shared.settings.collection_max_count;
        let max_bytes = self.shared.settings.collection_max_size;
        let mut wake: Option<Instant> = None;
        loop {
            if self.queued_records == 0 || self.shutting_down {
                return wake;
            }
            let due = self.flushing()
                || self.queued_records >= max_count
                || self.queued_bytes >= max_bytes;
            if !due {
                let earliest = self.earliest_ready();
                if earliest.is_none_or(|t| t > now) {
                    return min_instant(wake, earliest);
                }
            }
            // Bodies in flight count against the buffer cap (see
            // `Capacity`). Waiting here needs no timer: one of this
            // dispatcher's requests answering runs this loop again.
            let largest_body = body_size(
                self.queued_bytes.min(max_bytes),
                self.queued_records.min(max_count),
            );
            if !self.requests.is_empty() && !self.shared.capacity.body_fits(largest_body) {
                return wake;
            }
            let Ok(permit) = self.shared.permits.clone().try_acquire_owned() else {
                return min_instant(wake, Some(now + PERMIT_RETRY));
            };
            let (batch, limiter_wake) = self.collect(now);
            wake = min_instant(wake, limiter_wake);
            if batch.is_empty() {
                return wake;
            }
            self.send(batch, permit);
        }
    }

    fn earliest_ready(&self) -> Option<Instant> {
        self.queues
            .values()
            .filter_map(|q| q.envelopes.front().map(Envelope::ready_at))
            .min()
    }

    /// Takes envelopes, shard by shard in turn, while the request has room
    /// and each shard's limiter allows.
    fn collect(&mut self, now: Instant) -> (Vec<Envelope>, Option<Instant>) {
        let start = self.next_shard;
        self.next_shard = (self.next_shard + 1) % self.order.len().max(1);
        let (batch, bytes, wake) = collect_batch(
            &mut self.queues,
            &self.order,
            start,
            now,
            self.shared.settings.collection_max_count,
            self.shared.settings.collection_max_size,
        );
        self.queued_records -= batch.len();
        self.queued_bytes -= bytes;
        (batch, wake)
    }

    fn send(&mut self, mut batch: Vec<Envelope>, permit: OwnedSemaphorePermit) {
        let records = request_records(&batch);
        let body = self.shared.capacity.hold_body(body_size(
            records.iter().map(OutRecord::billed_size).sum(),
            records.len(),
        ));
        let sink = self.shared.sink.clone();
        let stream = self.pipeline.name.clone();
        for envelope in &mut batch {
            envelope.not_before = None;
        }
        let in_flight = InFlight(batch);
        self.requests.spawn(async move {
            let started = Instant::now();
            let result = sink.put(&stream, records).await;
            let elapsed = started.elapsed();
            drop(permit);
            drop(body);
            Event::RequestDone {
                batch: in_flight.take(),
                result,
                started,
                elapsed,
            }
        });
    }

    // ----- outcomes ------------------------------------------------------

    fn request_done(
        &mut self,
        batch: Vec<Envelope>,
        result: Result<Vec<EntryOutcome>, RequestFailure>,
        started: Instant,
        elapsed: Duration,
    ) {
        self.pipeline.metrics.request_done(elapsed, batch.len());
        let now = Instant::now();
        match result {
            Err(failure) => {
                let class = failure.class();
                for envelope in batch {
                    self.attempt_failed(
                        envelope,
                        &failure.code,
                        &failure.message,
                        class,
                        started,
                        elapsed,
                        now,
                    );
                }
            }
            Ok(outcomes) => {
                for (envelope, outcome) in batch.into_iter().zip(outcomes) {
                    match outcome {
                        EntryOutcome::Stored {
                            shard_id,
                            sequence_number,
                        } => {
                            self.stored(envelope, shard_id, sequence_number, started, elapsed, now)
                        }
                        EntryOutcome::Failed { code, message } => {
                            let class = classify(&code);
                            self.attempt_failed(
                                envelope, &code, &message, class, started, elapsed, now,
                            );
                        }
                    }
                }
            }
        }
    }

    fn stored(
        &mut self,
        mut envelope: Envelope,
        shard_id: Option<String>,
        sequence_number: String,
        started: Instant,
        elapsed: Duration,
        now: Instant,
    ) {
        envelope.record_attempt(started, elapsed, None);
        // Shared by every record of the envelope; the predicted shard's
        // name is reused when the service agrees with it.
        let shard_id: Option<Arc<str>> = shard_id.map(|actual| {
            if actual == *envelope.shard_id {
                envelope.shard_id.clone()
            } else {
                Arc::from(actual)
            }
        });
        let sequence_number: Arc<str> = Arc::from(sequence_number);
        if let Some(queue) = self.queues.get_mut(&envelope.shard_id) {
            queue.limiter.on_success(envelope.size(), now);
            if !self.shared.sink.is_firehose() {
                self.pipeline
                    .metrics
                    .shard_rate(&envelope.shard_id, queue.limiter.fraction());
            }
        }
        let predicted = &*envelope.shard_id;
        let unexpected_shard = !self.shared.sink.is_firehose()
            && shard_id
                .as_deref()
                .is_some_and(|actual| actual != predicted);
        if unexpected_shard {
            // The map is stale. A lone record went where its own key routes
            // it, so it is correct wherever it landed; an aggregate may hold
            // records that shard does not own, and KCL would drop those.
            self.want_refresh();
            if envelope.aggregated && !self.shutting_down {
                self.misrouted.push(Misrouted {
                    envelope,
                    actual_shard: shard_id,
                    sequence_number,
                    started,
                });
                return;
            }
        }
        self.complete_stored(envelope, shard_id, sequence_number, started);
    }

    fn complete_stored(
        &self,
        envelope: Envelope,
        shard_id: Option<Arc<str>>,
        sequence_number: Arc<str>,
        started: Instant,
    ) {
        self.pipeline.metrics.kinesis_record_put(
            shard_id.as_deref(),
            envelope.record_count(),
            envelope.user_bytes,
            envelope.size() as u64,
            started.saturating_duration_since(envelope.first_received),
            envelope.retries + 1,
        );
        let aggregated = envelope.aggregated;
        super::ticket::succeed_all(
            envelope.into_tickets(),
            shard_id,
            sequence_number,
            aggregated,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt_failed(
        &mut self,
        mut envelope: Envelope,
        code: &str,
        message: &str,
        class: FailureClass,
        started: Instant,
        elapsed: Duration,
        now: Instant,
    ) {
        envelope.record_attempt(started, elapsed, Some((code, message)));
        let throttled = class == FailureClass::Throttled;
        let shard = (!self.shared.sink.is_firehose()).then_some(&*envelope.shard_id);
        self.pipeline.metrics.error(code, shard, throttled);
        if let Some(queue) = self.queues.get_mut(&envelope.shard_id) {
            if throttled {
                queue.limiter.on_throttled(now);
                self.pipeline
                    .metrics
                    .shard_rate(&envelope.shard_id, queue.limiter.fraction());
            } else {
                queue.limiter.on_response(now);
            }
        }
        if code == "ResourceNotFoundException" {
            self.want_refresh();
        }
        if self.shutting_down {
            fail_envelope(envelope, FailureKind::Closed, Some(code.into()), message);
            return;
        }
        if !class.is_retryable() {
            fail_envelope(envelope, FailureKind::Rejected, Some(code.into()), message);
            return;
        }
        let settings = &self.shared.settings;
        // A throttled record needs no backoff of its own when the limiter
        // adapts: the limiter was just cut and paces the shard. A backoff
        // would also hold back the shard's queue behind it.
        let delay = if throttled && settings.adaptive_rate_limit {
            Duration::ZERO
        } else {
            backoff(envelope.retries, settings.min_backoff, settings.max_backoff)
        };
        envelope.retries += 1;
        envelope.not_before = (!delay.is_zero()).then_some(now + delay);
        if envelope.deadline <= now + delay {
            self.expire_envelope(envelope, now + delay, Some((code, message)));
        } else {
            self.enqueue(envelope);
        }
    }

    // ----- expiry --------------------------------------------------------

    fn expire(&mut self, now: Instant) {
        let ttl = self.pipeline.record_ttl;
        let shards: Vec<Arc<str>> = self.order.clone();
        for shard in shards {
            let queue = self.queues.get_mut(&shard).expect("order lists queues");
            if !queue.envelopes.iter().any(|e| e.deadline <= now) {
                continue;
            }
            let (expired, kept): (Vec<_>, Vec<_>) =
                queue.envelopes.drain(..).partition(|e| e.deadline <= now);
            queue.envelopes = kept.into();
            for envelope in expired {
                self.queued_records -= 1;
                self.queued_bytes -= envelope.size();
                self.expire_envelope(envelope, now, None);
            }
        }
        let routing = self.pipeline.routing.read().clone();
        let last_failure = self
            .refresh
            .last_failure
            .as_ref()
            .map(|(code, message)| (code.as_str(), message.as_str()));
        let code = last_failure.map(|(code, _)| code.to_owned());
        let message = expiry_message(
            ttl,
            last_failure,
            "the stream's shard map could not be loaded",
        );
        // Records waiting for a map are queued in arrival order (their
        // clock is read just before the queue's lock), so the expired ones
        // are at the front. They go in bounded chunks, failed
        // outside the lock: with an unreachable endpoint they can be the
        // whole buffer at once, and a copy of all of them would be a
        // buffer's worth of memory on top of the buffer.
        loop {
            let mut expired = Vec::new();
            {
                let mut unrouted = routing.unrouted.lock();
                while expired.len() < EXPIRY_CHUNK
                    && unrouted
                        .front()
                        .is_some_and(|(_, t)| t.deadline(ttl) <= now)
                {
                    expired.extend(unrouted.pop_front().map(|(_, ticket)| ticket));
                }
            }
            let more = expired.len() == EXPIRY_CHUNK;
            super::ticket::fail_all(expired, FailureKind::Expired, code.clone(), &message);
            if !more {
                break;
            }
        }
    }

    /// Fails the records of `envelope` whose TTL ends by `at`, and routes
    /// the others again.
    fn expire_envelope(
        &mut self,
        envelope: Envelope,
        at: Instant,
        last_error: Option<(&str, &str)>,
    ) {
        let ttl = self.pipeline.record_ttl;
        // Without a fresh error, report the last one the record met.
        let last_attempt = envelope.last_attempt().cloned();
        let last_error = last_error.or_else(|| {
            last_attempt.as_ref().and_then(|a| {
                Some((
                    a.error_code.as_deref()?,
                    a.error_message.as_deref().unwrap_or(""),
                ))
            })
        });
        let code = last_error.map(|(c, _)| c.to_owned());
        let message = expiry_message(ttl, last_error, "");
        if envelope.deadline_of_newest(ttl) <= at {
            fail_envelope(envelope, FailureKind::Expired, code, &message);
            return;
        }
        let records = match unpack(&envelope.record, envelope.aggregated) {
            Ok(records) if records.len() == envelope.record_count() => records,
            _ => {
                fail_envelope(envelope, FailureKind::Expired, code, &message);
                return;
            }
        };
        for (record, ticket) in records.into_iter().zip(envelope.into_tickets()) {
            if ticket.deadline(ttl) <= at {
                ticket.fail(FailureKind::Expired, code.clone(), message.clone());
            } else {
                self.pipeline.route(record, ticket);
            }
        }
    }

    // ----- the shard map -------------------------------------------------

    fn want_refresh(&mut self) {
        self.refresh.wanted = true;
    }

    fn refresh_due_at(&self, now: Instant) -> Option<Instant> {
        if self.refresh.in_progress || self.shutting_down {
            return None;
        }
        let wanted = self.refresh.wanted || self.has_unrouted();
        let surprise = wanted.then(|| self.refresh.not_before.unwrap_or(now).max(now));
        min_instant(surprise, self.refresh.periodic_at)
    }

    fn has_unrouted(&self) -> bool {
        let routing = self.pipeline.routing.read();
        routing.map.is_none() && !routing.unrouted.lock().is_empty()
    }

    fn maybe_refresh_map(&mut self, now: Instant) {
        if self.refresh_due_at(now).is_none_or(|t| t > now) {
            return;
        }
        self.refresh.in_progress = true;
        self.refresh.wanted = false;
        let sink = self.shared.sink.clone();
        let stream = self.pipeline.name.clone();
        self.requests
            .spawn(async move { Event::MapLoaded(sink.open_shards(&stream).await) });
    }

    fn map_loaded(&mut self, result: Result<Vec<Shard>, RequestFailure>) {
        let now = Instant::now();
        self.refresh.in_progress = false;
        self.pipeline
            .metrics
            .shard_map_refreshes
            .fetch_add(1, Ordering::Relaxed);
        let result = result.and_then(|shards| {
            ShardMap::new(shards).map_err(|e| RequestFailure::new("InvalidShardMap", e.to_string()))
        });
        match result {
            Ok(map) => {
                self.refresh.failures = 0;
                self.refresh.last_failure = None;
                self.refresh.not_before = Some(now + MIN_REFRESH_SPACING);
                self.refresh.periodic_at = (!self.shared.sink.is_firehose())
                    .then(|| now + self.shared.settings.shard_map_refresh_interval);
                self.install(map, now);
                self.resolve_misrouted();
            }
            Err(failure) => {
                self.refresh.failures += 1;
                let delay = backoff(
                    self.refresh.failures,
                    REFRESH_BACKOFF_MIN,
                    REFRESH_BACKOFF_MAX,
                );
                self.refresh.not_before = Some(now + delay);
                self.refresh.wanted = true;
                tracing::warn!(stream = %self.pipeline.name, code = %failure.code, "loading the shard map failed: {}", failure.message);
                self.refresh.last_failure = Some((failure.code.clone(), failure.message.clone()));
                if failure.class() == FailureClass::Fatal {
                    // The stream is unknown or off limits: records waiting
                    // for its map cannot go anywhere.
                    let routing = self.pipeline.routing.read().clone();
                    let waiting = std::mem::take(&mut *routing.unrouted.lock());
                    for (_, ticket) in waiting {
                        ticket.fail(
                            FailureKind::Rejected,
                            Some(failure.code.clone()),
                            failure.message.clone(),
                        );
                    }
                    // Aggregates stored on a shard the old map did not
                    // expect were waiting for a map to check which of
                    // their records that shard owns. None will come: they
                    // were stored, and complete so, as at close.
                    self.complete_misrouted();
                }
            }
        }
    }

    /// Replaces the routing with one for `map`, and moves every record
    /// buffered or queued for a shard that is gone.
    fn install(&mut self, map: ShardMap, now: Instant) {
        let current = self.pipeline.routing.read().clone();
        if current.map.as_deref() == Some(&map) {
            return;
        }
        let settings = &self.shared.settings;
        let map = Arc::new(map);
        let routing = Arc::new(Routing::new(Some(map.clone()), self.pipeline.packing));
        // Retire the old routing, move its records into the new one, and
        // only then publish the new one: callers wait (briefly) meanwhile,
        // so records that waited for this map keep their place ahead of
        // records sent after it.
        current.retired.store(true, Ordering::Release);
        let unrouted = std::mem::take(&mut *current.unrouted.lock());
        for (record, ticket) in unrouted {
            self.route_unpublished(&routing, record, ticket);
        }
        for buffer in &current.buffers {
            let (records, tickets) = {
                let mut buffer = buffer.lock();
                buffer.oldest = None;
                (
                    buffer.packer.drain_user_records(),
                    std::mem::take(&mut buffer.tickets),
                )
            };
            for (record, ticket) in records.into_iter().zip(tickets) {
                self.route_unpublished(&routing, record, ticket);
            }
        }
        *self.pipeline.routing.write() = routing.clone();

        // Queues and limiters: keep those of shards that are still open.
        let mut stale = Vec::new();
        let open: HashMap<&str, ()> = map
            .shards()
            .iter()
            .map(|s| (s.shard_id.as_str(), ()))
            .collect();
        self.queues.retain(|id, queue| {
            if open.contains_key(&**id) {
                true
            } else {
                stale.extend(queue.envelopes.drain(..));
                false
            }
        });
        for id in &routing.shard_ids {
            self.queues.entry(id.clone()).or_insert_with(|| ShardQueue {
                envelopes: VecDeque::new(),
                limiter: RateLimiter::new(
                    settings.quota,
                    settings.rate_limit_percent,
                    settings.adaptive_rate_limit,
                    now,
                ),
            });
        }
        self.order = routing.shard_ids.clone();
        self.next_shard = 0;
        for envelope in &stale {
            self.queued_records -= 1;
            self.queued_bytes -= envelope.size();
        }
        for envelope in stale {
            self.reroute(envelope);
        }
    }

    /// Routes into a routing that is not published yet (nobody else can
    /// have retired it).
    fn route_unpublished(&self, routing: &Routing, record: crate::UserRecord, ticket: Ticket) {
        if self.pipeline.route_into(routing, record, ticket).is_err() {
            unreachable!("an unpublished routing is never retired");
        }
    }

    fn resolve_misrouted(&mut self) {
        let routing = self.pipeline.routing.read().clone();
        let Some(map) = routing.map.clone() else {
            return;
        };
        for misrouted in std::mem::take(&mut self.misrouted) {
            let Misrouted {
                envelope,
                actual_shard,
                sequence_number,
                started,
            } = misrouted;
            let owner = actual_shard.as_deref().and_then(|id| map.get(id));
            let records = match unpack(&envelope.record, envelope.aggregated) {
                Ok(records) if records.len() == envelope.record_count() => records,
                _ => {
                    fail_envelope(
                        envelope,
                        FailureKind::Rejected,
                        Some("InternalError".into()),
                        "could not recover the records of a misrouted aggregate",
                    );
                    continue;
                }
            };
            // The aggregate was put once: the records the shard owns count
            // as put by it (before they complete, as in `complete_stored`),
            // the others when they are stored again.
            let buffered_for = started.saturating_duration_since(envelope.first_received);
            let (size, attempts) = (envelope.size() as u64, envelope.retries + 1);
            let (owned, resend): (Vec<_>, Vec<_>) = records
                .into_iter()
                .zip(envelope.into_tickets())
                .partition(|(_, ticket)| owner.is_some_and(|s| s.contains(ticket.hash_key)));
            let stored = owned.len();
            if stored > 0 {
                let stored_bytes = owned.iter().map(|(r, _)| r.data().len() as u64).sum();
                self.pipeline.metrics.kinesis_record_put(
                    actual_shard.as_deref(),
                    stored,
                    stored_bytes,
                    size,
                    buffered_for,
                    attempts,
                );
            }
            for (_, ticket) in owned {
                ticket.succeed(actual_shard.clone(), sequence_number.clone(), true);
            }
            // A consumer would drop these from that shard: send them again
            // to the shard that owns them.
            for (record, ticket) in resend {
                self.pipeline.route(record, ticket);
            }
            tracing::debug!(stream = %self.pipeline.name, stored, "resolved an aggregate stored on an unexpected shard");
        }
    }

    /// Completes the aggregates stored on an unexpected shard as stored,
    /// without the check of which records that shard owns (no shard map
    /// will come to check it).
    fn complete_misrouted(&mut self) {
        for misrouted in std::mem::take(&mut self.misrouted) {
            let Misrouted {
                envelope,
                actual_shard,
                sequence_number,
                started,
            } = misrouted;
            self.complete_stored(envelope, actual_shard, sequence_number, started);
        }
    }

    // ----- shutdown -------------------------------------------------------

    fn fail_everything_queued(&mut self, message: &str) {
        for queue in self.queues.values_mut() {
            for envelope in queue.envelopes.drain(..) {
                fail_envelope(envelope, FailureKind::Closed, None, message);
            }
        }
        self.queued_records = 0;
        self.queued_bytes = 0;
        self.complete_misrouted();
        let routing = self.pipeline.routing.read().clone();
        self.pipeline.shut_down.store(true, Ordering::Release);
        routing.retired.store(true, Ordering::Release);
        // Taken out before failing: a callback must not run under the lock.
        let unrouted = std::mem::take(&mut *routing.unrouted.lock());
        for (_, ticket) in unrouted {
            ticket.fail(FailureKind::Closed, None, message.to_owned());
        }
        for buffer in &routing.buffers {
            let tickets = std::mem::take(&mut buffer.lock().tickets);
            for ticket in tickets {
                ticket.fail(FailureKind::Closed, None, message.to_owned());
            }
        }
        while let Ok(command) = self.commands.try_recv() {
            if let Command::Envelope(envelope) = command {
                fail_envelope(*envelope, FailureKind::Closed, None, message);
            }
        }
    }
}

/// Takes envelopes from `queues`, one shard after another in `order`
/// starting at `start`, while the request has room (`max_count` records,
/// `max_bytes` billed bytes) and each shard's limiter allows. Returns the
/// batch, its billed bytes, and when a shard held back by its limiter or a
/// backoff may go.
pub(crate) fn collect_batch(
    queues: &mut HashMap<Arc<str>, ShardQueue>,
    order: &[Arc<str>],
    start: usize,
    now: Instant,
    max_count: usize,
    max_bytes: usize,
) -> (Vec<Envelope>, usize, Option<Instant>) {
    let mut batch = Vec::new();
    let mut bytes = 0usize;
    let mut wake = None;
    let shards = order.len();
    'shards: for i in 0..shards {
        let shard = &order[(start + i) % shards];
        let queue = queues.get_mut(shard).expect("order lists queues");
        if queue.envelopes.is_empty() {
            continue;
        }
        if !queue.limiter.request_ready(now) {
            wake = min_instant(wake, Some(now + queue.limiter.wait_for(0, now)));
            continue;
        }
        let mut took_any = false;
        while let Some(front) = queue.envelopes.front() {
            if batch.len() >= max_count {
                break 'shards;
            }
            let size = front.size();
            if !batch.is_empty() && bytes + size > max_bytes {
                break 'shards;
            }
            if let Some(t) = front.not_before
                && t > now
            {
                wake = min_instant(wake, Some(t));
                break;
            }
            if !queue.limiter.ready(size, now) {
                wake = min_instant(wake, Some(now + queue.limiter.wait_for(size, now)));
                break;
            }
            queue.limiter.take(size, now);
            if !took_any {
                // Firehose counts requests too; one per shard per batch.
                queue.limiter.take_request();
                took_any = true;
            }
            bytes += size;
            batch.push(queue.envelopes.pop_front().expect("front exists"));
        }
    }
    (batch, bytes, wake)
}

/// The records of a request, as the sink takes them (the envelopes keep
/// theirs for retries).
pub(crate) fn request_records(batch: &[Envelope]) -> Vec<crate::sink::OutRecord> {
    batch.iter().map(|e| e.record.clone()).collect()
}

/// A batch whose request is in flight. If the request's task is dropped
/// before it answers (the producer closed while the request hung), the
/// batch's records fail as closed, saying they may have been stored.
struct InFlight(Vec<Envelope>);

impl InFlight {
    fn take(mut self) -> Vec<Envelope> {
        std::mem::take(&mut self.0)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        for envelope in self.0.drain(..) {
            fail_envelope(
                envelope,
                FailureKind::Closed,
                None,
                "the producer was closed while this record's request was in flight; \
                 the service may have stored it",
            );
        }
    }
}

/// Appends a new envelope to its shard's queue, keeping the queue's due
/// times (`sendable_at`) in order: `dispatch` looks only at each queue's
/// front. They are in order unless a record too large to aggregate was
/// sealed on arrival, ahead of the aggregate still filling for its shard
/// with older records; that aggregate, due earlier, must not wait behind
/// it, so the envelopes ahead of it become due with it.
fn push_back_in_due_order(queue: &mut VecDeque<Envelope>, envelope: Envelope) {
    let due = envelope.sendable_at;
    for queued in queue.iter_mut().rev() {
        if queued.sendable_at <= due {
            break;
        }
        queued.sendable_at = due;
    }
    queue.push_back(envelope);
}

fn fail_envelope(envelope: Envelope, kind: FailureKind, code: Option<String>, message: &str) {
    super::ticket::fail_all(envelope.into_tickets(), kind, code, message);
}

fn expiry_message(ttl: Duration, last_error: Option<(&str, &str)>, otherwise: &str) -> String {
    match last_error {
        Some((code, message)) => format!(
            "record_ttl of {} ms ran out before the record was stored; last error {code}: {message}",
            ttl.as_millis()
        ),
        None if !otherwise.is_empty() => format!(
            "record_ttl of {} ms ran out before the record was stored: {otherwise}",
            ttl.as_millis()
        ),
        None => format!(
            "record_ttl of {} ms ran out before the record was stored",
            ttl.as_millis()
        ),
    }
}

fn min_instant(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// How often buffers are checked for records that waited long enough:
/// often enough that a record waits little more than its buffered time.
fn buffer_scan_interval(max_buffered_time: Duration) -> Duration {
    (max_buffered_time / 4).clamp(Duration::from_millis(1), Duration::from_millis(25))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::producer::capacity::Capacity;
    use crate::producer::packer::Packed;
    use crate::producer::ticket::{Accounting, Notify};

    fn accounting() -> Arc<Accounting> {
        Arc::new(Accounting {
            capacity: Arc::new(Capacity::new(usize::MAX, usize::MAX)),
            metrics: Default::default(),
        })
    }

    /// An envelope of one record, due at `due`.
    fn envelope(data: &'static str, due: Instant) -> Envelope {
        envelope_of(data, due, Vec::new())
    }

    fn envelope_of(data: &'static str, due: Instant, tickets: Vec<Ticket>) -> Envelope {
        let now = Instant::now();
        let packed = Packed {
            record: OutRecord {
                partition_key: "k".into(),
                explicit_hash_key: None,
                data: data.into(),
            },
            aggregated: false,
        };
        let mut envelope = Envelope::new(
            packed,
            tickets,
            Arc::from("shardId-0"),
            Duration::from_millis(100),
            Duration::from_secs(30),
            now,
        );
        envelope.sendable_at = due;
        envelope
    }

    #[test]
    fn an_envelope_due_earlier_does_not_wait_behind_a_later_one() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut queue = VecDeque::new();
        push_back_in_due_order(&mut queue, envelope("first", at(10)));
        // A record sent alone on arrival, due at 190 ms...
        push_back_in_due_order(&mut queue, envelope("alone", at(190)));
        // ...then the aggregate that was filling before it, due at 100 ms.
        push_back_in_due_order(&mut queue, envelope("aggregate", at(100)));
        let due: Vec<_> = queue
            .iter()
            .map(|e| (&e.record.data[..], e.sendable_at))
            .collect();
        assert_eq!(
            due,
            [
                (&b"first"[..], at(10)),
                (&b"alone"[..], at(100)),
                (&b"aggregate"[..], at(100)),
            ]
        );
    }

    #[test]
    fn tickets_of_an_envelope_never_received_fail_as_closed_once() {
        let accounting = accounting();
        let results = Arc::new(Mutex::new(Vec::new()));
        let ticket = |bytes| {
            assert!(accounting.capacity.try_reserve(bytes));
            let seen = results.clone();
            Ticket::new(
                Notify::Callback(Box::new(move |result| seen.lock().unwrap().push(result))),
                0,
                bytes,
                accounting.clone(),
            )
        };
        let lost = envelope_of("lost", Instant::now(), vec![ticket(100), ticket(200)]);
        // As when an envelope sealed while the producer closes finds the
        // dispatcher's channel drained or gone.
        drop(lost);
        {
            let results = results.lock().unwrap();
            assert_eq!(results.len(), 2);
            assert!(
                results
                    .iter()
                    .all(|r| r.as_ref().is_err_and(|e| e.kind == FailureKind::Closed))
            );
        }
        assert_eq!(accounting.capacity.bytes(), 0, "their room is given back");
        // A ticket that completed is not completed again when dropped.
        ticket(50).fail(FailureKind::Rejected, None, "refused".into());
        assert_eq!(results.lock().unwrap().len(), 3);
        assert_eq!(
            accounting
                .metrics
                .user_records_failed
                .load(Ordering::Relaxed),
            3
        );
        assert_eq!(accounting.capacity.bytes(), 0);
    }
}
