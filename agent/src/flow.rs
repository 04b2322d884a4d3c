//! One flow at work: a thread that tails its files, processes each record
//! and hands it to the flow's producer, and the callbacks that turn
//! deliveries into checkpoint progress.
//!
//! # Where it waits
//!
//! `send_blocking_with_callback` blocks while the producer's buffer is
//! full: that is the agent's backpressure. Reading stops, the files grow,
//! and "behind" in the status line grows with them; nothing is dropped.
//! The wait is cut into short slices so a stop request is noticed.
//!
//! # What a completion does
//!
//! - delivered: the record's byte range counts as done;
//! - rejected by the service for a reason that concerns the whole stream
//!   (access denied, no such stream, a KMS key; `ListShards` refused the
//!   same way): held, and sent again after [`STREAM_REFUSED_BACKOFF`];
//!   meanwhile the flow reads nothing new, since new records would meet the
//!   same refusal. Skipping them instead would checkpoint past every line
//!   of every file while, say, a policy lacks `kinesis:ListShards`;
//! - rejected by the service for any other reason (it can never be
//!   delivered as it is): counted as failed, logged, and its range counts
//!   as done so one bad record does not hold the checkpoint back forever;
//! - expired (throttled or failing for longer than `record_ttl`): sent
//!   again by the flow thread;
//! - producer closed (the agent is stopping): left undone, so the next run
//!   sends it again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use shardline::{DeliveryResult, Error, FailureKind, Producer, Service, UserRecord};

use crate::checkpoint::FileCheckpoint;
use crate::config::{FlowConfig, PartitionKeyOption};
use crate::processing;
use crate::tail::{SharedProgress, Splitter, Tailer};

/// How long one blocking send waits before checking for a stop request.
const SEND_SLICE: Duration = Duration::from_millis(200);

/// How long a record the service refused for the whole stream waits
/// before it is sent again.
pub(crate) const STREAM_REFUSED_BACKOFF: Duration = Duration::from_secs(5);

/// True when a rejection concerns the stream (or the credentials' access
/// to it), not the record: every record would meet it, until someone
/// fixes the policy, the stream or the key.
fn refused_for_the_stream(code: Option<&str>) -> bool {
    code.is_some_and(|code| {
        matches!(
            code,
            "AccessDeniedException"
                | "ResourceNotFoundException"
                | "ResourceInUseException"
                | "UnrecognizedClientException"
                | "InvalidKMSResourceException"
        ) || code.starts_with("KMS")
    })
}

/// Counters of one flow, shown in the status line.
#[derive(Debug, Default)]
pub(crate) struct FlowStats {
    /// Records cut from the files (skipped header lines not counted).
    pub(crate) read: AtomicU64,
    /// Records the service stored.
    pub(crate) sent: AtomicU64,
    /// Records the service rejected for good.
    pub(crate) failed: AtomicU64,
    /// Records dropped by `dataProcessingOptions` (LOGTOJSON non-matches).
    pub(crate) filtered: AtomicU64,
    /// Records sent again after expiring, or after the service refused
    /// them for the whole stream.
    pub(crate) resent: AtomicU64,
    /// Records the service refused for the whole stream (each is held and
    /// sent again).
    pub(crate) refused: AtomicU64,
    /// Bytes in the files not yet read.
    pub(crate) behind_bytes: AtomicU64,
    /// Files followed.
    pub(crate) files: AtomicU64,
}

/// What the flow thread shares with the rest of the agent.
#[derive(Debug)]
pub(crate) struct FlowHandle {
    /// The flow id (checkpoint key).
    pub(crate) id: String,
    /// Counters.
    pub(crate) stats: Arc<FlowStats>,
    /// The producer, for its metrics.
    pub(crate) producer: Producer,
    /// The latest checkpoint entries of the flow's files.
    pub(crate) checkpoints: Arc<Mutex<Vec<FileCheckpoint>>>,
}

/// A record to send again.
struct Resend {
    key: String,
    data: Bytes,
    progress: SharedProgress,
    range: (u64, u64),
    /// Not before this (a record refused for the whole stream).
    not_before: Option<Instant>,
}

