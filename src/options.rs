//! Per-lock options.

use std::time::Duration;

/// How one lock is taken: its TTL, retries, deadline, minimum validity and auto-extension.
///
/// Options not set here come from the [`Builder`](crate::Builder).
///
/// ```
/// use std::time::Duration;
/// use redlock::LockOptions;
///
/// let opts = LockOptions::new(Duration::from_secs(10))
///     .retries(10)
///     .retry_delay(Duration::from_millis(50), Duration::from_millis(25))
///     .deadline(Duration::from_secs(2))
///     .min_validity(Duration::from_secs(1))
///     .auto_extend(true);
/// assert_eq!(opts.ttl(), Duration::from_secs(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOptions {
    pub(crate) ttl: Duration,
    pub(crate) retries: Option<u32>,
    pub(crate) retry_delay: Option<(Duration, Duration)>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) min_validity: Option<Duration>,
    pub(crate) auto_extend: bool,
}

impl LockOptions {
    /// A lock whose keys live for `ttl`, with the builder's other settings.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            retries: None,
            retry_delay: None,
            deadline: None,
            min_validity: None,
            auto_extend: false,
        }
    }

    /// How many times a failed attempt is retried (0: a single attempt, as `try_lock`).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// The delay between attempts, jittered uniformly by ± `jitter`.
    pub fn retry_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.retry_delay = Some((delay, jitter));
        self
    }

    /// No attempt starts later than this after the call.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The least validity worth having; less fails with `ValidityExhausted`.
    pub fn min_validity(mut self, min: Duration) -> Self {
        self.min_validity = Some(min);
        self
    }

    /// Keep the lock alive in the background by extending it before it expires, until it is
    /// released or dropped. If an extension fails for good, [`Lock::lost`](crate::Lock::lost)
    /// fires, always before the validity ends.
    pub fn auto_extend(mut self, on: bool) -> Self {
        self.auto_extend = on;
        self
    }

    /// The TTL.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}
