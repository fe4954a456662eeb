#!/usr/bin/env bash
# Builds the npm package in wasm/npm/dist from the redlock-wasm crate:
#   cargo (wasm32, size-optimised profile) -> wasm-bindgen --target nodejs -> wasm-opt -> tsc.
# Needs what scripts/ensure-wasm.sh installs (run it first, or `make test-wasm`).
#
# Environment: WASM_BINDGEN (path of the CLI; default: the pinned one ensure-wasm.sh caches),
# CARGO (default cargo), WASM_OPT_LEVEL (default -O).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
npm_dir="$here/npm"
cargo="${CARGO:-cargo}"

version="$(sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' "$here/Cargo.toml")"
wasm_bindgen="${WASM_BINDGEN:-${XDG_CACHE_HOME:-$HOME/.cache}/redlock-wasm/wasm-bindgen-cli-$version/bin/wasm-bindgen}"
if ! "$wasm_bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
    echo "build.sh: wasm-bindgen $version not found at $wasm_bindgen; run scripts/ensure-wasm.sh" >&2
    exit 1
fi

# A profile of its own: size-optimised, no debug info, without touching the workspace's release
# profile or its artifacts.
profile=(
    --profile wasm-release
    --config 'profile.wasm-release.inherits="release"'
    --config 'profile.wasm-release.opt-level="s"'
    --config 'profile.wasm-release.lto=true'
    --config 'profile.wasm-release.codegen-units=1'
    --config 'profile.wasm-release.debug=0'
    --config 'profile.wasm-release.panic="abort"'
)
(cd "$root" && "$cargo" build --quiet -p redlock-wasm --target wasm32-unknown-unknown "${profile[@]}")
wasm="$root/target/wasm32-unknown-unknown/wasm-release/redlock_wasm.wasm"

gen="$npm_dir/src/wasm"
rm -rf "$gen"
"$wasm_bindgen" --target nodejs --out-dir "$gen" --out-name redlock_wasm \
    --remove-producers-section "$wasm"
# The glue `require`s our JS snippet (src/shapes.js, an ES module): give it CommonJS exports.
for snippet in "$gen"/snippets/*/src/*.js; do
    sed -E -i 's/^export function ([A-Za-z0-9_]+)/exports.\1 = \1;\nfunction \1/' "$snippet"
    if grep -q '^export ' "$snippet"; then
        echo "build.sh: $snippet has exports other than functions" >&2
        exit 1
    fi
done
"$npm_dir/node_modules/.bin/wasm-opt" "${WASM_OPT_LEVEL:--O}" \
    "$gen/redlock_wasm_bg.wasm" -o "$gen/redlock_wasm_bg.wasm"

dist="$npm_dir/dist"
rm -rf "$dist"
(cd "$npm_dir" && node_modules/.bin/tsc -p tsconfig.build.json)
cp -r "$gen" "$dist/wasm"
rm -f "$dist/wasm/redlock_wasm_bg.wasm.d.ts"
cp "$npm_dir"/src/*.mjs "$npm_dir"/src/*.d.mts "$dist/"
