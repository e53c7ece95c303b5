#!/usr/bin/env python3
"""Builds Tests/CollieModelsTests/Fixtures/<variant>/: tiny random Hugging Face models and what
transformers + torch.optim.AdamW compute with them, for Tests/CollieModelsTests/HuggingFaceParityTests.swift.

Run by hand (never by CI) from the repository root, with PyTorch, transformers (>= 5) and
safetensors installed:

    python3 scripts/make_model_fixtures.py

Every variant is built with transformers' own classes (LlamaForCausalLM, MistralForCausalLM,
Qwen2ForCausalLM), eager attention, float32, a fixed seed, and weights re-initialized with a
large spread (projections N(0, 0.2²), embeddings and lm_head N(0, 0.3²), biases N(0, 0.1²), norm weights
U(0.6, 1.4)) so that the logits are far from uniform. Each folder holds what `save_pretrained`
writes (config.json, generation_config.json, model.safetensors) plus expected.safetensors:

    input_ids         [2, 12] int64
    labels            [2, 12] int64, with some -100 (and -100 at padded positions)
    attention_mask    [2, 12] int64, only in variants with padding (row 0 left-padded)
    logits            [2, 12, V] float32, model(input_ids, attention_mask).logits
    loss              [] float32, the model's own loss (shifted mean cross-entropy, -100 ignored)
    grad.<hf key>     d loss / d parameter, for every parameter (named_parameters(): a tied
                      lm_head is listed once, as model.embed_tokens.weight)
    adamw.losses      [3] float32: the losses of three torch.optim.AdamW steps (lr 1e-2, betas
                      (0.9, 0.999), eps 1e-8, weight_decay 0.01) on the same batch, each loss
                      computed before its step
    param.<hf key>    every parameter after those three steps

The "bf16" variant is saved in bfloat16 (model.to(torch.bfloat16).save_pretrained); its expected
logits and loss are computed in float32 from the bf16-rounded weights, and it has no gradients or
AdamW values. The "llama_rope_linear_hub" variant's config.json is rewritten after saving in the
hub style (top-level rope_theta + rope_scaling with the legacy "type" key) instead of
transformers 5's rope_parameters; the script reloads every folder with from_pretrained and checks
the logits reproduce, so the rewritten config is one transformers itself reads the same way.
"""

import copy
import json
import math
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieModelsTests", "Fixtures")
VOCAB, BATCH, LENGTH = 96, 2, 12
ADAMW = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)

COMMON = dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=64, bos_token_id=1,
              eos_token_id=2)


def variants():
    """(name, model class, config class, config kwargs, options)."""
    llama, mistral, qwen2 = (LlamaForCausalLM, LlamaConfig), (MistralForCausalLM, MistralConfig), \
        (Qwen2ForCausalLM, Qwen2Config)
    return [
        ("llama_mha", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                   num_key_value_heads=4, rms_norm_eps=1e-6), {}),
        ("llama_gqa", *llama, dict(hidden_size=48, intermediate_size=64, num_attention_heads=6,
                                   num_key_value_heads=2, rms_norm_eps=1e-5,
                                   rope_parameters={"rope_type": "default", "rope_theta": 500000.0}), {}),
        ("llama_mqa", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                   num_key_value_heads=1), {}),
        ("llama_tied", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                    num_key_value_heads=2, tie_word_embeddings=True), {}),
        # head_dim 16: with theta 1e4 the wavelengths 2π/inv_freq are 6.3, 19.9, 62.8, ...; with
        # original_max_position_embeddings 32, low 1, high 4 the bands are < 8 (kept), 8...32
        # (smoothly interpolated) and > 32 (divided by 8): all three occur (asserted below).
        ("llama_rope_llama3", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                                           num_key_value_heads=1,
                                           rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0,
                                                            "factor": 8.0, "low_freq_factor": 1.0,
                                                            "high_freq_factor": 4.0,
                                                            "original_max_position_embeddings": 32}), {}),
        ("llama_rope_linear_hub", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                               num_key_value_heads=2,
                                               rope_parameters={"rope_type": "linear", "rope_theta": 500000.0,
                                                                "factor": 2.0}),
         {"hub_config": {"rope_theta": 500000.0, "rope_scaling": {"type": "linear", "factor": 2.0}}}),
        ("llama_bias", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                    num_key_value_heads=2, attention_bias=True, mlp_bias=True), {}),
        ("llama_padded", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                      num_key_value_heads=2, pad_token_id=0), {"pad": 4}),
        ("qwen2", *qwen2, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                               num_key_value_heads=2, rope_parameters={"rope_type": "default",
                                                                       "rope_theta": 1000000.0}), {}),
        # head_dim 16 given explicitly (hidden 32 / 4 heads would be 8); window 5 < 12 tokens.
        ("mistral_sliding_window", *mistral, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                                                  num_key_value_heads=2, head_dim=16, sliding_window=5), {}),
        ("bf16", *llama, dict(hidden_size=32, intermediate_size=64, num_attention_heads=4,
                              num_key_value_heads=2), {"bf16": True}),
    ]


def randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.6, 1.4)
            elif name.endswith(".bias"):
                p.normal_(0, 0.1)
            elif "embed_tokens" in name or "lm_head" in name:
                p.normal_(0, 0.3)
            else:
                p.normal_(0, 0.2)


