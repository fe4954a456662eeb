//! `redlock_config`: the validated algorithm parameters every operation runs with.

use std::time::Duration;

use redlock_core::Config;

use crate::boundary::{
    check_out, ffi_result, ffi_value, free_handle, into_handle, try_mut, try_ref, write_out,
};
use crate::result::redlock_result;

/// The largest number of Redis instances one configuration may name.
pub const REDLOCK_MAX_INSTANCES: u32 = 16;
// A literal so cbindgen can write it into the header; kept equal to the core's.
const _: () = assert!(REDLOCK_MAX_INSTANCES as usize == redlock_core::MAX_INSTANCES);

/// Parameters of the Redlock algorithm: the number of instances N, the lease TTL, drift,
/// per-instance timeout, retries, minimum validity and overall acquire deadline.
///
/// Created by `redlock_config_new` with the defaults below, changed by the `redlock_config_set_*`
/// functions (each validates; on an error the configuration is unchanged), freed by
/// `redlock_config_free`. An operation copies the configuration when it is created, so the
/// configuration may be changed or freed while operations made from it run.
///
/// | parameter | default |
/// |---|---|
/// | quorum | N / 2 + 1 of the configured N |
/// | drift | floor(ttl * 0.01) + 2 ms |
/// | instance timeout | 5 % of the TTL, at least 10 ms |
/// | retries | 3 (4 attempts), 200 ms +- 100 ms apart |
/// | minimum validity | 0 |
/// | acquire deadline | none |
///
/// Not safe for concurrent mutation; the `const` functions may run concurrently.
#[derive(Debug)]
pub struct redlock_config {
    pub(crate) config: Config,
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Applies a validated change to the configuration behind `config`.
///
/// # Safety
/// `config` must be NULL or a live configuration not used concurrently.
unsafe fn update(
    config: *mut redlock_config,
    change: impl FnOnce(Config) -> Result<Config, redlock_core::ConfigError>,
) -> redlock_result {
    ffi_result! {
        // SAFETY: per the caller.
        let c = unsafe { try_mut(config) }?;
        c.config = change(c.config)?;
        Ok(())
    }
}

/// Creates a configuration for `instances` Redis masters and leases of `ttl_ms` milliseconds,
/// with the defaults listed on `redlock_config`.
///
/// Errors: `REDLOCK_RESULT_NO_INSTANCES` (0 instances), `REDLOCK_RESULT_TOO_MANY_INSTANCES`
/// (more than `REDLOCK_MAX_INSTANCES`), `REDLOCK_RESULT_TTL_TOO_SHORT` (a zero TTL, or one not
/// above its drift), `REDLOCK_RESULT_NULL_PARAMETER`.
///
/// On success `*config_out` is a new configuration owned by the caller, to be freed with
/// `redlock_config_free`.
#[no_mangle]
pub unsafe extern "C" fn redlock_config_new(
    instances: u32,
    ttl_ms: u64,
    config_out: *mut *mut redlock_config,
) -> redlock_result {
    ffi_result! {
        let out = check_out(config_out)?;
        let instances = usize::try_from(instances).unwrap_or(usize::MAX);
        let config = Config::new(instances, ms(ttl_ms))?;
        // SAFETY: checked non-NULL; the caller provides a writable pointer.
        unsafe { write_out(out, into_handle(redlock_config { config })) };
        Ok(())
    }
}

/// Frees a configuration. NULL is ignored. Operations made from it are not affected.
#[no_mangle]
pub unsafe extern "C" fn redlock_config_free(config: *mut redlock_config) {
    ffi_value!((), {
        // SAFETY: the caller passes NULL or a configuration from `redlock_config_new`, once.
        unsafe { free_handle(config) }
    })
}

/// Sets the lease TTL in milliseconds (the `PX` of every acquire and extend made with this
/// configuration). Errors: `REDLOCK_RESULT_TTL_TOO_SHORT` (zero or not above its drift),
/// `REDLOCK_RESULT_TIMEOUT_NOT_BELOW_TTL` (a fixed instance timeout is not below it).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_ttl(
    config: *mut redlock_config,
    ttl_ms: u64,
) -> redlock_result {
    // SAFETY: forwarded caller contract.
    unsafe { update(config, |c| c.with_ttl(ms(ttl_ms))) }
}

/// Sets the number of retries after a failed acquire attempt (0: a single attempt) and the delay
/// between attempts, drawn uniformly from `[delay_ms - jitter_ms, delay_ms + jitter_ms]`.
/// Errors: `REDLOCK_RESULT_JITTER_ABOVE_DELAY`.
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_retry(
    config: *mut redlock_config,
    retries: u32,
    delay_ms: u64,
    jitter_ms: u64,
) -> redlock_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        update(config, |c| {
            c.with_retry_count(retries)?
                .with_retry_delay(ms(delay_ms), ms(jitter_ms))
        })
    }
}

/// Sets the clock drift allowance: `drift = floor(ttl * factor) + pad_ms`. Errors:
/// `REDLOCK_RESULT_INVALID_DRIFT_FACTOR` (not a finite number in [0, 1)),
/// `REDLOCK_RESULT_TTL_TOO_SHORT` (the TTL would no longer exceed the drift).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_drift(
    config: *mut redlock_config,
    factor: f64,
    pad_ms: u64,
) -> redlock_result {
    // SAFETY: forwarded caller contract.
    unsafe {
        update(config, |c| {
            c.with_drift_factor(factor)?.with_drift_pad(ms(pad_ms))
        })
    }
}

