//! `redlock_client` and `redlock_lock`: the blocking layer, over the `redlock` runtime crate with
//! an internal multi-thread tokio runtime.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use redlock::{Lock, Redlock};
use redlock_core::{MAX_KEY_LEN, MAX_RESOURCES, TOKEN_LEN};
use tokio::runtime::Runtime;

use crate::boundary::{
    check_out, ffi_result, ffi_value, free_handle, into_handle, try_mut, try_ref, try_slice,
    try_str, write_out,
};
use crate::result::redlock_result;

/// Settings of a blocking client. Initialise with `redlock_client_options_default`, then change
/// fields. The values are validated by `redlock_client_new`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct redlock_client_options {
    /// Retries after a failed acquire attempt (default 3; 0 = a single attempt).
    pub retries: u32,
    /// Delay between attempts in milliseconds (default 200)...
    pub retry_delay_ms: u64,
    /// ...jittered uniformly by plus or minus this (default 100; at most `retry_delay_ms`).
    pub retry_jitter_ms: u64,
    /// Drift factor: `drift = floor(ttl * factor) + pad` (default 0.01).
    pub drift_factor: f64,
    /// Drift pad in milliseconds (default 2).
    pub drift_pad_ms: u64,
    /// A fixed per-instance timeout in milliseconds; 0 (the default) = 5 % of each lock's TTL,
    /// at least 10 ms.
    pub instance_timeout_ms: u64,
    /// The least validity worth having, in milliseconds (default 0).
    pub min_validity_ms: u64,
    /// An overall deadline for each acquire in milliseconds; 0 (the default) = none.
    pub acquire_deadline_ms: u64,
    /// How long a (re)connection may take, in milliseconds (default 1000).
    pub connect_timeout_ms: u64,
}

impl Default for redlock_client_options {
    fn default() -> Self {
        Self {
            retries: 3,
            retry_delay_ms: 200,
            retry_jitter_ms: 100,
            drift_factor: 0.01,
            drift_pad_ms: 2,
            instance_timeout_ms: 0,
            min_validity_ms: 0,
            acquire_deadline_ms: 0,
            connect_timeout_ms: 1000,
        }
    }
}

/// How a release went (`redlock_lock_release`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct redlock_release_report {
    /// Whether a quorum confirmed the keys are gone. When false, some keys may stay until their
    /// TTL (instances were unreachable).
    pub confirmed: bool,
    /// How many instances deleted a key.
    pub deleted: usize,
}

struct ClientInner {
    redlock: Option<Redlock>,
    runtime: Option<Runtime>,
}

impl ClientInner {
    fn redlock(&self) -> Result<&Redlock, redlock_result> {
        self.redlock.as_ref().ok_or(redlock_result::Panic)
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> Result<F::Output, redlock_result> {
        Ok(self
            .runtime
            .as_ref()
            .ok_or(redlock_result::Panic)?
            .block_on(f))
    }
}

/// How long freeing a client waits for cleanup still in flight (the releases a failed acquire
/// sends in the background) before stopping the runtime. What is cut short expires with its TTL.
const CLEANUP_GRACE: Duration = Duration::from_secs(2);

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            if let Some(redlock) = self.redlock.take() {
                // A failed acquire returns as soon as it has decided, and releases what it wrote
                // in background tasks; stopping the runtime now would cancel them and leave keys
                // until their TTL. `close` waits for exactly those tasks.
                runtime.block_on(async {
                    let _ = tokio::time::timeout(CLEANUP_GRACE, redlock.close()).await;
                });
                // The connections' tasks belong to the runtime: drop them inside it.
                let guard = runtime.enter();
                drop(redlock);
                drop(guard);
            }
            // Stopping joins the worker threads, so nothing outlives the client.
            drop(runtime);
        }
    }
}

/// A lock manager over N Redis instances, with its own connections (one multiplexed connection
/// per instance, reconnecting on use) and a small internal runtime (2 threads).
///
/// Created by `redlock_client_new`, freed by `redlock_client_free`. **Thread-safe:** the same
/// client may be used from several threads at once; calls block the calling thread only. Locks
/// keep what they need alive, so the client may be freed before its locks. Do not call its
/// functions from inside a Rust async runtime.
pub struct redlock_client {
    inner: Arc<ClientInner>,
}

