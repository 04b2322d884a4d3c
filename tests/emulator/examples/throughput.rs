//! How fast the emulator accepts PutRecords, limits off.
//!
//! Starts an in-process emulator (its own 2-worker runtime, retention 0 so
//! memory stays flat) and blasts pre-encoded PutRecords bodies at it over
//! keep-alive HTTP/1.1 connections with a bare hyper client, so the client
//! costs as little as possible and the figure is the server's.
//!
//! ```text
//! cargo run --release -p shardline-emulator --example throughput -- [records_per_request] [record_bytes] [connections] [seconds]
//! ```
//! Defaults: 100 records of 50 KiB (a 5 MiB request, the PutRecords limit),
//! 4 connections, 5 seconds.

use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use shardline_emulator::{Emulator, EmulatorConfig};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let records = arg(1, 100) as usize;
    let record_bytes = arg(2, 50 * 1024) as usize;
    let connections = arg(3, 4) as usize;
    let seconds = arg(4, 5);

    let mut config = EmulatorConfig::default()
        .with_stream("bench", 8)
        .without_limits()
        .with_retention(Some(0));
    config.max_request_bytes = usize::MAX;
    let emulator = Emulator::start_in_background(config)?;
    let addr = emulator.local_addr();

    // One body reused by every request: 8 shards, distinct keys.
    let data = base64::engine::general_purpose::STANDARD.encode(vec![b'x'; record_bytes]);
    let entries: Vec<String> = (0..records)
        .map(|i| format!(r#"{{"Data":"{data}","PartitionKey":"user-{i}"}}"#))
        .collect();
    let body = Bytes::from(format!(
        r#"{{"StreamName":"bench","Records":[{}]}}"#,
        entries.join(",")
    ));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let requests: u64 = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let body = body.clone();
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let request = http::Request::post("/")
                        .header("content-type", "application/x-amz-json-1.1")
                        .header("x-amz-target", "Kinesis_20131202.PutRecords")
                        .body(Full::new(body.clone()))
                        .unwrap();
                    let response = sender.send_request(request).await.unwrap();
                    assert!(response.status().is_success());
                    let answer = response.into_body().collect().await.unwrap().to_bytes();
                    assert!(answer.starts_with(br#"{"FailedRecordCount":0"#));
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let elapsed = started.elapsed().as_secs_f64();
    let stats = emulator.stats();
    let accepted = stats.streams["bench"].accepted_records;
    assert_eq!(accepted, requests * records as u64);
    let bytes = stats.streams["bench"].accepted_bytes as f64;
    println!(
        "{requests} PutRecords x {records} records of {record_bytes} B over {connections} connections in {elapsed:.1} s: \
         {:.0} requests/s, {:.0} Kinesis records/s, {:.1} MB/s ({:.1} MiB/s) of data + keys",
        requests as f64 / elapsed,
        accepted as f64 / elapsed,
        bytes / elapsed / 1e6,
        bytes / elapsed / 1048576.0,
    );
    Ok(())
}
