#!/usr/bin/env python3
"""Builds Tests/CollieTrainerTests/Fixtures/: a tiny LLaMA, a pre-tokenized dataset, and what training it for a
few steps computes in transformers + torch, for Tests/CollieTrainerTests/TrainerParityTests.swift.

Run by hand (never by CI) from the repository root, with PyTorch, transformers (>= 5), accelerate,
safetensors and PyYAML installed:

    python3 scripts/make_trainer_fixtures.py

What it writes:

    model/            a random LlamaForCausalLM (vocab 64, hidden 32, 2 layers, 4 heads, 2 KV heads,
                      initializer_range 0.1), saved with save_pretrained: the starting point
    train.jsonl       10 records {"tokens", "labels"} (labels −100 on a "prompt" prefix of some)
    eval.jsonl        3 such records
    <case>/config.yaml            the Collie config of the run (tokenizer given by the test: LLaMA-2's, for
                                  its pad id 2 = EOS; ids here are < 64)
    <case>/expected.safetensors   losses [S] f32 (per update), grad_norms [S] f32 (before clipping),
                                  learning_rates [S] f64, eval_loss_before / eval_loss_after [] f64 (mean NLL
                                  per predicted eval token), probe_input_ids [2, 12] i64 and probe_logits
                                  [2, 12, 64] f32 of the trained model, param.<key> for every trained parameter

Cases: `adamw` (AdamW β (0.9, 0.95), weight decay 0.1) and `sgd` (momentum 0.9, weight decay 0.01); both with
micro-batch 2, gradient accumulation 2, 2 epochs, no shuffle (5 micro-batches per epoch → updates of 2, 2, 1
micro-batches: 6 updates), max_grad_norm 0.5, warm-up 2 steps + cosine.

The reference is a hand loop that mirrors transformers 5's `Trainer._inner_training_loop` step for step:
micro-batches grouped by gradient_accumulation_steps within an epoch (a short group at the epoch's end),
`num_items_in_batch` = labels[..., 1:] ≠ −100 over the group, passed to the model so each micro-batch's loss is
sum NLL / num_items_in_batch, backward per micro-batch, `clip_grad_norm_`, `optimizer.step()`,
`lr_scheduler.step()` (LambdaLR from `get_cosine_schedule_with_warmup`), `zero_grad()`. Optimizers are
torch.optim.AdamW / SGD with foreach=False over every parameter (transformers' default optimizer would leave
norm weights undecayed and use the fused kernel; Collie, like CoLLiE, decays every parameter). The script then
runs transformers' real `Trainer` (sequential sampler, the same optimizer and scheduler passed in) and asserts
that it reaches the same parameters as the hand loop (max |Δ| ≤ 1e-6), so the fixture is what the Trainer does.
"""

import json
import math
import os
import shutil

import torch
import yaml
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, get_cosine_schedule_with_warmup

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieTrainerTests", "Fixtures")
VOCAB, PAD = 64, 2
MICRO, ACCUMULATION, EPOCHS, WARMUP, MAX_NORM = 2, 2, 2, 2, 0.5

CASES = {
    "adamw": dict(optimizer=dict(name="adamw", lr=1.0e-2, betas=[0.9, 0.95], eps=1.0e-8, weight_decay=0.1)),
    "sgd": dict(optimizer=dict(name="sgd", lr=0.5, momentum=0.9, weight_decay=0.01)),
}


def make_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         rms_norm_eps=1e-6, initializer_range=0.1, bos_token_id=1, eos_token_id=2,
                         tie_word_embeddings=False, attn_implementation="eager")
    model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.8, 1.2)
    return model


def make_records(count, generator):
    records = []
    for i in range(count):
        n = int(torch.randint(4, 17, (1,), generator=generator))
        tokens = torch.randint(3, VOCAB, (n,), generator=generator).tolist()
        labels = list(tokens)
        if i % 2 == 1:  # an instruction-style record: the first tokens are a masked prompt
            prompt = int(torch.randint(1, n - 2, (1,), generator=generator))
            labels[:prompt] = [-100] * prompt
        records.append({"tokens": tokens, "labels": labels})
    return records


