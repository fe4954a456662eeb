//! Hand-built histories: a clean one passes, and each invariant has one that breaks it.

use crate::{
    check, drift_ms, Checker, Event, Invariant, RelFailure, RelInstResult, RelOutcome, ReplyKind,
    Report,
};

/// Builds histories where the client clock equals the common clock.
struct H {
    ev: Vec<Event>,
    n: u32,
}

/// A strong, unique value for (acq, attempt): 32 hex digits.
fn val(acq: u64, attempt: u32) -> String {
    format!("{acq:016x}{attempt:016x}")
}

fn q(n: u32) -> u32 {
    n / 2 + 1
}

impl H {
    fn new(n: u32) -> Self {
        Self {
            ev: vec![Event::config(n, 0.01, 2, 0)],
            n,
        }
    }

    fn push(&mut self, e: Event) -> &mut Self {
        self.ev.push(e);
        self
    }

    fn invoke(&mut self, acq: u64, resources: &[&str], ttl: u64, rt: u64) -> &mut Self {
        self.push(Event::AcqInvoke {
            acq,
            client: acq % 3,
            resources: resources.iter().map(|s| (*s).to_owned()).collect(),
            ttl_ms: ttl,
            rt,
        })
    }

    fn attempt(&mut self, acq: u64, attempt: u32, rt: u64) -> &mut Self {
        self.push(Event::AttemptStart {
            acq,
            attempt,
            value: val(acq, attempt),
            t1_client: rt,
            rt,
        })
    }

    fn reply(&mut self, acq: u64, attempt: u32, inst: u32, kind: ReplyKind, rt: u64) -> &mut Self {
        self.push(Event::InstReply {
            acq,
            attempt,
            inst,
            kind,
            rt,
        })
    }

    /// A correct AcqOk for an attempt started at `t1`, decided at `t2`.
    fn acq_ok(
        &mut self,
        acq: u64,
        attempt: u32,
        ttl: u64,
        t1: u64,
        t2: u64,
        votes: Vec<u32>,
    ) -> &mut Self {
        let drift = drift_ms(ttl, 0.01, 2);
        self.push(Event::AcqOk {
            acq,
            attempt,
            value: val(acq, attempt),
            valid_until_client: t1 + ttl - drift,
            t1_client: t1,
            t2_client: t2,
            validity_ms: ttl as i64 - (t2 - t1) as i64 - drift as i64,
            votes,
            rt: t2,
            valid_until_rt: None,
        })
    }

    /// A whole successful single-attempt acquisition: all instances answer Ok at `t + 2`.
    fn acquire(&mut self, acq: u64, resources: &[&str], ttl: u64, t: u64) -> &mut Self {
        self.invoke(acq, resources, ttl, t).attempt(acq, 0, t);
        for inst in 0..self.n {
            self.reply(acq, 0, inst, ReplyKind::Ok, t + 2);
        }
        let votes = (0..q(self.n)).collect();
        self.acq_ok(acq, 0, ttl, t, t + 2, votes)
    }

    /// A correct successful extension invoked at `t`, decided at `t + 3`.
    fn extend(&mut self, ext: u64, acq: u64, ttl: u64, t: u64) -> &mut Self {
        let drift = drift_ms(ttl, 0.01, 2);
        self.push(Event::ExtInvoke {
            ext,
            acq,
            ttl_ms: ttl,
            t1_client: t,
            rt: t,
        });
        let votes = (0..q(self.n)).collect();
        self.push(Event::ExtOk {
            ext,
            acq,
            valid_until_client: t + ttl - drift,
            valid_until_rt: None,
            validity_ms: ttl as i64 - 3 - drift as i64,
            votes,
            t1_client: t,
            t2_client: t + 3,
            rt: t + 3,
        })
    }

    /// A release started at `t`, sent to all, confirmed at `t + 1`.
    fn release(&mut self, acq: u64, t: u64) -> &mut Self {
        let n = self.n;
        self.push(Event::RelInvoke { acq, rt: t });
        self.push(Event::ReleaseSent {
            acq,
            attempt: None,
            insts: (0..n).collect(),
            rt: t,
        });
        self.push(Event::RelDone {
            acq,
            per_inst: (0..n)
                .map(|inst| RelInstResult {
                    inst,
                    result: RelOutcome::Reply(1),
                })
                .collect(),
            rt: t + 1,
        })
    }

