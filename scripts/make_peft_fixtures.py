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

It also writes Tests/CollieTrainerTests/Fixtures/<case>/ for Tests/CollieTrainerTests/PEFTTrainingTests.swift:
the trainer fixtures' AdamW run (scripts/make_trainer_fixtures.py: its model, records, hand loop mirroring
transformers' Trainer, micro-batch 2, accumulation 2, 2 epochs, clipping 0.5, warm-up + cosine) with a PEFT
adapter on the frozen model, the optimizer seeing every parameter as transformers' does (frozen ones have no
gradient and are skipped):

    lora_adamw/      LoRA r 4, alpha 8, on q_proj, v_proj, down_proj (B drawn nonzero)
    prompt_adamw/    prompt tuning, 3 virtual tokens (lr 0.1)

each with config.yaml (the Collie config, with peft_config), initial_adapter/ (the adapter before training, as
PEFT saves it; the test loads it over Collie's own initialization) and expected.safetensors: losses and
grad_norms per update, eval_loss_before / eval_loss_after, and param.<adapter key> after training.
"""

import copy
import json
import os
import shutil
import sys

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


def peft_eval_loss(model, records, trainer_fixtures):
    """Mean NLL per predicted token over the set, batches of 2 (labels[..., 1:] != -100 counted)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(records), 2):
            batch = trainer_fixtures.collate(records[start:start + 2])
            n = int((batch["labels"][:, 1:] != -100).sum())
            total += float(model(**batch).loss) * n
            count += n
    return total / count


def make_training(name, peft_config, settings, seed):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import make_trainer_fixtures as tf
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieTrainerTests", "Fixtures")
    folder = os.path.join(root, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    records = [json.loads(line) for line in open(os.path.join(root, "train.jsonl"))]
    evaluation = [json.loads(line) for line in open(os.path.join(root, "eval.jsonl"))]
    torch.manual_seed(seed)
    base = LlamaForCausalLM.from_pretrained(os.path.join(root, "model"), attn_implementation="eager").float()
    model = get_peft_model(base, copy.deepcopy(peft_config))
    with torch.no_grad():
        for key, p in model.named_parameters():
            if "lora_B" in key:
                p.normal_(0, 0.1)
    model.save_pretrained(os.path.join(folder, "initial_adapter"))
    rewrite_base_name(os.path.join(folder, "initial_adapter"))

    yaml_config = {
        "model": "../model", "train_data": "../train.jsonl", "eval_data": "../eval.jsonl",
        "record_format": "tokens", "shuffle": False, "seed": 0,
        "train_epochs": tf.EPOCHS, "train_micro_batch_size": tf.MICRO,
        "gradient_accumulation_steps": tf.ACCUMULATION, "eval_batch_size": 2, "eval_on_start": True,
        "eval_per_n_epochs": tf.EPOCHS, "optimizer": settings["optimizer"],
        "lr_scheduler": {"type": "cosine", "warmup_steps": tf.WARMUP}, "max_grad_norm": tf.MAX_NORM,
        "output_dir": "output", "monitor_outputs": [], "peft_config": settings["peft_config"],
    }
    import yaml
    with open(os.path.join(folder, "config.yaml"), "w") as f:
        f.write(f"# {name}: written by scripts/make_peft_fixtures.py (tokenizer given by the test)\n")
        yaml.safe_dump(yaml_config, f, sort_keys=False)

    before = peft_eval_loss(model, evaluation, tf)
    losses, norms, rates = tf.hand_loop(model, records, settings)
    after = peft_eval_loss(model, evaluation, tf)
    tensors = {"losses": torch.tensor(losses, dtype=torch.float32),
               "grad_norms": torch.tensor(norms, dtype=torch.float32),
               "learning_rates": torch.tensor(rates, dtype=torch.float64),
               "eval_loss_before": torch.tensor(before, dtype=torch.float64),
               "eval_loss_after": torch.tensor(after, dtype=torch.float64)}
    for key, p in model.named_parameters():
        if p.requires_grad:
            key = "prompt_embeddings" if "prompt_encoder" in key else saved_key(key)
            tensors["param." + key] = p.detach().contiguous()
        else:
            assert p.grad is None
    save_file(tensors, os.path.join(folder, "expected.safetensors"))
    print(f"{name}: losses {[round(x, 4) for x in losses]}, norms {[round(x, 3) for x in norms]}, "
          f"eval {before:.4f} → {after:.4f}")


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    make_lora("lora", LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=ALL, task_type="CAUSAL_LM"), 7)
    make_lora("lora_regex", LoraConfig(r=2, lora_alpha=3, lora_dropout=0.0, use_rslora=True,
                                       target_modules=r".*\.(k_proj|down_proj)", task_type="CAUSAL_LM"), 8)
    make_prompt("prompt", 9)
    adamw = dict(name="adamw", lr=1.0e-2, betas=[0.9, 0.95], eps=1.0e-8, weight_decay=0.1)
    targets = ["q_proj", "v_proj", "down_proj"]
    make_training("lora_adamw", LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                                           task_type="CAUSAL_LM"),
                  dict(optimizer=adamw, peft_config=dict(peft_type="LORA", r=4, lora_alpha=8, target_modules=targets)),
                  10)
    make_training("prompt_adamw", PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3),
                  dict(optimizer=dict(adamw, lr=0.1),
                       peft_config=dict(peft_type="PROMPT_TUNING", num_virtual_tokens=3)), 11)


if __name__ == "__main__":
    main()
