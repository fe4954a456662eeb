// The async Redlock over the host's clients: acquire, extend, release and using(). Every
// protocol decision is the core's; this file owns the clients, the clock and the timers.

import {
  Acquire,
  Config,
  Extend,
  Release,
  type AcquireOutcome,
  type Bytes,
  type ExtendOutcome,
  type InstanceStatus,
  type Lease,
  type ReleaseOutcome,
  type Resource,
} from "./wasm/redlock_wasm.js";
import { sender, type RedisClient, type Send } from "./clients.js";
import { drive, MAX_TIMER_MS, type Exchange } from "./driver.js";
import { failure, LockLostError, type InstanceResult } from "./errors.js";
import { Handoff } from "./handoff.js";

/** Settings of the algorithm (see `ConfigOptions` for the defaults). Times are milliseconds. */
export interface RedlockSettings {
  /** ρ in `drift = floor(ttl × ρ) + pad`; default 0.01. */
  driftFactor?: number;
  /** The pad added to the drift; default 2. */
  driftPadMs?: number;
  /** How long one instance may take to answer one command; default 5 % of the TTL, at least 10. */
  instanceTimeoutMs?: number;
  /** How many times a failed acquire is retried; default 3. */
  retryCount?: number;
  /** The base delay between attempts; default 200. */
  retryDelayMs?: number;
  /** Each delay is drawn from `[delay - jitter, delay + jitter]`; default 100. */
  retryJitterMs?: number;
  /** The least validity worth having; less fails with `validityExhausted`. Default 0. */
  minValidityMs?: number;
  /** No attempt starts later than this after `acquire` was called; default none. */
  acquireDeadlineMs?: number | null;
}

/** Options of `new Redlock(clients, options)`. */
export interface RedlockOptions extends RedlockSettings {
  /**
   * The monotonic clock, in milliseconds; default `performance.now()`. Leases are valid until
   * a reading of this clock.
   */
  clock?: () => number;
  /**
   * Called for every command answered, late ones included: for logging and metrics (and for
   * compatibility layers that report per-client errors). Must not throw.
   */
  onExchange?: (exchange: Exchange) => void;
  /**
   * Fast handoff (docs/fast-handoff.md); default false. Releases, and cleanups of failed
   * attempts, announce themselves on `redlock:released:<key>`; an acquire that lost an attempt
   * listens for them (on one subscriber connection per instance, a `duplicate()` of its client,
   * opened at the first contention and closed after a second without waiters or by `close()`)
   * and retries as soon as a quorum of instances announced a release, instead of sleeping out
   * its retry delay. Announcements only move retries earlier: lost ones, a dead instance or a
   * client that cannot be duplicated fall back to the normal delay. Every client that takes the
   * same locks should turn it on (releases of the others wake nobody).
   */
  fastHandoff?: boolean;
}

/** Per-call options of `acquire` and `using`. */
export interface AcquireOptions extends RedlockSettings {
  /**
   * Cancels a pending acquire: no further attempt starts, everything sent is released, and the
   * promise rejects with `signal.reason`.
   */
  signal?: AbortSignal;
}

/** Per-call options of `using`. */
export interface UsingOptions extends AcquireOptions {
  /**
   * Extend when this much validity is left, in milliseconds; default two thirds of the TTL
   * (that is, once a third of it has passed). Must be below the TTL.
   */
  extendBeforeMs?: number;
}

/** How a release went. */
export interface ReleaseResult {
  /** A quorum confirmed the keys are gone. When false, some may remain until their TTL. */
  confirmed: boolean;
  /** How many instances deleted a key. */
  deleted: number;
  /** Per-instance results (`yes` = deleted, `held` = not ours or already gone). */
  instances: InstanceResult[];
}

const SETTINGS = [
  "driftFactor",
  "driftPadMs",
  "instanceTimeoutMs",
  "retryCount",
  "retryDelayMs",
  "retryJitterMs",
  "minValidityMs",
  "acquireDeadlineMs",
] as const;

function pickSettings(...sources: (RedlockSettings | undefined)[]): RedlockSettings {
  const out: Record<string, unknown> = {};
  for (const source of sources) {
    if (!source) continue;
    for (const key of SETTINGS) if (source[key] !== undefined) out[key] = source[key];
  }
  return out as RedlockSettings;
}

