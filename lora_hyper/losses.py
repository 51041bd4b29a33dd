"""Losses shared by the hypernetwork objectives: per-sample CE, top-k logit distillation, factor penalties."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lora_hyper.lora.batch import LoRABatch
from lora_hyper.prompts import IGNORE_INDEX


def per_sample_ce(logits: Tensor, labels: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Next-token cross-entropy averaged over each row's labelled tokens: ``[rows]``.

    Rows without any labelled token get 0 (and contribute no gradient).
    """
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    tok = F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
        reduction="none",
    ).view(shift_labels.shape)
    valid = (shift_labels != IGNORE_INDEX).float()
    return (tok * valid).sum(1) / valid.sum(1).clamp(min=1)


def answer_window(labels: Tensor) -> int:
    """How many trailing positions' logits predict every labelled token of ``labels`` (``logits_to_keep``):
    question rows are left-padded with the answer last, so the LM head need not run over the prompts."""
    valid = labels != IGNORE_INDEX
    rows = valid.any(1)
    if not bool(rows.any()):
        return labels.shape[1]
    start = int(valid.float().argmax(1)[rows].min())  # earliest first-labelled position over the rows
    return min(labels.shape[1], labels.shape[1] - start + 1)


def answer_logits(logits: Tensor, labels: Tensor) -> list[Tensor]:
    """Per row, the logits that predict the labelled tokens: ``[n_answer_tokens, vocab]`` each."""
    valid = labels[:, 1:] != IGNORE_INDEX
    return [logits[i, :-1][valid[i]] for i in range(logits.shape[0])]


def topk_distill_per_sample(
    student_logits: Tensor,
    student_labels: Tensor,
    teacher_logits: Tensor,
    teacher_labels: Tensor,
    k: int = 16,
) -> Tensor:
    """``-sum_{j in top-k(teacher)} p_teacher(j) * log p_student(j)`` per answer token, averaged per row.

    Student and teacher rows hold the same answer at different positions (the teacher also sees the
    document); the labels locate the answer in each. Returns ``[rows]``.
    """
    out = []
    for s, t in zip(
        answer_logits(student_logits, student_labels), answer_logits(teacher_logits, teacher_labels)
    ):
        if s.shape[0] != t.shape[0]:
            raise ValueError(
                f"student and teacher answers differ in length ({s.shape[0]} vs {t.shape[0]} tokens)."
            )
        if s.shape[0] == 0:
            out.append(s.sum() * 0.0)
            continue
        p_t = torch.softmax(t.float(), dim=-1)
        top_p, top_i = p_t.topk(min(k, p_t.shape[-1]), dim=-1)
        log_s = torch.log_softmax(s.float(), dim=-1).gather(-1, top_i)
        out.append(-(top_p * log_s).sum(-1).mean())
    return torch.stack(out)


def mean_by_group(values: Tensor, group_index: Tensor) -> Tensor:
    """Average ``values`` within each group, then over groups (e.g. per question, then per document)."""
    n_groups = int(group_index.max().item()) + 1
    sums = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(0, group_index, values)
    counts = torch.zeros(n_groups, dtype=values.dtype, device=values.device).index_add(
        0, group_index, torch.ones_like(values)
    )
    present = counts > 0
    return (sums[present] / counts[present]).mean()


def factor_l1(
    lora: LoRABatch, bias: LoRABatch | None = None, group_sizes: Sequence[int] | None = None
) -> Tensor:
    """The reference's L1 on generated factors: ``mean|A| + mean|B|`` per module type, averaged over modules.

    With ``group_sizes`` (chunks per document; ``lora`` holds the per-chunk adapters) and the context-free
    ``bias`` block, each document's combined adapter (its chunks + the bias, rank ``K*r + r_bias``) is
    penalised over its own rank rows only, then documents are averaged: every chunk pays the same whatever
    the padding to the batch's largest K, and a document's penalty matches the reference's unbatched one.
    Without ``group_sizes`` every sample of ``lora`` is one document (plus ``bias`` if given).
    """
    n = lora.batch_size
    sizes = [1] * n if group_sizes is None else [int(g) for g in group_sizes]
    if sum(sizes) != n:
        raise ValueError(f"group sizes {sizes} must sum to the number of chunk adapters {n}.")
    doc = torch.repeat_interleave(
        torch.arange(len(sizes), device=lora.device), torch.tensor(sizes).to(lora.device)
    )
    chunks = torch.tensor(sizes, dtype=torch.float32, device=lora.device)
    terms = []
    for m in lora.spec.target_modules:
        term = 0.0
        for chunk_f, bias_f in (
            (lora.A[m], bias.A[m] if bias else None),
            (lora.B[m], bias.B[m] if bias else None),
        ):
            per_chunk = chunk_f.abs().float().sum(dim=(1, 2, 3))  # [chunks]
            total = torch.zeros(len(sizes), device=lora.device).index_add(0, doc, per_chunk)
            count = chunks * chunk_f[0].numel()
            if bias_f is not None:
                total = total + bias_f[0].abs().float().sum()
                count = count + bias_f[0].numel()
            term = term + total / count
        terms.append(term)
    return torch.stack(terms).mean(0).mean()


def factor_l2(lora: LoRABatch) -> Tensor:
    """Mean of A^2 plus mean of B^2 over module types (the T2L regulariser)."""
    a = torch.stack([t.pow(2).mean() for t in lora.A.values()]).mean()
    b = torch.stack([t.pow(2).mean() for t in lora.B.values()]).mean()
    return a + b


def reconstruction_l1(pred: LoRABatch, target: LoRABatch, mode: str = "factors") -> Tensor:
    """L1 between generated and library adapters: on the factors (``factors``) or on delta W (``delta``)."""
    if mode == "factors":
        terms = [
            (pred.A[m] - target.A[m]).abs().mean() + (pred.B[m] - target.B[m]).abs().mean() for m in pred.A
        ]
    elif mode == "delta":
        terms = [(pred.delta(m) - target.delta(m)).abs().mean() for m in pred.A]
    else:
        raise ValueError(f"Unknown reconstruction mode {mode!r}: use 'factors' or 'delta'.")
    return torch.stack(terms).mean()
