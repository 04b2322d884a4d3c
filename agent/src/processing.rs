//! `dataProcessingOptions`: what happens to a record between the file and
//! the producer.
//!
//! The converters follow the Kinesis Agent's documented behaviour (and its
//! source, where the docs are silent):
//!
//! - `SINGLELINE` trims every line of a (multi-line) record and joins them
//!   with nothing in between.
//! - `CSVTOJSON` maps the columns to `customFieldNames`; missing columns
//!   become `null`, extra ones are dropped.
//! - `LOGTOJSON` matches a built-in log format (or `matchPattern`) against
//!   the whole record and emits one JSON object; a record that does not
//!   match is *skipped*, as the Kinesis Agent does.
//!
//! Records here carry no line terminator: the tailer strips it, and the
//! Firehose producer appends `\n` on the way out.

use regex::Regex;
use serde_json::Value;

use crate::config::{ConfigError, JsonObject};

/// A JSON object with string or null values, written by hand so the fields
/// come out in the configured order, as the Kinesis Agent's do.
fn json_object<'a>(pairs: impl Iterator<Item = (&'a str, Option<&'a str>)>) -> Vec<u8> {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::from(name).to_string());
        out.push(':');
        match value {
            Some(v) => out.push_str(&Value::from(v).to_string()),
            None => out.push_str("null"),
        }
    }
    out.push('}');
    out.into_bytes()
}

/// One configured data processing option.
#[derive(Debug)]
pub(crate) enum Processor {
    /// `SINGLELINE`.
    SingleLine,
    /// `CSVTOJSON`.
    CsvToJson {
        /// Column names, in order.
        fields: Vec<String>,
        /// How columns are split.
        delimiter: Delimiter,
    },
    /// `LOGTOJSON`.
    LogToJson {
        /// Matched against the whole record.
        pattern: Regex,
        /// One name per capture group.
        fields: Vec<String>,
        /// The Apache parsers report `-` as a missing value (`null`).
        dash_is_null: bool,
    },
}

/// The `delimiter` of `CSVTOJSON`.
#[derive(Debug)]
pub(crate) enum Delimiter {
    /// One byte: parsed as CSV, so quoted fields may contain it.
    Byte(u8),
    /// Anything longer is a regular expression, as in the Kinesis Agent
    /// (which uses Java's `String.split`), e.g. `"\\t"` or `"\\s*;\\s*"`.
    Regex(Regex),
}

/// The log formats `LOGTOJSON` knows, with the Kinesis Agent's field names.
const LOG_FORMATS: &[&str] = &[
    "COMMONAPACHELOG",
    "COMBINEDAPACHELOG",
    "APACHEERRORLOG",
    "SYSLOG",
    "RFC3339SYSLOG",
];

mod patterns {
    //! The building blocks of the built-in formats (grok-style), as the
    //! Kinesis Agent defines them.
    pub(super) const INT: &str = r"(?:[+-]?(?:[0-9]+))";
    pub(super) const POSINT: &str = r"(?:[1-9][0-9]*)";
    pub(super) const NONNEGINT: &str = r"(?:[0-9]+)";
    pub(super) const WORD: &str = r"\w+";
    pub(super) const NOQUOTE: &str = r#"[^"]+"#;
    pub(super) const IP: &str = r"(?:[\d\.]+)";
    pub(super) const HOSTNAME: &str = r"(?:[\w\-]+)(?:\.(?:[\w\-]+))*(?:\.?|\b)";
    pub(super) const USER: &str = r"(?:[a-zA-Z0-9._-]+)";
    pub(super) const MONTHDAY: &str = r"(?:(?:0[1-9])|(?:[12][0-9])|(?:3[01])|[1-9])";
    pub(super) const DAY: &str = r"(?:Mon(?:day)?|Tue(?:sday)?|Wed(?:nesday)?|Thu(?:rsday)?|Fri(?:day)?|Sat(?:urday)?|Sun(?:day)?)";
    pub(super) const MONTH: &str = r"\b(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|Jun(?:e)?|Jul(?:y)?|Aug(?:ust)?|Sep(?:tember)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\b";
    pub(super) const YEAR: &str = r"(?:[1-9]\d*)";
    pub(super) const HOUR: &str = r"(?:2[0123]|[01]?[0-9])";
    pub(super) const MINUTE: &str = r"(?:[0-5][0-9])";
    pub(super) const SECOND: &str = r"(?:(?:[0-5]?[0-9]|60)(?:[:\.,][0-9]+)?)";
    pub(super) const RFC3339: &str =
        r"(?:\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:?\d{2}))";
}

