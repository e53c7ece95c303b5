#!/usr/bin/env python3
"""Builds Tests/CollieEngineTests/Fixtures/ops.safetensors: PyTorch reference values for the
golden tests in Tests/CollieEngineTests/GoldenTests.swift and AttentionGoldenTests.swift.

Run by hand (never by CI) from the repository root:

    python3 scripts/make_engine_fixtures.py

Every case `name` stores, in one safetensors file:

    name.<input>        the inputs (float32; integer inputs as int64)
    name.out            the op's output (name.out0, name.out1, ... when the op returns several)
    name.gout           a fixed random upstream gradient of the output's shape (gout0, gout1, ...)
    name.grad.<input>   d/d<input> of loss = sum(out * gout), for every float input marked
                        differentiable
    name.p.<param>      the case's scalar parameters (exponents, epsilons, axes, sizes, ...)
                        as 0-d float64 / int64 tensors (1-d for lists), so the Swift test reads
                        the same values instead of repeating them.

Tensors in the Swift layout: attention inputs and outputs are saved as [B, T, H, D], not
PyTorch's [B, H, T, D]; RoPE inputs likewise as [B, T, H, D].

Transformers is not a dependency: the reference formulas (LlamaRMSNorm, rotate_half /
apply_rotary_pos_emb, LlamaRotaryEmbedding's inv_freq and cos/sin, GPT-J's rotate_every_two)
are transcribed below from transformers' modeling_llama.py and modeling_gptj.py.
"""

import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                   "Tests", "CollieEngineTests", "Fixtures", "ops.safetensors")

torch.manual_seed(20240611)
tensors: dict[str, torch.Tensor] = {}


def put(key: str, value: torch.Tensor) -> None:
    assert key not in tensors, f"duplicate key {key}"
    tensors[key] = value.detach().contiguous().clone()


def params(name: str, **values) -> None:
    for key, v in values.items():
        if isinstance(v, bool):
            put(f"{name}.p.{key}", torch.tensor(int(v), dtype=torch.int64))
        elif isinstance(v, int):
            put(f"{name}.p.{key}", torch.tensor(v, dtype=torch.int64))
        elif isinstance(v, float):
            put(f"{name}.p.{key}", torch.tensor(v, dtype=torch.float64))
        elif isinstance(v, (list, tuple)):
            put(f"{name}.p.{key}", torch.tensor(list(v), dtype=torch.int64))
        else:
            raise TypeError(key)


def case(name: str, inputs: dict, fn, differentiable=None, **scalars) -> None:
    """Runs fn(**inputs) with the float inputs (or those in `differentiable`) requiring grad,
    backpropagates sum(out * gout), and stores everything under `name.`."""
    leaves = {}
    for key, t in inputs.items():
        put(f"{name}.{key}", t)
        wants = t.is_floating_point() if differentiable is None else key in differentiable
        leaves[key] = t.detach().clone().requires_grad_(wants)
    result = fn(**leaves)
    outs = list(result) if isinstance(result, (list, tuple)) else [result]
    suffix = (lambda i: "") if len(outs) == 1 else (lambda i: str(i))
    loss = 0
    for i, out in enumerate(outs):
        put(f"{name}.out{suffix(i)}", out)
        if out.is_floating_point() and out.requires_grad:
            gout = torch.randn(out.shape, dtype=out.dtype)
            put(f"{name}.gout{suffix(i)}", gout)
            loss = loss + (out * gout).sum()
    if isinstance(loss, torch.Tensor):
        loss.backward()
        for key, leaf in leaves.items():
            if leaf.requires_grad:
                assert leaf.grad is not None, f"{name}.{key} got no gradient"
                put(f"{name}.grad.{key}", leaf.grad)
    params(name, **scalars)


def randn(*shape, scale=1.0):
    return torch.randn(*shape) * scale


def uniform(*shape, low, high):
    return torch.rand(*shape) * (high - low) + low


# ---------------------------------------------------------------- unary elementwise, [3, 8]

