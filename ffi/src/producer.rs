//! `shardline_producer`: send, the delivery-report queue, poll, flush, free.
//!
//! The core reports records to one `DeliveryHandler` per producer, with
//! the record's slot in the outstanding table as its tag; on a producer
//! thread the handler only pushes the result onto a channel, so a send
//! allocates nothing for its completion. The user's C callback runs when the application calls
//! `poll`, `flush` or `free`, on that thread. A record counts as
//! outstanding from `send` until its report has been served, so the buffer
//! bound covers reports nobody has polled yet, and `flush` returning OK
//! means every callback has run.
//!
//! Once `free` begins, only its thread serves: `poll` and `flush` running
//! on other threads stop (a `poll` waiting for a report is woken), `free`
//! waits for the callbacks they are running, then serves the rest itself.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender};
use parking_lot::{Condvar, Mutex, RwLock};
use shardline::limits::{KINESIS_MAX_RECORD_BYTES, PARTITION_KEY_MAX_CHARS};
use shardline::{DeliveryHandler, DeliveryResult, Producer, Service, UserRecord};
use slab::Slab;

use crate::config::{CONFIGS, ConfigState, Limits};
use crate::handle::Registry;
use crate::result::failure_kind;
use crate::result::shardline_result::{self, *};
use crate::{c_bytes, c_str, guard, guard_result, write_errbuf};

/// A producer for Kinesis Data Streams or Firehose (chosen by the config
/// key `service`). Safe to use from any number of threads.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct shardline_producer {
    _opaque: [u8; 0],
}

/// The outcome of one record, as the delivery callback sees it. The struct
/// and every string in it are valid only during the callback: copy what
/// you keep.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct shardline_delivery_report {
    /// `SHARDLINE_OK` when the service stored the record; otherwise
    /// `SHARDLINE_DELIVERY_REJECTED`, `_EXPIRED`, `_CLOSED` or `_FAILED`.
    pub result: shardline_result,
    /// The stream (or delivery stream) the record was sent to.
    pub stream: *const c_char,
    /// The shard that stored it; NULL for Firehose and for failures.
    pub shard_id: *const c_char,
    /// The Kinesis sequence number (of the aggregate that carried the
    /// record, if aggregated), or the Firehose record id; NULL on failure.
    pub sequence_number: *const c_char,
    /// The last error code from the service (e.g.
    /// `ProvisionedThroughputExceededException`); NULL on success or when
    /// there is none.
    pub error_code: *const c_char,
    /// A readable reason on failure; NULL on success.
    pub error_message: *const c_char,
    /// How many times the record (or its aggregate) was sent.
    pub attempts: u32,
    /// True when it travelled inside a KPL aggregate (or a packed Firehose
    /// record) with other records.
    pub aggregated: bool,
    /// The `msg_opaque` given to `shardline_producer_send`.
    pub msg_opaque: *mut c_void,
}

/// The delivery report callback: `report` is valid during the call only;
/// `opaque` is the pointer given to `shardline_config_set_delivery_cb`.
#[allow(non_camel_case_types)]
pub type shardline_delivery_cb =
    Option<unsafe extern "C" fn(report: *const shardline_delivery_report, opaque: *mut c_void)>;

/// A completed record waiting to be served.
#[derive(Debug)]
struct Completion {
    /// The record's key in [`Outstanding::sent`].
    tag: usize,
    result: DeliveryResult,
}

/// The core's reports, onto the channel `poll` serves.
#[derive(Debug)]
struct Reporter(Sender<Completion>);

impl DeliveryHandler for Reporter {
    fn delivered(&self, tag: u64, result: DeliveryResult) {
        // The receiver lives as long as the producer state; if it is gone,
        // nobody is left to serve the report.
        let _ = self.0.send(Completion {
            tag: tag as usize,
            result,
        });
    }
}

/// What a sent record's report needs besides the core's result.
#[derive(Debug, Clone)]
struct Sent {
    stream: Arc<str>,
    msg_opaque: usize,
    bytes: usize,
}

