#!/usr/bin/env python3
"""Greedy decode speed of transformers' generate on the shape `collie bench generate` uses (run beside it).

A randomly initialized LlamaForCausalLM (vocabulary 32000, preset shape, float32 or bfloat16, eager attention, KV
cache) continues random prompts of --prompt-length tokens by --new-tokens tokens (min_new_tokens = max_new_tokens,
so no early stop). Decode tokens/s = batch x (new - 1) / (t(new tokens) - t(1 token)): the same count as Collie's
(tokens after the first, whose time is the prefill). Median of --repeats after one warm-up.

    python3 scripts/bench/bench_generate_torch.py --preset small --batch-sizes 1,8 [--dtype float32] [--json]

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_bench_arguments, llama_preset, seed_torch  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser, ["tiny", "small"], "small")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    seed_torch(args.threads)
    config, _ = llama_preset(args.preset, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config).eval().to(getattr(torch, args.dtype))
    model.config._attn_implementation = "eager"
    results = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        ids = torch.randint(3, 31000, (batch, args.prompt_length))
        mask = torch.ones_like(ids)

        def timed(new):
            start = time.perf_counter()
            with torch.no_grad():
                model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                               min_new_tokens=new, pad_token_id=0)
            return time.perf_counter() - start

        timed(args.new_tokens)  # warm-up
        rates, prefills = [], []
        for _ in range(args.repeats):
            first = timed(1)
            full = timed(args.new_tokens)
            prefills.append(first)
            rates.append(batch * (args.new_tokens - 1) / max(full - first, 1e-9))
        results.append(dict(batch=batch, decode_tokens_per_second=statistics.median(rates),
                            prefill_seconds=statistics.median(prefills), runs=rates))
        if not args.json:
            print(f"batch {batch:2d}: decode {statistics.median(rates):7.1f} tokens/s "
                  f"(runs: {', '.join(f'{r:.1f}' for r in rates)}), prefill {statistics.median(prefills):.3f} s")
    if args.json:
        print(json.dumps(dict(preset=args.preset, dtype=args.dtype, torch=torch.__version__, results=results), indent=1))


if __name__ == "__main__":
    main()
