// The WebAssembly module may reach only what it is meant to: the wasm-bindgen glue, our object
// builders, and crypto randomness. No clock, no timers, no I/O, no WASI, no `env` symbols left
// unresolved by the linker. An import not listed here fails the test: review it, then list it.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const dist = path.dirname(require.resolve("redlock-wasm"));
const bytes = readFileSync(path.join(dist, "wasm/redlock_wasm_bg.wasm"));
const module = new WebAssembly.Module(bytes);

const GLUE = "./redlock_wasm_bg.js";
const SHAPES = /^\.\/snippets\/redlock-wasm-[0-9a-f]+\/src\/shapes\.js$/;

/** Every import the module may have, by name without wasm-bindgen's hash, and why. */
const ALLOWED = {
  // Plain-object builders of src/shapes.js (outputs and outcomes).
  byteList: "outputs",
  statusList: "outputs",
  sendOutput: "outputs",
  waitOutput: "outputs",
  doneOutput: "outputs",
  leaseObject: "outputs",
  acquiredOutcome: "outputs",
  acquireFailedOutcome: "outputs",
  extendedOutcome: "outputs",
  extendFailedOutcome: "outputs",
  releasedOutcome: "outputs",
  // getrandom's `js` backend: crypto.getRandomValues, or Node's crypto module before globalThis.crypto.
  crypto: "randomness",
  msCrypto: "randomness",
  getRandomValues: "randomness",
  randomFillSync: "randomness",
  process: "randomness (Node detection)",
  versions: "randomness (Node detection)",
  node: "randomness (Node detection)",
  require: "randomness (Node detection)",
  static_accessor_GLOBAL: "randomness (global object)",
  static_accessor_GLOBAL_THIS: "randomness (global object)",
  static_accessor_SELF: "randomness (global object)",
  static_accessor_WINDOW: "randomness (global object)",
  call: "randomness (Node's require)",
  // Reading arguments: keys, arrays, option objects, replies, leases.
  keys: "Object.keys of Config options",
  get: "Reflect.get",
  set: "Reflect.set / Uint8Array.set",
  get_unchecked: "array element",
  length: "array / string / Uint8Array length",
  isArray: "Array.isArray",
  instanceof_Uint8Array: "binary keys",
  slice: "error text prefix",
  subarray: "randomness buffer",
  prototypesetcall: "copying a Uint8Array into wasm memory",
  push: "Array.prototype.push (scripts())",
  new: "new Object / Array / Uint8Array",
  new_with_length: "new Uint8Array(n)",
  toString: "Number.prototype.toString for error messages",
  Error: "thrown errors",
  // wasm-bindgen intrinsics.
  __wbindgen_bigint_get_as_i64: "intrinsic",
  __wbindgen_boolean_get: "intrinsic (Config option releaseNotification)",
  __wbindgen_generic: "intrinsic",
  __wbindgen_init_externref_table: "intrinsic",
  __wbindgen_is_bigint: "intrinsic",
  __wbindgen_is_function: "intrinsic",
  __wbindgen_is_null: "intrinsic",
  __wbindgen_is_object: "intrinsic",
  __wbindgen_is_string: "intrinsic",
  __wbindgen_is_undefined: "intrinsic",
  __wbindgen_jsval_eq: "intrinsic",
  __wbindgen_number_get: "intrinsic",
  __wbindgen_string_get: "intrinsic",
  __wbindgen_throw: "intrinsic",
};

function bareName(name) {
  return name
    .replace(/^__wbg_/, "")
    .replace(/_[0-9a-f]{16}$/, "")
    .replace(/^(__wbindgen_generic)_\d+$/, "$1");
}

test("the module imports only the glue, our object builders and crypto randomness", () => {
  const imports = WebAssembly.Module.imports(module);
  assert.ok(imports.length > 0);
  const unexpected = [];
  for (const { module: from, name, kind } of imports) {
    assert.equal(kind, "function", `${from}.${name} is a ${kind}`);
    assert.ok(from === GLUE || SHAPES.test(from), `import from unexpected module ${from} (${name})`);
    if (!(bareName(name) in ALLOWED)) unexpected.push(`${from}: ${name}`);
  }
  assert.deepEqual(unexpected, [], "imports not reviewed");
});

test("the module reads no clock and sets no timer", () => {
  const names = WebAssembly.Module.imports(module).map((i) => i.name.toLowerCase());
  for (const forbidden of ["now", "date", "performance", "settimeout", "hrtime", "fd_", "wasi"]) {
    assert.ok(!names.some((n) => n.includes(forbidden)), `an import mentions ${forbidden}`);
  }
});

test("the module exports the three machines, Config and nothing that runs on its own", () => {
  const exports = WebAssembly.Module.exports(module).map((e) => e.name);
  for (const name of ["acquire_new", "extend_new", "release_new", "config_new", "acquire_pollOutput"]) {
    assert.ok(exports.includes(name), name);
  }
  // `__wbindgen_start` only initialises wasm-bindgen's externref table.
  const starts = exports.filter((n) => /start/i.test(n));
  assert.deepEqual(starts, ["__wbindgen_start"]);
});
