//! The producer: the public handle and the state its pipelines share.
//!
//! # What happens to a record
//!
//! `send` validates the record, reserves room for it in the producer's
//! buffer (waiting, blocking or refusing when the buffer is at its cap),
//! hashes its partition key, predicts its shard from the stream's shard map
//! and adds it to that shard's aggregate — all on the caller's thread. Full
//! aggregates, and aggregates older than `record_max_buffered_time`, go to
//! the stream's dispatcher task, which paces each shard with its rate
//! limiter, collects records into `PutRecords` requests and sends them with
//! at most `max_connections` in flight. Failed entries are retried after a
//! backoff until `record_ttl`; every record completes exactly once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

#[doc(hidden)]
pub mod bench_support;
mod capacity;
mod dispatcher;
mod envelope;
mod packer;
mod routing;
mod ticket;

pub use ticket::{DeliveryCallback, DeliveryFuture, DeliveryHandler, DeliveryResult};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::limiter::Quota;
use crate::limits::{
    FIREHOSE_MAX_RECORD_BYTES, FIREHOSE_MAX_RECORDS_PER_REQUEST, FIREHOSE_MAX_REQUEST_BYTES,
};
use crate::metrics::{MetricsSnapshot, StreamMetrics};
use crate::record::UserRecord;
use crate::sink::Sink;
use capacity::Capacity;
use packer::Packing;
use routing::{Command, Routing, StreamPipeline};
use ticket::{Accounting, Notify, Ticket};

/// Bytes of bookkeeping each buffered record costs besides its data and
/// key; counted against `max_buffered_bytes` so that many tiny records
/// cannot hide their real memory use.
pub(crate) const PER_RECORD_OVERHEAD: usize = 128;

/// Which service a producer writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// Amazon Kinesis Data Streams (`PutRecords`).
    Kinesis,
    /// Amazon Data Firehose Direct PUT (`PutRecordBatch`).
    Firehose,
}

/// The configuration, resolved for one service.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) service: Service,
    pub(crate) packing: Packing,
    pub(crate) max_record_size: usize,
    pub(crate) collection_max_count: usize,
    pub(crate) collection_max_size: usize,
    pub(crate) max_buffered_time: Duration,
    pub(crate) record_ttl: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) quota: Quota,
    pub(crate) rate_limit_percent: u32,
    pub(crate) adaptive_rate_limit: bool,
    pub(crate) shard_map_refresh_interval: Duration,
    pub(crate) close_timeout: Duration,
}

impl Settings {
    fn new(config: &Config, service: Service) -> Self {
        let (packing, quota, max_record_size, max_count, max_size) = match service {
            Service::Kinesis => (
                if config.aggregation_enabled {
                    Packing::Kpl {
                        max_size: config.aggregation_max_size,
                        max_count: config.aggregation_max_count,
                        max_record_size: config.aggregation_max_record_size,
                    }
                } else {
                    Packing::Single {
                        framing: crate::config::FirehoseFraming::None,
                    }
                },
                Quota {
                    bytes_per_second: config.shard_bytes_per_second,
                    records_per_second: config.shard_records_per_second,
                    requests_per_second: None,
                },
                config.max_record_size,
                config.collection_max_count,
                config.collection_max_size,
            ),
            Service::Firehose => (
                if config.firehose_pack_max_size > 0 {
                    Packing::Lines {
                        max_size: config.firehose_pack_max_size,
                    }
                } else {
                    Packing::Single {
                        framing: config.firehose_framing,
                    }
                },
                Quota {
                    bytes_per_second: config.firehose_bytes_per_second,
                    records_per_second: config.firehose_records_per_second,
                    requests_per_second: Some(config.firehose_requests_per_second),
                },
                FIREHOSE_MAX_RECORD_BYTES,
                config
                    .collection_max_count
                    .min(FIREHOSE_MAX_RECORDS_PER_REQUEST),
                config.collection_max_size.min(FIREHOSE_MAX_REQUEST_BYTES),
            ),
        };
        Settings {
            service,
            packing,
            max_record_size,
            collection_max_count: max_count,
            collection_max_size: max_size,
            max_buffered_time: config.record_max_buffered_time,
            record_ttl: config.record_ttl,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
            quota,
            rate_limit_percent: config.rate_limit_percent,
            adaptive_rate_limit: config.adaptive_rate_limit,
            shard_map_refresh_interval: config.shard_map_refresh_interval,
            close_timeout: config.close_timeout,
        }
    }
}

