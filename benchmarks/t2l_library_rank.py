"""How wide a Text-to-LoRA head must be to reconstruct an oracle library (issue 10).

    python benchmarks/t2l_library_rank.py --library outputs/t2l_bench_cpu/oracle    # ~3 min on 2 CPU cores
    python benchmarks/t2l_library_rank.py --library outputs/t2l_bench_cpu/oracle \
        --weights outputs/t2l_bench_cpu/weights/t2l_recon_L.safetensors         # + a trained reconstruction

A T2L hypernetwork's ``L`` head is one linear map from a ``head_in``-wide hidden state to a module's ``[A | B]``
factors, shared by every task and layer, so whatever it generates for ``tasks x layers`` rows has rank <= head_in
(+1 for the bias). This script z-scores the library as reconstruction does, keeps its best rank-k version per module
(truncated SVD of the ``(task, layer) x [A | B]`` matrix: the closest any rank-k head can get) and reports

- ``captured``: share of the z-scored variance a rank-k head can hold, per module;
- ``recon_l1``: the reconstruction loss (z-scored factor L1, as training logs it) of the rank-k library: about
  the floor a reconstruction run with ``head_in = k`` can reach (L1, so not exactly: SVD minimises L2);
- ``exact_match``: the seen-task exact match of the rank-k library, scored exactly as the fair benchmark scores
  the oracles (``benchmarks/t2l_zero_shot.py``; all 40 test examples of its 8 seen tasks), beside the library's own
  and the mean adapter's (k = 0).

With ``--weights`` (a reconstruction hypernetwork the benchmark trained on this library, e.g.
``<work-dir>/weights/t2l_recon_L.safetensors``) it also reports, per module, the share of the z-scored library that
hypernetwork generates (``captured_trained``, from one training description per task) and the share the best
linear head on its own trunk's features would (``captured_best_head``, least squares): the first below the second
means the head is under-trained, the second below ``captured`` at ``head_in`` means the trunk's features are.

``--latent N`` measures weights of a wider-trunk variant (``t2l_zero_shot.py --latent N``); ``--capture-only`` skips
the exact-match scoring. Writes ``benchmarks/results/t2l_library_rank[_latentN][_capture].json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from lora_hyper.lora import LoRABatch, load_peft
from lora_hyper.losses import reconstruction_l1
from lora_hyper.modules.t2l import align_adapter

from common import write_result
from t2l_zero_shot import Bench

CAPTURED_KS = (32, 92, 256, 512, 1024)
SCORED_KS = (0, 256, 512, 1024)


def factor_rows(z: LoRABatch, module: str) -> torch.Tensor:
    """``[tasks * layers, r * (in + out)]``: one row per (task, layer), as the L head generates them."""
    a, b = z.A[module].float(), z.B[module].float()
    n = a.shape[0] * a.shape[1]
    return torch.cat([a.reshape(n, -1), b.reshape(n, -1)], dim=1)


def rank_k(z: LoRABatch, svds: dict[str, tuple[torch.Tensor, ...]], k: int) -> LoRABatch:
    """The library's best rank-``k`` approximation in z-space, module by module (k = 0: all zeros, the mean)."""
    A, B = {}, {}
    for m, (U, S, Vh) in svds.items():
        a, b = z.A[m], z.B[m]
        rows = (U[:, :k] * S[:k]) @ Vh[:k]
        split = a[0, 0].numel()
        A[m] = rows[:, :split].reshape(a.shape).to(a.dtype)
        B[m] = rows[:, split:].reshape(b.shape).to(b.dtype)
    return LoRABatch(z.spec, A, B, z.scale)


