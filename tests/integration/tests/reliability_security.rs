//! Issue #10, part 6: TLS verification is on unless switched off, and
//! credentials never show in logs, `Debug`, errors or metrics.
//!
//! This file is its own test binary because it installs a global `tracing`
//! subscriber at TRACE that captures everything (the producer logs from
//! its own threads, so a thread-local subscriber would miss it).
//!
//! Run: `cargo test -p shardline-integration --test reliability_security`.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use shardline::{Config, FailureKind, Producer, UserRecord};
use shardline_emulator::{Emulator, EmulatorConfig, Faults};
use shardline_integration::local_config;

const SECRET: &str = "PLANTED-SECRET-a8f3e1d2c4b5";
const TOKEN: &str = "PLANTED-TOKEN-9b7c6d5e4f3a";
const KEY_ID: &str = "AKIDPLANTEDKEYID7";

/// Everything logged by any thread, at every level.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Capture(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("first subscriber");
        logs
    })
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn send_one(producer: &Producer, stream: &str) -> shardline::DeliveryResult {
    producer
        .send_blocking(stream, UserRecord::new("k", "payload"), None)
        .expect("accepted")
        .wait()
}

fn tls_emulator() -> Emulator {
    Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_tls()
            .with_stream("s", 1),
    )
    .unwrap()
}

/// Short enough to keep the failing cases quick, long enough that a record
/// gets at least one answer (and so its error code) on a stalled machine.
fn short(config: Config) -> Config {
    config
        .record_ttl(Duration::from_secs(4))
        .request_timeout(Duration::from_secs(2))
        .min_backoff(Duration::from_millis(20))
        .max_backoff(Duration::from_millis(100))
}

#[test]
fn tls_verification_refuses_an_unknown_certificate_by_default() {
    captured_logs();
    let emulator = tls_emulator();
    let endpoint = emulator.https_endpoint().unwrap();
    let producer = Producer::new(short(local_config(&endpoint))).unwrap();
    let err = send_one(&producer, "s").expect_err("a self-signed certificate is refused");
    assert_eq!(err.kind, FailureKind::Expired, "{err}");
    // The record never got a shard map: the map load's error is the reason.
    assert!(err.code.is_some(), "{err}");
    let reason = format!("{err} {:?}", err.attempts);
    assert!(
        reason.to_lowercase().contains("certificate"),
        "the failure says why: {reason}"
    );
    producer.close_blocking(None).unwrap();
    assert_eq!(emulator.stats().requests.total, 0, "nothing got through");
}

#[test]
fn tls_works_with_the_certificate_in_ca_bundle() {
    captured_logs();
    let emulator = tls_emulator();
    let endpoint = emulator.https_endpoint().unwrap();
    let mut pem = tempfile::NamedTempFile::new().unwrap();
    pem.write_all(emulator.cert_pem().unwrap().as_bytes())
        .unwrap();
    let producer = Producer::new(local_config(&endpoint).ca_bundle(pem.path())).unwrap();
    let report = send_one(&producer, "s").expect("trusted through ca_bundle");
    assert!(report.shard_id.is_some());
    producer.close_blocking(None).unwrap();
}

#[test]
fn tls_works_with_verification_switched_off() {
    captured_logs();
    let emulator = tls_emulator();
    let endpoint = emulator.https_endpoint().unwrap();
    let mut config = local_config(&endpoint);
    config.set("verify_certificate", "false").unwrap();
    let producer = Producer::new(config).unwrap();
    send_one(&producer, "s").expect("verification off");
    producer.close_blocking(None).unwrap();
}

#[test]
fn a_missing_ca_bundle_is_a_setup_error() {
    let err = Producer::new(local_config("https://127.0.0.1:1").ca_bundle("/no/such/ca.pem"))
        .expect_err("unreadable ca_bundle");
    assert!(matches!(err, shardline::Error::Setup(_)), "{err}");
    assert!(err.to_string().contains("/no/such/ca.pem"), "{err}");
}

/// A short-timeout config for `endpoint` carrying the planted credentials.
fn planted_config(endpoint: &str) -> Config {
    let mut config = short(local_config(endpoint));
    config.set("aws_access_key_id", KEY_ID).unwrap();
    config.set("aws_secret_access_key", SECRET).unwrap();
    config.set("aws_session_token", TOKEN).unwrap();
    config
}

