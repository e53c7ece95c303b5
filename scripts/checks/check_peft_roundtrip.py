#!/usr/bin/env python3
"""Loads adapters Collie saved with PEFT itself and compares PEFT's logits with Collie's.

Run by hand (never by CI) from the repository root, with torch, transformers (>= 5) and peft installed:

    swift build --build-tests
    COLLIE_PEFT_EXPORT=/tmp/collie-peft swift test --skip-build --disable-swift-testing \\
        --filter PEFTParityTests/testAdaptersCollieSavesReloadWithIdenticalLogitsAndPEFTsConfigFields
    python3 scripts/checks/check_peft_roundtrip.py /tmp/collie-peft

The test writes, per adapter (lora/, prompt/), the folder `saveAdapter` produced and <name>.safetensors with
the inputs and Collie's logits. For each, this script builds the base model named by the adapter's
base_model_name_or_path, loads the adapter with `PeftModel.from_pretrained` (which warns about any key it
could not place and fails on shape mismatches), checks that every tensor of the file arrived in the model,
runs the same inputs and compares the logits at real (unpadded) positions.

A training run's adapter can be checked the same way for loading alone: pass its folder with --load-only; add
--merged DIR (a model `collie convert --adapter` wrote) to compare that merged model's logits in transformers
with PEFT's logits of base + adapter on random ids.

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import os
import sys
import warnings

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

TOLERANCE = 1e-5   # relative to max |logit|


def load(folder):
    import json
    with open(os.path.join(folder, "adapter_config.json")) as f:
        config = json.load(f)
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"], attn_implementation="eager",
                                                dtype=torch.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = PeftModel.from_pretrained(base, folder)
    problems = [str(w.message) for w in caught if "missing" in str(w.message).lower()
                or "unexpected" in str(w.message).lower()]
    model.eval()
    # Every saved tensor must be in the model, with the saved values.
    saved = load_file(os.path.join(folder, "adapter_model.safetensors"))
    state = {k.replace(".default", ""): v for k, v in model.state_dict().items()}
    for key, tensor in saved.items():
        name = key if key != "prompt_embeddings" else "prompt_encoder.embedding.weight"
        if name not in state or not torch.equal(state[name], tensor):
            problems.append(f"{key} did not load")
    return config, model, problems


def check(folder, data):
    config, model, problems = load(folder)
    expected = load_file(data)
    ids, mask, logits = expected["input_ids"].long(), expected["attention_mask"].long(), expected["logits"]
    with torch.no_grad():
        actual = model(input_ids=ids, attention_mask=mask).logits
    if actual.shape != logits.shape:
        problems.append(f"logits shape {tuple(actual.shape)}, Collie {tuple(logits.shape)}")
    else:
        n = actual.shape[1] - ids.shape[1]   # virtual tokens (prompt tuning)
        keep = torch.cat([torch.ones(ids.shape[0], n, dtype=torch.bool), mask.bool()], dim=1)
        difference = (actual - logits).abs()[keep].max().item()
        scale = logits.abs()[keep].max().item()
        print(f"{os.path.basename(folder)}: {config['peft_type']}, logits {tuple(actual.shape)}, "
              f"max |PEFT - Collie| = {difference:.3e} ({difference / scale:.2e} of max |logit| {scale:.3f})")
        if difference > TOLERANCE * scale:
            problems.append(f"logits differ by {difference / scale:.2e} of max |logit|")
    return problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", help="the COLLIE_PEFT_EXPORT folder, or an adapter folder with --load-only")
    parser.add_argument("--load-only", action="store_true")
    parser.add_argument("--merged", help="with --load-only: a merged model folder to compare with base + adapter")
    args = parser.parse_args()
    failures = []
    if args.load_only:
        config, model, problems = load(args.folder)
        trainable = sum(p.numel() for n, p in model.named_parameters() if "lora_" in n or "prompt_encoder" in n)
        print(f"{args.folder}: {config['peft_type']} loaded in PEFT, {trainable} adapter parameters")
        failures += problems
        if args.merged:
            merged = AutoModelForCausalLM.from_pretrained(args.merged, attn_implementation="eager", dtype=torch.float32)
            ids = torch.randint(3, model.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                a, b = model(input_ids=ids).logits, merged(input_ids=ids).logits
            difference, scale = (a - b).abs().max().item(), a.abs().max().item()
            print(f"{args.merged}: max |PEFT(base + adapter) - merged| = {difference:.3e} ({difference / scale:.2e} of max |logit|)")
            if difference > TOLERANCE * scale:
                failures.append(f"merged logits differ by {difference / scale:.2e} of max |logit|")
    else:
        for name in ["lora", "prompt"]:
            failures += check(os.path.join(args.folder, name), os.path.join(args.folder, name + ".safetensors"))
    for failure in failures:
        print("FAIL:", failure)
    print("OK" if not failures else f"{len(failures)} problem(s)")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
