"""benchmarks/t2l_description_probe.py: a linear probe and nearest-neighbour confusions on description embeddings."""

from __future__ import annotations

import t2l_description_probe as probe
import torch


def _clusters(n_per: int, spread: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(4, 16) * 5
    x = torch.cat([c + spread * torch.randn(n_per, 16, generator=g) for c in centres])
    return x, torch.arange(4).repeat_interleave(n_per)


def test_separable_tasks_are_read_and_overlapping_ones_are_not():
    x, y = _clusters(20, 0.3, 0)
    x_eval, y_eval = _clusters(5, 0.3, 1)
    clean = probe.linear_probe(x, y, x_eval, y_eval, noise=0.0, seed=0)
    assert clean["train_accuracy"] == 1.0 and clean["eval_accuracy"] == 1.0
    assert probe.nearest_other_task(x, y, x_eval, y_eval) == 0.0
    x, y = _clusters(20, 20.0, 0)  # the task signal drowned: about chance (0.25)
    x_eval, y_eval = _clusters(50, 20.0, 1)
    noisy = probe.linear_probe(x, y, x_eval, y_eval, noise=0.0, seed=0)
    assert noisy["eval_accuracy"] < 0.5
    assert probe.nearest_other_task(x, y, x_eval, y_eval) > 0.4


def test_every_regularised_readout_reads_separable_tasks():
    x, y = _clusters(20, 0.3, 0)
    x_eval, y_eval = _clusters(5, 0.3, 1)
    for name, kwargs in probe.READOUTS.items():
        result = probe.linear_probe(x, y, x_eval, y_eval, seed=0, **kwargs)
        assert result["eval_accuracy"] == 1.0, name
    x, y = _clusters(20, 20.0, 0)
    x_eval, y_eval = _clusters(50, 20.0, 1)
    mlp = probe.linear_probe(x, y, x_eval, y_eval, seed=0, hidden=32, mixup=True)
    assert mlp["eval_accuracy"] < 0.5  # mixup within a task cannot invent a signal that is not there


def test_misread_pairs_count_each_confusion_once_most_frequent_first():
    y_eval = torch.tensor([0, 0, 1, 1, 2])
    pairs = probe.misread_pairs([1, 1, 1, 0, 2], y_eval, ["a", "b", "c"])
    assert pairs == [{"task": "a", "read_as": "b", "n": 2}, {"task": "b", "read_as": "a", "n": 1}]
    x, y = _clusters(20, 0.3, 0)
    x_eval, y_eval = _clusters(5, 0.3, 1)
    result = probe.linear_probe(x, y, x_eval, y_eval, return_predictions=True)
    assert result["eval_predictions"] == y_eval.tolist()
