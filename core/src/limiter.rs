//! Per-shard (and per-delivery-stream) rate limiting: token buckets for
//! bytes and records, and the adaptive rate that reacts to throttling.
//!
//! The KPL limits at a fixed `RateLimit`% of the shard quota, never reacts
//! to `ProvisionedThroughputExceeded`, and skips limiting when aggregation
//! is off. Shardline limits in every mode and adapts. When a shard throttles
//! us, the limiter looks at what the shard actually accepted from us during
//! the last second (the goodput):
//!
//! * near the whole quota, the shard is ours and the throttle was timing
//!   jitter: the rate is trimmed by a few percent;
//! * well below it, someone else is writing to the shard too: the rate
//!   drops to just under the goodput, our real share, in one step. A plain
//!   multiplicative cut would need many round trips to get there, each one
//!   throttling a whole second's worth of records.
//!
//! While puts succeed the rate is raised again — fast while far below the
//! rate that last throttled, slowly near it — so that a lone producer
//! settles just under the shard's capacity and several producers sharing a
//! shard converge on a fair share instead of throttling each other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How much a bucket may hold, in seconds of its rate. The service counts
/// over a rolling second, so any second may see the burst plus a second's
/// rate: with the adaptive start at 95% of the quota, a 5% burst keeps that
/// sum at the quota.
const BURST_SECONDS: f64 = 0.05;
/// A throttled producer whose goodput is at least this share of the quota
/// has the shard to itself: it only trims its rate by `JITTER_FACTOR`.
const SOLE_WRITER_SHARE: f64 = 0.85;
const JITTER_FACTOR: f64 = 0.98;
/// A producer sharing the shard drops to this fraction of its goodput,
/// leaving the others room to grow into while it climbs back.
const SHARED_FACTOR: f64 = 0.9;
/// No single cut goes below this fraction of the current rate: a goodput
/// measured over a short or unlucky span can be far too low.
const MAX_CUT: f64 = 0.4;
/// Throttles closer together than this are one congestion event (one
/// response often throttles many entries).
const DECREASE_HOLDOFF: Duration = Duration::from_millis(300);
/// After a cut to the goodput, the next cut waits a whole window: until
/// then the goodput still counts sends made at the old rate, and producers
/// that all cut on the same stale figure undershoot together.
const SHARED_CUT_HOLDOFF: Duration = WINDOW;
/// Rate recovery per second of successful sending, as a fraction of the
/// quota: fast when well below the last throttling point, slow near it.
const FAST_INCREASE_PER_SECOND: f64 = 0.20;
const SLOW_INCREASE_PER_SECOND: f64 = 0.005;
/// "Near" the last throttling point: from this fraction of it upwards. It
/// sits below `SHARED_FACTOR`, so a producer that shares a shard climbs
/// slowly straight after its cut; climbing fast back to where the shard
/// throttled would only throttle it again within a second or two.
const SLOW_ZONE: f64 = 0.8;
/// Where adaptive limiting starts: just under the quota, so a lone producer
/// whose sends jitter by a record or two stays inside the shard's rolling
/// one-second window.
const ADAPTIVE_START_FRACTION: f64 = 0.95;
/// In adaptive mode no rolling second may carry more than this share of
/// the quota: the service counts over a rolling second, and the rest is
/// room for requests that arrive closer together than they were sent.
const WINDOW_SHARE: f64 = 0.97;
const WINDOW: Duration = Duration::from_secs(1);
/// Never go below this fraction of the quota, so a shard always drains.
const MIN_FRACTION: f64 = 0.02;

