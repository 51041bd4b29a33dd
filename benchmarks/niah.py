"""NIAH beyond the native window: train Doc-to-LoRA on 32-256-token haystacks, evaluate up to 5x the window.

    python benchmarks/niah.py                 # full: one GPU, ~5 minutes of training (bf16, large batch)
    python benchmarks/niah.py --quick         # 2 CPU cores: a short run that shows the learning curve start
    # the shipped d2l-smollm2-niah: train (resumable, --resume CKPT), then evaluate the saved model
    python benchmarks/niah.py --recipe recipes/d2l/niah_smollm2_cpu_2h.yaml --train-only --ckpt-dir outputs/niah_2h_ckpt \
        --save-model outputs/d2l-smollm2-niah-2h --name niah_cpu_2h_train --eval-every 100 --eval-samples 10 \
        --health-every 200 --max-minutes 125
    python benchmarks/niah.py --eval-only outputs/d2l-smollm2-niah-2h --name niah_cpu_2h \
        --train-result benchmarks/results/niah_cpu_2h_train.json --bins 256,1024,4096,8192,16384,32768,40960 \
        --samples-per-bin 20 --prose-bins 1024,2048,4096 --icl-samples 0

Trains ``DocToLoRAModule`` (packaged SmolLM2-135M-Instruct, down_proj r=8, early-exit encoder, CE on the
number) with ``NIAHDataModule`` (contexts of 32-256 tokens only, 1..8 random chunks, a needle-only curriculum),
records the loss curve and exact match at 1K tokens every ``--eval-every`` steps (steps and wall time to 90%),
then evaluates every bin (256 .. 40K tokens, chunk length 1024) with and without a rank budget, the varied-prose
haystacks at 1-4K, the chunk-health ratio, next to the base model with the haystack in its prompt (only where the
prompt fits its window). Saves the trained hypernetwork with ``save_pretrained``; writes
benchmarks/results/<name>.json and a PNG.
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

from lora_hyper.api.doc_to_lora import DocToLoRA
from lora_hyper.callbacks.chunk_health import ChunkHealthProbe, chunk_health
from lora_hyper.callbacks.curriculum import NeedleCurriculum
from lora_hyper.callbacks.niah import evaluate_niah
from lora_hyper.data_modules.collate import chat_prompt_ids
from lora_hyper.data_modules.doc_batch import context_prompt
from lora_hyper.data_modules.niah import NIAHDataModule
from lora_hyper.data_modules.niah_protocol import (
    NIAH_QUESTION,
    extract_number,
    has_repeated_digit,
    niah_examples,
)
from lora_hyper.modules.d2l import DocToLoRAModule

from common import write_result

FULL_BINS = [256, 1024, 4096, 8192, 16384, 32768, 40960]
PROSE_BINS = [1024, 2048, 4096]
DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "d2l" / "niah_smollm2_cpu.yaml"
CHUNK_LENGTH = 1024
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
        "max_minutes": _minutes(raw.get("trainer", {}).get("max_time")),
    }


def _minutes(max_time: str | None) -> float | None:
    """A Lightning ``max_time`` ("DD:HH:MM:SS") in minutes; None when the recipe sets none."""
    if not max_time:
        return None
    days, hours, minutes, seconds = (int(x) for x in str(max_time).split(":"))
    return days * 1440 + hours * 60 + minutes + seconds / 60


@torch.no_grad()
def base_in_context(
    module: DocToLoRAModule, bins: list[int], samples: int, batch_size: int
) -> list[dict[str, Any]]:
    """The base model with the haystack in its prompt, where the whole prompt fits the native window."""
    tok, window = module.tokenizer, module.native_window
    rows: list[dict[str, Any]] = []
    if samples <= 0:  # --icl-samples 0: no in-context baseline
        return rows
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


def plot(path: Path, evaluation: dict[str, Any], training: dict[str, Any] | None, window: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    xs = [b["n_tokens"] for b in evaluation["niah"]]
    ax1.plot(
        xs, [b["accuracy"] for b in evaluation["niah"]], "o-", label="Doc-to-LoRA (haystack internalized)"
    )
    budget = evaluation.get("niah_rank_budget") or []
    if budget:
        ax1.plot(
            [b["n_tokens"] for b in budget],
            [b["accuracy"] for b in budget],
            "^:",
            label=f"rank budget {evaluation['rank_budget']}",
        )
    prose = evaluation.get("niah_prose") or []
    if prose:
        ax1.plot([b["n_tokens"] for b in prose], [b["accuracy"] for b in prose], "d-", label="varied prose")
    pts = [(r["n_tokens"], r["accuracy"]) for r in evaluation["base_in_context"] if r["accuracy"] is not None]
    if pts:
        ax1.plot(*zip(*pts), "s--", label="base, haystack in prompt")
    ax1.axvline(window, color="grey", ls=":", label=f"native window ({window})")
    ax1.set_xscale("log", base=2)
    ax1.set_ylim(-0.02, 1.02)
    ax1.set_xlabel("haystack tokens")
    ax1.set_ylabel("exact match")
    ax1.legend(fontsize=8)
    ax1.set_title("NIAH exact match (trained on 32-256 tokens)")
    if training and training.get("loss_curve"):
        steps, losses = zip(*training["loss_curve"])
        ax2.plot(steps, losses, lw=0.6, label="train loss")
    ax2.set_xlabel("step")
    ax2.set_ylabel("loss")
    ax3 = ax2.twinx()
    if training and training.get("eval_curve_1k"):
        curve = training["eval_curve_1k"]
        ax3.plot([e["step"] for e in curve], [e["accuracy"] for e in curve], "r.-", label="EM at 1K")
    ax3.set_ylim(-0.02, 1.02)
    ax2.set_title("learning curve (red: exact match at 1K)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument(
        "--smoke", action="store_true", help="a few steps of the FULL configuration (path check on CPU)"
    )
    p.add_argument(
        "--recipe",
        help="train the model and data of this LightningCLI recipe (default: the shipped model's, with the "
        "hypernetwork sizes of --quick or the full GPU size)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the hypernetwork's initialisation (the data's: --override data.init_args.seed=N)",
    )
    p.add_argument(
        "--override",
        action="append",
        default=[],
        help="recipe override as a dotted key=value, e.g. model.init_args.loss.l1_weight=0 (repeatable)",
    )
    p.add_argument(
        "--train-only",
        action="store_true",
        help="stop after training (save the model, write the curve); evaluate later with --eval-only",
    )
    p.add_argument("--eval-only", help="evaluate this saved model dir (or shipped name) instead of training")
    p.add_argument("--train-result", help="with --eval-only: the --train-only JSON whose curve to report")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--encoder-mode", choices=["early_exit", "per_layer"])
    p.add_argument("--objective", choices=["ce", "distill"])
    p.add_argument("--rank-budget", type=int, default=64)
    p.add_argument("--save-model", default=None, help="directory for DocToLoRA.save_pretrained")
    p.add_argument("--out-dir", default=None)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--eval-every", type=int, help="steps between exact-match checks at 1K tokens")
    p.add_argument("--curriculum-steps", type=int, help="steps of the needle-only -> haystack ramp")
    p.add_argument("--max-chunks", type=int, help="training samples 1..K chunks per context")
    p.add_argument("--min-chunk-tokens", type=int, help="smallest training chunk (caps K at ceil(len / it))")
    p.add_argument("--name", default=None, help="result file name (default niah[_quick|_smoke][_gpu])")
    p.add_argument(
        "--ckpt-dir", default=None, help="checkpoint every 100 steps here (last.ckpt) for long runs"
    )
    p.add_argument("--resume", default=None, help="a checkpoint to resume from (e.g. CKPT_DIR/last.ckpt)")
    p.add_argument(
        "--init-from",
        default=None,
        help="start from these hypernetwork weights (.ckpt, model dir or shipped name) with a fresh schedule",
    )
    p.add_argument(
        "--prior-result",
        default=None,
        help="result JSON of the run that wrote --resume's checkpoint, when that checkpoint has no curve state",
    )
    p.add_argument("--eval-samples", type=int, help="haystacks per exact-match check during training")
    p.add_argument(
        "--health-every", type=int, default=200, help="steps between chunk-health probes (0: none)"
    )
    p.add_argument(
        "--bins", help="comma-separated haystack lengths for the final evaluation, e.g. 256,1024,40960"
    )
    p.add_argument(
        "--prose-bins", help="comma-separated lengths of the varied-prose haystacks (default 1K-4K)"
    )
    p.add_argument("--samples-per-bin", type=int, help="haystacks per bin in the final evaluation")
    p.add_argument(
        "--icl-samples", type=int, help="haystacks per bin for the base model with them in its prompt"
    )
    return p.parse_args()


def run_size(args: argparse.Namespace) -> dict[str, Any]:
    """The size table entry, with the command line's overrides."""
    size = dict(SIZES["quick" if args.quick else "full"])
    size["curriculum"] = (1.0, 0.1)  # needle-only prob start -> end; a recipe may change or drop it
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
    keys = ("max_steps", "max_minutes", "batch_size", "eval_every", "curriculum_steps", "lr", "eval_samples")
    for key in (*keys, "samples_per_bin", "icl_samples"):
        if getattr(args, key) is not None:
            size[key] = getattr(args, key)
    if args.bins:
        size["bins"] = [int(b) for b in args.bins.split(",")]
    size["prose_bins"] = (
        [int(b) for b in args.prose_bins.split(",")]
        if args.prose_bins
        else [b for b in PROSE_BINS if b <= 4096]
    )
    if args.smoke or args.quick:
        size["prose_bins"] = size["prose_bins"][:1]
    return size