#[test]
fn credentials_never_show_in_logs_debug_errors_or_metrics() {
    let logs = captured_logs();
    let mut shown = Vec::<String>::new();
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("s", 1),
    )
    .unwrap();
    let planted = || planted_config(&emulator.endpoint());

    // A working producer, then the same credentials refused as expired.
    let producer = Producer::new(planted()).unwrap();
    shown.push(format!("{:?}", send_one(&producer, "s")));
    emulator.set_faults(Faults {
        expired_access_key_ids: vec![KEY_ID.into()],
        ..Faults::default()
    });
    let expired = send_one(&producer, "s").expect_err("expired credentials");
    assert_eq!(expired.code.as_deref(), Some("ExpiredTokenException"));
    shown.push(format!("{expired} {expired:?}"));
    shown.push(format!(
        "{:?}",
        producer
            .send_blocking("no-such", UserRecord::new("k", "x"), None)
            .unwrap()
            .wait()
    ));
    shown.push(format!("{producer:?}"));
    shown.push(producer.metrics().to_json());
    shown.push(format!("{:?}", producer.metrics()));
    producer.close_blocking(None).unwrap();

    // An endpoint that refuses connections.
    let mut config = planted();
    config.set("endpoint_url", "http://127.0.0.1:1").unwrap();
    let producer = Producer::new(config).unwrap();
    shown.push(format!("{:?}", send_one(&producer, "s")));
    shown.push(producer.metrics().to_json());
    producer.close_blocking(None).unwrap();

    // Configuration: Debug, and errors about the secret keys.
    let mut config = planted();
    shown.push(format!("{config:?}"));
    shown.push(format!("{:?}", config.set("aws_secret_access_key", "")));
    shown.push(format!("{:?}", config.set("aws_session_token", "")));
    let mut bad = Config::new();
    shown.push(format!(
        "{:?}",
        bad.apply_properties(&format!("aws_secret_access_key = {SECRET}\nnonsense"))
    ));
    shown.push(format!(
        "{:?}",
        Config::new()
            .static_credentials(KEY_ID, SECRET, Some(TOKEN.into()))
            .ca_bundle("/no/such/file")
    ));
    shown.push(format!(
        "{:?}",
        Producer::new(planted().ca_bundle("/no/such/file")).map(|_| ())
    ));

    let logs = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(
        logs.len() > 10_000,
        "TRACE logging captured: {} bytes",
        logs.len()
    );
    // The access key id is an identifier, not a secret: the AWS SDK's own
    // TRACE events print it (its `Credentials` and config `Debug`), and
    // that is out of Shardline's hands. Shardline's outputs show only its
    // first four characters.
    let sdk_targets = [": aws_smithy_", ": aws_sigv4::", ": aws_sdk_"];
    for line in logs.lines().filter(|l| l.contains(KEY_ID)) {
        assert!(
            line.contains(" TRACE ")
                && sdk_targets.iter().any(|t| line.contains(t))
                && !line.contains(": shardline::"),
            "a log line other than the AWS SDK's TRACE shows the access key id: {line}"
        );
    }
    for (i, text) in shown.iter().enumerate() {
        assert!(!text.contains(KEY_ID), "output {i} shows the access key id");
    }
    shown.push(logs);
    for (i, text) in shown.iter().enumerate() {
        for planted in [SECRET, TOKEN] {
            if let Some(at) = text.find(planted) {
                let from = at.saturating_sub(300);
                panic!(
                    "output {i} shows a planted credential: ...{}...",
                    &text[from..(at + 60).min(text.len())]
                );
            }
        }
    }
}

/// Set in the child process that `credentials_never_show_in_panic_messages`
/// starts.
const PANIC_CHILD_ENV: &str = "SHARDLINE_SECURITY_PANIC_CHILD";

/// The panics `child_panics_with_planted_credentials` raises, each message
/// starting with its name, so the parent can tell that every one was printed.
const PANIC_SCENARIOS: &[&str] = &[
    "callback-after-success",
    "callback-after-failure",
    "unwrap-config-error",
    "unwrap-properties-error",
    "unwrap-producer-error",
    "unwrap-err-on-a-producer",
    "config-debug-in-message",
];