impl std::fmt::Debug for redlock_client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("redlock_client")
            .field("redlock", &self.inner.redlock)
            .finish_non_exhaustive()
    }
}

/// A lock held on a quorum of instances, from `redlock_client_lock` and friends.
///
/// Owned by the caller: release it with `redlock_lock_release` and free it with
/// `redlock_lock_free` (which releases it first if needed). Check `redlock_lock_is_valid` right
/// before committing protected work. Not safe for concurrent use; may be moved between threads.
pub struct redlock_lock {
    client: Arc<ClientInner>,
    lock: Option<Lock>,
    value: [u8; TOKEN_LEN + 1],
}

impl std::fmt::Debug for redlock_lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("redlock_lock")
            .field("lock", &self.lock)
            .finish_non_exhaustive()
    }
}

impl redlock_lock {
    fn new(client: Arc<ClientInner>, lock: Lock) -> Self {
        let mut value = [0u8; TOKEN_LEN + 1];
        let text = lock.value();
        let n = text.len().min(TOKEN_LEN);
        value[..n].copy_from_slice(&text.as_bytes()[..n]);
        Self {
            client,
            lock: Some(lock),
            value,
        }
    }

    fn release(&mut self) -> Result<redlock::ReleaseReport, redlock_result> {
        let lock = self.lock.take().ok_or(redlock_result::AlreadyReleased)?;
        Ok(self.client.block_on(lock.release())??)
    }
}

impl Drop for redlock_lock {
    fn drop(&mut self) {
        if self.lock.is_some() {
            let _ = self.release();
        }
    }
}

/// Writes the default options into `*options_out`. Errors: `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_client_options_default(
    options_out: *mut redlock_client_options,
) -> redlock_result {
    ffi_result! {
        let out = check_out(options_out)?;
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, redlock_client_options::default()) };
        Ok(())
    }
}

/// Creates a client for the `n_urls` Redis instances at `urls` (NUL-terminated UTF-8:
/// `redis://[user:password@]host:port[/db]`, `rediss://...` for TLS), with `options` (NULL for
/// the defaults). Use an odd number of independent masters. It connects to every reachable
/// instance before returning; unreachable instances are no error here (a minority may be down)
/// and are retried on use.
///
/// Errors: `REDLOCK_RESULT_NO_INSTANCES`, `REDLOCK_RESULT_TOO_MANY_INSTANCES`,
/// `REDLOCK_RESULT_INVALID_UTF8`, `REDLOCK_RESULT_INVALID_URL`, the configuration codes (7100s)
/// for bad options, `REDLOCK_RESULT_NULL_PARAMETER`. On success `*client_out` is a new client
/// owned by the caller (free with `redlock_client_free`).
#[no_mangle]
pub unsafe extern "C" fn redlock_client_new(
    urls: *const *const c_char,
    n_urls: usize,
    options: *const redlock_client_options,
    client_out: *mut *mut redlock_client,
) -> redlock_result {
    ffi_result! {
        let out = check_out(client_out)?;
        if n_urls == 0 {
            return Err(redlock_result::NoInstances);
        }
        if urls.is_null() {
            return Err(redlock_result::NullParameter);
        }
        if n_urls > redlock_core::MAX_INSTANCES {
            return Err(redlock_result::TooManyInstances);
        }
        // SAFETY: an array of `n_urls` strings (caller contract).
        let urls = unsafe { try_slice(urls, n_urls) }?
            .iter()
            // SAFETY: each a NUL-terminated string (caller contract).
            .map(|&u| unsafe { try_str(u) }.map(str::to_owned))
            .collect::<Result<Vec<_>, _>>()?;
        let options = if options.is_null() {
            redlock_client_options::default()
        } else {
            // SAFETY: non-NULL, a live options struct (caller contract).
            *unsafe { try_ref(options) }?
        };
        let ms = Duration::from_millis;
        let mut builder = Redlock::builder(urls)
            .retries(options.retries)
            .retry_delay(ms(options.retry_delay_ms), ms(options.retry_jitter_ms))
            .drift(options.drift_factor, ms(options.drift_pad_ms))
            .min_validity(ms(options.min_validity_ms))
            .connect_timeout(ms(options.connect_timeout_ms));
        if options.instance_timeout_ms > 0 {
            builder = builder.instance_timeout(ms(options.instance_timeout_ms));
        }
        if options.acquire_deadline_ms > 0 {
            builder = builder.deadline(ms(options.acquire_deadline_ms));
        }
        // Validate everything before starting threads.
        builder.clone().build()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("redlock")
            .enable_all()
            .build()
            .map_err(|_| redlock_result::Other)?;
        let redlock = runtime.block_on(builder.connect())?;
        let client = redlock_client {
            inner: Arc::new(ClientInner {
                redlock: Some(redlock),
                runtime: Some(runtime),
            }),
        };
        // SAFETY: checked non-NULL.
        unsafe { write_out(out, into_handle(client)) };
        Ok(())
    }
}

