//! A deterministic, seeded world for the core: N model Redis instances with their own clocks and
//! TTL expiry, FIFO connections with latency and loss, many clients with their own clocks and
//! pauses, and faults (crashes, restarts, SIGSTOP-like pauses, clock steps), all in virtual time.
//!
//! Every client drives the real `redlock-core` machines; every step is recorded as a
//! `redlock-history` event so the shared checker can verify the invariants.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use redlock_core::{
    Acquire, AcquireOutcome, CommandKind, Config, Extend, ExtendOutcome, Input, InstanceStatus,
    Instant, Lease, Output, Release, Reply, RequestId, Resources, Transmit,
};
use redlock_history::{Checker, Event, RelFailure, RelInstResult, RelOutcome, ReplyKind};

/// What may go wrong in a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Faults {
    /// Crash a minority of instances and restart them empty after longer than the TTL.
    pub(crate) delayed_restarts: bool,
    /// Crash and restart with persistence (keys survive).
    pub(crate) persistent_restarts: bool,
    /// Pause (SIGSTOP) a minority of instances for a while, then resume them.
    pub(crate) instance_pauses: bool,
    /// Pause clients (GC, SIGSTOP), also while they hold a lock.
    pub(crate) client_pauses: bool,
    /// Probability that one message is lost.
    pub(crate) loss: f64,
    /// Largest clock rate error of servers and of clients, in parts per million.
    pub(crate) rate_ppm: i64,
    /// Negative control: restart instances at once with no persistence (breaks assumption A4).
    pub(crate) immediate_restarts: bool,
    /// Negative control: step server clocks forward by more than the TTL (breaks A2).
    pub(crate) clock_steps: bool,
}

impl Faults {
    /// Faults the algorithm is designed to survive.
    pub(crate) fn within_assumptions() -> Self {
        Self {
            delayed_restarts: true,
            persistent_restarts: true,
            instance_pauses: true,
            client_pauses: true,
            loss: 0.02,
            rate_ppm: 4_000,
            immediate_restarts: false,
            clock_steps: false,
        }
    }

    /// No faults at all.
    pub(crate) fn none() -> Self {
        Self {
            delayed_restarts: false,
            persistent_restarts: false,
            instance_pauses: false,
            client_pauses: false,
            loss: 0.0,
            rate_ppm: 0,
            immediate_restarts: false,
            clock_steps: false,
        }
    }
}

/// The shape of one run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub(crate) seed: u64,
    pub(crate) instances: usize,
    pub(crate) clients: usize,
    pub(crate) ops_per_client: usize,
    pub(crate) ttl_ms: u64,
    pub(crate) resources: usize,
    /// Finished releases hint the clients that are acquiring (`Acquire::wake`), as fast
    /// handoff does, so early attempts race the lock in these runs.
    pub(crate) handoff_hints: bool,
    pub(crate) faults: Faults,
}

impl Params {
    /// A run drawn from `seed`: sizes and timings vary with it.
    pub(crate) fn from_seed(seed: u64, faults: Faults) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let instances = [1, 2, 3, 3, 4, 5, 5, 5, 7][(rng.next_u32() % 9) as usize];
        Self {
            seed,
            instances,
            clients: 2 + (rng.next_u32() % 4) as usize,
            ops_per_client: 6 + (rng.next_u32() % 6) as usize,
            ttl_ms: [200, 500, 1000, 3000][(rng.next_u32() % 4) as usize],
            resources: 1 + (rng.next_u32() % 3) as usize,
            handoff_hints: rng.next_u32() % 2 == 0,
            faults,
        }
    }
}

/// A model of one Redis instance.
struct Instance {
    up: bool,
    paused: bool,
    /// Commands received while paused, run on resume.
    backlog: Vec<Msg>,
    keys: HashMap<String, (String, i64)>,
    /// Its wall clock: `offset + τ × (1 + rate)` plus any steps.
    offset: i64,
    rate_ppm: i64,
    step: i64,
    /// Whether its data survives a crash (AOF `always`).
    persistent: bool,
    /// Bumped on every crash: messages of an older incarnation's connections are reset.
    incarnation: u64,
}

impl Instance {
    fn clock(&self, tau: u64) -> i64 {
        self.offset + scaled(tau, self.rate_ppm) + self.step
    }

