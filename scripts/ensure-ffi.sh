#!/usr/bin/env bash
# Installs what the C ABI suite (`make test-ffi`) needs on a fresh Debian machine that has Rust
# and gcc: the hiredis headers for the event-loop example, valgrind for the leak checks, g++ for
# the C++ example and pkg-config for redlock.pc. Idempotent and quiet on success.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-ffi.sh: not root and sudo is unavailable; cannot install packages" >&2
    fi
fi

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
[ -f /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

LOG="$(mktemp -t ensure-ffi.XXXXXX)"
trap 'rm -f "$LOG"' EXIT
export DEBIAN_FRONTEND=noninteractive
# Try without refreshing the package lists first (fast when they are recent enough).
if ! $SUDO apt-get install -y -q "${missing[@]}" >"$LOG" 2>&1; then
    if ! $SUDO apt-get update -q >>"$LOG" 2>&1 ||
        ! $SUDO apt-get install -y -q "${missing[@]}" >>"$LOG" 2>&1; then
        echo "ensure-ffi.sh: apt-get install ${missing[*]} failed:" >&2
        tail -n 30 "$LOG" >&2
        exit 1
    fi
fi
