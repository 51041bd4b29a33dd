"""The inference API: load a trained hypernetwork, turn text into adapters, export PEFT directories."""

from __future__ import annotations

from lora_hyper.doc_to_lora import DocToLoRA
from lora_hyper.text_to_lora import TextToLoRA

__all__ = ["DocToLoRA", "TextToLoRA"]
