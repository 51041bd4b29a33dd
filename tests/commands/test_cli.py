"""The lora-hyper CLI: LightningCLI subcommands with a toy module, omegaconf+ overrides, inference dispatch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lora_hyper.cli import COMMANDS, main

RECIPE = """
# lora-hyper fit --config toy.yaml
seed_everything: 0
trainer:
  max_steps: 4
  accelerator: cpu
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  default_root_dir: {root}
model:
  class_path: helpers.toy.ToyRegression
  init_args:
    hidden: 4
    lr: 0.05
data:
  class_path: helpers.toy.ToyData
  init_args:
    batch_size: 8
    n: ${{...model.init_args.hidden}}
"""


@pytest.fixture
def recipe(tmp_path, monkeypatch) -> Path:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1]))
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE.format(root=tmp_path))
    return path


def test_print_config_interpolation_follows_overrides(recipe, capsys):
    with pytest.raises(SystemExit) as e:
        main(["fit", "--config", str(recipe), "--model.init_args.hidden=16", "--print_config"])
    assert e.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["init_args"]["hidden"] == 16
    assert cfg["data"]["init_args"]["n"] == 16  # the override reached the interpolated value


@pytest.mark.parametrize(
    ("command", "metric"),
    [("fit", "train_loss"), ("validate", "val_loss"), ("test", "test_loss"), ("predict", "n_predicted")],
)
def test_trainer_commands_run(recipe, command, metric):
    from helpers.toy import ToyRegression

    ToyRegression.RUNS.clear()
    assert main([command, "--config", str(recipe)]) == 0
    (stage, step, metrics), *_ = ToyRegression.RUNS
    assert stage == command and len(ToyRegression.RUNS) == 1
    assert step == (4 if command == "fit" else 0)  # fit ran max_steps; the others train nothing
    assert metric in metrics and metrics[metric] == metrics[metric]  # present and not NaN
    if command == "predict":
        assert metrics["n_predicted"] == 4  # the ToyData rows (n = hidden = 4)


def test_unknown_key_is_rejected(recipe, capsys):
    assert main(["fit", "--config", str(recipe), "--model.init_args.hiddn=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "hiddn" in err and len(err.splitlines()) == 1, err


def test_usage_lists_all_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in ["fit", "validate", "test", "predict", *COMMANDS]:
        assert name in out


@pytest.mark.slow
def test_python_dash_m_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "lora_hyper", "--help"], capture_output=True, text=True, check=True
    )
    assert "internalize" in out.stdout and "fit" in out.stdout
