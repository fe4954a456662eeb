//! Locking from firmware: the core driven through a transport the device implements.
//!
//! A device has no async runtime and no allocator, just a way to send bytes to each Redis
//! instance, a way to receive them, and a millisecond tick. [`Transport`] is that interface;
//! [`lock`] and [`unlock`] drive the core's machines over it with fixed buffers: commands go
//! out as RESP (`Command::encode_resp`) and replies come back through [`resp::parse`].
//!
//! This crate is `#![no_std]` and allocation-free; `make test` builds it for
//! `thumbv7em-none-eabihf` and runs the unit test of its logic on the host.

#![no_std]
#![forbid(unsafe_code)]

use core::time::Duration;

use redlock_core::resp::{self, ParseError};
use redlock_core::{
    Acquire, AcquireOutcome, Config, Input, Instant, Lease, Output, Release, Reply, Resources,
    MAX_INSTANCES,
};

/// The most bytes one encoded command may take (keys up to a few hundred bytes fit).
pub const TX_BUFFER: usize = 1024;
/// The receive buffer per instance.
pub const RX_BUFFER: usize = 256;

/// What the firmware provides: byte pipes to each instance and a monotonic millisecond clock.
pub trait Transport {
    /// A transport error (link down, buffer full).
    type Error;
    /// Milliseconds since boot, never decreasing.
    fn now_ms(&mut self) -> u64;
    /// Sends `bytes` to instance `instance`, whole.
    fn send(&mut self, instance: usize, bytes: &[u8]) -> Result<(), Self::Error>;
    /// Copies bytes received from `instance` into `buf` without blocking; returns how many.
    fn receive(&mut self, instance: usize, buf: &mut [u8]) -> Result<usize, Self::Error>;
    /// Waits for input or until `until_ms` (a low-power wait on real hardware).
    fn idle(&mut self, until_ms: u64);
}

/// Why the lock was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockError {
    /// The core's outcome was a failure: contention, no quorum, validity exhausted.
    NotAcquired(redlock_core::AcquireFailure),
    /// A command did not fit [`TX_BUFFER`].
    CommandTooLarge,
    /// The core refused an input (a clock that went backwards).
    Core(redlock_core::Error),
    /// More instances than this example supports.
    TooManyInstances,
}

/// Per-instance receive state: bytes so far and the requests awaiting a reply, in order.
struct Rx {
    buf: [u8; RX_BUFFER],
    len: usize,
    waiting: heapless_queue::Queue,
}

mod heapless_queue {
    //! A tiny FIFO of request ids (Redis answers each connection in order).
    use redlock_core::RequestId;

    const CAP: usize = 16;

    pub(crate) struct Queue {
        items: [Option<RequestId>; CAP],
        head: usize,
        len: usize,
    }

    impl Queue {
        pub(crate) const fn new() -> Self {
            Self {
                items: [None; CAP],
                head: 0,
                len: 0,
            }
        }

        /// Adds an id; when full, the oldest is dropped (its command then times out).
        pub(crate) fn push(&mut self, id: RequestId) {
            if self.len == CAP {
                self.pop();
            }
            let slot = (self.head + self.len) % CAP;
            self.items[slot] = Some(id);
            self.len += 1;
        }

        pub(crate) fn pop(&mut self) -> Option<RequestId> {
            if self.len == 0 {
                return None;
            }
            let id = self.items[self.head].take();
            self.head = (self.head + 1) % CAP;
            self.len -= 1;
            id
        }

        pub(crate) fn clear(&mut self) {
            *self = Self::new();
        }
    }
}

