//! The recorded events: one JSON object per line, tagged by `"ev"`.

use serde::{Deserialize, Serialize};

/// How one instance answered the acquire command (`SET key value NX PX ttl`) of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplyKind {
    /// `OK`: the key was set; the only reply that may count as a vote.
    Ok,
    /// `nil`: the key already exists.
    Nil,
    /// A Redis error reply or a transport error.
    Err,
    /// No reply before the instance deadline (ambiguous: the SET may have landed).
    Timeout,
    /// A reply that arrived after the attempt was decided; never counted.
    Late,
}

/// Why a release command gave no integer reply on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelFailure {
    /// A Redis error reply or a transport error; JSON `"err"`.
    Err,
    /// No reply before the deadline; JSON `"timeout"`.
    Timeout,
}

/// The result of the release script on one instance.
///
/// JSON: the script's integer reply (`1` deleted, `0` not the owner or absent), or the string `"err"` or
/// `"timeout"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RelOutcome {
    /// The integer reply of the compare-and-delete script.
    Reply(i64),
    /// No integer reply.
    Failed(RelFailure),
}

/// One instance's entry in [`Event::RelDone`]: `{"inst": 2, "result": 1}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RelInstResult {
    /// The instance index.
    pub inst: u32,
    /// What the release script returned there.
    pub result: RelOutcome,
}

