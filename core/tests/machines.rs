//! Scenario tests of the three machines through their public API: one behaviour per test.

use core::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use redlock_core::{
    Acquire, AcquireFailure, AcquireOutcome, CommandForm, CommandKind, Config, Error, Extend,
    ExtendFailure, ExtendOutcome, Input, InstanceStatus, Instant, Lease, Output, Release, Reply,
    RequestId, Resources, ServerError, Token, ACQUIRE_SCRIPT,
};

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn rng() -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(42)
}

/// One command the machine handed out, copied out of its borrow.
#[derive(Debug, Clone)]
struct Sent {
    instance: usize,
    request: RequestId,
    kind: CommandKind,
    form: CommandForm,
    value: Token,
}

/// Drains an acquire: the sends, then the wait deadline (None when done).
fn drain(acq: &mut Acquire<ChaCha20Rng>) -> (Vec<Sent>, Option<Instant>) {
    let mut sent = Vec::new();
    loop {
        match acq.poll_output() {
            Output::Send(tx) => sent.push(Sent {
                instance: tx.instance,
                request: tx.request,
                kind: tx.command.kind(),
                form: tx.command.form(),
                value: *tx.command.value(),
            }),
            Output::Wait { until } => return (sent, Some(until)),
            Output::Done(_) => return (sent, None),
        }
    }
}

fn reply(acq: &mut Acquire<ChaCha20Rng>, s: &Sent, r: Reply<'_>, at: u64) {
    acq.handle_input(Input::Reply {
        instance: s.instance,
        request: s.request,
        reply: r,
        at: t(at),
    })
    .unwrap();
}

fn config(n: usize) -> Config {
    Config::new(n, Duration::from_millis(10_000))
        .unwrap()
        .with_retry_count(0)
        .unwrap()
}

fn acquire(n: usize) -> Acquire<ChaCha20Rng> {
    Acquire::new(
        config(n),
        Resources::single(b"res").unwrap(),
        rng(),
        t(1000),
    )
    .unwrap()
}

#[test]
fn uncontended_acquire_decides_at_quorum_without_waiting_for_the_rest() {
    let mut acq = acquire(5);
    let (sent, _) = drain(&mut acq);
    assert_eq!(sent.len(), 5, "one SET per instance, all at once");
    assert!(sent
        .iter()
        .all(|s| s.kind == CommandKind::Acquire && s.form == CommandForm::Set));
    for s in &sent[..3] {
        reply(&mut acq, s, Reply::Ok, 1005);
    }
    let (more, wait) = drain(&mut acq);
    assert!(more.is_empty() && wait.is_none());
    let AcquireOutcome::Acquired {
        lease,
        decided_at,
        attempts,
        report,
    } = acq.outcome().unwrap()
    else {
        panic!("expected a lease: {:?}", acq.outcome())
    };
    assert_eq!(lease.valid_until(), t(1000 + 10_000 - 102));
    assert_eq!(*decided_at, t(1005));
    assert_eq!(*attempts, 1);
    assert_eq!(report.yes(), 3);
    assert_eq!(report.get(4), Some(InstanceStatus::Pending));
}

#[test]
fn held_by_another_is_contended_and_released_everywhere() {
    let mut acq = acquire(5);
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 1001);
    for s in &sent[1..4] {
        reply(&mut acq, s, Reply::Nil, 1002);
    }
    // Decided (3 noes of 5), but instance 4 is still in flight: no release to it yet.
    let (cleanup, wait) = drain(&mut acq);
    let released: Vec<usize> = cleanup.iter().map(|s| s.instance).collect();
    assert_eq!(released, [0, 1, 2, 3]);
    assert!(cleanup
        .iter()
        .all(|s| s.kind == CommandKind::Release && s.value == sent[0].value));
    assert!(wait.is_some(), "waits for instance 4 before finishing");
    reply(&mut acq, &sent[4], Reply::Nil, 1003);
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(cleanup.len(), 1);
    assert_eq!(cleanup[0].instance, 4);
    assert!(wait.is_none());
    assert_eq!(
        acq.outcome().unwrap().failure(),
        Some(AcquireFailure::Contended)
    );
}

