//! Rolling one-second windows: the arithmetic behind shard and Firehose
//! throttling.
//!
//! A window remembers what it admitted during the last second as a queue of
//! `(instant, bytes, records)` entries. Entries admitted at the same instant
//! (one request) are merged, so the queue holds at most one entry per
//! request, and with limits on it is bounded by the records-per-second
//! figure. Time is passed in, never read here, so tests drive a fake clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(1);

/// What a window admitted during the last second.
#[derive(Debug, Default)]
pub(crate) struct RateWindow {
    entries: VecDeque<(Instant, u64, u64)>,
    bytes: u64,
    records: u64,
}

impl RateWindow {
    /// Forgets entries one second old or older.
    pub(crate) fn expire(&mut self, now: Instant) {
        while let Some(&(at, bytes, records)) = self.entries.front() {
            if now.saturating_duration_since(at) < WINDOW {
                break;
            }
            self.entries.pop_front();
            self.bytes -= bytes;
            self.records -= records;
        }
    }

    /// Whether `bytes` and `records` more fit under the given per-second
    /// figures. Call [`expire`](Self::expire) first.
    pub(crate) fn fits(&self, bytes: u64, records: u64, max_bytes: u64, max_records: u64) -> bool {
        self.bytes.saturating_add(bytes) <= max_bytes
            && self.records.saturating_add(records) <= max_records
    }

    /// Counts an admission at `now`.
    pub(crate) fn add(&mut self, now: Instant, bytes: u64, records: u64) {
        self.bytes += bytes;
        self.records += records;
        match self.entries.back_mut() {
            Some(last) if last.0 == now => {
                last.1 += bytes;
                last.2 += records;
            }
            _ => self.entries.push_back((now, bytes, records)),
        }
    }

    /// Bytes and records admitted during the last second.
    pub(crate) fn usage(&mut self, now: Instant) -> (u64, u64) {
        self.expire(now);
        self.totals()
    }

    /// Bytes and records in the window as of the last `expire`.
    pub(crate) fn totals(&self) -> (u64, u64) {
        (self.bytes, self.records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_within_one_second() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        for i in 0..10 {
            let now = t0 + Duration::from_millis(i * 50);
            w.expire(now);
            assert!(w.fits(100, 1, 1000, 1000), "record {i}");
            w.add(now, 100, 1);
        }
        let now = t0 + Duration::from_millis(600);
        w.expire(now);
        assert!(!w.fits(1, 1, 1000, 1000));
        assert!(w.fits(0, 1, 1000, 1000));
    }

    #[test]
    fn entries_expire_after_exactly_one_second() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        w.add(t0, 1000, 10);
        w.expire(t0 + Duration::from_millis(999));
        assert!(!w.fits(1, 0, 1000, 1000));
        w.expire(t0 + Duration::from_millis(1000));
        assert!(w.fits(1000, 1000, 1000, 1000));
        assert_eq!(w.usage(t0 + Duration::from_secs(1)), (0, 0));
    }

    #[test]
    fn records_limit_is_independent_of_bytes() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        for _ in 0..1000 {
            assert!(w.fits(1, 1, u64::MAX, 1000));
            w.add(t0, 1, 1);
        }
        assert!(!w.fits(1, 1, u64::MAX, 1000));
        // One request's admissions are merged into a single entry.
        assert_eq!(w.entries.len(), 1);
    }
}
