"""The demo's job in PyTorch + transformers + lomo-optim, for `docs/PERFORMANCE.md` (a benchmark, not a test).

SmolLM2-135M-Instruct from the demo's GGUF (transformers dequantizes it to float32), the bundled Alpaca records as
one-turn chats in the model's template (the prompt masked, the reply and the template's turn end trained, cut at 256
tokens: what `chat_template: true` gives), batches of 4 records in file order (run `collie train
examples/alpaca/config.yaml --set shuffle=false` for the same batches), padded on the right as transformers pads,
and full-parameter AdaLomo with the global gradient norm clipped to 1.0 (lomo-optim: a norm pass, then the fused
update pass), lr 5e-4 cosine after one warmup update. Prints one JSON line per update (real tokens, seconds, loss)
and a summary with the peak resident memory. lomo-optim 0.1.1 allocates AdaLomo's state with `.cuda()`, which this
script makes a no-op on a CPU-only machine (as `bench_memory_torch.py` does).

    python scripts/bench/bench_demo_torch.py [--steps 16] [--threads 2]
"""
import argparse
import json
import math
import resource
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.Tensor.cuda = lambda self, *arguments, **keywords: self   # lomo-optim 0.1.1 puts its state on .cuda(): stay on the CPU
from lomo_optim import AdaLomo  # noqa: E402


def examples(tokenizer, records, max_length):
    """(ids, labels) per record: the chat's prompt masked with -100, the reply and its turn end trained."""
    for record in records:
        user = record["instruction"] + ("\n\n" + record["input"] if record.get("input") else "")
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                               add_generation_prompt=True)
        whole = tokenizer.apply_chat_template([{"role": "user", "content": user},
                                               {"role": "assistant", "content": record["output"]}], tokenize=False)
        assert whole.startswith(prompt), "the template does not start the conversation with its prompt"
        prompt_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        reply_ids = tokenizer(whole[len(prompt):], add_special_tokens=False).input_ids
        ids = (prompt_ids + reply_ids)[:max_length]
        labels = ([-100] * len(prompt_ids) + reply_ids)[:max_length]
        labels[0] = -100
        yield ids, labels


def padded(batch, pad_id):
    """Right-padded input_ids, attention_mask and labels (-100 at padding), as transformers' collators pad."""
    length = max(len(ids) for ids, _ in batch)
    ids = [i + [pad_id] * (length - len(i)) for i, _ in batch]
    mask = [[1] * len(i) + [0] * (length - len(i)) for i, _ in batch]
    labels = [l + [-100] * (length - len(l)) for _, l in batch]
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default="models")
    parser.add_argument("--gguf", default="SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--data", default="data/alpaca_en_demo.json")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir, gguf_file=args.gguf)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, gguf_file=args.gguf, dtype=torch.float32)
    model.train()
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    records = json.load(open(args.data))
    data = list(examples(tokenizer, records[: args.steps * args.batch], args.max_length))
    optimizer = AdaLomo(model, lr=args.lr, clip_grad_norm=1.0)

    total_seconds, total_tokens = 0.0, 0
    for step in range(args.steps):
        batch = padded(data[step * args.batch: (step + 1) * args.batch], pad_id)
        # transformers' cosine schedule with one warmup update (the demo's warmup_ratio 0.05 of 16).
        lr = args.lr * (step / 1 if step < 1 else 0.5 * (1 + math.cos(math.pi * (step - 1) / (args.steps - 1))))
        start = time.perf_counter()
        loss = model(**batch).loss
        optimizer.grad_norm(loss)
        optimizer.fused_backward(loss, lr)
        seconds = time.perf_counter() - start
        tokens = int(batch["attention_mask"].sum())
        total_seconds += seconds
        total_tokens += tokens
        print(json.dumps({"step": step + 1, "tokens": tokens, "padded_tokens": batch["input_ids"].numel(),
                          "seconds": round(seconds, 4), "loss": round(loss.item(), 6)}), flush=True)
    print(json.dumps({"updates": args.steps, "seconds": round(total_seconds, 3), "tokens": total_tokens,
                      "tokens_per_second": round(total_tokens / total_seconds, 2), "threads": args.threads,
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
