#!/usr/bin/env python3
"""Writes the evaluation records the examples under examples/eval/ use, from the bundled samples in
data/eval/ (copied unchanged from their sources; see data/README.md):

    data/eval/xsum.jsonl         generation records {"text": prompt, "target": summary}     (xsum/sample.json)
    data/eval/wmt16_en_ro.jsonl  generation records {"text": prompt, "target": Romanian}    (wmt16_en_ro/sample.json)
    data/eval/imdb.jsonl         classification records {"input", "output": options, "target"} (imdb/*.txt)

Run from the repository root: python3 scripts/make_eval_data.py (standard library only).
"""

import json
import os

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "eval")


def concatenated_json(path):
    """The XSum/WMT samples are JSON objects one after another (not an array, not one per line)."""
    text, decoder, objects, index = open(path, encoding="utf-8").read(), json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return objects
        value, index = decoder.raw_decode(text, index)
        objects.append(value)


def write(name, records):
    with open(os.path.join(DATA, name), "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"{name}: {len(records)} records")


def main():
    write("xsum.jsonl", [{"text": f"Summarize in one sentence.\n\n{r['document']}\n\nSummary:", "target": r["summary"]}
                         for r in concatenated_json(os.path.join(DATA, "xsum", "sample.json"))])
    write("wmt16_en_ro.jsonl", [{"text": f"Translate English to Romanian.\nEnglish: {r['translation']['en']}\nRomanian:",
                                 "target": r["translation"]["ro"]}
                                for r in concatenated_json(os.path.join(DATA, "wmt16_en_ro", "sample.json"))])
    records = []
    for split in ["train", "dev", "test"]:
        for line in open(os.path.join(DATA, "imdb", f"{split}.txt"), encoding="utf-8"):
            label, _, text = line.strip().partition(" ")
            records.append({"input": f"Review: {text}\nSentiment:", "output": [" negative", " positive"],
                            "target": 1 if label == "__label__POSITIVE" else 0})
    write("imdb.jsonl", records)


if __name__ == "__main__":
    main()
