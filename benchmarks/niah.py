"""NIAH beyond the native window: train Doc-to-LoRA on 32-256-token haystacks, evaluate up to 5x the window.

    python benchmarks/niah.py                 # full: one GPU, ~5 minutes of training (bf16, large batch)
    python benchmarks/niah.py --quick         # 2 CPU cores: a short run that shows the learning curve start

Trains ``DocToLoRAModule`` (packaged SmolLM2-135M-Instruct, down_proj r=8, early-exit encoder, CE on the
number) with ``NIAHDataModule`` (contexts of 32-256 tokens only, 1..8 random chunks, a needle-only curriculum),
records the loss curve and exact match at 1K tokens every ``--eval-every`` steps (steps and wall time to 90%),
then evaluates every bin (256 .. 40K tokens, chunk length 1024) and the 4x bin with a rank budget, next to the
base model with the haystack in its prompt (only where the prompt fits its window). Saves the trained
hypernetwork with ``save_pretrained``; writes benchmarks/results/niah[_quick|_gpu].json and a PNG.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402

from lora_hyper.callbacks.curriculum import NeedleCurriculum  # noqa: E402
from lora_hyper.callbacks.niah import evaluate_niah  # noqa: E402
from lora_hyper.data_modules.collate import chat_prompt_ids  # noqa: E402
from lora_hyper.data_modules.doc_batch import context_prompt  # noqa: E402
from lora_hyper.data_modules.niah import NIAHDataModule  # noqa: E402
from lora_hyper.data_modules.niah_protocol import NIAH_QUESTION, extract_number, niah_examples  # noqa: E402
from lora_hyper.doc_to_lora import DocToLoRA  # noqa: E402
from lora_hyper.modules.d2l import DocToLoRAModule  # noqa: E402

FULL_BINS = [256, 1024, 4096, 8192, 16384, 32768, 40960]
SIZES: dict[str, dict[str, Any]] = {
    "full": dict(
        batch_size=32,
        max_steps=6000,
        max_minutes=5.0,
        eval_every=250,
        eval_samples=20,
        lr=3e-4,
        latent_dim=512,
        n_latents=64,
        n_blocks=4,
        n_heads=8,
        curriculum_steps=1500,
        bins=FULL_BINS,
        samples_per_bin=20,
        icl_samples=20,
    ),
    "quick": dict(
        batch_size=4,
        max_steps=60,
        max_minutes=6.0,
        eval_every=30,
        eval_samples=4,
        lr=3e-4,
        latent_dim=128,
        n_latents=16,
        n_blocks=2,
        n_heads=4,
        curriculum_steps=40,
        bins=[256, 1024, 4096],
        samples_per_bin=4,
        icl_samples=4,
    ),
}


class Recorder(L.Callback):
    """Loss curve and periodic exact match at one bin (steps and wall time until a threshold)."""

    def __init__(self, every: int, bin_tokens: int, samples: int, chunk_length: int, threshold: float = 0.9):
        self.every, self.bin, self.samples, self.chunk_length, self.threshold = (
            every,
            bin_tokens,
            samples,
            chunk_length,
            threshold,
        )
        self.losses: list[tuple[int, float]] = []
        self.evals: list[dict[str, float]] = []
        self.t0 = time.perf_counter()
        self.eval_seconds = 0.0
        self.wall_offset = 0.0  # training wall time of earlier (resumed-from) runs
        self.prior_wall_s = 0.0  # their whole fit() wall time, evaluation checks included
        self.prepended = False  # the earlier curve came from a result JSON (prepend), not a checkpoint

    def on_train_start(self, trainer, pl_module) -> None:
        step = trainer.global_step  # a resumed run: drop points recorded after the checkpoint was written
        self.losses = [x for x in self.losses if x[0] <= step]
        kept = [e for e in self.evals if e["step"] <= step]
        if self.prepended and len(kept) < len(self.evals):
            self.wall_offset = self.prior_wall_s = kept[-1]["train_wall_s"] if kept else 0.0
        self.evals = kept
        self.t0 = time.perf_counter() - self.wall_offset

    def state_dict(self) -> dict[str, Any]:
        """Saved in checkpoints so a resumed run continues one curve."""
        wall = time.perf_counter() - self.t0
        return {
            "losses": self.losses,
            "evals": self.evals,
            "wall_s": wall,
            "eval_seconds": self.eval_seconds,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = [tuple(x) for x in state["losses"]]
        self.evals = list(state["evals"])
        self.eval_seconds = float(state["eval_seconds"])
        self.wall_offset = float(state["wall_s"])
        self.prior_wall_s = self.wall_offset  # cumulative training wall time at the checkpoint

    def prepend(self, prior: dict[str, Any]) -> None:
        """Continue the curve of an earlier result JSON (a run resumed from a checkpoint without curve state)."""
        training = prior["training"]
        self.losses = [tuple(x) for x in training["loss_curve"]] + self.losses
        self.evals = [{"n": 4, **e} for e in training["eval_curve_1k"]] + self.evals
        self.wall_offset = float(training["eval_curve_1k"][-1]["train_wall_s"])
        self.prior_wall_s = float(training["wall_s"])
        self.prepended = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        step = trainer.global_step
        self.losses.append((step, float(loss)))
        if self.every and step % self.every == 0:
            self.evaluate(trainer, pl_module)

    def evaluate(self, trainer, pl_module) -> None:
        t = time.perf_counter()
        res = evaluate_niah(
            pl_module,
            bins=[self.bin],
            samples_per_bin=self.samples,
            chunk_length=self.chunk_length,
            seed=1234,
        )
        self.eval_seconds += time.perf_counter() - t
        train_wall = time.perf_counter() - self.t0 - self.eval_seconds
        self.evals.append(
            {
                "step": trainer.global_step,
                "train_wall_s": train_wall,
                "accuracy": res["acc_mean"],
                "n": self.samples,
            }
        )
        print(
            f"[niah] step {trainer.global_step}: exact match at {self.bin} tokens = {res['acc_mean']:.2f}",
            flush=True,
        )

    def first_reaching(self, min_n: int = 1) -> dict[str, float] | None:
        """The first check at or above the threshold among checks of at least ``min_n`` haystacks.

        (Accuracies are float32 means: 9/10 is 0.89999998, so the comparison allows 1e-6.)"""
        return next(
            (e for e in self.evals if e["accuracy"] >= self.threshold - 1e-6 and e.get("n", 0) >= min_n),
            None,
        )


def recipe_settings(path: str, overrides: list[str]) -> dict[str, Any]:
    """Model/data init args, curriculum and step budget of a LightningCLI recipe (``--override`` dotlist applied)."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(overrides))
    raw = OmegaConf.to_container(cfg, resolve=True)
    curriculum = next(
        (
            c.get("init_args", {})
            for c in raw.get("trainer", {}).get("callbacks", [])
            if c.get("class_path", "").endswith("NeedleCurriculum")
        ),
        None,
    )
    return {
        "model": raw["model"]["init_args"],
        "data": raw["data"]["init_args"],
        "curriculum": curriculum,
        "max_steps": raw.get("trainer", {}).get("max_steps"),
    }


