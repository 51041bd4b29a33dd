"""Chunk-health probe: does the summed delta of many filler chunks stay small next to one needle chunk?

Doc-to-LoRA sums one adapter per chunk. If every filler chunk emits a delta of about the needle chunk's size,
the sum grows K times and swamps the language model past some length (the NIAH "cliff"). The probe measures
``||sum of the deltas of 31 filler chunks|| / ||delta of one needle chunk||`` at 1024-token chunks (a 32K
haystack), bias block excluded. Healthy: well below 1 (the needle chunk outweighs all the filler together);
a value of several units means 32K-token haystacks will be swamped.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info

from lora_hyper.data_modules.niah_protocol import example_rng, filler_text, make_niah_example

from .periodic import PeriodicEvaluation

CSV_FIELDS = ("step", "ratio", "filler_norm", "needle_norm")


@torch.no_grad()
def chunk_health(model: Any, n_filler: int = 31, chunk_length: int = 1024, seed: int = 0) -> dict[str, float]:
    """The probe on any model with ``internalize(docs, chunk_length=, include_bias=)`` and a ``tokenizer``.

    Returns ``{"ratio", "filler_norm", "needle_norm", "n_filler", "chunk_length"}``, plus ``filler_gate``
    (mean) and ``needle_gate`` when the hypernetwork has a chunk gate.
    """
    if n_filler < 1 or chunk_length < 16:
        raise ValueError(f"n_filler must be >= 1 and chunk_length >= 16, got {n_filler} and {chunk_length}.")
    tok = model.tokenizer
    filler = filler_text(tok, n_filler * chunk_length - 8)  # exactly n_filler chunks once cut
    needle = make_niah_example(tok, chunk_length - 8, 0.5, example_rng(seed, "chunk-health")).context
    hypernet = getattr(model, "hypernet", None)
    gates: list[float] = []
    norms: list[float] = []
    for doc in (filler, needle):
        lora = model.internalize([doc], chunk_length=chunk_length, include_bias=False)
        norms.append(float(lora.delta_norms()[0]))
        gate = getattr(hypernet, "last_gate", None) if getattr(hypernet, "gate", None) is not None else None
        if gate is not None:
            gates.append(float(gate.float().mean()))
    f, n = norms
    out = {"ratio": f / max(n, 1e-12), "filler_norm": f, "needle_norm": n}
    if len(gates) == 2:
        out.update(filler_gate=gates[0], needle_gate=gates[1])
    return {**out, "n_filler": n_filler, "chunk_length": chunk_length}


class ChunkHealthProbe(PeriodicEvaluation):
    """Log :func:`chunk_health` every N steps (``health/filler_needle_ratio``); write a CSV and a PNG at fit end.

    Needs the module's public inference API (``internalize`` with ``include_bias``, ``tokenizer``): the same
    probe runs on a trained ``DocToLoRA``.

    Args:
        every_n_steps: probe every N optimizer steps (and at fit end).
        n_filler: filler chunks summed (31 + the needle chunk = a 32K haystack at 1024-token chunks).
        chunk_length: tokens per chunk.
        output_dir: where ``chunk_health.csv``/``.png`` go (default: the trainer's log dir, else its root dir).
    """

    def __init__(
        self,
        every_n_steps: int = 200,
        n_filler: int = 31,
        chunk_length: int = 1024,
        output_dir: str | None = None,
    ) -> None:
        super().__init__(every_n_steps, output_dir, min_every_n_steps=1)
        if n_filler < 1 or chunk_length < 16:
            raise ValueError(
                f"n_filler must be >= 1 and chunk_length >= 16, got {n_filler} and {chunk_length}."
            )
        self.n_filler = n_filler
        self.chunk_length = chunk_length
        self.history: list[dict[str, float]] = []

    def probe(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, float]:
        was_training = pl_module.training
        pl_module.eval()
        try:
            row = {"step": trainer.global_step, **chunk_health(pl_module, self.n_filler, self.chunk_length)}
        finally:
            pl_module.train(was_training)
        self.history.append(row)
        self.mark(trainer)
        metrics = {"health/filler_needle_ratio": row["ratio"]}
        gates = ""
        if "needle_gate" in row:
            metrics.update(
                {"health/filler_gate": row["filler_gate"], "health/needle_gate": row["needle_gate"]}
            )
            gates = f" (gate: filler {row['filler_gate']:.3f}, needle {row['needle_gate']:.3f})"
        self.log_metrics(trainer, metrics)
        rank_zero_info(
            f"[chunk health] step {trainer.global_step}: {self.n_filler} filler chunks / needle chunk = "
            f"{row['ratio']:.3f}{gates}"
        )
        return row

    def on_evaluation_due(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.probe(trainer, pl_module)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.evaluated_now(trainer):
            self.probe(trainer, pl_module)
        if trainer.is_global_zero:
            write_health_report(self.history, self.output_path(trainer))

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        self._last_step = int(self.history[-1]["step"]) if self.history else -1


def write_health_report(history: list[dict[str, float]], output_dir: Path) -> tuple[Path, Path]:
    """``chunk_health.csv`` and ``chunk_health.png`` (ratio against step, log scale, the healthy line at 1)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = output_dir / "chunk_health.csv", output_dir / "chunk_health.png"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    fig = Figure(figsize=(6.4, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([h["step"] for h in history], [max(h["ratio"], 1e-6) for h in history], marker="o")
    ax.axhline(1.0, color="gray", linestyle="--", label="needle chunk = all filler chunks")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("||sum of filler deltas|| / ||needle delta||")
    ax.set_title("Chunk health (lower is healthier)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return csv_path, png_path