    fn cleanup(&mut self, acq: u64, attempt: u32, insts: Vec<u32>, rt: u64) -> &mut Self {
        self.push(Event::ReleaseSent {
            acq,
            attempt: Some(attempt),
            insts,
            rt,
        })
    }

    fn work(&mut self, acq: u64, from: u64, to: u64) -> &mut Self {
        self.push(Event::WorkStart { acq, rt: from });
        self.push(Event::WorkEnd { acq, rt: to })
    }

    fn check(&self) -> Report {
        check(&self.ev)
    }
}

fn assert_clean(report: &Report) {
    assert!(report.is_ok(), "unexpected violations:\n{report}");
    assert!(report.warnings.is_empty(), "unexpected warnings:\n{report}");
}

fn assert_only(report: &Report, invariant: Invariant) {
    assert!(
        report.has(invariant),
        "expected {invariant}, got:\n{report}"
    );
    assert!(
        report.violations.iter().all(|v| v.invariant == invariant),
        "expected only {invariant}, got:\n{report}"
    );
}

/// A history with sequential acquisitions, extensions, a failed and cleaned-up attempt, a failed
/// acquisition, an extension failure and work windows inside the tenures.
fn clean_history() -> H {
    let mut h = H::new(5);
    // acq 1: acquire, work, extend twice, work again, release.
    h.acquire(1, &["r"], 1000, 0)
        .work(1, 10, 500)
        .extend(10, 1, 1000, 600)
        .extend(11, 1, 1000, 1200)
        .work(1, 1300, 1500)
        .release(1, 1600);
    // acq 2: first attempt contended (2 Ok, 3 Nil) and cleaned up on all, second attempt wins.
    h.invoke(2, &["r"], 1000, 1550).attempt(2, 0, 1550);
    for inst in 0..5 {
        let kind = if inst < 2 {
            ReplyKind::Ok
        } else {
            ReplyKind::Nil
        };
        h.reply(2, 0, inst, kind, 1552);
    }
    h.cleanup(2, 0, (0..5).collect(), 1553).attempt(2, 1, 1700);
    for inst in 0..5 {
        h.reply(2, 1, inst, ReplyKind::Ok, 1703);
    }
    h.acq_ok(2, 1, 1000, 1700, 1703, vec![4, 2, 0]);
    // The extension fails: the deadline drops to min(old, t1 + ttl - drift).
    h.push(Event::ExtInvoke {
        ext: 12,
        acq: 2,
        ttl_ms: 100,
        t1_client: 1800,
        rt: 1800,
    })
    .push(Event::ExtFail {
        ext: 12,
        acq: 2,
        valid_until_client: 1800 + 100 - drift_ms(100, 0.01, 2),
        valid_until_rt: None,
        rt: 1810,
    });
    // acq 3 on another resource overlaps acq 2 in time: fine.
    h.acquire(3, &["other", "third"], 1000, 1750)
        .release(3, 1900);
    // acq 4 gives up after a failed attempt on "r" (held by acq 2), cleaned up.
    h.invoke(4, &["r"], 1000, 1850).attempt(4, 0, 1850);
    for inst in 0..5 {
        h.reply(4, 0, inst, ReplyKind::Nil, 1851);
    }
    h.cleanup(4, 0, (0..5).collect(), 1852);
    h.push(Event::AcqFail {
        acq: 4,
        reason: "contended".into(),
        rt: 1852,
    });
    // acq 5 acquires "r" once acq 2's lowered deadline (1897) has passed, with a Late reply afterwards.
    h.acquire(5, &["r", "s"], 1000, 1900)
        .reply(5, 0, 0, ReplyKind::Late, 1950)
        .release(5, 2000);
    h.push(Event::Fault {
        kind: "Crash".into(),
        inst: Some(3),
        detail: None,
        rt: 1960,
    })
    .push(Event::Fault {
        kind: "Restart".into(),
        inst: Some(3),
        detail: Some("persisted=true".into()),
        rt: 1970,
    });
    h
}

