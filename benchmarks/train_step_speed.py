"""Training-step cost of the LoRA plumbing: the code before 2026-12-05 against today's, same batches, one process.

    python benchmarks/train_step_speed.py                 # D2L (short and long chunks) and T2L SFT, ~5 min
    python benchmarks/train_step_speed.py --batches 4 --recipes recipes/d2l/niah_smollm2_cpu_fast.yaml

``before`` puts back, for the timed step only, the three things the change replaced:
- ``apply_lora`` slicing each layer's factors out of the stacked ``[n, L, r, d]`` tensors with one ``select`` per
  layer (each select's backward writes a zero tensor the size of all layers' factors: quadratic in the layer count;
  now one ``unbind`` per factor);
- ``LoRABatch.select`` / ``merge_groups`` gathering by advanced indexing (backward: an accumulating ``index_put``;
  now ``index_select``, backward ``index_add``);
- the LM head reading the kept answer positions as a strided view (CPU matmul expands the vocabulary-sized weight
  per row; now a contiguous copy).
``now`` is the library as it is. Each recipe's batches go through forward, loss and backward both ways,
alternating (and swapping which goes first), after one warm-up step each; the losses must agree (to 1e-4). Writes
``benchmarks/results/train_step_speed.json`` with seconds per step and ``before / now``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from niah import recipe_settings

import lora_hyper.modules.base as module_base
from lora_hyper.lora import LoRABatch
from lora_hyper.lora.apply import unwrapped_named_modules

from common import recipe_rows_main

RECIPES = [
    "recipes/d2l/niah_smollm2_cpu_fast.yaml",
    "recipes/d2l/niah_smollm2_cpu_fast_long.yaml",
    "recipes/t2l/sft_smollm2_cpu.yaml",
]


# ---------------------------------------------------------------------------------------------- the code before
# (as of commit 7d56d5d)
def _lora_hook_before(a: torch.Tensor, b: torch.Tensor, adapter_index: torch.Tensor | None):
    """The forward hook as it was: rows mapped to adapters by advanced indexing."""
    n = a.shape[0]

    def hook(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        x = args[0]
        rows, d_in, d_out = x.shape[0], x.shape[-1], output.shape[-1]
        aa, bb = a.to(x.dtype), b.to(x.dtype)
        if adapter_index is not None:
            idx = adapter_index.to(x.device)
            aa, bb, groups = aa[idx], bb[idx], rows
        else:
            groups = n
        h = torch.bmm(x.reshape(groups, -1, d_in), aa.transpose(1, 2))
        out = torch.baddbmm(output.reshape(groups, -1, d_out), h, bb.transpose(1, 2))
        return out.view(output.shape)

    return hook


@contextmanager
def _apply_lora_before(model: torch.nn.Module, lora: LoRABatch, adapter_index: torch.Tensor | None = None):
    """``apply_lora`` as it was: each layer's factors sliced out with ``[:, layer]``."""
    spec, modules, handles = lora.spec, unwrapped_named_modules(model), []
    try:
        for m in spec.target_modules:
            b_scaled = lora.B[m] * float(lora.scale)
            for layer in range(spec.n_layers):
                hook = _lora_hook_before(lora.A[m][:, layer], b_scaled[:, layer], adapter_index)
                handles.append(modules[spec.module_name(m, layer)].register_forward_hook(hook))
        yield model
    finally:
        for h in handles:
            h.remove()


def _select_before(self: LoRABatch, index: Any) -> LoRABatch:
    if isinstance(index, int):
        index = slice(index, index + 1) if index != -1 else slice(-1, None)
    elif not isinstance(index, slice):
        index = torch.as_tensor(index, dtype=torch.long, device=self.device)
    return self._map(lambda t: t[index])


def _merge_groups_before(self: LoRABatch, group_sizes: Any) -> LoRABatch:
    sizes = [int(g) for g in group_sizes]
    k = max(sizes)
    starts = torch.tensor([0, *sizes[:-1]]).cumsum(0)
    rows = torch.full((len(sizes), k), -1, dtype=torch.long)
    for g, (s, n) in enumerate(zip(starts.tolist(), sizes)):
        rows[g, :n] = torch.arange(s, s + n)
    valid = (rows >= 0).to(self.device)
    rows = rows.clamp(min=0).to(self.device)
    A, B = {}, {}
    for m in self.spec.target_modules:
        a, b = self.A[m], self.B[m]
        n_groups, L = len(sizes), a.shape[1]
        ga = a[rows] * valid[:, :, None, None, None].to(a.dtype)
        gb = b[rows]
        A[m] = ga.permute(0, 2, 1, 3, 4).reshape(n_groups, L, k * a.shape[2], a.shape[3])
        B[m] = gb.permute(0, 2, 3, 1, 4).reshape(n_groups, L, b.shape[2], k * b.shape[3])
    return LoRABatch(self.spec, A, B, self.scale)


