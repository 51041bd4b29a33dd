"""The fair T2L benchmark's arithmetic: matched training budgets, paired bootstrap comparisons and issue 10's targets.

Pure Python: no model is loaded (``t2l_zero_shot`` is imported only for its size table).
"""

from __future__ import annotations

import random

import pytest

from t2l_report import (
    BASELINES,
    compare,
    count_summary,
    evenly_spaced,
    expected_examples_per_task,
    matched_steps,
    paired_bootstrap,
    targets,
)


# ------------------------------------------------------------------------------------------------ budgets
@pytest.mark.parametrize(
    "examples, tasks, per_batch, rows",
    [(150, 92, 8, 2), (200, 92, 32, 2), (40, 16, 8, 2), (2, 4, 4, 1), (150, 3, 8, 2), (7, 5, 2, 3)],
)
def test_matched_steps_give_at_least_the_target_and_less_than_one_step_more(examples, tasks, per_batch, rows):
    steps = matched_steps(examples, tasks, per_batch, rows)
    got = expected_examples_per_task(steps, tasks, per_batch, rows)
    assert got >= examples
    assert expected_examples_per_task(steps - 1, tasks, per_batch, rows) < examples or steps == 1


def test_matched_steps_known_values():
    assert matched_steps(150, 92, 8, 2) == 863  # 150 * 92 / 16 = 862.5
    assert matched_steps(200, 92, 32, 2) == 288  # 200 * 92 / 64 = 287.5
    assert matched_steps(2, 4, 4, 1) == 2
    assert matched_steps(150, 3, 8, 2) == 75  # only 3 tasks: every batch holds all of them
    with pytest.raises(ValueError):
        matched_steps(0, 92, 8, 2)


def test_sampled_counts_match_the_expectation():
    """Replaying a task-first sampler like the DataModule's gives ~the target examples per task."""
    tasks = [f"t{i}" for i in range(20)]
    steps = matched_steps(100, len(tasks), 4, 2)
    rng = random.Random(0)
    counts: dict[str, int] = {}
    for _ in range(steps):
        for t in rng.sample(tasks, 4):
            counts[t] = counts.get(t, 0) + 2
    s = count_summary(counts, tasks)
    assert s["n_tasks"] == 20 and s["mean"] == pytest.approx(expected_examples_per_task(steps, 20, 4, 2))
    assert s["min"] > 50 and s["max"] < 160
    assert count_summary({}, ["a"])["min"] == 0


def test_every_size_is_matched_by_construction():
    from t2l_zero_shot import SIZES, training_steps

    for name, cfg in SIZES.items():
        n_tasks = cfg["n_train_tasks"] or 92
        steps = training_steps(cfg, n_tasks)
        b = cfg["batch"]
        assert (
            expected_examples_per_task(steps, n_tasks, b["tasks_per_batch"], b["examples_per_task"])
            >= (cfg["examples_per_seen_task"])
        )
        if name in ("full", "cpu"):
            assert cfg["examples_per_seen_task"] >= 150
            assert cfg["test_examples_per_task"] is None  # all 40
        assert cfg["n_descriptions"] >= 2
        assert "L" in cfg["sft_heads"]


def test_evenly_spaced():
    names = [f"n{i:02d}" for i in range(10)]
    assert evenly_spaced(names, 3) == ["n00", "n04", "n09"]  # round(4.5) == 4
    assert evenly_spaced(names, 20) == names
    assert evenly_spaced(names, 0) == []


# ------------------------------------------------------------------------------------------------ bootstrap
def test_paired_bootstrap_identical_and_shifted():
    a = {"x": [1.0, 0.0, 1.0, 0.0], "y": [0.0, 0.0, 1.0, 1.0]}
    same = paired_bootstrap(a, a, n_boot=200)
    assert same == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    b = {t: [v - 0.1 for v in vals] for t, vals in a.items()}
    shifted = paired_bootstrap(a, b, n_boot=200)
    assert shifted["mean"] == pytest.approx(0.1) and shifted["lo"] == pytest.approx(0.1)


