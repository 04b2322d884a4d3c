//! A ticket travels with each user record through the pipeline and
//! completes it exactly once: the one place a record's result is
//! delivered, its buffer space released and its metrics counted.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::capacity::Capacity;
use crate::completion::{Attempts, DeliveryError, DeliveryReport, FailureKind};
use crate::metrics::StreamMetrics;

/// The result of one record: stored, or not and why.
pub type DeliveryResult = Result<DeliveryReport, DeliveryError>;

/// A delivery callback. It runs on a producer thread and must not block
/// (no `send_blocking`, no waiting on locks held by senders): the thread
/// it runs on delivers other records. The record's buffer room is given
/// back after the callback returns. A panic inside it is caught and
/// logged.
pub type DeliveryCallback = Box<dyn FnOnce(DeliveryResult) + Send + 'static>;

/// Receives the results of records sent with
/// [`Producer::send_blocking_with_handler`](super::Producer::send_blocking_with_handler)
/// or [`Producer::try_send_with_handler`](super::Producer::try_send_with_handler),
/// each with the tag it was sent with.
///
/// One handler serves any number of records, so a send costs no allocation
/// for its completion: a boxed callback costs one per record, allocated on
/// the sending thread and freed on a producer thread, which at small record
/// sizes is a tenth of the producer's CPU. The same rules as for a
/// [`DeliveryCallback`] apply: it runs on a producer thread, must not
/// block, and a panic inside it is caught and logged.
///
/// Any `Fn(u64, DeliveryResult) + Send + Sync` closure is a handler.
pub trait DeliveryHandler: Send + Sync + 'static {
    /// The result of the record sent with `tag`; called exactly once per
    /// record.
    fn delivered(&self, tag: u64, result: DeliveryResult);
}

impl<F: Fn(u64, DeliveryResult) + Send + Sync + 'static> DeliveryHandler for F {
    fn delivered(&self, tag: u64, result: DeliveryResult) {
        self(tag, result)
    }
}

pub(crate) enum Notify {
    Future(oneshot::Sender<DeliveryResult>),
    Callback(DeliveryCallback),
    Handler(Arc<dyn DeliveryHandler>, u64),
}

/// What the pipeline knows about one user record besides its bytes.
pub(crate) struct Ticket {
    notify: Option<Notify>,
    pub(crate) received_at: Instant,
    pub(crate) hash_key: u128,
    /// Bytes reserved in the producer's buffer for this record.
    pub(crate) reserved_bytes: usize,
    pub(crate) attempts: Attempts,
    accounting: Arc<Accounting>,
}

/// What a completion must update.
#[derive(Debug)]
pub(crate) struct Accounting {
    pub(crate) capacity: Arc<Capacity>,
    pub(crate) metrics: Arc<StreamMetrics>,
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("received_at", &self.received_at)
            .field("attempts", &self.attempts.len())
            .finish_non_exhaustive()
    }
}

impl Ticket {
    pub(crate) fn new(
        notify: Notify,
        hash_key: u128,
        reserved_bytes: usize,
        accounting: Arc<Accounting>,
    ) -> Self {
        Ticket {
            notify: Some(notify),
            received_at: Instant::now(),
            hash_key,
            reserved_bytes,
            attempts: Attempts::default(),
            accounting,
        }
    }

    /// When this record's `record_ttl` runs out.
    pub(crate) fn deadline(&self, ttl: Duration) -> Instant {
        self.received_at + ttl
    }

    pub(crate) fn succeed(
        mut self,
        shard_id: Option<Arc<str>>,
        sequence_number: Arc<str>,
        aggregated: bool,
    ) {
        let attempts = std::mem::take(&mut self.attempts);
        self.finish(Ok(DeliveryReport {
            shard_id,
            sequence_number,
            attempts,
            aggregated,
        }));
    }

    pub(crate) fn fail(mut self, kind: FailureKind, code: Option<String>, message: String) {
        self.count_failure(kind);
        let attempts = std::mem::take(&mut self.attempts);
        self.finish(Err(DeliveryError {
            kind,
            code,
            message,
            attempts,
        }));
    }

    fn count_failure(&self, kind: FailureKind) {
        let m = &self.accounting.metrics;
        m.user_records_failed.fetch_add(1, Relaxed);
        if kind == FailureKind::Expired {
            m.user_record_expired.fetch_add(1, Relaxed);
        }
    }

    fn finish(&mut self, result: DeliveryResult) {
        // Notify first, then release: once nothing is outstanding, every
        // callback has run, so `flush` returning means all results are in.
        if self.deliver(result) {
            self.accounting.capacity.release(self.reserved_bytes);
        }
    }