#[test]
fn majority_unreachable_is_no_quorum_not_contention() {
    let mut acq = acquire(5);
    let (sent, _) = drain(&mut acq);
    for s in &sent[..3] {
        acq.handle_input(Input::TransportError {
            instance: s.instance,
            request: s.request,
            at: t(1001),
        })
        .unwrap();
    }
    reply(&mut acq, &sent[3], Reply::Nil, 1001);
    reply(&mut acq, &sent[4], Reply::Ok, 1001);
    drain(&mut acq);
    let outcome = acq.outcome().unwrap();
    assert_eq!(outcome.failure(), Some(AcquireFailure::NoQuorum));
    assert_eq!(outcome.report().failed(), 3);
}

#[test]
fn errors_never_count_as_yes() {
    let mut acq = acquire(3);
    let (sent, _) = drain(&mut acq);
    for s in &sent {
        reply(&mut acq, s, Reply::Error(b"READONLY You can't write"), 1001);
    }
    drain(&mut acq);
    let outcome = acq.outcome().unwrap();
    assert_eq!(outcome.failure(), Some(AcquireFailure::NoQuorum));
    assert_eq!(
        outcome.report().get(0),
        Some(InstanceStatus::ServerError(ServerError::ReadOnly))
    );
}

#[test]
fn a_quorum_too_late_is_validity_exhausted() {
    let cfg = config(3)
        .with_instance_timeout(Duration::from_millis(9_000))
        .unwrap()
        .with_min_validity(Duration::from_millis(1_000))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let (sent, wait) = drain(&mut acq);
    // ttl 10 000 - drift 102 - min validity 1 000: no lease can be granted from 8 898 on.
    assert_eq!(wait, Some(t(8_898)));
    reply(&mut acq, &sent[0], Reply::Ok, 8_000);
    reply(&mut acq, &sent[1], Reply::Ok, 8_898);
    let (cleanup, wait) = drain(&mut acq);
    let mut released: Vec<usize> = cleanup.iter().map(|s| s.instance).collect();
    released.sort();
    assert_eq!(
        released,
        [0, 1, 2],
        "granted, late and silent instances are all released"
    );
    assert!(wait.is_none());
    assert_eq!(
        acq.outcome().unwrap().failure(),
        Some(AcquireFailure::ValidityExhausted)
    );
}

#[test]
fn a_quorum_just_in_time_is_a_lease_with_the_minimum_validity() {
    let cfg = config(3)
        .with_min_validity(Duration::from_millis(1_000))
        .unwrap()
        .with_instance_timeout(Duration::from_millis(9_000))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 8_000);
    reply(&mut acq, &sent[1], Reply::Ok, 8_897);
    let lease = acq.outcome().unwrap().lease().unwrap();
    assert_eq!(lease.remaining_ms(t(8_897)), 1_001);
}

#[test]
fn silent_instances_time_out_at_the_instance_timeout() {
    let cfg = config(3)
        .with_instance_timeout(Duration::from_millis(50))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let (sent, wait) = drain(&mut acq);
    assert_eq!(wait, Some(t(50)));
    reply(&mut acq, &sent[0], Reply::Ok, 1);
    acq.handle_input(Input::Timeout { now: t(20) }).unwrap(); // early tick: harmless
    assert!(acq.outcome().is_none());
    acq.handle_input(Input::Timeout { now: t(50) }).unwrap();
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(
        cleanup.len(),
        3,
        "timed-out SETs may have landed: release them too"
    );
    assert!(wait.is_none());
    let outcome = acq.outcome().unwrap();
    assert_eq!(outcome.failure(), Some(AcquireFailure::NoQuorum));
    assert_eq!(outcome.report().get(1), Some(InstanceStatus::TimedOut));
}