def batch(generator: torch.Generator, pad: int):
    ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=generator)
    labels = ids.clone()
    labels[1, 2] = -100
    labels[1, 7] = -100
    labels[0, 9] = -100
    mask = None
    if pad:
        # Row 0 left-padded: pad tokens (id 0) masked out and ignored in the loss, as is the first
        # real token (it is predicted from a padded position, whose output is meaningless).
        ids[0, :pad] = 0
        labels[0, :pad + 1] = -100
        mask = torch.ones(BATCH, LENGTH, dtype=torch.int64)
        mask[0, :pad] = 0
    return ids, labels, mask


def forward(model, ids, labels, mask):
    return model(input_ids=ids, attention_mask=mask, labels=labels)


def check_llama3_bands(model) -> None:
    c = model.config.rope_parameters
    d = model.config.head_dim
    inv = 1 / c["rope_theta"] ** (torch.arange(0, d, 2, dtype=torch.float64) / d)   # before scaling
    wavelength = 2 * math.pi / inv
    low, high = c["original_max_position_embeddings"] / c["low_freq_factor"], \
        c["original_max_position_embeddings"] / c["high_freq_factor"]
    bands = {"kept": int((wavelength < high).sum()), "scaled": int((wavelength > low).sum())}
    bands["smoothed"] = len(inv) - bands["kept"] - bands["scaled"]
    assert all(v > 0 for v in bands.values()), bands
    print(f"    llama3 frequency bands: {bands}")


def make(name, model_class, config_class, kwargs, options, seed):
    torch.manual_seed(seed)
    config = config_class(**COMMON, **kwargs)
    config._attn_implementation = "eager"
    model = model_class(config).float()
    assert model.config._attn_implementation == "eager"
    randomize(model)
    if model.config.tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    if options.get("bf16"):
        # Round the parameters (only: the rotary inv_freq buffer stays float32, as in a fresh load).
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(torch.bfloat16).float())
    model.train()   # dropout is 0; train() only matters for AdamW below

    folder = os.path.join(ROOT, name)
    shutil.rmtree(folder, ignore_errors=True)
    if options.get("bf16"):
        copy.deepcopy(model).to(torch.bfloat16).save_pretrained(folder, safe_serialization=True)
    else:
        model.save_pretrained(folder, safe_serialization=True)
    if "hub_config" in options:
        path = os.path.join(folder, "config.json")
        with open(path) as f:
            saved = json.load(f)
        saved.pop("rope_parameters")
        saved.update(options["hub_config"])
        with open(path, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
            f.write("\n")

    generator = torch.Generator().manual_seed(seed + 1)
    ids, labels, mask = batch(generator, options.get("pad", 0))
    expected = {"input_ids": ids, "labels": labels}
    if mask is not None:
        expected["attention_mask"] = mask

    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out = forward(model, ids, labels, mask)
    expected["logits"] = out.logits.detach()
    expected["loss"] = out.loss.detach()
    if not options.get("bf16"):
        out.loss.backward()
        for key, p in model.named_parameters():
            expected[f"grad.{key}"] = p.grad.detach().clone()

        model.load_state_dict(initial)
        model.zero_grad(set_to_none=True)
        optimizer = torch.optim.AdamW(model.parameters(), **ADAMW)
        losses = []
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            loss = forward(model, ids, labels, mask).loss
            losses.append(loss.detach())
            loss.backward()
            optimizer.step()
        expected["adamw.losses"] = torch.stack(losses)
        for key, p in model.named_parameters():
            expected[f"param.{key}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))

    # What was written reproduces the logits when transformers loads it back (this checks the
    # rewritten hub-style config too).
    reloaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    with torch.no_grad():
        again = reloaded(input_ids=ids, attention_mask=mask).logits
    keep = (mask if mask is not None else torch.ones_like(ids)).bool()
    diff = (again - expected["logits"])[keep].abs().max().item()
    assert diff == 0, f"{name}: reloaded logits differ by {diff}"
    if name == "llama_rope_llama3":
        check_llama3_bands(reloaded)
    if name == "mistral_sliding_window":
        # The window must matter: the same weights without it give different logits.
        config.sliding_window = None
        unwindowed = MistralForCausalLM(config)
        unwindowed.load_state_dict(initial)
        with torch.no_grad():
            plain = unwindowed(input_ids=ids).logits
        assert (plain - expected["logits"]).abs().max() > 1e-2, "sliding window has no effect"
    logits = expected["logits"][keep]
    print(f"{name:24s} loss {expected['loss'].item():.4f} (uniform {math.log(VOCAB):.4f}), "
          f"logit std {logits.std().item():.2f}, max |logit| {logits.abs().max().item():.2f}"
          + (f", AdamW losses {[round(x.item(), 4) for x in expected['adamw.losses']]}"
             if "adamw.losses" in expected else ""))


def main():
    transformers.utils.logging.disable_progress_bar()
    os.makedirs(ROOT, exist_ok=True)
    for seed, variant in enumerate(variants()):
        make(*variant, seed=1000 + 17 * seed)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(ROOT) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB in {ROOT}")


if __name__ == "__main__":
    main()
