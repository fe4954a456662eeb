//! Redlock distributed locks for tokio services, over N independent Redis instances.
//!
//! A lock is held when a random value was written, with a TTL, to a majority of the instances
//! fast enough that `validity = ttl - elapsed - drift` is still positive. This crate owns the
//! connections, the clock and the timers; every protocol decision — quorum, validity, retries,
//! cleanup, release — is made by the sans-I/O [`redlock_core`] state machines it drives.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! # async fn demo() -> Result<(), redlock::Error> {
//! let redlock = redlock::Redlock::builder([
//!     "redis://127.0.0.1:7001",
//!     "redis://127.0.0.1:7002",
//!     "redis://127.0.0.1:7003",
//! ])
//! .connect()
//! .await?;
//!
//! let lock = redlock.lock("orders:42", Duration::from_secs(10)).await?;
//! tokio::select! {
//!     _ = async { /* the protected work */ } => {}
//!     reason = lock.lost() => eprintln!("lock lost ({reason}): abandon the work"),
//! }
//! lock.release().await?;
//! # Ok(()) }
//! ```
//!
//! Errors tell the cases apart: [`Error::Contended`] (someone else holds it),
//! [`Error::NoQuorum`] (instances unreachable or failing, with per-instance causes),
//! [`Error::ValidityExhausted`], [`Error::Cancelled`], and misuse ([`Error::Config`],
//! [`Error::InvalidResource`], [`Error::InvalidUrl`]).
//!
//! What Redlock guarantees and under which assumptions (persistence or delayed restarts, clocks
//! that do not jump, the same N for every client) is in the project README.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod clock;
mod connection;
mod driver;
mod error;
mod handoff;
mod lock;
mod observe;
mod options;
mod rng;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redlock_core::{Acquire, AcquireFailure, AcquireOutcome, Config, Resources};
use tracing::Instrument;

pub use error::{Error, InstanceResult};
pub use lock::{Lock, LostReason, ReleaseReport};
pub use observe::{Observation, ObservedReply, Observer, Operation};
pub use options::LockOptions;
pub use redlock_core;
pub use redlock_core::InstanceStatus;

use clock::Clock;
use connection::{redact, Instance};
use driver::Driver;
use rng::SystemRng;

/// Shared by every handle and lock of one [`Redlock`].
pub(crate) struct Inner {
    pub(crate) instances: Vec<Instance>,
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    /// Told about every operation, when set ([`Builder::observer`]).
    pub(crate) observer: Option<Arc<dyn Observer>>,
    /// Source of lock and extension ids for observers.
    pub(crate) next_id: AtomicU64,
    /// Release announcements for waiters, with [`Builder::fast_handoff`].
    pub(crate) handoff: Option<Arc<handoff::Handoff>>,
    /// The background cleanups (releases of dropped locks, cleanups of dropped acquires), for
    /// [`Redlock::close`].
    pub(crate) background: tokio_util::task::TaskTracker,
}

impl Inner {
    /// A fresh id for a lock or an extension (observers correlate events by it).
    pub(crate) fn fresh_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A lock manager over N Redis instances. Cheap to clone; share it between tasks.
#[derive(Clone)]
pub struct Redlock {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Redlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redlock")
            .field(
                "instances",
                &self
                    .inner
                    .instances
                    .iter()
                    .map(|i| &i.name)
                    .collect::<Vec<_>>(),
            )
            .field("quorum", &self.inner.config.quorum())
            .finish()
    }
}

/// Configures and connects a [`Redlock`].
///
/// Defaults: retries 3, delay 200 ms ± 100 ms, drift `1 % of ttl + 2 ms`, per-instance timeout
/// 5 % of the TTL (at least 10 ms), no minimum validity, no overall deadline, connect timeout
/// 1 s.
#[derive(Clone)]
pub struct Builder {
    urls: Vec<String>,
    retries: u32,
    retry_delay: (Duration, Duration),
    drift: Option<(f64, Duration)>,
    instance_timeout: Option<Duration>,
    min_validity: Duration,
    deadline: Option<Duration>,
    connect_timeout: Duration,
    tls_root_ca: Option<Vec<u8>>,
    observer: Option<Arc<dyn Observer>>,
    fast_handoff: bool,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .field("retries", &self.retries)
            .field("retry_delay", &self.retry_delay)
            .field("instance_timeout", &self.instance_timeout)
            .field("observer", &self.observer.is_some())
            .field("fast_handoff", &self.fast_handoff)
            .finish_non_exhaustive()
    }
}

