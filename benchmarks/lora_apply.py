"""Cost of per-sample LoRA injection: plain model vs ``apply_lora`` vs a naive per-token copy of A/B.

    python benchmarks/lora_apply.py            # full: SmolLM2-135M, batch 8 x 512 tokens (GPU recommended)
    python benchmarks/lora_apply.py --quick    # 2 CPU cores: batch 8 x 128 tokens

Forward + backward (gradients w.r.t. the input embeddings, and w.r.t. A/B where there are adapters) for
targets down_proj and q/v. Time: median of interleaved repetitions in one process. Peak memory: CUDA
allocator peak on GPU; on CPU, each variant runs in a fresh child process and reports its peak RSS growth
(VmHWM reset through /proc/self/clear_refs). Writes benchmarks/results/lora_apply.json.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import statistics
import subprocess
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch

from lora_hyper.base_model import load_base_model
from lora_hyper.lora import LoRABatch, LoRASpec, apply_lora

from common import peak_memory, time_call, write_result

VARIANTS = ("plain", "apply_lora", "naive_per_token")
TARGETS = {"down_proj": ["down_proj"], "q_v": ["q_proj", "v_proj"]}


@contextmanager
def naive_lora(model, lora: LoRABatch):
    """The reference's approach: gather A and B for every token, then a per-token matmul."""
    modules = dict(model.named_modules())
    handles = []
    for m in lora.spec.target_modules:
        for layer in range(lora.spec.n_layers):
            a, b = lora.A[m][:, layer], lora.B[m][:, layer]

            def hook(mod, args, out, a=a, b=b):
                x = args[0]
                n, t, _ = x.shape
                owner = torch.arange(n, device=x.device).repeat_interleave(t)
                a_tok, b_tok = a[owner].to(x.dtype), b[owner].to(x.dtype)  # [n*t, r, in], [n*t, out, r]
                h = torch.einsum("ki,kri->kr", x.reshape(n * t, -1), a_tok)
                return out + lora.scale * torch.einsum("kr,kor->ko", h, b_tok).view(out.shape)

            handles.append(modules[lora.spec.module_name(m, layer)].register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def make_inputs(model, batch: int, tokens: int, device):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, model.config.vocab_size, (batch, tokens), generator=g).to(device)
    return ids


def make_lora(model, targets, batch, device, dtype):
    spec = LoRASpec(targets, rank=8, scale=1.0).discover(model)
    g = torch.Generator().manual_seed(1)
    A = {m: (torch.randn(batch, spec.n_layers, 8, spec.shapes[m][0], generator=g) * 0.01) for m in targets}
    B = {m: (torch.randn(batch, spec.n_layers, spec.shapes[m][1], 8, generator=g) * 0.01) for m in targets}
    lora = LoRABatch(spec, A, B).to(device=device, dtype=dtype)
    for t in [*lora.A.values(), *lora.B.values()]:
        t.requires_grad_(True)
    return lora


