//! Property tests of the three machines and of the RESP code, over random configurations and
//! random input sequences.
//!
//! The generator mostly produces realistic sequences (answers to commands the machine actually
//! emitted: OK / nil / integers / errors including `NOSCRIPT`, transport errors, timeouts, time
//! moving forward in random gaps or exactly to `Wait` deadlines) and sometimes hostile ones
//! (unknown instances and request ids, duplicate answers, answers to releases, time going
//! backwards, answers to ids not handed out yet, garbage replies, cancels, huge times).
//!
//! The invariants are checked in `properties/model.rs` (shared with the `machine_inputs` fuzz
//! target) against state the test tracks itself, never against the machine's own report:
//!
//! * no panic, every call returns, every run reaches `Done` when the host feeds the `Wait`
//!   deadlines, and `Done` is terminal with an equal outcome whatever is fed afterwards;
//! * `handle_input` returns exactly `UnknownInstance` / `TimeWentBackwards { previous, now }` /
//!   `Ok` as documented;
//! * quorum evidence for every lease and every extension;
//! * `valid_until == t1 + ttl - drift`, `decided_at + min_validity < valid_until`;
//! * cleanup completeness and the release-after-answer ordering rule;
//! * fresh 32-hex values per attempt, bounded attempts and commands, retry spacing;
//! * clock regression fails closed; extend never resurrects and never lengthens on failure;
//! * release `confirmed` iff deleted + not-ours reach the quorum, one command per instance;
//! * every emitted command's argv and RESP encoding.
//!
//! `PROPTEST_CASES` overrides the number of cases of every property.

#[path = "properties/model.rs"]
mod model;

use std::time::Duration;

use model::{Act, Finish, Params, Raw, Scenario, Vote};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use redlock_core::resp::{self, Frame};
use redlock_core::{
    Acquire, AcquireFailure, AcquireOutcome, Command, CommandForm, CommandKind, Config, Extend,
    ExtendFailure, Input, Instant, Lease, Output, Reply, RequestId, Resources, Token,
};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(default_cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases(default_cases),
        // Failures are turned into explicit regression tests below instead.
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn params() -> impl Strategy<Value = Params> {
    let ttl = prop_oneof![
        2 => 3u64..=200,
        5 => 200u64..=5_000,
        2 => 5_000u64..=60_000,
        1 => Just(u64::MAX / 4),
    ];
    let ppm = prop_oneof![3 => Just(10_000u32), 1 => 0u32..=50_000];
    let pad = prop_oneof![3 => Just(2u64), 1 => 0u64..=5];
    let timeout = prop_oneof![3 => Just(None), 1 => (1u64..=100).prop_map(Some)];
    let retry = (
        0u32..=4,
        prop_oneof![1 => Just(0u64), 4 => 1u64..=400],
        0u64..=100,
    );
    let min_validity = prop_oneof![2 => Just(0u64), 1 => 0u64..=100];
    let deadline = prop_oneof![4 => Just(None), 1 => (0u64..=2_000).prop_map(Some)];
    (
        1usize..=7,
        ttl,
        ppm,
        pad,
        timeout,
        retry,
        min_validity,
        deadline,
    )
        .prop_map(
            |(n, ttl, ppm, pad, timeout_pct, (retries, delay, jitter_pct), min_pct, deadline)| {
                Params {
                    n,
                    ttl_ms: ttl,
                    drift_ppm: ppm,
                    drift_pad_ms: pad,
                    // Percent of the TTL.
                    timeout_ms: timeout_pct.map(|p| (ttl.saturating_mul(p) / 100).max(1)),
                    retry_count: retries,
                    retry_delay_ms: delay,
                    retry_jitter_ms: delay * jitter_pct / 100,
                    min_validity_ms: ttl.saturating_mul(min_pct) / 200,
                    acquire_deadline_ms: deadline,
                }
            },
        )
}

fn raw() -> impl Strategy<Value = Raw> {
    prop_oneof![
        Just(Raw::Ok),
        Just(Raw::Nil),
        (-2i64..=3).prop_map(Raw::Int),
        any::<i64>().prop_map(Raw::Int),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Raw::Err),
        Just(Raw::Err(b"NOSCRIPT".to_vec())),
        Just(Raw::Other),
    ]
}

fn vote() -> impl Strategy<Value = Vote> {
    prop_oneof![
        8 => Just(Vote::Yes),
        4 => Just(Vote::No),
        1 => any::<u8>().prop_map(Vote::Error),
        1 => Just(Vote::NoScript),
    ]
}

fn hostile_vote() -> impl Strategy<Value = Vote> {
    prop_oneof![3 => vote(), 1 => raw().prop_map(Vote::Raw)]
}

fn gap() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 0u64..=3,
        3 => 0u64..=30,
        1 => 0u64..=3_000,
    ]
}