/// A token bucket that may go into debt: a record larger than the bucket
/// can still go once the bucket is full, and later takers wait for the
/// debt to be repaid. This keeps the long-run rate exact for any record
/// size.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(per_second: f64, now: Instant) -> Self {
        let capacity = (per_second * BURST_SECONDS).max(1.0);
        TokenBucket {
            per_second,
            capacity,
            tokens: capacity,
            refilled_at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.refilled_at = now;
    }

    /// True if `amount` may be taken now.
    pub(crate) fn ready(&mut self, amount: f64, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= amount.min(self.capacity)
    }

    pub(crate) fn take(&mut self, amount: f64) {
        self.tokens -= amount;
    }

    /// How long until `amount` may be taken.
    pub(crate) fn wait_for(&mut self, amount: f64, now: Instant) -> Duration {
        self.refill(now);
        let missing = amount.min(self.capacity) - self.tokens;
        if missing <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(missing / self.per_second)
        }
    }

    pub(crate) fn set_rate(&mut self, per_second: f64, now: Instant) {
        self.refill(now);
        self.per_second = per_second.max(f64::MIN_POSITIVE);
        self.capacity = (per_second * BURST_SECONDS).max(1.0);
        self.tokens = self.tokens.min(self.capacity);
    }
}

/// What the service counts: bytes and records that arrived in the last
/// second.
///
/// The service counts a record in the second it *arrives*, which we never
/// see: it is somewhere between our send and the response. Counting sends
/// alone is not enough at the quota: if record `k` travels slowly and record
/// `k + n`, sent exactly a second later, travels fast, the service sees both
/// in one second and throttles. So an entry sent in a request stays in the
/// window until a second after it was sent *plus* how much slower than the
/// quickest recent response its own response was (the part of its latency
/// that may have delayed its arrival more than a later record's), up to
/// `MAX_ARRIVAL_GUARD`. An entry whose response has not come yet stays
/// until it comes, or `IN_FLIGHT_HOLD` past its second.
#[derive(Debug, Clone, Default)]
pub(crate) struct RollingWindow {
    entries: VecDeque<WindowEntry>,
    bytes: u64,
    /// The last `in_flight` entries have had no response yet.
    in_flight: usize,
    /// The quickest response lately, from the send to the response.
    base_latency: WindowedMin,
}

/// The least of the values seen during the last one to two
/// `BASE_LATENCY_PERIOD`s (zero during the first): old enough to hold
/// through a burst of slow responses, young enough to follow a lasting
/// change of path.
#[derive(Debug, Clone, Copy, Default)]
struct WindowedMin {
    current: Option<(Instant, Duration)>,
    previous: Option<Duration>,
}

const BASE_LATENCY_PERIOD: Duration = Duration::from_secs(5);