/// The regular expression and field names of a built-in log format.
fn log_format(name: &str) -> Option<(String, &'static [&'static str], bool)> {
    use patterns::*;
    let iporhost = format!("(?:{HOSTNAME}|{IP})");
    let urihost = format!("(?:{iporhost}(?::{POSINT})?)");
    let time = format!("(?:{HOUR}:{MINUTE}:{SECOND})");
    let httpdate = format!(r"(?:{MONTHDAY}/{MONTH}/{YEAR}:{time}\s{INT})");
    let common = format!(
        r#"({iporhost}) ({USER}) ({USER}) \[({httpdate})\] "({NOQUOTE})" ({INT}|\-) ({INT}|\-)"#
    );
    let syslog_tail =
        format!(r"(?:<{NONNEGINT}.{NONNEGINT}> )?({USER}) ([\w\._/%-]+)(?:\[({POSINT})\])?: (.*)");
    const COMMON_FIELDS: &[&str] = &[
        "host", "ident", "authuser", "datetime", "request", "response", "bytes",
    ];
    const COMBINED_FIELDS: &[&str] = &[
        "host", "ident", "authuser", "datetime", "request", "response", "bytes", "referer", "agent",
    ];
    const ERROR_FIELDS: &[&str] = &[
        "timestamp",
        "module",
        "severity",
        "processid",
        "threadid",
        "client",
        "message",
    ];
    const SYSLOG_FIELDS: &[&str] = &["timestamp", "hostname", "program", "processid", "message"];
    Some(match name {
        "COMMONAPACHELOG" => (format!("{common}.*"), COMMON_FIELDS, true),
        "COMBINEDAPACHELOG" => (
            format!(r#"{common} "({NOQUOTE})" "({NOQUOTE})".*"#),
            COMBINED_FIELDS,
            true,
        ),
        "APACHEERRORLOG" => (
            format!(
                r"\[((?:{DAY}\s+{MONTH}\s+{MONTHDAY}\s+{time}\s+{YEAR}))\] \[(?:({WORD}):)?({WORD})\] \[pid ({NONNEGINT})(?::tid ({NONNEGINT}))?\] \[client ({urihost})\] (.*)"
            ),
            ERROR_FIELDS,
            true,
        ),
        "SYSLOG" => (
            format!(r"((?:{MONTH}\s+{MONTHDAY}\s+{time})) {syslog_tail}"),
            SYSLOG_FIELDS,
            false,
        ),
        "RFC3339SYSLOG" => (format!(r"({RFC3339}) {syslog_tail}"), SYSLOG_FIELDS, false),
        _ => return None,
    })
}

/// Compiles `pattern` so that it must match the whole record, as Java's
/// `Matcher.matches()` does.
fn whole_match(pattern: &str, key: &str) -> Result<Regex, ConfigError> {
    Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ConfigError::new(key, format!("is not a valid regular expression: {e}")))
}

