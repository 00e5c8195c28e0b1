#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available for the browser tests.
#
# Prints the path of the browser on stdout.  Installs the `chromium` package with
# apt-get when it is missing and we are root (or have sudo); otherwise exits 1
# with the reason on stderr, and the browser tests skip with that reason.
# Idempotent: when the browser is there it only prints its path.
set -euo pipefail

log() { printf 'ensure_chromium: %s\n' "$*" >&2; }

find_browser() {
    local name
    for name in chromium chromium-browser; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    return 1
}

if find_browser; then exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "chromium is missing and installing it needs root or sudo"; exit 1; }
    SUDO="sudo -n"
fi
command -v apt-get >/dev/null 2>&1 || { log "chromium is missing and this system has no apt-get"; exit 1; }

log "installing chromium"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium fonts-dejavu-core >&2; then
    log "apt-get could not install chromium"
    exit 1
fi
find_browser || { log "chromium installed but not on PATH"; exit 1; }
