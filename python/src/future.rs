//! `RecordFuture`: the per-record future, and the queue that carries done
//! callbacks to a Python thread.
//!
//! The producer completes a record on one of its own threads. There the
//! completion only stores the Rust result in the future's cell and wakes
//! anyone blocked in `result()`; no Python object is touched and the GIL is
//! never taken. Only a future that has done callbacks (`add_done_callback`,
//! or an `await`) is pushed onto the [`CallbackQueue`], which a daemon
//! thread of the package drains, running the callbacks with the GIL. So a
//! record nobody waits on costs no Python work at all, which is what makes a
//! native future worth having over `concurrent.futures.Future`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use shardline::{DeliveryHandler, DeliveryResult, Error, Producer, SendError, UserRecord};

use crate::errors::{delivery_error, new_err, to_py_err, types};
use crate::report::PyDeliveryReport;

/// How long a blocking wait sleeps before it checks for Ctrl-C.
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A timeout given in Python seconds as a [`Duration`]: negative and NaN
/// are zero, and one too long for a `Duration` (`math.inf`, `1e300`) is
/// [`Duration::MAX`]. `Duration::from_secs_f64` would panic on those.
pub(crate) fn py_duration(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX)
}

/// The instant `timeout` seconds from now. None for no timeout, and for
/// one too far off to be an instant: both mean wait as long as it takes
/// (still in [`WAIT_SLICE`]s, so Ctrl-C is honoured).
pub(crate) fn py_deadline(timeout: Option<f64>) -> Option<Instant> {
    timeout.and_then(|t| Instant::now().checked_add(py_duration(t)))
}

/// How a record ended: the producer's report, or a refusal before it was
/// queued (only `put_many` hands those out as futures).
#[derive(Debug)]
pub(crate) enum Outcome {
    Delivered(DeliveryResult),
    Refused(Error),
}

/// A completed future and the callbacks waiting for it.
type Completed = (Py<RecordFuture>, Vec<Py<PyAny>>);

/// Done callbacks on their way to the Python thread that runs them.
#[derive(Debug, Default)]
pub(crate) struct CallbackQueue {
    items: Mutex<VecDeque<Completed>>,
    ready: Condvar,
    stopped: AtomicBool,
}

impl CallbackQueue {
    fn push(&self, future: Py<RecordFuture>, callbacks: Vec<Py<PyAny>>) {
        self.items.lock().push_back((future, callbacks));
        self.ready.notify_one();
    }
}

/// The queue of done callbacks, drained by the package's callback thread.
#[pyclass(frozen, module = "shardline._native", name = "CallbackQueue")]
#[derive(Debug, Default)]
pub(crate) struct PyCallbackQueue {
    pub(crate) inner: Arc<CallbackQueue>,
}

#[pymethods]
impl PyCallbackQueue {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// Waits up to `timeout` seconds (GIL released) for completed futures
    /// with done callbacks; returns `[(future, [callback, ...]), ...]`, or
    /// None once `stop()` was called and nothing is left.
    fn take(&self, py: Python<'_>, timeout: f64) -> Option<Vec<Completed>> {
        let queue = &self.inner;
        let deadline = py_deadline(Some(timeout));
        let items: Vec<_> = py.detach(|| {
            let mut items = queue.items.lock();
            while items.is_empty() && !queue.stopped.load(Ordering::Acquire) {
                match deadline {
                    None => queue.ready.wait(&mut items),
                    Some(d) => {
                        if queue.ready.wait_until(&mut items, d).timed_out() {
                            break;
                        }
                    }
                }
            }
            items.drain(..).collect()
        });
        if items.is_empty() && queue.stopped.load(Ordering::Acquire) {
            None
        } else {
            Some(items)
        }
    }

    /// Makes `take` return None once the queue is empty.
    fn stop(&self) {
        self.inner.stopped.store(true, Ordering::Release);
        let _guard = self.inner.items.lock();
        self.inner.ready.notify_all();
    }
}

