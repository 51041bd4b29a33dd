"""Score a trained Text-to-LoRA on the built-in corpus: adapters from evaluation descriptions (never trained on).

    python benchmarks/t2l_shipped_eval.py --model outputs/t2l-smollm2-builtin --train-log outputs/t2l_sft_smollm2_cpu

Every held-out task and ``--seen`` seen tasks (evenly spaced by name), all 40 test examples of each, ``--descriptions``
evaluation descriptions per task. Methods: the base model, the base model with the description in its prompt, and
T2L (the generated adapter, no description in the prompt). Reports exact match per task and per group, with paired
bootstrap 95% intervals of T2L minus each baseline (resampling examples within each task). Writes
``benchmarks/results/<name>.json``; with ``--train-log`` (a Lightning ``default_root_dir``) the training curve too.
``--train-descriptions K`` also scores T2L on the seen tasks from K descriptions it was trained on
(``t2l_train_description``), which separates knowing a task from reading a new phrasing of it.
``--reference JSON`` (an earlier result of this script with the same tasks and settings) reuses its base-model
scores, about 60% of the time, and adds ``t2l_minus_reference``: this model minus that one, paired by example.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import torch

from lora_hyper.api.text_to_lora import TextToLoRA
from lora_hyper.data_modules.task_corpus import TaskCorpus, score
from lora_hyper.data_modules.task_sampler import description_prompt

from common import write_result
from t2l_report import paired_bootstrap, pick_seen

METHODS = ("base", "base_with_description", "t2l")
TRAIN_DESC = "t2l_train_description"  # seen tasks only, with --train-descriptions


def task_scores(
    model: TextToLoRA,
    corpus: TaskCorpus,
    name: str,
    n_desc: int,
    max_new_tokens: int,
    n_train_desc: int = 0,
    baselines: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Per-example scores of every method on one task (each description's answers in turn).

    With ``n_train_desc`` > 0, also ``t2l_train_description``: adapters from that many training descriptions.
    ``baselines`` (``base`` and ``base_with_description`` scores of an identical earlier run) skips recomputing
    them: both depend on the base model alone.
    """
    task = corpus.tasks[name]
    examples = task.examples("test")
    prompts, refs = [e.prompt for e in examples], [e.response for e in examples]
    descriptions = list(task.eval_descriptions)[:n_desc]
    kw = {"max_new_tokens": max_new_tokens, "system": task.system_message}

    def scored(answers: list[str], references: list[str]) -> list[float]:
        return [score(a, r, task.metric) for a, r in zip(answers, references)]

    if baselines is not None:
        out = {b: list(baselines[b]) for b in ("base", "base_with_description")}
    else:
        out = {"base": scored(model.generate(prompts, None, **kw), refs) * len(descriptions)}
        with_desc = [description_prompt(d, p) for d in descriptions for p in prompts]
        out["base_with_description"] = scored(model.generate(with_desc, None, **kw), refs * len(descriptions))
    lora = model.generate_lora(descriptions)
    t2l = []
    for i in range(len(descriptions)):
        t2l += scored(model.generate(prompts, lora.select(i), **kw), refs)
    out["t2l"] = t2l
    if n_train_desc > 0:
        trained = list(task.train_descriptions)[:n_train_desc]
        lora = model.generate_lora(trained)
        out[TRAIN_DESC] = [
            x
            for i in range(len(trained))
            for x in scored(model.generate(prompts, lora.select(i), **kw), refs)
        ]
    return out


def training_curve(root: str) -> dict[str, Any]:
    """Steps, wall time and the loss curve from the CSVLogger files under a Lightning ``default_root_dir``."""
    rows: list[dict[str, str]] = []
    for f in sorted(Path(root).glob("lightning_logs/version_*/metrics.csv")):
        with open(f, newline="") as fh:
            rows += list(csv.DictReader(fh))
    curve = [(int(r["step"]), float(r["train/loss"])) for r in rows if r.get("train/loss") not in (None, "")]
    return {"loss_curve": curve, "steps": max((s for s, _ in curve), default=0) + 1 if curve else 0}


