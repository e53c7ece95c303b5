#!/usr/bin/env python3
"""PyTorch counterpart of `collie bench ops`: the same shapes and ops, timed the same way.

    python3 scripts/bench/bench_ops_torch.py [--repeats N] [--json] [--json-file PATH] [--only GROUPS]
    python3 scripts/bench/bench_ops_torch.py --compare collie.json torch.json   # side-by-side Markdown

Every figure is the median of --repeats timed runs after one untimed warm-up, on inputs allocated
beforehand, with torch.set_num_threads(2). Forward-only rows run under torch.no_grad(); forward+
backward rows reset activation gradients (inputs) before each run and keep parameter gradients,
as `collie bench ops` does. Byte counts (bytes an ideal kernel must read and write) use the same
formulas as Collie's, so GB/s compare directly. OpenBLAS/MKL environment variables are printed,
never changed.

The PyPI packages it imports are pinned in scripts/requirements.txt.
"""

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collie_scripts import median_seconds, reset_peak_rss, seed_torch  # noqa: E402

GROUPS = ["attention-memory", "matmul", "fused", "attention"]
THREADS = 2

MATMUL_SHAPES = [(2048, 768, 768), (2048, 768, 3072), (2048, 3072, 768), (512, 768, 32000)]
TOKENS, HIDDEN, VOCAB, SWIGLU_WIDTH = 2048, 768, 32000, 2048
ATTENTION_SHAPES = [(1, 2048, 8, 64), (4, 512, 12, 64)]  # B, T, H, D
MEMORY_SHAPE = (1, 2048, 8, 64)


def progress(message):
    print(f"· {message}", file=sys.stderr, flush=True)


def uniform(shape, seed, scale=1.0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(shape, generator=g) * 2 - 1) * scale
    return t.requires_grad_(requires_grad)


def ids(shape, bound, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, bound, shape, generator=g)


class LlamaRMSNorm(torch.nn.Module):
    """transformers' LlamaRMSNorm (transformers/models/llama/modeling_llama.py), verbatim in substance."""

    def __init__(self, hidden_size, eps=1e-6):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states):
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        return self.weight * hidden_states.to(input_dtype)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(x, cos, sin):
    """Hugging Face's apply_rotary_pos_emb for x [B, T, H, D] and cos/sin [1, T, 1, D]."""
    return (x * cos) + (rotate_half(x) * sin)


# ----------------------------------------------------------------------------- matmul

def bench_matmul(repeats):
    rows = []
    for m, k, n in MATMUL_SHAPES:
        progress(f"matmul {m}×{k}×{n}")
        a_mk, a_km = uniform((m, k), 1), uniform((k, m), 2)
        b_kn, b_nk = uniform((k, n), 3), uniform((n, k), 4)
        flop = 2.0 * m * n * k

        def row(op, flop, seconds):
            return {"op": op, "m": m, "k": k, "n": n, "gflop": flop / 1e9, "ms": seconds * 1e3,
                    "gflops": flop / seconds / 1e9}

        with torch.no_grad():
            for ta, tb in [(False, False), (False, True), (True, False), (True, True)]:
                a = a_km.t() if ta else a_mk
                b = b_nk.t() if tb else b_kn
                seconds = median_seconds(repeats, lambda: torch.matmul(a, b))
                rows.append(row("matmul " + ("T" if ta else "N") + ("T" if tb else "N"), flop, seconds))
            rows.append(row("linear fwd", flop, median_seconds(repeats, lambda: F.linear(a_mk, b_nk))))

        xg = uniform((m, k), 5, requires_grad=True)
        wg = uniform((n, k), 6, requires_grad=True)
        wg.grad = torch.zeros(n, k)
        dy = uniform((m, n), 7)
        state = {}

        def prepare():
            xg.grad = None
            state["y"] = F.linear(xg, wg)

        seconds = median_seconds(repeats, lambda: state["y"].backward(dy), prepare)
        rows.append(row("linear bwd", 2 * flop, seconds))
    return rows


# ----------------------------------------------------------------------------- copy and fused

