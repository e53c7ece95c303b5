#!/usr/bin/env bash
# The main job: build Collie (release), then fine-tune a tiny LLaMA (random init) on the bundled Alpaca demo
# records with the LLaMA-2 tokenizer — examples/alpaca/config.yaml — printing the evaluation perplexity before
# and after, saving a Hugging Face folder to runs/alpaca/final and printing a greedy sample answer.
# Extra arguments go to `collie train` (e.g. --set train_epochs=2, see `collie train --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product collie
# OpenBLAS worker threads otherwise spin after each GEMM and slow the next parallel loop.
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
# --overwrite: each demo run starts over in runs/alpaca (a killed run can instead be continued with
# `.build/release/collie train examples/alpaca/config.yaml --resume latest`).
.build/release/collie train examples/alpaca/config.yaml --overwrite "$@"
