#!/usr/bin/env python3
"""Builds Tests/CollieModelsTests/Fixtures/peft/: adapters saved by PEFT itself and what PEFT computes with
them, for Tests/CollieModelsTests/PEFTParityTests.swift.

Run by hand (never by CI) from the repository root, with torch, transformers (>= 5), peft (0.21) and
safetensors installed, after scripts/make_model_fixtures.py (the base model is its "llama_padded"
fixture: LLaMA, hidden 32, 4 heads / 2 KV heads, 2 layers, vocabulary 96):

    python3 scripts/make_peft_fixtures.py

Each adapter folder is exactly what `PeftModel.save_pretrained` writes (adapter_config.json +
adapter_model.safetensors, PEFT's key names); `base_model_name_or_path` is rewritten to the base
fixture's folder name so the folders do not record this machine's paths.

    lora/            LoraConfig(r=4, lora_alpha=8, target_modules=[q,k,v,o,gate,up,down]_proj)
    lora_regex/      LoraConfig(r=2, lora_alpha=3, use_rslora=True, target_modules=r".*\\.(k_proj|down_proj)")
    prompt/          PromptTuningConfig(num_virtual_tokens=3, prompt_tuning_init=RANDOM)

LoRA's B matrices are drawn nonzero (PEFT initializes them to zero, which would hide B·A). Per adapter,
<name>.safetensors holds:

    input_ids        [2, 10] int64 (row 0 left-padded with 3 pad tokens (LoRA) / row 1 right-padded (prompt))
    attention_mask   [2, 10] int64
    labels           [2, 10] int64; -100 at padding and a few other places. For prompt tuning labels[:, 0]
                     are real tokens, so the last virtual token's prediction counts in the loss.
    logits           PeftModel(input_ids, attention_mask).logits: [2, 10, V] for LoRA, [2, 3 + 10, V] for
                     prompt tuning (virtual positions first)
    loss             the PeftModel's loss with `labels` (PEFT prepends -100 labels for virtual tokens)
    grad.<key>       d loss / d adapter parameter, keyed as in adapter_model.safetensors
    merged.<key>     (LoRA) base weights after `merge_adapter()`: W + scaling · B·A as PEFT computes it,
                     keyed by the base model's names (model.layers.0.self_attn.q_proj.weight)
    merged_logits    (LoRA) logits of the merged model (a merged PEFT layer runs its base layer only)
"""

import os
import shutil
import json

import torch
from peft import LoraConfig, PeftModel, PromptTuningConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieModelsTests", "Fixtures")
BASE = "llama_padded"
OUT = os.path.join(ROOT, "peft")
BATCH, LENGTH, VOCAB = 2, 10, 96
ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def base_model():
    model = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, BASE), attn_implementation="eager",
                                             dtype=torch.float32)
    model.train()   # dropout is 0 everywhere
    return model


def batch(seed, left_pad, right_pad):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (BATCH, LENGTH), generator=generator)
    labels = ids.clone()
    labels[0, 6] = -100
    labels[1, 3] = -100
    mask = torch.ones(BATCH, LENGTH, dtype=torch.int64)
    if left_pad:
        ids[0, :left_pad] = 0
        mask[0, :left_pad] = 0
        labels[0, :left_pad + 1] = -100
    if right_pad:
        ids[1, LENGTH - right_pad:] = 0
        mask[1, LENGTH - right_pad:] = 0
        labels[1, LENGTH - right_pad:] = -100
    return ids, mask, labels


def rewrite_base_name(folder):
    os.remove(os.path.join(folder, "README.md"))   # PEFT's model card; nothing Collie reads
    path = os.path.join(folder, "adapter_config.json")
    with open(path) as f:
        config = json.load(f)
    config["base_model_name_or_path"] = BASE
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")


def saved_key(name):
    """PEFT's saved key for a parameter name of the PeftModel (adapter name removed)."""
    return name.replace(".default", "")


def make_lora(name, config, seed):
    torch.manual_seed(seed)
    model = get_peft_model(base_model(), config)
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "lora_A" in key or "lora_B" in key:
                p.normal_(0, 0.3)
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    rewrite_base_name(folder)

    ids, mask, labels = batch(seed + 1, left_pad=3, right_pad=0)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    expected = {"input_ids": ids, "attention_mask": mask, "labels": labels,
                "logits": out.logits.detach(), "loss": out.loss.detach()}
    trainable = 0
    for key, p in model.named_parameters():
        if p.requires_grad:
            trainable += 1
            assert "lora_" in key, key
            expected["grad." + saved_key(key)] = p.grad.detach().clone()
        else:
            assert p.grad is None, key
    with torch.no_grad():
        model.merge_adapter()
        base = model.get_base_model()
        for key, p in base.named_parameters():
            if key.endswith(".base_layer.weight"):
                expected["merged." + key.replace(".base_layer", "")] = p.detach().clone()
        assert all(m.merged for m in model.modules() if hasattr(m, "merged") and hasattr(m, "lora_A"))
        expected["merged_logits"] = model(input_ids=ids, attention_mask=mask).logits.detach()   # base layers only
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(OUT, name + ".safetensors"))
    print(f"{name}: loss {out.loss.item():.6f}, {trainable} adapter tensors, "
          f"{sum(k.startswith('merged.') for k in expected)} merged weights")


def make_prompt(name, seed):
    torch.manual_seed(seed)
    base = base_model()
    config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, prompt_tuning_init="RANDOM")
    model = get_peft_model(base, config)
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    rewrite_base_name(folder)

    ids, mask, labels = batch(seed + 1, left_pad=0, right_pad=3)
    assert (labels[:, 0] != -100).all()
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    expected = {"input_ids": ids, "attention_mask": mask, "labels": labels,
                "logits": out.logits.detach(), "loss": out.loss.detach()}
    for key, p in model.named_parameters():
        if p.requires_grad:
            assert key == "prompt_encoder.default.embedding.weight", key
            expected["grad.prompt_embeddings"] = p.grad.detach().clone()
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(OUT, name + ".safetensors"))
    print(f"{name}: loss {out.loss.item():.6f}, logits {tuple(out.logits.shape)}")


def main():
    os.makedirs(OUT, exist_ok=True)
    make_lora("lora", LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ALL, task_type="CAUSAL_LM"), 7)
    make_lora("lora_regex", LoraConfig(r=2, lora_alpha=3, lora_dropout=0.0, use_rslora=True,
                                       target_modules=r".*\.(k_proj|down_proj)", task_type="CAUSAL_LM"), 8)
    make_prompt("prompt", 9)


if __name__ == "__main__":
    main()