def bench_copy(repeats):
    rows = []
    for mib in [256, 6]:
        progress(f"copy {mib} MiB")
        count = (mib << 20) // 4
        src = uniform((count,), 9)
        dst = torch.zeros(count)
        seconds = median_seconds(max(repeats, 5), lambda: dst.copy_(src))
        rows.append({"name": "copy_", "mebibytes": mib, "threads": torch.get_num_threads(), "ms": seconds * 1e3,
                     "gbPerSecond": 2.0 * count * 4 / seconds / 1e9})
    return rows


def bench_fused(repeats, copy_bound):
    rows = []
    n, c, vocab = TOKENS, HIDDEN, VOCAB
    f = 4.0

    def add(op, shape, forward_bytes, backward_bytes, forward, prepare, forward_backward):
        progress(f"{op} {shape}")
        with torch.no_grad():
            fwd = median_seconds(repeats, forward)
        both = median_seconds(repeats, forward_backward, prepare)
        for pass_, nbytes, seconds in [("fwd", forward_bytes, fwd), ("fwd+bwd", forward_bytes + backward_bytes, both)]:
            gbs = nbytes / seconds / 1e9
            rows.append({"op": op, "pass": pass_, "shape": shape, "megabytes": nbytes / 1e6, "ms": seconds * 1e3,
                         "gbPerSecond": gbs, "fractionOfCopy": gbs / copy_bound if copy_bound else 0})

    # RMSNorm [N, C] as LlamaRMSNorm.
    x = uniform((n, c), 11, requires_grad=True)
    norm = LlamaRMSNorm(c, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(uniform((c,), 12))
    norm.weight.grad = torch.zeros(c)
    dy = uniform((n, c), 13)
    nc = float(n * c)
    add("rmsnorm", f"[{n}, {c}]", f * (2 * nc + c), f * (3 * nc + 3 * c),
        lambda: norm(x), lambda: setattr(x, "grad", None), lambda: norm(x).backward(dy))

    # LayerNorm [N, C] with bias.
    x = uniform((n, c), 21, requires_grad=True)
    w = uniform((c,), 22, requires_grad=True)
    b = uniform((c,), 23, requires_grad=True)
    w.grad, b.grad = torch.zeros(c), torch.zeros(c)
    dy2 = uniform((n, c), 24)
    add("layernorm", f"[{n}, {c}]", f * (2 * nc + 2 * c), f * (3 * nc + 5 * c),
        lambda: F.layer_norm(x, (c,), w, b, 1e-5), lambda: setattr(x, "grad", None),
        lambda: F.layer_norm(x, (c,), w, b, 1e-5).backward(dy2))

    # RoPE, rotate-half, [B4, T512, H12, D64]; bytes as Collie's (x, y and the cos/sin half-tables).
    bsz, t, h, d = 4, 512, 12, 64
    xr = uniform((bsz, t, h, d), 31, requires_grad=True)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
    freqs = torch.outer(torch.arange(t).float(), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, :, None, :], emb.sin()[None, :, None, :]
    dyr = uniform((bsz, t, h, d), 32)
    rope_bytes = f * (2 * xr.numel() + 2 * t * (d // 2))
    add("rope", f"[{bsz}, {t}, {h}, {d}]", rope_bytes, rope_bytes,
        lambda: apply_rotary(xr, cos, sin), lambda: setattr(xr, "grad", None),
        lambda: apply_rotary(xr, cos, sin).backward(dyr))

    # SwiGLU [N, 2048]: silu(gate) * up.
    width = SWIGLU_WIDTH
    gate = uniform((n, width), 41, scale=4, requires_grad=True)
    up = uniform((n, width), 42, requires_grad=True)
    dys = uniform((n, width), 43)
    e = float(n * width)

    def reset_swiglu():
        gate.grad = None
        up.grad = None

    add("swiglu", f"[{n}, {width}]", f * 3 * e, f * 5 * e,
        lambda: F.silu(gate) * up, reset_swiglu, lambda: (F.silu(gate) * up).backward(dys))

    # Cross-entropy [N, V].
    logits = uniform((n, vocab), 51, scale=4, requires_grad=True)
    targets = ids((n,), vocab, 52)
    e = float(n * vocab)
    add("cross_entropy", f"[{n}, {vocab}]", f * e + 8 * n, 2 * f * e + 8 * n,
        lambda: F.cross_entropy(logits, targets), lambda: setattr(logits, "grad", None),
        lambda: F.cross_entropy(logits, targets).backward())

    # Embedding: ids [4, 512] into [V, C]; the table's gradient is kept (accumulated into).
    tok = ids((4, 512), vocab, 61)
    distinct = float(torch.unique(tok).numel())
    table = uniform((vocab, c), 62, requires_grad=True)
    table.grad = torch.zeros(vocab, c)
    dye = uniform((4, 512, c), 63)
    add("embedding", f"[4, 512] of [{vocab}, {c}]", 2 * f * nc + 8 * n, f * (nc + 2 * distinct * c) + 8 * n,
        lambda: F.embedding(tok, table), lambda: None, lambda: F.embedding(tok, table).backward(dye))

    # Elementwise add [N, C]; the backward passes dy through.
    a = uniform((n, c), 71, requires_grad=True)
    b2 = uniform((n, c), 72, requires_grad=True)
    dya = uniform((n, c), 73)

    def reset_add():
        a.grad = None
        b2.grad = None

    add("add", f"[{n}, {c}]", f * 3 * nc, 0, lambda: a + b2, reset_add, lambda: (a + b2).backward(dya))
    return rows


# ----------------------------------------------------------------------------- attention

def attention_inputs(bsz, t, h, d, seed, requires_grad=True):
    """q, k, v in Collie's [B, T, H, D] memory layout, viewed as [B, H, T, D] for SDPA."""
    return [uniform((bsz, t, h, d), seed + i, requires_grad=requires_grad) for i in range(3)]


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)


def has_bf16_hardware():
    """Whether the CPU multiplies bfloat16 in hardware (AVX512_BF16 or AMX-BF16), as Collie's bf16 rows need."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bench_attention(repeats):
    # bf16: CPU autocast, as the training benchmark's --mixed-precision bf16 (Collie: mixed_precision: bf16).
    precisions = ["fp32"] + (["bf16"] if has_bf16_hardware() else [])
    rows = []
    for bsz, t, h, d in ATTENTION_SHAPES:
        for precision in precisions:
            progress(f"attention B{bsz} T{t} H{h} D{d} {precision}")
            q, k, v = attention_inputs(bsz, t, h, d, 81)
            d_out = uniform((bsz, h, t, d), 84)
            forward_flop = 4.0 * bsz * h * t * t * d / 2
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
            with torch.no_grad(), autocast:
                fwd = median_seconds(repeats, lambda: sdpa(q, k, v))

            def reset():
                q.grad = k.grad = v.grad = None

            def forward_backward():
                with autocast:
                    out = sdpa(q, k, v)
                out.backward(d_out.to(out.dtype))

            both = median_seconds(repeats, forward_backward, reset)
            shape = f"[{bsz}, {t}, {h}, {d}]"
            rows.append({"shape": shape, "precision": precision, "pass": "fwd", "gflop": forward_flop / 1e9,
                         "ms": fwd * 1e3, "gflops": forward_flop / fwd / 1e9})
            rows.append({"shape": shape, "precision": precision, "pass": "fwd+bwd", "gflop": 3.5 * forward_flop / 1e9,
                         "ms": both * 1e3, "gflops": 3.5 * forward_flop / both / 1e9})
    return rows


def max_rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def attention_memory():
    """Peak RSS growth of one SDPA forward+backward; run in a process that has done nothing else."""
    bsz, t, h, d = MEMORY_SHAPE
    q, k, v = attention_inputs(1, 128, h, d, 90)  # warm-up: thread pool, allocator, kernels
    sdpa(q, k, v).backward(uniform((1, h, 128, d), 93))
    del q, k, v
    cleared = reset_peak_rss()
    baseline = max_rss_kib()
    q, k, v = attention_inputs(bsz, t, h, d, 94)
    d_out = uniform((bsz, h, t, d), 97)
    sdpa(q, k, v).backward(d_out)
    assert q.grad is not None and k.grad is not None and v.grad is not None
    peak = max_rss_kib()
    mib = 1024.0 * 1024
    tensor = bsz * h * t * d * 4 / mib
    growth = (peak - baseline) / 1024
    return {"shape": f"[{bsz}, {t}, {h}, {d}]", "baselineMaxRSSKiB": baseline, "peakMaxRSSKiB": peak,
            "growthMiB": growth, "clearRefsWorked": cleared, "scoreMatrixMiB": bsz * h * t * t * 4 / mib,
            "unavoidableMiB": 8 * tensor, "extraMiB": growth - 8 * tensor}


def attention_memory_in_child():
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--only", "attention-memory", "--json"],
                         check=True, stdout=subprocess.PIPE)
    return json.loads(out.stdout)["attentionMemory"]


# ----------------------------------------------------------------------------- output

def load_average():
    try:
        with open("/proc/loadavg") as handle:
            return " ".join(handle.read().split()[:3])
    except OSError:
        return "?"


def cpu_seconds():
    """Machine-wide busy CPU seconds (/proc/stat, all but idle and iowait), own CPU seconds
    (this process and its waited-for children) and a wall clock."""
    try:
        with open("/proc/stat") as handle:
            fields = [float(v) for v in handle.readline().split()[1:9]]
    except OSError:
        fields = []
    busy = sum(v for i, v in enumerate(fields) if i not in (3, 4)) / os.sysconf("SC_CLK_TCK")
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        own += usage.ru_utime + usage.ru_stime
    return busy, own, time.monotonic()


def others_percent(start):
    """CPU time other processes used since `start`, in % of one CPU."""
    end = cpu_seconds()
    others = (end[0] - start[0]) - (end[1] - start[1])
    return max(0.0, others) / max(end[2] - start[2], 1e-9) * 100


def host_info():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env = os.environ
    return {"cpu": cpu, "onlineProcessors": os.cpu_count(), "torch": torch.__version__,
            "torchThreads": torch.get_num_threads(), "cpuCapability": torch.backends.cpu.get_cpu_capability(),
            "mkl": torch.backends.mkl.is_available(),
            "openblasCoretype": env.get("OPENBLAS_CORETYPE"), "openblasNumThreads": env.get("OPENBLAS_NUM_THREADS"),
            "openblasL2Size": env.get("OPENBLAS_L2_SIZE"), "openblasThreadTimeout": env.get("OPENBLAS_THREAD_TIMEOUT"),
            "ompNumThreads": env.get("OMP_NUM_THREADS"),
            "loadAverageBefore": load_average(), "loadAverageAfter": None, "otherProcessesCPUPercent": None}


def table(header, rows):
    all_rows = [header] + rows
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(header))]

    def line(cells):
        return "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(cells))

    print(line(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def print_report(report):
    host = report["host"]
    print(f"bench_ops_torch — {host['cpu']}, {host['onlineProcessors']} online processors, torch {host['torch']}"
          f" ({host['torchThreads']} threads, {host['cpuCapability']}, MKL {host['mkl']})")
    print(f"OPENBLAS_CORETYPE={host['openblasCoretype'] or '(unset)'}  "
          f"OPENBLAS_NUM_THREADS={host['openblasNumThreads'] or '(unset)'}  "
          f"OPENBLAS_L2_SIZE={host['openblasL2Size'] or '(unset)'}  "
          f"OPENBLAS_THREAD_TIMEOUT={host['openblasThreadTimeout'] or '(unset)'}  OMP_NUM_THREADS={host['ompNumThreads'] or '(unset)'}")
    print(f"load average: {host['loadAverageBefore']}")
    m = report.get("attentionMemory")
    if m:
        print(f"\nAttention peak memory, forward+backward, q/k/v {m['shape']} [B, T, H, D], fresh process")
        table(["quantity", "MiB"], [
            ["peak RSS growth", f"{m['growthMiB']:.1f}"],
            ["q, k, v, out and their gradients (8 tensors)", f"{m['unavoidableMiB']:.1f}"],
            ["growth beyond those", f"{m['extraMiB']:.1f}"],
            ["one T×T fp32 score matrix per head (H·T²·4)", f"{m['scoreMatrixMiB']:.1f}"],
        ])
        print(f"(ru_maxrss {m['baselineMaxRSSKiB']} → {m['peakMaxRSSKiB']} KiB; "
              f"peak reset via clear_refs: {'yes' if m['clearRefsWorked'] else 'no'})")
    if report.get("matmul"):
        print("\nMatmul, float32 (torch.matmul with .t() views, F.linear)")
        table(["op", "M×K×N", "GFLOP", "ms", "GFLOP/s"],
              [[r["op"], f"{r['m']}×{r['k']}×{r['n']}", f"{r['gflop']:.2f}", f"{r['ms']:.2f}", f"{r['gflops']:.1f}"]
               for r in report["matmul"]])
    if report.get("copy"):
        print("\nMemory copy bound (GB/s = bytes read + written per second)")
        table(["copy", "MiB", "threads", "ms", "GB/s"],
              [[c["name"], str(c["mebibytes"]), str(c["threads"]), f"{c['ms']:.2f}", f"{c['gbPerSecond']:.1f}"]
               for c in report["copy"]])
    if report.get("fused"):
        print("\nFused ops, float32 (GB/s = bytes necessarily read + written / time; % of the 256 MiB copy)")
        table(["op", "pass", "shape", "MB", "ms", "GB/s", "of copy"],
              [[r["op"], r["pass"], r["shape"], f"{r['megabytes']:.1f}", f"{r['ms']:.3f}", f"{r['gbPerSecond']:.1f}",
                f"{r['fractionOfCopy'] * 100:.1f}%"] for r in report["fused"]])
    if report.get("attention"):
        print("\nCausal attention, [B, T, H, D] (FLOPs: 4·B·H·T²·D/2 forward, 3.5× that forward+backward; bf16: "
              "CPU autocast)")
        table(["shape", "precision", "pass", "GFLOP", "ms", "GFLOP/s"],
              [[r["shape"], r.get("precision", "fp32"), r["pass"], f"{r['gflop']:.2f}", f"{r['ms']:.2f}",
                f"{r['gflops']:.1f}"] for r in report["attention"]])
    print(f"\nload average before: {host['loadAverageBefore']}; after: {host['loadAverageAfter']}; "
          f"CPU used by other processes during the run: {host['otherProcessesCPUPercent']:.1f}% of one CPU")


def compare(collie_path, torch_path):
    """Prints Markdown tables of Collie's and PyTorch's results side by side."""
    with open(collie_path) as handle:
        col = json.load(handle)
    with open(torch_path) as handle:
        tor = json.load(handle)

    def md(header, rows):
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        for r in rows:
            print("| " + " | ".join(r) + " |")
        print()

    tm = {(r["op"], r["m"], r["k"], r["n"]): r for r in tor.get("matmul", [])}
    if col.get("matmul"):
        md(["op", "M×K×N", "Collie GFLOP/s", "direct sgemm GFLOP/s", "Collie/direct", "PyTorch GFLOP/s",
            "Collie/PyTorch"],
           [[r["op"], f"{r['m']}×{r['k']}×{r['n']}", f"{r['engineGflops']:.1f}", f"{r['directGflops']:.1f}",
             f"{r['ratio'] * 100:.0f}%",
             f"{tm[(r['op'], r['m'], r['k'], r['n'])]['gflops']:.1f}" if (r['op'], r['m'], r['k'], r['n']) in tm else "–",
             f"{r['engineGflops'] / tm[(r['op'], r['m'], r['k'], r['n'])]['gflops']:.2f}×"
             if (r['op'], r['m'], r['k'], r['n']) in tm else "–"]
            for r in col["matmul"]])
    if col.get("copy") or tor.get("copy"):
        md(["copy", "MiB", "threads", "GB/s"],
           [[f"Collie {c['name']}", str(c["mebibytes"]), str(c["threads"]), f"{c['gbPerSecond']:.1f}"]
            for c in col.get("copy", [])]
           + [[f"PyTorch {c['name']}", str(c["mebibytes"]), str(c["threads"]), f"{c['gbPerSecond']:.1f}"]
              for c in tor.get("copy", [])])
    tf = {(r["op"], r["pass"]): r for r in tor.get("fused", [])}
    if col.get("fused"):
        rows = []
        for r in col["fused"]:
            t = tf.get((r["op"], r["pass"]))
            rows.append([r["op"], r["pass"], r["shape"], f"{r['megabytes']:.1f}", f"{r['ms']:.3f}",
                         f"{r['gbPerSecond']:.1f}", f"{r['fractionOfCopy'] * 100:.0f}%",
                         f"{t['ms']:.3f}" if t else "–", f"{t['gbPerSecond']:.1f}" if t else "–",
                         f"{t['ms'] / r['ms']:.2f}×" if t else "–"])
        md(["op", "pass", "shape", "MB", "Collie ms", "Collie GB/s", "Collie % of copy", "PyTorch ms",
            "PyTorch GB/s", "Collie speed / PyTorch"], rows)
    # Reports written before the precision column are float32.
    ta = {(r["shape"], r.get("precision", "fp32"), r["pass"]): r for r in tor.get("attention", [])}
    if col.get("attention"):
        rows = []
        for r in col["attention"]:
            precision = r.get("precision", "fp32")
            t = ta.get((r["shape"], precision, r["pass"]))
            rows.append([r["shape"], precision, r["pass"], f"{r['gflop']:.2f}", f"{r['ms']:.1f}", f"{r['gflops']:.1f}",
                         f"{t['ms']:.1f}" if t else "–", f"{t['gflops']:.1f}" if t else "–",
                         f"{t['ms'] / r['ms']:.2f}×" if t else "–"])
        md(["[B, T, H, D]", "precision", "pass", "GFLOP", "Collie ms", "Collie GFLOP/s", "PyTorch ms", "PyTorch GFLOP/s",
            "Collie speed / PyTorch"], rows)
    cm, tmem = col.get("attentionMemory"), tor.get("attentionMemory")
    if cm or tmem:
        def cell(m, key):
            return f"{m[key]:.1f}" if m else "–"
        md(["MiB", "Collie", "PyTorch"], [
            ["peak RSS growth, fwd+bwd", cell(cm, "growthMiB"), cell(tmem, "growthMiB")],
            ["q, k, v, out + gradients", cell(cm, "unavoidableMiB"), cell(tmem, "unavoidableMiB")],
            ["growth beyond those", cell(cm, "extraMiB"), cell(tmem, "extraMiB")],
            ["one T×T fp32 matrix per head", cell(cm, "scoreMatrixMiB"), cell(tmem, "scoreMatrixMiB")],
        ])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--json-file", help="also write the results as JSON to this file")
    parser.add_argument("--only", help="comma-separated groups: " + ", ".join(GROUPS))
    parser.add_argument("--compare", nargs=2, metavar=("COLLIE_JSON", "TORCH_JSON"),
                        help="print Markdown tables of two --json results side by side, and exit")
    args = parser.parse_args()
    if args.compare:
        compare(*args.compare)
        return
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    wanted = GROUPS if not args.only else [g.strip() for g in args.only.split(",")]
    for g in wanted:
        if g not in GROUPS:
            parser.error(f"unknown group '{g}'; choose from {', '.join(GROUPS)}")
    groups = [g for g in GROUPS if g in wanted]

    cpu_start = cpu_seconds()
    seed_torch(THREADS)
    report = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
              "repeats": args.repeats, "host": host_info()}
    if "attention-memory" in groups:
        if len(groups) == 1:
            report["attentionMemory"] = attention_memory()
        else:
            progress("attention memory (child process)")
            report["attentionMemory"] = attention_memory_in_child()
    if "matmul" in groups:
        report["matmul"] = bench_matmul(args.repeats)
    if "fused" in groups:
        report["copy"] = bench_copy(args.repeats)
        bound = max(c["gbPerSecond"] for c in report["copy"] if c["mebibytes"] == 256)
        report["fused"] = bench_fused(args.repeats, bound)
    if "attention" in groups:
        report["attention"] = bench_attention(args.repeats)
    report["host"]["loadAverageAfter"] = load_average()
    report["host"]["otherProcessesCPUPercent"] = others_percent(cpu_start)
    if args.json_file:
        with open(args.json_file, "w") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
