//! The configuration parser: `Config::set` with any key and value, and
//! `Config::apply_properties` with any text (KPL `.properties` files).
//! Never a panic; a secret value never shows in an error or in `Debug`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shardline::{CONFIG_KEYS, Config};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    // Line 1 picks a key (an index into CONFIG_KEYS, or a raw key), line 2
    // is its value; the whole text is also read as a properties file.
    let mut lines = text.splitn(2, '\n');
    let selector = lines.next().unwrap_or("");
    let value = lines.next().unwrap_or("");
    let key = match selector.parse::<usize>() {
        Ok(i) => CONFIG_KEYS[i % CONFIG_KEYS.len()].0,
        Err(_) => selector,
    };
    let shown = |value: &str| {
        let mut config = Config::new();
        let result = config.set(key, value);
        format!("{result:?} {config:?}")
    };
    let shown_text = shown(value);
    let secret = matches!(key, "aws_secret_access_key" | "aws_session_token");
    if secret && !value.is_empty() && shown_text.contains(value) {
        // Not a leak if the text holds those characters whatever the
        // secret is (e.g. the secret "access" and the field name
        // "secret_access_key").
        let other = "\u{1F512}".repeat(value.chars().count());
        assert!(
            shown(&other).contains(value),
            "a secret shows: {shown_text}"
        );
    }
    let mut config = Config::new();
    let _ = config.set(key, value);
    let _ = config.validate();

    let mut config = Config::new();
    let _ = config.apply_properties(text);
    let _ = config.validate();
    let _ = format!("{config:?}");
});
