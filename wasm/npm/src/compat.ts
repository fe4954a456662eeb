// `redlock-wasm/compat`: node-redlock v5's public API (`redlock` 5.0.0-beta.2) over this
// package's machines, so a program written for node-redlock runs with only its import changed.
// The names, defaults, messages and result shapes are node-redlock's; the decisions are the
// core's, which fixes node-redlock's known bugs (docs/js-compat.md, "Differences").

import { EventEmitter } from "node:events";

import {
  Acquire,
  Config,
  Extend,
  Release,
  scripts as coreScripts,
  type AcquireOutcome,
  type Bytes,
  type CommandForm,
  type CommandKind,
  type ExtendFailure,
  type ExtendOutcome,
  type Lease,
  type ReleaseOutcome,
  type Resource,
} from "./wasm/redlock_wasm.js";
import { sender, type Answer, type RedisClient, type Send } from "./clients.js";
import { drive, MAX_TIMER_MS, type Exchange } from "./driver.js";
import { Handoff } from "./handoff.js";

export type { Resource } from "./wasm/redlock_wasm.js";

/**
 * A Redis client: an ioredis `Redis` or `Cluster` (as with node-redlock), or a node-redis v4/v5
 * client. A Cluster counts as one instance; the keys of one lock must then share a hash tag.
 */
export type Client = RedisClient;

/** One client's vote in one attempt (node-redlock's type, kept for compatibility). */
export type ClientExecutionResult =
  | { client: Client; vote: "for"; value: number }
  | { client: Client; vote: "against"; error: Error };

/**
 * The votes of one attempt. Its promise resolves once every client has voted, or once the
 * instance timeout has passed (a client that has not answered by then counts against, with an
 * `Error` saying so).
 */
export type ExecutionStats = {
  readonly membershipSize: number;
  readonly quorumSize: number;
  readonly votesFor: Set<Client>;
  readonly votesAgainst: Map<Client, Error>;
};

/** What a release resolves with: the stats of its one attempt. */
export type ExecutionResult = {
  attempts: ReadonlyArray<Promise<ExecutionStats>>;
};

/** node-redlock's settings, with its defaults. Times are milliseconds. */
export interface Settings {
  /** ρ in `drift = ρ × duration + 2`; default 0.01. */
  readonly driftFactor: number;
  /** Retries after the first attempt (-1: retry until acquired); default 10. */
  readonly retryCount: number;
  /** The base delay between attempts; default 200. */
  readonly retryDelay: number;
  /** Each delay is drawn from `[retryDelay - retryJitter, retryDelay + retryJitter]`; default 100. */
  readonly retryJitter: number;
  /** `using()` extends the lock this long before it expires; default 500. */
  readonly automaticExtensionThreshold: number;
}

/** Settings that node-redlock does not have. */
export interface ExtraSettings {
  /**
   * How long one instance may take to answer one command before it counts as a no, in
   * milliseconds; default 5 % of the duration, at least 10 (node-redlock has no such timeout).
   */
  readonly instanceTimeout?: number;
}

/** Options of the constructor that node-redlock does not have. */
export interface ExtraOptions extends ExtraSettings {
  /**
   * Fast handoff (docs/fast-handoff.md); default false. Releases announce themselves, and an
   * acquire waiting to retry listens on a `duplicate()` of each client and retries as soon as a
   * quorum announced a release, instead of sleeping out its retry delay. `quit()` closes the
   * duplicates (so do a second without waiters).
   */
  readonly fastHandoff?: boolean;
}

/** Per-call settings of `acquire` and `using`. */
export interface AcquireSettings extends Partial<Settings>, ExtraSettings {
  /**
   * Cancels a pending acquire: no further attempt starts, what was taken is released, and the
   * promise rejects with `signal.reason` (node-redlock cannot cancel an acquire).
   */
  readonly signal?: AbortSignal;
}

/** Why an `ExecutionError` happened (not in node-redlock). */
export type ExecutionFailure =
  | "contended"
  | "noQuorum"
  | "validityExhausted"
  | "clockWentBackwards"
  | "expired"
  | "lost";

/** An `AbortSignal` with the error that aborted it (node-redlock's `using()` signal). */
export type RedlockAbortSignal = AbortSignal & { error?: Error };