/// Panic messages and backtraces do not go through `tracing`: the panic
/// hook writes them to stderr. A child process (this binary again) runs
/// code that panics with planted credentials in reach, with full
/// backtraces, and its whole output is searched for them.
#[test]
fn credentials_never_show_in_panic_messages() {
    if std::env::var_os(PANIC_CHILD_ENV).is_some() {
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "child_panics_with_planted_credentials",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(PANIC_CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "full")
        .output()
        .expect("the child runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the child failed:\n{text}");
    assert!(text.contains("CHILD DONE"), "{text}");
    // The search means something only if every panic was printed.
    for scenario in PANIC_SCENARIOS {
        assert!(
            text.contains(&format!("scenario {scenario}")),
            "no panic message for {scenario}:\n{text}"
        );
    }
    assert!(
        text.matches("panicked at").count() >= PANIC_SCENARIOS.len(),
        "{text}"
    );
    assert!(text.contains("stack backtrace"), "{text}");
    for planted in [SECRET, TOKEN, KEY_ID] {
        if let Some(at) = text.find(planted) {
            let around = text.get(at.saturating_sub(300)..at + planted.len());
            panic!(
                "a panic shows a planted credential: ...{}",
                around.unwrap_or(&text)
            );
        }
    }
}

/// Runs only as the child of `credentials_never_show_in_panic_messages`.
#[test]
fn child_panics_with_planted_credentials() {
    if std::env::var_os(PANIC_CHILD_ENV).is_none() {
        return;
    }
    let emulator = Emulator::start_in_background(
        EmulatorConfig::default()
            .without_limits()
            .with_stream("s", 1),
    )
    .unwrap();
    let planted = || planted_config(&emulator.endpoint());
    // A panic on a thread of ours: the hook prints it, the join contains it.
    let panics_on_a_thread = |body: Box<dyn FnOnce() + Send>| {
        assert!(std::thread::spawn(body).join().is_err(), "it panicked");
    };

    // Delivery callbacks run on producer threads, which contain their
    // panics; the callbacks format what they have at hand.
    let config = planted();
    let producer = Producer::new(config.clone()).unwrap();
    let in_callback = config.clone();
    producer
        .send_blocking_with_callback(
            "s",
            UserRecord::new("k", "payload"),
            None,
            Box::new(move |result| {
                panic!("scenario callback-after-success: {result:?} with {in_callback:?}")
            }),
        )
        .unwrap();
    producer
        .flush_blocking(Some(Duration::from_secs(10)))
        .unwrap();
    emulator.set_faults(Faults {
        expired_access_key_ids: vec![KEY_ID.into()],
        ..Faults::default()
    });
    producer
        .send_blocking_with_callback(
            "s",
            UserRecord::new("k", "payload"),
            None,
            Box::new(move |result| {
                let err = result.expect_err("expired credentials");
                panic!("scenario callback-after-failure: {err} {err:?}")
            }),
        )
        .unwrap();
    producer
        .flush_blocking(Some(Duration::from_secs(10)))
        .unwrap();
    emulator.set_faults(Faults::default());
    send_one(&producer, "s").expect("the producer outlives its callbacks' panics");

    // Results unwrapped by the application: the panic prints their Debug.
    let mut config = planted();
    panics_on_a_thread(Box::new(move || {
        config
            .set("aws_secret_access_key", "")
            .expect("scenario unwrap-config-error");
    }));
    panics_on_a_thread(Box::new(|| {
        Config::new()
            .apply_properties(&format!(
                "aws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}\nnonsense"
            ))
            .expect("scenario unwrap-properties-error");
    }));
    let missing_ca = planted().ca_bundle("/no/such/file");
    panics_on_a_thread(Box::new(move || {
        Producer::new(missing_ca).expect("scenario unwrap-producer-error");
    }));
    let working = planted();
    panics_on_a_thread(Box::new(move || {
        // `expect_err` on `Ok` prints the value: the producer's `Debug`.
        Producer::new(working).expect_err("scenario unwrap-err-on-a-producer");
    }));
    let config = planted();
    panics_on_a_thread(Box::new(move || {
        panic!("scenario config-debug-in-message: {config:?}");
    }));

    producer.close_blocking(None).unwrap();
    println!("CHILD DONE");
}
