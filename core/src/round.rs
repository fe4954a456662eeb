//! The private round engine shared by acquire, extend and release: fan out one command to every
//! instance, track per-instance deadlines, classify replies and count votes.

use crate::config::MAX_INSTANCES;
use crate::io::RequestId;
use crate::reply::{InstanceStatus, Reply, Report, ServerError};
use crate::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Not part of the current round.
    Idle,
    /// To be sent.
    Due,
    /// Sent; waiting for the reply or the deadline.
    InFlight,
    /// Answered, failed or timed out.
    Settled,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    phase: Phase,
    request: RequestId,
    deadline: Instant,
    status: InstanceStatus,
    /// This instance answered `NOSCRIPT`: send the full script to it from now on.
    full_script: bool,
}

const IDLE: Slot = Slot {
    phase: Phase::Idle,
    request: RequestId::from_u32(0),
    deadline: Instant::ZERO,
    status: InstanceStatus::NotSent,
    full_script: false,
};

/// How a reply counts for the command of the round.
pub(crate) type Classify = fn(Reply<'_>) -> InstanceStatus;

/// What an input did to the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It answered a command of this round; the instance is now settled.
    Settled,
    /// The instance asked for the full script; the command will be sent again.
    Resend,
    /// It belongs to no command in flight (an earlier round, or a duplicate).
    Stale,
}

/// Vote counts of the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) yes: usize,
    pub(crate) held: usize,
    pub(crate) failed: usize,
    pub(crate) pending: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Round {
    slots: [Slot; MAX_INSTANCES],
    n: usize,
    next_request: u32,
    t1: Instant,
    script: bool,
    classify: Classify,
}

impl Round {
    /// A round engine whose request ids start after `first_request`. Machines pick it so that ids
    /// of different machines do not overlap: a host that routes a reply to the wrong machine
    /// then has it ignored as stale instead of counted.
    pub(crate) fn new(n: usize, script: bool, classify: Classify, first_request: u32) -> Self {
        Self {
            slots: [IDLE; MAX_INSTANCES],
            n: n.min(MAX_INSTANCES),
            next_request: first_request,
            t1: Instant::ZERO,
            script,
            classify,
        }
    }

    /// A fresh id, never reused by this machine.
    pub(crate) fn fresh_id(&mut self) -> RequestId {
        self.next_request = self.next_request.wrapping_add(1);
        RequestId::from_u32(self.next_request)
    }

    /// Starts a round at `t1`: every instance is due, each with its own deadline.
    pub(crate) fn begin(&mut self, t1: Instant, deadline: Instant, script: bool) {
        self.t1 = t1;
        self.script = script;
        for i in 0..self.n {
            let request = self.fresh_id();
            if let Some(slot) = self.slots.get_mut(i) {
                *slot = Slot {
                    phase: Phase::Due,
                    request,
                    deadline,
                    status: InstanceStatus::NotSent,
                    full_script: slot.full_script,
                };
            }
        }
    }

    pub(crate) fn t1(&self) -> Instant {
        self.t1
    }

    /// The next command to send: marks it in flight and returns (instance, id, full script?).
    pub(crate) fn poll_send(&mut self) -> Option<(usize, RequestId, bool)> {
        let (i, slot) = self
            .slots
            .iter_mut()
            .take(self.n)
            .enumerate()
            .find(|(_, s)| s.phase == Phase::Due)?;
        slot.phase = Phase::InFlight;
        slot.status = InstanceStatus::Pending;
        Some((i, slot.request, slot.full_script))
    }

    /// Applies a reply (`Ok`) or a transport failure (`Err`) to the command it answers.
    pub(crate) fn on_answer(
        &mut self,
        instance: usize,
        request: RequestId,
        answer: Result<Reply<'_>, ()>,
    ) -> Applied {
        let fresh = RequestId::from_u32(self.next_request.wrapping_add(1));
        let script = self.script;
        let classify = self.classify;
        let Some(slot) = self.slots.get_mut(instance) else {
            return Applied::Stale;
        };
        // Only a command actually handed out can be answered: an id guessed for a command still
        // waiting to be polled is never evidence.
        if slot.phase != Phase::InFlight || slot.request != request {
            return Applied::Stale;
        }
        let status = match answer {
            Ok(Reply::Error(text))
                if script
                    && !slot.full_script
                    && ServerError::classify(text) == ServerError::NoScript =>
            {
                slot.full_script = true;
                slot.request = fresh;
                slot.phase = Phase::Due;
                self.next_request = fresh.as_u32();
                return Applied::Resend;
            }
            Ok(reply) => classify(reply),
            Err(()) => InstanceStatus::TransportError,
        };
        slot.status = status;
        slot.phase = Phase::Settled;
        Applied::Settled
    }