def _per_example(t2l_seen, oracle_seen, t2l_held, rival_held, n=40):
    """Exact-match lists: 2 seen and 2 held-out tasks, ``n`` examples each, with the given hit rates."""

    def hits(rate, seed):
        k = round(rate * n)
        row = [1.0] * k + [0.0] * (n - k)
        random.Random(seed).shuffle(row)
        return row

    groups = {"seen": ["s1", "s2"], "held_out": ["h1", "h2"]}
    pe: dict[str, dict[str, list[float]]] = {}
    for m in ("t2l_recon_L", "t2l_sft_L"):
        pe[m] = {t: hits(t2l_seen, f"{m}{t}") for t in groups["seen"]}
        pe[m].update({t: hits(t2l_held, f"{m}{t}") for t in groups["held_out"]})
    pe["oracle"] = {t: hits(oracle_seen, f"o{t}") for t in groups["seen"]}
    for b in ("base_with_description", "multitask_with_description", "base"):
        pe[b] = {t: hits(rival_held, f"{b}{t}") for t in groups["seen"] + groups["held_out"]}
    return pe, groups


def test_compare_pairs_only_tasks_both_methods_scored():
    pe, groups = _per_example(0.5, 0.5, 0.5, 0.5)
    c = compare(pe, groups, ["t2l_sft_L"], BASELINES, n_boot=100)
    assert set(c["t2l_sft_L"]) == {"base", "base_with_description", "multitask_with_description", "oracle"}
    assert set(c["t2l_sft_L"]["oracle"]) == {"seen"}  # no oracles on held-out tasks
    assert c["t2l_sft_L"]["oracle"]["seen"]["n_tasks"] == 2
    assert c["t2l_sft_L"]["oracle"]["seen"]["n_examples"] == 80
    pe["oracle"]["s1"] = pe["oracle"]["s1"][:-1]
    with pytest.raises(ValueError, match="same test examples"):
        compare(pe, groups, ["t2l_sft_L"], ["oracle"], n_boot=10)


def test_targets_met_when_t2l_matches_oracle_and_beats_rivals_clearly():
    pe, groups = _per_example(t2l_seen=0.9, oracle_seen=0.9, t2l_held=0.6, rival_held=0.1)
    t = targets(compare(pe, groups, ["t2l_recon_L", "t2l_sft_L"], n_boot=500), ["t2l_recon_L", "t2l_sft_L"])
    # equal hit rates but different examples: the interval of the gap straddles 0 and is wider than 2 points
    assert t["seen"]["t2l_sft_L"]["met"] is False
    assert t["held_out_t2l_sft_beats_description_baselines_by_5_points"] is True

    # identical per-example scores: a zero-width interval at 0 is within 2 points
    pe["oracle"] = {k: list(v) for k, v in pe["t2l_sft_L"].items() if k in groups["seen"]}
    pe["t2l_recon_L"] = {k: list(v) for k, v in pe["t2l_sft_L"].items()}
    t = targets(compare(pe, groups, ["t2l_recon_L", "t2l_sft_L"], n_boot=200), ["t2l_recon_L", "t2l_sft_L"])
    assert t["seen_t2l_within_2_points_of_oracle"] is True
    assert t["seen"]["t2l_recon_L"]["t2l_minus_oracle"]["lo"] == 0.0


def test_targets_not_met_when_gain_is_small_or_oracle_is_far_ahead():
    pe, groups = _per_example(t2l_seen=0.5, oracle_seen=0.9, t2l_held=0.125, rival_held=0.1)
    t = targets(compare(pe, groups, ["t2l_recon_L", "t2l_sft_L"], n_boot=500), ["t2l_recon_L", "t2l_sft_L"])
    assert t["seen_t2l_within_2_points_of_oracle"] is False
    assert t["held_out_t2l_sft_beats_description_baselines_by_5_points"] is False  # +2.5 points < 5
    assert t["held_out"]["t2l_sft_L"]["minus"]["base_with_description"]["mean"] == pytest.approx(0.025)


def test_targets_unmeasured_sides_are_none():
    pe, groups = _per_example(0.5, 0.5, 0.5, 0.1)
    del pe["multitask_with_description"]
    del pe["t2l_recon_L"]
    t = targets(compare(pe, groups, ["t2l_sft_L"], n_boot=100), ["t2l_sft_L"])
    assert t["held_out_t2l_sft_beats_description_baselines_by_5_points"] is None  # one rival missing
    assert t["seen_t2l_within_2_points_of_oracle"] is None  # reconstruction not measured
    assert targets({}, [])["held_out_any_t2l_sft_variant_beats_description_baselines_by_5_points"] is None


