"""Shared benchmark plumbing: machine/library facts, JSON results, timing and peak memory."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict[str, Any]:
    """Machine and library versions recorded with every result."""
    import lightning
    import peft
    import transformers

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "lightning": lightning.__version__,
        "device": "cpu",
    }
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
    return env


def write_result(name: str, payload: dict[str, Any], out_dir: str | os.PathLike | None = None) -> Path:
    """Write ``<out_dir or benchmarks/results>/<name>.json`` (atomically) and return its path."""
    out = Path(out_dir) if out_dir else RESULTS
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"benchmark": name, "environment": environment(), **payload}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], Any], device: torch.device) -> float:
    """Wall seconds of one call, synchronised on CUDA."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int | None:
    """Peak bytes allocated by torch during ``fn`` above what was allocated before (CUDA only)."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


class LossCurve(L.Callback):
    """``[step, loss, wall_s]`` at every optimizer step: the logged ``metric`` (e.g. ``train/ce``, the unsmoothed
    CE) when given and logged, else the loss ``training_step`` returned.

    ``points`` and ``offset_s`` continue an interrupted run's curve (its points and its wall time so far); a run
    resumed from a checkpoint drops the points recorded after that checkpoint."""

    def __init__(
        self, metric: str | None = None, points: list[list[float]] | None = None, offset_s: float = 0.0
    ) -> None:
        self.metric = metric
        self.points: list[list[float]] = list(points or [])
        self.t0 = time.perf_counter() - offset_s

    def on_train_start(self, trainer: L.Trainer, pl_module: Any) -> None:
        self.points = [p for p in self.points if p[0] <= trainer.global_step]

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        loss = trainer.callback_metrics.get(self.metric) if self.metric else None
        if loss is None:
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.points.append([trainer.global_step, round(float(loss), 5), round(self.wall(), 2)])

    def wall(self) -> float:
        return time.perf_counter() - self.t0

    def values(self) -> list[float]:
        return [p[1] for p in self.points]


def quiet_trainer(max_steps: int, callbacks: list[L.Callback], gpu: bool = False, **kwargs: Any) -> L.Trainer:
    """A Trainer for benchmark runs: no logger, checkpoints, progress bar, summary or validation; clip 1.0;
    bf16-mixed on a GPU, fp32 on the CPU. ``kwargs`` override any of these."""
    settings: dict[str, Any] = {
        "accelerator": "gpu" if gpu else "cpu", "devices": 1, "precision": "bf16-mixed" if gpu else "32-true",
        "max_steps": max_steps, "gradient_clip_val": 1.0, "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
        "limit_val_batches": 0, "callbacks": callbacks,
    }  # fmt: skip
    return L.Trainer(**{**settings, **kwargs})


def recipe_rows_main(
    doc: str | None,
    script: str,
    default_name: str,
    recipes: list[str],
    measure: Callable[[str, int], dict[str, Any]],
) -> None:
    """The command line shared by the per-recipe step-timing benchmarks: ``--recipes``, ``--batches``,
    ``--threads``, ``--name``, ``--out-dir``; ``measure(recipe, batches)`` gives one JSON row per recipe."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipes", default=",".join(recipes), help="comma-separated recipes")
    p.add_argument("--batches", type=int, default=12, help="timed batches per recipe and mode")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--name", default=default_name)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    if args.batches < 1:
        raise SystemExit(f"--batches must be >= 1, got {args.batches}.")
    torch.set_num_threads(args.threads)
    rows = [measure(r, args.batches) for r in args.recipes.split(",")]
    payload = {"command": " ".join(["python", script, *sys.argv[1:]]), "threads": args.threads, "rows": rows}
    print(f"wrote {write_result(args.name, payload, args.out_dir)}")
