//! The one input enum and the one output enum every machine speaks.

use crate::command::Command;
use crate::reply::Reply;
use crate::time::Instant;

/// Identifies one command sent by one machine, so that a reply is matched to the command it
/// answers and a late reply to an earlier attempt is never counted for a later one.
///
/// The host copies it from [`Transmit::request`] and hands it back with the reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u32);

impl RequestId {
    /// The id as a number (for hosts that store it across a language boundary).
    pub const fn as_u32(self) -> u32 {
        self.0
    }

    /// An id from its number.
    pub const fn from_u32(v: u32) -> Self {
        Self(v)
    }
}

/// Something that happened, fed to a machine with `handle_input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Instance `instance` answered request `request`; the host received the reply at `at`.
    Reply {
        /// The instance index, `0..N`.
        instance: usize,
        /// The request the reply answers.
        request: RequestId,
        /// The decoded reply.
        reply: Reply<'a>,
        /// When the reply was received, on the host's monotonic clock.
        at: Instant,
    },
    /// The request could not be delivered or its connection failed (refused, reset, closed)
    /// before a reply arrived.
    TransportError {
        /// The instance index, `0..N`.
        instance: usize,
        /// The request that failed.
        request: RequestId,
        /// When the failure was seen.
        at: Instant,
    },
    /// Time passed. Feed it when a [`Output::Wait`] deadline is reached; feeding it early or
    /// often is harmless.
    Timeout {
        /// The current time.
        now: Instant,
    },
}

impl Input<'_> {
    /// The time this input carries.
    pub fn time(&self) -> Instant {
        match *self {
            Self::Reply { at, .. } | Self::TransportError { at, .. } => at,
            Self::Timeout { now } => now,
        }
    }
}

/// A command for the host to send.
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    /// The instance to send it to, `0..N`.
    pub instance: usize,
    /// The id to hand back with its reply.
    pub request: RequestId,
    /// The command.
    pub command: Command<'a>,
}

/// What a machine wants next, from `poll_output`.
#[derive(Debug)]
pub enum Output<'a, T> {
    /// Send this command. Keep polling: more may follow.
    Send(Transmit<'a>),
    /// Nothing to send: wait for a reply, or until `until`, then feed an input.
    Wait {
        /// The next deadline; feed [`Input::Timeout`] once it is reached.
        until: Instant,
    },
    /// Finished: the outcome. Terminal; polling again returns it again.
    Done(&'a T),
}
