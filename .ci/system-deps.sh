#!/usr/bin/env bash
# System packages the whole test suite runs against, from Debian's archive (never a download at
# run time): chromium for the web UI's browser tests (issue 7) and prometheus-alertmanager for
# the alert sink tests (issue 6). Idempotent; `make test` runs it. Without apt (or root) it says
# so and goes on: those tests are then skipped outside CI.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "system-deps: no apt-get; install ${missing[*]} to run every test" >&2
    exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo="sudo"
    else
        echo "system-deps: not root; install ${missing[*]} to run every test" >&2
        exit 0
    fi
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
