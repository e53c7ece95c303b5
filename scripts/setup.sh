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
# websocket client for Chromium. Installed only when missing.
if ! python3 -c "import openai, websocket" >/dev/null 2>&1; then
  echo "setup: installing the Python packages openai and websocket-client" >&2
  python3 -m pip install -q --disable-pip-version-check openai websocket-client
fi
