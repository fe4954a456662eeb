// Fast handoff (docs/fast-handoff.md) against real redis-server instances: a waiter with a long
// retry delay acquires soon after the holder releases, with every client library; it still
// acquires on its normal delay when the announcements are lost (the holder does not announce,
// the waiter cannot listen, an instance is down); waiters of one Redlock are woken one at a
// time; subscriber connections do not outlive their use.

import assert from "node:assert/strict";
import { after, describe, test } from "node:test";

import { Redlock } from "redlock-wasm";

import { admin, connectAll, eventually, keysLeft, libraries, sleep, startCluster } from "./harness.mjs";

const WIDE = { timeout: 90_000 };
const cleanups = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(n, library = "ioredis") {
  const cluster = await startCluster(n);
  const holderClients = await connectAll(library, cluster.urls);
  const waiterClients = await connectAll(library, cluster.urls);
  cleanups.push(async () => {
    holderClients.close();
    waiterClients.close();
    await cluster.close();
  });
  return { cluster, holderClients, waiterClients };
}

let unique = 0;
const key = (name) => `handoff:${process.pid}:${name}:${++unique}`;

/** A waiter whose timer alone would retry only after `delay` ms. */
const slowWaiter = (delay) => ({ retryCount: 3, retryDelayMs: delay, retryJitterMs: 0, instanceTimeoutMs: 1_000 });

/**
 * The holder takes `k`, a waiter starts acquiring it, the holder releases after `holdMs`.
 * Resolves with how long after the release the waiter got the lock.
 */
async function handoff(holder, waiter, k, holdMs = 300) {
  const lock = await holder.acquire(k, 10_000);
  const pending = waiter.acquire(k, 10_000);
  await sleep(holdMs);
  const releasedAt = performance.now();
  await lock.release();
  const next = await pending;
  const after = performance.now() - releasedAt;
  await next.release();
  return { after, attempts: next.attempts };
}

/** Connections on the running instances (`type` "pubsub": subscribed ones), this one excluded. */
async function connections(cluster, type = "normal") {
  let n = 0;
  for (const url of cluster.urls) {
    const a = admin(url);
    try {
      const list = await a.call("CLIENT", "LIST", "TYPE", type);
      n += list.split("\n").filter((l) => l.trim()).length - (type === "normal" ? 1 : 0);
    } catch {
      /* a killed instance */
    } finally {
      a.disconnect();
    }
  }
  return n;
}

