//! Locking across N Redis instances from a plain event loop: no async runtime, only the core.
//!
//! The loop owns everything the core does not: non-blocking sockets (mio), a monotonic clock
//! read with `std::time::Instant`, RESP bytes in and out. The core decides everything else. It
//! encodes each command into the connection's write buffer ([`Command::encode_resp`]), parses
//! replies with [`resp::parse`], and sleeps until the machine's [`Output::Wait`] deadline.
//!
//! ```text
//! cargo run --example event_loop                              # starts 3 local redis-server instances
//! cargo run --example event_loop -- 127.0.0.1:7001 127.0.0.1:7002 127.0.0.1:7003
//! ```

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use redlock_core::resp::{self, Frame};
use redlock_core::{
    Acquire, AcquireOutcome, Command, Config, Input, Instant, Output, Release, Reply, RequestId,
    Resources,
};

/// The host's monotonic clock in milliseconds, from one epoch.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }
}

/// One connection: bytes to write, bytes read, and the requests awaiting replies in order
/// (Redis answers each connection's commands in the order it received them).
struct Conn {
    stream: Option<TcpStream>,
    out: Vec<u8>,
    inbuf: Vec<u8>,
    waiting: VecDeque<RequestId>,
}

/// The three core machines behind one interface, so one loop drives any of them.
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

struct Loop {
    poll: Poll,
    conns: Vec<Conn>,
    clock: Clock,
}

