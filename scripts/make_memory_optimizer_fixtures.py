#!/usr/bin/env python3
"""Reference values for the memory-efficient and newer optimizers (Tests/CollieOptimizerTests):

    Fixtures/fused_model/          a tiny random LLaMA (transformers' save_pretrained, float32, untied)
    Fixtures/fused.safetensors     lomo-optim's LOMO and AdaLomo on that model, 3 steps per case
    Fixtures/adaptive.safetensors  Lion, Adan and SophiaG, 5 steps per case on random tensors

Run by hand (never by CI) from the repository root, with torch, transformers, lomo-optim 0.1.1 and
lion-pytorch installed:

    python3 scripts/make_memory_optimizer_fixtures.py

References:
- LOMO, AdaLomo: OpenLMLab's `lomo-optim` 0.1.1 from PyPI, used as a user would (fused_backward, and
  grad_norm first when clip_grad_norm is set). Its AdaLomo moves its state to the GPU with `.cuda()`
  in the constructor; on this CPU machine `torch.Tensor.cuda` is patched to return the tensor itself.
  AdaLomo's default loss_scale (2**10) multiplies the loss and divides every gradient: exact in float32.
- Lion: lucidrains' `lion-pytorch` from PyPI (the update of the paper's Program 1).
- Adan: no package of the authors' implementation exists on PyPI; `Adan` below re-creates the
  single-tensor path of the authors' reference (sail-sg/Adan, adan.py: Algorithm 1 of the paper with the
  restart-free, proximal weight decay default `no_prox=False`) from its published code.
- SophiaG: likewise re-created from the authors' reference (Liuhong99/Sophia, sophia.py): `update_hessian()`
  folds g⊙g of the current gradients into the EMA of the Hessian diagonal; `step(bs)` clips
  |m| / (rho·bs·h + 1e-15) at 1. The Hessian is refreshed every `k` steps with a separate gradient,
  as the authors' training loop does with sampled labels (here: a given random tensor).

fused.safetensors, case `name` (lomo_*, adalomo_*):
    name.input_ids, name.labels   [2, 10] int64 (labels with some -100)
    name.losses                   [3] float32, the loss of each step before its update
    name.param.<hf key>           every parameter after the 3 steps
    name.p.<key>                  hyper-parameters (0-d float64): kind (0 LOMO, 1 AdaLomo), lr,
                                  weight_decay, clip_grad_norm (0 = off), clip_grad_value (0 = off)
adaptive.safetensors: as optimizers.safetensors (name.init.<i>, name.grad.<s>.<i>, name.after.<s>.<i>,
name.lr, name.p.<key>), plus for SophiaG name.hess_grad.<s>.<i> at the steps that refresh the Hessian
(before the update of that step, as in the authors' loop where the refresh follows step s).
"""

import math
import zlib
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

torch.Tensor.cuda = lambda self, *args, **kwargs: self  # lomo-optim's AdaLomo calls .cuda() when constructed
from lomo_optim import AdaLomo, Lomo  # noqa: E402
from lion_pytorch import Lion  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieOptimizerTests", "Fixtures")
STEPS = 5
SHAPES = [(3, 4), (5,), (2, 3, 2)]


class Store:
    def __init__(self):
        self.tensors = {}

    def put(self, key, value):
        assert key not in self.tensors, key
        self.tensors[key] = value.detach().contiguous().clone()

    def params(self, name, **values):
        for key, v in values.items():
            self.put(f"{name}.p.{key}", torch.tensor(float(v), dtype=torch.float64))

    def save(self, file):
        save_file(self.tensors, os.path.join(FIXTURES, file))
        print(f"wrote {file}: {len(self.tensors)} tensors")


# MARK: - LOMO and AdaLomo on a model

def tiny_model():
    torch.manual_seed(7)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, attn_implementation="eager")
    model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.6, 1.4)
            else:
                p.normal_(0, 0.2)
    return model


