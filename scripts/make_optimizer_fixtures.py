#!/usr/bin/env python3
"""Builds the PyTorch / transformers reference values for Tests/CollieOptimizerTests:

    Fixtures/optimizers.safetensors   torch.optim.SGD and torch.optim.AdamW, 5 steps per setting
    Fixtures/schedules.safetensors    transformers' learning-rate schedules, step by step
    Fixtures/clipping.safetensors     torch.nn.utils.clip_grad_norm_

Run by hand (never by CI) from the repository root:

    python3 scripts/make_optimizer_fixtures.py

Optimizer case `name` (float32 tensors unless noted):

    name.init.<i>          parameter i before the first step
    name.grad.<s>.<i>      its gradient at step s (0-based); absent when the parameter has no
                           gradient at that step (torch skips it: no update, no state change)
    name.after.<s>.<i>     parameter i after step s
    name.lr                float64 [steps]: the learning rate of each step (param_groups[0]["lr"])
    name.state.<i>.<key>   the optimizer state after the last step: momentum_buffer (SGD),
                           exp_avg / exp_avg_sq (AdamW), step (AdamW, float32 0-d as torch keeps it)
    name.p.<key>           hyper-parameters as 0-d float64 (kind: 0 = SGD, 1 = AdamW; booleans 0/1)

Both optimizers run their single-tensor path (foreach=False), float32, on the CPU.

Schedule case `name`: name.lr (float64 [n]: the learning rate of optimizer step k, i.e. before
the k-th scheduler.step()) and name.p.<key> (0-d float64: kind 0 constant / 1 linear / 2 cosine,
base_lr, total_steps, warmup_steps or warmup_ratio, num_cycles, min_lr_rate).

Clipping case `name`: name.grad.<i> (before), name.clipped.<i> (after), name.total_norm (0-d
float32, what clip_grad_norm_ returns), name.p.max_norm; name.p.count is the number of parameters,
and parameter i has no gradient when name.grad.<i> is absent.
"""

import math
import os
from types import SimpleNamespace

import torch
from safetensors.torch import save_file
from transformers import TrainingArguments, get_constant_schedule, get_constant_schedule_with_warmup, \
    get_cosine_schedule_with_warmup, get_cosine_with_min_lr_schedule_with_warmup, get_linear_schedule_with_warmup

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieOptimizerTests", "Fixtures")
STEPS = 5
SHAPES = [(3, 4), (5,), (2, 3, 2)]

torch.manual_seed(20240612)


class Store:
    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}

    def put(self, key: str, value: torch.Tensor) -> None:
        assert key not in self.tensors, f"duplicate key {key}"
        self.tensors[key] = value.detach().contiguous().clone()

    def params(self, name: str, **values) -> None:
        for key, v in values.items():
            self.put(f"{name}.p.{key}", torch.tensor(float(v), dtype=torch.float64))

    def save(self, file: str) -> None:
        os.makedirs(FIXTURES, exist_ok=True)
        save_file(self.tensors, os.path.join(FIXTURES, file))
        print(f"wrote {file}: {len(self.tensors)} tensors")


# MARK: - Optimizers

def optimizer_case(store: Store, name: str, kind: str, lrs: list[float], missing: set[tuple[int, int]] = frozenset(),
                   **hyper) -> None:
    """Runs STEPS steps of torch's optimizer on random parameters and gradients.

    `missing` holds (step, parameter) pairs whose gradient is None at that step.
    """
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in SHAPES]
    for i, p in enumerate(params):
        store.put(f"{name}.init.{i}", p)
    if kind == "sgd":
        optimizer = torch.optim.SGD(params, lr=lrs[0], momentum=hyper.get("momentum", 0.0),
                                    dampening=hyper.get("dampening", 0.0), weight_decay=hyper.get("weight_decay", 0.0),
                                    nesterov=hyper.get("nesterov", False), foreach=False)
        store.params(name, kind=0, momentum=hyper.get("momentum", 0.0), dampening=hyper.get("dampening", 0.0),
                     weight_decay=hyper.get("weight_decay", 0.0), nesterov=int(hyper.get("nesterov", False)))
    else:
        betas = hyper.get("betas", (0.9, 0.999))
        optimizer = torch.optim.AdamW(params, lr=lrs[0], betas=betas, eps=hyper.get("eps", 1e-8),
                                      weight_decay=hyper.get("weight_decay", 0.01), foreach=False, fused=False)
        store.params(name, kind=1, beta1=betas[0], beta2=betas[1], eps=hyper.get("eps", 1e-8),
                     weight_decay=hyper.get("weight_decay", 0.01))
    store.put(f"{name}.lr", torch.tensor(lrs, dtype=torch.float64))
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        optimizer.zero_grad(set_to_none=True)
        for i, p in enumerate(params):
            if (step, i) in missing:
                continue
            # Gradients of mixed scale, with a few tiny entries so eps matters for Adam.
            g = torch.randn(p.shape) * (10.0 ** (i - 1))
            g.view(-1)[0] *= 1e-4
            p.grad = g
            store.put(f"{name}.grad.{step}.{i}", g)
        optimizer.step()
        for i, p in enumerate(params):
            store.put(f"{name}.after.{step}.{i}", p)
    for i, p in enumerate(params):
        for key, value in optimizer.state[p].items():
            if isinstance(value, torch.Tensor):
                store.put(f"{name}.state.{i}.{key}", value.to(torch.float32))


