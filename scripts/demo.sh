#!/usr/bin/env bash
# The main job: build Collie (release) and train a tiny LLaMA on the bundled text, printing the loss.
# Extra arguments go to `collie demo` (see `collie demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product collie
# OpenBLAS worker threads otherwise spin after each GEMM and slow the next parallel loop.
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
.build/release/collie demo "$@"
