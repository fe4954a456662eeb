//! The invariant checks over one history.
//!
//! The history is processed in common-clock order: events are stably sorted by `rt` (ties keep slice
//! order, so one client's events recorded at the same millisecond stay in the order it wrote them).
//! Every index in a [`Violation`] is an index into the slice given to [`check`].

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::event::{floor_product, quorum, Event, ReplyKind};
use crate::report::{Invariant, InvolvedEvent, Report, Summary, Violation};

/// Collects events (pushed one by one by a simulation, or loaded from files) and checks them.
///
/// ```
/// use redlock_history::{Checker, Event};
///
/// let mut checker = Checker::with_config(5, 0.01, 2, 0);
/// checker.push(Event::AcqInvoke { acq: 1, client: 7, resources: vec!["r".into()], ttl_ms: 10_000, rt: 0 });
/// let report = checker.check();
/// assert!(report.is_ok(), "{report}");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Checker {
    events: Vec<Event>,
}

impl Checker {
    /// An empty history (push a [`Event::Config`] first).
    pub fn new() -> Self {
        Self::default()
    }

    /// A history that starts with [`Event::config`]`(n, drift_factor, drift_pad_ms, min_validity_ms)`.
    pub fn with_config(n: u32, drift_factor: f64, drift_pad_ms: u64, min_validity_ms: u64) -> Self {
        Self {
            events: vec![Event::config(
                n,
                drift_factor,
                drift_pad_ms,
                min_validity_ms,
            )],
        }
    }

    /// Appends one event.
    pub fn push(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The events so far, in push order.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Number of events so far.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when no event was pushed.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Checks the history (see [`check`]).
    pub fn check(&self) -> Report {
        check(&self.events)
    }

    /// Writes the history as JSON lines (e.g. to keep a failing simulation run as a fixture).
    pub fn write_jsonl<W: Write>(&self, writer: W) -> io::Result<()> {
        crate::io::write_jsonl(writer, &self.events)
    }

    /// The events, consuming the checker.
    pub fn into_events(self) -> Vec<Event> {
        self.events
    }
}

impl Extend<Event> for Checker {
    fn extend<T: IntoIterator<Item = Event>>(&mut self, iter: T) {
        self.events.extend(iter);
    }
}

/// Checks a history against the safety invariants and returns every violation found.
///
/// Events need not be sorted: they are processed in stable `rt` order. Indexes in the report refer to
/// `events`.
pub fn check(events: &[Event]) -> Report {
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| (events[i].rt().unwrap_or(0), i));
    let mut pos = vec![0; events.len()];
    for (p, &i) in order.iter().enumerate() {
        pos[i] = p;
    }
    let mut sink = Sink {
        events,
        pos,
        violations: Vec::new(),
        warnings: Vec::new(),
    };
    let cfg = check_config(events, &order, &mut sink);
    let (index, mut summary) = build_index(events, &order, cfg.as_ref(), &mut sink);

    if let Some(cfg) = &cfg {
        check_acq_ok(&index, cfg, &mut sink);
        check_ext_ok(&index, cfg, &mut sink);
    }
    check_outcome_order(&index, &mut sink);
    check_values(&index, &mut sink);
    check_cleanup(&index, &mut sink);
    let tenures = check_tenures(&index, cfg.as_ref(), &mut sink);
    check_mutual_exclusion(&index, &tenures, &mut sink);
    summary.work_windows = check_work(&index, &tenures, &mut sink);

    let Sink {
        pos,
        mut violations,
        mut warnings,
        ..
    } = sink;
    let first_pos = |v: &Violation| v.events.first().map_or(0, |e| pos[e.index]);
    violations.sort_by_key(first_pos);
    warnings.sort_by_key(first_pos);
    for v in &violations {
        *summary
            .violations_by_invariant
            .entry(v.invariant.id().to_owned())
            .or_insert(0) += 1;
    }
    for w in &warnings {
        *summary
            .warnings_by_invariant
            .entry(w.invariant.id().to_owned())
            .or_insert(0) += 1;
    }
    Report {
        summary,
        violations,
        warnings,
    }
}

/// The usable configuration.
#[derive(Debug, Clone, Copy)]
struct Cfg {
    n: u32,
    q: u32,
    drift_factor: f64,
    drift_pad_ms: u64,
    min_validity_ms: u64,
}

impl Cfg {
    /// The drift values accepted for `ttl`: `floor(ttl·ρ) + pad`, computed plainly and with a tiny
    /// epsilon, so a recorder whose float rounding lands just below an integer is not flagged.
    fn drifts(&self, ttl: u64) -> [i128; 2] {
        let plain = floor_product(ttl, self.drift_factor, 0.0).saturating_add(self.drift_pad_ms);
        let eps = floor_product(ttl, self.drift_factor, 1e-9).saturating_add(self.drift_pad_ms);
        [i128::from(plain), i128::from(eps)]
    }
}

