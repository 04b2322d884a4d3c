//! A malformed agent.json stops the agent at start with a message naming
//! the key; unknown keys only warn; secrets never show.

use std::process::Command;

fn run(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.json");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shardline-agent"))
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.code(), text)
}

fn flow(extra: &str) -> String {
    format!(
        r#"{{"awsAccessKeyId":"AKIDPLANTED","awsSecretAccessKey":"PLANTED-SECRET",
            "flows":[{{"filePattern":"/tmp/x.log*","kinesisStream":"s"{extra}}}]}}"#
    )
}

#[test]
fn invalid_values_fail_naming_the_key() {
    for (extra, key) in [
        (
            r#","maxBufferAgeMillis":"soon""#,
            "flows[0].maxBufferAgeMillis",
        ),
        (
            r#","maxBufferSizeRecords":1000"#,
            "flows[0].maxBufferSizeRecords",
        ),
        (
            r#","partitionKeyOption":"ROUND_ROBIN""#,
            "flows[0].partitionKeyOption",
        ),
        (r#","initialPosition":"NOW""#, "flows[0].initialPosition"),
        (
            r#","multiLineStartPattern":"[""#,
            "flows[0].multiLineStartPattern",
        ),
        (
            r#","dataProcessingOptions":[{"optionName":"LOGTOJSON","logFormat":"IIS"}]"#,
            "flows[0].dataProcessingOptions[0].logFormat",
        ),
        (
            r#","shardline.producer":{"max_connections":0}"#,
            "flows[0].shardline.producer.max_connections",
        ),
    ] {
        let (code, text) = run(&flow(extra));
        assert_eq!(code, Some(2), "{extra}: {text}");
        assert!(text.contains(&format!("{key}:")), "{extra}: {text}");
        assert!(!text.contains("PLANTED-SECRET"), "{text}");
    }
    let (code, text) = run(r#"{"flows":[{"filePattern":"/tmp/x"}]}"#);
    assert_eq!(code, Some(2));
    assert!(text.contains("flows[0].kinesisStream:"), "{text}");
    let (code, text) = run("{ not json");
    assert_eq!(code, Some(2));
    assert!(text.contains("not valid JSON"), "{text}");
}

#[test]
fn unknown_keys_warn_and_valid_configs_pass() {
    let (code, text) = run(&flow(r#","filePatern":"typo""#));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("flows[0].filePatern: unknown key"), "{text}");
    assert!(text.contains("ok, 1 flow(s)"), "{text}");
    assert!(!text.contains("PLANTED-SECRET"), "{text}");
}
