#!/usr/bin/env bash
# Runs every test: builds the package and runs the XCTest suites (no network, Python or GPU needed).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
swift build --build-tests
swift test --skip-build --disable-swift-testing
