"""Cut documents into chunks, each wrapped as its own chat user turn, and batch all chunks of all documents."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lora_hyper.prompts import pad_left


def _wrap_ids(tokenizer: Any, system: str | None = None) -> tuple[list[int], list[int]]:
    """Token ids the chat template puts before and after a user message (found, never hard-coded); without a
    chat template, the special tokens the tokenizer adds to plain text (a BOS), and ``system`` is unused.

    ``system=None``: the template's default system prompt (if any) in every chunk; ``""``: an explicit empty
    system message (the reference's chunk wrapping: no default prompt repeated in every chunk)."""
    cache = getattr(tokenizer, "_lora_hyper_wrap", None)
    if not isinstance(cache, dict):
        cache = {}
    if system in cache:
        return cache[system]
    if not getattr(tokenizer, "chat_template", None):
        wrap: tuple[list[int], list[int]] = _plain_text_wrap(tokenizer)
    else:
        marker = "\u2063LORAHYPERMARK\u2063"
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": marker})
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        if marker not in text:  # templates of vision-language models read content as a list of typed parts
            typed = [{**m, "content": [{"type": "text", "text": m["content"]}]} for m in messages]
            text = tokenizer.apply_chat_template(typed, tokenize=False)
        if marker not in text:
            raise ValueError("The tokenizer's chat template drops the user message; cannot wrap chunks.")
        before, after = text.split(marker, 1)
        # Templates that inject a default system prompt keep it only once per chunk; that is the model's own format.
        enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
        wrap = (list(enc(before)), list(enc(after)))
    cache[system] = wrap
    try:
        tokenizer._lora_hyper_wrap = cache
    except AttributeError:
        pass
    return wrap


def _plain_text_wrap(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer itself puts around plain text (e.g. Gemma's BOS): a model without a chat
    template (a pre-trained one) reads each chunk as the start of a text, as in pre-training."""
    plain = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("x")["input_ids"])
    if not plain:  # nothing to locate the text by
        return [], []
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return full[:i], full[i + len(plain) :]
    return [], []


def split_tokens(
    ids: Sequence[int], chunk_length: int | None = None, n_chunks: int | None = None
) -> list[list[int]]:
    """Split ``ids`` into ``n_chunks`` near-equal pieces, or into the fewest near-equal pieces of at most
    ``chunk_length`` tokens (``ceil(len / chunk_length)`` of them)."""
    ids = list(ids)
    if (chunk_length is None) == (n_chunks is None):
        raise ValueError("give exactly one of chunk_length and n_chunks.")
    if chunk_length is not None:
        if chunk_length < 1:
            raise ValueError(f"chunk_length must be >= 1, got {chunk_length}.")
        if not ids:
            return [[]]
        # ceil(n / chunk_length) near-equal chunks: never a sliver (1025 tokens -> 512 + 513, not 1024 + 1)
        n_chunks = -(-len(ids) // chunk_length)
    n = max(1, min(int(n_chunks), len(ids)))  # type: ignore[arg-type]
    bounds = [round(i * len(ids) / n) for i in range(n + 1)]
    return [ids[bounds[i] : bounds[i + 1]] for i in range(n)]


def chunk_document(
    tokenizer: Any,
    text: str,
    chunk_length: int | None = None,
    n_chunks: int | None = None,
    system: str | None = None,
) -> list[list[int]]:
    """Token ids of each chunk of ``text``, each wrapped as a user turn of the tokenizer's chat template
    (after a ``system`` message when it is not ``None``; ``""`` is an empty one).

    With neither ``chunk_length`` nor ``n_chunks`` the document is one chunk.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The document is empty or whitespace only; give it some text to internalize.")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if chunk_length is None and n_chunks is None:
        pieces = [list(ids)]
    else:
        pieces = split_tokens(ids, chunk_length, n_chunks)
    before, after = _wrap_ids(tokenizer, system)
    return [before + p + after for p in pieces]


def encode_documents(
    tokenizer: Any,
    docs: Sequence[str],
    chunk_length: int | None = None,
    n_chunks: int | Sequence[int] | None = None,
    system: str | None = None,
) -> dict[str, torch.Tensor]:
    """All chunks of all documents as one left-padded batch: ``ctx_input_ids``, ``ctx_attention_mask``,
    ``ctx_doc_index`` (the Doc-to-LoRA context part of the batch contract in ``data_modules/collate.py``).

    ``n_chunks`` may be one count per document (training samples K per document); ``system`` is the system
    message of every chunk's wrapping (see :func:`chunk_document`).
    """
    if isinstance(docs, str):
        docs = [docs]
    if not docs:
        raise ValueError("No documents given.")
    per_doc_n = list(n_chunks) if isinstance(n_chunks, Sequence) else [n_chunks] * len(docs)
    chunks: list[list[int]] = []
    doc_index: list[int] = []
    for d, (text, n) in enumerate(zip(docs, per_doc_n)):
        pieces = chunk_document(
            tokenizer, text, chunk_length=chunk_length if n is None else None, n_chunks=n, system=system
        )
        chunks += pieces
        doc_index += [d] * len(pieces)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    ids, mask = pad_left(chunks, pad)
    return {
        "ctx_input_ids": ids,
        "ctx_attention_mask": mask,
        "ctx_doc_index": torch.tensor(doc_index, dtype=torch.long),
    }