    fn alive(&mut self, key: &str, now: i64) -> Option<&String> {
        if self.keys.get(key).is_some_and(|(_, exp)| *exp <= now) {
            self.keys.remove(key);
        }
        self.keys.get(key).map(|(v, _)| v)
    }

    /// Runs one command as Redis would, at server time `now`.
    fn apply(&mut self, cmd: &Cmd, now: i64) -> SimReply {
        match cmd.kind {
            CommandKind::Acquire => {
                if cmd.keys.iter().any(|k| self.alive(k, now).is_some()) {
                    return if cmd.keys.len() == 1 {
                        SimReply::Nil
                    } else {
                        SimReply::Int(0)
                    };
                }
                for k in &cmd.keys {
                    self.keys
                        .insert(k.clone(), (cmd.value.clone(), now + cmd.ttl as i64));
                }
                if cmd.keys.len() == 1 {
                    SimReply::Ok
                } else {
                    SimReply::Int(1)
                }
            }
            CommandKind::Extend => {
                if cmd
                    .keys
                    .iter()
                    .all(|k| self.alive(k, now).is_some_and(|v| *v == cmd.value))
                {
                    for k in &cmd.keys {
                        if let Some(entry) = self.keys.get_mut(k) {
                            entry.1 = now + cmd.ttl as i64;
                        }
                    }
                    SimReply::Int(1)
                } else {
                    SimReply::Int(0)
                }
            }
            CommandKind::Release => {
                let mut deleted = 0;
                for k in &cmd.keys {
                    if self.alive(k, now).is_some_and(|v| *v == cmd.value) {
                        self.keys.remove(k);
                        deleted += 1;
                    }
                }
                SimReply::Int(deleted)
            }
        }
    }
}

/// `τ × (1 + ppm/1e6)` in whole milliseconds.
fn scaled(tau: u64, ppm: i64) -> i64 {
    let t = tau as i128;
    (t + t * ppm as i128 / 1_000_000) as i64
}

/// A command copied out of the machine's borrow.
#[derive(Debug, Clone)]
struct Cmd {
    kind: CommandKind,
    keys: Vec<String>,
    value: String,
    ttl: u64,
}

#[derive(Debug, Clone)]
enum SimReply {
    Ok,
    Nil,
    Int(i64),
    /// The connection was reset or refused.
    Transport,
}

/// One message in flight between a client and an instance.
#[derive(Debug, Clone)]
struct Msg {
    client: usize,
    inst: usize,
    machine: u64,
    request: RequestId,
    cmd: Cmd,
    incarnation: u64,
}

#[derive(Debug)]
enum What {
    ToServer(Msg),
    ToClient {
        client: usize,
        machine: u64,
        inst: usize,
        request: RequestId,
        reply: SimReply,
    },
    /// A client's timer, or its next action.
    Wake(usize),
    Crash(usize),
    Restart {
        inst: usize,
        wipe: bool,
    },
    Pause(usize),
    Resume(usize),
    Step {
        inst: usize,
        by: i64,
    },
    ClientPause {
        client: usize,
        ms: u64,
    },
}

struct Scheduled {
    at: u64,
    seq: u64,
    what: What,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

enum Phase {
    Idle,
    Acquiring {
        m: Box<Acquire<ChaCha20Rng>>,
        acq: u64,
        attempt: u32,
        /// request → attempt, for acquire commands.
        requests: HashMap<RequestId, u32>,
        /// value → attempt, for cleanup releases.
        values: HashMap<String, u32>,
    },
    Holding {
        lease: Box<Lease>,
        acq: u64,
        work_end: u64,
        extend_at: Option<u64>,
    },
    Extending {
        m: Box<Extend>,
        acq: u64,
        ext: u64,
        work_end: u64,
    },
    Releasing {
        m: Box<Release>,
        acq: u64,
    },
    Finished,
}

struct Client {
    offset: i64,
    rate_ppm: i64,
    /// Events that arrived while the client was paused, with the pause's end.
    paused_until: Option<u64>,
    phase: Phase,
    machine: u64,
    ops_left: usize,
    /// The latest reading fed to a machine (the client's clock never goes backwards).
    last_read: u64,
}

impl Client {
    fn clock(&self, tau: u64) -> u64 {
        (self.offset + scaled(tau, self.rate_ppm)).max(0) as u64
    }

