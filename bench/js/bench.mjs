// The Node side of `make bench`: node-redlock v5 (with ioredis) and, when it is built, this
// project's WASM package, on the redis-server instances the Rust bench started.
//
//   node bench/js/bench.mjs --urls redis://127.0.0.1:p1,... [--iterations N] [--seconds S]
//
// Prints one JSON document on stdout: { rows: [...], notes: [...] }, rows shaped like the Rust
// side's (see bench/src/workloads.rs). Progress goes to stderr.

import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import Redis from "ioredis";
import Redlock from "redlock";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => {
    if (a.startsWith("--")) acc.push([a.slice(2), all[i + 1]]);
    return acc;
  }, []),
);
const urls = (args.urls ?? "").split(",").filter(Boolean);
const warmup = Number(args.warmup ?? 200);
const iterations = Number(args.iterations ?? 2000);
const seconds = Number(args.seconds ?? 5);
const holders = Number(args.holders ?? 64);
const workers = Number(args.workers ?? 8);
const workloads = args.workloads ?? "abc";
const thinkMs = Number(args.think ?? 1);
const TTL = 10_000;
const SHORT = { retryDelay: 10, retryJitter: 5, retryCount: 1_000_000 };

const rows = [];
const notes = [];
const log = (...m) => console.error(...m);

function percentiles(samplesMs) {
  const s = Float64Array.from(samplesMs).sort();
  const at = (q) => (s.length ? s[Math.min(s.length - 1, Math.round((s.length - 1) * q))] * 1000 : null);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), n: s.length };
}

function fairness(counts) {
  const sum = counts.reduce((a, b) => a + b, 0);
  const squares = counts.reduce((a, b) => a + b * b, 0);
  return squares === 0 ? 0 : (sum * sum) / (counts.length * squares);
}

/** Counts keys under `prefix` on every instance, waiting up to 2 s, then deletes them. */
async function keysLeft(clients, prefix) {
  const count = async () => {
    let n = 0;
    for (const c of clients) n += (await c.keys(`${prefix}*`)).length;
    return n;
  };
  let left = await count();
  for (let i = 0; i < 40 && left > 0; i++) {
    await sleep(50);
    left = await count();
  }
  for (const c of clients) {
    const keys = await c.keys(`${prefix}*`);
    if (keys.length) await c.del(...keys);
  }
  return left;
}

async function latency(client, prefix) {
  let errors = 0;
  for (let i = 0; i < warmup; i++) {
    try {
      await client.cycle(`${prefix}:w${i}`, async () => {});
    } catch {
      errors++;
    }
  }
  const acquire = [], release = [], pair = [];
  for (let i = 0; i < iterations; i++) {
    try {
      const t = await client.cycle(`${prefix}:${i}`, async () => {});
      acquire.push(t.acquired - t.started);
      release.push(t.released - t.releaseStarted);
      pair.push(t.released - t.started);
    } catch {
      errors++;
    }
  }
  return {
    workload: "latency",
    iterations,
    acquire_us: percentiles(acquire),
    release_us: percentiles(release),
    pair_us: percentiles(pair),
    errors,
    allocs_per_pair: null,
  };
}