/// Collects violations and warnings.
struct Sink<'a> {
    events: &'a [Event],
    pos: Vec<usize>,
    violations: Vec<Violation>,
    warnings: Vec<Violation>,
}

impl Sink<'_> {
    fn involved(&self, idxs: &[usize]) -> Vec<InvolvedEvent> {
        let mut idxs: Vec<usize> = idxs.to_vec();
        idxs.sort_by_key(|&i| self.pos[i]);
        idxs.dedup();
        idxs.into_iter()
            .map(|index| InvolvedEvent {
                index,
                event: self.events[index].clone(),
            })
            .collect()
    }

    fn violation(&mut self, invariant: Invariant, message: String, idxs: &[usize]) {
        let events = self.involved(idxs);
        self.violations.push(Violation {
            invariant,
            message,
            events,
        });
    }

    fn warning(&mut self, invariant: Invariant, message: String, idxs: &[usize]) {
        let events = self.involved(idxs);
        self.warnings.push(Violation {
            invariant,
            message,
            events,
        });
    }

    fn rt(&self, i: usize) -> u64 {
        self.events[i].rt().unwrap_or(0)
    }
}

/// What is known about one attempt.
#[derive(Debug, Default)]
struct AttemptInfo {
    start: Option<usize>,
    replies: Vec<usize>,
    cleanups: Vec<usize>,
    ok: Option<usize>,
}

/// What is known about one acquisition.
#[derive(Debug, Default)]
struct AcqInfo {
    invoke: Option<usize>,
    attempts: BTreeMap<u32, AttemptInfo>,
    ok: Option<usize>,
    fail: Option<usize>,
    rel: Option<usize>,
    has_release_sent: bool,
    ext_outcomes: Vec<usize>,
    work: Vec<(usize, usize)>,
    open_work: Option<usize>,
}

impl AcqInfo {
    fn resources<'e>(&self, events: &'e [Event]) -> Vec<&'e str> {
        let mut out: Vec<&str> = match self.invoke.map(|i| &events[i]) {
            Some(Event::AcqInvoke { resources, .. }) => {
                resources.iter().map(String::as_str).collect()
            }
            _ => Vec::new(),
        };
        out.sort_unstable();
        out.dedup();
        out
    }

    fn ttl(&self, events: &[Event]) -> Option<u64> {
        match self.invoke.map(|i| &events[i]) {
            Some(Event::AcqInvoke { ttl_ms, .. }) => Some(*ttl_ms),
            _ => None,
        }
    }
}

/// What is known about one extension.
#[derive(Debug)]
struct ExtInfo {
    invoke: usize,
    acq: u64,
    outcome: Option<usize>,
}

/// The history, grouped by acquisition and extension.
struct Index {
    acqs: BTreeMap<u64, AcqInfo>,
    exts: BTreeMap<u64, ExtInfo>,
}

fn check_config(events: &[Event], order: &[usize], sink: &mut Sink<'_>) -> Option<Cfg> {
    let configs: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| matches!(events[i], Event::Config { .. }))
        .collect();
    let Some(&first) = configs.first() else {
        sink.violation(
            Invariant::Config,
            "the history has no Config event".to_owned(),
            &[],
        );
        return None;
    };
    for &other in &configs[1..] {
        if events[other] != events[first] {
            sink.violation(
                Invariant::Config,
                "two Config events disagree".to_owned(),
                &[first, other],
            );
        }
    }
    let Event::Config {
        n,
        quorum: stated,
        drift_factor,
        drift_pad_ms,
        min_validity_ms,
    } = events[first]
    else {
        return None;
    };
    let q = quorum(n);
    let mut usable = true;
    if n == 0 {
        sink.violation(
            Invariant::Config,
            "Config has n = 0 instances".to_owned(),
            &[first],
        );
        usable = false;
    }
    if let Some(stated) = stated {
        if stated != q {
            sink.violation(
                Invariant::Config,
                format!("Config states quorum {stated} but n = {n} requires n/2+1 = {q}"),
                &[first],
            );
        }
    }
    if !drift_factor.is_finite() || drift_factor < 0.0 {
        sink.violation(
            Invariant::Config,
            format!("Config drift_factor {drift_factor} is not a finite non-negative number"),
            &[first],
        );
        usable = false;
    }
    usable.then_some(Cfg {
        n,
        q,
        drift_factor,
        drift_pad_ms,
        min_validity_ms,
    })
}

