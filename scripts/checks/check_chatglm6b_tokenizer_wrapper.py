#!/usr/bin/env python3
"""Checks the ChatGLM-6B tokenizer fixture's reference ids against the published wrapper itself (chatglm-6b's
tokenization_chatglm.py), not the re-creation scripts/fixtures/make_chatglm_tokenizer_fixtures.py writes them with.

Run by hand (never by CI) from the repository root, with transformers and sentencepiece installed:

    python3 scripts/checks/check_chatglm6b_tokenizer_wrapper.py --wrapper DIR/tokenization_chatglm.py

The wrapper (THUDM/chatglm-6b's last revision) is not in this repository. It was written for transformers 4.27; on
transformers 5 its __init__ calls get_vocab before it has built its SentencePiece tokenizer, so this script builds
it first (the one change), and calls tokenize/convert_tokens_to_ids, build_inputs_with_special_tokens and decode
(its _pad no longer fits transformers 5's encode). It prints how many corpus strings differ and why. Expected on
transformers 5.25: every decode equal; the ids of the strings with `</s>` differ (transformers 5 makes the
wrapper's end_token a special token, 4.27 did not) and of those with whitespace beside `<sop>`, `<eop>`, `<unk>`,
`<pad>` or `[MASK]` (4.27 strips it, 5 keeps it); with skip_special_tokens, 5 also drops `[gMASK]`. Exit status 1
when a difference has no such reason.
"""
import argparse
import importlib.util
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import collie_scripts  # noqa: E402

ROOT = collie_scripts.ROOT
FOLDER = os.path.join(ROOT, "tokenizers", "chatglm6b")
FIXTURES = os.path.join(ROOT, "Tests", "CollieTokenizersTests", "Fixtures")
STRIPPED = re.compile(r"\s(<sop>|<eop>|<unk>|<pad>|\[MASK\])|(<sop>|<eop>|<unk>|<pad>|\[MASK\])\s")


def load_wrapper(path):
    source = open(path, encoding="utf-8").read().replace(
        "    ) -> None:\n        super().__init__(",
        "    ) -> None:\n        self.sp_tokenizer = SPTokenizer(vocab_file, num_image_tokens=num_image_tokens)\n"
        "        super().__init__(", 1)
    spec = importlib.util.spec_from_loader("tokenization_chatglm", loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, path, "exec"), module.__dict__)
    config = json.load(open(os.path.join(FOLDER, "tokenizer_config.json")))
    settings = {k: v for k, v in config.items() if k not in ("auto_map", "name_or_path", "tokenizer_class")}
    return module.ChatGLMTokenizer(os.path.join(FOLDER, "ice_text.model"), **settings)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wrapper", required=True, help="chatglm-6b's tokenization_chatglm.py")
    tokenizer = load_wrapper(parser.parse_args().wrapper)
    corpus = [json.loads(line)["text"] for name in ("corpus.jsonl", "chatglm6b_corpus.jsonl")
              for line in open(os.path.join(FIXTURES, name), encoding="utf-8")]
    expected = [json.loads(line) for line in open(os.path.join(FIXTURES, "expected", "chatglm6b.jsonl"), encoding="utf-8")]
    assert len(corpus) == len(expected)
    counts = {"ids": 0, "ids (explained)": 0, "decode": 0, "special": 0, "special (explained)": 0}
    for text, reference in zip(corpus, expected):
        explained = "</s>" in text or STRIPPED.search(text) is not None
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        if ids != reference["ids"]:
            counts["ids (explained)" if explained else "ids"] += 1
        if tokenizer.decode(reference["ids"], clean_up_tokenization_spaces=False) != reference.get("decoded", text):
            counts["decode"] += 1
        if "special_ids" in reference:
            special = tokenizer.build_inputs_with_special_tokens(ids)
            skipped = tokenizer.decode(special, skip_special_tokens=True, clean_up_tokenization_spaces=False)
            if special != reference["special_ids"] or skipped != reference["decoded_skip"]:
                same = special == reference["special_ids"] and skipped == reference["decoded_skip"].replace("[gMASK]", "")
                counts["special (explained)" if same or explained else "special"] += 1
    print(f"{len(corpus)} strings; differing: {counts}")
    sys.exit(1 if counts["ids"] or counts["decode"] or counts["special"] else 0)


if __name__ == "__main__":
    main()
