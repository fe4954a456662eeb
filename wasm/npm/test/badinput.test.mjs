// Bad input through both JS APIs (the `Redlock` of `redlock-wasm` and the node-redlock
// compatible one of `redlock-wasm/compat`): keys, TTLs and clients that are refused before any
// command is sent, binary keys and enormous TTLs that work byte for byte, unreachable clients,
// and Redis answering with errors (OOM, READONLY, NOSCRIPT, WRONGTYPE). Each is a clear error,
// and no key of ours is left behind.

import assert from "node:assert/strict";
import net from "node:net";
import { after, describe, test } from "node:test";

import { createClient } from "redis";
import { Redis } from "ioredis";
import { NoQuorumError, Redlock, RedlockError } from "redlock-wasm";
import Compat, { ExecutionError, ResourceLockedError } from "redlock-wasm/compat";

import { admin, connectAll, eventually, keysLeft, libraries, startCluster } from "./harness.mjs";

const WIDE = { timeout: 90_000 };
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(n, library = "ioredis") {
  const cluster = await startCluster(n);
  const clients = await connectAll(library, cluster.urls);
  const admins = cluster.urls.map((u) => admin(u));
  const cleanup = async () => {
    admins.forEach((a) => a.disconnect());
    clients.close();
    await cluster.close();
  };
  cleanups.push(cleanup);
  return { cluster, clients, admins, cleanup };
}

let unique = 0;
const key = (name) => `bad:${process.pid}:${name}:${++unique}`;

/** A client that counts what it is asked to send and answers like an empty Redis. */
function counting() {
  const sent = [];
  return {
    sent,
    client: { call: async (...args) => (sent.push(args), args[0] === "SET" ? "OK" : 1) },
  };
}

/** A loopback port nothing listens on. */
async function deadPort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Either API with the same settings (wide instance timeouts unless `instanceTimeoutMs` is given). */
const APIS = {
  redlock: (clients, settings = {}) => new Redlock(clients, { instanceTimeoutMs: 1_000, ...settings }),
  compat: (clients, settings = {}) => {
    const { retryCount = 0, retryDelayMs, retryJitterMs } = settings;
    const instanceTimeoutMs = "instanceTimeoutMs" in settings ? settings.instanceTimeoutMs : 1_000;
    return new Compat(clients, {
      retryCount,
      ...(retryDelayMs !== undefined ? { retryDelay: retryDelayMs } : {}),
      ...(retryJitterMs !== undefined ? { retryJitter: retryJitterMs } : {}),
      ...(instanceTimeoutMs !== undefined ? { instanceTimeout: instanceTimeoutMs } : {}),
    });
  },
};

/**
 * Releases `lock` with either API and waits for every instance's answer: the compat API resolves
 * as soon as a quorum deleted the keys (as node-redlock does), its stats once all answered.
 */
async function releaseEverywhere(api, redlock, lock) {
  const result = await redlock.release(lock);
  if (api === "compat") await Promise.all(result.attempts);
  return result;
}

/** Acquires `keys` with either API (the base one takes a bare key, compat an array). */
const lockWith = (api, redlock, keys, ttl) => redlock.acquire(api === "compat" && !Array.isArray(keys) ? [keys] : keys, ttl);

