"""What the Python scripts under scripts/ share: the repository root, the collie executable and a `collie serve`
child process, fixture writers (JSON, JSON lines, safetensors), the LLaMA presets of `collie bench`, and the
benchmarks' timing loop.

The scripts live in scripts/fixtures/ (fixture generators, make_*.py), scripts/bench/ (the PyTorch and
`tokenizers` sides of `collie bench`, bench_*) and scripts/checks/ (integration checks, check_*.py). Each one is
run as a file (`python3 scripts/checks/check_server.py`), so Python puts only its own folder on sys.path; it
imports this module from the folder above with

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import collie_scripts  # noqa: E402

Only the standard library is imported at module level. torch, transformers and safetensors are imported inside
the helpers that use them, so the checks (which need neither) can import this module, and bench_tokenizer.py can
set RAYON_NUM_THREADS before `tokenizers` is first imported.

The PyPI packages the scripts import, pinned: scripts/requirements.txt (`python3 -m pip install -r
scripts/requirements.txt`; scripts/setup.sh installs only the two that scripts/test.sh's checks need).
"""

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import time

# The repository root (scripts/..), with symbolic links resolved.
ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def repository_path(*parts):
    """A path inside the repository: repository_path("Tests", "CollieModelsTests", "Fixtures")."""
    return os.path.join(ROOT, *parts)


# MARK: - The collie executable and `collie serve`

def collie_executable(configuration="debug"):
    """The executable `swift build` (debug) or `swift build -c release` (release) writes."""
    return repository_path(".build", configuration, "collie")


def add_collie_argument(parser, configuration="debug"):
    """Adds --collie (default: .build/<configuration>/collie) to an argparse parser."""
    parser.add_argument("--collie", default=collie_executable(configuration),
                        help=f"the collie executable (default: .build/{configuration}/collie)")


def chat_model_folder(folder):
    """Copies the server tests' tiny chat model (Tests/CollieServerTests/Fixtures/chat-model, made by
    scripts/fixtures/make_server_fixtures.py) into folder/chat-model, with the bundled LLaMA-2 tokenizer.json
    beside it (the fixture does not duplicate it), and returns that path."""
    model = os.path.join(folder, "chat-model")
    shutil.copytree(repository_path("Tests", "CollieServerTests", "Fixtures", "chat-model"), model)
    shutil.copy(repository_path("tokenizers", "llama2", "tokenizer.json"), model)
    return model


def start_serve(collie, model, *arguments, stderr=subprocess.DEVNULL, timeout=120):
    """Starts `collie serve --model MODEL --port 0 ARGUMENTS...` on a free loopback port (one OpenBLAS thread) and
    waits up to `timeout` seconds for its "listening on" line. Returns (process, base URL such as
    http://127.0.0.1:PORT); exits the script when the server does not start. Stop it with `stop(process)`."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OPENBLAS_THREAD_TIMEOUT="4")
    process = subprocess.Popen([collie, "serve", "--model", model, "--port", "0", *arguments],
                               stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = process.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if match:
            return process, match.group(1)
        if not line:
            break
    process.kill()
    raise SystemExit("collie serve did not start")


def stop(process, signal_number=signal.SIGINT, timeout=15):
    """Sends `signal_number` (SIGINT: `collie serve` shuts down cleanly) and waits up to `timeout` seconds; kills
    the process if it is still running then."""
    process.send_signal(signal_number)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# MARK: - Fixture files

def write_json(path, value, newline=False, **options):
    """Writes `value` as JSON in UTF-8: json.dump with `options` (indent, sort_keys, ensure_ascii, separators as
    the fixture wants them), then a final newline when `newline`."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, **options)
        if newline:
            f.write("\n")


def write_jsonl(path, records, ensure_ascii=True):
    """Writes one JSON object per line (json.dumps with default separators), each line ending in a newline."""
    with open(path, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=ensure_ascii) + "\n")


def concatenated_json(path):
    """The JSON values of a file that holds them one after another (not an array, not one per line), as the
    bundled XSum and WMT samples in data/eval/ do."""
    text, decoder, objects, index = open(path, encoding="utf-8").read(), json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index >= len(text):
            return objects
        value, index = decoder.raw_decode(text, index)
        objects.append(value)


