//! `NativeProducer`: a thin, frozen handle on the Rust producer. The
//! Pythonic surface (keyword arguments, context manager, docstrings) is in
//! `shardline/_producer.py`.
//!
//! Where it waits: `put`/`put_many` only when the buffer is full (in
//! slices, GIL released, Ctrl-C checked between slices); `flush` and
//! `close` likewise. Everything else is quick Rust work: `put_many` does it
//! with the GIL released once the Python inputs have been copied out; `put`
//! keeps the GIL for its one record (about a microsecond), because
//! releasing and retaking it per record cost more than that.

use std::borrow::Cow;
use std::cell::Cell;
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pyo3::exceptions::PyUnicodeEncodeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple};

use shardline::{Config, Error, Producer, SendError, Service, UserRecord};

use crate::errors::{new_err, to_py_err, types};
use crate::future::{
    CallbackQueue, FutureCells, Outcome, PyCallbackQueue, RecordFuture, WAIT_SLICE, py_deadline,
    py_duration,
};

/// The pid of this process, updated in a child right after `fork()` (the
/// hook is registered when the module is imported). Comparing a producer's
/// creation pid with it is a load, not a `getpid` system call per record.
pub(crate) static CURRENT_PID: AtomicU32 = AtomicU32::new(0);

/// Called in the child after `fork()`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    CURRENT_PID.store(std::process::id(), Ordering::Release);
}

/// The native producer; use `shardline.Producer` / `shardline.FirehoseProducer`.
#[pyclass(frozen, module = "shardline._native", name = "NativeProducer")]
#[derive(Debug)]
pub(crate) struct NativeProducer {
    /// Never dropped in a forked child: its runtime's threads do not exist
    /// there, and its locks may be held by them.
    producer: ManuallyDrop<Producer>,
    service: Service,
    pid: u32,
    /// Where futures with done callbacks go when done.
    callbacks: Arc<CallbackQueue>,
}

impl Drop for NativeProducer {
    fn drop(&mut self) {
        if self.pid == CURRENT_PID.load(Ordering::Acquire) {
            // SAFETY: dropped once, here, and never used again.
            unsafe { ManuallyDrop::drop(&mut self.producer) };
        }
    }
}

impl NativeProducer {
    fn check_pid(&self, py: Python<'_>) -> PyResult<()> {
        if self.pid == CURRENT_PID.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(new_err(
                py,
                &types(py).base,
                format!(
                    "this producer was created in process {} and cannot be used after fork() \
                     (this is process {}); create a new producer in the child",
                    self.pid,
                    std::process::id()
                ),
            ))
        }
    }

    fn partition_key(&self, key: Option<String>) -> String {
        key.unwrap_or_else(|| {
            let mut key = String::new();
            self.write_default_partition_key(&mut key);
            key
        })
    }

    /// The key of a record given none: 16 random hex digits for Kinesis;
    /// nothing for Firehose, which ignores keys (an empty one costs
    /// nothing).
    fn write_default_partition_key(&self, out: &mut impl std::fmt::Write) {
        if self.service == Service::Kinesis {
            let _ = write!(out, "{:016x}", random_u64());
        }
    }

    /// Sends `record`, waiting while the buffer is full if `block`, for at
    /// most `timeout` seconds. Called with the GIL held; releases it only
    /// to wait: handing a record over is quick, never waits for a Python
    /// thread, and releasing and retaking the GIL per record cost more.
    // `SendError` is large because it hands the record back (core design).
    #[allow(clippy::result_large_err)]
    fn send_one(
        &self,
        py: Python<'_>,
        stream: &str,
        record: UserRecord,
        cells: &Arc<FutureCells>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let producer = &*self.producer;
        let handler = cells.handler();
        let send = |record, wait| FutureCells::send(&handler, 0, producer, stream, record, wait);
        let mut record = match send(record, None) {
            Ok(()) => return Ok(()),
            Err(SendError {
                error: Error::QueueFull,
                record,
            }) if block => record,
            Err(SendError { error, .. }) => return Err(to_py_err(py, &error)),
        };
        let deadline = deadline(timeout);
        loop {
            let slice = slice_until(deadline);
            let sent = py.detach(|| send(record, Some(slice)));
            match sent {
                Ok(()) => return Ok(()),
                Err(SendError {
                    error: Error::Timeout(_),
                    record: back,
                }) => record = back,
                Err(SendError { error, .. }) => return Err(to_py_err(py, &error)),
            }
            py.check_signals()?;
            if past(deadline) {
                return Err(queue_full_after(py, timeout));
            }
        }
    }
}

