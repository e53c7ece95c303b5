#!/usr/bin/env bash
# The main job: build Collie (release), then fine-tune SmolLM2-135M-Instruct (fetched by scripts/setup.sh into
# models/) on the bundled Alpaca records in its chat template — examples/alpaca/config.yaml — printing the held-out
# perplexity and three held-out answers before and after, saving a Hugging Face folder to runs/alpaca/final and
# exporting it as runs/alpaca/final-q8_0.gguf. Without the model (no network during setup) it trains the random
# tiny model of examples/alpaca/tiny.yaml instead.
# Extra arguments go to `collie train` (e.g. --set max_steps=40, see `collie train --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product collie
# OpenBLAS worker threads otherwise spin after each GEMM and slow the next parallel loop.
export OPENBLAS_THREAD_TIMEOUT="${OPENBLAS_THREAD_TIMEOUT:-4}"
collie=.build/release/collie
# --overwrite: each demo run starts over in its output_dir (a killed run can instead be continued with
# `.build/release/collie train CONFIG --resume latest`).
if [ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ]; then
  "$collie" train examples/alpaca/config.yaml --overwrite "$@"
  # The fine-tuned model for llama.cpp and other GGUF readers (8-bit, as llama.cpp's q8_0).
  "$collie" convert --model runs/alpaca/final --out runs/alpaca/final-q8_0.gguf --outtype q8_0
  echo "exported runs/alpaca/final-q8_0.gguf"
else
  echo "demo: models/SmolLM2-135M-Instruct.Q4_1.gguf is missing (scripts/setup.sh could not download it);" \
       "training the random tiny model of examples/alpaca/tiny.yaml instead" >&2
  "$collie" train examples/alpaca/tiny.yaml --overwrite "$@"
fi
