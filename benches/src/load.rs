//! `shardline-load` (and `shardline-load-mimalloc`, the same program with
//! mimalloc as the process's allocator): drives one Shardline producer against an endpoint (the
//! emulator, normally a separate `shardline-emulator` process) with a fixed
//! workload, and prints one JSON line with what it measured.
//!
//! Workload: `--records` user records of `--record-size` bytes, keys drawn
//! round-robin from a pool of `--keys` distinct 36-character UUID-shaped
//! partition keys, all built before the clock starts. Without `--rate` it
//! sends as fast as the producer accepts (blocking send at the buffer cap)
//! and measures throughput; with `--rate R` it paces sends to R records/s
//! and measures delivery latency (send call to completion).
//! Completions go to one `DeliveryHandler` with a per-record tag (the
//! producer's allocation-free path); `--completion callback` uses a boxed
//! callback per record instead.
//! `--seconds S` instead of `--records` runs for a fixed time.
//!
//! Printed: records sent / delivered / failed, wall seconds from the first
//! send to the last completion (with latency timing; without it, to the
//! return of the final flush, so no clock is read per record), records/s and MB/s of user data, this
//! process's CPU seconds (user + system, all threads) and peak RSS, the
//! latency percentiles, and the producer's own counters (throttled, ...).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use shardline::{Config, DeliveryHandler, DeliveryResult, Producer, UserRecord};
use shardline_benches::{cpu_seconds_self, make_keys, make_payload, peak_rss_bytes_self};

#[derive(Debug, Parser)]
struct Args {
    /// Endpoint URL, e.g. http://127.0.0.1:4567.
    #[arg(long)]
    endpoint: String,
    /// Stream name.
    #[arg(long, default_value = "s")]
    stream: String,
    /// Bytes of data per user record.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// User records to send (ignored with --seconds).
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Send for this many seconds instead of a fixed count.
    #[arg(long)]
    seconds: Option<f64>,
    /// Records per second to pace at; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Distinct partition keys, used round-robin.
    #[arg(long, default_value_t = 4096)]
    keys: usize,
    /// Sending threads (the records are split between them).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Producer buffer cap in bytes (`max_buffered_bytes`).
    #[arg(long)]
    max_buffered_bytes: Option<usize>,
    /// Producer runtime threads (`worker_threads`).
    #[arg(long)]
    worker_threads: Option<usize>,
    /// Lift the producer's own per-shard rate limiter (for an emulator
    /// running without limits: measure the producer, not the quota).
    #[arg(long)]
    no_rate_limit: bool,
    /// Turn aggregation off.
    #[arg(long)]
    no_aggregation: bool,
    /// `record_ttl` in seconds.
    #[arg(long)]
    record_ttl: Option<f64>,
    /// Give up waiting for completions after this many seconds.
    #[arg(long, default_value_t = 120.0)]
    flush_timeout: f64,
    /// Measure latency for every record (always on with --rate).
    #[arg(long)]
    latency: bool,
    /// Print a progress line (JSON) to stderr every N milliseconds: RSS,
    /// CPU, completions. 0 = never.
    #[arg(long, default_value_t = 0)]
    progress_ms: u64,
    /// How each record reports its completion.
    #[arg(long, value_enum, default_value_t = Completion::Handler)]
    completion: Completion,
    /// Free-form label copied into the output.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Completion {
    /// One shared `DeliveryHandler`; the tag carries the send time.
    Handler,
    /// A boxed closure per record (`send_blocking_with_callback`).
    Callback,
}

struct Counts {
    start: Instant,
    ok: AtomicU64,
    failed: AtomicU64,
    last_done_nanos: AtomicU64,
    latency: Option<Mutex<Histogram<u64>>>,
}