fn deadline(timeout: Option<f64>) -> Option<Instant> {
    py_deadline(timeout)
}

fn slice_until(deadline: Option<Instant>) -> Duration {
    match deadline {
        None => WAIT_SLICE,
        Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
    }
}

fn past(deadline: Option<Instant>) -> bool {
    deadline.is_some_and(|d| Instant::now() >= d)
}

fn queue_full_after(py: Python<'_>, timeout: Option<f64>) -> PyErr {
    new_err(
        py,
        &types(py).queue_full,
        format!(
            "producer buffer is still full after {:.3} s",
            timeout.unwrap_or_default()
        ),
    )
}

/// `close`'s timeout for the core: `math.inf` (or anything too long for a
/// `Duration`) is `Duration::MAX`, which the core treats as no deadline.
fn timeout_secs(timeout: Option<f64>) -> Option<Duration> {
    timeout.map(py_duration)
}

thread_local! {
    static KEY_STATE: Cell<u64> = const { Cell::new(0) };
}

/// The next number of this thread's splitmix64 sequence, for random
/// partition keys: even spread over the shards is all that is asked of
/// them.
fn random_u64() -> u64 {
    KEY_STATE.with(|state| {
        let mut s = state.get();
        if s == 0 {
            // Seed from the clock and the state's address (differs per thread).
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            s = nanos ^ (state as *const _ as u64).rotate_left(32) ^ u64::from(std::process::id());
        }
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    })
}

/// Appends the bytes of `data` (bytes, bytearray, memoryview or str) to `buf`.
fn append_data(py: Python<'_>, data: &Bound<'_, PyAny>, buf: &mut BytesMut) -> PyResult<()> {
    if let Ok(b) = data.cast::<PyBytes>() {
        buf.extend_from_slice(b.as_bytes());
    } else if let Ok(s) = data.cast::<PyString>() {
        buf.extend_from_slice(utf8(py, s, "data")?.as_bytes());
    } else if let Ok(b) = data.cast::<PyByteArray>() {
        buf.extend_from_slice(&b.to_vec());
    } else if data.cast::<PyMemoryView>().is_ok() {
        // The buffer protocol is not in the limited API before 3.11.
        let bytes = data.call_method0("tobytes")?;
        buf.extend_from_slice(bytes.cast::<PyBytes>()?.as_bytes());
    } else {
        return Err(new_err(
            py,
            &types(py).validation,
            format!(
                "data must be bytes, bytearray, memoryview or str, not {}",
                data.get_type().name()?
            ),
        ));
    }
    Ok(())
}

/// An explicit hash key given as an int or a decimal string.
fn explicit_hash_key(py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Option<u128>> {
    if key.is_none() {
        return Ok(None);
    }
    let text = if let Ok(s) = key.cast::<PyString>() {
        utf8(py, s, "explicit_hash_key")?.into_owned()
    } else if key.is_instance_of::<pyo3::types::PyInt>() {
        key.str()?.to_cow()?.into_owned()
    } else {
        return Err(new_err(
            py,
            &types(py).validation,
            "explicit_hash_key must be an int or a decimal str",
        ));
    };
    // The core parses and checks the range; an empty record carries the key.
    UserRecord::new("k", Bytes::new())
        .with_explicit_hash_key_str(&text)
        .map(|r| r.explicit_hash_key())
        .map_err(|e| to_py_err(py, &e))
}

/// `s` as UTF-8. A `str` that has no UTF-8 form (it holds a lone
/// surrogate) is a `ValidationError` naming `what`, with Python's
/// `UnicodeEncodeError` as its cause.
fn utf8<'a>(py: Python<'_>, s: &'a Bound<'_, PyString>, what: &str) -> PyResult<Cow<'a, str>> {
    s.to_cow().map_err(|e| {
        if !e.is_instance_of::<PyUnicodeEncodeError>(py) {
            return e;
        }
        let err = new_err(
            py,
            &types(py).validation,
            format!("{what} cannot be encoded as UTF-8: {}", e.value(py)),
        );
        err.set_cause(py, Some(e));
        err
    })
}

