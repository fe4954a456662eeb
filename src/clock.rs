//! The monotonic clock the machines run on, mapped from one epoch.

use redlock_core::Instant;

/// Milliseconds since this process's redlock epoch, on tokio's clock.
///
/// Using tokio's clock (not `std::time::Instant` directly) means `tokio::time::pause()` drives
/// every deadline in tests through the real code paths. Tokio's clock is `CLOCK_MONOTONIC`, which
/// does not advance while the machine is suspended: on a host that suspends (laptops, some VMs)
/// a lease can outlive its keys; run lock holders on hosts that do not suspend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now(self) -> Instant {
        let ms = tokio::time::Instant::now()
            .saturating_duration_since(self.epoch)
            .as_millis();
        Instant::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
    }

    pub(crate) fn to_tokio(self, at: Instant) -> tokio::time::Instant {
        self.epoch
            .checked_add(std::time::Duration::from_millis(at.as_millis()))
            // Far future: a deadline that never comes.
            .unwrap_or_else(|| self.epoch + std::time::Duration::from_secs(86_400 * 365))
    }
}
