"""Frozen encoders that turn inputs into hypernetwork features (one import point for both kinds).

- ``TaskEncoder`` (Text-to-LoRA): a sentence-embedding model or the base LLM, pooled and normalised.
- ``ContextEncoder`` (Doc-to-LoRA): the base model's own per-layer or early-exit activations (or another model's,
  through a layer map).
- ``VLMContextEncoder`` (Doc-to-LoRA from images): a vision-language model's language-model activations over text
  chunks or over an image turn.
"""

from __future__ import annotations

from lora_hyper.context_encoder import ContextEncoder
from lora_hyper.task_encoder import TaskEncoder
from lora_hyper.vlm_encoder import VLMContextEncoder

__all__ = ["ContextEncoder", "TaskEncoder", "VLMContextEncoder"]
