"""Image classification through a VLM context encoder: internalize each image, ask the text-only LM its class."""

from __future__ import annotations

import csv
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torchmetrics.aggregation import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from lora_hyper.data_modules.imagenette import ImageDataset, ImageItem, ImagenetteDataModule, balanced_subset
from lora_hyper.image_protocol import class_question, score_answer

from .periodic import PeriodicEvaluation

SAMPLE_FIELDS = ("image_id", "label", "output", "predicted", "strict", "correct")
CLASS_FIELDS = ("class", "n", "accuracy", "strict_accuracy")


def evaluate_image_classification(
    model: Any,
    items: Sequence[ImageItem],
    class_names: Sequence[str],
    aliases: Mapping[str, Sequence[str]] | None = None,
    batch_size: int = 8,
    max_new_tokens: int = 16,
    rank_budget: int | None = None,
    question: str | None = None,
) -> dict[str, Any]:
    """Accuracy of a model with ``internalize_images`` and ``generate`` on labelled images.

    Each image becomes an adapter (the VLM reads it; the LM never sees it); the LM then answers the reference's
    question listing ``class_names`` (greedy). ``accuracy`` maps every answer to a class (alias, token match,
    closest name); ``strict_accuracy`` counts only answers naming exactly one class, the right one.

    Returns ``{"accuracy", "strict_accuracy", "n", "per_class": [{"class", "n", "accuracy",
    "strict_accuracy"}], "confusion": [[int]] (rows: true class), "class_names", "samples": [...]}``.
    """
    if not items:
        raise ValueError("No images to evaluate.")
    k = len(class_names)
    question = question or class_question(class_names)
    closest = MulticlassAccuracy(num_classes=k, average="micro", sync_on_compute=False)
    per_class = MulticlassAccuracy(num_classes=k, average="none", sync_on_compute=False)
    confusion = MulticlassConfusionMatrix(num_classes=k, sync_on_compute=False)
    strict = MeanMetric(sync_on_compute=False)
    strict_hits = torch.zeros(k)
    counts = torch.zeros(k)
    samples: list[dict[str, Any]] = []
    dataset = ImageDataset(list(items))
    modes = {m: m.training for m in model.modules()} if isinstance(model, torch.nn.Module) else {}
    if modes:
        model.eval()
    try:
        with torch.no_grad():
            for start in range(0, len(dataset), batch_size):
                rows = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
                adapters = model.internalize_images([r["image"] for r in rows], rank_budget=rank_budget)
                outputs = model.generate([question] * len(rows), adapters, max_new_tokens=max_new_tokens)
                scored = [score_answer(o, class_names, aliases) for o in outputs]
                preds = torch.tensor([p for p, _ in scored])
                target = torch.tensor([r["label"] for r in rows])
                closest.update(preds, target)
                per_class.update(preds, target)
                confusion.update(preds, target)
                hits = torch.tensor([float(s and p == t) for (p, s), t in zip(scored, target.tolist())])
                strict.update(hits)
                strict_hits.index_add_(0, target, hits)
                counts.index_add_(0, target, torch.ones(len(rows)))
                for r, out, (p, s) in zip(rows, outputs, scored):
                    samples.append(
                        {"image_id": r["id"], "label": class_names[r["label"]], "output": out}
                        | {"predicted": class_names[p], "strict": s, "correct": p == r["label"]}
                    )
    finally:
        for module, mode in modes.items():
            module.train(mode)
    acc_per_class = per_class.compute().tolist()
    classes = [
        {
            "class": name,
            "n": int(counts[c]),
            "accuracy": float(acc_per_class[c]) if counts[c] else float("nan"),
            "strict_accuracy": float(strict_hits[c] / counts[c]) if counts[c] else float("nan"),
        }
        for c, name in enumerate(class_names)
    ]
    return {
        "accuracy": float(closest.compute()),
        "strict_accuracy": float(strict.compute()),
        "n": len(samples),
        "per_class": classes,
        "confusion": confusion.compute().tolist(),
        "class_names": list(class_names),
        "samples": samples,
    }


def image_metrics(results: dict[str, Any], prefix: str = "image_cls") -> dict[str, float]:
    """Flat metrics: ``<prefix>/accuracy`` and ``<prefix>/strict_accuracy``."""
    return {
        f"{prefix}/accuracy": float(results["accuracy"]),
        f"{prefix}/strict_accuracy": float(results["strict_accuracy"]),
    }


