//! What an instance answered, as the host hands it to a machine, and what it counts as.

use core::fmt;

use crate::config::MAX_INSTANCES;
use crate::resp::Frame;

/// A decoded reply from one instance to one command.
///
/// Hosts with a Redis client map its value into this; hosts with a socket use
/// [`Reply::from_frame`] on the output of [`resp::parse`](crate::resp::parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply<'a> {
    /// The status `OK`.
    Ok,
    /// No value (RESP2 null bulk or array, RESP3 null).
    Nil,
    /// An integer.
    Integer(i64),
    /// An error reply, its full text (e.g. `NOSCRIPT No matching script. Please use EVAL.`).
    Error(&'a [u8]),
    /// Anything else (another status, a string, an array…): never a success.
    Other,
}

impl<'a> Reply<'a> {
    /// Maps a parsed RESP frame to a reply.
    pub fn from_frame(frame: &Frame<'a>) -> Self {
        match *frame {
            Frame::Simple(b"OK") => Self::Ok,
            Frame::Null => Self::Nil,
            Frame::Integer(i) => Self::Integer(i),
            Frame::Error(text) | Frame::BlobError(text) => Self::Error(text),
            _ => Self::Other,
        }
    }
}

/// A Redis error reply, classified by its leading word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerError {
    /// `NOSCRIPT`: the script cache lacks the script (a restarted instance).
    NoScript,
    /// `READONLY`: the instance is a replica.
    ReadOnly,
    /// `OOM`: `maxmemory` reached with a no-eviction policy.
    OutOfMemory,
    /// `BUSY`: a script is running too long.
    Busy,
    /// `LOADING`: the instance is loading its data set.
    Loading,
    /// `MISCONF`: persistence is failing and writes are refused.
    MisConf,
    /// `WRONGTYPE`: the lock key holds a non-string value.
    WrongType,
    /// `NOAUTH` / `WRONGPASS`: authentication is missing or wrong.
    Auth,
    /// `NOPERM`: the ACL user may not run the command.
    NoPerm,
    /// `CLUSTERDOWN`, `MOVED`, `ASK`, `CROSSSLOT`, `TRYAGAIN`: cluster routing trouble.
    Cluster,
    /// Any other error (`ERR …` and unknown prefixes).
    Other,
}

impl ServerError {
    /// Classifies an error reply's text.
    pub fn classify(text: &[u8]) -> Self {
        let word = text.split(|&b| b == b' ').next().unwrap_or_default();
        match word {
            b"NOSCRIPT" => Self::NoScript,
            b"READONLY" => Self::ReadOnly,
            b"OOM" => Self::OutOfMemory,
            b"BUSY" => Self::Busy,
            b"LOADING" => Self::Loading,
            b"MISCONF" => Self::MisConf,
            b"WRONGTYPE" => Self::WrongType,
            b"NOAUTH" | b"WRONGPASS" => Self::Auth,
            b"NOPERM" => Self::NoPerm,
            b"CLUSTERDOWN" | b"MOVED" | b"ASK" | b"CROSSSLOT" | b"TRYAGAIN" => Self::Cluster,
            _ => Self::Other,
        }
    }

    /// A short lowercase name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::NoScript => "noscript",
            Self::ReadOnly => "readonly",
            Self::OutOfMemory => "oom",
            Self::Busy => "busy",
            Self::Loading => "loading",
            Self::MisConf => "misconf",
            Self::WrongType => "wrongtype",
            Self::Auth => "auth",
            Self::NoPerm => "noperm",
            Self::Cluster => "cluster",
            Self::Other => "error",
        }
    }
}

/// What one instance contributed to an operation.
///
/// `Yes` and `Held` read per operation: for an acquire, locked / already held by another value;
/// for an extend, extended / no longer ours; for a release, deleted / not ours or already gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum InstanceStatus {
    /// No command was sent to it (the decision came first).
    #[default]
    NotSent,
    /// Sent; no answer had arrived when the machine decided.
    Pending,
    /// Counted for the quorum.
    Yes,
    /// Answered, but the key belongs to someone else (or, for extend and release, not to us).
    Held,
    /// A Redis error reply.
    ServerError(ServerError),
    /// The host reported a transport failure (refused, reset, closed).
    TransportError,
    /// No answer within the instance timeout.
    TimedOut,
    /// An answer of a type the command cannot return.
    UnexpectedReply,
}

