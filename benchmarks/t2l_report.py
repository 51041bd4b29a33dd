"""Text-to-LoRA benchmark report: matched budgets, paired bootstrap comparisons, the issue's targets, tables, chart.

Pure Python (``answer_ce`` imports torch when called), so the statistics are testable without a model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

BASELINES = (
    "base",
    "base_with_description",
    "base_3shot",
    "multitask",
    "multitask_with_description",
    "oracle",
)
# Issue 10's targets: seen tasks, T2L (reconstruction and SFT) within 2 points of the oracle adapters' mean exact
# match, the interval saying so; held-out tasks, T2L-SFT beats base + description and the description-aware
# multi-task LoRA by >= 5 points, the interval excluding 0.
SEEN_MARGIN = 0.02
HELD_OUT_MARGIN = 0.05
HELD_OUT_RIVALS = ("base_with_description", "multitask_with_description")
SEEN_METHODS = ("t2l_recon_L", "t2l_sft_L")
PRIMARY_SFT = "t2l_sft_L"


# ------------------------------------------------------------------------------------------------ budgets
def matched_steps(examples_per_task: int, n_tasks: int, tasks_per_batch: int, rows_per_task: int) -> int:
    """Optimizer steps that give each of ``n_tasks`` tasks ``examples_per_task`` training examples in expectation,
    when every step draws ``min(tasks_per_batch, n_tasks)`` distinct tasks uniformly, ``rows_per_task`` rows each."""
    if min(examples_per_task, n_tasks, tasks_per_batch, rows_per_task) < 1:
        raise ValueError("examples_per_task, n_tasks, tasks_per_batch and rows_per_task must all be >= 1.")
    per_step = min(tasks_per_batch, n_tasks) * rows_per_task
    return max(1, -(-examples_per_task * n_tasks // per_step))


def expected_examples_per_task(steps: int, n_tasks: int, tasks_per_batch: int, rows_per_task: int) -> float:
    """Training examples each task sees in expectation after ``steps`` steps (the inverse of ``matched_steps``)."""
    return steps * min(tasks_per_batch, n_tasks) * rows_per_task / n_tasks


def count_summary(counts: dict[str, int], tasks: Sequence[str]) -> dict[str, Any]:
    """Min / mean / max of per-task example counts over ``tasks`` (tasks never drawn count 0)."""
    values = [counts.get(t, 0) for t in tasks]
    if not values:
        return {"min": None, "mean": None, "max": None, "n_tasks": 0}
    return {"min": min(values), "mean": sum(values) / len(values), "max": max(values), "n_tasks": len(values)}


# ------------------------------------------------------------------------------------------------ task choice
def evenly_spaced(names: Sequence[str], n: int) -> list[str]:
    """``n`` names evenly spaced over the sorted ``names`` (all of them when ``n`` >= their count)."""
    names = sorted(names)
    if n >= len(names):
        return names
    if n <= 0:
        return []
    return [names[round(i * (len(names) - 1) / max(n - 1, 1))] for i in range(n)]


def pick_seen(corpus: Any, n: int) -> list[str]:
    """``n`` seen (not held-out) tasks of ``corpus``, evenly spaced over the sorted names (deterministic)."""
    held = set(corpus.held_out_tasks)
    return evenly_spaced([t for t in corpus.tasks if t not in held], n)


# ------------------------------------------------------------------------------------------------ statistics
def task_means(per_example: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """``{method: {task: mean}}`` of per-example scores."""
    return {m: {t: sum(v) / len(v) for t, v in tasks.items() if v} for m, tasks in per_example.items()}


def group_means(
    scores: dict[str, dict[str, float]], groups: dict[str, list[str]]
) -> dict[str, dict[str, Any]]:
    """``{method: {"held_out": mean, "seen": mean, "n_held_out": k, "n_seen": k}}`` over the tasks scored."""
    out: dict[str, dict[str, Any]] = {}
    for method, per_task in scores.items():
        row: dict[str, Any] = {}
        for group, names in groups.items():
            values = [per_task[n] for n in names if n in per_task]
            row[group] = sum(values) / len(values) if values else None
            row[f"n_{group}"] = len(values)
        out[method] = row
    return out


def paired_bootstrap(
    a: dict[str, list[float]], b: dict[str, list[float]], n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of (a - b) over tasks (each task's examples weighted equally) and its 95% percentile interval,
    resampling examples within every task."""
    import numpy as np

    rng = np.random.default_rng(seed)
    diffs = [np.asarray(a[t], dtype=np.float64) - np.asarray(b[t], dtype=np.float64) for t in a]
    point = float(np.mean([d.mean() for d in diffs]))
    stats = np.zeros(n_boot)
    for d in diffs:  # vectorised over draws: n_boot x len(d) indices per task
        stats += d[rng.integers(0, len(d), size=(n_boot, len(d)))].mean(axis=1)
    stats = np.sort(stats / len(diffs))
    return {
        "mean": point,
        "lo": float(stats[int(0.025 * n_boot)]),
        "hi": float(stats[int(0.975 * n_boot) - 1]),
    }


