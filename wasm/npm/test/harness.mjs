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

// ---------------------------------------------------------------------------------------------
// A 3-node Redis Cluster (cluster-enabled redis-server processes on free loopback ports, slots
// assigned by `redis-cli --cluster create`), for the tests that use a Cluster as one instance.

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { promisify } from "node:util";

const run = promisify(execFile);
const redisServer = process.env.REDIS_SERVER ?? "redis-server";
const redisCli = process.env.REDIS_CLI ?? "redis-cli";

/** Whether `port` can be bound on 127.0.0.1 right now. */
function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A port p with p and p + 10000 (the cluster bus) free, from a random start. */
async function freeClusterPort(taken) {
  for (let tries = 0; tries < 200; tries++) {
    const p = 20000 + Math.floor(Math.random() * 25000);
    if (taken.has(p) || taken.has(p + 10000)) continue;
    if ((await portFree(p)) && (await portFree(p + 10000))) return p;
  }
  throw new Error("no free port pair for a cluster node");
}

const clusterProcesses = new Set();
process.on("exit", () => {
  for (const child of clusterProcesses) child.kill("SIGKILL");
});

/**
 * Starts a Redis Cluster of `n` masters (no replicas). Returns `{ nodes: [{host, port}],
 * close() }`; every process dies with `close()` or with this process.
 */
export async function startRedisCluster(n = 3) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "redlock-cluster-"));
  const children = [];
  const close = async () => {
    for (const child of children) {
      clusterProcesses.delete(child);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await once(child, "exit").catch(() => undefined);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const ports = [];
    const taken = new Set();
    for (let i = 0; i < n; i++) {
      const port = await freeClusterPort(taken);
      taken.add(port).add(port + 10000);
      const child = spawn(
        redisServer,
        [
          "--port", String(port),
          "--bind", "127.0.0.1",
          "--cluster-enabled", "yes",
          "--cluster-config-file", path.join(dir, `nodes-${port}.conf`),
          "--cluster-node-timeout", "5000",
          "--dir", dir,
          "--save", "",
          "--appendonly", "no",
          "--protected-mode", "no",
        ],
        { stdio: "ignore" },
      );
      children.push(child);
      clusterProcesses.add(child);
      ports.push(port);
    }
    // Each node answers PING.
    for (const port of ports) {
      await eventually(async () => {
        try {
          const { stdout } = await run(redisCli, ["-p", String(port), "PING"]);
          return stdout.trim() === "PONG";
        } catch {
          return false;
        }
      }, 20_000);
    }
    await run(
      redisCli,
      ["--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`), "--cluster-replicas", "0", "--cluster-yes"],
      { timeout: 60_000 },
    );
    // Every node sees the whole cluster as ok.
    for (const port of ports) {
      await eventually(async () => {
        const { stdout } = await run(redisCli, ["-p", String(port), "CLUSTER", "INFO"]);
        return /cluster_state:ok/.test(stdout) && new RegExp(`cluster_known_nodes:${n}\\b`).test(stdout);
      }, 60_000);
    }
    return { nodes: ports.map((port) => ({ host: "127.0.0.1", port })), close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** An ioredis client to one instance for setting up faults (CONFIG, REPLICAOF, raw keys). */
export function admin(url) {
  const c = new Redis(url, { maxRetriesPerRequest: 1, retryStrategy: () => null });
  c.on("error", () => {});
  return c;
}
