#!/usr/bin/env bash
# Decode tokens/s of `collie bench generate` and of transformers' generate (scripts/bench/bench_generate_torch.py) on the
# "small" preset, alternated for ROUNDS rounds (default 3) so both see the same machine, with each round's ratio.
# Collie runs with bf16 weights and with fp32 weights; PyTorch with its default fp32 (and bf16 with TORCH_BF16=1).
#
#   swift build -c release --product collie && scripts/bench/bench_generate.sh
#
# The PyTorch side needs torch and transformers (pinned in scripts/requirements.txt).
#
# A benchmark: OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for these commands only, so OpenBLAS (used by the
# prefill and by PyTorch) takes its AVX-512 kernels.
set -euo pipefail
cd "$(dirname "$0")/../.."
collie=${COLLIE:-$PWD/.build/release/collie}
rounds=${ROUNDS:-3}
batches=${BATCHES:-1,8}
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
