#!/usr/bin/env bash
# Make a command from Debian's packages available: ensure_command.sh NAMES PACKAGE...
#
# NAMES is the command, or alternatives separated by commas (chromium,chromium-browser).
# Prints the path of the first one found on stdout.  Installs the PACKAGEs with
# apt-get when none is there and we are root (or have sudo); otherwise exits 1
# with the reason on stderr.  Idempotent: when the command is there it only
# prints its path.
set -euo pipefail

names=$1
shift
first=${names%%,*}
log() { printf 'ensure %s: %s\n' "$first" "$*" >&2; }

find_command() {
    local name
    for name in ${names//,/ }; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    done
    return 1
}

if find_command; then exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "missing, and installing it needs root or sudo"; exit 1; }
    SUDO="sudo -n"
fi
command -v apt-get >/dev/null 2>&1 || { log "missing, and this system has no apt-get"; exit 1; }

log "installing $*"
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 || true
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "$@" >&2; then
    log "apt-get could not install $*"
    exit 1
fi
find_command || { log "installed but not on PATH"; exit 1; }