/// The TTL used to validate the builder's settings; every lock sets its own.
const REFERENCE_TTL: Duration = Duration::from_secs(10);

impl Builder {
    /// Retries after a failed attempt (default 3).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Delay between attempts and its uniform jitter (default 200 ms ± 100 ms).
    pub fn retry_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.retry_delay = (delay, jitter);
        self
    }

    /// Drift factor and pad (default 0.01 and 2 ms).
    pub fn drift(mut self, factor: f64, pad: Duration) -> Self {
        self.drift = Some((factor, pad));
        self
    }

    /// A fixed per-instance timeout instead of 5 % of each lock's TTL.
    pub fn instance_timeout(mut self, timeout: Duration) -> Self {
        self.instance_timeout = Some(timeout);
        self
    }

    /// The least validity worth having (default none).
    pub fn min_validity(mut self, min: Duration) -> Self {
        self.min_validity = min;
        self
    }

    /// An overall deadline for each acquire (default none: the retry count bounds it).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// How long a (re)connection may take (default 1 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// A PEM CA certificate to trust for `rediss://` instances (default: the system's roots).
    pub fn tls_root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_ca = Some(pem.into());
        self
    }

    /// Reports every step of every operation (attempts, commands, replies, timeouts, decisions
    /// with their clock readings) to `observer`, e.g. to record a history for the invariant
    /// checker. Default none, which costs nothing. See [`Observation`].
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Fast handoff under contention (default off): releases announce themselves on
    /// `redlock:released:<key>` (a `PUBLISH` per deleted key), and an acquire waiting to retry
    /// after contention listens for that on every instance and retries within about a
    /// millisecond of the holder's release instead of sleeping out its retry delay.
    ///
    /// It costs one pub/sub connection per instance (opened at the first contention) and a
    /// `PUBLISH` per released key. Lost announcements, instances that are down and broken pub/sub
    /// connections only fall back to the retry delay: the retry count, deadline and cleanup are
    /// the core's as always. Every client that locks the same resources should turn it on (a
    /// release without it announces nothing). The protocol is in `docs/fast-handoff.md`.
    pub fn fast_handoff(mut self, on: bool) -> Self {
        self.fast_handoff = on;
        self
    }

    fn config(&self, ttl: Duration) -> Result<Config, Error> {
        let mut c = Config::new(self.urls.len(), ttl)?
            .with_retry_count(self.retries)?
            .with_retry_delay(self.retry_delay.0, self.retry_delay.1)?
            .with_min_validity(self.min_validity)?
            .with_acquire_deadline(self.deadline)?;
        if let Some((factor, pad)) = self.drift {
            c = c.with_drift_factor(factor)?.with_drift_pad(pad)?;
        }
        if let Some(t) = self.instance_timeout {
            c = c.with_instance_timeout(t)?;
        }
        Ok(c.with_release_notification(self.fast_handoff))
    }

    fn client(&self, url: &str) -> Result<redis::Client, Error> {
        let invalid = |reason: String| Error::InvalidUrl {
            url: redact(url),
            reason,
        };
        if url.starts_with("rediss://") {
            #[cfg(feature = "tls")]
            {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: self.tls_root_ca.clone(),
                };
                return redis::Client::build_with_tls(url, certs)
                    .map_err(|e| invalid(e.to_string()));
            }
            #[cfg(not(feature = "tls"))]
            return Err(invalid("built without the `tls` feature".into()));
        }
        if !url.starts_with("redis://")
            && !url.starts_with("redis+unix://")
            && !url.starts_with("unix://")
        {
            return Err(invalid("expected redis://, rediss:// or unix://".into()));
        }
        redis::Client::open(url).map_err(|e| invalid(e.to_string()))
    }

    /// Builds the manager without contacting any instance; connections open on first use.
    pub fn build(self) -> Result<Redlock, Error> {
        let config = self.config(REFERENCE_TTL)?;
        let instances = self
            .urls
            .iter()
            .map(|url| {
                Ok(Instance::new(
                    self.client(url)?,
                    redact(url),
                    self.connect_timeout,
                ))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let handoff = if self.fast_handoff {
            let clients = self
                .urls
                .iter()
                .map(|url| self.client(url))
                .collect::<Result<Vec<_>, Error>>()?;
            Some(Arc::new(handoff::Handoff::new(
                clients,
                config.quorum(),
                self.connect_timeout,
            )))
        } else {
            None
        };
        Ok(Redlock {
            inner: Arc::new(Inner {
                instances,
                config,
                clock: Clock::new(),
                observer: self.observer,
                next_id: AtomicU64::new(0),
                handoff,
                background: tokio_util::task::TaskTracker::new(),
            }),
        })
    }

    /// Builds the manager and opens a connection to every reachable instance, loading the
    /// scripts so the first locks skip the `NOSCRIPT` round trip. Unreachable instances are not
    /// an error here (a minority may be down); they are retried on use.
    pub async fn connect(self) -> Result<Redlock, Error> {
        let redlock = self.build()?;
        // A new connection loads the scripts itself (`Instance::connection`).
        let warmups = redlock.inner.instances.iter().map(|instance| async move {
            if let Err(e) = instance.connection().await {
                tracing::warn!(server = %instance.name, error = %e, "instance unreachable");
            }
        });
        futures_util::future::join_all(warmups).await;
        Ok(redlock)
    }
}

impl Redlock {
    /// A builder for the instances at `urls`: `redis://[user:password@]host:port[/db]`,
    /// `rediss://…` for TLS. Use an odd number of independent masters (no replicas behind them).
    pub fn builder<I, S>(urls: I) -> Builder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Builder {
            urls: urls.into_iter().map(Into::into).collect(),
            retries: 3,
            retry_delay: (Duration::from_millis(200), Duration::from_millis(100)),
            drift: None,
            instance_timeout: None,
            min_validity: Duration::ZERO,
            deadline: None,
            connect_timeout: Duration::from_secs(1),
            tls_root_ca: None,
            observer: None,
            fast_handoff: false,
        }
    }

    /// A clock reading of this manager (as in [`Observation`]s and [`redlock_core::Lease`]s)
    /// on tokio's clock. Without a paused test clock that is `CLOCK_MONOTONIC` on Linux, the
    /// clock of `std::time::Instant`, so readings of several processes can be compared.
    pub fn tokio_instant(&self, at: redlock_core::Instant) -> tokio::time::Instant {
        self.inner.clock.to_tokio(at)
    }

    /// The number of instances, N.
    pub fn instances(&self) -> usize {
        self.inner.instances.len()
    }

    /// The quorum, N/2 + 1.
    pub fn quorum(&self) -> usize {
        self.inner.config.quorum()
    }

    /// Waits until the work this manager does in the background is finished: the releases of
    /// [`Lock`]s dropped without [`Lock::release`], and the cleanups of `lock` calls dropped or
    /// cancelled mid-way. Await it before shutting a runtime down, or those keys stay until
    /// their TTL ends.
    ///
    /// Locks still held are not touched, and the manager stays usable (a later call waits for
    /// the work started since). Each cleanup gives up after the lock's TTL (at least 1 s), so
    /// with an unreachable instance this can take that long: wrap it in a timeout to bound it.
    pub async fn close(&self) {
        self.inner.background.close();
        self.inner.background.wait().await;
    }

    /// Locks `resource` for `ttl`, retrying with the builder's settings.
    pub async fn lock(&self, resource: impl AsRef<[u8]>, ttl: Duration) -> Result<Lock, Error> {
        self.lock_with(&[resource], &LockOptions::new(ttl)).await
    }

    /// Locks several resources together: on each instance all of them or none.
    pub async fn lock_all<K: AsRef<[u8]>>(
        &self,
        resources: &[K],
        ttl: Duration,
    ) -> Result<Lock, Error> {
        self.lock_with(resources, &LockOptions::new(ttl)).await
    }

    /// One attempt, no retries: fails at once with [`Error::Contended`] if the lock is held.
    pub async fn try_lock(&self, resource: impl AsRef<[u8]>, ttl: Duration) -> Result<Lock, Error> {
        self.lock_with(&[resource], &LockOptions::new(ttl).retries(0))
            .await
    }

    /// Locks with explicit options.
    ///
    /// Dropping the returned future before it completes cancels the acquire and releases
    /// whatever it had locked, in the background.
    pub async fn lock_with<K: AsRef<[u8]>>(
        &self,
        resources: &[K],
        options: &LockOptions,
    ) -> Result<Lock, Error> {
        let resources = Resources::from_keys(resources)?;
        let mut config = self.inner.config.with_ttl(options.ttl)?;
        if let Some(r) = options.retries {
            config = config.with_retry_count(r)?;
        }
        if let Some((d, j)) = options.retry_delay {
            config = config.with_retry_delay(d, j)?;
        }
        if options.deadline.is_some() {
            config = config.with_acquire_deadline(options.deadline)?;
        }
        if let Some(m) = options.min_validity {
            config = config.with_min_validity(m)?;
        }
        let span =
            tracing::debug_span!("redlock.lock", resources = ?resources, ttl_ms = config.ttl_ms());
        let started = self.inner.clock.now();
        let machine = Acquire::new(config, resources, SystemRng, started)?;
        let id = self.inner.fresh_id();
        if let Some(o) = &self.inner.observer {
            o.observe(&Observation::AcquireStarted {
                lock: id,
                resources: machine.resources(),
                ttl_ms: config.ttl_ms(),
                at: started,
            });
        }
        let mut driver = Driver::new(&self.inner, machine).observed(id);
        let outcome = driver.run().instrument(span).await;
        if let Some(o) = &self.inner.observer {
            observe_outcome(o.as_ref(), id, &outcome, &driver, self.inner.clock.now());
        }
        match outcome {
            AcquireOutcome::Acquired {
                lease, attempts, ..
            } => {
                tracing::debug!(attempts, valid_until = ?lease.valid_until(), "acquired");
                Ok(Lock::new(
                    Arc::clone(&self.inner),
                    config,
                    lease,
                    options.auto_extend,
                    id,
                ))
            }
            AcquireOutcome::Failed {
                reason,
                attempts,
                report,
            } => {
                let instances = driver.results(&report);
                tracing::debug!(?reason, attempts, "not acquired");
                Err(match reason {
                    AcquireFailure::Contended => Error::Contended {
                        attempts,
                        instances,
                    },
                    AcquireFailure::NoQuorum => Error::NoQuorum {
                        attempts,
                        instances,
                    },
                    AcquireFailure::ValidityExhausted => Error::ValidityExhausted {
                        attempts,
                        instances,
                    },
                    AcquireFailure::Cancelled => Error::Cancelled,
                    _ => Error::ClockWentBackwards,
                })
            }
        }
    }
}

