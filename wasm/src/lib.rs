//! The Redlock state machines of [`redlock_core`] for JavaScript hosts, through wasm-bindgen.
//!
//! JavaScript owns the sockets (node-redis, ioredis, anything that sends a command) and the
//! clock; the core decides quorum, validity, retries, cleanup and release. Times are JS numbers
//! of milliseconds on one monotonic clock (`performance.now()`), checked to be finite,
//! non-negative and below 2^53. Lock values come from ChaCha20, seeded from
//! `crypto.getRandomValues` (through `getrandom`); the module reads no clock.
//!
//! **The contract: feed the time with every input, then drain `pollOutput()` until it returns
//! `wait` or `done`.**
//!
//! ```js
//! const op = new Acquire(new Config({ instances: 3, ttlMs: 10_000 }), "orders:42", performance.now());
//! for (;;) {
//!   const out = op.pollOutput();
//!   if (out.type === "send") {
//!     clients[out.instance].sendCommand(out.args).then(
//!       (reply) => op.handleReply(out.instance, out.request, reply, performance.now()),
//!       (err) => isReplyError(err)
//!         ? op.handleReply(out.instance, out.request, { error: err.message }, performance.now())
//!         : op.handleTransportError(out.instance, out.request, performance.now()),
//!     ).finally(wake);
//!     continue;
//!   }
//!   if (out.type === "done") return out.outcome; // { type: "acquired", lease } | { type: "failed", reason }
//!   await Promise.race([sleepUntil(out.until), nextWake()]);
//!   op.handleTimeout(performance.now());
//! }
//! ```
//!
//! Contention, no quorum and exhausted validity are outcomes; misuse (a bad number, an unknown
//! instance, a key too long, time going backwards, an unknown option) throws a JS `Error`. No
//! input makes the module panic. The npm package wraps these classes in an async `Redlock`.

#![warn(missing_docs)]

mod acquire;
mod config;
mod convert;
mod extend;
mod release;
mod rng;
mod time;

pub use acquire::JsAcquire;
pub use config::JsConfig;
pub use extend::JsExtend;
pub use release::JsRelease;

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &'static str = r#"
/** A resource key: a string (its UTF-8 bytes) or raw bytes. */
export type Resource = string | Uint8Array;
/** A byte string handed to JavaScript: a string when it is valid UTF-8, raw bytes otherwise. */
export type Bytes = string | Uint8Array;

/** Options of `new Config(options)`. Times are milliseconds. */
export interface ConfigOptions {
  /** The number of independent Redis masters, N (1 to 16). */
  instances: number;
  /** How long the lock keys live (the `PX` argument). */
  ttlMs: number;
  /** ρ in `drift = floor(ttl × ρ) + pad`; default 0.01. */
  driftFactor?: number;
  /** The pad added to the drift; default 2. */
  driftPadMs?: number;
  /** How long one instance may take to answer; default 5 % of the TTL, at least 10. */
  instanceTimeoutMs?: number;
  /** How many times a failed acquire is retried; default 3. */
  retryCount?: number;
  /** The base delay between attempts; default 200. */
  retryDelayMs?: number;
  /** Each delay is drawn from `[delay - jitter, delay + jitter]`; default 100. */
  retryJitterMs?: number;
  /** The least validity worth having; default 0. */
  minValidityMs?: number;
  /** No acquire attempt starts later than this after the acquire began; default none. */
  acquireDeadlineMs?: number | null;
  /**
   * Releases and cleanups run the notifying release script, which publishes the released value
   * on `redlock:released:<key>` (fast handoff, docs/fast-handoff.md); default false.
   */
  releaseNotification?: boolean;
}

/**
 * A reply as the host hands it over: `"OK"`, `null` (nil), an integer (number or bigint), or
 * `{ error: text }` for a Redis error reply. Any other value counts as an unexpected reply,
 * never as a success.
 */
export type Reply = "OK" | null | number | bigint | { error: string } | string | readonly unknown[];