#[test]
fn clean_history_with_sequential_acquisitions_extensions_and_releases_passes() {
    let h = clean_history();
    let report = h.check();
    assert_clean(&report);
    let s = &report.summary;
    assert_eq!((s.instances, s.quorum), (5, 3));
    assert_eq!(
        (s.acquisitions, s.acquired, s.acquire_failed, s.attempts),
        (5, 4, 1, 6)
    );
    assert_eq!(
        (s.extensions, s.extensions_ok, s.extensions_failed),
        (3, 2, 1)
    );
    assert_eq!(
        (s.releases, s.releases_done, s.cleanups, s.work_windows),
        (3, 3, 2, 2)
    );
    assert_eq!(s.faults_by_kind.get("Crash"), Some(&1));
    assert_eq!(s.faults_by_kind.get("Restart"), Some(&1));
}

#[test]
fn events_of_several_clients_concatenated_unsorted_are_checked_in_rt_order() {
    // As if two client processes wrote separate files: each part is in its writer's order.
    let (odd, even): (Vec<Event>, Vec<Event>) = clean_history()
        .ev
        .into_iter()
        .partition(|e| e.acq().is_some_and(|a| a % 2 == 1));
    let mut events = odd;
    events.extend(even);
    assert_clean(&check(&events));
}

#[test]
fn checker_push_api_matches_check() {
    let mut c = Checker::with_config(3, 0.01, 2, 0);
    let h = {
        let mut h = H::new(3);
        h.acquire(1, &["r"], 1000, 0).release(1, 100);
        h
    };
    c.extend(h.ev[1..].iter().cloned());
    assert_eq!(c.len(), h.ev.len());
    assert_eq!(c.check(), h.check());
    assert_clean(&c.check());
}

#[test]
fn overlapping_leases_on_the_same_resource_violate_s1() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 1000, 0).acquire(2, &["r"], 1000, 500);
    let report = h.check();
    assert_only(&report, Invariant::S1);
    let v = &report.violations[0];
    assert!(
        v.message.contains("acquisition 1") && v.message.contains("acquisition 2"),
        "{}",
        v.message
    );
    assert!(v
        .events
        .iter()
        .any(|e| matches!(e.event, Event::AcqOk { acq: 2, .. })));
}

#[test]
fn a_lease_that_expired_or_was_released_does_not_overlap_the_next() {
    let mut h = H::new(5);
    // acq 1 expires at 988 with no release; acq 2 acquires at 988 exactly (half-open tenure).
    h.acquire(1, &["r"], 1000, 0)
        .invoke(2, &["r"], 1000, 986)
        .attempt(2, 0, 986);
    for inst in 0..5 {
        h.reply(2, 0, inst, ReplyKind::Ok, 988);
    }
    h.acq_ok(2, 0, 1000, 986, 988, vec![0, 1, 2]);
    // acq 2 releases early at 1200; acq 3 acquires at 1300, long before acq 2's deadline.
    h.release(2, 1200).acquire(3, &["r"], 1000, 1300);
    assert_clean(&h.check());
}

#[test]
fn a_successful_extension_prolongs_the_tenure() {
    let mut h = H::new(5);
    // acq 1 would expire at 988, but the extension at 900 moves it to 900 + 1000 - 12.
    h.acquire(1, &["r"], 1000, 0)
        .extend(10, 1, 1000, 900)
        .acquire(2, &["r"], 1000, 1200);
    assert_only(&h.check(), Invariant::S1);
}

#[test]
fn a_failed_extension_shortens_the_tenure() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 10_000, 0)
        .push(Event::ExtInvoke {
            ext: 10,
            acq: 1,
            ttl_ms: 100,
            t1_client: 200,
            rt: 200,
        })
        .push(Event::ExtFail {
            ext: 10,
            acq: 1,
            valid_until_client: 297,
            valid_until_rt: None,
            rt: 205,
        })
        .acquire(2, &["r"], 1000, 300);
    assert_clean(&h.check());
}

#[test]
fn valid_until_rt_is_used_for_the_tenure_when_given() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0);
    // The client's clock runs 500 ms behind: on the common clock the lease ends at 488.
    if let Some(Event::AcqOk { valid_until_rt, .. }) = h.ev.last_mut() {
        *valid_until_rt = Some(488);
    }
    h.acquire(2, &["r"], 1000, 600);
    assert_clean(&h.check());
}