fn build_index(
    events: &[Event],
    order: &[usize],
    cfg: Option<&Cfg>,
    sink: &mut Sink<'_>,
) -> (Index, Summary) {
    let mut summary = Summary {
        events: events.len() as u64,
        instances: cfg.map_or(0, |c| c.n),
        quorum: cfg.map_or(0, |c| c.q),
        ..Summary::default()
    };
    let mut acqs: BTreeMap<u64, AcqInfo> = BTreeMap::new();
    let mut exts: BTreeMap<u64, ExtInfo> = BTreeMap::new();
    let mut unknown_reported: BTreeSet<u64> = BTreeSet::new();
    let n = cfg.map(|c| c.n);

    for &i in order {
        let ev = &events[i];
        if let Some(acq) = ev.acq() {
            if !matches!(ev, Event::AcqInvoke { .. })
                && acqs.get(&acq).map_or(true, |a| a.invoke.is_none())
                && unknown_reported.insert(acq)
            {
                sink.violation(
                    Invariant::Consistency,
                    format!(
                        "{} refers to acquisition {acq}, which has no earlier AcqInvoke",
                        ev.name()
                    ),
                    &[i],
                );
            }
        }
        let out_of_range = |inst: u32| n.is_some_and(|n| inst >= n);
        match ev {
            Event::Config { .. } => {}
            Event::AcqInvoke { acq, resources, .. } => {
                summary.acquisitions += 1;
                let info = acqs.entry(*acq).or_default();
                if let Some(prev) = info.invoke {
                    sink.violation(
                        Invariant::Consistency,
                        format!("acquisition id {acq} is invoked twice"),
                        &[prev, i],
                    );
                } else {
                    info.invoke = Some(i);
                    if resources.is_empty() {
                        sink.violation(
                            Invariant::Consistency,
                            format!("acquisition {acq} names no resource"),
                            &[i],
                        );
                    }
                }
            }
            Event::AttemptStart { acq, attempt, .. } => {
                summary.attempts += 1;
                let att = acqs
                    .entry(*acq)
                    .or_default()
                    .attempts
                    .entry(*attempt)
                    .or_default();
                if let Some(prev) = att.start {
                    sink.violation(
                        Invariant::Consistency,
                        format!("attempt {attempt} of acquisition {acq} starts twice"),
                        &[prev, i],
                    );
                } else {
                    att.start = Some(i);
                }
            }
            Event::InstReply {
                acq, attempt, inst, ..
            } => {
                summary.inst_replies += 1;
                if out_of_range(*inst) {
                    sink.violation(
                        Invariant::Consistency,
                        format!("reply from instance {inst}, outside 0..{}", n.unwrap_or(0)),
                        &[i],
                    );
                }
                let att = acqs
                    .entry(*acq)
                    .or_default()
                    .attempts
                    .entry(*attempt)
                    .or_default();
                if att.start.is_none() {
                    sink.violation(
                        Invariant::Consistency,
                        format!("reply for attempt {attempt} of acquisition {acq}, which has no earlier AttemptStart"),
                        &[i],
                    );
                }
                att.replies.push(i);
            }
            Event::AcqOk { acq, attempt, .. } => {
                summary.acquired += 1;
                let info = acqs.entry(*acq).or_default();
                if let Some(prev) = info.ok {
                    sink.violation(
                        Invariant::Consistency,
                        format!("acquisition {acq} succeeds twice"),
                        &[prev, i],
                    );
                } else {
                    info.ok = Some(i);
                    info.attempts.entry(*attempt).or_default().ok = Some(i);
                }
            }
            Event::AcqFail { acq, .. } => {
                summary.acquire_failed += 1;
                let info = acqs.entry(*acq).or_default();
                if let Some(prev) = info.fail {
                    sink.violation(
                        Invariant::Consistency,
                        format!("acquisition {acq} fails twice"),
                        &[prev, i],
                    );
                } else {
                    info.fail = Some(i);
                }
            }
            Event::ReleaseSent {
                acq,
                attempt,
                insts,
                ..
            } => {
                if let Some(bad) = insts.iter().find(|&&x| out_of_range(x)) {
                    sink.violation(
                        Invariant::Consistency,
                        format!(
                            "release sent to instance {bad}, outside 0..{}",
                            n.unwrap_or(0)
                        ),
                        &[i],
                    );
                }
                let info = acqs.entry(*acq).or_default();
                info.has_release_sent = true;
                if let Some(attempt) = attempt {
                    summary.cleanups += 1;
                    info.attempts.entry(*attempt).or_default().cleanups.push(i);
                }
            }
            Event::ExtInvoke { ext, acq, .. } => {
                summary.extensions += 1;
                acqs.entry(*acq).or_default();
                if let Some(prev) = exts.get(ext) {
                    sink.violation(
                        Invariant::Consistency,
                        format!("extension id {ext} is invoked twice"),
                        &[prev.invoke, i],
                    );
                } else {
                    exts.insert(
                        *ext,
                        ExtInfo {
                            invoke: i,
                            acq: *acq,
                            outcome: None,
                        },
                    );
                }
            }
            Event::ExtOk { ext, acq, .. } | Event::ExtFail { ext, acq, .. } => {
                if matches!(ev, Event::ExtOk { .. }) {
                    summary.extensions_ok += 1;
                } else {
                    summary.extensions_failed += 1;
                }
                match exts.get_mut(ext) {
                    None => sink.violation(
                        Invariant::Consistency,
                        format!(
                            "{} for extension {ext}, which has no earlier ExtInvoke",
                            ev.name()
                        ),
                        &[i],
                    ),
                    Some(x) if x.acq != *acq => {
                        let invoke = x.invoke;
                        sink.violation(
                            Invariant::Consistency,
                            format!("{} for extension {ext} names acquisition {acq}, its ExtInvoke names {}", ev.name(), x.acq),
                            &[invoke, i],
                        );
                    }
                    Some(x) => {
                        if let Some(prev) = x.outcome {
                            sink.violation(
                                Invariant::Consistency,
                                format!("extension {ext} has two outcomes"),
                                &[prev, i],
                            );
                        } else {
                            x.outcome = Some(i);
                            acqs.entry(*acq).or_default().ext_outcomes.push(i);
                        }
                    }
                }
            }
            Event::RelInvoke { acq, .. } => {
                summary.releases += 1;
                let info = acqs.entry(*acq).or_default();
                // A release may be retried; the first one ends the tenure.
                info.rel.get_or_insert(i);
            }
            Event::RelDone { acq, per_inst, .. } => {
                summary.releases_done += 1;
                acqs.entry(*acq).or_default();
                if let Some(bad) = per_inst.iter().find(|r| out_of_range(r.inst)) {
                    sink.violation(
                        Invariant::Consistency,
                        format!(
                            "release result for instance {}, outside 0..{}",
                            bad.inst,
                            n.unwrap_or(0)
                        ),
                        &[i],
                    );
                }
            }
            Event::WorkStart { acq, .. } => {
                let info = acqs.entry(*acq).or_default();
                if let Some(open) = info.open_work {
                    sink.violation(
                        Invariant::Consistency,
                        format!("acquisition {acq} starts work while a work window is open"),
                        &[open, i],
                    );
                } else {
                    info.open_work = Some(i);
                }
            }
            Event::WorkEnd { acq, .. } => {
                let info = acqs.entry(*acq).or_default();
                if let Some(start) = info.open_work.take() {
                    info.work.push((start, i));
                } else {
                    sink.violation(
                        Invariant::Consistency,
                        format!("acquisition {acq} ends work that was not started"),
                        &[i],
                    );
                }
            }
            Event::Fault { kind, .. } => {
                *summary.faults_by_kind.entry(kind.clone()).or_insert(0) += 1;
            }
        }
    }
    (Index { acqs, exts }, summary)
}

