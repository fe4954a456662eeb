//! Observation hooks: what every lock operation does, as it does it, with the clock readings the
//! core decided with.
//!
//! Set one [`Observer`] with [`Builder::observer`](crate::Builder::observer); it sees every
//! acquire, extend and release of that [`Redlock`](crate::Redlock): each attempt with its value
//! and `t1`, each command sent, each reply or per-instance timeout, and each decision with `t1`,
//! `t2`, `valid_until` and the votes. This is what a history recorder needs to check the
//! Redlock invariants over a real run (the `redlock-torture` runner records one this way), and
//! it serves metrics or tracing as well.
//!
//! Times are [`redlock_core::Instant`]s on the manager's clock (milliseconds since its epoch);
//! [`Redlock::tokio_instant`](crate::Redlock::tokio_instant) maps one to tokio's clock (on Linux
//! `CLOCK_MONOTONIC`, like `std::time::Instant`).
//!
//! The observer is called synchronously from the task driving the operation, so it must be
//! quick and must not block (append to a buffer or a file, bump a counter). Without an observer
//! the runtime does no observation work at all.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use redlock::{Observation, Redlock};
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = Arc::clone(&seen);
//! let redlock = Redlock::builder(["redis://127.0.0.1:7001"])
//!     .observer(Arc::new(move |o: &Observation<'_>| {
//!         if let Observation::Acquired { lock, valid_until, .. } = o {
//!             sink.lock().unwrap().push((*lock, *valid_until));
//!         }
//!     }))
//!     .build()
//!     .unwrap();
//! # let _ = redlock;
//! ```

use redlock_core::{
    AcquireFailure, CommandKind, ExtendFailure, InstanceStatus, Instant, Resources,
};

/// Receives [`Observation`]s. Implemented for every `Fn(&Observation<'_>) + Send + Sync`.
pub trait Observer: Send + Sync {
    /// Called once per observation, synchronously; keep it short and never block.
    fn observe(&self, observation: &Observation<'_>);
}

impl<F> Observer for F
where
    F: Fn(&Observation<'_>) + Send + Sync,
{
    fn observe(&self, observation: &Observation<'_>) {
        self(observation)
    }
}

/// Which machine an observed command or reply belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// An acquire (its attempts and the cleanup of failed attempts).
    Acquire,
    /// An extension of a held lock.
    Extend,
    /// The release of a held lock.
    Release,
}

/// One instance's answer to a command, as the runtime received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObservedReply<'a> {
    /// `OK`.
    Ok,
    /// A nil reply.
    Nil,
    /// An integer reply (scripts: 1 yes, 0 no).
    Integer(i64),
    /// A Redis error reply, e.g. `NOSCRIPT No matching script`.
    Error(&'a str),
    /// A reply of another type.
    Other,
    /// No reply: the connection failed (refused, reset, closed) or could not be opened.
    Transport(&'a str),
}

/// Something a lock operation did. Every variant names its lock by `lock`, an id unique within
/// one [`Redlock`](crate::Redlock) (see [`Lock::id`](crate::Lock::id)); extensions also carry
/// their own `extension` id.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Observation<'a> {
    /// An acquire starts.
    AcquireStarted {
        /// The lock id.
        lock: u64,
        /// The resources locked together.
        resources: &'a Resources,
        /// The TTL of the keys.
        ttl_ms: u64,
        /// The clock reading the acquire starts at.
        at: Instant,
    },
    /// An attempt of an acquire starts: its commands are about to be sent.
    AttemptStarted {
        /// The lock id.
        lock: u64,
        /// The attempt number, 1-based.
        attempt: u32,
        /// The fresh random value this attempt writes.
        value: &'a str,
        /// The attempt's `t1` (its validity is measured from here).
        t1: Instant,
        /// The clock reading when the runtime saw the attempt start (≥ `t1`).
        at: Instant,
    },
    /// A command is handed to an instance's connection.
    CommandSent {
        /// The lock id.
        lock: u64,
        /// The machine that sent it.
        operation: Operation,
        /// The command: for an acquire, `Acquire` for an attempt and `Release` for a cleanup.
        command: CommandKind,
        /// For an acquire, the attempt the command belongs to (a cleanup names the attempt it
        /// cleans up).
        attempt: Option<u32>,
        /// The instance index.
        instance: usize,
        /// The value the command carries.
        value: &'a str,
        /// The clock reading.
        at: Instant,
    },
    /// An instance answered (or its connection failed), and the answer is fed to the machine.
    ReplyReceived {
        /// The lock id.
        lock: u64,
        /// The machine the reply is for.
        operation: Operation,
        /// The command it answers.
        command: CommandKind,
        /// For an acquire, the attempt of that command.
        attempt: Option<u32>,
        /// The instance index.
        instance: usize,
        /// The answer.
        reply: ObservedReply<'a>,
        /// False when the reply can no longer count: its attempt is not the running one or the
        /// acquire is decided (a "late" reply). Always true outside acquires.
        current: bool,
        /// The clock reading fed with it.
        at: Instant,
    },
    /// An acquire attempt gave up waiting for an instance (its instance timeout passed).
    TimedOut {
        /// The lock id.
        lock: u64,
        /// The attempt.
        attempt: u32,
        /// The instance index.
        instance: usize,
        /// The clock reading.
        at: Instant,
    },
    /// The acquire succeeded.
    Acquired {
        /// The lock id.
        lock: u64,
        /// The winning attempt, 1-based.
        attempt: u32,
        /// Its value.
        value: &'a str,
        /// Its `t1`.
        t1: Instant,
        /// The decision (`t2`, the arrival of the deciding reply).
        t2: Instant,
        /// The lease's end: `t1 + ttl - drift`.
        valid_until: Instant,
        /// The instances counted as yes votes.
        votes: &'a [usize],
    },
    /// The acquire failed for good (after its last attempt and its cleanup).
    AcquireFailed {
        /// The lock id.
        lock: u64,
        /// Why, for the last attempt.
        reason: AcquireFailure,
        /// How many attempts were made.
        attempts: u32,
        /// The clock reading.
        at: Instant,
    },
    /// An extension starts.
    ExtendStarted {
        /// The lock id.
        lock: u64,
        /// The extension id, unique within the manager.
        extension: u64,
        /// The new TTL.
        ttl_ms: u64,
        /// Its `t1`.
        t1: Instant,
    },
    /// The extension succeeded.
    Extended {
        /// The lock id.
        lock: u64,
        /// The extension id.
        extension: u64,
        /// Its `t1`.
        t1: Instant,
        /// The decision.
        t2: Instant,
        /// The new end of the lease: `t1 + ttl - drift`.
        valid_until: Instant,
        /// The instances counted as yes votes.
        votes: &'a [usize],
    },
    /// The extension failed; the lease keeps `valid_until` (never later than before).
    ExtendFailed {
        /// The lock id.
        lock: u64,
        /// The extension id.
        extension: u64,
        /// Why.
        reason: ExtendFailure,
        /// The lease's end after the failure.
        valid_until: Instant,
        /// The clock reading.
        at: Instant,
    },
    /// A release starts (explicit, or in the background after the lock was dropped); the lock
    /// is no longer relied on from here.
    ReleaseStarted {
        /// The lock id.
        lock: u64,
        /// The clock reading.
        at: Instant,
    },
    /// The release finished.
    Released {
        /// The lock id.
        lock: u64,
        /// Per-instance results (`Yes` deleted, `Held` not ours or gone, failures).
        statuses: &'a [InstanceStatus],
        /// The clock reading.
        at: Instant,
    },
}
