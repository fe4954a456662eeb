//! The Lua scripts, for hosts that preload them with `SCRIPT LOAD` when they connect.

use redlock_core::SCRIPTS;

use crate::boundary::{check_out, ffi_result, write_out};
use crate::result::redlock_result;

/// The number of Lua scripts the operations may run (`EVALSHA` / `EVAL`).
#[no_mangle]
pub extern "C" fn redlock_script_count() -> usize {
    SCRIPTS.len()
}

/// The source of script `index` (below `redlock_script_count()`): `*source_out` points to
/// `*len_out` bytes of static memory (not NUL-terminated, never freed).
///
/// Send `SCRIPT LOAD <source>` for each script on every new connection, as the blocking client
/// does: an instance that has not cached a script answers its `EVALSHA` with `NOSCRIPT`, and
/// although operations resend their own commands as `EVAL`, a cleanup release that gets
/// `NOSCRIPT` is not resent, so the key it was to delete would stay until its TTL.
///
/// Errors: `REDLOCK_RESULT_INVALID_PARAMETER` (index out of range),
/// `REDLOCK_RESULT_NULL_PARAMETER`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn redlock_script_source(
    index: usize,
    source_out: *mut *const u8,
    len_out: *mut usize,
) -> redlock_result {
    ffi_result! {
        let source_out = check_out(source_out)?;
        let len_out = check_out(len_out)?;
        let script = SCRIPTS.get(index).ok_or(redlock_result::InvalidParameter)?;
        // SAFETY: both checked non-NULL; the caller provides writable pointers.
        unsafe {
            write_out(source_out, script.source.as_ptr());
            write_out(len_out, script.source.len());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_is_reachable() {
        assert_eq!(redlock_script_count(), SCRIPTS.len());
        for (i, script) in SCRIPTS.iter().enumerate() {
            let (mut p, mut n) = (std::ptr::null(), 0);
            assert_eq!(
                unsafe { redlock_script_source(i, &mut p, &mut n) },
                redlock_result::Ok
            );
            let text = unsafe { std::slice::from_raw_parts(p, n) };
            assert_eq!(text, script.source.as_bytes());
        }
        let (mut p, mut n) = (std::ptr::null(), 0);
        assert_eq!(
            unsafe { redlock_script_source(99, &mut p, &mut n) },
            redlock_result::InvalidParameter
        );
        assert!(p.is_null());
    }
}