describe("bad keys, TTLs and clients are refused before any command", () => {
  for (const api of Object.keys(APIS)) {
    test(`${api}: keys`, async () => {
      const { sent, client } = counting();
      const redlock = APIS[api]([client], { instanceTimeoutMs: undefined });
      const refused = [
        [[""], /resource key is empty/],
        [["x".repeat(513)], /resource key of 513 bytes exceeds the maximum of 512/],
        [["é".repeat(300)], /resource key of 600 bytes exceeds the maximum of 512/],
        [[Buffer.alloc(513)], /resource key of 513 bytes exceeds the maximum of 512/],
        [Array.from({ length: 9 }, (_, i) => `k${i}`), /too many resources: at most 8 keys/],
        [["a".repeat(400), "b".repeat(400), "c".repeat(400)], /at most 8 keys and 1024 key bytes/],
        [["a", "a"], /the same resource key was given twice/],
        [[], /a lock needs at least one resource key/],
        [[{}], /a resource key must be a string or a Uint8Array/],
        [[42], /a resource key must be a string or a Uint8Array/],
        [[null], /a resource key must be a string or a Uint8Array/],
      ];
      for (const [keys, message] of refused) {
        await assert.rejects(redlock.acquire(keys, 1_000), (e) => {
          assert.match(e.message, message, `${JSON.stringify(keys).slice(0, 40)}`);
          assert.ok(!(e instanceof RedlockError) && !(e instanceof ExecutionError), "misuse is not a lock failure");
          return true;
        });
      }
      assert.equal(sent.length, 0);
    });

    test(`${api}: TTLs`, async () => {
      const { sent, client } = counting();
      const redlock = APIS[api]([client], { instanceTimeoutMs: undefined });
      const refused =
        api === "compat"
          ? [
              [0, /Duration must be a positive number of milliseconds below 2\^53 \(got 0\)/],
              [-1, /got -1/],
              [NaN, /Duration must be an integer value in milliseconds\./],
              [1.5, /Duration must be an integer value in milliseconds\./],
              [Infinity, /got Infinity/],
              [1e300, /got 1e\+300/],
              [2 ** 53, /below 2\^53/],
              ["1000", /Duration must be an integer value/],
              [undefined, /Duration must be an integer value/],
              [2, /ttl of 2 ms is too short/],
            ]
          : [
              [0, /ttl of 0 ms is too short/],
              [-1, /ttlMs must not be negative \(got -1\)/],
              [NaN, /ttlMs must be a finite number \(got NaN\)/],
              [Infinity, /ttlMs must be a finite number \(got Infinity\)/],
              [1e300, /ttlMs must be at most 9007199254740991 \(got 1e\+300\)/],
              [2 ** 53, /ttlMs must be at most 9007199254740991/],
              ["1000", /ttlMs must be a number of milliseconds \(got string\)/],
              [undefined, /ttlMs must be a number of milliseconds \(got undefined\)/],
              [2, /ttl of 2 ms is too short/],
            ];
      for (const [ttl, message] of refused) {
        await assert.rejects(lockWith(api, redlock, "k", ttl), message, String(ttl));
      }
      assert.equal(sent.length, 0);
      // The shortest legal TTL (drift 2 ms + 1): a lease of at most a millisecond, or a lock
      // failure if the reply took that millisecond (never a lease already expired).
      const lock = await lockWith(api, redlock, "k", 3).catch((e) => {
        assert.ok(e instanceof RedlockError || e instanceof ExecutionError, String(e));
        assert.equal(e.reason, "validityExhausted");
      });
      await lock?.release().catch(() => undefined);
    });
  }

  test("clients", () => {
    const { client } = counting();
    assert.throws(() => new Redlock([]), /at least one Redis client/);
    assert.throws(() => new Compat([]), /Redlock must be instantiated with at least one redis client\./);
    assert.throws(() => new Compat(new Set()), /at least one redis client/);
    const seventeen = Array.from({ length: 17 }, () => ({ call: client.call }));
    assert.throws(() => new Redlock(seventeen), /17 instances configured, at most 16 are supported/);
    assert.throws(() => new Compat(seventeen), /at most 16 redis clients \(got 17\)/);
    for (const make of [(c) => new Redlock(c), (c) => new Compat(c)]) {
      assert.throws(() => make([{}]), /client 0 is not a Redis client/);
      assert.throws(() => make([client, null]), /client 1 is not a Redis client/);
    }
    // One server counted twice would turn a minority into a quorum: refused (node-redlock
    // de-duplicates through a Set, and so does compat).
    assert.throws(() => new Redlock([client, client]), /client 1 is the same object as client 0/);
    assert.equal(new Compat([client, client]).clients.size, 1);
  });

  test("compat settings and scripts", () => {
    const { client } = counting();
    for (const [settings, message] of [
      [{ retryCount: NaN }, /retryCount must be an integer from -1/],
      [{ retryCount: -2 }, /retryCount must be an integer from -1/],
      [{ retryCount: 1.5 }, /retryCount must be an integer/],
      [{ retryDelay: -1 }, /retryDelay must be a finite number from 0/],
      [{ retryJitter: Infinity }, /retryJitter must be a finite number/],
      [{ driftFactor: 1 }, /driftFactor must be a finite number from 0 to 0\.999999/],
      [{ automaticExtensionThreshold: -5 }, /automaticExtensionThreshold/],
      [{ instanceTimeout: 0 }, /instanceTimeout must be an integer from 1/],
      [{ fastHandoff: 1 }, /fastHandoff must be a boolean/],
    ]) {
      assert.throws(() => new Compat([client], settings), message, JSON.stringify(settings));
    }
    // node-redlock ignores settings that are not numbers, and so does compat.
    assert.equal(new Compat([client], { retryCount: "5" }).settings.retryCount, 10);
    assert.throws(() => new Compat([client], {}, { acquireScript: (s) => s }), /custom scripts \(acquireScript\) are not supported/);
  });
});

