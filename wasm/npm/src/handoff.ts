// Fast handoff (docs/fast-handoff.md): a waiter hears the holder's release and retries at once
// instead of sleeping out its retry delay. Releases announce themselves through the core's
// notifying release script; this file listens, counts announcements per channel and wakes the
// longest waiter of this Redlock. Only the timing of retries depends on it: the core decides
// every attempt, so a lost, late or forged announcement costs at most an early attempt or the
// normal retry delay.

import type { Bytes } from "./wasm/redlock_wasm.js";
import type { RedisClient } from "./clients.js";

/** The channel prefix of the core's `RELEASE_NOTIFY_SCRIPT`. */
const CHANNEL_PREFIX = Buffer.from("redlock:released:");
/** Released values a channel remembers while counting their announcements. */
const RECENT_VALUES = 8;
/** The least time between two connection attempts of one instance's subscriber. */
const RECONNECT_BACKOFF_MS = 500;
/** Subscriber connections close after this long without any waiter. */
const IDLE_CLOSE_MS = 1_000;
/** A subscriber that has not connected and confirmed its subscriptions by then is dropped. */
const CONNECT_TIMEOUT_MS = 5_000;

/** A waiter's side of a subscription: `notify` is called when a release should wake it. */
export interface Waiter {
  notify(): void;
}

/** A waiter's subscription; `end()` unsubscribes (idempotent). @internal */
export interface Subscription {
  end(): void;
}

/** One instance's pub/sub connection, whatever the client library. */
interface Subscriber {
  /** Resolves once connected (rejects on failure). */
  ready: Promise<void>;
  subscribe(channels: Buffer[]): Promise<unknown>;
  unsubscribe(channels: Buffer[]): Promise<unknown>;
  close(): void;
}

type OnMessage = (channel: Buffer, message: Buffer) => void;

type Duplicable = {
  duplicate(...args: unknown[]): unknown;
};

/**
 * A subscriber connection for `client` (a duplicate of it), or undefined when the client cannot
 * be duplicated (the instance is then simply not listened to: waiters fall back to their timers).
 */