impl WindowedMin {
    fn add(&mut self, value: Duration, now: Instant) -> Duration {
        match &mut self.current {
            Some((since, least)) if now.saturating_duration_since(*since) < BASE_LATENCY_PERIOD => {
                *least = (*least).min(value);
            }
            current => {
                self.previous = current.map(|(_, least)| least);
                *current = Some((now, value));
            }
        }
        // Until a whole period has been seen the least is not known, and a
        // guess too high would let records arrive inside one second: count
        // from zero (every entry's whole latency is its guard).
        match (self.previous, self.current) {
            (Some(previous), Some((_, current))) => previous.min(current),
            _ => Duration::ZERO,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct WindowEntry {
    sent_at: Instant,
    expires_at: Instant,
    bytes: u64,
}

/// How long an entry with no response yet stays in the window, at most,
/// past its second: a response that never comes must not block the shard.
const IN_FLIGHT_HOLD: Duration = Duration::from_secs(2);
/// The most a settled entry's stay is stretched. Every stretch slows a
/// shard that is at its quota (its next send waits for the stretched entry),
/// so on a path whose latency swings by hundreds of milliseconds (large
/// requests over a long link) the guard would cost more rate than the
/// occasional throttle it prevents, and the adaptive cut handles those.
const MAX_ARRIVAL_GUARD: Duration = Duration::from_millis(50);

impl RollingWindow {
    fn expire(&mut self, now: Instant) {
        while let Some(front) = self.entries.front() {
            if front.expires_at > now {
                break;
            }
            if self.in_flight == self.entries.len() {
                self.in_flight -= 1;
            }
            self.bytes -= front.bytes;
            self.entries.pop_front();
        }
    }

    /// True if a record of `bytes` keeps the last second within the
    /// limits. An empty window admits anything, so an oversized record
    /// still goes.
    fn admits(&mut self, bytes: u64, byte_limit: f64, record_limit: f64, now: Instant) -> bool {
        self.expire(now);
        self.entries.is_empty()
            || ((self.bytes + bytes) as f64 <= byte_limit
                && (self.entries.len() + 1) as f64 <= record_limit)
    }

    /// How long until [`RollingWindow::admits`] holds.
    fn wait_for(
        &mut self,
        bytes: u64,
        byte_limit: f64,
        record_limit: f64,
        now: Instant,
    ) -> Duration {
        if self.admits(bytes, byte_limit, record_limit, now) {
            return Duration::ZERO;
        }
        // Entries leave from the front only, and an entry may expire after
        // the ones behind it: the wait is for the latest expiry among those
        // that must go (the earliest would wake the dispatcher in a loop).
        let (mut sum, mut count) = (self.bytes, self.entries.len());
        let mut gone_at = now;
        for entry in &self.entries {
            sum -= entry.bytes;
            count -= 1;
            gone_at = gone_at.max(entry.expires_at);
            if count == 0
                || ((sum + bytes) as f64 <= byte_limit && (count + 1) as f64 <= record_limit)
            {
                return gone_at.saturating_duration_since(now);
            }
        }
        Duration::ZERO
    }

    /// Accounts a record the service has counted already (it answered).
    fn record(&mut self, bytes: u64, now: Instant) {
        self.push(bytes, now, now + WINDOW);
    }

    /// Accounts a record sent at `now` whose response is still to come.
    fn record_in_flight(&mut self, bytes: u64, now: Instant) {
        self.push(bytes, now, now + WINDOW + IN_FLIGHT_HOLD);
        self.in_flight += 1;
    }

    fn push(&mut self, bytes: u64, sent_at: Instant, expires_at: Instant) {
        self.entries.push_back(WindowEntry {
            sent_at,
            expires_at,
            bytes,
        });
        self.bytes += bytes;
    }

    /// The response for the oldest record in flight came at `now`.
    /// Responses are matched in send order: one shard's records of
    /// overlapping requests may answer out of order, which only moves the
    /// latencies between those records.
    fn settle(&mut self, now: Instant) {
        if self.in_flight == 0 {
            return;
        }
        let index = self.entries.len() - self.in_flight;
        self.in_flight -= 1;
        let entry = &mut self.entries[index];
        let latency = now.saturating_duration_since(entry.sent_at);
        let base = self.base_latency.add(latency, now);
        entry.expires_at = entry.sent_at + WINDOW + (latency - base).min(MAX_ARRIVAL_GUARD);
    }
}

/// Quotas a limiter enforces, in units per second at 100% of the quota.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Quota {
    pub(crate) bytes_per_second: u64,
    pub(crate) records_per_second: u64,
    /// Firehose limits requests too; a Kinesis shard does not.
    pub(crate) requests_per_second: Option<u64>,
}

/// The limiter of one shard (or one Firehose delivery stream).
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    quota: Quota,
    bytes: TokenBucket,
    records: TokenBucket,
    requests: Option<TokenBucket>,
    /// Adaptive mode's hard cap on any rolling second.
    window: Option<RollingWindow>,
    /// What the shard accepted during the last second (adaptive mode).
    accepted: RollingWindow,
    created_at: Instant,
    /// Current rate as a fraction of the quota.
    fraction: f64,
    /// Upper bound of `fraction` (`rate_limit` / 100).
    max_fraction: f64,
    adaptive: bool,
    /// Fraction at which the shard last throttled us.
    throttled_at_fraction: Option<f64>,
    last_decrease: Option<Instant>,
    /// How long after `last_decrease` throttles are part of the same event.
    decrease_holdoff: Duration,
    last_increase: Instant,
    throttle_events: u64,
}

impl RateLimiter {
    pub(crate) fn new(quota: Quota, rate_limit_percent: u32, adaptive: bool, now: Instant) -> Self {
        // Adaptive limiting never aims above what a rolling second may
        // carry: a fraction above it would only make throttling cuts
        // ineffective. `rate_limit` above 100% is for fixed mode (the KPL's).
        let max_fraction = if adaptive {
            (f64::from(rate_limit_percent) / 100.0).min(WINDOW_SHARE)
        } else {
            f64::from(rate_limit_percent) / 100.0
        };
        // Adaptive limiting starts at the quota (a lone producer needs no
        // more); fixed limiting runs at the configured cap, like the KPL.
        let fraction = if adaptive {
            max_fraction.min(ADAPTIVE_START_FRACTION)
        } else {
            max_fraction
        };
        let mut limiter = RateLimiter {
            quota,
            bytes: TokenBucket::new(1.0, now),
            records: TokenBucket::new(1.0, now),
            requests: quota
                .requests_per_second
                .map(|_| TokenBucket::new(1.0, now)),
            window: adaptive.then(RollingWindow::default),
            accepted: RollingWindow::default(),
            created_at: now,
            fraction,
            max_fraction,
            adaptive,
            throttled_at_fraction: None,
            last_decrease: None,
            decrease_holdoff: DECREASE_HOLDOFF,
            last_increase: now,
            throttle_events: 0,
        };
        // Buckets start empty: a new shard queue (a new producer, or a
        // child shard after resharding) may not burst into a window that
        // other senders have already filled.
        limiter.apply_fraction(now);
        limiter.bytes.tokens = 0.0;
        limiter.records.tokens = 0.0;
        if let Some(r) = &mut limiter.requests {
            r.tokens = 0.0;
        }
        limiter
    }