def compare(
    per_example: dict[str, dict[str, list[float]]],
    groups: dict[str, list[str]],
    methods: Sequence[str],
    baselines: Sequence[str] = BASELINES,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{method: {baseline: {group: {mean, lo, hi, n_tasks, n_examples}}}}``: paired bootstrap of method minus
    baseline over the group's tasks both were scored on (paired by test example; examples resampled per task)."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for m in methods:
        if m not in per_example:
            continue
        for b in baselines:
            if b not in per_example or b == m:
                continue
            for group, names in groups.items():
                both = [t for t in names if per_example[m].get(t) and per_example[b].get(t)]
                if not both:
                    continue
                for t in both:
                    if len(per_example[m][t]) != len(per_example[b][t]):
                        raise ValueError(
                            f"{m} and {b} scored {len(per_example[m][t])} and {len(per_example[b][t])} examples of "
                            f"{t!r}: a paired comparison needs the same test examples."
                        )
                stats = paired_bootstrap(
                    {t: per_example[m][t] for t in both}, {t: per_example[b][t] for t in both}, n_boot, seed
                )
                stats.update(n_tasks=len(both), n_examples=sum(len(per_example[m][t]) for t in both))
                out.setdefault(m, {}).setdefault(b, {})[group] = stats
    return out


def _get(comparisons: dict[str, Any], method: str, baseline: str, group: str) -> dict[str, Any] | None:
    return comparisons.get(method, {}).get(baseline, {}).get(group)


def within_oracle(c: dict[str, Any] | None, margin: float = SEEN_MARGIN) -> bool | None:
    """Seen target for one method: the 95% interval of (T2L - oracle) lies above ``-margin`` (None: unmeasured)."""
    return None if c is None else bool(c["lo"] >= -margin)


def beats_by(c: dict[str, Any] | None, margin: float = HELD_OUT_MARGIN) -> bool | None:
    """Held-out target against one baseline: mean gain >= ``margin`` and the interval excludes 0."""
    return None if c is None else bool(c["mean"] >= margin and c["lo"] > 0.0)


def _all(values: list[bool | None]) -> bool | None:
    return None if not values or any(v is None for v in values) else all(values)


def targets(
    comparisons: dict[str, Any],
    t2l_methods: Sequence[str],
    seen_methods: Sequence[str] = SEEN_METHODS,
    primary_sft: str = PRIMARY_SFT,
) -> dict[str, Any]:
    """Issue 10's two targets from exact-match ``compare`` output (``None`` where a side was not measured).

    seen: every method of ``seen_methods`` (T2L by reconstruction and by SFT) has the 95% interval of its
    exact match minus the oracles' on the seen tasks above -2 points. held_out: ``primary_sft`` beats
    base + description and the description-aware multi-task LoRA by >= 5 points with the interval above 0.
    """
    seen_rows = {
        m: {
            "t2l_minus_oracle": _get(comparisons, m, "oracle", "seen"),
            "met": within_oracle(_get(comparisons, m, "oracle", "seen")),
        }
        for m in t2l_methods
    }
    held_rows = {}
    for m in t2l_methods:
        vs = {b: _get(comparisons, m, b, "held_out") for b in HELD_OUT_RIVALS}
        held_rows[m] = {
            "minus": vs,
            "met": _all([beats_by(c) for c in vs.values()]),
        }
    sft = [m for m in t2l_methods if m.startswith("t2l_sft")]
    seen_met = _all([seen_rows[m]["met"] if m in seen_rows else None for m in seen_methods])
    held_met = held_rows[primary_sft]["met"] if primary_sft in held_rows else None
    any_sft = [held_rows[m]["met"] for m in sft]
    return {
        "seen_t2l_within_2_points_of_oracle": seen_met,
        "held_out_t2l_sft_beats_description_baselines_by_5_points": held_met,
        "held_out_any_t2l_sft_variant_beats_description_baselines_by_5_points": (
            None if not any_sft or all(v is None for v in any_sft) else any(bool(v) for v in any_sft)
        ),
        "rules": {
            "seen": (
                f"for each of {list(seen_methods)}: lower end of the paired-bootstrap 95% interval of "
                f"(T2L - oracle) exact match on the seen tasks >= -{100 * SEEN_MARGIN:.0f} points"
            ),
            "held_out": (
                f"{primary_sft} - each of {list(HELD_OUT_RIVALS)} on the held-out tasks: mean >= "
                f"{100 * HELD_OUT_MARGIN:.0f} points and lower end of the 95% interval > 0"
            ),
        },
        "seen": seen_rows,
        "held_out": held_rows,
    }


# ------------------------------------------------------------------------------------------------ model helper
def answer_ce(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    responses: list[str],
    system: str | None = None,
    lora: Any = None,
    batch_size: int = 32,
) -> list[float]:
    """Teacher-forced mean token cross-entropy (no label smoothing) of each reference response given its
    chat-templated prompt, with ``lora`` (one adapter, or one per prompt) applied; the end-of-turn token counts."""
    import contextlib

    import torch

    from lora_hyper.data_modules.collate import collate_lm, lm_example
    from lora_hyper.lora import apply_lora
    from lora_hyper.losses import per_sample_ce

    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[float] = []
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            rows = [
                lm_example(tokenizer, p, r, system)
                for p, r in zip(prompts[i : i + batch_size], responses[i : i + batch_size])
            ]
            batch = {k: v.to(device) for k, v in collate_lm(rows, pad).items()}
            if lora is None:
                ctx: Any = contextlib.nullcontext()
            else:
                index = None if lora.batch_size == 1 else torch.arange(i, i + len(rows), device=device)
                ctx = apply_lora(model, lora.to(device), adapter_index=index)
            with ctx:
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            out += per_sample_ce(logits, batch["labels"]).tolist()
    return out


# ------------------------------------------------------------------------------------------------ output
def _pct(v: Any, width: int = 6) -> str:
    return " " * (width - 1) + "-" if v is None else f"{100 * v:{width}.1f}"


def _num(v: Any, width: int = 6) -> str:
    return " " * (width - 1) + "-" if v is None else f"{v:{width}.3f}"


def summary_table(means: dict[str, dict[str, Any]], ce_means: dict[str, dict[str, Any]] | None = None) -> str:
    """Plain-text table: exact match (percent) and, when given, test CE per method on held-out and seen tasks."""
    ce_means = ce_means or {}
    head = f"{'method':<28} {'EM held-out':>11} {'EM seen':>8}"
    if ce_means:
        head += f" {'CE held-out':>11} {'CE seen':>8}"
    lines = [head, "-" * len(head)]
    for method, row in means.items():
        line = f"{method:<28} {_pct(row.get('held_out')):>11} {_pct(row.get('seen')):>8}"
        if ce_means:
            ce = ce_means.get(method, {})
            line += f" {_num(ce.get('held_out')):>11} {_num(ce.get('seen')):>8}"
        lines.append(line)
    return "\n".join(lines)


def comparison_table(
    comparisons: dict[str, Any], metric: str = "exact match, points", scale: float = 100.0, digits: int = 1
) -> str:
    """Plain-text table of T2L minus baseline: mean [95% interval] per group (exact match in points by default;
    ``scale=1, digits=3`` for cross-entropy, where negative is better)."""
    head = f"{'T2L method - baseline (' + metric + ')':<52} {'held-out':>26} {'seen':>26}"
    lines = [head, "-" * len(head)]

    def cell(c: dict[str, Any] | None) -> str:
        if c is None:
            return "-"
        f = f"+.{digits}f"
        return f"{scale * c['mean']:{f}} [{scale * c['lo']:{f}}, {scale * c['hi']:{f}}]"

    for m, per_b in comparisons.items():
        for b, per_g in per_b.items():
            lines.append(
                f"{m + ' - ' + b:<52} {cell(per_g.get('held_out')):>26} {cell(per_g.get('seen')):>26}"
            )
    return "\n".join(lines)


def smoothed_curve(curve: Sequence[Sequence[float]], window: int = 25) -> tuple[list[float], list[float]]:
    """Steps and the trailing running mean (``window`` steps) of a ``[[step, loss, wall_s], ...]`` curve; a
    non-finite loss counts as missing."""
    import math

    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}.")
    steps, out, recent = [], [], []
    for point in curve:
        loss = float(point[1])
        recent = (recent + ([loss] if math.isfinite(loss) else []))[-window:]
        if recent:
            steps.append(float(point[0]))
            out.append(sum(recent) / len(recent))
    return steps, out