def make_optimizers() -> None:
    store = Store()
    constant = [0.1] * STEPS
    optimizer_case(store, "sgd_plain", "sgd", constant)
    optimizer_case(store, "sgd_momentum", "sgd", constant, momentum=0.9)
    optimizer_case(store, "sgd_nesterov", "sgd", constant, momentum=0.9, nesterov=True)
    optimizer_case(store, "sgd_weight_decay", "sgd", constant, momentum=0.5, weight_decay=0.05)
    optimizer_case(store, "sgd_dampening", "sgd", [0.1, 0.05, 0.2, 0.1, 0.01], momentum=0.9, dampening=0.3,
                   missing={(2, 1), (0, 2)})
    optimizer_case(store, "adamw_default", "adamw", [1e-2] * STEPS)
    optimizer_case(store, "adamw_no_decay", "adamw", [1e-2] * STEPS, weight_decay=0.0)
    optimizer_case(store, "adamw_betas", "adamw", [3e-2] * STEPS, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)
    optimizer_case(store, "adamw_varying_lr", "adamw", [1e-3, 2e-3, 3e-3, 2e-3, 1e-3], missing={(2, 1), (0, 2)})
    store.save("optimizers.safetensors")


# MARK: - Schedules

def schedule_case(store: Store, name: str, kind: int, total: int, warmup=0, ratio=None, cycles=0.5, min_rate=0.0,
                  base_lr=3e-4, extra=4) -> None:
    if ratio is not None:
        # transformers' Trainer: warmup_steps < 1 is a ratio of the training steps, rounded up.
        warmup = TrainingArguments.get_warmup_steps(SimpleNamespace(warmup_steps=ratio), total)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    if kind == 0:
        scheduler = get_constant_schedule_with_warmup(optimizer, warmup) if warmup else get_constant_schedule(optimizer)
    elif kind == 1:
        scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total)
    elif min_rate:
        scheduler = get_cosine_with_min_lr_schedule_with_warmup(optimizer, warmup, total, num_cycles=cycles,
                                                               min_lr_rate=min_rate)
    else:
        scheduler = get_cosine_schedule_with_warmup(optimizer, warmup, total, num_cycles=cycles)
    lrs = []
    for _ in range(total + extra):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    store.put(f"{name}.lr", torch.tensor(lrs, dtype=torch.float64))
    store.params(name, kind=kind, base_lr=base_lr, total_steps=total, warmup_steps=warmup if ratio is None else 0,
                 warmup_ratio=ratio or 0.0, num_cycles=cycles, min_lr_rate=min_rate)


def make_schedules() -> None:
    store = Store()
    schedule_case(store, "constant", 0, total=10)
    schedule_case(store, "constant_warmup", 0, total=12, warmup=5)
    schedule_case(store, "linear", 1, total=20)
    schedule_case(store, "linear_warmup", 1, total=20, warmup=3)
    schedule_case(store, "linear_warmup_ratio", 1, total=25, ratio=0.1)
    schedule_case(store, "cosine", 2, total=30)
    schedule_case(store, "cosine_warmup", 2, total=20, warmup=4, base_lr=1e-3)
    schedule_case(store, "cosine_two_cycles", 2, total=24, warmup=2, cycles=1.0, extra=10)
    schedule_case(store, "cosine_min_lr", 2, total=20, warmup=3, min_rate=0.1)
    schedule_case(store, "cosine_warmup_ratio", 2, total=50, ratio=0.07)
    store.save("schedules.safetensors")


# MARK: - Clipping

def clipping_case(store: Store, name: str, max_norm: float, scale: float, missing=()) -> None:
    grads = []
    for i, shape in enumerate(SHAPES):
        p = torch.nn.Parameter(torch.zeros(shape))
        if i not in missing:
            p.grad = torch.randn(shape) * scale * (i + 1)
            store.put(f"{name}.grad.{i}", p.grad)
        grads.append(p)
    total = torch.nn.utils.clip_grad_norm_(grads, max_norm, foreach=False)
    for i, p in enumerate(grads):
        if p.grad is not None:
            store.put(f"{name}.clipped.{i}", p.grad)
    store.put(f"{name}.total_norm", total.to(torch.float32))
    store.params(name, max_norm=max_norm, count=len(SHAPES))


def make_clipping() -> None:
    store = Store()
    clipping_case(store, "clipped", max_norm=1.0, scale=1.0)
    clipping_case(store, "unclipped", max_norm=100.0, scale=1.0)
    clipping_case(store, "missing_gradient", max_norm=0.5, scale=3.0, missing=(1,))
    clipping_case(store, "tiny_max_norm", max_norm=1e-3, scale=1e-2)
    store.save("clipping.safetensors")


if __name__ == "__main__":
    make_optimizers()
    make_schedules()
    make_clipping()
