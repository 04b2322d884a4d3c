//! C ABI for Shardline: `shardline.h`, `libshardline.a` and `libshardline.so`.
//!
//! The C interface follows librdkafka's producer model: a configuration
//! object with string keys, a producer handle, a `send` that copies its
//! inputs and never blocks, and delivery reports that reach a C callback
//! only inside `shardline_producer_poll` / `shardline_producer_flush`, on
//! the thread that calls them. See `ffi/README.md` for a walk-through and
//! `examples/c/producer.c` for a complete program.
//!
//! # Safety model
//!
//! - Every exported function runs inside [`guard`]: a panic is caught and
//!   turned into `SHARDLINE_PANIC` (or the function's neutral value).
//! - Handles are opaque tokens looked up in a registry ([`handle`]); they
//!   are never dereferenced, so a freed or forged handle yields
//!   `SHARDLINE_INVALID_HANDLE` instead of undefined behaviour.
//! - Out-pointers are written only on success.

use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

pub mod config;
pub mod handle;
pub mod producer;
pub mod result;

#[cfg(test)]
mod panic_safety_tests;

pub use result::shardline_result;
use result::shardline_result::*;

thread_local! {
    /// The exported function a test asked to panic in (see
    /// [`inject_panic_for_tests`]).
    static INJECTED_PANIC: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Makes the next calls of the exported function `name` on this thread
/// panic inside their panic boundary; `None` stops it. For the Rust-side
/// panic-safety tests only; not part of the C ABI.
#[doc(hidden)]
pub fn inject_panic_for_tests(name: Option<&'static str>) {
    INJECTED_PANIC.with(|p| p.set(name));
}

/// Runs the body of the exported function `name`, turning a panic into
/// `on_panic`: no panic ever unwinds into C.
pub(crate) fn guard<R>(name: &'static str, on_panic: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(|| {
        if INJECTED_PANIC.with(Cell::get) == Some(name) {
            panic!("panic injected into {name} by a test");
        }
        body()
    }))
    .unwrap_or(on_panic)
}

/// Like [`guard`] for functions that return a result code, so that the
/// body can use `?` on `Result<(), shardline_result>`.
pub(crate) fn guard_result(
    name: &'static str,
    body: impl FnOnce() -> Result<(), shardline_result>,
) -> shardline_result {
    guard(name, Err(SHARDLINE_PANIC), body)
        .err()
        .unwrap_or(SHARDLINE_OK)
}

/// A required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char) -> Result<&'a str, shardline_result> {
    if ptr.is_null() {
        return Err(SHARDLINE_NULL_PARAMETER);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller's contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| SHARDLINE_INVALID_UTF8)
}

/// A `(pointer, length)` byte argument; NULL is allowed only with length 0.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes.
pub(crate) unsafe fn c_bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], shardline_result> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(SHARDLINE_NULL_PARAMETER);
    }
    // SAFETY: non-NULL with `len` readable bytes per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Copies `message` into the caller's error buffer, truncated at a
/// character boundary and always NUL-terminated. A NULL buffer or a zero
/// length means the caller does not want the message.
///
/// # Safety
/// `errbuf` is NULL or points to `errlen` writable bytes.
pub(crate) unsafe fn write_errbuf(errbuf: *mut c_char, errlen: usize, message: &str) {
    if errbuf.is_null() || errlen == 0 {
        return;
    }
    let mut n = message.len().min(errlen - 1);
    while !message.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: `n + 1 <= errlen` bytes are writable per the caller's contract
    // and `message` cannot overlap a buffer the caller owns.
    unsafe {
        std::ptr::copy_nonoverlapping(message.as_ptr(), errbuf.cast::<u8>(), n);
        *errbuf.add(n) = 0;
    }
}

/// The library version as a static NUL-terminated string, e.g. `"0.1.0"`.
#[unsafe(no_mangle)]
pub extern "C" fn shardline_version() -> *const c_char {
    const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    guard("shardline_version", VERSION, || VERSION)
        .as_ptr()
        .cast()
}
