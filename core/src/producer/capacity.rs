//! The producer's memory bound: bytes and records held between `send` and
//! completion, and the bodies of requests in flight. Reserving is two
//! atomic adds on the hot path; only callers that must wait touch a lock.
//!
//! A request body (base64 JSON, a third larger than its records) lives
//! beside the records it carries until the service answers. Counting only
//! records let a producer whose transport is the bottleneck hold the cap
//! in records plus as much again in bodies (measured: 330 MiB of RSS with
//! a 128 MiB cap, 10 KiB records over HTTPS). So bodies are held against
//! the same byte cap, and the dispatcher builds a new one only while that
//! keeps the total within a small overshoot of the cap (see `body_fits`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// How far request bodies may take the total past the cap.
const BODY_OVERSHOOT: usize = 16 << 20;

#[derive(Debug)]
pub(crate) struct Capacity {
    max_bytes: usize,
    max_records: usize,
    /// Records' bytes and request bodies' bytes.
    bytes: AtomicUsize,
    records: AtomicUsize,
    /// The part of `bytes` that is request bodies in flight.
    body_bytes: AtomicUsize,
    waiters: AtomicUsize,
    /// Wakes async waiters (senders, flush, close).
    changed: tokio::sync::Notify,
    /// Wakes blocking waiters.
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Capacity {
    pub(crate) fn new(max_bytes: usize, max_records: usize) -> Self {
        Capacity {
            max_bytes,
            max_records,
            bytes: AtomicUsize::new(0),
            records: AtomicUsize::new(0),
            body_bytes: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            changed: tokio::sync::Notify::new(),
            lock: Mutex::new(()),
            condvar: Condvar::new(),
        }
    }

    /// Reserves room for one record of `bytes`, if there is room. A record
    /// larger than the whole byte cap is let in when the buffer is empty,
    /// so that it can never wait forever.
    pub(crate) fn try_reserve(&self, bytes: usize) -> bool {
        let records_before = self.records.fetch_add(1, AcqRel);
        if records_before >= self.max_records {
            self.records.fetch_sub(1, AcqRel);
            return false;
        }
        let bytes_before = self.bytes.fetch_add(bytes, AcqRel);
        if bytes_before + bytes > self.max_bytes && bytes_before > 0 {
            self.bytes.fetch_sub(bytes, AcqRel);
            self.records.fetch_sub(1, AcqRel);
            // Not `wake`: a blocking waiter runs this with `lock` held
            // (see `block_until`), and taking it again would deadlock.
            // Undoing a reservation only needs a nudge; waiters re-check
            // every 50 ms anyway.
            self.nudge();
            return false;
        }
        true
    }

    pub(crate) fn release(&self, bytes: usize) {
        self.release_many(bytes, 1);
    }

    /// Gives back the room of `records` records totalling `bytes`.
    pub(crate) fn release_many(&self, bytes: usize, records: usize) {
        if records == 0 {
            return;
        }
        self.bytes.fetch_sub(bytes, AcqRel);
        self.records.fetch_sub(records, AcqRel);
        self.wake();
    }

    /// Whether a request body of `bytes` may be built now. Bodies are made
    /// for records already counted, so one can take the total past the cap:
    /// by at most [`BODY_OVERSHOOT`] (an eighth of a small cap). And bodies
    /// in flight never fill more than half the cap, so senders keep room
    /// for records. A dispatcher with no request in flight may always send
    /// one (see the dispatcher), so a buffer full of records drains.
    pub(crate) fn body_fits(&self, bytes: usize) -> bool {
        let overshoot = (self.max_bytes / 8).min(BODY_OVERSHOOT);
        self.body_bytes.load(Acquire).saturating_add(bytes) <= self.max_bytes / 2
            && self.bytes.load(Acquire).saturating_add(bytes) <= self.max_bytes + overshoot
    }

    /// Holds `bytes` of a request body against the cap until the returned
    /// guard is dropped (the request answered, or was abandoned).
    pub(crate) fn hold_body(self: &Arc<Self>, bytes: usize) -> BodyHold {
        self.body_bytes.fetch_add(bytes, AcqRel);
        self.bytes.fetch_add(bytes, AcqRel);
        BodyHold {
            capacity: self.clone(),
            bytes,
        }
    }

    /// Wakes waiters without taking `lock`: safe from inside `ready`.
    fn nudge(&self) {
        if self.waiters.load(Acquire) > 0 {
            self.changed.notify_waiters();
            self.condvar.notify_all();
        }
    }

    fn wake(&self) {
        if self.waiters.load(Acquire) > 0 {
            self.changed.notify_waiters();
            let _guard = self.lock.lock();
            self.condvar.notify_all();
        }
    }

    /// Records reserved and not yet released.
    pub(crate) fn records(&self) -> usize {
        self.records.load(Acquire)
    }

    /// Bytes held for records not yet released (request bodies aside).
    pub(crate) fn record_bytes(&self) -> usize {
        self.bytes
            .load(Acquire)
            .saturating_sub(self.body_bytes.load(Acquire))
    }

    /// Bytes reserved and not yet released, request bodies included.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes.load(Acquire)
    }