# ------------------------------------------------------------------------------------------------ chart
def test_smoothed_curve_is_a_trailing_running_mean():
    from t2l_report import smoothed_curve

    curve = [[1, 4.0, 0.1], [2, 2.0, 0.2], [3, 6.0, 0.3], [4, 0.0, 0.4]]
    steps, mean = smoothed_curve(curve, window=2)
    assert steps == [1.0, 2.0, 3.0, 4.0]
    assert mean == pytest.approx([4.0, 3.0, 4.0, 3.0])
    steps, mean = smoothed_curve([[1, 2.0, 0], [2, float("nan"), 0], [3, 4.0, 0]], window=2)
    assert steps == [1.0, 2.0, 3.0] and mean == pytest.approx([2.0, 2.0, 3.0])  # NaN skipped, not spread
    with pytest.raises(ValueError, match="window"):
        smoothed_curve([[1, 1.0, 0]], window=0)


def test_replot_draws_bars_and_learning_curves_from_a_result(tmp_path):
    import json

    from t2l_report import replot

    means = {"oracle": {"seen": 0.4, "held_out": None}, "t2l_sft_L": {"seen": 0.3, "held_out": 0.05}}
    curve = [[i, 5.0 / i, i * 1.0] for i in range(1, 40)]
    result = {
        "size": "smoke",
        "environment": {"device": "cpu"},
        "means": {"exact_match": means},
        "training": {
            "oracle": {"curve": curve},
            "t2l_sft_L": {"curve": curve},
            "t2l_recon_L": {"curve": curve},
        },
    }
    path = tmp_path / "r.json"
    path.write_text(json.dumps(result))
    png = replot(path)
    assert png == tmp_path / "r.png" and png.stat().st_size > 0
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"means": {"seen": {}}}))
    with pytest.raises(ValueError, match="no means.exact_match"):
        replot(old)


def test_between_runs_pairs_every_shared_method_by_example_and_refuses_unpaired_runs(tmp_path):
    import json

    from t2l_report import between_runs

    tasks = {"seen": ["a", "b"], "held_out": ["z"], "train_pool": ["a", "b"]}
    descriptions = {"a": ["do a"], "b": ["do b"], "z": ["do z"]}

    def run(name, scores, complete=True, eval_descriptions=descriptions):
        path = tmp_path / f"{name}.json"
        result = {
            "complete": complete, "tasks": tasks, "eval_descriptions": eval_descriptions,
            "per_example": {"exact_match": scores},
        }  # fmt: skip
        path.write_text(json.dumps(result))
        return path

    before = run("before", {
        "t2l_sft_L": {"a": [0, 0, 1, 1], "b": [1, 1, 1, 1], "z": [0, 0]},
        "oracle": {"a": [1, 1, 1, 1], "b": [1, 1, 1, 1]},
    })  # fmt: skip
    after = run("after", {
        "t2l_sft_L": {"a": [1, 1, 1, 1], "b": [1, 1, 1, 1], "z": [0, 1]},
        "t2l_recon_L": {"a": [0, 0, 0, 0], "b": [0, 0, 0, 0], "z": [0, 0]},
    }, complete=False)  # fmt: skip
    report = between_runs(after, before)
    diff = report["exact_match_result_minus_reference"]
    assert set(diff) == {"t2l_sft_L"}  # only methods scored in both runs
    assert diff["t2l_sft_L"]["seen"]["mean"] == pytest.approx(0.25)  # (+0.5 on a, 0 on b) / 2 tasks
    assert diff["t2l_sft_L"]["held_out"]["mean"] == pytest.approx(0.5)
    assert diff["t2l_sft_L"]["seen"]["lo"] <= 0.25 <= diff["t2l_sft_L"]["seen"]["hi"]
    assert report["complete"] == {"result": False, "reference": True}
    other = run(
        "other", {"t2l_sft_L": {"a": [0] * 4, "b": [0] * 4, "z": [0, 0]}}, eval_descriptions={"a": ["x"]}
    )
    with pytest.raises(ValueError, match="eval_descriptions"):
        between_runs(other, before)
