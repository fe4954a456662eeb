//! A held lock: what it covers, its value, and until when it is valid.

use crate::resource::Resources;
use crate::time::Instant;
use crate::token::Token;

/// A lock held on a quorum of instances, valid until [`Lease::valid_until`] on the host's
/// clock and not a millisecond longer.
///
/// Check [`Lease::is_valid`] before and after the protected work: the keys may expire while the
/// holder is paused. A `Lease` is plain data; it does not release anything when dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    resources: Resources,
    value: Token,
    ttl_ms: u64,
    valid_until: Instant,
}

impl Lease {
    /// A lease from its parts, for hosts that store leases themselves and hand them back to
    /// [`Extend`](crate::Extend) or [`Release`](crate::Release).
    pub fn new(resources: Resources, value: Token, ttl_ms: u64, valid_until: Instant) -> Self {
        Self {
            resources,
            value,
            ttl_ms,
            valid_until,
        }
    }

    /// The keys it covers.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// The value stored in its keys.
    pub fn value(&self) -> &Token {
        &self.value
    }

    /// The TTL its keys were last set with.
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The first instant at which it is no longer valid.
    pub fn valid_until(&self) -> Instant {
        self.valid_until
    }

    /// Whether it is still valid at `now`.
    pub fn is_valid(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// Milliseconds of validity left at `now` (0 once expired).
    pub fn remaining_ms(&self, now: Instant) -> u64 {
        self.valid_until.saturating_since(now)
    }

    pub(crate) fn set_validity(&mut self, ttl_ms: u64, valid_until: Instant) {
        self.ttl_ms = ttl_ms;
        self.valid_until = valid_until;
    }

    pub(crate) fn shorten_to(&mut self, until: Instant) {
        self.valid_until = self.valid_until.min(until);
    }
}
