//! The raw baseline: only the round trips Redlock cannot avoid, with the runtime's Redis client.
//!
//! `SET key value NX PX ttl` to every instance at once, decided at the quorum; then the release
//! script by `EVALSHA` to every instance, each sent only once that instance's `SET` reply is in
//! (a release must never overtake its own `SET`). No validity arithmetic, no timeouts, no retry
//! delay: a lower bound for any Redlock client on the same connections.

use std::future::Future;
use std::time::Instant;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use rand::RngCore;
use redis::aio::MultiplexedConnection;
use redis::Value;
use redlock::redlock_core::{RELEASE_SCRIPT, SCRIPTS};

use crate::clients::Timing;

/// One multiplexed connection per instance, shared by every task.
#[derive(Clone)]
pub(crate) struct Raw {
    conns: Vec<MultiplexedConnection>,
}

impl Raw {
    /// Connects to every instance and loads the scripts.
    pub(crate) async fn connect(urls: &[String]) -> Result<Self, String> {
        let mut conns = Vec::new();
        for url in urls {
            let client = redis::Client::open(url.as_str()).map_err(|e| e.to_string())?;
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .map_err(|e| e.to_string())?;
            for script in SCRIPTS {
                redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(script.source)
                    .query_async::<String>(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            conns.push(conn);
        }
        Ok(Self { conns })
    }

    /// Acquire, `hold`, release. `Err` when the quorum said no (everything is released anyway).
    pub(crate) async fn cycle<F, Fut>(
        &self,
        key: &str,
        ttl_ms: u64,
        hold: F,
    ) -> Result<Timing, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = ()>,
    {
        let n = self.conns.len();
        let quorum = n / 2 + 1;
        let started = Instant::now();
        let mut raw = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut raw);
        let mut value = [0u8; 32];
        for (i, b) in raw.iter().enumerate() {
            value[2 * i] = b"0123456789abcdef"[usize::from(b >> 4)];
            value[2 * i + 1] = b"0123456789abcdef"[usize::from(b & 15)];
        }
        let value = &value[..];

        let set = |i: usize| {
            let mut conn = self.conns[i].clone();
            async move {
                let mut cmd = redis::cmd("SET");
                cmd.arg(key).arg(value).arg("NX").arg("PX").arg(ttl_ms);
                (i, conn.send_packed_command(&cmd).await)
            }
        };
        let release = |i: usize| {
            let mut conn = self.conns[i].clone();
            async move {
                let mut cmd = redis::cmd("EVALSHA");
                cmd.arg(RELEASE_SCRIPT.sha1).arg(1).arg(key).arg(value);
                conn.send_packed_command(&cmd).await
            }
        };

        let mut sets: FuturesUnordered<_> = (0..n).map(set).collect();
        let (mut yes, mut no, mut answered) = (0, 0, 0u32);
        while yes < quorum && no <= n - quorum {
            let Some((i, reply)) = sets.next().await else {
                break;
            };
            answered |= 1 << i;
            if matches!(reply, Ok(Value::Okay)) {
                yes += 1;
            } else {
                no += 1;
            }
        }
        let acquired_at = Instant::now();
        let acquired = yes >= quorum;
        if acquired {
            hold().await;
        }
        let release_started = Instant::now();
        let mut releases: FuturesUnordered<_> = (0..n)
            .filter(|i| answered & (1 << i) != 0)
            .map(release)
            .collect();
        loop {
            tokio::select! {
                Some((i, _)) = sets.next() => releases.push(release(i)),
                Some(_) = releases.next() => {}
                else => break,
            }
        }
        let released = Instant::now();
        if !acquired {
            return Err("contended".into());
        }
        Ok(Timing {
            started,
            acquired: acquired_at,
            release_started,
            released,
        })
    }
}

impl Raw {
    /// Heap allocations the redis client itself makes for the 10 commands of one
    /// acquire+release (5 `SET`s, then 5 release `EVALSHA`s, each batch concurrent), with the
    /// commands built beforehand: the floor under any lock library on this client. Averaged
    /// over `iterations`; counts only while the counting allocator is on.
    pub(crate) async fn client_floor(&self, prefix: &str, iterations: usize) -> f64 {
        let [c0, c1, c2, c3, c4] = match <[MultiplexedConnection; 5]>::try_from(self.conns.clone())
        {
            Ok(c) => c,
            Err(_) => return f64::NAN,
        };
        let mut total = 0u64;
        for i in 0..iterations {
            let key = format!("{prefix}:{i}");
            let mut set = redis::cmd("SET");
            set.arg(&key).arg("v").arg("NX").arg("PX").arg(10_000);
            let mut release = redis::cmd("EVALSHA");
            release.arg(RELEASE_SCRIPT.sha1).arg(1).arg(&key).arg("v");
            let mut conns = [c0.clone(), c1.clone(), c2.clone(), c3.clone(), c4.clone()];
            let before = crate::alloc::allocations();
            for cmd in [&set, &release] {
                let [a, b, c, d, e] = &mut conns;
                let _ = tokio::join!(
                    a.send_packed_command(cmd),
                    b.send_packed_command(cmd),
                    c.send_packed_command(cmd),
                    d.send_packed_command(cmd),
                    e.send_packed_command(cmd),
                );
            }
            total += crate::alloc::allocations() - before;
        }
        total as f64 / iterations.max(1) as f64
    }
}