case("exp", {"x": uniform(3, 8, low=-3, high=3)}, lambda x: torch.exp(x))
case("log", {"x": uniform(3, 8, low=0.1, high=4)}, lambda x: torch.log(x))
case("sqrt", {"x": uniform(3, 8, low=0.1, high=4)}, lambda x: torch.sqrt(x))
case("rsqrt", {"x": uniform(3, 8, low=0.1, high=4)}, lambda x: torch.rsqrt(x))
case("tanh", {"x": randn(3, 8, scale=2)}, lambda x: torch.tanh(x))
case("sigmoid", {"x": randn(3, 8, scale=3)}, lambda x: torch.sigmoid(x))
case("silu", {"x": randn(3, 8, scale=3)}, lambda x: F.silu(x))
case("gelu", {"x": randn(3, 8, scale=3)}, lambda x: F.gelu(x))
case("gelu_tanh", {"x": randn(3, 8, scale=3)}, lambda x: F.gelu(x, approximate="tanh"))
case("neg", {"x": randn(3, 8)}, lambda x: -x)
# Non-integer exponent on positive inputs.
case("pow", {"x": uniform(3, 8, low=0.2, high=3)}, lambda x: torch.pow(x, 2.5), exponent=2.5)
# Integer exponent on inputs of both signs (torch: x**2, (-x)**3 = -x**3, ...).
case("pow_int", {"x": randn(3, 8)}, lambda x: torch.pow(x, 3.0), exponent=3.0)
_cx = randn(3, 8, scale=2)
_cx[(_cx + 0.5).abs() < 1e-3] += 0.01   # keep clear of the bounds, where the derivative jumps
_cx[(_cx - 0.8).abs() < 1e-3] += 0.01
case("clamp", {"x": _cx}, lambda x: torch.clamp(x, min=-0.5, max=0.8), min=-0.5, max=0.8)
case("clamp_min", {"x": randn(3, 8)}, lambda x: torch.clamp(x, min=0.1), min=0.1)
_ax = randn(3, 8)
_ax[_ax.abs() < 1e-3] = 0.5
case("abs", {"x": _ax}, lambda x: torch.abs(x))

# ---------------------------------------------------------------- binary with broadcasting

for op, fn in [("add", torch.add), ("sub", torch.sub), ("mul", torch.mul), ("div", torch.div)]:
    def denominator(*shape):
        # Away from zero for div; harmless for the others.
        return uniform(*shape, low=0.5, high=2) * torch.where(torch.rand(*shape) < 0.5, -1.0, 1.0)
    case(f"{op}_same", {"a": randn(2, 3, 4), "b": denominator(2, 3, 4)}, lambda a, b, fn=fn: fn(a, b))
    case(f"{op}_row", {"a": randn(2, 3, 4), "b": denominator(4)}, lambda a, b, fn=fn: fn(a, b))
    case(f"{op}_mid", {"a": randn(2, 3, 4), "b": denominator(2, 1, 4)}, lambda a, b, fn=fn: fn(a, b))
    # Broadcasting on the left operand too: [3, 1] with [2, 1, 4] -> [2, 3, 4].
    case(f"{op}_both", {"a": denominator(3, 1), "b": denominator(2, 1, 4)}, lambda a, b, fn=fn: fn(a, b))

case("where", {"condition": (torch.rand(2, 3, 4) < 0.5).long(), "a": randn(2, 3, 4), "b": randn(4)},
     lambda condition, a, b: torch.where(condition.bool(), a, b))
case("masked_fill", {"x": randn(2, 3, 4), "mask": (torch.rand(3, 4) < 0.4).long()},
     lambda x, mask: x.masked_fill(mask.bool(), -2.5), value=-2.5)

# ---------------------------------------------------------------- reductions, [2, 5, 4]

case("sum", {"x": randn(2, 5, 4)}, lambda x: x.sum(dim=1), axis=1)
case("sum_keepdim", {"x": randn(2, 5, 4)}, lambda x: x.sum(dim=-1, keepdim=True), axis=-1)
case("mean", {"x": randn(2, 5, 4)}, lambda x: x.mean(dim=1), axis=1)
case("max", {"x": randn(2, 5, 4)}, lambda x: x.max(dim=1).values, axis=1)
case("logsumexp", {"x": randn(2, 5, 4, scale=3)}, lambda x: torch.logsumexp(x, dim=1), axis=1)
case("argmax", {"x": randn(2, 5, 4)}, lambda x: x.argmax(dim=1), differentiable=[], axis=1)
case("softmax_last", {"x": randn(2, 5, 6, scale=2)}, lambda x: F.softmax(x, dim=-1), axis=-1)
case("softmax_mid", {"x": randn(2, 5, 6, scale=2)}, lambda x: F.softmax(x, dim=1), axis=1)
case("log_softmax_last", {"x": randn(2, 5, 6, scale=2)}, lambda x: F.log_softmax(x, dim=-1), axis=-1)
case("log_softmax_mid", {"x": randn(2, 5, 6, scale=2)}, lambda x: F.log_softmax(x, dim=1), axis=1)