function results(report: readonly InstanceStatus[], errors: readonly unknown[]): InstanceResult[] {
  return report.map((status, instance) => {
    const failed = status === "transportError" || status.startsWith("serverError");
    const error = failed ? errors[instance] : undefined;
    return error === undefined ? { instance, status } : { instance, status, error };
  });
}

function copyLease(l: Lease): Lease {
  return { resources: [...l.resources], value: l.value, ttlMs: l.ttlMs, validUntil: l.validUntil };
}

function timer(fn: () => void, delayMs: number): ReturnType<typeof setTimeout> {
  return setTimeout(fn, Math.min(MAX_TIMER_MS, Math.max(0, delayMs)));
}

/**
 * A lock held on a quorum of instances, valid until {@link Lock.validUntil} on the Redlock's
 * clock and not a millisecond longer: check {@link Lock.isValid} before committing protected
 * work. Release it with {@link Lock.release}; unreleased keys expire with their TTL.
 */
export class Lock {
  /** The Redlock that took it. */
  readonly redlock: Redlock;
  /** The attempts the acquire made. */
  readonly attempts: number;
  #lease: Lease;
  #released = false;
  /** Extend and release of one lock run one at a time, in call order. */
  #queue: Promise<unknown> = Promise.resolve();

  /** @internal */
  constructor(redlock: Redlock, lease: Lease, attempts: number) {
    this.redlock = redlock;
    this.#lease = lease;
    this.attempts = attempts;
  }

  /** The keys it covers. */
  get resources(): readonly Bytes[] {
    return this.#lease.resources;
  }

  /** The random value stored in its keys (32 lowercase hex characters). */
  get value(): string {
    return this.#lease.value;
  }

  /** The TTL its keys were last set with, in milliseconds. */
  get ttlMs(): number {
    return this.#lease.ttlMs;
  }

  /** The first reading of the Redlock's clock at which it is no longer valid. */
  get validUntil(): number {
    return this.#lease.validUntil;
  }

