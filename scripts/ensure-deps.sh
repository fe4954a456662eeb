#!/usr/bin/env bash
# Installs what the build and the tests need on a fresh Debian machine that has Rust, gcc, Node
# and Python: rustup targets and components, and redis-server (via ensure-redis.sh).
# Idempotent and quiet on success.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if ! command -v cargo >/dev/null 2>&1; then
    echo "ensure-deps.sh: cargo not found; install Rust with rustup (https://rustup.rs)" >&2
    exit 1
fi

if command -v rustup >/dev/null 2>&1; then
    installed="$(rustup target list --installed 2>/dev/null || true)"
    for target in thumbv7em-none-eabihf wasm32-unknown-unknown; do
        if ! grep -qx "$target" <<<"$installed"; then
            rustup target add "$target" >/dev/null 2>&1
        fi
    done
    components="$(rustup component list --installed 2>/dev/null || true)"
    for component in rustfmt clippy; do
        if ! grep -q "^$component" <<<"$components"; then
            rustup component add "$component" >/dev/null 2>&1
        fi
    done
fi

"$here/ensure-redis.sh"
