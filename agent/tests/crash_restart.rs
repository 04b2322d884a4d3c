//! `kill -9` in the middle of a stream, then a restart: every line arrives,
//! and only lines past the last checkpoint (the unacknowledged tail) may
//! arrive twice.

mod common;

use std::time::Duration;

use common::*;
use shardline_emulator::{Emulator, EmulatorConfig, Faults, Stall};

/// Fixed-width lines, so a checkpoint offset tells which lines it covers.
fn line(i: usize) -> String {
    format!("line-{i:07}") // 12 bytes + '\n'
}
const LINE_BYTES: u64 = 13;

#[test]
fn kill_9_then_restart_loses_nothing() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .with_stream("s", 2)
            .without_limits(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    std::fs::File::create(&log).unwrap();
    let setup = Setup::new(
        &emulator,
        &format!(
            r#"[{{"filePattern": "{}", "kinesisStream": "s", "partitionKeyOption": "DETERMINISTIC", "initialPosition": "START_OF_FILE",
                 "maxBufferAgeMillis": 50, "minTimeBetweenFilePollsMillis": 20}}]"#,
            log.display()
        ),
    );
    let total = 6000;
    let mut agent = setup.start_agent(0);
    // A writer that appends the first half, waits for the kill, then appends
    // the rest while the agent is down: the kill falls mid-stream by
    // construction, however slowly the machine runs.
    let (killed_tx, killed_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for (n, chunk) in (0..total).collect::<Vec<_>>().chunks(200).enumerate() {
                if n == total / 200 / 2 {
                    killed_rx.recv().unwrap();
                }
                append(&log, chunk.iter().map(|&i| line(i)));
                std::thread::sleep(Duration::from_millis(40));
            }
        })
    };
    // What the agent has checkpointed: every line below this offset was
    // delivered.
    let checkpointed = || -> Option<u64> {
        let checkpoint: serde_json::Value =
            serde_json::from_slice(&std::fs::read(setup.path("checkpoints")).ok()?).ok()?;
        checkpoint["flows"].as_object()?.values().next()?[0]["offset"].as_u64()
    };
    let progressed = wait_until(Duration::from_secs(30), || {
        checkpointed().is_some_and(|offset| offset > 0)
    });
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    killed_tx.send(()).unwrap(); // the rest is written while it is down
    assert!(progressed, "nothing was checkpointed before the kill");
    let offset = checkpointed().unwrap();
    let acknowledged = (offset / LINE_BYTES) as usize;
    assert!(acknowledged > 0, "nothing was checkpointed before the kill");

    let agent = setup.start_agent(1);
    writer.join().unwrap();
    let expected: Vec<String> = (0..total).map(line).collect();
    let arrived = wait_until(Duration::from_secs(15), || {
        let got = counts_owned(&stream_lines(&emulator, "s"));
        expected.iter().all(|l| got.contains_key(l))
    });
    stop(agent);
    let log_text = format!(
        "{}\n--- restart ---\n{}",
        setup.agent_log(0),
        setup.agent_log(1)
    );
    assert!(arrived, "lines missing after the restart\n{log_text}");
    let got = stream_lines(&emulator, "s");
    let counts = counts(&got);
    for (i, l) in expected.iter().enumerate() {
        let n = counts.get(l.as_str()).copied().unwrap_or(0);
        assert!(n >= 1, "{l} missing");
        if i < acknowledged {
            assert_eq!(
                n, 1,
                "{l} was checkpointed as delivered but sent again\n{log_text}"
            );
        }
    }
    assert!(
        setup.agent_log(1).contains("resuming from checkpoint"),
        "{log_text}"
    );
}

fn counts_owned(lines: &[String]) -> std::collections::HashMap<String, usize> {
    let mut m = std::collections::HashMap::new();
    for l in lines {
        *m.entry(l.clone()).or_default() += 1;
    }
    m
}

/// A restart with a backlog larger than the producer's buffer, against a
/// stream that does not answer: the flow's first batch blocks at once. The
/// checkpoint file must keep what the last run saved meanwhile, so a crash
/// then does not send everything again.
#[test]
fn a_restart_blocked_at_once_keeps_the_checkpoint() {
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .with_stream("s", 1)
            .without_limits(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let first: Vec<String> = (0..100).map(line).collect();
    append(&log, first.clone());
    let setup = Setup::new(
        &emulator,
        &format!(
            r#"[{{"filePattern": "{}", "kinesisStream": "s", "initialPosition": "START_OF_FILE",
                 "maxBufferAgeMillis": 50,
                 "shardline.producer": {{"max_buffered_bytes": 16384}}}}]"#,
            log.display()
        ),
    );
    let saved_offset = || -> Option<u64> {
        let checkpoint: serde_json::Value =
            serde_json::from_slice(&std::fs::read(setup.path("checkpoints")).ok()?).ok()?;
        checkpoint["flows"].as_object()?.values().next()?[0]["offset"].as_u64()
    };
    let agent = setup.start_agent(0);
    let done = wait_until(Duration::from_secs(20), || {
        saved_offset() == Some(first.len() as u64 * LINE_BYTES)
    });
    stop(agent);
    assert!(
        done,
        "the first lines were not checkpointed\n{}",
        setup.agent_log(0)
    );

    let backlog: Vec<String> = (100..5000).map(line).collect();
    append(&log, backlog.clone());
    emulator.set_faults(Faults {
        stall: Some(Stall::UntilCleared),
        ..Faults::default()
    });
    let mut agent = setup.start_agent(1);
    // Checkpoints are saved every 100 ms; the flow is blocked all along.
    std::thread::sleep(Duration::from_millis(1500));
    let during = saved_offset();
    agent.kill().unwrap(); // SIGKILL
    agent.wait().unwrap();
    emulator.set_faults(Faults::default());
    assert_eq!(
        during,
        Some(first.len() as u64 * LINE_BYTES),
        "the blocked run lost the checkpoint\n{}",
        setup.agent_log(1)
    );

    let agent = setup.start_agent(2);
    let expected: Vec<String> = first.into_iter().chain(backlog).collect();
    let arrived = wait_until(Duration::from_secs(30), || {
        stream_lines(&emulator, "s").len() >= expected.len()
    });
    stop(agent);
    let log_text = format!(
        "{}\n--- restart ---\n{}",
        setup.agent_log(1),
        setup.agent_log(2)
    );
    assert!(arrived, "lines missing after the restart\n{log_text}");
    // Nothing was stored while the endpoint stalled: once each.
    assert_exactly_once(
        &stream_lines(&emulator, "s"),
        &expected,
        "kinesis",
        &log_text,
    );
}
