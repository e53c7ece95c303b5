#!/usr/bin/env python3
"""Checks a folder `collie vocab merge --model` wrote against transformers and sentencepiece.

Run by hand (never by CI) from the repository root, with PyTorch, transformers (>= 5), sentencepiece and protobuf:

    collie train examples/expand_vocab/base.yaml       # or any LLaMA folder trained with LLaMA-2's tokenizer
    collie vocab merge --base tokenizers/llama2-spm/tokenizer.model --add tokenizers/chinese-sp/chinese_sp.model \\
        --model runs/expand_vocab/base/final --out runs/expand_vocab/merged
    python3 scripts/checks/check_vocab_merge.py --base runs/expand_vocab/base/final --merged runs/expand_vocab/merged

It checks that
  - transformers' AutoTokenizer loads the merged folder (tokenizer.model + tokenizer_config.json) and gives the ids of
    sentencepiece with the merged model, plus BOS, on the vocabulary-merge corpus
    (Tests/CollieTokenizersTests/Fixtures/vocab-merge/corpus.jsonl);
  - AutoModelForCausalLM loads the merged folder with vocab_size = the merged piece count; its embedding and
    lm_head rows below the base vocabulary equal the base folder's, the new rows equal the mean of the base rows
    (float32, 1e-6), and its logits on base ids equal the base model's over the base vocabulary (1e-5).
Exit status 1 when anything differs.
"""
import argparse
import json
import sys
from pathlib import Path

import sentencepiece as spm
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "Tests" / "CollieTokenizersTests" / "Fixtures" / "vocab-merge" / "corpus.jsonl"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the Hugging Face folder given to --model")
    parser.add_argument("--merged", required=True, help="the --out folder")
    args = parser.parse_args()
    failures = []

    sp = spm.SentencePieceProcessor(model_file=str(Path(args.merged) / "tokenizer.model"))
    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    texts = [json.loads(line)["text"] for line in CORPUS.read_text(encoding="utf-8").split("\n") if line]
    mismatches = [t for t in texts if tokenizer(t)["input_ids"] != [sp.bos_id()] + sp.encode(t)]
    print(f"tokenizer ({type(tokenizer).__name__}): {len(texts) - len(mismatches)}/{len(texts)} strings give "
          f"sentencepiece's ids (with BOS)")
    if mismatches:
        failures.append(f"{len(mismatches)} strings differ, first: {mismatches[0]!r}")

    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32).eval()
    merged = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32).eval()
    old, new = base.config.vocab_size, merged.config.vocab_size
    if new != sp.get_piece_size():
        failures.append(f"vocab_size {new} != the merged model's {sp.get_piece_size()} pieces")
    for name, a, b in [("embed_tokens", base.get_input_embeddings().weight, merged.get_input_embeddings().weight),
                       ("lm_head", base.get_output_embeddings().weight, merged.get_output_embeddings().weight)]:
        same = torch.equal(a, b[:old])
        mean_error = (b[old:] - a.mean(dim=0)).abs().max().item()
        print(f"{name}: {tuple(a.shape)} -> {tuple(b.shape)}; old rows equal: {same}; new rows - mean: {mean_error:.2e}")
        if not same or mean_error > 1e-6:
            failures.append(f"{name}: old rows equal {same}, new rows off the mean by {mean_error}")
    ids = torch.randint(0, old, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        difference = (merged(ids).logits[..., :old] - base(ids).logits).abs().max().item()
    print(f"logits on base ids, base vocabulary: max |difference| {difference:.2e}")
    if difference > 1e-5:
        failures.append(f"logits differ by {difference}")

    for failure in failures:
        print("FAIL:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
