//! A local Amazon Kinesis Data Streams + Firehose emulator that enforces
//! shard limits and injects faults.
//!
//! Local Kinesis servers (kinesalite, kinesis-mock, moto) accept any rate;
//! this one throttles like the service, so a producer's rate limiter,
//! retries and backpressure can be tested on a laptop.
//!
//! # Model
//!
//! * It speaks the AWS JSON 1.1 protocol (`POST /` with
//!   `X-Amz-Target: Kinesis_20131202.<Op>` or `Firehose_20150804.<Op>`) on
//!   127.0.0.1, over plain HTTP and, if asked, HTTPS with a self-signed
//!   certificate generated at start-up. Any SigV4 signature is accepted and
//!   none is verified. STS `GetCallerIdentity` (query protocol, XML) is
//!   answered too, because the Java KPL asks it for the account before it
//!   produces (point its `StsEndpoint`/`StsPort` here).
//! * Records route like AWS: MD5 of the partition key (or the explicit hash
//!   key) into the shard whose inclusive hash range holds it. Resharding
//!   closes parents, which stay readable, and opens children.
//! * Each shard admits 1 MiB/s (data + partition key) and 1,000 records/s
//!   over a rolling one-second window ([`ShardLimits`]); the rest is
//!   answered `ProvisionedThroughputExceededException`, per record in
//!   PutRecords. Firehose has per-delivery-stream quotas ([`FirehoseLimits`]).
//! * [`Faults`] are injected on purpose: per-record failures, 500/503
//!   answers, latency, dropped connections, stalls and expired credentials.
//! * Every record is kept in memory (see
//!   [`EmulatorConfig::retain_records_per_shard`] for long runs) and can be
//!   read back with GetRecords, [`Emulator::records`] or the admin
//!   endpoints (see the `admin` module docs: `/_emulator/stats`,
//!   `/_emulator/faults`, ...).
//!
//! # Example
//!
//! ```
//! use shardline_emulator::{Emulator, EmulatorConfig};
//!
//! let emulator = Emulator::start_in_background(
//!     EmulatorConfig::default().with_stream("orders", 2),
//! )?;
//! // Point any Kinesis client at this endpoint (region us-east-1, any keys).
//! assert!(emulator.endpoint().starts_with("http://127.0.0.1:"));
//! assert_eq!(emulator.stats().streams["orders"].shards.len(), 2);
//! emulator.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```
#![warn(missing_docs)]

mod admin;
mod config;
mod errors;
mod faults;
mod firehose;
mod kinesis;
mod limits;
mod protocol;
mod server;
mod stats;
mod sts;
mod tls;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{
    DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_REQUEST_BYTES, DEFAULT_SHARD_BYTES_PER_SECOND,
    DEFAULT_SHARD_RECORDS_PER_SECOND, EmulatorConfig, FIREHOSE_MAX_BATCH_BYTES,
    FIREHOSE_MAX_RECORD_BYTES, FirehoseLimits, MAX_MAX_RECORD_BYTES, MAX_RECORDS_PER_REQUEST, MIB,
    ShardLimits,
};
pub use faults::{Faults, Stall};
pub use kinesis::StoredRecord;
pub use stats::{DeliveryStreamStats, RequestStats, ShardStats, Stats, StreamStats};

use server::App;

