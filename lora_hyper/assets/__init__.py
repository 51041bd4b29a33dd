"""Files shipped with lora-hyper (package data): the NIAH-style sample document that `make demo` internalizes."""

from __future__ import annotations

from pathlib import Path

from lora_hyper.niah_protocol import NIAH_QUESTION

SAMPLE_DOCUMENT_QUESTION = NIAH_QUESTION
SAMPLE_DOCUMENT_ANSWER = "7294"
SAMPLE_DOCUMENT_TOKENS = 1024  # measured with the SmolLM2-135M-Instruct tokenizer


def sample_document_path() -> Path:
    """Path of ``sample_document.txt``: filler haystack with the needle "The special magic number is 7294."."""
    return Path(__file__).with_name("sample_document.txt")
