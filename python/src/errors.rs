//! The exception hierarchy, defined once here and re-exported by
//! `shardline/exceptions.py`, and the mapping from core errors to it.
//!
//! The classes are made with `type(...)` rather than `create_exception!`
//! because some need two bases: a caller who catches `ValueError` or
//! `TimeoutError` (the way they would for the standard library) should
//! catch ours too.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple, PyType};

use shardline::{DeliveryError, Error};

use crate::report::attempts_to_list;

/// The exception classes of the package.
pub(crate) struct ExceptionTypes {
    pub(crate) base: Py<PyType>,
    pub(crate) configuration: Py<PyType>,
    pub(crate) validation: Py<PyType>,
    pub(crate) queue_full: Py<PyType>,
    pub(crate) timeout: Py<PyType>,
    pub(crate) closed: Py<PyType>,
    pub(crate) delivery: Py<PyType>,
}

static TYPES: PyOnceLock<ExceptionTypes> = PyOnceLock::new();

/// The exception classes, made on first use.
pub(crate) fn types(py: Python<'_>) -> &ExceptionTypes {
    TYPES.get_or_init(py, || {
        make_types(py).expect("creating the shardline exception classes cannot fail")
    })
}

fn make_type(
    py: Python<'_>,
    name: &str,
    doc: &str,
    bases: &[Bound<'_, PyAny>],
    attrs: &[(&str, Bound<'_, PyAny>)],
) -> PyResult<Py<PyType>> {
    let dict = PyDict::new(py);
    dict.set_item("__doc__", doc)?;
    dict.set_item("__module__", "shardline.exceptions")?;
    for (key, value) in attrs {
        dict.set_item(key, value)?;
    }
    let bases = PyTuple::new(py, bases)?;
    let ty = py.get_type::<PyType>().call1((name, bases, dict))?;
    Ok(ty.cast_into::<PyType>()?.unbind())
}

fn make_types(py: Python<'_>) -> PyResult<ExceptionTypes> {
    let builtins = py.import("builtins")?;
    let exception = builtins.getattr("Exception")?;
    let value_error = builtins.getattr("ValueError")?;
    let builtin_timeout = builtins.getattr("TimeoutError")?;
    // Before 3.11 `concurrent.futures.TimeoutError` is its own class; a
    // future's `result(timeout)` is expected to raise it.
    let futures_timeout = py.import("concurrent.futures")?.getattr("TimeoutError")?;

    let base = make_type(
        py,
        "ShardlineError",
        "Base class of every error Shardline raises.",
        &[exception],
        &[],
    )?;
    let b = base.bind(py).clone().into_any();
    let configuration = make_type(
        py,
        "ConfigurationError",
        "An option is unknown or its value is invalid, or the producer could not be set up \
         (region, endpoint, credentials source, TLS).",
        &[b.clone(), value_error.clone()],
        &[],
    )?;
    let validation = make_type(
        py,
        "ValidationError",
        "The record can never be sent as it is: empty or too long partition key, invalid \
         explicit hash key or stream name, record too large, or data of an unsupported type.",
        &[b.clone(), value_error],
        &[],
    )?;
    let queue_full = make_type(
        py,
        "QueueFullError",
        "The producer's buffer is at its cap (`max_buffered_bytes` / `max_buffered_records`) \
         and the call was not allowed to wait (or waited past its timeout).",
        std::slice::from_ref(&b),
        &[],
    )?;
    let mut timeout_bases = vec![b.clone(), builtin_timeout.clone()];
    if !futures_timeout.is(&builtin_timeout) {
        timeout_bases.push(futures_timeout);
    }
    let timeout = make_type(
        py,
        "TimeoutError",
        "An operation (`flush`, `close`, `result`) did not finish within its timeout. Also a \
         subclass of the built-in `TimeoutError` and of `concurrent.futures.TimeoutError`.",
        &timeout_bases,
        &[],
    )?;
    let closed = make_type(
        py,
        "ClosedError",
        "The producer is closed and accepts no more records.",
        std::slice::from_ref(&b),
        &[],
    )?;
    let none = py.None().into_bound(py);
    let delivery = make_type(
        py,
        "DeliveryError",
        "A record will not be delivered. `kind` is 'rejected' (the service refused it), \
         'expired' (its `record_ttl` ran out) or 'closed' (the producer closed first); \
         `error_code` is the last error code seen (or None); `attempts` lists every try.",
        &[b],
        &[
            ("error_code", none.clone()),
            ("kind", none),
            ("attempts", PyTuple::empty(py).into_any()),
        ],
    )?;
    Ok(ExceptionTypes {
        base,
        configuration,
        validation,
        queue_full,
        timeout,
        closed,
        delivery,
    })
}

/// An exception of class `ty` with `message`.
pub(crate) fn new_err(py: Python<'_>, ty: &Py<PyType>, message: impl Into<String>) -> PyErr {
    PyErr::from_type(ty.bind(py).clone(), message.into())
}

/// The Python exception for a core error.
pub(crate) fn to_py_err(py: Python<'_>, error: &Error) -> PyErr {
    let t = types(py);
    let ty = match error {
        Error::QueueFull => &t.queue_full,
        Error::Closed => &t.closed,
        Error::Timeout(_) => &t.timeout,
        Error::UnknownConfigKey(_) | Error::InvalidConfig { .. } | Error::Setup(_) => {
            &t.configuration
        }
        Error::Delivery(report) => {
            return match delivery_error(py, report) {
                Ok(value) => PyErr::from_value(value),
                Err(e) => e,
            };
        }
        e if e.is_validation() => &t.validation,
        _ => &t.base,
    };
    new_err(py, ty, error.to_string())
}

/// A `DeliveryError` instance with its attributes set.
pub(crate) fn delivery_error<'py>(
    py: Python<'py>,
    error: &DeliveryError,
) -> PyResult<Bound<'py, PyAny>> {
    let value = types(py).delivery.bind(py).call1((error.to_string(),))?;
    value.setattr("error_code", error.code.as_deref())?;
    value.setattr("kind", failure_kind_name(error.kind))?;
    let attempts: Bound<'py, PyList> = attempts_to_list(py, &error.attempts)?;
    value.setattr("attempts", attempts)?;
    Ok(value)
}

fn failure_kind_name(kind: shardline::FailureKind) -> &'static str {
    match kind {
        shardline::FailureKind::Rejected => "rejected",
        shardline::FailureKind::Expired => "expired",
        shardline::FailureKind::Closed => "closed",
        _ => "failed",
    }
}
