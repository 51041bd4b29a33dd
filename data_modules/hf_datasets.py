"""One split of a Hugging Face ``datasets`` spec (a hub name or ``load_dataset`` kwargs), with the install hint."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def load_split(spec: str | Mapping[str, Any], split: str) -> tuple[Any, str]:
    """``(rows, name)``: the ``split`` of ``spec`` and a name for messages (the dataset path)."""
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "Loading a `datasets` spec needs the datasets package: pip install datasets"
        ) from None
    kwargs = {"path": spec} if isinstance(spec, str) else dict(spec)
    return datasets.load_dataset(**kwargs, split=split), str(kwargs.get("path", "dataset"))
