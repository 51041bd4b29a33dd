"""Image classification scoring (alias, token match, closest class; strict) and the evaluation's accuracy, per-class
numbers, confusion matrix, CSV and PNG on a generated set whose answers are known."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from lora_hyper.callbacks.image_classification import evaluate_image_classification, write_image_report
from lora_hyper.data_modules.imagenette import ImagenetteDataModule
from lora_hyper.image_protocol import (
    IMAGENETTE_ALIASES,
    IMAGENETTE_CLASSES,
    class_question,
    classes_named,
    score_answer,
)
from lora_hyper.testing_vlm import write_image_folder

NAMES = list(IMAGENETTE_CLASSES.values())


@pytest.mark.parametrize(
    "answer, expected, strict",
    [
        ("parachute", 9, True),
        ("French horn.", 5, True),
        ("It is a springer spaniel", 1, True),  # alias
        ("A golf ball", 8, True),  # not also "ball" of another class
        ("chainsaw", 3, True),
        ("a church or a gas pump", 4, False),  # two classes named: the first, not strict
        ("cassete plyer", 2, False),  # closest class
        ("garbage", 6, False),  # token match
    ],
)
def test_score_answer(answer, expected, strict):
    assert score_answer(answer, NAMES, IMAGENETTE_ALIASES) == (expected, strict)


def test_question_and_named_classes():
    q = class_question(NAMES)
    assert q.startswith(
        "What is in this image? Choose exactly one of the following classes: tench, English springer"
    )
    assert q.endswith("parachute. Respond with only the class.")
    assert classes_named("a dog near a church", NAMES, IMAGENETTE_ALIASES) == {1, 4}


class KnownAnswers:
    """Reads the class from a generated image's colour cast; answers right for even classes, a wrong class for
    class 1, two classes for class 3 (closest: the right one first), nonsense elsewhere."""

    def internalize_images(self, images, rank_budget=None):
        out = []
        for im in images:
            px = np.asarray(im).reshape(-1, 3)
            ch = int(np.argmin(px.std(0)))
            out.append(next(c for c in range(10) if c % 3 == ch and (37 * c) % 256 == px[0, ch]))
        return out

    def generate(self, questions, adapters, max_new_tokens=16):
        assert all(q == class_question(NAMES) for q in questions)
        answers = {1: "tench", 3: "chain saw or church"}
        return [NAMES[c] if c % 2 == 0 else answers.get(c, "zzz") for c in adapters]


def test_evaluation_accuracy_report(tmp_path):
    root = write_image_folder(tmp_path / "imgs", list(IMAGENETTE_CLASSES), per_class=2, splits=("val",))
    dm = ImagenetteDataModule(root=str(root))
    dm.setup()
    res = evaluate_image_classification(KnownAnswers(), dm.split_items("val"), dm.class_names, dm.aliases, 3)
    assert res["n"] == 20
    strict_right = 5  # classes 0, 2, 4, 6, 8
    assert res["strict_accuracy"] == pytest.approx(strict_right / 10)
    per = {r["class"]: r for r in res["per_class"]}
    assert per["chain saw"]["accuracy"] == 1.0 and per["chain saw"]["strict_accuracy"] == 0.0
    assert per["English springer"]["accuracy"] == 0.0 and res["confusion"][1][0] == 2
    closest_right = 5 + 1 + sum(score_answer("zzz", NAMES, dm.aliases)[0] == c for c in (5, 7, 9))
    assert res["accuracy"] == pytest.approx(closest_right / 10)
    assert sum(map(sum, res["confusion"])) == 20
    csv_path, samples_path, png_path = write_image_report(res, tmp_path / "out", "image_cls_final")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["class"] for r in rows] == [*NAMES, "all"]
    assert math.isclose(float(rows[-1]["accuracy"]), res["accuracy"], rel_tol=1e-6)
    samples = list(csv.DictReader(samples_path.open()))
    assert len(samples) == 20 and samples[0]["output"] == "tench" and samples[0]["strict"] == "True"
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluation_needs_images():
    with pytest.raises(ValueError, match="No images"):
        evaluate_image_classification(KnownAnswers(), [], NAMES)
