"""VLMContextEncoder: a vision-language model's language-model activations over text chunks or image turns."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lora_hyper.encoders.context import ContextEncoder


def image_turn(image: Any, system: str | None = "") -> list[dict[str, Any]]:
    """The chat messages of one image read as a document: a user turn holding only the image (after an empty
    system message by default, as the reference; ``None``: no system message)."""
    messages: list[dict[str, Any]] = []
    if system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": system}]})
    messages.append({"role": "user", "content": [{"type": "image", "image": image}]})
    return messages


class VLMContextEncoder(ContextEncoder):
    """A frozen image-text-to-text model (Gemma-3, SmolVLM/Idefics3, Qwen2-VL, LLaVA, ...) as a context encoder.

    Text contexts (training) run through the VLM exactly as :class:`ContextEncoder` runs a causal LM (no
    image, so only its language model works). Images (evaluation) are templated by the model's own processor
    as a user turn holding only the image; the language model's activations over template + image tokens come
    back in the same layout, ``[n, L, T, d]`` (``per_layer``) or ``[n, T, d]`` (``early_exit``), with the image
    tokens inside the mask.

    Args:
        model: a Hugging Face ``AutoModelForImageTextToText`` model (frozen, eval mode).
        processor: its ``AutoProcessor`` (tokenizer + image processor + chat template).
        mode, n_layers, n_out_layers, layer_map: as :class:`ContextEncoder`.
    """

    def __init__(
        self,
        model: nn.Module,
        processor: Any,
        mode: str = "per_layer",
        n_layers: int | None = None,
        n_out_layers: int | None = None,
        layer_map: str | Sequence[int] = "even",
    ) -> None:
        super().__init__(model, mode, n_layers, n_out_layers, layer_map)
        self.processor = processor

    def image_inputs(self, images: Sequence[Any], system: str | None = "") -> dict[str, Tensor]:
        """Processor outputs (left-padded ids and mask, pixel values, ...) for one image turn per image."""
        tokenizer = getattr(self.processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"
        template = self.processor.apply_chat_template
        padding = {"padding": True}
        if "processor_kwargs" in inspect.signature(template).parameters:  # transformers >= 5
            padding = {"processor_kwargs": padding}
        batch = template(
            [image_turn(img, system) for img in images],
            add_generation_prompt=False,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **padding,
        )
        param = next(self.model.parameters())
        out: dict[str, Tensor] = {}
        for key, value in batch.items():
            if not isinstance(value, Tensor):
                continue
            value = value.to(param.device)
            out[key] = value.to(param.dtype) if value.is_floating_point() else value
        return out

    @torch.no_grad()
    def encode_images(self, images: Sequence[Any], system: str | None = "") -> tuple[Tensor, Tensor]:
        """``(features, mask)`` of the language model over each image's turn (template + image tokens)."""
        return self.capture(**self.image_inputs(images, system))