/// Frees a client. Once no lock made by it is left, it waits (at most 2 s) for cleanup still in
/// flight — the releases a failed lock attempt sends after returning — then closes its
/// connections and stops its threads. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn redlock_client_free(client: *mut redlock_client) {
    ffi_value!((), {
        // SAFETY: NULL or a client from `redlock_client_new`, freed once (caller contract).
        unsafe { free_handle(client) }
    })
}

/// The number of instances N (0 if `client` is NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_client_instances(client: *const redlock_client) -> usize {
    ffi_value!(0, {
        // SAFETY: NULL or a live client (caller contract).
        unsafe { try_ref(client) }
            .ok()
            .and_then(|c| c.inner.redlock().ok().map(Redlock::instances))
            .unwrap_or(0)
    })
}

/// Collects resource keys, checking every length before reading.
///
/// # Safety
/// As `redlock_client_lock_all`.
unsafe fn keys<'a>(
    keys: *const *const u8,
    key_lens: *const usize,
    n_keys: usize,
) -> Result<Vec<&'a [u8]>, redlock_result> {
    if n_keys == 0 {
        return Err(redlock_result::NoResources);
    }
    if keys.is_null() || key_lens.is_null() {
        return Err(redlock_result::NullParameter);
    }
    if n_keys > MAX_RESOURCES {
        return Err(redlock_result::TooManyResources);
    }
    // SAFETY: arrays of `n_keys` elements (caller contract).
    let (keys, lens) = unsafe { (try_slice(keys, n_keys)?, try_slice(key_lens, n_keys)?) };
    keys.iter()
        .zip(lens)
        .map(|(&k, &len)| {
            if len > MAX_KEY_LEN {
                return Err(redlock_result::KeyTooLong);
            }
            // SAFETY: `len` readable bytes (caller contract), bounded above.
            unsafe { try_slice(k, len) }
        })
        .collect()
}

/// # Safety
/// As the exported lock functions.
unsafe fn lock_with(
    client: *const redlock_client,
    keys: Vec<&[u8]>,
    ttl_ms: u64,
    retries: Option<u32>,
    lock_out: *mut *mut redlock_lock,
) -> Result<(), redlock_result> {
    // SAFETY: NULL or a live client (caller contract).
    let client = unsafe { try_ref(client) }?;
    let out = check_out(lock_out)?;
    let mut options = redlock::LockOptions::new(Duration::from_millis(ttl_ms));
    if let Some(r) = retries {
        options = options.retries(r);
    }
    let redlock = client.inner.redlock()?;
    let lock = client
        .inner
        .block_on(redlock.lock_with(&keys, &options))??;
    let handle = redlock_lock::new(Arc::clone(&client.inner), lock);
    // SAFETY: checked non-NULL.
    unsafe { write_out(out, into_handle(handle)) };
    Ok(())
}