/// A running emulator. Dropping it (or [`shutdown`](Self::shutdown)) stops
/// the listeners and closes every connection; an emulator started with
/// [`start_in_background`](Self::start_in_background) also joins its thread.
#[derive(Debug)]
pub struct Emulator {
    app: Arc<App>,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What `launch` hands back: the running parts minus the thread.
struct Running {
    app: Arc<App>,
    http_addr: SocketAddr,
    https_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
}

/// Builds the state, binds 127.0.0.1 and spawns the accept loops on the
/// current tokio runtime.
async fn launch(config: EmulatorConfig) -> io::Result<Running> {
    let identity = if config.tls {
        let identity = tls::generate()?;
        if let Some(path) = &config.cert_out {
            tokio::fs::write(path, &identity.cert_pem).await?;
        }
        Some(identity)
    } else {
        None
    };
    let kinesis = kinesis::Kinesis::new(
        kinesis::Settings {
            account_id: config.account_id.clone(),
            region: config.region.clone(),
            max_record_bytes: config.max_record_bytes.min(MAX_MAX_RECORD_BYTES),
            max_request_bytes: config.max_request_bytes,
            retain: config.retain_records_per_shard,
        },
        config.shard_limits,
    );
    for (name, shards) in &config.streams {
        kinesis.create_stream(name, *shards);
    }
    let firehose = firehose::Firehose::new(
        &config.account_id,
        &config.region,
        config.retain_delivered_records,
        config.firehose_limits,
    );
    for name in &config.delivery_streams {
        firehose.create(name);
    }
    let app = Arc::new(App::new(
        kinesis,
        firehose,
        faults::FaultInjector::new(config.faults.clone()),
        identity.as_ref().map(|i| i.cert_pem.clone()),
    ));

    let http = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port)).await?;
    let https = match &identity {
        Some(_) => Some(TcpListener::bind((Ipv4Addr::LOCALHOST, config.tls_port)).await?),
        None => None,
    };
    let http_addr = http.local_addr()?;
    let https_addr = https.as_ref().map(TcpListener::local_addr).transpose()?;
    let (shutdown, _) = watch::channel(false);
    tokio::spawn(server::serve(
        http,
        None,
        Arc::clone(&app),
        shutdown.subscribe(),
    ));
    if let (Some(listener), Some(identity)) = (https, identity) {
        tokio::spawn(server::serve(
            listener,
            Some(identity.acceptor),
            Arc::clone(&app),
            shutdown.subscribe(),
        ));
    }
    Ok(Running {
        app,
        http_addr,
        https_addr,
        shutdown,
    })
}

impl Emulator {
    /// Starts the emulator on the current tokio runtime (multi-threaded
    /// recommended), listening on 127.0.0.1 (port 0 = a free port).
    pub async fn start(config: EmulatorConfig) -> io::Result<Emulator> {
        let running = launch(config).await?;
        Ok(Emulator {
            app: running.app,
            http_addr: running.http_addr,
            https_addr: running.https_addr,
            shutdown: running.shutdown,
            thread: None,
        })
    }