    fn apply_fraction(&mut self, now: Instant) {
        let f = self.fraction;
        self.bytes
            .set_rate(self.quota.bytes_per_second as f64 * f, now);
        self.records
            .set_rate(self.quota.records_per_second as f64 * f, now);
        if let (Some(bucket), Some(rps)) = (&mut self.requests, self.quota.requests_per_second) {
            bucket.set_rate(rps as f64 * f, now);
        }
    }

    /// The most a rolling second may carry now: (bytes, records).
    fn window_limits(&self) -> (f64, f64) {
        let share = self.fraction.min(WINDOW_SHARE);
        (
            self.quota.bytes_per_second as f64 * share,
            self.quota.records_per_second as f64 * share,
        )
    }

    /// True if one record of `bytes` may be sent now.
    pub(crate) fn ready(&mut self, bytes: usize, now: Instant) -> bool {
        let (byte_limit, record_limit) = self.window_limits();
        self.bytes.ready(bytes as f64, now)
            && self.records.ready(1.0, now)
            && self
                .window
                .as_mut()
                .is_none_or(|w| w.admits(bytes as u64, byte_limit, record_limit, now))
    }

    /// Accounts one record of `bytes` as sent at `now`.
    pub(crate) fn take(&mut self, bytes: usize, now: Instant) {
        self.bytes.take(bytes as f64);
        self.records.take(1.0);
        if let Some(w) = &mut self.window {
            w.record_in_flight(bytes as u64, now);
        }
    }

    /// True if a request may start now (always, without a request quota).
    pub(crate) fn request_ready(&mut self, now: Instant) -> bool {
        self.requests.as_mut().is_none_or(|b| b.ready(1.0, now))
    }

    pub(crate) fn take_request(&mut self) {
        if let Some(b) = &mut self.requests {
            b.take(1.0);
        }
    }

    /// How long until a record of `bytes` (and a request slot, if limited)
    /// may go.
    pub(crate) fn wait_for(&mut self, bytes: usize, now: Instant) -> Duration {
        let mut wait = self
            .bytes
            .wait_for(bytes as f64, now)
            .max(self.records.wait_for(1.0, now));
        if let Some(b) = &mut self.requests {
            wait = wait.max(b.wait_for(1.0, now));
        }
        let (byte_limit, record_limit) = self.window_limits();
        if let Some(w) = &mut self.window {
            wait = wait.max(w.wait_for(bytes as u64, byte_limit, record_limit, now));
        }
        wait
    }

