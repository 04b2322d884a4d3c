//! `shardline-emulator`: the emulator as a process, for harnesses in other
//! languages. Prints `listening http://127.0.0.1:PORT` (and the https line)
//! once ready, and exits on SIGINT/SIGTERM, or when stdin closes with
//! `--exit-on-stdin-close`.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use clap::Parser;
use shardline_emulator::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_SHARD_BYTES_PER_SECOND, DEFAULT_SHARD_RECORDS_PER_SECOND,
    Emulator, EmulatorConfig, Faults, FirehoseLimits, ShardLimits, Stall,
};

/// A local Kinesis Data Streams + Firehose emulator that enforces shard
/// limits and injects faults. Listens on 127.0.0.1 only.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// HTTP port (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Also serve HTTPS (self-signed certificate) on this port (0 = any).
    #[arg(long)]
    tls_port: Option<u16>,
    /// Write the HTTPS certificate (PEM) to this file; implies HTTPS.
    #[arg(long)]
    cert_out: Option<PathBuf>,
    /// Do not throttle (neither shards nor Firehose).
    #[arg(long)]
    no_limits: bool,
    /// Per-shard write quota in bytes per second.
    #[arg(long, default_value_t = DEFAULT_SHARD_BYTES_PER_SECOND)]
    shard_bytes_per_sec: u64,
    /// Per-shard write quota in records per second.
    #[arg(long, default_value_t = DEFAULT_SHARD_RECORDS_PER_SECOND)]
    shard_records_per_sec: u64,
    /// Firehose records per second per delivery stream.
    #[arg(long, default_value_t = FirehoseLimits::default().records_per_second)]
    firehose_records_per_sec: u64,
    /// Firehose bytes per second per delivery stream.
    #[arg(long, default_value_t = FirehoseLimits::default().bytes_per_second)]
    firehose_bytes_per_sec: u64,
    /// Firehose requests per second per delivery stream.
    #[arg(long, default_value_t = FirehoseLimits::default().requests_per_second)]
    firehose_requests_per_sec: u64,
    /// Create a stream at start, NAME:SHARDS (repeatable).
    #[arg(long = "stream", value_parser = parse_stream)]
    streams: Vec<(String, u32)>,
    /// Create a Firehose delivery stream at start (repeatable).
    #[arg(long = "delivery-stream")]
    delivery_streams: Vec<String>,
    /// Keep at most N records per shard and per delivery stream (0 = none).
    #[arg(long)]
    retain: Option<usize>,
    /// Largest record (data + partition key) in bytes, up to 10 MiB.
    #[arg(long, default_value_t = DEFAULT_MAX_RECORD_BYTES)]
    max_record_bytes: usize,
    /// Probability of a per-record InternalFailure in PutRecords/PutRecordBatch.
    #[arg(long, default_value_t = 0.0)]
    fail_record_probability: f64,
    /// Probability of a 500 InternalFailure answer.
    #[arg(long, default_value_t = 0.0)]
    error_500_probability: f64,
    /// Probability of a 503 ServiceUnavailable answer.
    #[arg(long, default_value_t = 0.0)]
    error_503_probability: f64,
    /// Latency added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Random extra latency, up to this many milliseconds.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Probability of closing the connection without an answer.
    #[arg(long, default_value_t = 0.0)]
    drop_probability: f64,
    /// Stall (answer nothing) for this many milliseconds after start.
    #[arg(long)]
    stall_ms: Option<u64>,
    /// Refuse requests signed with this access key id with ExpiredTokenException (repeatable).
    #[arg(long = "expired-key")]
    expired_keys: Vec<String>,
    /// Seed of the fault dice.
    #[arg(long)]
    seed: Option<u64>,
    /// Account id used in ARNs and messages.
    #[arg(long, default_value = "123456789012")]
    account_id: String,
    /// Region used in ARNs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Exit when stdin is closed (so a dead parent does not leave us running).
    #[arg(long)]
    exit_on_stdin_close: bool,
}

fn parse_stream(text: &str) -> Result<(String, u32), String> {
    let (name, shards) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("expected NAME:SHARDS, got '{text}'"))?;
    let shards = shards
        .parse()
        .map_err(|e| format!("bad shard count in '{text}': {e}"))?;
    Ok((name.to_owned(), shards))
}

impl Args {
    fn config(&self) -> EmulatorConfig {
        EmulatorConfig {
            shard_limits: (!self.no_limits).then_some(ShardLimits {
                bytes_per_second: self.shard_bytes_per_sec,
                records_per_second: self.shard_records_per_sec,
            }),
            firehose_limits: (!self.no_limits).then_some(FirehoseLimits {
                records_per_second: self.firehose_records_per_sec,
                bytes_per_second: self.firehose_bytes_per_sec,
                requests_per_second: self.firehose_requests_per_sec,
            }),
            faults: Faults {
                record_failure_probability: self.fail_record_probability,
                internal_error_probability: self.error_500_probability,
                service_unavailable_probability: self.error_503_probability,
                latency_ms: self.latency_ms,
                jitter_ms: self.jitter_ms,
                drop_connection_probability: self.drop_probability,
                stall: self.stall_ms.map(Stall::ForMillis),
                expired_access_key_ids: self.expired_keys.clone(),
                seed: self.seed,
            },
            tls: self.tls_port.is_some() || self.cert_out.is_some(),
            max_record_bytes: self.max_record_bytes,
            retain_records_per_shard: self.retain,
            retain_delivered_records: self.retain,
            streams: self.streams.clone(),
            delivery_streams: self.delivery_streams.clone(),
            account_id: self.account_id.clone(),
            region: self.region.clone(),
            port: self.port,
            tls_port: self.tls_port.unwrap_or(0),
            cert_out: self.cert_out.clone(),
            ..EmulatorConfig::default()
        }
    }
}

/// Resolves when stdin reaches end-of-file. The read blocks, so it runs on
/// a plain thread that dies with the process.
async fn stdin_closed() {
    let (closed, wait) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0u8; 1024];
        while let Ok(n) = stdin.read(&mut buffer) {
            if n == 0 {
                break;
            }
        }
        let _ = closed.send(());
    });
    let _ = wait.await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    // Signal handlers go in before the "listening" lines: a harness that
    // sends SIGTERM as soon as it reads them must get a clean exit.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let emulator = Emulator::start(args.config()).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening {}", emulator.endpoint())?;
        if let Some(https) = emulator.https_endpoint() {
            writeln!(out, "listening {https}")?;
        }
        out.flush()?;
    }
    let stdin_watch = async {
        if args.exit_on_stdin_close {
            stdin_closed().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        _ = stdin_watch => {}
    }
    emulator.shutdown();
    Ok(())
}
