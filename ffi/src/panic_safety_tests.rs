//! No panic crosses the C ABI: with a panic injected inside each exported
//! function's boundary, the call returns its documented neutral value.
//!
//! A unit test rather than `ffi/tests/*.rs`: this crate's lib is named
//! `shardline`, like the core crate, so an integration test could not name
//! it unambiguously.

use std::ffi::{CStr, c_void};
use std::ptr;

use crate::config::*;
use crate::inject_panic_for_tests as inject;
use crate::producer::*;
use crate::result::*;
use crate::shardline_result::*;

fn config() -> *mut shardline_config {
    let conf = shardline_config_new();
    assert!(!conf.is_null());
    for (k, v) in [
        (c"endpoint_url", c"http://127.0.0.1:9"),
        (c"region", c"us-east-1"),
        (c"aws_access_key_id", c"test"),
        (c"aws_secret_access_key", c"test"),
        (c"close_timeout", c"0"),
    ] {
        let rc = unsafe { shardline_config_set(conf, k.as_ptr(), v.as_ptr(), ptr::null_mut(), 0) };
        assert_eq!(rc, SHARDLINE_OK);
    }
    conf
}

#[test]
fn every_export_contains_its_panic() {
    let conf = config();
    let mut producer = ptr::null_mut();
    let rc = unsafe { shardline_producer_new(conf, &mut producer, ptr::null_mut(), 0) };
    assert_eq!(rc, SHARDLINE_OK);

    let send = || unsafe {
        shardline_producer_send(
            producer,
            c"s".as_ptr(),
            c"k".as_ptr(),
            1,
            b"x".as_ptr().cast::<c_void>(),
            1,
            ptr::null(),
            ptr::null_mut(),
        )
    };
    let mut err = [0 as std::ffi::c_char; 64];

    inject(Some("shardline_config_new"));
    assert!(shardline_config_new().is_null());
    inject(Some("shardline_config_set"));
    let rc = unsafe {
        shardline_config_set(
            conf,
            c"region".as_ptr(),
            c"x".as_ptr(),
            err.as_mut_ptr(),
            64,
        )
    };
    assert_eq!(rc, SHARDLINE_PANIC);
    assert!(!unsafe { CStr::from_ptr(err.as_ptr()) }.is_empty());
    inject(Some("shardline_config_set_delivery_cb"));
    assert_eq!(
        shardline_config_set_delivery_cb(conf, None, ptr::null_mut()),
        SHARDLINE_PANIC
    );
    inject(Some("shardline_producer_new"));
    let mut other = ptr::null_mut();
    let rc = unsafe { shardline_producer_new(conf, &mut other, ptr::null_mut(), 0) };
    assert_eq!(rc, SHARDLINE_PANIC);
    assert!(other.is_null());
    inject(Some("shardline_producer_send"));
    assert_eq!(send(), SHARDLINE_PANIC);
    inject(Some("shardline_producer_send_blocking"));
    let rc = unsafe {
        shardline_producer_send_blocking(
            producer,
            c"s".as_ptr(),
            c"k".as_ptr(),
            1,
            ptr::null(),
            0,
            ptr::null(),
            ptr::null_mut(),
            0,
        )
    };
    assert_eq!(rc, SHARDLINE_PANIC);
    inject(Some("shardline_producer_poll"));
    assert_eq!(
        shardline_producer_poll(producer, 0),
        -(SHARDLINE_PANIC as i32)
    );
    inject(Some("shardline_producer_flush"));
    assert_eq!(shardline_producer_flush(producer, 0), SHARDLINE_PANIC);
    inject(Some("shardline_producer_outstanding"));
    assert_eq!(shardline_producer_outstanding(producer), 0);
    inject(Some("shardline_producer_metrics_json"));
    let mut json = ptr::null_mut();
    assert_eq!(
        unsafe { shardline_producer_metrics_json(producer, &mut json) },
        SHARDLINE_PANIC
    );
    assert!(json.is_null());
    inject(Some("shardline_string_free"));
    unsafe { shardline_string_free(ptr::null_mut()) };
    inject(Some("shardline_result_str"));
    assert!(!shardline_result_str(0).is_null());
    inject(Some("shardline_result_is_retryable"));
    assert!(!shardline_result_is_retryable(SHARDLINE_QUEUE_FULL as i32));
    inject(Some("shardline_version"));
    assert!(!crate::shardline_version().is_null());

    // A panicking free leaves the handle registered; it frees normally after.
    inject(Some("shardline_producer_free"));
    shardline_producer_free(producer);
    inject(Some("shardline_config_free"));
    shardline_config_free(conf);
    inject(None);
    assert_eq!(send(), SHARDLINE_OK);
    shardline_producer_free(producer);
    shardline_config_free(conf);
    assert_eq!(send(), SHARDLINE_INVALID_HANDLE);
}
