"""Helpers shared by the inference commands: one-line errors and careful text-file reading."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lora_hyper.validation import InputError, read_document

USER_ERRORS = (
    InputError,
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
)


class CommandError(InputError):
    """A user error: printed as one line on stderr, exit status 2."""


def read_text_file(path: str | Path, what: str = "document") -> str:
    """Read a UTF-8 text file; missing, a directory, undecodable, blank or binary files are an ``InputError``."""
    return read_document(path, what)


def debug() -> bool:
    """``LORA_HYPER_DEBUG=1``: show full tracebacks instead of one-line errors."""
    return os.environ.get("LORA_HYPER_DEBUG", "") not in ("", "0")


def report(error: BaseException) -> int:
    """Print a user error as one stderr line (newlines folded) and return exit status 2."""
    text = " ".join(str(error).split()) or type(error).__name__
    print(f"lora-hyper: error: {text}", file=sys.stderr)
    return 2


def run_command(fn, argv: list[str]) -> int:
    """Run ``fn(argv)``; user errors become one stderr line and exit status 2 (tracebacks with LORA_HYPER_DEBUG=1)."""
    try:
        return int(fn(argv) or 0)
    except USER_ERRORS as e:
        if debug():
            raise
        return report(e)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors become a ``CommandError`` (one stderr line, exit 2) instead of usage text."""

    def error(self, message: str):  # type: ignore[override]
        raise CommandError(f"{self.prog}: {message}")


def human_bytes(n: float) -> str:
    """``1536`` -> ``1.5 KiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"
