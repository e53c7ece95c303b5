#!/usr/bin/env python3
"""Builds Tests/CollieGenerationTests/Fixtures/: what transformers' generate, logits processors and
apply_chat_template produce, for Tests/CollieGenerationTests.

Run by hand (never by CI) from the repository root, with PyTorch and transformers (>= 5) installed:

    python3 scripts/make_generation_fixtures.py

models/<variant>/     tiny random models (save_pretrained: config.json, generation_config.json,
                      model.safetensors), float32, 2 layers, vocabulary 96, weights re-initialized with a
                      large spread (projections N(0, 0.2²), embeddings/lm_head N(0, 0.3²), biases
                      N(0, 0.1²), norms U(0.6, 1.4)) so greedy choices are far from ties. No EOS id, so
                      every continuation runs its full length.
greedy.json           per variant: model.generate(do_sample=False, max_new_tokens=72) of one prompt, of a
                      left-padded batch of two prompts (attention_mask), and of the single prompt with
                      repetition_penalty=1.3.
processors.json       logits rows and what RepetitionPenaltyLogitsProcessor(1.5), TemperatureLogitsWarper
                      (0.7), TopKLogitsWarper(7) and TopPLogitsWarper(0.8) make of them, in generate's order.
prompt_tuning.json    llama_gqa with a PEFT prompt-tuning adapter (4 virtual tokens, embeddings N(0, 0.3²); saved
                      with save_pretrained in models/llama_gqa_prompt_tuning/): greedy continuations of three
                      prompts, each alone, by PEFT's forward (see make_prompt_tuning). `--only prompt_tuning`
                      rebuilds just this.
chat_templates.json   real chat templates (LLaMA-2 chat, Llama-3 instruct, Qwen2 ChatML, Zephyr) and
                      tokenizer.apply_chat_template(..., tokenize=False) of several conversations.
"""

import json
import os
import shutil
import sys

import torch
from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, PreTrainedTokenizerFast)
from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieGenerationTests", "Fixtures")
VOCAB, NEW_TOKENS = 96, 72
COMMON = dict(vocab_size=VOCAB, num_hidden_layers=2, max_position_embeddings=256, bos_token_id=1,
              eos_token_id=None, pad_token_id=0)


def variants():
    return [
        ("llama_mha", LlamaForCausalLM, LlamaConfig,
         dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=4)),
        ("llama_gqa", LlamaForCausalLM, LlamaConfig,
         dict(hidden_size=48, intermediate_size=64, num_attention_heads=6, num_key_value_heads=2,
              rope_parameters={"rope_type": "default", "rope_theta": 500000.0})),
        ("llama_tied", LlamaForCausalLM, LlamaConfig,
         dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=1,
              tie_word_embeddings=True)),
        ("qwen2", Qwen2ForCausalLM, Qwen2Config,
         dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
              tie_word_embeddings=False)),
        ("mistral_sliding_window", MistralForCausalLM, MistralConfig,
         dict(hidden_size=32, intermediate_size=64, num_attention_heads=4, num_key_value_heads=2,
              sliding_window=16)),
    ]


def reinitialize(model):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.8 + 0.6)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif "embed" in name or "lm_head" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def greedy(model, prompts, **kwargs):
    longest = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (longest - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (longest - len(p)) + [1] * len(p) for p in prompts])
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=NEW_TOKENS,
                         min_new_tokens=NEW_TOKENS, pad_token_id=0, **kwargs)
    return out[:, longest:].tolist()


