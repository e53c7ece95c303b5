#!/usr/bin/env python3
"""Checks the ChatGLM2/3 and MOSS fixtures, and the folders Collie saves from them, against the published remote code
itself (modeling_chatglm.py / modeling_moss.py), not the re-creation the fixture script uses.

Run by hand (never by CI) from the repository root, after building the CLI and making the fixtures
(scripts/fixtures/make_glm_moss_fixtures.py), with PyTorch, transformers (>= 5) and safetensors installed:

    swift build --product collie
    python3 scripts/checks/check_glm_moss_remote_code.py --chatglm DIR1 --moss DIR2 [--collie .build/debug/collie]

DIR1 holds configuration_chatglm.py and modeling_chatglm.py as published with THUDM/chatglm2-6b or chatglm3-6b(-32k)
(a copy that imports a local `lora` module, as some mirrors' do, gets an empty stand-in); DIR2 configuration_moss.py
and modeling_moss.py as published with fnlp/moss-moon-003-* (OpenMOSS/MOSS keeps them under models/). The remote
code is not in this repository. transformers 5 no longer has two things that code reads: config.max_length (used
for generation only; set to transformers 4's default) and PreTrainedModel.get_head_mask (without a mask it returned
[None] per layer; the script gives MOSS's model that).

For every fixture of the two families, the published classes are built from the fixture's config.json, loaded with
its model.safetensors (strict: no missing or unexpected key but MOSS's computed causal-mask buffers), run in float32
on the fixture's batch, and must give its logits, loss (relative 1e-5) and every gradient (1e-4 of max), keyed as the
fixture names them. Then `collie convert --model <fixture> --out <tmp> --dtype float32` and the published code must
read <tmp> (config.json as Collie writes it) to the same logits (difference 0). Exit status 1 when anything differs.
"""

import argparse
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


def published_classes(folder, family):
    """(config class, model class) from the remote-code folder, imported as a package."""
    folder = os.path.abspath(folder)
    package = os.path.basename(folder)
    sys.path.insert(0, os.path.dirname(folder))
    if family == "chatglm":
        with open(os.path.join(folder, "modeling_chatglm.py")) as f:
            if "from .lora import" in f.read():
                lora = types.ModuleType(f"{package}.lora")
                for name in ["attach_lora", "detach_lora", "merge_lora", "lora_state_dict", "base_state_dict"]:
                    setattr(lora, name, None)
                sys.modules[f"{package}.lora"] = lora
        config = importlib.import_module(f"{package}.configuration_chatglm").ChatGLMConfig
        return config, importlib.import_module(f"{package}.modeling_chatglm").ChatGLMForConditionalGeneration
    config = importlib.import_module(f"{package}.configuration_moss").MossConfig
    return config, importlib.import_module(f"{package}.modeling_moss").MossForCausalLM


def build(folder, classes):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    for key in ("architectures", "auto_map", "torch_dtype"):
        config.pop(key, None)
    config_class, model_class = classes[config["model_type"]]
    c = config_class(**config)
    c.torch_dtype = torch.float32
    if "max_length" not in c.__dict__:
        c.max_length = 20   # transformers 4's default; transformers 5 configs no longer carry it (generation only)
    model = model_class(c).float()
    if config["model_type"] == "moss" and not hasattr(model.transformer, "get_head_mask"):
        # transformers 5 dropped PreTrainedModel.get_head_mask; without a head mask it was [None] * layers.
        type(model.transformer).get_head_mask = lambda self, head_mask, layers: [None] * layers
    state = {k: v.float() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    buffers = [k for k in missing if k.endswith(("causal_mask", "masked_bias", "rotary_pos_emb.inv_freq"))]
    assert not unexpected and set(missing) == set(buffers), (folder, missing, unexpected)
    return model.eval()


def relative(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatglm", required=True, help="folder with configuration_chatglm.py, modeling_chatglm.py")
    parser.add_argument("--moss", required=True, help="folder with configuration_moss.py, modeling_moss.py")
    add_collie_argument(parser)
    args = parser.parse_args()
    classes = {"chatglm": published_classes(args.chatglm, "chatglm"), "moss": published_classes(args.moss, "moss")}
    variants = sorted(d for d in os.listdir(FIXTURES) if os.path.exists(os.path.join(FIXTURES, d, "config.json"))
                      and json.load(open(os.path.join(FIXTURES, d, "config.json"))).get("model_type") in classes)
    ok = True
    with tempfile.TemporaryDirectory(prefix="collie-glm-moss-") as work:
        for variant in variants:
            fixture = os.path.join(FIXTURES, variant)
            expected = load_file(os.path.join(fixture, "expected.safetensors"))
            model = build(fixture, classes)
            ids = expected["input_ids"]
            kwargs = {} if "chatglm" in variant else {"position_ids": torch.arange(ids.shape[1])[None].expand_as(ids)}
            out = model(input_ids=ids, labels=expected["labels"], use_cache=False, **kwargs)
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
                again = build(saved, classes)(input_ids=ids, use_cache=False, **kwargs).logits.float()
                report["collie-saved logits"] = (again - out.logits.float()).abs().max().item()
            good = good and report["collie-saved logits"] == 0
            ok = ok and good
            print(f"{variant:20s} {'ok' if good else 'DIFFERS'}: "
                  + ", ".join(f"{k} {v:.1e}" for k, v in report.items()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