def fused_case(store, folder, name, kind, steps=3, **hyper):
    model = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").float()
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000)
    ids = torch.randint(3, 64, (2, 10), generator=g)
    labels = ids.clone()
    labels[0, :3] = -100
    labels[1, 7] = -100
    store.put(f"{name}.input_ids", ids)
    store.put(f"{name}.labels", labels)
    lr = hyper.get("lr", 1e-2)
    clip_norm = hyper.get("clip_grad_norm")
    clip_value = hyper.get("clip_grad_value")
    wd = hyper.get("weight_decay", 0.0)
    if kind == "lomo":
        optimizer = Lomo(model, lr=lr, clip_grad_norm=clip_norm, clip_grad_value=clip_value, weight_decay=wd)
    else:
        optimizer = AdaLomo(model, lr=lr, clip_grad_norm=clip_norm, clip_grad_value=clip_value, weight_decay=wd)
    store.params(name, kind=0 if kind == "lomo" else 1, lr=lr, weight_decay=wd, clip_grad_norm=clip_norm or 0,
                 clip_grad_value=clip_value or 0)
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, labels=labels).loss
        losses.append(loss.item())
        if clip_norm:
            optimizer.grad_norm(loss)
        optimizer.fused_backward(loss, lr)
    store.put(f"{name}.losses", torch.tensor(losses, dtype=torch.float32))
    for key, p in model.named_parameters():
        store.put(f"{name}.param.{key}", p)


def make_fused():
    folder = os.path.join(FIXTURES, "fused_model")
    shutil.rmtree(folder, ignore_errors=True)
    tiny_model().save_pretrained(folder)
    for extra in ("generation_config.json",):
        path = os.path.join(folder, extra)
        if os.path.exists(path):
            os.remove(path)
    store = Store()
    fused_case(store, folder, "lomo_plain", "lomo", lr=5e-2)
    fused_case(store, folder, "lomo_decay_value_clip", "lomo", lr=5e-2, weight_decay=0.1, clip_grad_value=0.02)
    fused_case(store, folder, "lomo_norm_clip", "lomo", lr=5e-2, clip_grad_norm=0.5)
    fused_case(store, folder, "adalomo_plain", "adalomo", lr=1e-2)
    fused_case(store, folder, "adalomo_decay", "adalomo", lr=1e-2, weight_decay=0.1)
    fused_case(store, folder, "adalomo_clips", "adalomo", lr=1e-2, clip_grad_norm=0.5, clip_grad_value=0.05)
    store.save("fused.safetensors")


# MARK: - Lion, Adan, SophiaG on random tensors

class Adan(torch.optim.Optimizer):
    """The authors' reference Adan (sail-sg/Adan, single-tensor path), re-created; max_grad_norm 0."""

    def __init__(self, params, lr=1e-3, betas=(0.98, 0.92, 0.99), eps=1e-8, weight_decay=0.0, no_prox=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, no_prox=no_prox))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2, beta3 = group["betas"]
            group["step"] = group.get("step", 0) + 1
            step = group["step"]
            bias1, bias2, bias3_sqrt = 1 - beta1 ** step, 1 - beta2 ** step, math.sqrt(1 - beta3 ** step)
            lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if len(state) == 0:
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    state["exp_avg_diff"] = torch.zeros_like(p)
                if "neg_pre_grad" not in state or step == 1:
                    state["neg_pre_grad"] = grad.clone().mul_(-1.0)
                exp_avg, exp_avg_sq, exp_avg_diff = state["exp_avg"], state["exp_avg_sq"], state["exp_avg_diff"]
                neg = state["neg_pre_grad"]
                neg.add_(grad)                                                    # g_t − g_{t−1}
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)                    # m_t
                exp_avg_diff.mul_(beta2).add_(neg, alpha=1 - beta2)                # v_t
                neg.mul_(beta2).add_(grad)                                         # g_t + β2 (g_t − g_{t−1})
                exp_avg_sq.mul_(beta3).addcmul_(neg, neg, value=1 - beta3)         # n_t
                denom = (exp_avg_sq.sqrt() / bias3_sqrt).add_(eps)
                if group["no_prox"]:
                    p.mul_(1 - lr * wd)
                    p.addcdiv_(exp_avg, denom, value=-lr / bias1)
                    p.addcdiv_(exp_avg_diff, denom, value=-lr * beta2 / bias2)
                else:
                    p.addcdiv_(exp_avg, denom, value=-lr / bias1)
                    p.addcdiv_(exp_avg_diff, denom, value=-lr * beta2 / bias2)
                    p.div_(1 + lr * wd)
                neg.zero_().add_(grad, alpha=-1.0)