impl Counts {
    /// Counts one completion; `sent_nanos` is the send time (nanoseconds
    /// after `start`) when the record's latency is timed.
    fn done(&self, result: &DeliveryResult, sent_nanos: Option<u64>) {
        if result.is_ok() {
            self.ok.fetch_add(1, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(sent) = sent_nanos {
            let now = self.start.elapsed().as_nanos() as u64;
            self.last_done_nanos.fetch_max(now, Ordering::Relaxed);
            if let Some(h) = &self.latency {
                let micros = now.saturating_sub(sent) / 1000;
                h.lock().saturating_record(micros.max(1));
            }
        }
    }
}

/// Tag 0 means "not timed"; a timed record's tag is its send time in
/// nanoseconds after `start`, plus one.
impl DeliveryHandler for &'static Counts {
    fn delivered(&self, tag: u64, result: DeliveryResult) {
        self.done(&result, tag.checked_sub(1));
    }
}

/// The whole program; `allocator` names the global allocator the binary
/// was built with, for the output.
pub(crate) fn main(allocator: &str) -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut config = Config::new()
        .endpoint_url(&args.endpoint)
        .region("us-east-1")
        .static_credentials("x", "y", None)
        .verify_certificate(false);
    if let Some(b) = args.max_buffered_bytes {
        config = config.max_buffered_bytes(b);
    }
    if let Some(w) = args.worker_threads {
        config = config.worker_threads(w);
    }
    if args.no_rate_limit {
        config = config
            .shard_bytes_per_second(1 << 40)
            .shard_records_per_second(1 << 40);
    }
    if args.no_aggregation {
        config = config.aggregation_enabled(false);
    }
    if let Some(ttl) = args.record_ttl {
        config = config.record_ttl(Duration::from_secs_f64(ttl));
    }
    let producer = Producer::new(config)?;

