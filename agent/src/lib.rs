//! `shardline-agent`: a log agent that reads the Amazon Kinesis Agent's
//! `agent.json`, tails the files of each flow and ships their records to
//! Kinesis Data Streams or Firehose through a Shardline producer.
//!
//! # Architecture
//!
//! - [`config`] reads agent.json into one [`config::FlowConfig`] (with a
//!   producer configuration) per flow.
//! - Each flow runs on its own thread ([`flow`]): [`tail`] finds and
//!   follows its files and cuts records, [`processing`] applies
//!   `dataProcessingOptions`, and the flow's producer delivers them.
//! - Delivery callbacks advance each file's contiguous acknowledged offset
//!   ([`checkpoint::Progress`]); the main thread writes those offsets to
//!   the checkpoint file every second, durably, and prints the status line.
//! - SIGTERM / SIGINT stop reading, give outstanding records
//!   `shutdownTimeoutMillis` to be delivered, and write a last checkpoint.
//!   After `kill -9`, the next start resends what was not acknowledged.
//!
//! The agent is a library only so that `fuzz/` can reach the agent.json
//! parser ([`fuzzing`]); `src/main.rs` calls [`run_from_command_line`], and
//! nothing else here is public.

// The overview above links to the private modules; they resolve with
// `cargo doc --document-private-items`, the way to read this crate.
#![allow(rustdoc::private_intra_doc_links)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;

mod checkpoint;
mod config;
mod flow;
pub mod fuzzing;
mod processing;
mod status;
mod tail;

use checkpoint::{CheckpointStore, Checkpoints};

/// Tails log files and sends their lines to Amazon Kinesis Data Streams or
/// Amazon Data Firehose, configured by a Kinesis Agent agent.json.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The agent.json to read.
    #[arg(short, long, default_value = "/etc/aws-kinesis/agent.json")]
    config: PathBuf,
    /// Print the status line this often (ms); overrides
    /// log.statusReportingPeriodSeconds.
    #[arg(long)]
    status_interval_ms: Option<u64>,
    /// Also write the status and the producers' metrics as JSON to this
    /// file (replaced at every status interval).
    #[arg(long)]
    metrics_file: Option<PathBuf>,
    /// Write the checkpoint file this often (ms).
    #[arg(long, default_value_t = 1000)]
    checkpoint_interval_ms: u64,
    /// Check the configuration, print the warnings and exit.
    #[arg(long)]
    check: bool,
}

/// The whole program: reads the command line, runs until SIGTERM or SIGINT
/// (or until every flow ends) and returns the process's exit code.
pub fn run_from_command_line() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDLINE_AGENT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("shardline-agent: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let text = std::fs::read_to_string(&args.config)
        .map_err(|e| format!("cannot read {}: {e}", args.config.display()))?;
    let (config, warnings) =
        config::parse(&text).map_err(|e| format!("invalid {}: {e}", args.config.display()))?;
    for warning in &warnings {
        tracing::warn!("{}: {warning}", args.config.display());
    }
    if args.check {
        println!(
            "{}: ok, {} flow(s)",
            args.config.display(),
            config.flows.len()
        );
        return Ok(());
    }
    let store = CheckpointStore::open(&config.checkpoint_file).map_err(|e| {
        format!(
            "checkpointFile: cannot write {}: {e}",
            config.checkpoint_file.display()
        )
    })?;
    let mut saved = store.load().map_err(|e| format!("checkpointFile: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone())?;

    let mut handles = Vec::new();
    let mut threads = Vec::new();
    let shutdown_timeout = config.shutdown_timeout;
    for flow_config in config.flows {
        let previous = saved.flows.remove(&flow_config.id);
        let id = flow_config.id.clone();
        let (flow, handle) = flow::Flow::new(flow_config, previous)
            .map_err(|e| format!("flow {id}: cannot start its producer: {e}"))?;
        tracing::info!(flow = %id, "started");
        handles.push(handle);
        let stop = stop.clone();
        threads.push(
            std::thread::Builder::new()
                .name("flow".into())
                .spawn(move || flow.run(&stop, shutdown_timeout))
                .map_err(|e| format!("cannot start a flow thread: {e}"))?,
        );
    }

    let status_interval = args
        .status_interval_ms
        .map(Duration::from_millis)
        .unwrap_or(config.status_interval);
    let checkpoint_interval = Duration::from_millis(args.checkpoint_interval_ms.max(10));
    let started = Instant::now();
    let mut next_status = started + status_interval;
    let mut next_checkpoint = started + checkpoint_interval;
    let mut last_saved = None;
    let save = |last_saved: &mut Option<Checkpoints>| {
        let current = Checkpoints {
            version: 1,
            flows: handles
                .iter()
                .map(|h| (h.id.clone(), h.checkpoints.lock().expect("lock").clone()))
                .collect(),
        };
        if last_saved.as_ref() != Some(&current) {
            match store.save(&current) {
                Ok(()) => *last_saved = Some(current),
                Err(e) => tracing::error!("cannot write the checkpoint file: {e}"),
            }
        }
    };
    while !stop.load(Ordering::Relaxed) && !threads.iter().all(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        let now = Instant::now();
        if now >= next_checkpoint {
            save(&mut last_saved);
            next_checkpoint = now + checkpoint_interval;
        }
        if now >= next_status {
            report(&handles, started, args.metrics_file.as_deref());
            next_status = now + status_interval;
        }
    }
    tracing::info!("stopping: delivering outstanding records");
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    save(&mut last_saved);
    report(&handles, started, args.metrics_file.as_deref());
    Ok(())
}

fn report(handles: &[flow::FlowHandle], started: Instant, metrics_file: Option<&std::path::Path>) {
    let report = status::Report::collect(handles, started.elapsed());
    let mut stderr = std::io::stderr().lock();
    for line in report.lines() {
        let _ = writeln!(stderr, "{line}");
    }
    if let Some(path) = metrics_file
        && let Err(e) = report.write_json(path)
    {
        tracing::warn!(path = %path.display(), "cannot write the metrics file: {e}");
    }
}

/// Sets `stop` on SIGTERM or SIGINT, from a small thread of its own.
fn watch_signals(stop: Arc<AtomicBool>) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    let (mut term, mut int) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            });
            stop.store(true, Ordering::Relaxed);
        })
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    Ok(())
}
