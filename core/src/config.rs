//! Validated configuration shared by every operation.

use core::fmt;
use core::time::Duration;

use crate::time::duration_ms;

/// The largest number of Redis instances one configuration may name.
pub const MAX_INSTANCES: usize = 16;

/// How long each instance may take to answer when no explicit timeout is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InstanceTimeout {
    /// 5 % of the TTL, at least 10 ms, and always below the lease's validity.
    Auto,
    /// A fixed timeout in milliseconds.
    Fixed(u64),
}

/// Parameters of the Redlock algorithm, validated once.
///
/// `Config::new(instances, ttl)` gives the defaults below; setters replace one parameter each and
/// re-validate, so a `Config` that exists is always usable. It is `Copy`: a per-call TTL is
/// [`Config::with_ttl`].
///
/// | parameter | default |
/// |---|---|
/// | quorum | `instances / 2 + 1`, from the configured count, never from how many answer |
/// | drift | `floor(ttl × 0.01) + 2 ms` |
/// | instance timeout | 5 % of the TTL, at least 10 ms |
/// | retries | 3 (4 attempts in all) |
/// | retry delay | 200 ms ± 100 ms, uniformly jittered |
/// | minimum validity | 0 (any positive validity is a lease) |
/// | overall acquire deadline | none (the retry budget bounds it) |
///
/// ```
/// use core::time::Duration;
/// use redlock_core::Config;
///
/// let config = Config::new(5, Duration::from_secs(10))?
///     .with_retry_count(5)?
///     .with_min_validity(Duration::from_secs(1))?;
/// assert_eq!(config.quorum(), 3);
/// assert_eq!(config.drift_ms(), 102);
/// # Ok::<(), redlock_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    instances: u8,
    ttl_ms: u64,
    drift_ppm: u32,
    drift_pad_ms: u64,
    instance_timeout: InstanceTimeout,
    retry_count: u32,
    retry_delay_ms: u64,
    retry_jitter_ms: u64,
    min_validity_ms: u64,
    acquire_deadline_ms: Option<u64>,
    release_notification: bool,
}

