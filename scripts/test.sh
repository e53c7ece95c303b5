#!/usr/bin/env bash
# Runs every test: builds the package and runs the XCTest suites, then drives `collie serve` on loopback with
# the openai Python client (scripts/checks/check_server.py), soaks it with well-formed and abusive clients at once
# (scripts/checks/soak_server.py), and drives its chat page in headless Chromium
# (scripts/checks/check_chat_page.py), then fuzzes every parser of untrusted input for $COLLIE_FUZZ_SECONDS (default
# 60) seconds each under AddressSanitizer (scripts/fuzz.sh; a crash, hang or OOM fails). scripts/setup.sh installs
# what these need.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
swift build --build-tests
swift test --skip-build --disable-swift-testing
python3 scripts/checks/check_server.py --collie .build/debug/collie
python3 scripts/checks/soak_server.py --collie .build/debug/collie
python3 scripts/checks/check_chat_page.py --collie .build/debug/collie --screenshot build/chat-page.png
scripts/fuzz.sh --seconds "${COLLIE_FUZZ_SECONDS:-60}"
