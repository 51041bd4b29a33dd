"""Text-to-LoRA zero-shot benchmark: adapters from unseen descriptions against prompting, multi-task and oracle LoRAs.

    python benchmarks/t2l_zero_shot.py --quick       # 2 CPU cores, <= 20 min: few steps, 8 examples per task
    python benchmarks/t2l_zero_shot.py --cpu-long    # 2 CPU cores, 45-80 min: a few hundred steps per method
    python benchmarks/t2l_zero_shot.py               # one GPU (bf16-mixed), <= 4 min with model loading
    python benchmarks/t2l_zero_shot.py --smoke --out-dir /tmp/t2l_smoke   # the full-size code path, tiny, on CPU

On the built-in task corpus with SmolLM2-135M-Instruct, in one process with lightning Trainers: oracle LoRAs
(one per training task, one LoRAFinetuneModule run), a multi-task LoRA, Text-to-LoRA by SFT (heads L, M, S) and
by reconstruction of the oracle library. Held-out tasks are never trained on; evaluation descriptions are never
trained on. Scores come from ``ZeroShotTaskEvaluation`` (plus a 3-shot prompting baseline through its
``score_prompts``); costs from ``t2l_costs``. Writes ``benchmarks/results/t2l_zero_shot[_quick].json`` and a PNG.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write_result  # noqa: E402
from t2l_costs import adapter_cost, few_shot_prompt, prompt_cost  # noqa: E402
from t2l_report import group_means, plot, summary_table, targets  # noqa: E402

from lora_hyper.callbacks.zero_shot import ZeroShotTaskEvaluation  # noqa: E402
from lora_hyper.data_modules.lora_library import LoRALibraryDataModule  # noqa: E402
from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule  # noqa: E402
from lora_hyper.modules.finetune import LoRAFinetuneModule  # noqa: E402
from lora_hyper.modules.t2l import TextToLoRAModule  # noqa: E402
from lora_hyper.task_encoder import BASE_ENCODER, DEFAULT_ENCODER, packaged_minilm_dir  # noqa: E402

BASE = "smollm2-135m-instruct"
SHOTS = 3
HEADS = ("L", "M", "S")
T2L_KEYS = [f"t2l_sft_{h}" for h in HEADS] + ["t2l_recon_L"]


def _run(steps: int, seconds: float, tpb: int, ex: int, lr: float) -> dict[str, Any]:
    return {
        "max_steps": steps,
        "max_seconds": seconds,
        "tasks_per_batch": tpb,
        "examples_per_task": ex,
        "lr": lr,
    }


SIZES: dict[str, dict[str, Any]] = {
    "quick": {
        "n_seen_eval": 4, "n_held_out_eval": 8, "examples_per_task": 8, "n_descriptions": 1,
        "oracle_tasks": "seen_eval", "max_length": 96, "time_budget_s": 1020, "latent": 128, "head_in": 256,
        "oracle": _run(60, 110, 4, 2, 3e-3), "multitask": _run(40, 50, 4, 1, 1e-3),
        "sft": _run(60, 90, 4, 1, 1e-3), "recon": _run(200, 30, 4, 1, 1e-3),
    },
    "cpu": {
        "n_seen_eval": 4, "n_held_out_eval": 8, "examples_per_task": 8, "n_descriptions": 1,
        "oracle_tasks": "seen_eval", "max_length": 96, "time_budget_s": 4800, "latent": 128, "head_in": 256,
        "oracle": _run(150, 600, 4, 2, 3e-3), "multitask": _run(250, 600, 4, 1, 1e-3),
        "sft": _run(250, 600, 4, 1, 1e-3), "recon": _run(200, 240, 4, 1, 1e-3),
    },
    "full": {
        "n_seen_eval": 12, "n_held_out_eval": 8, "examples_per_task": 24, "n_descriptions": 2,
        "oracle_tasks": "all", "max_length": 128, "time_budget_s": 225, "latent": 128, "head_in": 256,
        "oracle": _run(600, 25, 32, 4, 2e-3), "multitask": _run(600, 12, 32, 2, 1e-3),
        "sft": _run(800, 20, 32, 2, 5e-4), "recon": _run(3000, 10, 16, 1, 1e-3),
    },
    "smoke": {
        "n_seen_eval": 2, "n_held_out_eval": 2, "examples_per_task": 2, "n_descriptions": 2,
        "oracle_tasks": "all", "max_length": 64, "time_budget_s": 3600, "latent": 32, "head_in": 32,
        "oracle": _run(2, 600, 8, 1, 2e-3), "multitask": _run(2, 600, 4, 1, 1e-3),
        "sft": _run(2, 600, 4, 1, 5e-4), "recon": _run(2, 600, 4, 1, 1e-3),
    },
}  # fmt: skip


class LossCurve(L.Callback):
    """Training loss (and wall time) at every optimizer step."""

    def __init__(self) -> None:
        self.points: list[list[float]] = []
        self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: Any, outputs: Any, *args: Any) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None:
            self.points.append([trainer.global_step, float(loss), round(time.perf_counter() - self.t0, 3)])


class BenchmarkZeroShot(ZeroShotTaskEvaluation):
    """The callback's evaluation on a fixed choice of seen and held-out tasks (not the first ``max_tasks``)."""

    def __init__(self, seen: list[str], held_out: list[str], **kwargs: Any) -> None:
        super().__init__(every_n_steps=0, corpus="builtin", **kwargs)
        self.seen, self.held = list(seen), list(held_out)

    def task_groups(self, corpus: Any) -> dict[str, list[str]]:
        return {"seen": list(self.seen), "held_out": list(self.held)}