/// The flow's thread state.
pub(crate) struct Flow {
    config: FlowConfig,
    tailer: Tailer,
    producer: Producer,
    stats: Arc<FlowStats>,
    checkpoints: Arc<Mutex<Vec<FileCheckpoint>>>,
    resend_tx: mpsc::Sender<Resend>,
    resend_rx: mpsc::Receiver<Resend>,
    /// Records refused for the whole stream, waiting out their backoff,
    /// oldest first.
    held: VecDeque<Resend>,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

/// Room a flow keeps in each record for what it adds when sending: the
/// partition key (Kinesis) or the appended newline (Firehose).
pub(crate) fn record_overhead(service: Service) -> usize {
    match service {
        Service::Kinesis => 256,
        Service::Firehose => 1,
    }
}

impl Flow {
    /// Builds the flow and its producer; `saved` are its checkpoint entries
    /// (`None` on its first run).
    pub(crate) fn new(
        config: FlowConfig,
        saved: Option<Vec<FileCheckpoint>>,
    ) -> Result<(Flow, FlowHandle), Error> {
        let producer = Producer::for_service(config.producer.clone(), config.service)?;
        let overhead = record_overhead(config.service);
        let splitter = Splitter {
            multi_line_start: config
                .multi_line_start
                .as_ref()
                .map(|r| regex::bytes::Regex::new(r.as_str()).expect("validated as a str regex")),
            max_record: config.max_record_size - overhead,
            terminator: config.truncated_record_terminator.clone(),
            skip_header_lines: config.skip_header_lines,
        };
        // Until the flow publishes its own, the checkpoint file keeps what
        // it had: the first publish can wait behind a full producer, and
        // an empty list saved meanwhile would make a crash then re-read
        // every file from its start.
        let checkpoints = Arc::new(Mutex::new(saved.clone().unwrap_or_default()));
        let tailer = Tailer::new(
            config.file_pattern.clone(),
            splitter,
            config.initial_position,
            saved,
        );
        let stats = Arc::new(FlowStats::default());
        let (resend_tx, resend_rx) = mpsc::channel();
        let handle = FlowHandle {
            id: config.id.clone(),
            stats: stats.clone(),
            producer: producer.clone(),
            checkpoints: checkpoints.clone(),
        };
        Ok((
            Flow {
                config,
                tailer,
                producer,
                stats,
                checkpoints,
                resend_tx,
                resend_rx,
                held: VecDeque::new(),
            },
            handle,
        ))
    }

    /// Runs until `stop` is set, then closes the producer (waiting up to
    /// `shutdown_timeout` for outstanding records) and publishes the final
    /// checkpoint entries.
    pub(crate) fn run(mut self, stop: &AtomicBool, shutdown_timeout: Duration) {
        while !stop.load(Ordering::Relaxed) {
            while let Ok(resend) = self.resend_rx.try_recv() {
                if resend.not_before.is_some() {
                    self.held.push_back(resend);
                } else {
                    self.stats.resent.fetch_add(1, Ordering::Relaxed);
                    self.send(resend, stop);
                }
            }
            let now = Instant::now();
            while let Some(resend) = self
                .held
                .pop_front_if(|r| r.not_before.is_none_or(|t| t <= now))
            {
                self.stats.resent.fetch_add(1, Ordering::Relaxed);
                self.send(resend, stop);
            }
            if let Some(next) = self.held.front().and_then(|r| r.not_before) {
                // The stream refuses records: read nothing new until it
                // takes the held ones again (new records would only be
                // refused and held too, without bound).
                self.publish();
                let wait = next.saturating_duration_since(Instant::now());
                std::thread::sleep(wait.min(self.config.poll_interval));
                continue;
            }
            self.tailer.scan();
            let records = self.tailer.read();
            let idle = records.is_empty();
            for read in records {
                let (start, end) = (read.record.start, read.record.end);
                let Some(raw) = read.record.data else {
                    complete(&read.progress, start, end);
                    continue;
                };
                self.stats.read.fetch_add(1, Ordering::Relaxed);
                let Some(data) = processing::apply_all(&self.config.processors, raw) else {
                    self.stats.filtered.fetch_add(1, Ordering::Relaxed);
                    complete(&read.progress, start, end);
                    continue;
                };
                let key = self.partition_key(&data);
                self.send(
                    Resend {
                        key,
                        data: Bytes::from(data),
                        progress: read.progress,
                        range: (start, end),
                        not_before: None,
                    },
                    stop,
                );
                if stop.load(Ordering::Relaxed) {
                    break;
                }
            }
            self.publish();
            if idle {
                std::thread::sleep(self.config.poll_interval);
            }
        }
        if let Err(e) = self.producer.close_blocking(Some(shutdown_timeout)) {
            tracing::warn!(flow = %self.config.id, "not every record was delivered before the stop ({e}); the rest is sent after the next start");
        }
        self.publish();
    }