def plot(
    means: dict[str, dict[str, Any]],
    path: Path,
    title: str,
    training: dict[str, dict[str, Any]] | None = None,
    window: int = 25,
) -> Path:
    """Grouped bar chart of mean exact match per method on held-out and on seen tasks; with ``training`` (the
    result's per-method runs), a second panel with the training curves of the example-trained methods (running
    mean of ``window`` steps; they share one objective, unsmoothed CE, so the curves compare; reconstruction's L1
    on library factors is left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    curves = {
        m: run["curve"]
        for m, run in (training or {}).items()
        if isinstance(run, dict) and run.get("curve") and "library_tasks" not in run  # not reconstruction
    }
    methods = list(means)
    x = range(len(methods))
    width = 0.4
    bar_width = max(6.0, 0.9 * len(methods) + 2)
    if curves:
        fig, (ax, cax) = plt.subplots(
            1, 2, figsize=(bar_width + 6.0, 4.2), gridspec_kw={"width_ratios": [bar_width, 6.0]}
        )
    else:
        fig, ax = plt.subplots(figsize=(bar_width, 4.2))
    for k, (group, color) in enumerate((("held_out", "tab:blue"), ("seen", "tab:orange"))):
        values = [100 * (means[m].get(group) or 0.0) for m in methods]
        missing = [means[m].get(group) is None for m in methods]
        bars = ax.bar(
            [i + (k - 0.5) * width for i in x], values, width, label=group.replace("_", "-"), color=color
        )
        for bar, miss in zip(bars, missing):
            if miss:
                bar.set_alpha(0.0)
        labels = ["" if miss else f"{v:.0f}" for v, miss in zip(values, missing)]
        ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
    ax.set_xticks(list(x))
    ax.set_xticklabels(methods, rotation=30, ha="right")
    ax.set_ylabel("exact match (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend()
    if curves:
        for m, curve in curves.items():
            steps, mean = smoothed_curve(curve, window)
            if steps and min(mean) > 0:  # a log axis
                cax.plot(steps, mean, label=m, linewidth=1.2)
        cax.set_xlabel("training step (same example rows for every method)")
        cax.set_ylabel(f"training CE, running mean of {window} steps")
        cax.set_yscale("log")
        cax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        cax.yaxis.set_minor_formatter(matplotlib.ticker.ScalarFormatter())
        cax.tick_params(axis="y", which="minor", labelsize=7)
        cax.set_title("learning curves")
        cax.legend(fontsize=7)
        cax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def replot(result: Path, out: Path | None = None) -> Path:
    """Redraw a result JSON's chart (bars and learning curves) next to it, or at ``out``."""
    import json

    data = json.loads(Path(result).read_text(encoding="utf-8"))
    if "exact_match" not in (data.get("means") or {}):
        raise ValueError(
            f"{result}: no means.exact_match (written before the matched-budget benchmark): not redrawn."
        )
    size, device = data.get("size", "?"), (data.get("environment") or {}).get("device", "?")
    title = f"Text-to-LoRA, built-in corpus ({size}, {device})"
    return plot(
        data["means"]["exact_match"], out or Path(result).with_suffix(".png"), title, data.get("training")
    )


