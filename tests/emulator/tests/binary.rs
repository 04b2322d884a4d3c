//! The `shardline-emulator` binary: announces its listeners, serves, and
//! exits when its stdin closes or on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_exit(child: &mut std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the emulator did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn prints_listeners_and_exits_when_stdin_closes() {
    let dir = tempfile::tempdir().unwrap();
    let pem = dir.path().join("cert.pem");
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardline-emulator"))
        .args([
            "--stream",
            "a:3",
            "--delivery-stream",
            "d",
            "--exit-on-stdin-close",
            "--tls-port",
            "0",
            "--cert-out",
        ])
        .arg(&pem)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let http = lines.next().unwrap().unwrap();
    let https = lines.next().unwrap().unwrap();
    assert!(http.starts_with("listening http://127.0.0.1:"), "{http}");
    assert!(https.starts_with("listening https://127.0.0.1:"), "{https}");
    assert!(
        std::fs::read_to_string(&pem)
            .unwrap()
            .contains("BEGIN CERTIFICATE")
    );

    // It serves: the stream from the command line has three shards.
    let addr = http.trim_start_matches("listening http://");
    let stats = http_get(addr, "/_emulator/stats");
    let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        stats["streams"]["a"]["shards"].as_object().unwrap().len(),
        3
    );

    drop(child.stdin.take());
    assert!(wait_exit(&mut child).success());
}

#[test]
fn exits_cleanly_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shardline-emulator"))
        .args(["--no-limits"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines
            .next()
            .unwrap()
            .unwrap()
            .starts_with("listening http://127.0.0.1:")
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(wait_exit(&mut child).success());
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).unwrap();
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    socket.read_to_string(&mut answer).unwrap();
    answer.split_once("\r\n\r\n").unwrap().1.to_owned()
}
