#!/usr/bin/env python3
"""Checks the ChatGLM-6B fixture, and the folder Collie saves from it, against the published remote code itself
(chatglm-6b's modeling_chatglm.py), not the re-creation the fixture script uses.

Run by hand (never by CI) from the repository root, after building the CLI and making the fixture
(scripts/fixtures/make_chatglm6b_fixtures.py), with PyTorch, transformers and safetensors installed:

    swift build --product collie
    python3 scripts/checks/check_chatglm6b_remote_code.py --chatglm6b DIR [--collie .build/debug/collie]

DIR holds configuration_chatglm.py and modeling_chatglm.py as published with THUDM/chatglm-6b (its last revision,
which reads mask_token_id and gmask_token_id from the config; quantization.py beside them if the file imports it).
The remote code is not in this repository. transformers 5 configs no longer carry max_length (generation only),
which the script sets to transformers 4's default.

The published classes are built from the fixture's config.json, loaded with its model.safetensors (no missing or
unexpected key; RotaryEmbedding ignores its stored inv_freq and keeps its own, float16-rounded), run in float32 on the
fixture's batch without position_ids or attention_mask (the code derives both from [gMASK]/[MASK] and sop), and must
give its logits, loss (relative 1e-5) and every gradient (1e-4 of max). Then `collie convert --model <fixture> --out
<tmp> --dtype float32`, and the published code must read <tmp> (config.json as Collie writes it) to the same logits
(difference 0). Last, greedy decoding: the published code with its own KV cache (prepare_inputs_for_generation's
inputs at each step: the last token at [mask position, seq_length - context_length]) picks the same tokens as
`collie generate --prompt-ids …` for prompts ending in [gMASK] sop and holding [MASK] before sop, one at a time and as
one left-padded batch. Exit status 1 when anything differs.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, repository_path  # noqa: E402

FIXTURE = repository_path("Tests", "CollieModelsTests", "Fixtures", "chatglm6b")


def published_classes(folder):
    """(config class, model class) from the remote-code folder, imported as a package."""
    folder = os.path.abspath(folder)
    package = os.path.basename(folder)
    sys.path.insert(0, os.path.dirname(folder))
    config = importlib.import_module(f"{package}.configuration_chatglm").ChatGLMConfig
    return config, importlib.import_module(f"{package}.modeling_chatglm").ChatGLMForConditionalGeneration


def build(folder, classes):
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    for key in ("architectures", "auto_map", "torch_dtype"):
        config.pop(key, None)
    config_class, model_class = classes
    c = config_class(**config)
    c.torch_dtype = torch.float32
    if "max_length" not in c.__dict__:
        c.max_length = 20
    model = model_class(c).float()
    state = {k: v.float() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and not [k for k in missing if not k.endswith("rotary_emb.inv_freq")], (folder, missing, unexpected)
    return model.eval()


def remote_greedy(model, prompt, count, eos):
    """Greedy tokens from the published code's own cached decoding (as its generate would feed it)."""
    ids = torch.tensor([prompt])
    tokens = []
    with torch.no_grad():
        inputs = model.prepare_inputs_for_generation(ids)
        for _ in range(count):
            out = model(**inputs, use_cache=True)
            token = int(out.logits[0, -1].argmax())
            tokens.append(token)
            if token == eos:
                break
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
            inputs = model.prepare_inputs_for_generation(ids, past_key_values=out.past_key_values)
    return tokens


def collie_greedy(collie, prompts, count):
    command = [collie, "generate", "--model", FIXTURE, "--max-new-tokens", str(count), "--json"]
    for prompt in prompts:
        command += ["--prompt-ids", ",".join(map(str, prompt))]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    return [r["ids"] for r in (result if isinstance(result, list) else [result])]


def relative(actual, expected):
    return ((actual - expected).abs().max() / expected.abs().max()).item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chatglm6b", required=True, help="folder with configuration_chatglm.py, modeling_chatglm.py")
    add_collie_argument(parser)
    args = parser.parse_args()
    classes = published_classes(args.chatglm6b)
    expected = load_file(os.path.join(FIXTURE, "expected.safetensors"))
    model = build(FIXTURE, classes)
    ids = expected["input_ids"]
    out = model(input_ids=ids, labels=expected["labels"], use_cache=False)
    out.loss.backward()
    report = {"logits": relative(out.logits.float(), expected["logits"]), "loss": relative(out.loss, expected["loss"])}
    named = dict(model.named_parameters())
    assert {f"grad.{k}" for k in named} == {k for k in expected if k.startswith("grad.")}, sorted(named)
    report["gradients"] = max(relative(p.grad, expected[f"grad.{k}"]) for k, p in named.items())
    good = report["logits"] <= 1e-5 and report["loss"] <= 1e-5 and report["gradients"] <= 1e-4

    with tempfile.TemporaryDirectory(prefix="collie-chatglm6b-") as work:
        subprocess.run([args.collie, "convert", "--model", FIXTURE, "--out", work, "--dtype", "float32"],
                       check=True, capture_output=True)
        with torch.no_grad():
            again = build(work, classes)(input_ids=ids, use_cache=False).logits.float()
            report["collie-saved logits"] = (again - out.logits.float()).abs().max().item()
    good = good and report["collie-saved logits"] == 0

    with open(os.path.join(FIXTURE, "config.json")) as f:
        config = json.load(f)
    gmask, mask, sop = config["gmask_token_id"], config["mask_token_id"], config["bos_token_id"]
    prompts = [[5, 17, 42, 88, gmask, sop], [9, mask, 30, 31, 32, 60, 61, sop]]
    expected_tokens = [remote_greedy(model, p, 12, config["eos_token_id"]) for p in prompts]
    alone = [collie_greedy(args.collie, [p], 12)[0] for p in prompts]
    batched = collie_greedy(args.collie, prompts, 12)
    report["greedy tokens differing"] = sum(a != e for got in (alone, batched) for a, e in zip(got, expected_tokens))
    good = good and report["greedy tokens differing"] == 0
    print(f"chatglm6b {'ok' if good else 'DIFFERS'}: " + ", ".join(f"{k} {v:.1e}" for k, v in report.items())
          + f"; greedy tokens {expected_tokens}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
