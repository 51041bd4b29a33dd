"""NIAH scoring of any Doc-to-LoRA model: internalize fresh haystacks per length bin, answer without them, exact
match per bin (torchmetrics). The library's own evaluation: the ``NIAHEvaluation`` callback, the benchmarks and
``make demo`` call it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torchmetrics.aggregation import MeanMetric

from lora_hyper.niah_protocol import extract_number, niah_examples, resolve_length

DEFAULT_BINS: tuple[int | str, ...] = (256, 1024, 4096, "1x")
CSV_FIELDS = ("bin", "n_tokens", "accuracy", "n")


def model_native_window(model: Any) -> int | None:
    """The model's native window (``native_window`` attribute, property or method), if it has one."""
    value = getattr(model, "native_window", None)
    if callable(value):
        value = value()
    return int(value) if value else None


def evaluate_niah(
    model: Any,
    bins: Sequence[int | str] = DEFAULT_BINS,
    samples_per_bin: int = 20,
    chunk_length: int | None = 1024,
    batch_size: int = 8,
    rank_budget: int | None = None,
    seed: int = 0,
    max_new_tokens: int = 8,
    tokenizer: Any = None,
    native_window: int | None = None,
    haystack: str = "repeat",
    extra_rank_budgets: Sequence[int] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Exact-match NIAH accuracy per length bin of a model with ``internalize`` and ``generate``.

    For each bin, ``samples_per_bin`` deterministic haystacks (depths balanced over 10 bins) are internalized
    ``batch_size`` at a time (``model.internalize(docs, chunk_length=, rank_budget=)``), then the question is
    asked WITHOUT the haystack (``model.generate(questions, adapters, max_new_tokens=)``, question i uses
    adapter i). An answer is right when its first 4-digit number equals the needle's.

    ``haystack="prose"`` uses varied sentences instead of the repeated filler. Each ``extra_rank_budgets`` entry
    scores the same internalized adapters again after compressing them to that rank (no second encoding).
    ``progress`` gets one line per bin when the bin is scored (accuracy, haystacks, seconds).

    Returns ``{"bins": [{"bin", "n_tokens", "accuracy", "n", "mean_tokens"}], "acc_mean", "native_window",
    "samples": [{"bin", "n_tokens", "depth", "answer", "output", "correct"}], "rank_budgets": {budget: [rows
    like "bins"]}}``.
    """
    tokenizer = tokenizer if tokenizer is not None else getattr(model, "tokenizer", None)
    if tokenizer is None:
        raise ValueError("evaluate_niah needs a tokenizer: pass tokenizer= or give the model a .tokenizer.")
    if samples_per_bin < 1 or batch_size < 1:
        raise ValueError(
            f"samples_per_bin and batch_size must be >= 1, got {samples_per_bin} and {batch_size}."
        )
    native = native_window or model_native_window(model)
    targets = [(str(b), resolve_length(b, native)) for b in bins]
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    budget_rows: dict[int, list[dict[str, Any]]] = {int(b): [] for b in extra_rank_budgets}
    modes = {m: m.training for m in model.modules()} if isinstance(model, torch.nn.Module) else {}
    if modes:
        model.eval()
    try:
        with torch.no_grad():
            for index, (spec, n) in enumerate(targets, start=1):
                started = time.perf_counter()
                examples = niah_examples(tokenizer, n, samples_per_bin, seed, "niah-eval", haystack)
                metric = MeanMetric(sync_on_compute=False)  # every rank scores the same haystacks
                budget_hits: dict[int, list[bool]] = {b: [] for b in budget_rows}
                for start in range(0, len(examples), batch_size):
                    group = examples[start : start + batch_size]
                    adapters = model.internalize(
                        [e.context for e in group], chunk_length=chunk_length, rank_budget=rank_budget
                    )
                    outputs = model.generate(
                        [e.question for e in group], adapters, max_new_tokens=max_new_tokens
                    )
                    if len(outputs) != len(group):
                        raise ValueError(
                            f"generate returned {len(outputs)} answers for {len(group)} questions."
                        )
                    questions = [e.question for e in group]
                    for b, hits in budget_hits.items():
                        small = adapters.compress(b) if adapters.rank > b else adapters
                        answers = model.generate(questions, small, max_new_tokens=max_new_tokens)
                        hits += [extract_number(o) == e.answer for o, e in zip(answers, group)]
                    for e, out in zip(group, outputs):
                        correct = extract_number(out) == e.answer
                        metric.update(float(correct))
                        samples.append(
                            {"bin": spec, "n_tokens": e.n_tokens, "depth": e.depth, "answer": e.answer}
                            | {"output": out, "correct": correct}
                        )
                mean_tokens = sum(e.n_tokens for e in examples) / len(examples)
                acc = float(metric.compute())
                rows.append(
                    {
                        "bin": spec,
                        "n_tokens": n,
                        "accuracy": acc,
                        "n": len(examples),
                        "mean_tokens": mean_tokens,
                    }
                )
                for b, hits in budget_hits.items():
                    budget_rows[b].append(rows[-1] | {"accuracy": sum(hits) / len(hits), "rank_budget": b})
                if progress is not None:
                    progress(
                        f"[NIAH] bin {index}/{len(targets)} {spec} ({n} tokens): accuracy {acc:.2f} on "
                        f"{len(examples)} haystacks ({time.perf_counter() - started:.1f} s)"
                    )
    finally:
        for module, mode in modes.items():  # restore each submodule (a frozen base stays in eval mode)
            module.train(mode)
    acc_mean = sum(r["accuracy"] for r in rows) / len(rows) if rows else 0.0
    return {
        "bins": rows,
        "acc_mean": acc_mean,
        "native_window": native,
        "samples": samples,
        "rank_budgets": budget_rows,
    }


def niah_metrics(results: dict[str, Any], prefix: str = "niah") -> dict[str, float]:
    """Flat metrics: ``<prefix>/acc_<n_tokens>`` per bin and ``<prefix>/acc_mean``."""
    out = {f"{prefix}/acc_{r['n_tokens']}": float(r["accuracy"]) for r in results["bins"]}
    out[f"{prefix}/acc_mean"] = float(results["acc_mean"])
    return out