/// Records and bytes sent and not yet served.
#[derive(Debug, Default)]
struct Outstanding {
    records: usize,
    bytes: usize,
    /// Every record sent and not yet served, keyed by its tag.
    sent: Slab<Sent>,
    /// Stream names, shared by the `Sent` entries of their records.
    streams: HashSet<Arc<str>>,
}

impl Outstanding {
    fn fits(&self, bytes: usize, limits: &Limits) -> bool {
        // A record is always let in when nothing is outstanding, so one
        // record larger than the byte bound cannot wedge the producer.
        self.records == 0
            || (self.records < limits.max_buffered_records
                && self.bytes.saturating_add(bytes) <= limits.max_buffered_bytes)
    }

    /// Counts a record in and returns its tag.
    fn admit(&mut self, stream: &str, msg_opaque: usize, bytes: usize) -> usize {
        self.records += 1;
        self.bytes += bytes;
        let stream = match self.streams.get(stream) {
            Some(name) => name.clone(),
            None => {
                let name: Arc<str> = stream.into();
                self.streams.insert(name.clone());
                name
            }
        };
        self.sent.insert(Sent {
            stream,
            msg_opaque,
            bytes,
        })
    }
}

/// Who is serving reports: `poll` and `flush` stop once `free` has begun
/// on another thread; `free` serves everything left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    App,
    Free,
}

pub(crate) struct ProducerState {
    producer: Producer,
    callback: shardline_delivery_cb,
    callback_opaque: usize,
    limits: Limits,
    /// A [`Reporter`], as the core takes it.
    reporter: Arc<dyn DeliveryHandler>,
    completions_rx: Receiver<Completion>,
    /// Puts back a report a `poll` or `flush` took after `free` began, for
    /// `free` to serve. (The channel never disconnects while the state
    /// lives: this and `reporter` hold senders.)
    requeue: Sender<Completion>,
    /// Set when `free` begins: from then on only `free`'s thread serves.
    closing: AtomicBool,
    /// Never sends; `free` drops it, which wakes every `poll` waiting on
    /// `closing_rx` (a disconnected channel is always ready).
    closing_tx: Mutex<Option<Sender<()>>>,
    closing_rx: Receiver<()>,
    /// Held shared by `poll` and `flush` while they serve reports, so that
    /// `free` can wait (exclusively) for the callbacks they are running.
    serving: RwLock<()>,
    /// parking_lot's, not std's: std's `Condvar::notify_all` makes a futex
    /// system call even when nobody waits, and `release` notifies once per
    /// served report (a tenth of the C benchmark's samples were those
    /// calls).
    outstanding: Mutex<Outstanding>,
    /// Signalled whenever a served report frees room.
    room: Condvar,
}

impl std::fmt::Debug for ProducerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerState")
            .field("producer", &self.producer)
            .field("limits", &self.limits)
            .field("outstanding", &self.outstanding())
            .finish_non_exhaustive()
    }
}

static PRODUCERS: Registry<ProducerState> = Registry::new();

thread_local! {
    /// True while this thread runs a user delivery callback.
    static IN_CALLBACK: Cell<bool> = const { Cell::new(false) };
    /// The C copies of the last stream name, shard id and sequence number
    /// served on this thread (see [`LastCString`]).
    static REPORT_STRINGS: RefCell<[LastCString; 3]> = RefCell::default();
}

/// The C copy of the last shared string converted. The core shares one
/// `Arc<str>` per stream name here and one shard id and sequence number
/// per aggregate, and reports of one aggregate come in a row, so each
/// string is converted once per run of reports instead of once per record.
#[derive(Debug, Default)]
struct LastCString(Option<(Arc<str>, CString)>);

impl LastCString {
    /// `s` as a C string, valid until the next call.
    fn get(&mut self, s: &Arc<str>) -> *const c_char {
        match &self.0 {
            Some((last, c)) if Arc::ptr_eq(last, s) => c.as_ptr(),
            _ => self.0.insert((s.clone(), c_string(s))).1.as_ptr(),
        }
    }
}

