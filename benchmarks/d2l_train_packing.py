"""Doc-to-LoRA training steps: chunks packed by length and the LM head over the answer window only, against
one pass padded to the batch's longest chunk and logits at every position (the code before both).

    python benchmarks/d2l_train_packing.py                     # the NIAH recipes below, 12 batches each, ~6 min
    python benchmarks/d2l_train_packing.py --recipes recipes/d2l/niah_smollm2_cpu_fast.yaml --batches 4

For each recipe, the same training batches (its data module, full haystacks as after the needle-only curriculum)
go through one optimizer step's work (forward, loss, backward) three ways, in one process, alternating so all see
the same machine state: ``before`` (``encoder.pack_chunks`` off, logits at every position), ``packed`` (packing
only) and ``packed_window`` (both, the default). Reported per recipe: real and padded context tokens per batch,
seconds per step of each and the ratios against ``before``. Writes ``benchmarks/results/d2l_train_packing.json``.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from typing import Any

import torch
from niah import recipe_settings

from lora_hyper.data_modules.niah import NIAHDataModule
from lora_hyper.modules.d2l import DocToLoRAModule

from common import recipe_rows_main

RECIPES = [
    "recipes/d2l/niah_smollm2_cpu_fast.yaml",
    "recipes/d2l/niah_smollm2_cpu_fast_long.yaml",
    "recipes/d2l/niah_smollm2_cpu_stage6.yaml",
]


def step_seconds(module: DocToLoRAModule, batch: dict[str, Any]) -> float:
    """Wall time of one training step's forward, loss and backward (gradients cleared after)."""
    t = time.perf_counter()
    module.losses(batch)["loss"].backward()
    seconds = time.perf_counter() - t
    module.zero_grad(set_to_none=True)
    return seconds


def measure(recipe: str, n_batches: int) -> dict[str, Any]:
    settings = recipe_settings(recipe, [])
    model_args = dict(settings["model"])
    model_args.pop("init_from", None)  # speed does not depend on the weights
    torch.manual_seed(0)
    module = DocToLoRAModule(**model_args)
    module.configure_model()
    module.train()
    data = NIAHDataModule(**dict(settings["data"], val_bins=[]))
    data.setup("fit")
    data.needle_only_prob = min(data.needle_only_prob, 0.1)  # full haystacks, as after the curriculum
    batches = list(itertools.islice(data.train_dataloader(), n_batches + 1))
    packed_args = dataclasses.replace(module.encoder, pack_chunks=True)
    padded_args = dataclasses.replace(module.encoder, pack_chunks=False)
    windowed = module.answer_logits_and_labels

    def all_logits(lora, batch, adapter_index=None):  # the code path before the answer window
        return module.lm_logits(lora, batch, adapter_index), batch["labels"]

    modes = {  # name -> (encoder args, logits function)
        "before": (padded_args, all_logits),
        "packed": (packed_args, all_logits),
        "packed_window": (packed_args, windowed),
    }
    module.encoder = packed_args
    step_seconds(module, batches[0])  # warm-up
    times = dict.fromkeys(modes, 0.0)
    for batch in batches[1:]:
        for name, (args, logits_fn) in modes.items():
            module.encoder, module.answer_logits_and_labels = args, logits_fn
            times[name] += step_seconds(module, batch)
    masks = [b["ctx_attention_mask"] for b in batches[1:]]
    real = sum(int(m.sum()) for m in masks) / n_batches
    padded = sum(m.numel() for m in masks) / n_batches
    row = {
        "recipe": recipe,
        "batches": n_batches,
        "context_tokens_per_batch": real,
        "padded_tokens_per_batch": padded,
        "chunks_per_batch": sum(m.shape[0] for m in masks) / n_batches,
        "s_per_step": {name: t / n_batches for name, t in times.items()},
        "before_over_packed": times["before"] / times["packed"],
        "before_over_packed_window": times["before"] / times["packed_window"],
    }
    print(
        f"{recipe}: s per step "
        + ", ".join(f"{k} {v:.2f}" for k, v in row["s_per_step"].items())
        + f" (before / now {row['before_over_packed_window']:.2f}x); tokens {real:.0f} real, {padded:.0f} padded",
        flush=True,
    )
    return row


def main() -> None:
    recipe_rows_main(__doc__, "benchmarks/d2l_train_packing.py", "d2l_train_packing", RECIPES, measure)


if __name__ == "__main__":
    main()