    /// What the shard accepted from us over the last second (or since the
    /// limiter was made, if that is sooner), as a fraction of the quota:
    /// the larger of the byte and the record share.
    fn goodput_fraction(&mut self, now: Instant) -> f64 {
        self.accepted.expire(now);
        let span = now
            .saturating_duration_since(self.created_at)
            .clamp(Duration::from_millis(100), WINDOW)
            .as_secs_f64();
        let bytes = self.accepted.bytes as f64 / span / self.quota.bytes_per_second as f64;
        let records =
            self.accepted.entries.len() as f64 / span / self.quota.records_per_second as f64;
        bytes.max(records)
    }

    /// The shard throttled a record: cut the rate (once per congestion
    /// event).
    pub(crate) fn on_throttled(&mut self, now: Instant) {
        self.on_response(now);
        self.throttle_events += 1;
        if !self.adaptive {
            return;
        }
        if self
            .last_decrease
            .is_some_and(|t| now.saturating_duration_since(t) < self.decrease_holdoff)
        {
            return;
        }
        let goodput = self.goodput_fraction(now);
        let (throttled_at, cut_to, holdoff) =
            if self.accepted.entries.is_empty() || self.requests.is_some() {
                // A plain cut when there is no evidence of our share: nothing
                // accepted lately (a new limiter whose first puts were
                // throttled), or a quota that also counts requests (Firehose),
                // where the binding limit may be requests and the goodput in
                // bytes and records would look like a small share and cut the
                // rate to a crawl.
                (
                    self.fraction,
                    self.fraction * SHARED_FACTOR,
                    DECREASE_HOLDOFF,
                )
            } else if goodput >= SOLE_WRITER_SHARE {
                (
                    self.fraction,
                    self.fraction * JITTER_FACTOR,
                    DECREASE_HOLDOFF,
                )
            } else {
                let share = goodput.min(self.fraction);
                let cut_to = (share * SHARED_FACTOR).max(self.fraction * MAX_CUT);
                (share, cut_to, SHARED_CUT_HOLDOFF)
            };
        self.decrease_holdoff = holdoff;
        self.throttled_at_fraction = Some(throttled_at);
        self.fraction = cut_to.clamp(MIN_FRACTION, self.max_fraction);
        self.last_decrease = Some(now);
        self.last_increase = now;
        self.apply_fraction(now);
    }

    /// The shard accepted a record of `bytes`: remember it for the goodput,
    /// and raise the rate towards the cap.
    pub(crate) fn on_success(&mut self, bytes: usize, now: Instant) {
        self.on_response(now);
        if self.adaptive {
            self.accepted.expire(now);
            self.accepted.record(bytes as u64, now);
        }
        if !self.adaptive || self.fraction >= self.max_fraction {
            self.last_increase = now;
            return;
        }
        let elapsed = now
            .saturating_duration_since(self.last_increase)
            .as_secs_f64();
        if elapsed < 0.05 {
            return;
        }
        let near_last_throttle = self
            .throttled_at_fraction
            .is_some_and(|t| self.fraction >= t * SLOW_ZONE);
        let step = if near_last_throttle {
            SLOW_INCREASE_PER_SECOND
        } else {
            FAST_INCREASE_PER_SECOND
        };
        self.fraction = (self.fraction + step * elapsed).min(self.max_fraction);
        self.last_increase = now;
        self.apply_fraction(now);
    }

    /// A response other than success or throttling (or none: a failed
    /// request) came for a record sent through [`RateLimiter::take`].
    /// Success and throttling count as responses themselves.
    pub(crate) fn on_response(&mut self, now: Instant) {
        if let Some(w) = &mut self.window {
            w.settle(now);
        }
    }