/// The state a future shares with the producer thread that completes it.
#[derive(Debug)]
pub(crate) struct FutureCell {
    outcome: OnceLock<Outcome>,
    waiters: Mutex<Waiters>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct Waiters {
    done: bool,
    callbacks: Vec<Py<PyAny>>,
    /// The Python future, kept alive while callbacks wait for it.
    owner: Option<Py<RecordFuture>>,
}

impl FutureCell {
    fn new() -> Self {
        FutureCell {
            outcome: OnceLock::new(),
            waiters: Mutex::new(Waiters::default()),
            done: Condvar::new(),
        }
    }

    fn is_done(&self) -> bool {
        self.outcome.get().is_some()
    }

    /// Blocks (call without the GIL) until done or `timeout`; true if done.
    fn wait_for(&self, timeout: Duration) -> bool {
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            let mut w = self.waiters.lock();
            while !w.done {
                self.done.wait(&mut w);
            }
            return true;
        };
        let mut w = self.waiters.lock();
        while !w.done {
            if self.done.wait_until(&mut w, deadline).timed_out() {
                return w.done;
            }
        }
        true
    }
}

/// The future cells of one `put` or `put_many` call, in one allocation,
/// and the core's [`DeliveryHandler`] for its records (the tag is the
/// record's index in the call).
///
/// One allocation per call rather than per record matters at `put_many`'s
/// rates: a per-record cell was allocated on the calling thread and, once
/// the caller had dropped its futures, freed on a producer thread, and
/// glibc's malloc makes such frees contend for the calling thread's arena.
/// The price is that one future kept alive keeps its call's cells alive
/// with it: 136 bytes a record, plus, for records sent alone rather than
/// aggregated, their own sequence number and attempt history (aggregated
/// records share those).
#[derive(Debug)]
pub(crate) struct FutureCells {
    /// The first cell apart, so that `put`'s one cell needs no second
    /// allocation (an empty boxed slice allocates nothing).
    first: FutureCell,
    rest: Box<[FutureCell]>,
    /// Where futures go when done, if they have done callbacks.
    queue: Arc<CallbackQueue>,
}

impl FutureCells {
    /// Cells for `count` records (at least one is made).
    pub(crate) fn new(count: usize, queue: Arc<CallbackQueue>) -> Arc<Self> {
        Arc::new(FutureCells {
            first: FutureCell::new(),
            rest: (1..count).map(|_| FutureCell::new()).collect(),
            queue,
        })
    }

    fn cell(&self, index: usize) -> &FutureCell {
        match index {
            0 => &self.first,
            i => &self.rest[i - 1],
        }
    }

    /// These cells as the core's delivery handler; made once per call and
    /// passed to every [`FutureCells::send`] of it.
    pub(crate) fn handler(self: &Arc<Self>) -> Arc<dyn DeliveryHandler> {
        self.clone()
    }

    /// Completes record `index`'s future. Runs on a producer thread:
    /// touches no Python object (the callbacks are moved, not cloned or
    /// dropped).
    pub(crate) fn complete(&self, index: usize, outcome: Outcome) {
        let cell = self.cell(index);
        let _ = cell.outcome.set(outcome);
        let (owner, callbacks) = {
            let mut w = cell.waiters.lock();
            w.done = true;
            (w.owner.take(), std::mem::take(&mut w.callbacks))
        };
        cell.done.notify_all();
        if let Some(owner) = owner {
            self.queue.push(owner, callbacks);
        }
    }

    /// Hands record `index` to the core with `handler` (these cells, from
    /// [`FutureCells::handler`]): at once (`wait` None) or waiting up to
    /// `wait` for buffer room. The core holds a reference to the cells, not
    /// a boxed closure, so a record costs no allocation here.
    // `SendError` is large because it hands the record back (core design).
    #[allow(clippy::result_large_err)]
    pub(crate) fn send(
        handler: &Arc<dyn DeliveryHandler>,
        index: usize,
        producer: &Producer,
        stream: &str,
        record: UserRecord,
        wait: Option<Duration>,
    ) -> Result<(), SendError> {
        let tag = index as u64;
        match wait {
            None => producer.try_send_with_handler(stream, record, handler, tag),
            Some(t) => producer.send_blocking_with_handler(stream, record, Some(t), handler, tag),
        }
    }
}