def make_models():
    results = {}
    for name, model_class, config_class, kwargs in variants():
        torch.manual_seed(0)
        config = config_class(**COMMON, **kwargs)
        config._attn_implementation = "eager"
        model = model_class(config).eval()
        reinitialize(model)
        folder = os.path.join(ROOT, "models", name)
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(folder)
        reloaded = model_class.from_pretrained(folder, attn_implementation="eager").eval()
        single = [1, 17, 42, 5, 88, 23, 9]
        batch = [[1, 30, 61, 7, 12], [1, 45, 3, 77, 18, 50, 64, 29, 11]]
        with torch.no_grad():
            results[name] = dict(
                prompt=single, greedy=greedy(reloaded, [single])[0],
                batch_prompts=batch, batch_greedy=greedy(reloaded, batch),
                repetition_penalty=1.3, greedy_with_penalty=greedy(reloaded, [single], repetition_penalty=1.3)[0])
            # Greedy without a cache must agree (transformers' own check of its cache).
            no_cache = reloaded.generate(input_ids=torch.tensor([single]), do_sample=False, max_new_tokens=NEW_TOKENS,
                                         min_new_tokens=NEW_TOKENS, pad_token_id=0, use_cache=False)
            assert no_cache[0, len(single):].tolist() == results[name]["greedy"], name
    return results


def make_prompt_tuning():
    """PeftModel.generate without a cache, which is PEFT's forward applied token by token (virtual tokens at positions
    0..n-1, the prompt after them). With the cache, peft 0.21.2 + transformers 5.24 number the first new token as
    if the virtual tokens were not there and drift from that forward after a token or two; Collie matches the
    forward. Each prompt alone: with left padding PEFT also numbers the padding (it drops position ids), while
    Collie decodes a padded row exactly as the prompt alone, so its batch is checked against these."""
    from peft import PeftModel, PromptTuningConfig, get_peft_model
    folder = os.path.join(ROOT, "models", "llama_gqa")
    base = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    torch.manual_seed(0)
    model = get_peft_model(base, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4,
                                                    prompt_tuning_init="RANDOM"))
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():
        weight = model.prompt_encoder["default"].embedding.weight
        weight.copy_(torch.randn(weight.shape, generator=g) * 0.3)
    adapter = os.path.join(ROOT, "models", "llama_gqa_prompt_tuning")
    shutil.rmtree(adapter, ignore_errors=True)
    model.peft_config["default"].base_model_name_or_path = "../llama_gqa"
    model.save_pretrained(adapter)
    os.remove(os.path.join(adapter, "README.md"))   # PEFT's model-card template
    base = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    reloaded = PeftModel.from_pretrained(base, adapter).eval()

    def alone(prompt):
        out = reloaded.generate(input_ids=torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, pad_token_id=0,
                                use_cache=False)
        return out[0, len(prompt):].tolist()

    prompts = [[1, 17, 42, 5, 88, 23, 9], [1, 30, 61, 7, 12], [1, 45, 3, 77, 18, 50, 64, 29, 11]]
    with torch.no_grad():
        greedy_ids = [alone(p) for p in prompts]
        # The first prompt once more, as PEFT's forward over the whole sequence picks each token.
        ids = list(prompts[0])
        for _ in range(NEW_TOKENS):
            logits = reloaded(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long)).logits
            ids.append(int(logits[0, -1].argmax()))
        assert ids[len(prompts[0]):] == greedy_ids[0]
    return dict(base="llama_gqa", adapter="llama_gqa_prompt_tuning", prompts=prompts, greedy=greedy_ids)


def make_processors():
    g = torch.Generator().manual_seed(7)
    scores = torch.randn(3, 40, generator=g) * 3
    input_ids = torch.tensor([[1, 5, 5, 9, 30], [2, 3, 4, 39, 0], [7, 7, 7, 7, 7]])
    stages = [("repetition_penalty", RepetitionPenaltyLogitsProcessor(1.5)),
              ("temperature", TemperatureLogitsWarper(0.7)),
              ("top_k", TopKLogitsWarper(7)),
              ("top_p", TopPLogitsWarper(0.8))]
    out = dict(scores=scores.tolist(), input_ids=input_ids.tolist(), penalty=1.5, temperature=0.7, top_k=7, top_p=0.8)
    current = scores.clone()
    for name, processor in stages:
        current = processor(input_ids, current.clone())
        out["after_" + name] = [[None if v == float("-inf") else v for v in row] for row in current.tolist()]
    # Each warper alone on the raw scores, too.
    for name, processor in stages[2:]:
        alone = processor(input_ids, scores.clone())
        out["only_" + name] = [[None if v == float("-inf") else v for v in row] for row in alone.tolist()]
    return out


