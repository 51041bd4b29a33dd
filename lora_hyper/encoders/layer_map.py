"""Which encoder layer feeds which target layer when the context encoder is not the target model."""

from __future__ import annotations

from collections.abc import Sequence

from lora_hyper.validation import InputError

LAYER_MAPS = ("even", "nearest", "first")


def describe_layer_map(layer_map: str | Sequence[int]) -> str | list[int]:
    """The JSON-friendly form of a layer map (a name, or a list of ints) as saved in model directories."""
    return layer_map if isinstance(layer_map, str) else [int(j) for j in layer_map]


def map_layers(layer_map: str | Sequence[int], n_encoder: int, n_target: int) -> list[int]:
    """Encoder layer ``j`` whose INPUT activation (``hidden_states[j]``; 0 = embeddings) feeds target layer ``l``.

    Maps (all are the identity when the depths match):
        ``even``: spread over the whole encoder, first and last included: ``j = round(l * (E-1) / (T-1))``.
        ``nearest``: the encoder layer at the same relative depth: ``j = min(E-1, round(l * E / T))``.
        ``first``: the first ``T`` activations, ``j = l`` (the reference's Gemma-3-4b -> Gemma-2-2b setting:
            embeddings + 25 layers for 26 target layers); needs ``E >= T``.
        a list of ``T`` ints in ``0..E-1``: explicit.
    """
    if n_encoder < 1 or n_target < 1:
        raise InputError(f"layer counts must be >= 1, got encoder {n_encoder} and target {n_target}.")
    if not isinstance(layer_map, str):
        ids = list(layer_map)
        if len(ids) != n_target or not all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j < n_encoder for j in ids
        ):
            raise InputError(
                f"encoder_layer_map {ids!r} must list {n_target} encoder layers (one per target layer), each in "
                f"0..{n_encoder - 1}; or use one of {LAYER_MAPS}."
            )
        return ids
    if layer_map not in LAYER_MAPS:
        raise InputError(
            f"Unknown encoder_layer_map {layer_map!r}: use one of {LAYER_MAPS} or a list of layer ids."
        )
    if layer_map == "first":
        if n_encoder < n_target:
            raise InputError(
                f"encoder_layer_map 'first' needs an encoder at least as deep as the target ({n_encoder} < "
                f"{n_target} layers); use 'even' or 'nearest'."
            )
        return list(range(n_target))
    if n_target == 1:
        return [0]
    if layer_map == "even":
        return [round(i * (n_encoder - 1) / (n_target - 1)) for i in range(n_target)]
    return [min(n_encoder - 1, round(i * n_encoder / n_target)) for i in range(n_target)]