@contextmanager
def code_before() -> Iterator[None]:
    """Swap the three replaced pieces in (and back out, whatever happens)."""
    names = [(module_base, "apply_lora"), (module_base, "_contiguous_input"), (LoRABatch, "select")]
    names.append((LoRABatch, "merge_groups"))
    saved = [getattr(owner, name) for owner, name in names]
    module_base.apply_lora = _apply_lora_before
    module_base._contiguous_input = lambda module, args: None  # a pre-hook returning None changes nothing
    LoRABatch.select, LoRABatch.merge_groups = _select_before, _merge_groups_before
    try:
        yield
    finally:
        for (owner, name), value in zip(names, saved):
            setattr(owner, name, value)


# ---------------------------------------------------------------------------------------------- timing
def build(recipe: str, n_batches: int) -> tuple[torch.nn.Module, list[Any], Any]:
    """The recipe's module (fresh weights) and ``n_batches + 1`` of its training batches, and the loss function."""
    settings = recipe_settings(recipe, [])
    model_args = dict(settings["model"])
    model_args.pop("init_from", None)  # speed does not depend on the weights
    torch.manual_seed(0)
    if "t2l" in recipe:
        from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule
        from lora_hyper.modules.t2l import TextToLoRAModule

        module = TextToLoRAModule(**model_args)
        data = TaskCorpusDataModule(**settings["data"])
        loss_fn = lambda batch: module.sft_loss(batch)[0]  # noqa: E731
    else:
        from lora_hyper.data_modules.niah import NIAHDataModule
        from lora_hyper.modules.d2l import DocToLoRAModule

        module = DocToLoRAModule(**model_args)
        data = NIAHDataModule(**dict(settings["data"], val_bins=[]))
        loss_fn = lambda batch: module.losses(batch)["loss"]  # noqa: E731
    module.configure_model()
    module.train()
    data.setup("fit")
    if hasattr(data, "needle_only_prob"):
        data.needle_only_prob = min(data.needle_only_prob, 0.1)  # full haystacks, as after the curriculum
    batches = list(itertools.islice(data.train_dataloader(), n_batches + 1))
    return module, batches, loss_fn


def step(module: torch.nn.Module, loss_fn: Any, batch: Any) -> tuple[float, float]:
    """Seconds for one forward, loss and backward, and the loss (gradients cleared after)."""
    t = time.perf_counter()
    loss = loss_fn(batch)
    loss.backward()
    seconds = time.perf_counter() - t
    module.zero_grad(set_to_none=True)
    return seconds, float(loss.detach())


def measure(recipe: str, n_batches: int) -> dict[str, Any]:
    module, batches, loss_fn = build(recipe, n_batches)
    modes = {"before": code_before, "now": nullcontext}
    for ctx in modes.values():  # warm-up
        with ctx():
            step(module, loss_fn, batches[0])
    times = dict.fromkeys(modes, 0.0)
    for i, batch in enumerate(batches[1:]):
        losses = {}
        order = list(modes.items()) if i % 2 == 0 else list(modes.items())[::-1]  # neither always runs first
        for name, ctx in order:
            with ctx():
                seconds, losses[name] = step(module, loss_fn, batch)
            times[name] += seconds
        if abs(losses["before"] - losses["now"]) > 1e-4 * max(1.0, abs(losses["now"])):
            raise SystemExit(
                f"{recipe}: losses differ ({losses}); the two code paths must compute the same step."
            )
    row = {
        "recipe": recipe,
        "batches": n_batches,
        "s_per_step": {name: t / n_batches for name, t in times.items()},
        "before_over_now": times["before"] / times["now"],
    }
    print(
        f"{recipe}: s per step before {row['s_per_step']['before']:.3f}, now {row['s_per_step']['now']:.3f} "
        f"({row['before_over_now']:.2f}x)",
        flush=True,
    )
    return row


def main() -> None:
    recipe_rows_main(__doc__, "benchmarks/train_step_speed.py", "train_step_speed", RECIPES, measure)


if __name__ == "__main__":
    main()