fn hostile_gap() -> impl Strategy<Value = u64> {
    prop_oneof![
        20 => gap(),
        1 => Just(u64::MAX / 2),
        1 => Just(u64::MAX),
    ]
}

fn realistic_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        4 => Just(Act::Drain),
        12 => (any::<u16>(), vote(), gap()).prop_map(|(pick, vote, gap)| Act::Answer { pick, vote, gap }),
        1 => (any::<u16>(), gap()).prop_map(|(pick, gap)| Act::Transport { pick, gap }),
        1 => Just(Act::ToDeadline),
        1 => gap().prop_map(|gap| Act::Tick { gap }),
    ]
}

fn hostile_act() -> impl Strategy<Value = Act> {
    prop_oneof![
        10 => realistic_act(),
        2 => Just(Act::PollOnce),
        2 => (any::<u16>(), hostile_vote(), hostile_gap())
            .prop_map(|(pick, vote, gap)| Act::Answer { pick, vote, gap }),
        2 => (any::<u16>(), hostile_vote(), gap())
            .prop_map(|(pick, vote, gap)| Act::Reanswer { pick, vote, gap }),
        1 => (0u8..4, hostile_vote(), gap())
            .prop_map(|(extra, vote, gap)| Act::BadInstance { extra, vote, gap }),
        1 => (any::<u8>(), any::<u32>(), hostile_vote(), gap())
            .prop_map(|(instance, id, vote, gap)| Act::BadRequest { instance, id, vote, gap }),
        1 => (any::<u64>(), any::<u8>()).prop_map(|(by, how)| Act::Back { by: by % 200, how }),
        1 => gap().prop_map(|gap| Act::Cancel { gap }),
        1 => hostile_gap().prop_map(|gap| Act::Tick { gap }),
    ]
}

/// Answers to request ids the machine has not handed out yet: the "reply before the send was
/// drained" case with a guessed id. Kept out of the main generator while the core counts such
/// answers (see `fixed_bug_answer_to_an_undrained_command_counts`); fixed in the core.
const GUESSED_IDS_IN_MAIN_GENERATOR: bool = true;

fn guess_act() -> impl Strategy<Value = Act> {
    (any::<u8>(), 0u8..8, vote(), gap()).prop_map(|(instance, ahead, vote, gap)| Act::Guess {
        instance,
        ahead,
        vote,
        gap,
    })
}

fn acts() -> impl Strategy<Value = Vec<Act>> {
    let hostile = if GUESSED_IDS_IN_MAIN_GENERATOR {
        prop_oneof![30 => hostile_act(), 1 => guess_act()].boxed()
    } else {
        hostile_act().boxed()
    };
    prop_oneof![
        3 => prop::collection::vec(realistic_act(), 0..40).prop_map(|mut v| {
            v.insert(0, Act::Drain);
            v
        }),
        1 => prop::collection::vec(hostile, 0..60),
    ]
}

fn finish() -> impl Strategy<Value = Finish> {
    prop_oneof![
        2 => Just(Finish::TimeOut),
        3 => Just(Finish::AllYes),
        1 => Just(Finish::AllNo),
    ]
}

fn keys() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop_oneof![
        3 => Just(vec![b"orders:42".to_vec()]),
        1 => prop::collection::vec(prop::collection::vec(any::<u8>(), 1..12), 1..4),
    ]
}

fn start() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..=10_000, 1 => Just(u64::MAX - 1_000), 1 => any::<u64>()]
}

prop_compose! {
    fn scenario()(
        params in params(),
        keys in keys(),
        seed in any::<u64>(),
        start in start(),
        acquire in acts(),
        acquire_finish in finish(),
        extend_ttl in prop::option::of(1u64..=20_000),
        extend_gap in gap(),
        extend in acts(),
        extend_finish in finish(),
        release_gap in gap(),
        release in acts(),
        release_finish in finish(),
    ) -> Scenario {
        Scenario {
            params, keys, seed, start, acquire, acquire_finish, extend_ttl, extend_gap, extend,
            extend_finish, release_gap, release, release_finish,
        }
    }
}

fn ok<T>(r: Result<T, String>) -> Result<T, TestCaseError> {
    r.map_err(TestCaseError::fail)
}

// ---------------------------------------------------------------------------------------------
// Machine properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(512))]

    /// Acquire, then extend and release any lease it grants: every invariant of the model.
    #[test]
    fn acquire_extend_release_invariants(sc in scenario()) {
        ok(model::run_scenario(&sc))?;
    }

    /// Extend of a lease that may be valid, about to expire, or long expired.
    #[test]
    fn extend_invariants(
        params in params(),
        keys in keys(),
        value in any::<[u8; 16]>(),
        start in start(),
        offset in prop_oneof![-20_000i64..=0, 0i64..=20_000, Just(0i64), Just(1i64)],
        acts in acts(),
        finish in finish(),
    ) {
        ok(model::run_extend(params, &keys, value, start, offset, &acts, finish))?;
    }

    /// Release: one command per instance, `confirmed` iff deleted + not-ours reach the quorum.
    #[test]
    fn release_invariants(
        params in params(),
        keys in keys(),
        value in any::<[u8; 16]>(),
        start in start(),
        acts in acts(),
        finish in finish(),
    ) {
        ok(model::run_release(params, &keys, value, start, &acts, finish))?;
    }
}

