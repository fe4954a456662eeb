//! The test model shared by `tests/properties.rs` and the `machine_inputs` fuzz target.
//!
//! A [`Runner`] drives one machine (acquire, extend or release) through a script of [`Act`]s,
//! interpreting each act against the commands the machine actually emitted, and records a trace
//! of [`Ev`]ents. The `check_*` functions then verify the invariants of the crate docs and of
//! `shared/research/redlock-safety.md` (§2, §7.4) over that trace, tracking quorum evidence,
//! deadlines and cleanup **independently** of the machine's own report.
//!
//! Everything returns `Result<_, String>` so the proptest side can shrink and the fuzz side can
//! panic with the same message.

#![allow(dead_code)]

use std::fmt::Debug;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use redlock_core::resp::{self, Frame};
use redlock_core::{
    Acquire, AcquireFailure, AcquireOutcome, Command, CommandForm, CommandKind, Config, Error,
    Extend, ExtendFailure, ExtendOutcome, Input, InstanceStatus, Instant, Lease, Output, Release,
    ReleaseOutcome, Reply, RequestId, Resources, Token, Transmit, ACQUIRE_SCRIPT, EXTEND_SCRIPT,
    RELEASE_SCRIPT,
};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// The `NOSCRIPT` error text Redis sends for an unknown script digest.
pub(crate) const NOSCRIPT: &[u8] = b"NOSCRIPT No matching script. Please use EVAL.";

/// Known core bugs the properties tolerate until they are fixed; each has an `#[ignore]`d
/// regression test in `properties.rs` (`fixed_bug_*`); all are fixed in the core now.
///
/// `Acquire::cancel` after a clock regression (before the outcome is polled) replaces the
/// `ClockWentBackwards` reason with `Cancelled`.
pub(crate) const FIXED_CANCEL_AFTER_REGRESSION: bool = true;

/// After `Acquire::cancel(now)`, `poll_output` can return `Wait { until }` with `until` before
/// `now` (cancel does not expire the deadlines it passed), so feeding `until` is a regression.
pub(crate) const FIXED_WAIT_AFTER_CANCEL: bool = true;

/// The acquire's cleanup queue holds 32 releases; late `OK`s of earlier attempts fed in one
/// batch can fill it and the releases owed next are dropped. At most `(retries + 1) × N`
/// distinct releases are ever owed, so while this is unfixed the generated configurations keep
/// that product within 32.
pub(crate) const FIXED_CLEANUP_OVERFLOW: bool = true;

const ERRORS: [&[u8]; 10] = [
    b"ERR unknown command",
    b"READONLY You can't write against a read only replica.",
    b"OOM command not allowed when used memory > 'maxmemory'.",
    b"BUSY Redis is busy running a script.",
    b"LOADING Redis is loading the dataset in memory",
    b"MISCONF Redis is configured to save RDB snapshots",
    b"WRONGTYPE Operation against a key holding the wrong kind of value",
    b"NOAUTH Authentication required.",
    b"CLUSTERDOWN The cluster is down",
    b"",
];

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// An owned reply (the machines take a borrowed [`Reply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Raw {
    Ok,
    Nil,
    Int(i64),
    Err(Vec<u8>),
    Other,
}

impl Raw {
    pub(crate) fn reply(&self) -> Reply<'_> {
        match self {
            Raw::Ok => Reply::Ok,
            Raw::Nil => Reply::Nil,
            Raw::Int(i) => Reply::Integer(*i),
            Raw::Err(text) => Reply::Error(text),
            Raw::Other => Reply::Other,
        }
    }

    /// Whether this is a `NOSCRIPT` error, classified here by its first word, independently of
    /// `ServerError::classify`.
    fn is_noscript(&self) -> bool {
        match self {
            Raw::Err(text) => text.split(|&b| b == b' ').next() == Some(&b"NOSCRIPT"[..]),
            _ => false,
        }
    }
}

/// What an answer to a command says, mapped to the right reply for the command it answers.
#[derive(Debug, Clone)]
pub(crate) enum Vote {
    /// `OK` to `SET`, `1` to a script (the number of keys to a release).
    Yes,
    /// `nil` to `SET`, `0` to a script.
    No,
    /// One of a few Redis error replies.
    Error(u8),
    /// `NOSCRIPT …`.
    NoScript,
    /// Exactly this reply, whatever the command (garbage, wrong types).
    Raw(Raw),
}

impl Vote {
    fn raw(&self, kind: CommandKind, form: CommandForm, keys: usize) -> Raw {
        match self {
            Vote::Yes => match (kind, form) {
                (CommandKind::Acquire, CommandForm::Set) => Raw::Ok,
                (CommandKind::Release, _) => Raw::Int(keys as i64),
                _ => Raw::Int(1),
            },
            Vote::No => match (kind, form) {
                (CommandKind::Acquire, CommandForm::Set) => Raw::Nil,
                _ => Raw::Int(0),
            },
            Vote::Error(k) => Raw::Err(ERRORS[usize::from(*k) % ERRORS.len()].to_vec()),
            Vote::NoScript => Raw::Err(NOSCRIPT.to_vec()),
            Vote::Raw(r) => r.clone(),
        }
    }
}

/// One step of a script, interpreted against what the machine has emitted so far.
#[derive(Debug, Clone)]
pub(crate) enum Act {
    /// Poll until `Wait` or `Done`.
    Drain,
    /// Poll once (leaves sends undrained).
    PollOnce,
    /// Answer an unanswered command of the machine's own kind, `gap` ms later.
    Answer { pick: u16, vote: Vote, gap: u64 },
    /// A transport failure for an unanswered command.
    Transport { pick: u16, gap: u64 },
    /// Feed `Timeout` exactly at the last `Wait` deadline.
    ToDeadline,
    /// Feed `Timeout` `gap` ms later.
    Tick { gap: u64 },
    /// Hostile: answer any command ever sent again (duplicates, releases, other attempts).
    Reanswer { pick: u16, vote: Vote, gap: u64 },
    /// Hostile: an instance index outside `0..N`.
    BadInstance { extra: u8, vote: Vote, gap: u64 },
    /// Hostile: a request id no command ever had.
    BadRequest {
        instance: u8,
        id: u32,
        vote: Vote,
        gap: u64,
    },
    /// Hostile: a reply for a request id not handed out yet (the next ids the machine will use).
    Guess {
        instance: u8,
        ahead: u8,
        vote: Vote,
        gap: u64,
    },
    /// Hostile: a time `by + 1` ms before the latest one (how: 0 timeout, 1 reply, 2 transport).
    Back { by: u64, how: u8 },
    /// `Acquire::cancel`, `gap` ms later (a tick for the other machines).
    Cancel { gap: u64 },
}

/// How the runner brings the machine to `Done` once the script is exhausted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    /// Feed time at every `Wait` deadline: everything still unanswered times out.
    TimeOut,
    /// Answer every unanswered command of the machine's kind with a yes, 1 ms later.
    AllYes,
    /// Answer every unanswered command with a no, 1 ms later.
    AllNo,
}

// ---------------------------------------------------------------------------------------------
// Parameters and the expected constants, computed independently of `Config`'s getters
// ---------------------------------------------------------------------------------------------

/// A configuration as generated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    pub(crate) n: usize,
    pub(crate) ttl_ms: u64,
    pub(crate) drift_ppm: u32,
    pub(crate) drift_pad_ms: u64,
    pub(crate) timeout_ms: Option<u64>,
    pub(crate) retry_count: u32,
    pub(crate) retry_delay_ms: u64,
    pub(crate) retry_jitter_ms: u64,
    pub(crate) min_validity_ms: u64,
    pub(crate) acquire_deadline_ms: Option<u64>,
}

/// The constants a run is checked against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expect {
    pub(crate) n: usize,
    pub(crate) quorum: usize,
    pub(crate) ttl: u64,
    pub(crate) drift: u64,
    pub(crate) timeout: u64,
    pub(crate) min_validity: u64,
    pub(crate) retry_count: u32,
    pub(crate) delay: u64,
    pub(crate) jitter: u64,
    pub(crate) acquire_deadline: Option<u64>,
}

