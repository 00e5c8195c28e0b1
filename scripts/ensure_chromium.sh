#!/usr/bin/env bash
# Make Debian's headless-capable Chromium available for the browser tests.
#
# Prints the path of the browser on stdout; installs it when missing and we may
# (see ensure_command.sh), else exits 1 with the reason on stderr, and the
# browser tests skip with that reason.
exec "$(dirname "$0")/ensure_command.sh" chromium,chromium-browser chromium fonts-dejavu-core