class TensorStore:
    """The tensors of one safetensors fixture, collected by name: each key once, each tensor a contiguous copy
    taken when it is put (later in-place updates of the original do not reach the file)."""

    def __init__(self):
        self.tensors = {}

    def put(self, key, value):
        assert key not in self.tensors, f"duplicate key {key}"
        self.tensors[key] = value.detach().contiguous().clone()

    def params(self, name, **values):
        """Hyper-parameters as 0-d float64 tensors `name.p.<key>` (integers and booleans as their float value)."""
        import torch
        for key, v in values.items():
            self.put(f"{name}.p.{key}", torch.tensor(float(v), dtype=torch.float64))

    def save(self, path):
        """Writes the file (creating its folder) and prints what was written."""
        from safetensors.torch import save_file
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        save_file(self.tensors, path)
        print(f"wrote {os.path.relpath(path, ROOT)}: {len(self.tensors)} tensors, {os.path.getsize(path)} bytes")


# MARK: - Benchmarks

# The reference LLaMA shapes of `collie bench train` (tiny, small), `collie bench generate` (the same) and
# `collie bench memory` (also 1b, TinyLlama-1.1B's shape, and 7b, LLaMA-2-7B's), each with its batch (rows, tokens per row).
LLAMA_PRESETS = {
    "tiny": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=4, batch=(4, 256)),
    "small": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                  num_key_value_heads=12, batch=(4, 512)),
    "1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
               num_key_value_heads=4, batch=(1, 256)),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, batch=(1, 512)),
}


def llama_preset(name, **config):
    """(transformers.LlamaConfig, (rows, tokens)) of a preset: vocabulary 32000, context 2048, untied embeddings,
    plus `config` (for example the special token ids)."""
    from transformers import LlamaConfig
    spec = dict(LLAMA_PRESETS[name])
    batch = spec.pop("batch")
    return LlamaConfig(vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False, **spec,
                       **config), batch


def add_bench_arguments(parser, presets, default):
    """Adds --preset (one of `presets`) and --threads (torch's intra-op threads; 2, as Collie's benches use) to an
    argparse parser."""
    parser.add_argument("--preset", choices=presets, default=default)
    parser.add_argument("--threads", type=int, default=2)


def seed_torch(threads, seed=0):
    """torch.set_num_threads(threads) and torch.manual_seed(seed): how every PyTorch bench starts."""
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(seed)


def median_seconds(repeats, body, prepare=None):
    """Median seconds of body() over `repeats` runs after one untimed warm-up; prepare() runs untimed before
    each (the loop of Collie's `Timing.measure`)."""
    if prepare:
        prepare()
    body()
    times = []
    for _ in range(repeats):
        if prepare:
            prepare()
        start = time.perf_counter_ns()
        body()
        times.append((time.perf_counter_ns() - start) / 1e9)
    return statistics.median(times)


def reset_peak_rss():
    """Resets the peak resident set (VmHWM) to the current one through /proc/self/clear_refs (Linux >= 4.0), so a
    later peak covers what follows; False where that is not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def timed_training_steps(model, optimizer, ids, steps, autocast_bf16=False, progress=None):
    """Runs steps + 1 AdamW-style training steps of `model` on `ids` (labels = ids); returns the median seconds
    of the last `steps` (the first warms up) and every step's loss. Shared by the training and memory benches.
    With autocast_bf16, forward and backward run inside torch.autocast("cpu", dtype=torch.bfloat16). A `progress`
    dict, when given, holds the running step's start ("started", time.perf_counter) and the losses so far."""
    import contextlib
    import torch
    times, losses = [], []
    for step in range(steps + 1):
        start = time.perf_counter()
        if progress is not None:
            progress.update(started=start, losses=losses)
        optimizer.zero_grad(set_to_none=True)
        scope = torch.autocast(device_type="cpu", dtype=torch.bfloat16) if autocast_bf16 else contextlib.nullcontext()
        with scope:
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step > 0:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2], losses

