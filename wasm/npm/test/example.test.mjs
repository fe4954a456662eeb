// The example a Node user would copy (examples/js/orders.mjs) runs against real instances,
// resolving `redlock-wasm` and `redis` as an installed app would.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, symlinkSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { keysLeft, startCluster } from "./harness.mjs";

const npmDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const exampleDir = path.resolve(npmDir, "../../examples/js");

test("examples/js/orders.mjs runs against three instances and leaves no key", { timeout: 60_000 }, async () => {
  // Stand-ins for `npm install` (node_modules is ignored by git): the built package and its
  // dev dependency `redis`.
  const modules = path.join(exampleDir, "node_modules");
  rmSync(modules, { recursive: true, force: true });
  mkdirSync(modules);
  symlinkSync(npmDir, path.join(modules, "redlock-wasm"), "dir");
  symlinkSync(path.join(npmDir, "node_modules/redis"), path.join(modules, "redis"), "dir");
  const cluster = await startCluster(3);
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ["orders.mjs"], {
      cwd: exampleDir,
      env: { ...process.env, REDIS_URLS: cluster.urls.join(",") },
      timeout: 30_000,
    });
    assert.match(stdout, /processed order 42 \(lock value [0-9a-f]{32}, \d+ ms left\)/);
    assert.match(stdout, /processed order 43/);
    assert.match(stdout, /reserved sku-1/);
    assert.deepEqual(await keysLeft(cluster, "*"), []);
  } finally {
    await cluster.close();
    rmSync(modules, { recursive: true, force: true });
  }
});
