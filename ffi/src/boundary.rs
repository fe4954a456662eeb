//! The panic boundary and the pointer checks every exported function goes through.
//!
//! Every `extern "C"` body is one of two macros: [`ffi_result!`] for functions that return a
//! [`redlock_result`] (the body is a closure returning `Result<(), redlock_result>`, so `?`
//! works), and [`ffi_value!`] for the few that return a plain value with a fallback. A panic
//! becomes `REDLOCK_RESULT_PANIC` (or the fallback) instead of unwinding into C.
//!
//! The helpers below turn raw arguments into references and slices after checking them; they
//! are the only places that dereference caller pointers.

use std::ffi::{c_char, CStr};

use crate::result::redlock_result;

/// Runs a body returning `Result<(), redlock_result>` and converts it to a `redlock_result`,
/// catching panics.
macro_rules! ffi_result {
    ($($body:tt)*) => {{
        let run = || -> ::core::result::Result<(), $crate::result::redlock_result> { $($body)* };
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(run)) {
            Ok(Ok(())) => $crate::result::redlock_result::Ok,
            Ok(Err(code)) => code,
            Err(_) => $crate::result::redlock_result::Panic,
        }
    }};
}

/// Runs a body returning a plain value, with `$fallback` if it panics.
macro_rules! ffi_value {
    ($fallback:expr, $($body:tt)*) => {{
        let run = || { $($body)* };
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(run)) {
            Ok(value) => value,
            Err(_) => $fallback,
        }
    }};
}

pub(crate) use {ffi_result, ffi_value};

/// A shared reference from a pointer the caller passed, or `NullParameter`.
///
/// # Safety
/// `ptr` must be NULL or point to a live `T` that nothing mutates for `'a`.
pub(crate) unsafe fn try_ref<'a, T>(ptr: *const T) -> Result<&'a T, redlock_result> {
    // SAFETY: the caller guarantees `ptr` is NULL or valid; `as_ref` handles NULL.
    unsafe { ptr.as_ref() }.ok_or(redlock_result::NullParameter)
}

/// An exclusive reference from a pointer the caller passed, or `NullParameter`.
///
/// # Safety
/// `ptr` must be NULL or point to a live `T` that nothing else uses for `'a`.
pub(crate) unsafe fn try_mut<'a, T>(ptr: *mut T) -> Result<&'a mut T, redlock_result> {
    // SAFETY: as for `try_ref`, and the caller guarantees exclusivity.
    unsafe { ptr.as_mut() }.ok_or(redlock_result::NullParameter)
}

/// A byte slice from `(ptr, len)`: NULL with length 0 is the empty slice, NULL otherwise is
/// `NullParameter`.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `len` bytes for `'a`.
pub(crate) unsafe fn try_slice<'a, T>(
    ptr: *const T,
    len: usize,
) -> Result<&'a [T], redlock_result> {
    if ptr.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(redlock_result::NullParameter)
        };
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(redlock_result::InvalidParameter);
    }
    // SAFETY: non-NULL, the caller guarantees `len` readable elements, and the total size fits
    // in an isize (checked above).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A UTF-8 string from a NUL-terminated C string: `NullParameter` or `InvalidUtf8`.
///
/// # Safety
/// A non-NULL `ptr` must point to a NUL-terminated string valid for `'a`.
pub(crate) unsafe fn try_str<'a>(ptr: *const c_char) -> Result<&'a str, redlock_result> {
    if ptr.is_null() {
        return Err(redlock_result::NullParameter);
    }
    // SAFETY: non-NULL and NUL-terminated per the caller.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| redlock_result::InvalidUtf8)
}

/// Checks an out-pointer: it must not be NULL. Write it with [`write_out`] once everything else
/// succeeded.
pub(crate) fn check_out<T>(ptr: *mut T) -> Result<*mut T, redlock_result> {
    if ptr.is_null() {
        Err(redlock_result::NullParameter)
    } else {
        Ok(ptr)
    }
}

/// Writes an out-parameter checked by [`check_out`] (without reading or dropping what was there:
/// C memory may be uninitialised).
///
/// # Safety
/// `ptr` must be non-NULL, aligned and valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, value: T) {
    // SAFETY: per the caller.
    unsafe { ptr.write(value) }
}

/// Moves `value` to the heap and hands its ownership to the caller.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops a handle made by [`into_handle`]; NULL is ignored.
///
/// # Safety
/// `ptr` must be NULL or come from `into_handle::<T>` and not have been freed.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: per the caller, `ptr` came from `Box::into_raw` and is freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_panic_code() {
        let r = ffi_result! {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            Ok(())
        };
        assert_eq!(r, redlock_result::Panic);
        let v: u64 = ffi_value!(7, {
            if std::hint::black_box(true) {
                panic!("boom");
            }
            1
        });
        assert_eq!(v, 7);
    }

    #[test]
    fn errors_and_success_pass_through() {
        assert_eq!(ffi_result! { Ok(()) }, redlock_result::Ok);
        assert_eq!(
            ffi_result! { Err(redlock_result::KeyTooLong) },
            redlock_result::KeyTooLong
        );
    }

    #[test]
    fn slices_check_null_and_length() {
        unsafe {
            assert_eq!(try_slice::<u8>(std::ptr::null(), 0), Ok(&[][..]));
            assert_eq!(
                try_slice::<u8>(std::ptr::null(), 3),
                Err(redlock_result::NullParameter)
            );
            let b = [1u8, 2];
            assert_eq!(
                try_slice(b.as_ptr(), usize::MAX),
                Err(redlock_result::InvalidParameter)
            );
            assert_eq!(try_slice(b.as_ptr(), 2), Ok(&b[..]));
        }
    }

    #[test]
    fn strings_must_be_utf8() {
        unsafe {
            assert_eq!(try_str(c"redis://x".as_ptr()), Ok("redis://x"));
            assert_eq!(
                try_str(c"redis://\xff".as_ptr()),
                Err(redlock_result::InvalidUtf8)
            );
            assert_eq!(
                try_str(std::ptr::null()),
                Err(redlock_result::NullParameter)
            );
        }
    }
}