# ---------------------------------------------------------------- shape ops

case("reshape", {"x": randn(2, 3, 4)}, lambda x: x.reshape(4, 6), shape=[4, 6])
case("transpose", {"x": randn(2, 3, 4)}, lambda x: x.transpose(0, 2), axes=[0, 2])
case("permute", {"x": randn(2, 3, 4)}, lambda x: x.permute(2, 0, 1), order=[2, 0, 1])
# A view of a view: transpose, then reshape (which must copy).
case("transpose_reshape", {"x": randn(2, 3, 4)}, lambda x: x.transpose(1, 2).reshape(2, 12))
case("slice", {"x": randn(2, 5, 4)}, lambda x: x[:, 1:4], axis=1, start=1, end=4)
case("concat", {"a": randn(2, 3, 4), "b": randn(2, 2, 4), "c": randn(2, 1, 4)},
     lambda a, b, c: torch.cat([a, b, c], dim=1), axis=1)
case("split", {"x": randn(2, 5, 4)}, lambda x: torch.split(x, [2, 3], dim=1), sizes=[2, 3], axis=1)
case("index_select", {"x": randn(2, 5, 4), "indices": torch.tensor([3, 0, 3, 1], dtype=torch.int64)},
     lambda x, indices: torch.index_select(x, 1, indices), axis=1)
case("gather", {"x": randn(2, 5, 4), "indices": torch.randint(0, 5, (2, 3, 4), dtype=torch.int64)},
     lambda x, indices: torch.gather(x, 1, indices), axis=1)

# ---------------------------------------------------------------- matrix products

# The stored operand is what the Swift test loads; `.t()` makes the transposed view in both.
case("matmul_nn", {"a": randn(5, 6), "b": randn(6, 4)}, lambda a, b: a @ b)
case("matmul_tn", {"a": randn(6, 5), "b": randn(6, 4)}, lambda a, b: a.t() @ b)
case("matmul_nt", {"a": randn(5, 6), "b": randn(4, 6)}, lambda a, b: a @ b.t())
case("matmul_tt", {"a": randn(6, 5), "b": randn(4, 6)}, lambda a, b: a.t() @ b.t())
case("matmul_batched", {"a": randn(2, 5, 6), "b": randn(2, 6, 4)}, lambda a, b: torch.bmm(a, b))
case("matmul_batched_bt", {"a": randn(2, 5, 6), "b": randn(2, 4, 6)},
     lambda a, b: torch.bmm(a, b.transpose(1, 2)))
case("matmul_shared", {"a": randn(2, 5, 6), "b": randn(6, 4)}, lambda a, b: torch.matmul(a, b))
case("matmul_shared_at", {"a": randn(2, 6, 5), "b": randn(6, 4)},
     lambda a, b: torch.matmul(a.transpose(1, 2), b))

case("linear", {"x": randn(2, 5, 8), "weight": randn(6, 8, scale=0.3), "bias": randn(6)},
     lambda x, weight, bias: F.linear(x, weight, bias))
case("linear_nobias", {"x": randn(2, 5, 8), "weight": randn(6, 8, scale=0.3)},
     lambda x, weight: F.linear(x, weight))

# ---------------------------------------------------------------- normalization


def llama_rms_norm(hidden_states, weight, eps):
    # transformers LlamaRMSNorm.forward
    input_dtype = hidden_states.dtype
    hidden_states = hidden_states.to(torch.float32)
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    hidden_states = hidden_states * torch.rsqrt(variance + eps)
    return weight * hidden_states.to(input_dtype)


case("rms_norm", {"x": randn(2, 5, 16), "weight": 1 + randn(16, scale=0.2)},
     lambda x, weight: llama_rms_norm(x, weight, 1e-6), eps=1e-6)
case("layer_norm", {"x": randn(2, 5, 16, scale=2) + 0.5, "weight": 1 + randn(16, scale=0.2),
                    "bias": randn(16, scale=0.2)},
     lambda x, weight, bias: F.layer_norm(x, (16,), weight, bias, eps=1e-5), eps=1e-5)