#[test]
fn multi_resource_acquisitions_overlapping_on_one_shared_key_violate_s1() {
    let mut h = H::new(5);
    h.acquire(1, &["a", "b", "shared"], 1000, 0)
        .acquire(2, &["shared", "c"], 1000, 100);
    let report = h.check();
    assert_only(&report, Invariant::S1);
    assert_eq!(report.violations.len(), 1);
    assert!(
        report.violations[0].message.contains("\"shared\""),
        "{report}"
    );
    assert!(!report.violations[0].message.contains("\"a\""), "{report}");
}

#[test]
fn multi_resource_acquisitions_on_disjoint_resources_do_not_overlap() {
    let mut h = H::new(5);
    h.acquire(1, &["a", "b"], 1000, 0)
        .acquire(2, &["c", "d"], 1000, 100)
        .acquire(3, &["e"], 1000, 200);
    assert_clean(&h.check());
}

#[test]
fn a_pair_overlapping_on_several_resources_is_reported_once() {
    let mut h = H::new(5);
    h.acquire(1, &["a", "b"], 1000, 0)
        .acquire(2, &["b", "a"], 1000, 100);
    let report = h.check();
    assert_eq!(report.violations.len(), 1, "{report}");
    assert!(
        report.violations[0].message.contains("[\"a\", \"b\"]"),
        "{report}"
    );
}

#[test]
fn acq_ok_with_two_votes_of_five_violates_s2() {
    let mut h = H::new(5);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    h.reply(1, 0, 0, ReplyKind::Ok, 1)
        .reply(1, 0, 1, ReplyKind::Ok, 1);
    for inst in 2..5 {
        h.reply(1, 0, inst, ReplyKind::Err, 1);
    }
    h.acq_ok(1, 0, 1000, 0, 1, vec![0, 1]);
    let report = h.check();
    assert_only(&report, Invariant::S2);
    assert!(report.violations[0]
        .message
        .contains("2 supported votes of 5 instances (quorum 3)"));
}

#[test]
fn votes_that_are_not_ok_replies_of_this_attempt_violate_s2() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    h.reply(1, 0, 0, ReplyKind::Ok, 1)
        .reply(1, 0, 1, ReplyKind::Ok, 1);
    h.cleanup(1, 0, vec![0, 1, 2], 2).attempt(1, 1, 3);
    // Attempt 1 has one Ok and one Err (fail open), and counts a Late reply and attempt 0's Oks.
    h.reply(1, 1, 0, ReplyKind::Ok, 4)
        .reply(1, 1, 1, ReplyKind::Err, 4)
        .reply(1, 1, 2, ReplyKind::Late, 4);
    h.acq_ok(1, 1, 1000, 3, 4, vec![0, 1, 2]);
    let report = h.check();
    assert_only(&report, Invariant::S2);
    assert!(
        report.violations[0]
            .message
            .contains("votes [1, 2] without an Ok reply"),
        "{report}"
    );
}

#[test]
fn duplicate_votes_violate_s2() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0)
        .attempt(1, 0, 0)
        .reply(1, 0, 0, ReplyKind::Ok, 1);
    h.acq_ok(1, 0, 1000, 0, 1, vec![0, 0]);
    assert_only(&h.check(), Invariant::S2);
}

#[test]
fn ext_ok_without_a_quorum_of_votes_violates_s2() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 1000, 0).extend(10, 1, 1000, 100);
    if let Some(Event::ExtOk { votes, .. }) = h.ev.last_mut() {
        *votes = vec![3, 3, 4];
    }
    assert_only(&h.check(), Invariant::S2);
}

#[test]
fn wrong_validity_arithmetic_violates_s3() {
    // Drift not subtracted from valid_until (the recorded validity is right).
    let mut h = H::new(5);
    h.acquire(1, &["r"], 1000, 0);
    if let Some(Event::AcqOk {
        valid_until_client, ..
    }) = h.ev.last_mut()
    {
        *valid_until_client = 1000;
    }
    let report = h.check();
    assert!(report.has(Invariant::S3), "{report}");
    assert!(report
        .violations
        .iter()
        .all(|v| matches!(v.invariant, Invariant::S3 | Invariant::S1)));

    // Elapsed time ignored in validity.
    let mut h = H::new(5);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    for inst in 0..3 {
        h.reply(1, 0, inst, ReplyKind::Ok, 400);
    }
    h.acq_ok(1, 0, 1000, 0, 400, vec![0, 1, 2]);
    if let Some(Event::AcqOk { validity_ms, .. }) = h.ev.last_mut() {
        *validity_ms = 988;
    }
    assert_only(&h.check(), Invariant::S3);
}

