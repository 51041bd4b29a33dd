"""Text-to-LoRA zero-shot benchmark, fair version (issue 10): matched training budgets, every test example, intervals.

    python benchmarks/t2l_zero_shot.py               # one GPU (bf16-mixed): 92 seen tasks, 200 examples each
    python benchmarks/t2l_zero_shot.py --cpu-long    # 2 CPU cores: 92 seen tasks, 150 examples each (many hours)
    python benchmarks/t2l_zero_shot.py --quick       # 2 CPU cores: 16 seen tasks, 40 examples each
    python benchmarks/t2l_zero_shot.py --smoke --out-dir /tmp/t2l_smoke   # the same code path, tiny, on CPU
    python benchmarks/t2l_zero_shot.py --cpu-long --work-dir outputs/t2l_bench_cpu --time-budget 5400
        # resumable: rerun the same command to continue where the last one stopped (see "Resuming" below)
    cp -r outputs/t2l_bench_cpu/{state.json,oracle} outputs/t2l_probe/   # a hypernetwork variant of a finished run:
    python benchmarks/t2l_zero_shot.py --cpu-long --work-dir outputs/t2l_probe --latent 512 --recon-steps 4000 \
        --max-stages 1   # redoes only the T2L stages (here: reconstruction), keeps the baselines' scores;
                         # writes t2l_zero_shot_cpu_latent512_recon4000.json
    mkdir -p outputs/t2l_bench_desc/weights && cp outputs/t2l_bench_cpu/state.json outputs/t2l_bench_desc/ && \
        cp outputs/t2l_bench_cpu/weights/t2l_recon_L.safetensors outputs/t2l_bench_desc/weights/
    python benchmarks/t2l_zero_shot.py --cpu-long --work-dir outputs/t2l_bench_desc --description-in-prompt
        # trains only SFT from reconstruction with the description in the prompt too; t2l_zero_shot_cpu_desc.json

Built-in task corpus, SmolLM2-135M-Instruct, one process, lightning Trainers. Every method that trains on task
examples (per-task oracle LoRAs, a bare multi-task LoRA, a description-aware multi-task LoRA, Text-to-LoRA by SFT)
draws its batches from the same sampler with the same seed, tasks per batch and examples per task, for
``max_steps = matched_steps(examples_per_seen_task, ...)`` steps: every seen task gets the same examples (the exact
same rows, in fact) under every method, by construction. Text-to-LoRA by reconstruction learns the oracle library;
"SFT from reconstruction" starts SFT from the reconstruction hypernetwork's weights. Held-out tasks are never
trained on; T2L adapters, "base + description" and the description-aware multi-task LoRA use evaluation
descriptions that training never saw. Every method is scored on all 40 test examples of every evaluated task
(exact match of greedy answers, and the teacher-forced, unsmoothed cross-entropy of the reference answer in the
prompt format the method is evaluated with); description-dependent methods average over the descriptions per
example, and paired bootstrap 95% intervals of every T2L method minus every baseline resample examples within
tasks. ``targets`` in the JSON are issue 10's two targets. Writes ``benchmarks/results/t2l_zero_shot[_size].json``
and a PNG.

Resuming: with ``--work-dir`` the run is resumable across processes (a 2-core ``--cpu-long`` run takes ~5 hours).
Every training run checkpoints every ``--ckpt-every`` steps under ``<work-dir>/ckpt/<method>/`` (exact resume: the
sampler continues where it stopped) and each finished stage (trained adapters, T2L weights, scores per task) is
recorded in ``<work-dir>/state.json``. ``--time-budget`` is then this invocation's wall clock: when it runs out the
run checkpoints, writes a partial JSON (``"complete": false``) and exits 0; the same command continues it, with the
matched budget untouched (no method is cut short). ``--max-stages N`` stops after N stages (tests, short sessions).
Stages run in the order oracles, reconstruction (which reads the oracle library), multi-task LoRAs, SFT, SFT from
reconstruction, and every example-trained baseline is scored as soon as it is trained, so no later stage needs the
large files of an earlier one. ``--carry-dir DIR`` keeps the small part a new checkout needs to continue (``state.json``,
the hypernetwork weights still needed, the checkpoint of an unfinished stage when it is small, i.e. a multi-task
LoRA's) in ``DIR`` after every stage and at a pause, to commit between sessions; a stage cut short whose checkpoint
is too large to carry (oracles, T2L) restarts from its first step in the new checkout.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch

from lora_hyper.data_modules.lora_library import LoRALibraryDataModule
from lora_hyper.data_modules.task_corpus import TaskCorpus, score
from lora_hyper.data_modules.task_sampler import TaskCorpusDataModule, description_prompt
from lora_hyper.encoders.task import BASE_ENCODER, DEFAULT_ENCODER, packaged_minilm_dir
from lora_hyper.generation import generate_answers
from lora_hyper.lora import LoRABatch, load_peft
from lora_hyper.modules.finetune import LoRAFinetuneModule
from lora_hyper.modules.t2l import TextToLoRAModule

from common import LossCurve, quiet_trainer, write_result
from t2l_costs import adapter_cost, few_shot_prompt, prompt_cost
from t2l_report import (
    BASELINES,
    answer_ce,
    compare,
    comparison_table,
    count_summary,
    evenly_spaced,
    expected_examples_per_task,
    group_means,
    matched_steps,
    plot,
    summary_table,
    targets,
    task_means,
)

BASE = "smollm2-135m-instruct"
SHOTS = 3
N_EVAL_DESCRIPTIONS = (
    5  # descriptions per task the corpus keeps out of training (TaskCorpusDataModule's default)
)
EXAMPLE_TRAINED = ("oracle", "multitask", "multitask_with_description")
FROM_RECON = "t2l_sft_from_recon_L"
# the same, trained and evaluated with the task description in the prompt as well (--description-in-prompt): the
# adapter adds to what the base model reads from the description, as the description-aware multi-task LoRA does
FROM_RECON_DESC = "t2l_sft_from_recon_desc_L"
FROM_RECON_KEYS = (FROM_RECON, FROM_RECON_DESC)

# batch: tasks per batch and examples per task of every example-trained method (identical batches);
# lr: peak learning rate per method; recon: the reconstruction run (no task examples, it learns the oracles).
# head_in: width of the hypernetworks' shared output heads. One head serves every (task, layer), so what it can
# generate across them has rank <= head_in: the 92-task library's best rank-256 version scores 22.8% seen-task exact
# match where the library scores 44.7%, rank 1024 scores 43.4% (benchmarks/t2l_library_rank.py); hence 1024.
SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "examples_per_seen_task": 200, "n_train_tasks": None, "n_seen_eval": 16, "n_held_out_eval": 8,
        "test_examples_per_task": None, "n_descriptions": 2, "sft_heads": ["L", "M", "S"], "sft_from_recon": True,
        "batch": {"tasks_per_batch": 32, "examples_per_task": 2},
        "lr": {"oracle": 2e-3, "multitask": 1e-3, "sft": 1e-3},
        "recon": {"max_steps": 3000, "tasks_per_batch": 16, "lr": 1e-3},
        "max_length": 128, "time_budget_s": 1800, "latent": 128, "head_in": 1024,
    },
    "cpu": {
        "examples_per_seen_task": 150, "n_train_tasks": None, "n_seen_eval": 8, "n_held_out_eval": 8,
        "test_examples_per_task": None, "n_descriptions": 2, "sft_heads": ["L"], "sft_from_recon": True,
        "batch": {"tasks_per_batch": 8, "examples_per_task": 2},
        "lr": {"oracle": 3e-3, "multitask": 1e-3, "sft": 1e-3},
        "recon": {"max_steps": 2000, "tasks_per_batch": 16, "lr": 3e-3},
        "max_length": 128, "time_budget_s": 36000, "latent": 128, "head_in": 1024,
    },
    "quick": {
        "examples_per_seen_task": 40, "n_train_tasks": 16, "n_seen_eval": 4, "n_held_out_eval": 8,
        "test_examples_per_task": None, "n_descriptions": 2, "sft_heads": ["L"], "sft_from_recon": True,
        "batch": {"tasks_per_batch": 8, "examples_per_task": 2},
        "lr": {"oracle": 3e-3, "multitask": 1e-3, "sft": 1e-3},
        "recon": {"max_steps": 300, "tasks_per_batch": 8, "lr": 3e-3},
        "max_length": 128, "time_budget_s": 5400, "latent": 128, "head_in": 256,
    },
    "smoke": {
        "examples_per_seen_task": 2, "n_train_tasks": 4, "n_seen_eval": 2, "n_held_out_eval": 2,
        "test_examples_per_task": 4, "n_descriptions": 2, "sft_heads": ["L"], "sft_from_recon": True,
        "batch": {"tasks_per_batch": 4, "examples_per_task": 1},
        "lr": {"oracle": 2e-3, "multitask": 1e-3, "sft": 1e-3},
        "recon": {"max_steps": 2, "tasks_per_batch": 4, "lr": 1e-3},
        "max_length": 128, "time_budget_s": 3600, "latent": 32, "head_in": 32,
    },
}  # fmt: skip


def training_steps(cfg: dict[str, Any], n_train_tasks: int) -> int:
    """Steps of every example-trained method: ``examples_per_seen_task`` examples per training task."""
    b = cfg["batch"]
    return matched_steps(
        cfg["examples_per_seen_task"], n_train_tasks, b["tasks_per_batch"], b["examples_per_task"]
    )


# how the oracle LoRAs were trained: a work dir that differs only here (or in ``T2L_FINGERPRINT``) keeps
# every stage but the ones built on what changed (see Bench.redo_stages)
ORACLE_FINGERPRINT = {"oracle_optimizer": "rowwise_adamw", "oracle_init": "shared_a"}
# the hypernetworks' configuration: a work dir that differs only here redoes its Text-to-LoRA stages
T2L_FINGERPRINT = ("t2l_head_in", "t2l_latent", "t2l_recon")
# what the description-reading methods train on: a work dir that differs only here redoes the stages that read
# descriptions (Text-to-LoRA, the description-aware multi-task LoRA) and keeps the others
DESCRIPTION_FINGERPRINT = ("training_descriptions",)
CARRY_CKPT_MAX_BYTES = (
    16 * 2**20
)  # multi-task LoRA checkpoints (~6 MB) travel in --carry-dir; T2L (~53 MB) do not
# hypernetwork weights travel in --carry-dir in bf16 up to this size (the cpu size's head_in 1024 hypernets: ~35 MB;
# the reconstruction's must travel: retraining it in a new checkout would mean retraining the oracle library first);
# larger ones are retrained by a new checkout that still needs them
CARRY_WEIGHTS_MAX_BYTES = 40 * 2**20


def carry_weights(src: Path, dst: Path) -> bool:
    """A bf16 copy of the weights file ``src`` at ``dst`` (atomic); False, and no file, if it exceeds the limit."""
    from safetensors.torch import load_file, save_file

    state = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in load_file(str(src)).items()}
    if sum(v.numel() * v.element_size() for v in state.values()) > CARRY_WEIGHTS_MAX_BYTES:
        dst.unlink(missing_ok=True)  # a stale smaller copy must not stand in for it
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    save_file(state, str(tmp))
    os.replace(tmp, dst)
    return True


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` through a temporary sibling, so a kill never leaves half a file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class Paused(Exception):
    """This invocation's time (or stage) budget is spent; ``<work-dir>/state.json`` holds what is done."""