    /// The first τ at which the client's clock reads at least `reading`.
    fn tau_of(&self, reading: u64, from: u64) -> u64 {
        if self.clock(from) >= reading {
            return from;
        }
        let (mut lo, mut hi) = (from, from + 1);
        while self.clock(hi) < reading {
            hi = from + (hi - from) * 2;
        }
        while lo + 1 < hi {
            let mid = lo + (hi - lo) / 2;
            if self.clock(mid) >= reading {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        hi
    }
}

/// Totals of one run.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Stats {
    pub(crate) acquired: u64,
    pub(crate) failed: u64,
    pub(crate) extended: u64,
    pub(crate) faults: u64,
    pub(crate) messages: u64,
    pub(crate) work_overlaps: u64,
}

pub(crate) struct World {
    p: Params,
    rng: ChaCha20Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    instances: Vec<Instance>,
    clients: Vec<Client>,
    /// Per (client, instance, direction): the last delivery time, for FIFO connections.
    fifo: HashMap<(usize, usize, bool), u64>,
    config: Config,
    pub(crate) history: Checker,
    next_acq: u64,
    next_ext: u64,
    pub(crate) stats: Stats,
    resources: Vec<String>,
}

const MAX_STEPS: u64 = 2_000_000;

impl World {
    pub(crate) fn new(p: Params) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(p.seed);
        let config = Config::new(p.instances, Duration::from_millis(p.ttl_ms))
            .unwrap()
            .with_retry_count(3)
            .unwrap()
            .with_retry_delay(
                Duration::from_millis(p.ttl_ms / 5),
                Duration::from_millis(p.ttl_ms / 10),
            )
            .unwrap();
        let rate = |rng: &mut ChaCha20Rng| {
            let span = 2 * p.faults.rate_ppm + 1;
            (rng.next_u64() % span as u64) as i64 - p.faults.rate_ppm
        };
        let instances = (0..p.instances)
            .map(|_| Instance {
                up: true,
                paused: false,
                backlog: Vec::new(),
                keys: HashMap::new(),
                offset: (rng.next_u32() % 1_000_000) as i64,
                rate_ppm: rate(&mut rng),
                step: 0,
                persistent: false,
                incarnation: 0,
            })
            .collect();
        let clients = (0..p.clients)
            .map(|_| Client {
                offset: (rng.next_u32() % 1_000_000) as i64,
                rate_ppm: rate(&mut rng),
                paused_until: None,
                phase: Phase::Idle,
                machine: 0,
                ops_left: p.ops_per_client,
                last_read: 0,
            })
            .collect();
        let mut history = Checker::new();
        history.push(Event::config(
            p.instances as u32,
            config.drift_factor(),
            config.drift_pad_ms(),
            config.min_validity_ms(),
        ));
        let resources = (0..p.resources).map(|r| format!("res:{r}")).collect();
        let mut world = Self {
            p,
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            instances,
            clients,
            fifo: HashMap::new(),
            config,
            history,
            next_acq: 0,
            next_ext: 0,
            stats: Stats::default(),
            resources,
        };
        for c in 0..p.clients {
            let start = world.rand(p.ttl_ms);
            world.schedule(start, What::Wake(c));
        }
        world.plan_faults();
        world
    }

    fn rand(&mut self, below: u64) -> u64 {
        self.rng.next_u64() % below.max(1)
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.rng.next_u64() % 1_000_000) as f64 / 1_000_000.0 < p
    }

