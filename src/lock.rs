//! A held lock: its lease, extension, release, and the signal that it was lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redlock_core::{Config, Extend, ExtendFailure, ExtendOutcome, Lease, Release, Resources};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::driver::Driver;
use crate::error::{Error, InstanceResult};
use crate::observe::Observation;
use crate::Inner;

/// Why a lock stopped being held without being released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LostReason {
    /// Its validity ran out without a successful extension.
    Expired,
    /// An extension found its keys gone or taken on a quorum of instances.
    Taken,
    /// Extensions kept failing (instances unreachable) until too little validity was left.
    ExtensionFailed,
}

impl std::fmt::Display for LostReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Expired => "validity ran out",
            Self::Taken => "keys no longer held on a quorum",
            Self::ExtensionFailed => "extensions failed until validity ran low",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Held,
    Lost(LostReason),
    Released,
}

/// How a release went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseReport {
    /// A quorum confirmed our keys are gone. When false, some keys may stay until their TTL.
    pub confirmed: bool,
    /// How many instances deleted a key.
    pub deleted: usize,
    /// Per-instance results (`Yes` = deleted, `Held` = not ours or already gone).
    pub instances: Vec<InstanceResult>,
}

pub(crate) struct Shared {
    inner: Arc<Inner>,
    /// The lock's id in observations.
    id: u64,
    config: Config,
    lease: Mutex<Lease>,
    status: watch::Sender<Status>,
    released: AtomicBool,
    auto_extend: bool,
    watchdog: Mutex<Option<JoinHandle<()>>>,
}

/// A lock held on a quorum of instances.
///
/// It is valid until [`Lock::valid_until`] (see [`Lock::remaining_validity`]); check it before
/// committing protected work. Await [`Lock::lost`] (or `select!` on it) to learn as soon as the
/// lock is lost. Call [`Lock::release`] when done; dropping the guard releases in the background.
pub struct Lock {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("resources", self.lease().resources())
            .field("remaining_validity", &self.remaining_validity())
            .finish_non_exhaustive()
    }
}

impl Lock {
    pub(crate) fn new(
        inner: Arc<Inner>,
        config: Config,
        lease: Lease,
        auto_extend: bool,
        id: u64,
    ) -> Self {
        let (status, _) = watch::channel(Status::Held);
        let shared = Arc::new(Shared {
            inner,
            id,
            config,
            lease: Mutex::new(lease),
            status,
            released: AtomicBool::new(false),
            auto_extend,
            watchdog: Mutex::new(None),
        });
        if auto_extend {
            start_watchdog(&shared);
        }
        Self { shared }
    }

    /// The id of this lock in [`Observation`]s: unique within its [`Redlock`](crate::Redlock).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// A copy of the current lease (resources, value, validity).
    pub fn lease(&self) -> Lease {
        self.shared.lease()
    }

    /// The resource keys it covers.
    pub fn resources(&self) -> Resources {
        self.lease().resources().clone()
    }

    /// The random value stored in its keys.
    pub fn value(&self) -> String {
        self.lease().value().as_str().to_owned()
    }

    /// When the lease ends, on the runtime's clock.
    pub fn valid_until(&self) -> tokio::time::Instant {
        self.shared
            .inner
            .clock
            .to_tokio(self.shared.lease().valid_until())
    }

    /// Validity left now (zero once expired or lost).
    pub fn remaining_validity(&self) -> Duration {
        if *self.shared.status.borrow() != Status::Held {
            return Duration::ZERO;
        }
        let now = self.shared.inner.clock.now();
        Duration::from_millis(self.shared.lease().remaining_ms(now))
    }

    /// Whether the lock is still valid now.
    pub fn is_valid(&self) -> bool {
        !self.remaining_validity().is_zero()
    }