/// A partition key given (not None): a `str`, else a `ValidationError`.
fn partition_key_str<'a>(py: Python<'_>, key: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, str>> {
    match key.cast::<PyString>() {
        Ok(s) => utf8(py, s, "partition_key"),
        Err(_) => Err(new_err(
            py,
            &types(py).validation,
            format!(
                "partition_key must be a str, not {}",
                key.get_type().name()?
            ),
        )),
    }
}

/// `put`'s partition key: None (absent or None) or a `str`.
fn optional_key(py: Python<'_>, value: Option<Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    match value {
        Some(v) if !v.is_none() => Ok(Some(partition_key_str(py, &v)?.into_owned())),
        _ => Ok(None),
    }
}

#[pymethods]
impl NativeProducer {
    /// `options` are `(key, value)` string pairs for `Config::set`.
    #[new]
    fn new(
        py: Python<'_>,
        options: Vec<(String, String)>,
        firehose: bool,
        queue: &PyCallbackQueue,
    ) -> PyResult<Self> {
        let mut config = Config::new();
        for (key, value) in &options {
            config.set(key, value).map_err(|e| to_py_err(py, &e))?;
        }
        let service = if firehose {
            Service::Firehose
        } else {
            Service::Kinesis
        };
        let producer = py
            .detach(|| Producer::for_service(config, service))
            .map_err(|e| to_py_err(py, &e))?;
        Ok(NativeProducer {
            producer: ManuallyDrop::new(producer),
            service,
            pid: CURRENT_PID.load(Ordering::Acquire),
            callbacks: queue.inner.clone(),
        })
    }

    /// Queues one record; see `shardline.Producer.put`.
    // The arguments are the Python signature.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (stream_name, data, partition_key=None, explicit_hash_key=None, block=true, timeout=None))]
    fn put(
        &self,
        py: Python<'_>,
        stream_name: &Bound<'_, PyString>,
        data: &Bound<'_, PyAny>,
        partition_key: Option<Bound<'_, PyAny>>,
        explicit_hash_key: Option<Bound<'_, PyAny>>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Py<RecordFuture>> {
        self.check_pid(py)?;
        let stream = utf8(py, stream_name, "stream name")?;
        let mut buf = BytesMut::new();
        append_data(py, data, &mut buf)?;
        let key = self.partition_key(optional_key(py, partition_key)?);
        let mut record = UserRecord::new(key, buf.freeze());
        if let Some(ehk) = explicit_hash_key
            && let Some(ehk) = self::explicit_hash_key(py, &ehk)?
        {
            record = record.with_explicit_hash_key(ehk);
        }
        let cells = FutureCells::new(1, self.callbacks.clone());
        self.send_one(py, &stream, record, &cells, block, timeout)?;
        RecordFuture::create(py, cells, 0)
    }

