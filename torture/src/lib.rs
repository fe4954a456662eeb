//! Torture runs of the `redlock` runtime: several worker processes lock the same few resources
//! through the public API on 5 real `redis-server` instances while a fault scheduler crashes,
//! restarts, pauses and partitions them; every process records a JSON-lines history on the
//! host's common clock, and the shared checker ([`redlock_history`]) checks the merged history.
//!
//! * `redlock-torture` (the runner): starts the instances (behind fault-injecting proxies), the
//!   protected counter's own `redis-server`, the workers and the fault scheduler; then checks
//!   the history, the counter and the liveness figures, and reports. See `docs/reliability.md`.
//! * `redlock-torture-worker`: one client process; records its history through the runtime's
//!   [`redlock::Observer`] hook.
//!
//! This library holds what both share: the common clock ([`clock`]) and the analysis of the
//! protected counter and of liveness ([`analysis`]).

pub mod analysis;
pub mod clock;

/// The key of the protected counter of `resource` (in the protected `redis-server`).
pub fn counter_key(resource: &str) -> String {
    format!("torture:counter:{resource}")
}

/// The key of the write log of `resource`'s counter.
pub fn log_key(resource: &str) -> String {
    format!("torture:log:{resource}")
}

/// The drift factor every worker configures (and states in the history's `Config`).
pub const DRIFT_FACTOR: f64 = 0.01;
/// The drift pad every worker configures, in milliseconds.
pub const DRIFT_PAD_MS: u64 = 2;
