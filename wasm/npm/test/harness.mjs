// Real redis-server instances for the Node tests, through the workspace's `redis-cluster`
// binary (tests/harness): one JSON line with the URLs, then fault commands over stdin.

import { spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { createClient } from "redis";
import { createClient as createClient4 } from "redis4";
import { Redis } from "ioredis";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");

/** The redis-cluster binary: $REDIS_CLUSTER_BIN, or the debug build in the workspace. */
export const clusterBin =
  process.env.REDIS_CLUSTER_BIN ?? path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, "target"), "debug/redis-cluster");

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

/**
 * Starts `n` redis-server instances. `command("kill 1")` injects a fault; `close()` stops them
 * all (so does the end of this process: the instances die with redis-cluster).
 */
export async function startCluster(n) {
  const child = spawn(clusterBin, ["--instances", String(n)], { stdio: ["pipe", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = once(child, "exit");
  const first = await withTimeout(lines.next(), 30_000, "redis-cluster start");
  if (first.done) throw new Error(`redis-cluster exited before printing its URLs (${clusterBin})`);
  const info = JSON.parse(first.value);
  let queue = Promise.resolve();
  const command = (line) => {
    const run = queue.then(async () => {
      child.stdin.write(`${line}\n`);
      const next = await withTimeout(lines.next(), 30_000, line);
      const reply = JSON.parse(next.value);
      if (!reply.ok) throw new Error(`${line}: ${reply.error}`);
      return reply;
    });
    queue = run.catch(() => undefined);
    return run;
  };
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    child.stdin.end("quit\n");
    try {
      await withTimeout(exited, 10_000, "redis-cluster exit");
    } catch {
      child.kill("SIGKILL");
    }
  };
  return { urls: info.urls, ports: info.ports, command, close };
}

/** Keys matching `pattern` on every running instance, flattened. */
export async function keysLeft(cluster, pattern) {
  const { keys } = await cluster.command(`keys ${pattern}`);
  return keys.filter((k) => k !== null).flat();
}

// Clients retry fast and quietly: the tests kill instances on purpose.
const reconnect = (retries) => Math.min(50 * (retries + 1), 500);

/** The client libraries under test: a connect function and a disconnect function each. */
export const libraries = {
  "node-redis v5": {
    async connect(url) {
      const c = createClient({ url, socket: { reconnectStrategy: reconnect, connectTimeout: 2000 } });
      c.on("error", () => {});
      await c.connect();
      return c;
    },
    close(c) {
      c.destroy();
    },
  },
  "node-redis v4": {
    async connect(url) {
      const c = createClient4({ url, socket: { reconnectStrategy: reconnect, connectTimeout: 2000 } });
      c.on("error", () => {});
      await c.connect();
      return c;
    },
    close(c) {
      c.disconnect().catch(() => {});
    },
  },
  ioredis: {
    async connect(url) {
      const c = new Redis(url, { retryStrategy: reconnect, maxRetriesPerRequest: 3, lazyConnect: true });
      c.on("error", () => {});
      await c.connect();
      return c;
    },
    close(c) {
      c.disconnect();
    },
  },
};

/** Connects one client per URL with `library`; `close()` disconnects them all. */
export async function connectAll(library, urls) {
  const lib = libraries[library];
  const clients = await Promise.all(urls.map((u) => lib.connect(u)));
  let closed = false;
  clients.close = () => {
    if (closed) return;
    closed = true;
    for (const c of clients) {
      try {
        lib.close(c);
      } catch {
        /* already closed */
      }
    }
  };
  return clients;
}

/** Polls `predicate` until it holds or `ms` pass. */
export async function eventually(predicate, ms = 10_000) {
  const end = Date.now() + ms;
  for (;;) {
    if (await predicate()) return;
    if (Date.now() > end) throw new Error("condition not reached in time");
    await sleep(20);
  }
}

export { sleep };