/// One recorded event. See the crate documentation for the JSON form and the meaning of each field.
///
/// Every event except [`Event::Config`] carries `rt`: integer milliseconds on the clock common to all
/// clients (virtual time in a simulation). Fields named `*_client` are readings of the client's own clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ev")]
pub enum Event {
    /// The lock configuration every client of the run shares. Must come first.
    Config {
        /// Number of configured instances N; instances are indexed `0..n`.
        n: u32,
        /// The quorum, if the recorder states it; it must equal `n / 2 + 1`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quorum: Option<u32>,
        /// The drift factor ρ (0.01 by default in the core).
        drift_factor: f64,
        /// The fixed drift pad in ms (2 by default in the core).
        drift_pad_ms: u64,
        /// The smallest acceptable validity in ms (0 by default in the core).
        min_validity_ms: u64,
    },
    /// A client starts acquiring a lock on one or more resources.
    AcqInvoke {
        /// Acquisition id, unique in the whole history (across clients).
        acq: u64,
        /// Client (process or simulated client) id.
        client: u64,
        /// The resources locked together; non-empty.
        resources: Vec<String>,
        /// The requested TTL in ms.
        ttl_ms: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// One attempt of an acquisition begins: `t1` is read before the first SET is sent.
    AttemptStart {
        /// Acquisition id.
        acq: u64,
        /// Attempt number within the acquisition (0, 1, ...).
        attempt: u32,
        /// The lock value (token) this attempt writes.
        value: String,
        /// `t1` on the client's clock.
        t1_client: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// One instance's reply to this attempt's acquire command.
    InstReply {
        /// Acquisition id.
        acq: u64,
        /// Attempt number.
        attempt: u32,
        /// Instance index.
        inst: u32,
        /// How the reply was classified.
        kind: ReplyKind,
        /// Common-clock time the reply was processed.
        rt: u64,
    },
    /// The acquisition succeeded with this attempt.
    AcqOk {
        /// Acquisition id.
        acq: u64,
        /// The winning attempt.
        attempt: u32,
        /// The value of that attempt.
        value: String,
        /// `t1 + ttl - drift(ttl)` on the client's clock.
        valid_until_client: u64,
        /// `t1` on the client's clock.
        t1_client: u64,
        /// `t2` (the decision) on the client's clock.
        t2_client: u64,
        /// `ttl - (t2 - t1) - drift(ttl)`.
        validity_ms: i64,
        /// The instances counted as yes votes.
        votes: Vec<u32>,
        /// Common-clock time.
        rt: u64,
        /// `valid_until_client` mapped to the common clock; `valid_until_client` is used when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until_rt: Option<u64>,
    },
    /// The acquisition failed for good (after its last attempt).
    AcqFail {
        /// Acquisition id.
        acq: u64,
        /// A short reason, e.g. `"contended"`, `"no_quorum"`, `"validity_exhausted"`.
        reason: String,
        /// Common-clock time.
        rt: u64,
    },
    /// Release commands were sent: cleanup of a failed attempt (`attempt` set) or a lock release (`None`).
    ReleaseSent {
        /// Acquisition id.
        acq: u64,
        /// The failed attempt being cleaned up, or `None` for the release of a held lock.
        #[serde(default)]
        attempt: Option<u32>,
        /// The instances the release script was sent to.
        insts: Vec<u32>,
        /// Common-clock time.
        rt: u64,
    },
    /// The holder starts extending its lease.
    ExtInvoke {
        /// Extension id, unique in the whole history.
        ext: u64,
        /// Acquisition id of the lease.
        acq: u64,
        /// The new TTL in ms.
        ttl_ms: u64,
        /// `t1` of the extension on the client's clock.
        t1_client: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// The extension succeeded.
    ExtOk {
        /// Extension id.
        ext: u64,
        /// Acquisition id.
        acq: u64,
        /// `t1 + ttl' - drift(ttl')` on the client's clock.
        valid_until_client: u64,
        /// `valid_until_client` on the common clock; `valid_until_client` is used when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until_rt: Option<u64>,
        /// `ttl' - (t2 - t1) - drift(ttl')`.
        validity_ms: i64,
        /// The instances counted as yes votes.
        votes: Vec<u32>,
        /// `t1` of the extension on the client's clock.
        t1_client: u64,
        /// `t2` of the extension on the client's clock.
        t2_client: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// The extension failed; the lease keeps (at most) the reported deadline.
    ExtFail {
        /// Extension id.
        ext: u64,
        /// Acquisition id.
        acq: u64,
        /// The lease's deadline after the failure, on the client's clock.
        valid_until_client: u64,
        /// The same deadline on the common clock; `valid_until_client` is used when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        valid_until_rt: Option<u64>,
        /// Common-clock time.
        rt: u64,
    },
    /// The holder starts releasing the lock (it stops counting on it from here).
    RelInvoke {
        /// Acquisition id.
        acq: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// The release finished.
    RelDone {
        /// Acquisition id.
        acq: u64,
        /// Per-instance results.
        per_inst: Vec<RelInstResult>,
        /// Common-clock time.
        rt: u64,
    },
    /// The holder starts its protected work.
    WorkStart {
        /// Acquisition id.
        acq: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// The holder finished its protected work.
    WorkEnd {
        /// Acquisition id.
        acq: u64,
        /// Common-clock time.
        rt: u64,
    },
    /// A fault was injected (crash, restart, stop, clock step, ...). Only counted in the summary.
    Fault {
        /// The fault kind, e.g. `"Crash"`, `"Restart"`, `"Stop"`, `"Cont"`, `"ClockStep"`.
        kind: String,
        /// The instance affected, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inst: Option<u32>,
        /// Free-form detail (e.g. `"persisted=false"`, `"delta_ms=-5000"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Common-clock time.
        rt: u64,
    },
}

impl Event {
    /// A [`Event::Config`] with the quorum stated as `n / 2 + 1`.
    pub fn config(n: u32, drift_factor: f64, drift_pad_ms: u64, min_validity_ms: u64) -> Self {
        Self::Config {
            n,
            quorum: Some(quorum(n)),
            drift_factor,
            drift_pad_ms,
            min_validity_ms,
        }
    }

    /// The common-clock time of the event; `None` for [`Event::Config`].
    pub fn rt(&self) -> Option<u64> {
        match self {
            Self::Config { .. } => None,
            Self::AcqInvoke { rt, .. }
            | Self::AttemptStart { rt, .. }
            | Self::InstReply { rt, .. }
            | Self::AcqOk { rt, .. }
            | Self::AcqFail { rt, .. }
            | Self::ReleaseSent { rt, .. }
            | Self::ExtInvoke { rt, .. }
            | Self::ExtOk { rt, .. }
            | Self::ExtFail { rt, .. }
            | Self::RelInvoke { rt, .. }
            | Self::RelDone { rt, .. }
            | Self::WorkStart { rt, .. }
            | Self::WorkEnd { rt, .. }
            | Self::Fault { rt, .. } => Some(*rt),
        }
    }

    /// The acquisition the event belongs to, if any.
    pub fn acq(&self) -> Option<u64> {
        match self {
            Self::Config { .. } | Self::Fault { .. } => None,
            Self::AcqInvoke { acq, .. }
            | Self::AttemptStart { acq, .. }
            | Self::InstReply { acq, .. }
            | Self::AcqOk { acq, .. }
            | Self::AcqFail { acq, .. }
            | Self::ReleaseSent { acq, .. }
            | Self::ExtInvoke { acq, .. }
            | Self::ExtOk { acq, .. }
            | Self::ExtFail { acq, .. }
            | Self::RelInvoke { acq, .. }
            | Self::RelDone { acq, .. }
            | Self::WorkStart { acq, .. }
            | Self::WorkEnd { acq, .. } => Some(*acq),
        }
    }

    /// The value of the `"ev"` tag, e.g. `"AcqOk"`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Config { .. } => "Config",
            Self::AcqInvoke { .. } => "AcqInvoke",
            Self::AttemptStart { .. } => "AttemptStart",
            Self::InstReply { .. } => "InstReply",
            Self::AcqOk { .. } => "AcqOk",
            Self::AcqFail { .. } => "AcqFail",
            Self::ReleaseSent { .. } => "ReleaseSent",
            Self::ExtInvoke { .. } => "ExtInvoke",
            Self::ExtOk { .. } => "ExtOk",
            Self::ExtFail { .. } => "ExtFail",
            Self::RelInvoke { .. } => "RelInvoke",
            Self::RelDone { .. } => "RelDone",
            Self::WorkStart { .. } => "WorkStart",
            Self::WorkEnd { .. } => "WorkEnd",
            Self::Fault { .. } => "Fault",
        }
    }

    /// The event as one line of JSON (no trailing newline).
    pub fn to_json(&self) -> String {
        // Serializing these plain data types cannot fail except for non-finite floats, which
        // serde_json writes as `null`; fall back to a marker rather than panic.
        serde_json::to_string(self).unwrap_or_else(|e| {
            format!(
                "{{\"ev\":\"Unserializable\",\"error\":{:?}}}",
                e.to_string()
            )
        })
    }

    /// Parses one JSON line.
    pub fn from_json(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }
}

/// The quorum `n / 2 + 1` for `n` configured instances.
pub fn quorum(n: u32) -> u32 {
    n / 2 + 1
}

/// `drift(ttl) = floor(ttl · drift_factor) + drift_pad_ms`, as the reference implementation computes it.
pub fn drift_ms(ttl_ms: u64, drift_factor: f64, drift_pad_ms: u64) -> u64 {
    floor_product(ttl_ms, drift_factor, 0.0).saturating_add(drift_pad_ms)
}

/// `floor(ttl · factor + bias)` clamped to `u64`; non-finite or negative products give 0.
pub(crate) fn floor_product(ttl_ms: u64, factor: f64, bias: f64) -> u64 {
    #[allow(clippy::cast_precision_loss)]
    let product = ttl_ms as f64 * factor + bias;
    if product.is_finite() && product > 0.0 {
        // `as` saturates for values above u64::MAX.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let floored = product.floor() as u64;
        floored
    } else {
        0
    }
}
