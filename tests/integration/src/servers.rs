//! Starting and stopping the third-party local servers (kinesalite,
//! kinesis-mock, moto) on free loopback ports.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// The repository root (two levels above this crate's manifest).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .and_then(Path::parent)
        .expect("tests/integration has a grandparent")
        .to_path_buf()
}

/// The Python interpreter with the test dependencies: `$SHARDLINE_PYTHON`,
/// else `<repo>/.venv/bin/python`. Panics if neither exists.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SHARDLINE_PYTHON").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    panic!(
        "no Python with the test dependencies: {} does not exist and SHARDLINE_PYTHON is unset; \
         run scripts/setup-test-deps.sh",
        venv.display()
    );
}

/// The `node` executable: `$SHARDLINE_NODE`, else `node` from `PATH`.
fn node() -> PathBuf {
    std::env::var_os("SHARDLINE_NODE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("node"))
}

fn servers_dir() -> PathBuf {
    repo_root().join("tests/servers")
}

fn require_node_modules(what: &str) -> PathBuf {
    let p = servers_dir().join("node_modules").join(what);
    assert!(
        p.exists(),
        "{} is missing; run scripts/setup-test-deps.sh",
        p.display()
    );
    p
}

/// How long to wait for a server to answer after spawning it
/// (`$SHARDLINE_SERVER_START_TIMEOUT_SECS`, default 60 s: the machine is shared).
fn start_timeout() -> Duration {
    let secs = std::env::var("SHARDLINE_SERVER_START_TIMEOUT_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// A free TCP port on 127.0.0.1 (bound then released; a small race remains,
/// which `LocalServer::start` covers by retrying on early exit).
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Which third-party server to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKind {
    /// kinesalite (npm), in memory, started by `tests/servers/kinesalite.js`.
    Kinesalite,
    /// kinesis-mock (npm `kinesis-local`), with the given streams
    /// (`INITIALIZE_STREAMS`) created at startup. They start in CREATING:
    /// call `wait_for_stream_active` before using them.
    KinesisMock {
        /// `(stream name, shard count)` pairs.
        initial_streams: Vec<(String, u32)>,
    },
    /// moto's server (PyPI `moto[server]`), all services on one port.
    Moto,
}

impl ServerKind {
    fn name(&self) -> &'static str {
        match self {
            ServerKind::Kinesalite => "kinesalite",
            ServerKind::KinesisMock { .. } => "kinesis-mock",
            ServerKind::Moto => "moto",
        }
    }
}

/// A running local server. Dropping it kills the whole process group and
/// reaps the process (also when the test panics).
#[derive(Debug)]
pub struct LocalServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// kinesis-mock only: `https://127.0.0.1:PORT` (self-signed certificate
    /// from the package's `server.json`).
    pub tls_endpoint: Option<String>,
    /// How long the server took from spawn until it answered HTTP.
    pub startup: Duration,
    kind: ServerKind,
    child: Option<Child>,
    // Held open so that the launcher's stdin-EOF watch fires if this process dies.
    stdin: Option<ChildStdin>,
    logs: TempDir,
}

/// kinesalite.
#[derive(Debug)]
pub struct Kinesalite;
impl Kinesalite {
    /// Starts kinesalite on a free loopback port.
    pub fn start() -> LocalServer {
        LocalServer::start(ServerKind::Kinesalite)
    }
}

/// kinesis-mock.
#[derive(Debug)]
pub struct KinesisMock;
impl KinesisMock {
    /// Starts kinesis-mock with `(name, shards)` streams created at startup.
    pub fn start(initial_streams: &[(&str, u32)]) -> LocalServer {
        LocalServer::start(ServerKind::KinesisMock {
            initial_streams: initial_streams
                .iter()
                .map(|(n, s)| ((*n).to_owned(), *s))
                .collect(),
        })
    }
}

/// moto.
#[derive(Debug)]
pub struct Moto;
impl Moto {
    /// Starts moto's server on a free loopback port.
    pub fn start() -> LocalServer {
        LocalServer::start(ServerKind::Moto)
    }
}

struct Spawned {
    child: Child,
    stdin: Option<ChildStdin>,
    port: Option<u16>,
    tls_port: Option<u16>,
}

impl LocalServer {
    /// Starts `kind` on free loopback port(s) and waits until it answers HTTP.
    /// Panics with the server's output if it does not answer in time.
    pub fn start(kind: ServerKind) -> LocalServer {
        let mut logs = tempfile::Builder::new()
            .prefix(&format!("shardline-{}-", kind.name()))
            .tempdir()
            .expect("tempdir");
        let mut last_err = String::new();
        // A port picked by `free_port` can be taken before the server binds it:
        // retry a few times when the server exits early.
        for attempt in 0..3 {
            let spawned = spawn(&kind, logs.path());
            let mut server = LocalServer {
                endpoint: String::new(),
                tls_endpoint: spawned.tls_port.map(|p| format!("https://127.0.0.1:{p}")),
                startup: Duration::ZERO,
                kind: kind.clone(),
                child: Some(spawned.child),
                stdin: spawned.stdin,
                logs,
            };
            match server.wait_ready(spawned.port) {
                Ok(()) => return server,
                Err(e) => {
                    last_err = format!("attempt {}: {e}\n{}", attempt + 1, server.output());
                    let exited = e.starts_with("exited");
                    server.stop();
                    logs = std::mem::replace(&mut server.logs, TempDir::new().expect("tempdir"));
                    if !exited {
                        break;
                    }
                }
            }
        }
        panic!("{} did not start:\n{last_err}", kind.name());
    }

    /// Which server this is.
    pub fn kind(&self) -> &ServerKind {
        &self.kind
    }

    /// The process id of the server (also its process group id).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server's stdout and stderr so far (for failure messages).
    pub fn output(&self) -> String {
        let read =
            |name: &str| std::fs::read_to_string(self.logs.path().join(name)).unwrap_or_default();
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.kind.name(),
            tail(&read("stdout"), 8000),
            self.kind.name(),
            tail(&read("stderr"), 8000)
        )
    }

    fn wait_ready(&mut self, port: Option<u16>) -> Result<(), String> {
        let t0 = Instant::now();
        let deadline = t0 + start_timeout();
        let mut port = port;
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!("exited early with {status}"));
            }
            if port.is_none() {
                // kinesalite.js with port 0 prints the port it got.
                let out =
                    std::fs::read_to_string(self.logs.path().join("stdout")).unwrap_or_default();
                port = out
                    .lines()
                    .find_map(|l| l.strip_prefix("listening http://127.0.0.1:"))
                    .and_then(|p| p.trim().parse().ok());
            }
            if let Some(p) = port {
                let tls_ok = match &self.tls_endpoint {
                    Some(url) => {
                        let tls_port: u16 = url
                            .rsplit(':')
                            .next()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0);
                        TcpStream::connect_timeout(
                            &SocketAddr::from((Ipv4Addr::LOCALHOST, tls_port)),
                            Duration::from_millis(500),
                        )
                        .is_ok()
                    }
                    None => true,
                };
                if tls_ok && http_answers(p) {
                    self.endpoint = format!("http://127.0.0.1:{p}");
                    self.startup = t0.elapsed();
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(format!("no HTTP answer within {:?}", start_timeout()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the server now (what Drop does): kinesis-mock gets SIGKILL (it
    /// ignores SIGTERM for a long time after serving HTTPS); others get
    /// SIGTERM, then SIGKILL after 5 s. The whole process group is signalled
    /// and the process is reaped.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        drop(self.stdin.take());
        let pgid = child.id() as libc::pid_t;
        if let Ok(Some(_)) = child.try_wait() {
            // Already exited and reaped; its group may still hold stragglers,
            // but the pgid could be reused now, so don't signal it.
            return;
        }
        let graceful = !matches!(self.kind, ServerKind::KinesisMock { .. });
        if graceful {
            killpg(pgid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                match child.try_wait() {
                    // Exited and reaped. None of these servers forks helpers
                    // that outlive it, and once the leader is reaped its pgid
                    // may be reused, so the group is not signalled again.
                    Ok(Some(_)) => return,
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
        killpg(pgid, libc::SIGKILL);
        let _ = child.wait();
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn killpg(pgid: libc::pid_t, sig: libc::c_int) {
    if pgid > 1 {
        // SAFETY: plain syscall on a process group we created (the child called
        // setpgid(0, 0) via `process_group(0)`) and have not reaped yet.
        unsafe {
            libc::killpg(pgid, sig);
        }
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// True if something on 127.0.0.1:`port` answers an HTTP request.
fn http_answers(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let body = "{}";
    let req = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: Kinesis_20131202.ListStreams\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok() && &buf == b"HTTP/"
}

fn spawn(kind: &ServerKind, logs: &Path) -> Spawned {
    let stdout = File::create(logs.join("stdout")).expect("create stdout log");
    let stderr = File::create(logs.join("stderr")).expect("create stderr log");
    let (mut cmd, port, tls_port) = match kind {
        ServerKind::Kinesalite => {
            require_node_modules("kinesalite");
            let mut cmd = Command::new(node());
            cmd.arg(servers_dir().join("kinesalite.js")).arg("0");
            (cmd, None, None)
        }
        ServerKind::KinesisMock { initial_streams } => {
            let pkg = require_node_modules("kinesis-local");
            let (port, tls_port) = (free_port(), free_port());
            let mut cmd = Command::new(node());
            cmd.arg("-r")
                .arg(servers_dir().join("loopback.js"))
                .arg(pkg.join("main.js"))
                .env("KINESIS_MOCK_PLAIN_PORT", port.to_string())
                .env("KINESIS_MOCK_TLS_PORT", tls_port.to_string())
                .env("KINESIS_MOCK_CERT_PATH", pkg.join("server.json"))
                .env("AWS_REGION", "us-east-1")
                .env_remove("AWS_ACCOUNT_ID")
                .env("SHARD_LIMIT", "1000")
                .env("ON_DEMAND_STREAM_COUNT_LIMIT", "100")
                .env("SHOULD_PERSIST_DATA", "false")
                .env("LOAD_DATA_IF_EXISTS", "false")
                .env("PERSIST_PATH", logs.join("data"))
                .env(
                    "LOG_LEVEL",
                    std::env::var("SHARDLINE_KINESIS_MOCK_LOG_LEVEL")
                        .unwrap_or_else(|_| "WARN".into()),
                );
            for var in [
                "CREATE_STREAM_DURATION",
                "DELETE_STREAM_DURATION",
                "REGISTER_STREAM_CONSUMER_DURATION",
                "DEREGISTER_STREAM_CONSUMER_DURATION",
                "START_STREAM_ENCRYPTION_DURATION",
                "STOP_STREAM_ENCRYPTION_DURATION",
                "MERGE_SHARDS_DURATION",
                "SPLIT_SHARD_DURATION",
                "UPDATE_SHARD_COUNT_DURATION",
                "UPDATE_STREAM_MODE_DURATION",
            ] {
                cmd.env(var, "100ms");
            }
            if initial_streams.is_empty() {
                cmd.env_remove("INITIALIZE_STREAMS");
            } else {
                let list: Vec<String> = initial_streams
                    .iter()
                    .map(|(n, s)| format!("{n}:{s}"))
                    .collect();
                cmd.env("INITIALIZE_STREAMS", list.join(","));
            }
            (cmd, Some(port), Some(tls_port))
        }
        ServerKind::Moto => {
            let port = free_port();
            let mut cmd = Command::new(python());
            cmd.arg(servers_dir().join("moto_server.py"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env("PYTHONUNBUFFERED", "1");
            (cmd, Some(port), None)
        }
    };
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let child = cmd
        .current_dir(logs)
        .env("SHARDLINE_EXIT_ON_STDIN_EOF", "1")
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", cmd.get_program()));
    let mut child = child;
    let stdin = child.stdin.take();
    Spawned {
        child,
        stdin,
        port,
        tls_port,
    }
}
