"""User-input checks shared by the CLI and the Python API, so both reject the same inputs with the same words.

Everything here is cheap and imports neither torch nor transformers: the CLI runs these checks before it loads
anything heavy, so a bad path or value fails in well under a second.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CONTROL_FRACTION = 0.10  # documents with more control characters than this are binary, not text


class InputError(ValueError):
    """A user error: one line naming the problem and the fix (the CLI prints it and exits with status 2)."""


class MissingPathError(InputError, FileNotFoundError):
    """A user error about a file or directory that does not exist (also a ``FileNotFoundError``)."""


class MissingPackageError(InputError, ModuleNotFoundError):
    """A user error: an optional package (e.g. one that ships model weights) is not installed; the message names
    the pip command (also a ``ModuleNotFoundError``)."""


def positive(value: int | None, name: str) -> int | None:
    """``value`` when ``None`` or an int >= 1; otherwise an :class:`InputError` naming ``name``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name} must be a whole number >= 1, got {value!r}.")
    if value < 1:
        raise InputError(f"{name} must be >= 1, got {value}.")
    return value


def check_text(text: Any, what: str = "document") -> str:
    """A non-empty text that is not binary data (NUL bytes, mostly control characters)."""
    if not isinstance(text, str):
        raise InputError(f"{what} must be a string, got {type(text).__name__}.")
    if not text.strip():
        raise InputError(f"{what} is empty or whitespace only; give it some text.")
    if "\x00" in text:
        raise InputError(
            f"{what} contains NUL bytes: it looks like binary data, not text; give a UTF-8 text file."
        )
    control = sum(1 for c in text if ord(c) < 32 and c not in "\n\r\t\f\v")
    if control > CONTROL_FRACTION * len(text):
        raise InputError(
            f"{what} is {control / len(text):.0%} control characters: it looks like binary data; give UTF-8 text."
        )
    return text


def read_document(path: str | os.PathLike, what: str = "document") -> str:
    """Read a UTF-8 text file: missing, a directory, undecodable, empty or binary files are an InputError."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise InputError(f"{what} {p} is a directory, not a file; give a UTF-8 text file.")
    if not p.is_file():
        raise MissingPathError(f"{what} file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(
            f"{what} file {p} is not valid UTF-8 (byte {e.start}); re-encode it as UTF-8."
        ) from None
    except OSError as e:
        raise InputError(f"cannot read {what} file {p}: {e.strerror}.") from None
    return check_text(text, f"{what} file {p}")


def check_texts(texts: Any, what: str = "document") -> list[str]:
    """A non-empty list of texts (a single string counts as one), each checked by :func:`check_text`."""
    items = [texts] if isinstance(texts, str) else list(texts) if texts is not None else []
    if not items:
        raise InputError(f"No {what}s given.")
    return [check_text(t, f"{what} {i}") for i, t in enumerate(items)]


def check_model_dir(name_or_dir: str | os.PathLike, kind: str) -> Path:
    """A model directory (or shipped name) of ``kind`` (``doc-to-lora``/``text-to-lora``) with readable JSON.

    Names the other kind when a Text-to-LoRA dir is given where a Doc-to-LoRA one is needed, and vice versa.
    """
    from lora_hyper.file_io import read_json_config  # file_io imports this module
    from lora_hyper.saved_model import KINDS, model_files

    _, config, _ = model_files(name_or_dir, kind)
    read_json_config(config, f"{KINDS[kind].label} config")
    return config.parent


def check_adapter_count(n_questions: int, n_adapters: int, share_adapters: bool = False) -> None:
    """One adapter per question, unless ``share_adapters`` says consecutive groups of questions share one."""
    if n_questions < 1:
        raise InputError("No questions given.")
    if n_questions == n_adapters:
        return
    if not share_adapters:
        raise InputError(
            f"{n_questions} questions for {n_adapters} adapters: give one question per adapter, or pass "
            "share_adapters=True to let consecutive groups of questions share one adapter."
        )
    if n_questions % n_adapters:
        raise InputError(
            f"{n_questions} questions cannot be shared evenly by {n_adapters} adapters: give the same number of "
            "questions for each adapter."
        )


def check_prompt_lengths(lengths: Sequence[int], window: int | None, what: str = "question") -> None:
    """Every chat-templated prompt fits the model's native window (long context goes through internalize)."""
    if not window:
        return
    for i, n in enumerate(lengths):
        if n > window:
            raise InputError(
                f"{what} {i} is {n} tokens, longer than the model's native window ({window}); shorten it "
                "(put long documents through internalize instead)."
            )


def check_lora_args(targets: Sequence[str] | None, rank: int) -> None:
    """Target module names (non-empty, no duplicates) and a positive rank, checked before any model loads."""
    positive(rank, "rank")
    if targets is None:
        return
    if isinstance(targets, str) or not all(isinstance(t, str) and t.strip() for t in targets) or not targets:
        raise InputError(
            f"targets must be a non-empty list of module names such as [down_proj], got {targets!r}."
        )
    dupes = sorted({t for t in targets if list(targets).count(t) > 1})
    if dupes:
        raise InputError(f"targets repeat {dupes}; name each module once.")