describe("keys and TTLs that are legal work byte for byte", () => {
  for (const library of Object.keys(libraries)) {
    test(`${library}: binary keys and the largest TTL`, WIDE, async () => {
      const { cluster, clients, admins, cleanup } = await setup(3, library);
      for (const api of Object.keys(APIS)) {
        const redlock = APIS[api](clients);
        const binary = Buffer.from([0xff, 0x00, 0x0a, 0x80, 0x20, 0x2a]);
        const other = Buffer.from([0xc3, 0x28]);
        const lock = await redlock.acquire([binary, other], 5_000);
        // On a quorum at least (an instance whose NOSCRIPT came after the decision holds
        // neither key), and byte for byte.
        let holding = 0;
        for (const a of admins) {
          const keys = await a.keysBuffer("*");
          if (keys.length === 0) continue;
          holding++;
          assert.equal(keys.length, 2);
          assert.ok(keys.some((k) => k.equals(binary)), `${api}: the binary key is not there byte for byte`);
          assert.ok(keys.some((k) => k.equals(other)));
        }
        assert.ok(holding >= 2, `${api}: held on ${holding} instances`);
        const extended = await redlock.extend(lock, 6_000);
        await releaseEverywhere(api, redlock, extended);
        for (const a of admins) assert.equal(await a.dbsize(), 0, `${api}: a key was left`);

        // 2^53 - 1 ms: Redis takes it, and so does the lock.
        const k = key("forever");
        const forever = await lockWith(api, redlock, k, Number.MAX_SAFE_INTEGER);
        assert.ok((await admins[0].pttl(k)) > 2 ** 52);
        await releaseEverywhere(api, redlock, forever);
        assert.deepEqual(await keysLeft(cluster, k), []);
      }
      await cleanup();
    });
  }
});

describe("unreachable clients", () => {
  test("a client never connected and one to a closed port, next to a live one", WIDE, async () => {
    const { cluster, clients, cleanup } = await setup(1);
    const port = await deadPort();
    const closed = createClient({ url: `redis://127.0.0.1:${port}` }); // never connected
    const refused = new Redis(port, "127.0.0.1", { lazyConnect: true, retryStrategy: () => 100, maxRetriesPerRequest: 2 });
    refused.on("error", () => {});
    cleanups.push(() => refused.disconnect());
    const all = [clients[0], closed, refused];
    for (const api of Object.keys(APIS)) {
      const redlock = APIS[api](all, { retryCount: 1, retryDelayMs: 50, retryJitterMs: 0, instanceTimeoutMs: 300 });
      const events = [];
      redlock.on?.("error", (e) => events.push(e));
      const k = key(`unreachable-${api}`);
      const start = performance.now();
      const error = await lockWith(api, redlock, k, 2_000).then(
        () => assert.fail("acquired with two of three clients unreachable"),
        (e) => e,
      );
      assert.ok(performance.now() - start < 10_000, "took too long to fail");
      if (api === "compat") {
        assert.ok(error instanceof ExecutionError, String(error));
        assert.equal(error.reason, "noQuorum");
        assert.equal(error.attempts.length, 2);
        const stats = await error.attempts[0];
        assert.ok(stats.votesFor.has(clients[0]));
        assert.match(stats.votesAgainst.get(closed).message, /closed/i);
        assert.ok(stats.votesAgainst.get(refused) instanceof Error);
        assert.ok(events.length >= 4, `${events.length} error events`);
      } else {
        assert.ok(error instanceof NoQuorumError, String(error));
        assert.equal(error.instances[0].status, "yes");
        assert.equal(error.instances[1].status, "transportError");
        assert.match(String(error.instances[1].error?.message), /closed/i);
        assert.ok(["transportError", "timedOut"].includes(error.instances[2].status));
        assert.match(error.message, /not enough redis instances answered/);
      }
      // The live instance's key of each attempt was released.
      await eventually(async () => (await keysLeft(cluster, k)).length === 0);
    }
    await cleanup();
  });
});