impl Params {
    /// Makes the parameters valid (drift + min validity below the TTL, timeout below the TTL,
    /// jitter within the delay) and builds the `Config`.
    pub(crate) fn fixed(mut self) -> Option<(Self, Config)> {
        self.n = self.n.clamp(1, 16);
        self.ttl_ms = self.ttl_ms.max(1);
        self.drift_ppm = self.drift_ppm.min(999_999);
        self.retry_jitter_ms = self.retry_jitter_ms.min(self.retry_delay_ms);
        if !FIXED_CLEANUP_OVERFLOW {
            let most = (32 / self.n).saturating_sub(1);
            self.retry_count = self.retry_count.min(most as u32);
        }
        let drift = drift_of(self.ttl_ms, self.drift_ppm, self.drift_pad_ms);
        if drift >= self.ttl_ms {
            return None;
        }
        self.min_validity_ms = self.min_validity_ms.min(self.ttl_ms - drift - 1);
        if let Some(t) = self.timeout_ms {
            self.timeout_ms = Some(t.clamp(1, self.ttl_ms.saturating_sub(1).max(1)));
            if self.ttl_ms <= 1 {
                self.timeout_ms = None;
            }
        }
        let config = self.config().ok()?;
        Some((self, config))
    }

    pub(crate) fn config(&self) -> Result<Config, String> {
        let ms = Duration::from_millis;
        let mut c = Config::new(self.n, ms(self.ttl_ms))
            .and_then(|c| c.with_drift_factor(f64::from(self.drift_ppm) / 1_000_000.0))
            .and_then(|c| c.with_drift_pad(ms(self.drift_pad_ms)))
            .and_then(|c| c.with_retry_count(self.retry_count))
            .and_then(|c| c.with_retry_delay(ms(self.retry_delay_ms), ms(self.retry_jitter_ms)))
            .and_then(|c| c.with_min_validity(ms(self.min_validity_ms)))
            .and_then(|c| c.with_acquire_deadline(self.acquire_deadline_ms.map(ms)))
            .map_err(|e| format!("{e:?}"))?;
        if let Some(t) = self.timeout_ms {
            c = c
                .with_instance_timeout(ms(t))
                .map_err(|e| format!("{e:?}"))?;
        }
        Ok(c)
    }

    /// The constants for `config` (which may carry another TTL, from `with_ttl`).
    pub(crate) fn expect(&self, config: &Config) -> Expect {
        let ttl = config.ttl_ms();
        // The drift factor goes through an f64 (`with_drift_factor`); take the ppm it actually
        // stored, rounded, and apply the documented formula to it.
        let ppm = (config.drift_factor() * 1_000_000.0).round() as u32;
        let drift = drift_of(ttl, ppm, self.drift_pad_ms);
        let timeout = match self.timeout_ms {
            Some(t) => t,
            // 5 % of the TTL, at least 10 ms, strictly inside the validity budget.
            None => (ttl / 20)
                .max(10)
                .min(ttl.saturating_sub(drift).saturating_sub(1))
                .max(1),
        };
        Expect {
            n: self.n,
            quorum: self.n / 2 + 1,
            ttl,
            drift,
            timeout,
            min_validity: self.min_validity_ms,
            retry_count: self.retry_count,
            delay: self.retry_delay_ms,
            jitter: self.retry_jitter_ms,
            acquire_deadline: self.acquire_deadline_ms,
        }
    }
}

/// `floor(ttl × ppm / 1e6) + pad`.
pub(crate) fn drift_of(ttl: u64, ppm: u32, pad: u64) -> u64 {
    let scaled = u128::from(ttl) * u128::from(ppm) / 1_000_000;
    u64::try_from(scaled)
        .unwrap_or(u64::MAX)
        .saturating_add(pad)
}

