#!/usr/bin/env python3
"""Builds Tests/CollieServerTests/Fixtures/chat-model/: a tiny random LLaMA (transformers' LlamaForCausalLM,
bfloat16, vocabulary of the bundled LLaMA-2 tokenizer, tied embeddings, 2 layers, hidden 16, GQA 2:1, context
512) with a tokenizer_config.json carrying the ChatML chat template, for the server tests
(Tests/CollieServerTests, scripts/check_server.py, scripts/check_chat_page.py). The tokenizer.json itself is
not duplicated: the tests copy tokenizers/llama2/tokenizer.json beside it.

    python3 scripts/make_server_fixtures.py
"""

import json
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "Tests", "CollieServerTests", "Fixtures", "chat-model")
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def main():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=32000, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.6)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        # End-of-sequence stays unlikely, so replies run to max_tokens and stream many chunks.
        model.model.embed_tokens.weight[2].mul_(0.05)
    shutil.rmtree(ROOT, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(ROOT)
    with open(os.path.join(HERE, "..", "tokenizers", "llama2", "tokenizer_config.json")) as f:
        tokenizer_config = json.load(f)
    tokenizer_config["chat_template"] = CHATML
    with open(os.path.join(ROOT, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2)


if __name__ == "__main__":
    main()
