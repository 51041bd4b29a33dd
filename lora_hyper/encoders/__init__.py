"""Encoders: what turns inputs into hypernetwork features, and how documents are cut into chunks for them.

- ``TaskEncoder`` (Text-to-LoRA): a sentence-embedding model or the base LLM, pooled and normalised.
- ``ContextEncoder`` (Doc-to-LoRA): the base model's own per-layer or early-exit activations (or another model's,
  through a layer map).
- ``VLMContextEncoder`` (Doc-to-LoRA from images): a vision-language model's language-model activations over text
  chunks or over an image turn.
"""

from __future__ import annotations

from lora_hyper.lazy import lazy_exports

_LAZY = {
    "ContextEncoder": ".context",
    "TaskEncoder": ".task",
    "VLMContextEncoder": ".vlm",
    "encode_documents": ".chunking",
    "load_context_encoder": ".models",
    "map_layers": ".layer_map",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(
    __name__, _LAZY
)  # submodules import on first use: the package stays cheap