/// Bytes a record holds against `max_buffered_bytes`, as the core counts
/// them (data + key + bookkeeping).
const PER_RECORD_OVERHEAD: usize = 128;

/// Longest partition key in bytes: 256 characters of up to 4 bytes.
const PARTITION_KEY_MAX_BYTES: usize = PARTITION_KEY_MAX_CHARS * 4;

fn timeout_from_ms(timeout_ms: i32) -> Option<Duration> {
    (timeout_ms >= 0).then(|| Duration::from_millis(timeout_ms as u64))
}

impl ProducerState {
    /// Counts a record in if there is room; returns its tag.
    fn try_reserve(&self, stream: &str, msg_opaque: usize, bytes: usize) -> Option<usize> {
        let mut o = self.outstanding.lock();
        o.fits(bytes, &self.limits)
            .then(|| o.admit(stream, msg_opaque, bytes))
    }

    /// Waits for room until `deadline` (forever if `None`); returns the
    /// record's tag.
    fn reserve_blocking(
        &self,
        stream: &str,
        msg_opaque: usize,
        bytes: usize,
        deadline: Option<Instant>,
    ) -> Option<usize> {
        let mut o = self.outstanding.lock();
        loop {
            if o.fits(bytes, &self.limits) {
                return Some(o.admit(stream, msg_opaque, bytes));
            }
            let wait = match deadline {
                None => Duration::from_millis(100),
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(Duration::from_millis(100)),
                    _ => return None,
                },
            };
            self.room.wait_for(&mut o, wait);
        }
    }

    /// Forgets the record sent with `tag` (served, or refused by the core)
    /// and frees its room.
    fn release(&self, tag: usize) -> Option<Sent> {
        let mut o = self.outstanding.lock();
        let sent = o.sent.try_remove(tag)?;
        o.records -= 1;
        o.bytes -= sent.bytes;
        drop(o);
        self.room.notify_all();
        Some(sent)
    }

    fn outstanding(&self) -> usize {
        self.outstanding.lock().records
    }

    /// Hands a record to the core; its completion is queued for serving.
    ///
    /// `timeout`: `None` never waits; `Some(t)` waits for room for up to
    /// `t` (forever if `None`) in all, here and in the core together.
    fn send(
        &self,
        stream: &str,
        record: UserRecord,
        msg_opaque: usize,
        timeout: Option<Option<Duration>>,
    ) -> Result<(), shardline_result> {
        let bytes = record.billed_size() + PER_RECORD_OVERHEAD;
        // One deadline for both waits: the core's buffer also holds request
        // bodies in flight, so it can be full when ours has just made room.
        // A timeout too long to be an instant never ends.
        let deadline = timeout.map(|t| t.and_then(|t| Instant::now().checked_add(t)));
        let tag = match deadline {
            None => self.try_reserve(stream, msg_opaque, bytes),
            Some(d) => self.reserve_blocking(stream, msg_opaque, bytes, d),
        };
        let Some(tag) = tag else {
            return Err(if timeout.is_some() {
                SHARDLINE_TIMEOUT
            } else {
                SHARDLINE_QUEUE_FULL
            });
        };
        let sent = match deadline {
            None => self
                .producer
                .try_send_with_handler(stream, record, &self.reporter, tag as u64),
            // What is left of the timeout; zero still takes room that is
            // free now.
            Some(d) => self.producer.send_blocking_with_handler(
                stream,
                record,
                d.map(|d| d.saturating_duration_since(Instant::now())),
                &self.reporter,
                tag as u64,
            ),
        };
        sent.map_err(|e| {
            self.release(tag);
            shardline_result::from(&e.error)
        })
    }

    /// Runs the user callback for one completion and frees its room.
    fn serve(&self, completion: Completion) {
        let Completion { tag, result } = completion;
        let Some(Sent {
            stream, msg_opaque, ..
        }) = self.sent(tag)
        else {
            // The core reports each record once; a second report of a tag
            // would be a core bug, and must not serve another record's.
            debug_assert!(false, "report for unknown tag {tag}");
            return;
        };
        if let Some(callback) = self.callback {
            REPORT_STRINGS.with_borrow_mut(|last| {
                let [last_stream, last_shard, last_sequence] = last;
                let (rc, shard_id, sequence_number, code, message, attempts, aggregated) =
                    match &result {
                        Ok(r) => (
                            SHARDLINE_OK,
                            r.shard_id.as_ref().map(|s| last_shard.get(s)),
                            Some(last_sequence.get(&r.sequence_number)),
                            None,
                            None,
                            r.attempts.len(),
                            r.aggregated,
                        ),
                        Err(e) => (
                            failure_kind(e.kind),
                            None,
                            None,
                            e.code.as_deref().map(c_string),
                            Some(c_string(&e.to_string())),
                            e.attempts.len(),
                            false,
                        ),
                    };
                let report = shardline_delivery_report {
                    result: rc,
                    stream: last_stream.get(&stream),
                    shard_id: shard_id.unwrap_or(std::ptr::null()),
                    sequence_number: sequence_number.unwrap_or(std::ptr::null()),
                    error_code: opt_ptr(&code),
                    error_message: opt_ptr(&message),
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    aggregated,
                    msg_opaque: msg_opaque as *mut c_void,
                };
                IN_CALLBACK.with(|c| c.set(true));
                // SAFETY: the callback was registered by the application
                // with this signature; the report and its strings outlive
                // the call (the cache is not touched until it returns).
                unsafe { callback(&report, self.callback_opaque as *mut c_void) };
                IN_CALLBACK.with(|c| c.set(false));
            });
        }
        // Room is freed only now: an unserved report holds its record's.
        self.release(tag);
    }

    /// The entry of the record sent with `tag`, if it is outstanding.
    fn sent(&self, tag: usize) -> Option<Sent> {
        let o = self.outstanding.lock();
        o.sent.get(tag).cloned()
    }

    /// True once `free` has begun.
    fn closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Serves `first` if given, then every report queued now; returns how
    /// many. `poll` and `flush` stop once `free` has begun, and hand the
    /// report they took back to `free`.
    fn serve_ready(&self, first: Option<Completion>, server: Server) -> usize {
        let Some(mut next) = first.or_else(|| self.completions_rx.try_recv().ok()) else {
            return 0;
        };
        // Taken before `closing` is read, so `free` either sees this
        // batch's callbacks and waits for them, or this batch sees
        // `closing` and serves nothing more.
        let _serving = (server == Server::App).then(|| self.serving.read());
        let mut served = 0;
        loop {
            if server == Server::App && self.closing() {
                // The state is alive (we hold it), so is the receiver.
                let _ = self.requeue.send(next);
                return served;
            }
            self.serve(next);
            served += 1;
            match self.completions_rx.try_recv() {
                Ok(c) => next = c,
                Err(_) => return served,
            }
        }
    }

    /// Waits up to `timeout` (forever if `None`) for a report. `None` on
    /// timeout, or once `free` has begun (which wakes the wait).
    fn wait_for_report(&self, timeout: Option<Duration>) -> Option<Completion> {
        if timeout == Some(Duration::ZERO) || self.closing() {
            return None;
        }
        let mut select = Select::new();
        let report = select.recv(&self.completions_rx);
        select.recv(&self.closing_rx);
        // A timeout too long to be an instant never ends.
        let op = match timeout.and_then(|t| Instant::now().checked_add(t)) {
            None => select.select(),
            Some(deadline) => select.select_deadline(deadline).ok()?,
        };
        if op.index() == report {
            op.recv(&self.completions_rx).ok()
        } else {
            // Disconnected: `free` has begun.
            let _ = op.recv(&self.closing_rx);
            None
        }
    }

    /// Waits up to `timeout` for a first report, then serves all queued.
    /// Once `free` has begun it serves no more, and if it served nothing
    /// returns `SHARDLINE_INVALID_HANDLE`, as for a freed handle.
    fn poll(&self, timeout: Option<Duration>) -> Result<usize, shardline_result> {
        let first = match self.completions_rx.try_recv() {
            Ok(c) => Some(c),
            Err(_) => self.wait_for_report(timeout),
        };
        match self.serve_ready(first, Server::App) {
            0 if self.closing() => Err(SHARDLINE_INVALID_HANDLE),
            served => Ok(served),
        }
    }

    /// Sends everything now and serves reports until none is outstanding
    /// or `deadline` passes. As `Server::App`, returns
    /// `SHARDLINE_INVALID_HANDLE` once `free` has begun.
    fn flush(&self, deadline: Option<Instant>, server: Server) -> Result<(), shardline_result> {
        const SLICE: Duration = Duration::from_millis(10);
        loop {
            self.serve_ready(None, server);
            if server == Server::App && self.closing() {
                return Err(SHARDLINE_INVALID_HANDLE);
            }
            if self.outstanding() == 0 {
                return Ok(());
            }
            let slice = match deadline {
                None => SLICE,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(SLICE),
                    _ => return Err(SHARDLINE_TIMEOUT),
                },
            };
            if self.producer.outstanding() > 0 {
                // The core flush makes batches go now instead of waiting
                // for `record_max_buffered_time`; it returns early once the
                // core holds nothing. Its timeout is ours to report.
                let _ = self.producer.flush_blocking(Some(slice));
            } else if let Ok(c) = self.completions_rx.recv_timeout(slice) {
                // The core holds nothing, so every report has been queued
                // (a record is reported before it is released): serve the
                // rest here.
                self.serve_ready(Some(c), server);
            }
        }
    }

    /// Takes over serving from other threads, delivers for up to
    /// `close_timeout`, fails the rest as closed, and serves every report
    /// on this thread.
    fn close(&self) {
        let deadline = Instant::now() + self.limits.close_timeout;
        self.closing.store(true, Ordering::Release);
        // Wakes every `poll` waiting for a report.
        drop(self.closing_tx.lock().take());
        // Waits for the callbacks `poll` and `flush` are running on other
        // threads; they start no more. The core delivers meanwhile.
        drop(self.serving.write());
        let _ = self.flush(Some(deadline), Server::Free);
        let _ = self.producer.close_blocking(Some(Duration::ZERO));
        // Every record has completed in the core now; serve what is queued.
        // A send racing with the close may still hold a reservation for a
        // moment: wait for it, but not forever.
        let _ = self.flush(Some(Instant::now() + Duration::from_secs(5)), Server::Free);
    }
}

