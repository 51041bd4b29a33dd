"""The inference API: load a trained hypernetwork, turn text into adapters, export PEFT directories."""

from __future__ import annotations

from lora_hyper.lazy import lazy_exports

_LAZY = {"DocToLoRA": ".doc_to_lora", "TextToLoRA": ".text_to_lora"}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
