//! What the checker found: violations, warnings and summary counts.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// The property a [`Violation`] breaks. Ids follow `research/redlock-safety.md` §6.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Invariant {
    /// The `Config` event is missing, repeated with different contents, or wrong (quorum ≠ n/2+1).
    Config,
    /// The history is not well formed (unknown ids, duplicates, events out of protocol order).
    Consistency,
    /// Mutual exclusion: two tenures on a shared resource overlap on the common clock.
    S1,
    /// Quorum evidence: a success without q distinct `Ok` votes of the same attempt.
    S2,
    /// Validity arithmetic: recorded validity or deadline differs from the formula, or validity too small.
    S3,
    /// No use after release: `ExtOk` after `RelInvoke`, or `AcqOk` after `AcqFail`.
    S4,
    /// Value uniqueness: two attempts share a value (warning: a weak value).
    S6,
    /// Cleanup completeness: a failed attempt's release misses an instance that replied.
    S7,
    /// Extension discipline: resurrection of an expired lease, or a deadline not lowered after `ExtFail`.
    S8,
    /// Protected work windows of different acquisitions overlap on a shared resource (what fencing cures).
    WorkOverlap,
    /// Warning: a work window extends past the holder's tenure (assumption A8 broken).
    WorkBeyondTenure,
}

impl Invariant {
    /// The id as written in reports, e.g. `"S1"`.
    pub fn id(self) -> &'static str {
        match self {
            Self::Config => "Config",
            Self::Consistency => "Consistency",
            Self::S1 => "S1",
            Self::S2 => "S2",
            Self::S3 => "S3",
            Self::S4 => "S4",
            Self::S6 => "S6",
            Self::S7 => "S7",
            Self::S8 => "S8",
            Self::WorkOverlap => "WorkOverlap",
            Self::WorkBeyondTenure => "WorkBeyondTenure",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// An event named by a [`Violation`]: its index in the checked slice and a copy of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvolvedEvent {
    /// Index in the slice given to [`crate::check`] (for the binary: in the merged, rt-sorted history).
    pub index: usize,
    /// The event itself.
    pub event: Event,
}

/// One broken property (or, in [`Report::warnings`], one suspicious finding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Which property.
    pub invariant: Invariant,
    /// One line for a human.
    pub message: String,
    /// The events that show it, in history order.
    pub events: Vec<InvolvedEvent>,
}

/// Counts over the whole history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// All events, `Config` included.
    pub events: u64,
    /// Configured N (0 when there is no usable `Config`).
    pub instances: u32,
    /// Quorum `n / 2 + 1` (0 when there is no usable `Config`).
    pub quorum: u32,
    /// `AcqInvoke` events.
    pub acquisitions: u64,
    /// `AcqOk` events.
    pub acquired: u64,
    /// `AcqFail` events.
    pub acquire_failed: u64,
    /// `AttemptStart` events.
    pub attempts: u64,
    /// `InstReply` events.
    pub inst_replies: u64,
    /// `ReleaseSent` events that clean up a failed attempt.
    pub cleanups: u64,
    /// `ExtInvoke` events.
    pub extensions: u64,
    /// `ExtOk` events.
    pub extensions_ok: u64,
    /// `ExtFail` events.
    pub extensions_failed: u64,
    /// `RelInvoke` events.
    pub releases: u64,
    /// `RelDone` events.
    pub releases_done: u64,
    /// Closed `WorkStart`..`WorkEnd` windows.
    pub work_windows: u64,
    /// `Fault` events by kind.
    pub faults_by_kind: BTreeMap<String, u64>,
    /// Violations by invariant id.
    pub violations_by_invariant: BTreeMap<String, u64>,
    /// Warnings by invariant id.
    pub warnings_by_invariant: BTreeMap<String, u64>,
}

/// The result of checking a history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Counts.
    pub summary: Summary,
    /// Broken properties; a correct run under the algorithm's assumptions has none.
    pub violations: Vec<Violation>,
    /// Findings that do not prove a bug: weak values, unclosed work windows, work past the tenure.
    pub warnings: Vec<Violation>,
}

impl Report {
    /// True when there is no violation (warnings do not count).
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }

    /// The violations of one invariant.
    pub fn violations_of(&self, invariant: Invariant) -> impl Iterator<Item = &Violation> + '_ {
        self.violations
            .iter()
            .filter(move |v| v.invariant == invariant)
    }

    /// True when at least one violation of `invariant` was found.
    pub fn has(&self, invariant: Invariant) -> bool {
        self.violations_of(invariant).next().is_some()
    }

    /// The report as pretty JSON.
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
    }
}

impl fmt::Display for Report {
    /// The summary line and one line per violation and warning (without the involved events).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.summary;
        writeln!(
            f,
            "{} events, N={} q={}: {} acquisitions ({} ok, {} failed, {} attempts), {} extensions ({} ok, {} failed), {} releases, {} work windows, {} violations, {} warnings",
            s.events,
            s.instances,
            s.quorum,
            s.acquisitions,
            s.acquired,
            s.acquire_failed,
            s.attempts,
            s.extensions,
            s.extensions_ok,
            s.extensions_failed,
            s.releases,
            s.work_windows,
            self.violations.len(),
            self.warnings.len()
        )?;
        for v in &self.violations {
            writeln!(f, "violation [{}] {}", v.invariant, v.message)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning [{}] {}", w.invariant, w.message)?;
        }
        Ok(())
    }
}