def build(args: argparse.Namespace, size: dict[str, Any]) -> tuple[DocToLoRAModule, NIAHDataModule]:
    """Module and data of the recipe; without ``--recipe`` the shipped model's recipe at this run's size."""
    recipe = recipe_settings(args.recipe or str(DEFAULT_RECIPE), args.override)
    model_args = {k: dict(v) if isinstance(v, dict) else v for k, v in recipe["model"].items()}

    def group(name: str) -> dict[str, Any]:
        """An argument group of the module (created when the recipe does not set it)."""
        return model_args.setdefault(name, {})

    group("encoder")["chunk_length"] = CHUNK_LENGTH
    data_args = dict(recipe["data"], val_bins=[])
    if not args.recipe:  # the size table decides the hypernetwork and the step budget
        group("perceiver").update({k: size[k] for k in ("latent_dim", "n_latents", "n_blocks", "n_heads")})
        group("optim")["lr"] = size["lr"]
        data_args["batch_size"] = size["batch_size"]
    else:
        if args.max_steps is None and not args.smoke and recipe["max_steps"]:
            size["max_steps"] = int(recipe["max_steps"])
        if args.max_minutes is None and not args.smoke and recipe["max_minutes"]:
            size["max_minutes"] = recipe["max_minutes"]
        if args.curriculum_steps is None and recipe["curriculum"]:
            size["curriculum_steps"] = int(recipe["curriculum"].get("steps", size["curriculum_steps"]))
        # A recipe without a NeedleCurriculum (e.g. a continuation) keeps its data's needle_only_prob.
        size["curriculum"] = (
            None
            if recipe["curriculum"] is None
            else (float(recipe["curriculum"].get("start", 1.0)), float(recipe["curriculum"].get("end", 0.1)))
        )
        size["curriculum_after_reading"] = bool((recipe["curriculum"] or {}).get("after_reading", False))
    for name, key, value in (
        ("optim", "lr", args.lr),
        ("encoder", "mode", args.encoder_mode),
        ("loss", "objective", args.objective),
    ):
        if value is not None:
            group(name)[key] = value
    if args.init_from is not None:
        model_args["init_from"] = args.init_from
    if args.batch_size is not None:
        data_args["batch_size"] = args.batch_size
    if args.max_chunks is not None:
        data_args["max_chunks"] = args.max_chunks
    if args.min_chunk_tokens is not None:
        data_args["min_chunk_tokens"] = args.min_chunk_tokens
    module = DocToLoRAModule(**model_args)
    data_args["with_teacher"] = module.loss.objective == "distill"
    size.update(
        lr=module.optim.lr,
        batch_size=data_args["batch_size"],
        **{k: getattr(module.perceiver, k) for k in ("latent_dim", "n_latents", "n_blocks", "n_heads")},
        model_args=model_args,
        data_args=data_args,
    )
    return module, NIAHDataModule(**data_args)