  /** A copy of the lease, as plain data for the low-level machines. */
  get lease(): Lease {
    return copyLease(this.#lease);
  }

  /** Whether it was released. */
  get released(): boolean {
    return this.#released;
  }

  /** Milliseconds of validity left now (0 once expired or released). */
  remainingMs(): number {
    if (this.#released) return 0;
    return Math.max(0, Math.floor(this.#lease.validUntil - this.redlock.clock()));
  }

  /** Whether it is still valid now. */
  isValid(): boolean {
    return !this.#released && this.redlock.clock() < this.#lease.validUntil;
  }

  /** Extends it; see {@link Redlock.extend}. */
  extend(ttlMs?: number): Promise<Lock> {
    return this.redlock.extend(this, ttlMs);
  }

  /** Releases it; see {@link Redlock.release}. */
  release(): Promise<ReleaseResult> {
    return this.redlock.release(this);
  }

  /** @internal */
  serialize<T>(op: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(op, op);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  /** @internal */
  setLease(lease: Lease): void {
    this.#lease = lease;
  }

  /** @internal */
  markReleased(): boolean {
    const was = this.#released;
    this.#released = true;
    return !was;
  }
}

/**
 * Redlock over N independent Redis masters, each reached through a node-redis (v4, v5) or
 * ioredis client the application connected. A lock is held when a quorum (`N / 2 + 1`) took
 * it fast enough that `ttl - elapsed - drift` is still positive.
 *
 * Failures are errors of distinct classes: {@link ContendedError} (someone else holds it),
 * {@link NoQuorumError} (instances unreachable or failing), {@link LockLostError}; misuse
 * (bad resources, settings, numbers) throws a plain `Error`/`TypeError`.
 */
export class Redlock {
  /** The clients, one per instance, in instance order. */
  readonly clients: readonly RedisClient[];
  /** The monotonic clock leases are measured on, in milliseconds. */
  readonly clock: () => number;
  readonly #sends: readonly Send[];
  readonly #settings: RedlockSettings;
  readonly #observe?: (exchange: Exchange) => void;
  readonly #handoff?: Handoff;
  /** Configs of calls without per-call settings, by TTL: building one costs more than a decision. */
  readonly #configs = new Map<number, Config>();

  /** A Redlock over `clients` (1 to 16, each an independent master). */
  constructor(clients: readonly RedisClient[], options: RedlockOptions = {}) {
    if (!Array.isArray(clients) || clients.length === 0) {
      throw new TypeError("Redlock needs an array of at least one Redis client");
    }
    const twice = clients.findIndex((c, i) => clients.indexOf(c) !== i);
    if (twice >= 0) {
      // One server counted twice would make a minority look like a quorum.
      throw new TypeError(
        `client ${twice} is the same object as client ${clients.indexOf(clients[twice] as RedisClient)}: each client must reach its own independent instance`,
      );
    }
    this.clients = [...clients];
    this.#sends = this.clients.map((c, i) => sender(c, i));
    this.#settings = pickSettings(options);
    this.#observe = options.onExchange;
    const clock = options.clock;
    this.clock = clock ?? (() => performance.now());
    if (options.fastHandoff !== undefined && typeof options.fastHandoff !== "boolean") {
      throw new TypeError(`fastHandoff must be a boolean (got ${String(options.fastHandoff)})`);
    }
    // Validates the settings now rather than at the first acquire, with a TTL long enough for
    // any timeout or minimum validity (those are checked against each call's TTL).
    const config = this.#config(2 ** 52, {});
    if (options.fastHandoff) this.#handoff = new Handoff(this.clients, config.quorum);
    config.free();
  }

  #config(ttlMs: number, overrides: RedlockSettings | undefined): Config {
    return new Config({
      instances: this.#sends.length,
      ttlMs,
      ...pickSettings(this.#settings, overrides),
      releaseNotification: this.#handoff !== undefined,
    });
  }

  /**
   * Runs `use` with the config for `ttlMs` and `overrides`. Without per-call settings the config
   * is cached by TTL (a few dozen TTLs at most; past that the cache starts over).
   */
  #withConfig<T>(ttlMs: number, overrides: RedlockSettings | undefined, use: (config: Config) => T): T {
    const plain = overrides === undefined || SETTINGS.every((key) => overrides[key] === undefined);
    if (!plain) {
      const config = this.#config(ttlMs, overrides);
      try {
        return use(config);
      } finally {
        config.free();
      }
    }
    let config = this.#configs.get(ttlMs);
    if (config === undefined) {
      config = this.#config(ttlMs, undefined);
      if (this.#configs.size >= 64) {
        for (const old of this.#configs.values()) old.free();
        this.#configs.clear();
      }
      this.#configs.set(ttlMs, config);
    }
    return use(config);
  }

  /** Whether fast handoff is on. */
  get fastHandoff(): boolean {
    return this.#handoff !== undefined;
  }

  /**
   * Closes the fast-handoff subscriber connections (the clients given to the constructor stay
   * open: they are the application's) and frees the cached configs. Pending and later acquires
   * retry on their timers.
   */
  close(): void {
    this.#handoff?.close();
    for (const config of this.#configs.values()) config.free();
    this.#configs.clear();
  }

  /**
   * Takes a lock on `resources` (one key, or several locked all-or-nothing) whose keys live
   * for `ttlMs`. Rejects with {@link ContendedError} or {@link NoQuorumError} (or another
   * {@link RedlockError}) once the retries are spent; a failed attempt never leaves keys
   * behind it could delete.
   */
  async acquire(
    resources: Resource | readonly Resource[],
    ttlMs: number,
    options: AcquireOptions = {},
  ): Promise<Lock> {
    options.signal?.throwIfAborted();
    if (typeof ttlMs !== "number") {
      throw new TypeError(`ttlMs must be a number of milliseconds (got ${typeof ttlMs})`);
    }
    const machine = this.#withConfig(
      ttlMs,
      options,
      (config) => new Acquire(config, resources as Resource | Resource[], this.clock()),
    );
    const keys = Array.isArray(resources) ? [...resources] : [resources as Resource];
    const { outcome, errors, cancelled } = await drive<AcquireOutcome>(machine, this.#sends, {
      clock: this.clock,
      signal: options.signal,
      cancel: (now) => machine.cancel(now),
      observe: this.#observe,
      handoff: this.#handoff && { registry: this.#handoff, resources: keys },
    });
    if (outcome.type === "acquired") {
      return new Lock(this, outcome.lease, outcome.attempts);
    }
    if (cancelled && outcome.reason === "cancelled" && options.signal) {
      throw options.signal.reason;
    }
    throw failure(outcome.reason, keys, outcome.attempts, results(outcome.report, errors));
  }

  /**
   * Extends `lock` so its keys live `ttlMs` (default: its current TTL) from now, on a quorum.
   * Never revives an expired lock or re-creates a key. Resolves with the same lock, updated;
   * on failure the lock's validity may be shortened (never lengthened) and the promise rejects
   * with {@link LockLostError} (lost, expired), {@link NoQuorumError} or a
   * {@link RedlockError}.
   */
  async extend(lock: Lock, ttlMs?: number): Promise<Lock> {
    this.#own(lock);
    if (ttlMs !== undefined && typeof ttlMs !== "number") {
      throw new TypeError(`ttlMs must be a number of milliseconds (got ${typeof ttlMs})`);
    }
    return lock.serialize(async () => {
      if (lock.released) throw new Error("the lock was already released");
      const lease = lock.lease;
      const machine = this.#withConfig(
        ttlMs ?? lease.ttlMs,
        undefined,
        (config) => new Extend(config, lease, this.clock()),
      );
      const { outcome, errors } = await drive<ExtendOutcome>(machine, this.#sends, {
        clock: this.clock,
        observe: this.#observe,
      });
      if (!lock.released) lock.setLease(outcome.lease);
      if (outcome.type === "extended") return lock;
      throw failure(outcome.reason, lease.resources, 1, results(outcome.report, errors));
    });
  }

  /**
   * Releases `lock` on every instance (only keys still holding its value are deleted) and
   * reports per instance. Unreachable instances keep the key until its TTL; that is reported,
   * not thrown. Throws if the lock was already released.
   */
  async release(lock: Lock): Promise<ReleaseResult> {
    this.#own(lock);
    if (!lock.markReleased()) throw new Error("the lock was already released");
    return lock.serialize(async () => {
      const machine = this.#withConfig(
        lock.ttlMs,
        undefined,
        (config) => new Release(config, lock.lease, this.clock()),
      );
      const { outcome, errors } = await drive<ReleaseOutcome>(machine, this.#sends, {
        clock: this.clock,
        observe: this.#observe,
      });
      return {
        confirmed: outcome.confirmed,
        deleted: outcome.deleted,
        instances: results(outcome.report, errors),
      };
    });
  }