def resolve_encoder(requested: str) -> tuple[str, str | None]:
    """The task encoder to use, and why it differs from the request (packaged MiniLM missing -> base LLM)."""
    if requested.lower() == DEFAULT_ENCODER:
        try:
            packaged_minilm_dir()
        except (ModuleNotFoundError, FileNotFoundError) as e:
            return (
                BASE_ENCODER,
                f"{DEFAULT_ENCODER} unavailable ({e}); fell back to last-token pooling of the base",
            )
        return DEFAULT_ENCODER, None
    if requested != BASE_ENCODER and not Path(requested).expanduser().is_dir():
        raise SystemExit(
            f"--task-encoder {requested!r} is neither 'base', {DEFAULT_ENCODER!r} nor a directory."
        )
    return requested, None


class Bench:
    """One benchmark run: trains every method in turn under one wall-clock budget and collects the results."""

    def __init__(self, args: argparse.Namespace, size: str) -> None:
        self.args, self.size, self.cfg = args, size, SIZES[size]
        self.t_start = time.perf_counter()
        self.gpu = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.gpu else "cpu")
        self.budget = float(args.time_budget or self.cfg["time_budget_s"])
        self.encoder, self.encoder_note = resolve_encoder(args.task_encoder)
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="t2l_bench_"))
        self.name = "t2l_zero_shot" + ("" if size == "full" else f"_{size}")
        self.runs: dict[str, dict[str, Any]] = {}
        self.scores: dict[str, dict[str, float]] = {}
        self.costs: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.eval_seconds: dict[str, float] = {}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    # ------------------------------------------------------------------ training
    def fit(
        self, key: str, module: L.LightningModule, data: L.LightningDataModule, run: dict[str, Any]
    ) -> bool:
        """Train ``module`` within its share of the budget; False (and a note) when no time is left for it."""
        left = sum(1 for k in T2L_KEYS if k not in self.runs and k not in self.skipped)
        reserve = self.eval_estimate() * (left + (0 if self.scores else 5)) + 10.0
        seconds = min(run["max_seconds"], self.budget - self.elapsed() - reserve)
        if seconds < 3.0:
            self.skipped[key] = (
                f"no time left in the {self.budget:.0f}s budget (elapsed {self.elapsed():.0f}s)"
            )
            print(f"[t2l] skip {key}: {self.skipped[key]}", flush=True)
            return False
        curve = LossCurve()
        trainer = L.Trainer(
            accelerator="gpu" if self.gpu else "cpu", devices=1,
            precision="bf16-mixed" if self.gpu else "32-true",
            max_steps=run["max_steps"], max_time={"seconds": seconds}, gradient_clip_val=1.0,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0, limit_val_batches=0, callbacks=[curve],
            default_root_dir=str(self.work / "trainer"),
        )  # fmt: skip
        t0 = time.perf_counter()
        trainer.fit(module, datamodule=data)
        wall = time.perf_counter() - t0
        losses = [p[1] for p in curve.points]
        self.runs[key] = {
            **run, "time_cap_s": round(seconds, 1), "steps": trainer.global_step, "wall_s": round(wall, 2),
            "stopped_by": "max_steps" if trainer.global_step >= run["max_steps"] else "time_cap",
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "curve": curve.points,
        }  # fmt: skip
        print(
            f"[t2l] {key}: {trainer.global_step} steps in {wall:.1f}s, loss {losses[:1]} -> {losses[-1:]}",
            flush=True,
        )
        return True

    def data(self, run: dict[str, Any], tasks: list[str] | None = None) -> TaskCorpusDataModule:
        return TaskCorpusDataModule(
            BASE, tasks=tasks, tasks_per_batch=run["tasks_per_batch"], examples_per_task=run["examples_per_task"],
            steps_per_epoch=run["max_steps"], max_length=self.cfg["max_length"], seed=self.args.seed,
        )  # fmt: skip

    def t2l_module(self, head: str, objective: str, lr: float) -> TextToLoRAModule:
        L.seed_everything(self.args.seed)
        extra = {"zscore": True, "reconstruction_mode": "factors"} if objective == "reconstruction" else {}
        return TextToLoRAModule(
            BASE, head_size=head, latent=self.cfg["latent"], head_in=self.cfg["head_in"], task_encoder=self.encoder,
            objective=objective, neftune_alpha=5.0 if objective == "sft" else 0.0, lr=lr, warmup=0.1,
            schedule="cosine", **extra,
        )  # fmt: skip

    # ------------------------------------------------------------------ evaluation
    def eval_estimate(self) -> float:
        """Seconds one more T2L evaluation will take (measured on the first one; a guess before it)."""
        per_call = self.eval_seconds.get("per_call", 0.5 if self.gpu else 4.0)
        return per_call * (len(self.groups["seen"]) + len(self.groups["held_out"]))

    def evaluate(self, key: str, module: TextToLoRAModule) -> None:
        """T2L scores of ``module`` (and, on the first call, every baseline incl. 3-shot) via the callback."""
        module.eval()
        first = not self.scores
        t0 = time.perf_counter()
        results = self.cb.evaluate(module, self.corpus)
        self.scores[key] = results.pop("t2l")
        if first:
            self.scores.update(results)
            self.scores["base_3shot"] = self.three_shot(module)
        wall = time.perf_counter() - t0
        self.eval_seconds[key] = round(wall, 2)
        n_tasks = len(self.groups["seen"]) + len(self.groups["held_out"])
        # generate() calls: T2L per task; first time also base, description, 3-shot, multitask, oracle (seen)
        calls = n_tasks * 5 + len(self.groups["seen"]) if first else n_tasks
        # the slowest rate seen so far (adapted models often generate to the token limit; CPUs are shared)
        self.eval_seconds["per_call"] = max(self.eval_seconds.get("per_call", 0.0), wall / max(calls, 1))
        print(f"[t2l] evaluated {key} in {wall:.1f}s", flush=True)

    def three_shot(self, module: TextToLoRAModule) -> dict[str, float]:
        """Base model with ``SHOTS`` training examples of the task in the prompt (no description)."""
        out = {}
        for name in self.groups["seen"] + self.groups["held_out"]:
            task = self.corpus.tasks[name]
            examples = task.examples("test")[: self.cb.examples_per_task]
            shots = random.Random(f"{self.args.seed}:shots:{name}").sample(task.examples("train"), SHOTS)
            prompts = [few_shot_prompt(shots, e.prompt) for e in examples]
            out[name] = self.cb.score_prompts(module, task, prompts, [e.response for e in examples])
        return out

    def measure_costs(self, module: TextToLoRAModule) -> None:
        held = [self.corpus.tasks[n] for n in self.groups["held_out"]]
        descriptions = [d for t in held for d in t.eval_descriptions][:6]
        self.costs["adapter"] = adapter_cost(module, descriptions, self.device)
        pairs = []
        for task in held:
            shots = random.Random(f"{self.args.seed}:shots:{task.name}").sample(task.examples("train"), SHOTS)
            for e in task.examples("test")[:4]:
                pairs.append((e.prompt, few_shot_prompt(shots, e.prompt), task.system_message))
        self.costs["three_shot"] = prompt_cost(module.base_model, module.tokenizer, pairs, self.device)
        a, p = self.costs["adapter"], self.costs["three_shot"]
        self.costs["flops_ratio_3shot_per_query_over_adapter"] = p["extra_flops_per_query_mean"] / a["flops"]
        self.costs["wall_ratio_3shot_per_query_over_adapter"] = (
            p["extra_prefill_wall_s_median"] / a["wall_s_median"]
        )
        self.costs["queries_to_amortise_adapter"] = a["flops"] / p["extra_flops_per_query_mean"]

    # ------------------------------------------------------------------ phases
    def setup(self) -> None:
        from lora_hyper.data_modules.task_corpus import TaskCorpus

        corpus = TaskCorpus.load("builtin")
        seen = corpus.train_tasks[: self.cfg["n_seen_eval"]]
        held = sorted(corpus.held_out_tasks)[: self.cfg["n_held_out_eval"]]
        self.groups = {"seen": seen, "held_out": held}
        from lora_hyper.base_model import load_tokenizer

        tok = load_tokenizer(BASE)
        longest = max(
            len(tok(e.response)["input_ids"]) for n in seen + held for e in corpus.tasks[n].examples("test")
        )
        self.max_new_tokens = longest + 2
        self.cb = BenchmarkZeroShot(
            seen, held, examples_per_task=self.cfg["examples_per_task"], n_descriptions=self.cfg["n_descriptions"],
            multitask_adapter=str(self.work / "multitask_lora"), oracle_library=str(self.work / "oracle_library"),
            max_new_tokens=self.max_new_tokens,
        )  # fmt: skip
        self.corpus = self.cb.corpus()
        self.oracle_tasks = None if self.cfg["oracle_tasks"] == "all" else list(seen)

    def train_baselines(self) -> None:
        for mode, key, export in (
            ("per_task", "oracle", "oracle_library"),
            ("multitask", "multitask", "multitask_lora"),
        ):
            run = self.cfg[key]
            L.seed_everything(self.args.seed)
            module = LoRAFinetuneModule(
                BASE,
                mode=mode,
                export_dir=str(self.work / export),
                lr=run["lr"],
                warmup=0.1,
                schedule="cosine",
            )
            self.fit(key, module, self.data(run, self.oracle_tasks if key == "oracle" else None), run)
            del module
            gc.collect()

    def train_t2l(self) -> None:
        order = [(f"t2l_sft_{h}", h, "sft") for h in HEADS] + [("t2l_recon_L", "L", "reconstruction")]
        for key, head, objective in order:
            run = self.cfg["sft" if objective == "sft" else "recon"]
            if objective == "reconstruction" and not (self.work / "oracle_library").is_dir():
                self.skipped[key] = "no oracle library was written"
                continue
            module = self.t2l_module(head, objective, run["lr"])
            if objective == "sft":
                data: L.LightningDataModule = self.data(run)
            else:
                data = LoRALibraryDataModule(
                    str(self.work / "oracle_library"), corpus="builtin", tasks_per_batch=run["tasks_per_batch"],
                    steps_per_epoch=run["max_steps"], seed=self.args.seed,
                )  # fmt: skip
            if not self.fit(key, module, data, run):
                continue
            if self.elapsed() + 1.25 * self.eval_estimate() * (6 if not self.scores else 1) > self.budget:
                self.skipped[key] = "trained, but no time left to evaluate it"
                continue
            self.evaluate(key, module)
            if "adapter" not in self.costs:
                self.measure_costs(module)
            self.write(complete=False)
            del module, data
            gc.collect()
            if self.gpu:
                torch.cuda.empty_cache()

    # ------------------------------------------------------------------ output
    def write(self, complete: bool) -> dict[str, Any]:
        t2l = [k for k in self.scores if k.startswith("t2l_")]
        order = ["base", "base_with_description", "base_3shot", "multitask", *t2l, "oracle"]
        scores = {m: self.scores[m] for m in order if m in self.scores and self.scores[m]}
        means = group_means(scores, self.groups)
        ratio = self.costs.get("flops_ratio_3shot_per_query_over_adapter")
        payload = {
            "complete": complete,
            "size": self.size,
            "command": " ".join(["python", "benchmarks/t2l_zero_shot.py", *sys.argv[1:]]),
            "config": {
                **self.cfg, "seed": self.args.seed, "base_model": BASE,
                "task_encoder_requested": self.args.task_encoder, "task_encoder_used": self.encoder,
                "task_encoder_note": self.encoder_note, "time_budget_s": self.budget, "max_new_tokens":
                self.max_new_tokens, "shots": SHOTS, "device": str(self.device), "lora": "q_proj,v_proj r=8 alpha=16 rsLoRA",
                "precision": "bf16-mixed" if self.gpu else "32-true", "threads": torch.get_num_threads(),
            },
            "tasks": self.groups,
            "scores": scores,
            "means": means,
            "costs": self.costs,
            "targets": targets(scores, self.groups, t2l, ratio),
            "training": self.runs,
            "eval_seconds": self.eval_seconds,
            "skipped": self.skipped,
            "wall_s": round(self.elapsed(), 1),
            "notes": self.notes(),
        }  # fmt: skip
        self.path = write_result(self.name, payload, self.args.out_dir)
        self.png = plot(
            means,
            self.path.with_suffix(".png"),
            f"Text-to-LoRA, built-in corpus ({self.size}, {self.device.type})",
        )
        return payload

    def notes(self) -> str:
        steps = ", ".join(f"{k} {r['steps']} steps/{r['wall_s']:.0f}s" for k, r in self.runs.items())
        text = (
            f"Size {self.size} on {self.device} ({'bf16-mixed' if self.gpu else 'fp32'}), one process, seed "
            f"{self.args.seed}, wall {self.elapsed():.0f}s of a {self.budget:.0f}s budget. Training: {steps}. "
            f"Evaluation: {len(self.groups['held_out'])} held-out and {len(self.groups['seen'])} seen tasks, "
            f"{self.cfg['examples_per_task']} test examples each, T2L adapters from {self.cfg['n_descriptions']} "
            "evaluation description(s) per task that training never saw; held-out tasks were never trained on. "
            f"Task encoder: {self.encoder}" + (f" ({self.encoder_note})" if self.encoder_note else "") + ". "
            "FLOPs are counted analytically (2 x weight params x rows for every linear layer run, plus attention "
            "matmuls); the adapter is generated once per task while the 3-shot cost recurs for every query. "
        )
        if self.size == "cpu":
            text += (
                "The cpu size trains each method for a few hundred steps on a 2-core CPU (multi-task LoRA and each "
                "T2L-SFT see the same number of batches); oracle LoRAs exist only for the seen tasks evaluated, so "
                "reconstruction learns from 4 adapters and cannot be expected to generalise. "
            )
        if self.size == "quick":
            text += (
                "The quick size trains each method for tens of steps on a shared 2-core CPU; oracle LoRAs exist "
                "only for the seen tasks evaluated (so reconstruction learns from that few adapters). These numbers "
                "show the pipeline works end to end, not what Text-to-LoRA reaches; see the full size. "
            )
        if self.skipped:
            text += f"Skipped for lack of time: {self.skipped}. "
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="2-CPU-core size (<= 20 minutes)")
    g.add_argument("--cpu-long", action="store_true", help="2-CPU-core size with more steps (45-80 minutes)")
    g.add_argument(
        "--smoke", action="store_true", help="the full-size code path with a handful of steps (CPU check)"
    )
    p.add_argument("--out-dir", default=None, help="where the JSON and PNG go (default benchmarks/results)")
    p.add_argument(
        "--task-encoder", default=DEFAULT_ENCODER, help="'all-minilm-l6-v2' (packaged), 'base' or a directory"
    )
    p.add_argument("--time-budget", type=float, default=None, help="wall-clock seconds for the whole run")
    p.add_argument(
        "--work-dir", default=None, help="where adapters are written (default: a temporary folder)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    args = p.parse_args(argv)
    size = "quick" if args.quick else "cpu" if args.cpu_long else "smoke" if args.smoke else "full"
    bench = Bench(args, size)
    if bench.gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    else:
        torch.set_num_threads(args.threads)
    print(f"[t2l] size={size} device={bench.device} encoder={bench.encoder} work={bench.work}", flush=True)
    bench.setup()
    bench.train_baselines()
    bench.train_t2l()
    payload = bench.write(complete=True)
    png = bench.png
    print(summary_table(payload["means"]))
    t = payload["targets"]
    print(f"adapter FLOPs {bench.costs.get('adapter', {}).get('flops')}, 3-shot extra FLOPs/query "
          f"{bench.costs.get('three_shot', {}).get('extra_flops_per_query_mean')}, ratio "
          f"{t['flops_ratio_3shot_per_query_over_adapter']}")  # fmt: skip
    for k, v in t.items():
        if k != "per_method":
            print(f"target {k}: {v}")
    print(f"[t2l] wrote {bench.path} and {png} in {bench.elapsed():.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
