//! Extending a held lock: one round of the value-checked `PEXPIRE` script.

use core::fmt;

use crate::command::Command;
use crate::config::Config;
use crate::error::Error;
use crate::io::{Input, Output, Transmit};
use crate::lease::Lease;
use crate::reply::Report;
use crate::round::{classify_flag, request_base, Round};
use crate::time::Instant;

/// Why an extend did not extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExtendFailure {
    /// The lease had already expired when the extend began: nothing was sent, because an
    /// expired lock is never resurrected.
    Expired,
    /// The keys no longer hold our value on enough instances: the lock is lost.
    Lost,
    /// Too many instances failed for a quorum.
    NoQuorum,
    /// A quorum extended, but too late for the new validity to be above the minimum.
    ValidityExhausted,
    /// The host's clock went backwards.
    ClockWentBackwards,
}

impl fmt::Display for ExtendFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Expired => "lease had already expired",
            Self::Lost => "lock is no longer held on a quorum of instances",
            Self::NoQuorum => "not enough redis instances answered for a quorum",
            Self::ValidityExhausted => "validity exhausted before a quorum was reached",
            Self::ClockWentBackwards => "clock went backwards",
        })
    }
}

/// How an extend ended. Either way the lease it carries is the one to keep using.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtendOutcome {
    /// A quorum reset the TTL; the lease is valid until `t1 + ttl - drift` of this extend.
    Extended {
        /// The extended lease.
        lease: Lease,
        /// Per-instance results at the decision.
        report: Report,
    },
    /// Not extended. The lease's validity is now `min(old, t1 + ttl - drift)`, because
    /// instances that did apply the new TTL may expire sooner than before.
    Failed {
        /// Why.
        reason: ExtendFailure,
        /// The lease with its possibly shortened validity.
        lease: Lease,
        /// Per-instance results at the decision.
        report: Report,
    },
}

impl ExtendOutcome {
    /// The lease to keep using (check its validity).
    pub fn lease(&self) -> &Lease {
        match self {
            Self::Extended { lease, .. } | Self::Failed { lease, .. } => lease,
        }
    }

    /// The failure, if not extended.
    pub fn failure(&self) -> Option<ExtendFailure> {
        match self {
            Self::Extended { .. } => None,
            Self::Failed { reason, .. } => Some(*reason),
        }
    }

    /// The per-instance report.
    pub fn report(&self) -> &Report {
        match self {
            Self::Extended { report, .. } | Self::Failed { report, .. } => report,
        }
    }
}

/// The extend machine: resets the TTL of a held lock's keys on a quorum, never re-creating a key.
///
/// It refuses to start on an expired lease, measures validity from its own start (t1), and
/// decides as soon as the quorum is certain either way. It does not retry: a host that wants
/// another try starts a new `Extend` while the lease is still valid.
pub struct Extend {
    config: Config,
    lease: Lease,
    round: Round,
    now: Instant,
    outcome: Option<ExtendOutcome>,
}

impl Extend {
    /// Starts extending `lease` at `now` to the TTL of `config` (use [`Config::with_ttl`] for
    /// another TTL).
    pub fn new(config: Config, lease: &Lease, now: Instant) -> Result<Self, Error> {
        if lease.resources().is_empty() {
            return Err(Error::NoResources);
        }
        let mut extend = Self {
            config,
            lease: lease.clone(),
            round: Round::new(
                config.instances(),
                true,
                classify_flag,
                request_base(lease.value(), now, 1),
            ),
            now,
            outcome: None,
        };
        if !lease.is_valid(now) {
            extend.finish(ExtendFailure::Expired);
        } else {
            // t1 first: the extend's deadline is measured from it.
            extend.round.begin(now, now, true);
            let deadline = now
                .saturating_add(config.instance_timeout_ms())
                .min(extend.deadline());
            extend.round.begin(now, deadline, true);
        }
        Ok(extend)
    }

