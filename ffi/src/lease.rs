//! `redlock_lease`: a lock held on a quorum, as plain data.

use std::ffi::c_char;

use redlock_core::{Instant, Lease, TOKEN_LEN};

use crate::boundary::{check_out, ffi_result, ffi_value, free_handle, try_ref, write_out};
use crate::result::redlock_result;

/// A lock held on a quorum of instances: its keys, the random value stored in them, its TTL, and
/// the instant (on the caller's clock) until which it is valid — not a millisecond longer.
///
/// Obtained from a finished acquire or extend with `redlock_op_lease`; owned by the caller and
/// freed with `redlock_lease_free`. It is plain data: freeing it releases nothing (run a release
/// operation for that). Check `redlock_lease_is_valid` right before committing protected work.
///
/// Immutable: every function takes `const redlock_lease *`, so one lease may be read from
/// several threads at once.
#[derive(Debug)]
pub struct redlock_lease {
    pub(crate) lease: Lease,
    /// The value, NUL-terminated for C.
    value: [u8; TOKEN_LEN + 1],
}

impl redlock_lease {
    pub(crate) fn new(lease: Lease) -> Self {
        let mut value = [0u8; TOKEN_LEN + 1];
        value[..TOKEN_LEN].copy_from_slice(lease.value().as_bytes());
        Self { lease, value }
    }
}

/// Frees a lease. NULL is ignored. Does not release the lock.
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_free(lease: *mut redlock_lease) {
    ffi_value!((), {
        // SAFETY: NULL or a lease from `redlock_op_lease`, freed once (caller contract).
        unsafe { free_handle(lease) }
    })
}

/// The value stored in the lock's keys: 32 lowercase hex characters, NUL-terminated, owned by
/// the lease and valid until it is freed. NULL if `lease` is NULL.
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_value(lease: *const redlock_lease) -> *const c_char {
    ffi_value!(std::ptr::null(), {
        // SAFETY: NULL or a live lease (caller contract).
        match unsafe { try_ref(lease) } {
            Ok(l) => l.value.as_ptr().cast(),
            Err(_) => std::ptr::null(),
        }
    })
}

/// The first instant, in milliseconds on the caller's clock, at which the lease is no longer
/// valid (0 if `lease` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_valid_until_ms(lease: *const redlock_lease) -> u64 {
    ffi_value!(0, {
        // SAFETY: NULL or a live lease (caller contract).
        unsafe { try_ref(lease) }.map_or(0, |l| l.lease.valid_until().as_millis())
    })
}

/// The TTL the lock's keys were last set with, in milliseconds (0 if `lease` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_ttl_ms(lease: *const redlock_lease) -> u64 {
    ffi_value!(0, {
        // SAFETY: NULL or a live lease (caller contract).
        unsafe { try_ref(lease) }.map_or(0, |l| l.lease.ttl_ms())
    })
}

/// Whether the lease is still valid at `now_ms` (false if `lease` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_is_valid(lease: *const redlock_lease, now_ms: u64) -> bool {
    ffi_value!(false, {
        // SAFETY: NULL or a live lease (caller contract).
        unsafe { try_ref(lease) }.is_ok_and(|l| l.lease.is_valid(Instant::from_millis(now_ms)))
    })
}

/// Milliseconds of validity left at `now_ms`: 0 once expired, or if `lease` is NULL.
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_remaining_ms(
    lease: *const redlock_lease,
    now_ms: u64,
) -> u64 {
    ffi_value!(0, {
        // SAFETY: NULL or a live lease (caller contract).
        unsafe { try_ref(lease) }.map_or(0, |l| l.lease.remaining_ms(Instant::from_millis(now_ms)))
    })
}

/// The number of resource keys the lease covers (0 if `lease` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_resource_count(lease: *const redlock_lease) -> usize {
    ffi_value!(0, {
        // SAFETY: NULL or a live lease (caller contract).
        unsafe { try_ref(lease) }.map_or(0, |l| l.lease.resources().len())
    })
}

/// The `index`-th resource key: `*key_out` points into the lease (valid until it is freed, not
/// NUL-terminated) and `*key_len_out` is its length. Errors: `REDLOCK_RESULT_INVALID_PARAMETER`
/// for an index out of range, `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_lease_resource(
    lease: *const redlock_lease,
    index: usize,
    key_out: *mut *const u8,
    key_len_out: *mut usize,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live lease (caller contract).
        let l = unsafe { try_ref(lease) }?;
        let key_out = check_out(key_out)?;
        let len_out = check_out(key_len_out)?;
        let key = l
            .lease
            .resources()
            .get(index)
            .ok_or(redlock_result::InvalidParameter)?;
        // SAFETY: both checked non-NULL; the caller provides writable pointers.
        unsafe {
            write_out(key_out, key.as_ptr());
            write_out(len_out, key.len());
        }
        Ok(())
    }
}
