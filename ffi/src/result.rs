//! The one result enum, its stable numbers, and the messages.

use std::ffi::c_char;

use redlock_core::{ConfigError, Error};

/// What a function did. `REDLOCK_RESULT_OK` is 0, so `if (r != REDLOCK_RESULT_OK)` and `if (r)`
/// both test for failure. Other codes are grouped by range and never renumbered or reused:
///
/// - 7000s: misuse of the API (NULL, bad values, wrong state);
/// - 7100s: a configuration the algorithm refuses;
/// - 7200s: keys, instances and clock readings the state machine refuses;
/// - 7300s: why the blocking client could not lock, extend or release.
///
/// Numbers this version does not know get the message "unknown result code".
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum redlock_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 7001,
    /// An argument is out of range or not one of the values its type allows (an unknown
    /// `redlock_reply_kind`, a seed of the wrong length, a length too large for memory…).
    InvalidParameter = 7002,
    /// An internal bug (a Rust panic) was caught at the boundary; the object involved may be
    /// unusable and should be freed.
    Panic = 7003,
    /// The caller's buffer is too small; the needed size was written to the size out-parameter.
    InsufficientSize = 7004,
    /// A string is not valid UTF-8 (a URL).
    InvalidUtf8 = 7005,
    /// The operation is not finished yet (poll until `REDLOCK_OUTPUT_KIND_DONE`).
    NotDone = 7006,
    /// The finished operation has no lease (the acquire failed, or it was a release).
    NoLease = 7007,
    /// The operating system's random number generator failed.
    RandomUnavailable = 7008,
    /// `redlock_resp_parse`: the buffer does not hold a complete reply yet; read more bytes.
    Incomplete = 7009,
    /// `redlock_resp_parse`: the bytes are not RESP; the connection is out of sync, close it.
    ProtocolError = 7010,
    /// The operation does not support this call (cancelling an extend or a release).
    WrongOperation = 7011,

    /// A configuration needs at least one instance.
    NoInstances = 7100,
    /// More instances than `REDLOCK_MAX_INSTANCES`.
    TooManyInstances = 7101,
    /// The TTL is zero, or not longer than its drift plus the minimum validity.
    TtlTooShort = 7102,
    /// The per-instance timeout is zero or not below the TTL.
    TimeoutNotBelowTtl = 7103,
    /// The drift factor is not a finite number in [0, 1).
    InvalidDriftFactor = 7104,
    /// The retry jitter exceeds the retry delay.
    JitterAboveDelay = 7105,

    /// A resource key is empty.
    EmptyKey = 7200,
    /// A resource key is longer than `REDLOCK_MAX_KEY_LEN` bytes.
    KeyTooLong = 7201,
    /// More than `REDLOCK_MAX_RESOURCES` keys, or more than `REDLOCK_MAX_RESOURCES_LEN` key
    /// bytes in all.
    TooManyResources = 7202,
    /// The same key was given twice.
    DuplicateResource = 7203,
    /// A lock needs at least one key.
    NoResources = 7204,
    /// An instance index outside `0..N`; the input was ignored.
    UnknownInstance = 7205,
    /// A time earlier than one fed before. The operation has failed closed: an acquire ends
    /// without a lease (cleaning up what it sent), an extend ends without extending.
    TimeWentBackwards = 7206,

    /// Another holder has the lock.
    Contended = 7300,
    /// Too few instances were reachable and working for a quorum.
    NoQuorum = 7301,
    /// A quorum answered, but too slowly to leave the minimum validity.
    ValidityExhausted = 7302,
    /// The lock is no longer held on a quorum (an extend found its keys gone or taken).
    Lost = 7303,
    /// The lease had already expired; it is never extended.
    Expired = 7304,
    /// The lock was already released.
    AlreadyReleased = 7305,
    /// A Redis URL could not be used (scheme, host, port, credentials).
    InvalidUrl = 7306,
    /// A failure this version of the binding has no code for; see the library's log.
    Other = 7399,
}