    /// The current rate as a fraction of the quota (1.0 = 100%).
    pub(crate) fn fraction(&self) -> f64 {
        self.fraction
    }

    /// How many times this shard has throttled us.
    #[cfg(test)]
    pub(crate) fn throttle_events(&self) -> u64 {
        self.throttle_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    /// A Firehose-like quota: the shard's, plus `per_second` requests.
    fn quota_with_requests(per_second: u64) -> Quota {
        Quota {
            requests_per_second: Some(per_second),
            ..shard_quota()
        }
    }

    fn shard_quota() -> Quota {
        Quota {
            bytes_per_second: MIB,
            records_per_second: 1000,
            requests_per_second: None,
        }
    }

    /// Sends as fast as the limiter allows for `seconds` of fake time and
    /// returns (bytes, records) sent.
    fn drive(limiter: &mut RateLimiter, record_bytes: usize, seconds: f64) -> (u64, u64) {
        let start = Instant::now();
        let mut now = start;
        let (mut bytes, mut records) = (0u64, 0u64);
        while now.duration_since(start).as_secs_f64() < seconds {
            if limiter.ready(record_bytes, now) {
                limiter.take(record_bytes, now);
                bytes += record_bytes as u64;
                records += 1;
            } else {
                now += limiter
                    .wait_for(record_bytes, now)
                    .max(Duration::from_micros(10));
            }
        }
        (bytes, records)
    }

    #[test]
    fn byte_quota_paces_large_records() {
        let mut limiter = RateLimiter::new(shard_quota(), 100, false, Instant::now());
        let (bytes, _) = drive(&mut limiter, 50 * 1024, 10.0);
        let rate = bytes as f64 / 10.0 / MIB as f64;
        assert!((0.98..=1.03).contains(&rate), "{rate} MiB/s");
    }

    #[test]
    fn record_quota_paces_small_records() {
        let mut limiter = RateLimiter::new(shard_quota(), 100, false, Instant::now());
        let (_, records) = drive(&mut limiter, 100, 10.0);
        let rate = records as f64 / 10.0;
        assert!((980.0..=1030.0).contains(&rate), "{rate} records/s");
    }

    #[test]
    fn records_larger_than_the_bucket_still_go_at_the_quota() {
        let mut limiter = RateLimiter::new(shard_quota(), 100, false, Instant::now());
        let (bytes, _) = drive(&mut limiter, MIB as usize, 10.0);
        let rate = bytes as f64 / 10.0 / MIB as f64;
        assert!((0.9..=1.11).contains(&rate), "{rate} MiB/s");
    }

    #[test]
    fn rate_limit_percent_scales_the_fixed_rate() {
        let mut limiter = RateLimiter::new(shard_quota(), 150, false, Instant::now());
        let (_, records) = drive(&mut limiter, 100, 10.0);
        let rate = records as f64 / 10.0;
        assert!((1470.0..=1540.0).contains(&rate), "{rate} records/s");
    }

    #[test]
    fn throttling_cuts_once_per_event_and_success_recovers() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 150, true, start);
        assert_eq!(limiter.fraction(), ADAPTIVE_START_FRACTION);
        // No success yet: no evidence of our share, so a plain cut.
        limiter.on_throttled(start);
        limiter.on_throttled(start + Duration::from_millis(10));
        let cut = ADAPTIVE_START_FRACTION * SHARED_FACTOR;
        assert!((limiter.fraction() - cut).abs() < 1e-9);
        // Recovers slowly near the point that throttled, and never past the cap.
        let mut now = start;
        for _ in 0..100 {
            now += Duration::from_millis(100);
            limiter.on_success(1024, now);
        }
        assert!(limiter.fraction() > cut);
        assert!(limiter.fraction() <= WINDOW_SHARE);
        for _ in 0..10_000 {
            now += Duration::from_millis(100);
            limiter.on_success(1024, now);
        }
        assert_eq!(
            limiter.fraction(),
            WINDOW_SHARE,
            "capped at the window share, not 150%"
        );
    }

