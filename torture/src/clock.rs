//! The clock common to every process of a run: `CLOCK_MONOTONIC` of the host.

use std::time::Instant;

/// `CLOCK_MONOTONIC` in nanoseconds. The same clock for every process on one Linux host (it does
/// not advance during a system suspend, which torture runs do not do).
pub fn mono_ns() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC is always supported on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// `CLOCK_MONOTONIC` in whole milliseconds (rounded down): the `rt` of history events.
pub fn mono_ms() -> u64 {
    u64::try_from(mono_ns().div_euclid(1_000_000)).unwrap_or(0)
}

/// Maps `std::time::Instant`s (and so tokio's) to `CLOCK_MONOTONIC`.
///
/// On Linux `Instant` *is* `CLOCK_MONOTONIC`, but its value is opaque; one pair of readings
/// taken back to back fixes the offset (to within the microseconds between the two reads).
#[derive(Debug, Clone, Copy)]
pub struct ClockMap {
    std0: Instant,
    mono0_ns: i128,
}

impl ClockMap {
    /// Takes the pair of readings now.
    pub fn new() -> Self {
        // Take the std reading between two monotonic ones and use their midpoint.
        let a = mono_ns();
        let std0 = Instant::now();
        let b = mono_ns();
        Self {
            std0,
            mono0_ns: a + (b - a) / 2,
        }
    }

    /// `t` on `CLOCK_MONOTONIC`, in nanoseconds.
    pub fn mono_ns_of(&self, t: Instant) -> i128 {
        if t >= self.std0 {
            self.mono0_ns + (t - self.std0).as_nanos() as i128
        } else {
            self.mono0_ns - (self.std0 - t).as_nanos() as i128
        }
    }

    /// `t` on `CLOCK_MONOTONIC`, in milliseconds rounded down (an event time).
    pub fn floor_ms(&self, t: Instant) -> u64 {
        u64::try_from(self.mono_ns_of(t).div_euclid(1_000_000)).unwrap_or(0)
    }

    /// `t` on `CLOCK_MONOTONIC`, in milliseconds rounded up (a deadline: never earlier than the
    /// real one, so a checked window is never shorter than the lease).
    pub fn ceil_ms(&self, t: Instant) -> u64 {
        let ns = self.mono_ns_of(t);
        u64::try_from((ns + 999_999).div_euclid(1_000_000)).unwrap_or(0)
    }
}

impl Default for ClockMap {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn std_instants_map_onto_the_monotonic_clock() {
        let map = ClockMap::new();
        let before = mono_ns();
        let now = Instant::now();
        let after = mono_ns();
        let mapped = map.mono_ns_of(now);
        // Within a millisecond of the direct readings (the mapping error is microseconds).
        assert!(mapped >= before - 1_000_000 && mapped <= after + 1_000_000);
        let later = now + Duration::from_millis(1500);
        assert_eq!(map.mono_ns_of(later) - mapped, 1_500_000_000);
        assert!(map.ceil_ms(later) >= map.floor_ms(later));
        assert!(map.ceil_ms(later) - map.floor_ms(later) <= 1);
    }
}
