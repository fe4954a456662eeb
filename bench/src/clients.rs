//! The Rust clients under test, behind one `cycle` call: acquire, hold, release.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::raw::Raw;

/// When each step of one acquire+release happened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// The acquire was called.
    pub(crate) started: Instant,
    /// The acquire returned a lock.
    pub(crate) acquired: Instant,
    /// The release was called (after the hold).
    pub(crate) release_started: Instant,
    /// The release returned.
    pub(crate) released: Instant,
}

/// A client, ready to lock.
pub(crate) enum Client {
    /// The raw baseline.
    Raw(Raw),
    /// This project's runtime.
    Redlock(redlock::Redlock),
    /// rslock (a peer).
    Rslock(rslock::LockManager),
}

impl Client {
    /// Acquire `key`, run `hold`, release. `Err` when the lock was not acquired.
    pub(crate) async fn cycle<F, Fut>(
        &self,
        key: &str,
        ttl: Duration,
        hold: F,
    ) -> Result<Timing, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        match self {
            Self::Raw(raw) => raw.cycle(key, ttl.as_millis() as u64, hold).await,
            Self::Redlock(redlock) => {
                let started = Instant::now();
                let lock = redlock.lock(key, ttl).await.map_err(|e| e.to_string())?;
                let acquired = Instant::now();
                hold().await;
                let release_started = Instant::now();
                lock.release().await.map_err(|e| e.to_string())?;
                Ok(Timing {
                    started,
                    acquired,
                    release_started,
                    released: Instant::now(),
                })
            }
            Self::Rslock(manager) => {
                let started = Instant::now();
                let lock = manager
                    .lock(key.as_bytes(), ttl)
                    .await
                    .map_err(|e| e.to_string())?;
                let acquired = Instant::now();
                hold().await;
                let release_started = Instant::now();
                manager.unlock(&lock).await;
                Ok(Timing {
                    started,
                    acquired,
                    release_started,
                    released: Instant::now(),
                })
            }
        }
    }
}

/// How a client is configured for a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The library's own defaults.
    Default,
    /// `delay` ± `jitter` between attempts, with enough attempts never to give up in a run.
    Short {
        /// The delay.
        delay: Duration,
        /// The jitter.
        jitter: Duration,
    },
}

/// Which client to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The raw baseline.
    Raw,
    /// This runtime; `handoff` turns fast handoff on.
    Redlock {
        /// Fast handoff on.
        handoff: bool,
    },
    /// rslock.
    Rslock,
}

/// Builds a connected client (connections opened, scripts loaded where the client can).
pub(crate) async fn build(kind: Kind, retry: Retry, urls: &[String]) -> Result<Client, String> {
    Ok(match kind {
        Kind::Raw => Client::Raw(Raw::connect(urls).await?),
        Kind::Redlock { handoff } => {
            let mut builder = redlock::Redlock::builder(urls.iter().cloned());
            if let Retry::Short { delay, jitter } = retry {
                builder = builder.retries(1_000_000).retry_delay(delay, jitter);
            }
            builder = with_handoff(builder, handoff);
            Client::Redlock(builder.connect().await.map_err(|e| e.to_string())?)
        }
        Kind::Rslock => {
            let mut manager = rslock::LockManager::new(urls.to_vec());
            if let Retry::Short { delay, .. } = retry {
                // rslock draws its delay uniformly from 0..delay: give it twice ours, the same
                // mean.
                manager.set_retry(1_000_000, delay * 2);
            }
            Client::Rslock(manager)
        }
    })
}

fn with_handoff(builder: redlock::Builder, on: bool) -> redlock::Builder {
    builder.fast_handoff(on)
}