def collate(records):
    """Right padding with PAD, labels −100 at padding and at each row's first token (Collie's padder)."""
    t = max(len(r["tokens"]) for r in records)
    ids = torch.full((len(records), t), PAD, dtype=torch.long)
    labels = torch.full((len(records), t), -100, dtype=torch.long)
    mask = torch.zeros((len(records), t), dtype=torch.long)
    for row, r in enumerate(records):
        n = len(r["tokens"])
        ids[row, :n] = torch.tensor(r["tokens"])
        labels[row, 1:n] = torch.tensor(r["labels"][1:])
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def make_optimizer(model, settings):
    o = settings["optimizer"]
    if o["name"] == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o["betas"]), eps=o["eps"],
                                 weight_decay=o["weight_decay"], foreach=False)
    return torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"],
                           foreach=False)


def total_steps(n):
    batches = math.ceil(n / MICRO)
    return math.ceil(batches / ACCUMULATION) * EPOCHS


def evaluate(model, records):
    """Mean NLL per predicted token over the set (sum over batches of 2 / count)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(records), 2):
            batch = collate(records[start:start + 2])
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            targets = batch["labels"][:, 1:]
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), targets.reshape(-1),
                                                    ignore_index=-100, reduction="sum")
            total += float(nll)
            count += int((targets != -100).sum())
    return total / count


def hand_loop(model, records, settings):
    """transformers' Trainer inner loop, written out (see the module docstring)."""
    optimizer = make_optimizer(model, settings)
    steps = total_steps(len(records))
    scheduler = get_cosine_schedule_with_warmup(optimizer, WARMUP, steps)
    losses, norms, rates = [], [], []
    model.train()
    for _ in range(EPOCHS):
        batches = [collate(records[i:i + MICRO]) for i in range(0, len(records), MICRO)]
        for g in range(0, len(batches), ACCUMULATION):
            group = batches[g:g + ACCUMULATION]
            items = sum((b["labels"][..., 1:] != -100).sum() for b in group)
            step_loss = torch.tensor(0.0)
            for b in group:
                loss = model(**b, num_items_in_batch=items).loss
                loss.backward()
                step_loss += loss.detach()
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
            rates.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(step_loss))
            norms.append(float(norm))
    return losses, norms, rates


def transformers_trainer(model, records, settings, folder):
    """The same run through transformers' own Trainer; returns its parameters."""
    from torch.utils.data import SequentialSampler
    from transformers import Trainer, TrainingArguments

    class InOrder(Trainer):
        def _get_train_sampler(self, *args, **kwargs):
            return SequentialSampler(self.train_dataset)

    optimizer = make_optimizer(model, settings)
    scheduler = get_cosine_schedule_with_warmup(optimizer, WARMUP, total_steps(len(records)))
    args = TrainingArguments(output_dir=os.path.join(folder, "hf-trainer"), per_device_train_batch_size=MICRO,
                             gradient_accumulation_steps=ACCUMULATION, num_train_epochs=EPOCHS,
                             max_grad_norm=MAX_NORM, logging_steps=1, save_strategy="no", report_to=[],
                             use_cpu=True, seed=0, dataloader_drop_last=False, remove_unused_columns=False)
    trainer = InOrder(model=model, args=args, train_dataset=records, data_collator=collate,
                      optimizers=(optimizer, scheduler))
    trainer.train()
    shutil.rmtree(os.path.join(folder, "hf-trainer"), ignore_errors=True)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {k: v.detach().clone() for k, v in model.named_parameters()}, losses


