//! Helpers shared by the agent's integration tests: an emulator, an
//! agent.json in a temporary directory, the built binary as a child
//! process, and readers that turn what the emulator stored back into lines.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use shardline_emulator::Emulator;

/// A test's working directory, config and agent process.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    /// Writes agent.json with `flows` (a JSON list) pointing at `emulator`.
    pub fn new(emulator: &Emulator, flows: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("agent.json");
        let endpoint = emulator.endpoint();
        let text = format!(
            r#"{{
  "checkpointFile": "{}",
  "kinesis.endpoint": "{endpoint}",
  "firehose.endpoint": "{endpoint}",
  "awsAccessKeyId": "AKIDTEST",
  "awsSecretAccessKey": "test-secret",
  "shutdownTimeoutMillis": 5000,
  "flows": {flows}
}}"#,
            dir.path().join("checkpoints").display()
        );
        std::fs::write(&config, text).unwrap();
        Setup { dir, config }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the agent; its stderr goes to `agent-N.log` in the directory.
    pub fn start_agent(&self, run: usize) -> Child {
        let log = File::create(self.path(&format!("agent-{run}.log"))).unwrap();
        Command::new(env!("CARGO_BIN_EXE_shardline-agent"))
            .arg("--config")
            .arg(&self.config)
            .args([
                "--status-interval-ms",
                "500",
                "--checkpoint-interval-ms",
                "100",
            ])
            .arg("--metrics-file")
            .arg(self.path("metrics.json"))
            .env("SHARDLINE_AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn agent_log(&self, run: usize) -> String {
        std::fs::read_to_string(self.path(&format!("agent-{run}.log"))).unwrap_or_default()
    }
}

/// Asks the agent to stop (SIGTERM) and waits for it.
pub fn stop(mut child: Child) {
    // SAFETY: kill(2) with a pid we own and a valid signal number.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    panic!("the agent did not stop within 15 s of SIGTERM");
}

/// Appends `lines` to `path`, one write per line.
pub fn append(path: &Path, lines: impl IntoIterator<Item = String>) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for line in lines {
        file.write_all(line.as_bytes()).unwrap();
        file.write_all(b"\n").unwrap();
    }
}

/// Lines as stored in a Kinesis stream (aggregates taken apart).
pub fn stream_lines(emulator: &Emulator, stream: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for r in emulator.records(stream) {
        for user in shardline::aggregation::deaggregate(
            &r.partition_key,
            r.explicit_hash_key.as_deref(),
            &r.data,
        )
        .unwrap()
        {
            lines.push(String::from_utf8(user.data.to_vec()).unwrap());
        }
    }
    lines
}

/// Lines delivered to a Firehose delivery stream (each record is a line
/// plus `\n`).
pub fn delivered_lines(emulator: &Emulator, delivery_stream: &str) -> Vec<String> {
    emulator
        .delivered(delivery_stream)
        .into_iter()
        .map(|b| {
            let text = String::from_utf8(b.to_vec()).unwrap();
            text.strip_suffix('\n')
                .unwrap_or_else(|| panic!("firehose record without newline: {text:?}"))
                .to_owned()
        })
        .collect()
}

pub fn counts(lines: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for l in lines {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    counts
}

/// Waits until `done` or `timeout`; returns whether it happened.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// Asserts that `got` holds each of `expected` exactly once.
pub fn assert_exactly_once(got: &[String], expected: &[String], what: &str, log: &str) {
    let counts = counts(got);
    let missing: Vec<_> = expected
        .iter()
        .filter(|l| !counts.contains_key(l.as_str()))
        .collect();
    let dups: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        missing.is_empty() && dups.is_empty() && got.len() == expected.len(),
        "{what}: {} expected, {} got, {} missing (first {:?}), {} duplicated (first {:?})\nagent log:\n{log}",
        expected.len(),
        got.len(),
        missing.len(),
        missing.first(),
        dups.len(),
        dups.first()
    );
}