fn string_list(object: &JsonObject<'_>, key: &str) -> Result<Option<Vec<String>>, ConfigError> {
    match object.get(key) {
        None => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| object.invalid(key, "must be a list of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(object.invalid(key, "must be a list of strings")),
    }
}

impl Processor {
    /// Parses one entry of `dataProcessingOptions`.
    pub(crate) fn from_json(
        object: &JsonObject<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<Processor, ConfigError> {
        let name = object.required_str("optionName")?;
        let processor = match name {
            "SINGLELINE" => {
                object.check_keys(&["optionName"], warnings);
                Processor::SingleLine
            }
            "CSVTOJSON" => {
                object.check_keys(
                    &["optionName", "customFieldNames", "delimiter", "jsonFormat"],
                    warnings,
                );
                let fields = string_list(object, "customFieldNames")?.ok_or_else(|| {
                    object.invalid("customFieldNames", "is required by CSVTOJSON")
                })?;
                let delimiter = match object.optional_str("delimiter")?.unwrap_or(",") {
                    "" => return Err(object.invalid("delimiter", "must not be empty")),
                    d if d.len() == 1 => Delimiter::Byte(d.as_bytes()[0]),
                    d => Delimiter::Regex(Regex::new(d).map_err(|e| {
                        object.invalid(
                            "delimiter",
                            format!("is not a valid regular expression: {e}"),
                        )
                    })?),
                };
                Processor::CsvToJson { fields, delimiter }
            }
            "LOGTOJSON" => {
                object.check_keys(
                    &[
                        "optionName",
                        "logFormat",
                        "matchPattern",
                        "customFieldNames",
                        "jsonFormat",
                    ],
                    warnings,
                );
                let format = object.required_str("logFormat")?;
                let Some((builtin, builtin_fields, dash_is_null)) = log_format(format) else {
                    return Err(object.invalid(
                        "logFormat",
                        format!("must be one of {}", LOG_FORMATS.join(", ")),
                    ));
                };
                let custom = string_list(object, "customFieldNames")?;
                let (pattern, fields) = match object.optional_str("matchPattern")? {
                    Some(p) => {
                        let fields = custom.ok_or_else(|| {
                            object.invalid("customFieldNames", "is required with matchPattern")
                        })?;
                        (whole_match(p, &object.path("matchPattern"))?, fields)
                    }
                    None => {
                        let fields = match custom {
                            Some(c) if c.len() != builtin_fields.len() => {
                                return Err(object.invalid(
                                    "customFieldNames",
                                    format!(
                                        "{format} has {} fields ({}); give that many names or a matchPattern",
                                        builtin_fields.len(),
                                        builtin_fields.join(", ")
                                    ),
                                ));
                            }
                            Some(c) => c,
                            None => builtin_fields.iter().map(|s| s.to_string()).collect(),
                        };
                        (whole_match(&builtin, &object.path("logFormat"))?, fields)
                    }
                };
                if pattern.captures_len() - 1 != fields.len() {
                    return Err(object.invalid(
                        "customFieldNames",
                        format!(
                            "has {} names but the pattern has {} capture groups",
                            fields.len(),
                            pattern.captures_len() - 1
                        ),
                    ));
                }
                Processor::LogToJson {
                    pattern,
                    fields,
                    dash_is_null,
                }
            }
            other => {
                return Err(object.invalid(
                    "optionName",
                    format!("{other:?} is not supported; use SINGLELINE, CSVTOJSON or LOGTOJSON"),
                ));
            }
        };
        if let Some(format) = object.optional_str("jsonFormat")?
            && format != "COMPACT"
        {
            warnings.push(format!(
                "{}: {format:?} is not supported; records are written as COMPACT JSON",
                object.path("jsonFormat")
            ));
        }
        Ok(processor)
    }

    /// Converts one record; `None` means the record is dropped (a
    /// `LOGTOJSON` record that does not match its format).
    pub(crate) fn apply(&self, record: Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Processor::SingleLine => {
                let text = String::from_utf8_lossy(&record);
                Some(
                    text.split('\n')
                        .map(str::trim)
                        .collect::<String>()
                        .into_bytes(),
                )
            }
            Processor::CsvToJson { fields, delimiter } => {
                let text = String::from_utf8_lossy(&record);
                let columns: Vec<String> = match delimiter {
                    Delimiter::Byte(b) => csv::ReaderBuilder::new()
                        .has_headers(false)
                        .delimiter(*b)
                        .flexible(true)
                        .from_reader(text.as_bytes())
                        .records()
                        .next()
                        .and_then(Result::ok)
                        .map(|r| r.iter().map(str::to_owned).collect())
                        // Not valid CSV (say, a stray quote): split plainly,
                        // as the Kinesis Agent would.
                        .unwrap_or_else(|| text.split(*b as char).map(str::to_owned).collect()),
                    Delimiter::Regex(re) => re.split(&text).map(str::to_owned).collect(),
                };
                Some(json_object(fields.iter().enumerate().map(|(i, name)| {
                    (name.as_str(), columns.get(i).map(String::as_str))
                })))
            }
            Processor::LogToJson {
                pattern,
                fields,
                dash_is_null,
            } => {
                let text = String::from_utf8_lossy(&record);
                let captures = pattern.captures(&text)?;
                Some(json_object(fields.iter().enumerate().map(|(i, name)| {
                    let value = captures
                        .get(i + 1)
                        .map(|m| m.as_str())
                        .filter(|v| !(*dash_is_null && *v == "-"));
                    (name.as_str(), value)
                })))
            }
        }
    }
}

/// Runs a record through every processor in order.
pub(crate) fn apply_all(processors: &[Processor], record: Vec<u8>) -> Option<Vec<u8>> {
    processors.iter().try_fold(record, |r, p| p.apply(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn processor(json: &str) -> Result<Processor, ConfigError> {
        let value: Value = serde_json::from_str(json).unwrap();
        let object = JsonObject::new(&value, "flows[0].dataProcessingOptions[0]".into())?;
        Processor::from_json(&object, &mut Vec::new())
    }

    fn run(json: &str, input: &str) -> Option<String> {
        processor(json)
            .unwrap()
            .apply(input.as_bytes().to_vec())
            .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn single_line_trims_and_joins() {
        assert_eq!(
            run(r#"{"optionName":"SINGLELINE"}"#, "  a\n   b  \n c").as_deref(),
            Some("abc")
        );
    }

    #[test]
    fn csv_to_json_maps_columns_and_fills_nulls() {
        let cfg = r#"{"optionName":"CSVTOJSON","customFieldNames":["a","b","c"]}"#;
        assert_eq!(
            run(cfg, r#"1,"x, y""#).as_deref(),
            Some(r#"{"a":"1","b":"x, y","c":null}"#)
        );
        let tabs = r#"{"optionName":"CSVTOJSON","customFieldNames":["a","b"],"delimiter":"\\t"}"#;
        assert_eq!(
            run(tabs, "1\t2\t3").as_deref(),
            Some(r#"{"a":"1","b":"2"}"#)
        );
        let pipe = r#"{"optionName":"CSVTOJSON","customFieldNames":["a","b"],"delimiter":"|"}"#;
        assert_eq!(run(pipe, "p|q").as_deref(), Some(r#"{"a":"p","b":"q"}"#));
        let err = processor(r#"{"optionName":"CSVTOJSON"}"#).unwrap_err();
        assert!(err.to_string().contains("customFieldNames"), "{err}");
    }

    #[test]
    fn log_to_json_parses_the_builtin_formats() {
        let common = r#"{"optionName":"LOGTOJSON","logFormat":"COMMONAPACHELOG"}"#;
        assert_eq!(
            run(
                common,
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326"#
            )
            .as_deref(),
            Some(
                r#"{"host":"127.0.0.1","ident":null,"authuser":"frank","datetime":"10/Oct/2000:13:55:36 -0700","request":"GET /apache_pb.gif HTTP/1.0","response":"200","bytes":"2326"}"#
            )
        );
        let combined = r#"{"optionName":"LOGTOJSON","logFormat":"COMBINEDAPACHELOG"}"#;
        let out = run(
            combined,
            r#"10.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 304 - "http://x/" "curl/8""#,
        )
        .unwrap();
        assert!(
            out.ends_with(r#""bytes":null,"referer":"http://x/","agent":"curl/8"}"#),
            "{out}"
        );
        let error = r#"{"optionName":"LOGTOJSON","logFormat":"APACHEERRORLOG"}"#;
        let out = run(
            error,
            "[Fri Sep 09 10:42:29.902022 2011] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187] File does not exist: /a",
        );
        let out = out.expect("error log line matches");
        assert!(
            out.contains(r#""module":"core","severity":"error","processid":"35708""#),
            "{out}"
        );
        let syslog = r#"{"optionName":"LOGTOJSON","logFormat":"SYSLOG"}"#;
        assert_eq!(
            run(
                syslog,
                "Mar 12 12:00:08 server2 rcd[308]: Loaded 12 packages"
            )
            .as_deref(),
            Some(
                r#"{"timestamp":"Mar 12 12:00:08","hostname":"server2","program":"rcd","processid":"308","message":"Loaded 12 packages"}"#
            )
        );
        let rfc = r#"{"optionName":"LOGTOJSON","logFormat":"RFC3339SYSLOG"}"#;
        assert_eq!(
            run(rfc, "2024-05-01T10:00:00.123+02:00 web1 sshd: hello").as_deref(),
            Some(
                r#"{"timestamp":"2024-05-01T10:00:00.123+02:00","hostname":"web1","program":"sshd","processid":null,"message":"hello"}"#
            )
        );
        // Lines that do not match are skipped, as in the Kinesis Agent.
        assert_eq!(run(syslog, "not a syslog line"), None);
    }

    #[test]
    fn log_to_json_custom_pattern_and_names() {
        let cfg = r#"{"optionName":"LOGTOJSON","logFormat":"SYSLOG","matchPattern":"(\\w+) (\\d+)","customFieldNames":["word","n"]}"#;
        assert_eq!(
            run(cfg, "abc 42").as_deref(),
            Some(r#"{"word":"abc","n":"42"}"#)
        );
        let renamed = r#"{"optionName":"LOGTOJSON","logFormat":"SYSLOG","customFieldNames":["t","h","p","i","m"]}"#;
        assert!(
            run(renamed, "Mar 12 12:00:08 h p: m")
                .unwrap()
                .starts_with(r#"{"t":"#)
        );
        let wrong = processor(
            r#"{"optionName":"LOGTOJSON","logFormat":"SYSLOG","customFieldNames":["a"]}"#,
        )
        .unwrap_err();
        assert!(wrong.to_string().contains("customFieldNames"), "{wrong}");
        let no_names =
            processor(r#"{"optionName":"LOGTOJSON","logFormat":"SYSLOG","matchPattern":"(a)"}"#)
                .unwrap_err();
        assert!(
            no_names.to_string().contains("customFieldNames"),
            "{no_names}"
        );
        let bad = processor(r#"{"optionName":"LOGTOJSON","logFormat":"NGINX"}"#).unwrap_err();
        assert!(bad.to_string().contains("logFormat"), "{bad}");
        let unknown = processor(r#"{"optionName":"ADDMETADATA"}"#).unwrap_err();
        assert!(unknown.to_string().contains("optionName"), "{unknown}");
    }

    #[test]
    fn chains_apply_in_order() {
        let chain = vec![
            processor(r#"{"optionName":"SINGLELINE"}"#).unwrap(),
            processor(r#"{"optionName":"CSVTOJSON","customFieldNames":["a","b"]}"#).unwrap(),
        ];
        let out = apply_all(&chain, b" 1,\n 2 ".to_vec()).unwrap();
        assert_eq!(out, br#"{"a":"1","b":"2"}"#);
    }
}
