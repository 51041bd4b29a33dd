"""Chat-templated batched generation with per-row adapters, shared by both hypernetworks and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from lora_hyper.lora import LoRABatch, apply_lora
from lora_hyper.prompts import chat_prompt_ids, pad_left


def _window(model: nn.Module) -> int | None:
    """The model's native window, or ``None`` when its config does not say."""
    from lora_hyper.base_model import native_window

    try:
        return native_window(model)
    except (AttributeError, ValueError, TypeError):
        return None


@torch.no_grad()
def generate_answers(
    model: nn.Module,
    tokenizer: Any,
    questions: str | Sequence[str],
    adapters: LoRABatch | None,
    max_new_tokens: int = 32,
    system: str | None = None,
    share_adapters: bool = False,
    **generate_kwargs: Any,
) -> list[str]:
    """Greedy (by default) chat-templated answers; question ``i`` uses adapter ``i``; with ``share_adapters``
    consecutive groups of ``k`` questions share one when there are ``k * adapters.batch_size`` questions;
    ``None`` is the plain base. ``system`` is an optional system message put before every question.

    A question longer than the model's native window is an error (long context goes through internalize)."""
    from lora_hyper.validation import check_adapter_count, check_prompt_lengths, check_texts, positive

    questions = check_texts(questions, "question")
    positive(max_new_tokens, "max_new_tokens")
    if adapters is not None:
        check_adapter_count(len(questions), adapters.batch_size, share_adapters)
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    prompts = [chat_prompt_ids(tokenizer, q, system) for q in questions]
    check_prompt_lengths([len(p) for p in prompts], _window(model))
    ids, mask = pad_left(prompts, pad)
    ids, mask = ids.to(device), mask.to(device)
    kwargs = {"do_sample": False, "pad_token_id": pad, "max_new_tokens": max_new_tokens, **generate_kwargs}
    if not kwargs["do_sample"]:
        kwargs.setdefault("temperature", None)
        kwargs.setdefault("top_p", None)
        kwargs.setdefault("top_k", None)
    ctx = apply_lora(model, adapters.to(device)) if adapters is not None else contextlib.nullcontext()
    with ctx:
        out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return [t.strip() for t in tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)]