class PeriodicCheckpoint(L.Callback):
    """``<dirpath>/last.ckpt`` every ``every`` optimizer steps, written atomically (a kill never leaves half a file)."""

    def __init__(self, dirpath: Path, every: int, on_save: Callable[[int], None] | None = None) -> None:
        self.dirpath, self.every, self.on_save = Path(dirpath), max(int(every), 1), on_save
        self.saved_at = -1

    def save(self, trainer: L.Trainer) -> None:
        self.dirpath.mkdir(parents=True, exist_ok=True)
        tmp = self.dirpath / "last.ckpt.tmp"
        trainer.save_checkpoint(tmp, weights_only=False)  # optimizer and loops too: an exact resume
        os.replace(tmp, self.dirpath / "last.ckpt")
        if self.on_save is not None:
            self.on_save(trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        step = trainer.global_step
        if step % self.every == 0 and step != self.saved_at and step < (trainer.max_steps or 0):
            self.save(trainer)
            self.saved_at = step


class Deadline(L.Callback):
    """Stop training at a wall-clock deadline. Unlike ``max_time`` (whose Timer state is restored from a
    checkpoint, so a resumed run would count the earlier invocations' time), it only counts this process."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() >= self.deadline:
            trainer.should_stop = True


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
    """One benchmark run: trains every method in turn under one wall-clock budget and scores them all."""

    def __init__(self, args: argparse.Namespace, size: str) -> None:
        self.args, self.size, self.cfg = args, size, copy.deepcopy(SIZES[size])
        if args.examples_per_seen_task is not None:
            self.cfg["examples_per_seen_task"] = int(args.examples_per_seen_task)
        # hypernetwork variants: their own result file, so they never overwrite the size's own
        variant = ""
        if getattr(args, "latent", None) is not None:
            self.cfg["latent"] = int(args.latent)
            variant += f"_latent{args.latent}"
        if getattr(args, "recon_steps", None) is not None:
            self.cfg["recon"]["max_steps"] = int(args.recon_steps)
            variant += f"_recon{args.recon_steps}"
        if getattr(args, "description_in_prompt", False):
            self.cfg["sft_from_recon_desc"] = True
            variant += "_desc"
        # the corpus's train-only paraphrases (training_descriptions); evaluation descriptions are the same either way
        self.training_descriptions = bool(getattr(args, "training_descriptions", False))
        if self.training_descriptions:
            variant += "_paraphrases"
        self.t_start = time.perf_counter()
        self.prior_elapsed = 0.0  # wall time of earlier invocations of a resumed run
        self.persistent = args.work_dir is not None
        self.stages_done = 0
        self.partial: dict[str, dict[str, Any]] = {}  # interrupted training runs: curve and wall time so far
        self.gpu = torch.cuda.is_available() and not args.cpu
        self.device = torch.device("cuda" if self.gpu else "cpu")
        self.budget = float(args.time_budget or self.cfg["time_budget_s"])
        self.encoder, self.encoder_note = resolve_encoder(args.task_encoder)
        self.work = Path(args.work_dir or tempfile.mkdtemp(prefix="t2l_bench_"))
        carry = getattr(args, "carry_dir", None)
        self.carry = Path(carry) if carry else None
        self.name = "t2l_zero_shot" + ("" if size == "full" else f"_{size}") + variant
        self.t2l_keys = (
            ["t2l_recon_L"]
            + [f"t2l_sft_{h}" for h in self.cfg["sft_heads"]]
            + ([FROM_RECON] if self.cfg["sft_from_recon"] else [])
            + ([FROM_RECON_DESC] if self.cfg.get("sft_from_recon_desc") else [])
        )
        self.runs: dict[str, dict[str, Any]] = {}
        self.per_example: dict[str, dict[str, dict[str, list[float]]]] = {"exact_match": {}, "ce": {}}
        self.costs: dict[str, Any] = {}
        self.skipped: dict[str, str] = {}
        self.eval_seconds: dict[str, float] = {}
        self.answers_done = 0
        self.eval_wall = 0.0
        self.recon_state: dict[str, torch.Tensor] | None = None

    def elapsed(self) -> float:
        """Wall time of the whole run, earlier invocations of a resumed run included."""
        return self.prior_elapsed + self.invocation_elapsed()

    def invocation_elapsed(self) -> float:
        return time.perf_counter() - self.t_start

    # ------------------------------------------------------------------ resuming
    def fingerprint(self) -> dict[str, Any]:
        """What must match for a work dir's results to be continued (anything else would mix two benchmarks)."""
        return {"size": self.size, "seed": self.args.seed, "task_encoder": self.encoder,
                "examples_per_seen_task": self.cfg["examples_per_seen_task"], "steps": self.steps,
                "pool": self.pool, "groups": self.groups, **ORACLE_FINGERPRINT,
                "t2l_head_in": self.cfg["head_in"], "t2l_latent": self.cfg["latent"],
                "t2l_recon": self.cfg["recon"], "training_descriptions": self.training_descriptions}  # fmt: skip

    def save_state(self) -> None:
        """``<work-dir>/state.json``, atomically: finished stages, scores per task, partial curves."""
        if not self.persistent:
            return
        state = {
            "fingerprint": self.fingerprint(), "runs": self.runs, "partial": self.partial,
            "per_example": self.per_example, "costs": self.costs, "skipped": self.skipped,
            "eval_seconds": self.eval_seconds, "eval_wall": self.eval_wall, "answers_done": self.answers_done,
            "elapsed_s": self.elapsed(),
        }  # fmt: skip
        self.work.mkdir(parents=True, exist_ok=True)
        tmp = self.work / "state.json.tmp"
        tmp.write_text(json.dumps(state) + "\n")
        os.replace(tmp, self.work / "state.json")

    def load_state(self) -> None:
        """Continue the run recorded in ``<work-dir>/state.json`` (if any); refuse one of another configuration."""
        path = self.work / "state.json"
        self.restore_carry()
        if not self.persistent or not path.is_file():
            return
        state = json.loads(path.read_text())
        mine = json.loads(json.dumps(self.fingerprint()))
        # a state written before the trunk width could be chosen ran at the size's own
        # ... and one written before the corpus had train-only descriptions trained without them
        theirs = {
            "t2l_latent": SIZES[self.size]["latent"], "training_descriptions": False, **state.get("fingerprint", {})
        }  # fmt: skip
        differ = sorted(k for k in mine if theirs.get(k) != mine[k])
        if differ and not set(differ) <= {*ORACLE_FINGERPRINT, *T2L_FINGERPRINT, *DESCRIPTION_FINGERPRINT}:
            print(
                f"error: {path} belongs to another benchmark configuration (differs in {', '.join(differ)}); "
                "use another --work-dir or the same options as the run that wrote it.",
                file=sys.stderr,
            )
            raise SystemExit(2)
        self.runs, self.partial = state["runs"], state.get("partial", {})
        self.per_example, self.costs = state["per_example"], state["costs"]
        self.skipped, self.eval_seconds = state["skipped"], state["eval_seconds"]
        self.eval_wall, self.answers_done = state["eval_wall"], state["answers_done"]
        self.prior_elapsed = float(state["elapsed_s"])
        if differ and getattr(self.args, "export", None) is not None:  # an export never drops trained stages
            print(
                f"error: --export: {path} was run with another {', '.join(differ)}; export with the options of the "
                "run that wrote it.",
                file=sys.stderr,
            )
            raise SystemExit(2)
        if differ:
            self.redo_stages(differ)
        lost = [k for k in self.carried_weights() if not self.weights_path(k).is_file()]
        for key in lost:  # too large to carry, and a later stage still needs them: train that stage again
            print(f"[t2l] {key}: its hypernetwork weights are not in {self.work}, retraining it", flush=True)
            self.forget_stage(key)
        print(
            f"[t2l] resuming {path}: done {sorted(self.runs)}, elapsed so far {self.prior_elapsed:.0f}s",
            flush=True,
        )

    def redo_stages(self, differ: list[str]) -> None:
        """A work dir whose oracles were trained another way (``ORACLE_FINGERPRINT``), whose hypernetworks had
        another head width or whose reconstruction run another schedule: drop the stages built on what changed,
        keep every other stage's results."""
        drop: list[str] = []
        if set(differ) & set(ORACLE_FINGERPRINT):
            drop += ["oracle", "t2l_recon_L", *FROM_RECON_KEYS]
        if "t2l_recon" in differ:
            drop += [k for k in ("t2l_recon_L", *FROM_RECON_KEYS) if k not in drop]
        if {"t2l_head_in", "t2l_latent", *DESCRIPTION_FINGERPRINT} & set(differ):
            drop += [k for k in self.t2l_keys if k not in drop]
        if set(DESCRIPTION_FINGERPRINT) & set(differ):
            drop.append("multitask_with_description")
        for key in drop:
            self.forget_stage(key)
        if set(drop) & set(self.t2l_keys):
            self.costs = {}  # measured on a T2L hypernetwork of the old configuration
        print(
            f"[t2l] {self.work} was run with another {', '.join(differ)}: "
            f"redoing {', '.join(drop)}; the other stages' results are kept",
            flush=True,
        )

    def forget_stage(self, key: str) -> None:
        """Forget one stage's run, scores and files, so it is trained again."""
        for table in (self.runs, self.partial, self.skipped, self.eval_seconds, *self.per_example.values()):
            table.pop(key, None)
        shutil.rmtree(self.work / key, ignore_errors=True)
        self.drop_checkpoints(key)
        self.weights_path(key).unlink(missing_ok=True)

    def stage_done(self) -> None:
        """Count a finished stage; pause when ``--max-stages`` is reached."""
        self.stages_done += 1
        self.save_state()
        self.sync_carry()
        if self.args.max_stages and self.stages_done >= self.args.max_stages:
            raise Paused(f"--max-stages {self.args.max_stages} reached")

    def carried_weights(self) -> list[str]:
        """Hypernetwork weights a later invocation still needs: those not scored yet, and the reconstruction's
        until SFT-from-reconstruction has started from it."""
        keys = [k for k in self.t2l_keys if k in self.runs and not self.evaluated(k)]
        waiting = [k for k in FROM_RECON_KEYS if k in self.t2l_keys and k not in self.runs]
        if waiting and "t2l_recon_L" in self.runs:
            keys.append("t2l_recon_L")
        return sorted(set(keys))

    def sync_carry(self) -> None:
        """Copy what resuming needs (``state.json``, :meth:`carried_weights` in bf16 up to ``CARRY_WEIGHTS_MAX_BYTES``
        and the checkpoints of unfinished stages up to ``CARRY_CKPT_MAX_BYTES``; no adapter libraries) into
        ``--carry-dir``, atomically; what is no longer needed is removed from it."""
        if self.carry is None or not (self.work / "state.json").is_file():
            return
        (self.carry / "weights").mkdir(parents=True, exist_ok=True)
        keep = {f"{k}.safetensors" for k in self.carried_weights()}
        for name in sorted(keep):
            if (self.work / "weights" / name).is_file():
                carry_weights(self.work / "weights" / name, self.carry / "weights" / name)
        for old in (self.carry / "weights").glob("*.safetensors"):
            if old.name not in keep:
                old.unlink()
        # a stage cut short continues exactly if its checkpoint is small enough to carry
        for key in self.partial:
            src = self.work / "ckpt" / key / "last.ckpt"
            if src.is_file() and src.stat().st_size <= CARRY_CKPT_MAX_BYTES:
                copy_atomic(src, self.carry / "ckpt" / key / "last.ckpt")
        for old in (self.carry / "ckpt").glob("*/last.ckpt"):
            if old.parent.name not in self.partial:
                shutil.rmtree(old.parent)
        copy_atomic(self.work / "state.json", self.carry / "state.json")

    def restore_carry(self) -> None:
        """Start from ``--carry-dir`` when it holds a run further along than the work dir (e.g. a new checkout)."""
        if self.carry is None or not (self.carry / "state.json").is_file():
            return
        mine = self.work / "state.json"
        carried = json.loads((self.carry / "state.json").read_text())
        if mine.is_file() and json.loads(mine.read_text())["elapsed_s"] >= carried["elapsed_s"]:
            return
        for src in [
            *(self.carry / "weights").glob("*.safetensors"),
            *(self.carry / "ckpt").glob("*/last.ckpt"),
        ]:
            copy_atomic(src, self.work / src.relative_to(self.carry))
        copy_atomic(self.carry / "state.json", mine)
        print(
            f"[t2l] continuing the run carried in {self.carry} ({carried['elapsed_s']:.0f}s so far)",
            flush=True,
        )

    def weights_path(self, key: str) -> Path:
        return self.work / "weights" / f"{key}.safetensors"

    def save_weights(self, key: str, module: TextToLoRAModule) -> None:
        """A trained hypernetwork's weights, so a resumed run can evaluate (or start SFT from) it."""
        from safetensors.torch import save_file

        path = self.weights_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in module.hypernet.state_dict().items()}
        save_file(state, str(path.with_suffix(".tmp")))
        os.replace(path.with_suffix(".tmp"), path)

    def evaluated_task(self, key: str, name: str) -> bool:
        return name in self.per_example["exact_match"].get(key, {})

    def evaluated(self, key: str) -> bool:
        return all(self.evaluated_task(key, n) for n in self.groups["seen"] + self.groups["held_out"])

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        from lora_hyper.base_model import load_base_model

        cfg = self.cfg
        self.corpus = TaskCorpus.load(
            "builtin", None, N_EVAL_DESCRIPTIONS, self.args.seed, self.training_descriptions
        )
        seen_all = self.corpus.train_tasks
        seen_eval = evenly_spaced(seen_all, cfg["n_seen_eval"])
        n_pool = cfg["n_train_tasks"] or len(seen_all)
        rest = evenly_spaced([t for t in seen_all if t not in seen_eval], max(n_pool - len(seen_eval), 0))
        self.pool = sorted(seen_eval + rest)
        held = sorted(self.corpus.held_out_tasks)[: cfg["n_held_out_eval"]]
        self.groups = {"seen": seen_eval, "held_out": held}
        self.steps = training_steps(cfg, len(self.pool))
        n_test = cfg["test_examples_per_task"]
        self.examples = {n: self.corpus.tasks[n].examples("test")[:n_test] for n in seen_eval + held}
        self.descriptions: dict[str, list[str]] = {}
        for name in seen_eval + held:
            task = self.corpus.tasks[name]
            chosen = list(task.eval_descriptions)[: cfg["n_descriptions"]]
            leaked = set(chosen) & set(task.train_descriptions)
            if len(chosen) < cfg["n_descriptions"] or leaked:
                raise SystemExit(
                    f"Task {name}: evaluation descriptions {chosen} are too few or were trained on."
                )
            self.descriptions[name] = chosen
        self.eval_model, self.tokenizer = load_base_model(BASE, device=self.device)
        longest = max(
            len(self.tokenizer(e.response)["input_ids"]) for ex in self.examples.values() for e in ex
        )
        self.max_new_tokens = longest + 2
        self.load_state()

    # ------------------------------------------------------------------ training
    def train_weight(self, key: str) -> float:
        return 0.2 if key == "t2l_recon_L" else 1.0

    def planned(self) -> list[str]:
        return list(EXAMPLE_TRAINED) + self.t2l_keys

    def forget_lost_partial(self, key: str) -> None:
        """Drop the partial curve of a stage whose checkpoint is gone (e.g. a run continued from a carried state
        in a new checkout): the stage starts over, and its curve with it."""
        if key in self.partial and not (self.work / "ckpt" / key / "last.ckpt").is_file():
            steps = self.partial.pop(key).get("steps")
            print(f"[t2l] {key}: the checkpoint of its {steps} steps is gone, starting it over", flush=True)

    def fit(self, key: str, module: L.LightningModule, data: L.LightningDataModule, max_steps: int) -> bool:
        """Train ``module`` for ``max_steps`` within its share of the budget; False (and a note) when no time is left."""
        self.forget_lost_partial(key)
        prior = self.partial.get(key, {})
        curve = LossCurve("train/ce", prior.get("curve"), prior.get("wall_s", 0.0))
        callbacks: list[L.Callback] = [curve]
        ckpt_path = None
        saver: PeriodicCheckpoint | None = None
        if self.persistent:
            # resumable: the whole matched budget, over as many invocations as it takes
            seconds = self.budget - self.invocation_elapsed() - 10.0
            if seconds < 3.0:
                raise Paused(f"the {self.budget:.0f}s budget of this invocation is spent")

            def progress(step: int) -> None:
                self.partial[key] = {"curve": curve.points, "wall_s": curve.wall(), "steps": step}
                self.save_state()

            saver = PeriodicCheckpoint(self.work / "ckpt" / key, self.args.ckpt_every, progress)
            last = saver.dirpath / "last.ckpt"
            ckpt_path = str(last) if last.is_file() else None
            callbacks += [saver, Deadline(seconds)]
        else:
            left = [k for k in self.planned() if k not in self.runs and k not in self.skipped]
            share = self.train_weight(key) / sum(self.train_weight(k) for k in left)
            seconds = (self.budget - self.elapsed() - self.eval_reserve() - 10.0) * share
            if seconds < 3.0:
                self.skipped[key] = (
                    f"no time left in the {self.budget:.0f}s budget (elapsed {self.elapsed():.0f}s)"
                )
                print(f"[t2l] skip {key}: {self.skipped[key]}", flush=True)
                return False
        trainer = quiet_trainer(
            max_steps, callbacks, self.gpu, default_root_dir=str(self.work / "trainer"),
            max_time=None if self.persistent else {"seconds": seconds},
        )  # fmt: skip
        if ckpt_path:
            print(f"[t2l] {key}: resuming from {ckpt_path}", flush=True)
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path, weights_only=True)
        wall = curve.wall()
        if saver is not None and trainer.global_step < max_steps:
            saver.save(trainer)  # checkpoint and state at the stopping step
            raise Paused(f"{key} stopped at step {trainer.global_step}/{max_steps} (checkpointed)")
        self.partial.pop(key, None)
        losses = [p[1] for p in curve.points]
        self.runs[key] = {
            "max_steps": max_steps, "time_cap_s": round(seconds, 1), "steps": trainer.global_step,
            "wall_s": round(wall, 2),
            "stopped_by": "max_steps" if trainer.global_step >= max_steps else "time_cap",
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            "last_10_mean_loss": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
            "curve": curve.points,
        }  # fmt: skip
        if isinstance(data, TaskCorpusDataModule):
            self.runs[key].update(self.realised(data, trainer.global_step))
        print(
            f"[t2l] {key}: {trainer.global_step}/{max_steps} steps in {wall:.1f}s, loss "
            f"{losses[:1]} -> {losses[-1:]}",
            flush=True,
        )
        return True

    def realised(self, data: TaskCorpusDataModule, steps: int) -> dict[str, Any]:
        """Training examples each task got, replaying the sampler's first ``steps`` batches (they are pure)."""
        dataset = data.train_dataset()
        counts: Counter[str] = Counter()
        for i in range(steps):
            counts.update(task.name for task, _, _, _ in dataset.draw(i))
        b = self.cfg["batch"]
        return {
            "tasks_per_batch": b["tasks_per_batch"],
            "examples_per_task_per_batch": b["examples_per_task"],
            "n_train_tasks": len(self.pool),
            "examples_per_seen_task_target": self.cfg["examples_per_seen_task"],
            "examples_per_seen_task_expected": expected_examples_per_task(
                steps, len(self.pool), b["tasks_per_batch"], b["examples_per_task"]
            ),
            "examples_per_seen_task_realised": count_summary(counts, self.pool),
            "examples_per_evaluated_seen_task": {t: counts.get(t, 0) for t in self.groups["seen"]},
            "examples_per_task_all": dict(sorted(counts.items())),
        }

    def identical_batches(self) -> bool | None:
        """Whether every example-trained run saw exactly the same examples per task (None: fewer than two runs)."""
        rows = [r["examples_per_task_all"] for r in self.runs.values() if "examples_per_task_all" in r]
        return None if len(rows) < 2 else all(r == rows[0] for r in rows)

    def data(self, description_in_prompt: bool = False) -> TaskCorpusDataModule:
        b = self.cfg["batch"]
        return TaskCorpusDataModule(
            BASE, tasks=list(self.pool), tasks_per_batch=b["tasks_per_batch"],
            examples_per_task=b["examples_per_task"], steps_per_epoch=self.steps,
            description_in_prompt=description_in_prompt, max_length=self.cfg["max_length"],
            n_eval_descriptions=N_EVAL_DESCRIPTIONS, seed=self.args.seed,
            training_descriptions=self.training_descriptions,
        )  # fmt: skip

    def t2l_module(self, head: str, objective: str, lr: float, from_recon: bool = False) -> TextToLoRAModule:
        L.seed_everything(self.args.seed)
        mlp = {"head_size": head, "latent": self.cfg["latent"], "head_in": self.cfg["head_in"]}
        loss: dict[str, Any] = {"objective": objective, "label_smoothing": 0.0, "neftune_alpha": 0.0}
        if objective == "reconstruction" or from_recon:
            # z-scored outputs and head_multiplier 1.0, as reconstruction: SFT from its weights starts at its adapters
            mlp["head_multiplier"] = 1.0
            loss["zscore"] = True
        if objective == "reconstruction":
            loss["reconstruction_mode"] = "factors"
        return TextToLoRAModule(
            BASE, mlp=mlp, task_encoder={"model": self.encoder}, loss=loss,
            optim={"lr": lr, "warmup": 0.1, "schedule": "cosine"},
        )  # fmt: skip

    def stage_order(self) -> list[str]:
        """Training stages in run order. Reconstruction comes right after the oracles, so the oracle library (the
        one large artifact) is needed for one stage only, and the SFT stages that start from the reconstruction
        come right after it, so its weights leave a carried work dir as soon as they can (every stage seeds
        itself, so the order changes no result)."""
        order = ["oracle", "t2l_recon_L", *[k for k in FROM_RECON_KEYS if k in self.t2l_keys]]
        order += ["multitask", "multitask_with_description"]
        order += [k for k in self.t2l_keys if k not in order]
        return [k for k in order if k in EXAMPLE_TRAINED or k in self.t2l_keys]

    def run(self) -> None:
        """Every stage in :meth:`stage_order`; an example-trained baseline is scored as soon as it is trained."""
        for key in self.stage_order():
            if key in EXAMPLE_TRAINED:
                self.train_baseline(key)
                self.evaluate_baselines()
            else:
                self.train_t2l(key)
        self.evaluate_baselines()  # the base conditions, when no example-trained stage ran

    def baseline_scored(self, key: str) -> bool:
        """An example-trained baseline scored on every task it applies to (the oracles: seen tasks only)."""
        names = self.groups["seen"] + ([] if key == "oracle" else self.groups["held_out"])
        return all(self.evaluated_task(key, n) for n in names)

    def train_baseline(self, key: str) -> None:
        """One example-trained baseline: per-task oracle LoRAs or a multi-task LoRA (with or without descriptions)."""
        library_needed = key == "oracle" and "t2l_recon_L" in self.t2l_keys and "t2l_recon_L" not in self.runs
        if key in self.runs and (
            (self.work / key).is_dir() or (self.baseline_scored(key) and not library_needed)
        ):
            return  # trained (and scored, or its adapters kept) by an earlier invocation
        mode = "per_task" if key == "oracle" else "multitask"
        in_prompt = key == "multitask_with_description"
        lr = self.cfg["lr"]["oracle" if key == "oracle" else "multitask"]
        L.seed_everything(self.args.seed)
        optim = {"lr": lr, "warmup": 0.1, "schedule": "cosine"}
        module = LoRAFinetuneModule(BASE, mode=mode, export_dir=str(self.work / key), optim=optim)
        if self.fit(key, module, self.data(in_prompt), self.steps):
            self.runs[key]["lr"] = lr
            self.runs[key]["description_in_prompt"] = in_prompt
            self.drop_checkpoints(key)
            self.stage_done()
        del module
        gc.collect()

    def drop_checkpoints(self, key: str) -> None:
        """A finished stage's training checkpoints are not needed any more (its result is saved)."""
        shutil.rmtree(self.work / "ckpt" / key, ignore_errors=True)

    def train_t2l(self, key: str) -> None:
        """One Text-to-LoRA stage (reconstruction, SFT, or SFT from the reconstruction weights), then its scores."""
        if key in self.skipped or (key in self.runs and self.evaluated(key)):
            return  # skipped, or trained and scored by an earlier invocation
        data: L.LightningDataModule
        if key == "t2l_recon_L":
            if key not in self.runs and not (self.work / "oracle").is_dir():
                self.skipped[key] = "no oracle library was written"
                return
            run = self.cfg["recon"]
            module = self.stage_module(key, run["lr"])
            if key in self.runs:
                ok = self.load_weights(key, module)
            else:
                data = LoRALibraryDataModule(
                    str(self.work / "oracle"), corpus="builtin", tasks_per_batch=run["tasks_per_batch"],
                    steps_per_epoch=run["max_steps"], seed=self.args.seed,
                    training_descriptions=self.training_descriptions,
                )  # fmt: skip
                ok = self.fit(key, module, data, run["max_steps"])
                if ok:
                    self.runs[key].update(
                        lr=run["lr"], tasks_per_batch=run["tasks_per_batch"], library_tasks=len(self.pool),
                        note="reconstructs the oracle library (oracles trained on the matched example budget)",
                    )  # fmt: skip
            if ok:
                self.recon_state = {
                    k: v.detach().cpu().clone() for k, v in module.hypernet.state_dict().items()
                }
        else:
            from_recon = key in FROM_RECON_KEYS
            if from_recon and self.recon_state is None and self.weights_path("t2l_recon_L").is_file():
                from safetensors.torch import load_file

                self.recon_state = load_file(str(self.weights_path("t2l_recon_L")))
            if from_recon and self.recon_state is None:
                self.skipped[key] = "no reconstruction hypernetwork to start from"
                return
            lr = self.cfg["lr"]["sft"]
            module = self.stage_module(key, lr)
            if key in self.runs:
                ok = self.load_weights(key, module)
            else:
                # a resumed run restores its own checkpoint; a fresh one starts from the reconstruction weights
                resuming = self.persistent and (self.work / "ckpt" / key / "last.ckpt").is_file()
                if from_recon and not resuming and not self.load_recon(key, module):
                    del module
                    return
                in_prompt = key == FROM_RECON_DESC
                ok = self.fit(key, module, self.data(in_prompt), self.steps)
                if ok:
                    self.runs[key].update(
                        lr=lr, label_smoothing=0.0, neftune_alpha=0.0, description_in_prompt=in_prompt
                    )
        if ok:
            if self.persistent and not self.weights_path(key).is_file():
                self.save_weights(key, module)
                self.drop_checkpoints(key)
                self.save_state()
            self.evaluate_t2l(key, module)
            self.write(complete=False)
            self.stage_done()
        del module
        gc.collect()
        if self.gpu:
            torch.cuda.empty_cache()

    def load_weights(self, key: str, module: TextToLoRAModule) -> bool:
        """Rebuild a hypernetwork an earlier invocation trained (False, with a note, if its weights are gone)."""
        from safetensors.torch import load_file

        path = self.weights_path(key)
        if not path.is_file():
            self.skipped[key] = f"trained earlier but {path} is missing"
            return False
        module.configure_model()
        module.hypernet.load_state_dict(load_file(str(path)))
        module.to(self.device)
        return True

    def stage_module(self, key: str, lr: float) -> TextToLoRAModule:
        """The module of one T2L stage: its head size, objective and start follow from the stage's key."""
        objective = "reconstruction" if key == "t2l_recon_L" else "sft"
        return self.t2l_module(key.rsplit("_", 1)[-1], objective, lr, from_recon=key in FROM_RECON_KEYS)

    def check_export(self, key: str) -> None:
        """Refuse (one line, exit status 2) to export a stage this work dir holds no trained weights of."""
        if key not in self.t2l_keys or not self.weights_path(key).is_file():
            trained = [k for k in self.t2l_keys if self.weights_path(k).is_file()]
            print(
                f"error: --export {key}: no trained weights in {self.work / 'weights'}; trained: "
                f"{', '.join(trained) or 'none'}.",
                file=sys.stderr,
            )
            raise SystemExit(2)

    def export(self, key: str, directory: str) -> Path:
        """A trained T2L stage's hypernetwork as a model directory (``TextToLoRA.save_pretrained``), e.g. to ship
        it with ``benchmarks/ship_pretrained.py``."""
        from lora_hyper.api.text_to_lora import TextToLoRA

        self.check_export(key)
        module = self.stage_module(key, 1e-3)  # the lr is unused: nothing is trained
        self.load_weights(key, module)
        return TextToLoRA.from_module(module).save_pretrained(directory)

    def load_recon(self, key: str, module: TextToLoRAModule) -> bool:
        """Copy the reconstruction hypernetwork into a fresh SFT module (False, with a note, if shapes differ)."""
        module.configure_model()
        own = module.hypernet.state_dict()
        # rounded through bf16, as carried: SFT from reconstruction starts from the same weights whether the run
        # continues in this work dir, in a new process, or from --carry-dir in a new checkout
        state = {
            k: v.to(torch.bfloat16).float() if v.is_floating_point() else v
            for k, v in (self.recon_state or {}).items()
        }
        mismatch = sorted(set(own) ^ set(state)) + [
            k for k in own if k in state and own[k].shape != state[k].shape
        ]
        if mismatch:
            self.skipped[key] = f"reconstruction and SFT hypernetworks differ ({mismatch[:4]})"
            return False
        module.hypernet.load_state_dict(state)
        return True

    # ------------------------------------------------------------------ evaluation
    def answers_per_task(self, methods: list[str], name: str) -> int:
        n, d = len(self.examples[name]), len(self.descriptions[name])
        per = {"base": 1, "base_with_description": d, "base_3shot": 1, "multitask": 1,
               "multitask_with_description": d, "oracle": 1 if name in self.groups["seen"] else 0}  # fmt: skip
        return n * sum(per.get(m, d) for m in methods)

    def eval_reserve(self) -> float:
        """Seconds the evaluations still to come will take (measured rate; a guess before the first one)."""
        rate = self.eval_wall / self.answers_done if self.answers_done else (0.02 if self.gpu else 0.25)
        todo = [
            k for k in self.t2l_keys if k not in self.per_example["exact_match"] and k not in self.skipped
        ]
        if "base" not in self.per_example["exact_match"]:
            todo += list(BASELINES)
        names = self.groups["seen"] + self.groups["held_out"]
        return rate * sum(self.answers_per_task(todo, n) for n in names)

    def score_conditions(
        self, name: str, conditions: list[tuple[list[str], LoRABatch | None]]
    ) -> tuple[list[float], list[float]]:
        """Per-example exact match and answer CE, averaged over the conditions (e.g. descriptions)."""
        task, refs = self.corpus.tasks[name], [e.response for e in self.examples[name]]
        em = [0.0] * len(refs)
        ce = [0.0] * len(refs)
        for prompts, lora in conditions:
            answers = generate_answers(
                self.eval_model, self.tokenizer, prompts, lora, self.max_new_tokens,
                system=task.system_message, share_adapters=lora is not None,
            )  # fmt: skip
            losses = answer_ce(self.eval_model, self.tokenizer, prompts, refs, task.system_message, lora)
            for i, (a, r) in enumerate(zip(answers, refs)):
                em[i] += score(a, r, task.metric) / len(conditions)
                ce[i] += losses[i] / len(conditions)
            self.answers_done += len(prompts)
        return em, [round(v, 5) for v in ce]

    def record(self, method: str, name: str, em: list[float], ce: list[float]) -> None:
        self.per_example["exact_match"].setdefault(method, {})[name] = em
        self.per_example["ce"].setdefault(method, {})[name] = ce

    def evaluate_baselines(self) -> None:
        """Base, base + description, base + 3 examples, both multi-task LoRAs and the oracles on every task."""
        t0 = time.perf_counter()
        multitask = {
            k: load_peft(self.work / k)
            for k in ("multitask", "multitask_with_description")
            if k in self.runs and (self.work / k).is_dir()  # a stage cut short exports its unfinished adapter
        }
        scored_any = False
        for name in self.groups["seen"] + self.groups["held_out"]:
            t_task = time.perf_counter()
            task = self.corpus.tasks[name]
            plain = [e.prompt for e in self.examples[name]]
            described = [[description_prompt(d, p) for p in plain] for d in self.descriptions[name]]
            shots = random.Random(f"{self.args.seed}:shots:{name}").sample(task.examples("train"), SHOTS)
            methods: dict[str, list[tuple[list[str], LoRABatch | None]]] = {
                "base": [(plain, None)],
                "base_with_description": [(p, None) for p in described],
                "base_3shot": [([few_shot_prompt(shots, p) for p in plain], None)],
            }
            if "multitask" in multitask:
                methods["multitask"] = [(plain, multitask["multitask"])]
            if "multitask_with_description" in multitask:
                methods["multitask_with_description"] = [
                    (p, multitask["multitask_with_description"]) for p in described
                ]
            oracle_dir = self.work / "oracle" / name
            if "oracle" in self.runs and oracle_dir.is_dir():
                methods["oracle"] = [(plain, load_peft(oracle_dir))]
            todo = {m: c for m, c in methods.items() if not self.evaluated_task(m, name)}
            if not todo:
                continue  # scored by an earlier invocation
            for method, conditions in todo.items():
                self.record(method, name, *self.score_conditions(name, conditions))
            scored_any = True
            self.save_state()
            shown = "  ".join(
                f"{m} {sum(v[name]) / len(v[name]):.3f}"
                for m, v in self.per_example["exact_match"].items()
                if name in v
            )
            print(f"[t2l] baselines {name}: {shown} ({time.perf_counter() - t_task:.1f}s)", flush=True)
        if not scored_any:
            return
        wall = time.perf_counter() - t0
        self.eval_wall += wall
        self.eval_seconds["baselines"] = round(self.eval_seconds.get("baselines", 0.0) + wall, 2)
        self.write(complete=False)
        self.stage_done()

    def evaluate_t2l(self, key: str, module: TextToLoRAModule) -> None:
        """Adapters from the evaluation descriptions, scored on every task; the description is in the prompt too
        only for the stage trained that way (``FROM_RECON_DESC``)."""
        module.eval()
        t0 = time.perf_counter()
        loras = {n: module.generate_lora(d).to(self.device) for n, d in self.descriptions.items()}
        if "adapter" not in self.costs:
            self.measure_costs(module)
        for name, lora in loras.items():
            if self.evaluated_task(key, name):
                continue  # scored by an earlier invocation
            plain = [e.prompt for e in self.examples[name]]
            conditions = [
                (
                    [description_prompt(d, p) for p in plain] if key == FROM_RECON_DESC else plain,
                    lora.select(j),
                )
                for j, d in enumerate(self.descriptions[name])
            ]
            em, ce = self.score_conditions(name, conditions)
            self.record(key, name, em, ce)
            self.save_state()
            print(
                f"[t2l] {key} {name}: exact match {sum(em) / len(em):.3f}, CE {sum(ce) / len(ce):.3f}",
                flush=True,
            )
        wall = time.perf_counter() - t0
        self.eval_wall += wall
        self.eval_seconds[key] = round(self.eval_seconds.get(key, 0.0) + wall, 2)

    def measure_costs(self, module: TextToLoRAModule) -> None:
        held = [self.corpus.tasks[n] for n in self.groups["held_out"]]
        descriptions = [d for t in held for d in self.descriptions[t.name]][:6]
        self.costs["adapter"] = adapter_cost(module, descriptions, self.device)
        pairs = []
        for task in held:
            shots = random.Random(f"{self.args.seed}:shots:{task.name}").sample(task.examples("train"), SHOTS)
            for e in self.examples[task.name][:4]:
                pairs.append((e.prompt, few_shot_prompt(shots, e.prompt), task.system_message))
        self.costs["three_shot"] = prompt_cost(self.eval_model, self.tokenizer, pairs, self.device)
        a, p = self.costs["adapter"], self.costs["three_shot"]
        self.costs["flops_ratio_3shot_per_query_over_adapter"] = p["extra_flops_per_query_mean"] / a["flops"]
        self.costs["wall_ratio_3shot_per_query_over_adapter"] = (
            p["extra_prefill_wall_s_median"] / a["wall_s_median"]
        )
        self.costs["queries_to_amortise_adapter"] = a["flops"] / p["extra_flops_per_query_mean"]

    # ------------------------------------------------------------------ output
    def summary(self) -> dict[str, Any]:
        em, ce = self.per_example["exact_match"], self.per_example["ce"]
        order = [*BASELINES[:-1], *[k for k in self.t2l_keys if k in em], "oracle"]
        order = [m for m in order if m in em]
        means = {m: group_means(task_means({m: em[m]}), self.groups)[m] for m in order}
        ce_means = {m: group_means(task_means({m: ce[m]}), self.groups)[m] for m in order}
        t2l = [k for k in self.t2l_keys if k in em]
        n_boot, seed = 2000, self.args.seed
        em_cmp = compare(em, self.groups, t2l, BASELINES, n_boot, seed)
        ce_cmp = compare(ce, self.groups, t2l, BASELINES, n_boot, seed)
        return {"order": order, "means": means, "ce_means": ce_means, "em_cmp": em_cmp, "ce_cmp": ce_cmp,
                "targets": targets(em_cmp, t2l)}  # fmt: skip

    def write(self, complete: bool) -> dict[str, Any]:
        s = self.summary()
        em, ce = self.per_example["exact_match"], self.per_example["ce"]
        n_test = {n: len(ex) for n, ex in self.examples.items()}
        payload = {
            "complete": complete,
            "size": self.size,
            "command": " ".join(["python", "benchmarks/t2l_zero_shot.py", *sys.argv[1:]]),
            "config": {
                **self.cfg, "seed": self.args.seed, "base_model": BASE,
                "training_descriptions": self.training_descriptions,
                "task_encoder_requested": self.args.task_encoder, "task_encoder_used": self.encoder,
                "task_encoder_note": self.encoder_note, "time_budget_s": self.budget,
                "max_new_tokens": self.max_new_tokens, "shots": SHOTS, "device": str(self.device),
                "lora": "q_proj,v_proj r=8 alpha=16 rsLoRA", "precision": "bf16-mixed" if self.gpu else "32-true",
                "threads": torch.get_num_threads(), "n_train_tasks_used": len(self.pool),
                "train_steps_per_example_trained_method": self.steps,
                "test_examples_evaluated_per_task": n_test,
                "test_examples_note": (
                    "all test examples of every evaluated task" if self.cfg["test_examples_per_task"] is None
                    else f"the first {self.cfg['test_examples_per_task']} test examples of each task only "
                    f"(the {self.size} size); the other sizes score all of them"
                ),
                "eval_descriptions_per_task": self.cfg["n_descriptions"],
                "sft": "label_smoothing 0.0, neftune_alpha 0.0 (logged loss = unsmoothed CE, comparable across methods)",
                "bootstrap": "paired by test example (description-dependent methods averaged over descriptions first); "
                "examples resampled within each task, tasks weighted equally; 2000 draws; 95% percentile interval; "
                "t2l_minus_baseline.ce < 0 means the T2L method gives the reference answers a lower test CE",
            },
            "tasks": {**self.groups, "train_pool": self.pool},
            "eval_descriptions": self.descriptions,
            "budget": {
                "examples_per_seen_task": self.cfg["examples_per_seen_task"],
                "steps": self.steps,
                "identical_batches_across_example_trained_methods": self.identical_batches(),
                "all_reached_max_steps": all(
                    r["stopped_by"] == "max_steps" for k, r in self.runs.items() if k != "t2l_recon_L"
                ),
                "realised_per_method": {
                    k: r.get("examples_per_seen_task_realised") for k, r in self.runs.items() if k != "t2l_recon_L"
                },
            },
            "means": {"exact_match": s["means"], "ce": s["ce_means"]},
            "t2l_minus_baseline": {"exact_match": s["em_cmp"], "ce": s["ce_cmp"]},
            "targets": s["targets"],
            "per_task": {"exact_match": task_means(em), "ce": task_means(ce)},
            "per_example": self.per_example,
            "costs": self.costs,
            "training": self.runs,
            "training_in_progress": self.partial,
            "eval_seconds": self.eval_seconds,
            "skipped": self.skipped,
            "wall_s": round(self.elapsed(), 1),
            "notes": self.notes(),
        }  # fmt: skip
        self.path = write_result(self.name, payload, self.args.out_dir)
        self.png = plot(
            s["means"],
            self.path.with_suffix(".png"),
            f"Text-to-LoRA, built-in corpus ({self.size}, {self.device.type})",
            self.runs,
        )
        self.last = s
        return payload

    def notes(self) -> str:
        steps = ", ".join(
            f"{k} {r['steps']}/{r['max_steps']} steps in {r['wall_s']:.0f}s" for k, r in self.runs.items()
        )
        b = self.cfg["batch"]
        text = (
            f"Size {self.size} on {self.device} ({'bf16-mixed' if self.gpu else 'fp32'}), one process, seed "
            f"{self.args.seed}, wall {self.elapsed():.0f}s"
            + (
                " over resumed invocations (no method cut short)"
                if self.persistent
                else f" of a {self.budget:.0f}s budget"
            )
            + ". Matched budget: oracle "
            f"LoRAs, both multi-task LoRAs and every T2L-SFT run draw {b['tasks_per_batch']} tasks x "
            f"{b['examples_per_task']} examples per step from the same sampler and seed over {len(self.pool)} seen "
            f"tasks for {self.steps} steps, i.e. {self.cfg['examples_per_seen_task']} examples per seen task in "
            "expectation and the same rows for every method (realised counts under 'training'). Reconstruction "
            "learns the oracle library. Training: " + steps + ". Evaluation: "
            f"{len(self.groups['held_out'])} held-out and {len(self.groups['seen'])} seen tasks, "
            f"{self.cfg['n_descriptions']} evaluation descriptions per task that training never saw (T2L adapters, "
            "base + description, description-aware multi-task LoRA). CE is the teacher-forced mean token "
            "cross-entropy of the reference answer (end-of-turn token included), no label smoothing. "
            f"Task encoder: {self.encoder}" + (f" ({self.encoder_note})" if self.encoder_note else "") + ". "
        )
        if self.cfg["n_train_tasks"]:
            text += (
                f"The {self.size} size trains on {len(self.pool)} of the {len(self.corpus.train_tasks)} seen tasks "
                "only (the evaluated seen tasks among them), so held-out generalisation is weaker than with all. "
            )
        if self.size == "smoke":
            text += "Smoke size: a handful of steps and test examples; checks the code path, not the method. "
        if FROM_RECON_DESC in self.t2l_keys:
            text += (
                f"{FROM_RECON_DESC} is {FROM_RECON} trained and evaluated with the task description in the prompt "
                "as well (as the description-aware multi-task LoRA): the base model reads the description and the "
                "generated adapter adds to it. "
            )
        if self.skipped:
            text += f"Skipped: {self.skipped}. "
        return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="2-CPU-core size: 16 seen tasks, 40 examples each")
    g.add_argument(
        "--cpu-long", action="store_true", help="2-CPU-core size: 92 seen tasks, 150 examples each"
    )
    g.add_argument(
        "--smoke", action="store_true", help="the same code path with a handful of steps (CPU check)"
    )
    p.add_argument("--out-dir", default=None, help="where the JSON and PNG go (default benchmarks/results)")
    p.add_argument(
        "--task-encoder", default=DEFAULT_ENCODER, help="'all-minilm-l6-v2' (packaged), 'base' or a directory"
    )
    p.add_argument(
        "--examples-per-seen-task", type=int, default=None, help="override the size's matched training budget"
    )
    p.add_argument("--time-budget", type=float, default=None, help="wall-clock seconds for the whole run")
    p.add_argument(
        "--work-dir", default=None, help="where adapters are written (default: a temporary folder)"
    )
    p.add_argument(
        "--latent",
        type=int,
        default=None,
        help="hypernetworks' trunk width (default: the size's; own JSON name)",
    )
    p.add_argument(
        "--recon-steps",
        type=int,
        default=None,
        help="reconstruction steps (default: the size's; own JSON name)",
    )
    p.add_argument(
        "--description-in-prompt",
        action="store_true",
        help=f"add {FROM_RECON_DESC}: SFT from reconstruction with the description in the prompt as well "
        "(own JSON name)",
    )
    p.add_argument(
        "--training-descriptions",
        action="store_true",
        help="train the description-reading methods on the corpus's train-only paraphrases (training_descriptions) "
        "as well (own JSON name, *_paraphrases); the example rows every method sees stay the same",
    )
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (CPU runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    p.add_argument(
        "--ckpt-every", type=int, default=50, help="with --work-dir: checkpoint every N training steps"
    )
    p.add_argument(
        "--max-stages",
        type=int,
        default=None,
        help="with --work-dir: stop after N finished stages (resumable)",
    )
    p.add_argument(
        "--carry-dir",
        default=None,
        help="with --work-dir: keep the small part of the run state a new checkout needs to continue "
        "(state.json, hypernetwork weights still needed) here, to commit between sessions",
    )
    p.add_argument(
        "--export",
        default=None,
        metavar="KEY",
        help="with --work-dir: write that trained T2L stage (e.g. t2l_sft_from_recon_L) as a model dir and exit",
    )
    p.add_argument("--export-dir", default=None, help="with --export: the model directory to write (new)")
    args = p.parse_args(argv)
    if (args.export is None) != (args.export_dir is None):
        p.error("--export KEY and --export-dir DIR go together")
    if args.export is not None and not args.work_dir:
        p.error("--export needs --work-dir (the run whose hypernetwork to export)")
    if args.export is not None and os.path.lexists(args.export_dir):
        p.error(
            f"--export-dir {args.export_dir} exists; choose a new directory (an export never replaces one)"
        )
    if args.max_stages is not None and not args.work_dir:
        p.error("--max-stages needs --work-dir (where the run is continued from)")
    if args.carry_dir is not None and not args.work_dir:
        p.error("--carry-dir needs --work-dir (where the run's large files live)")
    size = "quick" if args.quick else "cpu" if args.cpu_long else "smoke" if args.smoke else "full"
    bench = Bench(args, size)
    if args.export is not None:
        bench.check_export(args.export)  # before the models load
    if bench.gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    else:
        torch.set_num_threads(args.threads)
    bench.setup()
    if args.export is not None:
        print(f"[t2l] wrote {bench.export(args.export, args.export_dir)}", flush=True)
        return 0
    print(
        f"[t2l] size={size} device={bench.device} encoder={bench.encoder} work={bench.work} "
        f"train tasks={len(bench.pool)} steps/method={bench.steps} "
        f"(~{bench.cfg['examples_per_seen_task']} examples per seen task)",
        flush=True,
    )
    try:
        bench.run()
    except Paused as why:
        bench.save_state()
        bench.sync_carry()
        bench.write(complete=False)
        print(
            f"[t2l] paused: {why}. Partial results in {bench.path}; run the same command to continue "
            f"({bench.work / 'state.json'}).",
            flush=True,
        )
        return 0
    payload = bench.write(complete=True)
    s = bench.last
    print(summary_table(s["means"], s["ce_means"]))
    print(comparison_table(s["em_cmp"]))
    print(comparison_table(s["ce_cmp"], "test CE, nats; < 0 is better", scale=1.0, digits=3))
    print(
        f"budget: {payload['budget']['examples_per_seen_task']} examples per seen task, {bench.steps} steps; "
        f"identical batches {payload['budget']['identical_batches_across_example_trained_methods']}, "
        f"all reached max_steps {payload['budget']['all_reached_max_steps']}"
    )
    print(
        f"adapter FLOPs {bench.costs.get('adapter', {}).get('flops')}, 3-shot extra FLOPs/query "
        f"{bench.costs.get('three_shot', {}).get('extra_flops_per_query_mean')}"
    )
    for k, v in payload["targets"].items():
        if isinstance(v, bool) or v is None:
            print(f"target {k}: {v}")
    print(f"[t2l] wrote {bench.path} and {bench.png} in {bench.elapsed():.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
