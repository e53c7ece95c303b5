#!/usr/bin/env python3
"""Writes the `small` benchmark preset (hidden 768, intermediate 2048, 12 layers, 12 heads, vocabulary 32000, untied
lm_head: `collie bench generate --preset small`'s shape) as a Hugging Face folder with random weights (transformers'
initialization, seed 0) and the bundled LLaMA-2 tokenizer, so that `collie convert --outtype q8_0` can make a GGUF
file of it for llama.cpp and Collie to decode.

    python3 scripts/bench/make_small_preset.py OUT_FOLDER
"""

import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import collie_scripts  # noqa: E402


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                         num_key_value_heads=12, vocab_size=32000, max_position_embeddings=2048,
                         tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out, safe_serialization=True)
    for name in ["tokenizer.json", "tokenizer_config.json"]:
        shutil.copy(collie_scripts.repository_path("tokenizers", "llama2", name), out)
    print(f"wrote the small preset ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, float32) to {out}")


if __name__ == "__main__":
    main()
