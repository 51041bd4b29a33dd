"""Text-to-LoRA benchmark report: group means, the issue's targets as booleans, the printed table and the bar chart."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

BASELINES = ("base", "base_with_description", "base_3shot", "multitask", "oracle")


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
    rng = random.Random(seed)
    diffs = {t: [x - y for x, y in zip(a[t], b[t])] for t in a}
    point = sum(sum(d) / len(d) for d in diffs.values()) / len(diffs)
    stats = []
    for _ in range(n_boot):
        total = 0.0
        for d in diffs.values():
            total += sum(d[rng.randrange(len(d))] for _ in d) / len(d)
        stats.append(total / len(diffs))
    stats.sort()
    return {"mean": point, "lo": stats[int(0.025 * n_boot)], "hi": stats[int(0.975 * n_boot) - 1]}


def _mean_over(scores: dict[str, float], names: list[str]) -> float | None:
    values = [scores[n] for n in names if n in scores]
    return sum(values) / len(values) if values else None


def targets(
    scores: dict[str, dict[str, float]],
    groups: dict[str, list[str]],
    t2l_methods: list[str],
    flops_ratio: float | None,
    primary: str = "t2l_sft_L",
) -> dict[str, Any]:
    """The issue's three targets, evaluated on what was measured (``None`` where a side is missing)."""
    held = groups["held_out"]
    per_method: dict[str, dict[str, Any]] = {}
    for m in t2l_methods:
        if m not in scores:
            continue
        entry: dict[str, Any] = {}
        t2l_held = _mean_over(scores[m], held)
        desc = _mean_over(scores.get("base_with_description", {}), held)
        multi = _mean_over(scores.get("multitask", {}), held)
        if t2l_held is not None and desc is not None and multi is not None:
            entry["beats_description_and_multitask_on_held_out"] = bool(t2l_held > desc and t2l_held > multi)
        else:
            entry["beats_description_and_multitask_on_held_out"] = None
        oracle = scores.get("oracle", {})
        both = [n for n in groups["seen"] if n in oracle and n in scores[m]]
        if both:
            gap = 100 * (_mean_over(oracle, both) - _mean_over(scores[m], both))  # type: ignore[operator]
            entry["seen_gap_to_oracle_points"] = gap
            entry["within_2_points_of_oracle_on_seen"] = bool(gap <= 2.0)
            entry["seen_tasks_compared"] = both
        else:
            entry["within_2_points_of_oracle_on_seen"] = None
        per_method[m] = entry
    primary_entry = per_method.get(primary, {})
    sft = [m for m in per_method if m.startswith("t2l_sft")]
    return {
        "primary_method": primary,
        "t2l_sft_beats_base_with_description_and_multitask_on_held_out": primary_entry.get(
            "beats_description_and_multitask_on_held_out"
        ),
        "any_t2l_sft_beats_base_with_description_and_multitask_on_held_out": (
            any(per_method[m]["beats_description_and_multitask_on_held_out"] for m in sft)
            if sft
            and all(per_method[m]["beats_description_and_multitask_on_held_out"] is not None for m in sft)
            else None
        ),
        "t2l_within_2_points_of_oracle_on_seen": primary_entry.get("within_2_points_of_oracle_on_seen"),
        "adapter_generation_at_least_4x_fewer_flops_than_3shot_per_query": (
            None if flops_ratio is None else bool(flops_ratio >= 4.0)
        ),
        "flops_ratio_3shot_per_query_over_adapter": flops_ratio,
        "per_method": per_method,
    }


def summary_table(means: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of exact match (percent) per method on held-out and seen tasks."""

    def pct(v: Any) -> str:
        return "   -  " if v is None else f"{100 * v:6.1f}"

    lines = [f"{'method':<24} {'held-out':>9} {'seen':>9}", "-" * 44]
    for method, row in means.items():
        lines.append(f"{method:<24} {pct(row.get('held_out')):>9} {pct(row.get('seen')):>9}")
    return "\n".join(lines)


def plot(means: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bar chart: mean exact match per method on held-out and on seen tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(means)
    x = range(len(methods))
    width = 0.4
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(methods) + 2), 4.2))
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
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