@torch.no_grad()
def base_in_context(
    module: DocToLoRAModule, bins: list[int], samples: int, batch_size: int
) -> list[dict[str, Any]]:
    """The base model with the haystack in its prompt, where the whole prompt fits the native window."""
    tok, window = module.tokenizer, module.native_window
    rows = []
    for n in bins:
        examples = niah_examples(tok, n, samples, seed=1234, split="icl")
        prompts = [context_prompt(ex.context, NIAH_QUESTION) for ex in examples]
        longest = max(len(chat_prompt_ids(tok, p)) for p in prompts[:2])
        if longest + 8 > window:
            rows.append(
                {
                    "n_tokens": n,
                    "accuracy": None,
                    "prompt_tokens": longest,
                    "note": f"cannot: the prompt ({longest} tokens) exceeds the native window ({window})",
                }
            )
            continue
        outs: list[str] = []
        for i in range(0, len(prompts), batch_size):
            outs += module.generate(prompts[i : i + batch_size], None, max_new_tokens=16)
        correct = [extract_number(o) == ex.answer for o, ex in zip(outs, examples)]
        rows.append(
            {
                "n_tokens": n,
                "accuracy": sum(correct) / len(correct),
                "prompt_tokens": longest,
                "n": len(correct),
                "outputs": outs[:5],
            }
        )
        print(f"[niah] base in-context at {n}: {rows[-1]['accuracy']:.2f}", flush=True)
    return rows