def main():
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    os.makedirs(ROOT)
    model = make_model()
    model.save_pretrained(os.path.join(ROOT, "model"))
    generator = torch.Generator().manual_seed(1)
    train, evaluation = make_records(10, generator), make_records(3, generator)
    for name, records in (("train.jsonl", train), ("eval.jsonl", evaluation)):
        with open(os.path.join(ROOT, name), "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    probe = torch.randint(3, VOCAB, (2, 12), generator=generator)

    for case, settings in CASES.items():
        folder = os.path.join(ROOT, case)
        os.makedirs(folder)
        config = {
            "model": "../model", "train_data": "../train.jsonl", "eval_data": "../eval.jsonl",
            "record_format": "tokens", "shuffle": False, "seed": 0,
            "train_epochs": EPOCHS, "train_micro_batch_size": MICRO, "gradient_accumulation_steps": ACCUMULATION,
            "eval_batch_size": 2, "eval_on_start": True, "eval_per_n_epochs": EPOCHS,
            "optimizer": settings["optimizer"], "lr_scheduler": {"type": "cosine", "warmup_steps": WARMUP},
            "max_grad_norm": MAX_NORM, "output_dir": "output", "monitor_outputs": [],
        }
        with open(os.path.join(folder, "config.yaml"), "w") as f:
            f.write(f"# {case}: written by scripts/make_trainer_fixtures.py (tokenizer given by the test)\n")
            yaml.safe_dump(config, f, sort_keys=False)

        trained = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "model"), attn_implementation="eager").float()
        before = evaluate(trained, evaluation)
        losses, norms, rates = hand_loop(trained, train, settings)
        after = evaluate(trained, evaluation)
        trained.eval()
        with torch.no_grad():
            logits = trained(input_ids=probe).logits.float()
        assert any(n > MAX_NORM for n in norms), f"{case}: clipping never engaged: {norms}"

        reference = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "model"), attn_implementation="eager").float()
        trainer_params, trainer_losses = transformers_trainer(reference, train, settings, folder)
        worst = max(float((trainer_params[k] - p.detach()).abs().max()) for k, p in trained.named_parameters())
        assert worst <= 1e-6, f"{case}: transformers' Trainer differs from the hand loop by {worst}"
        loss_gap = max(abs(a - b) for a, b in zip(trainer_losses, losses))

        tensors = {
            "losses": torch.tensor(losses, dtype=torch.float32),
            "grad_norms": torch.tensor(norms, dtype=torch.float32),
            "learning_rates": torch.tensor(rates, dtype=torch.float64),
            "eval_loss_before": torch.tensor(before, dtype=torch.float64),
            "eval_loss_after": torch.tensor(after, dtype=torch.float64),
            "probe_input_ids": probe.clone(),
            "probe_logits": logits.contiguous(),
        }
        for k, p in trained.named_parameters():
            tensors["param." + k] = p.detach().contiguous()
        save_file(tensors, os.path.join(folder, "expected.safetensors"))
        print(f"{case}: losses {[round(x, 4) for x in losses]}, norms {[round(x, 3) for x in norms]}, "
              f"lr {[f'{r:.3g}' for r in rates]}, eval {before:.4f} → {after:.4f}; "
              f"transformers' Trainer: max |Δparam| {worst:.2e}, max |Δloss| {loss_gap:.2e}")

    with open(os.path.join(ROOT, "README.md"), "w") as f:
        f.write(README)


README = """# Trainer test fixtures

Made by `scripts/make_trainer_fixtures.py` (run by hand; see its docstring for every file and how the reference
run mirrors transformers' Trainer): a tiny random LLaMA (`model/`, vocab 64), pre-tokenized records
(`train.jsonl`, `eval.jsonl`, random ids, no license concerns), and per optimizer (`adamw/`, `sgd/`) the Collie
config of the run and what transformers + torch computed (`expected.safetensors`). The tests give the tokenizer
(the repository's `tokenizers/llama2`, for its pad id 2) and the output folder with `--set`-style overrides.
"""

if __name__ == "__main__":
    main()
