"""Evaluate a generated adapter on lm-eval-harness tasks in memory (the ``eval`` extra installs lm-eval)."""

from __future__ import annotations

import copy
from contextlib import nullcontext
from typing import Any

from torch import nn

from lora_hyper.lora import LoRABatch, apply_lora, merge_lora

INSTALL_HINT = "lm-eval is not installed: pip install 'lora-hyper[eval]' (the `eval` extra) to evaluate on lm-eval tasks."


def require_lm_eval() -> Any:
    """Import ``lm_eval`` or raise an ImportError naming the ``eval`` extra."""
    try:
        import lm_eval
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return lm_eval


def adapted_model(model: nn.Module, lora: LoRABatch | None, index: int = 0, merge: bool = True):
    """``(model, context)``: a merged copy of ``model`` with adapter ``index``, or ``model`` + an apply_lora context."""
    if lora is None:
        return model, nullcontext()
    one = lora.select(index)
    if merge:
        return merge_lora(copy.deepcopy(model), one, 0), nullcontext()
    return model, apply_lora(model, one)


def summarize_results(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` from lm-eval's results dict (numeric entries only, ``,none`` filters dropped)."""
    out: dict[str, dict[str, float]] = {}
    for task, metrics in (results.get("results") or {}).items():
        clean = {}
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or "stderr" in key:
                continue
            clean[key.split(",")[0]] = float(value)
        out[task] = clean
    return out


def evaluate_adapter(
    model: nn.Module,
    tokenizer: Any,
    lora: LoRABatch | None,
    tasks: list[str],
    index: int = 0,
    merge: bool = True,
    batch_size: int = 8,
    num_fewshot: int | None = None,
    limit: int | float | None = None,
    **simple_evaluate_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Score ``model`` with adapter ``index`` of ``lora`` on lm-eval ``tasks`` (e.g. ``["arc_easy", "boolq"]``).

    ``merge=True`` evaluates a merged copy (any batch shape lm-eval uses); ``merge=False`` applies the
    adapter with hooks on ``model`` itself (no copy of the weights).
    """
    if not tasks:
        raise ValueError("evaluate_adapter needs at least one lm-eval task name.")
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    target, context = adapted_model(model, lora, index, merge)
    with context:
        wrapped = HFLM(pretrained=target, tokenizer=tokenizer, batch_size=batch_size)
        results = lm_eval.simple_evaluate(
            model=wrapped, tasks=list(tasks), num_fewshot=num_fewshot, limit=limit, **simple_evaluate_kwargs
        )
    return summarize_results(results or {})
