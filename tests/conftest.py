"""Shared fixtures: tiny Llama-style models built from configs (fp32, offline)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # tiny models: threading overhead dominates, and subprocess tests run alongside


@pytest.fixture(scope="session")
def tiny_llama():
    """(model, tokenizer): 2 layers, hidden 64; frozen, eval mode."""
    from lora_hyper.base_model import freeze
    from lora_hyper.testing import make_tiny_llama

    model, tok = make_tiny_llama()
    return freeze(model), tok


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A directory holding a tiny model + tokenizer, loadable with ``load_base_model``."""
    from lora_hyper.testing import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))