/// The retry policy, measured with a host that answers every attempt with a failing quorum at
/// one instant and then feeds time exactly at each `Wait` deadline.
fn retry_timing(params: Params, seed: u64, fail_with: u8, gaps: &[u64]) -> Result<(), String> {
    let Some((params, config)) = params.fixed() else {
        return Ok(());
    };
    let x = params.expect(&config);
    let mut acq = Acquire::new(
        config,
        Resources::single(b"k").unwrap(),
        ChaCha20Rng::seed_from_u64(seed),
        Instant::ZERO,
    )
    .unwrap();
    let mut now = Instant::ZERO;
    let mut attempts = 0usize;
    let mut decided_at: Option<Instant> = None;
    for round in 0..64 {
        let mut sent = Vec::new();
        let mut done = None;
        let mut until = None;
        loop {
            match acq.poll_output() {
                Output::Send(tx) if tx.command.kind() == CommandKind::Acquire => {
                    sent.push((tx.instance, tx.request));
                }
                Output::Send(_) => {}
                Output::Wait { until: u } => {
                    until = Some(u);
                    break;
                }
                Output::Done(o) => {
                    done = Some(o.clone());
                    break;
                }
            }
        }
        if !sent.is_empty() {
            attempts += 1;
            if let Some(d) = decided_at.take() {
                let waited = now.saturating_since(d);
                if waited < x.delay - x.jitter || waited > x.delay + x.jitter {
                    return Err(format!(
                        "attempt {attempts} started {waited} ms after the failure, outside [{}, {}]",
                        x.delay - x.jitter,
                        x.delay + x.jitter
                    ));
                }
                if let Some(dl) = x.acquire_deadline {
                    if now.as_millis() >= dl {
                        return Err(format!(
                            "attempt {attempts} started at {now:?}, past the deadline {dl}"
                        ));
                    }
                }
            }
            // Fail the attempt: every instance answers no (or an error) at one instant, well
            // within the instance timeout.
            let gap = gaps.get(round).copied().unwrap_or(0) % x.timeout.max(1);
            now = now.saturating_add(gap);
            for (instance, request) in sent {
                let reply = match fail_with % 3 {
                    0 => Reply::Nil,
                    1 => Reply::Error(b"READONLY replica"),
                    _ => Reply::Other,
                };
                acq.handle_input(Input::Reply {
                    instance,
                    request,
                    reply,
                    at: now,
                })
                .map_err(|e| format!("{e:?}"))?;
            }
            decided_at = Some(now);
            continue;
        }
        if let Some(o) = done {
            if attempts > x.retry_count as usize + 1 {
                return Err(format!("{attempts} attempts for {} retries", x.retry_count));
            }
            if o.lease().is_some() {
                return Err("acquired although every instance said no".into());
            }
            let d = decided_at.unwrap_or(now);
            match x.acquire_deadline {
                None => {
                    if attempts != x.retry_count as usize + 1 {
                        return Err(format!(
                            "gave up after {attempts} of {} attempts",
                            x.retry_count + 1
                        ));
                    }
                }
                Some(dl) => {
                    // It may stop early only if the next attempt could not start before the
                    // deadline.
                    if attempts < x.retry_count as usize + 1
                        && d.saturating_add(x.delay + x.jitter).as_millis() < dl
                    {
                        return Err(format!(
                            "gave up after {attempts} attempts at {d:?} with the deadline {dl} not reachable"
                        ));
                    }
                }
            }
            if o.attempts() as usize != attempts {
                return Err(format!(
                    "reported {} attempts, saw {attempts}",
                    o.attempts()
                ));
            }
            return Ok(());
        }
        let until = until.unwrap();
        if until <= now {
            return Err(format!("Wait until {until:?} at {now:?}"));
        }
        now = until;
        acq.handle_input(Input::Timeout { now })
            .map_err(|e| format!("{e:?}"))?;
    }
    Err("no Done after 64 rounds".into())
}

