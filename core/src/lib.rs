//! The Redlock algorithm as a sans-I/O state machine: `#![no_std]`, no allocation, no clock, no
//! sockets.
//!
//! Redlock takes a lock on a resource by writing a random value with a TTL to a majority of N
//! independent Redis masters, and counts the lock as held only while
//! `validity = ttl - elapsed - drift` is positive. This crate decides everything about that —
//! quorum, validity, retries, cleanup, release — from the replies and clock readings its host
//! feeds in. The host moves the bytes: a tokio runtime, a C event loop, JavaScript, firmware.
//!
//! **The contract: feed monotonic time with every input, then drain `poll_output` until it
//! returns `Wait` or `Done`; a lease is valid only until `valid_until` on your clock.**
//!
//! # A complete drive loop
//!
//! Three in-memory "instances" stand in for Redis here so the example runs; a real host sends
//! each [`Command`] to instance `instance` and feeds back the reply (see [`Reply`],
//! [`resp::parse`]) with the time it arrived.
//!
//! ```
//! use core::time::Duration;
//! use redlock_core::{
//!     Acquire, AcquireOutcome, Command, CommandKind, Config, Input, Instant, Output, Release,
//!     Reply, Resources,
//! };
//! # use rand_chacha::{rand_core::SeedableRng, ChaCha20Rng};
//!
//! /// A toy instance: one key, no TTL, enough to answer the three commands.
//! #[derive(Default)]
//! struct Toy(Option<Vec<u8>>);
//!
//! impl Toy {
//!     fn answer(&mut self, cmd: &Command<'_>) -> Reply<'static> {
//!         let value = cmd.value().as_bytes().to_vec();
//!         match cmd.kind() {
//!             CommandKind::Acquire if self.0.is_none() => { self.0 = Some(value); Reply::Ok }
//!             CommandKind::Acquire => Reply::Nil,
//!             CommandKind::Extend => Reply::Integer((self.0 == Some(value)) as i64),
//!             CommandKind::Release if self.0 == Some(value) => { self.0 = None; Reply::Integer(1) }
//!             CommandKind::Release => Reply::Integer(0),
//!         }
//!     }
//! }
//!
//! let mut instances: Vec<Toy> = (0..3).map(|_| Toy::default()).collect();
//! let config = Config::new(instances.len(), Duration::from_secs(10))?;
//! let rng = ChaCha20Rng::seed_from_u64(7); // use an OS-seeded CSPRNG in production
//! let mut clock = 1_000; // your monotonic clock, in ms
//!
//! let mut acquire = Acquire::new(config, Resources::single(b"orders:42")?, rng, Instant::from_millis(clock))?;
//! let lease = loop {
//!     match acquire.poll_output() {
//!         Output::Send(tx) => {
//!             let reply = instances[tx.instance].answer(&tx.command);
//!             clock += 1; // the round trip took a millisecond
//!             let (instance, request) = (tx.instance, tx.request);
//!             acquire.handle_input(Input::Reply { instance, request, reply, at: Instant::from_millis(clock) })?;
//!         }
//!         Output::Wait { until } => {
//!             clock = until.as_millis(); // sleep until the deadline (or until a reply comes)
//!             acquire.handle_input(Input::Timeout { now: Instant::from_millis(clock) })?;
//!         }
//!         Output::Done(AcquireOutcome::Acquired { lease, .. }) => break lease.clone(),
//!         Output::Done(failed) => panic!("not acquired: {failed:?}"),
//!     }
//! };
//! assert!(lease.is_valid(Instant::from_millis(clock)));
//! assert_eq!(lease.valid_until().as_millis(), 1_000 + 10_000 - 102); // t1 + ttl - drift
//!
//! // … the protected work, checking `lease.is_valid(now)` before it commits …
//!
//! let mut release = Release::new(config, &lease, Instant::from_millis(clock))?;
//! loop {
//!     match release.poll_output() {
//!         Output::Send(tx) => {
//!             let reply = instances[tx.instance].answer(&tx.command);
//!             let (instance, request) = (tx.instance, tx.request);
//!             release.handle_input(Input::Reply { instance, request, reply, at: Instant::from_millis(clock) })?;
//!         }
//!         Output::Wait { until } => {
//!             release.handle_input(Input::Timeout { now: until })?;
//!         }
//!         Output::Done(outcome) => {
//!             assert!(outcome.confirmed);
//!             break;
//!         }
//!     }
//! }
//! assert!(instances.iter().all(|i| i.0.is_none()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the machines guarantee
//!
//! - The quorum is `N / 2 + 1` of the *configured* N; an error, a timeout or an unexpected
//!   reply is never a yes, and a reply is only counted for the command it answers
//!   ([`RequestId`]).
//! - A lease is granted only if `ttl - (t2 - t1) - drift > min_validity`, where t1 is the time
//!   fed when the attempt's commands were produced and t2 the arrival of the deciding reply; it
//!   is valid until `t1 + ttl - drift`.
//! - Every attempt writes a fresh 128-bit value, so leftovers of an earlier attempt are never
//!   counted and retries never block themselves. A failed attempt is released on every instance
//!   it reached, each release emitted only after that instance's own reply or timeout.
//! - Extend never revives an expired lease or re-creates a key; release never deletes a key
//!   holding another value.
//! - A clock reading smaller than an earlier one fails closed.
//! - No input sequence panics; capacities ([`MAX_INSTANCES`], [`MAX_KEY_LEN`],
//!   [`MAX_RESOURCES`]) are checked and reported as [`Error`]s.
//!
//! What Redlock itself cannot promise — safety across instance restarts without persistence,
//! server clock jumps, or a holder paused past its lease — is discussed in the project README.

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, missing_debug_implementations)]

mod acquire;
mod command;
mod config;
mod error;
mod extend;
mod io;
mod lease;
mod release;
mod reply;
mod resource;
pub mod resp;
mod round;
mod script;
mod time;
mod token;

pub use acquire::{Acquire, AcquireFailure, AcquireOutcome};
pub use command::{Args, BufferTooSmall, Command, CommandForm, CommandKind};
pub use config::{Config, ConfigError, MAX_INSTANCES};
pub use error::Error;
pub use extend::{Extend, ExtendFailure, ExtendOutcome};
pub use io::{Input, Output, RequestId, Transmit};
pub use lease::Lease;
pub use release::{Release, ReleaseOutcome};
pub use reply::{InstanceStatus, Reply, Report, ServerError};
pub use resource::{Resources, MAX_KEY_LEN, MAX_RESOURCES, MAX_RESOURCES_LEN};
pub use script::{
    Script, ACQUIRE_SCRIPT, EXTEND_SCRIPT, RELEASE_CHANNEL_PREFIX, RELEASE_NOTIFY_SCRIPT,
    RELEASE_SCRIPT, SCRIPTS,
};
pub use time::Instant;
pub use token::{Token, TOKEN_BYTES, TOKEN_LEN};