def plot(path: Path, final: dict[str, Any], icl: list[dict[str, Any]], rec: Recorder, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [b["n_tokens"] for b in final["bins"]]
    ax1.plot(xs, [b["accuracy"] for b in final["bins"]], "o-", label="Doc-to-LoRA (haystack internalized)")
    pts = [(r["n_tokens"], r["accuracy"]) for r in icl if r["accuracy"] is not None]
    if pts:
        ax1.plot(*zip(*pts), "s--", label="base, haystack in prompt")
    ax1.axvline(window, color="grey", ls=":", label=f"native window ({window})")
    ax1.set_xscale("log", base=2)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("haystack tokens")
    ax1.set_ylabel("exact match")
    ax1.legend(fontsize=8)
    ax1.set_title("NIAH exact match (trained on 32-256 tokens)")
    if rec.losses:
        steps, losses = zip(*rec.losses)
        ax2.plot(steps, losses, lw=0.6, label="train loss")
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss")
    ax3 = ax2.twinx()
    if rec.evals:
        ax3.plot(
            [e["step"] for e in rec.evals],
            [e["accuracy"] for e in rec.evals],
            "r.-",
            label=f"EM at {rec.bin}",
        )
    ax3.set_ylim(-0.02, 1.02)
    ax2.set_title("learning curve")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--recipe",
        help="train the model and data of this LightningCLI recipe (e.g. recipes/d2l/niah_smollm2_cpu.yaml)",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="recipe override as a dotted key=value, e.g. model.init_args.l1_weight=0 (repeatable)",
    )
    p.add_argument(
        "--train-only",
        action="store_true",
        help="stop after training (save the model, write the curve); evaluate later with --eval-only",
    )
    p.add_argument(
        "--smoke", action="store_true", help="a few steps of the FULL configuration (path check on CPU)"
    )
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--encoder-mode", default="early_exit", choices=["early_exit", "per_layer"])
    p.add_argument("--objective", default="ce", choices=["ce", "distill"])
    p.add_argument("--rank-budget", type=int, default=64)
    p.add_argument("--save-model", default=None, help="directory for DocToLoRA.save_pretrained")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--eval-every", type=int, help="steps between exact-match checks at 1K tokens")
    p.add_argument("--curriculum-steps", type=int, help="steps of the needle-only -> haystack ramp")
    p.add_argument("--max-chunks", type=int, default=8, help="training samples 1..K chunks per context")
    p.add_argument(
        "--min-chunk-tokens",
        type=int,
        default=25,
        help="smallest training chunk (caps K for short contexts: 256 // 25 = 10 chunks)",
    )
    p.add_argument("--name", default=None, help="result file name (default niah[_quick|_smoke][_gpu])")
    p.add_argument(
        "--ckpt-dir", default=None, help="checkpoint every 100 steps here (last.ckpt) for long runs"
    )
    p.add_argument("--resume", default=None, help="a checkpoint to resume from (e.g. CKPT_DIR/last.ckpt)")
    p.add_argument(
        "--prior-result",
        default=None,
        help="result JSON of the run that wrote --resume's checkpoint, when that checkpoint has no curve state",
    )
    p.add_argument("--eval-samples", type=int, help="haystacks per exact-match check during training")
    p.add_argument(
        "--bins", help="comma-separated haystack lengths for the final evaluation, e.g. 256,1024,40960"
    )
    p.add_argument("--samples-per-bin", type=int, help="haystacks per bin in the final evaluation")
    p.add_argument(
        "--icl-samples", type=int, help="haystacks per bin for the base model with them in its prompt"
    )
    args = p.parse_args()
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.smoke:
        size.update(
            max_steps=3,
            eval_every=2,
            eval_samples=2,
            bins=[256, 1024],
            samples_per_bin=2,
            icl_samples=2,
            curriculum_steps=2,
        )
    overrides = ("max_steps", "max_minutes", "batch_size", "eval_every", "curriculum_steps", "lr")
    for key in (*overrides, "eval_samples", "samples_per_bin", "icl_samples"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if args.bins:
        size["bins"] = [int(b) for b in args.bins.split(",")]
    gpu = torch.cuda.is_available()
    if not gpu:
        torch.set_num_threads(args.threads)
    L.seed_everything(0)
    chunk_length = 1024

    recipe = recipe_settings(args.recipe, args.override) if args.recipe else None
    if recipe is not None:
        model_args = dict(recipe["model"], chunk_length=chunk_length)
        data_args = dict(recipe["data"], val_bins=[])
        if args.lr is not None:
            model_args["lr"] = args.lr
        if args.batch_size is not None:
            data_args["batch_size"] = args.batch_size
        if args.max_steps is None and not args.smoke and recipe["max_steps"]:
            size["max_steps"] = int(recipe["max_steps"])
        if args.curriculum_steps is None and recipe["curriculum"]:
            size["curriculum_steps"] = int(recipe["curriculum"].get("steps", size["curriculum_steps"]))
        size.update(
            lr=model_args.get("lr", size["lr"]),
            batch_size=data_args.get("batch_size", size["batch_size"]),
            **{
                k: model_args[k]
                for k in ("latent_dim", "n_latents", "n_blocks", "n_heads")
                if k in model_args
            },
        )
        module = DocToLoRAModule(**model_args)
        data = NIAHDataModule(**data_args)
    else:
        module = DocToLoRAModule(
            base_model="smollm2-135m-instruct",
            targets=["down_proj"],
            rank=8,
            encoder_mode=args.encoder_mode,
            latent_dim=size["latent_dim"],
            n_latents=size["n_latents"],
            n_blocks=size["n_blocks"],
            n_heads=size["n_heads"],
            objective=args.objective,
            chunk_length=chunk_length,
            lr=size["lr"],
            warmup=0.05,
            schedule="cosine",
        )
        data = NIAHDataModule(
            base_model="smollm2-135m-instruct",
            train_lengths=(32, 256),
            val_bins=[],
            batch_size=size["batch_size"],
            max_chunks=args.max_chunks,
            min_chunk_tokens=args.min_chunk_tokens,
            needle_only_prob=1.0,
            with_teacher=args.objective == "distill",
            seed=0,
        )
    rec = Recorder(size["eval_every"], 1024, size["eval_samples"], chunk_length)
    if args.prior_result:
        rec.prepend(json.loads(Path(args.prior_result).read_text()))
    trainer = L.Trainer(
        accelerator="gpu" if gpu else "cpu",
        devices=1,
        precision="bf16-mixed" if gpu else "32-true",
        max_steps=size["max_steps"],
        max_time={"minutes": size["max_minutes"]},
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=bool(args.ckpt_dir),
        enable_progress_bar=not gpu,
        num_sanity_val_steps=0,
        callbacks=[NeedleCurriculum(1.0, 0.1, size["curriculum_steps"]), rec]
        + (
            [ModelCheckpoint(args.ckpt_dir, every_n_train_steps=100, save_top_k=1, save_last=True)]
            if args.ckpt_dir
            else []
        ),
        log_every_n_steps=10,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=args.resume)
    wall = time.perf_counter() - t0
    rec.evaluate(trainer, module)  # the final point of the curve
    if args.save_model:
        DocToLoRA.from_module(module).save_pretrained(args.save_model)
    if args.train_only:
        name = args.name or "niah_train"
        out_dir = Path(args.out_dir) if args.out_dir else Path(__file__).resolve().parent / "results"
        payload = {
            "recipe": args.recipe,
            "overrides": args.override,
            "config": {**size, "hypernet_params": sum(p.numel() for p in module.hypernet.parameters())},
            "training": {
                "steps": trainer.global_step,
                "wall_s": wall + rec.prior_wall_s,
                "wall_s_this_run": wall,
                "loss_curve": rec.losses[:: max(1, len(rec.losses) // 400)],
                "eval_curve_1k": rec.evals,
                "reached_90pct_at_1k": rec.first_reaching(),
            },
        }
        print(f"wrote {write_result(name, payload, out_dir)}")
        return

    t = time.perf_counter()
    final = evaluate_niah(
        module,
        bins=size["bins"],
        samples_per_bin=size["samples_per_bin"],
        chunk_length=chunk_length,
        batch_size=4 if gpu else 2,
        seed=0,
    )
    eval_seconds = time.perf_counter() - t
    for b in final["bins"]:
        print(f"[niah] D2L at {b['n_tokens']:>6} tokens: {b['accuracy']:.2f} (n={b['n']})", flush=True)
    window = module.native_window
    four_x = [b for b in size["bins"] if b >= 4 * window] or [max(size["bins"])]
    budget = evaluate_niah(
        module,
        bins=[four_x[0]],
        samples_per_bin=size["samples_per_bin"],
        chunk_length=chunk_length,
        rank_budget=args.rank_budget,
        batch_size=4 if gpu else 2,
        seed=0,
    )
    icl = base_in_context(
        module, [b for b in size["bins"] if b <= window], size["icl_samples"], 4 if gpu else 2
    )

    largest_n = max((e.get("n", 0) for e in rec.evals), default=1)
    reached = rec.first_reaching(min_n=largest_n)  # the best-sampled checks (a resumed run may add more)
    acc = {b["n_tokens"]: b["accuracy"] for b in final["bins"]}
    upto = [a for n, a in acc.items() if n <= window]
    beyond = [acc[n] for n in acc if n >= 4 * window]
    targets = {
        ">=95% at every bin up to 1x": bool(upto) and min(upto) >= 0.95,
        ">=90% at 4x and 5x": bool(beyond) and min(beyond) >= 0.90,
    }
    name = args.name or (
        "niah" + ("_quick" if args.quick else "") + ("_smoke" if args.smoke else "") + ("_gpu" if gpu else "")
    )
    out_dir = Path(args.out_dir) if args.out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    plot(out_dir / f"{name}.png", final, icl, rec, window)
    payload = {
        "config": {
            **{k: v for k, v in size.items()},
            "encoder_mode": args.encoder_mode,
            "objective": args.objective,
            "targets": ["down_proj"],
            "rank": 8,
            "train_lengths": [32, 256],
            "max_chunks": args.max_chunks,
            "min_chunk_tokens": args.min_chunk_tokens,
            "chunk_length": chunk_length,
            "curriculum": "needle-only prob 1.0 -> 0.1",
            "seed": 0,
            "resumed_from": args.resume,
            "hypernet_params": sum(p.numel() for p in module.hypernet.parameters()),
        },
        "training": {
            "steps": trainer.global_step,
            "wall_s": wall + rec.prior_wall_s,
            "wall_s_this_run": wall,
            "loss_curve": rec.losses[:: max(1, len(rec.losses) // 400)],
            "eval_curve_1k": rec.evals,
            "reached_90pct_at_1k": reached,
            "reached_90pct_at_1k_any_n": rec.first_reaching(),
        },
        "niah": [{k: b[k] for k in ("bin", "n_tokens", "accuracy", "n")} for b in final["bins"]],
        "niah_eval_s": eval_seconds,
        "rank_budget_eval": {
            "rank_budget": args.rank_budget,
            "n_tokens": four_x[0],
            "multiple_of_window": four_x[0] / window,
            "accuracy": budget["acc_mean"],
        },
        "base_in_context": icl,
        "native_window": window,
        "targets": targets,
        "samples": final["samples"][:40],
        "notes": (
            "Quick CPU run: shows the pipeline and the start of the learning curve, not the final accuracy."
            if args.quick or args.smoke
            else "Full run on one GPU within the time budget in config.max_minutes."
        ),
    }
    print(f"wrote {write_result(name, payload, out_dir)}")
    if not math.isfinite(rec.losses[-1][1] if rec.losses else 0.0):
        raise SystemExit("training diverged (non-finite loss)")


if __name__ == "__main__":
    main()