/// S2, S3 and value/t1 consistency for every `AcqOk`.
fn check_acq_ok(index: &Index, cfg: &Cfg, sink: &mut Sink<'_>) {
    let events = sink.events;
    for (acq, info) in &index.acqs {
        let Some(ok) = info.ok else { continue };
        let Event::AcqOk {
            attempt,
            value,
            valid_until_client,
            t1_client,
            t2_client,
            validity_ms,
            votes,
            ..
        } = &events[ok]
        else {
            continue;
        };
        let att = info.attempts.get(attempt);

        // S2: every vote is a distinct instance that answered Ok to this very attempt, recorded no later
        // (in rt) than the AcqOk.
        let mut seen = BTreeSet::new();
        let mut duplicates = Vec::new();
        let mut unsupported = Vec::new();
        let mut supported = 0u32;
        for &v in votes {
            if !seen.insert(v) {
                duplicates.push(v);
                continue;
            }
            let has_ok = att.is_some_and(|a| {
                a.replies.iter().any(|&r| {
                    sink.rt(r) <= sink.rt(ok)
                        && matches!(events[r], Event::InstReply { inst, kind: ReplyKind::Ok, .. } if inst == v)
                })
            });
            if has_ok && v < cfg.n {
                supported += 1;
            } else {
                unsupported.push(v);
            }
        }
        if supported < cfg.q || !duplicates.is_empty() || !unsupported.is_empty() {
            let mut problems = vec![format!(
                "{supported} supported votes of {} instances (quorum {})",
                cfg.n, cfg.q
            )];
            if !duplicates.is_empty() {
                problems.push(format!("duplicate votes {duplicates:?}"));
            }
            if !unsupported.is_empty() {
                problems.push(format!(
                    "votes {unsupported:?} without an Ok reply to this attempt"
                ));
            }
            let mut idxs = vec![ok];
            if let Some(a) = att {
                idxs.extend(a.start);
                idxs.extend(a.replies.iter().copied());
            }
            sink.violation(
                Invariant::S2,
                format!(
                    "AcqOk of acquisition {acq} attempt {attempt}: {}",
                    problems.join("; ")
                ),
                &idxs,
            );
        }

        // The AcqOk must describe the attempt it names.
        if let Some(start) = att.and_then(|a| a.start) {
            if let Event::AttemptStart {
                value: v0,
                t1_client: t0,
                ..
            } = &events[start]
            {
                if v0 != value {
                    sink.violation(
                        Invariant::Consistency,
                        format!("AcqOk of acquisition {acq} attempt {attempt} reports value {value:?}, the attempt wrote {v0:?}"),
                        &[start, ok],
                    );
                }
                if t0 != t1_client {
                    sink.violation(
                        Invariant::S3,
                        format!("AcqOk of acquisition {acq} attempt {attempt} reports t1 {t1_client}, the attempt started at t1 {t0}"),
                        &[start, ok],
                    );
                }
            }
        } else {
            sink.violation(
                Invariant::Consistency,
                format!("AcqOk of acquisition {acq} names attempt {attempt}, which has no earlier AttemptStart"),
                &[ok],
            );
        }

        // S3.
        if let (Some(ttl), Some(inv)) = (info.ttl(events), info.invoke) {
            let what = format!("AcqOk of acquisition {acq} attempt {attempt}");
            check_validity(
                sink,
                cfg,
                &what,
                Lease {
                    ttl,
                    t1: *t1_client,
                    t2: *t2_client,
                    validity: *validity_ms,
                    valid_until: *valid_until_client,
                },
                &[inv, ok],
            );
        }
    }
}