    /// Queues many records; see `shardline.Producer.put_many`.
    #[allow(clippy::result_large_err)]
    #[pyo3(signature = (stream_name, records, block=true, timeout=None))]
    fn put_many<'py>(
        &self,
        py: Python<'py>,
        stream_name: &Bound<'py, PyString>,
        records: &Bound<'py, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        self.check_pid(py)?;
        if self.producer.is_closed() {
            return Err(to_py_err(py, &Error::Closed));
        }
        let stream = utf8(py, stream_name, "stream name")?;
        // As `put` would for each record, before any is queued.
        shardline::validate_stream_name(&stream).map_err(|e| to_py_err(py, &e))?;
        // Copy everything out of Python first (and check what can be
        // checked), so a bad record raises before any record is queued.
        // All payloads and partition keys share one buffer: one allocation
        // per call, freed once, rather than a key per record freed by the
        // producer thread that sends it.
        let mut buf = BytesMut::new();
        let mut parsed: Vec<(usize, usize, Option<u128>)> = Vec::new();
        let validation = &types(py).validation;
        for (index, item) in records.try_iter()?.enumerate() {
            let item = item?;
            let start = buf.len();
            let (data_len, ehk) = self.parse_item(py, &item, &mut buf).map_err(|e| {
                if e.is_instance(py, validation.bind(py))
                    || e.is_instance_of::<pyo3::exceptions::PyTypeError>(py)
                {
                    new_err(py, validation, format!("record {index}: {}", e.value(py)))
                } else {
                    e
                }
            })?;
            let size = buf.len() - start;
            parsed.push((data_len, size - data_len, ehk));
        }
        if parsed.is_empty() {
            return Ok(PyList::empty(py));
        }
        let mut buf = buf.freeze();
        let mut pending = Vec::with_capacity(parsed.len());
        for (index, (data_len, key_len, ehk)) in parsed.into_iter().enumerate() {
            let data = buf.split_to(data_len);
            let key = buf.split_to(key_len);
            // The key bytes were copied from a `str` or written as hex, so
            // this cannot fail; if it did, it must not panic.
            let record = UserRecord::with_shared_key(key, data).map_err(|e| {
                new_err(
                    py,
                    validation,
                    format!("record {index}: partition key: {e}"),
                )
            })?;
            let record = match ehk {
                Some(ehk) => record.with_explicit_hash_key(ehk),
                None => record,
            };
            // The core's own check (size against the service's limit,
            // counting a generated key or Firehose's added newline), so a
            // bad record raises before any is queued.
            self.producer
                .check(&record)
                .map_err(|e| new_err(py, validation, format!("record {index}: {e}")))?;
            pending.push(record);
        }
        let count = pending.len();
        let cells = FutureCells::new(count, self.callbacks.clone());
        let handler = cells.handler();
        let producer = &*self.producer;
        let send =
            |i, record, wait| FutureCells::send(&handler, i, producer, &stream, record, wait);
        let deadline = deadline(timeout);
        let mut records = pending.into_iter().enumerate();
        let mut waiting: Option<(usize, UserRecord)> = None;
        loop {
            // Returns the record still waiting for room when a slice ends.
            let stopped = py.detach(|| {
                let mut next = waiting.take().or_else(|| records.next());
                while let Some((i, record)) = next {
                    let sent = if block {
                        match send(i, record, None) {
                            Err(SendError {
                                error: Error::QueueFull,
                                record,
                            }) => send(i, record, Some(slice_until(deadline))),
                            other => other,
                        }
                    } else {
                        send(i, record, None)
                    };
                    match sent {
                        Ok(()) => {}
                        Err(SendError {
                            error: Error::Timeout(_),
                            record,
                        }) if block => return Some((i, record)),
                        Err(SendError { error, .. }) => cells.complete(i, Outcome::Refused(error)),
                    }
                    next = records.next();
                }
                None
            });
            match stopped {
                None => break,
                Some((i, record)) => {
                    if let Err(e) = py.check_signals() {
                        // Interrupted: this record and the rest were never queued.
                        cells.complete(i, Outcome::Refused(Error::Closed));
                        return Err(e);
                    }
                    if past(deadline) {
                        let error = Error::QueueFull;
                        cells.complete(i, Outcome::Refused(error.clone()));
                        for (j, _) in records.by_ref() {
                            cells.complete(j, Outcome::Refused(error.clone()));
                        }
                        let _ = record;
                        break;
                    }
                    waiting = Some((i, record));
                }
            }
        }
        let futures = (0..count)
            .map(|i| RecordFuture::create(py, cells.clone(), i))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, futures)
    }

    /// Sends everything buffered now and waits until no record is
    /// outstanding, for at most `timeout` seconds (forever if None).
    #[pyo3(signature = (timeout=None))]
    fn flush(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.check_pid(py)?;
        let producer = &*self.producer;
        let deadline = deadline(timeout);
        loop {
            let slice = slice_until(deadline);
            match py.detach(|| producer.flush_blocking(Some(slice))) {
                // The core reports a record before it gives its room
                // back, so every future of a flushed record is done.
                Ok(()) => return Ok(()),
                Err(Error::Timeout(_)) => {}
                Err(e) => return Err(to_py_err(py, &e)),
            }
            py.check_signals()?;
            if past(deadline) {
                return Err(new_err(
                    py,
                    &types(py).timeout,
                    format!(
                        "flush timed out after {:.3} s with {} record(s) outstanding",
                        timeout.unwrap_or_default(),
                        producer.outstanding()
                    ),
                ));
            }
        }
    }

    /// Stops accepting records, delivers what is outstanding for up to
    /// `timeout` seconds (the `close_timeout` option if None) and fails the
    /// rest. Ctrl-C stops the wait; the close goes on in the background.
    #[pyo3(signature = (timeout=None))]
    fn close(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.check_pid(py)?;
        let producer = (*self.producer).clone();
        let timeout_d = timeout_secs(timeout);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("shardline-close".into())
            .spawn(move || {
                let _ = tx.send(producer.close_blocking(timeout_d));
            })
            .map_err(|e| new_err(py, &types(py).base, format!("cannot start closing: {e}")))?;
        // `detach` needs Sync; the receiver is only Send.
        let rx = parking_lot::Mutex::new(rx);
        loop {
            match py.detach(|| rx.lock().recv_timeout(WAIT_SLICE)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(Error::Timeout(_))) => {
                    return Err(new_err(
                        py,
                        &types(py).timeout,
                        "close timed out: records still outstanding were failed with \
                         DeliveryError(kind='closed')",
                    ));
                }
                Ok(Err(e)) => return Err(to_py_err(py, &e)),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => py.check_signals()?,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(new_err(
                        py,
                        &types(py).base,
                        "closing the producer panicked",
                    ));
                }
            }
        }
    }

    /// Records accepted and not yet completed.
    fn outstanding(&self) -> usize {
        self.producer.outstanding()
    }

    /// True once `close` has started.
    fn is_closed(&self) -> bool {
        self.producer.is_closed()
    }

    /// The metrics snapshot as JSON.
    fn metrics_json(&self, py: Python<'_>) -> PyResult<String> {
        self.check_pid(py)?;
        Ok(self.producer.metrics().to_json())
    }
}