fn c_string(s: &str) -> CString {
    CString::new(s)
        .unwrap_or_else(|_| CString::new(s.replace('\0', "")).expect("NUL bytes were just removed"))
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

fn in_callback() -> bool {
    IN_CALLBACK.with(Cell::get)
}

/// Creates a producer from `conf` (which stays yours to free). The service
/// is chosen by the config key `service` (`kinesis` by default, or
/// `firehose`).
///
/// On success writes the handle to `*out`. On failure `*out` is untouched
/// and a message goes to `errbuf` (NULL/0 to skip). Returns `SHARDLINE_OK`,
/// `SHARDLINE_NULL_PARAMETER`, `SHARDLINE_INVALID_HANDLE`,
/// `SHARDLINE_INVALID_CONFIG` or `SHARDLINE_SETUP`.
///
/// # Safety
/// `out` is NULL or writable; `errbuf` is NULL or has `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_producer_new(
    conf: *const crate::config::shardline_config,
    out: *mut *mut shardline_producer,
    errbuf: *mut c_char,
    errlen: usize,
) -> shardline_result {
    let mut message = String::new();
    let rc = guard_result("shardline_producer_new", || {
        if conf.is_null() || out.is_null() {
            message = "conf and out must not be NULL".into();
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state: ConfigState = CONFIGS
            .get(conf)
            .ok_or_else(|| {
                message = "conf is not a live shardline_config".into();
                SHARDLINE_INVALID_HANDLE
            })?
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let producer = Producer::for_service(state.config, state.service).map_err(|e| {
            message = e.to_string();
            shardline_result::from(&e)
        })?;
        let (completions_tx, completions_rx) = crossbeam_channel::unbounded();
        let (closing_tx, closing_rx) = crossbeam_channel::bounded(0);
        let handle = PRODUCERS.insert(ProducerState {
            producer,
            callback: state.callback,
            callback_opaque: state.callback_opaque,
            limits: state.limits,
            reporter: Arc::new(Reporter(completions_tx.clone())),
            completions_rx,
            requeue: completions_tx,
            closing: AtomicBool::new(false),
            closing_tx: Mutex::new(Some(closing_tx)),
            closing_rx,
            serving: RwLock::new(()),
            outstanding: Mutex::new(Outstanding::default()),
            room: Condvar::new(),
        });
        // SAFETY: `out` is non-NULL and writable per the caller's contract.
        unsafe { *out = handle };
        Ok(())
    });
    if rc != SHARDLINE_OK {
        if message.is_empty() {
            message = "producer setup failed".into();
        }
        // SAFETY: the caller's contract for `errbuf`.
        unsafe { write_errbuf(errbuf, errlen, &message) };
    }
    rc
}

/// Checks and copies one record's arguments.
///
/// # Safety
/// See `shardline_producer_send`.
unsafe fn record_args<'a>(
    stream: *const c_char,
    partition_key: *const c_char,
    partition_key_len: usize,
    data: *const c_void,
    data_len: usize,
    explicit_hash_key: *const c_char,
) -> Result<(&'a str, UserRecord), shardline_result> {
    if stream.is_null() || partition_key.is_null() {
        return Err(SHARDLINE_NULL_PARAMETER);
    }
    // SAFETY: the caller's contract for `stream`.
    let stream = unsafe { c_str(stream) }?;
    if partition_key_len == 0 {
        return Err(SHARDLINE_EMPTY_PARTITION_KEY);
    }
    if partition_key_len > PARTITION_KEY_MAX_BYTES {
        return Err(SHARDLINE_PARTITION_KEY_TOO_LONG);
    }
    // Checked before copying, so an absurd length is refused cheaply; the
    // core applies the configured (smaller) limit.
    if data_len > KINESIS_MAX_RECORD_BYTES {
        return Err(SHARDLINE_RECORD_TOO_LARGE);
    }
    // SAFETY: the caller's contract for the two buffers.
    let (key, data) = unsafe {
        (
            c_bytes(partition_key.cast(), partition_key_len)?,
            c_bytes(data.cast(), data_len)?,
        )
    };
    let key = std::str::from_utf8(key).map_err(|_| SHARDLINE_INVALID_UTF8)?;
    let mut record = UserRecord::new(key.to_owned(), data.to_vec());
    if !explicit_hash_key.is_null() {
        // SAFETY: the caller's contract for `explicit_hash_key`.
        let ehk = unsafe { c_str(explicit_hash_key) }?;
        record = record
            .with_explicit_hash_key_str(ehk)
            .map_err(|e| shardline_result::from(&e))?;
    }
    Ok((stream, record))
}