/// Tells `observer` how an acquire ended.
fn observe_outcome(
    observer: &dyn Observer,
    lock: u64,
    outcome: &AcquireOutcome,
    driver: &Driver<
        '_,
        Acquire<SystemRng>,
        impl std::future::Future<Output = driver::Sent> + Send + 'static,
    >,
    now: redlock_core::Instant,
) {
    match outcome {
        AcquireOutcome::Acquired {
            lease,
            decided_at,
            attempts,
            report,
        } => {
            let mut votes = [0usize; redlock_core::MAX_INSTANCES];
            let mut n = 0;
            for (i, s) in report.as_slice().iter().enumerate() {
                if *s == InstanceStatus::Yes && n < votes.len() {
                    votes[n] = i;
                    n += 1;
                }
            }
            let t1 = driver
                .machine()
                .map_or(*decided_at, |m| m.attempt_started());
            observer.observe(&Observation::Acquired {
                lock,
                attempt: *attempts,
                value: lease.value().as_str(),
                t1,
                t2: *decided_at,
                valid_until: lease.valid_until(),
                votes: &votes[..n],
            });
        }
        AcquireOutcome::Failed {
            reason, attempts, ..
        } => observer.observe(&Observation::AcquireFailed {
            lock,
            reason: *reason,
            attempts: *attempts,
            at: driver.last_input().unwrap_or(now),
        }),
    }
}
