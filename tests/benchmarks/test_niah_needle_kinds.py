"""benchmarks/niah.py: accuracy split by needle kind (a repeated adjacent digit or not)."""

from __future__ import annotations

import math

import niah


def test_accuracy_by_needle_kind_splits_repeated_digits():
    samples = [
        {"answer": "7399", "correct": False},
        {"answer": "8111", "correct": True},
        {"answer": "4066", "correct": False},
        {"answer": "7294", "correct": True},
        {"answer": "1234", "correct": True},
    ]
    kinds = niah.accuracy_by_needle_kind(samples)
    assert kinds["repeated_digit"] == {"n": 3, "accuracy": 1 / 3}
    assert kinds["no_repeated_digit"] == {"n": 2, "accuracy": 1.0}
    empty = niah.accuracy_by_needle_kind(samples[3:])
    assert empty["repeated_digit"]["n"] == 0 and math.isnan(empty["repeated_digit"]["accuracy"])
