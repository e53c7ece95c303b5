"""PyTorch + transformers side of `collie bench train`: the same reference LLaMA configurations,
fp32 (or bf16 autocast with --mixed-precision bf16), AdamW, random tokens; prints tokens/s, GFLOP/s (same FLOP count as Collie) and peak RSS.

    python3 scripts/bench/bench_train_torch.py --preset tiny --steps 5

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""
import argparse
import json
import os
import resource
import sys

import torch
from transformers import LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_bench_arguments, llama_preset, seed_torch, timed_training_steps  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser, ["tiny", "small"], "tiny")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--length", type=int, help="tokens per sequence instead of the preset's")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no",
                        help="bf16: forward and backward under torch.autocast(cpu, bfloat16), as collie's mixed_precision")
    args = parser.parse_args()
    seed_torch(args.threads)
    config, (b, t) = llama_preset(args.preset)
    t = args.length or t
    model = LlamaForCausalLM(config)   # default attention implementation (sdpa)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 32000, (b, t))
    median, losses = timed_training_steps(model, optimizer, ids, args.steps,
                                          autocast_bf16=args.mixed_precision == "bf16")
    parameters = sum(p.numel() for p in model.parameters())
    c = config
    linear = parameters - c.vocab_size * c.hidden_size - (2 * c.num_hidden_layers + 1) * c.hidden_size
    flops_per_token = 6 * linear + 6 * c.num_hidden_layers * t * c.hidden_size
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = dict(preset=args.preset, parameters=parameters, batch=b, sequence=t, step_seconds_median=median,
                  tokens_per_second=b * t / median, gflops=flops_per_token * b * t / median / 1e9, mixed_precision=args.mixed_precision,
                  peak_rss_bytes=peak, losses=losses, torch=torch.__version__, threads=torch.get_num_threads())
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(f"torch bench train --preset {args.preset}: {parameters:,} parameters, batch {b} x {t}, AdamW fp32, autocast {args.mixed_precision}, "
              f"{torch.get_num_threads()} threads")
        print(f"median step {median:.3f} s | {b * t / median:.0f} tokens/s | {result['gflops']:.1f} GFLOP/s | "
              f"peak RSS {peak / 1e9:.2f} GB | loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    main()