/// Why a configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// Zero instances were configured.
    NoInstances,
    /// More than [`MAX_INSTANCES`] instances were configured.
    TooManyInstances {
        /// The number asked for.
        requested: usize,
    },
    /// The TTL is zero, or not longer than its drift plus the minimum validity, so no lease could
    /// ever be valid.
    TtlTooShort {
        /// The TTL in milliseconds.
        ttl_ms: u64,
        /// The smallest TTL that could produce a lease with these settings.
        min_ttl_ms: u64,
    },
    /// The per-instance timeout is zero or not below the TTL.
    TimeoutNotBelowTtl {
        /// The timeout in milliseconds.
        timeout_ms: u64,
        /// The TTL in milliseconds.
        ttl_ms: u64,
    },
    /// The drift factor is not a finite number in `[0, 1)`.
    InvalidDriftFactor,
    /// The retry jitter is larger than the retry delay.
    JitterAboveDelay,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoInstances => f.write_str("at least one redis instance is required"),
            Self::TooManyInstances { requested } => write!(
                f,
                "{requested} instances configured, at most {MAX_INSTANCES} are supported"
            ),
            Self::TtlTooShort { ttl_ms, min_ttl_ms } => write!(
                f,
                "ttl of {ttl_ms} ms is too short: it must exceed drift plus minimum validity (at least {min_ttl_ms} ms)"
            ),
            Self::TimeoutNotBelowTtl { timeout_ms, ttl_ms } => write!(
                f,
                "instance timeout of {timeout_ms} ms must be positive and below the ttl of {ttl_ms} ms"
            ),
            Self::InvalidDriftFactor => f.write_str("drift factor must be a finite number in [0, 1)"),
            Self::JitterAboveDelay => f.write_str("retry jitter must not exceed the retry delay"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl Config {
    /// A configuration for `instances` independent Redis masters and leases of `ttl`, with the
    /// defaults listed on [`Config`].
    pub fn new(instances: usize, ttl: Duration) -> Result<Self, ConfigError> {
        if instances == 0 {
            return Err(ConfigError::NoInstances);
        }
        if instances > MAX_INSTANCES {
            return Err(ConfigError::TooManyInstances {
                requested: instances,
            });
        }
        Self {
            // In range: checked against MAX_INSTANCES (16) above.
            instances: instances as u8,
            ttl_ms: duration_ms(ttl),
            drift_ppm: 10_000,
            drift_pad_ms: 2,
            instance_timeout: InstanceTimeout::Auto,
            retry_count: 3,
            retry_delay_ms: 200,
            retry_jitter_ms: 100,
            min_validity_ms: 0,
            acquire_deadline_ms: None,
            release_notification: false,
        }
        .validated()
    }

    fn validated(self) -> Result<Self, ConfigError> {
        let min_ttl_ms = self
            .drift_for(self.ttl_ms)
            .saturating_add(self.min_validity_ms)
            .saturating_add(1);
        if self.ttl_ms == 0 || self.ttl_ms <= self.drift_ms().saturating_add(self.min_validity_ms) {
            return Err(ConfigError::TtlTooShort {
                ttl_ms: self.ttl_ms,
                min_ttl_ms,
            });
        }
        if let InstanceTimeout::Fixed(timeout_ms) = self.instance_timeout {
            if timeout_ms == 0 || timeout_ms >= self.ttl_ms {
                return Err(ConfigError::TimeoutNotBelowTtl {
                    timeout_ms,
                    ttl_ms: self.ttl_ms,
                });
            }
        }
        if self.retry_jitter_ms > self.retry_delay_ms {
            return Err(ConfigError::JitterAboveDelay);
        }
        Ok(self)
    }

    /// The same configuration with another lease TTL (for a per-call TTL).
    pub fn with_ttl(mut self, ttl: Duration) -> Result<Self, ConfigError> {
        self.ttl_ms = duration_ms(ttl);
        self.validated()
    }

    /// The drift factor ρ in `drift = floor(ttl × ρ) + pad`; default 0.01. Precision: 1 ppm.
    pub fn with_drift_factor(mut self, factor: f64) -> Result<Self, ConfigError> {
        if !factor.is_finite() || !(0.0..1.0).contains(&factor) {
            return Err(ConfigError::InvalidDriftFactor);
        }
        // In range: factor < 1, so the product is below 1e6. Rounded up: drift is a safety
        // margin and must never come out smaller than asked.
        let ppm = factor * 1_000_000.0;
        let whole = ppm as u32;
        self.drift_ppm = if f64::from(whole) < ppm {
            whole + 1
        } else {
            whole
        };
        self.validated()
    }

    /// The fixed pad added to the drift; default 2 ms (Redis expiry precision plus 1 ms).
    pub fn with_drift_pad(mut self, pad: Duration) -> Result<Self, ConfigError> {
        self.drift_pad_ms = duration_ms(pad);
        self.validated()
    }

    /// How long one instance may take to answer one command before it counts as a "no".
    pub fn with_instance_timeout(mut self, timeout: Duration) -> Result<Self, ConfigError> {
        self.instance_timeout = InstanceTimeout::Fixed(duration_ms(timeout));
        self.validated()
    }

    /// How many times a failed acquire is retried (0 = a single attempt).
    pub fn with_retry_count(mut self, retries: u32) -> Result<Self, ConfigError> {
        self.retry_count = retries;
        self.validated()
    }

    /// The base delay between attempts and its jitter: each wait is drawn uniformly from
    /// `[delay - jitter, delay + jitter]`.
    pub fn with_retry_delay(
        mut self,
        delay: Duration,
        jitter: Duration,
    ) -> Result<Self, ConfigError> {
        self.retry_delay_ms = duration_ms(delay);
        self.retry_jitter_ms = duration_ms(jitter);
        self.validated()
    }

    /// The smallest remaining validity worth having: an acquire or extend whose validity is not
    /// above it fails with "validity exhausted". Default 0.
    pub fn with_min_validity(mut self, min: Duration) -> Result<Self, ConfigError> {
        self.min_validity_ms = duration_ms(min);
        self.validated()
    }

    /// An overall deadline for an acquire, measured from its start: no attempt starts after it.
    /// `None` (the default) leaves only the retry count as the bound.
    pub fn with_acquire_deadline(
        mut self,
        deadline: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        self.acquire_deadline_ms = deadline.map(duration_ms);
        self.validated()
    }

    /// Whether releases (and the cleanup of failed attempts) announce each deleted key on
    /// `redlock:released:<key>` ([`RELEASE_NOTIFY_SCRIPT`](crate::RELEASE_NOTIFY_SCRIPT)), so
    /// that waiters can [`wake`](crate::Acquire::wake) at once. Default off.
    pub fn with_release_notification(mut self, on: bool) -> Self {
        self.release_notification = on;
        self
    }

    /// Whether releases are announced.
    pub fn release_notification(&self) -> bool {
        self.release_notification
    }

    /// The configured number of instances, N.
    pub fn instances(&self) -> usize {
        usize::from(self.instances)
    }

    /// The quorum, `N / 2 + 1`.
    pub fn quorum(&self) -> usize {
        self.instances() / 2 + 1
    }

    /// The lease TTL in milliseconds (the `PX` argument).
    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    /// The drift subtracted from the TTL of this configuration, in milliseconds.
    pub fn drift_ms(&self) -> u64 {
        self.drift_for(self.ttl_ms)
    }

    /// The drift for an arbitrary TTL with this configuration's factor and pad.
    pub fn drift_for(&self, ttl_ms: u64) -> u64 {
        let scaled = u128::from(ttl_ms) * u128::from(self.drift_ppm) / 1_000_000;
        u64::try_from(scaled)
            .unwrap_or(u64::MAX)
            .saturating_add(self.drift_pad_ms)
    }

    /// The drift factor ρ.
    pub fn drift_factor(&self) -> f64 {
        f64::from(self.drift_ppm) / 1_000_000.0
    }

    /// The drift pad in milliseconds.
    pub fn drift_pad_ms(&self) -> u64 {
        self.drift_pad_ms
    }

    /// The per-instance timeout in milliseconds (resolved when automatic).
    pub fn instance_timeout_ms(&self) -> u64 {
        match self.instance_timeout {
            InstanceTimeout::Fixed(ms) => ms,
            InstanceTimeout::Auto => {
                // Strictly inside the validity budget (ttl > drift is validated).
                let budget = self.ttl_ms.saturating_sub(self.drift_ms());
                (self.ttl_ms / 20)
                    .max(10)
                    .min(budget.saturating_sub(1))
                    .max(1)
            }
        }
    }

    /// How many times a failed acquire is retried.
    pub fn retry_count(&self) -> u32 {
        self.retry_count
    }

    /// The base retry delay in milliseconds.
    pub fn retry_delay_ms(&self) -> u64 {
        self.retry_delay_ms
    }

    /// The retry jitter in milliseconds.
    pub fn retry_jitter_ms(&self) -> u64 {
        self.retry_jitter_ms
    }

    /// The minimum validity in milliseconds.
    pub fn min_validity_ms(&self) -> u64 {
        self.min_validity_ms
    }

    /// The overall acquire deadline in milliseconds, if any.
    pub fn acquire_deadline_ms(&self) -> Option<u64> {
        self.acquire_deadline_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn defaults_follow_the_design() {
        let c = Config::new(5, ms(10_000)).unwrap();
        assert_eq!(c.quorum(), 3);
        assert_eq!(c.drift_ms(), 102);
        assert_eq!(c.instance_timeout_ms(), 500);
        assert_eq!(c.retry_count(), 3);
        assert_eq!((c.retry_delay_ms(), c.retry_jitter_ms()), (200, 100));
        assert_eq!(c.min_validity_ms(), 0);
    }

    #[test]
    fn quorum_comes_from_configured_count() {
        for (n, q) in [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (16, 9)] {
            assert_eq!(Config::new(n, ms(1000)).unwrap().quorum(), q);
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        assert_eq!(Config::new(0, ms(1000)), Err(ConfigError::NoInstances));
        assert_eq!(
            Config::new(17, ms(1000)),
            Err(ConfigError::TooManyInstances { requested: 17 })
        );
        assert!(matches!(
            Config::new(3, ms(2)),
            Err(ConfigError::TtlTooShort { .. })
        ));
        assert!(matches!(
            Config::new(3, ms(0)),
            Err(ConfigError::TtlTooShort { .. })
        ));
        let c = Config::new(3, ms(1000)).unwrap();
        assert!(matches!(
            c.with_instance_timeout(ms(1000)),
            Err(ConfigError::TimeoutNotBelowTtl { .. })
        ));
        assert!(matches!(
            c.with_instance_timeout(ms(0)),
            Err(ConfigError::TimeoutNotBelowTtl { .. })
        ));
        assert_eq!(
            c.with_drift_factor(f64::NAN),
            Err(ConfigError::InvalidDriftFactor)
        );
        assert_eq!(
            c.with_drift_factor(1.0),
            Err(ConfigError::InvalidDriftFactor)
        );
        assert_eq!(
            c.with_retry_delay(ms(10), ms(20)),
            Err(ConfigError::JitterAboveDelay)
        );
        assert!(matches!(
            c.with_min_validity(ms(990)),
            Err(ConfigError::TtlTooShort { .. })
        ));
    }

    #[test]
    fn auto_timeout_stays_below_validity() {
        let c = Config::new(3, ms(5)).unwrap();
        assert!(c.instance_timeout_ms() < c.ttl_ms());
        assert!(c.instance_timeout_ms() >= 1);
    }

    #[test]
    fn huge_ttl_does_not_overflow() {
        let c = Config::new(3, Duration::from_secs(u64::MAX)).unwrap();
        assert!(c.drift_ms() < c.ttl_ms());
    }
}
