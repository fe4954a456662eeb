//! The harness error type.

use std::fmt;
use std::io;

/// The message returned when `redis-server` cannot be found.
pub(crate) const REDIS_NOT_FOUND: &str = "redis-server not found on PATH; install it with \
`sudo apt-get install -y redis-server` or run scripts/ensure-redis.sh";

/// Everything that can go wrong in the harness.
///
/// `Debug` prints the same text as `Display`, so `.unwrap()` in a test shows the readable
/// message (e.g. the install hint, or a multi-line log tail).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `redis-server` is not on `PATH`.
    ///
    /// Displays exactly: redis-server not found on PATH; install it with
    /// `sudo apt-get install -y redis-server` or run scripts/ensure-redis.sh
    #[error("{}", REDIS_NOT_FOUND)]
    RedisServerNotFound,

    /// A `redis-server` process did not start or did not become ready in time.
    ///
    /// The message includes the tail of the instance's log.
    #[error("{0}")]
    Startup(String),

    /// An I/O error (connect, read, write, timeout, spawn...).
    ///
    /// Use [`Error::is_timeout`] and [`Error::is_connection_error`] to classify it.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    /// Redis answered a command with an error reply (`-ERR ...`, `-WRONGPASS ...`).
    #[error("redis error reply: {0}")]
    Server(String),

    /// The bytes received were not valid RESP2.
    #[error("RESP protocol error: {0}")]
    Protocol(String),

    /// Any other failure (bad state, missing tool, TLS-only instance...).
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// True when this is an I/O timeout (a read or write deadline passed).
    ///
    /// A SIGSTOPped instance or a blackholed proxy produces this error.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Io(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }

    /// True when the connection was refused, reset, aborted or closed by the peer.
    ///
    /// A killed instance or a proxy in `drop_connections` mode produces this error.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Io(e) if matches!(
                e.kind(),
                io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::BrokenPipe
                    | io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::NotConnected
            )
        )
    }

    /// The error text of a [`Error::Server`] reply, if this is one.
    pub fn server_message(&self) -> Option<&str> {
        match self {
            Error::Server(msg) => Some(msg),
            _ => None,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Result alias used throughout the harness.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_is_exact() {
        assert_eq!(
            Error::RedisServerNotFound.to_string(),
            "redis-server not found on PATH; install it with `sudo apt-get install -y redis-server` \
             or run scripts/ensure-redis.sh"
        );
    }

    #[test]
    fn classification() {
        let t = Error::Io(io::Error::new(io::ErrorKind::WouldBlock, "x"));
        assert!(t.is_timeout() && !t.is_connection_error());
        let c = Error::Io(io::Error::new(io::ErrorKind::ConnectionReset, "x"));
        assert!(c.is_connection_error() && !c.is_timeout());
        assert_eq!(
            Error::Server("ERR x".into()).server_message(),
            Some("ERR x")
        );
    }
}