@torch.no_grad()
def hypernet_capture(module: Any, bench: Bench, z: LoRABatch, weights: Path) -> dict[str, Any]:
    """Share of the z-scored library a trained reconstruction hypernetwork generates, and the best head's share."""
    from safetensors.torch import load_file

    hypernet = module.hypernet
    fitted = {k: v.clone() for k, v in hypernet.state_dict().items() if k.startswith("z")}
    hypernet.load_state_dict(load_file(str(weights)))
    hypernet.eval()
    own = hypernet.state_dict()
    if not all(torch.allclose(own[k].float(), v, rtol=1e-2, atol=1e-6) for k, v in fitted.items()):
        print(
            f"error: {weights} was trained on another library than --library (its z-score statistics differ).",
            file=sys.stderr,
        )
        raise SystemExit(2)
    emb = module.embed([next(iter(bench.corpus.tasks[n].train_descriptions)) for n in bench.pool])
    out: dict[str, Any] = {"weights": str(weights), "captured_trained": {}, "captured_best_head": {}}
    generated = hypernet.raw(emb)
    for m in z.A:
        target = factor_rows(z, m)
        energy = target.pow(2).sum()
        feats = hypernet.head_features(emb, m)
        feats = torch.cat([feats, torch.ones(len(feats), 1)], dim=1)  # the head's bias
        best = feats @ torch.linalg.lstsq(feats, target).solution
        own = factor_rows(generated, m)
        out["captured_trained"][m] = round(float(1 - (own - target).pow(2).sum() / energy), 4)
        out["captured_best_head"][m] = round(float(1 - (best - target).pow(2).sum() / energy), 4)
    print(f"[rank] trained hypernetwork: {out}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--library", required=True, help="the benchmark's oracle dir (<work-dir>/oracle)")
    p.add_argument("--size", default="cpu", help="the fair benchmark's size whose tasks the library holds")
    p.add_argument("--weights", default=None, help="a reconstruction hypernetwork trained on this library")
    p.add_argument(
        "--latent",
        type=int,
        default=None,
        help="trunk width of --weights (default: the size's); own JSON name",
    )
    p.add_argument(
        "--capture-only",
        action="store_true",
        help="with --weights: skip the rank-k exact-match scoring (~3 min)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args(argv)
    if args.capture_only and not args.weights:
        p.error("--capture-only needs --weights (it only measures what a trained hypernetwork captures)")
    torch.set_num_threads(args.threads)
    library_dir = Path(args.library)
    with tempfile.TemporaryDirectory() as work:
        bench_args = argparse.Namespace(
            examples_per_seen_task=None, cpu=True, time_budget=None, task_encoder="all-minilm-l6-v2",
            work_dir=work, seed=0, max_stages=None, ckpt_every=10, latent=args.latent,
        )  # fmt: skip
        bench = Bench(bench_args, args.size)
        bench.setup()
    missing = [n for n in bench.pool if not (library_dir / n).is_dir()]
    if missing:
        print(
            f"error: {library_dir} lacks oracles for {missing[:3]}...: pass the benchmark's <work-dir>/oracle.",
            file=sys.stderr,
        )
        raise SystemExit(2)
    module = bench.t2l_module("L", "reconstruction", 1e-3)
    module.configure_model()
    spec = module.hypernet.spec
    library = LoRABatch.cat([align_adapter(load_peft(library_dir / n), spec) for n in bench.pool])
    module.fit_zscore(library)
    z = module.hypernet.normalize(library)

    captured: dict[str, dict[str, float]] = {}
    svds = {}
    for m in z.A:
        U, S, Vh = torch.linalg.svd(factor_rows(z, m), full_matrices=False)
        svds[m] = (U, S, Vh)
        share = (S**2).cumsum(0) / (S**2).sum()
        captured[m] = {str(k): round(float(share[min(k, len(share)) - 1]), 4) for k in CAPTURED_KS}
        print(f"[rank] {m}: captured " + "  ".join(f"k={k} {v}" for k, v in captured[m].items()), flush=True)

    recon_l1 = {
        str(k): round(float(reconstruction_l1(rank_k(z, svds, k), z, "factors")), 4)
        for k in (0, *CAPTURED_KS)
    }
    print(f"[rank] reconstruction L1 of the rank-k library: {recon_l1}", flush=True)

    trained = None if args.weights is None else hypernet_capture(module, bench, z, Path(args.weights))

    scored: dict[str, dict[str, Any]] = {}
    conditions = [] if args.capture_only else [(f"rank_{k}", k) for k in SCORED_KS] + [("library", None)]
    for label, k in conditions:
        t0 = time.perf_counter()
        adapters = library if k is None else module.hypernet.denormalize(rank_k(z, svds, k))
        per_task = {}
        for name in bench.groups["seen"]:
            lora = adapters.select([bench.pool.index(name)])
            em, _ = bench.score_conditions(name, [([e.prompt for e in bench.examples[name]], lora)])
            per_task[name] = round(sum(em) / len(em), 4)
        mean = round(sum(per_task.values()) / len(per_task), 4)
        scored[label] = {"mean_exact_match": mean, "per_task": per_task}
        print(
            f"[rank] {label}: seen-task exact match {mean:.3f} ({time.perf_counter() - t0:.0f}s)", flush=True
        )

    shape = {m: list(factor_rows(z, m).shape) for m in z.A}
    result = {
        "library": str(library_dir), "size": args.size, "tasks": len(bench.pool), "rows_x_columns": shape,
        "head_in_benchmark": bench.cfg["head_in"], "latent": bench.cfg["latent"], "captured": captured, "recon_l1": recon_l1, "exact_match": scored, "hypernet": trained,
        "note": "rank_k = best rank-k version of the z-scored library (truncated SVD per module), i.e. the closest "
        "any head with head_in = k can generate; rank_0 = the mean adapter",
    }  # fmt: skip
    # a variant or a partial measurement never replaces the full result
    name = "t2l_library_rank" + ("" if args.latent is None else f"_latent{args.latent}")
    name += "_capture" if args.capture_only else ""
    path = write_result(name, result, args.out_dir)
    print(f"[rank] wrote {path}")
    return result


if __name__ == "__main__":
    main()
