#!/usr/bin/env python3
"""Hugging Face `tokenizers`' side of `collie bench tokenizer`: load time and one-thread encode throughput.

    pip install tokenizers
    python3 scripts/bench/bench_tokenizer.py --tokenizer tokenizers/llama3/tokenizer.json --text data/tinyshakespeare.txt

Prints one JSON object (what `collie bench tokenizer` reads). The documents are made exactly as Collie makes
them: a .jsonl file gives one document per record's "text"; any other file is cut after a newline once a
document reaches --chunk bytes. Encoding is `encode_batch_fast` (no offsets; `encode_batch` where the
installed version lacks it) on one thread (RAYON_NUM_THREADS=1), without special tokens; load time is
`Tokenizer.from_file`. Each figure is the median of --repeats runs after one
warm-up. The id count and checksum let the caller check both sides produced the same ids.

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402

import tokenizers  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import median_seconds  # noqa: E402


def documents(path, chunk):
    """The documents of a text file, as Collie cuts them (by UTF-8 bytes, at newlines)."""
    if path.endswith(".jsonl"):
        with open(path, encoding="utf-8") as f:
            return [json.loads(line)["text"] for line in f if line.strip()]
    data = open(path, "rb").read()
    docs, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + chunk)
        end = len(data) if end < 0 else end + 1
        docs.append(data[start:end].decode("utf-8"))
        start = end
    return docs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", action="append", required=True, help="a tokenizer.json (repeatable)")
    parser.add_argument("--text", action="append", required=True, help="a .txt or .jsonl file (repeatable)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=4096, help="bytes per document for plain text files")
    args = parser.parse_args()

    texts = [(path, documents(path, args.chunk)) for path in args.text]
    results = []
    for path in args.tokenizer:
        load = median_seconds(args.repeats, lambda: tokenizers.Tokenizer.from_file(path))
        tok = tokenizers.Tokenizer.from_file(path)
        entry = {"tokenizer": path, "load_ms": load * 1000, "texts": []}
        encode_batch = getattr(tok, "encode_batch_fast", tok.encode_batch)
        for text_path, docs in texts:
            size = sum(len(d.encode("utf-8")) for d in docs)
            seconds = median_seconds(args.repeats, lambda: encode_batch(docs, add_special_tokens=False))
            ids = [i for e in tok.encode_batch(docs, add_special_tokens=False) for i in e.ids]
            entry["texts"].append({"text": text_path, "documents": len(docs), "bytes": size,
                                   "mb_per_s": size / seconds / 1e6, "ids": len(ids),
                                   "checksum": sum((k + 1) * i for k, i in enumerate(ids)) % (1 << 61)})
        results.append(entry)
    print(json.dumps({"library": f"tokenizers {tokenizers.__version__}", "results": results}))


if __name__ == "__main__":
    main()