impl Loop {
    fn connect(addrs: &[SocketAddr]) -> std::io::Result<Self> {
        let poll = Poll::new()?;
        let mut conns = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            let mut stream = TcpStream::connect(*addr)?;
            stream.set_nodelay(true)?;
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns.push(Conn {
                stream: Some(stream),
                out: Vec::new(),
                inbuf: Vec::new(),
                waiting: VecDeque::new(),
            });
        }
        Ok(Self {
            poll,
            conns,
            clock: Clock(std::time::Instant::now()),
        })
    }

    /// Drives `machine` until it is done: the whole drive contract in one function.
    fn drive<M: Machine>(&mut self, machine: &mut M) -> std::io::Result<M::Outcome> {
        let mut events = Events::with_capacity(64);
        loop {
            // 1. Drain outputs: queue each command on its connection, stop at Wait or Done.
            let until = loop {
                match machine.poll() {
                    Output::Send(tx) => {
                        let (instance, request) = (tx.instance, tx.request);
                        if !self.queue(instance, request, &tx.command)? {
                            // A dead connection: tell the machine now rather than let it time out.
                            let at = self.clock.now();
                            machine
                                .handle(Input::TransportError {
                                    instance,
                                    request,
                                    at,
                                })
                                .map_err(other)?;
                        }
                    }
                    Output::Wait { until } => break until,
                    Output::Done(outcome) => return Ok(outcome.clone()),
                }
            };
            self.flush(machine)?;
            // 2. Sleep until a socket is ready or the machine's deadline.
            let timeout = Duration::from_millis(until.saturating_since(self.clock.now()));
            self.poll.poll(&mut events, Some(timeout))?;
            // 3. Feed what happened, with the time it happened.
            for event in events.iter() {
                let i = event.token().0;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(i, machine)?;
                }
            }
            self.flush(machine)?;
            machine
                .handle(Input::Timeout {
                    now: self.clock.now(),
                })
                .map_err(other)?;
        }
    }

    /// Queues a command on its connection; false if the connection is gone.
    fn queue(
        &mut self,
        i: usize,
        request: RequestId,
        command: &Command<'_>,
    ) -> std::io::Result<bool> {
        let conn = &mut self.conns[i];
        if conn.stream.is_none() {
            return Ok(false);
        }
        let start = conn.out.len();
        conn.out.resize(start + command.resp_len(), 0);
        command.encode_resp(&mut conn.out[start..]).map_err(other)?;
        conn.waiting.push_back(request);
        Ok(true)
    }

    fn flush<M: Machine>(&mut self, machine: &mut M) -> std::io::Result<()> {
        for i in 0..self.conns.len() {
            let conn = &mut self.conns[i];
            let Some(stream) = conn.stream.as_mut() else {
                continue;
            };
            while !conn.out.is_empty() {
                match stream.write(&conn.out) {
                    Ok(n) => {
                        conn.out.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.fail(i, machine)?;
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    fn read<M: Machine>(&mut self, i: usize, machine: &mut M) -> std::io::Result<()> {
        let mut buf = [0u8; 4096];
        loop {
            let Some(stream) = self.conns[i].stream.as_mut() else {
                return Ok(());
            };
            match stream.read(&mut buf) {
                Ok(0) => return self.fail(i, machine),
                Ok(n) => self.conns[i].inbuf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return self.fail(i, machine),
            }
        }
        // Feed every complete reply, in order, each to the request it answers.
        let at = self.clock.now();
        loop {
            let conn = &mut self.conns[i];
            let (frame, used) = match resp::parse(&conn.inbuf) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(_) => return self.fail(i, machine), // out of sync: drop the connection
            };
            let reply = Reply::from_frame(&frame);
            let push = matches!(frame, Frame::Push(_));
            let request = if push { None } else { conn.waiting.pop_front() };
            if let Some(request) = request {
                machine
                    .handle(Input::Reply {
                        instance: i,
                        request,
                        reply,
                        at,
                    })
                    .map_err(other)?;
            }
            self.conns[i].inbuf.drain(..used);
        }
        Ok(())
    }

    /// Connection lost: every request still waiting on it failed.
    fn fail<M: Machine>(&mut self, i: usize, machine: &mut M) -> std::io::Result<()> {
        let conn = &mut self.conns[i];
        if let Some(mut stream) = conn.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        conn.out.clear();
        conn.inbuf.clear();
        let at = self.clock.now();
        for request in std::mem::take(&mut conn.waiting) {
            machine
                .handle(Input::TransportError {
                    instance: i,
                    request,
                    at,
                })
                .map_err(other)?;
        }
        Ok(())
    }
}

fn other(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let given: Vec<SocketAddr> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    // Without addresses, start local instances (they stop when `_cluster` is dropped).
    let (_cluster, addrs) = if given.is_empty() {
        let cluster = redlock_harness::Cluster::start(3, redlock_harness::ClusterOptions::new())?;
        let addrs = cluster.iter().map(|i| i.addr()).collect();
        (Some(cluster), addrs)
    } else {
        (None, given)
    };

    let mut ev = Loop::connect(&addrs)?;
    let config = Config::new(addrs.len(), Duration::from_secs(10))?;
    let resources = Resources::single(b"event-loop:resource")?;
    let mut acquire = Acquire::new(config, resources, rand::rngs::OsRng, ev.clock.now())?;
    let lease = match ev.drive(&mut acquire)? {
        AcquireOutcome::Acquired { lease, report, .. } => {
            println!(
                "acquired {:?} on {} of {} instances, valid for {} ms",
                lease.resources(),
                report.yes(),
                addrs.len(),
                lease.remaining_ms(ev.clock.now())
            );
            lease
        }
        AcquireOutcome::Failed { reason, report, .. } => {
            return Err(format!("not acquired: {reason} ({report:?})").into())
        }
    };
    // ... the protected work goes here, checking `lease.is_valid(clock.now())` ...
    let mut release = Release::new(config, &lease, ev.clock.now())?;
    let outcome = ev.drive(&mut release)?;
    println!(
        "released: {} keys deleted, confirmed by a quorum: {}",
        outcome.deleted, outcome.confirmed
    );
    if let Some(cluster) = &_cluster {
        let left: usize = cluster
            .iter()
            .map(|i| {
                i.keys_matching("event-loop:*")
                    .map(|k| k.len())
                    .unwrap_or(0)
            })
            .sum();
        println!("lock keys left: {left}");
        if left != 0 || !outcome.confirmed {
            return Err("the lock was not fully released".into());
        }
    }
    Ok(())
}
