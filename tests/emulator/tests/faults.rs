//! Every injected fault, through the library setter and the admin endpoint.

mod common;

use std::time::{Duration, Instant};

use aws_sdk_kinesis::error::SdkError;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use common::{ClientOptions, blob, error_code, kinesis, kinesis_with};
use shardline_emulator::{Emulator, EmulatorConfig, Faults, Stall};

fn batch(n: usize) -> Vec<PutRecordsRequestEntry> {
    (0..n)
        .map(|i| {
            PutRecordsRequestEntry::builder()
                .partition_key(i.to_string())
                .data(blob("x"))
                .build()
                .unwrap()
        })
        .collect()
}

async fn emulator() -> Emulator {
    Emulator::start(
        EmulatorConfig::default()
            .with_stream("f", 2)
            .with_delivery_stream("d")
            .without_limits(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_record_failures_are_seeded_and_reproducible() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    let faults = Faults {
        record_failure_probability: 0.2,
        seed: Some(11),
        ..Faults::default()
    };
    let mut runs = Vec::new();
    for _ in 0..2 {
        emulator.set_faults(faults.clone());
        let out = client
            .put_records()
            .stream_name("f")
            .set_records(Some(batch(500)))
            .send()
            .await
            .unwrap();
        let failed: Vec<bool> = out
            .records()
            .iter()
            .map(|r| r.error_code() == Some("InternalFailure"))
            .collect();
        assert_eq!(
            out.failed_record_count(),
            Some(failed.iter().filter(|f| **f).count() as i32)
        );
        runs.push(failed);
    }
    assert_eq!(runs[0], runs[1], "same seed, same failures");
    let n = runs[0].iter().filter(|f| **f).count();
    assert!((60..=140).contains(&n), "{n} of 500 failed at p=0.2");
    assert_eq!(emulator.stats().streams["f"].failed_records, 2 * n as u64);

    // Firehose entries fail the same way.
    use aws_sdk_firehose::primitives::Blob;
    use aws_sdk_firehose::types::Record;
    emulator.set_faults(Faults {
        record_failure_probability: 1.0,
        ..Faults::default()
    });
    let out = common::firehose(&emulator.endpoint())
        .put_record_batch()
        .delivery_stream_name("d")
        .records(Record::builder().data(Blob::new("x")).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_put_count(), 1);
    assert_eq!(
        out.request_responses()[0].error_code(),
        Some("InternalFailure")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_request_500_and_503() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    emulator.set_faults(Faults {
        internal_error_probability: 1.0,
        ..Faults::default()
    });
    let e = client
        .put_records()
        .stream_name("f")
        .set_records(Some(batch(1)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(500));
    assert_eq!(error_code(&e).as_deref(), Some("InternalFailure"));

    emulator.set_faults(Faults {
        service_unavailable_probability: 1.0,
        ..Faults::default()
    });
    let e = client.list_streams().send().await.unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(error_code(&e).as_deref(), Some("ServiceUnavailable"));

    emulator.set_faults(Faults::default());
    client.list_streams().send().await.unwrap();
    let stats = emulator.stats();
    assert_eq!(
        (
            stats.requests.injected_internal_errors,
            stats.requests.injected_unavailable
        ),
        (1, 1)
    );
    assert!(
        emulator.records("f").is_empty(),
        "a failed request writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_and_jitter_delay_answers() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    client.list_streams().send().await.unwrap();
    emulator.set_faults(Faults {
        latency_ms: 200,
        jitter_ms: 100,
        seed: Some(1),
        ..Faults::default()
    });
    for _ in 0..3 {
        let started = Instant::now();
        client.list_streams().send().await.unwrap();
        let took = started.elapsed();
        // The upper bound only catches latency applied without end; a
        // loaded machine adds its own delays.
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(10),
            "{took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_close_the_socket_without_an_answer() {
    let emulator = emulator().await;
    let client = kinesis(&emulator.endpoint());
    emulator.set_faults(Faults {
        drop_connection_probability: 1.0,
        ..Faults::default()
    });
    let e = client
        .put_records()
        .stream_name("f")
        .set_records(Some(batch(3)))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(e, SdkError::DispatchFailure(_) | SdkError::ResponseError(_)),
        "expected a transport error, got {e:?}"
    );
    assert!(emulator.records("f").is_empty());
    assert_eq!(emulator.stats().requests.dropped_connections, 1);
    emulator.set_faults(Faults::default());
    client
        .put_records()
        .stream_name("f")
        .set_records(Some(batch(3)))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalls_last_for_a_duration_or_until_cleared() {
    let emulator = emulator().await;
    let options = ClientOptions {
        attempt_timeout: Some(Duration::from_millis(300)),
        ..ClientOptions::default()
    };
    // The impatient client shows a request stalled; the patient one (no
    // timeout) is used where an answer is expected, so a slow machine
    // cannot turn a success into a timeout.
    let impatient = kinesis_with(&emulator.endpoint(), options);
    let patient = kinesis_with(
        &emulator.endpoint(),
        ClientOptions {
            attempt_timeout: Some(Duration::from_secs(30)),
            ..ClientOptions::default()
        },
    );
    patient.list_streams().send().await.unwrap();

    emulator.set_faults(Faults {
        stall: Some(Stall::UntilCleared),
        ..Faults::default()
    });
    let e = impatient.list_streams().send().await.unwrap_err();
    assert!(matches!(e, SdkError::TimeoutError(_)), "{e:?}");
    emulator.set_faults(Faults::default());
    patient.list_streams().send().await.unwrap();

    // A timed stall: a request that comes during it is answered once it
    // ends, not before.
    let stalled_at = Instant::now();
    emulator.set_faults(Faults {
        stall: Some(Stall::ForMillis(3000)),
        ..Faults::default()
    });
    let e = impatient.list_streams().send().await.unwrap_err();
    assert!(matches!(e, SdkError::TimeoutError(_)), "{e:?}");
    // Answered once the 3 s are over, not before (a stall without end would
    // time out).
    patient.list_streams().send().await.unwrap();
    let waited = stalled_at.elapsed();
    assert!(waited >= Duration::from_millis(2900), "{waited:?}");
    assert!(emulator.stats().requests.stalled >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_credentials_are_refused_per_access_key() {
    let emulator = emulator().await;
    emulator.set_faults(Faults {
        expired_access_key_ids: vec!["AKIDEXPIRED".into()],
        ..Faults::default()
    });
    let expired = kinesis_with(
        &emulator.endpoint(),
        ClientOptions {
            access_key: Some("AKIDEXPIRED".into()),
            ..ClientOptions::default()
        },
    );
    let e = expired.list_streams().send().await.unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("ExpiredTokenException"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
    kinesis(&emulator.endpoint())
        .list_streams()
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_limits_and_stats_over_the_admin_endpoint() {
    let emulator = emulator().await;
    let (status, body) = admin(
        &emulator,
        "PUT",
        "/_emulator/faults",
        r#"{"internal_error_probability": 1.0}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(emulator.faults().internal_error_probability, 1.0);
    let e = kinesis(&emulator.endpoint())
        .list_streams()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error_code(&e).as_deref(), Some("InternalFailure"));
    let (status, _) = admin(&emulator, "PUT", "/_emulator/faults", "{}").await;
    assert_eq!(status, 200);
    let (status, _) = admin(&emulator, "PUT", "/_emulator/faults", r#"{"bogus": 1}"#).await;
    assert_eq!(status, 400);

    let (status, _) = admin(
        &emulator,
        "PUT",
        "/_emulator/limits",
        r#"{"bytes_per_second": 10, "records_per_second": 10}"#,
    )
    .await;
    assert_eq!(status, 200);
    let e = kinesis(&emulator.endpoint())
        .put_record()
        .stream_name("f")
        .partition_key("k")
        .data(blob(vec![0; 100]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        error_code(&e).as_deref(),
        Some("ProvisionedThroughputExceededException")
    );
    let (status, body) = admin(&emulator, "GET", "/_emulator/stats", "").await;
    assert_eq!(status, 200);
    let stats: shardline_emulator::Stats = serde_json::from_str(&body).unwrap();
    assert_eq!(stats.streams["f"].throttled_records, 1);
    assert_eq!(stats.requests.injected_internal_errors, 1);
    let (status, body) = admin(&emulator, "GET", "/_emulator/records/f", "").await;
    assert_eq!((status, body.as_str()), (200, "[]"));
}

async fn admin(emulator: &Emulator, method: &str, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(emulator.local_addr())
        .await
        .unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).await.unwrap();
    (
        answer[9..12].parse().unwrap(),
        answer.split_once("\r\n\r\n").unwrap().1.to_owned(),
    )
}
