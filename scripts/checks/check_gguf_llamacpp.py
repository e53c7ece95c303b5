#!/usr/bin/env python3
"""Checks Collie's GGUF export with llama.cpp itself.

Run by hand (not in CI: it needs a llama.cpp build, e.g. the one PyPI's llama-cpp-python source distribution
vendors, built with cmake for the targets llama-perplexity, llama-simple and llama-tokenize):

    swift build --product collie
    python3 scripts/checks/check_gguf_llamacpp.py --llama-bin LLAMA_BUILD/bin [--model HF_FOLDER]
        [--llama-source LLAMA_CPP_SOURCE] [--text FILE] [--context 128] [--chunks 4]

--model defaults to the server tests' tiny chat model (with the LLaMA-2 tokenizer); give a real one such as
SmolLM2-135M-Instruct as a Hugging Face folder. For the model it

  1. exports `collie convert --model M --out model-f32.gguf --outtype f32` and `--outtype q8_0`;
  2. with --llama-source, runs llama.cpp's own convert_hf_to_gguf.py --outtype q8_0 on M and compares: every key
     and tensor (type, shape, bytes) must be equal (general.name, made from the folder name, may differ);
  3. tokenizes --text with llama-tokenize and compares the ids with `collie tokenize` (reported, not required);
  4. runs llama-perplexity on --text (chunks of --context tokens, scoring each chunk's second half) on both files
     and computes the same perplexity with `collie score` on llama.cpp's token chunks (the second half's NLL is
     the whole chunk's minus its first half's), on the folder and on the same GGUF file: llama.cpp's must be within
     0.5% (f32) or 3% (q8_0) of both. (llama.cpp's CPU backend also rounds the activations to Q8_0 for Q8_0 weights,
     so its q8_0 perplexity moves more than Collie's, which dequantizes the weights and keeps float32 activations);
  5. greedy-decodes a prompt with llama-simple (f32 export) and `collie generate --temperature 0`: the texts must
     be equal.
Exit status 1 when a required comparison fails.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import collie_scripts  # noqa: E402

PROMPT = "The capital of France is a city where people"


def run(arguments, **options):
    result = subprocess.run(arguments, capture_output=True, text=True, **options)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(arguments)}\n{result.stderr[-3000:]}")
    return result


def llama_tokens(llama_bin, gguf, text_file):
    out = run([os.path.join(llama_bin, "llama-tokenize"), "-m", gguf, "-f", text_file, "--ids", "--log-disable"]).stdout
    return json.loads(out.strip().splitlines()[-1])


def llama_perplexity(llama_bin, gguf, text_file, context, chunks, extra=()):
    # llama.cpp's logger writes from a thread and now and then loses the last lines at exit: try again.
    for _ in range(5):
        result = run([os.path.join(llama_bin, "llama-perplexity"), "-m", gguf, "-f", text_file, "-c", str(context),
                      "-b", str(context), "--chunks", str(chunks), "-t", "2", *extra])
        match = re.search(r"Final estimate: PPL = ([0-9.]+)", result.stdout + result.stderr)
        if match:
            return float(match.group(1))
    sys.exit("llama-perplexity printed no final estimate:\n" + result.stderr[-3000:])


def llama_bos(llama_bin, gguf, work):
    """The BOS id llama.cpp puts first when it tokenizes (None when the model adds none): two texts that start alike."""
    ids = []
    for text in ["a", "b"]:
        path = os.path.join(work, "bos.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        ids.append(llama_tokens(llama_bin, gguf, path))
    return ids[0][0] if len(ids[0]) > 1 and ids[0][0] == ids[1][0] else None


def collie_perplexity(collie, model, tokens, context, chunks, work, bos=None, options=()):
    """llama-perplexity's number with Collie: per chunk, NLL(tokens first+1 … n-1) = NLL(chunk) − NLL(chunk[:first+1]).
    Like llama-perplexity, each chunk starts with BOS when the model adds one. `options` go to `collie score`."""
    first = context // 2
    records = []
    for i in range(chunks):
        chunk = tokens[i * context:(i + 1) * context]
        if bos is not None:
            chunk = [bos] + chunk[1:]
        records += [{"tokens": chunk}, {"tokens": chunk[:first + 1]}]
    data = os.path.join(work, "chunks.jsonl")
    collie_scripts.write_jsonl(data, records)
    lines = run([collie, "score", "--model", model, "--data", data, *options]).stdout.splitlines()
    scores = [json.loads(line) for line in lines if line.startswith("{")]
    total, count = 0.0, 0
    for whole, half in zip(scores[0::2], scores[1::2]):
        total += whole["nll"] * whole["count"] - half["nll"] * half["count"]
        count += whole["count"] - half["count"]
    return math.exp(total / count)


def compare_with_convert(source, model, ours, work):
    from gguf import GGUFReader
    reference = os.path.join(work, "reference-q8_0.gguf")
    run([sys.executable, os.path.join(source, "convert_hf_to_gguf.py"), model, "--outtype", "q8_0",
         "--outfile", reference])
    a, b = GGUFReader(ours), GGUFReader(reference)
    fields = lambda r: {k: f.contents() for k, f in r.fields.items() if not k.startswith("GGUF.")}
    fa, fb = fields(a), fields(b)
    problems = [f"key {k}: only in {'Collie' if k in fa else 'convert_hf_to_gguf'}" for k in set(fa) ^ set(fb)]
    problems += [f"key {k}: {str(fa[k])[:60]} ≠ {str(fb[k])[:60]}" for k in fa
                 if k in fb and fa[k] != fb[k] and k != "general.name"]
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    problems += [f"tensor {n}: only in one file" for n in set(ta) ^ set(tb)]
    for n in set(ta) & set(tb):
        x, y = ta[n], tb[n]
        if x.tensor_type != y.tensor_type or list(x.shape) != list(y.shape) or bytes(x.data) != bytes(y.data):
            problems.append(f"tensor {n}: {x.tensor_type.name} {list(x.shape)} ≠ {y.tensor_type.name} {list(y.shape)}"
                            " or different bytes")
    print(f"convert_hf_to_gguf q8_0: {len(tb)} tensors, {len(fb)} keys; {len(problems)} differences")
    for problem in sorted(problems)[:20]:
        print("  ", problem)
    return not [p for p in problems if p.startswith("tensor")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    collie_scripts.add_collie_argument(parser)
    parser.add_argument("--llama-bin", required=True, help="llama.cpp's build/bin folder")
    parser.add_argument("--llama-source", help="llama.cpp's source folder (for convert_hf_to_gguf.py)")
    parser.add_argument("--model", help="a Hugging Face model folder with its tokenizer (default: the tiny chat model)")
    parser.add_argument("--text", default=collie_scripts.repository_path("docs", "ARCHITECTURE.md"))
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--keep", help="keep the files in this folder")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="collie-gguf-")
    os.makedirs(work, exist_ok=True)
    model = args.model or collie_scripts.chat_model_folder(work)
    collie = args.collie
    ok = True

    files = {}
    for outtype in ["f32", "q8_0"]:
        files[outtype] = os.path.join(work, f"model-{outtype}.gguf")
        run([collie, "convert", "--model", model, "--out", files[outtype], "--outtype", outtype])
    if args.llama_source:
        ok &= compare_with_convert(args.llama_source, model, files["q8_0"], work)

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    tokens = llama_tokens(args.llama_bin, files["f32"], args.text)
    needed = args.context * args.chunks
    if len(tokens) < needed:
        sys.exit(f"{args.text} has {len(tokens)} tokens; --context × --chunks needs {needed}")
    collie_ids = json.loads(run([collie, "tokenize", "--tokenizer", model],
                                input=json.dumps({"text": text}) + "\n").stdout.splitlines()[0])["ids"]
    same = collie_ids == tokens
    print(f"tokenization of {args.text}: {len(tokens)} llama.cpp ids, {len(collie_ids)} Collie ids, "
          f"{'equal' if same else 'DIFFERENT (first at ' + str(next((i for i, (a, b) in enumerate(zip(tokens, collie_ids)) if a != b), min(len(tokens), len(collie_ids)))) + ')'}")

    bos = llama_bos(args.llama_bin, files["f32"], work)
    reference = collie_perplexity(collie, model, tokens, args.context, args.chunks, work, bos)
    for outtype, tolerance in [("f32", 0.005), ("q8_0", 0.03)]:
        ppl = llama_perplexity(args.llama_bin, files[outtype], args.text, args.context, args.chunks)
        same_file = collie_perplexity(collie, files[outtype], tokens, args.context, args.chunks, work, bos)
        relative = abs(ppl - reference) / reference
        relative_same = abs(ppl - same_file) / same_file
        good = relative <= tolerance and relative_same <= tolerance
        ok &= good
        print(f"perplexity ({args.chunks} chunks of {args.context}): llama.cpp {outtype} {ppl:.4f}; Collie on the folder "
              f"{reference:.4f} (relative {relative:.2e}, limit {tolerance}), on the same {outtype} GGUF {same_file:.4f} "
              f"(relative {relative_same:.2e}) {'ok' if good else 'FAIL'}")

    simple = run([os.path.join(args.llama_bin, "llama-simple"), "-m", files["f32"], "-n", "24", PROMPT]).stdout
    theirs = simple.split(PROMPT, 1)[-1].rstrip("\n")
    generated = json.loads(run([collie, "generate", "--model", model, "--prompt", PROMPT, "--max-new-tokens", "24",
                                "--temperature", "0", "--json"]).stdout)
    ours = generated["text"]
    good = theirs.strip() == ours.strip() or theirs.startswith(ours) or ours.startswith(theirs)
    ok &= good
    print(f"greedy continuation of {PROMPT!r}:\n  llama.cpp: {theirs!r}\n  Collie:    {ours!r}\n  {'equal' if good else 'DIFFERENT'}")
    print("files in", work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