class SophiaG(torch.optim.Optimizer):
    """The authors' reference SophiaG (Liuhong99/Sophia, sophia.py), re-created (maximize/capturable off)."""

    def __init__(self, params, lr=1e-4, betas=(0.965, 0.99), rho=0.04, weight_decay=1e-1):
        super().__init__(params, dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay))

    def _init(self, p):
        state = self.state[p]
        if len(state) == 0:
            state["step"] = torch.tensor(0.0)
            state["exp_avg"] = torch.zeros_like(p)
            state["hessian"] = torch.zeros_like(p)
        return state

    @torch.no_grad()
    def update_hessian(self):
        for group in self.param_groups:
            _, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._init(p)["hessian"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)

    @torch.no_grad()
    def step(self, bs=5120):
        for group in self.param_groups:
            beta1, _ = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self._init(p)
                state["step"] += 1
                p.mul_(1 - group["lr"] * group["weight_decay"])
                state["exp_avg"].mul_(beta1).add_(p.grad, alpha=1 - beta1)
                ratio = (state["exp_avg"].abs() / (group["rho"] * bs * state["hessian"] + 1e-15)).clamp(None, 1)
                p.addcmul_(state["exp_avg"].sign(), ratio, value=-group["lr"])


def adaptive_case(store, name, kind, lrs, hessian_every=0, bs=5120, **hyper):
    torch.manual_seed(zlib.crc32(name.encode()) % 10000)
    params = [torch.nn.Parameter(torch.randn(shape)) for shape in SHAPES]
    for i, p in enumerate(params):
        store.put(f"{name}.init.{i}", p)
    if kind == "lion":
        betas = hyper.get("betas", (0.9, 0.99))
        optimizer = Lion(params, lr=lrs[0], betas=betas, weight_decay=hyper.get("weight_decay", 0.0))
        store.params(name, kind=2, beta1=betas[0], beta2=betas[1], weight_decay=hyper.get("weight_decay", 0.0))
    elif kind == "adan":
        betas = hyper.get("betas", (0.98, 0.92, 0.99))
        optimizer = Adan(params, lr=lrs[0], betas=betas, eps=hyper.get("eps", 1e-8),
                         weight_decay=hyper.get("weight_decay", 0.0), no_prox=hyper.get("no_prox", False))
        store.params(name, kind=3, beta1=betas[0], beta2=betas[1], beta3=betas[2], eps=hyper.get("eps", 1e-8),
                     weight_decay=hyper.get("weight_decay", 0.0), no_prox=int(hyper.get("no_prox", False)))
    else:
        betas = hyper.get("betas", (0.965, 0.99))
        optimizer = SophiaG(params, lr=lrs[0], betas=betas, rho=hyper.get("rho", 0.04),
                            weight_decay=hyper.get("weight_decay", 0.1))
        store.params(name, kind=4, beta1=betas[0], beta2=betas[1], rho=hyper.get("rho", 0.04),
                     weight_decay=hyper.get("weight_decay", 0.1), hessian_every=hessian_every, bs=bs)
    store.put(f"{name}.lr", torch.tensor(lrs, dtype=torch.float64))
    for step in range(STEPS):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        for i, p in enumerate(params):
            g = torch.randn(p.shape) * (10.0 ** (i - 1))
            g.view(-1)[0] *= 1e-4
            p.grad = g
            store.put(f"{name}.grad.{step}.{i}", g)
        if kind == "sophiag":
            optimizer.step(bs=bs)
            if hessian_every and step % hessian_every == hessian_every - 1:
                saved = [p.grad for p in params]
                for i, p in enumerate(params):
                    h = torch.randn(p.shape) * 0.3
                    p.grad = h
                    store.put(f"{name}.hess_grad.{step}.{i}", h)
                optimizer.update_hessian()
                for p, g in zip(params, saved):
                    p.grad = g
        else:
            optimizer.step()
        for i, p in enumerate(params):
            store.put(f"{name}.after.{step}.{i}", p)


def make_adaptive():
    store = Store()
    varying = [1e-3, 5e-4, 2e-3, 1e-3, 1e-4]
    adaptive_case(store, "lion_plain", "lion", [1e-2] * STEPS)
    adaptive_case(store, "lion_decay_betas", "lion", varying, betas=(0.95, 0.98), weight_decay=0.5)
    adaptive_case(store, "adan_plain", "adan", [1e-2] * STEPS)
    adaptive_case(store, "adan_prox_decay", "adan", varying, weight_decay=0.02)
    adaptive_case(store, "adan_no_prox", "adan", varying, betas=(0.9, 0.9, 0.95), weight_decay=0.05, no_prox=True)
    adaptive_case(store, "sophiag_plain", "sophiag", [1e-2] * STEPS, hessian_every=1)
    adaptive_case(store, "sophiag_every2", "sophiag", varying, hessian_every=2, bs=64, rho=0.05, weight_decay=0.2)
    store.save("adaptive.safetensors")


if __name__ == "__main__":
    os.makedirs(FIXTURES, exist_ok=True)
    make_fused()
    make_adaptive()
