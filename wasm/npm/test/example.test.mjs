// The examples a Node user would copy (examples/js) run against real instances, resolving their
// packages as an installed app would: orders.mjs, and node-redlock-app.mjs, a program written
// for node-redlock that runs unchanged on redlock-wasm/compat once its import line is changed.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
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

test("examples/js/node-redlock-app.mjs: same output on node-redlock and, import changed, on compat", { timeout: 90_000 }, async () => {
  const modules = path.join(exampleDir, "node_modules");
  rmSync(modules, { recursive: true, force: true });
  mkdirSync(modules);
  symlinkSync(npmDir, path.join(modules, "redlock-wasm"), "dir");
  for (const dep of ["ioredis", "redlock"]) {
    symlinkSync(path.join(npmDir, "node_modules", dep), path.join(modules, dep), "dir");
  }
  const source = readFileSync(path.join(exampleDir, "node-redlock-app.mjs"), "utf8");
  const before = 'import Redlock, { ExecutionError, ResourceLockedError } from "redlock";\n';
  assert.ok(source.includes(`\n${before}`), "the import line to change");
  const copy = path.join(exampleDir, `.node-redlock-app.compat.${process.pid}.mjs`);
  writeFileSync(copy, source.replace(`\n${before}`, `\n${before.replace('"redlock"', '"redlock-wasm/compat"')}`));
  const cluster = await startCluster(3);
  try {
    const run = async (file) => {
      const { stdout } = await promisify(execFile)(process.execPath, [file], {
        cwd: exampleDir,
        env: { ...process.env, REDIS_URLS: cluster.urls.join(",") },
        timeout: 60_000,
      });
      assert.deepEqual(await keysLeft(cluster, "app:*"), [], `${file} left keys`);
      return stdout;
    };
    const theirs = await run("node-redlock-app.mjs");
    const ours = await run(copy);
    assert.equal(ours, theirs);
    assert.match(ours, /locked app:account:1 and app:account:2 \(value of 32 characters\)/);
    assert.match(ours, /released on a quorum: true \(2 of 3\)/);
    assert.match(ours, /3 attempts; the first had 3 votes against \(ResourceLockedError: The operation was applied to: 0 of the 1 requested resources\.\); quorum 2 of 3/);
    assert.match(ours, /using\(\) returned 42/);
    assert.match(ours, /unexpected client failures: 0/);
  } finally {
    await cluster.close();
    rmSync(copy, { force: true });
    rmSync(modules, { recursive: true, force: true });
  }
});