/// The numbers of one successful acquisition or extension.
#[derive(Debug, Clone, Copy)]
struct Lease {
    ttl: u64,
    t1: u64,
    t2: u64,
    validity: i64,
    valid_until: u64,
}

/// S3 for one success.
fn check_validity(sink: &mut Sink<'_>, cfg: &Cfg, what: &str, lease: Lease, idxs: &[usize]) {
    let Lease {
        ttl,
        t1,
        t2,
        validity,
        valid_until,
    } = lease;
    if t2 < t1 {
        sink.violation(
            Invariant::S3,
            format!("{what}: t2 {t2} is before t1 {t1} on the client clock"),
            idxs,
        );
    }
    let (ttl, t1w, t2w) = (i128::from(ttl), i128::from(t1), i128::from(t2));
    let drifts = cfg.drifts(lease.ttl);
    let expect = |d: i128| (ttl - (t2w - t1w) - d, t1w + ttl - d);
    let matched = drifts
        .iter()
        .copied()
        .find(|&d| expect(d) == (i128::from(validity), i128::from(valid_until)));
    let drift = matched.unwrap_or(drifts[0]);
    let (exp_validity, exp_until) = expect(drift);
    if matched.is_none() {
        sink.violation(
            Invariant::S3,
            format!(
                "{what}: recorded validity {validity} / valid_until {valid_until}, expected ttl {ttl} - (t2 - t1) {} - drift {drift} = {exp_validity} / t1 + ttl - drift = {exp_until}",
                t2w - t1w
            ),
            idxs,
        );
    }
    let floor = i128::from(cfg.min_validity_ms).max(0);
    let least = exp_validity.min(i128::from(validity));
    if least <= floor {
        sink.violation(
            Invariant::S3,
            format!("{what}: validity {least} is not above max(0, min_validity) = {floor}"),
            idxs,
        );
    }
}

/// S2 (vote count) and S3 for every `ExtOk`.
fn check_ext_ok(index: &Index, cfg: &Cfg, sink: &mut Sink<'_>) {
    let events = sink.events;
    for (ext, x) in &index.exts {
        let Some(o) = x.outcome else { continue };
        let Event::ExtOk {
            valid_until_client,
            validity_ms,
            votes,
            t1_client,
            t2_client,
            ..
        } = &events[o]
        else {
            continue;
        };
        let Event::ExtInvoke {
            ttl_ms,
            t1_client: t1_inv,
            ..
        } = &events[x.invoke]
        else {
            continue;
        };
        let distinct: BTreeSet<u32> = votes.iter().copied().collect();
        let in_range = distinct.iter().filter(|&&v| v < cfg.n).count();
        if distinct.len() != votes.len() || in_range < cfg.q as usize || in_range != distinct.len()
        {
            sink.violation(
                Invariant::S2,
                format!(
                    "ExtOk of extension {ext} (acquisition {}): votes {votes:?} are not {} distinct instances of 0..{}",
                    x.acq, cfg.q, cfg.n
                ),
                &[x.invoke, o],
            );
        }
        if t1_inv != t1_client {
            sink.violation(
                Invariant::S3,
                format!("ExtOk of extension {ext} reports t1 {t1_client}, its ExtInvoke has t1 {t1_inv}"),
                &[x.invoke, o],
            );
        }
        let what = format!("ExtOk of extension {ext} (acquisition {})", x.acq);
        check_validity(
            sink,
            cfg,
            &what,
            Lease {
                ttl: *ttl_ms,
                t1: *t1_client,
                t2: *t2_client,
                validity: *validity_ms,
                valid_until: *valid_until_client,
            },
            &[x.invoke, o],
        );
    }
}

