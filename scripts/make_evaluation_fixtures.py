#!/usr/bin/env python3
"""Builds Tests/CollieModelsTests/Fixtures/evaluation/expected.json for Tests/CollieModelsTests/EvaluatorParityTests:
what transformers + PyTorch compute with the llama_mha fixture model (scripts/make_model_fixtures.py) for

  perplexity    five token sequences of different lengths: each one's summed next-token NLL (transformers' own
                loss × predicted tokens), the corpus perplexity exp(total NLL / total predicted tokens), and the
                mean over batches of 2 (in order) of exp(batch NLL / batch tokens) — CoLLiE's per-batch figure
  harness       six multiple-choice records (context ids, 2–4 options of 1–4 ids): each option's mean NLL per
                token after the context, from a plain PyTorch log-softmax over the logits, and the option with
                the lowest one

Run by hand from the repository root: python3 scripts/make_evaluation_fixtures.py (torch, transformers).
"""

import json
import math
import os

import torch
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "CollieModelsTests", "Fixtures")


def main():
    model = LlamaForCausalLM.from_pretrained(os.path.join(ROOT, "llama_mha"), attn_implementation="eager").eval()
    vocabulary = model.config.vocab_size
    generator = torch.Generator().manual_seed(7)

    sequences = [torch.randint(3, vocabulary, (n,), generator=generator).tolist() for n in [9, 4, 13, 6, 11]]
    sums, counts = [], []
    with torch.no_grad():
        for sequence in sequences:
            ids = torch.tensor([sequence])
            loss = model(input_ids=ids, labels=ids).loss.item()  # mean over the len-1 predicted tokens
            sums.append(loss * (len(sequence) - 1))
            counts.append(len(sequence) - 1)
    corpus = math.exp(sum(sums) / sum(counts))
    batches = [(0, 2), (2, 4), (4, 5)]
    batch_mean = sum(math.exp(sum(sums[a:b]) / sum(counts[a:b])) for a, b in batches) / len(batches)

    records = []
    with torch.no_grad():
        for _ in range(6):
            context = torch.randint(3, vocabulary, (int(torch.randint(2, 8, (1,), generator=generator)),),
                                    generator=generator).tolist()
            options = [torch.randint(3, vocabulary, (int(torch.randint(1, 5, (1,), generator=generator)),),
                                     generator=generator).tolist()
                       for _ in range(int(torch.randint(2, 5, (1,), generator=generator)))]
            means = []
            for option in options:
                ids = torch.tensor([context + option])
                log_probs = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
                nll = -sum(log_probs[len(context) - 1 + i, token].item() for i, token in enumerate(option))
                means.append(nll / len(option))
            records.append({"context": context, "options": options, "mean_nll": means,
                            "choice": min(range(len(means)), key=lambda i: (means[i], i))})

    os.makedirs(os.path.join(ROOT, "evaluation"), exist_ok=True)
    with open(os.path.join(ROOT, "evaluation", "expected.json"), "w") as f:
        json.dump({"sequences": sequences, "nll_sums": sums, "token_counts": counts, "perplexity": corpus,
                   "batch_size": 2, "batch_mean_perplexity": batch_mean, "harness": records}, f, indent=1)
    print(f"perplexity {corpus:.6f}, batch mean {batch_mean:.6f}, choices {[r['choice'] for r in records]}")


if __name__ == "__main__":
    main()
