//! Acquiring a lock: one round per attempt, jittered retries, cleanup of every failed attempt.

use core::fmt;
use core::time::Duration;

use heapless::Deque;
use rand_core::{CryptoRng, RngCore};

use crate::command::Command;
use crate::config::{Config, MAX_INSTANCES};
use crate::error::Error;
use crate::io::{Input, Output, RequestId, Transmit};
use crate::lease::Lease;
use crate::reply::{InstanceStatus, Reply, Report};
use crate::resource::Resources;
use crate::round::{classify_flag, classify_set, Applied, Classify, Round};
use crate::time::Instant;
use crate::token::Token;

/// Why an acquire ended without a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AcquireFailure {
    /// Another holder has the lock: enough instances answered, and some of them hold another
    /// value, so the lock would have been ours had it been free.
    Contended,
    /// Too many instances failed (unreachable, erroring, timing out) for a quorum.
    NoQuorum,
    /// A quorum said yes, but too late: the remaining validity was not above the minimum.
    ValidityExhausted,
    /// [`Acquire::cancel`] was called.
    Cancelled,
    /// The host's clock went backwards; the acquire failed closed.
    ClockWentBackwards,
}

impl AcquireFailure {
    fn retryable(self) -> bool {
        matches!(
            self,
            Self::Contended | Self::NoQuorum | Self::ValidityExhausted
        )
    }
}

impl fmt::Display for AcquireFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Contended => "lock is held by another holder",
            Self::NoQuorum => "not enough redis instances answered for a quorum",
            Self::ValidityExhausted => "validity exhausted before a quorum was reached",
            Self::Cancelled => "acquire was cancelled",
            Self::ClockWentBackwards => "clock went backwards",
        })
    }
}

/// How an acquire ended.
// The lease is inline on purpose: no allocation in this crate, and the outcome lives in place.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireOutcome {
    /// A quorum holds our value, and the lease is valid until [`Lease::valid_until`].
    Acquired {
        /// The lease.
        lease: Lease,
        /// When the deciding reply arrived (t2).
        decided_at: Instant,
        /// The attempt that succeeded, 1-based.
        attempts: u32,
        /// Per-instance results of that attempt at the moment of the decision.
        report: Report,
    },
    /// No lease. Every instance a command reached has been sent a release.
    Failed {
        /// Why (of the last attempt).
        reason: AcquireFailure,
        /// How many attempts were made.
        attempts: u32,
        /// Per-instance results of the last attempt.
        report: Report,
    },
}

