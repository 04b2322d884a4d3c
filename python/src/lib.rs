//! `shardline._native`: the native half of the `shardline` Python package.
//!
//! Everything here is thin: the producer, its futures and reports, and the
//! exception classes. The package (`python/shardline/`) adds the Pythonic
//! surface and the thread that runs done callbacks. Python code never runs
//! on a producer thread: completions land in [`future::FutureCells`] and
//! only futures with done callbacks are handed to that thread.
#![warn(missing_docs)]

use std::sync::atomic::Ordering;

use pyo3::prelude::*;

mod errors;
mod future;
mod producer;
mod report;

/// The native module. Registers the classes, the exception hierarchy and
/// an `os.register_at_fork` hook that lets producers detect a forked child.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    producer::CURRENT_PID.store(std::process::id(), Ordering::Release);

    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<producer::NativeProducer>()?;
    m.add_class::<future::RecordFuture>()?;
    m.add_class::<future::PyCallbackQueue>()?;
    m.add_class::<report::PyDeliveryReport>()?;
    m.add_class::<report::PyAttempt>()?;

    let t = errors::types(py);
    m.add("ShardlineError", t.base.bind(py))?;
    m.add("ConfigurationError", t.configuration.bind(py))?;
    m.add("ValidationError", t.validation.bind(py))?;
    m.add("QueueFullError", t.queue_full.bind(py))?;
    m.add("TimeoutError", t.timeout.bind(py))?;
    m.add("ClosedError", t.closed.bind(py))?;
    m.add("DeliveryError", t.delivery.bind(py))?;

    let keys: Vec<(&str, Option<&str>, &str)> = shardline::CONFIG_KEYS.to_vec();
    m.add("CONFIG_KEYS", keys)?;

    let after_fork = wrap_pyfunction!(producer::_after_fork_in_child, m)?;
    m.add_function(after_fork.clone())?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("after_in_child", after_fork)?;
    py.import("os")?
        .call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
