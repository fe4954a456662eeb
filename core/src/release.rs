//! Releasing a lock: the compare-and-delete script to every instance.

use core::fmt;

use crate::command::Command;
use crate::config::Config;
use crate::error::Error;
use crate::io::{Input, Output, Transmit};
use crate::lease::Lease;
use crate::reply::Report;
use crate::round::{classify_release, request_base, Round};
use crate::time::Instant;

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseOutcome {
    /// Whether a quorum confirmed that our keys are gone (deleted now, or not ours any more).
    /// When false, keys may remain on some instances until their TTL.
    pub confirmed: bool,
    /// How many instances deleted a key.
    pub deleted: usize,
    /// Per-instance results: `Yes` = deleted, `Held` = not ours or already gone.
    pub report: Report,
}

/// The release machine: deletes the lock's keys where they still hold our value, on every
/// instance, and reports per instance. Never a plain `DEL`, so a late release cannot free
/// another holder's lock. Safe to run again; it waits for every instance's answer or timeout.
///
/// The host should stop treating the lease as valid before starting it.
pub struct Release {
    config: Config,
    lease: Lease,
    round: Round,
    now: Instant,
    outcome: Option<ReleaseOutcome>,
}

impl Release {
    /// Starts releasing `lease` at `now`.
    pub fn new(config: Config, lease: &Lease, now: Instant) -> Result<Self, Error> {
        if lease.resources().is_empty() {
            return Err(Error::NoResources);
        }
        let base = request_base(lease.value(), now, 2);
        let mut round = Round::new(config.instances(), true, classify_release, base);
        round.begin(now, now.saturating_add(config.instance_timeout_ms()), true);
        Ok(Self {
            config,
            lease: lease.clone(),
            round,
            now,
            outcome: None,
        })
    }

    /// Feeds one input; see [`Acquire::handle_input`](crate::Acquire::handle_input). A clock
    /// going backwards ends the release at once (the commands already sent still run).
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
            self.round.abandon();
            self.finish();
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
        if !self.round.any_in_flight() {
            self.finish();
        }
        Ok(())
    }

    fn finish(&mut self) {
        if self.outcome.is_some() {
            return;
        }
        let report = self.round.report();
        let c = self.round.counts();
        self.outcome = Some(ReleaseOutcome {
            confirmed: c.yes + c.held >= self.config.quorum(),
            deleted: c.yes,
            report,
        });
    }

    /// What to do next. Drain it until [`Output::Wait`] or [`Output::Done`].
    pub fn poll_output(&mut self) -> Output<'_, ReleaseOutcome> {
        if let Some(outcome) = &self.outcome {
            return Output::Done(outcome);
        }
        if let Some((instance, request, full)) = self.round.poll_send() {
            let cmd = Command::release(self.lease.resources(), self.lease.value())
                .with_notification(self.config.release_notification());
            let command = if full { cmd.with_full_script() } else { cmd };
            return Output::Send(Transmit {
                instance,
                request,
                command,
            });
        }
        Output::Wait {
            until: self.round.next_deadline().unwrap_or(self.now),
        }
    }

    /// The outcome, once done.
    pub fn outcome(&self) -> Option<&ReleaseOutcome> {
        self.outcome.as_ref()
    }
}

impl fmt::Debug for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Release")
            .field("lease", &self.lease)
            .field("report", &self.round.report())
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}
