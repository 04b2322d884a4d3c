//! Helpers shared by the examples: a latency histogram fed from delivery
//! callbacks.

use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Delivery latencies in microseconds, shared with callbacks.
#[derive(Debug, Clone)]
pub struct Latencies(Arc<Mutex<Histogram<u64>>>);

impl Default for Latencies {
    fn default() -> Self {
        Latencies(Arc::new(Mutex::new(
            Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        )))
    }
}

impl Latencies {
    /// Records the time since `sent`.
    pub fn record_since(&self, sent: Instant) {
        let micros = sent.elapsed().as_micros() as u64;
        self.0.lock().saturating_record(micros.max(1));
    }

    /// (p50, p99) in milliseconds.
    pub fn p50_p99_ms(&self) -> (f64, f64) {
        let h = self.0.lock();
        (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        )
    }
}
