"""benchmarks/niah_compare.py: runs read from niah.py's train/eval JSONs, the first 0.8 at 1K, a JSON and a PNG."""

from __future__ import annotations

import json
import sys

import niah_compare
import pytest


def _write(path, payload):
    path.write_text(json.dumps(payload))
    return str(path)


def test_runs_side_by_side(tmp_path, monkeypatch):
    curve = [
        {"step": 100, "train_wall_s": 120.0, "accuracy": 0.0, "n": 10},
        {"step": 200, "train_wall_s": 240.0, "accuracy": 0.8, "n": 10},
    ]
    train = _write(tmp_path / "t.json", {"training": {"steps": 200, "wall_s": 240.0, "eval_curve_1k": curve}})
    flat = _write(
        tmp_path / "flat.json", {"training": {"steps": 100, "wall_s": 60.0, "eval_curve_1k": curve[:1]}}
    )
    niah = [{"bin": "1024", "accuracy": 0.9, "n": 20}, {"bin": "4096", "accuracy": 0.85, "n": 20}]
    evaluation = _write(tmp_path / "e.json", {"niah": niah, "chunk_health": {"ratio": 0.5}})

    run = niah_compare.load_run(f"A={train}={evaluation}")
    assert run["label"] == "A" and run["train_minutes"] == 4.0
    assert run["first_0.8_at_1k"] == {"step": 200, "minutes": 4.0, "accuracy": 0.8, "n": 10}
    assert run["bins"] == {"1024": 0.9, "4096": 0.85} and run["chunk_health"] == 0.5
    assert niah_compare.load_run(f"flat={flat}")["first_0.8_at_1k"] is None

    monkeypatch.setattr(sys, "argv", ["niah_compare.py", "--name", "cmp", "--out-dir", str(tmp_path),
                                      "--run", f"A={train}={evaluation}", "--run", f"flat={flat}"])  # fmt: skip
    niah_compare.main()
    result = json.loads((tmp_path / "cmp.json").read_text())
    assert [r["label"] for r in result["runs"]] == ["A", "flat"] and (tmp_path / "cmp.png").stat().st_size > 0
    with pytest.raises(SystemExit, match="LABEL=TRAIN_JSON"):
        niah_compare.load_run("no-equals-sign")