function openSubscriber(client: RedisClient, onMessage: OnMessage, onBroken: () => void): Subscriber | undefined {
  const c = client as Partial<Duplicable> & { call?: unknown; sendCommand?: unknown };
  if (typeof c.duplicate !== "function") return undefined;
  if (typeof c.call === "function") {
    // ioredis Redis or Cluster. No reconnection of its own: a broken subscriber is dropped and
    // re-opened by the next waiter (a Cluster keeps its own topology handling).
    const isCluster = typeof (c as { nodes?: unknown }).nodes === "function";
    const sub = (
      isCluster ? c.duplicate() : c.duplicate({ retryStrategy: () => null, lazyConnect: false, maxRetriesPerRequest: 1 })
    ) as {
      on(event: string, fn: (...args: never[]) => void): void;
      subscribe(...channels: Buffer[]): Promise<unknown>;
      unsubscribe(...channels: Buffer[]): Promise<unknown>;
      disconnect(): void;
      status?: string;
    };
    // Subscribe once connected (a client with enableOfflineQueue: false refuses commands before).
    const ready = new Promise<void>((resolve, reject) => {
      if (sub.status === "ready") return resolve();
      sub.on("ready", () => resolve());
      sub.on("end", () => reject(new Error("subscriber connection ended")));
    });
    sub.on("error", () => onBroken());
    sub.on("end", () => onBroken());
    sub.on("messageBuffer", ((channel: Buffer, message: Buffer) => onMessage(channel, message)) as never);
    return {
      ready,
      subscribe: (channels) => sub.subscribe(...channels),
      unsubscribe: (channels) => sub.unsubscribe(...channels),
      close: () => sub.disconnect(),
    };
  }
  if (typeof c.sendCommand === "function") {
    // node-redis v4 / v5.
    const sub = c.duplicate() as {
      on(event: string, fn: (...args: unknown[]) => void): void;
      connect(): Promise<unknown>;
      subscribe(channels: string[], listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<unknown>;
      unsubscribe(channels: string[], listener: (message: Buffer, channel: Buffer) => void, bufferMode: true): Promise<unknown>;
      destroy?: () => void;
      disconnect?: () => Promise<unknown>;
    };
    const listener = (message: Buffer, channel: Buffer) => onMessage(channel, message);
    sub.on("error", () => onBroken());
    sub.on("end", () => onBroken());
    // node-redis files listeners under the channel's text: a key that is not UTF-8 cannot be
    // listened to (its waiters keep their timers).
    const names = (channels: Buffer[]) =>
      channels.map((b) => b.toString()).filter((s, i) => Buffer.from(s).equals(channels[i] as Buffer));
    const each = (channels: Buffer[], op: (names: string[]) => Promise<unknown>) => {
      const list = names(channels);
      return list.length > 0 ? op(list) : Promise.resolve();
    };
    return {
      ready: sub.connect().then(() => undefined),
      subscribe: (channels) => each(channels, (list) => sub.subscribe(list, listener, true)),
      unsubscribe: (channels) => each(channels, (list) => sub.unsubscribe(list, listener, true)),
      close: () => {
        if (typeof sub.destroy === "function") sub.destroy();
        else sub.disconnect?.().catch(() => undefined);
      },
    };
  }
  return undefined;
}

interface Recent {
  value: string;
  /** The instances that announced it; null once it counted (woke a waiter). */
  instances: Set<number> | null;
}

interface Channel {
  name: Buffer;
  /** Its waiters, longest waiting first. */
  waiters: Waiter[];
  recent: Recent[];
  /** Instances that announced any release since the channel last woke a waiter. */
  freed: Set<number>;
}

interface Listener {
  client: RedisClient;
  sub?: Subscriber;
  /** The subscriber is connected and subscribed to every channel of the registry. */
  live: boolean;
  startedAt: number;
}

/** The channel's key in the registry: one character per byte. */
function channelKey(name: Buffer): string {
  return name.toString("latin1");
}

/**
 * The fast-handoff state of one Redlock: its channels with their waiters and one subscriber
 * connection per instance, opened at the first contention. @internal
 */
export class Handoff {
  readonly #quorum: number;
  readonly #listeners: Listener[];
  readonly #channels = new Map<string, Channel>();
  #idleTimer?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor(clients: readonly RedisClient[], quorum: number) {
    this.#quorum = quorum;
    this.#listeners = clients.map((client) => ({ client, live: false, startedAt: -Infinity }));
  }

  /** Subscribes `waiter` to the release channels of `resources` on every instance. */
  subscribe(resources: readonly Bytes[], waiter: Waiter): Subscription {
    if (this.#closed) return { end() {} };
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    const names: string[] = [];
    const fresh: Buffer[] = [];
    for (const key of resources) {
      const name = Buffer.concat([CHANNEL_PREFIX, typeof key === "string" ? Buffer.from(key) : Buffer.from(key)]);
      const k = channelKey(name);
      let channel = this.#channels.get(k);
      if (!channel) {
        channel = { name, waiters: [], recent: [], freed: new Set() };
        this.#channels.set(k, channel);
        fresh.push(name);
      }
      channel.waiters.push(waiter);
      names.push(k);
    }
    this.#listeners.forEach((listener, i) => {
      if (listener.sub) {
        // A subscriber still connecting subscribes to the whole registry once it is up.
        if (listener.live && fresh.length > 0) this.#send(i, (s) => s.subscribe(fresh));
      } else {
        this.#start(i);
      }
    });
    let ended = false;
    return {
      end: () => {
        if (ended) return;
        ended = true;
        this.#unsubscribe(names, waiter);
      },
    };
  }

  #unsubscribe(names: readonly string[], waiter: Waiter): void {
    const gone: Buffer[] = [];
    for (const k of names) {
      const channel = this.#channels.get(k);
      if (!channel) continue;
      const at = channel.waiters.indexOf(waiter);
      if (at >= 0) channel.waiters.splice(at, 1);
      if (channel.waiters.length === 0) {
        this.#channels.delete(k);
        gone.push(channel.name);
      }
    }
    if (gone.length > 0) {
      this.#listeners.forEach((listener, i) => {
        if (listener.live) this.#send(i, (s) => s.unsubscribe(gone));
      });
    }
    if (this.#channels.size === 0 && !this.#closed) {
      clearTimeout(this.#idleTimer);
      this.#idleTimer = setTimeout(() => this.#closeSubscribers(), IDLE_CLOSE_MS);
    }
  }

  /** Runs a command on instance `i`'s subscriber; a failure drops the subscriber. */
  #send(i: number, op: (s: Subscriber) => Promise<unknown>): void {
    const listener = this.#listeners[i];
    const sub = listener?.sub;
    if (!sub) return;
    let p: Promise<unknown>;
    try {
      p = op(sub);
    } catch (error) {
      p = Promise.reject(error);
    }
    p.catch(() => this.#drop(i, sub));
  }

  /** Opens instance `i`'s subscriber unless one was opened too recently. */
  #start(i: number): void {
    const listener = this.#listeners[i];
    if (!listener || listener.sub || this.#closed) return;
    const now = performance.now();
    if (now < listener.startedAt + RECONNECT_BACKOFF_MS) return;
    listener.startedAt = now;
    let sub: Subscriber | undefined;
    try {
      sub = openSubscriber(
        listener.client,
        (channel, message) => this.#announce(i, channel, message),
        () => this.#drop(i, sub),
      );
    } catch {
      sub = undefined;
    }
    if (!sub) return;
    const opened = sub;
    listener.sub = opened;
    listener.live = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("subscriber connection timed out")), CONNECT_TIMEOUT_MS);
    });
    Promise.race([
      opened.ready.then(async () => {
        if (listener.sub !== opened) return;
        const all = [...this.#channels.values()].map((c) => c.name);
        if (all.length > 0) await opened.subscribe(all);
        if (listener.sub === opened) listener.live = true;
      }),
      timeout,
    ])
      .catch(() => this.#drop(i, opened))
      .finally(() => clearTimeout(timer));
  }

  #drop(i: number, sub: Subscriber | undefined): void {
    const listener = this.#listeners[i];
    if (!listener || !sub || listener.sub !== sub) return;
    listener.sub = undefined;
    listener.live = false;
    try {
      sub.close();
    } catch {
      /* already closed */
    }
  }

  /** Instance `instance` announced that `message` (a lock value) was released on `channel`. */
  #announce(instance: number, channelName: Buffer, message: Buffer): void {
    const channel = this.#channels.get(channelKey(channelName));
    if (!channel) return;
    const value = message.toString("latin1");
    let entry = channel.recent.find((r) => r.value === value);
    if (!entry) {
      if (channel.recent.length === RECENT_VALUES) channel.recent.shift();
      entry = { value, instances: new Set() };
      channel.recent.push(entry);
    }
    // A release that counted already.
    if (entry.instances === null) return;
    entry.instances.add(instance);
    channel.freed.add(instance);
    const released = entry.instances.size >= this.#quorum;
    // A quorum of instances freed, by one release or by several (the cleanups of a split vote,
    // in which nobody won, together free every instance).
    if (released || channel.freed.size >= this.#quorum) {
      channel.freed.clear();
      if (released) entry.instances = null;
      // One release frees the lock for one holder: wake only the longest waiter of this
      // Redlock (it stays first until it unsubscribes). Other Redlocks wake their own.
      channel.waiters[0]?.notify();
    }
  }

  #closeSubscribers(): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#listeners.forEach((listener, i) => this.#drop(i, listener.sub));
  }

  /** Closes every subscriber connection; later waiters fall back to their timers. */
  close(): void {
    this.#closed = true;
    this.#closeSubscribers();
    this.#channels.clear();
  }
}