  /**
   * Runs `routine` while holding a lock on `resources`, extending it in the background (once
   * a third of its TTL has passed, or `extendBeforeMs` before it ends) and releasing it
   * afterwards.
   *
   * `routine` receives the lock and an `AbortSignal` that aborts, with a {@link LockLostError} as its
   * `reason`, as soon as the lock is lost: an extension found it taken, or extensions kept
   * failing — always before the validity ends (as long as the event loop is not blocked).
   * Stop the protected work when it fires. If it fired, `using` rejects with that error even
   * if `routine` resolved; if `routine` throws, `using` rethrows its error after releasing.
   */
  async using<T>(
    resources: Resource | readonly Resource[],
    ttlMs: number,
    routine: (signal: AbortSignal, lock: Lock) => Promise<T> | T,
    options: UsingOptions = {},
  ): Promise<T> {
    if (typeof routine !== "function") throw new TypeError("using() needs a routine function");
    const before = options.extendBeforeMs ?? (ttlMs * 2) / 3;
    if (!(before > 0 && before < ttlMs)) {
      throw new RangeError(`extendBeforeMs must be above 0 and below the TTL of ${ttlMs} ms (got ${before})`);
    }
    const lock = await this.acquire(resources, ttlMs, options);
    const controller = new AbortController();
    const watchdog = new Watchdog(this, lock, ttlMs, before, options, controller);
    let settled: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      settled = { ok: true, value: await routine(controller.signal, lock) };
    } catch (error) {
      settled = { ok: false, error };
    }
    await watchdog.stop();
    await this.release(lock).catch(() => undefined);
    if (!settled.ok) throw settled.error;
    if (controller.signal.aborted) throw controller.signal.reason;
    return settled.value;
  }

  #own(lock: Lock): void {
    if (!(lock instanceof Lock) || lock.redlock !== this) {
      throw new TypeError("the lock was not taken by this Redlock");
    }
  }

  /** The instance timeout for `ttlMs` with these settings. @internal */
  instanceTimeoutMs(ttlMs: number, overrides?: RedlockSettings): number {
    const config = this.#config(ttlMs, overrides);
    try {
      return config.instanceTimeoutMs;
    } finally {
      config.free();
    }
  }
}

