#!/usr/bin/env python3
"""Checks that folders Collie writes are ones transformers loads, with the same model.

Run by hand (never by CI) from the repository root, after building the CLI and making the
fixtures (scripts/fixtures/make_model_fixtures.py), with PyTorch and transformers (>= 5) installed:

    swift build -c release --product collie
    python3 scripts/checks/check_roundtrip.py [--collie .build/release/collie] [--keep DIR]

For every model folder in Tests/CollieModelsTests/Fixtures (but the InternLM families', which run remote code:
scripts/checks/check_internlm_remote_code.py checks those) it runs

    collie convert --model <fixture> --out <tmp> --dtype float32

which is LlamaForCausalLM.load(from:) followed by save(to:dtype:maxShardBytes:), i.e. Collie's own
reading and writing of Hugging Face folders, and then loads <tmp> with transformers'
AutoModelForCausalLM (float32, eager attention) and requires:

  - no missing or unexpected keys, the same architecture and every parameter bit-identical to the
    original fixture as transformers loads it;
  - logits on the fixture's batch (input_ids, attention_mask; unpadded positions) equal to the
    original's (max |difference| printed per variant; it must be 0).

Also, per variant:
  --dtype bfloat16: every parameter equals torch's own round-to-nearest-even bfloat16 of the
    original (so the logits equal transformers' on `model.to(torch.bfloat16)` weights);
  and for one variant, --max-shard-size 20KB: shards plus model.safetensors.index.json that
    transformers loads to the same logits.
Exit status 1 when anything differs.

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers
from safetensors import safe_open
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, repository_path  # noqa: E402

FIXTURES = repository_path("Tests", "CollieModelsTests", "Fixtures")
SHARDED_VARIANT = "qwen2"


def load(folder: str):
    model, info = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32,
                                                       output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    return model.eval(), problems


def batch(variant: str):
    with safe_open(os.path.join(FIXTURES, variant, "expected.safetensors"), "pt") as f:
        ids = f.get_tensor("input_ids")
        mask = f.get_tensor("attention_mask") if "attention_mask" in f.keys() else None
    return ids, mask


def logits(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask).logits
    keep = (mask if mask is not None else torch.ones_like(ids)).bool()
    return out[keep]


def convert(collie: str, source: str, out: str, *extra: str) -> None:
    command = [collie, "convert", "--model", source, "--out", out, *extra]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")


def compare(variant: str, label: str, original, converted_folder: str, ids, mask, expect_params) -> bool:
    """expect_params: name -> tensor the converted parameters must equal exactly."""
    converted, problems = load(converted_folder)
    failures = []
    if problems:
        failures.append(f"loading reported {problems}")
    if type(converted) is not type(original):
        failures.append(f"loads as {type(converted).__name__}, expected {type(original).__name__}")
    params = dict(converted.named_parameters())
    if set(params) != set(expect_params):
        failures.append(f"parameters differ: {sorted(set(params) ^ set(expect_params))}")
    else:
        for name, value in expect_params.items():
            if not torch.equal(params[name].detach(), value):
                d = (params[name].detach() - value).abs().max().item()
                failures.append(f"{name} differs by up to {d:g}")
    expected_logits = logits(original if label == "float32" or label.startswith("sharded") else
                             reference_model(original, expect_params), ids, mask)
    difference = (logits(converted, ids, mask) - expected_logits).abs().max().item()
    if difference != 0:
        failures.append(f"logits differ by {difference:g}")
    files = sorted(f for f in os.listdir(converted_folder) if not f.startswith("."))
    status = "ok" if not failures else "FAILED: " + "; ".join(failures)
    print(f"{variant:24s} {label:18s} max |logit diff| {difference:.3g}  files {files}  {status}")
    return not failures


def reference_model(original, params):
    """The original architecture with `params` (e.g. bf16-rounded weights) in float32."""
    model = type(original)(original.config)
    model.load_state_dict({k: v for k, v in params.items()}, strict=False)
    if original.config.tie_word_embeddings:
        model.tie_weights()
    return model.float().eval()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_collie_argument(parser, "release")
    parser.add_argument("--keep", help="write the converted folders here instead of a temporary folder")
    args = parser.parse_args()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    if not os.access(args.collie, os.X_OK):
        print(f"{args.collie} not found; build it with: swift build -c release --product collie", file=sys.stderr)
        return 2
    help_text = subprocess.run([args.collie, "convert", "--help"], capture_output=True, text=True)
    if help_text.returncode != 0:
        print(f"{args.collie} has no 'convert' command:\n{help_text.stdout}{help_text.stderr}", file=sys.stderr)
        return 2

    # The InternLM families run remote code, not transformers' classes: check_internlm_remote_code.py checks them.
    variants = sorted(d for d in os.listdir(FIXTURES) if os.path.exists(os.path.join(FIXTURES, d, "config.json"))
                      and json.load(open(os.path.join(FIXTURES, d, "config.json"))).get("model_type")
                      not in ("internlm", "internlm2"))
    work = args.keep or tempfile.mkdtemp(prefix="collie-roundtrip-")
    ok = True
    try:
        for variant in variants:
            source = os.path.join(FIXTURES, variant)
            original, problems = load(source)
            assert not problems, f"{variant}: the fixture itself loads with {problems}"
            ids, mask = batch(variant)
            originals = {k: v.detach().clone() for k, v in original.named_parameters()}

            out = os.path.join(work, variant, "float32")
            convert(args.collie, source, out, "--dtype", "float32")
            with open(os.path.join(out, "config.json")) as f:
                assert json.load(f).get("torch_dtype") == "float32", "config.json does not record float32"
            ok &= compare(variant, "float32", original, out, ids, mask, originals)

            out = os.path.join(work, variant, "bfloat16")
            convert(args.collie, source, out, "--dtype", "bfloat16")
            rounded = {k: v.to(torch.bfloat16).float() for k, v in originals.items()}
            ok &= compare(variant, "bfloat16", original, out, ids, mask, rounded)

            if variant == SHARDED_VARIANT:
                out = os.path.join(work, variant, "sharded")
                convert(args.collie, source, out, "--dtype", "float32", "--max-shard-size", "20KB")
                shards = [f for f in os.listdir(out) if f.endswith(".safetensors")]
                if len(shards) < 2 or not os.path.exists(os.path.join(out, "model.safetensors.index.json")):
                    print(f"{variant}: --max-shard-size 20KB wrote {sorted(os.listdir(out))}, expected shards + index")
                    ok = False
                ok &= compare(variant, "sharded float32", original, out, ids, mask, originals)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("all conversions load in transformers with identical weights and logits" if ok else "MISMATCHES above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
