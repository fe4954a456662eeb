#!/usr/bin/env bash
# Ensure redis-server, redis-cli and openssl are installed for the test harness.
# Idempotent and quiet on success. Never leaves the Debian redis service running
# on port 6379 (the harness starts its own redis-server processes).
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "ensure-redis.sh: not root and sudo is unavailable; cannot install packages" >&2
    fi
fi

LOG="$(mktemp -t ensure-redis.XXXXXX)"
trap 'rm -f "$LOG"' EXIT

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -q "$@" >"$LOG" 2>&1; then
        if ! $SUDO apt-get update -q >>"$LOG" 2>&1 ||
            ! $SUDO apt-get install -y -q "$@" >>"$LOG" 2>&1; then
            echo "ensure-redis.sh: apt-get install $* failed:" >&2
            tail -n 30 "$LOG" >&2
            exit 1
        fi
    fi
}

installed_redis=0
missing=()
if ! command -v redis-server >/dev/null 2>&1; then
    missing+=(redis-server redis-tools)
    installed_redis=1
elif ! command -v redis-cli >/dev/null 2>&1; then
    missing+=(redis-tools)
fi
if ! command -v openssl >/dev/null 2>&1; then
    missing+=(openssl)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
fi

# Make sure the distribution's service is not left running on port 6379.
stop_service() {
    if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $SUDO systemctl stop redis-server >/dev/null 2>&1 || true
        $SUDO systemctl disable redis-server >/dev/null 2>&1 || true
    elif command -v systemctl >/dev/null 2>&1; then
        $SUDO systemctl disable redis-server >/dev/null 2>&1 || true
    fi
    if command -v service >/dev/null 2>&1; then
        $SUDO service redis-server stop >/dev/null 2>&1 || true
    fi
}
if [ "$installed_redis" -eq 1 ] || [ -e /etc/init.d/redis-server ]; then
    # Only touch the service if it might be running (cheap check first).
    if [ "$installed_redis" -eq 1 ] || { command -v redis-cli >/dev/null 2>&1 &&
        timeout 5 redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }; then
        stop_service
    fi
fi

if ! command -v redis-server >/dev/null 2>&1; then
    echo "ensure-redis.sh: redis-server still not on PATH after install" >&2
    exit 1
fi