impl DeliveryHandler for FutureCells {
    fn delivered(&self, tag: u64, result: DeliveryResult) {
        self.complete(tag as usize, Outcome::Delivered(result));
    }
}

/// The pending result of one record: resolves to a `DeliveryReport`, or
/// raises `DeliveryError` (or the error that kept the record out of the
/// queue).
///
/// It offers the methods of `concurrent.futures.Future` (`result`,
/// `exception`, `done`, `add_done_callback`, ...) and can be awaited from
/// asyncio. Done callbacks run on the package's callback thread (or at once
/// on the caller's thread when the future is already done), never on a
/// producer thread.
#[pyclass(frozen, module = "shardline", name = "RecordFuture")]
pub(crate) struct RecordFuture {
    cells: Arc<FutureCells>,
    /// This record's cell in `cells`.
    index: usize,
    /// The `DeliveryReport` of a delivered record, made once.
    report: PyOnceLock<Py<PyAny>>,
}

impl RecordFuture {
    /// A new Python future on `cell`, left out of the cyclic garbage
    /// collector.
    ///
    /// PyO3 makes every class a GC container, but this one reports no
    /// references to the collector (it has no `__traverse__`) and holds
    /// none that lead back to it (its report refers to nothing of the
    /// caller's; exceptions are made anew per call, see `value`), so
    /// tracking it found no cycle. It only made the collector walk every
    /// future: with 10,000 of them per `put_many`, collections took about a
    /// tenth of the calling thread's time in a profile; they are still
    /// triggered, by count, but now have far less to walk.
    pub(crate) fn create(
        py: Python<'_>,
        cells: Arc<FutureCells>,
        index: usize,
    ) -> PyResult<Py<RecordFuture>> {
        let future = Py::new(
            py,
            RecordFuture {
                cells,
                index,
                report: PyOnceLock::new(),
            },
        )?;
        // SAFETY: a live object of a GC type, with the GIL held; the
        // collector tolerates untracked objects and dealloc's untrack of
        // an untracked object is a no-op.
        unsafe { pyo3::ffi::PyObject_GC_UnTrack(future.as_ptr().cast()) };
        Ok(future)
    }

    fn cell(&self) -> &FutureCell {
        self.cells.cell(self.index)
    }

    /// Waits for the outcome in slices, checking for Ctrl-C between them.
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        if self.cell().is_done() {
            return Ok(());
        }
        let deadline = py_deadline(timeout);
        loop {
            let slice = match deadline {
                None => WAIT_SLICE,
                Some(d) => d.saturating_duration_since(Instant::now()).min(WAIT_SLICE),
            };
            let cell = self.cell();
            if py.detach(|| cell.wait_for(slice)) {
                return Ok(());
            }
            py.check_signals()?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(new_err(
                    py,
                    &types(py).timeout,
                    format!(
                        "the record was not completed within {:.3} s",
                        timeout.unwrap_or_default()
                    ),
                ));
            }
        }
    }

    /// The outcome as Python objects: the report (made once), or a new
    /// exception instance on every call. Not a cached one: raised, it would
    /// take a traceback that reaches the caller's frame, which holds this
    /// future, a cycle the collector cannot see through this class.
    fn value(&self, py: Python<'_>) -> PyResult<Result<Py<PyAny>, Py<PyAny>>> {
        let outcome = self
            .cell()
            .outcome
            .get()
            .expect("value() is called only once the future is done");
        Ok(match outcome {
            Outcome::Delivered(Ok(report)) => Ok(self
                .report
                .get_or_try_init(py, || {
                    Ok::<_, PyErr>(Py::new(py, PyDeliveryReport::from(report))?.into_any())
                })?
                .clone_ref(py)),
            Outcome::Delivered(Err(error)) => Err(delivery_error(py, error)?.unbind()),
            Outcome::Refused(error) => Err(to_py_err(py, error).into_value(py).into_any()),
        })
    }
}

