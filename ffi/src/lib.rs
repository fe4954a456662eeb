//! The C ABI of Redlock: `libredlock.so` / `libredlock.a` with the header `include/redlock.h`
//! (generated from this crate by cbindgen, committed, and checked for drift by
//! `tests/header.rs`).
//!
//! Two layers:
//!
//! 1. **The state machine** ([`redlock_config`], [`redlock_op`], [`redlock_lease`]): the C
//!    program does the I/O and the clock — hiredis, libuv, a `poll()` loop, raw sockets — and
//!    the sans-I/O [`redlock_core`] machines decide everything. No callbacks: C polls
//!    [`redlock_op_poll`](op::redlock_op_poll) for SEND / WAIT / DONE and feeds replies,
//!    transport errors and timeouts back with the time they happened.
//! 2. **A blocking client** ([`redlock_client`], [`redlock_lock`]) over the [`redlock`] runtime
//!    crate with an internal multi-thread tokio runtime, for programs that just want a lock.
//!    Thread-safe.
//!
//! The conventions are rustls-ffi's (they open the generated header): one [`redlock_result`]
//! enum with stable numbers and [`redlock_result_message`](result::redlock_result_message);
//! out-parameters written only on success; every pointer checked; `_new` / `_free` pairs with
//! `_free(NULL)` a no-op; `const` pointers never mutated; no panic crosses the boundary (every
//! body runs inside one of the two macros in `boundary.rs`); byte strings as pointer + length;
//! times as `uint64_t` milliseconds.
//!
//! Every exported function is `unsafe extern "C"`: the caller guarantees that each non-NULL
//! pointer is valid for what the function's documentation says it reads or writes, and that
//! objects are used as their documentation says (not concurrently, freed once). Within that
//! contract no input sequence can cause undefined behaviour, a panic across the boundary, or a
//! leak.

#![allow(non_camel_case_types)]
// The safety contract is the same for every function and is stated once, above and at the top
// of the generated header; each function documents what it reads and writes.
#![allow(clippy::missing_safety_doc)]
#![deny(unsafe_op_in_unsafe_fn)]

// The order of these modules is the order of the header: results, then the state machine,
// then the blocking client.
mod boundary;
pub mod result;

pub mod config;

pub mod op;

pub mod reply;

pub mod script;

pub mod lease;

pub mod client;

use std::ffi::c_char;

pub use client::{redlock_client, redlock_client_options, redlock_lock, redlock_release_report};
pub use config::redlock_config;
pub use lease::redlock_lease;
pub use op::{redlock_instance_report, redlock_op, redlock_output};
pub use reply::redlock_reply;
pub use result::redlock_result;

/// `"redlock-ffi/<version>"`: the version of the library actually loaded, NUL-terminated and
/// static. Compare with the header's `REDLOCK_VERSION_*` macros to detect a mismatch.
#[no_mangle]
pub extern "C" fn redlock_version() -> *const c_char {
    const VERSION: &str = concat!("redlock-ffi/", env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

#[cfg(test)]
mod tests {
    #[test]
    fn version_string_names_the_crate_version() {
        let v = unsafe { std::ffi::CStr::from_ptr(super::redlock_version()) };
        assert_eq!(
            v.to_str().unwrap(),
            format!("redlock-ffi/{}", env!("CARGO_PKG_VERSION"))
        );
    }
}