def between_runs(result: Path, reference: Path, n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every method scored in both runs: ``result`` minus ``reference``, paired by test example (e.g. one setting
    changed between two runs of the benchmark). Refused (ValueError) unless both scored the same tasks from the
    same evaluation descriptions, so the pairing holds."""
    import json

    runs = [json.loads(Path(p).read_text(encoding="utf-8")) for p in (result, reference)]
    for key in ("tasks", "eval_descriptions"):
        if runs[0].get(key) != runs[1].get(key):
            raise ValueError(
                f"{result} and {reference} differ in {key}: their scores are not paired by example."
            )
    groups = {g: runs[0]["tasks"][g] for g in ("seen", "held_out")}
    per_example = [r["per_example"]["exact_match"] for r in runs]
    out: dict[str, Any] = {}
    for method in sorted(set(per_example[0]) & set(per_example[1])):
        stats = compare(
            {"result": per_example[0][method], "reference": per_example[1][method]},
            groups, ["result"], ["reference"], n_boot, seed,
        ).get("result", {}).get("reference", {})  # fmt: skip
        if stats:
            out[method] = stats
    return {
        "result": str(result), "reference": str(reference),
        "complete": {"result": runs[0].get("complete"), "reference": runs[1].get("complete")},
        "exact_match_result_minus_reference": out,
    }  # fmt: skip


if __name__ == "__main__":
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        description="Redraw t2l_zero_shot result charts from their JSON, or compare two runs (--reference)."
    )
    parser.add_argument(
        "results", nargs="+", type=Path, help="t2l_zero_shot*.json files (PNG written beside)"
    )
    parser.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="instead: each result minus this run, per method scored in both, paired by test example",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="with --reference: write the comparison here (a .json path)"
    )
    args = parser.parse_args()
    if args.reference is not None:
        import json

        if len(args.results) != 1:
            print("t2l_report: --reference compares one result; give one JSON.", file=sys.stderr)
            sys.exit(2)
        if args.out is not None and args.out.suffix != ".json":
            print(f"t2l_report: --out {args.out}: give a path ending in .json.", file=sys.stderr)
            sys.exit(2)
        try:
            report = between_runs(args.results[0], args.reference)
        except (OSError, ValueError, KeyError) as e:
            print(f"t2l_report: {e}", file=sys.stderr)
            sys.exit(2)
        if args.out is not None:
            from common import write_result  # torch-importing, so only here

            print(f"wrote {write_result(args.out.stem, report, args.out.parent)}")
        else:
            print(json.dumps(report, indent=1))
        sys.exit(0)
    failed = 0
    for result in args.results:
        try:
            print(f"wrote {replot(result)}")
        except (OSError, ValueError, KeyError) as e:
            print(f"t2l_report: {e}", file=sys.stderr)
            failed += 1
    sys.exit(2 if failed else 0)
