"""Why T2L heads carry ``head_multiplier``: T2L-SFT loss with the unscaled heads (1.0) and the default 1/sqrt(head_in).

    python benchmarks/t2l_head_multiplier.py --steps 40     # 2 CPU cores, ~4 minutes

Trains ``TextToLoRAModule`` (SmolLM2-135M-Instruct, head L, head_in 256, lr 1e-3, NEFTune 5, the built-in corpus,
4 tasks x 1 example per batch, seed 0) for the same steps once per multiplier and records every step's loss.
Writes benchmarks/results/t2l_head_multiplier.json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import lightning as L
import torch

from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule
from lora_hyper.modules.t2l import TextToLoRAModule

from common import LossCurve, quiet_trainer, write_result

BASE = "smollm2-135m-instruct"


def train(multiplier: float | None, steps: int, lr: float) -> dict:
    """SFT losses of one run (same seed, data and steps for every multiplier)."""
    L.seed_everything(0)
    module = TextToLoRAModule(
        BASE, mlp={"head_size": "L", "latent": 128, "head_in": 256, "head_multiplier": multiplier},
        loss={"objective": "sft", "neftune_alpha": 5.0}, optim={"lr": lr, "warmup": 0.1, "schedule": "cosine"},
    )  # fmt: skip
    data = TaskCorpusDataModule(
        BASE, tasks_per_batch=4, examples_per_task=1, steps_per_epoch=steps, max_length=96, seed=0
    )
    losses = LossCurve()
    t = time.perf_counter()
    quiet_trainer(steps, [losses]).fit(module, datamodule=data)  # fmt: skip
    v = losses.values()
    return {
        "head_multiplier": multiplier if multiplier is not None else "default (1/sqrt(head_in) = 1/16)",
        "losses": v,
        "max_loss": max(v),
        "mean_last_10": statistics.mean(v[-10:]),
        "wall_s": time.perf_counter() - t,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    runs = [train(1.0, args.steps, args.lr), train(None, args.steps, args.lr)]
    for r in runs:
        print(f"[t2l-head] multiplier {r['head_multiplier']}: max {r['max_loss']:.2f}, "
              f"mean of the last 10 steps {r['mean_last_10']:.2f}")  # fmt: skip
    config = {"base": BASE, "head_size": "L", "head_in": 256, "lr": args.lr, "steps": args.steps, "seed": 0}
    print(f"wrote {write_result('t2l_head_multiplier', {'config': config, 'runs': runs}, args.out_dir)}")


if __name__ == "__main__":
    main()