/// Checks the config getters against the independently computed constants.
pub(crate) fn check_config(x: &Expect, c: &Config) -> Result<(), String> {
    ensure!(
        c.instances() == x.n,
        "instances {} != {}",
        c.instances(),
        x.n
    );
    ensure!(
        c.quorum() == x.quorum,
        "quorum {} != {}",
        c.quorum(),
        x.quorum
    );
    ensure!(c.ttl_ms() == x.ttl, "ttl");
    ensure!(
        c.drift_ms() == x.drift,
        "drift {} != {}",
        c.drift_ms(),
        x.drift
    );
    ensure!(
        c.instance_timeout_ms() == x.timeout,
        "instance timeout {} != {}",
        c.instance_timeout_ms(),
        x.timeout
    );
    // The docs say the automatic timeout stays "below the lease's validity"; it can equal
    // `ttl - drift` (e.g. ttl 5, drift 0 gives 5), which the attempt deadline caps anyway.
    ensure!(
        c.instance_timeout_ms() <= c.ttl_ms(),
        "timeout above the ttl"
    );
    ensure!(
        c.ttl_ms() > c.drift_ms().saturating_add(c.min_validity_ms()),
        "a config that can never grant a lease was accepted"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

/// A command the machine emitted, copied out of its borrow.
#[derive(Debug, Clone)]
pub(crate) struct Sent {
    pub(crate) instance: usize,
    pub(crate) request: RequestId,
    pub(crate) kind: CommandKind,
    pub(crate) form: CommandForm,
    pub(crate) value: Token,
    pub(crate) resources: Resources,
    pub(crate) ttl_ms: u64,
}

fn decimal(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// The argv a command must have, built here from its parts (not from `Command::args`).
pub(crate) fn expected_args(
    kind: CommandKind,
    form: CommandForm,
    resources: &Resources,
    value: &Token,
    ttl_ms: u64,
) -> Vec<Vec<u8>> {
    let keys: Vec<Vec<u8>> = resources.iter().map(<[u8]>::to_vec).collect();
    if form == CommandForm::Set {
        return vec![
            b"SET".to_vec(),
            keys[0].clone(),
            value.as_bytes().to_vec(),
            b"NX".to_vec(),
            b"PX".to_vec(),
            decimal(ttl_ms),
        ];
    }
    let script = match kind {
        CommandKind::Acquire => &ACQUIRE_SCRIPT,
        CommandKind::Extend => &EXTEND_SCRIPT,
        CommandKind::Release => &RELEASE_SCRIPT,
    };
    let mut args = vec![
        if form == CommandForm::Eval {
            b"EVAL".to_vec()
        } else {
            b"EVALSHA".to_vec()
        },
        if form == CommandForm::Eval {
            script.source.as_bytes().to_vec()
        } else {
            script.sha1.as_bytes().to_vec()
        },
        decimal(keys.len() as u64),
    ];
    args.extend(keys);
    args.push(value.as_bytes().to_vec());
    if kind != CommandKind::Release {
        args.push(decimal(ttl_ms));
    }
    args
}

/// Whether `bytes` is a well-formed value: 32 lowercase hex characters.
pub(crate) fn is_token_text(bytes: &[u8]) -> bool {
    bytes.len() == 32 && bytes.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a command's argv against its parts, and that its RESP encoding parses back to it.
pub(crate) fn check_command(cmd: &Command<'_>) -> Result<(), String> {
    let args: Vec<Vec<u8>> = cmd.args().map(<[u8]>::to_vec).collect();
    ensure!(
        args.len() == cmd.arg_count() && cmd.args().len() == args.len(),
        "arg_count {} but {} args",
        cmd.arg_count(),
        args.len()
    );
    ensure!(
        is_token_text(cmd.value().as_bytes()),
        "value {:?} is not 32 lowercase hex characters",
        cmd.value()
    );
    let ttl = if cmd.kind() == CommandKind::Release {
        0
    } else {
        cmd.ttl_ms()
    };
    let want = expected_args(cmd.kind(), cmd.form(), cmd.resources(), cmd.value(), ttl);
    ensure!(
        args == want,
        "argv of {cmd:?} differs from the expected {want:?}"
    );
    match cmd.form() {
        CommandForm::Set => ensure!(
            cmd.kind() == CommandKind::Acquire && cmd.resources().len() == 1,
            "SET for {:?} with {} keys",
            cmd.kind(),
            cmd.resources().len()
        ),
        _ => ensure!(
            cmd.kind() != CommandKind::Acquire || cmd.resources().len() > 1,
            "script for a single-key acquire"
        ),
    }
    check_resp_round_trip(cmd, &args)
}

/// `encode_resp` parses back into an array of bulk strings equal to `args`.
pub(crate) fn check_resp_round_trip(cmd: &Command<'_>, args: &[Vec<u8>]) -> Result<(), String> {
    let mut buf = vec![0u8; cmd.resp_len()];
    let n = cmd
        .encode_resp(&mut buf)
        .map_err(|e| format!("encode_resp into a buffer of resp_len: {e:?}"))?;
    ensure!(
        n == buf.len(),
        "encode_resp wrote {n} of {} bytes",
        buf.len()
    );
    if n > 0 {
        let mut small = vec![0xAAu8; n - 1];
        ensure!(
            cmd.encode_resp(&mut small).map_err(|e| e.needed) == Err(n),
            "a buffer one byte short was not refused with the needed size"
        );
        ensure!(small.iter().all(|&b| b == 0xAA), "a refused encode wrote");
    }
    let Ok(Some((frame, used))) = resp::parse(&buf) else {
        return Err(format!(
            "encoded command does not parse: {:?}",
            resp::parse(&buf)
        ));
    };
    ensure!(used == n, "parse used {used} of {n} bytes");
    let Frame::Array(items) = frame else {
        return Err(format!("encoded command is not an array: {frame:?}"));
    };
    ensure!(
        items.len() == args.len(),
        "array of {} for {} args",
        items.len(),
        args.len()
    );
    for (k, (item, arg)) in items.iter().zip(args).enumerate() {
        ensure!(
            item == Frame::Bulk(arg),
            "element {k}: {item:?} != bulk {arg:?}"
        );
    }
    Ok(())
}

fn sent_of(tx: &Transmit<'_>) -> Result<Sent, String> {
    check_command(&tx.command)?;
    Ok(Sent {
        instance: tx.instance,
        request: tx.request,
        kind: tx.command.kind(),
        form: tx.command.form(),
        value: *tx.command.value(),
        resources: tx.command.resources().clone(),
        ttl_ms: tx.command.ttl_ms(),
    })
}

// ---------------------------------------------------------------------------------------------
// Machines behind one interface
// ---------------------------------------------------------------------------------------------

/// What one poll produced, owned.
// Test data: a `Sent` carries its `Resources` inline, like the machines do.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Polled<O> {
    Send(Sent),
    Wait(Instant),
    Done(O),
}

pub(crate) trait Machine {
    type Outcome: Clone + PartialEq + Debug;
    /// The kind of command the machine exists to send.
    const KIND: CommandKind;
    fn feed(&mut self, input: Input<'_>) -> Result<(), Error>;
    fn poll(&mut self) -> Result<Polled<Self::Outcome>, String>;
    fn decided(&self) -> bool;
    /// `Acquire::cancel`; `None` for the machines that have none.
    fn cancel(&mut self, now: Instant) -> Option<Result<(), Error>>;
}

fn polled<O: Clone>(out: Output<'_, O>) -> Result<Polled<O>, String> {
    Ok(match out {
        Output::Send(tx) => Polled::Send(sent_of(&tx)?),
        Output::Wait { until } => Polled::Wait(until),
        Output::Done(o) => Polled::Done(o.clone()),
    })
}

impl Machine for Acquire<ChaCha20Rng> {
    type Outcome = AcquireOutcome;
    const KIND: CommandKind = CommandKind::Acquire;
    fn feed(&mut self, input: Input<'_>) -> Result<(), Error> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Result<Polled<AcquireOutcome>, String> {
        polled(self.poll_output())
    }
    fn decided(&self) -> bool {
        self.outcome().is_some()
    }
    fn cancel(&mut self, now: Instant) -> Option<Result<(), Error>> {
        Some(Acquire::cancel(self, now))
    }
}

impl Machine for Extend {
    type Outcome = ExtendOutcome;
    const KIND: CommandKind = CommandKind::Extend;
    fn feed(&mut self, input: Input<'_>) -> Result<(), Error> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Result<Polled<ExtendOutcome>, String> {
        polled(self.poll_output())
    }
    fn decided(&self) -> bool {
        self.outcome().is_some()
    }
    fn cancel(&mut self, _: Instant) -> Option<Result<(), Error>> {
        None
    }
}

impl Machine for Release {
    type Outcome = ReleaseOutcome;
    const KIND: CommandKind = CommandKind::Release;
    fn feed(&mut self, input: Input<'_>) -> Result<(), Error> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Result<Polled<ReleaseOutcome>, String> {
        polled(self.poll_output())
    }
    fn decided(&self) -> bool {
        self.outcome().is_some()
    }
    fn cancel(&mut self, _: Instant) -> Option<Result<(), Error>> {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// The trace
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum What {
    Reply(Raw),
    Transport,
    Timeout,
}

/// An input as fed.
#[derive(Debug, Clone)]
pub(crate) struct Fed {
    pub(crate) what: What,
    pub(crate) instance: usize,
    pub(crate) request: RequestId,
    pub(crate) at: Instant,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum Ev<O> {
    /// A command emitted while the fed clock was `clock`.
    Sent {
        clock: Instant,
        sent: Sent,
    },
    /// An input, its result, and whether the machine had an outcome afterwards.
    Fed {
        fed: Fed,
        result: Result<(), Error>,
        decided: bool,
    },
    /// `Acquire::cancel`.
    Cancel {
        now: Instant,
        result: Result<(), Error>,
        decided: bool,
    },
    Wait {
        clock: Instant,
        until: Instant,
    },
    Done(O),
}

/// A finished run.
#[derive(Debug, Clone)]
pub(crate) struct Run<O> {
    pub(crate) start: Instant,
    pub(crate) events: Vec<Ev<O>>,
    /// The first outcome polled.
    pub(crate) outcome: Option<O>,
    /// The machine's clock at the end (the largest time it accepted).
    pub(crate) clock: Instant,
}

impl<O: Debug> Run<O> {
    /// The trace, one event per line (for failure messages).
    pub(crate) fn dump(&self) -> String {
        let mut s = format!("start {:?}\n", self.start);
        for (k, e) in self.events.iter().enumerate() {
            s.push_str(&format!("{k:4} {e:?}\n"));
        }
        s
    }
}

/// Drives one machine through a script and records the trace.
pub(crate) struct Runner<'m, M: Machine> {
    m: &'m mut M,
    n: usize,
    clock: Instant,
    start: Instant,
    events: Vec<Ev<M::Outcome>>,
    sent: Vec<Sent>,
    answered: Vec<(usize, RequestId)>,
    last_wait: Option<Instant>,
    first_done: Option<M::Outcome>,
}

/// The most sends one drain may produce before the machine is considered to loop.
const MAX_SENDS_PER_DRAIN: usize = 4 * 16 + 8;

impl<'m, M: Machine> Runner<'m, M> {
    pub(crate) fn new(m: &'m mut M, n: usize, start: Instant) -> Self {
        Self {
            m,
            n,
            clock: start,
            start,
            events: Vec::new(),
            sent: Vec::new(),
            answered: Vec::new(),
            last_wait: None,
            first_done: None,
        }
    }

    pub(crate) fn clock(&self) -> Instant {
        self.clock
    }

    fn later(&self, gap: u64) -> Instant {
        self.clock.saturating_add(gap)
    }

    pub(crate) fn poll_once(&mut self) -> Result<(), String> {
        let p = self.m.poll()?;
        if let Some(first) = &self.first_done {
            match &p {
                Polled::Done(o) if o == first => {}
                other => {
                    return Err(format!(
                        "Done is not terminal: after Done({first:?}) a poll returned {other:?}"
                    ))
                }
            }
        }
        match p {
            Polled::Send(sent) => {
                self.sent.push(sent.clone());
                self.events.push(Ev::Sent {
                    clock: self.clock,
                    sent,
                });
            }
            Polled::Wait(until) => {
                // A host that sleeps until `until` and feeds it must not be feeding the past.
                // Tolerated: the known cancel bug, and deadlines computed with saturating
                // arithmetic within a TTL of u64::MAX ms (the extend deadline
                // `saturate(start + ttl - drift) - min_validity` can fall before `start`).
                let tolerated = (!FIXED_WAIT_AFTER_CANCEL
                    && self
                        .events
                        .iter()
                        .any(|e| matches!(e, Ev::Cancel { result: Ok(()), .. })))
                    || self.clock.as_millis() > u64::MAX / 2;
                ensure!(
                    until >= self.clock || tolerated,
                    "Wait {{ until: {until:?} }} earlier than the time already fed, {:?}",
                    self.clock
                );
                self.last_wait = Some(until);
                self.events.push(Ev::Wait {
                    clock: self.clock,
                    until,
                });
            }
            Polled::Done(o) => {
                ensure!(self.m.decided(), "Done polled but outcome() is None");
                if self.first_done.is_none() {
                    self.first_done = Some(o.clone());
                }
                self.events.push(Ev::Done(o));
            }
        }
        Ok(())
    }

    /// Polls until `Wait` or `Done`.
    pub(crate) fn drain(&mut self) -> Result<(), String> {
        for _ in 0..MAX_SENDS_PER_DRAIN {
            self.poll_once()?;
            if !matches!(self.events.last(), Some(Ev::Sent { .. })) {
                return Ok(());
            }
        }
        Err(format!(
            "more than {MAX_SENDS_PER_DRAIN} sends in one drain"
        ))
    }

    /// Feeds one input and checks the result against the documented one.
    pub(crate) fn feed(&mut self, fed: Fed) -> Result<(), String> {
        let expected = match fed.what {
            What::Reply(_) | What::Transport if fed.instance >= self.n => {
                Err(Error::UnknownInstance {
                    instance: fed.instance,
                    instances: self.n,
                })
            }
            _ if fed.at < self.clock => Err(Error::TimeWentBackwards {
                previous: self.clock,
                now: fed.at,
            }),
            _ => Ok(()),
        };
        let result = match &fed.what {
            What::Reply(raw) => self.m.feed(Input::Reply {
                instance: fed.instance,
                request: fed.request,
                reply: raw.reply(),
                at: fed.at,
            }),
            What::Transport => self.m.feed(Input::TransportError {
                instance: fed.instance,
                request: fed.request,
                at: fed.at,
            }),
            What::Timeout => self.m.feed(Input::Timeout { now: fed.at }),
        };
        ensure!(
            result == expected,
            "feeding {fed:?} at clock {:?} returned {result:?}, expected {expected:?}",
            self.clock
        );
        if result.is_ok() {
            self.clock = fed.at;
            if fed.what != What::Timeout {
                self.answered.push((fed.instance, fed.request));
            }
        }
        let decided = self.m.decided();
        if self.first_done.is_some() {
            ensure!(decided, "outcome() became None after Done");
        }
        self.events.push(Ev::Fed {
            fed,
            result,
            decided,
        });
        Ok(())
    }

    fn cancel(&mut self, now: Instant) -> Result<(), String> {
        let Some(result) = self.m.cancel(now) else {
            return self.tick(now);
        };
        let expected = if now < self.clock {
            Err(Error::TimeWentBackwards {
                previous: self.clock,
                now,
            })
        } else {
            Ok(())
        };
        ensure!(
            result == expected,
            "cancel({now:?}) at clock {:?} returned {result:?}, expected {expected:?}",
            self.clock
        );
        if result.is_ok() {
            self.clock = now;
        }
        let decided = self.m.decided();
        self.events.push(Ev::Cancel {
            now,
            result,
            decided,
        });
        Ok(())
    }

    fn tick(&mut self, at: Instant) -> Result<(), String> {
        self.feed(Fed {
            what: What::Timeout,
            instance: 0,
            request: RequestId::from_u32(0),
            at,
        })
    }

    /// Commands of the machine's own kind not answered yet.
    fn unanswered(&self) -> Vec<Sent> {
        self.sent
            .iter()
            .filter(|s| s.kind == M::KIND && !self.answered.contains(&(s.instance, s.request)))
            .cloned()
            .collect()
    }

    fn reply_to(&mut self, s: &Sent, vote: &Vote, at: Instant) -> Result<(), String> {
        let raw = vote.raw(s.kind, s.form, s.resources.len());
        self.feed(Fed {
            what: What::Reply(raw),
            instance: s.instance,
            request: s.request,
            at,
        })
    }

    /// A reply for a command that was not emitted (or not by this instance).
    fn reply_blind(
        &mut self,
        instance: usize,
        request: RequestId,
        vote: &Vote,
        at: Instant,
    ) -> Result<(), String> {
        let (form, keys) = match self.sent.first() {
            Some(s) => (s.form, s.resources.len()),
            None => (CommandForm::Set, 1),
        };
        let raw = vote.raw(M::KIND, form, keys);
        self.feed(Fed {
            what: What::Reply(raw),
            instance,
            request,
            at,
        })
    }

    pub(crate) fn act(&mut self, act: &Act) -> Result<(), String> {
        match act {
            Act::Drain => self.drain(),
            Act::PollOnce => self.poll_once(),
            Act::Answer { pick, vote, gap } => {
                let open = self.unanswered();
                let at = self.later(*gap);
                match open.get(usize::from(*pick) % open.len().max(1)) {
                    Some(s) => self.reply_to(s, vote, at),
                    None => self.tick(at),
                }
            }
            Act::Transport { pick, gap } => {
                let open = self.unanswered();
                let at = self.later(*gap);
                match open.get(usize::from(*pick) % open.len().max(1)) {
                    Some(s) => self.feed(Fed {
                        what: What::Transport,
                        instance: s.instance,
                        request: s.request,
                        at,
                    }),
                    None => self.tick(at),
                }
            }
            Act::ToDeadline => {
                let at = self.last_wait.unwrap_or(self.clock).max(self.clock);
                self.tick(at)
            }
            Act::Tick { gap } => self.tick(self.later(*gap)),
            Act::Reanswer { pick, vote, gap } => {
                let at = self.later(*gap);
                match self.sent.get(usize::from(*pick) % self.sent.len().max(1)) {
                    Some(s) => {
                        let s = s.clone();
                        self.reply_to(&s, vote, at)
                    }
                    None => self.tick(at),
                }
            }
            Act::BadInstance { extra, vote, gap } => {
                let request = self
                    .sent
                    .last()
                    .map_or(RequestId::from_u32(1), |s| s.request);
                let at = self.later(*gap);
                self.reply_blind(self.n + usize::from(*extra), request, vote, at)
            }
            Act::BadRequest {
                instance,
                id,
                vote,
                gap,
            } => {
                let at = self.later(*gap);
                let request = RequestId::from_u32(id | 0x4000_0000);
                self.reply_blind(usize::from(*instance) % self.n, request, vote, at)
            }
            Act::Guess {
                instance,
                ahead,
                vote,
                gap,
            } => {
                let at = self.later(*gap);
                let top = self
                    .sent
                    .iter()
                    .map(|s| s.request.as_u32())
                    .max()
                    .unwrap_or(0);
                let request = RequestId::from_u32(top.wrapping_add(1 + u32::from(*ahead)));
                self.reply_blind(usize::from(*instance) % self.n, request, vote, at)
            }
            Act::Back { by, how } => {
                let now = self.clock.as_millis();
                if now == 0 {
                    return self.tick(self.clock);
                }
                let at = Instant::from_millis(now - 1 - by % now);
                let target = self.sent.last().cloned();
                match (how % 3, target) {
                    (1, Some(s)) => self.reply_to(&s, &Vote::Yes, at),
                    (2, Some(s)) => self.feed(Fed {
                        what: What::Transport,
                        instance: s.instance,
                        request: s.request,
                        at,
                    }),
                    _ => self.tick(at),
                }
            }
            Act::Cancel { gap } => self.cancel(self.later(*gap)),
        }
    }

    /// Runs the script, brings the machine to `Done`, then pokes it to check that `Done` stays.
    pub(crate) fn run(mut self, acts: &[Act], finish: Finish) -> Result<Run<M::Outcome>, String> {
        for act in acts {
            self.act(act)?;
        }
        for _ in 0..400 {
            self.drain()?;
            if self.first_done.is_some() {
                break;
            }
            let open = self.unanswered();
            let vote = match finish {
                Finish::AllYes => Vote::Yes,
                _ => Vote::No,
            };
            if finish != Finish::TimeOut && !open.is_empty() {
                for s in &open {
                    let at = self.later(1);
                    self.reply_to(s, &vote, at)?;
                }
            } else {
                let at = self.last_wait.unwrap_or(self.clock).max(self.clock);
                self.tick(at)?;
            }
        }
        ensure!(
            self.first_done.is_some(),
            "no Done after 400 rounds of feeding every Wait deadline"
        );
        // Done is terminal: inputs of every kind change nothing.
        let after = self.later(1);
        self.tick(after)?;
        self.poll_once()?;
        if let Some(s) = self.sent.last().cloned() {
            let at = self.later(1);
            self.reply_to(&s, &Vote::Yes, at)?;
            self.poll_once()?;
        }
        if self.clock.as_millis() > 0 {
            let back = Instant::from_millis(self.clock.as_millis() - 1);
            self.tick(back)?;
            self.poll_once()?;
            self.cancel(back)?;
            self.poll_once()?;
        }
        let at = self.later(0);
        self.cancel(at)?;
        self.poll_once()?;
        Ok(Run {
            start: self.start,
            events: self.events,
            outcome: self.first_done,
            clock: self.clock,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Checks over a trace
// ---------------------------------------------------------------------------------------------

/// What the checks read off a trace, independently of the machine.
struct Scan {
    /// The fed clock after each event.
    clocks: Vec<Instant>,
    /// Every accepted answer (reply or transport error): (event, instance, request, what, at).
    answers: Vec<(usize, usize, RequestId, What, Instant)>,
    /// The first event after which the machine had an outcome.
    decision: Option<usize>,
    /// The first clock regression fed while the machine had no outcome.
    regression: Option<usize>,
    /// The first accepted cancel while the machine had no outcome.
    cancel: Option<usize>,
    /// Every accepted cancel while the machine had no outcome.
    cancels: Vec<usize>,
    /// The first `Done`.
    first_done: Option<usize>,
}

fn scan<O: Clone + PartialEq + Debug>(run: &Run<O>) -> Result<Scan, String> {
    let mut s = Scan {
        clocks: Vec::with_capacity(run.events.len()),
        answers: Vec::new(),
        decision: None,
        regression: None,
        cancel: None,
        cancels: Vec::new(),
        first_done: None,
    };
    let mut clock = run.start;
    let mut decided = false;
    for (e, ev) in run.events.iter().enumerate() {
        if let Some(d) = s.first_done {
            match ev {
                Ev::Sent { .. } | Ev::Wait { .. } => {
                    return Err(format!("event {e} after Done (event {d}): {ev:?}"))
                }
                Ev::Done(o) => {
                    let Some(Ev::Done(first)) = run.events.get(d) else {
                        unreachable!()
                    };
                    ensure!(o == first, "Done changed from {first:?} to {o:?}");
                }
                _ => {}
            }
        }
        match ev {
            Ev::Fed {
                fed,
                result,
                decided: d,
            } => {
                match result {
                    Ok(()) => {
                        clock = fed.at;
                        if fed.what != What::Timeout {
                            s.answers.push((
                                e,
                                fed.instance,
                                fed.request,
                                fed.what.clone(),
                                fed.at,
                            ));
                        }
                    }
                    Err(Error::TimeWentBackwards { .. }) if !decided => {
                        s.regression.get_or_insert(e);
                    }
                    Err(_) => {}
                }
                if *d && !decided {
                    decided = true;
                    s.decision = Some(e);
                }
                if decided {
                    ensure!(*d, "outcome() went back to None at event {e}");
                }
            }
            Ev::Cancel {
                now,
                result,
                decided: d,
            } => {
                match result {
                    Ok(()) => {
                        clock = *now;
                        if !decided {
                            s.cancel.get_or_insert(e);
                            s.cancels.push(e);
                        }
                    }
                    Err(Error::TimeWentBackwards { .. }) if !decided => {
                        s.regression.get_or_insert(e);
                    }
                    Err(_) => {}
                }
                if *d && !decided {
                    decided = true;
                    s.decision = Some(e);
                }
            }
            Ev::Done(_) => {
                if !decided {
                    decided = true;
                    s.decision = Some(e);
                }
                s.first_done.get_or_insert(e);
            }
            Ev::Sent { .. } | Ev::Wait { .. } => {}
        }
        s.clocks.push(clock);
    }
    ensure!(s.first_done.is_some(), "the run never polled Done");
    Ok(s)
}

impl Scan {
    /// The first accepted answer to (instance, request) fed after event `after`.
    fn first_answer(
        &self,
        instance: usize,
        request: RequestId,
        after: usize,
    ) -> Option<&(usize, usize, RequestId, What, Instant)> {
        self.answers
            .iter()
            .find(|a| a.0 > after && a.1 == instance && a.2 == request)
    }

    fn before(&self, e: usize, other: Option<usize>) -> bool {
        other.is_some_and(|o| o < e)
    }
}

fn is_yes(what: &What, kind: CommandKind, form: CommandForm) -> bool {
    match (what, kind, form) {
        (What::Reply(Raw::Ok), CommandKind::Acquire, CommandForm::Set) => true,
        (What::Reply(Raw::Int(1)), CommandKind::Acquire | CommandKind::Extend, f) => {
            f != CommandForm::Set
        }
        (What::Reply(Raw::Int(n)), CommandKind::Release, _) => *n > 0,
        _ => false,
    }
}

/// One acquire attempt as seen from outside: its value and where its first command went out.
#[derive(Debug)]
struct Attempt {
    value: Token,
    first_event: usize,
    first_clock: Instant,
}

/// Checks an acquire run.
pub(crate) fn check_acquire(
    x: &Expect,
    resources: &Resources,
    run: &Run<AcquireOutcome>,
) -> Result<(), String> {
    let s = scan(run)?;
    let single = resources.len() == 1;
    let mut attempts: Vec<Attempt> = Vec::new();
    // (event, sent, attempt index)
    let mut acquires: Vec<(usize, Sent, usize)> = Vec::new();
    // (event, instance, value)
    let mut releases: Vec<(usize, usize, Token)> = Vec::new();
    let decision = s.decision.unwrap_or(usize::MAX);

    for (e, ev) in run.events.iter().enumerate() {
        let Ev::Sent { clock, sent } = ev else {
            continue;
        };
        ensure!(
            sent.resources == *resources,
            "command for {:?}, acquiring {resources:?}",
            sent.resources
        );
        ensure!(sent.instance < x.n, "command to instance {}", sent.instance);
        match sent.kind {
            CommandKind::Acquire => {
                ensure!(
                    e < decision,
                    "acquire command at event {e}, after the decision"
                );
                ensure!(
                    !s.before(e, s.regression),
                    "acquire command at event {e} after a clock regression"
                );
                ensure!(sent.ttl_ms == x.ttl, "acquire with ttl {}", sent.ttl_ms);
                let form_ok = if single {
                    sent.form == CommandForm::Set
                } else {
                    sent.form != CommandForm::Set
                };
                ensure!(form_ok, "{:?} for {} keys", sent.form, resources.len());
                if attempts.last().map(|a| a.value) != Some(sent.value) {
                    ensure!(
                        !attempts.iter().any(|a| a.value == sent.value),
                        "value {} of an earlier attempt reused at event {e}",
                        sent.value
                    );
                    attempts.push(Attempt {
                        value: sent.value,
                        first_event: e,
                        first_clock: *clock,
                    });
                }
                acquires.push((e, sent.clone(), attempts.len() - 1));
            }
            CommandKind::Release => {
                ensure!(
                    attempts.iter().any(|a| a.value == sent.value),
                    "release at event {e} of value {} that no acquire command carried",
                    sent.value
                );
                releases.push((e, sent.instance, sent.value));
            }
            CommandKind::Extend => return Err(format!("acquire emitted an extend at event {e}")),
        }
    }

    let outcome = run.outcome.as_ref().ok_or("no outcome")?;
    let reported = outcome.attempts() as usize;

    // Bounded load.
    let budget = x.retry_count as usize + 1;
    ensure!(
        reported <= budget,
        "{reported} attempts for {} retries",
        x.retry_count
    );
    ensure!(attempts.len() <= budget, "{} attempts seen", attempts.len());
    ensure!(
        reported == attempts.len() || reported == attempts.len() + 1,
        "outcome reports {reported} attempts, {} seen",
        attempts.len()
    );
    let first_is_attempt_one = reported == attempts.len();
    if !first_is_attempt_one {
        // Attempt 1 ended before any of its commands was drained: only a deadline fed before
        // the drain (or an answer to an id never handed out) can do that.
        let first = attempts.first().map_or(run.events.len(), |a| a.first_event);
        let dl1 = run.start.saturating_add(
            x.timeout
                .min(x.ttl.saturating_sub(x.drift).saturating_sub(x.min_validity)),
        );
        let explained = s
            .clocks
            .get(first.saturating_sub(1))
            .is_some_and(|c| *c >= dl1)
            || s.answers.iter().any(|a| a.0 < first)
            || s.before(first, s.cancel)
            || s.before(first, s.regression);
        ensure!(explained, "attempt 1 ended without a command, unexplained");
    }
    let t1 = |a: usize| -> Instant {
        if a == 0 && first_is_attempt_one {
            run.start
        } else {
            attempts[a].first_clock
        }
    };
    let budget_ms = x.ttl.saturating_sub(x.drift).saturating_sub(x.min_validity);
    let deadline = |a: usize| t1(a).saturating_add(x.timeout.min(budget_ms));
    for a in 0..attempts.len() {
        // Bounded load: one command per instance per attempt, plus one resend per NOSCRIPT.
        for i in 0..x.n {
            let to_i: Vec<&(usize, Sent, usize)> = acquires
                .iter()
                .filter(|(_, s, k)| *k == a && s.instance == i)
                .collect();
            let noscripts = to_i
                .iter()
                .filter(|(e, sent, _)| {
                    s.first_answer(i, sent.request, *e)
                        .is_some_and(|ans| matches!(&ans.3, What::Reply(r) if r.is_noscript()))
                })
                .count();
            ensure!(
                to_i.len() <= 1 + noscripts,
                "attempt {}, instance {i}: {} commands with {noscripts} NOSCRIPT answers",
                a + 1,
                to_i.len()
            );
        }
        if a > 0 {
            ensure!(
                t1(a) >= t1(a - 1).saturating_add(x.delay - x.jitter),
                "attempt {} started at {:?}, {} ms after the previous one, below the minimum retry delay {}",
                a + 1,
                t1(a),
                t1(a).saturating_since(t1(a - 1)),
                x.delay - x.jitter
            );
        }
    }
    // The full script only to an instance that answered NOSCRIPT to the digest form before.
    for (e, sent, _) in &acquires {
        if sent.form == CommandForm::Eval {
            let cause = acquires.iter().any(|(e2, s2, _)| {
                s2.instance == sent.instance
                    && s2.form == CommandForm::EvalSha
                    && s.first_answer(s2.instance, s2.request, *e2)
                        .is_some_and(|ans| {
                            ans.0 < *e && matches!(&ans.3, What::Reply(r) if r.is_noscript())
                        })
            });
            ensure!(
                cause,
                "EVAL at event {e} to an instance that never answered NOSCRIPT"
            );
        }
    }

    match outcome {
        AcquireOutcome::Acquired {
            lease,
            decided_at,
            attempts: _,
            report: _,
        } => {
            ensure!(
                !s.before(decision.saturating_add(1), s.regression),
                "acquired although the clock went backwards first"
            );
            ensure!(
                !s.before(decision.saturating_add(1), s.cancel),
                "acquired although cancelled first"
            );
            ensure!(
                matches!(run.events.get(decision), Some(Ev::Fed { .. })),
                "acquired outside of an input (event {decision})"
            );
            let a = attempts
                .len()
                .checked_sub(1)
                .ok_or("acquired without sending a single command")?;
            let v = attempts[a].value;
            ensure!(*lease.value() == v, "lease value is not the last attempt's");
            ensure!(lease.resources() == resources, "lease resources");
            ensure!(lease.ttl_ms() == x.ttl, "lease ttl {}", lease.ttl_ms());
            let valid_until = t1(a).saturating_add(x.ttl - x.drift);
            ensure!(
                lease.valid_until() == valid_until,
                "valid_until {:?} != t1 {:?} + ttl {} - drift {}",
                lease.valid_until(),
                t1(a),
                x.ttl,
                x.drift
            );
            let td = s.clocks[decision];
            ensure!(
                *decided_at == td,
                "decided_at {decided_at:?}, decided at {td:?}"
            );
            ensure!(
                td.saturating_add(x.min_validity) < valid_until,
                "decided at {td:?} + min validity {} not below valid_until {valid_until:?}",
                x.min_validity
            );
            ensure!(lease.is_valid(td), "lease already expired at its decision");
            // Quorum evidence, counted here: instances whose command carrying the lease value got
            // a yes before its deadline and before the decision, and were never released.
            let mut yes: Vec<usize> = Vec::new();
            for (e, sent, k) in &acquires {
                if *k != a || *e > decision {
                    continue;
                }
                let Some(ans) = s.first_answer(sent.instance, sent.request, *e) else {
                    continue;
                };
                let released = releases
                    .iter()
                    .any(|(_, i, val)| *i == sent.instance && *val == v);
                if ans.0 <= decision
                    && ans.4 < deadline(a)
                    && is_yes(&ans.3, sent.kind, sent.form)
                    && !released
                    && !yes.contains(&sent.instance)
                {
                    yes.push(sent.instance);
                }
            }
            ensure!(
                yes.len() >= x.quorum,
                "acquired with evidence from {yes:?} only, quorum {}",
                x.quorum
            );
        }
        AcquireOutcome::Failed { reason, .. } => {
            let cancelled_after_regression = s
                .regression
                .is_some_and(|r| s.cancels.iter().any(|c| *c > r));
            if s.before(decision.saturating_add(1), s.regression) {
                let tolerated = !FIXED_CANCEL_AFTER_REGRESSION
                    && cancelled_after_regression
                    && *reason == AcquireFailure::Cancelled;
                ensure!(
                    *reason == AcquireFailure::ClockWentBackwards || tolerated,
                    "failed with {reason:?} after the clock went backwards, expected ClockWentBackwards"
                );
            } else if s.before(decision.saturating_add(1), s.cancel) {
                ensure!(
                    *reason == AcquireFailure::Cancelled,
                    "failed with {reason:?} after a cancel"
                );
            } else {
                ensure!(
                    matches!(
                        reason,
                        AcquireFailure::Contended
                            | AcquireFailure::NoQuorum
                            | AcquireFailure::ValidityExhausted
                    ),
                    "failed with {reason:?} without cancel or clock regression"
                );
            }
        }
    }

    // Cleanup completeness: every instance that may hold a failed attempt's value is released,
    // and before the next attempt begins.
    let won = outcome.lease().map(|l| *l.value());
    let first_done = s.first_done.unwrap_or(usize::MAX);
    for (a, att) in attempts.iter().enumerate() {
        if Some(att.value) == won {
            continue;
        }
        let next = attempts.get(a + 1).map_or(first_done, |n| n.first_event);
        for i in 0..x.n {
            let to_i: Vec<&(usize, Sent, usize)> = acquires
                .iter()
                .filter(|(_, s, k)| *k == a && s.instance == i)
                .collect();
            let Some(first) = to_i.first() else { continue };
            // Exempt: only the digest form went out, and `NOSCRIPT` (it never ran) came back in
            // time, before any clock regression.
            let never_ran = to_i.len() == 1
                && first.1.form == CommandForm::EvalSha
                && s.first_answer(i, first.1.request, first.0)
                    .is_some_and(|ans| {
                        matches!(&ans.3, What::Reply(r) if r.is_noscript())
                            && ans.4 < deadline(a)
                            && ans.0 < first_done
                            && !s.before(ans.0, s.regression)
                    });
            if never_ran {
                continue;
            }
            let released = releases
                .iter()
                .find(|(e, inst, v)| *inst == i && *v == att.value && *e > first.0);
            let Some((re, _, _)) = released else {
                return Err(format!(
                    "attempt {} (value {}) reached instance {i} but no release followed",
                    a + 1,
                    att.value
                ));
            };
            ensure!(
                *re < next,
                "release of attempt {} to instance {i} at event {re}, after the next attempt or Done at {next}",
                a + 1
            );
        }
    }

    // Ordering: a release of v to i only after every command carrying v to i was answered or
    // timed out (except once the clock went backwards).
    for (re, i, v) in &releases {
        if s.before(*re, s.regression) {
            continue;
        }
        for (e, sent, a) in &acquires {
            if sent.instance != *i || sent.value != *v {
                continue;
            }
            ensure!(
                e < re,
                "release of {v} to instance {i} at event {re} before its acquire at event {e}"
            );
            let answered = s
                .first_answer(*i, sent.request, *e)
                .is_some_and(|ans| ans.0 < *re);
            let timed_out = s.clocks[*re] >= deadline(*a);
            ensure!(
                answered || timed_out,
                "release of {v} to instance {i} at event {re} while its acquire (event {e}) was neither answered nor timed out (deadline {:?}, clock {:?})",
                deadline(*a),
                s.clocks[*re]
            );
        }
    }
    Ok(())
}

/// Checks an extend run of `lease`, started at the run's start.
pub(crate) fn check_extend(
    x: &Expect,
    lease: &Lease,
    run: &Run<ExtendOutcome>,
) -> Result<(), String> {
    let s = scan(run)?;
    let start = run.start;
    let decision = s.decision.unwrap_or(usize::MAX);
    let new_until = start.saturating_add(x.ttl - x.drift);
    let round_deadline = start.saturating_add(x.timeout).min(
        Instant::from_millis(new_until.as_millis().saturating_sub(x.min_validity))
            .min(lease.valid_until()),
    );
    let mut extends: Vec<(usize, Sent)> = Vec::new();
    for (e, ev) in run.events.iter().enumerate() {
        let Ev::Sent { sent, .. } = ev else { continue };
        ensure!(
            sent.kind == CommandKind::Extend,
            "extend emitted {:?}",
            sent.kind
        );
        ensure!(sent.value == *lease.value(), "extend of another value");
        ensure!(sent.resources == *lease.resources(), "extend of other keys");
        ensure!(sent.ttl_ms == x.ttl, "extend with ttl {}", sent.ttl_ms);
        ensure!(sent.form != CommandForm::Set, "extend as SET");
        ensure!(
            e < decision,
            "extend command at event {e} after the decision"
        );
        extends.push((e, sent.clone()));
    }
    for i in 0..x.n {
        let forms: Vec<CommandForm> = extends
            .iter()
            .filter(|(_, s)| s.instance == i)
            .map(|(_, s)| s.form)
            .collect();
        ensure!(
            forms.iter().filter(|f| **f == CommandForm::EvalSha).count() <= 1
                && forms.iter().filter(|f| **f == CommandForm::Eval).count() <= 1,
            "extend to instance {i}: {forms:?}"
        );
    }
    let outcome = run.outcome.as_ref().ok_or("no outcome")?;
    let out_lease = outcome.lease();
    ensure!(out_lease.value() == lease.value(), "value changed");
    ensure!(
        out_lease.resources() == lease.resources(),
        "resources changed"
    );
    if !lease.is_valid(start) {
        ensure!(
            extends.is_empty(),
            "an expired lease was extended (commands sent)"
        );
        ensure!(
            outcome.failure() == Some(ExtendFailure::Expired) && out_lease == lease,
            "extend of an expired lease ended {outcome:?}"
        );
        return Ok(());
    }
    match outcome {
        ExtendOutcome::Extended { lease: new, .. } => {
            ensure!(
                !s.before(decision.saturating_add(1), s.regression),
                "extended although the clock went backwards first"
            );
            ensure!(
                matches!(run.events.get(decision), Some(Ev::Fed { .. })),
                "extended outside an input"
            );
            let td = s.clocks[decision];
            ensure!(
                lease.is_valid(td),
                "extended at {td:?}, after the old lease expired at {:?} (resurrection)",
                lease.valid_until()
            );
            ensure!(
                new.valid_until() == new_until,
                "extended valid_until {:?} != start {start:?} + ttl {} - drift {}",
                new.valid_until(),
                x.ttl,
                x.drift
            );
            ensure!(new.ttl_ms() == x.ttl, "extended lease ttl {}", new.ttl_ms());
            ensure!(
                td.saturating_add(x.min_validity) < new_until,
                "extended at {td:?} without min validity {} before {new_until:?}",
                x.min_validity
            );
            let mut yes: Vec<usize> = Vec::new();
            for (e, sent) in &extends {
                if let Some(ans) = s.first_answer(sent.instance, sent.request, *e) {
                    if ans.0 <= decision
                        && ans.4 < round_deadline
                        && is_yes(&ans.3, sent.kind, sent.form)
                        && !yes.contains(&sent.instance)
                    {
                        yes.push(sent.instance);
                    }
                }
            }
            ensure!(
                yes.len() >= x.quorum,
                "extended with evidence from {yes:?} only, quorum {}",
                x.quorum
            );
        }
        ExtendOutcome::Failed {
            reason, lease: l, ..
        } => {
            ensure!(
                *reason != ExtendFailure::Expired,
                "Expired for a lease valid at the start"
            );
            if s.before(decision.saturating_add(1), s.regression) {
                ensure!(
                    *reason == ExtendFailure::ClockWentBackwards,
                    "failed with {reason:?} after the clock went backwards"
                );
            }
            let bound = lease.valid_until().min(new_until);
            ensure!(
                l.valid_until() <= bound,
                "failed extend left valid_until {:?} above min(old {:?}, start + ttl - drift {new_until:?})",
                l.valid_until(),
                lease.valid_until()
            );
        }
    }
    Ok(())
}

/// The state of one instance in the independent release model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Unsent,
    InFlight(RequestId, CommandForm),
    AwaitResend,
    Yes,
    Held,
    No,
}

/// Checks a release run of `lease`, started at the run's start, against a model of the round.
pub(crate) fn check_release(
    x: &Expect,
    lease: &Lease,
    run: &Run<ReleaseOutcome>,
) -> Result<(), String> {
    let s = scan(run)?;
    let deadline = run.start.saturating_add(x.timeout);
    let mut slots = vec![Slot::Unsent; x.n];
    let mut digests = vec![0usize; x.n];
    let mut fulls = vec![0usize; x.n];
    let mut model_done = false;
    let mut model_counts: Option<(usize, usize)> = None;
    let mut first_input: Option<usize> = None;
    let settled = |sl: &Slot| matches!(sl, Slot::Yes | Slot::Held | Slot::No);
    for (e, ev) in run.events.iter().enumerate() {
        match ev {
            Ev::Sent { sent, .. } => {
                ensure!(
                    sent.kind == CommandKind::Release,
                    "release emitted {:?}",
                    sent.kind
                );
                ensure!(sent.value == *lease.value(), "release of another value");
                ensure!(
                    sent.resources == *lease.resources(),
                    "release of other keys"
                );
                ensure!(
                    !model_done,
                    "release command at event {e} after the decision"
                );
                let i = sent.instance;
                ensure!(i < x.n, "release to instance {i}");
                match (slots[i], sent.form) {
                    (Slot::Unsent, CommandForm::EvalSha) => digests[i] += 1,
                    (Slot::AwaitResend, CommandForm::Eval) => fulls[i] += 1,
                    (slot, form) => {
                        return Err(format!(
                            "release {form:?} to instance {i} at event {e} in state {slot:?}"
                        ))
                    }
                }
                slots[i] = Slot::InFlight(sent.request, sent.form);
            }
            Ev::Fed {
                fed,
                result,
                decided,
            } => {
                first_input.get_or_insert(e);
                if !model_done {
                    match result {
                        Err(Error::TimeWentBackwards { .. }) => model_done = true,
                        Err(_) => {}
                        Ok(()) => {
                            // Deadlines first, then the answer.
                            if fed.at >= deadline {
                                for sl in slots.iter_mut().filter(|sl| !settled(sl)) {
                                    *sl = Slot::No;
                                }
                            }
                            if fed.what != What::Timeout {
                                if let Some(Slot::InFlight(req, form)) = slots.get(fed.instance) {
                                    if *req == fed.request {
                                        let next = match &fed.what {
                                            What::Reply(r)
                                                if r.is_noscript()
                                                    && *form == CommandForm::EvalSha =>
                                            {
                                                Slot::AwaitResend
                                            }
                                            What::Reply(Raw::Int(n)) if *n > 0 => Slot::Yes,
                                            What::Reply(Raw::Int(0)) => Slot::Held,
                                            _ => Slot::No,
                                        };
                                        slots[fed.instance] = next;
                                    }
                                }
                            }
                            model_done = slots.iter().all(settled);
                        }
                    }
                    if model_done {
                        let yes = slots.iter().filter(|sl| **sl == Slot::Yes).count();
                        let held = slots.iter().filter(|sl| **sl == Slot::Held).count();
                        model_counts = Some((yes, held));
                    }
                }
                ensure!(
                    *decided == model_done,
                    "after event {e} the release {} decided, the model says {} (slots {slots:?})",
                    if *decided { "is" } else { "is not" },
                    if model_done { "decided" } else { "not decided" }
                );
            }
            Ev::Cancel { .. } | Ev::Wait { .. } | Ev::Done(_) => {}
        }
    }
    let outcome = run.outcome.as_ref().ok_or("no outcome")?;
    let (yes, held) = model_counts.ok_or("release done but the model never decided")?;
    ensure!(
        outcome.confirmed == (yes + held >= x.quorum),
        "confirmed = {} with {yes} deleted + {held} not ours, quorum {}",
        outcome.confirmed,
        x.quorum
    );
    ensure!(
        outcome.deleted == yes,
        "deleted {} != {yes}",
        outcome.deleted
    );
    for (i, sl) in slots.iter().enumerate() {
        let st = outcome.report.get(i);
        match sl {
            Slot::Yes => ensure!(
                st == Some(InstanceStatus::Yes),
                "instance {i}: {st:?}, deleted"
            ),
            Slot::Held => ensure!(
                st == Some(InstanceStatus::Held),
                "instance {i}: {st:?}, held"
            ),
            _ => ensure!(
                !matches!(st, Some(InstanceStatus::Yes | InstanceStatus::Held)),
                "instance {i}: {st:?}, but it did not answer"
            ),
        }
    }
    for i in 0..x.n {
        ensure!(
            digests[i] <= 1 && fulls[i] <= 1,
            "instance {i}: {} + {} releases",
            digests[i],
            fulls[i]
        );
    }
    // Exactly one release per instance when the host drained before feeding anything and the
    // clock never went backwards.
    let drained_first = match first_input {
        None => true,
        Some(f) => {
            run.events[..f]
                .iter()
                .filter(|e| matches!(e, Ev::Sent { .. }))
                .count()
                >= x.n
        }
    };
    if drained_first && s.regression.is_none() {
        for (i, d) in digests.iter().enumerate() {
            ensure!(*d == 1, "instance {i} got {d} releases");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Whole scenarios
// ---------------------------------------------------------------------------------------------

/// An acquire run and its follow-ups.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    pub(crate) params: Params,
    pub(crate) keys: Vec<Vec<u8>>,
    pub(crate) seed: u64,
    pub(crate) start: u64,
    pub(crate) acquire: Vec<Act>,
    pub(crate) acquire_finish: Finish,
    /// Extend TTL (None: the acquire's), gap after the acquire, script, finish.
    pub(crate) extend_ttl: Option<u64>,
    pub(crate) extend_gap: u64,
    pub(crate) extend: Vec<Act>,
    pub(crate) extend_finish: Finish,
    pub(crate) release_gap: u64,
    pub(crate) release: Vec<Act>,
    pub(crate) release_finish: Finish,
}

/// Resources from generated keys: duplicates and empties dropped, capacities respected.
pub(crate) fn resources_of(keys: &[Vec<u8>]) -> Resources {
    let mut r = Resources::new();
    for k in keys {
        let _ = r.push(k);
    }
    if r.is_empty() {
        let _ = r.push(b"lock");
    }
    r
}

/// What a scenario produced, for statistics.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Summary {
    pub(crate) acquired: bool,
    pub(crate) extended: Option<bool>,
    pub(crate) confirmed: Option<bool>,
    pub(crate) attempts: u32,
}

/// Runs acquire; on a lease, extend then release it. Checks everything.
pub(crate) fn run_scenario(sc: &Scenario) -> Result<Summary, String> {
    let Some((params, config)) = sc.params.fixed() else {
        return Ok(Summary::default());
    };
    let x = params.expect(&config);
    check_config(&x, &config)?;
    let resources = resources_of(&sc.keys);
    let start = Instant::from_millis(sc.start);
    let mut acq = Acquire::new(
        config,
        resources.clone(),
        ChaCha20Rng::seed_from_u64(sc.seed),
        start,
    )
    .map_err(|e| format!("Acquire::new: {e:?}"))?;
    let run = Runner::new(&mut acq, x.n, start).run(&sc.acquire, sc.acquire_finish)?;
    check_acquire(&x, &resources, &run).map_err(|e| format!("acquire: {e}\n{}", run.dump()))?;
    let mut summary = Summary {
        attempts: run.outcome.as_ref().map_or(0, AcquireOutcome::attempts),
        ..Summary::default()
    };
    let Some(lease) = run.outcome.as_ref().and_then(|o| o.lease().cloned()) else {
        return Ok(summary);
    };
    summary.acquired = true;

    let ext_config = match sc.extend_ttl {
        Some(ttl) => match config.with_ttl(Duration::from_millis(ttl)) {
            Ok(c) => c,
            Err(_) => config,
        },
        None => config,
    };
    let xe = params.expect(&ext_config);
    let at = run.clock.saturating_add(sc.extend_gap);
    let mut ext = Extend::new(ext_config, &lease, at).map_err(|e| format!("Extend::new: {e:?}"))?;
    let erun = Runner::new(&mut ext, x.n, at).run(&sc.extend, sc.extend_finish)?;
    check_extend(&xe, &lease, &erun).map_err(|e| format!("extend: {e}\n{}", erun.dump()))?;
    let outcome = erun.outcome.as_ref().ok_or("extend without outcome")?;
    summary.extended = Some(outcome.failure().is_none());

    let lease = outcome.lease().clone();

    let at = erun.clock.saturating_add(sc.release_gap);
    let mut rel = Release::new(config, &lease, at).map_err(|e| format!("Release::new: {e:?}"))?;
    let rrun = Runner::new(&mut rel, x.n, at).run(&sc.release, sc.release_finish)?;
    check_release(&x, &lease, &rrun).map_err(|e| format!("release: {e}\n{}", rrun.dump()))?;
    summary.confirmed = rrun.outcome.map(|o| o.confirmed);
    Ok(summary)
}

/// Runs an extend of a lease made up here (valid until `start + offset`, possibly expired).
pub(crate) fn run_extend(
    params: Params,
    keys: &[Vec<u8>],
    value: [u8; 16],
    start: u64,
    valid_offset: i64,
    acts: &[Act],
    finish: Finish,
) -> Result<Option<ExtendOutcome>, String> {
    let Some((params, config)) = params.fixed() else {
        return Ok(None);
    };
    let x = params.expect(&config);
    let until = if valid_offset >= 0 {
        start.saturating_add(valid_offset as u64)
    } else {
        start.saturating_sub(valid_offset.unsigned_abs())
    };
    let lease = Lease::new(
        resources_of(keys),
        Token::from_bytes(value),
        x.ttl,
        Instant::from_millis(until),
    );
    let at = Instant::from_millis(start);
    let mut ext = Extend::new(config, &lease, at).map_err(|e| format!("Extend::new: {e:?}"))?;
    let run = Runner::new(&mut ext, x.n, at).run(acts, finish)?;
    check_extend(&x, &lease, &run).map_err(|e| format!("extend: {e}\n{}", run.dump()))?;
    Ok(run.outcome)
}

/// Runs a release of a lease made up here.
pub(crate) fn run_release(
    params: Params,
    keys: &[Vec<u8>],
    value: [u8; 16],
    start: u64,
    acts: &[Act],
    finish: Finish,
) -> Result<Option<ReleaseOutcome>, String> {
    let Some((params, config)) = params.fixed() else {
        return Ok(None);
    };
    let x = params.expect(&config);
    let at = Instant::from_millis(start);
    let lease = Lease::new(resources_of(keys), Token::from_bytes(value), x.ttl, at);
    let mut rel = Release::new(config, &lease, at).map_err(|e| format!("Release::new: {e:?}"))?;
    let run = Runner::new(&mut rel, x.n, at).run(acts, finish)?;
    check_release(&x, &lease, &run).map_err(|e| format!("release: {e}\n{}", run.dump()))?;
    Ok(run.outcome)
}

/// Walks every element of every aggregate of a parsed frame (the fuzz target and the RESP
/// properties use it); returns the number of frames visited.
pub(crate) fn walk(frame: &Frame<'_>, depth: usize) -> Result<usize, String> {
    ensure!(depth <= resp::MAX_DEPTH + 2, "frame nested {depth} deep");
    match frame {
        Frame::Array(a) | Frame::Map(a) | Frame::Set(a) | Frame::Push(a) => {
            let mut visited = 1;
            let mut count = 0;
            for item in a.iter() {
                visited += walk(&item, depth + 1)?;
                count += 1;
            }
            ensure!(
                count == a.len(),
                "aggregate of len {} yielded {count}",
                a.len()
            );
            ensure!(a.is_empty() == (count == 0), "is_empty disagrees");
            let _ = format!("{a:?}");
            Ok(visited)
        }
        _ => Ok(1),
    }
}