    /// The new validity if a quorum agrees: `t1 + ttl - drift`.
    fn new_valid_until(&self) -> Instant {
        let ttl = self.config.ttl_ms();
        self.round
            .t1()
            .saturating_add(ttl.saturating_sub(self.config.drift_ms()))
    }

    /// Past this instant the extend cannot produce enough validity; never later than the old
    /// lease's end, since an expired lease is not to be revived.
    fn deadline(&self) -> Instant {
        let until = self.new_valid_until().as_millis();
        Instant::from_millis(until.saturating_sub(self.config.min_validity_ms()))
            .min(self.lease.valid_until())
    }

    fn finish(&mut self, reason: ExtendFailure) {
        self.round.abandon();
        let mut lease = self.lease.clone();
        if reason != ExtendFailure::Expired {
            lease.shorten_to(self.new_valid_until());
        }
        self.outcome = Some(ExtendOutcome::Failed {
            reason,
            lease,
            report: self.round.report(),
        });
    }

    /// Feeds one input; see [`Acquire::handle_input`](crate::Acquire::handle_input).
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
            let err = Error::TimeWentBackwards {
                previous: self.now,
                now: t,
            };
            if self.outcome.is_none() {
                self.finish(ExtendFailure::ClockWentBackwards);
            }
            return Err(err);
        }
        self.now = t;
        if self.outcome.is_some() {
            return Ok(());
        }
        self.round.on_tick(t, |_, _| {});
        match input {
            Input::Reply {
                instance,
                request,
                reply,
                ..
            } => {
                self.round.on_answer(instance, request, Ok(reply));
            }
            Input::TransportError {
                instance, request, ..
            } => {
                self.round.on_answer(instance, request, Err(()));
            }
            Input::Timeout { .. } => {}
        }
        self.decide(t);
        Ok(())
    }

    fn decide(&mut self, at: Instant) {
        let c = self.round.counts();
        let quorum = self.config.quorum();
        if c.yes >= quorum {
            let until = self.new_valid_until();
            if at.saturating_add(self.config.min_validity_ms()) < until && self.lease.is_valid(at) {
                let report = self.round.report();
                self.round.abandon();
                let mut lease = self.lease.clone();
                lease.set_validity(self.config.ttl_ms(), until);
                self.outcome = Some(ExtendOutcome::Extended { lease, report });
            } else {
                self.finish(ExtendFailure::ValidityExhausted);
            }
        } else if at >= self.deadline() {
            self.finish(ExtendFailure::ValidityExhausted);
        } else if c.yes + c.pending < quorum {
            if c.held > 0 && c.yes + c.held + c.pending >= quorum {
                self.finish(ExtendFailure::Lost);
            } else {
                self.finish(ExtendFailure::NoQuorum);
            }
        }
    }

    /// What to do next. Drain it until [`Output::Wait`] or [`Output::Done`].
    pub fn poll_output(&mut self) -> Output<'_, ExtendOutcome> {
        if let Some(outcome) = &self.outcome {
            return Output::Done(outcome);
        }
        if let Some((instance, request, full)) = self.round.poll_send() {
            let cmd = Command::extend(
                self.lease.resources(),
                self.lease.value(),
                self.config.ttl_ms(),
            );
            let command = if full { cmd.with_full_script() } else { cmd };
            return Output::Send(Transmit {
                instance,
                request,
                command,
            });
        }
        Output::Wait {
            until: self
                .round
                .next_deadline()
                .unwrap_or_else(|| self.deadline()),
        }
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&ExtendOutcome> {
        self.outcome.as_ref()
    }

    /// Takes the outcome out.
    pub fn into_outcome(self) -> Option<ExtendOutcome> {
        self.outcome
    }

    /// When this extend started (its t1).
    pub fn started(&self) -> Instant {
        self.round.t1()
    }
}

impl fmt::Debug for Extend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Extend")
            .field("lease", &self.lease)
            .field("report", &self.round.report())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}