    /// Reports `per_second` accepted records of `bytes` for one second of
    /// fake time from `start`; returns the end of that second.
    fn accept_for_a_second(
        limiter: &mut RateLimiter,
        bytes: usize,
        per_second: u32,
        start: Instant,
    ) -> Instant {
        let step = WINDOW / per_second;
        let mut now = start;
        for _ in 0..per_second {
            now += step;
            limiter.on_success(bytes, now);
        }
        now
    }

    #[test]
    fn a_sole_writer_is_only_trimmed_when_throttled() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 100, true, start);
        // The shard took ~95% of its quota from us: the throttle was jitter.
        let now = accept_for_a_second(&mut limiter, 50 * 1024, 19, start);
        let before = limiter.fraction();
        limiter.on_throttled(now);
        assert!((limiter.fraction() - before * JITTER_FACTOR).abs() < 1e-9);
    }

    #[test]
    fn a_shared_shard_drops_the_rate_to_just_under_the_goodput_in_one_step() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 100, true, start);
        // Others write too: the shard took only ~60% of its quota from us.
        let now = accept_for_a_second(&mut limiter, 52_429, 12, start);
        limiter.on_throttled(now);
        let goodput = 12.0 * 52_429.0 / MIB as f64;
        assert!(
            (limiter.fraction() - goodput * SHARED_FACTOR).abs() < 0.01,
            "{} vs goodput {goodput}",
            limiter.fraction()
        );
        // And climbs back only slowly: it is near the share it was given.
        let later = accept_for_a_second(&mut limiter, 52_429, 10, now);
        assert!(limiter.fraction() < goodput, "{}", limiter.fraction());
        // A tiny goodput never cuts more than in half at once.
        let mut limiter = RateLimiter::new(shard_quota(), 100, true, later);
        let now = accept_for_a_second(&mut limiter, 100, 1, later);
        let before = limiter.fraction();
        limiter.on_throttled(now);
        assert!((limiter.fraction() - before * MAX_CUT).abs() < 1e-9);
    }

    #[test]
    fn a_cut_to_the_goodput_waits_a_window_before_the_next() {
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 100, true, start);
        let now = accept_for_a_second(&mut limiter, 52_429, 12, start);
        limiter.on_throttled(now);
        let cut = limiter.fraction();
        // Half a second on, the goodput still counts sends made before
        // the cut: another throttle is the same event.
        limiter.on_throttled(now + WINDOW / 2);
        assert!(limiter.fraction() >= cut, "{} < {cut}", limiter.fraction());
        // A window on, the goodput is the new rate's: it may cut again.
        let much_later = now + WINDOW + Duration::from_millis(1);
        limiter.on_throttled(much_later);
        assert!(limiter.fraction() < cut, "{} >= {cut}", limiter.fraction());
    }

    #[test]
    fn adaptive_mode_never_overfills_a_rolling_second() {
        // Even at the 150% cap, no rolling second carries more than 97% of
        // the quota: what the service would throttle is never sent.
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 150, true, start);
        for i in 0..200 {
            limiter.on_success(1024, start + Duration::from_millis(100 * i));
        }
        assert_eq!(limiter.fraction(), WINDOW_SHARE);
        let mut now = start + Duration::from_secs(20);
        let mut sends: VecDeque<(Instant, usize)> = VecDeque::new();
        let end = now + Duration::from_secs(10);
        while now < end {
            if limiter.ready(50 * 1024, now) {
                limiter.take(50 * 1024, now);
                sends.push_back((now, 50 * 1024));
                while sends
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) >= WINDOW)
                {
                    sends.pop_front();
                }
                let in_window: usize = sends.iter().map(|(_, b)| b).sum();
                assert!(
                    in_window as f64 <= MIB as f64 * WINDOW_SHARE + 1.0,
                    "{in_window}"
                );
            } else {
                now += limiter
                    .wait_for(50 * 1024, now)
                    .max(Duration::from_micros(10));
            }
        }
    }

    #[test]
    fn arrival_jitter_does_not_overfill_the_services_second() {
        // Responses take 1–31 ms. The service counts a record when it
        // arrives, at worst just before its response: a slow record
        // followed a second later by fast ones must still fit its second.
        let start = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 100, true, start);
        let size = 50_331; // an aggregate of 1 KiB records
        let mut now = start;
        let mut in_flight: VecDeque<Instant> = VecDeque::new(); // response times
        let mut arrivals: VecDeque<Instant> = VecDeque::new();
        let mut seed = 12345u64;
        let end = start + Duration::from_secs(30);
        let mut sent = 0u32;
        while now < end {
            while in_flight.front().is_some_and(|&t| t <= now) {
                let at = in_flight.pop_front().unwrap();
                limiter.on_success(size, at);
                arrivals.push_back(at);
                while arrivals
                    .front()
                    .is_some_and(|&t| at.duration_since(t) >= WINDOW)
                {
                    arrivals.pop_front();
                }
                assert!(
                    arrivals.len() * size <= MIB as usize,
                    "{} arrivals of {size} B within a second",
                    arrivals.len()
                );
            }
            if limiter.ready(size, now) {
                limiter.take(size, now);
                sent += 1;
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let latency = Duration::from_millis(1 + (seed >> 33) % 31);
                // Sends are spaced far apart, so responses keep their order.
                let respond_at = (now + latency).max(in_flight.back().copied().unwrap_or(now));
                in_flight.push_back(respond_at);
            }
            now += Duration::from_millis(1);
        }
        // And the margin costs little: 20 of these fit in a quota second.
        let per_second = f64::from(sent) / 30.0;
        assert!(per_second >= 19.0, "{per_second} sends/s");
    }

    #[test]
    fn the_wait_covers_a_stretched_entry_ahead_of_shorter_ones() {
        let start = Instant::now();
        let mut window = RollingWindow::default();
        // Expiries are not always in send order (the recent minimum latency
        // can rise between two responses, and the stretch is capped). Here
        // the first entry is stretched and the second, settled with an
        // earlier clock, is not: it expires first but can only leave after
        // the first.
        window.record_in_flight(100, start);
        window.record_in_flight(100, start + Duration::from_millis(1));
        window.settle(start + Duration::from_millis(40));
        window.settle(start + Duration::from_millis(2));
        let now = start + WINDOW + Duration::from_millis(5);
        // Room for one more only when both have gone.
        let wait = window.wait_for(100, 100.0, 1.0, now);
        assert!(!window.admits(100, 100.0, 1.0, now));
        assert!(wait > Duration::ZERO, "no wait while the first entry stays");
        assert!(window.admits(100, 100.0, 1.0, now + wait));
    }

    #[test]
    fn a_request_quota_gets_the_plain_cut_whatever_the_goodput() {
        // Firehose: requests may be the binding limit, so a goodput of
        // few records is no sign of a small share.
        let start = Instant::now();
        let mut limiter = RateLimiter::new(quota_with_requests(40), 100, true, start);
        let now = accept_for_a_second(&mut limiter, 100, 20, start);
        let before = limiter.fraction();
        limiter.on_throttled(now);
        assert!((limiter.fraction() - before * SHARED_FACTOR).abs() < 1e-9);
    }

    #[test]
    fn fixed_mode_ignores_throttling() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(shard_quota(), 150, false, now);
        limiter.on_throttled(now);
        assert_eq!(limiter.fraction(), 1.5);
        assert_eq!(limiter.throttle_events(), 1);
    }

    #[test]
    fn request_quota_is_enforced_when_present() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(quota_with_requests(10), 100, false, now);
        assert!(!limiter.request_ready(now), "buckets start empty");
        let later = now + Duration::from_millis(100);
        assert!(limiter.request_ready(later));
        limiter.take_request();
        assert!(!limiter.request_ready(later));
        assert!(limiter.request_ready(later + Duration::from_millis(100)));
    }
}