    /// Resolves when the lock is lost — validity ran out, or extension failed for good — with
    /// why. With auto-extension it fires before the validity ends if extension fails; without, it
    /// fires when the validity ends. Never resolves after a release.
    pub fn lost(&self) -> impl std::future::Future<Output = LostReason> + Send + 'static {
        start_watchdog(&self.shared);
        let mut rx = self.shared.status.subscribe();
        async move {
            loop {
                if let Status::Lost(reason) = *rx.borrow_and_update() {
                    return reason;
                }
                if rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// Extends the lock so its keys live for `ttl` from now, on a quorum. Refuses an expired
    /// lease; never re-creates a key. On failure the lease may be shortened (never lengthened).
    pub async fn extend(&self, ttl: Duration) -> Result<Duration, Error> {
        self.shared.extend(ttl).await
    }

    /// Releases the lock on every instance (only keys still holding our value are deleted).
    pub async fn release(self) -> Result<ReleaseReport, Error> {
        self.shared.release().await
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        if self.shared.released.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.stop_watchdog();
        self.shared.status.send_replace(Status::Released);
        let shared = Arc::clone(&self.shared);
        crate::driver::spawn(&self.shared.inner, async move {
            let _ = shared.release_keys().await;
        });
    }
}

impl Shared {
    fn lease(&self) -> Lease {
        match self.lease.lock() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_lease(&self, lease: Lease) {
        match self.lease.lock() {
            Ok(mut l) => *l = lease,
            Err(poisoned) => *poisoned.into_inner() = lease,
        }
    }

    fn lose(&self, reason: LostReason) {
        self.status.send_if_modified(|s| {
            if *s == Status::Held {
                *s = Status::Lost(reason);
                true
            } else {
                false
            }
        });
    }

    fn stop_watchdog(&self) {
        if let Ok(mut w) = self.watchdog.lock() {
            if let Some(h) = w.take() {
                h.abort();
            }
        }
    }

    async fn extend(&self, ttl: Duration) -> Result<Duration, Error> {
        if self.released.load(Ordering::Acquire) {
            return Err(Error::Released);
        }
        let config = self.config.with_ttl(ttl)?;
        let lease = self.lease();
        let now = self.inner.clock.now();
        let span = tracing::debug_span!("redlock.extend", resources = ?lease.resources(), ttl_ms = config.ttl_ms());
        let machine = Extend::new(config, &lease, now)?;
        let extension = self.inner.fresh_id();
        if let Some(o) = &self.inner.observer {
            o.observe(&Observation::ExtendStarted {
                lock: self.id,
                extension,
                ttl_ms: config.ttl_ms(),
                t1: now,
            });
        }
        let mut driver = Driver::new(&self.inner, machine).observed(self.id);
        let outcome = driver.run().instrument(span).await;
        if let Some(o) = &self.inner.observer {
            let decided = driver.last_input().unwrap_or(now);
            match &outcome {
                ExtendOutcome::Extended { lease, report } => {
                    let votes: Vec<usize> = report
                        .as_slice()
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| **s == redlock_core::InstanceStatus::Yes)
                        .map(|(i, _)| i)
                        .collect();
                    o.observe(&Observation::Extended {
                        lock: self.id,
                        extension,
                        t1: now,
                        t2: decided,
                        valid_until: lease.valid_until(),
                        votes: &votes,
                    });
                }
                ExtendOutcome::Failed { reason, lease, .. } => {
                    o.observe(&Observation::ExtendFailed {
                        lock: self.id,
                        extension,
                        reason: *reason,
                        valid_until: lease.valid_until(),
                        at: decided,
                    });
                }
            }
        }
        // Keep the lease the core computed, extended or shortened.
        if !self.released.load(Ordering::Acquire) {
            self.set_lease(outcome.lease().clone());
        }
        match outcome {
            ExtendOutcome::Extended { lease, .. } => {
                let now = self.inner.clock.now();
                Ok(Duration::from_millis(lease.remaining_ms(now)))
            }
            ExtendOutcome::Failed { reason, report, .. } => {
                let instances = driver.results(&report);
                Err(match reason {
                    ExtendFailure::Expired => {
                        self.lose(LostReason::Expired);
                        Error::Expired
                    }
                    ExtendFailure::Lost => {
                        self.lose(LostReason::Taken);
                        Error::Lost { instances }
                    }
                    ExtendFailure::NoQuorum => Error::NoQuorum {
                        attempts: 1,
                        instances,
                    },
                    ExtendFailure::ValidityExhausted => Error::ValidityExhausted {
                        attempts: 1,
                        instances,
                    },
                    ExtendFailure::ClockWentBackwards => Error::ClockWentBackwards,
                    _ => Error::Lost { instances },
                })
            }
        }
    }

    async fn release(&self) -> Result<ReleaseReport, Error> {
        if self.released.swap(true, Ordering::AcqRel) {
            return Err(Error::Released);
        }
        self.stop_watchdog();
        self.status.send_replace(Status::Released);
        self.release_keys().await
    }

    async fn release_keys(&self) -> Result<ReleaseReport, Error> {
        let lease = self.lease();
        let span = tracing::debug_span!("redlock.release", resources = ?lease.resources());
        let started = self.inner.clock.now();
        let machine = Release::new(self.config, &lease, started)?;
        if let Some(o) = &self.inner.observer {
            o.observe(&Observation::ReleaseStarted {
                lock: self.id,
                at: started,
            });
        }
        let mut driver = Driver::new(&self.inner, machine).observed(self.id);
        let outcome = driver.run().instrument(span).await;
        if let Some(o) = &self.inner.observer {
            o.observe(&Observation::Released {
                lock: self.id,
                statuses: outcome.report.as_slice(),
                at: driver.last_input().unwrap_or(started),
            });
        }
        tracing::debug!(
            confirmed = outcome.confirmed,
            deleted = outcome.deleted,
            "released"
        );
        Ok(ReleaseReport {
            confirmed: outcome.confirmed,
            deleted: outcome.deleted,
            instances: driver.results(&outcome.report),
        })
    }
}

/// Starts the background task that extends the lock (with auto-extension) and fires the lost
/// signal when the lease runs out. Idempotent.
fn start_watchdog(shared: &Arc<Shared>) {
    let Ok(mut slot) = shared.watchdog.lock() else {
        return;
    };
    if slot.is_some() || shared.released.load(Ordering::Acquire) {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = Arc::downgrade(shared);
    *slot = Some(handle.spawn(async move { watchdog(weak).await }));
}

async fn watchdog(weak: std::sync::Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else { return };
        if *shared.status.borrow() != Status::Held {
            return;
        }
        let lease = shared.lease();
        let clock = shared.inner.clock;
        let now = clock.now();
        let remaining = lease.remaining_ms(now);
        if remaining == 0 {
            shared.lose(LostReason::Expired);
            return;
        }
        // The signal fires early rather than late: tokio's timer rounds a deadline up to its
        // next millisecond tick, so aim 2 ms before the end to land before it.
        let end = clock.to_tokio(redlock_core::Instant::from_millis(
            lease.valid_until().as_millis().saturating_sub(2),
        ));
        if remaining <= 2 {
            shared.lose(LostReason::Expired);
            return;
        }
        if !shared.auto_extend {
            drop(shared);
            tokio::time::sleep_until(end).await;
            continue;
        }
        // Extend once a third of the TTL has been used; give up when too little is left for an
        // extension round to finish.
        let ttl = lease.ttl_ms();
        let timeout = shared.config.instance_timeout_ms();
        let extend_at = lease
            .valid_until()
            .as_millis()
            .saturating_sub(ttl.saturating_mul(2) / 3);
        if now.as_millis() < extend_at {
            let at = clock.to_tokio(redlock_core::Instant::from_millis(extend_at));
            drop(shared);
            tokio::time::sleep_until(at).await;
            continue;
        }
        let extended = tokio::select! {
            r = shared.extend(Duration::from_millis(ttl)) => r,
            _ = tokio::time::sleep_until(end) => {
                shared.lose(LostReason::Expired);
                return;
            }
        };
        match extended {
            Ok(_) => {}
            Err(Error::Lost { .. } | Error::Expired | Error::Released) => {
                shared.lose(LostReason::Taken);
                return;
            }
            Err(e) => {
                let left = shared.lease().remaining_ms(clock.now());
                tracing::warn!(error = %e, remaining_ms = left, "lock extension failed; retrying");
                if left <= timeout.saturating_mul(2) {
                    shared.lose(LostReason::ExtensionFailed);
                    return;
                }
                let pause = (left / 4).min(shared.config.retry_delay_ms()).max(1);
                drop(shared);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
    }
}