impl AcquireOutcome {
    /// The lease, if acquired.
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            Self::Acquired { lease, .. } => Some(lease),
            Self::Failed { .. } => None,
        }
    }

    /// The failure, if not acquired.
    pub fn failure(&self) -> Option<AcquireFailure> {
        match self {
            Self::Acquired { .. } => None,
            Self::Failed { reason, .. } => Some(*reason),
        }
    }

    /// The per-instance report.
    pub fn report(&self) -> &Report {
        match self {
            Self::Acquired { report, .. } | Self::Failed { report, .. } => report,
        }
    }

    /// How many attempts were made.
    pub fn attempts(&self) -> u32 {
        match self {
            Self::Acquired { attempts, .. } | Self::Failed { attempts, .. } => *attempts,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// An attempt is collecting votes.
    Running,
    /// An attempt failed; the next starts at `at` once its commands are settled and released.
    /// `timed` is when the retry delay puts it: `at` is earlier only after a [`Acquire::wake`].
    Retrying { at: Instant, timed: Instant },
    /// The last attempt failed; waiting for its commands to settle so they can be released.
    Finishing(AcquireFailure),
}

/// Releases owed at once, at most: one per late record (a late `OK`) plus one per instance for
/// the current attempt. Sized so none is ever dropped.
const CLEANUP_CAPACITY: usize = LATE_CAPACITY + MAX_INSTANCES;
/// Timed-out acquire commands remembered for a late `OK`: two per instance, the oldest forgotten
/// first (a forgotten one can only leave a key that expires with its TTL).
const LATE_CAPACITY: usize = 2 * MAX_INSTANCES;

/// The acquire machine: takes a lock on a quorum of instances, or fails and cleans up.
///
/// Each attempt writes a fresh random value with `SET key value NX PX ttl` (or the acquire
/// script for several keys) to every instance at once, decides as soon as the quorum is certain
/// either way, and on failure sends a release to every instance the attempt reached, waiting
/// for each instance's answer (or timeout) before its release so a release never overtakes its
/// own `SET`. A `SET` that is answered `OK` after its instance timed out gets another release.
///
/// See the [crate documentation](crate) for the drive loop.
pub struct Acquire<R> {
    config: Config,
    resources: Resources,
    rng: R,
    round: Round,
    classify: Classify,
    value: Token,
    attempt: u32,
    /// Attempts started early by a wake-up that lost: they do not use up the retry budget.
    free_attempts: u32,
    /// While an attempt started by a wake-up runs: the timed retry it came before.
    woken_before: Option<Instant>,
    started: Instant,
    now: Instant,
    state: State,
    cleanup: Deque<(u8, Token), CLEANUP_CAPACITY>,
    /// The value of the release being handed out (the command borrows it).
    sending: Token,
    /// Acquire commands that timed out, with their values, so a late `OK` is released.
    late: Deque<(u8, RequestId, Token), LATE_CAPACITY>,
    outcome: Option<AcquireOutcome>,
}

impl<R: RngCore + CryptoRng> Acquire<R> {
    /// Starts acquiring `resources` at `now`, with lease TTL and retries from `config`. The
    /// first attempt's commands are ready to poll.
    pub fn new(
        config: Config,
        resources: Resources,
        mut rng: R,
        now: Instant,
    ) -> Result<Self, Error> {
        if resources.is_empty() {
            return Err(Error::NoResources);
        }
        let single = resources.len() == 1;
        let classify: Classify = if single { classify_set } else { classify_flag };
        let value = Token::random(&mut rng);
        let mut acquire = Self {
            config,
            round: Round::new(config.instances(), !single, classify, rng.next_u32()),
            classify,
            resources,
            rng,
            value,
            attempt: 0,
            free_attempts: 0,
            woken_before: None,
            started: now,
            now,
            state: State::Running,
            cleanup: Deque::new(),
            sending: value,
            late: Deque::new(),
            outcome: None,
        };
        acquire.start_attempt(now, false, None);
        Ok(acquire)
    }

    /// Starts an attempt at `t1`; `woken_before` is the timed retry it runs ahead of, for an
    /// attempt started by a wake-up.
    fn start_attempt(&mut self, t1: Instant, fresh_value: bool, woken_before: Option<Instant>) {
        if fresh_value {
            self.value = Token::random(&mut self.rng);
        }
        self.woken_before = woken_before;
        self.attempt = self.attempt.saturating_add(1);
        let deadline = t1
            .saturating_add(self.config.instance_timeout_ms())
            .min(self.attempt_deadline(t1));
        let script = self.resources.len() > 1;
        self.round.begin(t1, deadline, script);
        self.state = State::Running;
    }

    /// Past this instant the attempt started at `t1` cannot produce a lease.
    fn attempt_deadline(&self, t1: Instant) -> Instant {
        let budget = self
            .config
            .ttl_ms()
            .saturating_sub(self.config.drift_ms())
            .saturating_sub(self.config.min_validity_ms());
        t1.saturating_add(budget)
    }

    /// Feeds one input. Stale replies (earlier attempts, duplicates) are ignored.
    ///
    /// Errors: an instance outside `0..N` (the input is ignored), or a time earlier than one fed
    /// before (the acquire fails closed with [`AcquireFailure::ClockWentBackwards`] and releases
    /// everything it sent).
    pub fn handle_input(&mut self, input: Input<'_>) -> Result<(), Error> {
        if let Input::Reply { instance, .. } | Input::TransportError { instance, .. } = input {
            let instances = self.config.instances();
            if instance >= instances {
                return Err(Error::UnknownInstance {
                    instance,
                    instances,
                });
            }
        }
        let t = input.time();
        if t < self.now {
            return Err(self.fail_closed(t));
        }
        self.now = t;
        if self.outcome.is_some() {
            return Ok(());
        }
        // Time first: deadlines that passed before this input was received expire first.
        self.on_time(t);
        match input {
            Input::Reply {
                instance,
                request,
                reply,
                at,
            } => self.on_answer(instance, request, Ok(reply), at),
            Input::TransportError {
                instance,
                request,
                at,
            } => self.on_answer(instance, request, Err(()), at),
            Input::Timeout { .. } => {}
        }
        Ok(())
    }

    fn on_answer(
        &mut self,
        i: usize,
        request: RequestId,
        answer: Result<Reply<'_>, ()>,
        at: Instant,
    ) {
        let late = self
            .late
            .iter()
            .position(|&(inst, req, _)| usize::from(inst) == i && req == request);
        if let Some(pos) = late {
            let value = self.forget_late(pos);
            if answer.is_ok_and(|r| (self.classify)(r) == InstanceStatus::Yes) {
                if let Some(value) = value {
                    self.owe_release(i, value);
                }
            }
            return;
        }
        match (self.round.on_answer(i, request, answer), self.state) {
            (Applied::Settled, State::Running) => self.decide(at),
            (Applied::Settled, _) => self.owe_release(i, self.value),
            (Applied::Resend, State::Running) | (Applied::Stale, _) => {}
            // A `NOSCRIPT` for a decided attempt: the command never ran, so nothing to undo.
            (Applied::Resend, _) => self.round.cancel_unsent(),
        }
    }

    /// Removes the `pos`-th late record and returns its value.
    fn forget_late(&mut self, pos: usize) -> Option<Token> {
        let mut found = None;
        for k in 0..self.late.len() {
            if let Some(entry) = self.late.pop_front() {
                if k == pos {
                    found = Some(entry.2);
                } else {
                    let _ = self.late.push_back(entry);
                }
            }
        }
        found
    }

    fn on_time(&mut self, now: Instant) {
        let mut timed_out: heapless::Vec<(usize, RequestId), MAX_INSTANCES> = heapless::Vec::new();
        self.round.on_tick(now, |i, request| {
            let _ = timed_out.push((i, request));
        });
        let running = self.state == State::Running;
        for (i, request) in timed_out {
            if self.late.is_full() {
                self.late.pop_front();
            }
            // In range: i < N <= MAX_INSTANCES (16).
            let _ = self.late.push_back((i as u8, request, self.value));
            if !running {
                self.owe_release(i, self.value);
            }
        }
        if running {
            self.decide(now);
        }
    }

    fn owe_release(&mut self, instance: usize, value: Token) {
        // In range: instance < N <= MAX_INSTANCES (16).
        let entry = (instance as u8, value);
        // A release still queued has not overtaken anything yet: one is enough.
        if !self.cleanup.iter().any(|e| *e == entry) {
            let _ = self.cleanup.push_back(entry);
        }
    }

    /// Decides the running attempt if its result is certain at `at`.
    fn decide(&mut self, at: Instant) {
        let c = self.round.counts();
        let quorum = self.config.quorum();
        let t1 = self.round.t1();
        let valid_until =
            t1.saturating_add(self.config.ttl_ms().saturating_sub(self.config.drift_ms()));
        if c.yes >= quorum {
            if at.saturating_add(self.config.min_validity_ms()) < valid_until {
                self.round.cancel_unsent();
                let lease = Lease::new(
                    self.resources.clone(),
                    self.value,
                    self.config.ttl_ms(),
                    valid_until,
                );
                self.outcome = Some(AcquireOutcome::Acquired {
                    lease,
                    decided_at: at,
                    attempts: self.attempt,
                    report: self.round.report(),
                });
            } else {
                self.fail(AcquireFailure::ValidityExhausted, at);
            }
        } else if at >= self.attempt_deadline(t1) {
            self.fail(AcquireFailure::ValidityExhausted, at);
        } else if c.yes + c.pending < quorum {
            let reason = if c.held > 0 && c.yes + c.held + c.pending >= quorum {
                AcquireFailure::Contended
            } else {
                AcquireFailure::NoQuorum
            };
            self.fail(reason, at);
        }
    }

    /// Ends the running attempt without a lease: owes a release to every instance it reached
    /// (those still in flight get theirs when they settle), then retries or finishes.
    fn fail(&mut self, reason: AcquireFailure, at: Instant) {
        self.round.cancel_unsent();
        for i in 0..self.config.instances() {
            if self.round.was_sent(i) && !self.round.in_flight(i) {
                self.owe_release(i, self.value);
            }
        }
        // An attempt a wake-up started ahead of its timed retry, lost before that retry was
        // due: the timed retry stays where it was and the budget is untouched, so waking never
        // makes an acquire give up sooner than it would have without.
        if let Some(timed) = self.woken_before.take() {
            if reason.retryable() && at < timed {
                self.free_attempts = self.free_attempts.saturating_add(1);
                self.state = State::Retrying { at: timed, timed };
                return;
            }
        }
        let retry_at = at.saturating_add(self.retry_delay());
        let within_deadline = match self.config.acquire_deadline_ms() {
            Some(d) => retry_at < self.started.saturating_add(d),
            None => true,
        };
        let spent = self.attempt.saturating_sub(self.free_attempts);
        self.state = if reason.retryable() && spent <= self.config.retry_count() && within_deadline
        {
            State::Retrying {
                at: retry_at,
                timed: retry_at,
            }
        } else {
            State::Finishing(reason)
        };
    }

    fn retry_delay(&mut self) -> u64 {
        let base = self.config.retry_delay_ms();
        let jitter = self.config.retry_jitter_ms();
        let span = jitter.saturating_mul(2).saturating_add(1);
        let offset = self.rng.next_u64() % span;
        base.saturating_sub(jitter).saturating_add(offset)
    }

    /// A hint that the lock may have just been freed (for example a release notification from
    /// the holder): if the acquire is waiting to retry after contention, the next attempt moves
    /// up to a random point within `spread` from `now`, so waiters woken together do not all
    /// retry at the same instant.
    ///
    /// Only the timing changes: the deadline and the cleanup rules stay as they are, and an
    /// early attempt that loses before the timed retry was due does not count against the retry
    /// budget (the timed retry stays where it was), so hints never make the acquire give up
    /// sooner and a lost or spurious hint costs nothing but an early attempt. Such attempts are
    /// still counted in [`AcquireOutcome::attempts`]. Returns whether the retry moved.
    pub fn wake(&mut self, now: Instant, spread: Duration) -> Result<bool, Error> {
        if now < self.now {
            return Err(self.fail_closed(now));
        }
        self.now = now;
        if self.outcome.is_some() {
            return Ok(false);
        }
        self.on_time(now);
        let State::Retrying { at, timed } = self.state else {
            return Ok(false);
        };
        let span = crate::time::duration_ms(spread).saturating_add(1);
        let early = now.saturating_add(self.rng.next_u64() % span);
        if early >= at {
            return Ok(false);
        }
        self.state = State::Retrying { at: early, timed };
        Ok(true)
    }

    /// Whether the acquire is waiting to retry (after a failed attempt), as opposed to running
    /// an attempt or done.
    pub fn is_waiting_to_retry(&self) -> bool {
        self.outcome.is_none() && matches!(self.state, State::Retrying { .. })
    }

    /// Cancels the acquire: no further attempt starts, the running one is abandoned and released
    /// everywhere, and the outcome becomes [`AcquireFailure::Cancelled`] once its commands are
    /// settled. Has no effect once the acquire is done (a lease already granted stays granted:
    /// release it).
    pub fn cancel(&mut self, now: Instant) -> Result<(), Error> {
        if now < self.now {
            return Err(self.fail_closed(now));
        }
        self.now = now;
        if self.outcome.is_some() {
            return Ok(());
        }
        // Deadlines that passed before the cancel expire first.
        self.on_time(now);
        match self.state {
            _ if self.outcome.is_some() => {}
            State::Running => self.fail(AcquireFailure::Cancelled, now),
            // Cancelled before the end: that is the outcome, unless the clock already failed.
            State::Retrying { .. } | State::Finishing(_) => {
                if self.state != State::Finishing(AcquireFailure::ClockWentBackwards) {
                    self.state = State::Finishing(AcquireFailure::Cancelled);
                }
            }
        }
        Ok(())
    }

    fn fail_closed(&mut self, now: Instant) -> Error {
        let err = Error::TimeWentBackwards {
            previous: self.now,
            now,
        };
        if self.outcome.is_none() {
            // Time can no longer be trusted to bound the wait: release everything sent now.
            // A running attempt owes every instance it reached; a decided one already owes the
            // settled ones and now also those still in flight.
            let running = self.state == State::Running;
            for i in 0..self.config.instances() {
                let owed = if running {
                    self.round.was_sent(i)
                } else {
                    self.round.in_flight(i)
                };
                if owed {
                    self.owe_release(i, self.value);
                }
            }
            self.round.abandon();
            self.state = State::Finishing(AcquireFailure::ClockWentBackwards);
        }
        err
    }

    /// What to do next. Drain it until [`Output::Wait`] or [`Output::Done`].
    pub fn poll_output(&mut self) -> Output<'_, AcquireOutcome> {
        loop {
            if let Some((instance, value)) = self.cleanup.pop_front() {
                self.sending = value;
                return Output::Send(Transmit {
                    instance: usize::from(instance),
                    request: self.round.fresh_id(),
                    // The full script, not its digest: nobody waits for a cleanup's reply, so a
                    // `NOSCRIPT` (an instance restarted since) would leave the key until its TTL.
                    command: Command::release(&self.resources, &self.sending)
                        .with_notification(self.config.release_notification())
                        .with_full_script(),
                });
            }
            if self.outcome.is_some() {
                break;
            }
            match self.state {
                State::Running => {
                    if let Some((instance, request, full)) = self.round.poll_send() {
                        let cmd =
                            Command::acquire(&self.resources, &self.value, self.config.ttl_ms());
                        let command = if full { cmd.with_full_script() } else { cmd };
                        return Output::Send(Transmit {
                            instance,
                            request,
                            command,
                        });
                    }
                    let until = self
                        .round
                        .next_deadline()
                        .unwrap_or_else(|| self.attempt_deadline(self.round.t1()));
                    return Output::Wait {
                        until: until.max(self.now),
                    };
                }
                State::Retrying { at, timed } => {
                    if self.round.any_in_flight() {
                        let next = self.round.next_deadline().unwrap_or(at);
                        let until = if at > self.now { next.min(at) } else { next };
                        return Output::Wait {
                            until: until.max(self.now),
                        };
                    }
                    if at > self.now {
                        return Output::Wait { until: at };
                    }
                    let woken_before = (self.now < timed).then_some(timed);
                    self.start_attempt(self.now, true, woken_before);
                }
                State::Finishing(reason) => {
                    if let Some(until) = self.round.next_deadline() {
                        return Output::Wait {
                            until: until.max(self.now),
                        };
                    }
                    self.outcome = Some(AcquireOutcome::Failed {
                        reason,
                        attempts: self.attempt,
                        report: self.round.report(),
                    });
                }
            }
        }
        match &self.outcome {
            Some(outcome) => Output::Done(outcome),
            // Unreachable: the loop only breaks with an outcome.
            None => Output::Wait { until: self.now },
        }
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&AcquireOutcome> {
        self.outcome.as_ref()
    }

    /// Takes the outcome out (for moving the lease), leaving the machine done with no outcome
    /// to report again.
    pub fn into_outcome(self) -> Option<AcquireOutcome> {
        self.outcome
    }

    /// The current attempt, 1-based.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the current attempt started (its t1).
    pub fn attempt_started(&self) -> Instant {
        self.round.t1()
    }

    /// The value the current attempt writes.
    pub fn value(&self) -> &Token {
        &self.value
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The resources it locks.
    pub fn resources(&self) -> &Resources {
        &self.resources
    }

    /// Per-instance results of the current attempt so far.
    pub fn report(&self) -> Report {
        self.round.report()
    }
}

impl<R> fmt::Debug for Acquire<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("resources", &self.resources)
            .field("attempt", &self.attempt)
            .field("state", &self.state)
            .field("report", &self.round.report())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}
