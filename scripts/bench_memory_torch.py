#!/usr/bin/env python3
"""PyTorch side of `collie bench memory --torch`: the same reference LLaMA configuration, fp32, random
tokens, fine-tuned with transformers + torch.optim.AdamW (full parameters) or with peft LoRA (r 8, alpha 16,
q/k/v/o/gate/up/down projections, AdamW on the adapters), optionally with gradient checkpointing. Prints one
JSON line: tokens/s and the peak RSS of the training steps (VmHWM reset after the model is built, as Collie
does).

    python3 scripts/bench_memory_torch.py --preset small --method adamw --steps 3
"""
import argparse
import json
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

PRESETS = {
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=4, batch=(4, 256)),
    "small": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                  num_key_value_heads=12, batch=(4, 512)),
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, batch=(1, 256)),
}


def peak_rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", choices=PRESETS, default="small")
    parser.add_argument("--method", choices=["adamw", "lora"], default="adamw")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = dict(PRESETS[args.preset])
    b, t = spec.pop("batch")
    config = LlamaConfig(vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False, **spec)
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
    with open("/proc/self/clear_refs", "w") as f:   # reset VmHWM: measure the steps, not construction
        f.write("5")
    times, losses = [], []
    for step in range(args.steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step > 0:
            times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    name = "PyTorch + transformers AdamW" if args.method == "adamw" else "PyTorch + peft LoRA"
    print(json.dumps(dict(name=name, method=args.method, checkpointing=args.checkpointing, preset=args.preset,
                          tokens_per_second=b * t / median, peak_rss_bytes=peak_rss(), losses=losses,
                          torch=torch.__version__, threads=torch.get_num_threads()), sort_keys=True))


if __name__ == "__main__":
    main()
