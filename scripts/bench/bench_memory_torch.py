#!/usr/bin/env python3
"""PyTorch side of `collie bench memory --torch`: the same reference LLaMA configuration, fp32, random
tokens, fine-tuned with transformers + torch.optim.AdamW (full parameters) or with peft LoRA (r 8, alpha 16,
q/k/v/o/gate/up/down projections, AdamW on the adapters), optionally with gradient checkpointing. Prints one
JSON line: tokens/s and the peak RSS of the training steps (VmHWM reset after the model is built, as Collie
does).

    python3 scripts/bench/bench_memory_torch.py --preset small --method adamw --steps 3

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
from collie_scripts import LLAMA_PRESETS, add_bench_arguments, llama_preset, reset_peak_rss, seed_torch, timed_training_steps  # noqa: E402


def peak_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser, LLAMA_PRESETS, "small")
    parser.add_argument("--method", choices=["adamw", "lora"], default="adamw")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    seed_torch(args.threads)
    config, (b, t) = llama_preset(args.preset)
    model = LlamaForCausalLM(config)
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, 32000, (b, t))
    if not reset_peak_rss():   # measure the steps, not construction
        raise SystemExit("cannot reset the peak RSS through /proc/self/clear_refs")
    median, losses = timed_training_steps(model, optimizer, ids, args.steps)
    name = "PyTorch + transformers AdamW" if args.method == "adamw" else "PyTorch + peft LoRA"
    print(json.dumps(dict(name=name, method=args.method, checkpointing=args.checkpointing, preset=args.preset,
                          tokens_per_second=b * t / median, peak_rss_bytes=peak_rss(), losses=losses,
                          torch=torch.__version__, threads=torch.get_num_threads()), sort_keys=True))


if __name__ == "__main__":
    main()
