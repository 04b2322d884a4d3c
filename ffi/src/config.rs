//! `shardline_config`: string-keyed options, the delivery callback, and the
//! choice of service.

use std::ffi::{c_char, c_void};
use std::sync::Mutex;
use std::time::Duration;

use shardline::{Config, Error, Service};

use crate::handle::Registry;
use crate::producer::shardline_delivery_cb;
use crate::result::shardline_result::{self, *};
use crate::{c_str, guard, guard_result, write_errbuf};

/// Options for a producer. Create with `shardline_config_new`, fill with
/// `shardline_config_set`, free with `shardline_config_free`. A config is
/// not consumed by `shardline_producer_new`: free it yourself, and reuse it
/// for more producers if you like.
#[allow(non_camel_case_types)]
#[derive(Debug)]
pub struct shardline_config {
    _opaque: [u8; 0],
}

/// What a config handle refers to.
#[derive(Debug, Clone)]
pub(crate) struct ConfigState {
    pub(crate) config: Config,
    pub(crate) service: Service,
    pub(crate) callback: shardline_delivery_cb,
    /// The callback's opaque pointer, kept as an integer: it is the
    /// caller's, handed back verbatim, never dereferenced here.
    pub(crate) callback_opaque: usize,
    /// Shadows of core options the C layer needs too; `shardline::Config`
    /// has no getters (see the report in ffi/README.md).
    pub(crate) limits: Limits,
}

/// The core options the C layer acts on itself.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) max_buffered_bytes: usize,
    pub(crate) max_buffered_records: usize,
    pub(crate) close_timeout: Duration,
}

impl Default for Limits {
    /// The core defaults (core/src/config.rs).
    fn default() -> Self {
        Limits {
            max_buffered_bytes: 128 * 1024 * 1024,
            max_buffered_records: 1_000_000,
            close_timeout: Duration::from_secs(30),
        }
    }
}

impl Limits {
    /// Mirrors a value the core has already accepted for `key`.
    fn observe(&mut self, key: &str, value: &str) {
        let value = value.trim();
        match key {
            "max_buffered_bytes" => {
                if let Ok(n) = value.replace('_', "").parse() {
                    self.max_buffered_bytes = n;
                }
            }
            "max_buffered_records" => {
                if let Ok(n) = value.replace('_', "").parse() {
                    self.max_buffered_records = n;
                }
            }
            "close_timeout" => {
                let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
                    (n.trim(), 1)
                } else if let Some(n) = value.strip_suffix('s') {
                    (n.trim(), 1000)
                } else {
                    (value, 1)
                };
                if let Ok(n) = number.parse::<u64>() {
                    self.close_timeout = Duration::from_millis(n.saturating_mul(scale));
                }
            }
            _ => {}
        }
    }
}

pub(crate) static CONFIGS: Registry<Mutex<ConfigState>> = Registry::new();

/// The key that selects the service; handled here, not by the core.
pub const SERVICE_KEY: &str = "service";

impl ConfigState {
    fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        if key == SERVICE_KEY {
            self.service = match value.trim().to_ascii_lowercase().as_str() {
                "kinesis" => Service::Kinesis,
                "firehose" => Service::Firehose,
                _ => {
                    return Err(Error::InvalidConfig {
                        key: SERVICE_KEY.into(),
                        message: format!("expected kinesis or firehose, got {value:?}"),
                    });
                }
            };
            return Ok(());
        }
        self.config.set(key, value)?;
        self.limits.observe(key, value);
        Ok(())
    }
}

/// A new configuration with the defaults (Kinesis Data Streams, KPL-like
/// batching). Returns NULL only if Shardline failed internally.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_config_new() -> *mut shardline_config {
    guard("shardline_config_new", std::ptr::null_mut(), || {
        CONFIGS.insert(Mutex::new(ConfigState {
            config: Config::new(),
            service: Service::Kinesis,
            callback: None,
            callback_opaque: 0,
            limits: Limits::default(),
        }))
    })
}

/// Sets one option by its string key: the same keys as the Rust
/// `Config::set` and the Python keyword arguments (KPL property names such
/// as `RecordMaxBufferedTime` are accepted too), plus `service` =
/// `kinesis` (default) or `firehose`.
///
/// On failure, a message is written to `errbuf` (NUL-terminated, truncated
/// to `errlen`; pass NULL/0 to skip it) and the config is unchanged.
///
/// Returns `SHARDLINE_OK`, `SHARDLINE_NULL_PARAMETER`,
/// `SHARDLINE_INVALID_HANDLE`, `SHARDLINE_INVALID_UTF8`,
/// `SHARDLINE_UNKNOWN_CONFIG_KEY` or `SHARDLINE_INVALID_CONFIG`.
///
/// # Safety
/// `key` and `value` are NULL or NUL-terminated strings; `errbuf` is NULL or
/// has `errlen` writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn shardline_config_set(
    conf: *mut shardline_config,
    key: *const c_char,
    value: *const c_char,
    errbuf: *mut c_char,
    errlen: usize,
) -> shardline_result {
    let mut message = String::new();
    let rc = guard_result("shardline_config_set", || {
        if conf.is_null() {
            message = "conf is NULL".into();
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = CONFIGS.get(conf).ok_or_else(|| {
            message = "conf is not a live shardline_config".into();
            SHARDLINE_INVALID_HANDLE
        })?;
        // SAFETY: the caller's contract for `key` and `value`.
        let (key, value) = unsafe { (c_str(key), c_str(value)) };
        let (key, value) = match (key, value) {
            (Ok(k), Ok(v)) => (k, v),
            (Err(rc), _) | (_, Err(rc)) => {
                message = format!("key or value: {}", describe(rc));
                return Err(rc);
            }
        };
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.set(key, value).map_err(|e| {
            message = e.to_string();
            shardline_result::from(&e)
        })
    });
    if rc != SHARDLINE_OK {
        if message.is_empty() {
            message = describe(rc).into();
        }
        // SAFETY: the caller's contract for `errbuf`.
        unsafe { write_errbuf(errbuf, errlen, &message) };
    }
    rc
}

/// A delivery report callback and the opaque pointer it is given. Reports
/// are served only inside `shardline_producer_poll` / `_flush` / `_free`, on
/// the calling thread. `cb` may be NULL (reports are then counted and
/// discarded). Producers created from this config afterwards use it.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_config_set_delivery_cb(
    conf: *mut shardline_config,
    cb: shardline_delivery_cb,
    opaque: *mut c_void,
) -> shardline_result {
    guard_result("shardline_config_set_delivery_cb", || {
        if conf.is_null() {
            return Err(SHARDLINE_NULL_PARAMETER);
        }
        let state = CONFIGS.get(conf).ok_or(SHARDLINE_INVALID_HANDLE)?;
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.callback = cb;
        state.callback_opaque = opaque as usize;
        Ok(())
    })
}

/// Frees a configuration. NULL and already-freed handles are ignored.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_config_free(conf: *mut shardline_config) {
    guard("shardline_config_free", (), || {
        CONFIGS.remove(conf);
    })
}

fn describe(rc: shardline_result) -> &'static str {
    let text = rc.description();
    std::str::from_utf8(&text[..text.len() - 1]).unwrap_or("error")
}
