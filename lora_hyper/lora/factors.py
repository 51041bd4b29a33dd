"""Factor helpers: PEFT's A initialisation and re-expressing a loaded adapter on another spec's names and scale."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lora_hyper.lora.batch import LoRABatch
from lora_hyper.lora.spec import LoRASpec


def lora_a_init(rank: int, in_features: int, generator: torch.Generator | None = None) -> Tensor:
    """PEFT's A init (``kaiming_uniform_(a=sqrt(5))``): uniform in ``±1/sqrt(in_features)``."""
    bound = 1.0 / math.sqrt(in_features)
    return (torch.rand(rank, in_features, generator=generator) * 2 - 1) * bound


def align_adapter(lora: LoRABatch, spec: LoRASpec) -> LoRABatch:
    """Re-express a loaded adapter (e.g. from ``load_peft``) on ``spec``'s module names and scale."""
    by_path = {lora.spec.module_paths.get(n, n): n for n in lora.spec.target_modules}
    A, B = {}, {}
    for m in spec.target_modules:
        name = m if m in lora.A else by_path.get(spec.module_paths[m])
        if name is None:
            raise ValueError(f"Adapter has no {m!r} factors (it has {lora.spec.target_modules}).")
        a, b = lora.A[name], lora.B[name]
        if a.shape[1] != spec.n_layers or (a.shape[3], b.shape[2]) != spec.shapes[m]:
            raise ValueError(
                f"Adapter {m!r} has {a.shape[1]} layers of shape (in={a.shape[3]}, out={b.shape[2]}); the model "
                f"needs {spec.n_layers} layers of shape {spec.shapes[m]}: was it trained for another base model?"
            )
        A[m], B[m] = a, b * (float(lora.scale) / float(spec.scale))
    return LoRABatch(spec, A, B, spec.scale)