    let keys: Arc<Vec<String>> = Arc::new(make_keys(args.keys));
    let payload = make_payload(args.record_size);
    let want_latency = args.latency || args.rate > 0.0;
    // Leaked (the harness is one run per process) so each record's callback
    // borrows it: an `Arc` clone per record would add reference-count
    // traffic between the sending and the delivering thread to the cost
    // being measured.
    let counts: &'static Counts = Box::leak(Box::new(Counts {
        start: Instant::now(),
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        last_done_nanos: AtomicU64::new(0),
        latency: want_latency.then(|| {
            Mutex::new(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"))
        }),
    }));
    let handler: Arc<dyn DeliveryHandler> = Arc::new(counts);
    let cpu_before = cpu_seconds_self();
    let start = counts.start;
    let deadline = args.seconds.map(|s| start + Duration::from_secs_f64(s));
    let per_thread = args.records / args.threads as u64;
    let rate_per_thread = args.rate / args.threads as f64;

    let progress_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let progress = (args.progress_ms > 0).then(|| {
        let producer = producer.clone();
        let stop = progress_stop.clone();
        let every = Duration::from_millis(args.progress_ms);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                eprintln!(
                    "{}",
                    serde_json::json!({
                        "t": start.elapsed().as_secs_f64(),
                        "rss_bytes": shardline_benches::rss_bytes_self(),
                        "cpu_s": cpu_seconds_self() - cpu_before,
                        "ok": counts.ok.load(Ordering::Relaxed),
                        "failed": counts.failed.load(Ordering::Relaxed),
                        "buffered_bytes": producer.buffered_bytes(),
                        "outstanding": producer.outstanding(),
                    })
                );
            }
        })
    });

    let sent_total = Arc::new(AtomicU64::new(0));
    let refused_total = Arc::new(AtomicU64::new(0));
    std::thread::scope(|scope| {
        for t in 0..args.threads {
            let producer = producer.clone();
            let keys = keys.clone();
            let payload = payload.clone();
            let stream = args.stream.clone();
            let sent_total = sent_total.clone();
            let refused_total = refused_total.clone();
            let handler = handler.clone();
            scope.spawn(move || {
                let mut sent = 0u64;
                let mut refused = 0u64;
                let mut i = t;
                loop {
                    if let Some(d) = deadline {
                        if sent.is_multiple_of(256) && Instant::now() >= d {
                            break;
                        }
                    } else if sent >= per_thread {
                        break;
                    }
                    if rate_per_thread > 0.0 {
                        let due = start + Duration::from_secs_f64(sent as f64 / rate_per_thread);
                        let now = Instant::now();
                        if due > now {
                            std::thread::sleep(due - now);
                        }
                    }
                    let record = UserRecord::new(keys[i % keys.len()].clone(), payload.clone());
                    i += args.threads;
                    // Clock reads only when timing each record: at 100 B
                    // they are a visible share of the per-record cost being
                    // measured. Without them the run ends when the flush
                    // returns (every callback has run by then).
                    let sent_nanos = want_latency.then(|| start.elapsed().as_nanos() as u64);
                    let result = match args.completion {
                        Completion::Handler => producer.send_blocking_with_handler(
                            &stream,
                            record,
                            None,
                            &handler,
                            sent_nanos.map_or(0, |n| n + 1),
                        ),
                        Completion::Callback => producer.send_blocking_with_callback(
                            &stream,
                            record,
                            None,
                            Box::new(move |result| counts.done(&result, sent_nanos)),
                        ),
                    };
                    match result {
                        Ok(()) => sent += 1,
                        Err(_) => {
                            refused += 1;
                            sent += 1;
                        }
                    }
                }
                sent_total.fetch_add(sent - refused, Ordering::Relaxed);
                refused_total.fetch_add(refused, Ordering::Relaxed);
            });
        }
    });
    let send_done = start.elapsed();
    let flushed = producer
        .flush_blocking(Some(Duration::from_secs_f64(args.flush_timeout)))
        .is_ok();
    let flush_done = start.elapsed();
    let wall = if want_latency {
        Duration::from_nanos(counts.last_done_nanos.load(Ordering::Relaxed)).max(send_done)
    } else {
        flush_done
    };
    let cpu = cpu_seconds_self() - cpu_before;
    let metrics = producer.metrics();
    let _ = producer.close_blocking(Some(Duration::from_secs(5)));
    progress_stop.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }

    let sent = sent_total.load(Ordering::Relaxed);
    let ok = counts.ok.load(Ordering::Relaxed);
    let failed = counts.failed.load(Ordering::Relaxed);
    let secs = wall.as_secs_f64();
    let (p50, p99, pmax) = match &counts.latency {
        Some(h) => {
            let h = h.lock();
            (
                Some(h.value_at_quantile(0.50)),
                Some(h.value_at_quantile(0.99)),
                Some(h.max()),
            )
        }
        None => (None, None, None),
    };
    let c = &metrics.totals;
    let out = serde_json::json!({
        "harness": "shardline",
        "label": args.label,
        "allocator": allocator,
        "completion": match args.completion {
            Completion::Handler => "handler",
            Completion::Callback => "callback",
        },
        "record_size": args.record_size,
        "keys": args.keys,
        "threads": args.threads,
        "target_rate": args.rate,
        "sent": sent,
        "refused": refused_total.load(Ordering::Relaxed),
        "delivered": ok,
        "failed": failed,
        "flushed": flushed,
        "wall_s": secs,
        "send_s": send_done.as_secs_f64(),
        "records_per_s": ok as f64 / secs,
        "mb_per_s": ok as f64 * args.record_size as f64 / secs / 1e6,
        "cpu_s": cpu,
        "cpu_s_per_million": if ok > 0 { cpu / ok as f64 * 1e6 } else { 0.0 },
        "peak_rss_bytes": peak_rss_bytes_self(),
        "latency_us_p50": p50,
        "latency_us_p99": p99,
        "latency_us_max": pmax,
        "producer": {
            "user_records_put": c.user_records_put,
            "kinesis_records_put": c.kinesis_records_put,
            "requests": c.requests,
            "throttled": c.throttled,
            "all_errors": c.all_errors,
            "user_records_failed": c.user_records_failed,
        },
    });
    println!("{out}");
    Ok(())
}
