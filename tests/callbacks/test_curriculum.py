"""NeedleCurriculum: the needle-only probability ramps linearly and reaches the training dataset."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lora_hyper.callbacks.curriculum import NeedleCurriculum


def test_ramp_values():
    cb = NeedleCurriculum(start=1.0, end=0.2, steps=100)
    assert cb.value(0) == 1.0
    assert cb.value(50) == pytest.approx(0.6)
    assert cb.value(100) == pytest.approx(0.2)
    assert cb.value(10_000) == pytest.approx(0.2)


def test_sets_dataset_and_datamodule():
    dataset = SimpleNamespace(needle_only_prob=0.0)
    trainer = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset, num_workers=0),
        global_step=25,
        datamodule=SimpleNamespace(needle_only_prob=0.0),
    )
    logged = {}
    module = SimpleNamespace(log=lambda k, v, **kw: logged.__setitem__(k, v))
    NeedleCurriculum(1.0, 0.0, 100).on_train_batch_start(trainer, module, None, 0)
    assert dataset.needle_only_prob == pytest.approx(0.75)
    assert trainer.datamodule.needle_only_prob == pytest.approx(0.75)
    assert logged["train/needle_only_prob"] == pytest.approx(0.75)


def test_errors():
    with pytest.raises(ValueError, match="start must be in"):
        NeedleCurriculum(start=1.5)
    trainer = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=object(), num_workers=0), global_step=0
    )
    with pytest.raises(ValueError, match="needle_only_prob attribute"):
        NeedleCurriculum().on_train_batch_start(trainer, None, None, 0)
    trainer.train_dataloader = SimpleNamespace(dataset=SimpleNamespace(needle_only_prob=0.0), num_workers=2)
    with pytest.raises(ValueError, match="num_workers=0"):
        NeedleCurriculum().on_train_batch_start(trainer, None, None, 0)


def test_after_reading_holds_the_start_until_the_module_reads():
    dataset = SimpleNamespace(needle_only_prob=0.0)
    trainer = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset, num_workers=0), global_step=300, datamodule=None
    )
    module = SimpleNamespace(log=lambda *a, **kw: None, loss=SimpleNamespace(read_loss=1.5), read_step=None)
    cb = NeedleCurriculum(1.0, 0.0, 100, after_reading=True)
    cb.on_train_batch_start(trainer, module, None, 0)
    assert dataset.needle_only_prob == 1.0  # not read yet: the start value, however late
    module.read_step = 250
    cb.on_train_batch_start(trainer, module, None, 0)
    assert dataset.needle_only_prob == pytest.approx(0.5)  # 50 steps into the ramp
    module.loss.read_loss = 0.0
    with pytest.raises(ValueError, match="reading trigger"):
        cb.setup(trainer, module, "fit")