const QUORUM_MESSAGE = "The operation was unable to achieve a quorum during its retry window.";
const EXPIRED_MESSAGE = "Cannot extend an already-expired lock.";
const DURATION_MESSAGE = "Duration must be an integer value in milliseconds.";

const defaultSettings: Settings = Object.freeze({
  driftFactor: 0.01,
  retryCount: 10,
  retryDelay: 200,
  retryJitter: 100,
  automaticExtensionThreshold: 500,
});

/**
 * A client voted against because one or more of the resources were locked by another value (or,
 * for extend and release, no longer held this lock's value).
 */
export class ResourceLockedError extends Error {
  declare readonly message: string;
  constructor(message: string) {
    super(message);
    this.name = "ResourceLockedError";
  }
}

/** An operation failed to pass with a quorum (or the lock to extend had already expired). */
export class ExecutionError extends Error {
  declare readonly message: string;
  /** The stats of each attempt made. */
  readonly attempts: ReadonlyArray<Promise<ExecutionStats>>;
  /** Why, as the core decided it (not in node-redlock). */
  reason?: ExecutionFailure;
  constructor(message: string, attempts: ReadonlyArray<Promise<ExecutionStats>>) {
    super(message);
    this.name = "ExecutionError";
    this.attempts = attempts;
  }
}

/** A lock's lease as the core knows it, for the locks this module created. */
const leases = new WeakMap<object, Lease>();

/**
 * A lock on `resources`, valid until `expiration` (a `Date.now()` time). `extend` returns a new
 * `Lock` and sets this one's expiration to 0, as node-redlock does.
 */
export class Lock<R extends Resource = string> {
  constructor(
    public readonly redlock: Redlock,
    public readonly resources: R[],
    public readonly value: string,
    public readonly attempts: ReadonlyArray<Promise<ExecutionStats>>,
    public expiration: number,
  ) {}

  /** Releases it; see {@link Redlock.release}. */
  async release(): Promise<ExecutionResult> {
    return this.redlock.release(this);
  }

  /** Extends it; see {@link Redlock.extend}. */
  async extend(duration: number): Promise<Lock<R>> {
    return this.redlock.extend(this, duration);
  }
}

/** Validated settings, merged. */
interface Effective extends Settings {
  instanceTimeout?: number;
}

function checkNumber(name: string, v: unknown, min: number, max: number, integer: boolean): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))) {
    const what = integer ? "an integer" : "a finite number";
    throw new RangeError(`Redlock setting ${name} must be ${what} from ${min} to ${max} (got ${String(v)})`);
  }
  return v;
}

/** node-redlock's merge (a setting is taken when it is a number), validated. */
function mergeSettings(base: Effective, over: Partial<Settings> & ExtraSettings = {}): Effective {
  if (over === null || typeof over !== "object") {
    throw new TypeError("Redlock settings must be an object");
  }
  const pick = <K extends keyof Effective>(k: K): Effective[K] =>
    (typeof over[k] === "number" ? over[k] : base[k]) as Effective[K];
  const out: Effective = {
    driftFactor: pick("driftFactor"),
    retryCount: pick("retryCount"),
    retryDelay: pick("retryDelay"),
    retryJitter: pick("retryJitter"),
    automaticExtensionThreshold: pick("automaticExtensionThreshold"),
    instanceTimeout: pick("instanceTimeout"),
  };
  checkNumber("driftFactor", out.driftFactor, 0, 0.999999, false);
  checkNumber("retryCount", out.retryCount, -1, 2 ** 32 - 2, true);
  checkNumber("retryDelay", out.retryDelay, 0, MAX_TIMER_MS, false);
  checkNumber("retryJitter", out.retryJitter, 0, MAX_TIMER_MS, false);
  checkNumber("automaticExtensionThreshold", out.automaticExtensionThreshold, 0, Number.MAX_SAFE_INTEGER, false);
  if (out.instanceTimeout !== undefined) {
    checkNumber("instanceTimeout", out.instanceTimeout, 1, Number.MAX_SAFE_INTEGER, true);
  }
  return out;
}