async function throughput(client, prefix) {
  let done = 0, errors = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: holders }, async (_, h) => {
      while (performance.now() < end) {
        try {
          await client.cycle(`${prefix}:${h}`, async () => {});
          done++;
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  return { workload: "throughput", holders, seconds: elapsed, acquisitions: done, per_sec: done / elapsed, errors };
}

async function contention(client, key) {
  let counter = 0, failed = 0;
  const holds = [];
  const started = performance.now();
  const end = started + seconds * 1000;
  const perWorker = await Promise.all(
    Array.from({ length: workers }, async (_, worker) => {
      let mine = 0;
      while (performance.now() < end) {
        try {
          const t = await client.cycle(key, async () => {
            // Loses updates unless the lock excludes the other workers.
            const v = counter;
            await sleep(1);
            counter = v + 1;
          });
          if (t.acquired < end) mine++;
          holds.push([t.acquired, t.releaseStarted, worker]);
        } catch {
          failed++;
        }
        // Outside the lock for a while, so the lock can pass to a waiter.
        await sleep(thinkMs);
      }
      return mine;
    }),
  );
  holds.sort((a, b) => a[0] - b[0]);
  const handoff = [];
  let overlaps = 0, reacquired = 0;
  for (let i = 1; i < holds.length; i++) {
    const d = holds[i][0] - holds[i - 1][1];
    if (d < 0) overlaps++;
    else if (holds[i][2] === holds[i - 1][2]) reacquired++;
    else handoff.push(d);
  }
  const inWindow = perWorker.reduce((a, b) => a + b, 0);
  return {
    workload: "contention",
    workers,
    hold_ms: 1,
    think_ms: thinkMs,
    seconds,
    acquisitions: inWindow,
    per_sec: inWindow / seconds,
    handoff_us: percentiles(handoff),
    reacquired_by_releaser: reacquired,
    hold_ms_measured: holds.reduce((a, h) => a + (h[1] - h[0]), 0) / Math.max(1, holds.length),
    per_worker: perWorker,
    fairness: fairness(perWorker),
    failed_acquires: failed,
    counter_ok: counter === holds.length,
    counter,
    overlaps,
  };
}

/** node-redlock v5 over one ioredis client per instance. */
function nodeRedlock(clients, settings) {
  const redlock = new Redlock(clients, settings);
  // Contention is expected here; node-redlock reports it as an error event too.
  redlock.on("error", () => {});
  return {
    async cycle(key, hold) {
      const started = performance.now();
      const lock = await redlock.acquire([key], TTL);
      const acquired = performance.now();
      await hold();
      const releaseStarted = performance.now();
      await lock.release();
      return { started, acquired, releaseStarted, released: performance.now() };
    },
  };
}

/** This project's WASM package (wasm/npm, built by `make wasm-pkg`), if it has been built. */
async function wasmModule() {
  try {
    return await import(new URL("../../wasm/npm/dist/index.mjs", import.meta.url).href);
  } catch {
    return null;
  }
}

/** The WASM package's Redlock; `settings` in node-redlock's words, translated. */
function wasmRedlock(mod, clients, settings) {
  const options = {};
  if (settings.retryCount !== undefined) options.retryCount = settings.retryCount;
  if (settings.retryDelay !== undefined) options.retryDelayMs = settings.retryDelay;
  if (settings.retryJitter !== undefined) options.retryJitterMs = settings.retryJitter;
  if (settings.fastHandoff) options.fastHandoff = true;
  const redlock = new mod.Redlock(clients, options);
  return {
    async close() {
      await redlock.close?.();
    },
    async cycle(key, hold) {
      const started = performance.now();
      const lock = await redlock.acquire(key, TTL);
      const acquired = performance.now();
      await hold();
      const releaseStarted = performance.now();
      await redlock.release(lock);
      return { started, acquired, releaseStarted, released: performance.now() };
    },
  };
}

function push(row, client, settings) {
  rows.push({ ...row, client, settings, language: "node" });
}

async function main() {
  const clients = urls.map((u) => new Redis(u, { lazyConnect: false, enableAutoPipelining: false }));
  await Promise.all(clients.map((c) => c.ping()));
  const suites = [["node-redlock 5 (ioredis)", "node-redlock", (s) => nodeRedlock(clients, s)]];
  const wasm = await wasmModule();
  if (wasm?.Redlock) {
    suites.push(["redlock-wasm (node)", "wasm", (s) => wasmRedlock(wasm, clients, s), true]);
  } else {
    notes.push("redlock-wasm column not run: wasm/npm/dist is not built (make wasm-pkg)");
  }
  for (const [name, slug, make, handoff] of suites) {
    const client = make({});
    if (workloads.includes("a")) {
      log(`latency: ${name}`);
      const prefix = `bench:js:${slug}:lat`;
      const lat = await latency(client, prefix);
      lat.keys_left = await keysLeft(clients, prefix);
      push(lat, name, "default");
    }
    if (workloads.includes("b")) {
      log(`throughput: ${name}`);
      const prefix = `bench:js:${slug}:tp`;
      const tp = await throughput(client, prefix);
      tp.keys_left = await keysLeft(clients, prefix);
      push(tp, name, "default");
    }
    if (!workloads.includes("c")) continue;
    const runs = [
      ["10 ms ± 5 ms", SHORT, "", "short"],
      ["default", {}, "", "def"],
    ];
    // The WASM package has fast handoff (docs/fast-handoff.md) as an option.
    if (handoff) runs.unshift(["10 ms ± 5 ms", { ...SHORT, fastHandoff: true }, " + handoff", "hoff"]);
    for (const [settingsName, settings, suffix, tag] of runs) {
      log(`contention: ${name}${suffix} (${settingsName})`);
      const key = `bench:js:${slug}:${tag}:ct`;
      const client = make(settings);
      const row = await contention(client, key);
      await client.close?.();
      row.keys_left = await keysLeft(clients, key);
      push(row, name + suffix, settingsName);
    }
  }
  await Promise.all(clients.map((c) => c.quit()));
  process.stdout.write(JSON.stringify({ rows, notes }) + "\n");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