def step_fn(model, ids, variant: str, lora: LoRABatch | None):
    embed = model.get_input_embeddings()

    def run():
        x = embed(ids).detach().requires_grad_(True)
        ctx = {"plain": nullcontext(), "apply_lora": None, "naive_per_token": None}[variant]
        if variant == "apply_lora":
            ctx = apply_lora(model, lora)
        elif variant == "naive_per_token":
            ctx = naive_lora(model, lora)
        with ctx:
            logits = model(inputs_embeds=x).logits
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten()
            )
        loss.backward()
        if lora is not None:
            for t in [*lora.A.values(), *lora.B.values()]:
                t.grad = None

    return run


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child_cpu_memory(args) -> None:
    """Run one variant once in this (fresh) process and print its peak RSS growth in bytes."""
    torch.set_num_threads(args.threads)
    model, _ = load_base_model(args.model, dtype="float32", attn_implementation="sdpa")
    ids = make_inputs(model, args.batch, args.tokens, torch.device("cpu"))
    lora = (
        None
        if args.child == "plain"
        else make_lora(model, TARGETS[args.targets], args.batch, "cpu", torch.float32)
    )
    run = step_fn(model, ids, args.child, lora)
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS high-water mark
    before = _rss_kib("VmRSS")
    run()
    print(json.dumps({"peak_bytes": (_rss_kib("VmHWM") - before) * 1024}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2-CPU size: batch 8 x 128 tokens, 3 repetitions")
    p.add_argument("--model", default="smollm2-135m-instruct")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--tokens", type=int, default=None)
    p.add_argument("--reps", type=int, default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=None)
    p.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    p.add_argument("--targets", choices=list(TARGETS), default="down_proj", help=argparse.SUPPRESS)
    args = p.parse_args()
    args.tokens = args.tokens or (128 if args.quick else 512)
    args.reps = args.reps or (3 if args.quick else 10)
    if args.child:
        return child_cpu_memory(args)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    model, _ = load_base_model(args.model, attn_implementation="auto", dtype="auto", device=device)
    dtype = next(model.parameters()).dtype
    ids = make_inputs(model, args.batch, args.tokens, device)
    results = {}
    for name, targets in TARGETS.items():
        lora = make_lora(model, targets, args.batch, device, dtype)
        runs = {v: step_fn(model, ids, v, None if v == "plain" else lora) for v in VARIANTS}
        for v in VARIANTS:  # warm-up
            runs[v]()
        times = {v: [] for v in VARIANTS}
        for _ in range(args.reps):  # interleaved, so machine load hits all variants alike
            for v in VARIANTS:
                times[v].append(time_call(runs[v], device))
        row = {v: {"median_s": statistics.median(t), "times_s": t} for v, t in times.items()}
        for v in VARIANTS:
            if device.type == "cuda":
                row[v]["peak_bytes"] = peak_memory(runs[v], device)
            else:
                cmd = [sys.executable, __file__, "--child", v, "--targets", name, "--model", args.model]
                cmd += [
                    "--batch",
                    str(args.batch),
                    "--tokens",
                    str(args.tokens),
                    "--threads",
                    str(args.threads),
                ]
                out = (
                    subprocess.run(cmd, capture_output=True, text=True, check=True)
                    .stdout.strip()
                    .splitlines()[-1]
                )
                row[v]["peak_bytes"] = json.loads(out)["peak_bytes"]
        base_t, base_m = row["plain"]["median_s"], row["plain"]["peak_bytes"]
        for v in VARIANTS[1:]:
            row[v]["time_ratio_vs_plain"] = row[v]["median_s"] / base_t
            row[v]["memory_ratio_vs_plain"] = row[v]["peak_bytes"] / base_m if base_m else None
        results[name] = row
        print(
            f"{name:>9}: apply_lora {row['apply_lora']['time_ratio_vs_plain']:.3f}x time, "
            f"{row['apply_lora']['memory_ratio_vs_plain']:.3f}x memory | naive "
            f"{row['naive_per_token']['time_ratio_vs_plain']:.3f}x time, "
            f"{row['naive_per_token']['memory_ratio_vs_plain']:.3f}x memory"
        )
    config = {
        "model": args.model,
        "batch": args.batch,
        "tokens": args.tokens,
        "reps": args.reps,
        "rank": 8,
        "dtype": str(dtype),
        "quick": args.quick,
        "targets": TARGETS,
    }
    targets_met = all(
        r["apply_lora"]["time_ratio_vs_plain"] <= 1.25
        and (r["apply_lora"]["memory_ratio_vs_plain"] or 0) <= 1.10
        for r in results.values()
    )
    name = "lora_apply" + ("_quick" if args.quick else "") + ("_gpu" if device.type == "cuda" else "")
    path = write_result(
        name,
        {
            "config": config,
            "results": results,
            "target_met": targets_met,
            "target": "apply_lora <= 1.25x time and <= 1.10x peak memory of plain",
        },
        args.out_dir,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