/// S4: no `AcqOk` after `AcqFail`, no `ExtOk` after `RelInvoke`.
fn check_outcome_order(index: &Index, sink: &mut Sink<'_>) {
    for (acq, info) in &index.acqs {
        if let (Some(ok), Some(fail)) = (info.ok, info.fail) {
            if sink.pos[ok] > sink.pos[fail] {
                sink.violation(
                    Invariant::S4,
                    format!("acquisition {acq} succeeds after it failed"),
                    &[fail, ok],
                );
            } else {
                sink.violation(
                    Invariant::Consistency,
                    format!("acquisition {acq} fails after it succeeded"),
                    &[ok, fail],
                );
            }
        }
        if let Some(rel) = info.rel {
            for &o in &info.ext_outcomes {
                if matches!(sink.events[o], Event::ExtOk { .. }) && sink.pos[o] > sink.pos[rel] {
                    sink.violation(
                        Invariant::S4,
                        format!("acquisition {acq} is extended after its release began"),
                        &[rel, o],
                    );
                }
            }
        }
    }
}

/// True unless the value is at least 32 hexadecimal digits (128 bits).
fn is_weak_value(value: &str) -> bool {
    value.len() < 32 || !value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// S6: values are pairwise distinct; weak values are warned about.
fn check_values(index: &Index, sink: &mut Sink<'_>) {
    let events = sink.events;
    let mut by_value: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for info in index.acqs.values() {
        for att in info.attempts.values() {
            if let Some(start) = att.start {
                if let Event::AttemptStart { value, .. } = &events[start] {
                    by_value.entry(value.as_str()).or_default().push(start);
                }
            }
        }
    }
    let mut weak = Vec::new();
    for (value, starts) in &by_value {
        if is_weak_value(value) {
            weak.extend(starts.iter().copied());
        }
        if starts.len() > 1 {
            let acqs: BTreeSet<u64> = starts.iter().filter_map(|&s| events[s].acq()).collect();
            let scope = if acqs.len() == 1 {
                "attempts of one acquisition"
            } else {
                "different acquisitions"
            };
            sink.violation(
                Invariant::S6,
                format!(
                    "value {value:?} is written by {} {scope} ({acqs:?})",
                    starts.len()
                ),
                starts,
            );
        }
    }
    if !weak.is_empty() {
        weak.sort_by_key(|&i| sink.pos[i]);
        let example = match &events[weak[0]] {
            Event::AttemptStart { value, .. } => value.clone(),
            _ => String::new(),
        };
        let shown: Vec<usize> = weak.iter().copied().take(5).collect();
        sink.warning(
            Invariant::S6,
            format!(
                "{} attempts use weak values (fewer than 32 hex digits), e.g. {example:?}",
                weak.len()
            ),
            &shown,
        );
    }
}

/// S7: a failed attempt's cleanup covers every instance that replied to it.
///
/// Best effort: only acquisitions that recorded at least one `ReleaseSent`, and only attempts known to be
/// over without success (a later attempt exists, the acquisition failed, or another attempt won).
fn check_cleanup(index: &Index, sink: &mut Sink<'_>) {
    let events = sink.events;
    for (acq, info) in &index.acqs {
        if !info.has_release_sent {
            continue;
        }
        let last_attempt = info.attempts.keys().next_back().copied();
        for (attempt, att) in &info.attempts {
            if att.ok.is_some() || att.replies.is_empty() {
                continue;
            }
            let over = info.fail.is_some()
                || info.ok.is_some()
                || last_attempt.is_some_and(|l| l > *attempt);
            if !over {
                continue;
            }
            let covered: BTreeSet<u32> = att
                .cleanups
                .iter()
                .filter_map(|&c| match &events[c] {
                    Event::ReleaseSent { insts, .. } => Some(insts.iter().copied()),
                    _ => None,
                })
                .flatten()
                .collect();
            let mut missing = BTreeSet::new();
            let mut idxs: Vec<usize> = att
                .start
                .into_iter()
                .chain(att.cleanups.iter().copied())
                .collect();
            for &r in &att.replies {
                if let Event::InstReply { inst, .. } = events[r] {
                    if !covered.contains(&inst) {
                        missing.insert(inst);
                        idxs.push(r);
                    }
                }
            }
            if !missing.is_empty() {
                let how = if att.cleanups.is_empty() {
                    "has no cleanup ReleaseSent".to_owned()
                } else {
                    "cleanup misses".to_owned()
                };
                sink.violation(
                    Invariant::S7,
                    format!("failed attempt {attempt} of acquisition {acq} {how}: instances {missing:?} replied to it"),
                    &idxs,
                );
            }
        }
    }
}

/// One acquisition's tenure H(a) = [start, end) on the common clock.
#[derive(Debug, Clone, Copy)]
struct Tenure {
    start: u64,
    end: u64,
    /// The `AcqOk`.
    ok: usize,
    /// The event that fixes `end`: the `AcqOk`, the last counted `ExtOk`/`ExtFail`, or the `RelInvoke`.
    end_event: usize,
}

/// Builds the tenures and checks S8 along the extension chain.
fn check_tenures(index: &Index, cfg: Option<&Cfg>, sink: &mut Sink<'_>) -> BTreeMap<u64, Tenure> {
    let events = sink.events;
    let mut tenures = BTreeMap::new();
    for (acq, info) in &index.acqs {
        let Some(ok) = info.ok else {
            for &o in &info.ext_outcomes {
                if matches!(events[o], Event::ExtOk { .. }) {
                    sink.violation(
                        Invariant::S8,
                        format!("acquisition {acq} is extended but was never acquired"),
                        &[o],
                    );
                }
            }
            continue;
        };
        let Event::AcqOk {
            rt,
            valid_until_client,
            valid_until_rt,
            ..
        } = &events[ok]
        else {
            continue;
        };
        let start = *rt;
        // The lease alone (without the release): what S8's "no resurrection" is about.
        let mut lease_end = valid_until_rt.unwrap_or(*valid_until_client);
        let mut until_client = *valid_until_client;
        let mut end_event = ok;
        for &o in &info.ext_outcomes {
            let ext_id = match &events[o] {
                Event::ExtOk { ext, .. } | Event::ExtFail { ext, .. } => *ext,
                _ => continue,
            };
            let Some(x) = index.exts.get(&ext_id) else {
                continue;
            };
            let inv = x.invoke;
            let Event::ExtInvoke {
                ttl_ms, t1_client, ..
            } = &events[inv]
            else {
                continue;
            };
            let invoked = sink.rt(inv);
            if sink.pos[inv] < sink.pos[ok] {
                if matches!(events[o], Event::ExtOk { .. }) {
                    sink.violation(
                        Invariant::S8,
                        format!("extension {ext_id} of acquisition {acq} was invoked before the lock was acquired"),
                        &[inv, ok, o],
                    );
                }
                continue;
            }
            match &events[o] {
                Event::ExtOk {
                    valid_until_client,
                    valid_until_rt,
                    ..
                } => {
                    if invoked < lease_end {
                        lease_end = valid_until_rt.unwrap_or(*valid_until_client);
                        until_client = *valid_until_client;
                        end_event = o;
                    } else {
                        sink.violation(
                            Invariant::S8,
                            format!(
                                "extension {ext_id} of acquisition {acq} succeeded although invoked at rt {invoked}, at or after the lease ended at rt {lease_end} (resurrection)"
                            ),
                            &[end_event, inv, o],
                        );
                    }
                }
                Event::ExtFail {
                    valid_until_client,
                    valid_until_rt,
                    ..
                } => {
                    if let Some(cfg) = cfg {
                        let drift = cfg.drifts(*ttl_ms).into_iter().min().unwrap_or(0);
                        let bound = i128::from(*t1_client) + i128::from(*ttl_ms) - drift;
                        let allowed = bound.min(i128::from(until_client));
                        if i128::from(*valid_until_client) > allowed {
                            sink.violation(
                                Invariant::S8,
                                format!(
                                    "after failed extension {ext_id} acquisition {acq} keeps valid_until {valid_until_client}, above min(old {until_client}, t1 + ttl - drift = {bound})"
                                ),
                                &[end_event, inv, o],
                            );
                        }
                    }
                    let reported = valid_until_rt.unwrap_or(*valid_until_client);
                    if invoked < lease_end && reported < lease_end {
                        lease_end = reported;
                        end_event = o;
                    }
                    until_client = until_client.min(*valid_until_client);
                }
                _ => {}
            }
        }
        let mut end = lease_end;
        if let Some(rel) = info.rel {
            let released = sink.rt(rel);
            if released < end {
                end = released;
                end_event = rel;
            }
        }
        tenures.insert(
            *acq,
            Tenure {
                start,
                end,
                ok,
                end_event,
            },
        );
    }
    tenures
}

/// A half-open window `[start, end)` of one acquisition on one resource.
#[derive(Debug, Clone)]
struct Window {
    start: u64,
    end: u64,
    acq: u64,
    evidence: Vec<usize>,
}

/// An overlap found by [`sweep`]: the two acquisitions, their windows and the shared resources.
#[derive(Debug)]
struct Overlap {
    first: Window,
    second: Window,
    resources: Vec<String>,
}

/// Finds overlapping windows of different acquisitions, per resource, by sorting and sweeping
/// (O(n log n)). Every window that overlaps another is reported at least once; a pair of acquisitions
/// is reported once, with all the resources on which it was found.
fn sweep(per_resource: BTreeMap<String, Vec<Window>>) -> Vec<Overlap> {
    let mut pairs: BTreeMap<(u64, u64), Overlap> = BTreeMap::new();
    for (resource, mut windows) in per_resource {
        windows.sort_by_key(|w| (w.start, w.end, w.acq));
        let mut reach: Option<Window> = None;
        for w in windows {
            if let Some(r) = &reach {
                if w.start < r.end && w.acq != r.acq {
                    let key = (r.acq.min(w.acq), r.acq.max(w.acq));
                    pairs
                        .entry(key)
                        .or_insert_with(|| Overlap {
                            first: r.clone(),
                            second: w.clone(),
                            resources: Vec::new(),
                        })
                        .resources
                        .push(resource.clone());
                }
            }
            if reach.as_ref().map_or(true, |r| w.end > r.end) {
                reach = Some(w);
            }
        }
    }
    pairs.into_values().collect()
}

/// S1: tenures of different acquisitions never overlap on a shared resource.
fn check_mutual_exclusion(index: &Index, tenures: &BTreeMap<u64, Tenure>, sink: &mut Sink<'_>) {
    let mut per_resource: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    for (acq, t) in tenures {
        if t.end <= t.start {
            continue;
        }
        let Some(info) = index.acqs.get(acq) else {
            continue;
        };
        for r in info.resources(sink.events) {
            per_resource.entry(r.to_owned()).or_default().push(Window {
                start: t.start,
                end: t.end,
                acq: *acq,
                evidence: vec![t.ok, t.end_event],
            });
        }
    }
    for o in sweep(per_resource) {
        let idxs: Vec<usize> = o
            .first
            .evidence
            .iter()
            .chain(&o.second.evidence)
            .copied()
            .collect();
        sink.violation(
            Invariant::S1,
            format!(
                "tenures of acquisition {} [{}, {}) and acquisition {} [{}, {}) overlap on {:?}",
                o.first.acq,
                o.first.start,
                o.first.end,
                o.second.acq,
                o.second.start,
                o.second.end,
                o.resources
            ),
            &idxs,
        );
    }
}

/// Overlapping work windows (reported as [`Invariant::WorkOverlap`]), plus warnings for work outside
/// the tenure and for windows never closed. Returns the number of closed windows.
fn check_work(index: &Index, tenures: &BTreeMap<u64, Tenure>, sink: &mut Sink<'_>) -> u64 {
    let events = sink.events;
    let mut closed = 0u64;
    let mut per_resource: BTreeMap<String, Vec<Window>> = BTreeMap::new();
    for (acq, info) in &index.acqs {
        if let Some(open) = info.open_work {
            sink.warning(
                Invariant::WorkOverlap,
                format!("work window of acquisition {acq} is never closed; it is not checked"),
                &[open],
            );
        }
        for &(s, e) in &info.work {
            closed += 1;
            let tenure = tenures.get(acq);
            match tenure {
                Some(t) if sink.pos[t.ok] <= sink.pos[s] => {
                    if sink.rt(e) > t.end {
                        sink.warning(
                            Invariant::WorkBeyondTenure,
                            format!(
                                "work of acquisition {acq} ends at rt {} after its tenure ended at rt {}",
                                sink.rt(e),
                                t.end
                            ),
                            &[t.ok, t.end_event, s, e],
                        );
                    }
                }
                _ => sink.violation(
                    Invariant::Consistency,
                    format!("acquisition {acq} works without having acquired its lock"),
                    &[s, e],
                ),
            }
            for r in info.resources(events) {
                per_resource.entry(r.to_owned()).or_default().push(Window {
                    start: sink.rt(s),
                    end: sink.rt(e),
                    acq: *acq,
                    evidence: vec![s, e],
                });
            }
        }
    }
    for o in sweep(per_resource) {
        let idxs: Vec<usize> = o
            .first
            .evidence
            .iter()
            .chain(&o.second.evidence)
            .copied()
            .collect();
        sink.violation(
            Invariant::WorkOverlap,
            format!(
                "work of acquisition {} [{}, {}) and acquisition {} [{}, {}) overlap on {:?}",
                o.first.acq,
                o.first.start,
                o.first.end,
                o.second.acq,
                o.second.start,
                o.second.end,
                o.resources
            ),
            &idxs,
        );
    }
    closed
}