#[test]
fn an_already_expired_lease_violates_s3() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    for inst in 0..3 {
        h.reply(1, 0, inst, ReplyKind::Ok, 995);
    }
    // Arithmetic is right, but validity = 1000 - 995 - 12 = -7.
    h.acq_ok(1, 0, 1000, 0, 995, vec![0, 1, 2]);
    let report = h.check();
    assert_only(&report, Invariant::S3);
    assert!(
        report.violations[0].message.contains("not above"),
        "{report}"
    );
}

#[test]
fn validity_not_above_min_validity_violates_s3() {
    let mut h = H::new(3);
    h.ev[0] = Event::config(3, 0.01, 2, 500);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    for inst in 0..3 {
        h.reply(1, 0, inst, ReplyKind::Ok, 488);
    }
    h.acq_ok(1, 0, 1000, 0, 488, vec![0, 1, 2]); // validity exactly 500
    assert_only(&h.check(), Invariant::S3);
}

#[test]
fn wrong_extension_arithmetic_violates_s3() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0).extend(10, 1, 1000, 100);
    if let Some(Event::ExtOk {
        valid_until_client, ..
    }) = h.ev.last_mut()
    {
        *valid_until_client += 50;
    }
    assert_only(&h.check(), Invariant::S3);
}

#[test]
fn ext_ok_after_release_violates_s4() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 1000, 0)
        .push(Event::RelInvoke { acq: 1, rt: 100 })
        .extend(10, 1, 1000, 150);
    assert_only(&h.check(), Invariant::S4);
}

#[test]
fn acq_ok_after_acq_fail_violates_s4() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    h.push(Event::AcqFail {
        acq: 1,
        reason: "no_quorum".into(),
        rt: 1,
    });
    for inst in 0..3 {
        h.reply(1, 0, inst, ReplyKind::Ok, 2);
    }
    h.acq_ok(1, 0, 1000, 0, 2, vec![0, 1, 2]);
    assert_only(&h.check(), Invariant::S4);
}

#[test]
fn duplicate_value_violates_s6() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0)
        .release(1, 10)
        .acquire(2, &["r"], 1000, 20);
    let v1 = val(1, 0);
    for e in &mut h.ev {
        match e {
            Event::AttemptStart { acq: 2, value, .. } | Event::AcqOk { acq: 2, value, .. } => {
                *value = v1.clone()
            }
            _ => {}
        }
    }
    let report = h.check();
    assert_only(&report, Invariant::S6);
    assert_eq!(report.violations[0].events.len(), 2);
    assert!(
        report.violations[0]
            .message
            .contains("different acquisitions"),
        "{report}"
    );
}

#[test]
fn value_reused_across_attempts_of_one_acquisition_violates_s6() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0)
        .attempt(1, 0, 0)
        .reply(1, 0, 0, ReplyKind::Nil, 1);
    h.cleanup(1, 0, vec![0, 1, 2], 2).attempt(1, 1, 3);
    if let Some(Event::AttemptStart { value, .. }) = h.ev.last_mut() {
        *value = val(1, 0);
    }
    let report = h.check();
    assert_only(&report, Invariant::S6);
    assert!(
        report.violations[0]
            .message
            .contains("attempts of one acquisition"),
        "{report}"
    );
}

#[test]
fn weak_values_are_a_warning_not_a_violation() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0);
    for e in &mut h.ev {
        if let Event::AttemptStart { value, .. } | Event::AcqOk { value, .. } = e {
            *value = "client1-42".into();
        }
    }
    let report = h.check();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].invariant, Invariant::S6);
    assert!(report.warnings[0].message.contains("weak"), "{report}");
}

