//! The emulator's request parsing: the `X-Amz-Target` header (first line)
//! and the JSON body (the rest) of every Kinesis and Firehose operation.
//! Never a panic: a bad request is a 4xx answer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let split = input
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(input.len());
    let Ok(target) = std::str::from_utf8(&input[..split]) else {
        return;
    };
    let body = input.get(split + 1..).unwrap_or_default();
    let status = shardline_emulator::handle_request_for_fuzzing(target, body);
    assert!((200..600).contains(&status));
});