/// The machines driven here, seen alike.
trait Machine {
    type Outcome: Clone;
    fn handle(&mut self, input: Input<'_>) -> Result<(), redlock_core::Error>;
    fn poll(&mut self) -> Output<'_, Self::Outcome>;
}

impl<R: rand_core::RngCore + rand_core::CryptoRng> Machine for Acquire<R> {
    type Outcome = AcquireOutcome;
    fn handle(&mut self, input: Input<'_>) -> Result<(), redlock_core::Error> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Output<'_, AcquireOutcome> {
        self.poll_output()
    }
}

impl Machine for Release {
    type Outcome = redlock_core::ReleaseOutcome;
    fn handle(&mut self, input: Input<'_>) -> Result<(), redlock_core::Error> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Output<'_, Self::Outcome> {
        self.poll_output()
    }
}

fn drive<T: Transport, M: Machine>(
    transport: &mut T,
    instances: usize,
    machine: &mut M,
) -> Result<M::Outcome, LockError> {
    if instances > MAX_INSTANCES {
        return Err(LockError::TooManyInstances);
    }
    let mut rx: [Rx; MAX_INSTANCES] = core::array::from_fn(|_| Rx {
        buf: [0; RX_BUFFER],
        len: 0,
        waiting: heapless_queue::Queue::new(),
    });
    let mut tx = [0u8; TX_BUFFER];
    loop {
        let until = loop {
            match machine.poll() {
                Output::Send(t) => {
                    let (instance, request) = (t.instance, t.request);
                    let n = t
                        .command
                        .encode_resp(&mut tx)
                        .map_err(|_| LockError::CommandTooLarge)?;
                    match transport.send(instance, &tx[..n]) {
                        Ok(()) => rx[instance].waiting.push(request),
                        Err(_) => {
                            let at = Instant::from_millis(transport.now_ms());
                            machine
                                .handle(Input::TransportError {
                                    instance,
                                    request,
                                    at,
                                })
                                .map_err(LockError::Core)?;
                        }
                    }
                }
                Output::Wait { until } => break until,
                Output::Done(outcome) => return Ok(outcome.clone()),
            }
        };
        transport.idle(until.as_millis());
        for (instance, r) in rx.iter_mut().enumerate().take(instances) {
            let free = &mut r.buf[r.len..];
            if let Ok(n) = transport.receive(instance, free) {
                r.len += n;
            }
            loop {
                let at = Instant::from_millis(transport.now_ms());
                let parsed = resp::parse(&r.buf[..r.len]);
                let used = match parsed {
                    Ok(Some((frame, used))) => {
                        if let Some(request) = r.waiting.pop() {
                            let reply = Reply::from_frame(&frame);
                            machine
                                .handle(Input::Reply {
                                    instance,
                                    request,
                                    reply,
                                    at,
                                })
                                .map_err(LockError::Core)?;
                        }
                        used
                    }
                    Ok(None) if r.len < RX_BUFFER => break,
                    // Out of sync or a reply too large for the buffer: fail the waiting requests.
                    Ok(None) | Err(ParseError::UnknownType(_)) | Err(_) => {
                        fail_all(machine, instance, &mut r.waiting, at)?;
                        r.len = 0;
                        break;
                    }
                };
                r.buf.copy_within(used..r.len, 0);
                r.len -= used;
            }
        }
        let now = Instant::from_millis(transport.now_ms());
        machine
            .handle(Input::Timeout { now })
            .map_err(LockError::Core)?;
    }
}

fn fail_all<M: Machine>(
    machine: &mut M,
    instance: usize,
    waiting: &mut heapless_queue::Queue,
    at: Instant,
) -> Result<(), LockError> {
    while let Some(request) = waiting.pop() {
        machine
            .handle(Input::TransportError {
                instance,
                request,
                at,
            })
            .map_err(LockError::Core)?;
    }
    waiting.clear();
    Ok(())
}

/// Takes the lock on `key` across `instances` instances for `ttl`, or says why not.
pub fn lock<T: Transport, R: rand_core::RngCore + rand_core::CryptoRng>(
    transport: &mut T,
    instances: usize,
    key: &[u8],
    ttl: Duration,
    rng: R,
) -> Result<Lease, LockError> {
    let config = Config::new(instances, ttl).map_err(|_| LockError::TooManyInstances)?;
    let resources = Resources::single(key).map_err(LockError::Core)?;
    let now = Instant::from_millis(transport.now_ms());
    let mut acquire = Acquire::new(config, resources, rng, now).map_err(LockError::Core)?;
    match drive(transport, instances, &mut acquire)? {
        AcquireOutcome::Acquired { lease, .. } => Ok(lease),
        AcquireOutcome::Failed { reason, .. } => Err(LockError::NotAcquired(reason)),
    }
}

/// Releases `lease` on every instance; true when a quorum confirmed.
pub fn unlock<T: Transport>(
    transport: &mut T,
    instances: usize,
    lease: &Lease,
) -> Result<bool, LockError> {
    let config = Config::new(instances, Duration::from_millis(lease.ttl_ms().max(1_000)))
        .map_err(|_| LockError::TooManyInstances)?;
    let now = Instant::from_millis(transport.now_ms());
    let mut release = Release::new(config, lease, now).map_err(LockError::Core)?;
    Ok(drive(transport, instances, &mut release)?.confirmed)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::collections::HashMap;
    use std::vec::Vec;

    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    use super::*;

    /// A host-side stand-in for the firmware's links: each instance is a tiny model Redis that
    /// answers SET NX and the release script, over RESP bytes.
    struct FakeLinks {
        now: u64,
        keys: Vec<HashMap<Vec<u8>, Vec<u8>>>,
        inbound: Vec<Vec<u8>>,
        down: Vec<bool>,
    }

    impl FakeLinks {
        fn new(n: usize) -> Self {
            Self {
                now: 1_000,
                keys: (0..n).map(|_| HashMap::new()).collect(),
                inbound: (0..n).map(|_| Vec::new()).collect(),
                down: std::vec![false; n],
            }
        }

        fn args(bytes: &[u8]) -> Vec<Vec<u8>> {
            let (frame, _) = resp::parse(bytes).unwrap().unwrap();
            let resp::Frame::Array(a) = frame else {
                panic!("not an array")
            };
            a.iter()
                .map(|f| match f {
                    resp::Frame::Bulk(b) => b.to_vec(),
                    _ => panic!("not a bulk string"),
                })
                .collect()
        }
    }

    impl Transport for FakeLinks {
        type Error = ();

        fn now_ms(&mut self) -> u64 {
            self.now
        }

        fn send(&mut self, instance: usize, bytes: &[u8]) -> Result<(), ()> {
            if self.down[instance] {
                return Err(());
            }
            let args = Self::args(bytes);
            let keys = &mut self.keys[instance];
            let reply: &[u8] = match args[0].as_slice() {
                b"SET" if keys.contains_key(&args[1]) => b"$-1\r\n",
                b"SET" => {
                    keys.insert(args[1].clone(), args[2].clone());
                    b"+OK\r\n"
                }
                // The release script, by digest or in full (cleanups carry the full script).
                b"EVALSHA" | b"EVAL" if keys.get(&args[3]) == Some(&args[4]) => {
                    keys.remove(&args[3]);
                    b":1\r\n"
                }
                b"EVALSHA" | b"EVAL" => b":0\r\n",
                other => panic!("unexpected {other:?}"),
            };
            self.inbound[instance].extend_from_slice(reply);
            Ok(())
        }

        fn receive(&mut self, instance: usize, buf: &mut [u8]) -> Result<usize, ()> {
            let data = &mut self.inbound[instance];
            let n = data.len().min(buf.len());
            buf[..n].copy_from_slice(&data[..n]);
            data.drain(..n);
            Ok(n)
        }

        fn idle(&mut self, until_ms: u64) {
            self.now = self.now.max(until_ms.min(self.now + 1));
        }
    }

    #[test]
    fn locks_and_unlocks_over_a_byte_transport() {
        let mut links = FakeLinks::new(3);
        let rng = ChaCha20Rng::seed_from_u64(1);
        let lease = lock(&mut links, 3, b"valve", Duration::from_secs(5), rng).unwrap();
        assert!(lease.is_valid(Instant::from_millis(links.now)));
        assert!(links.keys.iter().all(|k| k.contains_key(&b"valve"[..])));
        assert!(unlock(&mut links, 3, &lease).unwrap());
        assert!(links.keys.iter().all(|k| k.is_empty()));
    }

    #[test]
    fn a_held_lock_is_refused_and_a_dead_link_is_tolerated() {
        let mut links = FakeLinks::new(3);
        links.keys[0].insert(b"valve".to_vec(), b"other".to_vec());
        links.keys[1].insert(b"valve".to_vec(), b"other".to_vec());
        let rng = ChaCha20Rng::seed_from_u64(2);
        let err = lock(&mut links, 3, b"valve", Duration::from_secs(5), rng).unwrap_err();
        assert!(matches!(err, LockError::NotAcquired(_)), "{err:?}");
        assert!(!links.keys[2].contains_key(&b"valve"[..]), "cleaned up");

        let mut links = FakeLinks::new(3);
        links.down[2] = true;
        let rng = ChaCha20Rng::seed_from_u64(3);
        let lease = lock(&mut links, 3, b"valve", Duration::from_secs(5), rng).unwrap();
        assert!(unlock(&mut links, 3, &lease).unwrap());
    }
}