proptest! {
    #![proptest_config(config(256))]

    /// Retry waits lie in `[delay - jitter, delay + jitter]`, measured from the failing decision
    /// to the next attempt's first command; attempts ≤ retries + 1; the overall deadline holds.
    #[test]
    fn retry_waits_within_jitter(
        params in params(),
        seed in any::<u64>(),
        fail_with in any::<u8>(),
        gaps in prop::collection::vec(0u64..50, 8),
    ) {
        ok(retry_timing(params, seed, fail_with, &gaps))?;
    }

    /// A clock reading below an earlier one, at any point of an acquire, fails closed.
    #[test]
    fn clock_regression_fails_closed(
        params in params(),
        seed in any::<u64>(),
        prefix in prop::collection::vec(realistic_act(), 0..20),
        by in 0u64..100,
        how in 0u8..3,
    ) {
        let mut acts = vec![Act::Drain];
        acts.extend(prefix);
        acts.push(Act::Tick { gap: 1 });
        acts.push(Act::Back { by, how });
        let sc = Scenario {
            params,
            keys: vec![b"k".to_vec()],
            seed,
            start: 1_000,
            acquire: acts,
            acquire_finish: Finish::AllYes,
            extend_ttl: None,
            extend_gap: 0,
            extend: vec![],
            extend_finish: Finish::TimeOut,
            release_gap: 0,
            release: vec![],
            release_finish: Finish::TimeOut,
        };
        ok(model::run_scenario(&sc))?;
    }

    /// Extend::new on a lease with valid_until <= now sends nothing and fails Expired.
    #[test]
    fn extend_never_resurrects(
        params in params(),
        value in any::<[u8; 16]>(),
        now in 0u64..1_000_000,
        expired_by in 0u64..100_000,
    ) {
        let Some((_, config)) = params.fixed() else { return Ok(()) };
        let until = Instant::from_millis(now.saturating_sub(expired_by));
        let lease = Lease::new(Resources::single(b"k").unwrap(), Token::from_bytes(value), 100, until);
        let mut ext = Extend::new(config, &lease, Instant::from_millis(now)).unwrap();
        match ext.poll_output() {
            Output::Done(o) => {
                prop_assert_eq!(o.failure(), Some(ExtendFailure::Expired));
                prop_assert_eq!(o.lease(), &lease);
            }
            other => prop_assert!(false, "expired lease polled {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands and RESP
// ---------------------------------------------------------------------------------------------

/// An owned RESP frame, for generating valid encodings.
#[derive(Debug, Clone)]
enum F {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Integer(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Boolean(bool),
    Double(Vec<u8>),
    BigNumber(Vec<u8>),
    BlobError(Vec<u8>),
    Verbatim(Vec<u8>),
    Array(Vec<F>),
    Map(Vec<(F, F)>),
    Set(Vec<F>),
    Push(Vec<F>),
    /// An attribute before a frame: parsed as the frame.
    Attributed(Vec<(F, F)>, Box<F>),
}

impl F {
    fn encode(&self, out: &mut Vec<u8>) {
        fn line(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
            out.push(marker);
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        fn blob(out: &mut Vec<u8>, marker: u8, body: &[u8]) {
            line(out, marker, body.len().to_string().as_bytes());
            out.extend_from_slice(body);
            out.extend_from_slice(b"\r\n");
        }
        match self {
            F::Simple(s) => line(out, b'+', s),
            F::Error(s) => line(out, b'-', s),
            F::Integer(i) => line(out, b':', i.to_string().as_bytes()),
            F::Bulk(b) => blob(out, b'$', b),
            F::NullBulk => line(out, b'$', b"-1"),
            F::NullArray => line(out, b'*', b"-1"),
            F::Null => line(out, b'_', b""),
            F::Boolean(b) => line(out, b'#', if *b { b"t" } else { b"f" }),
            F::Double(s) => line(out, b',', s),
            F::BigNumber(s) => line(out, b'(', s),
            F::BlobError(b) => blob(out, b'!', b),
            F::Verbatim(b) => blob(out, b'=', b),
            F::Array(items) | F::Set(items) | F::Push(items) => {
                let marker = match self {
                    F::Array(_) => b'*',
                    F::Set(_) => b'~',
                    _ => b'>',
                };
                line(out, marker, items.len().to_string().as_bytes());
                for i in items {
                    i.encode(out);
                }
            }
            F::Map(pairs) => {
                line(out, b'%', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
            }
            F::Attributed(pairs, inner) => {
                line(out, b'|', pairs.len().to_string().as_bytes());
                for (k, v) in pairs {
                    k.encode(out);
                    v.encode(out);
                }
                inner.encode(out);
            }
        }
    }

    /// Whether a parsed frame is this one.
    fn matches(&self, frame: &Frame<'_>) -> bool {
        fn all(items: &[F], agg: &resp::Aggregate<'_>) -> bool {
            agg.len() == items.len() && items.iter().zip(agg.iter()).all(|(f, g)| f.matches(&g))
        }
        fn pairs(p: &[(F, F)], agg: &resp::Aggregate<'_>) -> bool {
            let flat: Vec<F> = p.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
            all(&flat, agg)
        }
        match (self, frame) {
            (F::Simple(a), Frame::Simple(b))
            | (F::Error(a), Frame::Error(b))
            | (F::Bulk(a), Frame::Bulk(b))
            | (F::Double(a), Frame::Double(b))
            | (F::BigNumber(a), Frame::BigNumber(b))
            | (F::BlobError(a), Frame::BlobError(b))
            | (F::Verbatim(a), Frame::Verbatim(b)) => a == b,
            (F::Integer(a), Frame::Integer(b)) => a == b,
            (F::NullBulk | F::NullArray | F::Null, Frame::Null) => true,
            (F::Boolean(a), Frame::Boolean(b)) => a == b,
            (F::Array(a), Frame::Array(g))
            | (F::Set(a), Frame::Set(g))
            | (F::Push(a), Frame::Push(g)) => all(a, g),
            (F::Map(p), Frame::Map(g)) => pairs(p, g),
            (F::Attributed(_, inner), f) => inner.matches(f),
            _ => false,
        }
    }
}

fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..12,
    )
}

fn frame() -> impl Strategy<Value = F> {
    let leaf = prop_oneof![
        line_bytes().prop_map(F::Simple),
        line_bytes().prop_map(F::Error),
        any::<i64>().prop_map(F::Integer),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(F::Bulk),
        Just(F::NullBulk),
        Just(F::NullArray),
        Just(F::Null),
        any::<bool>().prop_map(F::Boolean),
        line_bytes().prop_map(F::Double),
        line_bytes().prop_map(F::BigNumber),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(F::BlobError),
        prop::collection::vec(any::<u8>(), 0..12).prop_map(F::Verbatim),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(F::Array),
            prop::collection::vec((inner.clone(), inner.clone()), 0..3).prop_map(F::Map),
            prop::collection::vec(inner.clone(), 0..4).prop_map(F::Set),
            prop::collection::vec(inner.clone(), 0..4).prop_map(F::Push),
            (
                prop::collection::vec((inner.clone(), inner.clone()), 0..2),
                inner
            )
                .prop_map(|(p, f)| F::Attributed(p, Box::new(f))),
        ]
    })
}

fn command_parts() -> impl Strategy<Value = (Vec<Vec<u8>>, [u8; 16], u64, u8, bool)> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..40), 1..9),
        any::<[u8; 16]>(),
        prop_oneof![any::<u64>(), 0u64..100_000],
        0u8..3,
        any::<bool>(),
    )
}