impl std::fmt::Debug for RecordFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordFuture")
            .field("done", &self.cell().is_done())
            .finish_non_exhaustive()
    }
}

#[pymethods]
impl RecordFuture {
    /// The `DeliveryReport`, waiting up to `timeout` seconds (forever if
    /// None or `math.inf`). Raises `DeliveryError` if the record was not
    /// delivered, and `shardline.TimeoutError` if it is not done in time.
    /// Ctrl-C interrupts the wait.
    #[pyo3(signature = (timeout=None))]
    fn result(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.wait(py, timeout)?;
        match self.value(py)? {
            Ok(report) => Ok(report),
            Err(error) => Err(PyErr::from_value(error.into_bound(py))),
        }
    }

    /// The exception the record failed with, or None if it was delivered;
    /// waits like `result`.
    #[pyo3(signature = (timeout=None))]
    fn exception(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Py<PyAny>>> {
        self.wait(py, timeout)?;
        Ok(self.value(py)?.err())
    }

    /// True once the record is delivered or has failed for good.
    fn done(&self) -> bool {
        self.cell().is_done()
    }

    /// True while the record is pending.
    fn running(&self) -> bool {
        !self.cell().is_done()
    }

    /// Always False: a queued record cannot be taken back.
    fn cancelled(&self) -> bool {
        false
    }

    /// Does nothing and returns False: a queued record cannot be taken back.
    fn cancel(&self) -> bool {
        false
    }

    /// Calls `fn(future)` once the future is done: at once on this thread
    /// if it already is, else on Shardline's callback thread. Exceptions
    /// raised by `fn` are logged and ignored.
    #[pyo3(name = "add_done_callback")]
    fn add_done_callback(slf: &Bound<'_, Self>, callback: Py<PyAny>) -> PyResult<()> {
        let this = slf.get();
        {
            let mut w = this.cell().waiters.lock();
            if !w.done {
                w.callbacks.push(callback);
                if w.owner.is_none() {
                    w.owner = Some(slf.clone().unbind());
                }
                return Ok(());
            }
        }
        if let Err(error) = callback.call1(slf.py(), (slf,)) {
            // Like concurrent.futures: a failing callback is logged, not raised.
            log_callback_error(slf.py(), slf.as_any(), error)?;
        }
        Ok(())
    }

    fn __await__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        static AWAIT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let py = slf.py();
        let helper = AWAIT.import(py, "shardline._aio", "await_future")?;
        Ok(helper.call1((slf,))?.unbind())
    }

    fn __repr__(&self) -> &'static str {
        match self.cell().outcome.get() {
            None => "<RecordFuture pending>",
            Some(Outcome::Delivered(Ok(_))) => "<RecordFuture delivered>",
            Some(_) => "<RecordFuture failed>",
        }
    }
}

/// Logs an exception raised by a done callback on the `shardline` logger.
pub(crate) fn log_callback_error(
    py: Python<'_>,
    future: &Bound<'_, PyAny>,
    error: PyErr,
) -> PyResult<()> {
    let logger = py
        .import("logging")?
        .call_method1("getLogger", ("shardline",))?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("exc_info", error.into_value(py))?;
    logger.call_method(
        "error",
        ("exception calling callback for %r", future),
        Some(&kwargs),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The `put_many` docstring and [`FutureCells`](super::FutureCells)
    /// state what one kept future holds per record of its call.
    #[test]
    fn a_cell_is_the_size_the_docs_say() {
        assert!(std::mem::size_of::<super::FutureCell>() <= 144);
    }
}