impl InstanceStatus {
    /// Whether this is a definite "no" that is not contention (error, unreachable, timeout).
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Self::ServerError(_) | Self::TransportError | Self::TimedOut | Self::UnexpectedReply
        )
    }

    /// Whether the instance has answered or given up (neither sent-and-waiting nor unsent).
    pub fn is_settled(&self) -> bool {
        !matches!(self, Self::NotSent | Self::Pending)
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSent => f.write_str("not sent"),
            Self::Pending => f.write_str("pending"),
            Self::Yes => f.write_str("yes"),
            Self::Held => f.write_str("held"),
            Self::ServerError(e) => write!(f, "server error ({})", e.as_str()),
            Self::TransportError => f.write_str("transport error"),
            Self::TimedOut => f.write_str("timed out"),
            Self::UnexpectedReply => f.write_str("unexpected reply"),
        }
    }
}

/// The per-instance results of one round (the last attempt, for an acquire).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Report {
    statuses: [InstanceStatus; MAX_INSTANCES],
    len: u8,
}

impl Report {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            statuses: [InstanceStatus::NotSent; MAX_INSTANCES],
            // Bounded by MAX_INSTANCES through Config.
            len: len.min(MAX_INSTANCES) as u8,
        }
    }

    pub(crate) fn set(&mut self, instance: usize, status: InstanceStatus) {
        if let Some(s) = self.statuses.get_mut(instance) {
            *s = status;
        }
    }

    /// The number of instances.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the report covers no instance (never the case for a machine's report).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The status of instance `i`.
    pub fn get(&self, i: usize) -> Option<InstanceStatus> {
        self.as_slice().get(i).copied()
    }

    /// All statuses, indexed by instance.
    pub fn as_slice(&self) -> &[InstanceStatus] {
        self.statuses.get(..self.len()).unwrap_or_default()
    }

    /// How many instances said yes.
    pub fn yes(&self) -> usize {
        self.count(|s| *s == InstanceStatus::Yes)
    }

    /// How many instances answered "held".
    pub fn held(&self) -> usize {
        self.count(|s| *s == InstanceStatus::Held)
    }

    /// How many instances failed (errors, transport failures, timeouts).
    pub fn failed(&self) -> usize {
        self.count(InstanceStatus::is_failure)
    }

    fn count(&self, f: impl Fn(&InstanceStatus) -> bool) -> usize {
        self.as_slice().iter().filter(|s| f(s)).count()
    }
}

impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_errors() {
        assert_eq!(
            ServerError::classify(b"NOSCRIPT No matching script"),
            ServerError::NoScript
        );
        assert_eq!(
            ServerError::classify(b"OOM command not allowed"),
            ServerError::OutOfMemory
        );
        assert_eq!(
            ServerError::classify(b"WRONGTYPE Operation"),
            ServerError::WrongType
        );
        assert_eq!(ServerError::classify(b""), ServerError::Other);
        assert_eq!(ServerError::classify(b"ERR x"), ServerError::Other);
    }

    #[test]
    fn frames_map_to_replies() {
        assert_eq!(Reply::from_frame(&Frame::Simple(b"OK")), Reply::Ok);
        assert_eq!(Reply::from_frame(&Frame::Simple(b"QUEUED")), Reply::Other);
        assert_eq!(Reply::from_frame(&Frame::Bulk(b"OK")), Reply::Other);
        assert_eq!(Reply::from_frame(&Frame::Null), Reply::Nil);
        assert_eq!(Reply::from_frame(&Frame::Integer(3)), Reply::Integer(3));
        assert_eq!(
            Reply::from_frame(&Frame::BlobError(b"ERR")),
            Reply::Error(b"ERR")
        );
    }
}
