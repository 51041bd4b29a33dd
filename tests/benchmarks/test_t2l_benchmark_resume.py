"""The fair T2L benchmark's resume bookkeeping (``benchmarks/t2l_zero_shot.py --work-dir``), without models."""

from __future__ import annotations

import argparse
import json

import pytest

from t2l_zero_shot import Bench, Paused


def bench(tmp_path, seed: int = 0, max_stages: int | None = None) -> Bench:
    args = argparse.Namespace(
        examples_per_seen_task=None, cpu=True, time_budget=None, task_encoder="base", work_dir=str(tmp_path),
        seed=seed, max_stages=max_stages, ckpt_every=10,
    )  # fmt: skip
    b = Bench(args, "smoke")
    # what setup() derives from the corpus, fixed here
    b.pool, b.steps = ["a", "b", "c"], 2
    b.groups = {"seen": ["a"], "held_out": ["z"]}
    return b


def test_state_round_trip_continues_the_run(tmp_path):
    first = bench(tmp_path)
    first.runs["oracle"] = {"steps": 2, "max_steps": 2, "stopped_by": "max_steps"}
    first.record("base", "a", [1.0, 0.0], [0.5, 0.7])
    first.partial["multitask"] = {"curve": [[1, 3.0, 0.5]], "wall_s": 0.5, "steps": 1}
    first.save_state()
    assert json.loads((tmp_path / "state.json").read_text())["runs"]["oracle"]["steps"] == 2
    assert not list(tmp_path.glob("*.tmp"))  # written atomically

    again = bench(tmp_path)
    again.load_state()
    assert again.runs == first.runs and again.partial == first.partial
    assert again.evaluated_task("base", "a") and not again.evaluated_task("base", "z")
    assert not again.evaluated("base")  # held-out task z not scored yet
    assert again.elapsed() >= again.prior_elapsed > 0.0


def test_a_work_dir_of_another_configuration_is_refused(tmp_path, capsys):
    bench(tmp_path, seed=0).save_state()
    other = bench(tmp_path, seed=1)
    with pytest.raises(SystemExit) as exit_info:
        other.load_state()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "differs in seed" in err and err.count("\n") == 1


def test_max_stages_pauses_after_that_many_stages(tmp_path):
    b = bench(tmp_path, max_stages=2)
    b.stage_done()
    with pytest.raises(Paused, match="max-stages 2"):
        b.stage_done()
    assert (tmp_path / "state.json").is_file()
