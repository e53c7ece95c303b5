#!/usr/bin/env python3
"""Perplexity of each quantized type, Collie against llama.cpp's llama-perplexity on the same GGUF file.

Run by hand (not in CI: it needs a llama.cpp build with llama-perplexity, llama-tokenize and llama-quantize):

    swift build -c release --product collie
    python3 scripts/checks/check_quantized_perplexity.py --collie .build/release/collie --llama-bin LLAMA_BUILD/bin \\
        --model HF_FOLDER [--gguf FILE ...] [--text FILE] [--context 512] [--chunks 24] [--keep FOLDER]

For the model (a Hugging Face folder, e.g. SmolLM2-135M-Instruct) it makes GGUF files of several types —
`collie convert --outtype` q8_0, q4_0 and q4_1; llama-quantize Q4_K_M and Q6_K from Collie's f32 export (llama-quantize
falls back to other types for tensors whose rows are not whole 256-value blocks: each file's tensor types are
printed) — plus any --gguf given, and on --text (chunks of --context tokens, each chunk's second half scored, as
check_gguf_llamacpp.py) computes for each file

  - llama.cpp: llama-perplexity with `-fa off -ctk f32 -ctv f32` (a float32 KV cache and plain attention, as Collie;
    its CPU backend rounds the activations to 8 bits per block for quantized weights);
  - Collie dense: `collie score` on the file dequantized at load (float32 weights, BLAS);
  - Collie quantized, float: `collie score --quantized` (blocks kept; the forward pass dequantizes tiles into BLAS,
    so it must equal dense up to summation order: within 1e-4 relative);
  - Collie quantized, int8: `collie score --quantized --activations int8`, one token at a time through the KV cache
    (decoding's kernels with 8-bit activations, llama.cpp's arithmetic): the goal is llama.cpp's number within
    --tolerance (1e-3 relative). A GGUF file's block-stored token embedding / output tensor is kept in its blocks
    and multiplied with 8-bit activations too, as llama.cpp does; docs/PERFORMANCE.md has the numbers, and the
    difference that remains there.

Exit status 1 when quantized float differs from dense by more than 1e-4 or int8 from llama.cpp by more than
--tolerance.
"""

import argparse
import collections
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collie_scripts  # noqa: E402
from check_gguf_llamacpp import collie_perplexity, llama_bos, llama_perplexity, llama_tokens, run  # noqa: E402


def tensor_types(path):
    from gguf import GGUFReader
    counts = collections.Counter(t.tensor_type.name for t in GGUFReader(path).tensors)
    return ", ".join(f"{n} {name}" for name, n in counts.most_common())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    collie_scripts.add_collie_argument(parser, configuration="release")
    parser.add_argument("--llama-bin", required=True, help="llama.cpp's build/bin folder")
    parser.add_argument("--model", required=True, help="a Hugging Face model folder with its tokenizer")
    parser.add_argument("--gguf", nargs="*", default=[], help="more GGUF files of the same model to measure")
    # 8-bit activations make a perplexity on a few hundred tokens move by up to 1% with any upstream float difference
    # (docs/PERFORMANCE.md): the default sample, 24 × 512 tokens (6,144 scored), is what a 1e-3 comparison needs.
    parser.add_argument("--text", default=collie_scripts.repository_path("data", "tinyshakespeare.txt"))
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--chunks", type=int, default=24)
    parser.add_argument("--tolerance", type=float, default=1e-3)
    parser.add_argument("--keep", help="keep the files in this folder (existing files there are reused)")
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="collie-quantized-ppl-")
    os.makedirs(work, exist_ok=True)
    collie = args.collie

    files = {}
    for outtype in ["f32", "q8_0", "q4_0", "q4_1"]:
        files[outtype] = os.path.join(work, f"model-{outtype}.gguf")
        if not os.path.exists(files[outtype]):
            run([collie, "convert", "--model", args.model, "--out", files[outtype], "--outtype", outtype])
    for quant in ["Q4_K_M", "Q6_K"]:
        files[quant.lower()] = os.path.join(work, f"model-{quant.lower()}.gguf")
        if not os.path.exists(files[quant.lower()]):
            run([os.path.join(args.llama_bin, "llama-quantize"), files["f32"], files[quant.lower()], quant, "2"])
    for path in args.gguf:
        files[os.path.basename(path)] = path

    tokens = llama_tokens(args.llama_bin, files["f32"], args.text)
    if len(tokens) < args.context * args.chunks:
        sys.exit(f"{args.text} has {len(tokens)} tokens; --context × --chunks needs {args.context * args.chunks}")
    bos = llama_bos(args.llama_bin, files["f32"], work)
    print(f"perplexity on {args.text} ({args.chunks} chunks of {args.context} tokens, second halves scored)")
    ok = True
    rows = []
    for name, path in files.items():
        if name == "f32":
            continue
        ppl = lambda *options: collie_perplexity(collie, path, tokens, args.context, args.chunks, work, bos, options)
        theirs = llama_perplexity(args.llama_bin, path, args.text, args.context, args.chunks,
                                  extra=("-fa", "off", "-ctk", "f32", "-ctv", "f32"))
        dense, blocks, int8 = ppl(), ppl("--quantized"), ppl("--quantized", "--activations", "int8")
        float_vs_dense = abs(blocks - dense) / dense
        int8_vs_llama = abs(int8 - theirs) / theirs
        good = float_vs_dense <= 1e-4 and int8_vs_llama <= args.tolerance
        ok &= good
        rows.append((name, tensor_types(path), theirs, dense, blocks, int8))
        print(f"{name} ({tensor_types(path)}): llama.cpp {theirs:.4f}; Collie dense {dense:.4f} "
              f"(vs llama.cpp {abs(dense - theirs) / theirs:.2e}), quantized float {blocks:.4f} (vs dense "
              f"{float_vs_dense:.2e}), quantized int8 {int8:.4f} (vs llama.cpp {int8_vs_llama:.2e}) "
              f"{'ok' if good else 'OVER'}", flush=True)
    print("\n| file | tensor types | llama.cpp | Collie dense | Collie blocks, float | Collie blocks, int8 | int8 vs llama.cpp |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, types, theirs, dense, blocks, int8 in rows:
        print(f"| {name} | {types} | {theirs:.4f} | {dense:.4f} | {blocks:.4f} | {int8:.4f} | "
              f"{(int8 - theirs) / theirs:+.2e} |")
    print("files in", work)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