/// State shared by the handle, the pipelines and their dispatchers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) sink: Sink,
    pub(crate) capacity: Arc<Capacity>,
    pub(crate) permits: Arc<Semaphore>,
    /// Number of flushes in progress: while non-zero, nothing waits for
    /// batching.
    pub(crate) flushing: AtomicUsize,
    /// Bumped by every flush: a dispatcher that sees a new value flushes
    /// everything once, even if the flush that asked has already returned
    /// (callers that wait in short slices must not go unseen).
    pub(crate) flush_generation: AtomicU64,
    pub(crate) closed: AtomicBool,
    streams: RwLock<HashMap<Arc<str>, Arc<StreamPipeline>>>,
    dispatchers: Mutex<Vec<JoinHandle<()>>>,
    runtime: Handle,
}

/// A record `send` did not accept, handed back with the reason.
#[derive(Debug)]
pub struct SendError {
    /// Why the record was refused.
    pub error: Error,
    /// The record, so the caller can retry or report it.
    pub record: UserRecord,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A producer for Kinesis Data Streams or Firehose. Cheap to clone; every
/// clone feeds the same pipelines.
///
/// See the [crate documentation](crate) for the model.
#[derive(Debug, Clone)]
pub struct Producer {
    handle: Arc<Handle_>,
}

/// The one owner of the producer's resources; its drop starts the close.
#[derive(Debug)]
struct Handle_ {
    shared: Arc<Shared>,
    /// The producer's own runtime, if it was not given one.
    runtime: Mutex<Option<Runtime>>,
}

impl Producer {
    /// A Kinesis Data Streams producer on its own runtime.
    pub fn new(config: Config) -> Result<Producer> {
        Self::build(config, Service::Kinesis, None)
    }

    /// A Firehose producer on its own runtime.
    pub fn firehose(config: Config) -> Result<Producer> {
        Self::build(config, Service::Firehose, None)
    }

    /// A producer for `service` whose tasks run on the caller's runtime,
    /// which must be a multi-thread runtime (a current-thread runtime
    /// cannot drive the producer's I/O while its own thread waits).
    pub fn with_runtime(config: Config, service: Service, runtime: Handle) -> Result<Producer> {
        Self::build(config, service, Some(runtime))
    }

    /// A producer for `service` on its own runtime.
    pub fn for_service(config: Config, service: Service) -> Result<Producer> {
        Self::build(config, service, None)
    }