    fn publish(&mut self) {
        self.stats
            .behind_bytes
            .store(self.tailer.behind_bytes(), Ordering::Relaxed);
        self.stats
            .files
            .store(self.tailer.file_count() as u64, Ordering::Relaxed);
        *self.checkpoints.lock().expect("checkpoint lock") = self.tailer.checkpoints();
    }

    fn partition_key(&self, data: &[u8]) -> String {
        match (self.config.service, self.config.partition_key) {
            // Firehose has no partition keys.
            (Service::Firehose, _) => String::new(),
            (Service::Kinesis, PartitionKeyOption::Random) => rand::random::<u64>().to_string(),
            (Service::Kinesis, PartitionKeyOption::Deterministic) => {
                use md5::Digest as _;
                let digest = md5::Md5::digest(data);
                digest.iter().map(|b| format!("{b:02x}")).collect()
            }
        }
    }

    /// Queues one record, blocking while the producer is full (and
    /// publishing the checkpoints meanwhile: what was acknowledged while
    /// a batch waits is saved, not only after the batch).
    fn send(&mut self, resend: Resend, stop: &AtomicBool) {
        let Resend {
            key,
            data,
            progress,
            range,
            ..
        } = resend;
        let mut record = UserRecord::new(key.clone(), data.clone());
        loop {
            let callback = {
                let stats = self.stats.clone();
                let retry = self.resend_tx.clone();
                let progress = progress.clone();
                let (key, data) = (key.clone(), data.clone());
                let flow = self.config.id.clone();
                Box::new(move |result: DeliveryResult| match result {
                    Ok(_) => {
                        stats.sent.fetch_add(1, Ordering::Relaxed);
                        complete(&progress, range.0, range.1);
                    }
                    Err(e) => match e.kind {
                        FailureKind::Expired => {
                            let _ = retry.send(Resend {
                                key,
                                data,
                                progress,
                                range,
                                not_before: None,
                            });
                        }
                        FailureKind::Rejected if refused_for_the_stream(e.code.as_deref()) => {
                            // One warning per 1,000: every record of the
                            // flow meets the same refusal.
                            if stats
                                .refused
                                .fetch_add(1, Ordering::Relaxed)
                                .is_multiple_of(1000)
                            {
                                tracing::warn!(
                                    %flow,
                                    "the service refused records for the whole stream; \
                                     holding them and reading nothing new, sending again \
                                     every {} s: {e}",
                                    STREAM_REFUSED_BACKOFF.as_secs()
                                );
                            }
                            let _ = retry.send(Resend {
                                key,
                                data,
                                progress,
                                range,
                                not_before: Some(Instant::now() + STREAM_REFUSED_BACKOFF),
                            });
                        }
                        FailureKind::Rejected => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%flow, "record rejected: {e}");
                            complete(&progress, range.0, range.1);
                        }
                        // Closed (the agent is stopping), or a kind added
                        // later: not delivered, so not checkpointed.
                        _ => {}
                    },
                })
            };
            match self.producer.send_blocking_with_callback(
                &self.config.stream,
                record,
                Some(SEND_SLICE),
                callback,
            ) {
                Ok(()) => return,
                Err(refused) => match refused.error {
                    Error::Timeout(_) if !stop.load(Ordering::Relaxed) => {
                        record = refused.record;
                        self.publish();
                    }
                    e if e.is_validation() => {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(flow = %self.config.id, "record refused: {e}");
                        complete(&progress, range.0, range.1);
                        return;
                    }
                    // Stopping: the record stays unacknowledged and is read
                    // again after the restart.
                    _ => return,
                },
            }
        }
    }
}

fn complete(progress: &SharedProgress, start: u64, end: u64) {
    progress.lock().expect("progress lock").complete(start, end);
}