#[test]
fn failed_attempt_without_cleanup_of_an_instance_violates_s7() {
    let mut h = H::new(5);
    h.invoke(1, &["r"], 1000, 0).attempt(1, 0, 0);
    h.reply(1, 0, 0, ReplyKind::Ok, 1)
        .reply(1, 0, 1, ReplyKind::Nil, 1)
        .reply(1, 0, 2, ReplyKind::Nil, 1);
    h.reply(1, 0, 3, ReplyKind::Nil, 1)
        .reply(1, 0, 4, ReplyKind::Timeout, 30);
    // The timed-out instance may hold the key but is left out.
    h.cleanup(1, 0, vec![0, 1, 2, 3], 31);
    h.push(Event::AcqFail {
        acq: 1,
        reason: "contended".into(),
        rt: 31,
    });
    let report = h.check();
    assert_only(&report, Invariant::S7);
    assert!(report.violations[0].message.contains("{4}"), "{report}");
}

#[test]
fn failed_attempt_with_no_cleanup_at_all_violates_s7() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0)
        .attempt(1, 0, 0)
        .reply(1, 0, 0, ReplyKind::Ok, 1);
    // Attempt 0 is abandoned without cleanup; attempt 1 wins; the lock release is recorded.
    h.attempt(1, 1, 10);
    for inst in 0..3 {
        h.reply(1, 1, inst, ReplyKind::Ok, 11);
    }
    h.acq_ok(1, 1, 1000, 10, 11, vec![0, 1, 2]).release(1, 50);
    let report = h.check();
    assert_only(&report, Invariant::S7);
    assert!(
        report.violations[0].message.contains("has no cleanup"),
        "{report}"
    );
}

#[test]
fn cleanup_is_not_checked_when_the_history_records_no_release_sent() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0)
        .attempt(1, 0, 0)
        .reply(1, 0, 0, ReplyKind::Ok, 1);
    h.push(Event::AcqFail {
        acq: 1,
        reason: "no_quorum".into(),
        rt: 2,
    });
    assert_clean(&h.check());
}

#[test]
fn an_undecided_attempt_at_the_end_of_the_history_is_not_checked_for_cleanup() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0)
        .attempt(1, 0, 0)
        .reply(1, 0, 0, ReplyKind::Nil, 1);
    h.cleanup(1, 0, vec![0, 1, 2], 2)
        .attempt(1, 1, 10)
        .reply(1, 1, 0, ReplyKind::Ok, 11);
    assert_clean(&h.check());
}

#[test]
fn resurrecting_extension_violates_s8() {
    let mut h = H::new(5);
    // The lease ends at 988; the extension is invoked at 1500 and "succeeds" (a SET-NX extend).
    h.acquire(1, &["r"], 1000, 0).extend(10, 1, 1000, 1500);
    let report = h.check();
    assert_only(&report, Invariant::S8);
    assert!(
        report.violations[0].message.contains("resurrection"),
        "{report}"
    );
}

#[test]
fn a_resurrected_lease_does_not_count_for_mutual_exclusion() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 1000, 0)
        .acquire(2, &["r"], 1000, 1000)
        .extend(10, 1, 1000, 1500);
    // Only the resurrection is reported: acq 1's tenure still ends at 988.
    assert_only(&h.check(), Invariant::S8);
}

#[test]
fn deadline_kept_after_a_failed_extension_violates_s8() {
    let mut h = H::new(5);
    h.acquire(1, &["r"], 10_000, 0)
        .push(Event::ExtInvoke {
            ext: 10,
            acq: 1,
            ttl_ms: 100,
            t1_client: 200,
            rt: 200,
        })
        .push(Event::ExtFail {
            ext: 10,
            acq: 1,
            valid_until_client: 9898, // should be at most 200 + 100 - 3 = 297
            valid_until_rt: None,
            rt: 205,
        });
    let report = h.check();
    assert_only(&report, Invariant::S8);
    assert!(report.violations[0].message.contains("297"), "{report}");
}

#[test]
fn extension_of_a_lock_never_acquired_violates_s8() {
    let mut h = H::new(3);
    h.invoke(1, &["r"], 1000, 0).extend(10, 1, 1000, 5);
    assert!(h.check().has(Invariant::S8));
}