function checkDuration(duration: unknown): asserts duration is number {
  if (typeof duration !== "number" || Math.floor(duration) !== duration) throw new Error(DURATION_MESSAGE);
  if (!(duration > 0 && duration <= Number.MAX_SAFE_INTEGER)) {
    throw new RangeError(`Duration must be a positive number of milliseconds below 2^53 (got ${duration}).`);
  }
}

function keyList(resources: unknown): Resource[] {
  if (typeof resources === "string" || resources instanceof Uint8Array) return [resources];
  if (Array.isArray(resources)) return [...resources];
  throw new TypeError("resources must be an array of keys (strings or Buffers)");
}

const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(`Unexpected type ${typeof e} thrown with value: ${String(e)}`));

/**
 * How one answer votes, node-redlock's way: `for` when every key was applied, a
 * `ResourceLockedError` when fewer were, the client's error otherwise. `null` for an answer that
 * is not a vote (a `NOSCRIPT` reply to `EVALSHA`: the script is re-sent with `EVAL`).
 */
function voteOf(command: CommandKind, form: CommandForm, keys: number, answer: Answer): Error | "for" | null {
  if (answer.kind === "replyError") {
    if (form === "evalsha" && answer.error.message.startsWith("NOSCRIPT")) return null;
    return answer.error;
  }
  if (answer.kind === "transportError") return asError(answer.error);
  const reply = answer.reply;
  let applied: number;
  if (command === "acquire" && form === "set") {
    if (reply === "OK") return "for";
    if (reply !== null) return new Error(`Unexpected result of type ${typeof reply} returned from redis.`);
    applied = 0;
  } else {
    if (typeof reply !== "number" && typeof reply !== "bigint") {
      return new Error(`Unexpected result of type ${typeof reply} returned from redis.`);
    }
    // The acquire and extend scripts answer 1 (all keys) or 0 (none); release, the count.
    applied = command === "release" ? Number(reply) : Number(reply) === 1 ? keys : 0;
  }
  if (applied === keys) return "for";
  return new ResourceLockedError(`The operation was applied to: ${applied} of the ${keys} requested resources.`);
}