/// Sets a fixed per-instance timeout: how long one instance may take to answer before it counts
/// as a "no". Errors: `REDLOCK_RESULT_TIMEOUT_NOT_BELOW_TTL` (zero, or not below the TTL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_instance_timeout(
    config: *mut redlock_config,
    timeout_ms: u64,
) -> redlock_result {
    // SAFETY: forwarded caller contract.
    unsafe { update(config, |c| c.with_instance_timeout(ms(timeout_ms))) }
}

/// Sets the least validity worth having: an acquire or extend whose validity would not exceed it
/// fails with `REDLOCK_OUTCOME_VALIDITY_EXHAUSTED`. Errors: `REDLOCK_RESULT_TTL_TOO_SHORT`.
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_min_validity(
    config: *mut redlock_config,
    min_validity_ms: u64,
) -> redlock_result {
    // SAFETY: forwarded caller contract.
    unsafe { update(config, |c| c.with_min_validity(ms(min_validity_ms))) }
}

/// Sets an overall deadline for an acquire, measured from its start: no attempt starts after
/// it. 0 removes the deadline (the default: the retry count alone bounds an acquire).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_set_acquire_deadline(
    config: *mut redlock_config,
    deadline_ms: u64,
) -> redlock_result {
    let deadline = (deadline_ms > 0).then(|| ms(deadline_ms));
    // SAFETY: forwarded caller contract.
    unsafe { update(config, |c| c.with_acquire_deadline(deadline)) }
}

/// The configured number of instances N (0 if `config` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_instances(config: *const redlock_config) -> u32 {
    ffi_value!(0, {
        // SAFETY: the caller passes NULL or a live configuration.
        unsafe { try_ref(config) }.map_or(0, |c| c.config.instances() as u32)
    })
}

/// The quorum N / 2 + 1 (0 if `config` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_quorum(config: *const redlock_config) -> u32 {
    ffi_value!(0, {
        // SAFETY: the caller passes NULL or a live configuration.
        unsafe { try_ref(config) }.map_or(0, |c| c.config.quorum() as u32)
    })
}

/// The lease TTL in milliseconds (0 if `config` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_ttl_ms(config: *const redlock_config) -> u64 {
    ffi_value!(0, {
        // SAFETY: the caller passes NULL or a live configuration.
        unsafe { try_ref(config) }.map_or(0, |c| c.config.ttl_ms())
    })
}

/// The drift subtracted from the TTL, in milliseconds (0 if `config` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_drift_ms(config: *const redlock_config) -> u64 {
    ffi_value!(0, {
        // SAFETY: the caller passes NULL or a live configuration.
        unsafe { try_ref(config) }.map_or(0, |c| c.config.drift_ms())
    })
}

/// The per-instance timeout in milliseconds, resolved when automatic (0 if `config` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_config_instance_timeout_ms(config: *const redlock_config) -> u64 {
    ffi_value!(0, {
        // SAFETY: the caller passes NULL or a live configuration.
        unsafe { try_ref(config) }.map_or(0, |c| c.config.instance_timeout_ms())
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    fn new(instances: u32, ttl: u64) -> Result<*mut redlock_config, redlock_result> {
        let mut c = ptr::null_mut();
        match unsafe { redlock_config_new(instances, ttl, &mut c) } {
            redlock_result::Ok => Ok(c),
            e => {
                assert!(c.is_null(), "out-parameter written on failure");
                Err(e)
            }
        }
    }

    #[test]
    fn defaults_and_getters() {
        let c = new(5, 10_000).unwrap();
        unsafe {
            assert_eq!(redlock_config_instances(c), 5);
            assert_eq!(redlock_config_quorum(c), 3);
            assert_eq!(redlock_config_ttl_ms(c), 10_000);
            assert_eq!(redlock_config_drift_ms(c), 102);
            assert_eq!(redlock_config_instance_timeout_ms(c), 500);
            redlock_config_free(c);
        }
    }

    #[test]
    fn bad_values_get_their_codes_and_leave_the_config_unchanged() {
        assert_eq!(new(0, 1000), Err(redlock_result::NoInstances));
        assert_eq!(new(17, 1000), Err(redlock_result::TooManyInstances));
        assert_eq!(new(3, 0), Err(redlock_result::TtlTooShort));
        assert_eq!(
            unsafe { redlock_config_new(3, 1000, ptr::null_mut()) },
            redlock_result::NullParameter
        );
        let c = new(3, 1000).unwrap();
        unsafe {
            assert_eq!(redlock_config_set_ttl(c, 0), redlock_result::TtlTooShort);
            assert_eq!(
                redlock_config_set_instance_timeout(c, 1000),
                redlock_result::TimeoutNotBelowTtl
            );
            assert_eq!(
                redlock_config_set_drift(c, f64::NAN, 2),
                redlock_result::InvalidDriftFactor
            );
            assert_eq!(
                redlock_config_set_retry(c, 1, 10, 20),
                redlock_result::JitterAboveDelay
            );
            assert_eq!(redlock_config_ttl_ms(c), 1000);
            assert_eq!(redlock_config_set_ttl(c, 2000), redlock_result::Ok);
            assert_eq!(redlock_config_ttl_ms(c), 2000);
            assert_eq!(
                redlock_config_set_ttl(ptr::null_mut(), 2000),
                redlock_result::NullParameter
            );
            assert_eq!(redlock_config_quorum(ptr::null()), 0);
            redlock_config_free(c);
            redlock_config_free(ptr::null_mut());
        }
    }
}