# ---------------------------------------------------------------- rotary position embedding


def llama_inv_freq(dim, base):
    # transformers _compute_default_rope_parameters
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).to(dtype=torch.float) / dim))


def llama_cos_sin(inv_freq, position_ids):
    # transformers LlamaRotaryEmbedding.forward (attention_scaling = 1)
    inv_freq_expanded = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    position_ids_expanded = position_ids[:, None, :].float()
    freqs = (inv_freq_expanded.float() @ position_ids_expanded.float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, cos, sin, unsqueeze_dim=1):
    cos = cos.unsqueeze(unsqueeze_dim)
    sin = sin.unsqueeze(unsqueeze_dim)
    return (q * cos) + (rotate_half(q) * sin)


def rotate_every_two(x):
    # transformers modeling_gptj.rotate_every_two
    x1 = x[:, :, :, ::2]
    x2 = x[:, :, :, 1::2]
    x = torch.stack((-x2, x1), dim=-1)
    return x.flatten(-2)


def rope_case(name, head_dim, rotary_dim, base, layout, batch=2, seq=6, heads=3):
    # Per-sequence positions (the second sequence starts at 3) to exercise [B, T] tables.
    positions = torch.stack([torch.arange(seq), torch.arange(seq) + 3]).to(torch.int64)[:batch]
    inv_freq = llama_inv_freq(rotary_dim, base)
    cos, sin = llama_cos_sin(inv_freq, positions)          # [B, T, rotary_dim], halves repeated

    def fn(x, positions, inv_freq):
        # x is [B, T, H, D] (the Swift layout).
        rot, rest = x[..., :rotary_dim], x[..., rotary_dim:]
        if layout == "rotate_half":
            r = apply_rotary_pos_emb(rot.transpose(1, 2), cos, sin).transpose(1, 2)   # via [B, H, T, D]
        else:
            half = rotary_dim // 2
            c = torch.repeat_interleave(cos[..., :half][:, :, None, :], 2, 3)
            s = torch.repeat_interleave(sin[..., :half][:, :, None, :], 2, 3)
            r = (rot * c) + (rotate_every_two(rot) * s)
        return torch.cat([r, rest], dim=-1)

    case(name, {"x": randn(batch, seq, heads, head_dim), "positions": positions, "inv_freq": inv_freq},
         fn, differentiable=["x"], rotary_dim=rotary_dim)
    # The half tables Swift's rotaryTables returns: [B, T, rotary_dim / 2].
    put(f"{name}.cos", cos[..., : rotary_dim // 2])
    put(f"{name}.sin", sin[..., : rotary_dim // 2])


rope_case("rope_half", head_dim=8, rotary_dim=8, base=10000.0, layout="rotate_half")
rope_case("rope_half_partial", head_dim=12, rotary_dim=8, base=10000.0, layout="rotate_half")
rope_case("rope_interleaved", head_dim=8, rotary_dim=8, base=10000.0, layout="interleaved")
rope_case("rope_interleaved_partial", head_dim=10, rotary_dim=6, base=500000.0, layout="interleaved")

# ---------------------------------------------------------------- MLP, loss, embedding

case("swiglu", {"gate": randn(2, 5, 8, scale=2), "up": randn(2, 5, 8)}, lambda gate, up: F.silu(gate) * up)

_targets = torch.randint(0, 50, (2, 6), dtype=torch.int64)
_targets[0, 1] = -100
_targets[1, 4] = -100
_targets[1, 5] = -100
for reduction in ["mean", "sum"]:
    case(f"cross_entropy_{reduction}", {"logits": randn(2, 6, 50, scale=2), "targets": _targets.clone()},
         lambda logits, targets, reduction=reduction: F.cross_entropy(
             logits.reshape(-1, 50), targets.reshape(-1), ignore_index=-100, reduction=reduction),
         ignore_index=-100)

_ids = torch.randint(0, 50, (2, 5), dtype=torch.int64)
_ids[1, 3] = _ids[0, 0]   # a repeated id: its gradient rows add up
case("embedding", {"ids": _ids, "weight": randn(50, 8)}, lambda ids, weight: F.embedding(ids, weight))

# ---------------------------------------------------------------- 16-bit conversions


def f32(bits):
    return torch.tensor([bits], dtype=torch.int32).view(torch.float32).item()


special = [
    0.0, -0.0, 1.0, -1.0, 0.1, -3.14159, 1e-3,
    1 + 2 ** -8,                 # bf16 tie: rounds down to the even 1.0
    1 + 3 * 2 ** -8,             # bf16 tie: rounds up to the even 1 + 2**-6
    1 + 2 ** -8 + 2 ** -20,      # just above a bf16 tie
    1 + 2 ** -11,                # fp16 tie: rounds to even 1.0
    1 + 3 * 2 ** -11,            # fp16 tie: rounds up
    f32(0x00000001),             # smallest float32 subnormal
    f32(0x00400000),             # a float32 subnormal
    f32(0x007FFFFF),             # largest float32 subnormal (bf16 rounds it up to the smallest normal)
    f32(0x00800000),             # smallest float32 normal
    f32(0x7F7FFFFF),             # largest float32 (bf16: rounds to +inf)
    -f32(0x7F7FFFFF),
    f32(0x7F7F7FFF),             # largest float32 that stays finite in bf16
    3.0e38, 1e20, -1e20,
    65504.0, 65519.0, 65520.0, 1e5, -1e5,     # fp16 max, just below / at its rounding-to-inf edge
    6.0e-8, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 1e-5, 6.1e-5,   # fp16 subnormals and ties
    float("inf"), float("-inf"),
]
nan_values = [float("nan"), f32(0x7FC00001), -float("nan")]
values = torch.tensor(special + nan_values, dtype=torch.float32)
values = torch.cat([values, torch.randn(40) * torch.logspace(-30, 30, 40)])
put("bf16.x", values)
put("bf16.bits", values.to(torch.bfloat16))          # stored as BF16: the bit patterns themselves
put("bf16.roundtrip", values.to(torch.bfloat16).to(torch.float32))
put("fp16.x", values)
put("fp16.bits", values.to(torch.float16))
put("fp16.roundtrip", values.to(torch.float16).to(torch.float32))

# ---------------------------------------------------------------- attention


def sdpa_case(name, batch, queries, keys, heads, kv_heads, dim, causal, padding=None, scale=None):
    q = randn(batch, queries, heads, dim)
    k = randn(batch, keys, kv_heads, dim)
    v = randn(batch, keys, kv_heads, dim)
    inputs = {"query": q, "key": k, "value": v}
    if padding is not None:
        inputs["mask"] = padding

    def fn(query, key, value, mask=None):
        # Swift layout [B, T, H, D] -> torch's [B, H, T, D]; GQA by repeating each KV head.
        qh = query.transpose(1, 2)
        kh = key.transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
        vh = value.transpose(1, 2).repeat_interleave(heads // kv_heads, dim=1)
        attn_mask = None
        is_causal = causal
        if mask is not None:
            attn_mask = mask.bool()[:, None, None, :].expand(batch, 1, queries, keys)
            if causal:  # torch refuses is_causal with an explicit mask: fold the causal part in.
                attn_mask = attn_mask & torch.ones(queries, keys, dtype=torch.bool).tril()
                is_causal = False
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask, is_causal=is_causal, scale=scale)
        return out.transpose(1, 2)

    extra = {} if scale is None else {"scale": scale}
    case(name, inputs, fn, differentiable=["query", "key", "value"], causal=causal, **extra)


sdpa_case("sdpa_causal", batch=2, queries=7, keys=7, heads=2, kv_heads=2, dim=8, causal=True)
sdpa_case("sdpa_gqa", batch=2, queries=6, keys=6, heads=4, kv_heads=2, dim=8, causal=True)
# Right padding: every query keeps at least one key.
_pad = torch.ones(2, 7, dtype=torch.int64)
_pad[1, 5:] = 0
_pad[0, 2] = 0
sdpa_case("sdpa_padding", batch=2, queries=5, keys=7, heads=2, kv_heads=1, dim=8, causal=False, padding=_pad)
_pad2 = torch.ones(2, 6, dtype=torch.int64)
_pad2[1, 4:] = 0
sdpa_case("sdpa_causal_padding_scale", batch=2, queries=6, keys=6, heads=4, kv_heads=2, dim=8, causal=True,
          padding=_pad2, scale=0.2)

save_file(tensors, OUT)
size = os.path.getsize(OUT)
print(f"wrote {len(tensors)} tensors, {size} bytes to {os.path.normpath(OUT)}")
assert size < 2 * 1024 * 1024
