//! What can go wrong, told apart: contention, no quorum, validity, cancellation, misuse.

use std::fmt;

use redlock_core::{ConfigError, InstanceStatus};

/// One instance's part in a failed operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceResult {
    /// Its index in the configured list.
    pub instance: usize,
    /// Its URL with any password replaced by `***`.
    pub server: String,
    /// What it contributed.
    pub status: InstanceStatus,
    /// The error text it returned or the transport failure, if any.
    pub detail: Option<String>,
}

impl fmt::Display for InstanceResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.server, self.status)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

/// Why a lock operation failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// Another holder has the lock. Retrying later may succeed.
    Contended {
        /// Attempts made.
        attempts: u32,
        /// Per-instance results of the last attempt.
        instances: Vec<InstanceResult>,
    },
    /// Not enough instances were reachable and working for a quorum: an outage, not contention.
    NoQuorum {
        /// Attempts made.
        attempts: u32,
        /// Per-instance results of the last attempt, with the causes.
        instances: Vec<InstanceResult>,
    },
    /// A quorum answered, but too slowly to leave the minimum validity.
    ValidityExhausted {
        /// Attempts made.
        attempts: u32,
        /// Per-instance results of the last attempt.
        instances: Vec<InstanceResult>,
    },
    /// The operation was cancelled.
    Cancelled,
    /// The lock is no longer held on a quorum (extend found its keys gone or taken).
    Lost {
        /// Per-instance results.
        instances: Vec<InstanceResult>,
    },
    /// The lease had already expired: it is never extended or revived.
    Expired,
    /// The host clock went backwards; the operation failed closed.
    ClockWentBackwards,
    /// The lock was already released.
    Released,
    /// The configuration was refused.
    Config(ConfigError),
    /// A resource key was refused (empty, too long, duplicated, too many).
    InvalidResource(redlock_core::Error),
    /// A Redis URL could not be used.
    InvalidUrl {
        /// The URL with any password replaced by `***`.
        url: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Per-instance results, when the error has them.
    pub fn instances(&self) -> &[InstanceResult] {
        match self {
            Self::Contended { instances, .. }
            | Self::NoQuorum { instances, .. }
            | Self::ValidityExhausted { instances, .. }
            | Self::Lost { instances } => instances,
            _ => &[],
        }
    }

    /// Whether trying again later may succeed (contention, outages, slowness).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Contended { .. } | Self::NoQuorum { .. } | Self::ValidityExhausted { .. }
        )
    }
}

fn list(f: &mut fmt::Formatter<'_>, instances: &[InstanceResult]) -> fmt::Result {
    for (i, r) in instances.iter().enumerate() {
        f.write_str(if i == 0 { ": " } else { "; " })?;
        write!(f, "{r}")?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Contended {
                attempts,
                instances,
            } => {
                write!(f, "lock is held by another holder ({attempts} attempts)")?;
                list(f, instances)
            }
            Self::NoQuorum {
                attempts,
                instances,
            } => {
                write!(
                    f,
                    "no quorum: too few redis instances reachable and working ({attempts} attempts)"
                )?;
                list(f, instances)
            }
            Self::ValidityExhausted {
                attempts,
                instances,
            } => {
                write!(
                    f,
                    "validity exhausted: instances answered too slowly ({attempts} attempts)"
                )?;
                list(f, instances)
            }
            Self::Cancelled => f.write_str("lock operation cancelled"),
            Self::Lost { instances } => {
                f.write_str("lock lost: no longer held on a quorum of instances")?;
                list(f, instances)
            }
            Self::Expired => f.write_str("lease already expired"),
            Self::ClockWentBackwards => f.write_str("clock went backwards; failed closed"),
            Self::Released => f.write_str("lock already released"),
            Self::Config(e) => write!(f, "invalid configuration: {e}"),
            Self::InvalidResource(e) => write!(f, "invalid resource: {e}"),
            Self::InvalidUrl { url, reason } => write!(f, "invalid redis url {url}: {reason}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl From<redlock_core::Error> for Error {
    fn from(e: redlock_core::Error) -> Self {
        match e {
            redlock_core::Error::TimeWentBackwards { .. } => Self::ClockWentBackwards,
            other => Self::InvalidResource(other),
        }
    }
}