/// Queues one record without ever blocking. The inputs are copied: the
/// caller may reuse its buffers at once.
///
/// - `stream`: NUL-terminated stream (or delivery stream) name.
/// - `partition_key`, `partition_key_len`: UTF-8, 1 to 256 characters, not
///   NUL-terminated (for Firehose it is not sent but still required).
/// - `data`, `data_len`: the payload; `data` may be NULL when `data_len` is 0.
/// - `explicit_hash_key`: NULL, or a NUL-terminated decimal in 0..2^128-1.
/// - `msg_opaque`: handed back in this record's delivery report.
///
/// On `SHARDLINE_OK` exactly one delivery report follows. Otherwise none
/// does; `SHARDLINE_QUEUE_FULL` means the producer holds
/// `max_buffered_records` / `max_buffered_bytes` of records whose reports
/// have not been served: call `shardline_producer_poll` and retry.
///
/// # Safety
/// Pointers are NULL or valid for the lengths given.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_producer_send(
    producer: *const shardline_producer,
    stream: *const c_char,
    partition_key: *const c_char,
    partition_key_len: usize,
    data: *const c_void,
    data_len: usize,
    explicit_hash_key: *const c_char,
    msg_opaque: *mut c_void,
) -> shardline_result {
    guard_result("shardline_producer_send", || {
        if producer.is_null() {
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = PRODUCERS.get(producer).ok_or(SHARDLINE_INVALID_HANDLE)?;
        // SAFETY: forwarded caller contract.
        let (stream, record) = unsafe {
            record_args(
                stream,
                partition_key,
                partition_key_len,
                data,
                data_len,
                explicit_hash_key,
            )
        }?;
        state.send(stream, record, msg_opaque as usize, None)
    })
}

/// Like `shardline_producer_send`, but waits for room for up to
/// `timeout_ms` milliseconds in all (forever if negative), then returns
/// `SHARDLINE_TIMEOUT`. Room is made by serving reports, so another thread
/// must be calling `shardline_producer_poll` meanwhile; from inside a
/// delivery callback this returns `SHARDLINE_CALLBACK_REENTRY`.
///
/// # Safety
/// As for `shardline_producer_send`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_producer_send_blocking(
    producer: *const shardline_producer,
    stream: *const c_char,
    partition_key: *const c_char,
    partition_key_len: usize,
    data: *const c_void,
    data_len: usize,
    explicit_hash_key: *const c_char,
    msg_opaque: *mut c_void,
    timeout_ms: i32,
) -> shardline_result {
    guard_result("shardline_producer_send_blocking", || {
        if producer.is_null() {
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = PRODUCERS.get(producer).ok_or(SHARDLINE_INVALID_HANDLE)?;
        if in_callback() {
            return Err(SHARDLINE_CALLBACK_REENTRY);
        }
        // SAFETY: forwarded caller contract.
        let (stream, record) = unsafe {
            record_args(
                stream,
                partition_key,
                partition_key_len,
                data,
                data_len,
                explicit_hash_key,
            )
        }?;
        state.send(
            stream,
            record,
            msg_opaque as usize,
            Some(timeout_from_ms(timeout_ms)),
        )
    })
}

/// Serves delivery reports: waits up to `timeout_ms` (0: don't wait;
/// negative: until one arrives) for the first, then serves all that are
/// ready, running the delivery callback for each on this thread.
///
/// Returns the number served (>= 0), or a negated result code:
/// `-SHARDLINE_NULL_PARAMETER`, `-SHARDLINE_INVALID_HANDLE`,
/// `-SHARDLINE_CALLBACK_REENTRY`, `-SHARDLINE_PANIC`.
///
/// Once `shardline_producer_free` begins on another thread, poll serves no
/// more reports (free serves them, on its own thread) and a poll waiting
/// for one, even with a negative timeout, returns at once: with the number
/// it served before free began, or else `-SHARDLINE_INVALID_HANDLE` as for
/// a freed handle. So a dedicated poller thread can loop while poll
/// returns >= 0, and be joined after free.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_producer_poll(
    producer: *const shardline_producer,
    timeout_ms: i32,
) -> i32 {
    guard("shardline_producer_poll", -(SHARDLINE_PANIC as i32), || {
        if producer.is_null() {
            return -(SHARDLINE_NULL_PARAMETER as i32);
        }
        let Some(state) = PRODUCERS.get(producer) else {
            return -(SHARDLINE_INVALID_HANDLE as i32);
        };
        if in_callback() {
            return -(SHARDLINE_CALLBACK_REENTRY as i32);
        }
        match state.poll(timeout_from_ms(timeout_ms)) {
            Ok(served) => i32::try_from(served).unwrap_or(i32::MAX),
            Err(rc) => -(rc as i32),
        }
    })
}

