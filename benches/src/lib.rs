//! Shared helpers for Shardline benchmarks and harnesses: the workload
//! (keys and payloads, built before any clock starts) and what a process
//! can read about itself (CPU time, RSS) on Linux.

use bytes::Bytes;

/// `n` distinct 36-character UUID-shaped partition keys, deterministic.
pub fn make_keys(n: usize) -> Vec<String> {
    // A 64-bit LCG spread over the hex digits: deterministic, no deps.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n.max(1))
        .map(|i| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let a = state;
            let b = state.rotate_left(29) ^ i as u64;
            let hex = format!("{a:016x}{b:016x}");
            format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            )
        })
        .collect()
}

/// One payload of `size` bytes (printable, so it also suits text sinks);
/// cloning the `Bytes` shares it.
pub fn make_payload(size: usize) -> Bytes {
    Bytes::from(
        (0..size)
            .map(|i| b'a' + (i % 26) as u8)
            .collect::<Vec<u8>>(),
    )
}

fn status_field_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?;
        rest.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Peak resident set size of this process (`VmHWM`), in bytes; 0 if unknown.
pub fn peak_rss_bytes_self() -> u64 {
    status_field_kib("VmHWM:").unwrap_or(0) * 1024
}

/// Resident set size of this process now (`VmRSS`), in bytes; 0 if unknown.
pub fn rss_bytes_self() -> u64 {
    status_field_kib("VmRSS:").unwrap_or(0) * 1024
}

/// User + system CPU seconds consumed by this process (all threads).
pub fn cpu_seconds_self() -> f64 {
    // /proc/self/stat fields 14 and 15 (utime, stime) in clock ticks; the
    // command name (field 2) may hold spaces, so split after its ')'.
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': field 3 is index 0, so utime (14) is index 11.
    let ticks: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    ticks as f64 / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    // sysconf(_SC_CLK_TCK) is 100 on every Linux in practice.
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_uuid_shaped() {
        let keys = make_keys(1000);
        let set: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(set.len(), 1000);
        assert!(keys.iter().all(|k| k.len() == 36));
    }
}