def write_image_report(results: dict[str, Any], output_dir: str | Path, stem: str) -> tuple[Path, Path, Path]:
    """Write ``<stem>.csv`` (per class and ``all``), ``<stem>_samples.csv`` and ``<stem>.png`` (confusion matrix)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, samples_path, png_path = out / f"{stem}.csv", out / f"{stem}_samples.csv", out / f"{stem}.png"
    overall = {"class": "all", "n": results["n"], "accuracy": results["accuracy"]}
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CLASS_FIELDS)
        writer.writeheader()
        writer.writerows([*results["per_class"], overall | {"strict_accuracy": results["strict_accuracy"]}])
    with open(samples_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=SAMPLE_FIELDS)
        writer.writeheader()
        writer.writerows(results["samples"])
    names = results["class_names"]
    matrix = results["confusion"]
    fig = Figure(figsize=(1.0 + 0.6 * len(names), 0.8 + 0.6 * len(names)))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7)
    ax.set_xlabel("answer (closest class)")
    ax.set_ylabel("true class")
    ax.set_title(
        f"accuracy {results['accuracy']:.3f}, strict {results['strict_accuracy']:.3f} (n={results['n']})"
    )
    fig.tight_layout()
    fig.savefig(png_path, dpi=110)
    return csv_path, samples_path, png_path


class ImageClassificationEvaluation(PeriodicEvaluation):
    """Classify images with a text-only LM that never sees them: a VLM context encoder reads each image, the
    hypernetwork turns its activations into an adapter, the LM answers the reference's class question.

    Needs a LightningModule with ``internalize_images`` and ``generate`` (``DocToLoRAModule`` with a VLM
    ``encoder.model``). Runs every N steps on a balanced subset and at fit end on ``final_samples`` images; rank 0
    writes ``image_cls_step<step>.csv``/``_samples.csv``/``.png`` (``image_cls_final.*`` at the end) and logs
    ``image_cls/accuracy`` and ``image_cls/strict_accuracy``.

    Args:
        data: where the labelled images come from (e.g. ``ImagenetteDataModule`` on ``frgfm/imagenette``).
        split: which split of ``data`` to evaluate.
        every_n_steps: evaluate every N optimizer steps (0: only at fit end).
        samples: images per evaluation during training (classes taking turns).
        final_samples: images at fit end (``None``: the whole split, 3,925 for Imagenette's validation set).
        batch_size: images internalized and asked per call.
        max_new_tokens: greedy answer length.
        rank_budget: compress each image's adapter to this rank (``None``: keep it).
        output_dir: where CSV and PNG go (default: the trainer's log dir, else its root dir).
        at_fit_end: also evaluate when fit ends.
        seed: seed of the subsets.
    """

    def __init__(
        self,
        data: ImagenetteDataModule,
        split: str = "val",
        every_n_steps: int = 0,
        samples: int = 50,
        final_samples: int | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 16,
        rank_budget: int | None = None,
        output_dir: str | None = None,
        at_fit_end: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(every_n_steps, output_dir)
        if samples < 1 or batch_size < 1:
            raise ValueError(f"samples and batch_size must be >= 1; got {samples} and {batch_size}.")
        self.data = data
        self.split = split
        self.samples = samples
        self.final_samples = final_samples
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.rank_budget = rank_budget
        self.at_fit_end = at_fit_end
        self.seed = seed
        self.history: list[tuple[int, dict[str, Any]]] = []

    def evaluate(
        self, trainer: L.Trainer, pl_module: L.LightningModule, stem: str, n: int | None
    ) -> dict[str, Any]:
        """Evaluate ``n`` images (``None``: all) of the split; rank 0 prints a summary and writes the report."""
        items = balanced_subset(self.data.split_items(self.split), n, self.seed)
        started = time.perf_counter()
        results = evaluate_image_classification(
            pl_module,
            items,
            self.data.class_names,
            self.data.aliases,
            self.batch_size,
            self.max_new_tokens,
            self.rank_budget,
        )
        self.history.append((self.mark(trainer), results))
        if trainer.is_global_zero:
            write_image_report(results, self.output_path(trainer), stem)
            rank_zero_info(
                f"[images] step {trainer.global_step}: accuracy {results['accuracy']:.3f}, strict "
                f"{results['strict_accuracy']:.3f} on {results['n']} images ({time.perf_counter() - started:.1f} s)"
            )
        return results

    def on_evaluation_due(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        stem = f"image_cls_step{trainer.global_step:06d}"
        self.log_metrics(trainer, image_metrics(self.evaluate(trainer, pl_module, stem, self.samples)))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.at_fit_end:
            return
        results = self.evaluate(trainer, pl_module, "image_cls_final", self.final_samples)
        self.log_metrics(trainer, image_metrics(results))
        for logger in trainer.loggers:
            logger.save()
