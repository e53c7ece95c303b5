#!/usr/bin/env python3
"""Checks the InternLM fixtures, and the folders Collie saves from them, against the model authors' published
remote code itself (modeling_internlm.py / modeling_internlm2.py), not the re-creation the fixture script uses.

Run by hand (never by CI) from the repository root, after building the CLI and making the fixtures
(scripts/fixtures/make_internlm_fixtures.py), with PyTorch, transformers (>= 5), safetensors and einops installed:

    swift build --product collie
    python3 scripts/checks/check_internlm_remote_code.py --internlm DIR1 --internlm2 DIR2 [--collie .build/debug/collie]

DIR1 holds configuration_internlm.py and modeling_internlm.py as published with internlm/internlm-7b (or
internlm-chat-7b); DIR2 configuration_internlm2.py and modeling_internlm2.py as published with
internlm/internlm2-7b (or -chat-7b). The remote code is not in this repository; any copy works, e.g. the one
InternLM/InternEvo-HFModels keeps under huggingface_model/internlm/ (its InternEvo edits touch only the
flash-attention path and import InternEvo's `internlm` package, which is stubbed here when a file asks for it).

For every InternLM fixture, the published classes are built from the fixture's config.json, loaded with its
model.safetensors (strict: no missing or unexpected key), run in float32 with eager attention on the fixture's
batch, and must give its logits, loss (relative 1e-5) and every gradient (1e-4 of max), keyed as the fixture names
them. Then `collie convert --model <fixture> --out <tmp> --dtype float32` and the published code must read <tmp>
(config.json as Collie writes it) to the same logits (difference 0). Exit status 1 when anything differs.

transformers 5 moves `rope_scaling` and `rope_theta` into `rope_parameters` and wants `_tied_weights_keys` as a
mapping; the script gives the remote code the config values it reads and the mapping form, nothing else.
"""

import argparse
import copy
import importlib
import json
import os
import subprocess
import sys
import tempfile
import types

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, repository_path  # noqa: E402

FIXTURES = repository_path("Tests", "CollieModelsTests", "Fixtures")


def stub_internevo():
    """Empty stand-ins for the InternEvo modules an InternEvo-HFModels copy imports (used by flash attention only)."""
    names = {"internlm.core.context": ["ParallelMode", "global_context"],
             "internlm.model.ops.attention": ["isp_flash_attn_varlen_func", "isp_flash_attn_func"],
             "internlm.initialize.initialize_tensor": ["normal_", "scaled_init_method_normal"]}
    for full, attributes in names.items():
        parts = full.split(".")
        for i in range(1, len(parts) + 1):
            sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
        for attribute in attributes:
            setattr(sys.modules[full], attribute, None)


def published_classes(folder, family):
    """(config class, model class) from the remote-code folder, imported as a package."""
    configuration, modeling = (("configuration_internlm", "modeling_internlm") if family == "internlm"
                               else ("configuration_internlm2", "modeling_internlm2"))
    with open(os.path.join(folder, modeling + ".py")) as f:
        if "from internlm." in f.read():
            stub_internevo()
    folder = os.path.abspath(folder)
    sys.path.insert(0, os.path.dirname(folder))
    package = os.path.basename(folder)
    config_module = importlib.import_module(f"{package}.{configuration}")
    model_module = importlib.import_module(f"{package}.{modeling}")
    if family == "internlm":
        return config_module.InternLMConfig, model_module.InternLMForCausalLM
    return config_module.InternLM2Config, model_module.InternLM2ForCausalLM


def build(folder, classes):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    for key in ("architectures", "auto_map"):
        config.pop(key, None)
    config_class, model_class = classes[config["model_type"]]
    c = config_class(**copy.deepcopy(config))
    c._attn_implementation = "eager"
    c.attn_implementation = "eager"
    if config["model_type"] == "internlm2":
        object.__setattr__(c, "rope_scaling", copy.deepcopy(config.get("rope_scaling")))
        object.__setattr__(c, "rope_theta", config.get("rope_theta", 10000))
        if isinstance(model_class._tied_weights_keys, list):
            model_class._tied_weights_keys = {"output.weight": "model.tok_embeddings.weight"}
    model = model_class(c).float()
    state = {k: v.float() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied_head = {"lm_head.weight", "output.weight"} if c.tie_word_embeddings else set()
    assert not unexpected and set(missing) <= tied_head, (folder, missing, unexpected)
    if c.tie_word_embeddings:
        model.tie_weights()
    return model


def relative(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--internlm", required=True, help="folder with configuration_internlm.py, modeling_internlm.py")
    parser.add_argument("--internlm2", required=True, help="folder with configuration_internlm2.py, modeling_internlm2.py")
    add_collie_argument(parser)
    args = parser.parse_args()
    classes = {"internlm": published_classes(args.internlm, "internlm"),
               "internlm2": published_classes(args.internlm2, "internlm2")}
    variants = sorted(d for d in os.listdir(FIXTURES) if os.path.exists(os.path.join(FIXTURES, d, "config.json"))
                      and json.load(open(os.path.join(FIXTURES, d, "config.json"))).get("model_type") in classes)
    ok = True
    with tempfile.TemporaryDirectory(prefix="collie-internlm-") as work:
        for variant in variants:
            fixture = os.path.join(FIXTURES, variant)
            expected = load_file(os.path.join(fixture, "expected.safetensors"))
            model = build(fixture, classes)
            out = model(input_ids=expected["input_ids"], labels=expected["labels"], use_cache=False)
            out.loss.backward()
            report = {"logits": relative(out.logits.float(), expected["logits"]),
                      "loss": relative(out.loss, expected["loss"])}
            named = dict(model.named_parameters())
            assert {f"grad.{k}" for k in named} == {k for k in expected if k.startswith("grad.")}, variant
            report["gradients"] = max(relative(p.grad, expected[f"grad.{k}"]) for k, p in named.items())
            good = report["logits"] <= 1e-5 and report["loss"] <= 1e-5 and report["gradients"] <= 1e-4

            saved = os.path.join(work, variant)
            subprocess.run([args.collie, "convert", "--model", fixture, "--out", saved, "--dtype", "float32"],
                           check=True, capture_output=True)
            with torch.no_grad():
                again = build(saved, classes)(input_ids=expected["input_ids"], use_cache=False).logits.float()
                report["collie-saved logits"] = (again - out.logits.float()).abs().max().item()
            good = good and report["collie-saved logits"] == 0
            ok = ok and good
            print(f"{variant:20s} {'ok' if good else 'DIFFERS'}: "
                  + ", ".join(f"{k} {v:.1e}" for k, v in report.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
