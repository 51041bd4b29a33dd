"""ContextEncoder: a frozen causal LM's own activations over document chunks (Doc-to-LoRA's input)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lora_hyper.encoders.layer_map import describe_layer_map, map_layers
from lora_hyper.lora.spec import find_decoder_layers

MODES = ("per_layer", "early_exit")


class _StopForward(Exception):
    """Raised from a hook once every needed activation is captured, so later layers never run."""


def _hidden_of(args: tuple, kwargs: dict) -> Tensor:
    """The hidden-state tensor a decoder layer receives (positional or keyword)."""
    if args:
        return args[0]
    return kwargs["hidden_states"]


class ContextEncoder(nn.Module):
    """Run a frozen causal LM over context chunks under ``no_grad`` and return its activations.

    Modes:
        ``per_layer``: the hidden state feeding each decoder layer, stacked ``[chunks, L, T, d]`` (the last
            layer and the LM head never run). With ``n_out_layers`` different from the encoder's depth
            (a separate encoder model), ``layer_map`` picks the encoder layer of each output, so output ``l``
            feeds base layer ``l`` (see :func:`lora_hyper.encoders.layer_map.map_layers`).
        ``early_exit``: the hidden state after the first ``n_layers`` layers (default a quarter),
            ``[chunks, T, d]``; the remaining layers never run.

    Args:
        model: a Hugging Face causal LM (the base model itself, or another model of any width).
        mode: ``per_layer`` or ``early_exit``.
        n_layers: ``early_exit`` depth (default ``num_layers // 4``, at least 1).
        n_out_layers: ``per_layer`` output count (default: the encoder's own layer count).
        layer_map: ``even`` (default), ``nearest``, ``first`` or an explicit list of encoder layers.
    """

    def __init__(
        self,
        model: nn.Module,
        mode: str = "per_layer",
        n_layers: int | None = None,
        n_out_layers: int | None = None,
        layer_map: str | Sequence[int] = "even",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Unknown context encoder mode {mode!r}: use one of {MODES}.")
        self.model = model
        self.mode = mode
        _, layers = find_decoder_layers(model)
        self.depth = len(layers)
        if mode == "early_exit":
            n = n_layers if n_layers is not None else max(1, self.depth // 4)
            if not 1 <= n <= self.depth:
                raise ValueError(f"early_exit n_layers must be in 1..{self.depth}, got {n}.")
            self.n_layers = n
            self.layer_ids = [n - 1]
        else:
            out = n_out_layers or self.depth
            self.n_layers = out
            self.layer_ids = map_layers(layer_map, self.depth, out)  # input of encoder layer j, per output
        self.layer_map = describe_layer_map(layer_map)
        config = getattr(model, "config", None)
        cfg = getattr(config, "text_config", None) or config
        self.hidden_size = int(cfg.hidden_size)

    @property
    def per_layer(self) -> bool:
        return self.mode == "per_layer"

    def _layers(self) -> nn.ModuleList:
        return find_decoder_layers(self.model)[1]

    @torch.no_grad()
    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``(features, mask)``: ``[chunks, L, T, d]`` or ``[chunks, T, d]``, and the ``[chunks, T]`` mask."""
        return self.capture(input_ids=input_ids, attention_mask=attention_mask)

    @torch.no_grad()
    def capture(self, **model_inputs: Any) -> tuple[Tensor, Tensor]:
        """Run the model on ``model_inputs`` (ids, mask, and e.g. pixel values) until every wanted activation is
        captured; return ``(features, attention_mask)`` as :meth:`forward` does."""
        attention_mask = model_inputs["attention_mask"]
        layers = self._layers()
        captured: dict[int, Tensor] = {}
        handles = []
        if self.per_layer:
            wanted = sorted(set(self.layer_ids))
            last = wanted[-1]

            def make_pre(j: int):
                def pre(module, args, kwargs):
                    captured[j] = _hidden_of(args, kwargs)
                    if j == last:
                        raise _StopForward

                return pre

            for j in wanted:
                handles.append(layers[j].register_forward_pre_hook(make_pre(j), with_kwargs=True))
        else:
            j = self.layer_ids[0]

            def post(module, args, output):
                captured[j] = output[0] if isinstance(output, tuple) else output
                raise _StopForward

            handles.append(layers[j].register_forward_hook(post))
        try:
            self.model(**model_inputs, use_cache=False)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        if self.per_layer:
            feats = torch.stack([captured[j] for j in self.layer_ids], dim=1)
        else:
            feats = captured[self.layer_ids[0]]
        return feats.detach(), attention_mask
