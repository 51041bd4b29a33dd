"""Put NIAH training runs side by side: the 1K exact-match curve against steps and training minutes, and each run's
final exact match per bin, in one JSON and one PNG.

    python benchmarks/niah_compare.py --name niah_cpu_encoder_comparison \\
        --run "SmolLM2 encoder (same model)=benchmarks/results/niah_cpu_train.json" \\
        --run "Gemma-3-270M encoder, early exit=benchmarks/results/niah_cpu_gemma3_encoder_train.json" \\
                                              "=benchmarks/results/niah_cpu_gemma3_encoder.json"

A ``--run`` is ``LABEL=TRAIN_JSON`` or ``LABEL=TRAIN_JSON=EVAL_JSON``: the curve comes from the ``--train-only``
JSON of ``niah.py``, the per-bin numbers from its ``--eval-only`` JSON (when given). Reads results only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common import RESULTS, write_result


def load_run(spec: str) -> dict[str, Any]:
    """One run from ``LABEL=TRAIN_JSON[=EVAL_JSON]``: its 1K curve, steps, minutes and (optional) bins."""
    label, _, paths = spec.partition("=")
    train_path, _, eval_path = paths.partition("=")
    if not label or not train_path:
        raise SystemExit(f"--run {spec!r}: give LABEL=TRAIN_JSON or LABEL=TRAIN_JSON=EVAL_JSON.")
    training = json.loads(Path(train_path).read_text())["training"]
    run: dict[str, Any] = {
        "label": label,
        "train_json": train_path,
        "steps": training["steps"],
        "train_minutes": round(training["wall_s"] / 60, 1),
        "curve_1k": [
            {
                "step": p["step"],
                "minutes": round(p["train_wall_s"] / 60, 1),
                "accuracy": p["accuracy"],
                "n": p["n"],
            }
            for p in training["eval_curve_1k"]
        ],
    }
    first = next((p for p in run["curve_1k"] if p["accuracy"] >= 0.8), None)
    run["first_0.8_at_1k"] = first
    if eval_path:
        evaluation = json.loads(Path(eval_path).read_text())
        run["eval_json"] = eval_path
        run["bins"] = {b["bin"]: round(b["accuracy"], 3) for b in evaluation["niah"]}
        run["haystacks_per_bin"] = evaluation["niah"][0]["n"]
        if evaluation.get("chunk_health"):
            run["chunk_health"] = round(evaluation["chunk_health"]["ratio"], 3)
    return run


def plot(path: Path, runs: list[dict[str, Any]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run in runs:
        xs = [p["step"] for p in run["curve_1k"]]
        ys = [p["accuracy"] for p in run["curve_1k"]]
        axes[0].plot(xs, ys, marker=".", label=run["label"])
        axes[1].plot([p["minutes"] for p in run["curve_1k"]], ys, marker=".", label=run["label"])
    for ax, x in zip(axes, ("training step", "training minutes (2 CPU cores)")):
        ax.set_xlabel(x)
        ax.set_ylabel("NIAH exact match at 1K tokens")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", action="append", required=True, help="LABEL=TRAIN_JSON[=EVAL_JSON] (repeatable)")
    p.add_argument("--name", required=True, help="result name: <out-dir>/<name>.json and .png")
    p.add_argument("--title", default="Doc-to-LoRA NIAH: context encoder = target vs another model")
    p.add_argument(
        "--out-dir", default=str(RESULTS), help="where the JSON and PNG go (default benchmarks/results)"
    )
    args = p.parse_args()
    runs = [load_run(spec) for spec in args.run]
    command = "python benchmarks/niah_compare.py " + " ".join(f"--run {spec!r}" for spec in args.run)
    path = write_result(args.name, {"command": f"{command} --name {args.name}", "runs": runs}, args.out_dir)
    plot(Path(args.out_dir) / f"{args.name}.png", runs, args.title)
    for run in runs:
        first = run["first_0.8_at_1k"]
        reached = (
            f"0.8 at 1K at step {first['step']} ({first['minutes']} min)" if first else "never 0.8 at 1K"
        )
        bins = ", ".join(f"{k}: {v:.2f}" for k, v in run.get("bins", {}).items())
        print(f"{run['label']}: {run['steps']} steps in {run['train_minutes']} min, {reached}; {bins}")
    print(path)


if __name__ == "__main__":
    main()