#[test]
fn overlapping_work_windows_are_reported_as_work_overlap_not_s1() {
    let mut h = H::new(5);
    // acq 1's lease ends at 988 but its holder (paused) works until 1500; acq 2 holds from 1000.
    h.acquire(1, &["r"], 1000, 0)
        .push(Event::WorkStart { acq: 1, rt: 10 })
        .acquire(2, &["r"], 1000, 1000)
        .work(2, 1010, 1200)
        .push(Event::WorkEnd { acq: 1, rt: 1500 });
    let report = h.check();
    assert_only(&report, Invariant::WorkOverlap);
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.invariant == Invariant::WorkBeyondTenure
                && w.message.contains("acquisition 1"))
    );
    assert_eq!(report.violations[0].events.len(), 4);
}

#[test]
fn unclosed_work_window_is_a_warning() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0)
        .push(Event::WorkStart { acq: 1, rt: 5 });
    let report = h.check();
    assert!(report.is_ok(), "{report}");
    assert!(report
        .warnings
        .iter()
        .any(|w| w.message.contains("never closed")));
}

#[test]
fn config_with_wrong_quorum_is_an_error() {
    let mut h = H::new(5);
    h.ev[0] = Event::Config {
        n: 5,
        quorum: Some(2),
        drift_factor: 0.01,
        drift_pad_ms: 2,
        min_validity_ms: 0,
    };
    h.acquire(1, &["r"], 1000, 0);
    assert_only(&h.check(), Invariant::Config);
}

#[test]
fn missing_or_disagreeing_config_is_an_error() {
    let mut h = H::new(3);
    h.acquire(1, &["r"], 1000, 0);
    assert!(check(&h.ev[1..]).has(Invariant::Config));
    h.push(Event::config(5, 0.01, 2, 0));
    assert_only(&h.check(), Invariant::Config);
}

#[test]
fn events_of_unknown_acquisitions_are_inconsistent() {
    let mut h = H::new(3);
    h.push(Event::RelInvoke { acq: 9, rt: 1 });
    assert_only(&h.check(), Invariant::Consistency);
}

#[test]
fn every_event_round_trips_through_json_lines() {
    let mut h = clean_history();
    h.push(Event::RelDone {
        acq: 1,
        per_inst: vec![
            RelInstResult {
                inst: 0,
                result: RelOutcome::Reply(0),
            },
            RelInstResult {
                inst: 1,
                result: RelOutcome::Failed(RelFailure::Err),
            },
            RelInstResult {
                inst: 2,
                result: RelOutcome::Failed(RelFailure::Timeout),
            },
        ],
        rt: 3000,
    });
    let mut buf = Vec::new();
    crate::write_jsonl(&mut buf, &h.ev).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(text.contains(r#"{"ev":"RelDone","acq":1,"per_inst":[{"inst":0,"result":0},{"inst":1,"result":"err"},{"inst":2,"result":"timeout"}],"rt":3000}"#), "{text}");
    assert!(text.contains(r#""kind":"Ok""#));
    let back: Vec<Event> = crate::read_jsonl(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(back, h.ev);
}

#[test]
fn optional_fields_may_be_omitted_or_null() {
    let e = Event::from_json(
        r#"{"ev":"Config","n":5,"drift_factor":0.01,"drift_pad_ms":2,"min_validity_ms":0}"#,
    )
    .unwrap();
    assert!(matches!(e, Event::Config { quorum: None, .. }));
    let e = Event::from_json(r#"{"ev":"ReleaseSent","acq":1,"insts":[0,1],"rt":5}"#).unwrap();
    assert!(matches!(e, Event::ReleaseSent { attempt: None, .. }));
    let e = Event::from_json(r#"{"ev":"Fault","kind":"Stop","inst":null,"rt":5}"#).unwrap();
    assert!(matches!(
        e,
        Event::Fault {
            inst: None,
            detail: None,
            ..
        }
    ));
    assert!(Event::from_json(r#"{"ev":"Nope","rt":1}"#).is_err());
}

#[test]
fn bad_json_reports_its_line_number() {
    let text = "{\"ev\":\"RelInvoke\",\"acq\":1,\"rt\":1}\n\n{\"ev\":\"RelInvoke\",\"acq\":";
    match crate::read_jsonl(text.as_bytes()) {
        Err(crate::ReadError::Json { line, .. }) => assert_eq!(line, 3),
        other => panic!("expected a JSON error, got {other:?}"),
    }
}