    /// Settles every command whose deadline has passed as timed out; returns the instances that
    /// timed out (as a bit set) with their request ids for late-reply tracking.
    pub(crate) fn on_tick(&mut self, now: Instant, mut timed_out: impl FnMut(usize, RequestId)) {
        for (i, slot) in self.slots.iter_mut().take(self.n).enumerate() {
            if matches!(slot.phase, Phase::InFlight | Phase::Due) && now >= slot.deadline {
                let was_sent = slot.phase == Phase::InFlight;
                slot.phase = Phase::Settled;
                slot.status = if was_sent {
                    InstanceStatus::TimedOut
                } else {
                    InstanceStatus::NotSent
                };
                if was_sent {
                    timed_out(i, slot.request);
                }
            }
        }
    }

    /// Forgets commands not yet handed to the host (the round was decided without them).
    pub(crate) fn cancel_unsent(&mut self) {
        for slot in self.slots.iter_mut().take(self.n) {
            if slot.phase == Phase::Due {
                slot.phase = Phase::Idle;
                slot.status = InstanceStatus::NotSent;
            }
        }
    }

    /// Stops waiting for every unanswered command (their results stay unknown).
    pub(crate) fn abandon(&mut self) {
        for slot in self.slots.iter_mut().take(self.n) {
            match slot.phase {
                Phase::InFlight => slot.phase = Phase::Settled,
                Phase::Due => {
                    slot.phase = Phase::Idle;
                    slot.status = InstanceStatus::NotSent;
                }
                Phase::Idle | Phase::Settled => {}
            }
        }
    }

    pub(crate) fn counts(&self) -> Counts {
        let mut c = Counts {
            yes: 0,
            held: 0,
            failed: 0,
            pending: 0,
        };
        for slot in self.slots.iter().take(self.n) {
            match slot.phase {
                Phase::Due | Phase::InFlight => c.pending += 1,
                Phase::Settled => match slot.status {
                    InstanceStatus::Yes => c.yes += 1,
                    InstanceStatus::Held => c.held += 1,
                    _ => c.failed += 1,
                },
                Phase::Idle => {}
            }
        }
        c
    }

    /// Whether a command to `instance` was handed out and is still unanswered.
    pub(crate) fn in_flight(&self, instance: usize) -> bool {
        self.slots
            .get(instance)
            .is_some_and(|s| s.phase == Phase::InFlight)
    }

    /// Whether any command is still unanswered.
    pub(crate) fn any_in_flight(&self) -> bool {
        self.slots
            .iter()
            .take(self.n)
            .any(|s| matches!(s.phase, Phase::InFlight | Phase::Due))
    }

    /// Whether the command to `instance` was handed out (answered or not).
    pub(crate) fn was_sent(&self, instance: usize) -> bool {
        self.slots.get(instance).is_some_and(|s| {
            s.phase == Phase::InFlight
                || (s.phase == Phase::Settled && s.status != InstanceStatus::NotSent)
        })
    }

    /// The earliest deadline among unanswered commands.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .take(self.n)
            .filter(|s| matches!(s.phase, Phase::InFlight | Phase::Due))
            .map(|s| s.deadline)
            .min()
    }

    pub(crate) fn report(&self) -> Report {
        let mut r = Report::new(self.n);
        for (i, slot) in self.slots.iter().take(self.n).enumerate() {
            r.set(i, slot.status);
        }
        r
    }
}

/// A well-mixed 32-bit starting request id for the machine `kind` on `value` started at `t1`.
///
/// Machines for different leases, kinds or start times get unrelated id ranges. Two machines
/// with equal inputs share ids, which is harmless: a reply counts only as evidence for a command
/// sent at or after that same `t1`.
pub(crate) fn request_base(value: &crate::Token, t1: Instant, kind: u64) -> u32 {
    let mut h = kind ^ t1.as_millis().rotate_left(17);
    for chunk in value.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        for (w, b) in word.iter_mut().zip(chunk) {
            *w = *b;
        }
        h = splitmix64(h ^ u64::from_le_bytes(word));
    }
    // The high half: truncation is the point.
    (splitmix64(h) >> 32) as u32
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Status of a reply to `SET NX`: `OK` locks, `nil` means held.
pub(crate) fn classify_set(reply: Reply<'_>) -> InstanceStatus {
    match reply {
        Reply::Ok => InstanceStatus::Yes,
        Reply::Nil => InstanceStatus::Held,
        other => classify_other(other),
    }
}

/// Status of a reply to a script returning 1 (done) or 0 (not ours / held).
pub(crate) fn classify_flag(reply: Reply<'_>) -> InstanceStatus {
    match reply {
        Reply::Integer(1) => InstanceStatus::Yes,
        Reply::Integer(0) => InstanceStatus::Held,
        other => classify_other(other),
    }
}

/// Status of a reply to the release script: the number of keys deleted.
pub(crate) fn classify_release(reply: Reply<'_>) -> InstanceStatus {
    match reply {
        Reply::Integer(n) if n > 0 => InstanceStatus::Yes,
        Reply::Integer(0) => InstanceStatus::Held,
        other => classify_other(other),
    }
}

fn classify_other(reply: Reply<'_>) -> InstanceStatus {
    match reply {
        Reply::Error(text) => InstanceStatus::ServerError(ServerError::classify(text)),
        _ => InstanceStatus::UnexpectedReply,
    }
}