/// Locks one resource key (`key_len` bytes at `key`, binary allowed) for `ttl_ms`
/// milliseconds, retrying with the client's settings; blocks until locked or failed.
///
/// Errors: `REDLOCK_RESULT_CONTENDED` (another holder has it), `REDLOCK_RESULT_NO_QUORUM`
/// (instances down or failing), `REDLOCK_RESULT_VALIDITY_EXHAUSTED`,
/// `REDLOCK_RESULT_TTL_TOO_SHORT` (a zero TTL, or one not above its drift),
/// `REDLOCK_RESULT_EMPTY_KEY`, `REDLOCK_RESULT_KEY_TOO_LONG`, `REDLOCK_RESULT_NULL_PARAMETER`.
/// On success `*lock_out` is a new lock owned by the caller. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn redlock_client_lock(
    client: *const redlock_client,
    key: *const u8,
    key_len: usize,
    ttl_ms: u64,
    lock_out: *mut *mut redlock_lock,
) -> redlock_result {
    ffi_result! {
        // SAFETY: one key of `key_len` bytes (caller contract).
        let keys = unsafe { keys(&key, &key_len, 1) }?;
        // SAFETY: forwarded caller contract.
        unsafe { lock_with(client, keys, ttl_ms, None, lock_out) }
    }
}

/// As `redlock_client_lock`, with a single attempt: fails at once with
/// `REDLOCK_RESULT_CONTENDED` if another holder has the lock.
#[no_mangle]
pub unsafe extern "C" fn redlock_client_try_lock(
    client: *const redlock_client,
    key: *const u8,
    key_len: usize,
    ttl_ms: u64,
    lock_out: *mut *mut redlock_lock,
) -> redlock_result {
    ffi_result! {
        // SAFETY: one key of `key_len` bytes (caller contract).
        let keys = unsafe { keys(&key, &key_len, 1) }?;
        // SAFETY: forwarded caller contract.
        unsafe { lock_with(client, keys, ttl_ms, Some(0), lock_out) }
    }
}

/// Locks several resource keys together — on each instance all of them or none — for `ttl_ms`:
/// `keys[i]` points to `key_lens[i]` bytes, for `i < n_keys`. Errors: as
/// `redlock_client_lock`, and `REDLOCK_RESULT_NO_RESOURCES`, `REDLOCK_RESULT_TOO_MANY_RESOURCES`,
/// `REDLOCK_RESULT_DUPLICATE_RESOURCE`.
#[no_mangle]
pub unsafe extern "C" fn redlock_client_lock_all(
    client: *const redlock_client,
    keys: *const *const u8,
    key_lens: *const usize,
    n_keys: usize,
    ttl_ms: u64,
    lock_out: *mut *mut redlock_lock,
) -> redlock_result {
    ffi_result! {
        // SAFETY: arrays of `n_keys` (caller contract).
        let keys = unsafe { self::keys(keys, key_lens, n_keys) }?;
        // SAFETY: forwarded caller contract.
        unsafe { lock_with(client, keys, ttl_ms, None, lock_out) }
    }
}

/// Extends the lock so its keys live for `ttl_ms` from now, on a quorum; blocks until done. On
/// success, `*remaining_ms_out` (if not NULL) is the validity now left. Never revives an expired
/// lock or re-creates a key; on failure the validity may be shortened, never lengthened.
///
/// Errors: `REDLOCK_RESULT_EXPIRED`, `REDLOCK_RESULT_LOST` (the keys are gone or taken),
/// `REDLOCK_RESULT_NO_QUORUM`, `REDLOCK_RESULT_VALIDITY_EXHAUSTED`,
/// `REDLOCK_RESULT_ALREADY_RELEASED`, `REDLOCK_RESULT_TTL_TOO_SHORT`,
/// `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_extend(
    lock: *mut redlock_lock,
    ttl_ms: u64,
    remaining_ms_out: *mut u64,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live lock, not used concurrently (caller contract).
        let handle = unsafe { try_mut(lock) }?;
        let lock = handle.lock.as_ref().ok_or(redlock_result::AlreadyReleased)?;
        let remaining = handle
            .client
            .block_on(lock.extend(Duration::from_millis(ttl_ms)))??;
        if !remaining_ms_out.is_null() {
            let ms = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
            // SAFETY: non-NULL, writable (caller contract).
            unsafe { write_out(remaining_ms_out, ms) };
        }
        Ok(())
    }
}