#[test]
fn a_late_ok_after_timeout_gets_another_release() {
    let cfg = config(3)
        .with_instance_timeout(Duration::from_millis(50))
        .unwrap()
        .with_retry_count(1)
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let (first, _) = drain(&mut acq);
    acq.handle_input(Input::Timeout { now: t(50) }).unwrap();
    let (cleanup, Some(retry_at)) = drain(&mut acq) else {
        panic!("expected a retry wait")
    };
    assert_eq!(cleanup.len(), 3);
    // The SET to instance 1 lands after all, and its OK arrives during the retry wait.
    reply(&mut acq, &first[1], Reply::Ok, 60);
    let (again, _) = drain(&mut acq);
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].instance, again[0].value), (1, first[1].value));
    assert_eq!(again[0].kind, CommandKind::Release);
    acq.handle_input(Input::Timeout { now: retry_at }).unwrap();
    let (second, _) = drain(&mut acq);
    assert_eq!(second.len(), 3);
    assert_ne!(second[0].value, first[0].value, "fresh value per attempt");
    // A stale reply from attempt 1 is never counted for attempt 2.
    reply(&mut acq, &first[0], Reply::Ok, retry_at.as_millis() + 1);
    reply(&mut acq, &first[2], Reply::Ok, retry_at.as_millis() + 1);
    assert!(acq.outcome().is_none());
    assert_eq!(acq.report().yes(), 0);
}

#[test]
fn retries_are_bounded_jittered_and_use_fresh_values() {
    let cfg = config(3)
        .with_retry_count(3)
        .unwrap()
        .with_retry_delay(Duration::from_millis(200), Duration::from_millis(100))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let mut values = Vec::new();
    let mut now = 0;
    loop {
        let (sent, wait) = drain(&mut acq);
        let sets: Vec<&Sent> = sent
            .iter()
            .filter(|s| s.kind == CommandKind::Acquire)
            .collect();
        if let Some(s) = sets.first() {
            values.push(s.value);
            for s in &sets {
                reply(&mut acq, s, Reply::Nil, now + 1);
            }
            now += 1;
            continue;
        }
        let Some(until) = wait else { break };
        let delay = until.as_millis() - now;
        assert!((100..=300).contains(&delay), "jittered delay {delay}");
        now = until.as_millis();
        acq.handle_input(Input::Timeout { now: until }).unwrap();
    }
    assert_eq!(values.len(), 4, "1 attempt + 3 retries");
    let mut unique = values.clone();
    unique.dedup();
    assert_eq!(unique.len(), 4);
    assert_eq!(acq.outcome().unwrap().attempts(), 4);
}

#[test]
fn the_overall_deadline_stops_retries() {
    let cfg = config(3)
        .with_retry_count(100)
        .unwrap()
        .with_acquire_deadline(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let mut now = 0;
    while acq.outcome().is_none() {
        let (sent, wait) = drain(&mut acq);
        for s in sent.iter().filter(|s| s.kind == CommandKind::Acquire) {
            reply(&mut acq, s, Reply::Nil, now);
        }
        if let (true, Some(until)) = (sent.is_empty(), wait) {
            now = until.as_millis();
            acq.handle_input(Input::Timeout { now: until }).unwrap();
        }
    }
    assert!(now < 1000);
    assert!(acq.outcome().unwrap().attempts() < 100);
}

#[test]
fn multi_resource_uses_the_script_and_falls_back_to_eval_on_noscript() {
    let keys = Resources::from_keys(&[b"a", b"b"]).unwrap();
    let mut acq = Acquire::new(config(3), keys, rng(), t(0)).unwrap();
    let (sent, _) = drain(&mut acq);
    assert!(sent.iter().all(|s| s.form == CommandForm::EvalSha));
    reply(
        &mut acq,
        &sent[0],
        Reply::Error(b"NOSCRIPT No matching script"),
        1,
    );
    let (resent, _) = drain(&mut acq);
    assert_eq!(resent.len(), 1);
    assert_eq!((resent[0].instance, resent[0].form), (0, CommandForm::Eval));
    assert_ne!(resent[0].request, sent[0].request);
    reply(&mut acq, &resent[0], Reply::Integer(1), 2);
    reply(&mut acq, &sent[1], Reply::Integer(1), 2);
    drain(&mut acq);
    let lease = acq.outcome().unwrap().lease().unwrap();
    assert_eq!(lease.resources().len(), 2);
}

#[test]
fn cancel_releases_what_was_sent_and_reports_cancelled() {
    let mut acq = acquire(3);
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 1001);
    acq.cancel(t(1002)).unwrap();
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(cleanup.len(), 1, "only the answered instance so far");
    assert!(wait.is_some());
    reply(&mut acq, &sent[1], Reply::Ok, 1003);
    reply(&mut acq, &sent[2], Reply::Ok, 1003);
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(
        cleanup.len(),
        2,
        "answers after the cancel are released too"
    );
    assert!(wait.is_none());
    assert_eq!(
        acq.outcome().unwrap().failure(),
        Some(AcquireFailure::Cancelled)
    );
}

