"""Warm start: the hypernetwork weights of a Lightning checkpoint, a saved model directory or a shipped name.

Used by ``init_from`` on the hypernetwork modules to continue a run with a new optimiser and schedule (a new
learning rate, a new data mix), which an exact ``--ckpt_path`` resume cannot do: it restores the old schedule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from lora_hyper.encoders.task import SAVED_TASK_ENCODER

CKPT_TASK_ENCODER = "task_encoder_model."  # trained task-encoder layers in a TextToLoRAModule checkpoint


@dataclass(frozen=True)
class StoredWeights:
    """Every tensor read from one ``init_from`` source, read once however many parts of a module it fills."""

    source: str
    state: dict[str, Tensor]
    is_ckpt: bool  # a Lightning checkpoint (module-level keys), else a saved model directory


Source = str | os.PathLike | StoredWeights


def read_weights(source: Source) -> StoredWeights:
    """Read ``source`` (a Lightning ``.ckpt`` with ``weights_only=True``, a directory written by
    ``save_pretrained`` or a shipped name) once; a :class:`StoredWeights` is returned as it is."""
    if isinstance(source, StoredWeights):
        return source
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix != ".ckpt":
            raise ValueError(
                f"init_from={str(source)!r} is a file but not a Lightning .ckpt: give a checkpoint, a directory "
                "written by save_pretrained, or a shipped model name."
            )
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        return StoredWeights(str(source), ckpt.get("state_dict", {}), True)
    return StoredWeights(str(source), _saved_weights(source), False)


def hypernet_state(source: Source) -> dict[str, Tensor]:
    """The ``hypernet`` state dict (keys relative to the hypernetwork) stored in ``source``."""
    stored = read_weights(source)
    if not stored.is_ckpt:
        return {k: v for k, v in stored.state.items() if not k.startswith(SAVED_TASK_ENCODER)}
    out = {k[len("hypernet.") :]: v for k, v in stored.state.items() if k.startswith("hypernet.")}
    if not out:
        raise ValueError(f"init_from={stored.source!r}: the checkpoint holds no hypernet.* weights.")
    return out


def task_encoder_state(source: Source) -> dict[str, Tensor]:
    """The trained task-encoder layers stored in ``source`` (keys relative to the encoder; empty when none)."""
    stored = read_weights(source)
    prefix = CKPT_TASK_ENCODER if stored.is_ckpt else SAVED_TASK_ENCODER
    return {k[len(prefix) :]: v for k, v in stored.state.items() if k.startswith(prefix)}


def _saved_weights(source: str | os.PathLike) -> dict[str, Tensor]:
    """The weights file of a directory written by ``save_pretrained`` (or a shipped model's)."""
    from safetensors.torch import load_file

    from lora_hyper.pretrained import resolve_model_dir
    from lora_hyper.saved_model import detect_kind, model_files

    directory = resolve_model_dir(source)
    kind = detect_kind(directory)
    if kind is None:
        raise FileNotFoundError(
            f"init_from={str(source)!r}: {directory} is not a model directory written by save_pretrained."
        )
    return load_file(str(model_files(directory, kind)[2]))


def load_into(hypernet: torch.nn.Module, source: Source) -> None:
    """Copy the weights of ``source`` into ``hypernet`` (cast to its dtypes); every key must match, except
    those the hypernetwork lists in ``warm_start_optional()`` (new parts that start neutral, e.g. a chunk gate)."""
    stored = read_weights(source)
    state = hypernet_state(stored)
    own = hypernet.state_dict()
    optional = hypernet.warm_start_optional() if hasattr(hypernet, "warm_start_optional") else set()
    missing = sorted(set(own) - set(state) - set(optional))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        detail = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape differs", wrong))
            if keys
        )
        raise ValueError(
            f"init_from={stored.source!r} does not fit this hypernetwork ({detail}): use the same hypernetwork "
            "settings as the run that wrote it."
        )
    kept = {k: own[k] for k in set(optional) - set(state)}
    hypernet.load_state_dict({**kept, **{k: v.to(own[k].dtype) for k, v in state.items()}}, strict=True)