/// Releases the lock on every instance (only keys still holding its value are deleted); blocks
/// until every instance answered or timed out. On success, `*report_out` (if not NULL) tells
/// how it went. The lock handle stays allocated: free it with `redlock_lock_free`.
///
/// Errors: `REDLOCK_RESULT_ALREADY_RELEASED`, `REDLOCK_RESULT_NULL_PARAMETER`.
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_release(
    lock: *mut redlock_lock,
    report_out: *mut redlock_release_report,
) -> redlock_result {
    ffi_result! {
        // SAFETY: NULL or a live lock, not used concurrently (caller contract).
        let handle = unsafe { try_mut(lock) }?;
        let report = handle.release()?;
        if !report_out.is_null() {
            let report = redlock_release_report {
                confirmed: report.confirmed,
                deleted: report.deleted,
            };
            // SAFETY: non-NULL, writable (caller contract).
            unsafe { write_out(report_out, report) };
        }
        Ok(())
    }
}

/// Frees a lock, first releasing it (blocking) if it is still held. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_free(lock: *mut redlock_lock) {
    ffi_value!((), {
        // SAFETY: NULL or a lock from this library, freed once (caller contract).
        unsafe { free_handle(lock) }
    })
}

/// The value stored in the lock's keys: 32 lowercase hex characters, NUL-terminated, owned by
/// the lock and valid until it is freed. NULL if `lock` is NULL.
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_value(lock: *const redlock_lock) -> *const c_char {
    ffi_value!(std::ptr::null(), {
        // SAFETY: NULL or a live lock (caller contract).
        match unsafe { try_ref(lock) } {
            Ok(l) => l.value.as_ptr().cast(),
            Err(_) => std::ptr::null(),
        }
    })
}

/// Milliseconds of validity left now: 0 once expired, lost or released, or if `lock` is NULL.
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_remaining_ms(lock: *const redlock_lock) -> u64 {
    ffi_value!(0, {
        // SAFETY: NULL or a live lock (caller contract).
        unsafe { try_ref(lock) }
            .ok()
            .and_then(|l| l.lock.as_ref())
            .map_or(0, |l| {
                u64::try_from(l.remaining_validity().as_millis()).unwrap_or(u64::MAX)
            })
    })
}

/// Whether the lock is still valid now (false once expired, lost or released, or if `lock` is
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn redlock_lock_is_valid(lock: *const redlock_lock) -> bool {
    ffi_value!(false, {
        // SAFETY: NULL or a live lock (caller contract).
        unsafe { try_ref(lock) }
            .ok()
            .and_then(|l| l.lock.as_ref())
            .is_some_and(Lock::is_valid)
    })
}

#[cfg(test)]
mod tests {
    use std::ptr;

    use super::*;

    fn new_client(urls: &[&std::ffi::CStr]) -> Result<*mut redlock_client, redlock_result> {
        let ptrs: Vec<*const c_char> = urls.iter().map(|u| u.as_ptr()).collect();
        let mut c = ptr::null_mut();
        match unsafe { redlock_client_new(ptrs.as_ptr(), ptrs.len(), ptr::null(), &mut c) } {
            redlock_result::Ok => Ok(c),
            e => {
                assert!(c.is_null());
                Err(e)
            }
        }
    }

    #[test]
    fn bad_urls_and_options_are_refused_without_starting_anything() {
        assert_eq!(
            new_client(&[c"redis://127.0.0.1:1", c"redis://\xff"]).unwrap_err(),
            redlock_result::InvalidUtf8
        );
        assert_eq!(
            new_client(&[c"http://127.0.0.1:1"]).unwrap_err(),
            redlock_result::InvalidUrl
        );
        assert_eq!(new_client(&[]).unwrap_err(), redlock_result::NoInstances);
        let opts = redlock_client_options {
            retry_jitter_ms: 500,
            ..Default::default()
        };
        let url = [c"redis://127.0.0.1:1".as_ptr()];
        let mut c = ptr::null_mut();
        assert_eq!(
            unsafe { redlock_client_new(url.as_ptr(), 1, &opts, &mut c) },
            redlock_result::JitterAboveDelay
        );
        assert_eq!(
            unsafe { redlock_client_new(ptr::null(), 1, ptr::null(), &mut c) },
            redlock_result::NullParameter
        );
        assert!(c.is_null());
    }

    #[test]
    fn handles_are_send_and_the_client_is_sync() {
        fn is_send<T: Send>() {}
        fn is_sync<T: Sync>() {}
        is_send::<redlock_client>();
        is_sync::<redlock_client>();
        is_send::<redlock_lock>();
    }
}
