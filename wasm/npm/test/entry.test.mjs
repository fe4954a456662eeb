// `import` and `require` of the package give the same classes from one WebAssembly instance.

import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

import * as esm from "redlock-wasm";

const cjs = createRequire(import.meta.url)("redlock-wasm");

test("the ES module entry re-exports every CommonJS export, identically", () => {
  const names = Object.keys(cjs).filter((k) => k !== "__esModule");
  assert.ok(names.length >= 12, names.join());
  for (const name of names) assert.equal(esm[name], cjs[name], name);
  assert.deepEqual(Object.keys(esm).sort(), names.sort());
});

test("a lease from one entry is accepted by the other", () => {
  const config = new esm.Config({ instances: 1, ttlMs: 1_000 });
  const op = new esm.Acquire(config, "k", 0);
  const send = op.pollOutput();
  op.handleReply(send.instance, send.request, "OK", 1);
  const { lease } = op.pollOutput().outcome;
  const release = new cjs.Release(config, lease, 2);
  assert.equal(release.pollOutput().command, "release");
});

test("redlock-wasm/compat: default export and named classes, the same from import and require", async () => {
  const esmCompat = await import("redlock-wasm/compat");
  const cjsCompat = createRequire(import.meta.url)("redlock-wasm/compat");
  // As node-redlock's CommonJS build: the class is `.default`.
  assert.equal(typeof cjsCompat.default, "function");
  assert.equal(esmCompat.default, cjsCompat.default);
  for (const name of ["Redlock", "Lock", "ExecutionError", "ResourceLockedError"]) {
    assert.equal(esmCompat[name], cjsCompat[name], name);
  }
  assert.equal(esmCompat.Redlock, esmCompat.default);
  assert.ok(new esmCompat.default([{ call: async () => "OK" }]) instanceof (await import("node:events")).EventEmitter);
});
