"""Refuse to resume a fit whose data settings differ from the checkpoint's: exact resume means the same rows.

Lightning stores a data module's init arguments in every checkpoint (``datamodule_hyper_parameters``); a data
module compares the ones that decide which training rows a step draws with its own when a fit resumes, so a
recipe edited between the two runs (or an old recipe that lacks a newer key) fails before the first step with
the fix, instead of silently training on other rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lora_hyper.validation import InputError

HPARAMS_KEY = "datamodule_hyper_parameters"


def _flag(value: Any) -> str:
    """A value as it is written after ``--data.init_args.<key>`` on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    return str(value)


def check_resume_rows(
    datamodule: Any,
    checkpoint: Mapping[str, Any],
    keys: Sequence[str],
    legacy: Mapping[str, Any] | None = None,
) -> None:
    """Raise :class:`InputError` when a resumed fit would draw other training rows than the checkpoint's run.

    ``keys`` are the data module's attributes (and init arguments) that decide the rows; ``legacy`` gives the value
    a key had in checkpoints written before the key existed. Only fits are checked (validating or testing a
    checkpoint with other data settings is legitimate), and only checkpoints that carry the data module's
    arguments (a fit driven from Python without one carries none).
    """
    trainer = getattr(datamodule, "trainer", None)
    fn = getattr(getattr(trainer, "state", None), "fn", None)
    if trainer is None or getattr(fn, "value", fn) != "fit":
        return
    saved = checkpoint.get(HPARAMS_KEY)
    if not saved:
        return
    legacy = legacy or {}
    for key in keys:
        if key in saved:
            was = saved[key]
        elif key in legacy:
            was = legacy[key]
        else:
            continue
        now = getattr(datamodule, key)
        if isinstance(was, Sequence) and not isinstance(was, str):
            was = list(was)
        if isinstance(now, Sequence) and not isinstance(now, str):
            now = list(now)
        if was != now:
            raise InputError(
                f"the checkpoint was trained with data {key}={_flag(was)} and this run sets {_flag(now)}: resume "
                f"with --data.init_args.{key} {_flag(was)} (exact resume draws the same rows), or start a new run "
                "(a hypernetwork's from the checkpoint's weights with --model.init_args.init_from)."
            )
