//! With the emulator's shard limits on, the agent is slowed down (the
//! producer is throttled and retries) but loses nothing.

mod common;

use std::time::{Duration, Instant};

use common::*;
use shardline_emulator::{Emulator, EmulatorConfig, ShardLimits};

#[test]
fn throttling_slows_the_agent_without_loss() {
    // One shard at 64 KiB/s: 200 KiB of lines take about three seconds.
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .with_stream("s", 1)
            .with_shard_limits(Some(ShardLimits {
                bytes_per_second: 64 * 1024,
                records_per_second: 1000,
            })),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let expected: Vec<String> = (0..2000)
        .map(|i| format!("{i:06} {}", "x".repeat(93)))
        .collect();
    append(&log, expected.clone());
    let setup = Setup::new(
        &emulator,
        &format!(
            r#"[{{"filePattern": "{}", "kinesisStream": "s", "initialPosition": "START_OF_FILE",
                 "maxBufferAgeMillis": 50,
                 "shardline.producer": {{"rate_limit": 300, "min_backoff": 50, "max_backoff": 500}}}}]"#,
            log.display()
        ),
    );
    let started = Instant::now();
    let agent = setup.start_agent(0);
    let arrived = wait_until(Duration::from_secs(20), || {
        stream_lines(&emulator, "s").len() >= expected.len()
    });
    let took = started.elapsed();
    std::thread::sleep(Duration::from_millis(600)); // one more status line
    stop(agent);
    let log_text = setup.agent_log(0);
    assert!(arrived, "not everything arrived\n{log_text}");
    assert_exactly_once(
        &stream_lines(&emulator, "s"),
        &expected,
        "kinesis",
        &log_text,
    );
    // 200 KB at 64 KiB/s cannot take less than ~2 s (the first second's
    // quota is free).
    assert!(
        took >= Duration::from_secs(2),
        "took only {took:?}: not throttled?"
    );
    let throttled: u64 = emulator.stats().streams["s"]
        .shards
        .values()
        .map(|s| s.throttled_records)
        .sum();
    assert!(throttled > 0, "the emulator never throttled\n{log_text}");
    let metrics = std::fs::read_to_string(setup.path("metrics.json")).unwrap();
    assert!(metrics.contains("\"Throttled\""), "{metrics}");
}