/** The votes of one attempt as they arrive. */
class Ballot {
  readonly stats: ExecutionStats;
  readonly promise: Promise<ExecutionStats>;
  readonly #clients: readonly Client[];
  readonly #voted = new Set<number>();
  /** `NOSCRIPT` answers not followed (yet) by the script re-sent with `EVAL`. */
  readonly #noscript = new Map<number, Error>();
  readonly #emit: (error: Error) => void;
  #resolve!: (stats: ExecutionStats) => void;
  #won?: () => void;
  /** Resolves once a quorum voted for. */
  readonly won: Promise<void> = new Promise((resolve) => (this.#won = resolve));
  #timer?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor(clients: readonly Client[], quorum: number, timeoutMs: number, emit: (error: Error) => void) {
    this.#clients = clients;
    this.#emit = emit;
    this.stats = { membershipSize: clients.length, quorumSize: quorum, votesFor: new Set(), votesAgainst: new Map() };
    this.promise = new Promise((resolve) => (this.#resolve = resolve));
    this.#timer = setTimeout(() => this.#timeout(timeoutMs), Math.min(MAX_TIMER_MS, timeoutMs));
  }

  /**
   * Instance `instance` answered `NOSCRIPT`. The machine re-sends the script with `EVAL` unless
   * the attempt was decided already (`decided`): then, or if no other answer comes before the
   * timeout, the `NOSCRIPT` error is the vote.
   */
  noscript(instance: number, error: Error, decided: boolean): void {
    // Not a failure of the client (the script was not re-sent): a vote, not an "error" event.
    if (decided) this.vote(instance, error, false);
    else this.#noscript.set(instance, error);
  }

  vote(instance: number, vote: Error | "for", emit = true): void {
    if (vote !== "for" && emit) this.#emit(vote);
    if (this.#closed || this.#voted.has(instance)) return;
    const client = this.#clients[instance] as Client;
    this.#voted.add(instance);
    if (vote === "for") this.stats.votesFor.add(client);
    else this.stats.votesAgainst.set(client, vote);
    if (this.stats.votesFor.size >= this.stats.quorumSize) this.#won?.();
    if (this.#voted.size === this.#clients.length) this.#close();
  }

  #timeout(timeoutMs: number): void {
    this.#clients.forEach((_, i) => {
      if (this.#voted.has(i)) return;
      const noscript = this.#noscript.get(i);
      if (noscript) this.vote(i, noscript, false);
      else this.vote(i, new Error(`The redis instance did not answer within ${timeoutMs} ms.`));
    });
    this.#close();
  }

  #close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#resolve(this.stats);
  }
}

/** The ballots of one operation, one per attempt, filled from the drive loop's hooks. */
class Tally {
  readonly #ballots = new Map<number, Ballot>();
  constructor(
    private readonly redlock: Redlock,
    private readonly clients: readonly Client[],
    private readonly quorum: number,
    private readonly keys: number,
    private readonly command: CommandKind,
    private readonly timeoutMs: number,
  ) {}

  /** The ballot of `attempt`, opened (and its timeout started) at its first command. */
  ballot(attempt: number): Ballot {
    let b = this.#ballots.get(attempt);
    if (!b) {
      b = new Ballot(this.clients, this.quorum, this.timeoutMs, (e) => this.redlock.emit("error", e));
      this.#ballots.set(attempt, b);
    }
    return b;
  }

  sent = (out: { command: CommandKind }, attempt: number): void => {
    if (out.command === this.command) this.ballot(attempt);
  };

  observe = (ex: Exchange, attempt = ex.attempt): void => {
    if (ex.command !== this.command) {
      // A cleanup of a failed acquire attempt: its failures are reported, not counted.
      if (ex.answer.kind !== "reply") this.redlock.emit("error", asError(ex.answer.error));
      return;
    }
    const vote = voteOf(ex.command, ex.form, this.keys, ex.answer);
    if (vote !== null) this.ballot(attempt).vote(ex.instance, vote);
    else if (ex.answer.kind === "replyError") this.ballot(attempt).noscript(ex.instance, ex.answer.error, ex.late);
  };

  /** The stats promises of attempts 1..n (an attempt that sent nothing has empty stats). */
  attempts(n: number): Promise<ExecutionStats>[] {
    return Array.from(
      { length: n },
      (_, i) => this.#ballots.get(i + 1)?.promise ?? Promise.resolve(emptyStats(this.clients.length, this.quorum)),
    );
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * A Redlock over N independent Redis instances (node-redlock's API). Emits `"error"` for every
 * client that votes against or fails, including late ones (a no-op listener is attached, as in
 * node-redlock, so unhandled `"error"` events do not crash the process).
 */
export default class Redlock extends EventEmitter {
  readonly clients: Set<Client>;
  readonly settings: Settings;
  /** The core's scripts (the `scripts` argument cannot change them). */
  readonly scripts: {
    readonly acquireScript: { value: string; hash: string };
    readonly extendScript: { value: string; hash: string };
    readonly releaseScript: { value: string; hash: string };
  };
  readonly #list: readonly Client[];
  readonly #sends: readonly Send[];
  /** The settings node-redlock does not have (the others are read from `settings`, live). */
  readonly #instanceTimeout?: number;
  readonly #handoff?: Handoff;
  readonly #quorum: number;

  constructor(
    clients: Iterable<Client>,
    settings: Partial<Settings> & ExtraOptions = {},
    scripts: {
      readonly acquireScript?: string | ((script: string) => string);
      readonly extendScript?: string | ((script: string) => string);
      readonly releaseScript?: string | ((script: string) => string);
    } = {},
  ) {
    super();
    // As node-redlock: "error" events are for observability and must not crash the process.
    this.on("error", () => {});
    this.clients = new Set(clients);
    if (this.clients.size === 0) {
      throw new Error("Redlock must be instantiated with at least one redis client.");
    }
    if (this.clients.size > 16) {
      throw new RangeError(`Redlock supports at most 16 redis clients (got ${this.clients.size}).`);
    }
    this.#list = [...this.clients];
    this.#sends = this.#list.map((c, i) => sender(c, i));
    const merged = mergeSettings({ ...defaultSettings }, settings ?? {});
    const { instanceTimeout, ...plain } = merged;
    this.#instanceTimeout = instanceTimeout;
    // Like node-redlock's, a plain object read at every call (changing it is the caller's risk).
    this.settings = plain;
    for (const name of ["acquireScript", "extendScript", "releaseScript"] as const) {
      if (scripts?.[name] !== undefined) {
        throw new TypeError(
          `custom scripts (${name}) are not supported by redlock-wasm/compat: every decision is made against the core's own scripts`,
        );
      }
    }
    const byName = new Map(coreScripts().map((s) => [s.name, { value: s.source, hash: s.sha1 }]));
    const script = (name: string) => byName.get(name) as { value: string; hash: string };
    this.scripts = Object.freeze({
      acquireScript: script("acquire"),
      extendScript: script("extend"),
      releaseScript: script("release"),
    });
    const fast = (settings as ExtraOptions | undefined)?.fastHandoff;
    if (fast !== undefined && typeof fast !== "boolean") {
      throw new TypeError(`fastHandoff must be a boolean (got ${String(fast)})`);
    }
    const config = this.#config(2 ** 52, merged, false);
    this.#quorum = config.quorum;
    config.free();
    if (fast) this.#handoff = new Handoff(this.#list, this.#quorum);
  }

  #config(duration: number, s: Effective, notify = this.#handoff !== undefined): Config {
    const delay = Math.floor(s.retryDelay);
    return new Config({
      instances: this.#list.length,
      ttlMs: duration,
      driftFactor: s.driftFactor,
      // -1: until acquired. 2^32 - 2 retries, not 2^32 - 1: the core's attempt counter is a u32.
      retryCount: s.retryCount === -1 ? 2 ** 32 - 2 : s.retryCount,
      retryDelayMs: delay,
      // node-redlock floors each delay at 0; the core keeps the jitter within the delay.
      retryJitterMs: Math.min(Math.floor(s.retryJitter), delay),
      ...(s.instanceTimeout !== undefined ? { instanceTimeoutMs: s.instanceTimeout } : {}),
      releaseNotification: notify,
    });
  }

  /** The settings of one call: this Redlock's, overridden by the call's, validated. */
  #merge(over?: (Partial<Settings> & ExtraSettings) | null): Effective {
    return mergeSettings({ ...this.settings, instanceTimeout: this.#instanceTimeout }, over ?? {});
  }

  /** Closes every client (`quit()`), and the fast-handoff duplicates. */
  async quit(): Promise<void> {
    this.#handoff?.close();
    const results: Promise<unknown>[] = [];
    for (const client of this.clients) {
      const c = client as { quit?: () => Promise<unknown>; close?: () => Promise<unknown> };
      if (typeof c.quit === "function") results.push(c.quit());
      else if (typeof c.close === "function") results.push(c.close());
    }
    await Promise.all(results);
  }

  /**
   * Acquires a lock on `resources` for `duration` milliseconds. Rejects with an
   * `ExecutionError` (with the stats of every attempt) when no attempt won a quorum.
   */
  async acquire<R extends Resource = string>(
    resources: R[] | R,
    duration: number,
    settings?: AcquireSettings,
  ): Promise<Lock<R>> {
    checkDuration(duration);
    const s = this.#merge(settings);
    const keys = keyList(resources) as R[];
    const signal = settings?.signal;
    signal?.throwIfAborted();
    const config = this.#config(duration, s);
    const timeoutMs = config.instanceTimeoutMs;
    let machine: Acquire;
    try {
      machine = new Acquire(config, keys, performance.now());
    } finally {
      config.free();
    }
    const tally = new Tally(this, this.#list, this.#quorum, keys.length, "acquire", timeoutMs);
    const { outcome, cancelled } = await drive<AcquireOutcome>(machine, this.#sends, {
      clock: () => performance.now(),
      signal,
      cancel: (now) => machine.cancel(now),
      sent: tally.sent,
      observe: tally.observe,
      handoff: this.#handoff && { registry: this.#handoff, resources: keys },
    });
    const attempts = tally.attempts(outcome.attempts);
    if (outcome.type === "acquired") {
      const lock = new Lock<R>(this, keys, outcome.lease.value, attempts, expiration(outcome.lease));
      leases.set(lock, outcome.lease);
      return lock;
    }
    if (cancelled && outcome.reason === "cancelled" && signal) throw signal.reason;
    const error = new ExecutionError(QUORUM_MESSAGE, attempts);
    error.reason = outcome.reason as ExecutionFailure;
    throw error;
  }

  /**
   * Releases `lock` on every instance still holding its value, in one round (node-redlock
   * retries). Resolves as soon as a quorum deleted it; otherwise rejects with an
   * `ExecutionError` once every instance answered or timed out (the keys left behind expire
   * with their TTL). `settings` is accepted and unused.
   */
  async release<R extends Resource>(lock: Lock<R>, _settings?: Partial<Settings>): Promise<ExecutionResult> {
    this.#own(lock);
    // Immediately invalidate the lock, as node-redlock does.
    lock.expiration = 0;
    const lease = leaseOf(lock);
    const config = this.#config(lease.ttlMs, this.#merge());
    const timeoutMs = config.instanceTimeoutMs;
    let machine: Release;
    try {
      machine = new Release(config, lease, performance.now());
    } finally {
      config.free();
    }
    const tally = new Tally(this, this.#list, this.#quorum, lease.resources.length, "release", timeoutMs);
    const driven = drive<ReleaseOutcome>(machine, this.#sends, {
      clock: () => performance.now(),
      sent: tally.sent,
      observe: tally.observe,
    });
    // As node-redlock, resolved as soon as a quorum deleted the keys; the stragglers' answers
    // (or timeouts) complete the stats in the background.
    const ballot = tally.ballot(1);
    driven.catch(() => undefined);
    await Promise.race([driven, ballot.won]);
    const attempts = [ballot.promise];
    if (ballot.stats.votesFor.size >= this.#quorum) return { attempts };
    const error = new ExecutionError(QUORUM_MESSAGE, attempts);
    const held = [...ballot.stats.votesAgainst.values()].filter((e) => e instanceof ResourceLockedError).length;
    error.reason = held > 0 && held + ballot.stats.votesFor.size >= this.#quorum ? "lost" : "noQuorum";
    throw error;
  }

  /**
   * Extends a valid lock to `duration` milliseconds from now, resolving with a new `Lock` (the
   * old one's expiration becomes 0). Retries per the settings only while the lock is valid and
   * the failure was not its loss; never revives an expired lock or re-creates a key.
   */
  async extend<R extends Resource>(existing: Lock<R>, duration: number, settings?: Partial<Settings> & ExtraSettings): Promise<Lock<R>> {
    checkDuration(duration);
    this.#own(existing);
    const s = this.#merge(settings);
    let lease = leaseOf(existing);
    if (existing.expiration < Date.now() || !(performance.now() < lease.validUntil)) {
      const error = new ExecutionError(EXPIRED_MESSAGE, []);
      error.reason = "expired";
      throw error;
    }
    const attempts: Promise<ExecutionStats>[] = [];
    const maxAttempts = s.retryCount === -1 ? Infinity : s.retryCount + 1;
    let reason: ExtendFailure;
    for (;;) {
      const result = await this.#extendOnce(lease, duration, s);
      attempts.push(result.stats);
      if (result.outcome.type === "extended") {
        existing.expiration = 0;
        const lock = new Lock<R>(this, existing.resources, existing.value, attempts, expiration(result.outcome.lease));
        leases.set(lock, result.outcome.lease);
        return lock;
      }
      reason = result.outcome.reason;
      lease = result.outcome.lease;
      leases.set(existing, lease);
      const retryable = reason === "noQuorum" || reason === "validityExhausted";
      if (!retryable || attempts.length >= maxAttempts) break;
      const pause = s.retryDelay + Math.floor((Math.random() * 2 - 1) * s.retryJitter);
      // No attempt that could only start after the lock expired.
      if (performance.now() + Math.max(0, pause) >= lease.validUntil) break;
      await sleep(pause);
    }
    const error = new ExecutionError(reason === "expired" ? EXPIRED_MESSAGE : QUORUM_MESSAGE, attempts);
    error.reason = reason as ExecutionFailure;
    throw error;
  }

  /** One extend round. @internal */
  async #extendOnce(
    lease: Lease,
    duration: number,
    s: Effective,
  ): Promise<{ outcome: ExtendOutcome; stats: Promise<ExecutionStats> }> {
    const config = this.#config(duration, s);
    const timeoutMs = config.instanceTimeoutMs;
    let machine: Extend;
    try {
      machine = new Extend(config, lease, performance.now());
    } finally {
      config.free();
    }
    const tally = new Tally(this, this.#list, this.#quorum, lease.resources.length, "extend", timeoutMs);
    const { outcome } = await drive<ExtendOutcome>(machine, this.#sends, {
      clock: () => performance.now(),
      sent: tally.sent,
      observe: tally.observe,
    });
    if (outcome.type === "failed" && outcome.reason === "expired") {
      // Nothing was sent: an empty, settled ballot.
      return { outcome, stats: Promise.resolve(emptyStats(this.#list.length, this.#quorum)) };
    }
    return { outcome, stats: tally.ballot(1).promise };
  }

  /**
   * Runs `routine` while holding a lock on `resources`, extending it
   * `automaticExtensionThreshold` ms before it expires, and releases it afterwards. If the lock
   * is lost, `signal` aborts (before the lock's validity ends) with the error in `signal.error`
   * (and `signal.reason`); the routine should stop. Resolves with the routine's value; a failed
   * release does not mask it (the keys expire with their TTL).
   */
  using<T>(
    resources: string[],
    duration: number,
    settings: AcquireSettings,
    routine?: (signal: RedlockAbortSignal) => Promise<T>,
  ): Promise<T>;
  using<T>(resources: string[], duration: number, routine: (signal: RedlockAbortSignal) => Promise<T>): Promise<T>;
  using<T, R extends Resource = string>(
    resources: R[] | R,
    duration: number,
    settings: AcquireSettings,
    routine?: (signal: RedlockAbortSignal) => Promise<T>,
  ): Promise<T>;
  using<T, R extends Resource = string>(
    resources: R[] | R,
    duration: number,
    routine: (signal: RedlockAbortSignal) => Promise<T>,
  ): Promise<T>;
  async using<T>(
    resources: Resource[] | Resource,
    duration: number,
    settingsOrRoutine: AcquireSettings | ((signal: RedlockAbortSignal) => Promise<T>),
    optionalRoutine?: (signal: RedlockAbortSignal) => Promise<T>,
  ): Promise<T> {
    checkDuration(duration);
    const perCall = settingsOrRoutine && typeof settingsOrRoutine !== "function" ? settingsOrRoutine : undefined;
    const s = this.#merge(perCall);
    const routine = optionalRoutine ?? settingsOrRoutine;
    if (typeof routine !== "function") {
      throw new Error("INVARIANT: routine is not a function.");
    }
    if (s.automaticExtensionThreshold > duration - 100) {
      throw new Error(
        "A lock `duration` must be at least 100ms greater than the `automaticExtensionThreshold` setting.",
      );
    }
    const controller = new AbortController();
    const signal = controller.signal as RedlockAbortSignal;
    const first = await this.acquire(resources, duration, perCall);
    const keeper = new Keeper(this, first, duration, s, (error) => {
      signal.error = error;
      controller.abort(error);
    });
    try {
      return await routine(signal);
    } finally {
      const lock = await keeper.stop();
      await this.release(lock).catch(() => undefined);
    }
  }

  /** The instance timeout for a duration under these settings. @internal */
  instanceTimeout(duration: number, s: Effective): number {
    const config = this.#config(duration, s);
    try {
      return config.instanceTimeoutMs;
    } finally {
      config.free();
    }
  }

  /** One extend round, for `using()`. @internal */
  extendOnce(lock: Lock<Resource>, duration: number, s: Effective) {
    return this.#extendOnce(leaseOf(lock), duration, s);
  }

  #own(lock: Lock<Resource>): void {
    if (!(lock instanceof Lock) || lock.redlock !== this) {
      throw new TypeError("the lock was not taken by this Redlock");
    }
  }
}

function emptyStats(n: number, quorum: number): ExecutionStats {
  return { membershipSize: n, quorumSize: quorum, votesFor: new Set(), votesAgainst: new Map() };
}

/** A lease's end as a `Date.now()` time (node-redlock's `expiration`). */
function expiration(lease: Lease): number {
  return Math.floor(Date.now() + (lease.validUntil - performance.now()));
}

/**
 * The lease of a lock: the core's for the locks this module made, or one rebuilt from the
 * public fields for a `Lock` the application constructed itself.
 */
function leaseOf(lock: Lock<Resource>): Lease {
  const known = leases.get(lock);
  if (known) return { ...known, validUntil: lock.expiration === 0 ? 0 : known.validUntil };
  const left = lock.expiration - Date.now();
  return {
    resources: [...lock.resources],
    value: lock.value,
    ttlMs: Math.max(1_000, Math.ceil(left)),
    validUntil: Math.max(0, Math.floor(performance.now() + left)),
  };
}

/** Keeps a `using()` lock extended; calls `lose` once when it is lost. */
class Keeper {
  #lock: Lock<Resource>;
  readonly #redlock: Redlock;
  readonly #duration: number;
  readonly #s: Effective;
  readonly #lose: (error: Error) => void;
  readonly #timeoutMs: number;
  #timer?: ReturnType<typeof setTimeout>;
  #guard?: ReturnType<typeof setTimeout>;
  #extending?: Promise<void>;
  #stopped = false;
  #attempts: Promise<ExecutionStats>[] = [];

  constructor(redlock: Redlock, lock: Lock<Resource>, duration: number, s: Effective, lose: (error: Error) => void) {
    this.#redlock = redlock;
    this.#lock = lock;
    this.#duration = duration;
    this.#s = s;
    this.#lose = lose;
    this.#timeoutMs = redlock.instanceTimeout(duration, s);
    this.#schedule();
  }

  #validUntil(): number {
    return leaseOf(this.#lock).validUntil;
  }

  #fail(error: Error): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#guard);
    this.#lose(error);
  }

  /** Aborts a millisecond before the current validity ends, unless extended before. */
  #armGuard(): boolean {
    clearTimeout(this.#guard);
    const check = (): boolean => {
      const left = this.#validUntil() - performance.now();
      if (left <= 1) {
        const error = new ExecutionError(EXPIRED_MESSAGE, this.#attempts);
        error.reason = "expired";
        this.#fail(error);
        return false;
      }
      this.#guard = setTimeout(check, Math.min(MAX_TIMER_MS, left - 1));
      return true;
    };
    return check();
  }

  #schedule(): void {
    if (this.#stopped || !this.#armGuard()) return;
    const at = this.#validUntil() - this.#s.automaticExtensionThreshold;
    clearTimeout(this.#timer);
    const due = () => {
      const now = performance.now();
      if (now < at) this.#timer = setTimeout(due, Math.min(MAX_TIMER_MS, at - now));
      else this.#extend();
    };
    due();
  }

  #extend(): void {
    if (this.#stopped) return;
    const lock = this.#lock;
    this.#extending = this.#redlock.extendOnce(lock, this.#duration, this.#s).then(({ outcome, stats }) => {
      this.#attempts.push(stats);
      if (this.#stopped) {
        // The routine finished meanwhile: keep the newest lease for the release.
        if (outcome.type === "extended") this.#replace(lock, outcome.lease, stats);
        return;
      }
      if (outcome.type === "extended") {
        this.#replace(lock, outcome.lease, stats);
        this.#attempts = [];
        this.#schedule();
        return;
      }
      leases.set(lock, outcome.lease);
      const reason = outcome.reason as ExecutionFailure;
      const error = new ExecutionError(reason === "expired" ? EXPIRED_MESSAGE : QUORUM_MESSAGE, this.#attempts);
      error.reason = reason;
      if (reason !== "noQuorum" && reason !== "validityExhausted") return this.#fail(error);
      if (!this.#armGuard()) return;
      // Transient (instances down or slow): retry while an extension can still finish in time.
      const left = this.#validUntil() - performance.now();
      if (left <= 2 * this.#timeoutMs) return this.#fail(error);
      const pause = Math.max(1, Math.min(left / 4, this.#s.retryDelay));
      this.#timer = setTimeout(() => this.#extend(), pause);
    });
  }

  #replace(old: Lock<Resource>, lease: Lease, stats: Promise<ExecutionStats>): void {
    old.expiration = 0;
    const lock = new Lock<Resource>(this.#redlock, old.resources, old.value, [stats], expiration(lease));
    leases.set(lock, lease);
    this.#lock = lock;
  }

  /** Stops extending, waits for an extension in flight, and returns the newest lock. */
  async stop(): Promise<Lock<Resource>> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#guard);
    await this.#extending?.catch(() => undefined);
    return this.#lock;
  }
}

export { Redlock };