proptest! {
    #![proptest_config(config(512))]

    /// `encode_resp` parses back into an array of bulk strings equal to `args()`, for every
    /// command kind and form; `resp_len` is exact; a short buffer is refused untouched.
    #[test]
    fn command_resp_round_trip((keys, value, ttl, kind, full) in command_parts()) {
        let resources = model::resources_of(&keys);
        let value = Token::from_bytes(value);
        let cmd = match kind {
            0 => Command::acquire(&resources, &value, ttl),
            1 => Command::extend(&resources, &value, ttl),
            _ => Command::release(&resources, &value),
        };
        let cmd = if full { cmd.with_full_script() } else { cmd };
        if kind == 0 && resources.len() == 1 {
            prop_assert_eq!(cmd.form(), CommandForm::Set);
        } else {
            prop_assert_eq!(cmd.form(), if full { CommandForm::Eval } else { CommandForm::EvalSha });
        }
        ok(model::check_command(&cmd))?;
    }

    /// `resp::parse` never panics on arbitrary bytes, never claims more bytes than it was given,
    /// and every aggregate it returns can be walked.
    #[test]
    fn resp_parse_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
        if let Ok(Some((frame, used))) = resp::parse(&bytes) {
            prop_assert!(used > 0 && used <= bytes.len());
            ok(model::walk(&frame, 0))?;
            let _ = Reply::from_frame(&frame);
        }
    }

    /// Valid frames parse back to themselves using exactly their bytes; every strict prefix is
    /// incomplete (`Ok(None)`); trailing bytes are left alone; one flipped byte never panics.
    #[test]
    fn resp_valid_frames_and_prefixes(
        f in frame(),
        trailing in prop::collection::vec(any::<u8>(), 0..8),
        flip in any::<(usize, u8)>(),
    ) {
        let mut buf = Vec::new();
        f.encode(&mut buf);
        let (frame, used) = resp::parse(&buf).unwrap().unwrap();
        prop_assert_eq!(used, buf.len());
        prop_assert!(f.matches(&frame), "{:?} parsed as {:?}", f, frame);
        ok(model::walk(&frame, 0))?;
        for cut in 0..buf.len() {
            prop_assert_eq!(resp::parse(&buf[..cut]), Ok(None), "prefix of {} bytes", cut);
        }
        let mut more = buf.clone();
        more.extend_from_slice(&trailing);
        let (again, used2) = resp::parse(&more).unwrap().unwrap();
        prop_assert_eq!(used2, buf.len());
        prop_assert!(f.matches(&again));
        let mut bad = buf.clone();
        let k = flip.0 % bad.len();
        bad[k] ^= flip.1 | 1;
        if let Ok(Some((g, u))) = resp::parse(&bad) {
            prop_assert!(u <= bad.len());
            ok(model::walk(&g, 0))?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deterministic checks of the model itself and regressions
// ---------------------------------------------------------------------------------------------

fn base_params(n: usize) -> Params {
    Params {
        n,
        ttl_ms: 10_000,
        drift_ppm: 10_000,
        drift_pad_ms: 2,
        timeout_ms: None,
        retry_count: 3,
        retry_delay_ms: 200,
        retry_jitter_ms: 100,
        min_validity_ms: 0,
        acquire_deadline_ms: None,
    }
}

fn simple_scenario(params: Params, acquire: Vec<Act>, finish: Finish) -> Scenario {
    Scenario {
        params,
        keys: vec![b"k".to_vec()],
        seed: 1,
        start: 1_000,
        acquire,
        acquire_finish: finish,
        extend_ttl: None,
        extend_gap: 5,
        extend: vec![Act::Drain],
        extend_finish: Finish::AllYes,
        release_gap: 5,
        release: vec![Act::Drain],
        release_finish: Finish::AllYes,
    }
}

/// The happy path goes through every stage and the model agrees.
#[test]
fn model_happy_path() {
    let sc = simple_scenario(base_params(5), vec![Act::Drain], Finish::AllYes);
    let s = model::run_scenario(&sc).unwrap();
    assert!(s.acquired);
    assert_eq!(s.extended, Some(true));
    assert_eq!(s.confirmed, Some(true));
    assert_eq!(s.attempts, 1);
}

/// Everything times out: every attempt is used, nothing is acquired, all checks pass.
#[test]
fn model_all_time_out() {
    let sc = simple_scenario(base_params(3), vec![Act::Drain], Finish::TimeOut);
    let s = model::run_scenario(&sc).unwrap();
    assert!(!s.acquired);
    assert_eq!(s.attempts, 4);
}

/// The model's evidence check is not vacuous: a lease forged from too few yeses is caught.
#[test]
fn model_rejects_missing_evidence() {
    let params = base_params(3);
    let (params, config) = params.fixed().unwrap();
    let x = params.expect(&config);
    let resources = Resources::single(b"k").unwrap();
    let start = Instant::from_millis(0);
    let mut acq = Acquire::new(
        config,
        resources.clone(),
        ChaCha20Rng::seed_from_u64(1),
        start,
    )
    .unwrap();
    let mut run = model::Runner::new(&mut acq, 3, start)
        .run(&[Act::Drain], Finish::AllYes)
        .unwrap();
    model::check_acquire(&x, &resources, &run).unwrap();
    // Drop one of the yes answers from the trace: the evidence no longer reaches the quorum.
    let k = run
        .events
        .iter()
        .position(|e| matches!(e, model::Ev::Fed { fed, .. } if matches!(fed.what, model::What::Reply(Raw::Ok))))
        .unwrap();
    run.events.remove(k);
    let err = model::check_acquire(&x, &resources, &run).unwrap_err();
    assert!(err.contains("evidence") || err.contains("decided"), "{err}");
}

/// Clock regression in the middle of an attempt: fails closed and releases what it sent.
#[test]
fn model_regression_mid_attempt() {
    let acts = vec![
        Act::Drain,
        Act::Answer {
            pick: 0,
            vote: Vote::Yes,
            gap: 3,
        },
        Act::Back { by: 1, how: 1 },
    ];
    let sc = simple_scenario(base_params(3), acts, Finish::AllYes);
    let s = model::run_scenario(&sc).unwrap();
    assert!(!s.acquired);
}

/// A NOSCRIPT answer to a multi-key acquire is followed by a full EVAL.
#[test]
fn model_noscript_resend() {
    let mut sc = simple_scenario(
        base_params(3),
        vec![
            Act::Drain,
            Act::Answer {
                pick: 0,
                vote: Vote::NoScript,
                gap: 1,
            },
            Act::Drain,
        ],
        Finish::AllYes,
    );
    sc.keys = vec![b"a".to_vec(), b"b".to_vec()];
    let s = model::run_scenario(&sc).unwrap();
    assert!(s.acquired);
}

/// Drift as documented: floor(ttl × factor) + pad, for a few factors.
#[test]
fn drift_follows_the_formula() {
    for (ttl, factor, pad, drift) in [
        (10_000u64, 0.01, 2u64, 102u64),
        (30_000, 0.01, 2, 302),
        (1_000, 0.0, 0, 0),
        (1_000, 0.05, 1, 51),
    ] {
        let c = Config::new(3, Duration::from_millis(ttl))
            .unwrap()
            .with_drift_factor(factor)
            .unwrap()
            .with_drift_pad(Duration::from_millis(pad))
            .unwrap();
        assert_eq!(c.drift_ms(), drift, "ttl {ttl} factor {factor} pad {pad}");
    }
}

/// A reply whose request id was never handed out by `poll_output` is counted as a vote: the
/// ids of one machine are sequential, so the id of a command still queued is the id of the last
/// one drained plus one. Here (N = 3, quorum 2) one SET is drained and answered, the second is
/// never handed out, yet its answer completes the quorum and the lease is granted on evidence
/// from a single instance.
///
/// Fails while `Round::on_answer` accepts answers for slots in the `Due` phase.
#[test]
fn fixed_bug_answer_to_an_undrained_command_counts() {
    let config = Config::new(3, Duration::from_millis(10_000)).unwrap();
    let mut acq = Acquire::new(
        config,
        Resources::single(b"k").unwrap(),
        ChaCha20Rng::seed_from_u64(1),
        Instant::from_millis(0),
    )
    .unwrap();
    // Only the first SET is handed to the host.
    let (instance, request) = match acq.poll_output() {
        Output::Send(tx) => (tx.instance, tx.request),
        other => panic!("{other:?}"),
    };
    let at = Instant::from_millis(1);
    acq.handle_input(Input::Reply {
        instance,
        request,
        reply: Reply::Ok,
        at,
    })
    .unwrap();
    // An answer for the next id, which the machine never emitted.
    let guessed = RequestId::from_u32(request.as_u32().wrapping_add(1));
    acq.handle_input(Input::Reply {
        instance: instance + 1,
        request: guessed,
        reply: Reply::Ok,
        at,
    })
    .unwrap();
    let outcome = match acq.poll_output() {
        Output::Done(o) => Some(o.clone()),
        _ => None,
    };
    assert!(
        !matches!(outcome, Some(AcquireOutcome::Acquired { .. })),
        "acquired with one command emitted: {outcome:?}"
    );
}

/// After a clock regression the acquire must end `ClockWentBackwards`; a `cancel` fed before
/// the outcome is polled replaces the reason with `Cancelled`.
#[test]
fn fixed_bug_cancel_after_regression_changes_the_reason() {
    let config = Config::new(3, Duration::from_millis(10_000)).unwrap();
    let mut acq = Acquire::new(
        config,
        Resources::single(b"k").unwrap(),
        ChaCha20Rng::seed_from_u64(1),
        Instant::from_millis(100),
    )
    .unwrap();
    while let Output::Send(_) = acq.poll_output() {}
    assert!(acq
        .handle_input(Input::Timeout {
            now: Instant::from_millis(50)
        })
        .is_err());
    acq.cancel(Instant::from_millis(100)).unwrap();
    let reason = loop {
        match acq.poll_output() {
            Output::Send(_) => {}
            Output::Done(o) => break o.failure(),
            Output::Wait { until } => acq.handle_input(Input::Timeout { now: until }).unwrap(),
        }
    };
    assert_eq!(reason, Some(AcquireFailure::ClockWentBackwards));
}

/// Every leading byte gives a frame or an error, never a panic.
#[test]
fn resp_every_first_byte() {
    for b in 0..=255u8 {
        let buf = [b, b'1', b'\r', b'\n', b'x', b'\r', b'\n'];
        if let Ok(Some((f, used))) = resp::parse(&buf) {
            assert!(used <= buf.len());
            model::walk(&f, 0).unwrap();
        }
    }
}

/// The generator is not vacuous: a deterministic sample of scenarios reaches every kind of
/// outcome in reasonable proportions.
#[test]
fn generator_reaches_every_outcome() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = scenario();
    let (mut total, mut acquired, mut failed, mut retried) = (0, 0, 0, 0);
    let (mut extended, mut not_extended, mut confirmed, mut unconfirmed) = (0, 0, 0, 0);
    for _ in 0..400 {
        let sc = strategy.new_tree(&mut runner).unwrap().current();
        if sc.params.fixed().is_none() {
            continue;
        }
        total += 1;
        let s = model::run_scenario(&sc).unwrap();
        if s.acquired {
            acquired += 1;
        } else {
            failed += 1;
        }
        if s.attempts > 1 {
            retried += 1;
        }
        match s.extended {
            Some(true) => extended += 1,
            Some(false) => not_extended += 1,
            None => {}
        }
        match s.confirmed {
            Some(true) => confirmed += 1,
            Some(false) => unconfirmed += 1,
            None => {}
        }
    }
    let stats = format!(
        "{total} scenarios: {acquired} acquired, {failed} failed, {retried} retried; \
         extend {extended} ok / {not_extended} failed; release {confirmed} confirmed / {unconfirmed} not"
    );
    println!("{stats}");
    for (what, count) in [
        ("acquired", acquired),
        ("failed", failed),
        ("retried", retried),
        ("extended", extended),
        ("not extended", not_extended),
        ("confirmed", confirmed),
        ("unconfirmed", unconfirmed),
    ] {
        assert!(count * 20 >= total, "only {count} {what}: {stats}");
    }
}

/// `cancel(now)` does not expire the instance deadlines it passes, so the next `poll_output`
/// returns `Wait { until }` with `until < now`. A host running the crate-doc drive loop
/// (`clock = until; handle_input(Timeout { now: clock })`) then feeds a time before the cancel:
/// `TimeWentBackwards`, and the acquire ends `ClockWentBackwards` instead of `Cancelled`.
#[test]
fn fixed_bug_wait_after_cancel_is_in_the_past() {
    let config = Config::new(1, Duration::from_millis(260)).unwrap(); // instance timeout 13 ms
    let mut acq = Acquire::new(
        config,
        Resources::single(b"k").unwrap(),
        ChaCha20Rng::seed_from_u64(0),
        Instant::from_millis(0),
    )
    .unwrap();
    assert!(matches!(acq.poll_output(), Output::Send(_)));
    acq.cancel(Instant::from_millis(14)).unwrap();
    let mut clock = 14;
    let outcome = loop {
        match acq.poll_output() {
            Output::Send(_) => {}
            Output::Wait { until } => {
                assert!(
                    until.as_millis() >= clock,
                    "Wait until {until:?} after cancel at {clock} ms"
                );
                clock = until.as_millis();
                acq.handle_input(Input::Timeout { now: until }).unwrap();
            }
            Output::Done(o) => break o.clone(),
        }
    };
    assert_eq!(outcome.failure(), Some(AcquireFailure::Cancelled));
}

/// With N = 16, two timed-out attempts leave 32 late records; if their late `OK`s arrive in one
/// batch (fed before the host drains), the 32 releases they owe fill the cleanup queue
/// (capacity 2 × MAX_INSTANCES), and the releases the next failing attempt owes are dropped
/// silently: its `SET`s stay until their TTL, and the acquire's own next attempt finds them
/// held.
#[test]
fn fixed_bug_cleanup_queue_overflow_drops_releases() {
    type Sent = (usize, RequestId, CommandKind, Token);
    fn drain(acq: &mut Acquire<ChaCha20Rng>) -> (Vec<Sent>, Option<Instant>) {
        let mut sent = Vec::new();
        loop {
            match acq.poll_output() {
                Output::Send(tx) => sent.push((
                    tx.instance,
                    tx.request,
                    tx.command.kind(),
                    *tx.command.value(),
                )),
                Output::Wait { until } => return (sent, Some(until)),
                Output::Done(_) => return (sent, None),
            }
        }
    }
    let acquires = |s: &[Sent]| -> Vec<Sent> {
        s.iter()
            .copied()
            .filter(|x| x.2 == CommandKind::Acquire)
            .collect()
    };
    let config = Config::new(16, Duration::from_millis(10_000)).unwrap();
    let mut acq = Acquire::new(
        config,
        Resources::single(b"k").unwrap(),
        ChaCha20Rng::seed_from_u64(3),
        Instant::from_millis(0),
    )
    .unwrap();
    let mut timed_out = Vec::new();
    // Attempts 1 and 2: every SET times out; their releases are drained.
    let (mut sent, mut until) = drain(&mut acq);
    for _ in 0..2 {
        let attempt = acquires(&sent);
        assert_eq!(attempt.len(), 16);
        timed_out.extend(attempt);
        acq.handle_input(Input::Timeout {
            now: until.unwrap(),
        })
        .unwrap();
        let (_releases, retry_at) = drain(&mut acq);
        acq.handle_input(Input::Timeout {
            now: retry_at.unwrap(),
        })
        .unwrap();
        (sent, until) = drain(&mut acq);
    }
    let third = acquires(&sent);
    assert_eq!(third.len(), 16);
    let mut now = acq.attempt_started().as_millis() + 1;
    // One batch, no drain in between: the 32 late OKs, then attempt 3 fails 8 OK / 8 nil.
    for (instance, request, _, _) in &timed_out {
        acq.handle_input(Input::Reply {
            instance: *instance,
            request: *request,
            reply: Reply::Ok,
            at: Instant::from_millis(now),
        })
        .unwrap();
    }
    now += 1;
    for (k, (instance, request, _, _)) in third.iter().enumerate() {
        let reply = if k < 8 { Reply::Ok } else { Reply::Nil };
        acq.handle_input(Input::Reply {
            instance: *instance,
            request: *request,
            reply,
            at: Instant::from_millis(now),
        })
        .unwrap();
    }
    let (after, _) = drain(&mut acq);
    let v3 = third[0].3;
    let missing: Vec<usize> = third[..8]
        .iter()
        .map(|x| x.0)
        .filter(|i| {
            !after
                .iter()
                .any(|r| r.2 == CommandKind::Release && r.0 == *i && r.3 == v3)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "attempt 3 wrote its value on instances {missing:?}, never released"
    );
}