    /// Waits (async) until `ready()` holds. `ready` is re-checked after
    /// every release.
    pub(crate) async fn wait_until(&self, mut ready: impl FnMut() -> bool) {
        self.waiters.fetch_add(1, AcqRel);
        let _guard = WaiterGuard(&self.waiters);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if ready() {
                return;
            }
            // Releases are the only event that changes the answer, but a
            // periodic re-check keeps a lost wake-up from hanging anyone.
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }

    /// Blocks the thread until `ready()` holds or `deadline` passes;
    /// returns whether it holds.
    pub(crate) fn block_until(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> bool,
    ) -> bool {
        self.waiters.fetch_add(1, AcqRel);
        let _guard = WaiterGuard(&self.waiters);
        let mut guard = self.lock.lock();
        loop {
            if ready() {
                return true;
            }
            let slice = Duration::from_millis(50);
            let wait = match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    (d - now).min(slice)
                }
                None => slice,
            };
            self.condvar.wait_for(&mut guard, wait);
        }
    }
}

/// A request body's bytes, held against the cap while it exists.
#[derive(Debug)]
pub(crate) struct BodyHold {
    capacity: Arc<Capacity>,
    bytes: usize,
}

impl Drop for BodyHold {
    fn drop(&mut self) {
        let c = &self.capacity;
        c.body_bytes.fetch_sub(self.bytes, AcqRel);
        c.bytes.fetch_sub(self.bytes, AcqRel);
        c.wake();
    }
}

struct WaiterGuard<'a>(&'a AtomicUsize);

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_bytes_and_records() {
        let c = Capacity::new(100, 3);
        assert!(c.try_reserve(60));
        assert!(!c.try_reserve(60), "over the byte cap");
        assert!(c.try_reserve(40));
        assert!(c.try_reserve(0));
        assert!(!c.try_reserve(0), "over the record cap");
        c.release(60);
        assert!(c.try_reserve(10));
        assert_eq!((c.records(), c.bytes()), (3, 50));
    }

    #[test]
    fn request_bodies_count_against_the_cap_until_dropped() {
        let c = Arc::new(Capacity::new(800, 100));
        assert!(c.try_reserve(300));
        assert!(
            c.body_fits(400) && !c.body_fits(401),
            "bodies get half the cap"
        );
        let body = c.hold_body(400);
        assert!(!c.body_fits(1));
        assert!(!c.try_reserve(101), "records and bodies share the cap");
        assert!(c.try_reserve(100));
        assert_eq!((c.records(), c.bytes()), (2, 800));
        drop(body);
        assert!(c.body_fits(400));
        assert!(c.try_reserve(300));
        assert_eq!((c.records(), c.bytes(), c.record_bytes()), (3, 700, 700));
    }

    #[test]
    fn bodies_take_the_total_only_a_little_past_the_cap() {
        // Records fill the cap first (the usual case when the sender is
        // faster than the transport); bodies for them may overshoot it by
        // an eighth of the cap, not by the half that bodies may hold.
        let c = Arc::new(Capacity::new(800, 100));
        assert!(c.try_reserve(800));
        assert!(c.body_fits(100) && !c.body_fits(101));
        let first = c.hold_body(60);
        assert!(c.body_fits(40) && !c.body_fits(41));
        assert_eq!(c.record_bytes(), 800, "bodies are not records");
        drop(first);
        c.release(800);
        assert_eq!((c.records(), c.bytes()), (0, 0));
    }

    #[test]
    fn an_oversized_record_fits_an_empty_buffer() {
        let c = Capacity::new(100, 10);
        assert!(c.try_reserve(1000));
        assert!(!c.try_reserve(1));
        c.release(1000);
        assert!(c.try_reserve(1));
    }

    #[test]
    fn blocking_waiters_wake_on_release() {
        let c = std::sync::Arc::new(Capacity::new(100, 1));
        assert!(c.try_reserve(1));
        let c2 = c.clone();
        let t = std::thread::spawn(move || {
            c2.block_until(Some(Instant::now() + Duration::from_secs(5)), || {
                c2.try_reserve(1)
            })
        });
        std::thread::sleep(Duration::from_millis(20));
        c.release(1);
        assert!(t.join().unwrap());
        assert!(
            !c.block_until(Some(Instant::now() + Duration::from_millis(10)), || c
                .try_reserve(1))
        );
    }
    #[test]
    fn a_blocking_waiter_at_the_byte_cap_does_not_deadlock() {
        // block_until checks `ready` with its lock held; a reservation
        // refused by the byte cap must not take that lock again.
        let c = std::sync::Arc::new(Capacity::new(100, 10));
        assert!(c.try_reserve(100));
        let (tx, rx) = std::sync::mpsc::channel();
        let c2 = c.clone();
        std::thread::spawn(move || {
            let got = c2.block_until(Some(Instant::now() + Duration::from_millis(100)), || {
                c2.try_reserve(10)
            });
            let _ = tx.send(got);
        });
        let timed_out = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("block_until returned: no deadlock");
        assert!(!timed_out, "no room was made");
        let c3 = c.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let got = c3.block_until(Some(Instant::now() + Duration::from_secs(5)), || {
                c3.try_reserve(10)
            });
            let _ = tx.send(got);
        });
        std::thread::sleep(Duration::from_millis(20));
        c.release(100);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(true));
    }
}