def tasks_digest(corpus: TaskCorpus, names: list[str], n_desc: int) -> str:
    """A hash of what the scores depend on besides the model: each task's evaluation descriptions, system message
    and test examples."""
    import hashlib
    import json

    parts = []
    for name in names:
        task = corpus.tasks[name]
        examples = [(e.prompt, e.response) for e in task.examples("test")]
        parts.append(
            [name, list(task.eval_descriptions)[:n_desc], task.system_message, task.metric, examples]
        )
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def read_reference(path: str, config: dict[str, Any], groups: dict[str, list[str]]) -> dict[str, Any]:
    """Per-example scores of an earlier run of this script with the same tasks, descriptions and generation
    settings (``--reference``); exits with status 2 naming the difference otherwise."""
    import json

    try:
        ref = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        print(f"error: --reference {path}: cannot read it ({err}).", file=sys.stderr)
        sys.exit(2)
    if "per_example" not in ref:
        print(
            f"error: --reference {path} has no per-example scores: re-run it with this script.",
            file=sys.stderr,
        )
        sys.exit(2)
    keys = (
        "base_model",
        "tasks_digest",
        "eval_descriptions_per_task",
        "max_new_tokens",
        "test_examples_per_task",
    )
    differs = [k for k in keys if ref.get("config", {}).get(k) != config[k]]
    differs += [
        f"{g} tasks" for g, names in groups.items() if ref["summary"].get(g, {}).get("tasks") != names
    ]
    if differs:
        print(
            f"error: --reference {path} was scored with other {', '.join(differs)}: match them.",
            file=sys.stderr,
        )
        sys.exit(2)
    return ref


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Text-to-LoRA model dir or shipped name")
    p.add_argument("--seen", type=int, default=16, help="seen tasks to score (evenly spaced by name)")
    p.add_argument("--descriptions", type=int, default=2, help="evaluation descriptions per task")
    p.add_argument(
        "--train-descriptions",
        type=int,
        default=0,
        help="also score seen tasks from this many training descriptions (t2l_train_description)",
    )
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-log", default=None, help="Lightning default_root_dir of the training run")
    p.add_argument("--train-command", default=None, help="the command that trained the model (for the card)")
    p.add_argument("--recipe", default=None, help="the recipe the model was trained with (for the card)")
    p.add_argument("--train-wall-s", type=float, default=None, help="training wall time in seconds")
    p.add_argument(
        "--reference",
        default=None,
        help="result JSON of an earlier run (same tasks and settings): reuse its base-model scores and report "
        "this T2L minus that one (paired bootstrap)",
    )
    p.add_argument("--name", default="t2l_smollm2_builtin")
    p.add_argument("--out-dir", default=None)
    args = p.parse_args()
    if args.train_descriptions < 0:
        p.error(f"--train-descriptions must be >= 0, got {args.train_descriptions}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TextToLoRA.from_pretrained(args.model)
    corpus = TaskCorpus.load("builtin", training_descriptions=False)  # "trained" = the original phrasings
    groups = {"seen": pick_seen(corpus, args.seen), "held_out": sorted(corpus.held_out_tasks)}
    config = {
        "base_model": model.base_model_name,
        "tasks_digest": tasks_digest(
            corpus, [t for names in groups.values() for t in names], args.descriptions
        ),
        "seen_tasks": len(groups["seen"]),
        "held_out_tasks": len(groups["held_out"]),
        "test_examples_per_task": len(corpus.tasks[groups["seen"][0]].examples("test")),
        "eval_descriptions_per_task": args.descriptions,
        "train_descriptions_per_seen_task": args.train_descriptions,
        "max_new_tokens": args.max_new_tokens,
        "bootstrap": "paired, examples resampled within each task, 2000 draws, 95% percentile interval",
    }
    reference = read_reference(args.reference, config, groups) if args.reference else None
    per_task: dict[str, dict[str, list[float]]] = {m: {} for m in METHODS}
    if args.train_descriptions:
        per_task[TRAIN_DESC] = {}
    start = time.perf_counter()
    for group, names in groups.items():
        for name in names:
            t0 = time.perf_counter()
            n_train = args.train_descriptions if group == "seen" else 0
            reused = None
            if reference is not None:
                reused = {b: reference["per_example"][b][name] for b in ("base", "base_with_description")}
            scores = task_scores(
                model, corpus, name, args.descriptions, args.max_new_tokens, n_train, baselines=reused
            )
            for m, v in scores.items():
                per_task[m][name] = v
            shown = "  ".join(f"{m} {sum(v) / len(v):.3f}" for m, v in scores.items())
            print(f"[{group}] {name}: {shown} ({time.perf_counter() - t0:.1f} s)", flush=True)
    summary: dict[str, Any] = {}
    for group, names in groups.items():
        methods = [m for m in per_task if all(t in per_task[m] for t in names)]  # TRAIN_DESC: seen only
        means = {
            m: sum(sum(per_task[m][t]) / len(per_task[m][t]) for t in names) / len(names) for m in methods
        }
        summary[group] = {
            "tasks": names,
            "exact_match": means,
            "t2l_minus": {
                b: paired_bootstrap(
                    {t: per_task["t2l"][t] for t in names}, {t: per_task[b][t] for t in names}
                )
                for b in ("base", "base_with_description")
            },
        }
        if reference is not None:
            summary[group]["t2l_minus_reference"] = paired_bootstrap(
                {t: per_task["t2l"][t] for t in names}, {t: reference["per_example"]["t2l"][t] for t in names}
            )
        if TRAIN_DESC in methods:
            summary[group]["train_description_minus_t2l"] = paired_bootstrap(
                {t: per_task[TRAIN_DESC][t] for t in names}, {t: per_task["t2l"][t] for t in names}
            )
    result = {
        "benchmark": args.name,
        "model": str(args.model),
        "command": " ".join(["python", "benchmarks/t2l_shipped_eval.py", *sys.argv[1:]]),
        "config": config,
        "reference": {"path": args.reference, "model": reference.get("model")} if reference else None,
        "summary": summary,
        "per_task_exact_match": {
            m: {t: sum(v) / len(v) for t, v in tasks.items()} for m, tasks in per_task.items()
        },
        "per_example": per_task,
        "eval_wall_s": time.perf_counter() - start,
    }
    if args.train_log:
        result["training"] = {
            **training_curve(args.train_log),
            "command": args.train_command,
            "recipe": args.recipe,
            "wall_s": args.train_wall_s,
        }
    path = write_result(args.name, result, args.out_dir)
    for group, s in summary.items():
        em = "  ".join(f"{m} {v:.3f}" for m, v in s["exact_match"].items())
        print(f"{group}: {em}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