    /// Hands `result` to the caller without giving the buffer room back;
    /// false if this ticket had already completed.
    fn deliver(&mut self, result: DeliveryResult) -> bool {
        let Some(notify) = self.notify.take() else {
            return false;
        };
        match notify {
            Notify::Future(tx) => {
                // The caller may have dropped the future; that is their
                // choice, not a lost record.
                let _ = tx.send(result);
            }
            Notify::Callback(callback) => {
                if catch_unwind(AssertUnwindSafe(|| callback(result))).is_err() {
                    tracing::error!("a delivery callback panicked; the panic was contained");
                }
            }
            Notify::Handler(handler, tag) => {
                if catch_unwind(AssertUnwindSafe(|| handler.delivered(tag, result))).is_err() {
                    tracing::error!("a delivery handler panicked; the panic was contained");
                }
            }
        }
        true
    }
}

impl Drop for Ticket {
    /// A ticket dropped before it completed fails as closed, so every
    /// record completes exactly once and gives its buffer room back. This
    /// happens when an envelope is sealed just as the producer closes (the
    /// caller seals outside the buffer lock, and the dispatcher may have
    /// drained its channel already), and on unwinding.
    fn drop(&mut self) {
        if self.notify.is_none() {
            return;
        }
        self.count_failure(FailureKind::Closed);
        let attempts = std::mem::take(&mut self.attempts);
        self.finish(Err(DeliveryError {
            kind: FailureKind::Closed,
            code: None,
            message: "the producer was closed before this record was sent".into(),
            attempts,
        }));
    }
}

/// Completes the tickets of a stored envelope (all of one record), then
/// gives their buffer room back in one step: one update of the shared
/// counters and at most one wake-up per envelope instead of per record.
/// The records share `shard_id` and `sequence_number`.
pub(crate) fn succeed_all(
    tickets: Vec<Ticket>,
    shard_id: Option<Arc<str>>,
    sequence_number: Arc<str>,
    aggregated: bool,
) {
    let mut release = Release::default();
    for mut ticket in tickets {
        let attempts = std::mem::take(&mut ticket.attempts);
        let result = Ok(DeliveryReport {
            shard_id: shard_id.clone(),
            sequence_number: sequence_number.clone(),
            attempts,
            aggregated,
        });
        if ticket.deliver(result) {
            release.add(&ticket);
        }
    }
    drop(release);
}

/// Fails every ticket of an envelope with the same reason, then gives
/// their buffer room back in one step (see [`succeed_all`]).
pub(crate) fn fail_all(
    tickets: Vec<Ticket>,
    kind: FailureKind,
    code: Option<String>,
    message: &str,
) {
    let mut release = Release::default();
    for mut ticket in tickets {
        ticket.count_failure(kind);
        let attempts = std::mem::take(&mut ticket.attempts);
        let result = Err(DeliveryError {
            kind,
            code: code.clone(),
            message: message.to_owned(),
            attempts,
        });
        if ticket.deliver(result) {
            release.add(&ticket);
        }
    }
    drop(release);
}

/// Buffer room of completed tickets, given back together when dropped. Tickets of one
/// envelope share their accounting; a change of accounting releases what
/// was gathered so far.
#[derive(Default)]
struct Release {
    accounting: Option<Arc<Accounting>>,
    bytes: usize,
    records: usize,
}

impl Release {
    fn add(&mut self, ticket: &Ticket) {
        if let Some(current) = &self.accounting
            && !Arc::ptr_eq(current, &ticket.accounting)
        {
            self.finish_mut();
        }
        if self.accounting.is_none() {
            self.accounting = Some(ticket.accounting.clone());
        }
        self.bytes += ticket.reserved_bytes;
        self.records += 1;
    }

    fn finish_mut(&mut self) {
        if let Some(accounting) = self.accounting.take() {
            accounting.capacity.release_many(self.bytes, self.records);
        }
        self.bytes = 0;
        self.records = 0;
    }
}

impl Drop for Release {
    /// Also on unwinding: room gathered so far is never lost.
    fn drop(&mut self) {
        self.finish_mut();
    }
}

/// Resolves to the record's [`DeliveryResult`] once the service has stored
/// it or it has failed for good.
///
/// Dropping the future does not cancel the record: it is still delivered.
#[derive(Debug)]
#[must_use = "a DeliveryFuture tells whether the record was stored; drop it only if you don't care"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<DeliveryResult>,
}

impl DeliveryFuture {
    pub(crate) fn new(rx: oneshot::Receiver<DeliveryResult>) -> Self {
        DeliveryFuture { rx }
    }

    /// Blocks the current thread until the result is known. Do not call it
    /// from async code; `.await` the future there.
    pub fn wait(self) -> DeliveryResult {
        self.rx.blocking_recv().unwrap_or_else(|_| Err(lost()))
    }

    /// Returns the result if it is already known, without waiting.
    pub fn try_result(&mut self) -> Option<DeliveryResult> {
        match self.rx.try_recv() {
            Ok(result) => Some(result),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(lost())),
        }
    }
}

fn lost() -> DeliveryError {
    DeliveryError {
        kind: FailureKind::Closed,
        code: None,
        message: "the producer shut down before completing this record".into(),
        attempts: Attempts::default(),
    }
}

impl Future for DeliveryFuture {
    type Output = DeliveryResult;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|_| Err(lost())))
    }
}
