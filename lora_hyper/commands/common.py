"""Helpers shared by the inference commands: one-line errors and careful text-file reading."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class CommandError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


def read_text_file(path: str | Path, what: str = "document") -> str:
    """Read a UTF-8 text file; missing, undecodable or blank files are a ``CommandError``."""
    p = Path(path)
    if not p.is_file():
        raise CommandError(f"{what} file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CommandError(
            f"{what} file {p} is not valid UTF-8 (byte {e.start}); re-encode it as UTF-8."
        ) from None
    if not text.strip():
        raise CommandError(f"{what} file {p} is empty or whitespace only.")
    return text


def run_command(fn, argv: list[str]) -> int:
    """Run ``fn(argv)``; turn ``CommandError``/``ValueError`` into one stderr line and exit status 2."""
    try:
        return int(fn(argv) or 0)
    except (CommandError, ValueError, FileNotFoundError) as e:
        print(f"lora-hyper: error: {e}", file=sys.stderr)
        return 2


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors become a ``CommandError`` (one stderr line, exit 2) instead of usage text."""

    def error(self, message: str):  # type: ignore[override]
        raise CommandError(f"{self.prog}: {message}")
