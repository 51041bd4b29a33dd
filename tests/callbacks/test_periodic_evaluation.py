"""The schedule shared by the evaluation callbacks (callbacks/periodic.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lora_hyper.callbacks import PeriodicEvaluation


class _Counting(PeriodicEvaluation):
    def __init__(self, every_n_steps: int, **kwargs) -> None:
        super().__init__(every_n_steps, **kwargs)
        self.steps: list[int] = []

    def on_evaluation_due(self, trainer, pl_module) -> None:
        self.steps.append(self.mark(trainer))
        self.log_metrics(trainer, {"probe/value": float(trainer.global_step)})


class _Logger:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics, step):
        self.logged.append((step, dict(metrics)))


def _trainer(**kwargs):
    return SimpleNamespace(
        global_step=0,
        loggers=[_Logger()],
        callback_metrics={},
        log_dir=None,
        default_root_dir="root",
        **kwargs,
    )


def test_runs_every_n_steps_once_per_step_and_never_at_step_zero():
    callback, trainer = _Counting(every_n_steps=3), _trainer()
    for step in [0, 1, 2, 3, 3, 4, 5, 6, 6, 7]:  # a step repeats under gradient accumulation
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, None, None, 0)
    assert callback.steps == [3, 6]
    assert trainer.loggers[0].logged == [(3, {"probe/value": 3.0}), (6, {"probe/value": 6.0})]
    assert float(trainer.callback_metrics["probe/value"]) == 6.0
    assert callback.evaluated_now(trainer) is False  # step 7
    trainer.global_step = 6
    assert callback.evaluated_now(trainer) is True


def test_zero_means_never_during_training():
    callback, trainer = _Counting(every_n_steps=0), _trainer()
    for step in range(1, 20):
        trainer.global_step = step
        callback.on_train_batch_end(trainer, None, None, None, 0)
    assert callback.steps == []


def test_output_path_falls_back_to_log_dir_then_root(tmp_path):
    assert str(_Counting(1, output_dir=str(tmp_path)).output_path(_trainer())) == str(tmp_path)
    assert str(_Counting(1).output_path(_trainer())) == "root"
    trainer = _trainer()
    trainer.log_dir = "logs"
    assert str(_Counting(1).output_path(trainer)) == "logs"


def test_bad_schedule_and_missing_evaluation_are_refused():
    with pytest.raises(ValueError, match="every_n_steps must be >= 0"):
        _Counting(every_n_steps=-1)
    with pytest.raises(ValueError, match="every_n_steps must be >= 1"):
        PeriodicEvaluation.__init__(_Counting(1), every_n_steps=0, min_every_n_steps=1)
    with pytest.raises(TypeError, match="abstract"):
        PeriodicEvaluation()  # type: ignore[abstract]
