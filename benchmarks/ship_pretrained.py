"""Ship a trained model dir inside the package (bf16 + model card), loadable by name with ``from_pretrained``.

    python benchmarks/ship_pretrained.py --model outputs/d2l-smollm2-niah --name d2l-smollm2-niah \
        --train-result benchmarks/results/niah_cpu_train.json --eval-result benchmarks/results/niah_cpu_l1.json \
        --commit c36232e

    python benchmarks/ship_pretrained.py --kind t2l --model outputs/t2l-smollm2-builtin --name t2l-smollm2-builtin \
        --eval-result benchmarks/results/t2l_smollm2_builtin.json --commit abc1234

The card records the training command, the commit it ran at, its wall time and the benchmark results, so the
shipped weights can be reproduced and judged. An existing shipped model of that name is never replaced: delete
it on purpose first.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from lora_hyper.pretrained import ship


def git_head() -> str:
    """The current commit (what a model trained from this checkout was trained at)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return out.stdout.strip() or "unknown"


def card(train: dict[str, Any], evaluation: dict[str, Any], commit: str, name: str) -> dict[str, Any]:
    """The model card of a NIAH-trained Doc-to-LoRA from its training and evaluation JSONs."""
    training = train.get("training") or {}
    return {
        "name": name,
        "kind": "doc-to-lora",
        "base_model": "smollm2-135m-instruct",
        "trained_by": train.get("command"),
        "recipe": (train.get("config") or {}).get("recipe"),
        "commit": commit,
        "train_steps": training.get("steps"),
        "train_wall_s": training.get("wall_s"),
        "reached_90pct_at_1k": training.get("reached_90pct_at_1k"),
        "evaluated_by": evaluation.get("command"),
        "results": {
            "niah_exact_match": {str(b["n_tokens"]): b["accuracy"] for b in evaluation.get("niah", [])},
            "niah_exact_match_rank_budget": {
                str(b["n_tokens"]): b["accuracy"] for b in evaluation.get("niah_rank_budget", [])
            },
            "rank_budget": evaluation.get("rank_budget"),
            "niah_varied_prose": {
                str(b["n_tokens"]): b["accuracy"] for b in evaluation.get("niah_prose", [])
            },
            "samples_per_bin": (evaluation.get("niah") or [{}])[0].get("n"),
            "chunk_health_ratio": (evaluation.get("chunk_health") or {}).get("ratio"),
        },
        "environment": evaluation.get("environment"),
    }


def with_prior_stages(model_card: dict[str, Any], priors: list[dict[str, Any]]) -> dict[str, Any]:
    """The card of a continued run: every stage's command, recipe, steps and wall time, oldest first, and the
    totals (what it took from scratch)."""
    last = {
        "trained_by": model_card["trained_by"],
        "recipe": model_card["recipe"],
        "steps": model_card["train_steps"],
        "wall_s": model_card["train_wall_s"],
    }
    stages = [
        {
            "trained_by": p.get("command"),
            "recipe": (p.get("config") or {}).get("recipe"),
            "steps": (p.get("training") or {}).get("steps"),
            "wall_s": (p.get("training") or {}).get("wall_s"),
        }
        for p in priors
    ] + [last]
    first = priors[0].get("training") or {}
    return {
        **model_card,
        "reached_90pct_at_1k": first.get("reached_90pct_at_1k"),  # from scratch, not within the continuation
        "training_stages": stages,
        "train_steps": sum(s["steps"] or 0 for s in stages),
        "train_wall_s": sum(s["wall_s"] or 0.0 for s in stages),
    }


def t2l_card(evaluation: dict[str, Any], commit: str, name: str) -> dict[str, Any]:
    """The model card of a Text-to-LoRA from its ``t2l_shipped_eval.py`` JSON (which holds the training record)."""
    training = evaluation.get("training") or {}
    summary = evaluation.get("summary") or {}
    return {
        "name": name,
        "kind": "text-to-lora",
        "base_model": "smollm2-135m-instruct",
        "trained_by": training.get("command"),
        "recipe": training.get("recipe"),
        "commit": commit,
        "train_steps": training.get("steps"),
        "train_wall_s": training.get("wall_s"),
        "evaluated_by": evaluation.get("command"),
        "results": {
            group: {
                "exact_match": s.get("exact_match"),
                "t2l_minus": s.get("t2l_minus"),
                "tasks": s.get("tasks"),
            }
            for group, s in summary.items()
        },
        "evaluation": evaluation.get("config"),
        "environment": evaluation.get("environment"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model dir written by save_pretrained")
    p.add_argument("--name", required=True, help="shipped name, e.g. d2l-smollm2-niah")
    p.add_argument("--kind", choices=["d2l", "t2l"], default="d2l")
    p.add_argument("--train-result", help="d2l: the benchmarks/niah.py --train-only JSON")
    p.add_argument(
        "--eval-result",
        required=True,
        help="d2l: the niah.py --eval-only JSON; t2l: the t2l_shipped_eval.py JSON",
    )
    p.add_argument(
        "--prior-train-result",
        action="append",
        default=[],
        help="d2l: the --train-only JSON of an earlier stage this run continued from (init_from); repeatable, oldest first",
    )
    p.add_argument("--commit", default=None, help="commit the training ran at (default: HEAD)")
    args = p.parse_args()
    evaluation = json.loads(Path(args.eval_result).read_text())
    commit = args.commit or git_head()
    if args.kind == "t2l":
        model_card = t2l_card(evaluation, commit, args.name)
    else:
        if not args.train_result:
            p.error("--kind d2l needs --train-result")
        model_card = card(json.loads(Path(args.train_result).read_text()), evaluation, commit, args.name)
        if args.prior_train_result:
            model_card = with_prior_stages(
                model_card, [json.loads(Path(f).read_text()) for f in args.prior_train_result]
            )
    dest = ship(args.model, args.name, model_card)
    size = sum(f.stat().st_size for f in dest.iterdir())
    print(f"shipped {dest} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
