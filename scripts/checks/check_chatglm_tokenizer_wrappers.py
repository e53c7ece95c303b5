#!/usr/bin/env python3
"""Checks the ChatGLM-6B tokenizer fixture's reference ids against the published wrapper itself (chatglm-6b's
tokenization_chatglm.py), not the re-creation scripts/fixtures/make_chatglm_tokenizer_fixtures.py writes them with.

Run by hand (never by CI) from the repository root, with transformers and sentencepiece installed:

    python3 scripts/checks/check_chatglm_tokenizer_wrappers.py --wrapper DIR/tokenization_chatglm.py \
        [--chatglm2-wrapper DIR2/tokenization_chatglm.py]

With --chatglm2-wrapper (chatglm2-6b's file, which runs on transformers 5 unchanged), the ChatGLM2 fixture's
references must equal it on every string (ids, decodes, [gMASK] sop first).

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


def check_chatglm2(path, corpus):
    spec = importlib.util.spec_from_file_location("tokenization_chatglm2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tokenizer = module.ChatGLMTokenizer(os.path.join(ROOT, "tokenizers", "chatglm2", "tokenizer.model"))
    expected = [json.loads(line) for line in open(os.path.join(FIXTURES, "expected", "chatglm2.jsonl"), encoding="utf-8")]
    differing = 0
    for text, reference in zip(corpus, expected):
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
        same = ids == reference["ids"] and tokenizer.decode(reference["ids"]) == reference.get("decoded", text)
        if "special_ids" in reference:
            special = tokenizer.build_inputs_with_special_tokens(ids)
            same = same and special == reference["special_ids"] and \
                tokenizer.decode(special, skip_special_tokens=True) == reference["decoded_skip"]
        differing += not same
    print(f"chatglm2: {len(corpus)} strings; differing: {differing}")
    return differing


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wrapper", required=True, help="chatglm-6b's tokenization_chatglm.py")
    parser.add_argument("--chatglm2-wrapper", help="chatglm2-6b's tokenization_chatglm.py")
    arguments = parser.parse_args()
    tokenizer = load_wrapper(arguments.wrapper)
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
    print(f"chatglm6b: {len(corpus)} strings; differing: {counts}")
    chatglm2 = check_chatglm2(arguments.chatglm2_wrapper, corpus) if arguments.chatglm2_wrapper else 0
    sys.exit(1 if counts["ids"] or counts["decode"] or counts["special"] or chatglm2 else 0)


if __name__ == "__main__":
    main()
