#!/usr/bin/env bash
# Per-rank peak memory and step time of data parallelism and ZeRO stages 0–3 at dp = 2 against one process:
# the "small" preset (hidden 768, 12 layers, LLaMA-2 vocabulary: 134M parameters) with AdamW, a global batch
# of 4 rows × 128 random tokens, STEPS updates (default 6).
#
#   swift build -c release --product collie && scripts/bench/bench_zero.sh
#
# Memory: rank 0's peak resident set until its last update (monitors.csv; training only — the trainer resets the peak
# when training starts; the final save and, under ZeRO-3, the final gathering of the whole model excluded), and each process's peak over
# the whole run (/usr/bin/time %M). Step time is the median of the updates after the first (monitors.csv). One BLAS and one Collie thread per process: two ranks use the two
# cores one process would use with two threads, so the one-process figure is taken with two threads.
set -euo pipefail
cd "$(dirname "$0")/../.."
collie=${COLLIE:-$PWD/.build/release/collie}
steps=${STEPS:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$work/train.jsonl" "$((steps * 4))" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for _ in range(int(sys.argv[2])):
        f.write(json.dumps({"tokens": [random.randrange(3, 32000) for _ in range(128)]}) + "\n")
PY
cat > "$work/config.yaml" <<YAML
model: small
tokenizer: $PWD/tokenizers/llama2
train_data: train.jsonl
record_format: tokens
shuffle: false
train_epochs: 1
train_micro_batch_size: 4
optimizer: {name: adamw, lr: 1.0e-4}
monitor_outputs: [csv]
YAML

train_peak() {  # rank 0's peak resident memory up to the last update (monitors.csv), before the final save
  tail -n 1 "$1/monitors.csv" | cut -d, -f9 | awk '{printf "%.0f MiB", $1/1048576}'
}
median_step() {  # the median step_seconds after the first update
  tail -n +3 "$1/monitors.csv" | cut -d, -f8 | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
peaks() {  # "rank peak <KB> KB" lines → MiB per rank
  grep -o 'rank peak [0-9]*' "$1" | awk '{printf "%s%.0f", (NR>1?" / ":""), $3/1024} END {print " MiB"}'
}

cd "$work"
launch=(mpirun -np 2 --bind-to none -x OPENBLAS_NUM_THREADS=1 -x COLLIE_NUM_THREADS=1)
if [ "$(id -u)" -eq 0 ]; then launch+=(--allow-run-as-root); fi

printf '| layout | rank 0 peak until the last update | peak per process, whole run | median step |\n|---|---|---|---|\n'
OPENBLAS_NUM_THREADS=2 COLLIE_NUM_THREADS=2 /usr/bin/time -f 'rank peak %M KB' "$collie" train config.yaml \
  --set output_dir=one > one.log 2>&1
printf '| 1 process, 2 threads | %s | %s | %ss |\n' "$(train_peak one)" "$(peaks one.log)" "$(median_step one)"
for stage in 0 1 2 3; do
  "${launch[@]}" /usr/bin/time -f 'rank peak %M KB' "$collie" train config.yaml --set output_dir=zero$stage \
    --set dp_size=2 --set train_micro_batch_size=2 --set ds_config.zero_optimization.stage=$stage > zero$stage.log 2>&1
  printf '| dp 2, ZeRO %d | %s | %s | %ss |\n' "$stage" "$(train_peak zero$stage)" "$(peaks zero$stage.log)" \
    "$(median_step zero$stage)"
done