    fn schedule(&mut self, at: u64, what: What) {
        self.seq += 1;
        self.queue.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    /// Faults spread over the expected length of the run, each on a minority of instances at a
    /// time (or anywhere, for the negative controls).
    fn plan_faults(&mut self) {
        let f = self.p.faults;
        let ttl = self.p.ttl_ms;
        let n = self.p.instances;
        let minority = (n - 1) / 2;
        let horizon = ttl * self.p.ops_per_client as u64 * 2;
        let mut t = ttl;
        let mut k = 0u64;
        while t < horizon {
            t += ttl / 2 + self.rand(ttl * 2);
            k += 1;
            let inst = self.rand(n as u64) as usize;
            match k % 4 {
                0 if f.immediate_restarts => {
                    self.schedule(t, What::Crash(inst));
                    self.schedule(t + 1, What::Restart { inst, wipe: true });
                }
                1 if f.clock_steps => {
                    let by = (ttl + ttl / 2) as i64;
                    self.schedule(t, What::Step { inst, by });
                }
                _ if minority == 0 => {}
                0 if f.delayed_restarts || f.persistent_restarts => {
                    // Instances 0..minority take turns, so faults never touch a majority.
                    let inst = (k as usize / 4) % minority;
                    let persistent = f.persistent_restarts && (!f.delayed_restarts || k % 8 == 0);
                    self.instances[inst].persistent = persistent;
                    self.schedule(t, What::Crash(inst));
                    let down = if persistent {
                        self.rand(ttl)
                    } else {
                        ttl * 2 + self.rand(ttl)
                    };
                    self.schedule(
                        t + down,
                        What::Restart {
                            inst,
                            wipe: !persistent,
                        },
                    );
                    t += down;
                }
                2 if f.instance_pauses => {
                    let inst = (k as usize / 4) % minority;
                    self.schedule(t, What::Pause(inst));
                    let ms = 1 + self.rand(ttl * 2);
                    self.schedule(t + ms, What::Resume(inst));
                    t += ms;
                }
                3 if f.client_pauses => {
                    let client = self.rand(self.p.clients as u64) as usize;
                    let ms = 1 + self.rand(ttl * 2);
                    self.schedule(t, What::ClientPause { client, ms });
                }
                _ => {}
            }
        }
    }

    fn latency(&mut self) -> u64 {
        // Mostly fast, sometimes slow: a long tail in the spirit of a loaded network.
        match self.rand(100) {
            0..=89 => 1 + self.rand(3),
            90..=98 => 2 + self.rand(self.p.ttl_ms / 20 + 1),
            _ => self.rand(self.p.ttl_ms / 2 + 1),
        }
    }

    fn deliver(&mut self, client: usize, inst: usize, to_server: bool, what: What) {
        self.stats.messages += 1;
        if self.p.faults.loss > 0.0 && self.chance(self.p.faults.loss) {
            return;
        }
        let lat = self.latency();
        let key = (client, inst, to_server);
        let at = (self.now + lat).max(self.fifo.get(&key).copied().unwrap_or(0));
        self.fifo.insert(key, at);
        self.schedule(at, what);
    }

    /// Runs until every client has finished, or the step budget runs out (a livelock).
    pub(crate) fn run(&mut self) -> Result<(), String> {
        let mut steps = 0;
        while let Some(Reverse(ev)) = self.queue.pop() {
            steps += 1;
            if steps > MAX_STEPS {
                return Err(format!(
                    "seed {}: no progress after {MAX_STEPS} steps",
                    self.p.seed
                ));
            }
            self.now = ev.at;
            self.handle(ev.what);
            if self
                .clients
                .iter()
                .all(|c| matches!(c.phase, Phase::Finished))
            {
                break;
            }
        }
        if let Some(c) = self
            .clients
            .iter()
            .position(|c| !matches!(c.phase, Phase::Finished))
        {
            return Err(format!("seed {}: client {c} never finished", self.p.seed));
        }
        Ok(())
    }

    fn handle(&mut self, what: What) {
        match what {
            What::ToServer(msg) => self.at_server(msg),
            What::ToClient {
                client,
                machine,
                inst,
                request,
                reply,
            } => {
                if let Some(until) = self.clients[client].paused_until {
                    if until > self.now {
                        self.schedule(
                            until,
                            What::ToClient {
                                client,
                                machine,
                                inst,
                                request,
                                reply,
                            },
                        );
                        return;
                    }
                }
                self.at_client(client, machine, inst, request, reply);
            }
            What::Wake(c) => {
                if let Some(until) = self.clients[c].paused_until {
                    if until > self.now {
                        self.schedule(until, What::Wake(c));
                        return;
                    }
                }
                self.wake(c);
            }
            What::Crash(i) => {
                self.fault("Crash", Some(i), None);
                let inst = &mut self.instances[i];
                inst.up = false;
                inst.paused = false;
                inst.backlog.clear();
                inst.incarnation += 1;
                if !inst.persistent {
                    inst.keys.clear();
                }
            }
            What::Restart { inst: i, wipe } => {
                self.fault("Restart", Some(i), Some(format!("persisted={}", !wipe)));
                let inst = &mut self.instances[i];
                inst.up = true;
                if wipe {
                    inst.keys.clear();
                }
            }
            What::Pause(i) => {
                self.fault("Stop", Some(i), None);
                self.instances[i].paused = true;
            }
            What::Resume(i) => {
                self.fault("Cont", Some(i), None);
                let inst = &mut self.instances[i];
                inst.paused = false;
                let backlog = std::mem::take(&mut inst.backlog);
                for msg in backlog {
                    self.at_server(msg);
                }
            }
            What::Step { inst, by } => {
                self.fault("ClockStep", Some(inst), Some(format!("{by}ms")));
                self.instances[inst].step += by;
            }
            What::ClientPause { client, ms } => {
                self.fault(
                    "ClientPause",
                    None,
                    Some(format!("client {client} for {ms}ms")),
                );
                let until = self.now + ms;
                let c = &mut self.clients[client];
                c.paused_until = Some(c.paused_until.map_or(until, |u| u.max(until)));
            }
        }
    }

    fn fault(&mut self, kind: &str, inst: Option<usize>, detail: Option<String>) {
        self.stats.faults += 1;
        self.history.push(Event::Fault {
            kind: kind.to_owned(),
            inst: inst.map(|i| i as u32),
            detail,
            rt: self.now,
        });
    }

    fn at_server(&mut self, msg: Msg) {
        let i = msg.inst;
        let inst = &mut self.instances[i];
        let reply = if !inst.up || msg.incarnation != inst.incarnation {
            SimReply::Transport
        } else if inst.paused {
            inst.backlog.push(msg);
            return;
        } else {
            let now = inst.clock(self.now);
            inst.apply(&msg.cmd, now)
        };
        self.deliver(
            msg.client,
            i,
            false,
            What::ToClient {
                client: msg.client,
                machine: msg.machine,
                inst: i,
                request: msg.request,
                reply,
            },
        );
    }

    fn read_clock(&mut self, c: usize) -> Instant {
        let client = &mut self.clients[c];
        let reading = client.clock(self.now).max(client.last_read);
        client.last_read = reading;
        Instant::from_millis(reading)
    }

    fn at_client(&mut self, c: usize, machine: u64, inst: usize, request: RequestId, r: SimReply) {
        if self.clients[c].machine != machine {
            return; // a reply for a machine that is done: its host dropped it
        }
        let at = self.read_clock(c);
        let reply = match r {
            SimReply::Ok => Some(Reply::Ok),
            SimReply::Nil => Some(Reply::Nil),
            SimReply::Int(n) => Some(Reply::Integer(n)),
            SimReply::Transport => None,
        };
        let input = match reply {
            Some(reply) => Input::Reply {
                instance: inst,
                request,
                reply,
                at,
            },
            None => Input::TransportError {
                instance: inst,
                request,
                at,
            },
        };
        let rt = self.now;
        let phase = &mut self.clients[c].phase;
        match phase {
            Phase::Acquiring {
                m, acq, requests, ..
            } => {
                if let Some(&attempt) = requests.get(&request) {
                    let kind = match input {
                        Input::Reply {
                            reply: Reply::Ok | Reply::Integer(1),
                            ..
                        } => ReplyKind::Ok,
                        Input::Reply {
                            reply: Reply::Nil | Reply::Integer(0),
                            ..
                        } => ReplyKind::Nil,
                        _ => ReplyKind::Err,
                    };
                    // Only replies that the machine can still count are evidence; a reply to an
                    // attempt already decided is "late".
                    let kind = if attempt == m.attempt() && m.outcome().is_none() {
                        kind
                    } else {
                        ReplyKind::Late
                    };
                    self.history.push(Event::InstReply {
                        acq: *acq,
                        attempt,
                        inst: inst as u32,
                        kind,
                        rt,
                    });
                }
                m.handle_input(input).expect("valid input");
            }
            Phase::Extending { m, .. } => m.handle_input(input).expect("valid input"),
            Phase::Releasing { m, .. } => m.handle_input(input).expect("valid input"),
            _ => return,
        }
        self.drive(c);
    }

    fn wake(&mut self, c: usize) {
        let now = self.read_clock(c);
        let tick = Input::Timeout { now };
        match &mut self.clients[c].phase {
            Phase::Idle => {
                self.start_acquire(c);
                return;
            }
            Phase::Acquiring { m, .. } => m.handle_input(tick).expect("valid tick"),
            Phase::Extending { m, .. } => m.handle_input(tick).expect("valid tick"),
            Phase::Releasing { m, .. } => m.handle_input(tick).expect("valid tick"),
            Phase::Holding {
                lease,
                acq,
                work_end,
                extend_at,
            } => {
                let (lease, acq, work_end) = ((**lease).clone(), *acq, *work_end);
                if let Some(at) = *extend_at {
                    if self.now >= at {
                        self.start_extend(c, lease, acq, work_end);
                        return;
                    }
                }
                if self.now >= work_end {
                    self.history.push(Event::WorkEnd { acq, rt: self.now });
                    self.start_release(c, lease, acq);
                }
                return;
            }
            Phase::Finished => return,
        }
        self.drive(c);
    }

    fn next_machine(&mut self, c: usize) -> u64 {
        let client = &mut self.clients[c];
        client.machine += 1;
        client.machine
    }

    fn start_acquire(&mut self, c: usize) {
        if self.clients[c].ops_left == 0 {
            self.clients[c].phase = Phase::Finished;
            return;
        }
        self.clients[c].ops_left -= 1;
        let count = 1 + self.rand(self.resources.len() as u64) as usize;
        let first = self.rand(self.resources.len() as u64) as usize;
        let keys: Vec<String> = (0..count)
            .map(|k| self.resources[(first + k) % self.resources.len()].clone())
            .collect();
        let resources = Resources::from_keys(&keys).unwrap();
        self.next_acq += 1;
        let acq = self.next_acq;
        let now = self.read_clock(c);
        self.history.push(Event::AcqInvoke {
            acq,
            client: c as u64,
            resources: keys,
            ttl_ms: self.p.ttl_ms,
            rt: self.now,
        });
        let rng = ChaCha20Rng::seed_from_u64(self.rng.next_u64());
        let m = Acquire::new(self.config, resources, rng, now).unwrap();
        self.next_machine(c);
        self.clients[c].phase = Phase::Acquiring {
            m: Box::new(m),
            acq,
            attempt: 0,
            requests: HashMap::new(),
            values: HashMap::new(),
        };
        self.drive(c);
    }

    fn start_extend(&mut self, c: usize, lease: Lease, acq: u64, work_end: u64) {
        self.next_ext += 1;
        let ext = self.next_ext;
        let now = self.read_clock(c);
        self.history.push(Event::ExtInvoke {
            ext,
            acq,
            ttl_ms: self.p.ttl_ms,
            t1_client: now.as_millis(),
            rt: self.now,
        });
        let m = Extend::new(self.config, &lease, now).unwrap();
        self.next_machine(c);
        self.clients[c].phase = Phase::Extending {
            m: Box::new(m),
            acq,
            ext,
            work_end,
        };
        self.drive(c);
    }

    fn start_release(&mut self, c: usize, lease: Lease, acq: u64) {
        self.history.push(Event::RelInvoke { acq, rt: self.now });
        let now = self.read_clock(c);
        let m = Release::new(self.config, &lease, now).unwrap();
        self.next_machine(c);
        self.clients[c].phase = Phase::Releasing {
            m: Box::new(m),
            acq,
        };
        self.drive(c);
    }

    /// Drains the client's machine: sends commands, arms its timer, acts on its outcome.
    fn drive(&mut self, c: usize) {
        loop {
            let rt = self.now;
            let mut records = Vec::new();
            let mut outgoing = Vec::new();
            let next = match &mut self.clients[c].phase {
                Phase::Acquiring {
                    m,
                    acq,
                    attempt,
                    requests,
                    values,
                } => {
                    let done = loop {
                        match m.poll_output() {
                            Output::Send(tx) => outgoing.push(copy_tx(&tx)),
                            Output::Wait { until } => break Err(until),
                            Output::Done(outcome) => break Ok(outcome.clone()),
                        }
                    };
                    // Attempts and their values, recorded in order.
                    for (inst, request, cmd) in &outgoing {
                        if cmd.kind == CommandKind::Acquire {
                            if !values.contains_key(&cmd.value) {
                                *attempt += 1;
                                values.insert(cmd.value.clone(), *attempt);
                                records.push(Event::AttemptStart {
                                    acq: *acq,
                                    attempt: *attempt,
                                    value: cmd.value.clone(),
                                    t1_client: m.attempt_started().as_millis(),
                                    rt,
                                });
                            }
                            requests.insert(*request, *attempt);
                        } else {
                            records.push(Event::ReleaseSent {
                                acq: *acq,
                                attempt: values.get(&cmd.value).copied(),
                                insts: vec![*inst as u32],
                                rt,
                            });
                        }
                    }
                    match done {
                        Err(until) => Next::Wait(until),
                        Ok(outcome) => Next::Acquired(*acq, outcome),
                    }
                }
                Phase::Extending { m, .. } => loop {
                    match m.poll_output() {
                        Output::Send(tx) => outgoing.push(copy_tx(&tx)),
                        Output::Wait { until } => break Next::Wait(until),
                        Output::Done(outcome) => break Next::Extended(outcome.clone()),
                    }
                },
                Phase::Releasing { m, acq } => {
                    let next = loop {
                        match m.poll_output() {
                            Output::Send(tx) => outgoing.push(copy_tx(&tx)),
                            Output::Wait { until } => break Next::Wait(until),
                            Output::Done(outcome) => break Next::Released(*outcome),
                        }
                    };
                    if !outgoing.is_empty() {
                        records.push(Event::ReleaseSent {
                            acq: *acq,
                            attempt: None,
                            insts: outgoing.iter().map(|(i, _, _)| *i as u32).collect(),
                            rt,
                        });
                    }
                    next
                }
                Phase::Idle | Phase::Holding { .. } | Phase::Finished => return,
            };
            for r in records {
                self.history.push(r);
            }
            self.send_all(c, outgoing);
            match next {
                Next::Wait(until) => {
                    let tau = self.clients[c].tau_of(until.as_millis(), self.now);
                    self.schedule(tau.max(self.now), What::Wake(c));
                    return;
                }
                Next::Acquired(acq, outcome) => self.on_acquired(c, acq, outcome),
                Next::Extended(outcome) => self.on_extended(c, outcome),
                Next::Released(outcome) => self.on_released(c, outcome),
            }
            if !matches!(
                self.clients[c].phase,
                Phase::Acquiring { .. } | Phase::Extending { .. } | Phase::Releasing { .. }
            ) {
                return;
            }
        }
    }

    fn send_all(&mut self, c: usize, outgoing: Vec<(usize, RequestId, Cmd)>) {
        let machine = self.clients[c].machine;
        for (inst, request, cmd) in outgoing {
            let msg = Msg {
                client: c,
                inst,
                machine,
                request,
                cmd,
                incarnation: self.instances[inst].incarnation,
            };
            self.deliver(c, inst, true, What::ToServer(msg));
        }
    }

    fn to_rt(&self, c: usize, reading: u64) -> u64 {
        self.clients[c].tau_of(reading, 0)
    }

    fn on_acquired(&mut self, c: usize, acq: u64, outcome: AcquireOutcome) {
        let rt = self.now;
        let Phase::Acquiring { m, attempt, .. } = &self.clients[c].phase else {
            unreachable!()
        };
        let t1 = m.attempt_started().as_millis();
        let attempt = *attempt;
        match outcome {
            AcquireOutcome::Acquired {
                lease,
                decided_at,
                report,
                ..
            } => {
                self.stats.acquired += 1;
                let valid_until = lease.valid_until().as_millis();
                let votes = votes(report.as_slice());
                self.history.push(Event::AcqOk {
                    acq,
                    attempt,
                    value: lease.value().as_str().to_owned(),
                    valid_until_client: valid_until,
                    t1_client: t1,
                    t2_client: decided_at.as_millis(),
                    validity_ms: valid_until as i64 - decided_at.as_millis() as i64,
                    votes,
                    rt,
                    valid_until_rt: Some(self.to_rt(c, valid_until)),
                });
                // Work within the lease, as a careful holder would: until at most 80 % of the
                // remaining validity, sometimes extending half-way.
                let remaining = lease.remaining_ms(decided_at);
                let work = 1 + self.rand(remaining * 8 / 10 + 1);
                let work_end = rt + work;
                let extend_at = self.chance(0.3).then(|| rt + work / 2);
                self.history.push(Event::WorkStart { acq, rt });
                self.clients[c].phase = Phase::Holding {
                    lease: Box::new(lease),
                    acq,
                    work_end,
                    extend_at,
                };
                let first = extend_at.unwrap_or(work_end);
                self.schedule(first, What::Wake(c));
            }
            AcquireOutcome::Failed { reason, .. } => {
                self.stats.failed += 1;
                self.history.push(Event::AcqFail {
                    acq,
                    reason: format!("{reason:?}"),
                    rt,
                });
                self.clients[c].phase = Phase::Idle;
                let pause = self.rand(self.p.ttl_ms);
                self.schedule(rt + pause, What::Wake(c));
            }
        }
    }

    fn on_extended(&mut self, c: usize, outcome: ExtendOutcome) {
        let rt = self.now;
        let Phase::Extending {
            m,
            acq,
            ext,
            work_end,
        } = &self.clients[c].phase
        else {
            unreachable!()
        };
        let (acq, ext, work_end, t1) = (*acq, *ext, *work_end, m.started().as_millis());
        let lease = outcome.lease().clone();
        let valid_until = lease.valid_until().as_millis();
        let end_rt = self.to_rt(c, valid_until);
        let valid_until_rt = Some(end_rt);
        match &outcome {
            ExtendOutcome::Extended { report, .. } => {
                self.stats.extended += 1;
                let t2 = self.clients[c].last_read;
                self.history.push(Event::ExtOk {
                    ext,
                    acq,
                    valid_until_client: valid_until,
                    valid_until_rt,
                    validity_ms: valid_until as i64 - t2 as i64,
                    votes: votes(report.as_slice()),
                    t1_client: t1,
                    t2_client: t2,
                    rt,
                });
            }
            ExtendOutcome::Failed { .. } => self.history.push(Event::ExtFail {
                ext,
                acq,
                valid_until_client: valid_until,
                valid_until_rt,
                rt,
            }),
        }
        // Keep working only while the lease is valid; stop early otherwise.
        let work_end = work_end.min(end_rt.saturating_sub(1)).max(rt);
        self.clients[c].phase = Phase::Holding {
            lease: Box::new(lease),
            acq,
            work_end,
            extend_at: None,
        };
        self.schedule(work_end, What::Wake(c));
    }

    fn on_released(&mut self, c: usize, outcome: redlock_core::ReleaseOutcome) {
        let Phase::Releasing { acq, .. } = &self.clients[c].phase else {
            unreachable!()
        };
        let acq = *acq;
        let per_inst = outcome
            .report
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, s)| RelInstResult {
                inst: i as u32,
                result: match s {
                    InstanceStatus::Yes => RelOutcome::Reply(1),
                    InstanceStatus::Held => RelOutcome::Reply(0),
                    InstanceStatus::TimedOut | InstanceStatus::Pending => {
                        RelOutcome::Failed(RelFailure::Timeout)
                    }
                    _ => RelOutcome::Failed(RelFailure::Err),
                },
            })
            .collect();
        self.history.push(Event::RelDone {
            acq,
            per_inst,
            rt: self.now,
        });
        self.clients[c].phase = Phase::Idle;
        let pause = self.rand(self.p.ttl_ms / 2);
        self.schedule(self.now + pause, What::Wake(c));
        if self.p.handoff_hints {
            self.hint_waiters(c);
        }
    }

    /// A release finished: most clients that wait to retry hear of it (some hints are lost)
    /// and move their retry up within a few milliseconds.
    fn hint_waiters(&mut self, releaser: usize) {
        for w in 0..self.clients.len() {
            if w == releaser || !matches!(self.clients[w].phase, Phase::Acquiring { .. }) {
                continue;
            }
            if self.chance(0.2) {
                continue;
            }
            let spread = Duration::from_millis(self.rand(5));
            let now = self.read_clock(w);
            if let Phase::Acquiring { m, .. } = &mut self.clients[w].phase {
                m.wake(now, spread).expect("a monotonic clock");
            }
            self.drive(w);
        }
    }
}

enum Next {
    Wait(Instant),
    Acquired(u64, AcquireOutcome),
    Extended(ExtendOutcome),
    Released(redlock_core::ReleaseOutcome),
}

fn votes(statuses: &[InstanceStatus]) -> Vec<u32> {
    statuses
        .iter()
        .enumerate()
        .filter(|(_, s)| **s == InstanceStatus::Yes)
        .map(|(i, _)| i as u32)
        .collect()
}

fn copy_tx(tx: &Transmit<'_>) -> (usize, RequestId, Cmd) {
    (
        tx.instance,
        tx.request,
        Cmd {
            kind: tx.command.kind(),
            keys: tx
                .command
                .resources()
                .iter()
                .map(|k| String::from_utf8(k.to_vec()).unwrap())
                .collect(),
            value: tx.command.value().as_str().to_owned(),
            ttl: tx.command.ttl_ms(),
        },
    )
}