    /// Starts the emulator on its own thread with its own two-worker tokio
    /// runtime. Usable from synchronous code and from inside another
    /// runtime; blocks only until the listeners are bound.
    pub fn start_in_background(config: EmulatorConfig) -> io::Result<Emulator> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("shardline-emulator".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("shardline-emulator-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = sender.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    match launch(config).await {
                        Ok(running) => {
                            let mut stop = running.shutdown.subscribe();
                            if sender.send(Ok(running)).is_ok() {
                                // Ends on `true` or when the Emulator (the
                                // sender's owner) is dropped.
                                let _ = stop.wait_for(|stop| *stop).await;
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(e));
                        }
                    }
                });
                // Cancels the accept loops and connections still running.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        let running = receiver
            .recv()
            .map_err(|_| io::Error::other("the emulator thread exited during start-up"))??;
        Ok(Emulator {
            app: running.app,
            http_addr: running.http_addr,
            https_addr: running.https_addr,
            shutdown: running.shutdown,
            thread: Some(thread),
        })
    }

    /// The plain HTTP endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The HTTP listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The HTTPS endpoint, `https://127.0.0.1:PORT`, when TLS is on.
    pub fn https_endpoint(&self) -> Option<String> {
        self.https_addr.map(|a| format!("https://{a}"))
    }

    /// The self-signed certificate (PEM) the HTTPS listener presents; add
    /// it to a client's trust store.
    pub fn cert_pem(&self) -> Option<String> {
        self.app.cert_pem.clone()
    }

    /// Replaces the injected faults (a stall starts now; a seed restarts
    /// the dice).
    pub fn set_faults(&self, faults: Faults) {
        self.app.faults.set(faults);
    }

    /// Waits until every request already past the fault checks has been
    /// answered (at most `limit`; returns whether it got there). After
    /// [`set_faults`](Self::set_faults) stalls the server or refuses a
    /// key, the stored records then change only by what the new faults
    /// let through, so a snapshot taken next is complete.
    pub fn settle(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.app.faults.admitted() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// The faults currently injected.
    pub fn faults(&self) -> Faults {
        self.app.faults.get()
    }

    /// Changes the per-shard write quota; `None` switches throttling off.
    pub fn set_shard_limits(&self, limits: Option<ShardLimits>) {
        self.app.kinesis.set_limits(limits);
    }

    /// Changes the Firehose quotas; `None` switches them off.
    pub fn set_firehose_limits(&self, limits: Option<FirehoseLimits>) {
        self.app.firehose.set_limits(limits);
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> Stats {
        self.app.stats()
    }

    /// Creates an ACTIVE stream with `shards` evenly split shards; does
    /// nothing if a stream of that name exists.
    pub fn create_stream(&self, name: &str, shards: u32) {
        self.app.kinesis.create_stream(name, shards);
    }

    /// Creates a Direct PUT delivery stream; does nothing if it exists.
    pub fn create_delivery_stream(&self, name: &str) {
        self.app.firehose.create(name);
    }

    /// Every retained record of a stream, shard by shard (closed shards
    /// included) in shard-id order, each shard in sequence order. Empty if
    /// the stream does not exist.
    pub fn records(&self, stream: &str) -> Vec<StoredRecord> {
        self.app.kinesis.records(stream)
    }

    /// The retained records delivered to a Firehose delivery stream, in
    /// arrival order.
    pub fn delivered(&self, delivery_stream: &str) -> Vec<Bytes> {
        self.app.firehose.delivered(delivery_stream)
    }

    /// Stops the emulator (the same as dropping it).
    pub fn shutdown(self) {}
}

/// Feeds one API request to the emulator's request parsing and handlers,
/// without a network, and returns the HTTP status it would answer. For
/// fuzzing (`fuzz/` in the repository): `target` is the `X-Amz-Target`
/// header, `body` the JSON body. Each call starts from a fresh state with
/// a 2-shard stream `s` and a delivery stream `d`.
#[doc(hidden)]
pub fn handle_request_for_fuzzing(target: &str, body: &[u8]) -> u16 {
    let mut headers = http::HeaderMap::new();
    match http::HeaderValue::from_str(target) {
        Ok(value) => {
            headers.insert("x-amz-target", value);
        }
        Err(_) => return 400,
    }
    let (service, operation) = match protocol::parse_target(&headers) {
        Ok(parsed) => parsed,
        Err(e) => return e.status.as_u16(),
    };
    let config = EmulatorConfig::default();
    let kinesis = kinesis::Kinesis::new(
        kinesis::Settings {
            account_id: config.account_id.clone(),
            region: config.region.clone(),
            max_record_bytes: config.max_record_bytes,
            max_request_bytes: config.max_request_bytes,
            retain: Some(100),
        },
        config.shard_limits,
    );
    kinesis.create_stream("s", 2);
    let firehose = firehose::Firehose::new(
        &config.account_id,
        &config.region,
        Some(100),
        config.firehose_limits,
    );
    firehose.create("d");
    let faults = faults::FaultInjector::new(Faults::default());
    let result = match service {
        protocol::Service::Kinesis => kinesis.handle(operation, body, &faults),
        protocol::Service::Firehose => firehose.handle(operation, body, &faults),
    };
    match result {
        Ok(_) => 200,
        Err(e) => e.status.as_u16(),
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn the_fuzzing_entry_point_answers_like_the_server() {
        let put = br#"{"StreamName":"s","Records":[{"Data":"aGk=","PartitionKey":"k"}]}"#;
        assert_eq!(
            handle_request_for_fuzzing("Kinesis_20131202.PutRecords", put),
            200
        );
        assert_eq!(
            handle_request_for_fuzzing("Kinesis_20131202.PutRecords", b"{nope"),
            400
        );
        assert_eq!(handle_request_for_fuzzing("Nope.Op", b"{}"), 400);
    }

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Emulator>();
        assert_send_sync::<Stats>();
        assert_send_sync::<EmulatorConfig>();
    }
}
