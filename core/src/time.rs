//! Time as the host feeds it: milliseconds on a monotonic clock.

use core::fmt;

/// A point on the host's monotonic clock, in milliseconds since an epoch the host chooses.
///
/// The core never reads a clock. Every time-dependent input carries an `Instant`, and the host
/// must never feed a reading smaller than one it fed before: the machines treat that as a broken
/// clock and fail closed ([`Error::TimeWentBackwards`](crate::Error::TimeWentBackwards)).
///
/// The clock should count time spent suspended (Linux `CLOCK_BOOTTIME`): a clock that stops
/// while the machine sleeps would make a lease look valid for longer than the keys live.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The epoch of the host's clock.
    pub const ZERO: Self = Self(0);

    /// An instant `ms` milliseconds after the host's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the host's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + ms`, saturating at the far future instead of overflowing.
    pub const fn saturating_add(self, ms: u64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to `self`, or 0 when `earlier` is later.
    pub const fn saturating_since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Debug for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0)
    }
}

/// Saturating conversion of a duration to whole milliseconds.
pub(crate) fn duration_ms(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(u64::MAX - 1);
        assert_eq!(t.saturating_add(10).as_millis(), u64::MAX);
        assert_eq!(Instant::from_millis(5).saturating_since(t), 0);
        assert_eq!(t.saturating_since(Instant::from_millis(1)), u64::MAX - 2);
    }
}
