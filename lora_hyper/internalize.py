"""Internalize: documents (or images) -> one LoRA adapter each, through a context encoder and a Doc-to-LoRA
hypernetwork. Chunks of all documents are packed by length, encoded, turned into per-chunk adapters, summed per
document, joined with the bias block and compressed to a rank budget if asked."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch

from lora_hyper.base_model import native_window
from lora_hyper.encoders.chunking import encode_documents
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.encoders.vlm import VLMContextEncoder
from lora_hyper.hypernets.d2l import DocToLoRAHypernet, group_sizes
from lora_hyper.lora import LoRABatch
from lora_hyper.strategies import unsharded
from lora_hyper.validation import InputError, check_texts, positive

CPU_SLICE_TOKENS = 2048
CHUNK_MARGIN = (
    128  # tokens left for the chat wrapping of a chunk when the chunk length defaults to the window
)


def default_chunk_length(encoder: ContextEncoder) -> int:
    """The longest chunk the encoder reads within its native window (leaving room for the chat wrapping)."""
    return max(16, native_window(encoder.model) - CHUNK_MARGIN)


def length_sorted_slices(
    lengths: Sequence[int], batch_size: int, max_padding: float = 0.1, max_tokens: int | None = None
) -> list[list[int]]:
    """Chunk indices in slices of at most ``batch_size``, in order of length; a slice also ends where the next
    chunk is more than ``max_padding`` longer than its shortest, so padding never costs more than that, and
    (``max_tokens``) where its padded size would pass that many tokens (one chunk always fits)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    slices: list[list[int]] = []
    for i in order:
        if (
            slices
            and len(slices[-1]) < batch_size
            and lengths[i] <= (1 + max_padding) * lengths[slices[-1][0]]
            and (max_tokens is None or (len(slices[-1]) + 1) * lengths[i] <= max_tokens)
        ):
            slices[-1].append(i)
        else:
            slices.append([i])
    return slices


def default_slice_tokens(device: torch.device) -> int | None:
    """Tokens per encoder forward when internalizing: 2048 on CPU (longer batches only lose cache locality:
    8 documents of 1573 tokens took 1.14x longer batched than one at a time), unlimited on accelerators."""
    return CPU_SLICE_TOKENS if device.type == "cpu" else None


@torch.no_grad()
def internalize_documents(
    encoder: ContextEncoder,
    hypernet: DocToLoRAHypernet,
    tokenizer: Any,
    docs: str | Sequence[str],
    chunk_length: int | None = None,
    rank_budget: int | None = None,
    chunk_batch_size: int = 16,
    progress: bool = False,
    system: str | None = None,
    include_bias: bool = True,
    slice_tokens: int | None = -1,
) -> LoRABatch:
    """One adapter per document, any length: chunk, encode and run the hypernetwork on slices of chunks,
    sum each document's chunk adapters, add the bias block, then compress to ``rank_budget`` if given.

    Chunks of all documents are packed into slices of similar length (sorted by length, each slice cut to its
    longest chunk, at most ``slice_tokens`` tokens: -1 picks :func:`default_slice_tokens`, None is unlimited), so a
    batch of documents costs about one encoder pass over its tokens. ``system`` is the
    system message of every chunk's chat wrapping (the one the hypernetwork was trained on);
    ``include_bias=False`` leaves the context-free bias block out (the documents' own deltas only).
    """
    docs = check_texts(docs, "document")
    positive(rank_budget, "rank_budget")
    positive(chunk_length, "chunk_length")
    positive(chunk_batch_size, "chunk_batch_size")
    batch = encode_documents(
        tokenizer, docs, chunk_length=chunk_length or default_chunk_length(encoder), system=system
    )
    device = next(hypernet.parameters()).device
    ids, mask, doc_index = batch["ctx_input_ids"], batch["ctx_attention_mask"], batch["ctx_doc_index"]
    if slice_tokens == -1:
        slice_tokens = default_slice_tokens(device)
    slices = length_sorted_slices(mask.sum(1).tolist(), chunk_batch_size, max_tokens=slice_tokens)
    if progress and len(slices) > 1:
        from tqdm.auto import tqdm

        slices = tqdm(slices, desc="internalize", unit="batch")
    chunks = packed_chunk_loras(encoder, hypernet, ids, mask, slices, device).detach()
    return _per_document(hypernet, chunks, doc_index.to(device), include_bias, rank_budget)


def packed_chunk_loras(
    encoder: ContextEncoder,
    hypernet: DocToLoRAHypernet,
    ids: torch.Tensor,
    mask: torch.Tensor,
    slices: Iterable[list[int]],
    device: torch.device,
) -> LoRABatch:
    """Per-chunk adapters (no bias) of left-padded chunks ``ids``/``mask``, encoded slice by slice (each cut to
    its longest chunk), returned in the chunks' order; the hypernetwork's ``last_gate`` follows that order too."""
    parts, gates, order = [], [], []
    for rows in slices:
        m = mask[rows]
        keep = m.any(0)  # left padding: drop columns that are padding in every row of this slice
        feats, fmask = encoder(ids[rows][:, keep].to(device), m[:, keep].to(device))
        parts.append(hypernet(feats, fmask, join=False))
        if hypernet.last_gate is not None:
            gates.append(hypernet.last_gate)
        order += rows
    back = torch.tensor(order).argsort()  # back to the chunks' order (on the CPU: select checks it there)
    if gates:
        hypernet.last_gate = torch.cat(gates)[back.to(device)]
    return LoRABatch.cat(parts).select(back)


def _per_document(
    hypernet: DocToLoRAHypernet,
    chunks: LoRABatch,
    doc_index: torch.Tensor,
    include_bias: bool,
    rank_budget: int | None,
) -> LoRABatch:
    """Sum each document's chunk adapters (with the bias block unless ``include_bias`` is false), then
    compress to ``rank_budget`` when the result is larger."""
    with unsharded(hypernet):
        if include_bias:
            lora = hypernet.join(chunks, doc_index).detach()
        else:
            lora = chunks.merge_groups(group_sizes(doc_index))
    if rank_budget is not None and lora.rank > rank_budget:
        lora = lora.compress(rank_budget)
    return lora


@torch.no_grad()
def internalize_images(
    encoder: ContextEncoder,
    hypernet: DocToLoRAHypernet,
    images: Any,
    rank_budget: int | None = None,
    batch_size: int = 8,
    system: str | None = "",
    include_bias: bool = True,
) -> LoRABatch:
    """One adapter per image: the VLM reads each image as a user turn holding only the image, its language
    model's activations feed the hypernetwork, plus the bias block (compressed to ``rank_budget`` if given)."""
    from lora_hyper.images import load_images

    if not isinstance(encoder, VLMContextEncoder):
        raise InputError(
            "This Doc-to-LoRA model has no VLM context encoder, so it cannot read images: train it with a "
            "vision-language context encoder (encoder.model, e.g. google/gemma-3-4b-it)."
        )
    positive(rank_budget, "rank_budget")
    positive(batch_size, "batch_size")
    pictures = load_images(images)
    parts = []
    for start in range(0, len(pictures), batch_size):
        feats, mask = encoder.encode_images(pictures[start : start + batch_size], system=system)
        parts.append(hypernet(feats, mask, join=False).detach())
    chunks = LoRABatch.cat(parts)
    one_each = torch.arange(chunks.batch_size, device=next(hypernet.parameters()).device)
    return _per_document(hypernet, chunks, one_each, include_bias, rank_budget)