describe("fast handoff", () => {
  for (const library of Object.keys(libraries)) {
    test(`${library}: a waiter with a 5 s retry delay acquires soon after the release`, WIDE, async () => {
      const { cluster, holderClients, waiterClients } = await setup(3, library);
      const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 1_000 });
      const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(5_000) });
      assert.equal(waiter.fastHandoff, true);
      const k = key("fast");
      const { after, attempts } = await handoff(holder, waiter, k);
      // Generous: the timer alone would take 5 s.
      assert.ok(after < 2_000, `acquired ${after.toFixed(0)} ms after the release`);
      assert.equal(attempts, 2);
      // Binary keys too (node-redis cannot listen to a channel that is not UTF-8).
      if (library === "ioredis") {
        const binary = Buffer.from([0x68, 0xff, 0x00, 0x01]);
        const b = await handoff(holder, waiter, binary);
        assert.ok(b.after < 2_000, `binary key: acquired ${b.after.toFixed(0)} ms after the release`);
      }
      // The subscribers are extra connections until close().
      assert.ok((await connections(cluster)) + (await connections(cluster, "pubsub")) > 6);
      holder.close();
      waiter.close();
      await eventually(async () => (await connections(cluster)) + (await connections(cluster, "pubsub")) === 6);
      assert.deepEqual(await keysLeft(cluster, "handoff:*"), []);
    });
  }

  test("without announcements (the holder does not announce) the waiter acquires on its timer", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { instanceTimeoutMs: 1_000 });
    const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(1_500) });
    const { after, attempts } = await handoff(holder, waiter, key("silent"));
    assert.equal(attempts, 2);
    // The retry came from the timer: 1.5 s after the failed attempt, i.e. ~1.2 s after the release.
    assert.ok(after > 900, `acquired only ${after.toFixed(0)} ms after a release nobody announced`);
    waiter.close();
    assert.deepEqual(await keysLeft(cluster, "handoff:*"), []);
  });

  test("control: without fastHandoff the same waiter sleeps out its delay", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 1_000 });
    const waiter = new Redlock(waiterClients, slowWaiter(1_500));
    const { after } = await handoff(holder, waiter, key("control"));
    assert.ok(after > 900, `acquired ${after.toFixed(0)} ms after the release without fast handoff`);
    holder.close();
    assert.equal(await connections(cluster, "pubsub"), 0);
  });

  test("a waiter that cannot listen (clients without duplicate()) acquires on its timer", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 1_000 });
    const plain = waiterClients.map((c) => ({ call: (...args) => c.call(...args) }));
    const waiter = new Redlock(plain, { fastHandoff: true, ...slowWaiter(1_500) });
    const { after, attempts } = await handoff(holder, waiter, key("deaf"));
    assert.equal(attempts, 2);
    assert.ok(after > 900, `acquired ${after.toFixed(0)} ms after the release`);
    holder.close();
    waiter.close();
    assert.deepEqual(await keysLeft(cluster, "handoff:*"), []);
  });

  test("with an instance down, the announcements of the other two still hand off", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    await cluster.command("kill 2");
    const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 300 });
    const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(5_000), instanceTimeoutMs: 300 });
    const { after } = await handoff(holder, waiter, key("down"));
    assert.ok(after < 2_000, `acquired ${after.toFixed(0)} ms after the release`);
    holder.close();
    waiter.close();
  });

  test("a majority of subscribers lost mid-wait: the waiter still acquires on its timer", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 300 });
    const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(1_500), instanceTimeoutMs: 300 });
    const k = key("lost-subscribers");
    const lock = await holder.acquire(k, 10_000);
    const pending = waiter.acquire(k, 10_000);
    await eventually(async () => (await connections(cluster, "pubsub")) === 3);
    // Two instances restart empty: the lock is gone from them, and with them the waiter's
    // subscriptions; what is left cannot make a quorum of announcements.
    await cluster.command("restart-empty 0");
    await cluster.command("restart-empty 1");
    const releasedAt = performance.now();
    await lock.release();
    const next = await pending;
    assert.ok(next.isValid());
    assert.ok(performance.now() - releasedAt < 5_000);
    await next.release();
    holder.close();
    waiter.close();
  });

  test("waiters of one Redlock are woken one at a time, each soon after the previous release", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { fastHandoff: true, instanceTimeoutMs: 1_000 });
    const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(10_000) });
    const k = key("chain");
    const lock = await holder.acquire(k, 10_000);
    const start = performance.now();
    const order = [];
    const waiters = [0, 1, 2].map(async (i) => {
      await sleep(50 * i);
      const l = await waiter.acquire(k, 10_000);
      order.push(i);
      await sleep(100);
      await l.release();
    });
    await sleep(400);
    await lock.release();
    await Promise.all(waiters);
    const took = performance.now() - start;
    // Each timer alone is 10 s.
    assert.ok(took < 6_000, `three handoffs took ${took.toFixed(0)} ms`);
    assert.deepEqual(order, [0, 1, 2], "not woken longest-waiting first");
    holder.close();
    waiter.close();
    assert.deepEqual(await keysLeft(cluster, "handoff:*"), []);
  });

  test("subscriber connections close a second after the last waiter, without close()", WIDE, async () => {
    const { cluster, holderClients, waiterClients } = await setup(3);
    const holder = new Redlock(holderClients, { fastHandoff: true });
    const waiter = new Redlock(waiterClients, { fastHandoff: true, ...slowWaiter(5_000) });
    const all = async () => (await connections(cluster)) + (await connections(cluster, "pubsub"));
    assert.equal(await all(), 6);
    await handoff(holder, waiter, key("idle"));
    assert.equal(await all(), 9, "the waiter's three subscribers are open");
    await eventually(async () => (await all()) === 6, 5_000);
  });

  test("fastHandoff must be a boolean; releases then use the announcing script", WIDE, async () => {
    assert.throws(() => new Redlock([{ call: async () => "OK" }], { fastHandoff: "yes" }), /fastHandoff must be a boolean/);
    const sent = [];
    const redlock = new Redlock(
      [{ call: async (...args) => (sent.push(args), args[0] === "SET" ? "OK" : 1) }],
      { fastHandoff: true },
    );
    const lock = await redlock.acquire("k", 1_000);
    await lock.release();
    const release = sent.find((a) => /^EVAL/.test(a[0]));
    assert.ok(release, "no release script sent");
    const notify = (await import("redlock-wasm")).scripts().find((s) => s.name === "release-notify");
    assert.ok(release[1] === notify.sha1 || release[1] === notify.source, `sent ${release[1]}`);
  });
});
