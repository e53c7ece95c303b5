#!/usr/bin/env python3
"""PyTorch side of `collie bench memory --torch`: the same reference LLaMA configuration, fp32 or bf16 weights,
random tokens, fine-tuned with transformers + torch.optim.AdamW (full parameters), with lomo-optim's LOMO or
AdaLomo (full parameters, updated inside backward: `fused_backward`), or with peft LoRA (r 8, alpha 16,
q/k/v/o/gate/up/down projections, AdamW on the adapters), optionally with gradient checkpointing. Prints one
JSON line: tokens/s and the peak RSS of the training steps (VmHWM reset after the model is built, as Collie
does).

    python3 scripts/bench/bench_memory_torch.py --preset small --method adamw --steps 3
    python3 scripts/bench/bench_memory_torch.py --preset 7b --method adalomo --dtype bfloat16 --checkpointing --steps 1

`--timeout SECONDS` bounds the training steps: where they have not all finished by then (a 7B model in bf16 on a CPU
without bf16 instructions takes over an hour for its warm-up and one step), the JSON line says `"finished": false`,
how many steps did finish, how long the unfinished one had run (a lower bound on that step's time) and the peak RSS
so far. The limit is checked between Python operations, so one long product can overrun it; the line gives the time
actually spent.

With bf16 the model is built in bf16 (torch's default dtype set while it is constructed), so a 7B model never
exists in float32. lomo-optim 0.1.1 allocates its AdaLomo state with `.cuda()`; on this CPU-only machine
that call is made the identity (the state stays on the CPU, as everything else).

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""
import argparse
import json
import os
import resource
import signal
import sys
import time

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


def fused_backward_steps(model, optimizer, ids, steps, progress):
    """steps + 1 LOMO/AdaLomo steps as lomo-optim's README trains: the loss's backward updates each parameter as
    its gradient is ready (`fused_backward`, learning rate 1e-3, no gradient-norm pass); the median seconds of the
    last `steps` and every loss. `progress` holds the running step's start and the losses so far."""
    times, losses = [], []
    for step in range(steps + 1):
        start = time.perf_counter()
        progress.update(started=start, losses=losses)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.fused_backward(loss, 1e-3)
        losses.append(loss.item())
        if step > 0:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], losses


def within_time_limit(seconds, steps, report_unfinished):
    """Runs `steps()` — (median seconds per step, losses) — and returns its result; when `seconds` (0: no limit) pass
    first, prints `report_unfinished()`'s JSON line and ends the process there. It ends it (os._exit) rather than
    raising through torch: with an exception raised from the alarm, somewhere inside autograd's hooks (AdaLomo's
    updates, checkpointing's recomputation), a 7B run ended with status 11 (SIGSEGV) and printed nothing."""
    if not seconds:
        return steps()

    def expire(signal_number, frame):
        print(json.dumps(report_unfinished(), sort_keys=True), flush=True)
        os._exit(0)

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        return steps()
    finally:
        signal.alarm(0)


def main():
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser, LLAMA_PRESETS, "small")
    parser.add_argument("--method", choices=["adamw", "lomo", "adalomo", "lora"], default="adamw")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--length", type=int, help="tokens per sequence instead of the preset's")
    parser.add_argument("--timeout", type=int, default=0,
                        help="seconds the training steps may take (0: no limit); then report what finished")
    args = parser.parse_args()
    if args.timeout < 0:
        parser.error("--timeout must be 0 (no limit) or a number of seconds")
    seed_torch(args.threads)
    config, (b, t) = llama_preset(args.preset)
    t = args.length or t
    dtype = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    torch.set_default_dtype(dtype)
    model = LlamaForCausalLM(config)
    torch.set_default_dtype(torch.float32)
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if args.method == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                                 "up_proj", "down_proj"]))
    model.train()
    ids = torch.randint(0, 32000, (b, t))
    if args.method in ("lomo", "adalomo"):
        torch.Tensor.cuda = lambda self, *arguments, **keywords: self   # lomo-optim's state: stays on the CPU
        from lomo_optim import AdaLomo, Lomo
        optimizer = Lomo(model, lr=1e-3) if args.method == "lomo" else AdaLomo(model, lr=1e-3)
        if not reset_peak_rss():
            raise SystemExit("cannot reset the peak RSS through /proc/self/clear_refs")
        steps = lambda: fused_backward_steps(model, optimizer, ids, args.steps, progress)   # noqa: E731
    else:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        if not reset_peak_rss():   # measure the steps, not construction
            raise SystemExit("cannot reset the peak RSS through /proc/self/clear_refs")
        steps = lambda: timed_training_steps(model, optimizer, ids, args.steps, progress=progress)   # noqa: E731
    progress = dict(started=time.perf_counter(), losses=[])
    begun = time.perf_counter()
    name = {"adamw": "PyTorch + transformers AdamW", "lomo": "PyTorch + lomo-optim LOMO",
            "adalomo": "PyTorch + lomo-optim AdaLomo", "lora": "PyTorch + peft LoRA"}[args.method]

    def line(**values):
        return dict(name=name, method=args.method, checkpointing=args.checkpointing, preset=args.preset,
                    dtype=args.dtype, peak_rss_bytes=peak_rss(), torch=torch.__version__,
                    threads=torch.get_num_threads(), **values)

    def unfinished():
        now = time.perf_counter()
        return line(finished=False, timeout_seconds=args.timeout, seconds_spent=now - begun,
                    steps_finished=len(progress["losses"]), steps_planned=args.steps + 1,
                    unfinished_step_seconds_at_least=now - progress["started"], losses=list(progress["losses"]))

    median, losses = within_time_limit(args.timeout, steps, unfinished)
    print(json.dumps(line(finished=True, seconds_per_step=median, tokens_per_second=b * t / median, losses=losses),
                     sort_keys=True))


if __name__ == "__main__":
    main()
