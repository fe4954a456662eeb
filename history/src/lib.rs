//! The history format and safety checker for Redlock runs.
//!
//! **One checker for every run: the deterministic simulation pushes [`Event`]s into a [`Checker`]
//! in-process, real multi-process runs write them as JSON lines and check them with the
//! `redlock-check-history` binary.** A run is correct when [`Report::is_ok`] holds; a checker that
//! cannot fail proves nothing, so every invariant below has a test history that breaks it.
//!
//! ```
//! use redlock_history::{check, Event, Invariant, ReplyKind};
//!
//! let v = "0123456789abcdef0123456789abcdef".to_owned();
//! let mut h = vec![
//!     Event::config(3, 0.01, 2, 0),
//!     Event::AcqInvoke { acq: 1, client: 1, resources: vec!["r".into()], ttl_ms: 1000, rt: 0 },
//!     Event::AttemptStart { acq: 1, attempt: 0, value: v.clone(), t1_client: 0, rt: 0 },
//! ];
//! for inst in 0..3 {
//!     h.push(Event::InstReply { acq: 1, attempt: 0, inst, kind: ReplyKind::Ok, rt: 5 });
//! }
//! // drift = floor(1000 * 0.01) + 2 = 12; validity = 1000 - 5 - 12 = 983; valid_until = 0 + 1000 - 12.
//! h.push(Event::AcqOk {
//!     acq: 1, attempt: 0, value: v, valid_until_client: 988, t1_client: 0, t2_client: 5,
//!     validity_ms: 983, votes: vec![0, 1, 2], rt: 5, valid_until_rt: None,
//! });
//! let report = check(&h);
//! assert!(report.is_ok(), "{report}");
//!
//! // A second holder of "r" before the first lease ends breaks mutual exclusion.
//! h.push(Event::AcqInvoke { acq: 2, client: 2, resources: vec!["r".into()], ttl_ms: 1000, rt: 100 });
//! h.push(Event::AcqOk {
//!     acq: 2, attempt: 0, value: "x".repeat(32), valid_until_client: 1088, t1_client: 100,
//!     t2_client: 100, validity_ms: 988, votes: vec![], rt: 100, valid_until_rt: None,
//! });
//! assert!(check(&h).has(Invariant::S1));
//! ```
//!
//! # Schema (JSON lines, tag `"ev"`)
//!
//! One event per line, e.g. `{"ev":"RelInvoke","acq":3,"rt":1200}`. Times are integer milliseconds.
//! `rt` is read from the clock common to all clients (on one Linux host `CLOCK_MONOTONIC`/`BOOTTIME`;
//! in simulation the true virtual time). Fields ending in `_client` are the client's own clock readings,
//! which the core computed with. Ids (`acq`, `ext`) are unique in the whole history, across clients;
//! instances are indexes `0..n`; values (lock tokens) and resources are strings. Optional fields may be
//! omitted (or `null`).
//!
//! | `ev` | fields | meaning |
//! |---|---|---|
//! | `Config` | `n`, `quorum?`, `drift_factor`, `drift_pad_ms`, `min_validity_ms` | first line; `quorum` must be `n/2+1` |
//! | `AcqInvoke` | `acq`, `client`, `resources: [string]`, `ttl_ms`, `rt` | acquisition starts (several resources = one multi-resource lock) |
//! | `AttemptStart` | `acq`, `attempt`, `value`, `t1_client`, `rt` | an attempt starts; `t1` read before the first SET |
//! | `InstReply` | `acq`, `attempt`, `inst`, `kind: "Ok"\|"Nil"\|"Err"\|"Timeout"\|"Late"`, `rt` | one instance's reply to this attempt's SET |
//! | `AcqOk` | `acq`, `attempt`, `value`, `valid_until_client`, `t1_client`, `t2_client`, `validity_ms`, `votes: [inst]`, `rt`, `valid_until_rt?` | acquired |
//! | `AcqFail` | `acq`, `reason`, `rt` | gave up |
//! | `ReleaseSent` | `acq`, `attempt?`, `insts: [inst]`, `rt` | release script sent: cleanup of a failed attempt (`attempt` set) or lock release (`null`) |
//! | `ExtInvoke` | `ext`, `acq`, `ttl_ms`, `t1_client`, `rt` | extension starts |
//! | `ExtOk` | `ext`, `acq`, `valid_until_client`, `valid_until_rt?`, `validity_ms`, `votes`, `t1_client`, `t2_client`, `rt` | extended |
//! | `ExtFail` | `ext`, `acq`, `valid_until_client`, `valid_until_rt?`, `rt` | extension failed; the lease's deadline afterwards |
//! | `RelInvoke` | `acq`, `rt` | release starts; the holder stops relying on the lock |
//! | `RelDone` | `acq`, `per_inst: [{"inst": i, "result": 1 \| 0 \| "err" \| "timeout"}]`, `rt` | release finished |
//! | `WorkStart` / `WorkEnd` | `acq`, `rt` | the holder's protected work window |
//! | `Fault` | `kind`, `inst?`, `detail?`, `rt` | injected fault (counted by kind) |
//!
//! `valid_until_rt` is the lease deadline on the common clock. In real runs where the client clock is
//! the common clock it is omitted (`valid_until_client` is used); a simulation with client clock skew
//! supplies it from the skew it knows.
//!
//! # Derived notions
//!
//! * q = n/2+1 from the `Config`; drift(ttl) = floor(ttl·ρ) + pad (see [`drift_ms`]; S3 also accepts
//!   `floor(ttl·ρ + 1e-9)` so that a recorder's float rounding is not flagged).
//! * Tenure H(a) = [`AcqOk.rt`, End(a)). The lease end starts at the `AcqOk`'s deadline; each `ExtOk`
//!   whose `ExtInvoke.rt` is before the current lease end replaces it with the `ExtOk`'s deadline; an
//!   `ExtFail` invoked before the lease end lowers it to the reported deadline if that is lower.
//!   End(a) = min(lease end, first `RelInvoke.rt`).
//!
//! # Invariants checked (research/redlock-safety.md §6.3)
//!
//! * [`Invariant::S1`] mutual exclusion: tenures of different acquisitions sharing a resource do not
//!   overlap (sort and sweep per resource; each pair reported once with the shared resources).
//! * [`Invariant::S2`] quorum evidence: an `AcqOk`'s votes are ≥ q distinct instances, each with an
//!   `InstReply` `Ok` for the same `acq` and `attempt` recorded no later than the `AcqOk`; an `ExtOk`'s
//!   votes are ≥ q distinct instances in `0..n` (extension replies are not recorded).
//! * [`Invariant::S3`] validity arithmetic: `validity = ttl − (t2 − t1) − drift`,
//!   `valid_until_client = t1 + ttl − drift`, validity > max(0, min_validity), t2 ≥ t1, and the `t1` of an
//!   `AcqOk`/`ExtOk` equals that of its `AttemptStart`/`ExtInvoke`.
//! * [`Invariant::S4`] no use after release: no `ExtOk` after the acquisition's first `RelInvoke`, no
//!   `AcqOk` after its `AcqFail`.
//! * [`Invariant::S6`] value uniqueness: all `AttemptStart` values are distinct, also across the attempts of
//!   one acquisition (the core uses a fresh value per attempt). Values that are not at least 32 hex digits
//!   are reported as a *warning*.
//! * [`Invariant::S7`] cleanup completeness, best effort: checked only for acquisitions that recorded some
//!   `ReleaseSent`, and only for attempts known to be over without success (a later attempt started, the
//!   acquisition failed, or another attempt won). The union of the attempt's cleanup `ReleaseSent.insts`
//!   must contain every instance with an `InstReply` (any kind, `Late` included) for that attempt.
//! * [`Invariant::S8`] extension discipline: an `ExtOk` needs `ExtInvoke.rt` < the lease end before it
//!   (no resurrection; a release is S4's business) and an `AcqOk` before it; after an `ExtFail` the reported
//!   `valid_until_client` ≤ min(previous, t1 + ttl − drift).
//! * [`Invariant::WorkOverlap`] (not S1): `WorkStart`..`WorkEnd` windows of different acquisitions overlap
//!   on a shared resource; this is what fencing would cure. A window still open at the end of the history
//!   is not checked (warning), and work ending after the tenure is a [`Invariant::WorkBeyondTenure`]
//!   warning (assumption A8 broken).
//! * [`Invariant::Config`] and [`Invariant::Consistency`]: a missing or wrong `Config`, and ill-formed
//!   histories (unknown or duplicate ids, replies without their attempt, two outcomes, work without a lock).
//!
//! S5, S9, S10 and the fencing invariants need data this schema does not record (server logs, injected
//! clocks); S10 (no fail-open) is covered by S2.

mod checker;
mod event;
mod io;
mod report;
#[cfg(test)]
mod tests;

pub use checker::{check, Checker};
pub use event::{drift_ms, quorum, Event, RelFailure, RelInstResult, RelOutcome, ReplyKind};
pub use io::{read_jsonl, write_event, write_jsonl, ReadError};
pub use report::{Invariant, InvolvedEvent, Report, Summary, Violation};
