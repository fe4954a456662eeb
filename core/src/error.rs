//! Misuse of the machines. Protocol results (contention, no quorum…) are outcomes, not errors.

use core::fmt;

use crate::resource::{MAX_KEY_LEN, MAX_RESOURCES, MAX_RESOURCES_LEN};
use crate::time::Instant;

/// A call the machines refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A resource key is empty.
    EmptyKey,
    /// A resource key is longer than [`MAX_KEY_LEN`].
    KeyTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// More than [`MAX_RESOURCES`] keys, or more than [`MAX_RESOURCES_LEN`] key bytes in all.
    TooManyResources,
    /// The same key was given twice.
    DuplicateResource,
    /// A lock needs at least one resource.
    NoResources,
    /// An input named an instance outside `0..N`.
    UnknownInstance {
        /// The index given.
        instance: usize,
        /// The configured N.
        instances: usize,
    },
    /// A time reading was smaller than one fed before. The machine has failed closed: an
    /// acquire in progress ends without a lease and cleans up; no lease is extended on it.
    TimeWentBackwards {
        /// The latest reading fed before.
        previous: Instant,
        /// The smaller reading.
        now: Instant,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyKey => f.write_str("resource key is empty"),
            Self::KeyTooLong { len } => {
                write!(f, "resource key of {len} bytes exceeds the maximum of {MAX_KEY_LEN}")
            }
            Self::TooManyResources => write!(
                f,
                "too many resources: at most {MAX_RESOURCES} keys and {MAX_RESOURCES_LEN} key bytes per lock"
            ),
            Self::DuplicateResource => f.write_str("the same resource key was given twice"),
            Self::NoResources => f.write_str("a lock needs at least one resource key"),
            Self::UnknownInstance {
                instance,
                instances,
            } => write!(
                f,
                "instance {instance} does not exist: {instances} instances are configured"
            ),
            Self::TimeWentBackwards { previous, now } => write!(
                f,
                "clock went backwards from {previous} to {now}; the operation failed closed"
            ),
        }
    }
}

impl core::error::Error for Error {}
