// The ES module entry of `redlock-wasm/compat`: the CommonJS build re-exported (one WebAssembly
// instance and one set of classes for `import` and `require`). The default export is the
// Redlock class, as node-redlock's.
import cjs from "./compat.js";

export const { Redlock, Lock, ExecutionError, ResourceLockedError } = cjs;
export default Redlock;
