#!/usr/bin/env bash
# Installs what the WASM suite (`make test-wasm`) needs on a fresh Debian machine that has Rust
# and Node.js (>= 18, with npm): the wasm32-unknown-unknown target, the wasm-bindgen CLI of the
# exact version wasm/Cargo.toml pins, and the npm dev dependencies of wasm/npm (node-redis,
# ioredis, binaryen's wasm-opt, TypeScript) from package-lock.json. Idempotent and quiet on
# success.
#
# The CLI is built once (`cargo install`, a few minutes) into
# ${XDG_CACHE_HOME:-~/.cache}/redlock-wasm/wasm-bindgen-cli-VERSION, outside the work tree, so
# fresh clones on the same machine reuse it. WASM_BINDGEN=/path/to/wasm-bindgen overrides it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
npm_dir="$root/wasm/npm"

fail() {
    echo "ensure-wasm.sh: $*" >&2
    exit 1
}

command -v cargo >/dev/null 2>&1 || fail "cargo not found; install Rust with rustup (https://rustup.rs)"
command -v node >/dev/null 2>&1 || fail "node not found; install Node.js 18 or later"
command -v npm >/dev/null 2>&1 || fail "npm not found; install it with Node.js"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 18 ] || fail "Node.js $(node --version) is too old; 18 or later is needed"

if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        rustup target add wasm32-unknown-unknown >/dev/null 2>&1 ||
            fail "rustup target add wasm32-unknown-unknown failed"
    fi
fi

version="$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' "$root/wasm/Cargo.toml")"
[ -n "$version" ] || fail "no exact wasm-bindgen version (=x.y.z) found in wasm/Cargo.toml"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/redlock-wasm"
bin="${WASM_BINDGEN:-$cache/wasm-bindgen-cli-$version/bin/wasm-bindgen}"
if ! "$bin" --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
    [ -z "${WASM_BINDGEN:-}" ] || fail "WASM_BINDGEN=$WASM_BINDGEN is not wasm-bindgen $version"
    echo "ensure-wasm.sh: building wasm-bindgen-cli $version (once per machine, a few minutes)" >&2
    log="$(mktemp -t ensure-wasm.XXXXXX)"
    if ! cargo install --quiet wasm-bindgen-cli --version "$version" \
        --root "$cache/wasm-bindgen-cli-$version" --target-dir "$cache/build" >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        rm -f "$log"
        fail "cargo install wasm-bindgen-cli --version $version failed"
    fi
    rm -rf "$log" "$cache/build"
fi

# npm ci only when package-lock.json changed since the last install.
lock_sum="$(sha256sum "$npm_dir/package-lock.json" | cut -d' ' -f1)"
stamp="$npm_dir/node_modules/.redlock-installed"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$lock_sum" ]; then
    log="$(mktemp -t ensure-wasm.XXXXXX)"
    if ! (cd "$npm_dir" && npm ci --no-audit --no-fund >"$log" 2>&1); then
        tail -n 30 "$log" >&2
        rm -f "$log"
        fail "npm ci in wasm/npm failed"
    fi
    rm -f "$log"
    echo "$lock_sum" >"$stamp"
fi