impl redlock_result {
    /// Every code. `ffi/tests/header.rs` checks that each code in the header has a message, so a
    /// variant missing here is caught.
    pub(crate) const ALL: &'static [Self] = &[
        Self::Ok,
        Self::NullParameter,
        Self::InvalidParameter,
        Self::Panic,
        Self::InsufficientSize,
        Self::InvalidUtf8,
        Self::NotDone,
        Self::NoLease,
        Self::RandomUnavailable,
        Self::Incomplete,
        Self::ProtocolError,
        Self::WrongOperation,
        Self::NoInstances,
        Self::TooManyInstances,
        Self::TtlTooShort,
        Self::TimeoutNotBelowTtl,
        Self::InvalidDriftFactor,
        Self::JitterAboveDelay,
        Self::EmptyKey,
        Self::KeyTooLong,
        Self::TooManyResources,
        Self::DuplicateResource,
        Self::NoResources,
        Self::UnknownInstance,
        Self::TimeWentBackwards,
        Self::Contended,
        Self::NoQuorum,
        Self::ValidityExhausted,
        Self::Lost,
        Self::Expired,
        Self::AlreadyReleased,
        Self::InvalidUrl,
        Self::Other,
    ];

    /// The message, NUL-terminated.
    pub(crate) fn message(self) -> &'static std::ffi::CStr {
        match self {
            Self::Ok => c"ok",
            Self::NullParameter => c"a required pointer argument was NULL",
            Self::InvalidParameter => c"an argument is out of range or not a known value",
            Self::Panic => c"internal error: a panic was caught at the C boundary",
            Self::InsufficientSize => c"the buffer is too small",
            Self::InvalidUtf8 => c"a string is not valid UTF-8",
            Self::NotDone => c"the operation is not finished yet",
            Self::NoLease => c"the operation has no lease",
            Self::RandomUnavailable => c"the operating system's random number generator failed",
            Self::Incomplete => c"incomplete reply: more bytes are needed",
            Self::ProtocolError => c"the bytes are not a valid RESP reply",
            Self::WrongOperation => c"the operation does not support this call",
            Self::NoInstances => c"at least one redis instance is required",
            Self::TooManyInstances => c"too many redis instances",
            Self::TtlTooShort => {
                c"ttl is zero or too short: it must exceed drift plus minimum validity"
            }
            Self::TimeoutNotBelowTtl => c"instance timeout must be positive and below the ttl",
            Self::InvalidDriftFactor => c"drift factor must be a finite number in [0, 1)",
            Self::JitterAboveDelay => c"retry jitter must not exceed the retry delay",
            Self::EmptyKey => c"resource key is empty",
            Self::KeyTooLong => c"resource key is too long",
            Self::TooManyResources => c"too many resource keys, or too many key bytes in all",
            Self::DuplicateResource => c"the same resource key was given twice",
            Self::NoResources => c"a lock needs at least one resource key",
            Self::UnknownInstance => c"instance index out of range",
            Self::TimeWentBackwards => c"clock went backwards; the operation failed closed",
            Self::Contended => c"lock is held by another holder",
            Self::NoQuorum => c"no quorum: too few redis instances reachable and working",
            Self::ValidityExhausted => c"validity exhausted: instances answered too slowly",
            Self::Lost => c"lock lost: no longer held on a quorum of instances",
            Self::Expired => c"lease already expired",
            Self::AlreadyReleased => c"lock already released",
            Self::InvalidUrl => c"invalid redis url",
            Self::Other => c"failure without a specific code",
        }
    }

    fn from_u32(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| *r as u32 == code)
    }
}