impl NativeProducer {
    /// One item of `put_many`: data alone, a `(data, partition_key[,
    /// explicit_hash_key])` tuple, or a dict with `data` / `partition_key` /
    /// `explicit_hash_key` (or boto3's `Data` / `PartitionKey` /
    /// `ExplicitHashKey`). Appends the data, then the partition key (a
    /// random one if none is given), to `buf`; returns the data's length.
    fn parse_item(
        &self,
        py: Python<'_>,
        item: &Bound<'_, PyAny>,
        buf: &mut BytesMut,
    ) -> PyResult<(usize, Option<u128>)> {
        let start = buf.len();
        if let Ok(tuple) = item.cast::<PyTuple>() {
            let n = tuple.len();
            if !(1..=3).contains(&n) {
                return Err(new_err(
                    py,
                    &types(py).validation,
                    "a record tuple is (data, partition_key[, explicit_hash_key])",
                ));
            }
            append_data(py, &tuple.get_item(0)?, buf)?;
            let data_len = buf.len() - start;
            let key = if n > 1 {
                Some(tuple.get_item(1)?)
            } else {
                None
            };
            self.append_partition_key(py, key, buf)?;
            let ehk = if n > 2 {
                explicit_hash_key(py, &tuple.get_item(2)?)?
            } else {
                None
            };
            return Ok((data_len, ehk));
        }
        if let Ok(dict) = item.cast::<PyDict>() {
            let get = |a: &str, b: &str| -> PyResult<Option<Bound<'_, PyAny>>> {
                match dict.get_item(a)? {
                    Some(v) => Ok(Some(v)),
                    None => dict.get_item(b),
                }
            };
            let Some(data) = get("data", "Data")? else {
                return Err(new_err(
                    py,
                    &types(py).validation,
                    "a record dict needs 'data'",
                ));
            };
            append_data(py, &data, buf)?;
            let data_len = buf.len() - start;
            self.append_partition_key(py, get("partition_key", "PartitionKey")?, buf)?;
            let ehk = match get("explicit_hash_key", "ExplicitHashKey")? {
                Some(v) => explicit_hash_key(py, &v)?,
                None => None,
            };
            return Ok((data_len, ehk));
        }
        append_data(py, item, buf)?;
        let data_len = buf.len() - start;
        self.append_partition_key(py, None, buf)?;
        Ok((data_len, None))
    }

    /// Checks `key` (a `str` or None) and appends it to `buf`; for None, a
    /// random key (Kinesis) or nothing (Firehose ignores keys).
    fn append_partition_key(
        &self,
        py: Python<'_>,
        key: Option<Bound<'_, PyAny>>,
        buf: &mut BytesMut,
    ) -> PyResult<()> {
        match key {
            Some(key) if !key.is_none() => {
                let key = partition_key_str(py, &key)?;
                shardline::record::validate_partition_key(&key)
                    .map_err(|e| new_err(py, &types(py).validation, e.to_string()))?;
                buf.extend_from_slice(key.as_bytes());
            }
            _ => self.write_default_partition_key(buf),
        }
        Ok(())
    }
}
