"""Image classification by a text-only LM: the Imagenette classes, the question, and answer -> class scoring.

The reference's protocol: the question lists the class names; a free-text answer maps to a class by an alias
map, then by token match, then to the closest class name (``difflib``), so every answer maps to some class.
*Strict* scoring only counts an answer that names exactly one class.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence

# Imagenette's 10 ImageNet classes: the wnid folder names of the released archives, in their sorted order
# (the order of the integer labels of ``frgfm/imagenette``).
IMAGENETTE_CLASSES: dict[str, str] = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}
IMAGENETTE_ALIASES: dict[str, list[str]] = {
    "tench": ["tinca tinca", "tinca", "fish", "carp"],
    "English springer": [
        "english springer spaniel",
        "springer spaniel",
        "springer",
        "spaniel",
        "dog",
        "puppy",
    ],
    "cassette player": ["cassette", "tape player", "tape deck", "tape recorder", "walkman", "stereo"],
    "chain saw": ["chainsaw", "chain-saw", "saw"],
    "church": ["cathedral", "chapel", "basilica", "abbey"],
    "French horn": ["horn", "french-horn", "tuba", "brass instrument"],
    "garbage truck": ["trash truck", "refuse truck", "dump truck", "dustcart", "rubbish truck", "truck"],
    "gas pump": ["gas station", "petrol pump", "fuel pump", "fuel dispenser", "petrol station", "pump"],
    "golf ball": ["golfball", "golf", "ball"],
    "parachute": ["paraglider", "parasail", "skydiver", "skydiving", "canopy"],
}
QUESTION = "What is in this image? Choose exactly one of the following classes: {classes}. Respond with only the class."


def class_question(class_names: Sequence[str]) -> str:
    """The reference's question: which of ``class_names`` the image shows, answered with the class only."""
    return QUESTION.format(classes=", ".join(class_names))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def _names(class_names: Sequence[str], aliases: Mapping[str, Sequence[str]] | None) -> list[list[str]]:
    """Normalised surface forms of each class: its name first, then its aliases."""
    aliases = aliases or {}
    return [[_norm(c), *(_norm(a) for a in aliases.get(c, ()))] for c in class_names]


def classes_named(
    answer: str, class_names: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None
) -> set[int]:
    """Indices of the classes whose name or an alias appears in ``answer`` as whole words (longest forms first,
    so "golf ball" is not also read as "ball")."""
    text = f" {_norm(answer)} "
    forms = sorted(
        ((form, c) for c, names in enumerate(_names(class_names, aliases)) for form in names if form),
        key=lambda fc: -len(fc[0]),
    )
    found: set[int] = set()
    for form, c in forms:
        if f" {form} " in text:
            found.add(c)
            text = text.replace(f" {form} ", " | ")
    return found


def score_answer(
    answer: str, class_names: Sequence[str], aliases: Mapping[str, Sequence[str]] | None = None
) -> tuple[int, bool]:
    """``(class index, strict)``: the class an answer maps to (alias/name match, then token match, then the
    closest name) and whether it names exactly one class (strict)."""
    named = classes_named(answer, class_names, aliases)
    if len(named) == 1:
        return next(iter(named)), True
    text = _norm(answer)
    surface = _names(class_names, aliases)
    if named:  # several classes named: the one mentioned first
        return min(named, key=lambda c: min(text.find(f) for f in surface[c] if f and f in text)), False
    words = set(text.split())
    overlap = [max(len(words & set(f.split())) for f in forms) for forms in surface]
    if max(overlap, default=0) > 0:
        return overlap.index(max(overlap)), False
    ratio = [max(difflib.SequenceMatcher(None, text, f).ratio() for f in forms) for forms in surface]
    return ratio.index(max(ratio)), False
