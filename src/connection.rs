//! One lazily connected, auto-reconnecting, multiplexed connection per instance.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError, Value};
use redlock_core::{Command, Reply};

/// What an instance answered, owned (the reply outlives the command's borrow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    Ok,
    Nil,
    Integer(i64),
    /// An error reply: its full text, e.g. `NOSCRIPT No matching script`.
    ServerError(String),
    Other,
    /// The command could not be delivered or its connection failed.
    Transport(String),
}

impl Answer {
    pub(crate) fn reply(&self) -> Option<Reply<'_>> {
        Some(match self {
            Self::Ok => Reply::Ok,
            Self::Nil => Reply::Nil,
            Self::Integer(i) => Reply::Integer(*i),
            Self::ServerError(text) => Reply::Error(text.as_bytes()),
            Self::Other => Reply::Other,
            Self::Transport(_) => return None,
        })
    }

    /// The error text, for reports.
    pub(crate) fn error_text(&self) -> Option<&str> {
        match self {
            Self::ServerError(t) | Self::Transport(t) => Some(t),
            _ => None,
        }
    }

    fn from_value(value: Value) -> Self {
        match value {
            Value::Okay => Self::Ok,
            Value::SimpleString(s) if s == "OK" => Self::Ok,
            Value::Nil => Self::Nil,
            Value::Int(i) => Self::Integer(i),
            Value::ServerError(e) => Self::ServerError(match e.details() {
                Some(d) => format!("{} {d}", e.code()),
                None => e.code().to_owned(),
            }),
            _ => Self::Other,
        }
    }

    fn from_error(err: &RedisError) -> Self {
        if let Some(code) = err.code() {
            return Self::ServerError(match err.detail() {
                Some(d) => format!("{code} {d}"),
                None => code.to_owned(),
            });
        }
        Self::Transport(err.to_string())
    }
}

/// An instance: its client (URL, credentials, TLS) and its current connection, if any.
pub(crate) struct Instance {
    client: Client,
    /// The redacted URL, for errors and logs.
    pub(crate) name: String,
    /// The connection and its generation (bumped on every new connection). Read on every
    /// command from every thread, so it is read without a lock or a shared counter.
    current: ArcSwapOption<Connected>,
    generation: std::sync::atomic::AtomicU64,
    connecting: tokio::sync::Mutex<()>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Instance {
    pub(crate) fn new(client: Client, name: String, connect_timeout: Duration) -> Self {
        Self {
            client,
            name,
            current: ArcSwapOption::empty(),
            generation: std::sync::atomic::AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            connect_timeout,
        }
    }

    /// The current connection (a clone of the handle) and its generation, if there is one.
    pub(crate) fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.current
            .load()
            .as_ref()
            .map(|c| (c.generation, c.conn.clone()))
    }

    /// The connection, connecting first if there is none. One connect at a time per instance.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection, RedisError> {
        self.generation_and_connection().await.map(|(_, c)| c)
    }

    async fn generation_and_connection(&self) -> Result<(u64, MultiplexedConnection), RedisError> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let _single_flight = self.connecting.lock().await;
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let config = AsyncConnectionConfig::new()
            // The machines own every deadline; a client-side response timeout would turn a slow
            // reply into a transport error the machine cannot tell from a refused connection.
            .set_response_timeout(None)
            .set_connection_timeout(Some(self.connect_timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        queue_script_loads(&mut conn).await;
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        self.current.store(Some(Arc::new(Connected {
            generation,
            conn: conn.clone(),
        })));
        Ok((generation, conn))
    }

    /// Drops the current connection: a command on it timed out, and a connection that may have
    /// lost bytes matches later replies to the wrong requests. The next command reconnects.
    pub(crate) fn condemn(&self) {
        if self.current.swap(None).is_some() {
            tracing::debug!(server = %self.name, "dropping a connection after a timeout");
        }
    }

    /// Forgets connection `generation` (if still current) so the next command reconnects.
    pub(crate) fn invalidate(&self, generation: u64) {
        self.current.rcu(|current| match current {
            Some(c) if c.generation == generation => None,
            other => other.clone(),
        });
    }

    /// Sends one command and returns the answer (never an error: failures are answers).
    ///
    /// A connection whose command timed out is dropped by the driver ([`Instance::condemn`]),
    /// where the core says so; here only a broken connection is.
    pub(crate) async fn run(&self, cmd: &redis::Cmd) -> Answer {
        let (generation, mut conn) = match self.generation_and_connection().await {
            Ok(c) => c,
            Err(e) => return Answer::Transport(e.to_string()),
        };
        let (answer, broken) = run_on(&mut conn, cmd).await;
        if broken {
            self.invalidate(generation);
        }
        answer
    }
}

/// Queues `SCRIPT LOAD` of every script the machines send on a new connection, ahead of the
/// command that opened it: Redis runs one connection's commands in order, so the first `EVALSHA`
/// after a restart with an empty script cache finds its script, and nobody waits for the loads
/// (no added round trip, nothing held if the server stalls). Their replies are read and dropped
/// by the connection. Without this, that instance answers `NOSCRIPT`, the core re-sends the full
/// script, and an acquire decided meanwhile on a quorum of other instances leaves it out of a
/// multi-key lock. A refused load (an ACL without `SCRIPT`) changes nothing: `NOSCRIPT` is still
/// handled.
async fn queue_script_loads(conn: &mut MultiplexedConnection) {
    for script in redlock_core::SCRIPTS {
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script.source).set_no_response(true);
        // Returns once the command is queued on the connection (or the connection is gone,
        // which the next command finds out).
        let _ = conn.send_packed_command(&load).await;
    }
}

/// A connection and its generation, as an [`Instance`] keeps it.
struct Connected {
    generation: u64,
    conn: MultiplexedConnection,
}

/// Sends one command on `conn`: the answer, and whether the connection is broken (the caller
/// then invalidates it).
pub(crate) async fn run_on(conn: &mut MultiplexedConnection, cmd: &redis::Cmd) -> (Answer, bool) {
    // The inherent method, not `query_async`: that one boxes its future.
    match conn.send_packed_command(cmd).await {
        Ok(v) => (Answer::from_value(v), false),
        Err(e) => {
            let broken = e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error();
            (Answer::from_error(&e), broken)
        }
    }
}

/// The redis-rs command for a core command.
pub(crate) fn to_redis(command: &Command<'_>) -> redis::Cmd {
    // Sized up front: one allocation for the arguments and one for their bytes.
    let bytes = command.args().map(<[u8]>::len).sum();
    let mut cmd = redis::Cmd::with_capacity(command.arg_count(), bytes);
    for a in command.args() {
        cmd.arg(a);
    }
    cmd
}

/// `redis://user:secret@host` → `redis://user:***@host`: URLs as they may appear in logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_passwords() {
        assert_eq!(
            redact("redis://alice:s3cret@127.0.0.1:6379/2"),
            "redis://alice:***@127.0.0.1:6379/2"
        );
        assert_eq!(redact("rediss://:pw@h:1"), "rediss://:***@h:1");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("not a url"), "not a url");
    }
}