/// A static, NUL-terminated, lowercase English message for a result code; unknown numbers give
/// "unknown result code". Never NULL; the string must not be freed. Thread-safe.
#[no_mangle]
pub extern "C" fn redlock_result_message(result: u32) -> *const c_char {
    // Nothing here can panic, but the boundary costs nothing.
    crate::boundary::ffi_value!(
        c"unknown result code".as_ptr(),
        match redlock_result::from_u32(result) {
            Some(r) => r.message().as_ptr(),
            None => c"unknown result code".as_ptr(),
        }
    )
}

impl From<ConfigError> for redlock_result {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::NoInstances => Self::NoInstances,
            ConfigError::TooManyInstances { .. } => Self::TooManyInstances,
            ConfigError::TtlTooShort { .. } => Self::TtlTooShort,
            ConfigError::TimeoutNotBelowTtl { .. } => Self::TimeoutNotBelowTtl,
            ConfigError::InvalidDriftFactor => Self::InvalidDriftFactor,
            ConfigError::JitterAboveDelay => Self::JitterAboveDelay,
            _ => Self::InvalidParameter,
        }
    }
}

impl From<Error> for redlock_result {
    fn from(e: Error) -> Self {
        match e {
            Error::EmptyKey => Self::EmptyKey,
            Error::KeyTooLong { .. } => Self::KeyTooLong,
            Error::TooManyResources => Self::TooManyResources,
            Error::DuplicateResource => Self::DuplicateResource,
            Error::NoResources => Self::NoResources,
            Error::UnknownInstance { .. } => Self::UnknownInstance,
            Error::TimeWentBackwards { .. } => Self::TimeWentBackwards,
            _ => Self::InvalidParameter,
        }
    }
}

impl From<redlock::Error> for redlock_result {
    fn from(e: redlock::Error) -> Self {
        use redlock::Error as E;
        match e {
            E::Contended { .. } => Self::Contended,
            E::NoQuorum { .. } => Self::NoQuorum,
            E::ValidityExhausted { .. } => Self::ValidityExhausted,
            E::Lost { .. } => Self::Lost,
            E::Expired => Self::Expired,
            E::ClockWentBackwards => Self::TimeWentBackwards,
            E::Released => Self::AlreadyReleased,
            E::Config(c) => c.into(),
            E::InvalidResource(r) => r.into(),
            E::InvalidUrl { .. } => Self::InvalidUrl,
            _ => Self::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::ffi::CStr;

    use super::*;

    #[test]
    fn every_code_has_a_distinct_number_and_a_message() {
        let all = redlock_result::ALL.to_vec();
        let numbers: HashSet<u32> = all.iter().map(|r| *r as u32).collect();
        assert_eq!(numbers.len(), all.len());
        for r in all {
            let msg = unsafe { CStr::from_ptr(redlock_result_message(r as u32)) };
            assert!(!msg.to_bytes().is_empty());
            if r != redlock_result::Ok {
                assert_ne!(msg.to_bytes(), b"unknown result code", "{r:?}");
            }
        }
    }

    #[test]
    fn unknown_numbers_have_a_message_too() {
        for n in [1, 6999, 7012, 7399 + 1, u32::MAX] {
            let msg = unsafe { CStr::from_ptr(redlock_result_message(n)) };
            assert_eq!(msg.to_bytes(), b"unknown result code");
        }
    }

    #[test]
    fn numbers_are_stable() {
        // Changing any of these breaks C programs compiled against an earlier header.
        assert_eq!(redlock_result::Ok as u32, 0);
        assert_eq!(redlock_result::NullParameter as u32, 7001);
        assert_eq!(redlock_result::Panic as u32, 7003);
        assert_eq!(redlock_result::TtlTooShort as u32, 7102);
        assert_eq!(redlock_result::KeyTooLong as u32, 7201);
        assert_eq!(redlock_result::UnknownInstance as u32, 7205);
        assert_eq!(redlock_result::TimeWentBackwards as u32, 7206);
        assert_eq!(redlock_result::NoQuorum as u32, 7301);
    }
}