#[test]
fn time_going_backwards_fails_closed() {
    let mut acq = acquire(3);
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 1001);
    let err = acq
        .handle_input(Input::Reply {
            instance: 1,
            request: sent[1].request,
            reply: Reply::Ok,
            at: t(900),
        })
        .unwrap_err();
    assert!(matches!(err, Error::TimeWentBackwards { .. }));
    reply(&mut acq, &sent[2], Reply::Ok, 1002);
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(cleanup.len(), 3, "everything sent is released at once");
    assert!(wait.is_none());
    assert_eq!(
        acq.outcome().unwrap().failure(),
        Some(AcquireFailure::ClockWentBackwards)
    );
}

#[test]
fn done_is_terminal_and_repeatable() {
    let mut acq = acquire(1);
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 1001);
    let first = match acq.poll_output() {
        Output::Done(o) => o.clone(),
        other => panic!("{other:?}"),
    };
    acq.handle_input(Input::Timeout { now: t(99_999) }).unwrap();
    acq.cancel(t(100_000)).unwrap();
    match acq.poll_output() {
        Output::Done(o) => assert_eq!(*o, first),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_instances_are_refused() {
    let mut acq = acquire(3);
    let (sent, _) = drain(&mut acq);
    let err = acq
        .handle_input(Input::Reply {
            instance: 3,
            request: sent[0].request,
            reply: Reply::Ok,
            at: t(1001),
        })
        .unwrap_err();
    assert_eq!(
        err,
        Error::UnknownInstance {
            instance: 3,
            instances: 3
        }
    );
}

fn lease(valid_until: u64) -> Lease {
    Lease::new(
        Resources::single(b"res").unwrap(),
        Token::from_bytes([7; 16]),
        10_000,
        t(valid_until),
    )
}

fn drive_extend(ext: &mut Extend, replies: &[Reply<'_>], at: u64) -> Vec<RequestId> {
    let mut ids = Vec::new();
    while let Output::Send(tx) = ext.poll_output() {
        assert_eq!(tx.command.kind(), CommandKind::Extend);
        ids.push((tx.instance, tx.request));
    }
    for ((instance, request), r) in ids.iter().zip(replies) {
        ext.handle_input(Input::Reply {
            instance: *instance,
            request: *request,
            reply: *r,
            at: t(at),
        })
        .unwrap();
    }
    ids.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn extend_refuses_an_expired_lease_without_sending() {
    let mut ext = Extend::new(config(3), &lease(5_000), t(5_000)).unwrap();
    assert!(matches!(
        ext.poll_output(),
        Output::Done(ExtendOutcome::Failed {
            reason: ExtendFailure::Expired,
            ..
        })
    ));
}

#[test]
fn extend_success_measures_validity_from_its_own_start() {
    let mut ext = Extend::new(config(3), &lease(5_000), t(4_000)).unwrap();
    drive_extend(&mut ext, &[Reply::Integer(1), Reply::Integer(1)], 4_010);
    let outcome = ext.outcome().unwrap();
    assert!(outcome.failure().is_none());
    assert_eq!(outcome.lease().valid_until(), t(4_000 + 10_000 - 102));
}

#[test]
fn extend_deadlines_follow_the_hosts_clock_far_from_its_epoch() {
    let start = 5_000_000_000;
    let mut ext = Extend::new(config(3), &lease(start + 5_000), t(start)).unwrap();
    assert!(matches!(ext.poll_output(), Output::Send(_)));
    ext.handle_input(Input::Timeout { now: t(start + 1) })
        .unwrap();
    assert!(
        ext.outcome().is_none(),
        "an early tick does not end the extend"
    );
    drive_extend(
        &mut ext,
        &[Reply::Integer(1), Reply::Integer(1)],
        start + 10,
    );
    assert_eq!(
        ext.outcome().unwrap().lease().valid_until(),
        t(start + 10_000 - 102)
    );
}

#[test]
fn extend_on_a_lost_lock_reports_lost_and_never_lengthens() {
    let mut ext = Extend::new(config(3), &lease(5_000), t(4_000)).unwrap();
    drive_extend(&mut ext, &[Reply::Integer(0), Reply::Integer(0)], 4_010);
    let outcome = ext.outcome().unwrap();
    assert_eq!(outcome.failure(), Some(ExtendFailure::Lost));
    assert!(outcome.lease().valid_until() <= t(5_000));
}

#[test]
fn failed_extend_to_a_shorter_ttl_shortens_the_lease() {
    let cfg = config(3).with_ttl(Duration::from_millis(500)).unwrap();
    let mut ext = Extend::new(cfg, &lease(5_000), t(4_000)).unwrap();
    drive_extend(
        &mut ext,
        &[
            Reply::Integer(1),
            Reply::Error(b"ERR x"),
            Reply::Error(b"ERR y"),
        ],
        4_010,
    );
    let outcome = ext.outcome().unwrap();
    assert_eq!(outcome.failure(), Some(ExtendFailure::NoQuorum));
    assert_eq!(outcome.lease().valid_until(), t(4_000 + 500 - 7));
}

#[test]
fn release_reports_each_instance_and_confirms_on_quorum() {
    let mut rel = Release::new(config(3), &lease(5_000), t(100)).unwrap();
    let mut ids = Vec::new();
    while let Output::Send(tx) = rel.poll_output() {
        assert_eq!(tx.command.kind(), CommandKind::Release);
        assert_eq!(
            tx.command.script().unwrap().sha1,
            redlock_core::RELEASE_SCRIPT.sha1
        );
        ids.push((tx.instance, tx.request));
    }
    assert_eq!(ids.len(), 3);
    let replies = [Reply::Integer(1), Reply::Integer(0)];
    for ((instance, request), r) in ids.iter().zip(replies) {
        rel.handle_input(Input::Reply {
            instance: *instance,
            request: *request,
            reply: r,
            at: t(101),
        })
        .unwrap();
    }
    assert!(rel.outcome().is_none(), "waits for the third instance");
    rel.handle_input(Input::TransportError {
        instance: 2,
        request: ids[2].1,
        at: t(102),
    })
    .unwrap();
    let outcome = rel.outcome().unwrap();
    assert!(outcome.confirmed);
    assert_eq!(outcome.deleted, 1);
    assert_eq!(
        outcome.report.as_slice(),
        [
            InstanceStatus::Yes,
            InstanceStatus::Held,
            InstanceStatus::TransportError
        ]
    );
}

#[test]
fn script_digests_match_their_sources() {
    for script in redlock_core::SCRIPTS {
        let digest = sha1_smol::Sha1::from(script.source).digest().to_string();
        assert_eq!(digest, script.sha1, "{}", script.name);
    }
    assert_eq!(ACQUIRE_SCRIPT.name, "acquire");
}

#[test]
fn replies_routed_to_the_wrong_machine_are_ignored() {
    let mut acq = acquire(3);
    let (sent, _) = drain(&mut acq);
    reply(&mut acq, &sent[0], Reply::Ok, 1001);
    reply(&mut acq, &sent[1], Reply::Ok, 1001);
    let lease = acq.outcome().unwrap().lease().unwrap().clone();
    let mut rel = Release::new(config(3), &lease, t(1002)).unwrap();
    let mut ids = Vec::new();
    while let Output::Send(tx) = rel.poll_output() {
        ids.push(tx.request);
    }
    assert!(ids.iter().all(|id| sent.iter().all(|s| s.request != *id)));
    // The third SET's late OK arrives on the connection the release now uses.
    rel.handle_input(Input::Reply {
        instance: 2,
        request: sent[2].request,
        reply: Reply::Ok,
        at: t(1003),
    })
    .unwrap();
    assert_eq!(rel.outcome(), None, "not taken as the release's answer");
    // Two extends of one lease started at different times use different ids too.
    let e1 = Extend::new(config(3), &lease, t(2000)).unwrap();
    let e2 = Extend::new(config(3), &lease, t(2001)).unwrap();
    let first = |mut e: Extend| match e.poll_output() {
        Output::Send(tx) => tx.request,
        other => panic!("{other:?}"),
    };
    assert_ne!(first(e1), first(e2));
}

#[test]
fn a_release_hint_moves_the_retry_up_without_spending_the_budget() {
    let cfg = config(3)
        .with_retry_count(1)
        .unwrap()
        .with_retry_delay(Duration::from_millis(500), Duration::from_millis(0))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    assert!(
        !acq.wake(t(0), Duration::ZERO).unwrap(),
        "nothing to move while running"
    );
    let (sent, _) = drain(&mut acq);
    for s in &sent {
        reply(&mut acq, s, Reply::Nil, 1);
    }
    let (_, wait) = drain(&mut acq);
    assert_eq!(wait, Some(t(501)));
    assert!(acq.is_waiting_to_retry());
    assert!(acq.wake(t(10), Duration::from_millis(5)).unwrap());
    let (_, Some(until)) = drain(&mut acq) else {
        panic!("expected a wait")
    };
    assert!((10..=15).contains(&until.as_millis()), "retry at {until:?}");
    acq.handle_input(Input::Timeout { now: until }).unwrap();
    let (second, _) = drain(&mut acq);
    assert_eq!(second.len(), 3, "the retry ran early");
    for s in &second {
        reply(&mut acq, s, Reply::Nil, until.as_millis() + 1);
    }
    // The early attempt lost before the timed retry was due: the timed retry stays at 501 and
    // the budget (one retry) is still there.
    let (cleanup, wait) = drain(&mut acq);
    assert_eq!(cleanup.len(), 3, "the lost early attempt is released");
    for s in &cleanup {
        reply(&mut acq, s, Reply::Integer(0), until.as_millis() + 2);
    }
    let (_, wait2) = drain(&mut acq);
    assert_eq!(wait.or(wait2), Some(t(501)), "back on the timed schedule");
    assert!(acq.outcome().is_none());
    acq.handle_input(Input::Timeout { now: t(501) }).unwrap();
    let (third, _) = drain(&mut acq);
    assert_eq!(third.len(), 3, "the timed retry runs");
    for s in &third {
        reply(&mut acq, s, Reply::Nil, 502);
    }
    drain(&mut acq);
    let outcome = acq.outcome().unwrap();
    assert_eq!(
        outcome.attempts(),
        3,
        "every attempt is counted in the outcome"
    );
    assert!(matches!(
        outcome,
        AcquireOutcome::Failed {
            reason: AcquireFailure::Contended,
            ..
        }
    ));
    assert!(!acq.wake(t(10_000), Duration::ZERO).unwrap());
}

#[test]
fn an_early_attempt_that_outlives_its_timed_retry_spends_the_budget() {
    let cfg = config(3)
        .with_retry_count(1)
        .unwrap()
        .with_retry_delay(Duration::from_millis(100), Duration::from_millis(0))
        .unwrap()
        .with_instance_timeout(Duration::from_millis(300))
        .unwrap();
    let mut acq = Acquire::new(cfg, Resources::single(b"r").unwrap(), rng(), t(0)).unwrap();
    let (sent, _) = drain(&mut acq);
    for s in &sent {
        reply(&mut acq, s, Reply::Nil, 1);
    }
    drain(&mut acq);
    assert!(acq.wake(t(10), Duration::ZERO).unwrap());
    acq.handle_input(Input::Timeout { now: t(10) }).unwrap();
    let (second, _) = drain(&mut acq);
    assert_eq!(second.len(), 3);
    // Decided only at 150, after the timed retry (101) was due: that attempt is the retry.
    for s in &second {
        reply(&mut acq, s, Reply::Nil, 150);
    }
    drain(&mut acq);
    let outcome = acq.outcome().expect("the budget is spent");
    assert_eq!(outcome.attempts(), 2);
}
