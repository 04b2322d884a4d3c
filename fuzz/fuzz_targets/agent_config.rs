//! The agent's agent.json parser, through
//! `shardline_agent::fuzzing::parse_config` (which also checks, for an
//! accepted file, what the rest of the agent takes for granted). Never a
//! panic; the outcome depends on the JSON value only, not on how it is
//! written (floats aside, below); a secret never shows in the message, the
//! warnings or `Debug`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shardline_agent::fuzzing::{ParsedConfig, parse_config};

/// Where agent.json can hold a secret, below the root or below a flow.
const ROOT_SECRETS: &[&str] = &["awsSecretAccessKey", "awsSessionToken"];
const PRODUCER_SECRETS: &[&str] = &["aws_secret_access_key", "aws_session_token"];

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let outcome = parse_config(text);
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    // Floats are left out: serde_json reads them to the nearest double only
    // approximately, so `656E36` and its rewriting `6.56e38` can be two
    // different numbers (and the agent takes no fractional values anyway).
    if !has_float(&value) {
        let rewritten = serde_json::to_string(&value).expect("a parsed value serializes");
        assert_eq!(
            parse_config(&rewritten),
            outcome,
            "the same JSON written differently"
        );
    }

    let shown = all_text(&outcome);
    for path in secret_places(&value) {
        let secret = value_text(value.pointer(&path).expect("found above"));
        if secret.is_empty() || !shown.contains(&secret) {
            continue;
        }
        // Not a leak if the text holds those characters whatever the
        // secret is (e.g. the secret "Secret" and the key name
        // "awsSecretAccessKey" in a message).
        let mut other = value.clone();
        *other.pointer_mut(&path).expect("found above") =
            Value::String("\u{1F512}".repeat(secret.chars().count()));
        let other_shown = all_text(&parse_config(&other.to_string()));
        assert!(
            other_shown.contains(&secret),
            "the secret at {path} shows: {shown}"
        );
    }
});

/// JSON pointers to every value agent.json treats as a secret.
fn secret_places(root: &Value) -> Vec<String> {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    let mut places: Vec<String> = ROOT_SECRETS.iter().map(|k| format!("/{k}")).collect();
    let mut producers = vec!["/shardline.producer".to_owned()];
    if let Some(Value::Array(flows)) = root.get("flows") {
        producers.extend((0..flows.len()).map(|i| format!("/flows/{i}/shardline.producer")));
    }
    for producer in producers {
        places.extend(
            PRODUCER_SECRETS
                .iter()
                .map(|k| format!("{producer}/{}", escape(k))),
        );
    }
    places.retain(|p| root.pointer(p).is_some());
    places
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

/// A value as the agent turns it into a setting's text.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn all_text(outcome: &Result<ParsedConfig, String>) -> String {
    match outcome {
        Ok(parsed) => format!("{} {}", parsed.shown, parsed.warnings.join("\n")),
        Err(message) => message.clone(),
    }
}