describe("Redis answering with errors", () => {
  /** Both APIs fail with the server's error on instances 0 and 1, and leave nothing on 2. */
  async function bothFail(clients, cluster, keys, kind, pattern) {
    for (const api of Object.keys(APIS)) {
      const redlock = APIS[api](clients, { retryCount: 1, retryDelayMs: 20, retryJitterMs: 0 });
      const error = await redlock.acquire(keys, 2_000).then(
        () => assert.fail(`${api}: acquired on a minority`),
        (e) => e,
      );
      if (api === "compat") {
        assert.ok(error instanceof ExecutionError, String(error));
        assert.equal(error.reason, "noQuorum");
        const stats = await error.attempts[1];
        for (const i of [0, 1]) {
          const e = stats.votesAgainst.get(clients[i]);
          assert.ok(e && !(e instanceof ResourceLockedError), `instance ${i}: ${e}`);
          assert.match(e.message, pattern);
        }
        assert.ok(stats.votesFor.has(clients[2]));
      } else {
        assert.ok(error instanceof NoQuorumError, String(error));
        for (const i of [0, 1]) {
          assert.equal(error.instances[i].status, `serverError:${kind}`);
          assert.match(error.instances[i].error.message, pattern);
        }
        assert.match(error.message, new RegExp(pattern.source.replace(/^\^/, "")));
      }
      for (const k of keys) await eventually(async () => (await keysLeft(cluster, k)).length === 0);
    }
  }

  test("OOM (maxmemory 1, noeviction) on a majority", WIDE, async () => {
    const { cluster, clients, admins, cleanup } = await setup(3);
    for (const a of admins.slice(0, 2)) {
      await a.config("SET", "maxmemory-policy", "noeviction");
      await a.config("SET", "maxmemory", "1");
    }
    await bothFail(clients, cluster, [key("oom")], "oom", /^OOM command not allowed/);
    await bothFail(clients, cluster, [key("oom-a"), key("oom-b")], "oom", /^OOM command not allowed/);
    for (const a of admins.slice(0, 2)) await a.config("SET", "maxmemory", "0");
    await cleanup();
  });

  test("READONLY (instances made replicas with REPLICAOF) on a majority", WIDE, async () => {
    const { cluster, clients, admins, cleanup } = await setup(3);
    const port = await deadPort();
    for (const a of admins.slice(0, 2)) await a.call("REPLICAOF", "127.0.0.1", String(port));
    await bothFail(clients, cluster, [key("readonly")], "readonly", /^READONLY You can't write against a read only replica/);
    await bothFail(clients, cluster, [key("ro-a"), key("ro-b")], "readonly", /^READONLY/);
    for (const a of admins.slice(0, 2)) await a.call("REPLICAOF", "NO", "ONE");
    await cleanup();
  });

  test("NOSCRIPT after SCRIPT FLUSH: the scripts are re-sent, nothing fails", WIDE, async () => {
    const { cluster, clients, admins, cleanup } = await setup(3);
    const flush = () => Promise.all(admins.map((a) => a.script("FLUSH")));
    for (const api of Object.keys(APIS)) {
      const exchanges = [];
      const redlock =
        api === "compat"
          ? APIS.compat(clients)
          : new Redlock(clients, { instanceTimeoutMs: 1_000, onExchange: (x) => exchanges.push(x) });
      const events = [];
      redlock.on?.("error", (e) => events.push(e));
      const [a, b] = [key("ns-a"), key("ns-b")];
      await flush();
      const lock = await redlock.acquire([a, b], 5_000);
      await flush();
      const extended = await redlock.extend(lock, 6_000);
      await flush();
      await releaseEverywhere(api, redlock, extended);
      assert.deepEqual(await keysLeft(cluster, "bad:*"), []);
      if (api === "compat") {
        // A NOSCRIPT is never a client failure. (An instance whose NOSCRIPT came after the
        // quorum decided is not re-sent the script and holds no key: a later extend or release
        // finds it not ours there, a ResourceLockedError.) Nobody is reported as not answering.
        for (const e of events) assert.ok(e instanceof ResourceLockedError, String(e));
        const stats = await extended.attempts[0];
        assert.ok(stats.votesFor.size >= 2);
      } else {
        const noscript = exchanges.filter((x) => x.answer.kind === "replyError" && /^NOSCRIPT/.test(x.answer.error.message));
        assert.ok(noscript.length >= 6, `${noscript.length} NOSCRIPT answers`);
        for (const command of ["acquire", "extend", "release"]) {
          assert.ok(exchanges.some((x) => x.command === command && x.form === "eval" && x.answer.kind === "reply"), command);
        }
      }
    }
    await cleanup();
  });

  test("WRONGTYPE: a lock's keys replaced by lists on a majority", WIDE, async () => {
    const { cluster, clients, admins, cleanup } = await setup(3);
    for (const api of Object.keys(APIS)) {
      const redlock = APIS[api](clients);
      const k = key("wrongtype");
      const lock = await lockWith(api, redlock, k, 5_000);
      await eventually(async () => (await keysLeft(cluster, k)).length === 3);
      for (const a of admins.slice(0, 2)) {
        await a.del(k);
        await a.rpush(k, "not a lock");
      }
      const error = await redlock.extend(lock, 5_000).then(
        () => assert.fail("extended a lock whose keys are lists"),
        (e) => e,
      );
      if (api === "compat") {
        assert.ok(error instanceof ExecutionError);
        const stats = await error.attempts[0];
        for (const i of [0, 1]) assert.match(stats.votesAgainst.get(clients[i]).message, /^WRONGTYPE/);
        await assert.rejects(redlock.release(lock), ExecutionError);
      } else {
        assert.ok(error instanceof NoQuorumError, String(error));
        assert.equal(error.instances[0].status, "serverError:wrongtype");
        assert.match(error.message, /WRONGTYPE/);
        const released = await redlock.release(lock);
        assert.equal(released.confirmed, false);
        assert.equal(released.instances[0].status, "serverError:wrongtype");
      }
      // Our key on instance 2 is gone; the lists are untouched.
      assert.equal(await admins[2].exists(k), 0);
      for (const a of admins.slice(0, 2)) {
        assert.deepEqual(await a.lrange(k, 0, -1), ["not a lock"]);
        await a.del(k);
      }
      // A list where a lock would go is someone else's key: contention, not an error.
      const l = key("list");
      for (const a of admins) await a.rpush(l, "x");
      const held = await lockWith(api, APIS[api](clients, { retryCount: 0 }), l, 5_000).then(
        () => assert.fail("locked over a list"),
        (e) => e,
      );
      if (api === "compat") assert.ok((await held.attempts[0]).votesAgainst.get(clients[0]) instanceof ResourceLockedError, String((await held.attempts[0]).votesAgainst.get(clients[0])));
      else assert.equal(held.reason, "contended", String(held));
      for (const a of admins) assert.equal(await a.type(l), "list");
      for (const a of admins) await a.del(l);
    }
    await cleanup();
  });
});