/** Keeps a `using()` lock alive and aborts the signal when it is lost. */
class Watchdog {
  readonly #redlock: Redlock;
  readonly #lock: Lock;
  readonly #ttlMs: number;
  readonly #extendBeforeMs: number;
  readonly #controller: AbortController;
  readonly #timeoutMs: number;
  readonly #retryDelayMs: number;
  #extendTimer?: ReturnType<typeof setTimeout>;
  #expiryTimer?: ReturnType<typeof setTimeout>;
  #extending?: Promise<void>;
  #stopped = false;

  constructor(
    redlock: Redlock,
    lock: Lock,
    ttlMs: number,
    extendBeforeMs: number,
    settings: RedlockSettings,
    controller: AbortController,
  ) {
    this.#redlock = redlock;
    this.#lock = lock;
    this.#ttlMs = ttlMs;
    this.#extendBeforeMs = extendBeforeMs;
    this.#controller = controller;
    this.#timeoutMs = redlock.instanceTimeoutMs(ttlMs, settings);
    this.#retryDelayMs = settings.retryDelayMs ?? 200;
    this.#schedule();
  }

  #lose(reason: "expired" | "lost" | "extensionFailed", error?: LockLostError): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#extendTimer);
    clearTimeout(this.#expiryTimer);
    const lease = this.#lock.lease;
    this.#controller.abort(error ?? new LockLostError(reason, lease.resources, 1, []));
  }

  /** Arms the expiry guard and the next extension from the current lease. */
  #schedule(): void {
    if (this.#stopped) return;
    const lease = this.#lock.lease;
    if (!this.#armGuard()) return;
    const extendAt = lease.validUntil - this.#extendBeforeMs;
    clearTimeout(this.#extendTimer);
    const due = () => {
      const now = this.#redlock.clock();
      if (now < extendAt) this.#extendTimer = timer(due, extendAt - now);
      else this.#extend();
    };
    this.#extendTimer = timer(due, extendAt - this.#redlock.clock());
  }

  /**
   * Arms the timer that aborts the signal a millisecond before the current validity ends (a
   * timer cut short by the 2^31 ms limit re-arms instead of firing). False if already lost.
   */
  #armGuard(): boolean {
    clearTimeout(this.#expiryTimer);
    const guard = (): boolean => {
      const left = this.#lock.validUntil - this.#redlock.clock();
      if (left <= 1) {
        this.#lose("expired");
        return false;
      }
      this.#expiryTimer = timer(guard, left - 1);
      return true;
    };
    return guard();
  }

  #extend(): void {
    if (this.#stopped) return;
    this.#extending = this.#redlock.extend(this.#lock, this.#ttlMs).then(
      () => this.#schedule(),
      (error: unknown) => {
        if (this.#stopped) return;
        if (error instanceof LockLostError) return this.#lose(error.reason as "lost", error);
        // The failed extend may have shortened the lease.
        if (!this.#armGuard()) return;
        // Transient (no quorum, slow instances): retry while an extension can still finish.
        const left = this.#lock.remainingMs();
        if (left <= 2 * this.#timeoutMs) return this.#lose("extensionFailed");
        const pause = Math.max(1, Math.min(left / 4, this.#retryDelayMs));
        this.#extendTimer = timer(() => this.#extend(), pause);
      },
    );
  }

  /** Stops extending; waits for an extension in flight so the release follows it. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#extendTimer);
    clearTimeout(this.#expiryTimer);
    await this.#extending?.catch(() => undefined);
  }
}
