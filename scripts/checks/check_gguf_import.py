#!/usr/bin/env python3
"""Checks that a GGUF file works in Collie as transformers reads it: `collie convert --model X.gguf --out DIR` against
transformers' own GGUF loading (`from_pretrained(dir, gguf_file=...)`), and DIR against transformers.

    python3 scripts/checks/check_gguf_import.py [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--collie PATH]

With the packages of scripts/requirements.txt and `gguf`. Steps, each printing its numbers and failing (exit 1) past
its limit:

1. weights: every tensor of DIR/model.safetensors against transformers' GGUF loading (same keys; max |Δ| ≤ 1e-6);
2. files: DIR has config.json, generation_config.json, tokenizer.json, tokenizer_config.json, chat_template.jinja;
   transformers' AutoTokenizer.from_pretrained(DIR) gives the same ids as its GGUF tokenizer on the texts below;
3. logits: AutoModelForCausalLM.from_pretrained(DIR) against the GGUF-loaded model on a prompt (max |Δ| ≤ 1e-4),
   and `collie score --model X.gguf` against transformers' mean NLL of the same tokens (relative ≤ 1e-4);
4. greedy chat: for three prompts, `collie generate --model X.gguf --prompt P --chat --json` gives the prompt ids
   transformers' apply_chat_template gives, and greedy `collie generate --prompt-ids` the tokens transformers'
   generate(do_sample=False) gives (48 new tokens at most, up to the end-of-turn token).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import add_collie_argument, repository_path  # noqa: E402

PROMPTS = ["What is the capital of France?", "Give three tips for staying healthy.",
           "Write a haiku about the sea."]
TEXTS = PROMPTS + ["Hello, world! 1234 + 5678 = 6912.", "  leading spaces\tand tabs\nnew lines",
                   "Ünïcödé ✓ 你好 🙂", "<|im_start|>user\nhi<|im_end|>\n"]
MAX_NEW_TOKENS = 48


def run(arguments):
    result = subprocess.run(arguments, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(arguments)}\n{result.stderr}")
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gguf", default=repository_path("models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    add_collie_argument(parser)
    args = parser.parse_args()

    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.manual_seed(0)
    failures = []

    def check(ok, message):
        print(("  ok   " if ok else "  FAIL ") + message)
        if not ok:
            failures.append(message)

    directory, name = os.path.split(os.path.abspath(args.gguf))
    with tempfile.TemporaryDirectory() as work:
        out = os.path.join(work, "converted")
        print(run([args.collie, "convert", "--model", args.gguf, "--out", out]).stdout.strip())

        reference = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32).eval()
        print("1. weights")
        state = {k: v for k, v in reference.state_dict().items()}
        if reference.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
            keys = set(f.keys())
            check(keys == set(state), f"the same {len(keys)} tensor names as transformers' GGUF loading")
            worst = max(((f.get_tensor(k) - state[k]).abs().max().item(), k) for k in keys & set(state))
        check(worst[0] <= 1e-6, f"max |Δweight| {worst[0]:.3g} (in {worst[1]})")

        print("2. files and tokenizer")
        for file in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                     "chat_template.jinja"]:
            check(os.path.exists(os.path.join(out, file)), f"{file} written")
        gguf_tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
        tokenizer = AutoTokenizer.from_pretrained(out)
        same = sum(tokenizer(t)["input_ids"] == gguf_tokenizer(t)["input_ids"] for t in TEXTS)
        check(same == len(TEXTS), f"AutoTokenizer(DIR) ids equal the GGUF tokenizer's on {same}/{len(TEXTS)} texts")

        print("3. logits")
        model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
        ids = tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], add_generation_prompt=True,
                                            return_dict=False)
        ids = torch.tensor([list(ids)])
        with torch.no_grad():
            logits, expected = model(ids).logits, reference(ids).logits
            difference = (logits - expected).abs().max().item()
            nll = torch.nn.functional.cross_entropy(expected[0, :-1], ids[0, 1:]).item()
        check(difference <= 1e-4, f"from_pretrained(DIR) logits vs GGUF-loaded: max |Δ| {difference:.3g} "
              f"over {ids.shape[1]} tokens")
        records = os.path.join(work, "records.jsonl")
        with open(records, "w") as f:
            f.write(json.dumps({"tokens": ids[0].tolist()}) + "\n")
        scored = run([args.collie, "score", "--model", args.gguf, "--data", records]).stdout.strip()
        collie_nll = json.loads(scored.splitlines()[0])["nll"]
        relative = abs(collie_nll - nll) / abs(nll)
        check(relative <= 1e-4, f"collie score NLL {collie_nll:.6f} vs transformers {nll:.6f} (relative {relative:.2e})")

        print("4. greedy chat continuations")
        end = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
                  else [model.generation_config.eos_token_id])
        for prompt in PROMPTS:
            expected_ids = list(tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                              add_generation_prompt=True, return_dict=False))
            chat = json.loads(run([args.collie, "generate", "--model", args.gguf, "--prompt", prompt, "--chat",
                                   "--json", "--max-new-tokens", "1"]).stdout)
            check(chat["prompt_ids"] == expected_ids, f"chat prompt ids equal ({len(expected_ids)} tokens): {prompt!r}")
            with torch.no_grad():
                generated = model.generate(torch.tensor([expected_ids]), do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                                           pad_token_id=tokenizer.pad_token_id)[0, len(expected_ids):].tolist()
            greedy = json.loads(run([args.collie, "generate", "--model", args.gguf, "--json", "--max-new-tokens",
                                     str(MAX_NEW_TOKENS), "--prompt-ids", ",".join(map(str, expected_ids))]).stdout)
            ours = greedy["ids"]
            trim = lambda tokens: tokens[:-1] if tokens and tokens[-1] in end else tokens  # noqa: E731
            equal = trim(ours) == trim(generated)
            check(equal, f"greedy continuation equal ({len(trim(generated))} tokens): "
                  f"{tokenizer.decode(trim(generated))!r}")
            if not equal:
                print(f"       collie: {tokenizer.decode(trim(ours))!r}")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all checks passed")


if __name__ == "__main__":
    main()
