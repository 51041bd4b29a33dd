"""Per-sample LoRA injection: every row of a batch gets its own adapter, through batched matmuls."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from lora_hyper.lora.batch import LoRABatch


def _lora_hook(a: Tensor, b: Tensor, adapter_index: Tensor | None):
    """Forward hook adding ``B(A x)`` per sample; ``a``: [n, r, in], ``b``: [n, out, r] with the scale folded in."""
    n = a.shape[0]

    def hook(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
        x = args[0]
        rows, d_in, d_out = x.shape[0], x.shape[-1], output.shape[-1]
        # The add is fused into the second matmul (baddbmm).
        aa, bb = a.to(x.dtype), b.to(x.dtype)
        if adapter_index is not None:
            # Arbitrary row -> adapter map: one copy of A/B per row (never per token).
            idx = adapter_index.to(x.device).long()
            aa, bb, groups = aa.index_select(0, idx), bb.index_select(0, idx), rows  # cheap backward
        else:
            if rows % n:
                raise RuntimeError(
                    f"apply_lora: the batch has {rows} rows but {n} adapters; rows must be a multiple of the "
                    "adapters (consecutive groups share one) or pass adapter_index."
                )
            groups = n  # consecutive groups of rows share one adapter: fold them into the token axis
        h = torch.bmm(x.reshape(groups, -1, d_in), aa.transpose(1, 2))
        out = torch.baddbmm(output.reshape(groups, -1, d_out), h, bb.transpose(1, 2))
        return out.view(output.shape)

    return hook


_WRAPPER_PARTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def unwrapped_named_modules(model: nn.Module) -> dict[str, nn.Module]:
    """``named_modules`` with FSDP1 / activation-checkpoint / compile wrapper names removed (specs use plain names)."""
    out: dict[str, nn.Module] = {}
    for name, module in model.named_modules():
        plain = name
        for part in _WRAPPER_PARTS:
            plain = plain.replace(part, "")
        out.setdefault(plain, module)
    return out


@contextmanager
def apply_lora(model: nn.Module, lora: LoRABatch, adapter_index: Tensor | None = None) -> Iterator[nn.Module]:
    """Add ``lora``'s per-sample deltas to ``model``'s target modules inside the ``with`` block.

    Row ``i`` of every forward gets adapter ``i // (rows // lora.batch_size)`` (so one adapter can serve
    several consecutive rows, e.g. several questions or ``num_return_sequences``), or
    ``adapter_index[i]`` when given. Works in training (gradients reach A and B) and inside
    ``model.generate`` (KV cache, left padding). Leaving the block removes every hook, so the model is
    exactly as before.
    """
    spec = lora.spec
    modules = unwrapped_named_modules(model)
    handles = []
    try:
        for m in spec.target_modules:
            # The scale goes into the small B factor once here, not in every forward (generate runs many).
            # One unbind per factor, not a select per layer: each select's backward writes a zero tensor the
            # size of every layer's factors, which made the backward quadratic in the layer count.
            a_layers = lora.A[m].unbind(1)
            b_layers = (lora.B[m] * float(lora.scale)).unbind(1)
            for layer in range(spec.n_layers):
                name = spec.module_name(m, layer)
                target = modules.get(name)
                if target is None:
                    raise ValueError(
                        f"apply_lora: module {name!r} not found; was the spec discovered on this model?"
                    )
                hook = _lora_hook(a_layers[layer], b_layers[layer], adapter_index)
                handles.append(target.register_forward_hook(hook))
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def merge_lora(model: nn.Module, lora: LoRABatch, index: int = 0) -> nn.Module:
    """Add sample ``index``'s delta into ``model``'s weights in place (for export or comparison)."""
    modules = dict(model.named_modules())
    deltas = lora.select(index)
    for m in lora.spec.target_modules:
        d = deltas.delta(m)[0]
        for layer in range(lora.spec.n_layers):
            w = modules[lora.spec.module_name(m, layer)].weight
            w.add_(d[layer].to(w.dtype))
    return model
