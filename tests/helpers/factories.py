"""Test data factories shared by several test files: random LoRA batches, module-argument variants."""

from __future__ import annotations

import torch


def random_lora(spec, batch_size: int, rank: int | None = None, seed: int = 0, std: float = 0.2):
    """A LoRABatch with random non-zero A and B (for injection/export tests)."""
    from lora_hyper.lora import LoRABatch

    g = torch.Generator().manual_seed(seed)
    r = rank or spec.rank
    A = {
        m: torch.randn(batch_size, spec.n_layers, r, spec.shapes[m][0], generator=g) * std
        for m in spec.target_modules
    }
    B = {
        m: torch.randn(batch_size, spec.n_layers, spec.shapes[m][1], r, generator=g) * std
        for m in spec.target_modules
    }
    return LoRABatch(spec, A, B)


def grouped(base: dict, **changes) -> dict:
    """Module arguments ``base`` with ``changes`` merged in: a group given as a dict updates the group's dict
    (``grouped(SMALL, perceiver={"chunk_gate": True})`` keeps SMALL's other Perceiver sizes)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in base.items()}
    for key, value in changes.items():
        out[key] = (
            {**out[key], **value} if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out