/// Sends everything buffered now and serves delivery reports (on this
/// thread) until every record sent has been reported, for up to
/// `timeout_ms` (forever if negative). Returns `SHARDLINE_OK` when nothing
/// is outstanding, `SHARDLINE_TIMEOUT` otherwise (the rest are still in
/// flight and will be reported later), or `SHARDLINE_NULL_PARAMETER`,
/// `SHARDLINE_INVALID_HANDLE`, `SHARDLINE_CALLBACK_REENTRY`. When
/// `shardline_producer_free` begins on another thread, flush stops serving
/// and returns `SHARDLINE_INVALID_HANDLE` (free serves the rest).
#[unsafe(no_mangle)]
pub extern "C" fn shardline_producer_flush(
    producer: *const shardline_producer,
    timeout_ms: i32,
) -> shardline_result {
    guard_result("shardline_producer_flush", || {
        if producer.is_null() {
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = PRODUCERS.get(producer).ok_or(SHARDLINE_INVALID_HANDLE)?;
        if in_callback() {
            return Err(SHARDLINE_CALLBACK_REENTRY);
        }
        state.flush(
            timeout_from_ms(timeout_ms).map(|t| Instant::now() + t),
            Server::App,
        )
    })
}

/// Records sent whose delivery report has not been served yet (0 for a
/// NULL or dead handle).
#[unsafe(no_mangle)]
pub extern "C" fn shardline_producer_outstanding(producer: *const shardline_producer) -> usize {
    guard("shardline_producer_outstanding", 0, || {
        PRODUCERS.get(producer).map_or(0, |s| s.outstanding())
    })
}

/// A JSON snapshot of the producer's metrics (KPL metric names, totals and
/// per stream and shard). On success `*out_json` is a NUL-terminated
/// string to release with `shardline_string_free`.
///
/// # Safety
/// `out_json` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_producer_metrics_json(
    producer: *const shardline_producer,
    out_json: *mut *mut c_char,
) -> shardline_result {
    guard_result("shardline_producer_metrics_json", || {
        if producer.is_null() || out_json.is_null() {
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = PRODUCERS.get(producer).ok_or(SHARDLINE_INVALID_HANDLE)?;
        let json = c_string(&state.producer.metrics().to_json());
        // SAFETY: `out_json` is non-NULL and writable per the contract.
        unsafe { *out_json = json.into_raw() };
        Ok(())
    })
}

/// Frees a string Shardline returned (e.g. from
/// `shardline_producer_metrics_json`). NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string from Shardline not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_string_free(s: *mut c_char) {
    guard("shardline_string_free", (), || {
        if !s.is_null() {
            // SAFETY: it came from `CString::into_raw` per the contract.
            drop(unsafe { CString::from_raw(s) });
        }
    })
}

/// Closes and frees a producer: delivers outstanding records for up to the
/// config's `close_timeout` (30 s by default), fails the rest with
/// `SHARDLINE_DELIVERY_CLOSED`, and serves every remaining delivery report
/// on this thread before returning — no record is dropped silently. NULL
/// and already-freed handles are ignored; so is a call from inside a
/// delivery callback (the producer stays alive).
///
/// `shardline_producer_poll` and `_flush` calls on other threads stop
/// serving when free begins (see them). If one of them is running a
/// delivery callback, free first waits for it to return (a callback that
/// never returns blocks free); so once free returns, no delivery callback
/// of this producer is running or will run.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_producer_free(producer: *mut shardline_producer) {
    guard("shardline_producer_free", (), || {
        if producer.is_null() || in_callback() {
            return;
        }
        if let Some(state) = PRODUCERS.remove(producer) {
            state.close();
        }
    })
}

/// True when the producer writes to Firehose (for tests and diagnostics).
#[doc(hidden)]
pub fn producer_service(producer: *const shardline_producer) -> Option<Service> {
    PRODUCERS.get(producer).map(|s| s.producer.service())
}
