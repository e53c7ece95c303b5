#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build, run and test Collie.
# Idempotent: apt runs only when a package is missing, and `apt-get update` only then.
set -euo pipefail

# chromium: the chat-page check in scripts/test.sh (scripts/checks/check_chat_page.py).
# libopenmpi-dev, openmpi-bin: data parallelism over MPI (CMPI, mpirun in the distributed tests).
packages=(libopenblas-dev pkg-config libopenmpi-dev openmpi-bin chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null 2>&1; then
  echo "setup: the Swift toolchain (6.2 or newer) is not on PATH; install it from swift.org" >&2
  exit 1
fi

# Python clients for the server checks in scripts/test.sh: the official openai package and a DevTools
# websocket client for Chromium, at the versions scripts/requirements.txt pins (the other packages there are for
# scripts run by hand). Installed only when missing or at another version.
requirements="$(dirname "$0")/requirements.txt"
clients=()
for name in openai websocket-client; do
  pinned=$(sed -n "s/^${name}==\([^[:space:]#]*\).*/\1/p" "$requirements")
  if [ -z "$pinned" ]; then
    echo "setup: $requirements pins no version of $name" >&2
    exit 1
  fi
  installed=$(python3 -c 'import sys
from importlib.metadata import PackageNotFoundError, version
try:
    print(version(sys.argv[1]))
except PackageNotFoundError:
    pass' "$name")
  if [ "$installed" != "$pinned" ]; then clients+=("$name==$pinned"); fi
done
if ((${#clients[@]})); then
  echo "setup: installing the Python packages ${clients[*]}" >&2
  python3 -m pip install -q --disable-pip-version-check "${clients[@]}"
fi
