"""Chat-templated prompt ids, left padding and label masking: the primitives every part of lora-hyper shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

IGNORE_INDEX = -100


def pad_left(rows: Sequence[Sequence[int]], pad_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad token lists into ``(ids [n, T], mask [n, T])``."""
    if not rows:
        raise ValueError("pad_left needs at least one row.")
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_value, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if len(r):
            ids[i, width - len(r) :] = torch.as_tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def chat_prompt_ids(tokenizer: Any, user: str, system: str | None = None) -> list[int]:
    """Token ids of a chat prompt ending with the assistant header (the tokenizer's own template).

    ``system=None`` lets the template add its default system prompt (if it has one); ``""`` sends an explicit
    empty system message, so no default prompt is added (what Doc-to-LoRA uses, as the reference)."""
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": user}
    ]
    if getattr(tokenizer, "chat_template", None):
        out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if isinstance(out, dict) or hasattr(out, "keys"):
            out = out["input_ids"]
        return list(out)
    text = (system + "\n\n" if system else "") + user + "\n"
    return tokenizer(text, add_special_tokens=True)["input_ids"]


def answer_ids(tokenizer: Any, answer: str) -> list[int]:
    """Token ids of an answer followed by the end-of-turn token (so the model learns to stop)."""
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    return list(ids) + ([eos] if eos is not None else [])


def lm_example(
    tokenizer: Any, user: str, answer: str, system: str | None = None
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` for one prompt/answer pair; labels are -100 on the prompt."""
    prompt = chat_prompt_ids(tokenizer, user, system)
    ans = answer_ids(tokenizer, answer)
    return prompt + ans, [IGNORE_INDEX] * len(prompt) + ans
