//! Lines appended while the agent runs all arrive, exactly once, across
//! rename-and-create and copytruncate rotations, on a Kinesis stream and a
//! Firehose delivery stream at once.

mod common;

use std::time::Duration;

use common::*;
use shardline_emulator::{Emulator, EmulatorConfig};

fn flows(pattern: &str) -> String {
    format!(
        r#"[
  {{"filePattern": "{pattern}", "kinesisStream": "s", "partitionKeyOption": "RANDOM",
    "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 50,
    "minTimeBetweenFilePollsMillis": 20}},
  {{"filePattern": "{pattern}", "deliveryStream": "d",
    "initialPosition": "START_OF_FILE", "maxBufferAgeMillis": 50,
    "minTimeBetweenFilePollsMillis": 20}}
]"#
    )
}

fn batch(tag: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!(r#"{{"batch":"{tag}","i":{i}}}"#))
        .collect()
}

/// Writes `batches`, running `between` after each but the last, pausing so
/// the agent sees each stage; returns every line written.
fn run(rotate: impl Fn(&std::path::Path, usize)) {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .with_stream("s", 2)
            .with_delivery_stream("d")
            .without_limits(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("data.log");
    let setup = Setup::new(&emulator, &flows(&format!("{}*", log.display())));
    let mut expected = batch("before-start", 200);
    append(&log, expected.clone());
    let agent = setup.start_agent(0);
    for round in 0..3 {
        let lines = batch(&format!("round{round}"), 300);
        // Half before the rotation, half after, with a pause so some of the
        // first half is read before the rotation and some after.
        append(&log, lines[..150].to_vec());
        std::thread::sleep(Duration::from_millis(100));
        rotate(&log, round);
        append(&log, lines[150..].to_vec());
        expected.extend(lines);
        std::thread::sleep(Duration::from_millis(150));
    }
    let arrived = wait_until(Duration::from_secs(10), || {
        stream_lines(&emulator, "s").len() >= expected.len()
            && delivered_lines(&emulator, "d").len() >= expected.len()
    });
    // Give duplicates, if any, a moment to show.
    std::thread::sleep(Duration::from_millis(300));
    stop(agent);
    let log_text = setup.agent_log(0);
    assert!(arrived, "not everything arrived in time\n{log_text}");
    assert_exactly_once(
        &stream_lines(&emulator, "s"),
        &expected,
        "kinesis",
        &log_text,
    );
    assert_exactly_once(
        &delivered_lines(&emulator, "d"),
        &expected,
        "firehose",
        &log_text,
    );
    assert!(log_text.contains("status flow=kinesis:s:"), "{log_text}");
    let metrics = std::fs::read_to_string(setup.path("metrics.json")).unwrap();
    assert!(metrics.contains("\"UserRecordsPut\""), "{metrics}");
}

#[test]
fn rename_and_create_rotation_loses_nothing() {
    run(|log, round| {
        let rotated = log.with_extension(format!("log.{round}"));
        std::fs::rename(log, rotated).unwrap();
        std::fs::File::create(log).unwrap();
    });
}

#[test]
fn copytruncate_rotation_loses_nothing() {
    run(|log, round| {
        // What logrotate's copytruncate does: copy, then truncate in place.
        let rotated = log.with_extension(format!("log.{round}"));
        std::fs::copy(log, rotated).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(log)
            .unwrap()
            .set_len(0)
            .unwrap();
    });
}
