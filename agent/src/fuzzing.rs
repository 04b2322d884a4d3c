//! The agent.json parser as `fuzz/fuzz_targets/agent_config.rs` drives it.
//!
//! [`parse_config`] runs the same parser as start-up and `--check`. When
//! the file is accepted, it also checks what the rest of the agent takes
//! for granted about a parsed configuration (and would otherwise find out
//! later, with a panic in a flow thread), and panics if any of it is false.

use crate::config::{AgentConfig, FlowConfig};
use crate::flow::record_overhead;
use shardline::Service;

/// What the agent made of an accepted agent.json, as text: enough to tell
/// two parses apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedConfig {
    /// `Debug` of the whole configuration (credentials redacted there).
    pub shown: String,
    /// The warnings start-up would log.
    pub warnings: Vec<String>,
}

/// Parses agent.json as start-up does. `Err` is the message start-up would
/// print. Panics if an accepted configuration breaks an invariant below.
pub fn parse_config(text: &str) -> Result<ParsedConfig, String> {
    let (config, warnings) = crate::config::parse(text).map_err(|e| e.to_string())?;
    check_invariants(&config);
    Ok(ParsedConfig {
        shown: format!("{config:?}"),
        warnings,
    })
}

fn check_invariants(config: &AgentConfig) {
    assert!(!config.flows.is_empty(), "a configuration without flows");
    assert!(!config.checkpoint_file.as_os_str().is_empty());
    assert!(config.shutdown_timeout.as_secs() <= 3600);
    assert!((1..=86_400).contains(&config.status_interval.as_secs()));
    let mut ids: Vec<&str> = config.flows.iter().map(|f| f.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), config.flows.len(), "two flows share an id");
    for flow in &config.flows {
        check_flow(flow);
    }
}

fn check_flow(flow: &FlowConfig) {
    let service = match flow.service {
        Service::Kinesis => "kinesis",
        Service::Firehose => "firehose",
    };
    // The id names the checkpoint entries: it must say what the flow reads
    // and where it sends, so that a changed flow does not inherit offsets.
    assert_eq!(
        flow.id,
        format!("{service}:{}:{}", flow.stream, flow.file_pattern)
    );
    assert!(
        (1..=128).contains(&flow.stream.len())
            && flow
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
        "stream name {:?}",
        flow.stream
    );
    assert!(glob::Pattern::new(&flow.file_pattern).is_ok());
    // `Flow::new` compiles the multi-line pattern again for bytes, with
    // `expect`.
    if let Some(start) = &flow.multi_line_start {
        assert!(regex::bytes::Regex::new(start.as_str()).is_ok());
    }
    let poll_ms = flow.poll_interval.as_millis();
    assert!(
        (1..=60_000).contains(&poll_ms),
        "poll interval {poll_ms} ms"
    );
    assert!(flow.skip_header_lines <= 1_000_000);
    assert!(
        flow.producer.validate().is_ok(),
        "the producer configuration does not validate"
    );
    if flow.service == Service::Kinesis {
        assert!(flow.max_record_size <= flow.producer.max_record_size_bytes());
    }
    // A record cut at the size limit keeps some of its data, then the
    // terminator, and still leaves the flow its overhead.
    let budget = flow
        .max_record_size
        .checked_sub(record_overhead(flow.service))
        .expect("the record size limit is below the flow's overhead");
    assert!(
        flow.truncated_record_terminator.len() < budget,
        "a {}-byte truncatedRecordTerminator leaves no room for data in a {budget}-byte record",
        flow.truncated_record_terminator.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_parses_and_keeps_its_invariants() {
        let parsed = parse_config(include_str!("../examples/agent.json")).unwrap();
        assert!(parsed.shown.contains("kinesis:s:/tmp/data.log*"));
        assert!(!parsed.shown.contains("emulator-accepts-any-secret"));
        assert_eq!(parsed.warnings, Vec::<String>::new());
    }

    #[test]
    fn a_refused_config_is_the_start_up_message() {
        assert_eq!(
            parse_config(r#"{"flows":[]}"#).unwrap_err(),
            "flows: must contain at least one flow"
        );
    }
}
