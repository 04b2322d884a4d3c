//! A stream the service refuses (here: it does not exist yet, so
//! ListShards and every put fail with ResourceNotFoundException) holds the
//! agent's records instead of skipping them: once the stream exists, every
//! line arrives, and none was checkpointed past before.

mod common;

use std::time::Duration;

use common::*;
use shardline_emulator::{Emulator, EmulatorConfig};

#[test]
fn a_refused_stream_holds_records_until_it_takes_them() {
    let emulator = Emulator::start_in_background(EmulatorConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let first: Vec<String> = (0..300).map(|i| format!("early {i:04}")).collect();
    append(&log, first.clone());
    let setup = Setup::new(
        &emulator,
        &format!(
            r#"[{{"filePattern": "{}", "kinesisStream": "late", "initialPosition": "START_OF_FILE",
                 "maxBufferAgeMillis": 50}}]"#,
            log.display()
        ),
    );
    let agent = setup.start_agent(0);
    // Refused, held, and nothing new read meanwhile.
    let refused = wait_until(Duration::from_secs(20), || {
        setup
            .agent_log(0)
            .contains("refused records for the whole stream")
    });
    assert!(refused, "no refusal logged\n{}", setup.agent_log(0));
    let second: Vec<String> = (0..200).map(|i| format!("late {i:04}")).collect();
    append(&log, second.clone());
    std::thread::sleep(Duration::from_secs(1));
    emulator.create_stream("late", 2);
    let expected: Vec<String> = first.into_iter().chain(second).collect();
    let arrived = wait_until(Duration::from_secs(40), || {
        stream_lines(&emulator, "late").len() >= expected.len()
    });
    std::thread::sleep(Duration::from_millis(600)); // one more status line
    stop(agent);
    let log_text = setup.agent_log(0);
    assert!(arrived, "not everything arrived\n{log_text}");
    assert_exactly_once(
        &stream_lines(&emulator, "late"),
        &expected,
        "kinesis",
        &log_text,
    );
    assert!(
        log_text.contains("failed=0"),
        "refused records were counted as failed\n{log_text}"
    );
}