    fn build(config: Config, service: Service, runtime: Option<Handle>) -> Result<Producer> {
        config.validate()?;
        let (own_runtime, handle) = match runtime {
            Some(handle) => (None, handle),
            None => {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(config.worker_threads)
                    .thread_name("shardline")
                    .enable_all()
                    .build()
                    .map_err(|e| Error::Setup(format!("cannot start the producer runtime: {e}")))?;
                let handle = runtime.handle().clone();
                (Some(runtime), handle)
            }
        };
        // Loading the SDK config may do I/O (profile files, IMDS); run it
        // on the producer's runtime from a plain thread, so this works
        // from sync code and from inside another runtime alike.
        let sdk_config = {
            let config = config.clone();
            let handle2 = handle.clone();
            std::thread::scope(|s| {
                s.spawn(move || handle2.block_on(crate::aws::load_sdk_config(&config)))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(Error::Setup(
                            "loading the AWS configuration panicked".into(),
                        ))
                    })
            })?
        };
        let sink = match service {
            Service::Kinesis => Sink::Kinesis(crate::sink::kinesis::KinesisSink::new(&sdk_config)),
            Service::Firehose => {
                Sink::Firehose(crate::sink::firehose::FirehoseSink::new(&sdk_config))
            }
        };
        let shared = Arc::new(Shared {
            settings: Settings::new(&config, service),
            sink,
            capacity: Arc::new(Capacity::new(
                config.max_buffered_bytes,
                config.max_buffered_records,
            )),
            permits: Arc::new(Semaphore::new(config.max_connections)),
            flushing: AtomicUsize::new(0),
            flush_generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            streams: RwLock::new(HashMap::new()),
            dispatchers: Mutex::new(Vec::new()),
            runtime: handle,
        });
        Ok(Producer {
            handle: Arc::new(Handle_ {
                shared,
                runtime: Mutex::new(own_runtime),
            }),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Which service this producer writes to.
    pub fn service(&self) -> Service {
        self.shared().settings.service
    }

    /// Queues a record, waiting while the buffer is full; the returned
    /// future resolves when the record is stored or has failed for good.
    pub async fn send(
        &self,
        stream: &str,
        record: UserRecord,
    ) -> Result<DeliveryFuture, SendError> {
        let (tx, rx) = oneshot::channel();
        let prepared = self.prepare(stream, record)?;
        let capacity = self.shared().capacity.clone();
        if !capacity.try_reserve(prepared.reserved) {
            let shared = self.shared().clone();
            let mut reserved = false;
            capacity
                .wait_until(|| {
                    reserved = capacity.try_reserve(prepared.reserved);
                    reserved || shared.closed.load(Ordering::Acquire)
                })
                .await;
            if !reserved {
                return Err(prepared.refuse(Error::Closed));
            }
        }
        self.admit(prepared, Notify::Future(tx));
        Ok(DeliveryFuture::new(rx))
    }

    /// Queues a record without waiting: when the buffer is full, the record
    /// comes back with [`Error::QueueFull`].
    pub fn try_send(&self, stream: &str, record: UserRecord) -> Result<DeliveryFuture, SendError> {
        let (tx, rx) = oneshot::channel();
        self.try_send_notify(stream, record, Notify::Future(tx))?;
        Ok(DeliveryFuture::new(rx))
    }

    /// Queues a record, blocking the thread while the buffer is full, for
    /// at most `timeout` (forever if `None`); then the record comes back
    /// with [`Error::Timeout`].
    pub fn send_blocking(
        &self,
        stream: &str,
        record: UserRecord,
        timeout: Option<Duration>,
    ) -> Result<DeliveryFuture, SendError> {
        let (tx, rx) = oneshot::channel();
        self.send_blocking_notify(stream, record, timeout, Notify::Future(tx))?;
        Ok(DeliveryFuture::new(rx))
    }

    /// Like [`Producer::try_send`], reporting through `callback` instead of
    /// a future. The callback runs on a producer thread.
    pub fn try_send_with_callback(
        &self,
        stream: &str,
        record: UserRecord,
        callback: DeliveryCallback,
    ) -> Result<(), SendError> {
        self.try_send_notify(stream, record, Notify::Callback(callback))
    }

    /// Like [`Producer::send_blocking`], reporting through `callback`.
    pub fn send_blocking_with_callback(
        &self,
        stream: &str,
        record: UserRecord,
        timeout: Option<Duration>,
        callback: DeliveryCallback,
    ) -> Result<(), SendError> {
        self.send_blocking_notify(stream, record, timeout, Notify::Callback(callback))
    }

    /// Like [`Producer::try_send`], reporting to `handler` with `tag`
    /// (see [`DeliveryHandler`]: no allocation per record).
    pub fn try_send_with_handler(
        &self,
        stream: &str,
        record: UserRecord,
        handler: &Arc<dyn DeliveryHandler>,
        tag: u64,
    ) -> Result<(), SendError> {
        self.try_send_notify(stream, record, Notify::Handler(handler.clone(), tag))
    }

    /// Like [`Producer::send_blocking`], reporting to `handler` with `tag`
    /// (see [`DeliveryHandler`]: no allocation per record).
    pub fn send_blocking_with_handler(
        &self,
        stream: &str,
        record: UserRecord,
        timeout: Option<Duration>,
        handler: &Arc<dyn DeliveryHandler>,
        tag: u64,
    ) -> Result<(), SendError> {
        self.send_blocking_notify(
            stream,
            record,
            timeout,
            Notify::Handler(handler.clone(), tag),
        )
    }

    fn try_send_notify(
        &self,
        stream: &str,
        record: UserRecord,
        notify: Notify,
    ) -> Result<(), SendError> {
        let prepared = self.prepare(stream, record)?;
        if !self.shared().capacity.try_reserve(prepared.reserved) {
            return Err(prepared.refuse(Error::QueueFull));
        }
        self.admit(prepared, notify);
        Ok(())
    }

    fn send_blocking_notify(
        &self,
        stream: &str,
        record: UserRecord,
        timeout: Option<Duration>,
        notify: Notify,
    ) -> Result<(), SendError> {
        let prepared = self.prepare(stream, record)?;
        let shared = self.shared();
        if !shared.capacity.try_reserve(prepared.reserved) {
            // A timeout too long to be an instant (`Duration::MAX`) never ends.
            let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
            let mut reserved = false;
            shared.capacity.block_until(deadline, || {
                reserved = shared.capacity.try_reserve(prepared.reserved);
                reserved || shared.closed.load(Ordering::Acquire)
            });
            if !reserved {
                let error = if shared.closed.load(Ordering::Acquire) {
                    Error::Closed
                } else {
                    Error::Timeout(timeout.unwrap_or_default())
                };
                return Err(prepared.refuse(error));
            }
        }
        self.admit(prepared, notify);
        Ok(())
    }

    /// Validates and hashes; finds (or starts) the stream's pipeline.
    /// Checks `record` as sending it would, without sending it: its
    /// partition key (Kinesis) and its size against the service's limit
    /// (data plus key for Kinesis; for Firehose the data, plus the newline
    /// that framing or packing adds). For callers that validate a batch
    /// before queuing any of it; the stream name is checked by
    /// [`validate_stream_name`].
    pub fn check(&self, record: &UserRecord) -> Result<()> {
        let settings = &self.shared().settings;
        match settings.service {
            Service::Kinesis => record.validate(settings.max_record_size),
            Service::Firehose => {
                let size = packer::firehose_record_len(record, settings.packing);
                if size > settings.max_record_size {
                    Err(Error::RecordTooLarge {
                        size,
                        limit: settings.max_record_size,
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    fn prepare(&self, stream: &str, record: UserRecord) -> Result<Prepared, SendError> {
        let shared = self.shared();
        let refuse = |error, record| Err(SendError { error, record });
        if shared.closed.load(Ordering::Acquire) {
            return refuse(Error::Closed, record);
        }
        if let Err(error) = validate_stream_name(stream) {
            return refuse(error, record);
        }
        if let Err(error) = self.check(&record) {
            return refuse(error, record);
        }
        let hash_key = match shared.settings.service {
            Service::Kinesis => record.hash_key(),
            // A delivery stream is one pseudo-shard: no hashing needed.
            Service::Firehose => 0,
        };
        let reserved = record.billed_size() + PER_RECORD_OVERHEAD;
        let Some(pipeline) = self.pipeline(stream) else {
            return refuse(Error::Closed, record);
        };
        Ok(Prepared {
            record,
            hash_key,
            reserved,
            pipeline,
        })
    }

    fn admit(&self, prepared: Prepared, notify: Notify) {
        let Prepared {
            record,
            hash_key,
            reserved,
            pipeline,
        } = prepared;
        pipeline
            .metrics
            .user_records_received
            .fetch_add(1, Ordering::Relaxed);
        let ticket = Ticket::new(notify, hash_key, reserved, pipeline.accounting.clone());
        pipeline.route(record, ticket);
    }

    /// The stream's pipeline, started on its first record; `None` if the
    /// producer is closing and the stream has none yet. Checked under the
    /// streams lock, which `begin_shutdown` holds while it marks the
    /// producer closed and stops the dispatchers: a pipeline started after
    /// that would never be stopped, and its records never completed.
    fn pipeline(&self, stream: &str) -> Option<Arc<StreamPipeline>> {
        let shared = self.shared();
        if let Some(p) = shared.streams.read().get(stream) {
            return Some(p.clone());
        }
        let mut streams = shared.streams.write();
        if let Some(p) = streams.get(stream) {
            return Some(p.clone());
        }
        if shared.closed.load(Ordering::Acquire) {
            return None;
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(StreamMetrics::default());
        let pipeline = Arc::new(StreamPipeline {
            name: Arc::from(stream),
            routing: RwLock::new(Arc::new(Routing::new(None, shared.settings.packing))),
            commands: tx,
            accounting: Arc::new(Accounting {
                capacity: shared.capacity.clone(),
                metrics: metrics.clone(),
            }),
            metrics,
            packing: shared.settings.packing,
            max_buffered_time: shared.settings.max_buffered_time,
            record_ttl: shared.settings.record_ttl,
            shut_down: AtomicBool::new(false),
        });
        let dispatcher = dispatcher::Dispatcher::new(shared.clone(), pipeline.clone(), rx);
        shared
            .dispatchers
            .lock()
            .push(shared.runtime.spawn(dispatcher.run()));
        streams.insert(pipeline.name.clone(), pipeline.clone());
        Some(pipeline)
    }

    /// Records accepted and not yet completed. A record's completion is
    /// reported just before it stops counting here, so the count can trail
    /// the last completion by a moment; [`Producer::flush`] returns once it
    /// is zero, and by then every completion has been reported.
    pub fn outstanding(&self) -> usize {
        self.shared().capacity.records()
    }

    /// Bytes (data, keys and bookkeeping) held for outstanding records.
    /// The bodies of requests in flight count against `max_buffered_bytes`
    /// as well but are not included here.
    pub fn buffered_bytes(&self) -> usize {
        self.shared().capacity.record_bytes()
    }

    /// Sends everything buffered now, without waiting for batching, and
    /// waits until no record is outstanding (records sent meanwhile
    /// included), or until `timeout`.
    pub async fn flush(&self, timeout: Option<Duration>) -> Result<()> {
        let shared = self.shared();
        let _flushing = FlushGuard::start(shared);
        let capacity = shared.capacity.clone();
        let wait = capacity.wait_until(|| capacity.records() == 0);
        match timeout {
            None => {
                wait.await;
                Ok(())
            }
            Some(t) => tokio::time::timeout(t, wait)
                .await
                .map_err(|_| Error::Timeout(t)),
        }
    }

    /// [`Producer::flush`] for sync code: blocks the thread.
    pub fn flush_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        let shared = self.shared();
        let _flushing = FlushGuard::start(shared);
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        if shared
            .capacity
            .block_until(deadline, || shared.capacity.records() == 0)
        {
            Ok(())
        } else {
            Err(Error::Timeout(timeout.unwrap_or_default()))
        }
    }

    /// Stops accepting records, delivers what is outstanding for up to
    /// `timeout` (the configured `close_timeout` if `None`), fails the rest
    /// with [`FailureKind::Closed`](crate::FailureKind::Closed), and stops
    /// the background tasks. Every record completes before this returns.
    pub async fn close(&self, timeout: Option<Duration>) -> Result<()> {
        let shared = self.shared().clone();
        let timeout = timeout.unwrap_or(shared.settings.close_timeout);
        let delivered_all = self.flush(Some(timeout)).await.is_ok();
        let dispatchers = shared.begin_shutdown();
        for d in dispatchers {
            let _ = d.await;
        }
        finish_close(delivered_all)
    }

    /// [`Producer::close`] for sync code. Also stops the producer's own
    /// runtime threads.
    pub fn close_blocking(&self, timeout: Option<Duration>) -> Result<()> {
        let shared = self.shared().clone();
        let timeout = timeout.unwrap_or(shared.settings.close_timeout);
        let delivered_all = self.flush_blocking(Some(timeout)).is_ok();
        let dispatchers = shared.begin_shutdown();
        let handle = shared.runtime.clone();
        std::thread::scope(|s| {
            s.spawn(|| {
                handle.block_on(async {
                    for d in dispatchers {
                        let _ = d.await;
                    }
                })
            });
        });
        if let Some(runtime) = self.handle.runtime.lock().take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
        finish_close(delivered_all)
    }

    /// True once `close` has started.
    pub fn is_closed(&self) -> bool {
        self.shared().closed.load(Ordering::Acquire)
    }

    /// A snapshot of the metrics, totals and per stream and shard.
    pub fn metrics(&self) -> MetricsSnapshot {
        let shared = self.shared();
        let streams: BTreeMap<String, _> = shared
            .streams
            .read()
            .iter()
            .map(|(name, p)| {
                let mut snapshot = p.metrics.snapshot();
                snapshot.counters.user_records_pending =
                    snapshot.counters.user_records_received.saturating_sub(
                        snapshot.counters.user_records_put + snapshot.counters.user_records_failed,
                    );
                (name.to_string(), snapshot)
            })
            .collect();
        MetricsSnapshot::from_streams(streams)
    }
}

fn finish_close(delivered_all: bool) -> Result<()> {
    if delivered_all {
        Ok(())
    } else {
        Err(Error::Timeout(Duration::ZERO))
    }
}

impl Shared {
    /// Marks the producer closed and tells every dispatcher to fail what is
    /// left and stop; returns their handles to wait on.
    fn begin_shutdown(&self) -> Vec<JoinHandle<()>> {
        // Under the write lock: no pipeline can start in between (see
        // `Producer::pipeline`).
        let streams = self.streams.write();
        self.closed.store(true, Ordering::Release);
        for pipeline in streams.values() {
            let _ = pipeline.commands.send(Command::Shutdown);
        }
        drop(streams);
        std::mem::take(&mut *self.dispatchers.lock())
    }
}

impl Drop for Handle_ {
    /// The last handle is gone without `close`: close in the background.
    /// Outstanding records get up to `close_timeout` to be delivered, then
    /// fail as closed; the runtime's threads end after that. Nothing blocks
    /// the dropping thread.
    fn drop(&mut self) {
        let shared = self.shared.clone();
        let runtime = self.runtime.lock().take();
        if shared.closed.load(Ordering::Acquire) && shared.dispatchers.lock().is_empty() {
            if let Some(runtime) = runtime {
                runtime.shutdown_background();
            }
            return;
        }
        let closer = async move {
            let timeout = shared.settings.close_timeout;
            let _flushing = FlushGuard::start(&shared);
            let capacity = shared.capacity.clone();
            let _ = tokio::time::timeout(timeout, capacity.wait_until(|| capacity.records() == 0))
                .await;
            drop(_flushing);
            for d in shared.begin_shutdown() {
                let _ = d.await;
            }
        };
        match runtime {
            Some(runtime) => {
                let spawned = std::thread::Builder::new()
                    .name("shardline-close".into())
                    .spawn(move || {
                        runtime.block_on(closer);
                        runtime.shutdown_timeout(Duration::from_secs(1));
                    });
                if let Err(e) = spawned {
                    tracing::error!("cannot start the closing thread: {e}");
                }
            }
            None => {
                self.shared.runtime.spawn(closer);
            }
        }
    }
}

struct FlushGuard<'a>(&'a Shared);

impl<'a> FlushGuard<'a> {
    fn start(shared: &'a Shared) -> Self {
        shared.flushing.fetch_add(1, Ordering::AcqRel);
        shared.flush_generation.fetch_add(1, Ordering::AcqRel);
        for pipeline in shared.streams.read().values() {
            let _ = pipeline.commands.send(Command::Wake);
        }
        FlushGuard(shared)
    }
}

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.flushing.fetch_sub(1, Ordering::AcqRel);
    }
}

struct Prepared {
    record: UserRecord,
    hash_key: u128,
    reserved: usize,
    pipeline: Arc<StreamPipeline>,
}

impl Prepared {
    fn refuse(self, error: Error) -> SendError {
        SendError {
            error,
            record: self.record,
        }
    }
}

/// Checks a stream or delivery stream name as `send` does: 1 to 128 of
/// `[a-zA-Z0-9_.-]`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let invalid = |reason| Error::InvalidStreamName {
        name: name.chars().take(128).collect(),
        reason,
    };
    if name.is_empty() {
        return Err(invalid("it is empty"));
    }
    if name.len() > 128 {
        return Err(invalid("it is longer than 128 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(invalid(
            "it may contain only a-z, A-Z, 0-9, '_', '.' and '-'",
        ));
    }
    Ok(())
}