LLAMA2 = ("{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = "
          "messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}"
          "{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
          "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
          "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
          "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}"
          "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
          "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}"
          "{% endfor %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + "
          "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
          "{% endif %}")
CHATML = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
          "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
          "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
ZEPHYR = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
          "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n"
          "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
# A multi-line template with whitespace control, namespace(), is-tests, filters and slicing.
WHITESPACE = """{%- set ns = namespace(system='', count=0) -%}
{%- for message in messages -%}
    {%- if message.role == 'system' -%}
        {%- set ns.system = message.content | trim -%}
    {%- endif -%}
{%- endfor %}
{%- if ns.system is defined and ns.system | length > 0 %}
[system: {{ ns.system | upper }}]
{%- endif %}
{% for message in messages if message.role != 'system' %}
  {%- set ns.count = ns.count + 1 %}
  {{ loop.index }}/{{ loop.length }} {{ message['role'] ~ ': ' ~ message['content'][:20] }}{% if not loop.last %},{% endif %}
{% endfor -%}
{{ 'turns=' ~ ns.count ~ (' <gen>' if add_generation_prompt else '') }}
{%- if eos_token is none or eos_token is not string %}?{% else %}{{ eos_token | tojson }}{% endif %}"""


def make_chat_templates():
    conversations = [
        [{"role": "user", "content": "Hello, who are you?"}],
        [{"role": "system", "content": "You are a terse assistant."},
         {"role": "user", "content": "  Name three colors. "},
         {"role": "assistant", "content": "Red, green, blue."},
         {"role": "user", "content": "And two more?\nPlease."}],
        [{"role": "user", "content": "Unicode: café, 日本語, emoji 🙂"},
         {"role": "assistant", "content": "Noted."}],
    ]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tokenizers", "llama2"))
    cases = []
    for name, template in [("llama2", LLAMA2), ("llama3", LLAMA3), ("chatml", CHATML), ("zephyr", ZEPHYR),
                           ("whitespace_control", WHITESPACE)]:
        for index, conversation in enumerate(conversations):
            for add in (True, False):
                try:
                    text = tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=False,
                                                         add_generation_prompt=add)
                    error = None
                except Exception as e:  # the LLaMA-2 template rejects non-alternating roles
                    text, error = None, str(e)
                cases.append(dict(template=name, conversation=index, add_generation_prompt=add, text=text,
                                  error=error))
    return dict(templates={"llama2": LLAMA2, "llama3": LLAMA3, "chatml": CHATML, "zephyr": ZEPHYR,
                           "whitespace_control": WHITESPACE},
                bos_token=tokenizer.bos_token, eos_token=tokenizer.eos_token,
                conversations=conversations, cases=cases)


def main():
    os.makedirs(ROOT, exist_ok=True)
    if sys.argv[1:] == ["--only", "prompt_tuning"]:
        with open(os.path.join(ROOT, "prompt_tuning.json"), "w") as f:
            json.dump(make_prompt_tuning(), f, indent=1)
        return
    with open(os.path.join(ROOT, "greedy.json"), "w") as f:
        json.dump(make_models(), f, indent=1)
    with open(os.path.join(ROOT, "processors.json"), "w") as f:
        json.dump(make_processors(), f, indent=1)
    with open(os.path.join(ROOT, "chat_templates.json"), "w") as f:
        json.dump(make_chat_templates(), f, indent=1, ensure_ascii=False)
    with open(os.path.join(ROOT, "prompt_tuning.json"), "w") as f:
        json.dump(make_prompt_tuning(), f, indent=1)


if __name__ == "__main__":
    main()