def train(
    args: argparse.Namespace, size: dict[str, Any], gpu: bool, health_dir: Path
) -> tuple[DocToLoRAModule, dict[str, Any]]:
    """Fit the module (resumable), record the curve (the chunk-health curve into ``health_dir``); returns the
    module and the ``training`` section."""
    module, data = build(args, size)
    rec = Recorder(size["eval_every"], 1024, size["eval_samples"], CHUNK_LENGTH)
    if args.prior_result:
        rec.prepend(json.loads(Path(args.prior_result).read_text()))
    ckpt = [ModelCheckpoint(args.ckpt_dir, every_n_train_steps=100, save_top_k=1, save_last=True)]
    health = [ChunkHealthProbe(args.health_every, output_dir=str(health_dir))] if args.health_every else []
    ramp = size["curriculum"]
    after = size.get("curriculum_after_reading", False)
    curriculum = [NeedleCurriculum(ramp[0], ramp[1], size["curriculum_steps"], after)] if ramp else []
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
        callbacks=[*curriculum, rec, *health] + (ckpt if args.ckpt_dir else []),
        log_every_n_steps=10,
    )
    t0 = time.perf_counter()
    trainer.fit(module, datamodule=data, ckpt_path=args.resume)
    wall = time.perf_counter() - t0
    rec.evaluate(trainer, module)  # the final point of the curve
    if args.save_model:
        DocToLoRA.from_module(module).save_pretrained(args.save_model, overwrite=True)  # a re-run replaces it
    largest_n = max((e.get("n", 0) for e in rec.evals), default=1)
    training = {
        "steps": trainer.global_step,
        "wall_s": wall + rec.prior_wall_s,
        "wall_s_this_run": wall,
        "resumed_from": args.resume,
        "init_from": module.init_from,
        "loss_curve": rec.losses[:: max(1, len(rec.losses) // 400)],
        "eval_curve_1k": rec.evals,
        "reached_90pct_at_1k": rec.first_reaching(min_n=largest_n),
        "hypernet_params": sum(p.numel() for p in module.hypernet.parameters()),
        "chunk_health_curve": health[0].history if health else [],
        "read_step": module.read_step,  # where the reading trigger fired (loss.read_loss), None if unset/never
    }
    if not math.isfinite(rec.losses[-1][1] if rec.losses else 0.0):
        raise SystemExit("training diverged (non-finite loss)")
    return module, training


def accuracy_by_needle_kind(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Exact match over needles that repeat an adjacent digit (7399) and over the others (7294)."""
    out = {}
    for kind, want in (("repeated_digit", True), ("no_repeated_digit", False)):
        hits = [s["correct"] for s in samples if has_repeated_digit(s["answer"]) == want]
        out[kind] = {"n": len(hits), "accuracy": sum(hits) / len(hits) if hits else float("nan")}
    return out


def final_evaluation(model: Any, size: dict[str, Any], rank_budget: int, gpu: bool) -> dict[str, Any]:
    """Every bin with and without the rank budget, varied prose, chunk health, the base with the haystack."""
    batch = 4 if gpu else 2
    t = time.perf_counter()
    final = evaluate_niah(
        model,
        bins=size["bins"],
        samples_per_bin=size["samples_per_bin"],
        chunk_length=CHUNK_LENGTH,
        batch_size=batch,
        seed=0,
        extra_rank_budgets=[rank_budget],
    )
    for b, nb in zip(final["bins"], final["rank_budgets"][rank_budget]):
        print(
            f"[niah] D2L at {b['n_tokens']:>6} tokens: {b['accuracy']:.2f} "
            f"(rank budget {rank_budget}: {nb['accuracy']:.2f}, n={b['n']})",
            flush=True,
        )
    prose = evaluate_niah(
        model,
        bins=size["prose_bins"],
        samples_per_bin=size["samples_per_bin"],
        chunk_length=CHUNK_LENGTH,
        batch_size=batch,
        seed=0,
        haystack="prose",
    )
    for b in prose["bins"]:
        print(f"[niah] D2L varied prose at {b['n_tokens']:>6} tokens: {b['accuracy']:.2f}", flush=True)
    by_kind = {
        "niah": accuracy_by_needle_kind(final["samples"]),
        "niah_prose": accuracy_by_needle_kind(prose["samples"]),
    }
    for name, kinds in by_kind.items():
        print(
            f"[niah] {name} by needle: "
            + ", ".join(f"{k} {v['accuracy']:.2f} (n={v['n']})" for k, v in kinds.items()),
            flush=True,
        )
    eval_seconds = time.perf_counter() - t
    health = chunk_health(model)
    print(f"[niah] chunk health: 31 filler chunks / needle chunk = {health['ratio']:.3f}", flush=True)
    window = model.native_window
    icl = base_in_context(model, [b for b in size["bins"] if b <= window], size["icl_samples"], batch)
    keep = ("bin", "n_tokens", "accuracy", "n")
    return {
        "niah": [{k: b[k] for k in keep} for b in final["bins"]],
        "rank_budget": rank_budget,
        "niah_rank_budget": [{k: b[k] for k in keep} for b in final["rank_budgets"][rank_budget]],
        "niah_prose": [{k: b[k] for k in keep} for b in prose["bins"]],
        "accuracy_by_needle_kind": by_kind,
        "niah_eval_s": eval_seconds,
        "chunk_health": health,
        "base_in_context": icl,
        "native_window": window,
        "samples": [s for s in final["samples"] if not s["correct"]][:20] + final["samples"][:20],
        "prose_misses": [s for s in prose["samples"] if not s["correct"]][:30],
    }


def targets_met(evaluation: dict[str, Any], training: dict[str, Any] | None) -> dict[str, bool]:
    """The issue's targets, judged on the measured numbers."""
    all_bins = [b["accuracy"] for b in evaluation["niah"]] + [
        b["accuracy"] for b in evaluation["niah_rank_budget"]
    ]
    prose = [b["accuracy"] for b in evaluation["niah_prose"]]
    reached = (training or {}).get("reached_90pct_at_1k")
    if (training or {}).get("init_from"):  # a warm start's curve does not time training from scratch
        reached = None
    return {
        ">=0.95 at every bin, with and without the rank budget": bool(all_bins)
        and min(all_bins) >= 0.95 - 1e-6,
        ">=0.90 on varied prose": bool(prose) and min(prose) >= 0.90 - 1e-6,
        "90% at 1K within 30 minutes of training": bool(reached) and reached["train_wall_s"] <= 1800,
    }


def main() -> None:
    args = parse_args()
    size = run_size(args)
    gpu = torch.cuda.is_available()
    if not gpu:
        torch.set_num_threads(args.threads)
    L.seed_everything(args.seed)
    name = args.name or (
        "niah" + ("_quick" if args.quick else "") + ("_smoke" if args.smoke else "") + ("_gpu" if gpu else "")
    )
    out_dir = Path(args.out_dir) if args.out_dir else Path(__file__).resolve().parent / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.eval_only:
        model: Any = DocToLoRA.from_pretrained(args.eval_only)
        prior = json.loads(Path(args.train_result).read_text()) if args.train_result else {}
        training, config = prior.get("training"), {**prior.get("config", {}), "model": args.eval_only}
    else:
        # each run's chunk_health.csv/.png in its own folder: one run's curve never replaces another's
        model, training = train(args, size, gpu, out_dir / f"{name}_chunk_health")
        config = {
            **{k: v for k, v in size.items() if k not in ("model_args", "data_args")},
            "recipe": args.recipe or str(DEFAULT_RECIPE.relative_to(DEFAULT_RECIPE.parents[2])),
            "overrides": args.override,
            "model": size.get("model_args"),
            "data": size.get("data_args"),
            "chunk_length": CHUNK_LENGTH,
            "train_lengths": [32, 256],
            "curriculum": (
                f"needle-only prob {size['curriculum'][0]} -> {size['curriculum'][1]} over {size['curriculum_steps']} steps"
                + (" from the step the hypernetwork reads" if size.get("curriculum_after_reading") else "")
                if size["curriculum"]
                else f"none (needle_only_prob {size['data_args'].get('needle_only_prob')})"
            ),
            "seed": args.seed,
        }
    payload: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "config": config,
        "training": training,
    }
    if args.train_only:
        print(f"wrote {write_result(name, payload, out_dir)}")
        return
    evaluation = final_evaluation(model, size, args.rank_budget, gpu)
    payload.update(evaluation)
    payload["targets"] = targets_met(evaluation, training)
    plot(out_dir / f"{name}.png", evaluation, training, evaluation["native_window"])
    print(f"wrote {write_result(name, payload, out_dir)}")


if __name__ == "__main__":
    main()