/** What a command does. */
export type CommandKind = "acquire" | "extend" | "release";
/** How it reaches Redis: `SET … NX PX`, `EVALSHA` or `EVAL` (after a `NOSCRIPT` reply). */
export type CommandForm = "set" | "evalsha" | "eval";

/** Send `args` to instance `instance`, then feed its reply back with `request`. Keep polling. */
export interface SendOutput {
  type: "send";
  instance: number;
  request: number;
  command: CommandKind;
  form: CommandForm;
  /** The command name first (`SET`, `EVALSHA`, `EVAL`), as for node-redis `sendCommand`. */
  args: Bytes[];
}
/** Nothing to send: wait for a reply, or until `until`, then feed `handleTimeout`. */
export interface WaitOutput {
  type: "wait";
  until: number;
}
/** Finished; polling again returns the same outcome. */
export interface DoneOutput<T> {
  type: "done";
  outcome: T;
}
/** What a machine wants next. */
export type Output<T> = SendOutput | WaitOutput | DoneOutput<T>;

/** The kind of a Redis error reply, from its first word. */
export type ServerErrorKind =
  | "noscript" | "readonly" | "oom" | "busy" | "loading" | "misconf" | "wrongtype"
  | "auth" | "noperm" | "cluster" | "error";

/**
 * What one instance contributed. `yes` / `held` read per operation: locked / held by another
 * value; extended / not ours any more; deleted / not ours or already gone.
 */
export type InstanceStatus =
  | "notSent" | "pending" | "yes" | "held" | "transportError" | "timedOut"
  | "unexpectedReply" | `serverError:${ServerErrorKind}`;

/**
 * A held lock as plain data: valid until `validUntil` on the clock fed to the machines, and not
 * a millisecond longer. Hand it back to `Extend` and `Release`; it may be stored and reloaded.
 */
export interface Lease {
  resources: Bytes[];
  /** The random value stored in the keys: 32 lowercase hex characters. */
  value: string;
  ttlMs: number;
  validUntil: number;
}

/** Why an acquire ended without a lease. */
export type AcquireFailure =
  | "contended" | "noQuorum" | "validityExhausted" | "cancelled" | "clockWentBackwards";
/** How an acquire ended. A failed acquire has sent a release to every instance it reached. */
export type AcquireOutcome =
  | { type: "acquired"; lease: Lease; decidedAt: number; attempts: number; report: InstanceStatus[] }
  | { type: "failed"; reason: AcquireFailure; attempts: number; report: InstanceStatus[] };

/** Why an extend did not extend. */
export type ExtendFailure =
  | "expired" | "lost" | "noQuorum" | "validityExhausted" | "clockWentBackwards";
/** How an extend ended; either way `lease` is the one to keep (possibly shortened). */
export type ExtendOutcome =
  | { type: "extended"; lease: Lease; report: InstanceStatus[] }
  | { type: "failed"; reason: ExtendFailure; lease: Lease; report: InstanceStatus[] };

/** How a release ended: `confirmed` when a quorum confirmed the keys are gone. */
export interface ReleaseOutcome {
  type: "released";
  confirmed: boolean;
  deleted: number;
  report: InstanceStatus[];
}

/** A Lua script the machines send, for hosts that preload them with `SCRIPT LOAD`. */
export interface Script {
  name: string;
  source: string;
  sha1: string;
}
"#;

/// The version of this module (the Rust crate's version).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// The Lua scripts the machines send with `EVALSHA` / `EVAL`.
#[wasm_bindgen(unchecked_return_type = "Script[]")]
pub fn scripts() -> Array {
    redlock_core::SCRIPTS
        .iter()
        .map(|s| {
            let o = Object::new();
            for (k, v) in [("name", s.name), ("source", s.source), ("sha1", s.sha1)] {
                // Setting a property on a fresh plain object cannot fail.
                let _ = Reflect::set(&o, &JsValue::from_str(k), &JsValue::from_str(v));
            }
            JsValue::from(o)
        })
        .collect()
}
