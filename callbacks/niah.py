"""NIAH evaluation: internalize haystacks per length bin, ask for the magic number without them, score exact match."""

from __future__ import annotations

import csv
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_info

from lora_hyper.niah_eval import (  # noqa: F401  (re-exported: the callback's public helpers)
    CSV_FIELDS,
    DEFAULT_BINS,
    evaluate_niah,
    model_native_window,
    niah_metrics,
)
from lora_hyper.niah_protocol import resolve_length

from .periodic import PeriodicEvaluation


def write_niah_report(
    results: dict[str, Any], output_dir: str | Path, stem: str = "niah"
) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` (bin, n_tokens, accuracy, n) and ``<stem>.png`` (accuracy vs length, window marked)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results["bins"])
    rows = sorted(results["bins"], key=lambda r: r["n_tokens"])
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(
        [r["n_tokens"] for r in rows], [r["accuracy"] for r in rows], marker="o", label="internalized (D2L)"
    )
    native = results.get("native_window")
    if native:
        ax.axvline(native, color="gray", linestyle="--", label=f"native window ({native} tokens)")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("exact match")
    ax.set_title("Needle in a haystack: accuracy vs context length")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return csv_path, png_path


class NIAHEvaluation(PeriodicEvaluation):
    """Evaluate NIAH exact match per length bin every N training steps and at the end of fit.

    Needs a LightningModule with ``internalize``, ``generate``, ``tokenizer`` and ``native_window``. Every rank
    runs the evaluation (a sharded model needs all ranks in ``internalize``); rank 0 writes
    ``niah_step<step>.csv``/``.png`` (``niah_final.*`` at fit end) under ``output_dir``.

    Args:
        every_n_steps: evaluate every N optimizer steps (0: only at fit end).
        bins: context lengths: token counts (``256``, ``"4K"``) or native-window multiples (``"2x"``);
            default 256, 1024, 4096 and 1x the native window.
        samples_per_bin: haystacks per bin (depths balanced over 10 bins).
        chunk_length: chunk length used to internalize long haystacks (reference: 1024).
        batch_size: haystacks internalized and asked per call.
        rank_budget: compress each document's adapter to this rank (``None``: keep K*r).
        output_dir: where CSV and PNG go (default: the trainer's log dir, else its root dir).
        seed: seed of the evaluation haystacks.
        max_new_tokens: greedy answer length.
        at_fit_end: also evaluate when fit ends.
    """

    def __init__(
        self,
        every_n_steps: int = 0,
        bins: list[int | str] | None = None,
        samples_per_bin: int = 20,
        chunk_length: int = 1024,
        batch_size: int = 8,
        rank_budget: int | None = None,
        output_dir: str | None = None,
        seed: int = 0,
        max_new_tokens: int = 8,
        at_fit_end: bool = True,
    ) -> None:
        super().__init__(every_n_steps, output_dir)
        self.bins = list(bins) if bins is not None else list(DEFAULT_BINS)
        for b in self.bins:
            resolve_length(b, 8192)  # fail on a bad spec now, not hours into training
        self.samples_per_bin = samples_per_bin
        self.chunk_length = chunk_length
        self.batch_size = batch_size
        self.rank_budget = rank_budget
        self.seed = seed
        self.max_new_tokens = max_new_tokens
        self.at_fit_end = at_fit_end
        self.history: list[tuple[int, dict[str, Any]]] = []

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule, stem: str) -> dict[str, Any]:
        """Run ``evaluate_niah`` on ``pl_module``; rank 0 announces it, prints a line per bin, writes the report."""
        from lora_hyper.progress import say

        progress = None
        if trainer.is_global_zero:
            say(trainer, self.announce(trainer.global_step, final=stem == "niah_final"))
            progress = partial(say, trainer)
        results = evaluate_niah(
            pl_module,
            self.bins,
            self.samples_per_bin,
            self.chunk_length,
            self.batch_size,
            self.rank_budget,
            self.seed,
            self.max_new_tokens,
            progress=progress,
        )
        self.history.append((self.mark(trainer), results))
        if trainer.is_global_zero:
            write_niah_report(results, self.output_path(trainer), stem)
            summary = ", ".join(f"{r['bin']}: {r['accuracy']:.2f}" for r in results["bins"])
            rank_zero_info(f"[NIAH] step {trainer.global_step}: {summary} (mean {results['acc_mean']:.2f})")
        return results

    def announce(self, step: int, final: bool = False) -> str:
        """One line saying what this evaluation does: bins, haystacks per bin, chunking, answer length."""
        n = len(self.bins) * self.samples_per_bin
        return (
            f"[NIAH] {'final evaluation' if final else 'evaluation'} at step {step}: {len(self.bins)} length bins "
            f"({', '.join(str(b) for b in self.bins)}) x {self.samples_per_bin} haystacks = {n} haystacks, "
            f"chunk_length {self.chunk_length}, {self.batch_size} per batch, answers of <= {self.max_new_tokens} "
            "tokens"
        )

    def on_evaluation_due(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = self.evaluate(trainer, pl_module, f"niah_step{trainer.global_step:06d}")
        self.log_metrics(trainer, niah_metrics(results))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.at_fit_end:
            return
        if self.history and self.evaluated_now(trainer):
            results = self.history[-1][1]
            if trainer.is_global_zero:
                write_niah_report(results, self.output_path(trainer), "niah_final")
        else:
            results = self.evaluate(trainer, pl_module, "niah_final")
        self.log_metrics(trainer, niah_metrics(results))
        for logger in trainer.loggers:
            logger.save()
