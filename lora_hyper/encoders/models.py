"""Load a Doc-to-LoRA context encoder by name: a causal LM, or a vision-language model through its processor."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from lora_hyper.base_model import (
    freeze,
    load_base_model,
    prepare_tokenizer,
    resolve_attn_implementation,
    resolve_dtype,
    resolve_model_path,
)
from lora_hyper.encoders.context import ContextEncoder
from lora_hyper.encoders.vlm import VLMContextEncoder

ENCODER_KINDS = ("causal_lm", "vlm")


def is_vlm_config(config: Any) -> bool:
    """True for image-text-to-text configs (they carry a ``vision_config``)."""
    return getattr(config, "vision_config", None) is not None


def encoder_kind(name_or_path: str) -> str:
    """``vlm`` or ``causal_lm``, read from the model's config only (no weights load)."""
    from transformers import AutoConfig

    return (
        "vlm" if is_vlm_config(AutoConfig.from_pretrained(resolve_model_path(name_or_path))) else "causal_lm"
    )


def _text_tokenizer(tokenizer: Any, chat_template: str | None = None) -> Any:
    """Left padding, a pad token, and the processor's chat template where the tokenizer has none."""
    prepare_tokenizer(tokenizer)
    if not getattr(tokenizer, "chat_template", None) and chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def load_processor(name_or_path: str) -> Any:
    """A VLM's ``AutoProcessor`` (its tokenizer left-padded, with the processor's chat template)."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(resolve_model_path(name_or_path))
    _text_tokenizer(processor.tokenizer, getattr(processor, "chat_template", None))
    return processor


def load_encoder_tokenizer(name_or_path: str) -> Any:
    """The tokenizer that formats context chunks for an encoder model (a VLM's is its processor's tokenizer)."""
    if encoder_kind(name_or_path) == "vlm":
        return load_processor(name_or_path).tokenizer
    from lora_hyper.base_model import load_tokenizer

    return load_tokenizer(name_or_path)


def load_vlm(
    name_or_path: str,
    attn_implementation: str = "auto",
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Return ``(model, processor)``: a frozen ``AutoModelForImageTextToText`` and its processor."""
    from transformers import AutoModelForImageTextToText

    path = resolve_model_path(name_or_path)
    model = AutoModelForImageTextToText.from_pretrained(
        path,
        dtype=resolve_dtype(dtype, device),
        attn_implementation=resolve_attn_implementation(attn_implementation),
    )
    if device is not None:
        model.to(device)
    model.config.name_or_path = str(name_or_path)
    return freeze(model), load_processor(name_or_path)


def load_context_encoder(
    name_or_path: str,
    mode: str = "per_layer",
    n_layers: int | None = None,
    n_out_layers: int | None = None,
    layer_map: str | Sequence[int] = "even",
    attn_implementation: str = "auto",
    dtype: str | torch.dtype = "auto",
    device: str | torch.device | None = None,
) -> tuple[ContextEncoder, Any]:
    """``(encoder, tokenizer)`` for a context-encoder model that is not the target: a hub name, local dir or
    packaged alias; a VLM becomes a :class:`VLMContextEncoder`, a causal LM a :class:`ContextEncoder`."""
    if encoder_kind(name_or_path) == "vlm":
        model, processor = load_vlm(name_or_path, attn_implementation, dtype, device)
        encoder = VLMContextEncoder(model, processor, mode, n_layers, n_out_layers, layer_map)
        return encoder, processor.tokenizer
    model, tokenizer = load_base_model(name_or_path, attn_implementation, dtype, device=device)
    return ContextEncoder(model, mode, n_layers, n_out_layers, layer_map), tokenizer
