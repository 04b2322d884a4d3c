//! What a completed record looks like from Python: `DeliveryReport` and
//! `Attempt`, frozen and printable.

use pyo3::prelude::*;
use pyo3::types::PyList;

/// One try at putting a record (or the aggregate that carried it).
#[pyclass(frozen, module = "shardline", name = "Attempt")]
#[derive(Debug, Clone)]
pub(crate) struct PyAttempt {
    /// Seconds the record waited (buffering, rate limiting, backoff) before this try.
    #[pyo3(get)]
    delay: f64,
    /// Seconds the request took.
    #[pyo3(get)]
    duration: f64,
    /// The error code of a failed try (e.g. 'ProvisionedThroughputExceededException'); None for a success.
    #[pyo3(get)]
    error_code: Option<String>,
    /// The service's or transport's message for a failed try.
    #[pyo3(get)]
    error_message: Option<String>,
}

#[pymethods]
impl PyAttempt {
    /// True when this try succeeded.
    #[getter]
    fn success(&self) -> bool {
        self.error_code.is_none()
    }

    fn __repr__(&self) -> String {
        match &self.error_code {
            None => format!(
                "Attempt(delay={:.6}, duration={:.6}, success=True)",
                self.delay, self.duration
            ),
            Some(code) => format!(
                "Attempt(delay={:.6}, duration={:.6}, error_code={}, error_message={})",
                self.delay,
                self.duration,
                py_str_repr(code),
                py_str_repr(self.error_message.as_deref().unwrap_or(""))
            ),
        }
    }
}

impl From<&shardline::Attempt> for PyAttempt {
    fn from(a: &shardline::Attempt) -> Self {
        PyAttempt {
            delay: a.delay.as_secs_f64(),
            duration: a.duration.as_secs_f64(),
            error_code: a.error_code.clone(),
            error_message: a.error_message.clone(),
        }
    }
}

/// A Python list of `Attempt`s.
pub(crate) fn attempts_to_list<'py>(
    py: Python<'py>,
    attempts: &[shardline::Attempt],
) -> PyResult<Bound<'py, PyList>> {
    PyList::new(py, attempts.iter().map(PyAttempt::from))
}

/// A record the service stored.
#[pyclass(frozen, module = "shardline", name = "DeliveryReport")]
#[derive(Debug)]
pub(crate) struct PyDeliveryReport {
    /// The shard that stored it (Kinesis Data Streams); None for Firehose.
    #[pyo3(get)]
    shard_id: Option<String>,
    /// The sequence number of the record (or of the aggregate that carried
    /// it); the record id for Firehose.
    #[pyo3(get)]
    sequence_number: String,
    /// Every try, the last one the success.
    #[pyo3(get)]
    attempts: Vec<PyAttempt>,
    /// True when it travelled inside a KPL aggregate (or a packed Firehose record).
    #[pyo3(get)]
    aggregated: bool,
}

#[pymethods]
impl PyDeliveryReport {
    fn __repr__(&self) -> String {
        format!(
            "DeliveryReport(shard_id={}, sequence_number={}, attempts={}, aggregated={})",
            self.shard_id
                .as_deref()
                .map_or_else(|| "None".to_owned(), py_str_repr),
            py_str_repr(&self.sequence_number),
            self.attempts.len(),
            if self.aggregated { "True" } else { "False" },
        )
    }
}

impl From<&shardline::DeliveryReport> for PyDeliveryReport {
    fn from(r: &shardline::DeliveryReport) -> Self {
        PyDeliveryReport {
            shard_id: r.shard_id.as_deref().map(str::to_owned),
            sequence_number: r.sequence_number.to_string(),
            attempts: r.attempts.iter().map(PyAttempt::from).collect(),
            aggregated: r.aggregated,
        }
    }
}

/// A str as Python's `repr` shows it (for the ASCII ids and codes it is used on).
fn py_str_repr(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}
